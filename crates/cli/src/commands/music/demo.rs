//! `brainrecon music demo`: the route's commands in order on a simulated subject.

use brainrecon_showcase::music_demo::{self, MusicDemoOptions, Step};
use std::path::PathBuf;

/// Simulate a subject hearing music, prepare its runs, decode genres-clap embeddings and
/// retrieve music from a library nobody heard: a page with players (a few minutes on 2 cores)
#[derive(clap::Args)]
#[command(after_help = "Example:\n  brainrecon music demo --out music-demo\n  \
    brainrecon music demo --out music-demo-paper --size paper   (ds003720's 540 clips)")]
pub struct Args {
    /// Output folder (steps already done there are reused)
    #[arg(long)]
    out: PathBuf,
    /// small or paper
    #[arg(long, default_value = "small")]
    size: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Prints a step of a route's demo and runs it as if typed (the demo doubles as a recipe).
pub(crate) fn run_step(step: Step<'_>) -> anyhow::Result<()> {
    eprintln!("\n[{}/{}] {}", step.number, step.of, step.title);
    let Some(args) = step.args else {
        return Ok(());
    };
    eprintln!("  brainrecon {}", args.join(" "));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    crate::run_command_line(&refs)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let opts = MusicDemoOptions {
        out: args.out,
        size: args.size,
        seed: args.seed,
    };
    let page = music_demo::run(&opts, &mut run_step)?;
    outln!("open {} in a browser", page.display())
}
