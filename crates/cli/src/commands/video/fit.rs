//! `brainrecon video fit`: ridge from the windows to each clip's context, motion and latent.

use super::WindowsArgs;
use crate::args::{DeviceArgs, JsonArg};
use crate::commands::{print_json, show_progress};
use brainrecon_diffusion::pipeline::StableDiffusion;
use brainrecon_routes::video::fit::{
    check_inputs, default_alphas, fit, ContextDecoder, LatentFrames, VideoFitOptions, DEFAULT_FOLDS,
};
use candle_core::DType;
use std::path::PathBuf;

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
    check_inputs(&args.data.prepared, &args.data.stimuli, &args.data.captions)?;
    let sd = StableDiffusion::load(&args.model, DType::F32, &args.device.device()?)?;
    let latent = args.latent.as_deref().map(|w| match w {
        "all" => LatentFrames::All,
        _ => LatentFrames::First,
    });
    // A failure leaves `--out` as it was: the staging folder goes, the output is untouched.
    let summary = brainrecon_core::fs::write_folder_atomic(&args.out, |staging| {
        let opts = VideoFitOptions {
            prepared: args.data.prepared,
            stimuli: args.data.stimuli,
            captions: args.data.captions,
            out: staging.to_path_buf(),
            alphas: args.alphas.unwrap_or_else(default_alphas),
            folds: args.folds,
            latent,
            motion: !args.no_motion,
            context: match args.context.as_str() {
                "words" => ContextDecoder::Words,
                _ => ContextDecoder::Ridge,
            },
            progress: show_progress(),
        };
        Ok::<_, anyhow::Error>(fit(&sd, &args.model, &opts)?)
    })?;
    if args.json.json {
        return print_json(&summary);
    }
    outln!(
        "decoded {} test windows from {} training windows ({} features): context CV R² {:.3}, \
         identification {:.3} (chance 0.5){}{}{} → {}",
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
        args.out.display()
    )?;
    Ok(())
}
