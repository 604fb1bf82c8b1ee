//! Ridge decoders from an ROI's betas to per-image targets, with their accuracy.
//!
//! A decoder directory is a ridge model (`weights.safetensors`, `model.json`) whose metadata
//! records the subject, ROI, voxel count, target name and per-stimulus target shape, plus
//! `test_r.npy`: the Pearson r of every target on the subject's test images.

use crate::decode::decoder_stream;
use crate::decode::features::{load_features_mapped, FeatureKind};
use crate::error::{Result, RouteError};
use brainrecon_datasets::prepared::{PreparedSubject, Roi, Split, SHARED_ATLAS};
use brainrecon_formats::npy;
use brainrecon_ridge::metrics::{pearson_per_target, summarize};
use brainrecon_ridge::{row_major_view, Cv, RidgeCv, RidgeModel, Scoring};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The caption route's ROI: the six `streams` ROIs the published code concatenates.
pub const CAPTION_ROUTE_ROI: &str = "streams/early+ventral+midventral+midlateral+lateral+parietal";

/// [`CAPTION_ROUTE_ROI`] with the labels `subject` lacks left out (a synthetic subject has no
/// midventral or midlateral voxels), and the names of those left out.
pub fn caption_route_roi(subject: &PreparedSubject) -> (String, Vec<String>) {
    let (atlas, labels) = CAPTION_ROUTE_ROI.split_once('/').expect("atlas/labels");
    let counts = subject.roi_counts();
    let (present, missing): (Vec<&str>, Vec<&str>) = labels
        .split('+')
        .partition(|l| counts.get(&format!("{atlas}/{l}")).is_some_and(|&n| n > 0));
    let missing = missing.iter().map(|l| format!("{atlas}/{l}")).collect();
    (format!("{atlas}/{}", present.join("+")), missing)
}

/// The caption route's alphas (the published `RidgeCV(alphas=[1e4, 2e4, 4e4])`).
pub const CAPTION_ROUTE_ALPHAS: [f64; 3] = [1e4, 2e4, 4e4];

/// What a decoder predicts for each image.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The stimulus, resized to SIZE×SIZE×3 in [0, 1].
    Pixels(usize),
    /// Features computed by `brainrecon features` (in the subject's features directory).
    Features(FeatureKind),
    /// A float `.npy` (n_images, d) whose rows follow the subject's `stimuli/ids.npy`.
    File(PathBuf),
}

impl Target {
    /// `pixels:SIZE`, `z`, `c`, `clip-image`, or a `.npy` path.
    pub fn parse(text: &str) -> Result<Self> {
        if let Some(size) = text.strip_prefix("pixels:") {
            let size: usize = size.parse().map_err(|_| {
                RouteError::Usage(format!("--target: expected pixels:SIZE, found '{text}'"))
            })?;
            if !(4..=512).contains(&size) {
                return Err(RouteError::Usage(format!(
                    "--target: pixel size must be 4 to 512, found {size}"
                )));
            }
            return Ok(Target::Pixels(size));
        }
        if text.ends_with(".npy") {
            return Ok(Target::File(PathBuf::from(text)));
        }
        FeatureKind::parse(text).map(Target::Features).map_err(|_| {
            RouteError::Usage(format!(
                "--target: expected z, c, clip-image, blip (BLIP image tokens), \
                 blip-vision-lL, blip-text[-lL], pixels:SIZE or a FEATURES.npy path, found \
                 '{text}'"
            ))
        })
    }

    /// The name stored in the model's metadata (parsed back by [`Target::parse`]).
    pub fn name(&self) -> String {
        match self {
            Target::Pixels(size) => format!("pixels:{size}"),
            Target::Features(FeatureKind::Vae) => "z".into(),
            Target::Features(FeatureKind::ClipText) => "c".into(),
            Target::Features(FeatureKind::ClipImage) => "clip-image".into(),
            Target::Features(FeatureKind::BlipVision(None)) => "blip".into(),
            Target::Features(kind) => kind.name(),
            Target::File(path) => path.display().to_string(),
        }
    }

    /// The ROI the published linear route decodes this target from.
    pub fn default_roi(&self) -> &'static str {
        match self {
            Target::Features(FeatureKind::Vae) => "streams/early",
            Target::Features(FeatureKind::ClipText | FeatureKind::ClipImage) => "streams/ventral",
            Target::Features(FeatureKind::BlipVision(None)) => CAPTION_ROUTE_ROI,
            _ => "nsdgeneral",
        }
    }

    /// The ROI this target is decoded from on `subject` when none is named: [`Self::default_roi`],
    /// with the caption route's labels that `subject` lacks left out (see [`caption_route_roi`]);
    /// and the names of those left out, for a warning. A subject in a group's space (its one
    /// atlas [`SHARED_ATLAS`]) decodes every target from that space.
    pub fn default_roi_on(&self, subject: &PreparedSubject) -> (String, Vec<String>) {
        if let [atlas] = &subject.meta.atlases[..] {
            if atlas.name == SHARED_ATLAS {
                return (atlas.name.clone(), Vec::new());
            }
        }
        if self.default_roi() == CAPTION_ROUTE_ROI {
            caption_route_roi(subject)
        } else {
            (self.default_roi().to_string(), Vec::new())
        }
    }

    /// Whether the published defaults apply (standardised betas, the wide grid).
    pub fn is_model_feature(&self) -> bool {
        matches!(self, Target::Features(_))
    }
}

/// Per-image targets of every subject image: (shape of one row, row-major (n_images, d),
/// where they came from, the model that made them if any). Rows follow `stimuli/ids.npy`.
pub struct ImageTargets {
    /// The 0-based 73k ids of the rows, ascending (the order of `stimuli/ids.npy`).
    pub ids: Vec<usize>,
    /// Shape of one row (e.g. `[4, 40, 40]` for `z`, `[size, size, 3]` for pixels); its product is d.
    pub shape: Vec<usize>,
    /// The rows, row-major `[n_images, d]`.
    pub values: TargetValues,
    /// The file the values came from (named in errors).
    pub source: PathBuf,
    /// The model that made the features (`None` for pixels and plain `.npy` files).
    pub model: Option<String>,
    /// The fingerprint of the model's files, when the features recorded it.
    pub model_fingerprint: Option<String>,
}

/// Target values, row-major (n_images, d): read into memory, or memory-mapped from a features
/// file (a fit streamed over blocks of targets then reads one block of columns at a time).
pub enum TargetValues {
    /// Read into memory.
    Owned(Vec<f32>),
    /// Memory-mapped from a `.npy` file.
    Mapped(npy::MappedF32),
}

impl std::ops::Deref for TargetValues {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            TargetValues::Owned(values) => values,
            TargetValues::Mapped(map) => map.as_slice(),
        }
    }
}

impl From<Vec<f32>> for TargetValues {
    fn from(values: Vec<f32>) -> Self {
        TargetValues::Owned(values)
    }
}

impl ImageTargets {
    /// Width d of a row: the product of [`ImageTargets::shape`].
    pub fn width(&self) -> usize {
        self.shape.iter().product()
    }

    /// Row of each id in `ids`, in order.
    pub fn rows_of(&self, ids: &[usize]) -> Result<Vec<usize>> {
        ids.iter()
            .map(|&id| {
                self.ids.binary_search(&id).map_err(|_| {
                    RouteError::mismatch(&self.source, "images", format!("image {id}"), "missing")
                })
            })
            .collect()
    }

    /// Columns `columns` of the rows `rows` (see [`ImageTargets::rows_of`]): rows × len.
    pub fn columns(&self, rows: &[usize], columns: std::ops::Range<usize>) -> faer::Mat<f32> {
        let width = self.width();
        faer::Mat::from_fn(rows.len(), columns.len(), |i, j| {
            self.values[rows[i] * width + columns.start + j]
        })
    }

    /// Rows for each id in `row_ids` (n_rows, d).
    pub fn gather(&self, row_ids: &[usize]) -> Result<Vec<f32>> {
        let width = self.width();
        let mut out = Vec::with_capacity(row_ids.len() * width);
        for row in self.rows_of(row_ids)? {
            out.extend_from_slice(&self.values[row * width..(row + 1) * width]);
        }
        Ok(out)
    }
}

/// The default features directory of a subject.
pub fn default_features_dir(subject: &PreparedSubject) -> PathBuf {
    subject.path("features")
}

/// The per-image targets of `target` for every image of `subject`: pixels resized from the
/// subject's stimuli, features from `features_dir` (memory-mapped) or a `.npy` file of shape
/// `[n_images, d]` (memory-mapped, one row per image of `stimuli/ids.npy`).
///
/// # Errors
/// Missing or unreadable features; a `.npy` that is not 2-D or whose row count differs from the
/// subject's images.
pub fn image_targets(
    subject: &PreparedSubject,
    target: &Target,
    features_dir: &Path,
) -> Result<ImageTargets> {
    match target {
        Target::Pixels(size) => {
            let stimuli = subject.images()?;
            let mut values = Vec::with_capacity(stimuli.ids.len() * size * size * 3);
            for &id in &stimuli.ids {
                let image = stimuli.get(id).expect("id listed in the store");
                values.extend(image.resize(*size, *size).to_unit_f32());
            }
            Ok(ImageTargets {
                ids: stimuli.ids.clone(),
                shape: vec![*size, *size, 3],
                values: values.into(),
                source: subject.path("stimuli/images.npy"),
                model: None,
                model_fingerprint: None,
            })
        }
        Target::Features(kind) => {
            let (meta, values) = load_features_mapped(subject, features_dir, *kind)?;
            Ok(ImageTargets {
                ids: subject.stimulus_ids()?,
                shape: meta.shape,
                values: TargetValues::Mapped(values),
                source: crate::decode::features::feature_paths(features_dir, *kind).0,
                model_fingerprint: meta
                    .settings
                    .get("model_fingerprint")
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
                model: Some(meta.model),
            })
        }
        Target::File(path) => {
            let ids = subject.stimulus_ids()?;
            let array = npy::MappedF32::open(path)?;
            let (rows, cols) = match array.shape() {
                &[rows, cols] => (rows, cols),
                shape => {
                    return Err(RouteError::mismatch(
                        path,
                        "shape",
                        "(images, width)",
                        format!("{shape:?}"),
                    ))
                }
            };
            if rows != ids.len() {
                return Err(RouteError::mismatch(
                    path,
                    "rows",
                    format!(
                        "{} rows, one per image in {}",
                        ids.len(),
                        subject.path("stimuli/ids.npy").display()
                    ),
                    rows,
                ));
            }
            Ok(ImageTargets {
                ids,
                shape: vec![cols],
                values: TargetValues::Mapped(array),
                source: path.clone(),
                model: None,
                model_fingerprint: None,
            })
        }
    }
}

/// log-spaced grid `10^lo … 10^hi` with `n` values.
pub fn log_grid(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![10f64.powf(lo)];
    }
    (0..n)
        .map(|i| 10f64.powf(lo + (hi - lo) * i as f64 / (n - 1) as f64))
        .collect()
}

/// The default grid: 10 values over 1 … 1e6 for pixels and files; for model features, which
/// are fit on standardised betas, 21 values over 1e-1 … 1e9 (half decades), wide enough that
/// chosen alphas rarely sit at an edge.
pub fn default_alphas(target: &Target) -> Vec<f64> {
    if *target == Target::Features(FeatureKind::BlipVision(None)) {
        return CAPTION_ROUTE_ALPHAS.to_vec();
    }
    if target.is_model_feature() {
        log_grid(-1.0, 9.0, 21)
    } else {
        standard_alphas()
    }
}

/// 10 values log-spaced over 1 … 1e6: the default of the array-level commands.
pub fn standard_alphas() -> Vec<f64> {
    log_grid(0.0, 6.0, 10)
}

/// How a decoder's alphas are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecoderCv {
    /// Efficient leave-one-out.
    Loo,
    /// Generalized cross-validation (no eigendecomposition when voxels outnumber trials).
    Gcv,
    /// K folds grouped by stimulus, so repeats of an image stay in one fold.
    KFold(usize),
}

impl DecoderCv {
    /// Parses `loo`, `gcv` or a number of folds ≥ 2 (the CLI's `--cv`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "loo" => Some(DecoderCv::Loo),
            "gcv" => Some(DecoderCv::Gcv),
            k => k.parse().ok().filter(|&k| k >= 2).map(DecoderCv::KFold),
        }
    }
}

/// Settings of a decoder fit.
#[derive(Debug, Clone)]
pub struct DecoderSpec {
    /// The ROI whose voxels are the decoder's inputs.
    pub roi: String,
    /// What the decoder predicts.
    pub target: Target,
    /// Where feature targets are read from (usually `SUBJECT/features`).
    pub features_dir: PathBuf,
    /// The ridge penalty grid; each target chooses its own alpha.
    pub alphas: Vec<f64>,
    /// How alphas are chosen.
    pub cv: DecoderCv,
    /// Scale voxels to unit std over the training rows (centred too with an intercept).
    pub standardize: bool,
    /// Fit an intercept.
    pub intercept: bool,
    /// Train on betas averaged over an image's repeats (one row per image) instead of every trial.
    pub average_train: bool,
    /// Where the ridge fit runs (a GPU fits GCV and LOO).
    pub device: brainrecon_ridge::Device,
    /// Precision of the Gram matrix and its decomposition.
    pub precision: brainrecon_ridge::Precision,
    /// Fit this many targets at a time (`None`: all at once unless Y would exceed
    /// [`decoder_stream::STREAM_ABOVE_BYTES`]).
    pub target_block: Option<usize>,
}

/// What a fit did and how well the decoder does.
#[derive(Debug, Clone, Serialize)]
pub struct DecoderSummary {
    /// The decoder folder written.
    pub model: PathBuf,
    /// The ROI decoded from.
    pub roi: String,
    /// The target's name (see [`Target::name`]).
    pub target: String,
    /// Shape of one target row.
    pub target_shape: Vec<usize>,
    /// Voxels in the ROI.
    pub n_voxels: usize,
    /// Training rows (trials, or images with `average_train`).
    pub n_train_rows: usize,
    /// Targets fitted: the width d of a row.
    pub n_targets: usize,
    /// Wall time of the fit, in seconds.
    pub seconds: f64,
    /// Median of the chosen alphas over targets.
    pub median_alpha: f64,
    /// Share of targets whose alpha is the grid's smallest / largest (constant targets, which
    /// tie at every alpha, are not counted).
    pub alpha_at_low_edge: f64,
    /// Share of targets whose alpha is the grid's largest.
    pub alpha_at_high_edge: f64,
    /// CV score (R²) of the chosen alpha, over targets.
    pub cv_r2_mean: f64,
    /// Median over targets of the CV R² of the chosen alpha.
    pub cv_r2_median: f64,
    /// Pearson r between decoded and true targets on the test images, over targets.
    pub test_r_mean: f64,
    /// Median over targets of the test Pearson r.
    pub test_r_median: f64,
    /// Test images scored.
    pub n_test: usize,
}

impl DecoderSummary {
    /// A warning when many targets chose an alpha at the grid's edge.
    pub fn edge_warning(&self) -> Option<String> {
        let edge = self.alpha_at_low_edge + self.alpha_at_high_edge;
        (edge > 0.05).then(|| {
            format!(
                "{:.0}% of targets chose the smallest alpha and {:.0}% the largest: widen the \
                 grid with --alphas",
                100.0 * self.alpha_at_low_edge,
                100.0 * self.alpha_at_high_edge
            )
        })
    }
}

/// The file in a decoder folder with the per-target test Pearson r, float32 `[n_targets]`.
pub const TEST_R_FILE: &str = "test_r.npy";

impl DecoderSummary {
    /// The lines the command prints.
    pub fn text(&self) -> String {
        format!(
            "fitted {} voxels of {} → {} targets {:?} on {} rows in {:.1} s (median alpha {:.3e})\n\
             per-target CV R²: mean {:.4}, median {:.4}; test Pearson r on {} images: mean {:.4}, \
             median {:.4}\n\
             saved {} (per-target test r in {})\n",
            self.n_voxels,
            self.roi,
            self.n_targets,
            self.target_shape,
            self.n_train_rows,
            self.seconds,
            self.median_alpha,
            self.cv_r2_mean,
            self.cv_r2_median,
            self.n_test,
            self.test_r_mean,
            self.test_r_median,
            self.model.display(),
            self.model.join(TEST_R_FILE).display()
        )
    }
}

/// A decoder fit as the command line asks for it; [`fit_request`] checks it and fills in the
/// target's defaults.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct FitRequest {
    /// The prepared subject.
    #[cfg_attr(feature = "cli", arg(long, help = "A prepared subject directory"))]
    pub subject: PathBuf,
    /// z, c, clip-image, blip…, pixels:SIZE or a .npy (see [`Target::parse`]).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "z, c, clip-image, blip, pixels:SIZE, or FEATURES.npy with one row per subject image"
        )
    )]
    pub target: String,
    /// The ROI (default: the target's, see [`Target::default_roi_on`]).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "ROI: an atlas (nsdgeneral), atlas/label (streams/early) or a unique label (V1v). Default: streams/early for z, streams/ventral for c and clip-image, else nsdgeneral"
        )
    )]
    pub roi: Option<String>,
    /// The decoder folder to write.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Decoder directory to write (weights.safetensors, model.json, test_r.npy)"
        )
    )]
    pub out: PathBuf,
    /// The features folder (default: SUBJECT/features).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Features directory of `brainrecon features` (default: SUBJECT/features)"
        )
    )]
    pub features: Option<PathBuf>,
    /// The alpha grid (default: the target's, see [`default_alphas`]).
    #[cfg_attr(
        feature = "cli",
        arg(long, value_delimiter = ',', help = "Alpha grid, comma-separated")
    )]
    pub alphas: Option<Vec<f64>>,
    /// `loo`, `gcv` or a number of folds ≥ 2.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value = "5",
            help = "`loo` (efficient leave-one-out), `gcv` (generalized cross-validation: no eigendecomposition when voxels outnumber trials, up to 3× faster there) or the number of folds grouped by stimulus"
        )
    )]
    pub cv: String,
    /// Train on betas averaged over repeats.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Train on betas averaged over repeats (needs `nsd prepare --average-train`)"
        )
    )]
    pub average_train: bool,
    /// Scale voxels (the default for model features, which `no_standardize` turns off).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            overrides_with = "no_standardize",
            help = "Scale each voxel to unit variance inside the model (default for z, c, clip-image)"
        )
    )]
    pub standardize: bool,
    /// Turn off the standardisation model features get by default.
    #[cfg_attr(feature = "cli", arg(long, help = "Do not scale voxels"))]
    pub no_standardize: bool,
    /// Fit an intercept.
    #[cfg_attr(feature = "cli", arg(long = "no-intercept", action = clap::ArgAction::SetFalse, help = "Fit no intercept (as the published code; the targets' mean is then not predicted)"))]
    pub intercept: bool,
    /// Where the ridge fit runs.
    #[cfg_attr(feature = "cli", arg(long, default_value = "cpu", value_parser = crate::decode::options::parse_device, help = "cpu, cuda or cuda:N"))]
    pub device: brainrecon_ridge::Device,
    /// Precision of the Gram matrix and its decomposition.
    #[cfg_attr(feature = "cli", arg(long, default_value = "f64", value_parser = crate::decode::options::choice(&brainrecon_ridge::Precision::ALL, brainrecon_ridge::Precision::name), help = "Precision of the Gram matrix and its eigendecomposition: f64, or f32 (about 2× faster on the CPU)"))]
    pub precision: brainrecon_ridge::Precision,
    /// Targets fitted at a time (CPU).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Fit N targets at a time, reading their columns from the features file and writing their weights as they come, so that neither all targets nor all weights are in memory (CPU). Default: all at once, or 8192 at a time when the targets exceed 1 GiB (c on a full NSD subject)"
        )
    )]
    pub target_block: Option<usize>,
}

impl FitRequest {
    /// A fit with `brainrecon fit`'s defaults (default ROI, 5-fold CV, the target's alphas and
    /// standardisation, an intercept, f64 on the CPU).
    pub fn with_defaults(subject: PathBuf, target: impl Into<String>, out: PathBuf) -> Self {
        FitRequest {
            subject,
            target: target.into(),
            roi: None,
            out,
            features: None,
            alphas: None,
            cv: "5".into(),
            average_train: false,
            standardize: false,
            no_standardize: false,
            intercept: true,
            device: brainrecon_ridge::Device::Cpu,
            precision: brainrecon_ridge::Precision::F64,
            target_block: None,
        }
    }
}

/// Checks `request` and fits the decoder; `warn` hears what the user should know (labels of
/// the default ROI the subject lacks, before the fit; alphas at the grid's edge, after).
pub fn fit_request(request: &FitRequest, warn: &mut dyn FnMut(String)) -> Result<DecoderSummary> {
    let r = request;
    let usage = |m: String| RouteError::Usage(m);
    let subject = PreparedSubject::open(&r.subject)?;
    let target = Target::parse(&r.target)?;
    let published = target.is_model_feature();
    let cv = DecoderCv::parse(&r.cv).ok_or_else(|| {
        usage(format!(
            "--cv: expected loo, gcv or a number of folds ≥ 2, found '{}'",
            r.cv
        ))
    })?;
    let device = crate::decode::options::check_ridge_device(r.device)?;
    let cpu = device == brainrecon_ridge::Device::Cpu;
    if !cpu && matches!(cv, DecoderCv::KFold(_)) {
        return Err(usage(format!(
            "--device {device}: K-fold cross-validation runs on the CPU only; use --cv gcv or --cv loo on a GPU"
        )));
    }
    if r.target_block == Some(0) {
        return Err(usage("--target-block: expected at least 1 target".into()));
    }
    if r.target_block.is_some() && !cpu {
        return Err(usage(format!(
            "--target-block: fits a block of targets at a time on the CPU only, not --device {device}"
        )));
    }
    let roi = match &r.roi {
        Some(roi) => roi.clone(),
        None => {
            let (roi, missing) = target.default_roi_on(&subject);
            if !missing.is_empty() {
                warn(format!(
                    "{} not in this subject; decoding from {roi}",
                    missing.join(", ")
                ));
            }
            roi
        }
    };
    let spec = DecoderSpec {
        roi,
        alphas: r.alphas.clone().unwrap_or_else(|| default_alphas(&target)),
        features_dir: r
            .features
            .clone()
            .unwrap_or_else(|| default_features_dir(&subject)),
        target,
        cv,
        standardize: if published {
            !r.no_standardize
        } else {
            r.standardize
        },
        intercept: r.intercept,
        average_train: r.average_train,
        device,
        precision: r.precision,
        target_block: r.target_block,
    };
    let summary = fit_decoder(&subject, &spec, &r.out)?;
    if let Some(warning) = summary.edge_warning() {
        warn(warning);
    }
    Ok(summary)
}

/// Fits a decoder and writes it to `out`. Many targets (more than
/// [`decoder_stream::STREAM_ABOVE_BYTES`] of Y, or `spec.target_block`) are fitted a block of
/// targets at a time (see `decoder_stream`).
pub fn fit_decoder(
    subject: &PreparedSubject,
    spec: &DecoderSpec,
    out: &Path,
) -> Result<DecoderSummary> {
    let roi = subject.roi(&spec.roi)?;
    let split = if spec.average_train {
        Split::TrainAveraged
    } else {
        Split::Train
    };
    let targets = image_targets(subject, &spec.target, &spec.features_dir)?;
    let betas = subject.betas(&roi, split)?;
    let row_ids = subject.row_ids(split)?;
    let test_betas = subject.betas(&roi, Split::Test)?;
    let test_ids = subject.test_stimulus_ids()?;
    let estimator = estimator(spec, &row_ids);
    let x = row_major_view("X", &betas.values, (betas.rows, betas.voxels))?;
    let x_test = row_major_view(
        "test X",
        &test_betas.values,
        (test_betas.rows, betas.voxels),
    )?;
    let metadata = decoder_metadata(subject, &roi, spec, &targets);
    let started = std::time::Instant::now();
    // a GPU fit chooses its own target chunks from the device memory
    let block = decoder_stream::stream_block(spec.target_block, betas.rows, targets.width())
        .filter(|_| spec.device == brainrecon_ridge::Device::Cpu);
    let fit = match block {
        Some(block) => decoder_stream::fit_streamed(
            &estimator,
            [x, x_test],
            [&targets.rows_of(&row_ids)?, &targets.rows_of(&test_ids)?],
            &targets,
            block,
            (out, metadata),
        )?,
        None => fit_in_memory(
            &estimator,
            [x, x_test],
            [&row_ids, &test_ids],
            &targets,
            (out, metadata),
        )?,
    };
    let seconds = started.elapsed().as_secs_f64();
    Ok(summarize_fit(
        fit,
        &roi,
        spec,
        &targets,
        [betas.voxels, betas.rows, test_ids.len()],
        seconds,
        out,
    ))
}

/// The ridge estimator a decoder spec asks for (K-fold grouped by image).
fn estimator(spec: &DecoderSpec, row_ids: &[usize]) -> RidgeCv {
    let cv = match spec.cv {
        DecoderCv::Loo => Cv::Loo,
        DecoderCv::Gcv => Cv::Gcv,
        DecoderCv::KFold(n_folds) => Cv::KFold {
            n_folds,
            groups: Some(row_ids.iter().map(|&id| id as i64).collect()),
        },
    };
    RidgeCv {
        alphas: spec.alphas.clone(),
        cv,
        scoring: Scoring::R2,
        fit_intercept: spec.intercept,
        standardize: spec.standardize,
        device: spec.device,
        precision: spec.precision,
        ..RidgeCv::default()
    }
}

/// What `model.json` records about a decoder (besides `alpha_at_edge`, added after the fit).
fn decoder_metadata(
    subject: &PreparedSubject,
    roi: &Roi,
    spec: &DecoderSpec,
    targets: &ImageTargets,
) -> BTreeMap<String, serde_json::Value> {
    let train_split = if spec.average_train {
        "train_averaged"
    } else {
        "train"
    };
    [
        ("subject", serde_json::json!(subject.meta.subject)),
        ("subject_dir", serde_json::json!(subject.root)),
        ("roi", serde_json::json!(roi.name)),
        ("n_voxels", serde_json::json!(roi.n_voxels)),
        ("target", serde_json::json!(spec.target.name())),
        ("target_shape", serde_json::json!(targets.shape)),
        ("target_source", serde_json::json!(targets.source)),
        ("target_model", serde_json::json!(targets.model)),
        (
            "target_model_fingerprint",
            serde_json::json!(targets.model_fingerprint),
        ),
        ("train_split", serde_json::json!(train_split)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Per target, what a decoder fit found: its alpha, CV score at that alpha, test r, and
/// whether it varies over the training rows (constant targets tie at every alpha).
pub(crate) struct DecoderFit {
    pub alpha_grid: Vec<f64>,
    pub alphas: Vec<f64>,
    pub cv_best: Vec<f64>,
    pub test_r: Vec<f64>,
    pub varying: Vec<bool>,
}

impl DecoderFit {
    /// Shares of varying targets whose alpha is the grid's smallest and largest.
    pub fn edge_shares(&self) -> (f64, f64) {
        let (lo, hi) = grid_edges(&self.alpha_grid);
        let n_varying = self.varying.iter().filter(|&&v| v).count().max(1) as f64;
        let share = |edge: f64| {
            (0..self.alphas.len())
                .filter(|&j| self.varying[j] && self.alphas[j] == edge)
                .count() as f64
                / n_varying
        };
        (share(lo), share(hi))
    }
}

/// Whether each column of `y` (rows × targets, column-major) varies over its rows.
pub(crate) fn varying_columns(y: faer::MatRef<'_, f32>) -> Vec<bool> {
    (0..y.ncols())
        .map(|j| (1..y.nrows()).any(|i| y[(i, j)] != y[(0, j)]))
        .collect()
}

/// The whole fit at once: Y gathered, the model saved, its test predictions scored.
fn fit_in_memory(
    estimator: &RidgeCv,
    [x, x_test]: [faer::MatRef<'_, f32>; 2],
    [row_ids, test_ids]: [&[usize]; 2],
    targets: &ImageTargets,
    (out, metadata): (&Path, BTreeMap<String, serde_json::Value>),
) -> Result<DecoderFit> {
    let width = targets.width();
    let y = targets.gather(row_ids)?;
    let y = row_major_view("Y", &y, (row_ids.len(), width))?;
    let mut model = estimator.fit(x, y)?;
    let predicted = model.predict(x_test)?;
    let truth = targets.columns(&targets.rows_of(test_ids)?, 0..width);
    let test_r = pearson_per_target(truth.as_ref(), predicted.as_ref())?;
    let fit = DecoderFit {
        alpha_grid: model.alpha_grid.clone(),
        alphas: model.alphas.clone(),
        cv_best: model.best_cv_scores().iter().map(|&s| s as f64).collect(),
        test_r,
        varying: varying_columns(y),
    };
    model.metadata = metadata;
    let (low, high) = fit.edge_shares();
    model
        .metadata
        .insert("alpha_at_edge".into(), serde_json::json!(low + high));
    model.save(out)?;
    write_test_r(out, &fit.test_r)?;
    Ok(fit)
}

pub(crate) fn write_test_r(out: &Path, test_r: &[f64]) -> Result<()> {
    let test_r32: Vec<f32> = test_r.iter().map(|&r| r as f32).collect();
    Ok(npy::write(
        &out.join(TEST_R_FILE),
        &[test_r.len()],
        &test_r32,
    )?)
}

/// The summary of a finished fit.
fn summarize_fit(
    fit: DecoderFit,
    roi: &Roi,
    spec: &DecoderSpec,
    targets: &ImageTargets,
    [n_voxels, n_train_rows, n_test]: [usize; 3],
    seconds: f64,
    out: &Path,
) -> DecoderSummary {
    let (low_edge, high_edge) = fit.edge_shares();
    let mut chosen = fit.alphas.clone();
    chosen.sort_by(f64::total_cmp);
    let (cv, test) = (summarize(&fit.cv_best), summarize(&fit.test_r));
    DecoderSummary {
        model: out.to_path_buf(),
        roi: roi.name.clone(),
        target: spec.target.name(),
        target_shape: targets.shape.clone(),
        n_voxels,
        n_train_rows,
        n_targets: targets.width(),
        seconds,
        median_alpha: chosen[chosen.len() / 2],
        alpha_at_low_edge: low_edge,
        alpha_at_high_edge: high_edge,
        cv_r2_mean: cv.mean,
        cv_r2_median: cv.median,
        test_r_mean: test.mean,
        test_r_median: test.median,
        n_test,
    }
}

fn grid_edges(grid: &[f64]) -> (f64, f64) {
    let lo = grid.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = grid.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

/// What [`decode_test`] wrote (fields in the order JSON objects list their keys, sorted).
#[derive(Clone, Debug, Serialize)]
pub struct DecodedTest {
    /// PNGs written: a pixel decoder's, one per test image; 0 for other targets.
    pub images_written: usize,
    /// Width of a prediction.
    pub n_targets: usize,
    /// Test images decoded.
    pub n_test: usize,
    /// The output folder.
    pub out: PathBuf,
    /// The subject's name, for the text.
    #[serde(skip)]
    pub subject: String,
    /// The decoder's ROI, for the text.
    #[serde(skip)]
    pub roi: String,
}

impl DecodedTest {
    /// What was decoded, in one line for people.
    pub fn text(&self) -> String {
        format!(
            "decoded {} test images of {} from {} into {}",
            self.n_test,
            self.subject,
            self.roi,
            self.out.display()
        )
    }
}

/// Decodes the test betas of the prepared subject at `subject_dir` with the decoder at `model`
/// (a `brainrecon fit` folder). Writes `out/predictions.npy` (n_test, d) float32 and
/// `out/ids.npy` (n_test,) int64; a pixel decoder also writes `out/<id>.png` per test image,
/// named by its 0-based 73k id.
pub fn decode_test(subject_dir: &Path, model: &Path, out: &Path) -> Result<DecodedTest> {
    let subject = PreparedSubject::open(subject_dir)?;
    let decoder = Decoder::load(model)?;
    let (ids, predictions) = decoder.predict_test(&subject)?;
    let width = decoder.model.n_targets();
    npy::write(
        &out.join("predictions.npy"),
        &[ids.len(), width],
        &predictions,
    )?;
    let ids_i64: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    npy::write(&out.join("ids.npy"), &[ids.len()], &ids_i64)?;
    let mut images_written = 0;
    if let Ok(Target::Pixels(size)) = Target::parse(&decoder.target) {
        for (row, &id) in ids.iter().enumerate() {
            let pixels = &predictions[row * width..(row + 1) * width];
            let image = brainrecon_formats::image::RgbImage::from_unit_f32(size, size, pixels);
            brainrecon_formats::image::write_png(&out.join(format!("{id}.png")), &image)?;
            images_written += 1;
        }
    }
    Ok(DecodedTest {
        images_written,
        n_targets: width,
        n_test: ids.len(),
        out: out.to_path_buf(),
        subject: subject.meta.subject,
        roi: decoder.roi,
    })
}

/// A fitted decoder with the metadata a route needs.
pub struct Decoder {
    /// The decoder folder (a `brainrecon fit` output).
    pub dir: PathBuf,
    /// The fitted ridge model: weights `[n_voxels, n_targets]`, alphas, voxel scaling.
    pub model: RidgeModel,
    /// The ROI it was fit on (from `model.json`).
    pub roi: String,
    /// The target's name (from `model.json`), e.g. `z`, `c`, `pixels:64`.
    pub target: String,
    /// Shape of one prediction (`[n_targets]` when `model.json` has none).
    pub target_shape: Vec<usize>,
}

impl Decoder {
    /// Loads the decoder in `dir`.
    ///
    /// # Errors
    /// An unreadable model, or a `model.json` without `roi` or `target` (not a `brainrecon fit`
    /// output) or with a `target_shape` that does not multiply to the model's targets.
    pub fn load(dir: &Path) -> Result<Self> {
        let model = RidgeModel::load(dir)?;
        let model_json = dir.join(brainrecon_ridge::MODEL_FILE);
        let text = |key: &str| -> Result<String> {
            model
                .metadata
                .get(key)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| {
                    RouteError::mismatch(
                        &model_json,
                        key,
                        "a decoder fit on a prepared subject by `brainrecon fit`",
                        "no such field",
                    )
                })
        };
        let roi = text("roi")?;
        let target = text("target")?;
        let target_shape: Vec<usize> = match model.metadata.get("target_shape") {
            Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
                RouteError::mismatch(&model_json, "target_shape", "a list of sizes", v)
            })?,
            None => vec![model.n_targets()],
        };
        if target_shape.iter().product::<usize>() != model.n_targets() {
            return Err(RouteError::mismatch(
                &model_json,
                "target_shape",
                format!("a shape of {} values", model.n_targets()),
                format!("{target_shape:?}"),
            ));
        }
        Ok(Decoder {
            dir: dir.to_path_buf(),
            model,
            roi,
            target,
            target_shape,
        })
    }

    /// The subject's ROI, checked against the voxels the decoder was fit on.
    pub fn roi_of(&self, subject: &PreparedSubject) -> Result<Roi> {
        let roi = subject.roi(&self.roi)?;
        if roi.n_voxels != self.model.n_features() {
            return Err(RouteError::mismatch(
                &self.dir.join(brainrecon_ridge::MODEL_FILE),
                "voxels",
                format!(
                    "{} voxels of {} as in {}",
                    self.model.n_features(),
                    self.roi,
                    subject.root.display()
                ),
                format!(
                    "{} voxels there (fit on another subject or ROI?)",
                    roi.n_voxels
                ),
            ));
        }
        Ok(roi)
    }

    /// Decoded targets of the subject's test images: (ids, row-major (n_test, d)).
    pub fn predict_test(&self, subject: &PreparedSubject) -> Result<(Vec<usize>, Vec<f32>)> {
        let roi = self.roi_of(subject)?;
        let betas = subject.betas(&roi, Split::Test)?;
        let ids = subject.test_stimulus_ids()?;
        if betas.voxels != self.model.n_features() {
            return Err(RouteError::mismatch(
                &self.dir.join(brainrecon_ridge::MODEL_FILE),
                "n_features",
                format!(
                    "{} voxels, the columns of the test betas of {} in {}",
                    betas.voxels,
                    self.roi,
                    subject.root.display()
                ),
                self.model.n_features().to_string(),
            ));
        }
        let predicted = self
            .model
            .predict_row_major(&betas.values, (betas.rows, betas.voxels))?;
        Ok((ids, predicted))
    }

    /// Per-target test Pearson r saved at fit time (empty when absent).
    pub fn test_r(&self) -> Result<Vec<f64>> {
        let path = self.dir.join(TEST_R_FILE);
        if !path.exists() {
            return Ok(Vec::new());
        }
        Ok(npy::read_f32(&path)?
            .data
            .iter()
            .map(|&r| r as f64)
            .collect())
    }

    /// Share of (non-constant) targets whose alpha is at either edge of the grid.
    pub fn alpha_at_edge(&self) -> f64 {
        if let Some(share) = self
            .model
            .metadata
            .get("alpha_at_edge")
            .and_then(|v| v.as_f64())
        {
            return share;
        }
        let (lo, hi) = grid_edges(&self.model.alpha_grid);
        let n = self.model.alphas.len().max(1) as f64;
        self.model
            .alphas
            .iter()
            .filter(|&&a| a == lo || a == hi)
            .count() as f64
            / n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_name_round_trip() {
        for text in ["z", "c", "clip-image", "pixels:32", "features/blip.npy"] {
            assert_eq!(Target::parse(text).unwrap().name(), text);
        }
        assert_eq!(Target::parse("vae").unwrap(), Target::parse("z").unwrap());
        assert!(Target::parse("pixels:2").is_err());
        assert!(Target::parse("latent").is_err());
        assert_eq!(Target::parse("z").unwrap().default_roi(), "streams/early");
        assert_eq!(Target::parse("c").unwrap().default_roi(), "streams/ventral");
    }

    #[test]
    fn grids_span_their_decades() {
        let grid = default_alphas(&Target::Features(FeatureKind::Vae));
        assert_eq!(grid.len(), 21);
        assert!((grid[0] - 0.1).abs() < 1e-12 && (grid[20] / 1e9 - 1.0).abs() < 1e-12);
        assert!((grid[2] - 1.0).abs() < 1e-12, "half decades");
        assert_eq!(standard_alphas().len(), 10);
    }
}
