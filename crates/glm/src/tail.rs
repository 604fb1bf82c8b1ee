//! GLMsingle's `findtailthreshold`: the value where a two-Gaussian mixture fitted to a
//! distribution (the voxels' on/off R²) gives the upper component posterior 0.5, searched on a
//! grid of 500 values over a robust range. It sets the noise pool's R² cut and the voxels that
//! summarise GLMdenoise's cross-validation.
//!
//! GLMsingle fits the mixture with scikit-learn (k-means initialisation from an unseeded random
//! state, 3 restarts, tol 1e-10, no variance regularisation), so its threshold can change from
//! run to run. Here the restarts start from fixed quantiles of the data: the same threshold
//! every time.

/// A one-dimensional mixture of two Gaussians.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mixture {
    /// Mixing proportions (summing to 1).
    pub weights: [f64; 2],
    /// Component means, in no particular order.
    pub means: [f64; 2],
    /// Component variances.
    pub variances: [f64; 2],
}

impl Mixture {
    /// The posterior probability of each component at `x`.
    pub fn posterior(&self, x: f64) -> [f64; 2] {
        let log = |k: usize| {
            self.weights[k].ln()
                - 0.5 * (2.0 * std::f64::consts::PI * self.variances[k]).ln()
                - 0.5 * (x - self.means[k]).powi(2) / self.variances[k]
        };
        let (a, b) = (log(0), log(1));
        let top = a.max(b);
        let (ea, eb) = ((a - top).exp(), (b - top).exp());
        [ea / (ea + eb), eb / (ea + eb)]
    }

    /// Mean log-likelihood per value (scikit-learn's lower bound for a converged EM).
    fn mean_log_likelihood(&self, values: &[f64]) -> f64 {
        let total: f64 = values
            .iter()
            .map(|&x| {
                let density = |k: usize| {
                    self.weights[k]
                        * (-(x - self.means[k]).powi(2) / (2.0 * self.variances[k])).exp()
                        / (2.0 * std::f64::consts::PI * self.variances[k]).sqrt()
                };
                (density(0) + density(1)).max(f64::MIN_POSITIVE).ln()
            })
            .sum();
        total / values.len() as f64
    }
}

/// `numpy.percentile(sorted, q)` with linear interpolation; `sorted` ascending, non-empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let position = q / 100.0 * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    let fraction = position - below as f64;
    sorted[below] + (sorted[above] - sorted[below]) * fraction
}

/// GLMsingle's `robustrange`: [min, max] of the values, or their 0.1 and 99.9 percentiles when
/// the extremes lie far out, recomputed without outliers beyond five times the 10–50 and
/// 50–90 percentile spreads. `values` finite and non-empty.
pub fn robust_range(values: &[f64]) -> [f64; 2] {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    loop {
        let p = |q| percentile(&sorted, q);
        let (p01, p10, p50, p90, p999) = (p(0.1), p(10.0), p(50.0), p(90.0), p(99.9));
        let (low, high) = (p50 - 5.0 * (p50 - p10), p50 + 5.0 * (p90 - p50));
        let (min, max) = (sorted[0], sorted[sorted.len() - 1]);
        let keep_low = p01 >= low;
        let keep_high = p999 <= high;
        if keep_low && keep_high {
            let upper = if max <= p50 + 1.1 * (p999 - p50) {
                max
            } else {
                p999
            };
            let lower = if min >= p50 - 1.1 * (p50 - p01) {
                min
            } else {
                p01
            };
            return [lower, upper];
        }
        sorted.retain(|&v| (keep_high || v <= high) && (keep_low || v >= low));
    }
}

/// Expectation–maximisation for two Gaussians from the split of `sorted` at `split` (k-means
/// then EM, as scikit-learn's k-means initialisation), to a change of mean log-likelihood below
/// 1e-10 or 1000 iterations.
fn fit_from(sorted: &[f64], split: f64) -> Mixture {
    let mut centres = [
        percentile(sorted, 100.0 * split / 2.0),
        percentile(sorted, 100.0 * (0.5 + split / 2.0)),
    ];
    for _ in 0..100 {
        let boundary = 0.5 * (centres[0] + centres[1]);
        let cut = sorted
            .partition_point(|&v| v <= boundary)
            .clamp(1, sorted.len() - 1);
        let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
        let next = [mean(&sorted[..cut]), mean(&sorted[cut..])];
        if next == centres {
            break;
        }
        centres = next;
    }
    let n = sorted.len() as f64;
    let overall =
        sorted.iter().map(|v| v * v).sum::<f64>() / n - (sorted.iter().sum::<f64>() / n).powi(2);
    let floor = 1e-12 * overall.max(f64::MIN_POSITIVE);
    let boundary = 0.5 * (centres[0] + centres[1]);
    let mut responsibilities: Vec<f64> = sorted
        .iter()
        .map(|&v| f64::from(u8::from(v > boundary)))
        .collect();
    let mut mixture = m_step(sorted, &responsibilities, floor);
    let mut previous = f64::NEG_INFINITY;
    for _ in 0..1000 {
        for (r, &x) in responsibilities.iter_mut().zip(sorted) {
            *r = mixture.posterior(x)[1];
        }
        mixture = m_step(sorted, &responsibilities, floor);
        let likelihood = mixture.mean_log_likelihood(sorted);
        if (likelihood - previous).abs() < 1e-10 {
            break;
        }
        previous = likelihood;
    }
    mixture
}

/// The mixture maximising the expected likelihood given each value's responsibility `r` of
/// the second component.
fn m_step(values: &[f64], r: &[f64], floor: f64) -> Mixture {
    let mut mixture = Mixture {
        weights: [0.0; 2],
        means: [0.0; 2],
        variances: [0.0; 2],
    };
    for k in 0..2 {
        let weight = |i: usize| if k == 1 { r[i] } else { 1.0 - r[i] };
        let mass: f64 = (0..values.len())
            .map(weight)
            .sum::<f64>()
            .max(f64::MIN_POSITIVE);
        let mean = (0..values.len())
            .map(|i| weight(i) * values[i])
            .sum::<f64>()
            / mass;
        let variance = (0..values.len())
            .map(|i| weight(i) * (values[i] - mean).powi(2))
            .sum::<f64>()
            / mass;
        mixture.weights[k] = mass / values.len() as f64;
        mixture.means[k] = mean;
        mixture.variances[k] = variance.max(floor);
    }
    mixture
}

/// The tail threshold of `values` (non-finite values ignored) and the mixture it came from;
/// None when fewer than two distinct finite values exist.
pub fn tail_threshold(values: &[f64]) -> Option<(f64, Mixture)> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    if sorted.len() < 2 || sorted[0] == sorted[sorted.len() - 1] {
        return None;
    }
    // Three restarts, as GLMsingle's n_init = 3; the most likely fit wins.
    let mixture = [0.5, 0.2, 0.8]
        .iter()
        .map(|&split| fit_from(&sorted, split))
        .max_by(|a, b| {
            a.mean_log_likelihood(&sorted)
                .total_cmp(&b.mean_log_likelihood(&sorted))
        })?;
    let mut range = robust_range(&sorted);
    range[0] = range[0].min(mixture.means[0].min(mixture.means[1]));
    range[1] = range[1].max(mixture.means[0].max(mixture.means[1]));
    const GRID: usize = 500;
    let at = |i: usize| range[0] + (range[1] - range[0]) * i as f64 / (GRID - 1) as f64;
    let upper = usize::from(mixture.posterior(at(GRID - 1))[0] <= 0.5);
    // From the top of the grid down, the first value where the upper component's posterior
    // falls to 0.5 (the grid's first value when it never does, as GLMsingle).
    let index = (0..GRID)
        .rev()
        .find(|&i| mixture.posterior(at(i))[upper] <= 0.5)
        .unwrap_or(0);
    Some((at(index), mixture))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_as_numpy() {
        let sorted = [1.0, 2.0, 4.0, 8.0];
        assert_eq!(percentile(&sorted, 0.0), 1.0);
        assert_eq!(percentile(&sorted, 100.0), 8.0);
        assert!((percentile(&sorted, 50.0) - 3.0).abs() < 1e-12);
        assert!((percentile(&sorted, 90.0) - 6.8).abs() < 1e-12);
    }

    #[test]
    fn two_separated_groups_are_split_between_them() {
        let values: Vec<f64> = (0..300)
            .map(|i| (i as f64 * 0.37).sin())
            .chain((0..100).map(|i| 10.0 + (i as f64 * 0.71).cos()))
            .collect();
        let (threshold, mixture) = tail_threshold(&values).unwrap();
        assert!(threshold > 1.0 && threshold < 9.0, "{threshold}");
        let mut means = mixture.means;
        means.sort_by(f64::total_cmp);
        assert!(
            means[0].abs() < 0.1 && (means[1] - 10.0).abs() < 0.1,
            "{means:?}"
        );
        assert!(tail_threshold(&[1.0, 1.0, f64::NAN]).is_none());
    }
}
