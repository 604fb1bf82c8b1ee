//! `brainrecon video fit`: ridge from the windows to each clip's context, motion and latent.

use super::WindowsArgs;
use crate::commands::prelude::*;
use brainrecon_routes::video::fit::{
    default_alphas, fit_folder, ContextDecoder, LatentFrames, VideoFitOptions, DEFAULT_FOLDS,
};

/// Decode each fMRI window to its clip's text context, motion (and latent) with ridge
///
/// The linear baseline of the video route (the Takagi-style route generalised to clips): ridge
/// from `video prepare`'s windows to the diffusion model's text context of each clip's caption,
/// to the clip's global velocity (least-squares motion of its frames) and, with --latent, to the
/// VAE latent of the clip's frames, alphas by K-fold CV grouped by segment. With --context
/// words the caption is decoded word by word instead (a ridge classifier per word on the
/// features an ANOVA F test keeps, the caption composed from the decoded words) and the test
/// window's context is that caption's. Also decodes the mean training window (MinD-Video's negative condition). Scores: CV R² and
/// two-way identification of the decoded test contexts (chance 0.5).
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon simulate --kind video --out sim-video\n  \
    brainrecon video prepare --cc2017 sim-video --subject 1 --lag 2 --out video-sub1\n  \
    brainrecon video fit --prepared video-sub1 --stimuli sim-video/stimuli --captions sim-video/stimuli/captions.tsv --out video-fit"
)]
pub struct Args {
    #[command(flatten)]
    data: WindowsArgs,
    /// Output folder (replaced whole when the fit succeeds, left as it was when it fails)
    #[arg(long)]
    out: PathBuf,
    /// The diffusion model whose text encoder and VAE make the targets
    #[arg(long, default_value = "shapes-ldm")]
    model: String,
    /// Ridge penalties tried (default 10^0 … 10^5)
    #[arg(long, value_delimiter = ',')]
    alphas: Option<Vec<f64>>,
    /// Folds of the CV over segments
    #[arg(long, default_value_t = DEFAULT_FOLDS)]
    folds: usize,
    /// Also decode the clip's VAE latents, for `video reconstruct --strength` < 1: the first
    /// frame's (`--latent` or `--latent first`), or every frame's (`--latent all`: a coarse
    /// clip whose layout and motion the generated clip keeps, as NeuroClips' perception
    /// reconstructor)
    #[arg(long, num_args = 0..=1, default_missing_value = "first", value_parser = ["first", "all"])]
    latent: Option<String>,
    /// Do not decode the clips' global velocity (measured from the stimulus frames; `video
    /// reconstruct` moves the initial noise by it)
    #[arg(long)]
    no_motion: bool,
    /// How the test contexts are decoded: `ridge` to the text encoder's context
    /// (MinD-Video's linear baseline), or `words`: the caption word by word (a screened ridge
    /// classifier per word, the caption composed from the decoded words; written to
    /// decoded_captions.tsv), then its context
    #[arg(long, default_value = "ridge", value_parser = ["ridge", "words"])]
    context: String,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let opts = VideoFitOptions {
        prepared: args.data.prepared,
        stimuli: args.data.stimuli,
        captions: args.data.captions,
        out: args.out,
        alphas: args.alphas.unwrap_or_else(default_alphas),
        folds: args.folds,
        latent: args.latent.as_deref().map(|w| match w {
            "all" => LatentFrames::All,
            _ => LatentFrames::First,
        }),
        motion: !args.no_motion,
        context: match args.context.as_str() {
            "words" => ContextDecoder::Words,
            _ => ContextDecoder::Ridge,
        },
        progress: show_progress(),
    };
    let summary = fit_folder(&args.model, &args.device.device()?, &opts)?;
    report(args.json.json, &summary, |_| summary.text(&opts.out))
}
