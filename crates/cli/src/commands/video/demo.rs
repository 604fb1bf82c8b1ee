//! `brainrecon video demo`: the route's commands in order on a simulated subject.

use brainrecon_showcase::video_demo::{self, VideoDemoOptions};
use std::path::PathBuf;

/// The video route end to end on a synthetic subject: simulate, prepare, fit, reconstruct, eval
#[derive(clap::Args)]
#[command(after_help = "Example:\n  brainrecon video demo --out video-demo")]
pub struct Args {
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    /// Seed of the subject and the clips
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Denoising steps per clip
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Only the first N test clips
    #[arg(long)]
    limit: Option<usize>,
    /// What decodes the windows' contexts: the caption word by word (`video fit --context
    /// words`), ridge to the context (`video fit`), or MinD-Video's window encoder (`video
    /// train-encoder`, patches of 64 voxels)
    #[arg(long, default_value = "words", value_parser = ["words", "ridge", "encoder"])]
    decoder: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let opts = VideoDemoOptions {
        out: args.out,
        seed: args.seed,
        steps: args.steps,
        limit: args.limit,
        decoder: args.decoder.parse()?,
    };
    let page = video_demo::run(&opts, &mut crate::commands::music::demo::run_step)?;
    outln!("open {} in a browser", page.display())
}
