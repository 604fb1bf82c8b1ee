//! Statistics every crate needs, each defined once and named by its convention.

/// `numpy.median`: the middle value, or the mean of the middle two for an even count; NaN when
/// empty. Sorts `values` in place (NaNs last, by `total_cmp`).
pub fn median(values: &mut [f64]) -> f64 {
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    }
}

/// [`median`] of `f32` values, in `f32` (the mean of the middle two taken in `f32`).
pub fn median_f32(values: &mut [f32]) -> f32 {
    let n = values.len();
    if n == 0 {
        return f32::NAN;
    }
    values.sort_by(f32::total_cmp);
    if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    }
}

/// `numpy.quantile(sorted, q)` with its default (linear) interpolation between the closest
/// ranks, of values already sorted ascending; NaN when empty.
pub fn quantile_linear_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The nearest-rank `q` quantile (the smallest value with at least a share `q` of values at or
/// below it, as latency percentiles are reported); 0 when empty.
pub fn quantile_nearest_rank(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Pearson correlation of two equally long series, accumulated in `f64` about the means;
/// NaN when either is constant or they are shorter than two.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "pearson: series of different lengths");
    let n = a.len();
    if n < 2 {
        return f64::NAN;
    }
    let mean_a = a.iter().sum::<f64>() / n as f64;
    let mean_b = b.iter().sum::<f64>() / n as f64;
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x - mean_a, y - mean_b);
        ab += dx * dy;
        aa += dx * dx;
        bb += dy * dy;
    }
    if aa <= 0.0 || bb <= 0.0 {
        return f64::NAN;
    }
    ab / (aa * bb).sqrt()
}

/// Mean and population standard deviation (`numpy.std`, ddof 0) of `values`.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Z-scores `values` in place with the population standard deviation (scipy's `zscore`,
/// ddof 0). A constant series becomes zeros and `false` is returned.
pub fn zscore_in_place(values: &mut [f64]) -> bool {
    let (mean, std) = mean_std(values);
    #[allow(clippy::neg_cmp_op_on_partial_ord)] // NaN must take this branch too
    if !(std > 0.0) || !std.is_finite() {
        values.iter_mut().for_each(|v| *v = 0.0);
        return false;
    }
    values.iter_mut().for_each(|v| *v = (*v - mean) / std);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_follows_numpy() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0, 10.0]), 2.5);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert!(median(&mut []).is_nan());
        assert_eq!(median_f32(&mut [4.0, 1.0]), 2.5);
    }

    #[test]
    fn quantiles_follow_their_conventions() {
        let sorted = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_linear_sorted(&sorted, 0.5), 2.5); // numpy.quantile
        assert_eq!(quantile_linear_sorted(&sorted, 0.25), 1.75);
        assert_eq!(quantile_nearest_rank(&[4.0, 1.0, 3.0, 2.0], 0.5), 2.0);
        assert_eq!(quantile_nearest_rank(&[4.0, 1.0, 3.0, 2.0], 0.95), 4.0);
    }

    #[test]
    fn pearson_survives_a_large_offset() {
        let a: Vec<f64> = (0..100).map(|i| 1e8 + f64::from(i)).collect();
        let b: Vec<f64> = (0..100).map(|i| -2.0 * f64::from(i)).collect();
        assert!((pearson(&a, &b) + 1.0).abs() < 1e-12);
        assert!(pearson(&[1.0, 1.0], &[1.0, 2.0]).is_nan());
    }

    #[test]
    fn zscore_uses_the_population_deviation() {
        let mut v = [1.0, 2.0, 3.0, 4.0];
        assert!(zscore_in_place(&mut v));
        let (m, s) = mean_std(&v);
        assert!(m.abs() < 1e-12 && (s - 1.0).abs() < 1e-12);
        let mut c = [5.0; 3];
        assert!(!zscore_in_place(&mut c));
        assert_eq!(c, [0.0; 3]);
    }
}
