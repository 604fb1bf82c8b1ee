//! Time handling of continuous (naturalistic) fMRI designs: finite-impulse-response delays
//! and the alignment of stimulus features to the scanner's TRs.
//!
//! * [`delay`]: voxelwise_tutorials' `Delayer(delays)`: shifted copies side by side.
//! * [`delay_mean`]: the average of the same shifted copies (one block, p columns).
//! * [`tr_mean`]: the mean of the feature rows that fall within each TR.
//! * [`lanczos_interp`] / [`lanczos`]: Lanczos resampling of feature rows onto TR times, as the
//!   Huth lab's `interpdata.lanczosinterp2D` (window 3, cutoff from the new sample rate).

use faer::{Mat, MatRef};

use crate::error::{Result, RidgeError};
use crate::preprocess::check_finite;

/// Delayed copies of `x` (n×p) → n×(p·D), block `d` (columns `d·p..(d+1)·p`) shifted by
/// `delays[d]` samples: a delay `k > 0` uses the row `k` samples earlier (`out[i] = x[i−k]`,
/// zeros for the first `k` rows), `k < 0` the row `|k|` samples later (zeros at the end),
/// 0 the rows themselves. This is voxelwise_tutorials' `Delayer(delays).fit_transform(x)`.
pub fn delay(x: MatRef<'_, f32>, delays: &[i64]) -> Result<Mat<f32>> {
    check_delays(x, delays)?;
    let (n, p) = (x.nrows(), x.ncols());
    let mut out = Mat::<f32>::zeros(n, p * delays.len());
    for (d, &k) in delays.iter().enumerate() {
        for i in 0..n {
            if let Some(source) = shifted_row(i, k, n) {
                for j in 0..p {
                    out[(i, d * p + j)] = x[(source, j)];
                }
            }
        }
    }
    Ok(out)
}

/// The mean of the delayed copies of [`delay`] (n×p): `out[i] = Σ_d x[i − delays[d]] / D`,
/// rows outside the recording counting as zeros.
pub fn delay_mean(x: MatRef<'_, f32>, delays: &[i64]) -> Result<Mat<f32>> {
    check_delays(x, delays)?;
    let (n, p) = (x.nrows(), x.ncols());
    let mut sums = Mat::<f64>::zeros(n, p);
    for &k in delays {
        for i in 0..n {
            if let Some(source) = shifted_row(i, k, n) {
                for j in 0..p {
                    sums[(i, j)] += x[(source, j)] as f64;
                }
            }
        }
    }
    let count = delays.len() as f64;
    Ok(Mat::from_fn(n, p, |i, j| (sums[(i, j)] / count) as f32))
}

/// The source row of output row `i` for delay `k` (None: outside the recording).
fn shifted_row(i: usize, k: i64, n: usize) -> Option<usize> {
    let source = i as i64 - k;
    (0..n as i64).contains(&source).then_some(source as usize)
}

fn check_delays(x: MatRef<'_, f32>, delays: &[i64]) -> Result<()> {
    if delays.is_empty() {
        return Err(RidgeError::Options("delays: the list is empty".into()));
    }
    check_finite("X (delayed features)", x)
}

/// Mean of the feature rows within each TR (n_trs×p).
///
/// Row `r` of `x` (n×p) is taken at `times[r]` seconds; TR `k` covers
/// `[k·tr, (k+1)·tr)`; rows outside `[0, n_trs·tr)` are ignored. A TR that holds no row is an
/// error (resample with [`lanczos_interp`] instead).
pub fn tr_mean(x: MatRef<'_, f32>, times: &[f64], tr: f64, n_trs: usize) -> Result<Mat<f32>> {
    check_times(x, times, "times")?;
    if !(tr.is_finite() && tr > 0.0) || n_trs == 0 {
        return Err(RidgeError::Options(format!(
            "TR alignment needs tr > 0 and ≥ 1 TR (tr = {tr}, n_trs = {n_trs})"
        )));
    }
    let p = x.ncols();
    let mut sums = Mat::<f64>::zeros(n_trs, p);
    let mut counts = vec![0usize; n_trs];
    for (r, &time) in times.iter().enumerate() {
        let bin = (time / tr).floor();
        if bin < 0.0 || bin >= n_trs as f64 {
            continue;
        }
        let k = bin as usize;
        counts[k] += 1;
        for j in 0..p {
            sums[(k, j)] += x[(r, j)] as f64;
        }
    }
    if let Some(empty) = counts.iter().position(|&c| c == 0) {
        return Err(RidgeError::Options(format!(
            "TR {empty} ([{}, {}) s) holds no feature row",
            empty as f64 * tr,
            (empty + 1) as f64 * tr
        )));
    }
    Ok(Mat::from_fn(n_trs, p, |k, j| {
        (sums[(k, j)] / counts[k] as f64) as f32
    }))
}

fn check_times(x: MatRef<'_, f32>, times: &[f64], name: &str) -> Result<()> {
    if times.len() != x.nrows() {
        return Err(RidgeError::Shape(format!(
            "{name}: {} time points for {} feature rows",
            times.len(),
            x.nrows()
        )));
    }
    if let Some(r) = times.iter().position(|t| !t.is_finite()) {
        return Err(RidgeError::Options(format!(
            "{name}: entry {r} is {}, expected a finite time in seconds",
            times[r]
        )));
    }
    check_finite("X (features to align)", x)
}

/// The Lanczos kernel with `window` lobes at time `t` (s) for a cutoff frequency `cutoff` (Hz):
/// with `u = t·cutoff`, `window·sin(πu)·sin(πu/window) / (πu)²`, 1 at `u = 0`, 0 for
/// `|u| > window` (Huth lab `interpdata.lanczosfun`).
pub fn lanczos(cutoff: f64, t: f64, window: f64) -> f64 {
    let u = t * cutoff;
    if u == 0.0 {
        return 1.0;
    }
    if u.abs() > window {
        return 0.0;
    }
    let pi_u = std::f64::consts::PI * u;
    window * pi_u.sin() * (pi_u / window).sin() / (pi_u * pi_u)
}

/// Resamples the rows of `x` (n×p, row `r` at `old_times[r]`, non-decreasing) onto
/// `new_times` (m, at least 2): `out[k] = Σ_r lanczos(f_c, new_times[k] − old_times[r], window)
/// · x[r]` with `f_c = 1 / mean(diff(new_times))` (Huth lab `lanczosinterp2D`, no
/// renormalization of the weights). Returns m×p.
pub fn lanczos_interp(
    x: MatRef<'_, f32>,
    old_times: &[f64],
    new_times: &[f64],
    window: usize,
) -> Result<Mat<f32>> {
    check_times(x, old_times, "old_times")?;
    if let Some(r) = old_times.windows(2).position(|w| w[1] < w[0]) {
        return Err(RidgeError::Options(format!(
            "old_times must be non-decreasing: entry {} ({}) comes before entry {} ({})",
            r,
            old_times[r],
            r + 1,
            old_times[r + 1]
        )));
    }
    let m = new_times.len();
    let span = if m >= 2 {
        new_times[m - 1] - new_times[0]
    } else {
        0.0
    };
    let finite = new_times.iter().all(|t| t.is_finite());
    // with finite times the span is finite
    if m < 2 || !finite || span <= 0.0 || window == 0 {
        return Err(RidgeError::Options(format!(
            "new_times: need ≥ 2 finite increasing times and window ≥ 1 (got {m} times, window {window})"
        )));
    }
    // mean of the successive differences = (last − first) / (m − 1)
    let cutoff = (m - 1) as f64 / span;
    let reach = window as f64 / cutoff;
    let p = x.ncols();
    let mut out = Mat::<f32>::zeros(m, p);
    let mut row = vec![0f64; p];
    for (k, &time) in new_times.iter().enumerate() {
        // only rows within `window` lobes have non-zero weight
        let first = old_times.partition_point(|&t| t < time - reach);
        let last = old_times.partition_point(|&t| t <= time + reach);
        row.iter_mut().for_each(|v| *v = 0.0);
        for r in first..last {
            let weight = lanczos(cutoff, time - old_times[r], window as f64);
            for (v, j) in row.iter_mut().zip(0..p) {
                *v += weight * x[(r, j)] as f64;
            }
        }
        for (j, &v) in row.iter().enumerate() {
            out[(k, j)] = v as f32;
        }
    }
    Ok(out)
}
