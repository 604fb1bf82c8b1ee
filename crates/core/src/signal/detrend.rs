//! Per-voxel detrending and z-scoring of one run.
//!
//! * `median:S` subtracts a running median over the odd number of volumes nearest to S / TR
//!   (S / TR rounded, plus one when even), as the naturalistic-movie papers remove slow drift.
//!   Edges are reflected about the half-sample (`d c b a | a b c d | d c b a`), exactly
//!   `scipy.ndimage.median_filter(x, size, mode="reflect")`, repeated for windows longer than
//!   the run. (`scipy.signal.medfilt` pads with zeros instead, which drags the edges of a signal
//!   with a large baseline towards zero: not what a drift estimate should do.)
//! * `poly:N` subtracts the least-squares polynomial of order N in time, `numpy.polyfit`'s fit:
//!   the projection onto an orthonormal basis of 1, t, …, t^N on a time axis scaled to
//!   [-1, 1] (the same fitted values as the raw Vandermonde system, without its conditioning).
//! * z-scores use the population standard deviation (ddof 0).

use crate::error::{DataError, Result};
use serde::{Deserialize, Serialize};

/// How slow drift is removed from each voxel's time course.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum Detrend {
    /// Nothing removed.
    None,
    /// Running median over this many seconds.
    Median {
        /// The window, in seconds.
        seconds: f64,
    },
    /// Least-squares polynomial of this order.
    Poly {
        /// The polynomial's order.
        order: usize,
    },
}

impl Detrend {
    /// Parses `median:120`, `median:240`, `poly:N` or `none`.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            DataError::Usage(format!(
                "--detrend: expected median:<seconds> (e.g. median:120), poly:<order> or none, found '{text}'"
            ))
        };
        match text.split_once(':') {
            None if text == "none" => Ok(Detrend::None),
            Some(("median", s)) => {
                let seconds: f64 = s.parse().map_err(|_| bad())?;
                if seconds.is_finite() && seconds > 0.0 {
                    Ok(Detrend::Median { seconds })
                } else {
                    Err(bad())
                }
            }
            Some(("poly", n)) => Ok(Detrend::Poly {
                order: n
                    .parse()
                    .ok()
                    .filter(|&o: &usize| o <= 10)
                    .ok_or_else(bad)?,
            }),
            _ => Err(bad()),
        }
    }

    /// The form `parse` reads.
    pub fn label(&self) -> String {
        match self {
            Detrend::None => "none".into(),
            Detrend::Median { seconds } => format!("median:{seconds}"),
            Detrend::Poly { order } => format!("poly:{order}"),
        }
    }

    /// The running median's window in volumes at this TR: odd, at least 1.
    pub fn median_window(seconds: f64, tr: f64) -> usize {
        let n = (seconds / tr).round().max(1.0) as usize;
        if n % 2 == 1 {
            n
        } else {
            n + 1
        }
    }
}

/// Index `i` (any integer) reflected into 0..n about the half-sample, period 2n.
fn reflect(i: isize, n: usize) -> usize {
    let period = 2 * n as isize;
    let k = i.rem_euclid(period) as usize;
    if k >= n {
        2 * n - 1 - k
    } else {
        k
    }
}

/// Running median of odd width `size` with reflected edges (scipy.ndimage's `reflect`).
pub fn running_median(x: &[f64], size: usize) -> Vec<f64> {
    assert!(size % 2 == 1, "median window must be odd");
    let n = x.len();
    if n == 0 {
        return Vec::new();
    }
    let half = (size / 2) as isize;
    let at = |i: isize| x[reflect(i, n)];
    // A sorted window, updated by one removal and one insertion per step.
    let mut window: Vec<f64> = (-half..=half).map(at).collect();
    window.sort_by(f64::total_cmp);
    let mut out = Vec::with_capacity(n);
    for i in 0..n as isize {
        out.push(window[size / 2]);
        if i + 1 == n as isize {
            break;
        }
        let leaving = at(i - half);
        let pos = window.partition_point(|v| v.total_cmp(&leaving).is_lt());
        window.remove(pos);
        let entering = at(i + half + 1);
        let pos = window.partition_point(|v| v.total_cmp(&entering).is_lt());
        window.insert(pos, entering);
    }
    out
}

/// The degree of the drift polynomial for a run of `seconds`: GLMdenoise's and GLMsingle's
/// default, round(minutes / 2) with halves away from zero (an 8-min run gets 4, an 80-s run 1).
/// A fixed high degree on a short run removes the stimulus signal itself, worst at the run's
/// first and last TRs, where a polynomial bends most.
pub fn degree_for_duration(seconds: f64) -> usize {
    crate::signal::degree_for_seconds(seconds)
}

/// An orthonormal basis (columns, each `n` long) of polynomials up to `order` in time.
pub struct PolyBasis {
    n: usize,
    columns: Vec<Vec<f64>>,
}

impl PolyBasis {
    /// GLMsingle's polynomials ([`crate::signal::polynomial_basis`], as the GLM's): degrees 0…`order` of
    /// linspace(−1, 1, n), Gram–Schmidt-orthonormalised.
    pub fn new(n: usize, order: usize) -> Self {
        let columns = crate::signal::polynomial_basis(n, order);
        PolyBasis { n, columns }
    }

    /// Subtracts the least-squares fit from `x` in place.
    pub fn remove_fit(&self, x: &mut [f64]) {
        assert_eq!(x.len(), self.n);
        for q in &self.columns {
            let dot: f64 = x.iter().zip(q).map(|(a, b)| a * b).sum();
            x.iter_mut().zip(q).for_each(|(a, b)| *a -= dot * b);
        }
    }
}

/// Detrends one voxel's time course in place (`tr` converts a median window to volumes).
pub fn detrend(x: &mut [f64], method: Detrend, tr: f64, basis: Option<&PolyBasis>) {
    match method {
        Detrend::None => {}
        Detrend::Median { seconds } => {
            let trend = running_median(x, Detrend::median_window(seconds, tr));
            x.iter_mut().zip(trend).for_each(|(a, m)| *a -= m);
        }
        Detrend::Poly { order } => match basis {
            Some(b) => b.remove_fit(x),
            None => PolyBasis::new(x.len(), order).remove_fit(x),
        },
    }
}

/// Z-scores in place with the population standard deviation. Returns false, leaving the
/// values untouched, when the spread is zero: at most `1e-6` of the signal's root mean square
/// before detrending (`scale`), so a voxel whose drift explains it exactly counts as flat too.
pub fn zscore(x: &mut [f64], scale: f64) -> bool {
    let (mean, std) = crate::stats::mean_std(x);
    if std.is_nan() || std <= 1e-6 * scale || std == 0.0 {
        return false;
    }
    x.iter_mut().for_each(|v| *v = (*v - mean) / std);
    true
}

/// Root mean square, the scale `zscore` compares the spread with.
pub fn rms(x: &[f64]) -> f64 {
    (x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_degree_follows_glmdenoise() {
        // round(TRs · TR / 60 / 2): NSD's 188 × 1.6 s → 3, CC2017's 240 × 2 s → 4, the
        // synthetic video subject's 40 × 2 s → 1, 90 s → 1 (0.75), 30 s → 0, 150 s → 1 (1.25),
        // 180 s → 2 (1.5 rounds away from zero, as MATLAB's round).
        for (seconds, degree) in [
            (188.0 * 1.6, 3),
            (480.0, 4),
            (80.0, 1),
            (90.0, 1),
            (30.0, 0),
            (150.0, 1),
            (180.0, 2),
            (0.0, 0),
            (f64::NAN, 0),
        ] {
            assert_eq!(degree_for_duration(seconds), degree, "{seconds} s");
        }
    }

    #[test]
    fn parse_and_window() {
        assert_eq!(
            Detrend::parse("median:120").unwrap(),
            Detrend::Median { seconds: 120.0 }
        );
        assert_eq!(
            Detrend::parse("poly:3").unwrap(),
            Detrend::Poly { order: 3 }
        );
        assert_eq!(Detrend::parse("none").unwrap(), Detrend::None);
        for bad in ["median", "median:-1", "poly:x", "linear", "poly:40"] {
            assert!(Detrend::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Detrend::median_window(120.0, 1.0), 121);
        assert_eq!(Detrend::median_window(12.0, 1.5), 9);
        assert_eq!(Detrend::median_window(240.0, 2.0), 121);
    }

    #[test]
    fn median_matches_brute_force() {
        let x: Vec<f64> = (0..40)
            .map(|i| ((i * 37) % 11) as f64 - (i % 3) as f64)
            .collect();
        for size in [1, 3, 7, 41, 81, 201] {
            let fast = running_median(&x, size);
            for (i, m) in fast.iter().enumerate() {
                let h = (size / 2) as isize;
                let mut w: Vec<f64> = (i as isize - h..=i as isize + h)
                    .map(|j| x[reflect(j, x.len())])
                    .collect();
                w.sort_by(f64::total_cmp);
                assert_eq!(*m, w[size / 2], "size {size} at {i}");
            }
        }
    }

    #[test]
    fn flat_signals_do_not_zscore() {
        let mut x = vec![3.0; 10];
        let scale = rms(&x);
        assert!(!zscore(&mut x, scale));
        let mut y: Vec<f64> = (0..10).map(|i| i as f64).collect();
        let scale = rms(&y);
        assert!(zscore(&mut y, scale));
        let mean: f64 = y.iter().sum::<f64>() / 10.0;
        assert!(mean.abs() < 1e-12);
    }
}
