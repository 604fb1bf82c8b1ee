use crate::args::{DeviceArgs, JsonArg, PresetArgs};
use crate::commands::usage;
use brainrecon_zoo::shapes_ldm::{train_prior, PriorConfig, Stage};
use std::io::Write;
use std::path::PathBuf;

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
    #[command(flatten)]
    preset: PresetArgs,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut config = PriorConfig::preset(args.preset.preset());
    if let Some(steps) = args.steps {
        config.unet_steps = steps;
    }
    if let Some(steps) = args.vae_steps {
        config.vae_steps = steps;
    }
    if let Some(steps) = args.decoder_steps {
        config.decoder_steps = steps;
    }
    if config.unet_steps == 0 || config.vae_steps == 0 {
        return Err(usage("--steps and --vae-steps must be at least 1"));
    }
    let device = args.device.device()?;
    let show = crate::commands::show_progress();
    let started = std::time::Instant::now();
    let summary = train_prior(
        &args.out,
        &config,
        args.seed,
        &device,
        &mut |stage, step, total, loss| {
            if show {
                let name = match stage {
                    Stage::Autoencoder => "autoencoder",
                    Stage::Decoder => "decoder",
                    Stage::Denoiser => "denoiser",
                };
                eprint!("\r{name}: step {step}/{total}, loss {loss:.4}   ");
                if step == total {
                    eprintln!();
                }
                let _ = std::io::stderr().flush();
            }
        },
    )?;
    if args.json.json {
        return crate::commands::print_json(&summary);
    }
    outln!(
        "trained shapes-ldm in {:.0} s: VAE {} parameters (scaling factor {:.4}), text encoder \
         {}, U-Net {}; final losses {:.4} / {:.4} / {:.4} → {}",
        started.elapsed().as_secs_f64(),
        summary.vae_parameters,
        summary.scaling_factor,
        summary.text_encoder_parameters,
        summary.unet_parameters,
        summary.vae_losses.last().copied().unwrap_or(f64::NAN),
        summary.decoder_losses.last().copied().unwrap_or(f64::NAN),
        summary.unet_losses.last().copied().unwrap_or(f64::NAN),
        args.out.display()
    )?;
    Ok(())
}
