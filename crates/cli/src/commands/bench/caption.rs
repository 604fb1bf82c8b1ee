//! `brainrecon bench caption`: BLIP caption generation timed per image, on encoder states
//! written as .npy so that transformers can run the same search on the same inputs.

use brainrecon_routes::caption::decode::beam_scoring;
use brainrecon_showcase::bench::caption::{run as time_captions, CaptionBench};
use std::path::PathBuf;

/// Time beam-search captioning (3 beams, lengths 5–20, repetition penalty 1.5) per image.
///
/// Encoder states [images, tokens, width] are drawn from a seeded normal (or read from
/// `--states`) and written to OUT/states.npy; the generated ids go to OUT/brainrecon.json with
/// the seconds per image, so `tools/bench/caption.sh` can run transformers on the same states
/// and compare both time and tokens.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon bench caption --blip target/bench-data/caption/blip-base --images 8 --tokens 226 --out target/bench-data/caption"
)]
pub struct Args {
    /// A BLIP captioner folder (transformers layout)
    #[arg(long)]
    blip: PathBuf,
    /// Images to caption (one search each)
    #[arg(long, default_value_t = 8)]
    images: usize,
    /// Image tokens per image (226 = the published 240 px ViT-B)
    #[arg(long, default_value_t = 226)]
    tokens: usize,
    /// Prompt ids ([DEC] a picture of, in BERT's vocabulary)
    #[arg(long, value_delimiter = ',', default_value = "30522,1037,3861,1997")]
    prompt: Vec<u32>,
    /// Scoring of finished beams: published, transformers4 or transformers5
    #[arg(long, default_value = "transformers5")]
    beam_scoring: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder (states.npy, brainrecon.json)
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (_, json) = time_captions(&CaptionBench {
        blip: args.blip,
        images: args.images,
        tokens: args.tokens,
        prompt: args.prompt,
        scoring: beam_scoring(&args.beam_scoring)?,
        seed: args.seed,
        out: args.out,
    })?;
    outln!("{json}")
}
