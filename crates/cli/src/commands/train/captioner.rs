use crate::args::{DeviceArgs, JsonArg, PresetArgs};
use crate::commands::usage;
use brainrecon_zoo::shapes_blip::{
    train_captioner, CaptionerConfig, CaptionerProgress, SceneNaming,
};
use std::io::Write;
use std::path::PathBuf;

/// Train shapes-blip, the project's own small BLIP captioner, on the synthetic scenes.
///
/// BLIP's architecture at a small size (ViT image tower on 64 px images, BERT text decoder
/// cross-attending to its tokens), BLIP's captioning loss ("a picture of " + caption,
/// cross-entropy on the caption), AdamW with warm-up and cosine decay. Images enter in [0, 1]
/// without normalisation, as the published caption route feeds BLIP. A second stage trains the
/// text decoder alone on image tokens as ridge decodes them (each scene's tokens mixed with
/// their additive part over the scene attributes, shrunk and noised). The result is a
/// transformers `BlipForConditionalGeneration` folder that `--blip` accepts everywhere.
/// Checkpoints go to OUT/.train/ every 100 steps: rerunning the same command resumes, and the
/// same seed gives the same weights.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon train-captioner --out models/shapes-blip --seed 0\n  brainrecon caption --subject prepared/subj01 --decoders decoders --blip models/shapes-blip --out captions/subj01"
)]
pub struct Args {
    /// Output folder (transformers layout)
    #[arg(long)]
    out: PathBuf,
    /// Optimisation steps [default: the preset's, 6000 or 4]
    #[arg(long)]
    steps: Option<usize>,
    /// Peak learning rate (AdamW, warm-up then cosine decay)
    #[arg(long)]
    lr: Option<f64>,
    /// Share of batches whose image tokens are shrunk and noised as ridge predictions are (0-1)
    #[arg(long)]
    token_shrinkage: Option<f64>,
    /// Steps of the second stage: the text decoder alone on ridge-like image tokens (0 skips
    /// it) [default: the preset's, 3000 or 4]
    #[arg(long)]
    decoder_steps: Option<usize>,
    /// Seed of initialisation, data and augmentation
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
    let mut config = CaptionerConfig::preset(args.preset.preset());
    if let Some(steps) = args.steps {
        if steps == 0 {
            return Err(usage("--steps must be at least 1"));
        }
        config.steps = steps;
    }
    if let Some(lr) = args.lr {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(usage(format!("--lr must be a positive number, got {lr}")));
        }
        config.lr = lr;
    }
    if let Some(share) = args.token_shrinkage {
        if !(0.0..=1.0).contains(&share) {
            return Err(usage(format!(
                "--token-shrinkage must be between 0 and 1, got {share}"
            )));
        }
        config.token_shrinkage = share;
    }
    if let Some(steps) = args.decoder_steps {
        config.decoder_steps = steps;
    }
    let device = args.device.device()?;
    let show = crate::commands::show_progress();
    let summary = train_captioner(
        &args.out,
        &config,
        args.seed,
        &device,
        &mut |event| match event {
            CaptionerProgress::Step { step, total, loss } if show => {
                eprint!("\rcaptioner: step {step}/{total}, loss {loss:.4}   ");
                let _ = std::io::stderr().flush();
            }
            CaptionerProgress::Step { .. } => {}
            // Printed with or without a terminal: the record of a long run.
            CaptionerProgress::HeldOut {
                step,
                naming,
                additive,
            } => {
                eprintln!(
                    "{}step {step}: held-out scenes named: {}",
                    if show { "\n" } else { "" },
                    naming_line(&naming)
                );
                if let Some(additive) = additive {
                    eprintln!(
                        "  from their tokens' additive part: {}",
                        naming_line(&additive)
                    );
                }
            }
        },
    )?;
    if args.json.json {
        return crate::commands::print_json(&summary);
    }
    outln!(
        "trained shapes-blip in {:.0} s: {} parameters, final loss {:.4}, held-out scenes \
         named by colour and shape {:.0}% → {}",
        summary.seconds,
        summary.parameters,
        summary.losses.last().copied().unwrap_or(f64::NAN),
        100.0 * summary.held_out.colour_and_shape,
        args.out.display()
    )?;
    Ok(())
}

fn naming_line(naming: &SceneNaming) -> String {
    format!(
        "colour {:.0}%, shape {:.0}%, both {:.0}%, background {:.0}% (a wrong one {:.0}%)",
        100.0 * naming.colour,
        100.0 * naming.shape,
        100.0 * naming.colour_and_shape,
        100.0 * naming.background,
        100.0 * naming.wrong_background
    )
}
