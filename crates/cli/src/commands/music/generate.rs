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
    /// A `music fit` folder of CLAP embeddings (clap-audio or clap-text)
    #[arg(long)]
    fit: PathBuf,
    /// The caption bank: TSV with a caption column (track optional) or .txt, one per line
    #[arg(long)]
    captions: PathBuf,
    /// MusicGen: a folder (config.json, model.safetensors, tokenizer.json) or a cached hub id
    #[arg(long, default_value = "facebook/musicgen-small")]
    musicgen: String,
    /// Output folder
    #[arg(long)]
    out: PathBuf,
    /// Seconds of audio per clip
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Classifier-free guidance (default: generation_config.json's, else 3)
    #[arg(long)]
    guidance: Option<f32>,
    /// Top-k sampling, 0 = greedy (default: generation_config.json's, else 250)
    #[arg(long)]
    top_k: Option<usize>,
    /// Clip i samples from a ChaCha8 stream seeded with SEED + i
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Let a test clip's own caption be chosen (left out by default)
    #[arg(long)]
    keep_test_captions: bool,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let opts = GenerateOptions {
        fit: args.fit,
        captions: args.captions,
        musicgen: args.musicgen,
        out: args.out,
        seconds: args.seconds,
        guidance: args.guidance,
        top_k: args.top_k,
        seed: args.seed,
        exclude_test: !args.keep_test_captions,
        progress: show_progress(),
    };
    let summary = generate_music(&opts, &args.device.device()?)?;
    report(args.json.json, &summary, |_| summary.text(&opts.out))
}
