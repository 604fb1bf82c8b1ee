use crate::commands::prelude::*;
use brainrecon_zoo::genres_clap::train::{train_genres_clap, ClapProgress};
use brainrecon_zoo::genres_clap::GenresClapConfig;

/// Train genres-clap, the project's own small CLAP, on synthetic music and its captions.
///
/// transformers' `ClapModel` at a small size (HTSAT over a 32-bin mel spectrogram folded into
/// 128 × 128 and cut into 8 × 8 patches, a 2-layer RoBERTa text tower with a byte-level BPE
/// trained on the captions, a 32-d joint space). Clips come from the synthetic music generator (`simulate --kind music`)
/// in a stream no simulated subject hears: 15-s clips of ten genres with their captions, a
/// random 10-s window of each per step. The mel batch norm takes its statistics from one pass
/// over the training clips; the symmetric contrastive loss (audio → text and text → audio,
/// learnt temperatures) is minimised with AdamW, warm-up and cosine decay. The result is a
/// transformers `ClapModel` folder that `--model` accepts wherever a CLAP is read.
/// Checkpoints go to OUT/.train/ every --checkpoint-every steps: rerunning the same command
/// resumes, and the same seed gives the same weights.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon train-clap --out models/genres-clap --steps 300 --batch 64 --seed 0 --checkpoint-every 50\n  brainrecon train-clap --out /tmp/clap-try --steps 50 --batch 16 --seed 1 --json"
)]
pub struct Args {
    /// Output folder (transformers `ClapModel` layout)
    #[arg(long)]
    out: PathBuf,
    /// Optimisation steps [default: the preset's, 300 or 4]
    #[arg(long)]
    steps: Option<usize>,
    /// Clips per batch (the contrastive loss's negatives are the batch's other clips)
    /// [default: the preset's, 64 or 4]
    #[arg(long)]
    batch: Option<usize>,
    /// Seed of initialisation, tokenizer corpus, training clips and data order
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Steps between checkpoints (and held-out scores) [default: the preset's, 50 or 2]
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// Peak learning rate (AdamW, warm-up then cosine decay)
    #[arg(long)]
    lr: Option<f64>,
    /// Distinct training clips, rendered once per run [default: the preset's, 2000 or 8]
    #[arg(long)]
    clips: Option<usize>,
    #[command(flatten)]
    preset: PresetArgs,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut config = GenresClapConfig::preset(args.preset.preset);
    config.steps = args.steps.unwrap_or(config.steps);
    config.batch = args.batch.unwrap_or(config.batch);
    config.checkpoint_every = args.checkpoint_every.unwrap_or(config.checkpoint_every);
    config.training_clips = args.clips.unwrap_or(config.training_clips);
    config.lr = args.lr.unwrap_or(config.lr);
    config.check()?;
    let device = args.device.device()?;
    let show = show_progress();
    let bar = brainrecon_routes::progress::bar(config.steps as u64, "train-clap", show);
    // Preparations and held-out scores are printed with or without a terminal: the record of
    // a long run.
    let say = |line: String| {
        if show {
            bar.println(line)
        } else {
            eprintln!("{line}")
        }
    };
    let summary = train_genres_clap(
        &args.out,
        &config,
        args.seed,
        &device,
        &mut |event| match event {
            ClapProgress::Prepared(what) => say(what),
            ClapProgress::Step { step, loss, .. } => {
                bar.set_position(step as u64);
                bar.set_message(format!("loss {loss:.3}"));
            }
            ClapProgress::HeldOut { step, retrieval } => {
                say(format!("step {step}: {}", retrieval.text()))
            }
        },
    )?;
    bar.finish_and_clear();
    args.json.print(&summary, |s| s.text())
}
