//! `brainrecon bench clap`: CLAP audio embeddings (mel front end, HTSAT audio tower, projection)
//! timed per 10-s window, on synthetic music written as .npy so that transformers can embed the
//! same samples.

use super::usage;
use brainrecon_audio::clap::model::resolve_model;
use brainrecon_audio::clap::{ClapFeatureExtractor, ClapModel, SeededChoices};
use brainrecon_data::audio::resample;
use brainrecon_data::npy;
use brainrecon_simulate::music::{StreamClip, RATE};
use candle_core::{Device, Tensor};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

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
pub struct ClapArgs {
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

#[derive(Serialize)]
struct ClapTiming {
    model: String,
    windows: usize,
    batch: usize,
    sampling_rate: u32,
    samples_per_window: usize,
    projection_dim: usize,
    threads: usize,
    seconds_load: f64,
    /// Per window: front end + audio tower.
    seconds_per_window: f64,
    /// Per window.
    front_end_seconds: f64,
    /// Per window.
    model_seconds: f64,
    windows_file: String,
    embeddings_file: String,
}

pub fn clap(args: ClapArgs) -> anyhow::Result<()> {
    if args.windows == 0 || args.batch == 0 {
        return Err(usage("--windows and --batch must be at least 1"));
    }
    let started = Instant::now();
    let dir = resolve_model(&args.clap)?;
    let model = ClapModel::load_dir(&dir, &Device::Cpu)?;
    let extractor = ClapFeatureExtractor::from_dir(&dir)?;
    let seconds_load = started.elapsed().as_secs_f64();
    let samples = window_samples(&extractor, &dir)?;
    let rate = extractor.config.sampling_rate;
    let windows: Vec<Vec<f32>> = (0..args.windows as u64)
        .map(|i| music_window(args.seed, i, rate, samples))
        .collect();
    std::fs::create_dir_all(&args.out)?;
    let flat: Vec<f32> = windows.iter().flatten().copied().collect();
    npy::write(
        &args.out.join("windows.npy"),
        &[args.windows, samples],
        &flat,
    )?;

    // warm-up: the first call allocates buffers and faults in the weights
    embed(&model, &extractor, &windows[..1], args.seed)?;
    let (mut front_end, mut tower) = (0.0, 0.0);
    let mut parts = Vec::with_capacity(args.windows.div_ceil(args.batch));
    for chunk in windows.chunks(args.batch) {
        let (embeds, seconds) = embed(&model, &extractor, chunk, args.seed)?;
        front_end += seconds.0;
        tower += seconds.1;
        parts.push(embeds);
    }
    let embeds = Tensor::cat(&parts, 0)?;
    let dim = embeds.dim(1)?;
    npy::write(
        &args.out.join("embeddings.npy"),
        &[args.windows, dim],
        &embeds.flatten_all()?.to_vec1::<f32>()?,
    )?;
    let n = args.windows as f64;
    let timing = ClapTiming {
        model: args.clap,
        windows: args.windows,
        batch: args.batch,
        sampling_rate: rate,
        samples_per_window: samples,
        projection_dim: dim,
        threads: rayon::current_num_threads(),
        seconds_load,
        seconds_per_window: (front_end + tower) / n,
        front_end_seconds: front_end / n,
        model_seconds: tower / n,
        windows_file: "windows.npy".into(),
        embeddings_file: "embeddings.npy".into(),
    };
    let json = serde_json::to_string(&timing)?;
    std::fs::write(args.out.join("brainrecon.json"), &json)?;
    outln!("{json}")?;
    Ok(())
}

/// The window length: the front end's maximum length, which a 15-s clip must cover (longer
/// windows would be repeat-padded, not music).
fn window_samples(extractor: &ClapFeatureExtractor, dir: &Path) -> anyhow::Result<usize> {
    let c = &extractor.config;
    let clip = (brainrecon_simulate::music::CLIP_SECONDS * c.sampling_rate as f64) as usize;
    if c.max_samples() > clip {
        return Err(usage(format!(
            "{}: field `max_length_s` is {}, expected at most 15 (the benchmark's clips are 15 s)",
            dir.join("preprocessor_config.json").display(),
            c.max_length_s
        )));
    }
    Ok(c.max_samples())
}

/// Window `index`: the middle `samples` of stream clip `index`, resampled to `rate`.
fn music_window(seed: u64, index: u64, rate: u32, samples: usize) -> Vec<f32> {
    let audio = resample(&StreamClip::new(seed, index).render(), RATE, rate);
    // the middle, away from the resampler's edges
    let start = (audio.len() - samples) / 2;
    audio[start..start + samples].to_vec()
}

/// Embeds a batch of windows: unit embeddings [B, P] and the seconds of (front end, tower).
fn embed(
    model: &ClapModel,
    extractor: &ClapFeatureExtractor,
    windows: &[Vec<f32>],
    seed: u64,
) -> anyhow::Result<(Tensor, (f64, f64))> {
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
