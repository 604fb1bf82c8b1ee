//! `brainrecon video train-motion`: motion modules for the video route.

use crate::commands::prelude::*;
use brainrecon_diffusion::pipeline::StableDiffusion;
use brainrecon_zoo::shapes_motion::{train_motion, MotionTrainConfig};
use candle_core::DType;

/// Train motion modules in a frozen image model on synthetic clips of moving shapes
///
/// AnimateDiff's temporal transformers (diffusers' MotionAdapter layout, output projections
/// starting at zero so the untrained model is the image model) are trained on the epsilon
/// objective with the image model's VAE and text encoder frozen, and its U-Net frozen too
/// unless --tune unet. Clips: a shape of shapes-ldm's scenes moving left, right, up, down or
/// standing still, captioned "a red circle moving left". Checkpoints go to OUT/.train/ every
/// 100 steps; rerunning resumes, and the same seed gives the same weights. The result loads
/// with --adapter OUT.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon video train-motion --tune unet --out models/shapes-motion --seed 0\n  \
    brainrecon video reconstruct --decoded video-fit --adapter models/shapes-motion --out video-recon"
)]
pub struct Args {
    /// Output folder (a diffusers MotionAdapter folder; UNetMotionModel with --tune unet)
    #[arg(long)]
    out: PathBuf,
    /// The frozen image model: shapes-ldm (built in), a diffusers folder or a cached id
    #[arg(long, default_value = "shapes-ldm")]
    model: String,
    /// Training steps
    #[arg(long, default_value_t = MotionTrainConfig::default().steps)]
    steps: usize,
    /// Clips per step
    #[arg(long, default_value_t = MotionTrainConfig::default().batch)]
    batch: usize,
    /// Frames per clip
    #[arg(long, default_value_t = MotionTrainConfig::default().frames)]
    frames: usize,
    /// Peak learning rate (AdamW, warm-up then cosine)
    #[arg(long, default_value_t = MotionTrainConfig::default().lr)]
    lr: f64,
    /// What else is trained: none (motion modules only, a MotionAdapter) or unet (the image
    /// U-Net too, written as a whole UNetMotionModel, as MinD-Video tunes its U-Net)
    #[arg(long, default_value = "none", value_parser = ["none", "unet"])]
    tune: String,
    /// Favour high-noise timesteps: t/T = s·u / (1 + (s − 1)·u) for uniform u (1: uniform)
    #[arg(long, default_value_t = MotionTrainConfig::default().timestep_shift)]
    timestep_shift: f64,
    /// Seed of initialisation, clips and noise
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = MotionTrainConfig {
        steps: args.steps,
        batch: args.batch,
        frames: args.frames,
        lr: args.lr,
        tune_unet: args.tune == "unet",
        timestep_shift: args.timestep_shift,
        ..MotionTrainConfig::default()
    };
    config.check()?;
    let device = args.device.device()?;
    let sd = StableDiffusion::load(&args.model, DType::F32, &device)?;
    let show = show_progress();
    let started = std::time::Instant::now();
    let summary = train_motion(&sd, &args.out, &config, args.seed, &mut |step, n, loss| {
        step_line(show, "motion modules", step, n, loss)
    })?;
    args.json.print(&summary, |s| {
        s.text(&config, started.elapsed().as_secs_f64())
    })
}
