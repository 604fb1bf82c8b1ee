use crate::commands::prelude::*;
use brainrecon_zoo::shapes_blip::{train_captioner, CaptionerConfig, CaptionerProgress};

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
    let mut config = CaptionerConfig::preset(args.preset.preset);
    config.steps = args.steps.unwrap_or(config.steps);
    config.lr = args.lr.unwrap_or(config.lr);
    config.token_shrinkage = args.token_shrinkage.unwrap_or(config.token_shrinkage);
    config.decoder_steps = args.decoder_steps.unwrap_or(config.decoder_steps);
    config.check()?;
    let device = args.device.device()?;
    let show = show_progress();
    let summary = train_captioner(&args.out, &config, args.seed, &device, &mut |event| {
        match event {
            CaptionerProgress::Step { step, total, loss } => {
                let line = format_args!("captioner: step {step}/{total}, loss {loss:.4}");
                progress_line(show, line, false)
            }
            // Printed with or without a terminal: the record of a long run.
            CaptionerProgress::HeldOut {
                step,
                naming,
                additive,
            } => {
                let start = if show { "\n" } else { "" };
                eprintln!(
                    "{start}step {step}: held-out scenes named: {}",
                    naming.text()
                );
                if let Some(additive) = additive {
                    eprintln!("  from their tokens' additive part: {}", additive.text());
                }
            }
        }
    })?;
    args.json.print(&summary, |s| s.text())
}
