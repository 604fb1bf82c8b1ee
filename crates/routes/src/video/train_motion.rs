//! `video train-motion`: motion modules (AnimateDiff's temporal transformers) trained in a
//! frozen image model on synthetic clips of moving shapes, so that the video route runs on a
//! machine without pretrained video weights (the project ships the result for shapes-ldm).
//!
//! Each step draws `batch` clips from a seeded stream (a scene of scene.rs moving left, right,
//! up, down or standing still; `frames` frames at the model's image size), encodes every frame
//! with the frozen VAE (posterior mean), and trains the motion modules on the epsilon
//! objective (min-SNR weights, as shapes-ldm's U-Net) with the clip's caption ("a red circle
//! moving left") through the frozen text encoder; one caption in ten is empty, for guidance.
//! With `tune_unet` the image U-Net is trained with them (MinD-Video and NeuroClips tune their
//! inflated U-Nets too): an image model that only ever drew still scenes cannot draw the
//! in-between positions of a moving shape, whatever its motion modules ask.
//! Checkpoints every `checkpoint_every` steps; a rerun resumes and, every draw being keyed by
//! the step, ends with the weights of an uninterrupted run.
//!
//! ```text
//! <out>/config.json                          MotionAdapter config (diffusers), or with
//!                                            tune_unet a UNetMotionModel config
//! <out>/diffusion_pytorch_model.safetensors  the motion modules, MotionAdapter names (with
//!                                            tune_unet: the whole motion U-Net)
//! <out>/training.json                        settings, parameter count, every step's loss
//! ```

use crate::b2c::train::trainable_unet;
use crate::b2c::Tune;
use crate::error::{Result, RouteError};
use brainrecon_core::fs::write_json_atomic;
use brainrecon_data::image::RgbImage;
use brainrecon_diffusion::motion::{LayersPerBlock, MotionAdapterConfig};
use brainrecon_diffusion::pipeline::{image_from_rgb8, Posterior, StableDiffusion};
use brainrecon_diffusion::prior::min_snr_weights;
use brainrecon_diffusion::scheduler::{NoiseSchedule, SchedulerConfig};
use brainrecon_diffusion::unet::OneOrMany;
use brainrecon_diffusion::unet_motion::{save_motion_adapter, save_unet_motion, UNetMotionModel};
use brainrecon_nn::checkpoint::ResumableRun;
use brainrecon_nn::params::Parameters;
use brainrecon_nn::rng::{NoiseSource, SeededNoise};
use brainrecon_simulate::video::{render_clip, ClipSpec};
use candle_core::{DType, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::path::{Path, PathBuf};

/// File in the motion folder with the training settings and losses.
pub const TRAINING_RECORD: &str = "training.json";

/// Settings of a motion-module training run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MotionTrainConfig {
    /// Frames per training clip (the route's clips have 6 per TR).
    pub frames: usize,
    pub batch: usize,
    pub steps: usize,
    pub lr: f64,
    pub checkpoint_every: usize,
    pub caption_dropout: f64,
    pub snr_gamma: f64,
    /// Attention heads of every motion module.
    pub heads: usize,
    /// Longest clip the modules' frame positions cover.
    pub max_frames: usize,
    /// Train the image U-Net too and write a whole `UNetMotionModel`.
    pub tune_unet: bool,
    /// Timesteps drawn as t/T = s·u / (1 + (s − 1)·u), u uniform: 1 is uniform, larger values
    /// favour high noise, where a clip's layout and motion are decided (as SD3's shift and
    /// video models' noise schedules; the ε loss barely sees motion at low noise).
    pub timestep_shift: f64,
}

impl Default for MotionTrainConfig {
    fn default() -> Self {
        MotionTrainConfig {
            frames: 6,
            batch: 4,
            steps: 1000,
            lr: 1e-3,
            checkpoint_every: 100,
            caption_dropout: 0.1,
            snr_gamma: 5.0,
            heads: 4,
            max_frames: 32,
            tune_unet: false,
            timestep_shift: 1.0,
        }
    }
}

/// What a training run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MotionTrainSummary {
    pub out: PathBuf,
    pub parameters: usize,
    pub losses: Vec<f64>,
    /// (stage, step) of the checkpoints resumed from.
    pub resumed_from: Vec<(String, usize)>,
}

/// The adapter layout for `sd`'s U-Net: one motion module per resnet, one layer each.
pub fn adapter_config(sd: &StableDiffusion, config: &MotionTrainConfig) -> MotionAdapterConfig {
    let unet = &sd.unet.config;
    MotionAdapterConfig {
        block_out_channels: unet.block_out_channels.clone(),
        motion_layers_per_block: unet.layers_per_block.clone(),
        motion_transformer_layers_per_block: LayersPerBlock::One(1),
        motion_mid_block_layers_per_block: 1,
        motion_transformer_layers_per_mid_block: OneOrMany::One(1),
        motion_num_attention_heads: OneOrMany::One(config.heads),
        motion_norm_num_groups: unet.norm_num_groups,
        motion_max_seq_length: config.max_frames,
        use_motion_mid_block: true,
        conv_in_channels: None,
    }
}

/// The clips of training step `step`: (spec, caption or "" when dropped, timestep).
pub fn training_clips(
    seed: u64,
    step: usize,
    config: &MotionTrainConfig,
    n_train: usize,
) -> Vec<(ClipSpec, String, usize)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7107_0000_0000 ^ step as u64);
    (0..config.batch)
        .map(|_| {
            let spec = ClipSpec::random(&mut rng, config.frames);
            let caption = if rng.gen_bool(config.caption_dropout) {
                String::new()
            } else {
                spec.caption()
            };
            let t = match config.timestep_shift == 1.0 {
                true => rng.gen_range(0..n_train),
                false => shifted_timestep(rng.gen::<f64>(), config.timestep_shift, n_train),
            };
            (spec, caption, t)
        })
        .collect()
}

/// The timestep of uniform `u` in [0, 1) under `shift` (see
/// [`MotionTrainConfig::timestep_shift`]), in 0..n.
pub fn shifted_timestep(u: f64, shift: f64, n: usize) -> usize {
    let fraction = shift * u / (1.0 + (shift - 1.0) * u);
    ((fraction * n as f64) as usize).min(n - 1)
}

/// Frames of `clips` clips (each `frames` long) → VAE latents [clips, 4, frames, h, w].
pub fn clip_latents(sd: &StableDiffusion, clips: &[Vec<RgbImage>]) -> Result<Tensor> {
    let frames = clips[0].len();
    let images = clips
        .iter()
        .flatten()
        .map(|im| image_from_rgb8(im.height, im.width, &im.pixels, &sd.device))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let batch = Tensor::cat(&images, 0)?;
    let mut unused = SeededNoise::new(0);
    let z = sd.encode_image(&batch, Posterior::Mean, &mut unused)?;
    let (_, c, h, w) = z.dims4()?;
    Ok(z.reshape((clips.len(), frames, c, h, w))?
        .permute((0, 2, 1, 3, 4))?
        .contiguous()?)
}

/// Trains motion modules for `sd` (frozen, or with `tune_unet` its U-Net too) and writes them
/// as a MotionAdapter (or UNetMotionModel) folder.
pub fn train_motion(
    sd: &StableDiffusion,
    out: &Path,
    config: &MotionTrainConfig,
    seed: u64,
    progress: &mut dyn FnMut(usize, usize, f64),
) -> Result<MotionTrainSummary> {
    if !(config.timestep_shift.is_finite() && config.timestep_shift > 0.0) {
        return Err(RouteError::Usage(format!(
            "--timestep-shift must be positive, found {}",
            config.timestep_shift
        )));
    }
    if config.frames == 0 || config.frames > config.max_frames || config.batch == 0 {
        return Err(RouteError::Usage(format!(
            "--frames must be 1..={} and --batch at least 1 (found {} and {})",
            config.max_frames, config.frames, config.batch
        )));
    }
    let adapter = adapter_config(sd, config);
    let (model, params) = motion_model(sd, &adapter, config.tune_unet, seed)?;
    let schedule = NoiseSchedule::new(&SchedulerConfig::stable_diffusion())?;
    let n_train = schedule.num_train_timesteps();
    let size = sd.default_size();
    let mut resumed_from = Vec::new();
    let mut run = ResumableRun::resume(
        "motion",
        &out.join(".train"),
        params,
        (config.lr, config.steps, config.checkpoint_every),
        &mut resumed_from,
    )?;
    for step in run.start..config.steps {
        let clips = training_clips(seed, step, config, n_train);
        let frames: Vec<Vec<RgbImage>> = clips
            .iter()
            .map(|(spec, _, _)| render_clip(spec, config.frames, size))
            .collect();
        let latents = clip_latents(sd, &frames)?;
        let timesteps: Vec<usize> = clips.iter().map(|c| c.2).collect();
        let prompts: Vec<&str> = clips.iter().map(|c| c.1.as_str()).collect();
        let context = sd.encode_text(&prompts)?.detach();
        let mut noise = SeededNoise::new(seed ^ 0x7E00_0000 ^ step as u64);
        let eps = noise.gaussian(latents.dims(), &sd.device, DType::F32)?;
        let noisy = schedule.add_noise(&latents, &eps, &timesteps)?;
        let t = Tensor::from_vec(
            timesteps.iter().map(|&t| t as f32).collect::<Vec<_>>(),
            timesteps.len(),
            &sd.device,
        )?;
        let predicted = model.forward(&noisy, &t, &context)?;
        let weights = Tensor::from_vec(
            min_snr_weights(&schedule.alphas_cumprod, &timesteps, config.snr_gamma),
            timesteps.len(),
            &sd.device,
        )?;
        let loss = (predicted - &eps)?
            .sqr()?
            .flatten_from(1)?
            .mean(1)?
            .mul(&weights)?
            .mean_all()?;
        let value = run.step(&loss, step)?;
        progress(step + 1, config.steps, value);
    }
    write_adapter(out, &run, sd, &adapter, config, seed)?;
    Ok(MotionTrainSummary {
        out: out.to_path_buf(),
        parameters: run.params.count_elements(),
        losses: run.losses.clone(),
        resumed_from,
    })
}

/// The motion U-Net to train and its trainable parameters under `UNetMotionModel`'s names:
/// fresh motion modules (zero output projections), and with `tune_unet` every image U-Net
/// tensor too.
fn motion_model(
    sd: &StableDiffusion,
    adapter: &MotionAdapterConfig,
    tune_unet: bool,
    seed: u64,
) -> Result<(UNetMotionModel, Parameters)> {
    if !tune_unet {
        return Ok(UNetMotionModel::init_motion_modules(
            sd.unet.clone(),
            adapter,
            seed,
        )?);
    }
    let (unet, unet_vars) = trainable_unet(sd, Tune::Unet)?;
    let (model, motion) = UNetMotionModel::init_motion_modules(unet, adapter, seed)?;
    let unet_vars = unet_vars.into_iter().map(|(name, var)| {
        let name = name
            .strip_prefix("unet.")
            .map(str::to_string)
            .unwrap_or(name);
        (name, var)
    });
    let params = Parameters::from_vars(motion.vars().into_iter().chain(unet_vars))?;
    Ok((model, params))
}

/// The MotionAdapter (or with `tune_unet` UNetMotionModel) folder: config, weights, training
/// record.
fn write_adapter(
    out: &Path,
    run: &ResumableRun,
    sd: &StableDiffusion,
    adapter: &MotionAdapterConfig,
    config: &MotionTrainConfig,
    seed: u64,
) -> Result<()> {
    if config.tune_unet {
        save_unet_motion(&run.params, &sd.unet.config, adapter, out)?;
    } else {
        save_motion_adapter(&run.params, adapter, out)?;
    }
    write_json_atomic(
        &out.join(TRAINING_RECORD),
        &json!({
            "seed": seed,
            "settings": config,
            "parameters": run.params.count_elements(),
            "losses": run.losses,
        }),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifted_timesteps_favour_high_noise_and_stay_in_range() {
        assert_eq!(shifted_timestep(0.5, 1.0, 1000), 500);
        // s·u / (1 + (s − 1)·u) at s = 3, u = 1/2: 3/4.
        assert_eq!(shifted_timestep(0.5, 3.0, 1000), 750);
        assert_eq!(shifted_timestep(0.0, 3.0, 1000), 0);
        assert_eq!(shifted_timestep(0.999_999_9, 3.0, 1000), 999);
        let config = MotionTrainConfig {
            timestep_shift: 3.0,
            batch: 64,
            ..MotionTrainConfig::default()
        };
        let ts: Vec<usize> = training_clips(0, 0, &config, 1000)
            .iter()
            .map(|c| c.2)
            .collect();
        let mean = ts.iter().sum::<usize>() as f64 / ts.len() as f64;
        assert!(mean > 600.0, "mean timestep {mean} under shift 3");
    }
}
