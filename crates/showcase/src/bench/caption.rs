//! BLIP caption generation timed per image, on seeded encoder states written as .npy so that
//! transformers can run the same beam search on the same inputs.

use brainrecon_core::DataError;
use brainrecon_formats::npy;
use brainrecon_language::blip::BlipForConditionalGeneration;
use brainrecon_language::generate::{beam_search, BeamScoring, BeamSearchConfig};
use brainrecon_routes::error::{Result, RouteError};
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// What to time.
pub struct CaptionBench {
    /// The BLIP folder.
    pub blip: PathBuf,
    /// Images (encoder states drawn per image).
    pub images: usize,
    /// Encoder tokens per image.
    pub tokens: usize,
    /// The prompt's token ids.
    pub prompt: Vec<u32>,
    /// How finished beams are scored.
    pub scoring: BeamScoring,
    /// Seed of the states.
    pub seed: u64,
    /// Where states.npy and brainrecon.json go.
    pub out: PathBuf,
}

/// The timing, also written to `<out>/brainrecon.json`.
#[derive(Serialize)]
pub struct CaptionTiming {
    /// Images captioned.
    pub images: usize,
    /// Encoder tokens per image.
    pub tokens: usize,
    /// Width of an encoder state.
    pub width: usize,
    /// Seconds to load the model.
    pub seconds_load: f64,
    /// Seconds of beam search per image.
    pub seconds_per_image: f64,
    /// The best beam's tokens per image.
    pub ids: Vec<Vec<u32>>,
}

/// Loads BLIP, draws (images, tokens, width) standard-normal states, writes them to
/// `states.npy`, and times the published beam search per image; returns the timing and its
/// JSON line (written to `brainrecon.json`).
pub fn run(bench: &CaptionBench) -> Result<(CaptionTiming, String)> {
    if bench.images == 0 || bench.tokens == 0 {
        return Err(RouteError::Usage(
            "--images and --tokens must be at least 1".into(),
        ));
    }
    let started = Instant::now();
    let model = BlipForConditionalGeneration::load(&bench.blip.to_string_lossy(), &Device::Cpu)?;
    let seconds_load = started.elapsed().as_secs_f64();
    let width = model.config.text_config.encoder_hidden_size;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(bench.seed);
    let values: Vec<f32> = (0..bench.images * bench.tokens * width)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    std::fs::create_dir_all(&bench.out).map_err(|e| DataError::io(&bench.out, e))?;
    npy::write(
        &bench.out.join("states.npy"),
        &[bench.images, bench.tokens, width],
        &values,
    )?;
    let config = BeamSearchConfig {
        scoring: bench.scoring,
        ..BeamSearchConfig::published()
    };
    let states = Tensor::from_vec(values, (bench.images, bench.tokens, width), &Device::Cpu)?;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(bench.images);
    for i in 0..bench.images {
        let image = states.narrow(0, i, 1)?;
        let mut session = model.caption_session(&image)?;
        ids.push(
            beam_search(&mut session, &bench.prompt, &config)?
                .best()
                .tokens
                .clone(),
        );
    }
    let timing = CaptionTiming {
        images: bench.images,
        tokens: bench.tokens,
        width,
        seconds_load,
        seconds_per_image: started.elapsed().as_secs_f64() / bench.images as f64,
        ids,
    };
    let json = serde_json::to_string(&timing).expect("numbers and strings serialize");
    brainrecon_core::fs::write_bytes_atomic(&bench.out.join("brainrecon.json"), json.as_bytes())?;
    Ok((timing, json))
}
