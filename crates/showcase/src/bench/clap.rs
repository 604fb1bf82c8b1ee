//! CLAP audio embeddings (mel front end, HTSAT audio tower, projection) timed per 10-s
//! window, on synthetic music written as .npy so that transformers can embed the same samples.

use brainrecon_audio::clap::{ClapFeatureExtractor, ClapModel, SeededChoices};
use brainrecon_core::DataError;
use brainrecon_formats::audio::resample;
use brainrecon_formats::npy;
use brainrecon_routes::error::{Result, RouteError};
use brainrecon_simulate::music::{StreamClip, RATE};
use brainrecon_zoo::genres_clap::resolve_clap;
use candle_core::{Device, Tensor};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What to time.
pub struct ClapBench {
    /// The CLAP folder or cached id.
    pub clap: String,
    /// Windows embedded.
    pub windows: usize,
    /// Windows per forward pass.
    pub batch: usize,
    /// Seed of the music.
    pub seed: u64,
    /// Where windows.npy, embeddings.npy and brainrecon.json go.
    pub out: PathBuf,
    /// Threads the caller runs on (recorded).
    pub threads: usize,
}

/// The timing, also written to `<out>/brainrecon.json`.
#[derive(Serialize)]
pub struct ClapTiming {
    /// The model as named.
    pub model: String,
    /// Windows embedded.
    pub windows: usize,
    /// Windows per forward pass.
    pub batch: usize,
    /// The extractor's sampling rate.
    pub sampling_rate: u32,
    /// Samples of a window.
    pub samples_per_window: usize,
    /// Width of an embedding.
    pub projection_dim: usize,
    /// Threads of the run.
    pub threads: usize,
    /// Seconds to load the model.
    pub seconds_load: f64,
    /// Seconds per window, front end and model.
    pub seconds_per_window: f64,
    /// Seconds per window of the mel front end.
    pub front_end_seconds: f64,
    /// Seconds per window of the audio tower and projection.
    pub model_seconds: f64,
    /// The windows' file name.
    pub windows_file: String,
    /// The embeddings' file name.
    pub embeddings_file: String,
}

/// Loads CLAP, renders the windows of seeded music, writes them to `windows.npy`, and times
/// the embeddings (after one warm-up window); writes `embeddings.npy` and returns the timing
/// and its JSON line (written to `brainrecon.json`).
pub fn run(bench: &ClapBench) -> Result<(ClapTiming, String)> {
    if bench.windows == 0 || bench.batch == 0 {
        return Err(RouteError::Usage(
            "--windows and --batch must be at least 1".into(),
        ));
    }
    let started = Instant::now();
    let dir = resolve_clap(&bench.clap)?;
    let model = ClapModel::load_dir(&dir, &Device::Cpu)?;
    let extractor = ClapFeatureExtractor::from_dir(&dir)?;
    let seconds_load = started.elapsed().as_secs_f64();
    let samples = window_samples(&extractor, &dir)?;
    let rate = extractor.config.sampling_rate;
    let windows: Vec<Vec<f32>> = (0..bench.windows as u64)
        .map(|i| music_window(bench.seed, i, rate, samples))
        .collect();
    std::fs::create_dir_all(&bench.out).map_err(|e| DataError::io(&bench.out, e))?;
    let flat: Vec<f32> = windows.iter().flatten().copied().collect();
    npy::write(
        &bench.out.join("windows.npy"),
        &[bench.windows, samples],
        &flat,
    )?;

    // warm-up: the first call allocates buffers and faults in the weights
    embed(&model, &extractor, &windows[..1], bench.seed)?;
    let (mut front_end, mut tower) = (0.0, 0.0);
    let mut parts = Vec::with_capacity(bench.windows.div_ceil(bench.batch));
    for chunk in windows.chunks(bench.batch) {
        let (embeds, seconds) = embed(&model, &extractor, chunk, bench.seed)?;
        front_end += seconds.0;
        tower += seconds.1;
        parts.push(embeds);
    }
    let embeds = Tensor::cat(&parts, 0)?;
    let dim = embeds.dim(1)?;
    npy::write(
        &bench.out.join("embeddings.npy"),
        &[bench.windows, dim],
        &embeds.flatten_all()?.to_vec1::<f32>()?,
    )?;
    let n = bench.windows as f64;
    let timing = ClapTiming {
        model: bench.clap.clone(),
        windows: bench.windows,
        batch: bench.batch,
        sampling_rate: rate,
        samples_per_window: samples,
        projection_dim: dim,
        threads: bench.threads,
        seconds_load,
        seconds_per_window: (front_end + tower) / n,
        front_end_seconds: front_end / n,
        model_seconds: tower / n,
        windows_file: "windows.npy".into(),
        embeddings_file: "embeddings.npy".into(),
    };
    let json = serde_json::to_string(&timing).expect("numbers and strings serialize");
    brainrecon_core::fs::write_bytes_atomic(&bench.out.join("brainrecon.json"), json.as_bytes())?;
    Ok((timing, json))
}

fn window_samples(extractor: &ClapFeatureExtractor, dir: &Path) -> Result<usize> {
    let c = &extractor.config;
    let clip = (brainrecon_simulate::music::CLIP_SECONDS * c.sampling_rate as f64) as usize;
    if c.max_samples() > clip {
        return Err(RouteError::Usage(format!(
            "{}: field `max_length_s` is {}, expected at most 15 (the benchmark's clips are 15 s)",
            dir.join("preprocessor_config.json").display(),
            c.max_length_s
        )));
    }
    Ok(c.max_samples())
}

fn music_window(seed: u64, index: u64, rate: u32, samples: usize) -> Vec<f32> {
    let audio = resample(&StreamClip::new(seed, index).render(), RATE, rate);
    // the middle, away from the resampler's edges
    let start = (audio.len() - samples) / 2;
    audio[start..start + samples].to_vec()
}

fn embed(
    model: &ClapModel,
    extractor: &ClapFeatureExtractor,
    windows: &[Vec<f32>],
    seed: u64,
) -> Result<(Tensor, (f64, f64))> {
    let refs: Vec<&[f32]> = windows.iter().map(Vec::as_slice).collect();
    let started = Instant::now();
    // windows of exactly max_length are never cropped; the choices only matter to a fused
    // model's batch (which clip is flagged as longer)
    let features = extractor.extract(
        &refs,
        extractor.config.sampling_rate,
        &mut SeededChoices::new(seed),
        &Device::Cpu,
    )?;
    let front_end = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let embeds = model.get_audio_features(&features.input_features, &features.is_longer)?;
    Ok((embeds, (front_end, started.elapsed().as_secs_f64())))
}
