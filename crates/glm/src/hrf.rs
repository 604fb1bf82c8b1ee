//! GLMsingle's HRFs: the canonical HRF (`getcanonicalhrf`) and the library of 20 HRFs that
//! TYPEB picks from per voxel (`getcanonicalhrflibrary`), for a stimulus of `duration` seconds
//! sampled every `tr` seconds, each made from the response to a 0.1-s stimulus that GLMsingle
//! ships as a table (`models/glmsingle-hrfs/hrfs.json`, exported from it with its licence).
//!
//! Steps, as GLMsingle: the 0.1-s response convolved with a box of round(duration / 0.1)
//! samples (at least 1; a duration of 0 counts as 0.1 s), resampled at 0, TR, 2·TR, … by pchip,
//! divided by its maximum (the library: by the maximum over all 20).

use crate::pchip::Pchip;
use serde::Deserialize;
use std::sync::OnceLock;

/// Sampling interval of the shipped responses, seconds.
pub const STEP: f64 = 0.1;
/// HRFs in the library.
pub const LIBRARY_SIZE: usize = 20;

static HRFS_JSON: &str = include_str!("../../../models/glmsingle-hrfs/hrfs.json");

#[derive(Deserialize)]
struct Tables {
    /// The canonical response to a 0.1-s stimulus, every 0.1 s.
    canonical: Vec<f64>,
    /// The library's 20 responses, each every 0.1 s.
    library: Vec<Vec<f64>>,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let tables: Tables = serde_json::from_str(HRFS_JSON).expect("the shipped HRF tables parse");
        assert_eq!(
            tables.library.len(),
            LIBRARY_SIZE,
            "the shipped HRF library"
        );
        tables
    })
}

/// MATLAB's round (halves away from zero), as GLMsingle's `alt_round` computes it.
fn matlab_round(x: f64) -> f64 {
    x.signum() * ((x.abs() * 2.0).floor() / 2.0).ceil()
}

/// Samples of a box of `duration` seconds at STEP (at least one).
fn box_length(duration: f64) -> usize {
    let duration = if duration == 0.0 { 0.1 } else { duration };
    matlab_round(duration / STEP).max(1.0) as usize
}

/// Full convolution of `h` with a box of `n` ones: h.len() + n − 1 samples.
fn box_convolve(h: &[f64], n: usize) -> Vec<f64> {
    (0..h.len() + n - 1)
        .map(|i| {
            let lo = i.saturating_sub(n - 1);
            h[lo..=i.min(h.len() - 1)].iter().sum()
        })
        .collect()
}

/// `numpy.arange(0, stop, step)`: ⌈stop / step⌉ values i·step.
fn arange(stop: f64, step: f64) -> Vec<f64> {
    let n = (stop / step).ceil().max(0.0) as usize;
    (0..n).map(|i| i as f64 * step).collect()
}

/// `h` (every STEP seconds) by pchip at `times`, extrapolating past its end.
fn resample(h: &[f64], times: &[f64]) -> Vec<f64> {
    let x: Vec<f64> = (0..h.len()).map(|i| i as f64 * STEP).collect();
    let p = Pchip::new(&x, h);
    times.iter().map(|&t| p.at(t, true)).collect()
}

fn check(duration: f64, tr: f64) {
    assert!(
        duration.is_finite() && duration >= 0.0 && tr.is_finite() && tr > 0.0,
        "HRF: a duration ≥ 0 and a TR > 0 in seconds (found {duration}, {tr})"
    );
}

/// GLMsingle's canonical HRF for a stimulus of `duration` seconds at `tr`: the first sample at
/// the stimulus onset, peak 1. Its length is (response length − 1)·0.1 s / TR, rounded up.
pub fn canonical_hrf(duration: f64, tr: f64) -> Vec<f64> {
    check(duration, tr);
    let h = box_convolve(&tables().canonical, box_length(duration));
    let times = arange((h.len() - 1) as f64 * STEP, tr);
    let mut out = resample(&h, &times);
    let peak = out.iter().copied().fold(f64::MIN, f64::max);
    out.iter_mut().for_each(|v| *v /= peak);
    out
}

/// GLMsingle's library of 20 HRFs for a stimulus of `duration` seconds at `tr` (20 × time,
/// the first sample at onset), divided by the largest value of any of them.
pub fn hrf_library(duration: f64, tr: f64) -> Vec<Vec<f64>> {
    check(duration, tr);
    let n = box_length(duration);
    let convolved: Vec<Vec<f64>> = tables()
        .library
        .iter()
        .map(|h| box_convolve(h, n))
        .collect();
    let times = arange((convolved[0].len() as f64 * STEP).ceil(), tr);
    let mut library: Vec<Vec<f64>> = convolved.iter().map(|h| resample(h, &times)).collect();
    let peak = library.iter().flatten().copied().fold(f64::MIN, f64::max);
    library.iter_mut().flatten().for_each(|v| *v /= peak);
    library
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_and_boxes_follow_matlab() {
        assert_eq!(matlab_round(2.5), 3.0);
        assert_eq!(matlab_round(-0.5), -1.0);
        assert_eq!(matlab_round(29.999999999999996), 30.0);
        assert_eq!(
            (box_length(0.0), box_length(3.0), box_length(0.04)),
            (1, 30, 1)
        );
        assert_eq!(box_convolve(&[1.0, 2.0, 3.0], 2), [1.0, 3.0, 5.0, 3.0]);
    }

    #[test]
    fn the_canonical_hrf_peaks_at_one_about_five_seconds_in() {
        let h = canonical_hrf(0.0, 1.0);
        let peak = (0..h.len()).max_by(|&a, &b| h[a].total_cmp(&h[b])).unwrap();
        assert_eq!(h[peak], 1.0);
        assert!((4..=6).contains(&peak), "peak at {peak} s");
        assert!(h[0].abs() < 1e-6);
        assert_eq!(hrf_library(3.0, 1.6).len(), LIBRARY_SIZE);
    }
}
