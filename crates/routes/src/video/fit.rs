//! `video fit`: the linear baseline of the video route, the Takagi-style route generalised to
//! clips. Ridge from each sample's fMRI window (`video prepare`'s X) to the text context c of
//! the clip's caption (the diffusion model's text encoder, T×D values) and to the VAE latent z
//! of the clip's first frame (for an img2img-style start); alphas by K-fold CV grouped by
//! segment (neighbouring TRs share the haemodynamic response, so LOO would pick alphas that
//! are too small). Also the decoded context of the mean training window: MinD-Video's
//! negative condition ("guidance against the mean fMRI's embedding").
//!
//! ```text
//! <out>/video_fit.json     VideoFitSummary
//! <out>/decoded_c.npy      float32 (test samples, T·D)
//! <out>/decoded_z.npy      float32 (test samples, 4·h·w)
//! <out>/negative_c.npy     float32 (1, T·D): the decoded context of the mean training window
//! <out>/true_c_test.npy    float32 (test samples, T·D): the captions' contexts
//! <out>/test_index.npy     int64 (test samples, 2): segment, stimulus TR
//! <out>/decoded_motion.npy, true_motion_test.npy   see `motion.rs` (unless motion is off)
//! <out>/decoded_captions.tsv  segment, tr, caption composed word by word (`--context words`)
//! <out>/models/c/, models/z/, models/motion/   the ridge models (ridge predict reads them)
//! ```

use super::caption_words::{decode_captions, WordDecoderSummary};
use super::motion::{fit_motion, MotionFit};
use super::stimuli::{captions_of, read_captions, StimulusClips, StimulusTr};
use crate::decode::arrays::{identification, matrix, row_major};
use crate::error::{Result, RouteError};
use brainrecon_core::fs::write_json_atomic;
use brainrecon_datasets::cc2017::{read_meta, VideoPrepared};
use brainrecon_diffusion::pipeline::StableDiffusion;
use brainrecon_formats::cifti::cc2017::Split;
use brainrecon_formats::image::RgbImage;
use brainrecon_formats::npy;
use brainrecon_ridge::{Cv, RidgeCv, RidgeModel, Scoring};
use candle_core::Tensor;
use faer::Mat;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The fit's summary in its folder, [`VideoFitSummary`].
pub const SUMMARY_FILE: &str = "video_fit.json";

/// Folds of the CV over segments when none are given.
pub const DEFAULT_FOLDS: usize = 5;

/// Ridge penalties tried when none are given: 10^0 … 10^5.
pub fn default_alphas() -> Vec<f64> {
    (0..=5).map(|e| 10f64.powi(e)).collect()
}

/// What `brainrecon video fit` is asked.
#[derive(Debug, Clone)]
pub struct VideoFitOptions {
    /// `video prepare`'s folder.
    pub prepared: PathBuf,
    /// `segK.mp4` / `testK.mp4` or frame folders.
    pub stimuli: PathBuf,
    /// `split<TAB>segment<TAB>tr<TAB>caption`.
    pub captions: PathBuf,
    /// The folder to write (see the module documentation).
    pub out: PathBuf,
    /// The ridge penalty grid ([`default_alphas`] when none are given).
    pub alphas: Vec<f64>,
    /// K of the K-fold CV grouped by segment.
    pub folds: usize,
    /// Also decode the clip's VAE latents: its first frame's or every frame's.
    pub latent: Option<LatentFrames>,
    /// Also decode each clip's global velocity (`motion.rs`).
    pub motion: bool,
    /// How the test contexts are decoded.
    pub context: ContextDecoder,
    /// Draw progress bars.
    pub progress: bool,
}

/// How `video fit` decodes a test window's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContextDecoder {
    /// Ridge to the text encoder's context (MinD-Video's linear baseline).
    #[default]
    Ridge,
    /// The caption word by word, then its context (`caption_words.rs`).
    Words,
}

/// Which frames' latents `video fit --latent` decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatentFrames {
    /// The first frame's (the clip starts from it on every frame).
    First,
    /// Every frame's: a coarse clip, as NeuroClips' perception reconstructor decodes, whose
    /// layout and motion the generated clip keeps.
    All,
}

fn one() -> usize {
    1
}

/// `video_fit.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VideoFitSummary {
    /// Always `brainrecon-video-fit`.
    pub format: String,
    /// What decoded the contexts: "ridge" (`video fit`) or "window-encoder"
    /// (`video train-encoder`).
    #[serde(default = "ridge_decoder")]
    pub decoder: String,
    /// `video prepare`'s folder.
    pub prepared: PathBuf,
    /// The stimulus clips' folder.
    pub stimuli: PathBuf,
    /// The captions file.
    pub captions: PathBuf,
    /// The diffusion model whose text encoder and VAE made the targets, as named.
    pub model: String,
    /// Training samples (stimulus TRs).
    pub n_train: usize,
    /// Test samples.
    pub n_test: usize,
    /// fMRI features per sample (`video prepare`'s X width).
    pub n_features: usize,
    /// Context tokens and width (T, D); latent shape (C, h, w) when decoded.
    pub context_shape: [usize; 2],
    /// (C, h, w) of a decoded latent, when z was decoded.
    pub latent_shape: Option<[usize; 3]>,
    /// Frames of each decoded latent row: 1 (the first frame's) or `frames_per_tr`
    /// (decoded_z rows are then [C, frames, h, w]).
    #[serde(default = "one")]
    pub latent_frames: usize,
    /// Frames of a clip: those shown during its TR.
    pub frames_per_tr: usize,
    /// The repetition time, seconds.
    pub tr_seconds: f64,
    /// Mean K-fold R² of the chosen alphas, per target kind (ridge only).
    pub cv_r2_c: Option<f64>,
    /// Mean K-fold R² of the chosen alphas for z (ridge only).
    pub cv_r2_z: Option<f64>,
    /// Two-way identification of the decoded test contexts among the true ones (chance 0.5).
    pub identification_c: f64,
    /// Two-way identification of the decoded test latents among the true ones.
    pub identification_z: Option<f64>,
    /// The motion decoder's scores, when motion was decoded.
    #[serde(default)]
    pub motion: Option<MotionFit>,
    /// The word decoder's choices and scores (`--context words`).
    #[serde(default)]
    pub caption_words: Option<WordDecoderSummary>,
    /// Wall time of the fit, in seconds.
    pub seconds: f64,
}

fn ridge_decoder() -> String {
    "ridge".into()
}

/// The samples of `split` as (segment, TR) from the prepared `*_index.npy`.
pub(crate) fn samples(dir: &Path, split: Split) -> Result<Vec<StimulusTr>> {
    let name = match split {
        Split::Train => "train_index.npy",
        Split::Test => "test_index.npy",
    };
    let path = dir.join(name);
    let index = npy::read_i64(&path)?;
    let (n, w) = index.as_matrix(&path)?;
    if w != 2 {
        return Err(RouteError::mismatch(
            &path,
            "shape",
            "(samples, 2)",
            format!("({n}, {w})"),
        ));
    }
    Ok(index
        .data
        .chunks_exact(2)
        .map(|r| StimulusTr {
            split,
            segment: r[0] as usize,
            tr: r[1] as usize,
        })
        .collect())
}

/// The fMRI windows of `split`: (samples, K·V) row-major.
pub(crate) fn windows(dir: &Path, split: Split, meta: &VideoPrepared) -> Result<Mat<f32>> {
    let path = dir.join(match split {
        Split::Train => "X_train.npy",
        Split::Test => "X_test.npy",
    });
    let x = npy::read_f32(&path)?;
    let (_, w) = x.as_matrix(&path)?;
    if w != meta.n_features {
        return Err(RouteError::mismatch(&path, "columns", meta.n_features, w));
    }
    npy::require_finite(&path, &x.data, w, "finite fMRI windows")?;
    Ok(matrix(&x.data, w))
}

/// Text contexts of `captions`: (n, T·D) and (T, D).
pub(crate) fn contexts(
    sd: &StableDiffusion,
    captions: &[String],
) -> Result<(Mat<f32>, [usize; 2])> {
    let mut rows = Vec::with_capacity(captions.len());
    let mut shape = [0, 0];
    for chunk in captions.chunks(32) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let c = sd.encode_text(&refs)?;
        let (_, t, d) = c.dims3()?;
        shape = [t, d];
        rows.extend(c.flatten_from(1)?.to_vec2::<f32>()?);
    }
    let width = shape[0] * shape[1];
    Ok((Mat::from_fn(rows.len(), width, |r, c| rows[r][c]), shape))
}

/// VAE latents (posterior means) of each sample's clip, its first frame only or every frame,
/// at the model's size: [n, C, F, h, w] (F = 1 for the first frame).
pub(crate) fn stimulus_clip_latents(
    sd: &StableDiffusion,
    clips: &mut StimulusClips,
    samples: &[StimulusTr],
    which: LatentFrames,
) -> Result<Tensor> {
    let size = sd.default_size();
    let mut parts = Vec::with_capacity(samples.len().div_ceil(8));
    for chunk in samples.chunks(8) {
        let frames = chunk
            .iter()
            .map(|&s| {
                let mut frames = clips.clip(s)?;
                if which == LatentFrames::First {
                    frames.truncate(1);
                }
                Ok(frames.iter().map(|f| resize_to(f, size)).collect())
            })
            .collect::<Result<Vec<Vec<RgbImage>>>>()?;
        parts.push(brainrecon_zoo::shapes_motion::clip_latents(sd, &frames)?);
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// [`stimulus_clip_latents`] as (n, C·F·h·w) rows laid out [C, F, h, w], and (C, h, w).
fn clip_frame_latents(
    sd: &StableDiffusion,
    clips: &mut StimulusClips,
    samples: &[StimulusTr],
    which: LatentFrames,
) -> Result<(Mat<f32>, [usize; 3])> {
    let z = stimulus_clip_latents(sd, clips, samples, which)?;
    let (_, c, _, h, w) = z.dims5()?;
    let rows = z.flatten_from(1)?.to_vec2::<f32>()?;
    let width = rows.first().map_or(0, Vec::len);
    Ok((
        Mat::from_fn(rows.len(), width, |r, c| rows[r][c]),
        [c, h, w],
    ))
}

/// A frame at the model's square size (area averaging, as the linear route's stimuli; a
/// frame already of that size is kept).
pub fn resize_to(frame: &RgbImage, size: usize) -> RgbImage {
    frame.resize(size, size)
}

/// Ridge with alphas chosen by K-fold CV grouped by segment; the model and its mean CV R².
pub(crate) fn fit_grouped(
    x: &Mat<f32>,
    y: &Mat<f32>,
    groups: &[i64],
    alphas: &[f64],
    folds: usize,
) -> Result<(RidgeModel, f64)> {
    let n_groups = groups
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let cv = RidgeCv {
        alphas: alphas.to_vec(),
        cv: Cv::KFold {
            n_folds: folds.min(n_groups).max(2),
            groups: Some(groups.to_vec()),
        },
        scoring: Scoring::R2,
        ..RidgeCv::default()
    };
    let model = cv.fit(x.as_ref(), y.as_ref())?;
    let scores = model.best_cv_scores();
    let mean = scores.iter().map(|&s| s as f64).sum::<f64>() / scores.len().max(1) as f64;
    Ok((model, mean))
}

/// `decoded_captions.tsv`: the caption composed for each test window (`--context words`).
pub const DECODED_CAPTIONS_FILE: &str = "decoded_captions.tsv";

fn write_decoded_captions(path: &Path, test: &[StimulusTr], captions: &[String]) -> Result<()> {
    let mut text = String::from("segment\ttr\tcaption\n");
    for (s, caption) in test.iter().zip(captions) {
        text.push_str(&format!("{}\t{}\t{caption}\n", s.segment, s.tr));
    }
    Ok(brainrecon_core::fs::write_bytes_atomic(
        path,
        text.as_bytes(),
    )?)
}

/// `decoded_captions.tsv` by (segment, TR), when `fit` wrote one (`--context words`).
pub fn read_decoded_captions(fit: &Path) -> Result<Option<HashMap<(usize, usize), String>>> {
    let path = fit.join(DECODED_CAPTIONS_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let text = brainrecon_core::text::read_text(&path)?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    if header != "segment\ttr\tcaption" {
        return Err(RouteError::mismatch(
            &path,
            "header",
            "segment<TAB>tr<TAB>caption",
            header,
        ));
    }
    let mut captions = HashMap::new();
    for (i, line) in lines.enumerate() {
        let cells: Vec<&str> = line.splitn(3, '\t').collect();
        let number = |cell: Option<&&str>| cell.and_then(|c| c.parse::<usize>().ok());
        match (number(cells.first()), number(cells.get(1)), cells.get(2)) {
            (Some(segment), Some(tr), Some(caption)) => {
                captions.insert((segment, tr), caption.to_string());
            }
            _ => {
                return Err(RouteError::mismatch(
                    &path,
                    format!("row {}", i + 2),
                    "segment<TAB>tr<TAB>caption with whole numbers",
                    line,
                ))
            }
        }
    }
    Ok(Some(captions))
}

pub(crate) fn write_matrix(path: &Path, m: &Mat<f32>) -> Result<()> {
    Ok(npy::write(path, &[m.nrows(), m.ncols()], &row_major(m))?)
}

/// The decoded test set every decoder writes: `decoded_c.npy`, `negative_c.npy` (the mean
/// training window's), `true_c_test.npy` (each (n, T·D)) and `test_index.npy`.
pub(crate) fn write_decoded_contexts(
    out: &Path,
    [decoded, negative, truth]: [&Mat<f32>; 3],
    test: &[StimulusTr],
) -> Result<()> {
    write_matrix(&out.join("decoded_c.npy"), decoded)?;
    write_matrix(&out.join("negative_c.npy"), negative)?;
    write_matrix(&out.join("true_c_test.npy"), truth)?;
    let index: Vec<i64> = test
        .iter()
        .flat_map(|s| [s.segment as i64, s.tr as i64])
        .collect();
    Ok(npy::write(
        &out.join("test_index.npy"),
        &[test.len(), 2],
        &index,
    )?)
}

/// Opens everything [`fit`] reads that is not the model: the prepared subject's design, the
/// captions, and every segment's stimulus video, so that a bad one fails before the model
/// loads and before anything is written.
pub fn check_inputs(prepared: &Path, stimuli: &Path, captions: &Path) -> Result<()> {
    let meta = read_meta(prepared)?;
    read_captions(captions)?;
    let d = &meta.design;
    for (split, segments) in [
        (Split::Train, d.train_segments),
        (Split::Test, d.test_segments),
    ] {
        for segment in 1..=segments {
            let path = super::stimuli::segment_video_path(stimuli, split, segment)?;
            brainrecon_formats::video::open(&path)?;
        }
    }
    Ok(())
}

/// Fits the decoders and writes the decoded test set (see the module documentation).
pub fn fit(
    sd: &StableDiffusion,
    model_name: &str,
    opts: &VideoFitOptions,
) -> Result<VideoFitSummary> {
    let started = std::time::Instant::now();
    let meta = read_meta(&opts.prepared)?;
    let train = samples(&opts.prepared, Split::Train)?;
    let test = samples(&opts.prepared, Split::Test)?;
    let x_train = windows(&opts.prepared, Split::Train, &meta)?;
    let x_test = windows(&opts.prepared, Split::Test, &meta)?;
    if x_train.nrows() != train.len() || x_test.nrows() != test.len() || train.len() < 4 {
        return Err(RouteError::mismatch(
            &opts.prepared.join("video.json"),
            "samples",
            "X rows equal to the index rows, at least 4 training samples",
            format!(
                "train {} / {}, test {} / {}",
                x_train.nrows(),
                train.len(),
                x_test.nrows(),
                test.len()
            ),
        ));
    }
    let table = read_captions(&opts.captions)?;
    let train_captions = captions_of(&opts.captions, &table, &train)?;
    let test_captions = captions_of(&opts.captions, &table, &test)?;
    let (c_train, context_shape) = contexts(sd, &train_captions)?;
    let (c_test, _) = contexts(sd, &test_captions)?;
    let groups: Vec<i64> = train.iter().map(|s| s.segment as i64).collect();
    let (c_model, cv_r2_c) = fit_grouped(&x_train, &c_train, &groups, &opts.alphas, opts.folds)?;
    let (decoded_c, words) = match opts.context {
        ContextDecoder::Ridge => (c_model.predict(x_test.as_ref())?, None),
        ContextDecoder::Words => {
            let decoded = decode_captions(
                [&x_train, &x_test],
                [&train_captions, &test_captions],
                &opts.captions,
                &groups,
                (&opts.alphas, opts.folds),
                opts.progress,
            )?;
            let (c, _) = contexts(sd, &decoded.test_captions)?;
            (c, Some(decoded))
        }
    };
    let mean_window = Mat::from_fn(1, x_train.ncols(), |_, c| {
        (0..x_train.nrows())
            .map(|r| x_train[(r, c)] as f64)
            .sum::<f64>() as f32
            / x_train.nrows() as f32
    });
    let negative_c = c_model.predict(mean_window.as_ref())?;
    let (identification_c, _) = identification(&decoded_c, &c_test)?;

    let out = &opts.out;
    std::fs::create_dir_all(out).map_err(|e| brainrecon_core::DataError::io(out, e))?;
    write_decoded_contexts(out, [&decoded_c, &negative_c, &c_test], &test)?;
    c_model.save(out.join("models").join("c"))?;
    if let Some(words) = &words {
        write_decoded_captions(
            &out.join(DECODED_CAPTIONS_FILE),
            &test,
            &words.test_captions,
        )?;
    }

    // the latents first: the clips they decode leave their velocities for the motion decoder
    let mut clips = StimulusClips::new(&opts.stimuli, meta.design.tr, meta.design.frames_per_tr);
    let (mut latent_shape, mut cv_r2_z, mut identification_z) = (None, None, None);
    let mut latent_frames = 1;
    if let Some(which) = opts.latent {
        let (z_train, shape) = clip_frame_latents(sd, &mut clips, &train, which)?;
        let (z_test, _) = clip_frame_latents(sd, &mut clips, &test, which)?;
        latent_frames = z_train.ncols() / shape.iter().product::<usize>();
        let (z_model, r2) = fit_grouped(&x_train, &z_train, &groups, &opts.alphas, opts.folds)?;
        let decoded_z = z_model.predict(x_test.as_ref())?;
        identification_z = Some(identification(&decoded_z, &z_test)?.0);
        write_matrix(&out.join("decoded_z.npy"), &decoded_z)?;
        z_model.save(out.join("models").join("z"))?;
        latent_shape = Some(shape);
        cv_r2_z = Some(r2);
    }
    let motion = match opts.motion {
        true => Some(fit_motion(
            [&x_train, &x_test],
            [&train, &test],
            &mut clips,
            &opts.alphas,
            opts.folds,
            out,
        )?),
        false => None,
    };
    let summary = VideoFitSummary {
        format: "brainrecon-video-fit".into(),
        decoder: match opts.context {
            ContextDecoder::Ridge => ridge_decoder(),
            ContextDecoder::Words => "caption-words".into(),
        },
        prepared: opts.prepared.clone(),
        stimuli: opts.stimuli.clone(),
        captions: opts.captions.clone(),
        model: model_name.to_string(),
        n_train: train.len(),
        n_test: test.len(),
        n_features: meta.n_features,
        context_shape,
        latent_shape,
        latent_frames,
        frames_per_tr: meta.design.frames_per_tr,
        tr_seconds: meta.design.tr,
        cv_r2_c: Some(cv_r2_c),
        cv_r2_z,
        identification_c,
        identification_z,
        motion,
        caption_words: words.map(|w| w.summary),
        seconds: started.elapsed().as_secs_f64(),
    };
    write_json_atomic(&out.join(SUMMARY_FILE), &summary)?;
    Ok(summary)
}

/// `video fit` whole: the inputs checked, the diffusion model `model` loaded (f32) on
/// `device`, the fit written into a staging folder that replaces `opts.out` only when it
/// succeeds (a failure leaves `opts.out` as it was).
pub fn fit_folder(
    model: &str,
    device: &candle_core::Device,
    opts: &VideoFitOptions,
) -> Result<VideoFitSummary> {
    check_inputs(&opts.prepared, &opts.stimuli, &opts.captions)?;
    let sd = StableDiffusion::load(model, candle_core::DType::F32, device)?;
    brainrecon_core::fs::write_folder_atomic(&opts.out, |staging| {
        let staged = VideoFitOptions {
            out: staging.to_path_buf(),
            ..opts.clone()
        };
        fit(&sd, model, &staged)
    })
}

impl VideoFitSummary {
    /// The summary line `video fit` prints; `out` is its folder.
    pub fn text(&self, out: &Path) -> String {
        let summary = self;
        format!(
            "decoded {} test windows from {} training windows ({} features): context CV R² {:.3}, \
             identification {:.3} (chance 0.5){}{}{} → {}\n",
            summary.n_test,
            summary.n_train,
            summary.n_features,
            summary.cv_r2_c.unwrap_or(f64::NAN),
            summary.identification_c,
            match (summary.cv_r2_z, summary.identification_z) {
                (Some(r2), Some(id)) => format!(
                    "; {} latent CV R² {r2:.3}, identification {id:.3}",
                    if summary.latent_frames > 1 {
                        "clip"
                    } else {
                        "first-frame"
                    }
                ),
                _ => String::new(),
            },
            summary.motion.as_ref().map_or(String::new(), |m| format!(
                "; motion r {:.3} (x) {:.3} (y), direction {:.3} (chance {:.3})",
                m.correlation[0], m.correlation[1], m.direction_agreement, m.direction_chance
            )),
            summary
                .caption_words
                .as_ref()
                .map_or(String::new(), |w| format!(
                    "; captions word by word: {:.3} of their words right (CV {:.3}), {} combinations \
             no training caption has, features screened to {} %, alpha {}",
                    w.test_word_accuracy,
                    w.cv_word_accuracy,
                    w.novel_captions,
                    w.screening_percent,
                    w.alpha
                )),
            out.display()
        )
    }
}
