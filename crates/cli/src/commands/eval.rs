use super::usage;
use brainrecon_data::image::{read_png, write_png, RgbImage};
use brainrecon_data::prepared::PreparedSubject;
use brainrecon_metrics::MetricsTable;
use brainrecon_routes::evaluate::{evaluate, EvalOptions, SuiteTable};
use brainrecon_routes::linear::Manifest;
use brainrecon_routes::suite::{self, Networks, Protocol};
use std::path::{Path, PathBuf};

/// Compare reconstructions with the images that were seen.
///
/// Every image set gets the field's eight metrics, computed as the published code computes them
/// (`--protocol mindeye`, MindEye2's evaluation, default; or `brain-diffuser`): PixCorr, SSIM,
/// AlexNet(2), AlexNet(5), InceptionV3, CLIP, EfficientNet-B1 and SwAV. The networks' weights
/// come from `--metric-weights DIR` (safetensors with torchvision's names, written by
/// tools/convert_torchvision.py) and CLIP from `--clip` (default: openai/clip-vit-large-patch14
/// when it is in the Hugging Face cache); a metric whose weights are absent is shown as absent,
/// with the command that supplies them.
///
/// On a `brainrecon reconstruct` result (a directory with manifest.json) it also scores the
/// decoded-z images and every sample against the stimuli at the subject's image size (PixCorr,
/// SSIM, pixel MSE, two-way identification on pixels) and the decoded features themselves
/// (latent MSE, per-image Pearson, two-way identification in latent space). It writes
/// RESULT/eval/metrics.json, per-image values of the eight metrics (RESULT/eval/suite/*.npy,
/// images × 8, NaN where absent) and a self-contained HTML report (RESULT/eval/report.html:
/// image grid, both tables, published rows for comparison, decoding accuracy, the commands,
/// model and versions).
///
/// On any other directory of PNGs named by 0-based 73k id (`<id>.png`) it prints the metrics,
/// with the stimuli resampled to the reconstructions' size for the pixel table.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon eval --stimuli prepared/subj01 --recons recons/linear --metric-weights ~/metric-weights\n  brainrecon eval --stimuli prepared/subj01 --recons recons/linear --protocol brain-diffuser --clip openai/clip-vit-large-patch14\n  brainrecon eval --stimuli prepared/subj01 --recons recons/pixels --json"
)]
pub struct Args {
    /// A prepared subject, or a directory of <id>.png stimuli
    #[arg(long)]
    stimuli: PathBuf,
    /// A `brainrecon reconstruct` result, or a directory of <id>.png reconstructions
    #[arg(long)]
    recons: PathBuf,
    /// CLIP vision model of the CLIP column (folder, snapshot or cached id; default:
    /// openai/clip-vit-large-patch14 when it is in the Hugging Face cache)
    #[arg(long)]
    clip: Option<String>,
    /// Folder of the metric networks' weights (alexnet, inception_v3, efficientnet_b1,
    /// efficientnet_b1_v1, swav_resnet50 .safetensors); default $BRAINRECON_METRIC_WEIGHTS
    #[arg(long)]
    metric_weights: Option<PathBuf>,
    /// mindeye (MindEye2's evaluation) or brain-diffuser (its scripts' preprocessing, SSIM and
    /// EfficientNet weights)
    #[arg(long, default_value = "mindeye")]
    protocol: String,
    /// cpu, cuda or cuda:N: where the metric networks run
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Report: test images per page
    #[arg(long, default_value_t = 50)]
    rows_per_page: usize,
    /// Report: thumbnail size in pixels
    #[arg(long, default_value_t = 128)]
    thumbnail: usize,
    /// Captions to score (captions.json of `brainrecon caption`, or its folder); a
    /// `--method caption` run's own are scored without it
    #[arg(long)]
    captions: Option<PathBuf>,
    /// pycocoevalcap's meteor-1.5.jar (with data/paraphrase-en.gz beside it), for METEOR
    #[arg(long)]
    meteor_jar: Option<PathBuf>,
    /// CLIP model of CLIP-S / RefCLIP-S (folder or cached id; default:
    /// openai/clip-vit-base-patch32, clipscore.py's, when it is in the Hugging Face cache)
    #[arg(long)]
    clip_score_model: Option<String>,
    /// Also write a contact sheet PNG: stimuli on top, reconstructions below, 10 per row
    #[arg(long)]
    sheet: Option<PathBuf>,
    /// Print the table as JSON
    #[arg(long)]
    json: bool,
}

/// Pairs of (truth, reconstruction) tiled in rows of `per_row`: truth above its reconstruction.
fn contact_sheet(truths: &[RgbImage], recons: &[RgbImage], per_row: usize) -> RgbImage {
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

fn reconstructions(dir: &Path) -> anyhow::Result<Vec<(usize, PathBuf)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| brainrecon_data::DataError::io(dir, e))?;
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

/// The metric suite's networks for `args` (every file and argument checked before any work).
fn suite_networks(args: &Args) -> anyhow::Result<Networks> {
    let protocol = Protocol::parse(&args.protocol).ok_or_else(|| {
        usage(format!(
            "--protocol: expected mindeye or brain-diffuser, found '{}'",
            args.protocol
        ))
    })?;
    let weights = args
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
    let device = super::device(&args.device)?;
    let clip = super::features::clip_for_suite(args.clip.as_deref(), &device)?;
    Ok(Networks::load(
        args.metric_weights.as_deref(),
        clip,
        protocol,
        &device,
    )?)
}

fn route_eval(args: &Args) -> anyhow::Result<()> {
    let subject = PreparedSubject::open(&args.stimuli)?;
    let networks = suite_networks(args)?;
    // Only a run with captions needs the CLIP-S model.
    let has_captions =
        args.captions.is_some() || Manifest::load(&args.recons).is_ok_and(|m| m.captions.is_some());
    let clip_score_model = if has_captions {
        clip_score_model(args.clip_score_model.as_deref())?
    } else {
        None
    };
    let options = EvalOptions {
        suite: &networks,
        rows_per_page: args.rows_per_page.max(1),
        thumbnail: args.thumbnail.max(8),
        command: super::command_line(),
        captions: args.captions.as_deref(),
        meteor_jar: args.meteor_jar.as_deref(),
        clip_score_model: clip_score_model.as_ref(),
    };
    let evaluation = evaluate(&subject, &args.recons, &options)?;
    if args.json {
        return super::print_json(&evaluation);
    }
    out!("{evaluation}")?;
    outln!("metrics: {}", evaluation.metrics_json.display())?;
    outln!("report:  {}", evaluation.report[0].display())?;
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.recons.join(Manifest::FILE).exists() {
        return route_eval(&args);
    }
    let recon_files = reconstructions(&args.recons)?;
    let subject = if args.stimuli.join("subject.json").exists() {
        Some(PreparedSubject::open(&args.stimuli)?)
    } else {
        None
    };
    let store = subject.as_ref().map(|s| s.images()).transpose()?;
    let (mut truths, mut recons) = (Vec::new(), Vec::new());
    let (mut truth_images, mut recon_images) = (Vec::new(), Vec::new());
    let mut truth_native = Vec::new();
    let mut size = None;
    for (id, path) in &recon_files {
        let recon = read_png(path)?;
        let expected = *size.get_or_insert((recon.height, recon.width));
        if (recon.height, recon.width) != expected {
            return Err(usage(format!(
                "{}: expected {}×{} like the other reconstructions, found {}×{}",
                path.display(),
                expected.0,
                expected.1,
                recon.height,
                recon.width
            )));
        }
        let truth: RgbImage = match &store {
            Some(store) => store.get(*id).ok_or_else(|| {
                usage(format!(
                    "{}: image {id} is not among the subject's stimuli",
                    args.stimuli.display()
                ))
            })?,
            None => read_png(&args.stimuli.join(format!("{id}.png")))?,
        };
        truth_native.push(truth.clone());
        let truth = truth.resize(recon.height, recon.width);
        truths.push(truth.to_unit_f32());
        recons.push(recon.to_unit_f32());
        truth_images.push(truth);
        recon_images.push(recon);
    }
    let (h, w) = size.expect("at least one reconstruction");
    let table = MetricsTable::from_rgb_pairs(&truths, &recons, h, w)?;
    if let Some(path) = &args.sheet {
        write_png(path, &contact_sheet(&truth_images, &recon_images, 10))?;
    }
    let suite = if truth_native.len() >= 2 {
        let networks = suite_networks(&args)?;
        let truth = suite::prepare(&truth_native, networks.protocol);
        let recon = suite::prepare(&recon_images, networks.protocol);
        let row = suite::score(
            "reconstructions",
            &truth,
            &networks.features(&truth, &|_| {})?,
            &recon,
            &networks.features(&recon, &|_| {})?,
            networks.protocol,
        )?;
        Some(SuiteTable {
            protocol: networks.protocol,
            columns: suite::column_headers(),
            rows: vec![row],
            absent: networks.absent.clone(),
            per_image: Vec::new(),
        })
    } else {
        None
    };
    if args.json {
        // The pixel table's fields stay at the top level (as before the suite existed); the suite joins them.
        let mut value = serde_json::to_value(&table)?;
        value["suite"] = serde_json::to_value(&suite)?;
        return super::print_json(&value);
    }
    out!("{table}")?;
    if let Some(suite) = suite {
        out!("{suite}")?;
    }
    Ok(())
}

/// The named CLIP model of CLIP-S, else clipscore.py's ViT-B/32 when it is in the Hugging Face
/// cache, else none (the caption table then shows CLIP-S as absent).
fn clip_score_model(
    name: Option<&str>,
) -> anyhow::Result<Option<brainrecon_diffusion::clip_model::ClipModel>> {
    use brainrecon_diffusion::clip_model::load_clip_model;
    use brainrecon_diffusion::pipeline::{DType, Device};
    const CLIPSCORE_MODEL: &str = "openai/clip-vit-base-patch32";
    match name {
        Some(name) => Ok(Some(load_clip_model(name, DType::F32, &Device::Cpu)?)),
        None => Ok(load_clip_model(CLIPSCORE_MODEL, DType::F32, &Device::Cpu).ok()),
    }
}
