//! One training step of a project model timed on its own, so that the same step in PyTorch
//! (`tools/bench/train_step_anchor.py`) can be timed beside it.
//!
//! - [`Workload::Unet`]: the pipeline's U-Net (shapes-ldm by default), every tensor trainable:
//!   seeded latents [B, C, s, s], ε, timesteps and a context [B, T, D] (T the text encoder's
//!   positions, D the U-Net's `cross_attention_dim`), the noised latents through the U-Net,
//!   epsilon-prediction MSE, backward, `clip_grad_norm(1.0)`, AdamW (lr 1e-4). The forward
//!   and backward run on the project's tape ([`unet_forward_on_tape`]) unless
//!   [`TrainStepBench::engine`] asks for candle's autograd.
//! - [`Workload::WindowEncoder`]: the video route's [`FmriWindowEncoder`] as `video demo`
//!   trains it (patches of 64 voxels, two block pairs, dropout 0.1), seeded windows
//!   [B, K·V] and target contexts [B, T, D], [`encoder_loss`] (contrastive at temperature 0.1
//!   plus the alignment term), backward, `clip_grad_norm(1.0)`, AdamW (lr 1e-3). The forward
//!   and backward run on the project's tape ([`brainrecon_nn::tape`]) unless
//!   [`TrainStepBench::engine`] asks for candle's autograd.
//! - [`Workload::EegEncoder`]: NICE's EEG encoder ([`NiceEegEncoder`]) at THINGS-EEG2's size as
//!   NICE trains it (63 channels × 250 samples, 768-wide image embeddings, dropout 0.5):
//!   seeded trials [B, 63, 250] and image embeddings [B, 768], NICE's contrastive loss,
//!   backward, Adam (lr 2e-4, betas 0.5/0.999, as NICE; no clipping). The forward and
//!   backward run on the project's tape ([`NiceEegEncoder::train_step_on_tape`]) unless
//!   [`TrainStepBench::engine`] asks for candle's autograd.
//!
//! Each step's inputs are drawn before its timer starts; a step's time is forward, loss,
//! backward, clipping and the optimiser step.

use brainrecon_brain::nice::{nice_loss, NiceConfig, NiceEegEncoder};
use brainrecon_brain::window::tape::train_step_on_tape;
/// What differentiates the window encoder's step ([`TrainStepBench::engine`]).
pub use brainrecon_brain::window::tape::TrainEngine;
use brainrecon_brain::window::{encoder_loss, FmriWindowEncoder, WindowEncoderConfig};
use brainrecon_core::stats::median;
use brainrecon_diffusion::clip::ClipTextConfig;
use brainrecon_diffusion::scheduler::{NoiseSchedule, SchedulerConfig};
use brainrecon_diffusion::unet::{UNet2DConditionConfig, UNet2DConditionModel};
use brainrecon_diffusion::unet_tape::unet_forward_on_tape;
use brainrecon_diffusion::weights::ModelDir;
use brainrecon_nn::init::init_parameters;
use brainrecon_nn::optim::{clip_grad_norm, AdamW};
use brainrecon_nn::params::Parameters;
use brainrecon_nn::rng::{NoiseSource, SeededNoise};
use brainrecon_nn::tape::Tape;
use brainrecon_nn::weights::Overlay;
use brainrecon_routes::error::{Result, RouteError};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Instant;

/// Learning rates of the two workloads (B2C's and `video train-encoder`'s defaults).
const UNET_LR: f64 = 1e-4;
const ENCODER_LR: f64 = 1e-3;
/// Contrastive temperature and alignment weight of `video train-encoder`.
const TEMPERATURE: f64 = 0.1;
const ALIGN_WEIGHT: f64 = 1.0;
/// NICE's Adam: learning rate and first-moment decay.
const NICE_LR: f64 = 2e-4;
const NICE_BETA1: f64 = 0.5;
/// THINGS-EEG2 as NICE reads it: channels, samples (0–1 s at 250 Hz), image-embedding width.
pub const EEG_TRIAL: [usize; 2] = [63, 250];
/// Width of the image embedding each EEG trial is contrasted with.
pub const EEG_EMBEDDING: usize = 768;

/// Which model trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// The diffusion pipeline's U-Net.
    Unet,
    /// The video route's fMRI window encoder.
    WindowEncoder,
    /// NICE's EEG encoder.
    EegEncoder,
}

impl Workload {
    /// `unet` or `window-encoder`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "unet" => Ok(Workload::Unet),
            "window-encoder" => Ok(Workload::WindowEncoder),
            "eeg-encoder" => Ok(Workload::EegEncoder),
            other => Err(RouteError::Usage(format!(
                "--model: unet, window-encoder or eeg-encoder, found '{other}'"
            ))),
        }
    }

    /// The name `parse` reads.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Unet => "unet",
            Workload::WindowEncoder => "window-encoder",
            Workload::EegEncoder => "eeg-encoder",
        }
    }

    /// The batch used when none is given: B2C's 8 for the U-Net, `video train-encoder`'s 16,
    /// 256 for the EEG encoder.
    pub fn default_batch(self) -> usize {
        match self {
            Workload::Unet => 8,
            Workload::WindowEncoder => 16,
            Workload::EegEncoder => 256,
        }
    }
}

/// The window encoder's input: K frames of V voxels cut into patches of P.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowShape {
    /// K (`video prepare`'s default 2).
    pub window: usize,
    /// V (the demo's subject keeps about 1,250 reliable voxels).
    pub voxels: usize,
    /// P (the demo's 64).
    pub patch_size: usize,
}

impl Default for WindowShape {
    fn default() -> Self {
        WindowShape {
            window: 2,
            voxels: 1248,
            patch_size: 64,
        }
    }
}

/// What to time.
#[derive(Clone, Debug)]
pub struct TrainStepBench {
    /// The model trained.
    pub workload: Workload,
    /// Samples per step.
    pub batch: usize,
    /// Timed steps.
    pub steps: usize,
    /// Steps run first and not timed.
    pub warmup: usize,
    /// The diffusion pipeline (folder or `shapes-ldm`): the U-Net, and the context's shape
    /// (T from its text encoder, D its U-Net's `cross_attention_dim`) for both workloads.
    pub pipeline: String,
    /// The window encoder's input (unused for the U-Net).
    pub window: WindowShape,
    /// Seed of the inputs: each step's are drawn from it and the step's number.
    pub seed: u64,
    /// What differentiates the step (the tape by default).
    pub engine: TrainEngine,
}

/// The timing, printed as one JSON line (the same keys as the PyTorch anchor's).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct TrainStepTiming {
    /// `brainrecon` (the anchor writes `pytorch`).
    pub side: String,
    /// The model trained.
    pub workload: Workload,
    /// Samples per step.
    pub batch: usize,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps run first.
    pub warmup: usize,
    /// Threads of the thread pool.
    pub threads: usize,
    /// What differentiated the step: `tape` (the U-Net's and the window encoder's default)
    /// or `candle`.
    #[serde(default)]
    pub engine: String,
    /// The pipeline folder read.
    pub pipeline: PathBuf,
    /// Trainable parameters (elements).
    pub parameters: usize,
    /// Context tokens T (1 for the EEG encoder: one image embedding per trial).
    pub tokens: usize,
    /// Context width D (the image embedding's for the EEG encoder).
    pub width: usize,
    /// [C, s, s] of the U-Net's latents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latent: Option<[usize; 3]>,
    /// The window encoder's input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowShape>,
    /// [channels, samples] of the EEG encoder's trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eeg_trial: Option<[usize; 2]>,
    /// Fastest timed step, seconds.
    pub seconds_min: f64,
    /// Median timed step, seconds.
    pub seconds_median: f64,
    /// Every timed step, seconds.
    pub seconds: Vec<f64>,
    /// Loss of the first and the last step (warm-up included).
    pub loss_first: f64,
    /// See `loss_first`.
    pub loss_last: f64,
    /// Peak resident memory of the process (VmHWM), MB; includes loading the model.
    pub peak_rss_mb: f64,
    /// brainrecon's version.
    pub version: String,
}

impl TrainStepTiming {
    /// The line `bench train-step` prints.
    pub fn text(&self) -> String {
        format!(
            "{} training step ({}), batch {}, {} threads: {:.1} ms min, {:.1} ms median over {} steps; \
             {} parameters; peak {:.0} MB\n",
            self.workload.name(),
            self.engine,
            self.batch,
            self.threads,
            self.seconds_min * 1000.0,
            self.seconds_median * 1000.0,
            self.steps,
            self.parameters,
            self.peak_rss_mb
        )
    }
}

/// A workload's step: its inputs (drawn untimed) and its loss; [`run`] times the loss,
/// backward and the update.
trait Step {
    /// The inputs of step `step`, drawn before the timer starts.
    fn inputs(&self, step: usize) -> Result<Vec<Tensor>>;
    /// Forward and loss on `inputs`.
    fn loss(&self, inputs: &[Tensor], step: usize) -> Result<Tensor>;
    /// The loss and the gradients of step `step`: candle's backward of [`Step::loss`] unless
    /// the workload has its own.
    fn loss_and_grads(&self, inputs: &[Tensor], step: usize) -> Result<(f64, GradStore)> {
        let loss = self.loss(inputs, step)?;
        let grads = loss.backward()?;
        Ok((loss.to_scalar::<f32>()? as f64, grads))
    }
}

struct UnetStep {
    unet: UNet2DConditionModel,
    schedule: NoiseSchedule,
    shape: (usize, [usize; 3], usize, usize),
    seed: u64,
    /// `Some` when the step runs on the tape (its buffers are reused step after step).
    tape: Option<RefCell<Tape>>,
}

impl UnetStep {
    fn timesteps(&self, step: usize) -> Vec<usize> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x7E00_0000 ^ step as u64);
        (0..self.shape.0)
            .map(|_| rng.gen_range(0..self.schedule.num_train_timesteps()))
            .collect()
    }
}

impl Step for UnetStep {
    fn inputs(&self, step: usize) -> Result<Vec<Tensor>> {
        let (b, [c, h, w], t, d) = self.shape;
        let mut noise = SeededNoise::new(self.seed ^ step as u64);
        let dev = &Device::Cpu;
        let latents = noise.gaussian(&[b, c, h, w], dev, DType::F32)?;
        let eps = noise.gaussian(&[b, c, h, w], dev, DType::F32)?;
        let context = noise.gaussian(&[b, t, d], dev, DType::F32)?;
        let timesteps = self.timesteps(step);
        let noisy = self.schedule.add_noise(&latents, &eps, &timesteps)?;
        let t = Tensor::from_vec(
            timesteps.iter().map(|&t| t as f32).collect::<Vec<_>>(),
            b,
            dev,
        )?;
        Ok(vec![noisy, t, context, eps])
    }

    fn loss(&self, inputs: &[Tensor], _step: usize) -> Result<Tensor> {
        let predicted = self.unet.forward(&inputs[0], &inputs[1], &inputs[2])?;
        Ok((predicted - &inputs[3])?.sqr()?.mean_all()?)
    }

    fn loss_and_grads(&self, inputs: &[Tensor], step: usize) -> Result<(f64, GradStore)> {
        let Some(tape) = &self.tape else {
            let loss = self.loss(inputs, step)?;
            let grads = loss.backward()?;
            return Ok((loss.to_scalar::<f32>()? as f64, grads));
        };
        let tape = &mut *tape.borrow_mut();
        tape.clear();
        let mut constant = |t: &Tensor| -> Result<_> {
            Ok(tape.input(t.dims(), &t.flatten_all()?.to_vec1::<f32>()?)?)
        };
        let (noisy, context, eps) = (
            constant(&inputs[0])?,
            constant(&inputs[2])?,
            constant(&inputs[3])?,
        );
        let timesteps = inputs[1].to_vec1::<f32>()?;
        let on = unet_forward_on_tape(&self.unet, tape, noisy, &timesteps, context, &|_| true)?;
        let loss = tape.mse(on.output, eps)?;
        tape.backward(loss)?;
        let grads = tape.grad_store(&on.tensor_nodes())?;
        Ok((tape.value(loss)[0] as f64, grads))
    }
}

struct EncoderStep {
    encoder: FmriWindowEncoder,
    shape: (usize, usize, usize, usize),
    seed: u64,
    /// `Some` when the step runs on the tape (its buffers are reused step after step).
    tape: Option<RefCell<Tape>>,
}

impl EncoderStep {
    fn dropout_rng(&self, step: usize) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(self.seed ^ 0xD0_0000 ^ step as u64)
    }
}

impl Step for EncoderStep {
    fn inputs(&self, step: usize) -> Result<Vec<Tensor>> {
        let (b, width, t, d) = self.shape;
        let mut noise = SeededNoise::new(self.seed ^ step as u64);
        let windows = noise.gaussian(&[b, width], &Device::Cpu, DType::F32)?;
        let targets = noise.gaussian(&[b, t, d], &Device::Cpu, DType::F32)?;
        Ok(vec![windows, targets])
    }

    fn loss(&self, inputs: &[Tensor], step: usize) -> Result<Tensor> {
        let mut rng = self.dropout_rng(step);
        let context = self.encoder.forward(&inputs[0], Some(&mut rng))?;
        let (total, _, _) = encoder_loss(&context, &inputs[1], TEMPERATURE, ALIGN_WEIGHT)?;
        Ok(total)
    }

    fn loss_and_grads(&self, inputs: &[Tensor], step: usize) -> Result<(f64, GradStore)> {
        let Some(tape) = &self.tape else {
            let loss = self.loss(inputs, step)?;
            let grads = loss.backward()?;
            return Ok((loss.to_scalar::<f32>()? as f64, grads));
        };
        let mut rng = self.dropout_rng(step);
        let done = train_step_on_tape(
            &self.encoder,
            &mut tape.borrow_mut(),
            &inputs[0],
            &inputs[1],
            Some(&mut rng),
            TEMPERATURE,
            ALIGN_WEIGHT,
        )?;
        Ok((done.loss.total, done.grads))
    }
}

struct EegStep {
    encoder: NiceEegEncoder,
    shape: (usize, [usize; 2], usize),
    seed: u64,
    tape: Option<RefCell<Tape>>,
}

impl Step for EegStep {
    fn inputs(&self, step: usize) -> Result<Vec<Tensor>> {
        let (b, [channels, times], d) = self.shape;
        let mut noise = SeededNoise::new(self.seed ^ step as u64);
        let eeg = noise.gaussian(&[b, channels, times], &Device::Cpu, DType::F32)?;
        let image = noise.gaussian(&[b, d], &Device::Cpu, DType::F32)?;
        Ok(vec![eeg, image])
    }

    fn loss(&self, inputs: &[Tensor], step: usize) -> Result<Tensor> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0xEE_0000 ^ step as u64);
        let embedding = self.encoder.forward(&inputs[0], Some(&mut rng))?;
        Ok(nice_loss(
            &embedding,
            &inputs[1],
            &self.encoder.logit_scale,
        )?)
    }

    fn loss_and_grads(&self, inputs: &[Tensor], step: usize) -> Result<(f64, GradStore)> {
        let Some(tape) = &self.tape else {
            let loss = self.loss(inputs, step)?;
            let grads = loss.backward()?;
            return Ok((loss.to_scalar::<f32>()? as f64, grads));
        };
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0xEE_0000 ^ step as u64);
        let done = self.encoder.train_step_on_tape(
            &mut tape.borrow_mut(),
            &inputs[0],
            &inputs[1],
            &mut rng,
        )?;
        Ok((done.loss, done.grads))
    }
}

/// Builds the workload on the CPU in f32 and times `warmup + steps` training steps; returns
/// the timing (see the module documentation for the step).
pub fn run(bench: &TrainStepBench) -> Result<TrainStepTiming> {
    let min_batch = match bench.workload {
        Workload::Unet => 1,
        // the contrastive losses compare the samples of a batch
        Workload::WindowEncoder | Workload::EegEncoder => 2,
    };
    if bench.batch < min_batch || bench.steps == 0 {
        return Err(RouteError::Usage(format!(
            "--batch must be at least {min_batch} for {} and --steps at least 1",
            bench.workload.name()
        )));
    }
    let dir = ModelDir::resolve(&bench.pipeline)?;
    let text = ClipTextConfig::from_file(&dir.component("text_encoder").join("config.json"))?;
    let unet_config = UNet2DConditionConfig::from_file(&dir.component("unet").join("config.json"))?;
    let (tokens, width) = (
        text.max_position_embeddings,
        unet_config.cross_attention_dim,
    );
    let b = bench.batch;
    let mut latent = None;
    let mut window = None;
    let mut eeg_trial = None;
    let (mut tokens, mut width) = (tokens, width);
    let (step, params, lr): (Box<dyn Step>, Parameters, f64) = match bench.workload {
        Workload::Unet => {
            let weights = dir.weights("unet", DType::F32, &Device::Cpu)?;
            let (overlay, vars) = Overlay::trainable(&weights, |_| true, DType::F32)?;
            let unet = UNet2DConditionModel::new(overlay.var_builder(), &unet_config)?;
            let schedule = NoiseSchedule::new(&dir.config::<SchedulerConfig>("scheduler")?)?;
            let side = unet_config.sample_size.unwrap_or(16);
            let shape = [unet_config.in_channels, side, side];
            latent = Some(shape);
            let step = UnetStep {
                unet,
                schedule,
                shape: (b, shape, tokens, width),
                seed: bench.seed,
                tape: (bench.engine == TrainEngine::Tape).then(|| RefCell::new(Tape::new())),
            };
            (Box::new(step), Parameters::from_vars(vars)?, UNET_LR)
        }
        Workload::WindowEncoder => {
            let s = bench.window;
            let mut config = WindowEncoderConfig::new(s.window, s.voxels, tokens, width);
            config.patch_size = s.patch_size;
            if let Some(problem) = config.problem() {
                return Err(RouteError::Usage(format!("window encoder: {problem}")));
            }
            window = Some(s);
            let (encoder, params) = init_parameters(
                |vb| FmriWindowEncoder::new(vb, &config),
                bench.seed ^ 0x71D,
                DType::F32,
                &Device::Cpu,
            )?;
            let step = EncoderStep {
                encoder,
                shape: (b, s.window * s.voxels, tokens, width),
                seed: bench.seed,
                tape: (bench.engine == TrainEngine::Tape).then(|| RefCell::new(Tape::new())),
            };
            (Box::new(step), params, ENCODER_LR)
        }
        Workload::EegEncoder => {
            let [channels, times] = EEG_TRIAL;
            let config = NiceConfig::new(channels, times, EEG_EMBEDDING);
            let (encoder, params) =
                brainrecon_brain::nice::initialise(&config, bench.seed ^ 0xEE6, &Device::Cpu)?;
            (tokens, width) = (1, EEG_EMBEDDING);
            eeg_trial = Some(EEG_TRIAL);
            let step = EegStep {
                encoder,
                shape: (b, EEG_TRIAL, EEG_EMBEDDING),
                seed: bench.seed,
                tape: (bench.engine == TrainEngine::Tape).then(|| RefCell::new(Tape::new())),
            };
            (Box::new(step), params, NICE_LR)
        }
    };
    // NICE trains with Adam (betas 0.5, 0.999) and no clipping; the others as their routes.
    let (mut optimizer, clip) = match bench.workload {
        Workload::EegEncoder => (AdamW::new(lr, NICE_BETA1, 0.999, 1e-8, 0.0)?, None),
        _ => (AdamW::with_defaults(lr)?, Some(1.0)),
    };
    let mut seconds = Vec::with_capacity(bench.steps);
    let mut losses = Vec::with_capacity(bench.warmup + bench.steps);
    for i in 0..bench.warmup + bench.steps {
        let inputs = step.inputs(i)?;
        let started = Instant::now();
        let (loss, mut grads) = step.loss_and_grads(&inputs, i)?;
        if let Some(max_norm) = clip {
            clip_grad_norm(&mut grads, &params, max_norm)?;
        }
        optimizer.step(&params, &grads)?;
        losses.push(loss);
        if i >= bench.warmup {
            seconds.push(started.elapsed().as_secs_f64());
        }
    }
    let seconds_min = seconds.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(TrainStepTiming {
        side: "brainrecon".into(),
        workload: bench.workload,
        batch: b,
        steps: bench.steps,
        warmup: bench.warmup,
        threads: rayon::current_num_threads(),
        engine: bench.engine.name().into(),
        pipeline: dir.root.clone(),
        parameters: params.count_elements(),
        tokens,
        width,
        latent,
        window,
        eeg_trial,
        seconds_min,
        seconds_median: median(&mut seconds.clone()),
        seconds,
        loss_first: losses[0],
        loss_last: *losses.last().expect("at least one step"),
        peak_rss_mb: super::peak_rss_mb(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}
