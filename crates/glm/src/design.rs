//! Design matrices from event onsets in seconds, as GLMsingle's onset-time `convolve_design`
//! builds them: for each onset, the HRF (sampled every TR from the onset) interpolated by
//! pchip at the run's TRs, zero outside the HRF's span, summed per condition. An onset between
//! two TRs thus gets the HRF's shape at the right delay instead of the nearest TR's.

use crate::pchip::Pchip;

/// `numpy.linspace(0, stop, n)`: i·(stop / (n − 1)), the last value exactly `stop`.
fn linspace(stop: f64, n: usize) -> Vec<f64> {
    if n < 2 {
        return vec![0.0; n];
    }
    let step = stop / (n - 1) as f64;
    let mut out: Vec<f64> = (0..n).map(|i| i as f64 * step).collect();
    out[n - 1] = stop;
    out
}

/// The design of one run: (n_times × conditions), row-major. `onsets[q]`: the onsets of
/// condition q, seconds from the run's first volume; `hrf`: sampled every `tr` from onset
/// (at least two samples).
pub fn onset_design(onsets: &[Vec<f64>], hrf: &[f64], tr: f64, n_times: usize) -> Vec<f64> {
    assert!(hrf.len() >= 2, "design: an HRF of two or more samples");
    assert!(tr.is_finite() && tr > 0.0, "design: a TR > 0");
    let times = linspace(tr * (n_times as f64 - 1.0).max(0.0), n_times);
    let hrf_times = linspace(tr * (hrf.len() - 1) as f64, hrf.len());
    let n_conditions = onsets.len();
    let mut design = vec![0.0; n_times * n_conditions];
    for (q, condition) in onsets.iter().enumerate() {
        for &onset in condition {
            let x: Vec<f64> = hrf_times.iter().map(|t| onset + t).collect();
            let response = Pchip::new(&x, hrf);
            for (row, &t) in times.iter().enumerate() {
                let v = response.at(t, false);
                if v.is_finite() {
                    design[row * n_conditions + q] += v;
                }
            }
        }
    }
    design
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_onset_on_a_tr_places_the_hrf_there() {
        let hrf = [0.0, 0.5, 1.0, 0.25];
        let d = onset_design(&[vec![2.0], vec![]], &hrf, 1.0, 8);
        let first: Vec<f64> = (0..8).map(|r| d[r * 2]).collect();
        assert_eq!(first, [0.0, 0.0, 0.0, 0.5, 1.0, 0.25, 0.0, 0.0]);
        assert!((0..8).all(|r| d[r * 2 + 1] == 0.0));
        assert_eq!(linspace(3.0, 4), [0.0, 1.0, 2.0, 3.0]);
    }
}
