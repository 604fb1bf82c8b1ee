//! Scores a folder of reconstructions named `<id>.png` against the images that were seen
//! (a prepared subject's stimuli, or a folder of `<id>.png`): the pixel metrics table, the
//! metric suite when there are two images or more, and an optional contact sheet. This is
//! `brainrecon eval` on anything that is not a `brainrecon reconstruct` result.

use crate::error::{Result, RouteError};
use crate::score::evaluate::SuiteTable;
use crate::score::suite::{self, Networks};
use brainrecon_core::DataError;
use brainrecon_datasets::prepared::PreparedSubject;
use brainrecon_formats::image::{read_png, write_png, RgbImage};
use brainrecon_metrics::MetricsTable;
use std::path::{Path, PathBuf};

fn usage(message: impl Into<String>) -> RouteError {
    RouteError::Usage(message.into())
}

/// The scores of one folder.
pub struct FolderScores {
    /// The pixel metrics per image and their means.
    pub table: MetricsTable,
    /// The metric suite (two images or more).
    pub suite: Option<SuiteTable>,
}

/// Pairs of (truth, reconstruction) tiled in rows of `per_row`: truth above its reconstruction.
pub fn contact_sheet(truths: &[RgbImage], recons: &[RgbImage], per_row: usize) -> RgbImage {
    let (h, w) = (recons[0].height, recons[0].width);
    let gap = 2;
    let rows = truths.len().div_ceil(per_row);
    let (sheet_h, sheet_w) = (rows * (2 * h + 3 * gap), per_row * (w + gap) + gap);
    let mut pixels = vec![255u8; sheet_h * sheet_w * 3];
    for (k, (truth, recon)) in truths.iter().zip(recons).enumerate() {
        let (top, left) = (
            (k / per_row) * (2 * h + 3 * gap) + gap,
            (k % per_row) * (w + gap) + gap,
        );
        for (offset, image) in [(0, truth), (h + gap, recon)] {
            for y in 0..h {
                let src = &image.pixels[y * w * 3..(y + 1) * w * 3];
                let at = ((top + offset + y) * sheet_w + left) * 3;
                pixels[at..at + w * 3].copy_from_slice(src);
            }
        }
    }
    RgbImage::new(sheet_h, sheet_w, pixels)
}

/// The `<id>.png` files of `dir`, by id; none is an error naming the folder.
pub fn reconstructions(dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "png") {
            if let Some(id) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok())
            {
                found.push((id, path));
            }
        }
    }
    found.sort();
    if found.is_empty() {
        return Err(usage(format!(
            "{}: expected reconstructions named <id>.png, found none",
            dir.display()
        )));
    }
    Ok(found)
}

/// Scores the reconstructions in `recons` against `stimuli` (a prepared subject, or a folder
/// of `<id>.png`); each truth is resized to the reconstructions' size. `networks` loads the
/// metric suite's networks, called only when there are two images or more; `sheet` writes the
/// contact sheet there.
pub fn score_folder<E: From<RouteError>>(
    recons: &Path,
    stimuli: &Path,
    sheet: Option<&Path>,
    networks: impl FnOnce() -> std::result::Result<Networks, E>,
) -> std::result::Result<FolderScores, E> {
    let recon_files = reconstructions(recons)?;
    let subject = if stimuli.join("subject.json").exists() {
        Some(PreparedSubject::open(stimuli).map_err(RouteError::from)?)
    } else {
        None
    };
    let store = subject
        .as_ref()
        .map(|s| s.images())
        .transpose()
        .map_err(RouteError::from)?;
    let (mut truths, mut recon_units) = (Vec::new(), Vec::new());
    let (mut truth_images, mut recon_images) = (Vec::new(), Vec::new());
    let mut truth_native = Vec::new();
    let mut size = None;
    for (id, path) in &recon_files {
        let recon = read_png(path).map_err(RouteError::from)?;
        let expected = *size.get_or_insert((recon.height, recon.width));
        if (recon.height, recon.width) != expected {
            return Err(usage(format!(
                "{}: expected {}×{} like the other reconstructions, found {}×{}",
                path.display(),
                expected.0,
                expected.1,
                recon.height,
                recon.width
            ))
            .into());
        }
        let truth: RgbImage = match &store {
            Some(store) => store.get(*id).ok_or_else(|| {
                usage(format!(
                    "{}: image {id} is not among the subject's stimuli",
                    stimuli.display()
                ))
            })?,
            None => read_png(&stimuli.join(format!("{id}.png"))).map_err(RouteError::from)?,
        };
        truth_native.push(truth.clone());
        let truth = truth.resize(recon.height, recon.width);
        truths.push(truth.to_unit_f32());
        recon_units.push(recon.to_unit_f32());
        truth_images.push(truth);
        recon_images.push(recon);
    }
    let (h, w) = size.expect("at least one reconstruction");
    let table =
        MetricsTable::from_rgb_pairs(&truths, &recon_units, h, w).map_err(RouteError::from)?;
    if let Some(path) = sheet {
        write_png(path, &contact_sheet(&truth_images, &recon_images, 10))
            .map_err(RouteError::from)?;
    }
    let suite = if truth_native.len() >= 2 {
        Some(suite_table(&networks()?, &truth_native, &recon_images)?)
    } else {
        None
    };
    Ok(FolderScores { table, suite })
}

/// The metric suite's row of the pairs.
fn suite_table(
    networks: &Networks,
    truths: &[RgbImage],
    recons: &[RgbImage],
) -> Result<SuiteTable> {
    let truth = suite::prepare(truths, networks.protocol);
    let recon = suite::prepare(recons, networks.protocol);
    let row = suite::score(
        "reconstructions",
        &truth,
        &networks.features(&truth, &|_| {})?,
        &recon,
        &networks.features(&recon, &|_| {})?,
        networks.protocol,
    )?;
    Ok(SuiteTable {
        protocol: networks.protocol,
        columns: suite::column_headers(),
        rows: vec![row],
        absent: networks.absent.clone(),
        per_image: Vec::new(),
    })
}

/// `brainrecon eval` as the command line asks for it.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct EvalRequest {
    /// A prepared subject, or a folder of `<id>.png` stimuli.
    #[cfg_attr(
        feature = "cli",
        arg(long, help = "A prepared subject, or a directory of <id>.png stimuli")
    )]
    pub stimuli: PathBuf,
    /// A reconstruction folder (with manifest.json), or a folder of `<id>.png`.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "A `brainrecon reconstruct` result, or a directory of <id>.png reconstructions"
        )
    )]
    pub recons: PathBuf,
    /// The CLIP vision model of the CLIP column (default [`crate::decode::clip::DEFAULT_CLIP`] when
    /// cached).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "CLIP vision model of the CLIP column (folder, snapshot or cached id; default: openai/clip-vit-large-patch14 when it is in the Hugging Face cache)"
        )
    )]
    pub clip: Option<String>,
    /// The metric networks' weights (default `$BRAINRECON_METRIC_WEIGHTS`).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Folder of the metric networks' weights (alexnet, inception_v3, efficientnet_b1, efficientnet_b1_v1, swav_resnet50 .safetensors); default $BRAINRECON_METRIC_WEIGHTS"
        )
    )]
    pub metric_weights: Option<PathBuf>,
    /// mindeye or brain-diffuser.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value = "mindeye",
            help = "mindeye (MindEye2's evaluation) or brain-diffuser (its scripts' preprocessing, SSIM and EfficientNet weights)"
        )
    )]
    pub protocol: String,
    /// Where the metric networks run.
    #[cfg_attr(feature = "cli", arg(long, default_value = "cpu", value_parser = crate::decode::options::parse_device, help = "cpu, cuda or cuda:N"))]
    pub device: brainrecon_core::Device,
    /// Report: test images per page, thumbnail size.
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 50, help = "Report: test images per page")
    )]
    pub rows_per_page: usize,
    /// Report: thumbnail side (px).
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 128, help = "Report: thumbnail size in pixels")
    )]
    pub thumbnail: usize,
    /// Captions to score.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Captions to score (captions.json of `brainrecon caption`, or its folder); a `--method caption` run's own are scored without it"
        )
    )]
    pub captions: Option<PathBuf>,
    /// pycocoevalcap's meteor-1.5.jar.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "pycocoevalcap's meteor-1.5.jar (with data/paraphrase-en.gz beside it), for METEOR"
        )
    )]
    pub meteor_jar: Option<PathBuf>,
    /// The CLIP model of CLIP-S (default clipscore.py's when cached).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "CLIP model of CLIP-S / RefCLIP-S (folder or cached id; default: openai/clip-vit-base-patch32, clipscore.py's, when it is in the Hugging Face cache)"
        )
    )]
    pub clip_score_model: Option<String>,
    /// A contact sheet to write (a folder of PNGs only).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Also write a contact sheet PNG: stimuli on top, reconstructions below, 10 per row"
        )
    )]
    pub sheet: Option<PathBuf>,
    /// The command recorded in the report.
    #[cfg_attr(feature = "cli", arg(skip))]
    pub command: String,
}

/// What [`eval`] found: a reconstruction run's evaluation, or a folder's scores.
pub enum Evaluated {
    /// A reconstruction folder (with `manifest.json`) evaluated against its prepared subject.
    Route(crate::score::evaluate::Evaluation),
    /// A folder of `<id>.png` scored against stimulus PNGs.
    Folder(FolderScores),
}

impl Evaluated {
    /// The tables and files as the command prints them.
    pub fn text(&self) -> String {
        match self {
            Evaluated::Route(e) => format!(
                "{e}metrics: {}\nreport:  {}\n",
                e.metrics_json.display(),
                e.report[0].display()
            ),
            Evaluated::Folder(scores) => match &scores.suite {
                Some(suite) => format!("{}{suite}", scores.table),
                None => scores.table.to_string(),
            },
        }
    }
}

/// The JSON the command prints: a folder's pixel table keeps its fields at the top level (as
/// before the suite existed), the suite beside them.
impl serde::Serialize for Evaluated {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error;
        match self {
            Evaluated::Route(e) => e.serialize(serializer),
            Evaluated::Folder(scores) => {
                let mut value = serde_json::to_value(&scores.table).map_err(S::Error::custom)?;
                value["suite"] = serde_json::to_value(&scores.suite).map_err(S::Error::custom)?;
                value.serialize(serializer)
            }
        }
    }
}

/// Evaluates `request.recons`: a reconstruction run fully (metrics.json, the report), any other
/// folder of PNGs by its tables. `find_extras` supplies the routes' parts of a run's evaluation.
pub fn eval(
    request: &EvalRequest,
    find_extras: crate::score::evaluate::ExtrasFinder,
) -> Result<Evaluated> {
    let r = request;
    if !r.recons.join(crate::linear::Manifest::FILE).exists() {
        return Ok(Evaluated::Folder(score_folder(
            &r.recons,
            &r.stimuli,
            r.sheet.as_deref(),
            || suite_networks(r),
        )?));
    }
    let subject = PreparedSubject::open(&r.stimuli)?;
    let networks = suite_networks(r)?;
    // Only a run with captions needs the CLIP-S model.
    let has_captions = r.captions.is_some()
        || crate::linear::Manifest::load(&r.recons).is_ok_and(|m| m.captions.is_some());
    let clip_score_model = if has_captions {
        clip_score_model(r.clip_score_model.as_deref())?
    } else {
        None
    };
    let options = crate::score::evaluate::EvalOptions {
        suite: &networks,
        rows_per_page: r.rows_per_page.max(1),
        thumbnail: r.thumbnail.max(8),
        command: r.command.clone(),
        captions: r.captions.as_deref(),
        meteor_jar: r.meteor_jar.as_deref(),
        clip_score_model: clip_score_model.as_ref(),
    };
    Ok(Evaluated::Route(crate::score::evaluate::evaluate(
        &subject,
        &r.recons,
        &options,
        find_extras,
    )?))
}

/// The metric suite's networks (every file and argument checked before any work).
fn suite_networks(r: &EvalRequest) -> Result<Networks> {
    let protocol = suite::Protocol::parse(&r.protocol).ok_or_else(|| {
        usage(format!(
            "--protocol: expected mindeye or brain-diffuser, found '{}'",
            r.protocol
        ))
    })?;
    let weights = r
        .metric_weights
        .clone()
        .or_else(|| std::env::var_os("BRAINRECON_METRIC_WEIGHTS").map(PathBuf::from));
    if let Some(dir) = &weights {
        if !dir.is_dir() {
            return Err(usage(format!(
                "--metric-weights {}: not a folder (write one with `python tools/convert_torchvision.py --out DIR`)",
                dir.display()
            )));
        }
    }
    let device = crate::decode::options::open_device(r.device)?;
    let clip = clip_for_suite(r.clip.as_deref(), &device)?;
    Networks::load(r.metric_weights.as_deref(), clip, protocol, &device)
}

/// The CLIP vision tower of the metric suite: the named one, else the default
/// ([`crate::decode::clip::DEFAULT_CLIP`], MindEye's) when it is in the Hugging Face cache, else none.
pub fn clip_for_suite(
    model: Option<&str>,
    device: &brainrecon_diffusion::pipeline::Device,
) -> Result<Option<(String, brainrecon_diffusion::clip_vision::ClipVisionModel)>> {
    use brainrecon_nn::ModelError;
    let dtype = brainrecon_diffusion::pipeline::DType::F32;
    let name = model.unwrap_or(crate::decode::clip::DEFAULT_CLIP);
    match brainrecon_diffusion::clip_vision::load_clip_vision(name, dtype, device) {
        Ok((vision, _)) => Ok(Some((name.to_string(), vision))),
        // The default is not in the cache: the suite shows CLIP as absent, with the command.
        Err(ModelError::ModelNotFound { .. }) if model.is_none() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The named CLIP model of CLIP-S, else clipscore.py's ViT-B/32 when it is in the Hugging Face
/// cache, else none (the caption table then shows CLIP-S as absent).
fn clip_score_model(
    name: Option<&str>,
) -> Result<Option<brainrecon_diffusion::clip_model::ClipModel>> {
    use brainrecon_diffusion::clip_model::load_clip_model;
    use brainrecon_diffusion::pipeline::{DType, Device};
    const CLIPSCORE_MODEL: &str = "openai/clip-vit-base-patch32";
    match name {
        Some(name) => Ok(Some(load_clip_model(name, DType::F32, &Device::Cpu)?)),
        None => Ok(load_clip_model(CLIPSCORE_MODEL, DType::F32, &Device::Cpu).ok()),
    }
}
