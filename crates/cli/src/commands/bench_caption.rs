//! `brainrecon bench caption`: BLIP caption generation timed per image, on encoder states
//! written as .npy so that transformers can run the same search on the same inputs.

use super::usage;
use brainrecon_data::npy;
use brainrecon_language::blip::BlipForConditionalGeneration;
use brainrecon_language::generate::{beam_search, BeamScoring, BeamSearchConfig};
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

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
pub struct CaptionArgs {
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

#[derive(Serialize)]
struct CaptionTiming {
    images: usize,
    tokens: usize,
    width: usize,
    seconds_load: f64,
    seconds_per_image: f64,
    ids: Vec<Vec<u32>>,
}

pub fn caption(args: CaptionArgs) -> anyhow::Result<()> {
    let scoring = BeamScoring::parse(&args.beam_scoring).ok_or_else(|| {
        usage(format!(
            "--beam-scoring: expected published, transformers4 or transformers5, found '{}'",
            args.beam_scoring
        ))
    })?;
    if args.images == 0 || args.tokens == 0 {
        return Err(usage("--images and --tokens must be at least 1"));
    }
    let started = Instant::now();
    let model = BlipForConditionalGeneration::load(&args.blip.to_string_lossy(), &Device::Cpu)?;
    let seconds_load = started.elapsed().as_secs_f64();
    let width = model.config.text_config.encoder_hidden_size;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let values: Vec<f32> = (0..args.images * args.tokens * width)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    std::fs::create_dir_all(&args.out)?;
    npy::write(
        &args.out.join("states.npy"),
        &[args.images, args.tokens, width],
        &values,
    )?;
    let config = BeamSearchConfig {
        scoring,
        ..BeamSearchConfig::published()
    };
    let states = Tensor::from_vec(values, (args.images, args.tokens, width), &Device::Cpu)?;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(args.images);
    for i in 0..args.images {
        let mut session = model.caption_session(&states.narrow(0, i, 1)?)?;
        ids.push(
            beam_search(&mut session, &args.prompt, &config)?
                .best()
                .tokens
                .clone(),
        );
    }
    let timing = CaptionTiming {
        images: args.images,
        tokens: args.tokens,
        width,
        seconds_load,
        seconds_per_image: started.elapsed().as_secs_f64() / args.images as f64,
        ids,
    };
    let json = serde_json::to_string(&timing)?;
    std::fs::write(args.out.join("brainrecon.json"), &json)?;
    outln!("{json}")?;
    Ok(())
}
