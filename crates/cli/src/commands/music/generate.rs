//! `brainrecon music generate`: MusicGen conditioned on each decoded test clip.

use crate::commands::prelude::*;
use brainrecon_routes::music::generate::{generate_music, GenerateOptions};

/// Generate music for each decoded test clip: MusicGen conditioned on the caption of a caption
/// bank nearest to the decoded CLAP embedding (CLAP's joint audio-text space stands in for
/// MuLan's; MusicGen for MusicLM), written as OUT/generated/<track>.wav and generation.json.
///
/// The bank is a tab-separated table with a caption column (and a track column, e.g.
/// blues.00042) or a .txt file with one caption per line. The test clips' own captions are left
/// out unless --keep-test-captions. When the bank's tracks name GTZAN genres, the share of clips
/// whose chosen caption has the heard clip's genre is reported (chance 1 / genres).
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon music generate --fit music-fit --captions sim-music/stimuli/captions.tsv --musicgen facebook/musicgen-small --out music-generated\n  \
    brainrecon music generate --fit music-fit-clap --captions captions.txt --musicgen facebook/musicgen-small --seconds 10 --top-k 0 --out music-generated"
)]
pub struct Args {
    #[command(flatten)]
    options: GenerateOptions,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let opts = GenerateOptions {
        progress: show_progress(),
        ..args.options
    };
    let summary = generate_music(&opts, &args.device.device()?)?;
    report(args.json.json, &summary, |_| summary.text(&opts.out))
}
