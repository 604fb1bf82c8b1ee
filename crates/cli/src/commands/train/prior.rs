use crate::commands::prelude::*;
use brainrecon_zoo::shapes_ldm::{train_prior, PriorConfig, TrainEngine};

/// Train shapes-ldm, the project's own small latent diffusion model, on the synthetic scenes.
///
/// Stage 1 trains the AutoencoderKL (64 px → 4×16×16), stage 2 fine-tunes its decoder alone
/// (the latent space stays put), stage 3 trains the CLIP-style text encoder and the U-Net
/// together (epsilon objective, 10% empty captions for classifier-free
/// guidance), with AdamW. The result is a diffusers folder that `--model` accepts everywhere.
/// Checkpoints go to OUT/.train/ every 100 steps: rerunning the same command resumes, and the
/// same seed gives the same weights.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon train-prior --out models/shapes-ldm --seed 0 --device cuda\n  brainrecon generate --model models/shapes-ldm --prompt \"a red circle on a grey background\" --out red.png"
)]
pub struct Args {
    /// Output folder (diffusers layout)
    #[arg(long)]
    out: PathBuf,
    /// Denoiser (text encoder + U-Net) steps [default: the preset's, 4500 or 3]
    #[arg(long)]
    steps: Option<usize>,
    /// Autoencoder steps [default: the preset's, 4000 or 3]
    #[arg(long)]
    vae_steps: Option<usize>,
    /// Steps of the decoder-only fine-tuning (0 skips it) [default: the preset's, 2000 or 3]
    #[arg(long)]
    decoder_steps: Option<usize>,
    /// Seed of initialisation, data and noise
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// What differentiates the denoiser's U-Net on the CPU: the project's tape or candle's
    /// autograd (other devices always take candle's)
    #[arg(long, default_value = "tape", value_parser = ["tape", "candle"])]
    engine: String,
    #[command(flatten)]
    preset: PresetArgs,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut config = PriorConfig::preset(args.preset.preset);
    config.unet_steps = args.steps.unwrap_or(config.unet_steps);
    config.vae_steps = args.vae_steps.unwrap_or(config.vae_steps);
    config.decoder_steps = args.decoder_steps.unwrap_or(config.decoder_steps);
    config.engine = TrainEngine::parse(&args.engine).map_err(|e| usage(format!("--{e}")))?;
    config.check()?;
    let device = args.device.device()?;
    let show = show_progress();
    let started = std::time::Instant::now();
    let summary = train_prior(
        &args.out,
        &config,
        args.seed,
        &device,
        &mut |stage, step, n, loss| step_line(show, stage.name(), step, n, loss),
    )?;
    args.json
        .print(&summary, |s| s.text(started.elapsed().as_secs_f64()))
}
