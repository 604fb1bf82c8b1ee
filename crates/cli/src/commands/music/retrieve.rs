//! `brainrecon music retrieve`: the nearest library files of each decoded test clip.

use crate::commands::prelude::*;
use brainrecon_routes::music::{retrieve, RetrieveOptions};

/// Retrieve music for each decoded test clip: the nearest files of a library by cosine (each
/// file embedded once with the fit's model, the mean of its windows; cached in
/// LIBRARY/.brainrecon-cache), written as retrieval.json, playlist.m3u and index.html with
/// players for the heard clip and the matches. Files that do not decode are skipped with a
/// warning. Top-1 genre accuracy counts files whose folder or name is a GTZAN genre.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon music retrieve --fit music-fit --library sim-music/library --out music-page\n  \
    brainrecon music retrieve --fit music-fit --library fma_small --top-k 3 --out music-page"
)]
pub struct Args {
    /// A `music fit` folder
    #[arg(long)]
    fit: PathBuf,
    /// A folder of audio files (.wav, .flac, .mp3, .ogg), searched recursively
    #[arg(long)]
    library: PathBuf,
    /// Output folder for the page, the playlist and the heard clips
    #[arg(long)]
    out: PathBuf,
    /// Matches per clip
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Where library embeddings are cached (default LIBRARY/.brainrecon-cache)
    #[arg(long)]
    cache: Option<PathBuf>,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let opts = RetrieveOptions {
        fit: args.fit,
        library: args.library,
        out: args.out,
        top_k: args.top_k,
        cache: args.cache,
        progress: show_progress(),
    };
    let summary = retrieve(&opts, &args.device.device()?)?;
    report(args.json.json, &summary, |_| summary.text())
}
