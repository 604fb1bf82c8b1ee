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
    #[command(flatten)]
    request: EvalRequest,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let request = EvalRequest {
        command: super::command_line(),
        ..args.request
    };
    let evaluated = eval(&request, brainrecon_routes::reconstruct::eval_extras)?;
    super::report(args.json.json, &evaluated, |_| evaluated.text())
}
