//! `brainrecon bench train-step`: one training step of the U-Net, the video window encoder or
//! NICE's EEG encoder,
//! timed so that `tools/bench/train_step.sh` can time the same step in PyTorch beside it.

use crate::args::JsonArg;
use brainrecon_showcase::bench::train_step::TrainEngine;
use brainrecon_showcase::bench::train_step::{
    run as time_steps, TrainStepBench, WindowShape, Workload,
};

/// Time training steps (forward, loss, backward, gradient clipping, AdamW) on seeded inputs.
///
/// `unet`: the pipeline's U-Net with every tensor trainable, epsilon-prediction MSE on random
/// latents, noise, timesteps and contexts. `window-encoder`: the video route's fMRI window
/// encoder as `video demo` trains it, contrastive + alignment loss against random target
/// contexts. `eeg-encoder`: NICE's EEG encoder at THINGS-EEG2's size (63 channels × 250
/// samples, 768-wide image embeddings), NICE's contrastive loss and Adam, no clipping. Reports
/// the fastest and the median timed step (after --warmup untimed ones) and
/// the peak memory. Threads: RAYON_NUM_THREADS.
#[derive(clap::Args)]
#[command(mut_arg("json", |a| a.help("Print the timing as one JSON line")))]
#[command(
    after_help = "Example:\n  RAYON_NUM_THREADS=2 brainrecon bench train-step --model unet --steps 10 --json\n  \
    bash tools/bench/train_step.sh 10     # both models beside PyTorch, as a table"
)]
pub struct Args {
    /// What trains: unet, window-encoder or eeg-encoder
    #[arg(long, value_parser = ["unet", "window-encoder", "eeg-encoder"])]
    model: String,
    /// Samples per step (default: 8 for unet, 16 for window-encoder, 256 for eeg-encoder)
    #[arg(long)]
    batch: Option<usize>,
    /// Timed steps
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Untimed steps first
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// The diffusion pipeline: its U-Net, and the context shape for both models
    #[arg(long, default_value = "shapes-ldm")]
    pipeline: String,
    /// fMRI frames per window (window-encoder)
    #[arg(long, default_value_t = WindowShape::default().window)]
    window: usize,
    /// Voxels per frame (window-encoder)
    #[arg(long, default_value_t = WindowShape::default().voxels)]
    voxels: usize,
    /// Voxels per patch (window-encoder)
    #[arg(long, default_value_t = WindowShape::default().patch_size)]
    patch_size: usize,
    /// Seed of the inputs and the encoder's initialisation
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// What differentiates the step: the project's tape or candle's autograd
    #[arg(long, default_value = "tape", value_parser = ["tape", "candle"])]
    engine: String,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let workload = Workload::parse(&args.model)?;
    let timing = time_steps(&TrainStepBench {
        workload,
        batch: args.batch.unwrap_or(workload.default_batch()),
        steps: args.steps,
        warmup: args.warmup,
        pipeline: args.pipeline,
        window: WindowShape {
            window: args.window,
            voxels: args.voxels,
            patch_size: args.patch_size,
        },
        seed: args.seed,
        engine: TrainEngine::parse(&args.engine).map_err(anyhow::Error::msg)?,
    })?;
    if args.json.json {
        return outln!("{}", serde_json::to_string(&timing)?);
    }
    out!("{}", timing.text())
}
