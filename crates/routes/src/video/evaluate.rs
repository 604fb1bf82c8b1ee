//! `video eval`: reconstructed clips against the stimulus clips, by MinD-Video's protocol.
//!
//! - **N-way top-1** (metrics::video, MinD-Video's rule: the ground truth's top 3 classes, 100
//!   trials, chance printed beside every number). The classes come from a classifier of the
//!   clips. On the synthetic subject that is the clip reading rule
//!   (brainrecon_simulate::classify_clip): 120 classes (colour × shape × motion), each attribute the
//!   rule reads scored 0.7 and the others sharing 0.3 (an attribute it cannot read: uniform), a
//!   class scored by the product. On CC2017 the classifiers are ViT-B/16 per frame (2-way-I)
//!   and VideoMAE per clip (2-way-V, 50-way-V), given their weights.
//! - **Motion direction, colour and shape** read by the rule, reconstruction against stimulus
//!   (synthetic subject), with their chance levels.
//! - **SSIM and PSNR** per frame (scikit-image's defaults, data range 255) at the stimulus
//!   frame size, or at `--size` (MinD-Video: 256²).
//! - The same **per test segment and per position in it** (`breakdown`).
//!
//! ```text
//! <out>/video_eval.json   VideoEvalSummary (means, chance levels, per-clip rows)
//! ```

use super::breakdown::{breakdown, GroupScores};
use super::classifiers::VideoClassifiers;
use super::reconstruct::{clip_stem, ReconstructSummary, SUMMARY as RECONSTRUCT_SUMMARY};
use super::stimuli::{StimulusClips, StimulusTr};
use crate::error::Result;
use brainrecon_core::fs::{read_json, write_json_atomic};
use brainrecon_formats::cifti::cc2017::Split;
use brainrecon_formats::image::RgbImage;
use brainrecon_formats::video;
use brainrecon_metrics::video::{
    fifty_way_video, n_way_top1, psnr_u8, ssim_u8, two_way_image, two_way_video, NWayScore,
};
use brainrecon_simulate::classify_clip::{nearest_direction, read_clip, ClipReading};
use brainrecon_simulate::scene::{COLOURS, SHAPES};
use brainrecon_simulate::video::Direction;
use std::path::PathBuf;

/// The evaluation's summary in its folder, [`VideoEvalSummary`].
pub const SUMMARY: &str = "video_eval.json";

/// Below this speed (image widths per frame; 0.64 px at 64 px) the rule reads a clip as still:
/// the simulated clips move at least 0.03.
pub const STILL_SPEED: f32 = 0.01;
/// Score of the value the rule read, per attribute (the rest share 1 − this).
const READ_CONFIDENCE: f32 = 0.7;

/// What `brainrecon video eval` is asked.
#[derive(Debug, Clone)]
pub struct VideoEvalOptions {
    /// `reconstruct --method video`'s folder.
    pub reconstructed: PathBuf,
    /// The dataset's stimuli (`testK.mp4` or frame folders).
    pub stimuli: PathBuf,
    /// The folder to write `video_eval.json` into.
    pub out: PathBuf,
    /// Frame side for SSIM/PSNR (`None`: the stimulus frames' size).
    pub size: Option<usize>,
    /// Seed of the n-way trials' draws.
    pub seed: u64,
}

/// One clip's row.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ClipRow {
    /// The test segment, 1-based.
    pub segment: usize,
    /// The stimulus TR, 0-based.
    pub tr: usize,
    /// What the reading rule sees in the stimulus: colour, shape, motion (`?` where unread).
    pub stimulus_reading: String,
    /// What it sees in the reconstruction.
    pub reconstruction_reading: String,
    /// Whether the reconstruction's motion is the stimulus'.
    pub direction_correct: bool,
    /// Whether its colour is the stimulus'.
    pub colour_correct: bool,
    /// Whether its shape is the stimulus'.
    pub shape_correct: bool,
    /// Mean SSIM over the frames (scikit-image's defaults, data range 255).
    pub ssim: f64,
    /// Mean PSNR over the frames, dB (each frame's capped at 100).
    pub psnr: f64,
    /// Share of the clip's 100 MinD-Video 2-way trials won.
    pub two_way: f64,
    /// The caption `video fit --context words` composed for the window.
    #[serde(default)]
    pub decoded_caption: Option<String>,
}

/// A score with its chance level.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Scored {
    /// The score, a fraction.
    pub value: f64,
    /// Its chance level.
    pub chance: f64,
}

/// `video_eval.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VideoEvalSummary {
    /// Always `brainrecon-video-eval`.
    pub format: String,
    /// The reconstruction folder evaluated.
    pub reconstructed: PathBuf,
    /// Clips scored.
    pub clips: usize,
    /// The classifier behind the n-way numbers.
    pub classifier: String,
    /// MinD-Video's n-way top-1 (its chance: 3 ground-truth classes against n − 1 drawn;
    /// `nominal_chance` is the 1/n the papers quote).
    pub two_way: Scored,
    /// MinD-Video's 50-way top-1.
    pub fifty_way: Option<Scored>,
    /// 1/2, the chance the papers quote for 2-way.
    pub nominal_chance_two_way: f64,
    /// MinD-Video's classifier scores, when their weights were given: 2-way-I (ViT-B/16 per
    /// frame), 2-way-V and 50-way-V (VideoMAE per clip).
    pub two_way_i: Option<Scored>,
    /// 2-way-V (VideoMAE per clip).
    pub two_way_v: Option<Scored>,
    /// 50-way-V (VideoMAE per clip; needs at least 52 classes).
    pub fifty_way_v: Option<Scored>,
    /// Share of clips whose motion direction the rule reads right.
    pub direction: Scored,
    /// Share of clips whose colour it reads right.
    pub colour: Scored,
    /// Share of clips whose shape it reads right.
    pub shape: Scored,
    /// Mean SSIM over clips.
    pub ssim: f64,
    /// Mean PSNR over clips, dB.
    pub psnr: f64,
    /// Frame side (px) SSIM and PSNR were computed at.
    pub frame_size: usize,
    /// The same scores per test segment, per position in the segment (early, middle and late
    /// thirds of its TRs) and per segment × position.
    #[serde(default)]
    pub breakdown: Vec<GroupScores>,
    /// One per clip, in the reconstruction's order.
    pub rows: Vec<ClipRow>,
}

/// Index of the motion the rule reads (`Direction::ALL` order), if it reads a shape.
pub fn read_direction(reading: &ClipReading) -> Option<usize> {
    reading.velocity.and_then(read_direction_of)
}

/// Index of the motion (`Direction::ALL` order) nearest to `velocity` (frame widths per
/// frame): still below STILL_SPEED.
pub fn read_direction_of(velocity: [f32; 2]) -> Option<usize> {
    let vectors: Vec<[f32; 2]> = Direction::ALL.iter().map(|d| d.vector()).collect();
    let still = Direction::ALL.iter().position(|&d| d == Direction::Still);
    nearest_direction(velocity, &vectors, still, STILL_SPEED)
}

/// Scores of one attribute: READ_CONFIDENCE on the value read, the rest shared; uniform when
/// nothing was read.
fn attribute_scores(read: Option<usize>, n: usize) -> Vec<f32> {
    match read {
        Some(v) => (0..n)
            .map(|i| {
                if i == v {
                    READ_CONFIDENCE
                } else {
                    (1.0 - READ_CONFIDENCE) / (n - 1) as f32
                }
            })
            .collect(),
        None => vec![1.0 / n as f32; n],
    }
}

/// The rule's class scores of a clip: (colours · shapes · motions,), colour-major.
pub fn class_scores(reading: &ClipReading) -> Vec<f32> {
    let c = attribute_scores(reading.colour, COLOURS.len());
    let s = attribute_scores(reading.shape, SHAPES.len());
    let d = attribute_scores(read_direction(reading), Direction::ALL.len());
    let mut out = Vec::with_capacity(c.len() * s.len() * d.len());
    for &pc in &c {
        for &ps in &s {
            for &pd in &d {
                out.push(pc * ps * pd);
            }
        }
    }
    out
}

fn describe(reading: &ClipReading) -> String {
    let name =
        |v: Option<usize>, names: &[&str]| v.map_or("?".to_string(), |i| names[i].to_string());
    let motions: Vec<&str> = Direction::ALL.iter().map(|d| d.name()).collect();
    format!(
        "{} {} {}",
        name(reading.colour, &COLOURS.map(|c| c.0)),
        name(reading.shape, &SHAPES),
        name(read_direction(reading), &motions)
    )
}

/// Mean SSIM and PSNR over the frames, both clips at `size`² (area resampling).
fn frame_scores(stimulus: &[RgbImage], recon: &[RgbImage], size: usize) -> Result<(f64, f64)> {
    let (mut ssim, mut psnr) = (0.0, 0.0);
    for (a, b) in stimulus.iter().zip(recon) {
        let (a, b) = (a.resize(size, size), b.resize(size, size));
        ssim += ssim_u8(&a.pixels, &b.pixels, size, size)?;
        psnr += psnr_u8(&a.pixels, &b.pixels)?.min(100.0);
    }
    let n = stimulus.len().min(recon.len()).max(1) as f64;
    Ok((ssim / n, psnr / n))
}

fn share(flags: impl Iterator<Item = bool>) -> f64 {
    let (mut yes, mut n) = (0usize, 0usize);
    for f in flags {
        yes += usize::from(f);
        n += 1;
    }
    yes as f64 / n.max(1) as f64
}

/// Logits of the stimulus and reconstruction clips, as the classifiers give them.
#[derive(Default)]
struct Logits {
    truth: Vec<f32>,
    recon: Vec<f32>,
    classes: usize,
}

impl Logits {
    fn push(&mut self, truth: Option<(Vec<f32>, usize)>, recon: Option<(Vec<f32>, usize)>) {
        if let (Some((t, classes)), Some((r, _))) = (truth, recon) {
            self.truth.extend(t);
            self.recon.extend(r);
            self.classes = classes;
        }
    }
}

/// A non-finite classifier score refused by the metric (brainrecon_metrics::rank), named by the
/// clip it came from: row `r` of the scores is clip `r / per_clip` of `clips` ((segment, TR),
/// the reconstruction's order), frame `r % per_clip` when scored per frame.
fn name_clip(
    error: brainrecon_metrics::MetricsError,
    reconstructed: &std::path::Path,
    clips: &[(usize, usize)],
    per_clip: usize,
    classifier: &str,
) -> crate::error::RouteError {
    use brainrecon_metrics::MetricsError;
    match error {
        MetricsError::NonFinite {
            what, row, value, ..
        } => {
            let per_clip = per_clip.max(1);
            let Some(&(segment, tr)) = clips.get(row / per_clip) else {
                return MetricsError::NonFinite {
                    what,
                    row,
                    column: 0,
                    value,
                }
                .into();
            };
            let frame = match per_clip {
                1 => String::new(),
                _ => format!(", frame {}", row % per_clip),
            };
            crate::error::RouteError::Usage(format!(
                "{}: {classifier} gave {value} among its {what} for this clip{frame}: expected \
                 finite scores (a broken classifier or clip is refused, not scored)",
                clip_stem(reconstructed, segment, tr).display()
            ))
        }
        other => other.into(),
    }
}

fn scored(score: NWayScore) -> Scored {
    Scored {
        value: score.mean,
        chance: score.chance,
    }
}

/// Scores every reconstructed clip (see the module documentation); with `classifiers`, also
/// MinD-Video's 2-way-I, 2-way-V and 50-way-V.
pub fn evaluate(
    opts: &VideoEvalOptions,
    classifiers: &VideoClassifiers,
) -> Result<VideoEvalSummary> {
    let made: ReconstructSummary = read_json(&opts.reconstructed.join(RECONSTRUCT_SUMMARY))?;
    let decoded_captions = super::fit::read_decoded_captions(&made.decoded)?.unwrap_or_default();
    let tr_seconds = made.frames as f64 / made.fps;
    let mut stimuli = StimulusClips::new(&opts.stimuli, tr_seconds, made.frames);
    let (mut rows, mut truth_scores, mut recon_scores) = (Vec::new(), Vec::new(), Vec::new());
    let mut frame_size = 0;
    let (mut frame_logits, mut clip_logits) = (Logits::default(), Logits::default());
    for &(segment, tr) in &made.clips {
        let at = StimulusTr {
            split: Split::Test,
            segment,
            tr,
        };
        let stimulus = stimuli.clip(at)?;
        let stem = clip_stem(&opts.reconstructed, segment, tr);
        let clip = video::open(&stem)?;
        let recon = clip.frames(&(0..clip.info().frames).collect::<Vec<_>>())?;
        frame_size = opts
            .size
            .unwrap_or(stimulus[0].width.min(stimulus[0].height));
        let (ssim, psnr) = frame_scores(&stimulus, &recon, frame_size)?;
        frame_logits.push(
            classifiers.frame_logits(&stimulus)?,
            classifiers.frame_logits(&recon)?,
        );
        clip_logits.push(
            classifiers.clip_logits(&stimulus)?,
            classifiers.clip_logits(&recon)?,
        );
        let (truth, read) = (read_clip(&stimulus), read_clip(&recon));
        truth_scores.extend(class_scores(&truth));
        recon_scores.extend(class_scores(&read));
        rows.push(ClipRow {
            segment,
            tr,
            stimulus_reading: describe(&truth),
            reconstruction_reading: describe(&read),
            direction_correct: read_direction(&truth).is_some()
                && read_direction(&truth) == read_direction(&read),
            colour_correct: truth.colour.is_some() && truth.colour == read.colour,
            shape_correct: truth.shape.is_some() && truth.shape == read.shape,
            ssim,
            psnr,
            two_way: 0.0,
            decoded_caption: decoded_captions.get(&(segment, tr)).cloned(),
        });
    }
    let n = rows.len();
    let classes = COLOURS.len() * SHAPES.len() * Direction::ALL.len();
    let named = |per_clip: usize, classifier: &'static str| {
        let (dir, clips) = (&opts.reconstructed, &made.clips);
        move |e| name_clip(e, dir, clips, per_clip, classifier)
    };
    let rule = "the clip reading rule";
    let two = n_way_top1(&truth_scores, &recon_scores, n, classes, 2, 100, opts.seed)
        .map_err(named(1, rule))?;
    let fifty = n_way_top1(&truth_scores, &recon_scores, n, classes, 50, 100, opts.seed)
        .map_err(named(1, rule))?;
    let (seed, frames) = (opts.seed, made.frames);
    let two_way_i = (frame_logits.classes > 0)
        .then(|| {
            two_way_image(
                &frame_logits.truth,
                &frame_logits.recon,
                n,
                frames,
                frame_logits.classes,
                seed,
            )
            .map_err(named(frames, "ViT"))
        })
        .transpose()?
        .map(scored);
    let (t, r, k) = (&clip_logits.truth, &clip_logits.recon, clip_logits.classes);
    let two_way_v = (k > 0)
        .then(|| two_way_video(t, r, n, k, seed).map_err(named(1, "VideoMAE")))
        .transpose()?
        .map(scored);
    let fifty_way_v = (k >= 52)
        .then(|| fifty_way_video(t, r, n, k, seed).map_err(named(1, "VideoMAE")))
        .transpose()?
        .map(scored);
    for (row, &v) in rows.iter_mut().zip(&two.per_sample) {
        row.two_way = v;
    }
    let summary = VideoEvalSummary {
        format: "brainrecon-video-eval".into(),
        reconstructed: opts.reconstructed.clone(),
        clips: n,
        classifier: "clip reading rule (colour × shape × motion, 120 classes)".into(),
        two_way_i,
        two_way_v,
        fifty_way_v,
        two_way: Scored {
            value: two.mean,
            chance: two.chance,
        },
        fifty_way: Some(Scored {
            value: fifty.mean,
            chance: fifty.chance,
        }),
        nominal_chance_two_way: two.nominal_chance,
        direction: Scored {
            value: share(rows.iter().map(|r| r.direction_correct)),
            chance: 1.0 / Direction::ALL.len() as f64,
        },
        colour: Scored {
            value: share(rows.iter().map(|r| r.colour_correct)),
            chance: 1.0 / COLOURS.len() as f64,
        },
        shape: Scored {
            value: share(rows.iter().map(|r| r.shape_correct)),
            chance: 1.0 / SHAPES.len() as f64,
        },
        ssim: rows.iter().map(|r| r.ssim).sum::<f64>() / n.max(1) as f64,
        psnr: rows.iter().map(|r| r.psnr).sum::<f64>() / n.max(1) as f64,
        frame_size,
        breakdown: breakdown(&rows),
        rows,
    };
    write_json_atomic(&opts.out.join(SUMMARY), &summary)?;
    Ok(summary)
}

/// `video eval` whole: the classifiers loaded (`vit`, `videomae`: folders or cached ids; none
/// when absent), every clip scored, video_eval.json and the report page written into
/// `opts.out`. Returns the summary and the page.
pub fn evaluate_folder(
    opts: &VideoEvalOptions,
    vit: Option<&str>,
    videomae: Option<&str>,
    device: &candle_core::Device,
) -> Result<(VideoEvalSummary, PathBuf)> {
    std::fs::create_dir_all(&opts.out).map_err(|e| brainrecon_core::DataError::io(&opts.out, e))?;
    let made: ReconstructSummary = read_json(&opts.reconstructed.join(RECONSTRUCT_SUMMARY))?;
    let classifiers = VideoClassifiers::load(vit, videomae, made.frames, device)?;
    let summary = evaluate(opts, &classifiers)?;
    let page = super::report::write_report(&summary, &opts.stimuli, made.fps, &opts.out)?;
    Ok((summary, page))
}

impl VideoEvalSummary {
    /// The scores as `video eval` prints them: the classifiers' lines, the headline with the
    /// report `page`, then a line per segment and position group.
    pub fn text(&self, page: &std::path::Path) -> String {
        use std::fmt::Write;
        let summary = self;
        let mut text = String::new();
        for (name, score) in [
            ("2-way-I (ViT)", &summary.two_way_i),
            ("2-way-V (VideoMAE)", &summary.two_way_v),
            ("50-way-V (VideoMAE)", &summary.fifty_way_v),
        ] {
            if let Some(s) = score {
                let _ = writeln!(text, "{name}: {:.3} (chance {:.3})", s.value, s.chance);
            }
        }
        let _ = writeln!(
            text,
            "{} clips: 2-way {:.3} (chance {:.3}; quoted {:.2}), motion direction {:.3} (chance \
             {:.2}), colour {:.3}, shape {:.3}, SSIM {:.3}, PSNR {:.2} → {}",
            summary.clips,
            summary.two_way.value,
            summary.two_way.chance,
            summary.nominal_chance_two_way,
            summary.direction.value,
            summary.direction.chance,
            summary.colour.value,
            summary.shape.value,
            summary.ssim,
            summary.psnr,
            page.display()
        );
        let _ = writeln!(
            text,
            "  clips of         TRs  clips  2-way  direction  colour  shape"
        );
        for g in &summary.breakdown {
            let _ = writeln!(
                text,
                "  {:<14} {:>2}–{:<2} {:>6}  {:.3}  {:>9.3}  {:.3}  {:.3}",
                g.group, g.first_tr, g.last_tr, g.clips, g.two_way, g.direction, g.colour, g.shape
            );
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_finite_score_names_its_clip_and_frame() {
        let err = brainrecon_metrics::require_finite("reconstruction scores", &[0.0, f32::NAN], 1)
            .unwrap_err();
        let named = name_clip(err, std::path::Path::new("/r"), &[(1, 4)], 2, "ViT").to_string();
        assert!(
            named.contains("/r/clips/1-4") && named.contains("frame 1") && named.contains("ViT"),
            "{named}"
        );
        // a row past the clips keeps the metric's own message
        let err =
            brainrecon_metrics::require_finite("x", &[0.0, 0.0, 0.0, f32::NAN], 1).unwrap_err();
        let kept = name_clip(err, std::path::Path::new("/r"), &[(1, 4)], 1, "ViT").to_string();
        assert!(kept.contains("row 3"), "{kept}");
    }

    #[test]
    fn class_scores_peak_at_the_reading() {
        let reading = ClipReading {
            background: 0,
            colour: Some(2),
            shape: Some(1),
            velocity: Some([-0.02, 0.0]),
        };
        let scores = class_scores(&reading);
        assert_eq!(scores.len(), 120);
        let best = (0..120)
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .unwrap();
        // colour 2, shape 1, motion left (0): (2·4 + 1)·5 + 0.
        assert_eq!(best, 45);
        let sum: f32 = scores.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
    }
}
