//! The motion decoder beside the contexts. A caption names what is seen; how it moves is
//! carried by the early visual areas' motion energy, which a clip's text context hardly keeps.
//! So the route also decodes, with ridge, the global velocity of each sample's clip
//! ([`brainrecon_formats::motion::clip_velocity`]: frame widths and heights per frame, measured
//! from the stimulus frames),
//! and `video reconstruct` moves the initial noise by it ([`brainrecon_diffusion::warp`]).
//!
//! ```text
//! <out>/decoded_motion.npy     float32 (test samples, 2): vx, vy
//! <out>/true_motion_test.npy   float32 (test samples, 2): measured from the stimulus clips
//! <out>/models/motion/         the ridge model
//! ```

use super::evaluate::read_direction_of;
use super::fit::{fit_grouped, write_matrix};
use super::stimuli::{StimulusClips, StimulusTr};
use crate::error::{Result, RouteError};
use brainrecon_metrics::vector::pearson;
use faer::Mat;
use std::path::Path;

/// The decoded velocities of the test samples, float32 `[test samples, 2]` (vx, vy).
pub const DECODED_FILE: &str = "decoded_motion.npy";
/// The velocities measured from the test stimulus clips, float32 `[test samples, 2]`.
pub const TRUTH_FILE: &str = "true_motion_test.npy";

/// How well the motion was decoded (in `video_fit.json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MotionFit {
    /// Mean K-fold R² of the chosen alphas (both components).
    pub cv_r2: f64,
    /// Pearson r of decoded and measured test velocities, x then y.
    pub correlation: [f64; 2],
    /// Share of test samples whose decoded velocity reads as the measured one's direction
    /// (left, right, up, down or still below STILL_SPEED), and that share's chance (the
    /// measured directions' frequencies squared, summed).
    pub direction_agreement: f64,
    /// Its chance: the measured directions' frequencies squared, summed.
    pub direction_chance: f64,
}

/// The measured velocity of each sample's clip: (n, 2) (see [`StimulusClips::velocity`]).
pub(crate) fn clip_velocities(
    clips: &mut StimulusClips,
    samples: &[StimulusTr],
) -> Result<Mat<f32>> {
    let mut rows = Vec::with_capacity(samples.len());
    for &s in samples {
        rows.push(clips.velocity(s)?);
    }
    Ok(Mat::from_fn(rows.len(), 2, |r, c| rows[r][c]))
}

/// Fits ridge from the windows to the clips' velocities (alphas by K-fold CV grouped by
/// segment) and writes the decoded test velocities, the measured ones and the model.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fit_motion(
    [x_train, x_test]: [&Mat<f32>; 2],
    [train, test]: [&[StimulusTr]; 2],
    clips: &mut StimulusClips,
    alphas: &[f64],
    folds: usize,
    out: &Path,
) -> Result<MotionFit> {
    let v_train = clip_velocities(clips, train)?;
    let v_test = clip_velocities(clips, test)?;
    let groups: Vec<i64> = train.iter().map(|s| s.segment as i64).collect();
    let (model, cv_r2) = fit_grouped(x_train, &v_train, &groups, alphas, folds)?;
    let decoded = model.predict(x_test.as_ref())?;
    write_matrix(&out.join(DECODED_FILE), &decoded)?;
    write_matrix(&out.join(TRUTH_FILE), &v_test)?;
    model.save(out.join("models").join("motion"))?;
    Ok(score(&decoded, &v_test, cv_r2))
}

fn column(m: &Mat<f32>, c: usize) -> Vec<f32> {
    (0..m.nrows()).map(|r| m[(r, c)]).collect()
}

/// Correlations and direction agreement of decoded against measured velocities (n, 2).
fn score(decoded: &Mat<f32>, truth: &Mat<f32>, cv_r2: f64) -> MotionFit {
    let r = |c| pearson(&column(decoded, c), &column(truth, c)).unwrap_or(f64::NAN);
    let direction = |m: &Mat<f32>, i| read_direction_of([m[(i, 0)], m[(i, 1)]]);
    let n = truth.nrows();
    let agree = (0..n)
        .filter(|&i| direction(decoded, i) == direction(truth, i))
        .count();
    let mut counts = std::collections::HashMap::new();
    for i in 0..n {
        *counts.entry(direction(truth, i)).or_insert(0usize) += 1;
    }
    // Summed in a fixed order: a map's iteration order changes from run to run, and with it
    // the last bit of the sum.
    let mut per_direction: Vec<usize> = counts.into_values().collect();
    per_direction.sort_unstable();
    let chance = per_direction
        .iter()
        .map(|&k| (k as f64 / n.max(1) as f64).powi(2))
        .sum();
    MotionFit {
        cv_r2,
        correlation: [r(0), r(1)],
        direction_agreement: agree as f64 / n.max(1) as f64,
        direction_chance: chance,
    }
}

/// The decoded velocity of each of the `n_test` test samples, if `video fit` decoded motion.
pub(crate) fn read_decoded(dir: &Path, n_test: usize) -> Result<Option<Vec<[f32; 2]>>> {
    let path = dir.join(DECODED_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let m = brainrecon_formats::npy::read_f32(&path)?;
    let (n, w) = m.as_matrix(&path)?;
    if (n, w) != (n_test, 2) {
        return Err(RouteError::mismatch(
            &path,
            "shape",
            format!("({n_test}, 2): vx, vy of each test sample"),
            format!("({n}, {w})"),
        ));
    }
    Ok(Some(m.data.chunks_exact(2).map(|v| [v[0], v[1]]).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_counts_directions_and_chance_follows_their_shares() {
        // right, right, still, up
        let truth = Mat::from_fn(4, 2, |r, c| {
            [[0.04, 0.0], [0.03, 0.0], [0.0, 0.0], [0.0, -0.04]][r][c]
        });
        let decoded = Mat::from_fn(4, 2, |r, c| {
            [[0.02, 0.005], [-0.02, 0.0], [0.002, 0.0], [0.0, -0.03]][r][c]
        });
        let s = score(&decoded, &truth, 0.1);
        assert_eq!(s.direction_agreement, 0.75);
        assert!((s.direction_chance - (0.25 + 0.0625 + 0.0625)).abs() < 1e-12);
        assert!(s.correlation[0] > 0.0 && s.correlation[1] > 0.9);
    }
}
