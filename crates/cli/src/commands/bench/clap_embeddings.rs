//! `brainrecon bench clap`: CLAP audio embeddings (mel front end, HTSAT audio tower, projection)
//! timed per 10-s window, on synthetic music written as .npy so that transformers can embed the
//! same samples.

use brainrecon_showcase::bench::clap::{run as time_embeddings, ClapBench};
use std::path::PathBuf;

/// Time CLAP audio embeddings (`get_audio_features`) per window on the CPU.
///
/// The windows are clips of the synthetic music generator (a seeded stream no subject hears),
/// rendered at 22050 Hz, resampled to the model's rate and cut to its `max_length_s` (10 s for
/// LAION's checkpoints) from the middle of each 15-s clip. They are written to
/// OUT/windows.npy [windows, samples] (f32); the embeddings go to OUT/embeddings.npy
/// [windows, projection_dim] and the timings to OUT/brainrecon.json (`seconds_per_window` =
/// `front_end_seconds` + `model_seconds`, each per window, after one untimed warm-up window),
/// so `tools/bench/clap.sh` can run transformers on the same windows and compare both the time
/// and the embeddings. Threads: RAYON_NUM_THREADS.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  RAYON_NUM_THREADS=2 brainrecon bench clap --clap target/bench-data/clap/clap-htsat-unfused --windows 8 --out target/bench-data/clap\n  \
    bash tools/bench/clap.sh 8     # with transformers on the same windows, one line"
)]
pub struct Args {
    /// A CLAP folder (transformers layout: config.json, model.safetensors,
    /// preprocessor_config.json) or a hub id in the Hugging Face cache
    #[arg(long)]
    clap: String,
    /// 10-s windows to embed
    #[arg(long, default_value_t = 8)]
    windows: usize,
    /// Windows per forward pass (front end and tower)
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Seed of the synthetic clip stream
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder (windows.npy, embeddings.npy, brainrecon.json)
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (_, json) = time_embeddings(&ClapBench {
        clap: args.clap,
        windows: args.windows,
        batch: args.batch,
        seed: args.seed,
        out: args.out,
        threads: rayon::current_num_threads(),
    })?;
    outln!("{json}")
}
