use crate::commands::prelude::*;
use brainrecon_routes::score::folder_eval::{eval, EvalRequest};

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
#[command(mut_arg("device", |a| a.help("cpu, cuda or cuda:N: where the metric networks run")))]
#[command(mut_arg("json", |a| a.help("Print the table as JSON")))]
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
    #[command(flatten)]
    device: DeviceArgs,
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
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let evaluated = eval(
        &EvalRequest {
            stimuli: args.stimuli,
            recons: args.recons,
            clip: args.clip,
            metric_weights: args.metric_weights,
            protocol: args.protocol,
            device: args.device.choice()?,
            rows_per_page: args.rows_per_page,
            thumbnail: args.thumbnail,
            captions: args.captions,
            meteor_jar: args.meteor_jar,
            clip_score_model: args.clip_score_model,
            sheet: args.sheet,
            command: super::command_line(),
        },
        brainrecon_routes::reconstruct::eval_extras,
    )?;
    super::report(args.json.json, &evaluated, |_| evaluated.text())
}
