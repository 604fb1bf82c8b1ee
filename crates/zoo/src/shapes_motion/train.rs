//! shapes-motion's training (`brainrecon train shapes-motion`, also `video train-motion`):
//! motion modules (AnimateDiff's temporal transformers) trained in a
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

use super::config::{adapter_config, MotionTrainConfig};
use super::data::{clip_latents, training_clips};
use brainrecon_core::fs::write_json_atomic;
use brainrecon_diffusion::motion::MotionAdapterConfig;
use brainrecon_diffusion::pipeline::StableDiffusion;
use brainrecon_diffusion::prior::{min_snr_weights, trainable_unet};
use brainrecon_diffusion::scheduler::{NoiseSchedule, SchedulerConfig};
use brainrecon_diffusion::unet_motion::{save_motion_adapter, save_unet_motion, UNetMotionModel};
use brainrecon_formats::image::RgbImage;
use brainrecon_nn::checkpoint::ResumableRun;
use brainrecon_nn::params::Parameters;
use brainrecon_nn::rng::{NoiseSource, SeededNoise};
use brainrecon_nn::Result;
use brainrecon_simulate::video::render_clip;
use candle_core::{DType, Tensor};
use serde_json::json;
use std::path::{Path, PathBuf};

/// File in the motion folder with the training settings and losses.
pub const TRAINING_RECORD: &str = "training.json";

/// What a training run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MotionTrainSummary {
    /// The motion folder written.
    pub out: PathBuf,
    /// Trained parameters (elements).
    pub parameters: usize,
    /// Loss of every step.
    pub losses: Vec<f64>,
    /// (stage, step) of the checkpoints resumed from.
    pub resumed_from: Vec<(String, usize)>,
}

impl MotionTrainSummary {
    /// The run in one line for people: what trained (`config`), in `seconds`, the mean loss
    /// of the last 50 steps, the folder.
    pub fn text(&self, config: &MotionTrainConfig, seconds: f64) -> String {
        let tail = &self.losses[self.losses.len().saturating_sub(50)..];
        format!(
            "trained {} parameters ({}) in {:.0} s; mean loss of the last {} steps {:.4} → {}",
            self.parameters,
            if config.tune_unet {
                "motion modules and U-Net"
            } else {
                "motion modules"
            },
            seconds,
            tail.len(),
            tail.iter().sum::<f64>() / tail.len().max(1) as f64,
            self.out.display()
        )
    }
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
    config.check()?;
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
        return UNetMotionModel::init_motion_modules(sd.unet.clone(), adapter, seed);
    }
    // Every image U-Net tensor, under its own name (as `UNetMotionModel` names it).
    let (unet, unet_vars) = trainable_unet(sd, |_| true)?;
    let (model, motion) = UNetMotionModel::init_motion_modules(unet, adapter, seed)?;
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
