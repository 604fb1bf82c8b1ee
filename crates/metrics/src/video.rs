//! Video reconstruction metrics as MinD-Video computes them (Chen, Qing & Zhou, NeurIPS 2023;
//! `src/MindVideo/utils/eval_metrics.py` and `scripts/eval_all.py` of jqin4749/MindVideo at
//! 5097206).
//!
//! **N-way top-k classification** (`n_way_top_k_acc`). A classifier is run on the ground truth
//! and on the reconstruction. The ground truth's `class_id` is its top 3 classes
//! (`logits.argsort()[-3:]`); the reconstruction's scores are its softmax probabilities. In each
//! of `num_trials` trials, `n_way − 1` classes are drawn without replacement from the classes
//! outside those 3 (`np.random.choice(pick_range, n_way − 1, replace=False)`); the trial succeeds
//! when for some ground-truth class `g` the candidate list `[p[g], p[picked]…]` puts `p[g]`
//! among its `top_k` largest (`argsort(descending=False)[-top_k:]` contains 0). The score of a
//! sample is successes / trials; MinD-Video averages it over samples and also returns
//! `sqrt(acc (1 − acc) / trials)` per sample. MinD-Video runs `top_k = 1`, 100 trials:
//!
//! - 2-way-I and 50-way-I: ViT-B/16 (`google/vit-base-patch16-224`, ImageNet-1k) on each frame;
//!   `eval_all.py` scores frame index `i` over all clips and logs one number per index, so the
//!   reported value is the mean over clips and frames.
//! - 2-way-V and 50-way-V: VideoMAE-base fine-tuned on Kinetics-400
//!   (`MCG-NJU/videomae-base-finetuned-kinetics`, loaded with `num_frames = 6`) on each clip.
//!
//! Only the order of the reconstruction's scores matters and softmax keeps order, so the
//! functions here take logits (or probabilities) for both sides. Ties count against the ground
//! truth, as a stable ascending argsort places index 0 before equal scores; in MinD-Video's
//! float16 softmax, probabilities that underflow to 0 tie this way. This is the project's one
//! rule ([`crate::rank`]); a non-finite logit or score on either side is refused.
//!
//! **Chance.** The field quotes chance as 1/n. With three ground-truth classes competing against
//! `n − 1` drawn ones, an uninformative reconstruction (scores exchangeable across classes)
//! succeeds with probability 3/(n + 2) at top-1 (0.75 for 2-way, 0.058 for 50-way):
//! [`NWayClassification::chance`] gives that value, [`NWayClassification::nominal_chance`] the
//! quoted 1/n.
//!
//! **Randomness.** MinD-Video draws from numpy's global generator; here every sample has its own
//! ChaCha8 stream (`seed`, stream = sample index), so a score does not depend on the order or
//! subset in which samples are scored.
//!
//! **SSIM and PSNR** per frame on 8-bit RGB at 256² (the clips MinD-Video writes):
//! [`ssim_u8`] is scikit-image's `structural_similarity(a, b, data_range=255, channel_axis=-1)`
//! with its defaults (7×7 uniform window, sample covariance, K1 = 0.01, K2 = 0.03, mean over
//! the three channels) on the pixels as float64; [`psnr_u8`] is
//! `peak_signal_noise_ratio(a, b, data_range=255)`. MinD-Video reports SSIM only; PSNR follows
//! the later papers (Mind-Animator, NeuroClips) that report both per frame.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{check_len, shape_len, MetricsError, Result};
use crate::image::reflect_index;
use crate::rank::{at_least_as_good, beats, require_finite};

/// The settings of [`n_way_top_k`]; [`NWayClassification::mindvideo`] gives MinD-Video's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NWayClassification {
    /// Candidates per trial: one ground-truth class against `n_way − 1` drawn classes.
    pub n_way: usize,
    /// Success when a ground-truth class ranks within the `top_k` best candidates.
    pub top_k: usize,
    /// Trials per sample (MinD-Video: 100).
    pub trials: usize,
    /// How many of the ground truth's best classes count as its classes (MinD-Video: 3).
    pub ground_truth_classes: usize,
    /// Seed of the per-sample ChaCha8 streams.
    pub seed: u64,
}

impl NWayClassification {
    /// MinD-Video's protocol: top-1, 100 trials, the ground truth's top 3 classes.
    pub fn mindvideo(n_way: usize, seed: u64) -> Self {
        NWayClassification {
            n_way,
            top_k: 1,
            trials: 100,
            ground_truth_classes: 3,
            seed,
        }
    }

    /// The chance level the field quotes, `top_k / n_way`.
    pub fn nominal_chance(&self) -> f64 {
        self.top_k as f64 / self.n_way as f64
    }

    /// The success probability of an uninformative reconstruction, whose scores are
    /// exchangeable across classes: the best of `g` ground-truth classes has fewer than `top_k`
    /// of the `m = n_way − 1` drawn classes above it. With `j` drawn classes above the best one,
    /// P(j) = C(m + g − 1 − j, g − 1) / C(m + g, g); at top-1 this is g / (n_way − 1 + g).
    pub fn chance(&self) -> f64 {
        let (m, g) = (self.n_way.saturating_sub(1), self.ground_truth_classes);
        if g == 0 {
            return 0.0;
        }
        let total = binomial(m + g, g);
        (0..self.top_k.min(m + 1))
            .map(|j| binomial(m + g - 1 - j, g - 1) / total)
            .sum::<f64>()
            .min(1.0)
    }

    fn validate(&self, classes: usize) -> Result<()> {
        if self.n_way < 2 || self.top_k == 0 || self.top_k >= self.n_way {
            return Err(MetricsError::InvalidArgument(format!(
                "n-way classification needs n_way >= 2 and 1 <= top_k < n_way, got n_way {} \
                 and top_k {}",
                self.n_way, self.top_k
            )));
        }
        if self.trials == 0 || self.ground_truth_classes == 0 {
            return Err(MetricsError::InvalidArgument(
                "n-way classification needs at least one trial and one ground-truth class".into(),
            ));
        }
        if self.ground_truth_classes + self.n_way - 1 > classes {
            return Err(MetricsError::InvalidArgument(format!(
                "{}-way classification with {} ground-truth classes needs at least {} classes, \
                 the classifier has {classes}",
                self.n_way,
                self.ground_truth_classes,
                self.ground_truth_classes + self.n_way - 1
            )));
        }
        Ok(())
    }
}

/// `C(n, k)` in f64 (exact for the small arguments used here).
fn binomial(n: usize, k: usize) -> f64 {
    if k > n {
        return 0.0;
    }
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// The result of an n-way classification score.
#[derive(Debug, Clone, PartialEq)]
pub struct NWayScore {
    /// Mean of [`NWayScore::per_sample`].
    pub mean: f64,
    /// Successes / trials of each sample, (samples,).
    pub per_sample: Vec<f64>,
    /// MinD-Video's `sqrt(acc (1 − acc) / trials)` of each sample, (samples,).
    pub per_sample_std: Vec<f64>,
    /// The exchangeable-scores chance level, [`NWayClassification::chance`].
    pub chance: f64,
    /// The quoted chance level `top_k / n_way`.
    pub nominal_chance: f64,
}

/// The ground truth's `g` best classes, as `argsort(ascending)[-g:]`: ascending by logit.
/// NaN sorts as the smallest value so that a NaN logit is never a ground-truth class.
pub fn top_classes(logits: &[f32], g: usize) -> Vec<usize> {
    let key = |v: f32| if v.is_nan() { f32::NEG_INFINITY } else { v };
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| key(logits[a]).total_cmp(&key(logits[b])));
    order[logits.len().saturating_sub(g)..].to_vec()
}

/// Whether a trial succeeds: some ground-truth class has fewer than `top_k` of the drawn
/// classes scoring at least as high (ties and NaN count against it: [`crate::rank`]).
pub fn trial_succeeds(scores: &[f32], truth: &[usize], drawn: &[usize], top_k: usize) -> bool {
    truth
        .iter()
        .any(|&g| at_least_as_good(scores[g], drawn.iter().map(|&j| scores[j])) < top_k)
}

/// One sample of MinD-Video's `n_way_top_k_acc`: successes / trials. `truth_logits` and
/// `pred_scores` are (classes,); `rng` draws the `n_way − 1` classes of each trial.
fn one_sample(
    truth_logits: &[f32],
    pred_scores: &[f32],
    settings: &NWayClassification,
    rng: &mut ChaCha8Rng,
) -> f64 {
    let truth = top_classes(truth_logits, settings.ground_truth_classes);
    let mut is_truth = vec![false; truth_logits.len()];
    for &g in &truth {
        is_truth[g] = true;
    }
    let pick_range: Vec<usize> = (0..truth_logits.len()).filter(|&c| !is_truth[c]).collect();
    let mut drawn = Vec::with_capacity(settings.n_way - 1);
    let successes = (0..settings.trials)
        .filter(|_| {
            drawn.clear();
            drawn.extend(
                rand::seq::index::sample(rng, pick_range.len(), settings.n_way - 1)
                    .iter()
                    .map(|k| pick_range[k]),
            );
            trial_succeeds(pred_scores, &truth, &drawn, settings.top_k)
        })
        .count();
    successes as f64 / settings.trials as f64
}

/// Both score tables must be (samples, classes) and finite.
fn check_score_shapes(
    truth_logits: &[f32],
    pred_scores: &[f32],
    samples: usize,
    classes: usize,
) -> Result<()> {
    let len = shape_len("class scores", &[samples, classes])?;
    check_len(
        "ground-truth logits (samples*classes)",
        len,
        truth_logits.len(),
    )?;
    check_len(
        "reconstruction scores (samples*classes)",
        len,
        pred_scores.len(),
    )?;
    require_finite(
        "ground-truth logits (samples, classes)",
        truth_logits,
        classes,
    )?;
    require_finite(
        "reconstruction scores (samples, classes)",
        pred_scores,
        classes,
    )
}

/// N-way top-k classification accuracy, MinD-Video's rule (see the module documentation).
///
/// Shapes: `truth_logits` and `pred_scores` are (samples, classes), row-major; the predicted
/// side may be logits or probabilities. Sample `i` draws from ChaCha8 seeded with `seed`,
/// stream `i`. Errors: shapes, settings, a non-finite value on either side
/// ([`MetricsError::NonFinite`], its row the sample).
pub fn n_way_top_k(
    truth_logits: &[f32],
    pred_scores: &[f32],
    samples: usize,
    classes: usize,
    settings: &NWayClassification,
) -> Result<NWayScore> {
    check_score_shapes(truth_logits, pred_scores, samples, classes)?;
    if samples == 0 {
        return Err(MetricsError::Empty {
            what: "sample set",
            need: "at least one ground-truth/reconstruction pair is required",
        });
    }
    settings.validate(classes)?;
    let per_sample: Vec<f64> = (0..samples)
        .map(|i| {
            let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
            rng.set_stream(i as u64);
            let row = i * classes..(i + 1) * classes;
            one_sample(
                &truth_logits[row.clone()],
                &pred_scores[row],
                settings,
                &mut rng,
            )
        })
        .collect();
    let trials = settings.trials as f64;
    let per_sample_std = per_sample
        .iter()
        .map(|&a| (a * (1.0 - a) / trials).sqrt())
        .collect();
    Ok(NWayScore {
        mean: per_sample.iter().sum::<f64>() / samples as f64,
        per_sample,
        per_sample_std,
        chance: settings.chance(),
        nominal_chance: settings.nominal_chance(),
    })
}

/// The exact expectation of [`n_way_top_k`]'s per-sample score at top-1 (its limit as the
/// trials grow), with no sampling: a trial fails when it draws one of the `b` outside classes
/// that score at least as high as the best ground-truth class, so the score is
/// `C(R − b, n − 1) / C(R, n − 1)` with `R = classes − ground_truth_classes`. Shapes as
/// [`n_way_top_k`]; returns (samples,).
pub fn n_way_top1_expected(
    truth_logits: &[f32],
    pred_scores: &[f32],
    samples: usize,
    classes: usize,
    settings: &NWayClassification,
) -> Result<Vec<f64>> {
    check_score_shapes(truth_logits, pred_scores, samples, classes)?;
    settings.validate(classes)?;
    if settings.top_k != 1 {
        return Err(MetricsError::InvalidArgument(format!(
            "the exact expectation is for top-1, got top_k {}",
            settings.top_k
        )));
    }
    let pool = classes - settings.ground_truth_classes;
    let draws = settings.n_way - 1;
    Ok((0..samples)
        .map(|i| {
            let row = i * classes..(i + 1) * classes;
            let (truth, pred) = (&truth_logits[row.clone()], &pred_scores[row]);
            let best = top_classes(truth, settings.ground_truth_classes);
            let best_score = best
                .iter()
                .map(|&g| pred[g])
                .fold(f32::NEG_INFINITY, |a, b| if b > a { b } else { a });
            let above = (0..classes)
                .filter(|c| !best.contains(c) && !beats(best_score, pred[*c]))
                .count();
            binomial(pool - above, draws) / binomial(pool, draws)
        })
        .collect())
}

/// Top-1 with MinD-Video's settings (3 ground-truth classes, `trials` trials).
pub fn n_way_top1(
    truth_logits: &[f32],
    pred_scores: &[f32],
    samples: usize,
    classes: usize,
    n_way: usize,
    trials: usize,
    seed: u64,
) -> Result<NWayScore> {
    let settings = NWayClassification {
        trials,
        ..NWayClassification::mindvideo(n_way, seed)
    };
    n_way_top_k(truth_logits, pred_scores, samples, classes, &settings)
}

/// 2-way-I: an image classifier's logits per frame, (clips, frames, classes) on each side;
/// one sample per frame (100 trials, seeded), the mean over clips and frames.
pub fn two_way_image(
    truth_logits: &[f32],
    pred_logits: &[f32],
    clips: usize,
    frames: usize,
    classes: usize,
    seed: u64,
) -> Result<NWayScore> {
    let samples = clips.checked_mul(frames).ok_or_else(|| {
        MetricsError::InvalidArgument(format!("{clips} clips × {frames} frames overflows"))
    })?;
    n_way_top1(truth_logits, pred_logits, samples, classes, 2, 100, seed)
}

/// 2-way-V: a video classifier's logits per clip, (clips, classes) on each side.
pub fn two_way_video(
    truth_logits: &[f32],
    pred_logits: &[f32],
    clips: usize,
    classes: usize,
    seed: u64,
) -> Result<NWayScore> {
    n_way_top1(truth_logits, pred_logits, clips, classes, 2, 100, seed)
}

/// 50-way-V: a video classifier's logits per clip, (clips, classes) on each side.
pub fn fifty_way_video(
    truth_logits: &[f32],
    pred_logits: &[f32],
    clips: usize,
    classes: usize,
    seed: u64,
) -> Result<NWayScore> {
    n_way_top1(truth_logits, pred_logits, clips, classes, 50, 100, seed)
}

// ---------------------------------------------------------------------------------------------
// SSIM and PSNR of 8-bit frames
// ---------------------------------------------------------------------------------------------

/// scikit-image's default SSIM window (uniform, 7 × 7).
pub const SSIM_WIN: usize = 7;

/// `scipy.ndimage.uniform_filter(x, size)` along one axis with mode 'reflect': the mean of
/// `size` samples starting `size / 2` before each one. `stride` and `len` describe the axis,
/// `lines` the starting offsets of the lines along it.
fn box_filter_axis(x: &[f64], len: usize, stride: usize, lines: &[usize], size: usize) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    let before = (size / 2) as isize;
    for &start in lines {
        for i in 0..len {
            let sum: f64 = (0..size as isize)
                .map(|k| x[start + reflect_index(i as isize + k - before, len) * stride])
                .sum();
            out[start + i * stride] = sum / size as f64;
        }
    }
    out
}

/// `uniform_filter(img, size)` on an (h, w) image.
fn uniform_filter(img: &[f64], h: usize, w: usize, size: usize) -> Vec<f64> {
    let rows: Vec<usize> = (0..h).map(|y| y * w).collect();
    let along_x = box_filter_axis(img, w, 1, &rows, size);
    let cols: Vec<usize> = (0..w).collect();
    box_filter_axis(&along_x, h, w, &cols, size)
}

/// scikit-image's default SSIM of two single-channel float64 images (h, w): 7 × 7 uniform
/// window, sample covariance (× 49/48), `data_range`, mean over the pixels at least 3 from
/// the border.
pub fn ssim_uniform_f64(a: &[f64], b: &[f64], h: usize, w: usize, data_range: f64) -> Result<f64> {
    let len = shape_len("frame channel", &[h, w])?;
    check_len("first frame channel (h*w)", len, a.len())?;
    check_len("second frame channel (h*w)", len, b.len())?;
    if h < SSIM_WIN || w < SSIM_WIN {
        return Err(MetricsError::ImageTooSmall {
            h,
            w,
            win: SSIM_WIN,
        });
    }
    let np = (SSIM_WIN * SSIM_WIN) as f64;
    let cov_norm = np / (np - 1.0);
    let filter = |x: &[f64]| uniform_filter(x, h, w, SSIM_WIN);
    let product =
        |x: &[f64], y: &[f64]| -> Vec<f64> { x.iter().zip(y).map(|(p, q)| p * q).collect() };
    let (ux, uy) = (filter(a), filter(b));
    let (uxx, uyy, uxy) = (
        filter(&product(a, a)),
        filter(&product(b, b)),
        filter(&product(a, b)),
    );
    let (c1, c2) = ((0.01 * data_range).powi(2), (0.03 * data_range).powi(2));
    let pad = (SSIM_WIN - 1) / 2;
    let mut sum = 0.0;
    for y in pad..h - pad {
        for x in pad..w - pad {
            let i = y * w + x;
            let vx = cov_norm * (uxx[i] - ux[i] * ux[i]);
            let vy = cov_norm * (uyy[i] - uy[i] * uy[i]);
            let vxy = cov_norm * (uxy[i] - ux[i] * uy[i]);
            let a1 = 2.0 * ux[i] * uy[i] + c1;
            let a2 = 2.0 * vxy + c2;
            let b1 = ux[i] * ux[i] + uy[i] * uy[i] + c1;
            let b2 = vx + vy + c2;
            sum += (a1 * a2) / (b1 * b2);
        }
    }
    Ok(sum / ((h - 2 * pad) * (w - 2 * pad)) as f64)
}

/// MinD-Video's `ssim_metric`: `structural_similarity(a, b, data_range=255, channel_axis=-1)` of
/// two 8-bit RGB frames (h, w, 3), the mean of the three channels' SSIM.
pub fn ssim_u8(a: &[u8], b: &[u8], h: usize, w: usize) -> Result<f64> {
    let len = shape_len("RGB frame", &[h, w, 3])?;
    check_len("first RGB frame (h*w*3)", len, a.len())?;
    check_len("second RGB frame (h*w*3)", len, b.len())?;
    let channel = |x: &[u8], c: usize| -> Vec<f64> {
        x.iter().skip(c).step_by(3).map(|&v| f64::from(v)).collect()
    };
    let mut total = 0.0;
    for c in 0..3 {
        total += ssim_uniform_f64(&channel(a, c), &channel(b, c), h, w, 255.0)?;
    }
    Ok(total / 3.0)
}

/// `peak_signal_noise_ratio(a, b, data_range=255)` of two 8-bit frames of any layout (same
/// length): `10 log10(255² / MSE)`, the MSE in float64; +∞ for identical frames.
pub fn psnr_u8(a: &[u8], b: &[u8]) -> Result<f64> {
    check_len("second frame (same size as the first)", a.len(), b.len())?;
    if a.is_empty() {
        return Err(MetricsError::Empty {
            what: "frame",
            need: "PSNR needs at least one pixel",
        });
    }
    let mse = a
        .iter()
        .zip(b)
        .map(|(&p, &q)| (f64::from(p) - f64::from(q)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    Ok(10.0 * (255.0f64 * 255.0 / mse).log10())
}

/// A per-frame score over clips.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameScores {
    /// One value per frame, (clips, frames) row-major.
    pub per_frame: Vec<f64>,
    /// The mean over clips of each frame index, (frames,): what `eval_all.py` logs.
    pub per_frame_index: Vec<f64>,
    /// The mean over all frames of all clips.
    pub mean: f64,
    /// The population standard deviation over all frames (numpy's `np.std`).
    pub std: f64,
}

impl FrameScores {
    fn from_values(per_frame: Vec<f64>, clips: usize, frames: usize) -> Self {
        let n = per_frame.len() as f64;
        let mean = per_frame.iter().sum::<f64>() / n;
        let std = (per_frame.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        let per_frame_index = (0..frames)
            .map(|f| (0..clips).map(|c| per_frame[c * frames + f]).sum::<f64>() / clips as f64)
            .collect();
        FrameScores {
            per_frame,
            per_frame_index,
            mean,
            std,
        }
    }
}

/// Applies `score` to every frame pair of (clips, frames, h, w, 3) 8-bit clips.
fn per_frame(
    truth: &[u8],
    pred: &[u8],
    (clips, frames, h, w): (usize, usize, usize, usize),
    score: impl Fn(&[u8], &[u8]) -> Result<f64>,
) -> Result<FrameScores> {
    let frame = shape_len("RGB frame", &[h, w, 3])?;
    let len = shape_len("clips", &[clips, frames, frame])?;
    check_len("ground-truth clips (clips*frames*h*w*3)", len, truth.len())?;
    check_len("reconstructed clips (clips*frames*h*w*3)", len, pred.len())?;
    if clips == 0 || frames == 0 {
        return Err(MetricsError::Empty {
            what: "clip set",
            need: "at least one clip of one frame is required",
        });
    }
    let values = truth
        .chunks_exact(frame)
        .zip(pred.chunks_exact(frame))
        .map(|(t, p)| score(t, p))
        .collect::<Result<Vec<f64>>>()?;
    Ok(FrameScores::from_values(values, clips, frames))
}

/// SSIM per frame ([`ssim_u8`]) of (clips, frames, h, w, 3) 8-bit clips, MinD-Video's
/// `ssim_score_only` over every frame index.
pub fn ssim_clips(
    truth: &[u8],
    pred: &[u8],
    clips: usize,
    frames: usize,
    h: usize,
    w: usize,
) -> Result<FrameScores> {
    per_frame(truth, pred, (clips, frames, h, w), |t, p| {
        ssim_u8(p, t, h, w)
    })
}

/// PSNR per frame ([`psnr_u8`]) of (clips, frames, h, w, 3) 8-bit clips. Identical frames give
/// +∞ and make the mean +∞, as numpy would.
pub fn psnr_clips(
    truth: &[u8],
    pred: &[u8],
    clips: usize,
    frames: usize,
    h: usize,
    w: usize,
) -> Result<FrameScores> {
    per_frame(truth, pred, (clips, frames, h, w), psnr_u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(n_way: usize, trials: usize) -> NWayClassification {
        NWayClassification {
            trials,
            ..NWayClassification::mindvideo(n_way, 7)
        }
    }

    #[test]
    fn top_classes_are_the_three_largest_ascending() {
        assert_eq!(
            top_classes(&[0.1, 5.0, -1.0, 3.0, 4.0, f32::NAN], 3),
            vec![3, 4, 1]
        );
    }

    #[test]
    fn hand_examples_of_one_trial() {
        // classes 0..6; ground truth classes {4, 5}.
        let scores = [0.1, 0.9, 0.3, 0.2, 0.5, 0.05];
        // class 4 (0.5) beats 0 and 3; class 5 beats nothing.
        assert!(trial_succeeds(&scores, &[5, 4], &[0, 3], 1));
        // 1 (0.9) beats both ground-truth classes.
        assert!(!trial_succeeds(&scores, &[5, 4], &[1, 3], 1));
        // top-2: class 4 has one drawn class (1) above it.
        assert!(trial_succeeds(&scores, &[5, 4], &[1, 3], 2));
        // ties count against the ground truth.
        assert!(!trial_succeeds(&[0.5, 0.5], &[0], &[1], 1));
    }

    #[test]
    fn a_reconstruction_ranking_its_truth_first_always_succeeds() {
        let classes = 60;
        let truth: Vec<f32> = (0..classes).map(|c| ((c * 37) % 60) as f32).collect();
        // the reconstruction agrees on the best class only; every other score is random-ish.
        let best = top_classes(&truth, 1)[0];
        let pred: Vec<f32> = (0..classes)
            .map(|c| {
                if c == best {
                    10.0
                } else {
                    ((c * 13) % 7) as f32
                }
            })
            .collect();
        for n_way in [2, 50] {
            let s = n_way_top_k(&truth, &pred, 1, classes, &settings(n_way, 100)).unwrap();
            assert_eq!(s.mean, 1.0);
            assert_eq!(s.per_sample_std, vec![0.0]);
        }
    }

    #[test]
    fn a_reconstruction_ranking_its_truth_last_never_succeeds() {
        let classes = 20;
        let truth: Vec<f32> = (0..classes).map(|c| c as f32).collect();
        let pred: Vec<f32> = (0..classes).map(|c| -(c as f32)).collect();
        // the truth's classes 17, 18, 19 score lowest in the reconstruction
        let s = n_way_top_k(&truth, &pred, 1, classes, &settings(2, 50)).unwrap();
        assert_eq!(s.mean, 0.0);
    }

    #[test]
    fn uninformative_reconstructions_score_the_exchangeable_chance() {
        // Pred scores are a fixed permutation unrelated to the truth; over many samples with
        // different truths the success rate approaches g / (n − 1 + g).
        use rand::seq::SliceRandom;
        let (classes, samples) = (100, 400);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut truth = Vec::new();
        let mut pred = Vec::new();
        for _ in 0..samples {
            let mut t: Vec<f32> = (0..classes).map(|c| c as f32).collect();
            t.shuffle(&mut rng);
            let mut p: Vec<f32> = (0..classes).map(|c| c as f32).collect();
            p.shuffle(&mut rng);
            truth.extend(t);
            pred.extend(p);
        }
        for (n_way, top_k) in [(2, 1), (50, 1), (10, 3)] {
            let s = NWayClassification {
                top_k,
                ..settings(n_way, 100)
            };
            let score = n_way_top_k(&truth, &pred, samples, classes, &s).unwrap();
            let sd = (score.chance * (1.0 - score.chance) / (samples * 100) as f64).sqrt();
            assert!(
                (score.mean - score.chance).abs() < 5.0 * sd + 0.01,
                "{n_way}-way top-{top_k}: {} vs chance {}",
                score.mean,
                score.chance
            );
        }
        assert!((settings(2, 1).chance() - 0.75).abs() < 1e-12);
        assert!((settings(50, 1).chance() - 3.0 / 52.0).abs() < 1e-12);
        assert_eq!(settings(50, 1).nominal_chance(), 0.02);
    }

    #[test]
    fn per_sample_streams_make_scores_independent_of_the_batch() {
        let classes = 30;
        let truth: Vec<f32> = (0..3 * classes)
            .map(|k| ((k * 7919) % 101) as f32)
            .collect();
        let pred: Vec<f32> = (0..3 * classes)
            .map(|k| ((k * 104_729) % 97) as f32)
            .collect();
        let s = settings(5, 100);
        let all = n_way_top_k(&truth, &pred, 3, classes, &s).unwrap();
        let first = n_way_top_k(&truth[..classes], &pred[..classes], 1, classes, &s).unwrap();
        assert_eq!(all.per_sample[0], first.per_sample[0]);
        let again = n_way_top_k(&truth, &pred, 3, classes, &s).unwrap();
        assert_eq!(all, again);
    }

    #[test]
    fn the_expectation_is_the_share_of_draws_that_succeed() {
        // 8 classes, truth's top 3 = {5, 6, 7}; pred: class 6 scores 0.6, classes 0 and 1 above.
        let truth: Vec<f32> = (0..8).map(|c| c as f32).collect();
        let pred = [0.9f32, 0.7, 0.1, 0.2, 0.3, 0.05, 0.6, 0.0];
        // 2-way: 5 outside classes, 2 of them beat 0.6 → 3/5.
        let s = settings(2, 1);
        assert_eq!(
            n_way_top1_expected(&truth, &pred, 1, 8, &s).unwrap(),
            vec![0.6]
        );
        // 3-way: C(3, 2) / C(5, 2) = 3/10; brute force over all pairs of drawn classes.
        let s3 = settings(3, 1);
        let pool = [0usize, 1, 2, 3, 4];
        let mut ok = 0;
        let mut all = 0;
        for a in 0..5 {
            for b in a + 1..5 {
                all += 1;
                ok += trial_succeeds(&pred, &[5, 6, 7], &[pool[a], pool[b]], 1) as usize;
            }
        }
        let e = n_way_top1_expected(&truth, &pred, 1, 8, &s3).unwrap()[0];
        assert!((e - ok as f64 / all as f64).abs() < 1e-12 && (e - 0.3).abs() < 1e-12);
    }

    #[test]
    fn non_finite_scores_are_refused_and_constant_ones_score_at_most_chance() {
        let classes = 12;
        let truth: Vec<f32> = (0..2 * classes).map(|c| ((c * 5) % 12) as f32).collect();
        let mut pred = truth.clone();
        assert_eq!(
            n_way_top_k(&truth, &pred, 2, classes, &settings(2, 20))
                .unwrap()
                .mean,
            1.0,
            "a perfect reconstruction"
        );
        pred[classes + 4] = f32::NAN;
        let err = n_way_top_k(&truth, &pred, 2, classes, &settings(2, 20)).unwrap_err();
        assert!(
            matches!(
                err,
                MetricsError::NonFinite {
                    row: 1,
                    column: 4,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(n_way_top1_expected(&truth, &pred, 2, classes, &settings(2, 1)).is_err());
        let mut bad_truth = truth.clone();
        bad_truth[0] = f32::NEG_INFINITY;
        assert!(n_way_top_k(&bad_truth, &truth, 2, classes, &settings(2, 20)).is_err());
        for constant in [0.0f32, 0.25] {
            let flat = vec![constant; 2 * classes];
            for n_way in [2, 5] {
                let s = settings(n_way, 50);
                let score = n_way_top_k(&truth, &flat, 2, classes, &s).unwrap();
                assert!(score.mean <= score.nominal_chance, "{n_way}-way: {score:?}");
                let e = n_way_top1_expected(&truth, &flat, 2, classes, &s).unwrap();
                assert!(e.iter().all(|&v| v <= s.nominal_chance()), "{e:?}");
            }
        }
    }

    #[test]
    fn bad_settings_and_shapes_are_errors() {
        let x = vec![0.0f32; 10];
        assert!(n_way_top_k(&x, &x, 1, 10, &settings(9, 10)).is_err()); // 3 + 8 > 10
        assert!(n_way_top_k(&x, &x, 1, 10, &settings(8, 10)).is_ok());
        assert!(n_way_top_k(&x, &x[..9], 1, 10, &settings(2, 10)).is_err());
        assert!(n_way_top_k(&x, &x, 1, 10, &settings(2, 0)).is_err());
        assert!(n_way_top_k(&[], &[], 0, 10, &settings(2, 10)).is_err());
    }

    #[test]
    fn ssim_and_psnr_hand_values() {
        let (h, w) = (8, 9);
        let a: Vec<u8> = (0..h * w * 3).map(|k| (k * 7 % 251) as u8).collect();
        assert!((ssim_u8(&a, &a, h, w).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(psnr_u8(&a, &a).unwrap(), f64::INFINITY);
        // every value off by 5: MSE 25
        let b: Vec<u8> = a.iter().map(|&v| v.saturating_add(5)).collect();
        let off: Vec<u8> = a
            .iter()
            .map(|&v| if v <= 250 { v + 5 } else { v - 5 })
            .collect();
        assert!(
            (psnr_u8(&a, &off).unwrap() - 10.0 * (255.0f64.powi(2) / 25.0).log10()).abs() < 1e-12
        );
        // a (nearly) uniform brightness shift keeps SSIM just below 1
        let s = ssim_u8(&a, &b, h, w).unwrap();
        assert!(s < 1.0 && s > 0.9, "{s}");
        assert!(matches!(
            ssim_u8(&a[..6 * 6 * 3], &a[..6 * 6 * 3], 6, 6),
            Err(MetricsError::ImageTooSmall { .. })
        ));
    }

    #[test]
    fn uniform_filter_reflects_at_the_border() {
        // scipy: uniform_filter1d([1, 2, 3, 4], 3, mode='reflect') = [4/3, 2, 3, 11/3]
        let out = uniform_filter(&[1.0, 2.0, 3.0, 4.0], 1, 4, 3);
        let want = [4.0 / 3.0, 2.0, 3.0, 11.0 / 3.0];
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-12, "{out:?}");
        }
    }
}
