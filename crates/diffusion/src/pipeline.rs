//! One Stable Diffusion API for every route: text → context, image ↔ latent, and denoising
//! from noise (txt2img), from a caller's x_T (the stream route), or from a noised image latent
//! (img2img with diffusers' `strength`), with classifier-free guidance.
//!
//! Semantics follow diffusers' `StableDiffusionPipeline` / `StableDiffusionImg2ImgPipeline`:
//! - prompts are padded to 77 tokens; with guidance > 1 the unconditional context is the
//!   negative prompt (or ""), and the U-Net runs once on `[uncond; cond]`, then
//!   `uncond + g (cond - uncond)`;
//! - txt2img starts from `x_T × init_noise_sigma`;
//! - img2img: `init = min(floor(steps × strength), steps)` steps run, starting at index
//!   `steps - init`, from the image latent noised to that timestep;
//! - latents are the VAE posterior (mean by default, or a sample) × `scaling_factor`;
//!   decoding divides by it and maps [-1, 1] to [0, 1].
//!
//! Noise is drawn, in diffusers' order, from the caller's [`NoiseSource`]: the posterior
//! sample (if asked), the initial or img2img noise, then the sampler's noise per step.
//! Latents stay f32; with `--dtype f16` the U-Net and text encoder run in f16, and the VAE in
//! f32 unless its config sets `force_upcast: false` (as diffusers upcasts it).
//!
//! [`VideoDiffusion`] is diffusers' `AnimateDiffPipeline` on the same pieces: a motion U-Net
//! ([`UNetMotionModel`]) built on the image U-Net, clip latents [B, C, f, h, w] with one context
//! row per clip (repeated per frame), the same guidance and samplers, and the VAE per frame.

use std::path::Path;

/// The tensor types of the API, re-exported so that callers need no direct candle dependency.
pub use candle_core::{DType, Device, Error as CandleError, Tensor};

use crate::clip::{ids_tensor, ClipTextConfig, ClipTextModel};
use crate::scheduler::{Scheduler, SchedulerConfig, SchedulerKind};
use crate::tokenizer::ClipTokenizer;
use crate::unet::{UNet2DConditionConfig, UNet2DConditionModel};
use crate::unet_motion::UNetMotionModel;
use crate::vae::{AutoencoderKL, AutoencoderKLConfig};
use crate::weights::ModelDir;
use brainrecon_nn::rng::NoiseSource;
use brainrecon_nn::{ModelError, Result};

/// How an image becomes a latent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Posterior {
    /// The posterior mean (deterministic).
    Mean,
    /// `mean + std × ε` with ε from the noise source (what diffusers' img2img does).
    Sample,
}

/// Text conditioning for the U-Net: `cond` [B, 77, D] and, for classifier-free guidance,
/// `uncond` of the same shape.
#[derive(Clone, Debug)]
pub struct Conditioning {
    /// The prompt's context, [B, 77, D].
    pub cond: Tensor,
    /// The unconditional (negative-prompt) context for guidance, same shape.
    pub uncond: Option<Tensor>,
}

impl Conditioning {
    /// The context of one prompt [1, T, D] for a batch of `rows` samples [rows, T, D].
    pub fn repeat_rows(&self, rows: usize) -> Result<Conditioning> {
        let repeat = |t: &Tensor| -> Result<Tensor> {
            if t.dim(0)? != 1 {
                return Err(ModelError::Invalid(format!(
                    "repeat_rows: a context of one prompt, found shape {:?}",
                    t.dims()
                )));
            }
            Ok(t.repeat((rows, 1, 1))?)
        };
        Ok(Conditioning {
            cond: repeat(&self.cond)?,
            uncond: self.uncond.as_ref().map(repeat).transpose()?,
        })
    }
}

/// Sampling settings.
#[derive(Clone, Copy, Debug)]
pub struct SampleOptions {
    /// Denoising steps.
    pub steps: usize,
    /// Classifier-free guidance scale; guidance applies when > 1 (diffusers' rule).
    pub guidance: f64,
    /// The sampler.
    pub scheduler: SchedulerKind,
}

/// Reported after every denoising step.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Steps done (1-based).
    pub step: usize,
    /// Steps to run.
    pub total: usize,
    /// The step's timestep (on the training schedule's 0..num_train_timesteps scale).
    pub timestep: f64,
}

/// The loaded model: tokenizer, text encoder, U-Net, VAE and scheduler config.
pub struct StableDiffusion {
    /// `tokenizer`.
    pub tokenizer: ClipTokenizer,
    /// `text_encoder`.
    pub text_encoder: ClipTextModel,
    /// `unet`.
    pub unet: UNet2DConditionModel,
    /// `vae`.
    pub vae: AutoencoderKL,
    /// `scheduler/scheduler_config.json`.
    pub scheduler_config: SchedulerConfig,
    /// The model folder.
    pub root: ModelDir,
    /// The dtype of the weights (f32, f16, or bf16 on a GPU).
    pub dtype: DType,
    /// Where the weights live.
    pub device: Device,
}

fn in_file(e: ModelError, path: &Path) -> ModelError {
    e.in_file(path)
}

impl StableDiffusion {
    /// `model`: a diffusers folder, a Hugging Face cache snapshot, or a cached model id.
    pub fn load(model: &str, dtype: DType, device: &Device) -> Result<Self> {
        Self::from_dir(&ModelDir::resolve(model)?, dtype, device)
    }

    /// Loads a diffusers folder in `dtype` (f32, f16, or bf16 on a GPU) on `device`. Errors:
    /// another dtype, a missing or invalid component (naming the file), components that do not fit
    /// together (tokenizer and text encoder, U-Net and text encoder).
    pub fn from_dir(dir: &ModelDir, dtype: DType, device: &Device) -> Result<Self> {
        match dtype {
            DType::F32 | DType::F16 => {}
            DType::BF16 if device.is_cuda() => {}
            DType::BF16 => {
                return Err(ModelError::Invalid(
                    "dtype bf16 runs on a GPU only (--device cuda): the CPU has no bf16 matrix \
                     products"
                        .into(),
                ))
            }
            _ => {
                return Err(ModelError::Invalid(format!(
                    "dtype {dtype:?}: only f32, f16 and (on a GPU) bf16 are supported"
                )))
            }
        }
        let tokenizer = ClipTokenizer::from_dir(&dir.component("tokenizer"))?;
        let text_config =
            ClipTextConfig::from_file(&dir.component("text_encoder").join("config.json"))?;
        let text_weights = dir.weights("text_encoder", dtype, device)?;
        let text_encoder = ClipTextModel::from_weights(&text_weights, &text_config)?;
        if tokenizer.vocab_size() > text_config.vocab_size {
            return Err(ModelError::Invalid(format!(
                "{}: the tokenizer has {} tokens, the text encoder {}",
                dir.root.display(),
                tokenizer.vocab_size(),
                text_config.vocab_size
            )));
        }
        if tokenizer.max_length > text_config.max_position_embeddings {
            return Err(ModelError::Invalid(format!(
                "{}: model_max_length: expected at most the text encoder's {} positions \
                 (text_encoder/config.json max_position_embeddings), found {}",
                dir.component("tokenizer")
                    .join("tokenizer_config.json")
                    .display(),
                text_config.max_position_embeddings,
                tokenizer.max_length
            )));
        }

        let unet_config_path = dir.component("unet").join("config.json");
        let unet_config = UNet2DConditionConfig::from_file(&unet_config_path)?;
        let unet_weights = dir.weights("unet", dtype, device)?;
        let unet = UNet2DConditionModel::new(unet_weights.var_builder(), &unet_config)
            .map_err(|e| in_file(e, &unet_weights.path()))?;
        if unet_config.cross_attention_dim != text_config.hidden_size {
            return Err(ModelError::Invalid(format!(
                "{}: the U-Net's cross_attention_dim is {}, the text encoder's hidden_size {}",
                dir.root.display(),
                unet_config.cross_attention_dim,
                text_config.hidden_size
            )));
        }

        let vae_config = AutoencoderKLConfig::from_file(&dir.component("vae").join("config.json"))?;
        let vae_dtype = if dtype == DType::F16 && vae_config.force_upcast != Some(false) {
            DType::F32
        } else {
            dtype
        };
        let vae_weights = dir.weights("vae", vae_dtype, device)?;
        let vae = AutoencoderKL::new(vae_weights.var_builder(), &vae_config)
            .map_err(|e| in_file(e, &vae_weights.path()))?;

        let scheduler_config: SchedulerConfig = dir.config("scheduler")?;
        scheduler_config.validate(&dir.component("scheduler").join("scheduler_config.json"))?;
        let sd = StableDiffusion {
            tokenizer,
            text_encoder,
            unet,
            vae,
            scheduler_config,
            root: dir.clone(),
            dtype,
            device: device.clone(),
        };
        sd.warm_up()?;
        Ok(sd)
    }

    /// On a GPU, runs the text encoder, the U-Net and the VAE decoder once on a tiny input, so
    /// that compiling and loading kernels and starting cuBLAS happen while loading, not in the
    /// first image (nor in a stream's first frame). Nothing to do on the CPU.
    fn warm_up(&self) -> Result<()> {
        if !self.device.is_cuda() {
            return Ok(());
        }
        #[cfg(feature = "cuda")]
        brainrecon_nn::cuda::warm_up(&self.device)?;
        let context = self.encode_prompts(&[""], None, 1.0)?;
        let side = self.unet.config.downsampling_factor();
        let channels = self.unet.config.in_channels;
        let latent = Tensor::zeros((1, channels, side, side), DType::F32, &self.device)?;
        let timestep = Tensor::new(&[1f32], &self.device)?;
        let eps = self.unet.forward(&latent, &timestep, &context.cond)?;
        let z = Tensor::zeros(
            (1, self.vae.config.latent_channels, side, side),
            DType::F32,
            &self.device,
        )?;
        let image = self.decode_latent(&z)?;
        // reading values waits until all of it has run
        eps.flatten_all()?
            .get(0)?
            .to_dtype(DType::F32)?
            .to_scalar::<f32>()?;
        image.flatten_all()?.get(0)?.to_scalar::<f32>()?;
        Ok(())
    }

    /// Pixels per latent cell (8 for Stable Diffusion).
    pub fn vae_scale_factor(&self) -> usize {
        1 << (self.vae.config.block_out_channels.len() - 1)
    }

    /// The image size the U-Net was trained at (`sample_size × vae_scale_factor`).
    pub fn default_size(&self) -> usize {
        self.unet.config.sample_size.unwrap_or(64) * self.vae_scale_factor()
    }

    /// The sampler the model folder's scheduler config names, if we have it (else DDIM).
    pub fn default_scheduler(&self) -> SchedulerKind {
        self.scheduler_config
            .class_name
            .as_deref()
            .and_then(SchedulerKind::from_class_name)
            .unwrap_or(SchedulerKind::Ddim { eta: 0.0 })
    }

    /// A sampler of `kind` on this model's noise schedule, with `steps` timesteps.
    pub fn scheduler(&self, kind: SchedulerKind, steps: usize) -> Result<Scheduler> {
        let mut s = Scheduler::new(kind, &self.scheduler_config)?;
        s.set_timesteps(steps)?;
        Ok(s)
    }

    /// Prompts → `last_hidden_state` [B, 77, D] in f32.
    pub fn encode_text(&self, prompts: &[&str]) -> Result<Tensor> {
        if prompts.is_empty() {
            return Err(ModelError::Invalid("no prompt given".into()));
        }
        let ids = self.tokenizer.encode_batch(prompts)?;
        let ids = ids_tensor(&ids, &self.device)?;
        Ok(self.text_encoder.forward(&ids)?.to_dtype(DType::F32)?)
    }

    /// The conditioning for `prompts`; with `guidance > 1` also the unconditional context
    /// from `negative` (one per prompt, or "" when absent).
    pub fn encode_prompts(
        &self,
        prompts: &[&str],
        negative: Option<&[&str]>,
        guidance: f64,
    ) -> Result<Conditioning> {
        let cond = self.encode_text(prompts)?;
        let uncond = if guidance > 1.0 {
            let empty = vec![""; prompts.len()];
            let negative = negative.unwrap_or(&empty);
            if negative.len() != prompts.len() {
                return Err(ModelError::Invalid(format!(
                    "{} negative prompts for {} prompts",
                    negative.len(),
                    prompts.len()
                )));
            }
            Some(self.encode_text(negative)?)
        } else {
            None
        };
        Ok(Conditioning { cond, uncond })
    }

    /// Images [B, 3, H, W] in [-1, 1] → U-Net latents [B, 4, H/8, W/8] (posterior mean or a
    /// sample, × scaling factor), f32.
    pub fn encode_image(
        &self,
        image: &Tensor,
        posterior: Posterior,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        let dist = self.vae.encode(image)?;
        let z = match posterior {
            Posterior::Mean => dist.mean.clone(),
            Posterior::Sample => {
                let eps = noise.gaussian(dist.mean.dims(), dist.mean.device(), DType::F32)?;
                dist.sample(&eps)?
            }
        };
        Ok(self.vae.scale_latents(&z)?.to_dtype(DType::F32)?)
    }

    /// [`StableDiffusion::encode_image`] of one image [1, 3, H, W] for `rows` samples [rows, 4,
    /// H/8, W/8]: the VAE encodes it once; a posterior sample draws one ε of shape [rows, ...]
    /// (with per-row noise, row r gets what encoding the image alone with stream r gives).
    pub fn encode_image_rows(
        &self,
        image: &Tensor,
        rows: usize,
        posterior: Posterior,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        if image.dim(0)? != 1 || rows == 0 {
            return Err(ModelError::Invalid(format!(
                "encode_image_rows: one image for at least one row, found {:?} for {rows} rows",
                image.dims()
            )));
        }
        let dist = self.vae.encode(image)?;
        let mut dims = dist.mean.dims().to_vec();
        dims[0] = rows;
        let mean = dist.mean.broadcast_as(dims.as_slice())?;
        let z = match posterior {
            Posterior::Mean => mean.contiguous()?,
            Posterior::Sample => {
                let eps = noise.gaussian(&dims, dist.mean.device(), DType::F32)?;
                let std = dist.std.broadcast_as(dims.as_slice())?;
                (mean + std.mul(&eps.to_dtype(dist.std.dtype())?)?)?
            }
        };
        Ok(self.vae.scale_latents(&z)?.to_dtype(DType::F32)?)
    }

    /// U-Net latents → images [B, 3, H, W] in [0, 1], f32.
    pub fn decode_latent(&self, latent: &Tensor) -> Result<Tensor> {
        let z = self.vae.unscale_latents(latent)?;
        let x = self.vae.decode(&z)?.to_dtype(DType::F32)?;
        Ok(((x / 2.0)? + 0.5)?.clamp(0f32, 1f32)?)
    }

    /// The U-Net's guided prediction at step `index` of `scheduler`.
    pub fn predict(
        &self,
        latents: &Tensor,
        context: &Conditioning,
        scheduler: &Scheduler,
        index: usize,
        guidance: f64,
    ) -> Result<Tensor> {
        guided_prediction(latents, context, scheduler, index, guidance, |x, t, c| {
            self.unet.forward(x, t, c)
        })
    }

    /// Runs `scheduler` from step `start` to the end on `latents` (already at that step's
    /// noise level). `progress` is called after every step.
    #[allow(clippy::too_many_arguments)]
    pub fn denoise(
        &self,
        latents: &Tensor,
        context: &Conditioning,
        scheduler: &Scheduler,
        start: usize,
        guidance: f64,
        noise: &mut dyn NoiseSource,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Tensor> {
        let predict = |x: &Tensor, index| self.predict(x, context, scheduler, index, guidance);
        denoise_loop(latents, context, scheduler, start, noise, progress, predict)
    }

    /// Generation from a caller's initial latent `x_t` (unit-variance noise, [B, 4, h, w]):
    /// it is scaled by the sampler's `init_noise_sigma`, as diffusers does with `latents=`.
    pub fn generate_from_latent(
        &self,
        x_t: &Tensor,
        context: &Conditioning,
        options: &SampleOptions,
        noise: &mut dyn NoiseSource,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Tensor> {
        let scheduler = self.scheduler(options.scheduler, options.steps)?;
        let x = (x_t.to_dtype(DType::F32)? * scheduler.init_noise_sigma())?;
        self.denoise(
            &x,
            context,
            &scheduler,
            0,
            options.guidance,
            noise,
            progress,
        )
    }

    /// txt2img: x_T drawn from `noise` for images of `height × width`.
    // `usize::is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
    #[allow(clippy::manual_is_multiple_of)]
    pub fn txt2img(
        &self,
        context: &Conditioning,
        height: usize,
        width: usize,
        options: &SampleOptions,
        noise: &mut dyn NoiseSource,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Tensor> {
        let f = self.vae_scale_factor() * self.unet.config.downsampling_factor();
        if height == 0 || width == 0 || height % f != 0 || width % f != 0 {
            return Err(ModelError::Invalid(format!(
                "height and width must be positive multiples of {f}, found {height}×{width}"
            )));
        }
        let shape = [
            context.cond.dim(0)?,
            self.unet.config.in_channels,
            height / self.vae_scale_factor(),
            width / self.vae_scale_factor(),
        ];
        let x_t = noise.gaussian(&shape, &self.device, DType::F32)?;
        self.generate_from_latent(&x_t, context, options, noise, progress)
    }

    /// img2img from a U-Net latent (e.g. [`StableDiffusion::encode_image`] or one decoded
    /// from brain activity): noised to the timestep `strength` selects, then denoised.
    pub fn img2img(
        &self,
        init_latent: &Tensor,
        context: &Conditioning,
        strength: f64,
        options: &SampleOptions,
        noise: &mut dyn NoiseSource,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Tensor> {
        let scheduler = self.scheduler(options.scheduler, options.steps)?;
        let start = scheduler.img2img_start(strength)?;
        let init = init_latent.to_dtype(DType::F32)?;
        let eps = noise.gaussian(init.dims(), init.device(), DType::F32)?;
        let x = scheduler.add_noise(&init, &eps, start)?;
        self.denoise(
            &x,
            context,
            &scheduler,
            start,
            options.guidance,
            noise,
            progress,
        )
    }
}

/// The guided prediction at step `index`: `unet(input, timestep, context)` on
/// `[latents; latents]` with `[uncond; cond]` when `guidance > 1` (then
/// `uncond + g (cond − uncond)`), else on `latents` with `cond`. Latents of any rank (images
/// [B, C, h, w], clips [B, C, f, h, w]); the batch is dimension 0.
fn guided_prediction(
    latents: &Tensor,
    context: &Conditioning,
    scheduler: &Scheduler,
    index: usize,
    guidance: f64,
    unet: impl Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let t = scheduler.timesteps()[index];
    let timestep = Tensor::from_vec(vec![t as f32], 1, latents.device())?;
    let cfg = guidance > 1.0;
    let (input, ctx) = match (&context.uncond, cfg) {
        (Some(uncond), true) => (
            Tensor::cat(&[latents, latents], 0)?,
            Tensor::cat(&[uncond, &context.cond], 0)?,
        ),
        (None, true) => {
            return Err(ModelError::Invalid(
                "guidance > 1 needs an unconditional context (encode_prompts with the same \
                 guidance, or a given negative context)"
                    .into(),
            ))
        }
        _ => (latents.clone(), context.cond.clone()),
    };
    let input = scheduler.scale_model_input(&input, index)?;
    let out = unet(&input, &timestep, &ctx)?.to_dtype(DType::F32)?;
    if cfg {
        let b = latents.dim(0)?;
        let uncond = out.narrow(0, 0, b)?;
        let cond = out.narrow(0, b, b)?;
        Ok((&uncond + ((cond - &uncond)? * guidance)?)?)
    } else {
        Ok(out)
    }
}

/// Runs `scheduler` from step `start` to the end, `predict(x, index)` giving the guided
/// prediction; `progress` is called after every step.
fn denoise_loop(
    latents: &Tensor,
    context: &Conditioning,
    scheduler: &Scheduler,
    start: usize,
    noise: &mut dyn NoiseSource,
    progress: &mut dyn FnMut(Progress),
    predict: impl Fn(&Tensor, usize) -> Result<Tensor>,
) -> Result<Tensor> {
    let n = scheduler.timesteps().len();
    if start >= n {
        return Err(ModelError::Invalid(format!(
            "denoising from step {start} of {n} runs no step"
        )));
    }
    let b = latents.dim(0)?;
    if context.cond.dim(0)? != b {
        return Err(ModelError::Invalid(format!(
            "{} prompts' context for {b} latents",
            context.cond.dim(0)?
        )));
    }
    let mut x = latents.to_dtype(DType::F32)?;
    for index in start..n {
        let pred = predict(&x, index)?;
        x = scheduler.step(&pred, index, &x, noise)?.prev_sample;
        progress(Progress {
            step: index - start + 1,
            total: n - start,
            timestep: scheduler.timesteps()[index],
        });
    }
    Ok(x)
}

/// Settings of a clip.
#[derive(Clone, Copy, Debug)]
pub struct ClipOptions {
    /// f: frames per clip.
    pub frames: usize,
    /// Frame size in pixels (multiples of the VAE and U-Net down-sampling).
    pub height: usize,
    /// Frame width in pixels (a multiple of the VAE and U-Net down-sampling).
    pub width: usize,
    /// Sampling settings.
    pub sample: SampleOptions,
}

/// A generated clip: the final latents [B, C, f, h, w] and the frames [B, f, 3, H, W] in
/// [0, 1].
#[derive(Clone, Debug)]
pub struct Clip {
    /// The final latents, [B, C, f, h, w].
    pub latents: Tensor,
    /// The decoded frames, [B, f, 3, H, W] in [0, 1].
    pub frames: Tensor,
}

/// Text → video with AnimateDiff (diffusers' `AnimateDiffPipeline`): the image pipeline's
/// tokenizer, text encoder, VAE and sampler, and a motion U-Net built on its image U-Net (the
/// tensors are shared). Guidance as in the image pipeline: the unconditional context is the
/// negative prompt's, or any given context (e.g. the mean fMRI's embedding).
pub struct VideoDiffusion {
    /// The image pipeline (tokenizer, text encoder, VAE, image U-Net, scheduler config).
    pub sd: StableDiffusion,
    /// The motion U-Net built on the image U-Net.
    pub unet: UNetMotionModel,
}

impl VideoDiffusion {
    /// A Stable Diffusion folder (or cached id) with a diffusers `MotionAdapter` folder or a
    /// cached adapter id (e.g. `guoyww/animatediff-motion-adapter-v1-5-2`; nothing is
    /// downloaded).
    pub fn load(model: &str, adapter: &str, dtype: DType, device: &Device) -> Result<Self> {
        let adapter = brainrecon_nn::weights::resolve_model_folder(
            adapter,
            "a MotionAdapter folder",
            "config.json diffusion_pytorch_model.safetensors",
        )?;
        let sd = StableDiffusion::load(model, dtype, device)?;
        Self::with_adapter(sd, &adapter)
    }

    /// Adds the motion adapter folder `adapter` to a loaded image pipeline; a whole
    /// `UNetMotionModel` folder (an image U-Net trained with its motion modules) replaces the
    /// pipeline's U-Net for clips instead, and must take the pipeline's latents and context.
    pub fn with_adapter(sd: StableDiffusion, adapter: &Path) -> Result<Self> {
        if !crate::unet_motion::is_unet_motion_folder(adapter)? {
            let unet =
                UNetMotionModel::with_adapter_dir(sd.unet.clone(), adapter, sd.dtype, &sd.device)?;
            return Ok(Self { sd, unet });
        }
        let unet = UNetMotionModel::from_pretrained(adapter, sd.dtype, &sd.device)?;
        let (ours, image) = (&unet.unet.config, &sd.unet.config);
        for (field, got, want) in [
            ("in_channels", ours.in_channels, image.in_channels),
            ("out_channels", ours.out_channels, image.out_channels),
            (
                "cross_attention_dim",
                ours.cross_attention_dim,
                image.cross_attention_dim,
            ),
        ] {
            if got != want {
                return Err(in_file(
                    ModelError::InvalidConfig(format!(
                        "`{field}` is {got}; the image model's U-Net has {want}"
                    )),
                    &adapter.join("config.json"),
                ));
            }
        }
        Ok(Self { sd, unet })
    }

    /// The guided prediction for clip latents [B, C, f, h, w] at step `index`.
    pub fn predict(
        &self,
        latents: &Tensor,
        context: &Conditioning,
        scheduler: &Scheduler,
        index: usize,
        guidance: f64,
    ) -> Result<Tensor> {
        guided_prediction(latents, context, scheduler, index, guidance, |x, t, c| {
            self.unet.forward(x, t, c)
        })
    }

    /// Generation from a caller's initial latents `x_t` [B, C, f, h, w] (unit-variance noise,
    /// scaled by the sampler's `init_noise_sigma` as diffusers does with `latents=`); `context`
    /// has one row per clip. Returns the final latents.
    pub fn generate_clip_from_latent(
        &self,
        x_t: &Tensor,
        context: &Conditioning,
        options: &SampleOptions,
        noise: &mut dyn NoiseSource,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Tensor> {
        if x_t.rank() != 5 {
            return Err(ModelError::Invalid(format!(
                "clip latents of shape {:?}, expected [batch, channels, frames, height, width]",
                x_t.dims()
            )));
        }
        let scheduler = self.sd.scheduler(options.scheduler, options.steps)?;
        let x = (x_t.to_dtype(DType::F32)? * scheduler.init_noise_sigma())?;
        let guidance = options.guidance;
        let predict = |x: &Tensor, index| self.predict(x, context, &scheduler, index, guidance);
        denoise_loop(&x, context, &scheduler, 0, noise, progress, predict)
    }

    /// img2img for clips: `init` [B, C, f, h, w] (e.g. a frame's latent decoded from brain
    /// activity, on every frame) noised to the timestep `strength` selects, then denoised, as
    /// [`StableDiffusion::img2img`] does for images. Returns the final latents.
    pub fn img2img_clip(
        &self,
        init: &Tensor,
        context: &Conditioning,
        strength: f64,
        options: &SampleOptions,
        noise: &mut dyn NoiseSource,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Tensor> {
        let eps = noise.gaussian(init.dims(), init.device(), DType::F32)?;
        self.img2img_clip_from_noise(init, &eps, context, strength, options, noise, progress)
    }

    /// [`VideoDiffusion::img2img_clip`] with the caller's noise `eps` (the shape of `init`),
    /// e.g. noise that moves ([`crate::warp::moving_noise`]); later steps draw from `noise`.
    #[allow(clippy::too_many_arguments)]
    pub fn img2img_clip_from_noise(
        &self,
        init: &Tensor,
        eps: &Tensor,
        context: &Conditioning,
        strength: f64,
        options: &SampleOptions,
        noise: &mut dyn NoiseSource,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Tensor> {
        let scheduler = self.sd.scheduler(options.scheduler, options.steps)?;
        let start = scheduler.img2img_start(strength)?;
        let init = init.to_dtype(DType::F32)?;
        let x = scheduler.add_noise(&init, &eps.to_dtype(DType::F32)?, start)?;
        let guidance = options.guidance;
        let predict = |x: &Tensor, index| self.predict(x, context, &scheduler, index, guidance);
        denoise_loop(&x, context, &scheduler, start, noise, progress, predict)
    }

    /// Text (already encoded: `context`, one row per clip, `uncond` the negative context) →
    /// clips: x_T drawn from `noise` ([B, C, f, h, w]), denoised, decoded frame by frame.
    // `usize::is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
    #[allow(clippy::manual_is_multiple_of)]
    pub fn generate_clip(
        &self,
        context: &Conditioning,
        options: &ClipOptions,
        noise: &mut dyn NoiseSource,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Clip> {
        let scale = self.sd.vae_scale_factor();
        let f = scale * self.unet.unet.config.downsampling_factor();
        let (height, width) = (options.height, options.width);
        if height == 0 || width == 0 || height % f != 0 || width % f != 0 {
            return Err(ModelError::Invalid(format!(
                "height and width must be positive multiples of {f}, found {height}×{width}"
            )));
        }
        let max = self.unet.max_frames();
        if options.frames == 0 || options.frames > max {
            return Err(ModelError::Invalid(format!(
                "{} frames asked; the motion adapter covers 1 to {max} (motion_max_seq_length)",
                options.frames
            )));
        }
        let shape = [
            context.cond.dim(0)?,
            self.unet.unet.config.in_channels,
            options.frames,
            height / scale,
            width / scale,
        ];
        let x_t = noise.gaussian(&shape, &self.sd.device, DType::F32)?;
        let latents =
            self.generate_clip_from_latent(&x_t, context, &options.sample, noise, progress)?;
        let frames = self.decode_clip(&latents)?;
        Ok(Clip { latents, frames })
    }

    /// Clip latents [B, C, f, h, w] → frames [B, f, 3, H, W] in [0, 1] (the VAE on each frame,
    /// a few frames at a time).
    pub fn decode_clip(&self, latents: &Tensor) -> Result<Tensor> {
        let (b, c, f, h, w) = latents.dims5()?;
        let rows = latents
            .permute((0, 2, 1, 3, 4))?
            .contiguous()?
            .reshape((b * f, c, h, w))?;
        const CHUNK: usize = 8;
        let mut decoded = Vec::with_capacity((b * f).div_ceil(CHUNK));
        for start in (0..b * f).step_by(CHUNK) {
            let n = CHUNK.min(b * f - start);
            decoded.push(self.sd.decode_latent(&rows.narrow(0, start, n)?)?);
        }
        let frames = Tensor::cat(&decoded, 0)?;
        let (_, ch, hh, ww) = frames.dims4()?;
        Ok(frames.reshape((b, f, ch, hh, ww))?)
    }
}

/// 8-bit RGB pixels (row-major, interleaved) → a [1, 3, H, W] f32 tensor in [-1, 1]
/// (diffusers' image processor: `2 × (p / 255) - 1`).
pub fn image_from_rgb8(
    height: usize,
    width: usize,
    pixels: &[u8],
    device: &Device,
) -> Result<Tensor> {
    if pixels.len() != height * width * 3 {
        return Err(ModelError::Invalid(format!(
            "{} bytes for a {height}×{width} RGB image",
            pixels.len()
        )));
    }
    let v: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
    let t = Tensor::from_vec(v, (height, width, 3), device)?
        .permute((2, 0, 1))?
        .unsqueeze(0)?;
    Ok(((t * 2.0)? - 1.0)?)
}

/// A [3, H, W] (or [1, 3, H, W]) tensor in [0, 1] → row-major interleaved RGB f32 values.
pub fn image_to_hwc(image: &Tensor) -> Result<(usize, usize, Vec<f32>)> {
    let image = if image.rank() == 4 {
        image.squeeze(0)?
    } else {
        image.clone()
    };
    let (c, h, w) = image.dims3()?;
    if c != 3 {
        return Err(ModelError::Invalid(format!("{c} channels, expected 3")));
    }
    let values = image
        .to_dtype(DType::F32)?
        .permute((1, 2, 0))?
        .flatten_all()?
        .to_vec1::<f32>()?;
    Ok((h, w, values))
}
