use super::usage;
use brainrecon_routes::caption::train::{train_captioner, CaptionerConfig};
use std::io::Write;
use std::path::PathBuf;

/// Train shapes-blip, the project's own small BLIP captioner, on the synthetic scenes.
///
/// BLIP's architecture at a small size (ViT image tower on 64 px images, BERT text decoder
/// cross-attending to its tokens), BLIP's captioning loss ("a picture of " + caption,
/// cross-entropy on the caption), AdamW with warm-up and cosine decay. Images enter in [0, 1]
/// without normalisation, as the published caption route feeds BLIP. The result is a
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
    /// Optimisation steps
    #[arg(long)]
    steps: Option<usize>,
    /// Seed of initialisation, data and augmentation
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, cuda or cuda:N
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut config = CaptionerConfig::shapes_blip();
    if let Some(steps) = args.steps {
        if steps == 0 {
            return Err(usage("--steps must be at least 1"));
        }
        config.steps = steps;
    }
    let device = super::device(&args.device)?;
    let show = super::show_progress();
    let summary = train_captioner(
        &args.out,
        &config,
        args.seed,
        &device,
        &mut |step, total, loss| {
            if show {
                eprint!("\rcaptioner: step {step}/{total}, loss {loss:.4}   ");
                if step == total {
                    eprintln!();
                }
                let _ = std::io::stderr().flush();
            }
        },
    )?;
    if args.json {
        return super::print_json(&summary);
    }
    println!(
        "trained shapes-blip in {:.0} s: {} parameters, final loss {:.4} → {}",
        summary.seconds,
        summary.parameters,
        summary.losses.last().copied().unwrap_or(f64::NAN),
        args.out.display()
    );
    Ok(())
}
