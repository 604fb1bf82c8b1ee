//! Noise schedules and samplers with diffusers' semantics.
//!
//! - [`NoiseSchedule`]: the DDPM forward process used for training: `add_noise` (q(x_t | x_0))
//!   and `get_velocity` (v-prediction targets), with one timestep per sample.
//! - [`Scheduler`]: the samplers, DDIM (eta 0 and eta > 0), Euler and Euler ancestral, with
//!   'linspace', 'leading' (SD1, plus `steps_offset`) and 'trailing' (sd-turbo) timestep
//!   spacing, epsilon / v / sample prediction, img2img starts (`strength`).
//!
//! Both read diffusers' `scheduler/scheduler_config.json` ([`SchedulerConfig`]). Keys absent
//! from the file take the defaults of the scheduler class that is built, as
//! `XScheduler.from_config(other.config)` does in diffusers (SD1 ships a PNDM config without
//! `timestep_spacing`: DDIM then spaces 'leading', Euler 'linspace').
//!
//! The schedule is computed as diffusers computes it: betas and cumulative products in f32,
//! Euler sigmas interpolated in f64 and stored in f32. Every random draw comes from the
//! caller's [`NoiseSource`].

use candle_core::{DType, Tensor};
use serde::Deserialize;
use std::path::Path;

use brainrecon_nn::rng::NoiseSource;
use brainrecon_nn::weights::read_json;
use brainrecon_nn::{ModelError, Result};

/// What the denoising network predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum PredictionType {
    /// `epsilon`: the added noise ε.
    #[serde(rename = "epsilon")]
    Epsilon,
    /// `v_prediction`: the velocity `√ᾱ_t·ε − √(1 − ᾱ_t)·x_0`.
    #[serde(rename = "v_prediction")]
    VPrediction,
    /// `sample`: the clean sample x_0.
    #[serde(rename = "sample")]
    Sample,
}

/// How inference timesteps are spread over the training timesteps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum TimestepSpacing {
    /// `linspace`: evenly from the last training timestep to 0.
    #[serde(rename = "linspace")]
    Linspace,
    /// `leading`: multiples of `num_train_timesteps / steps`, plus `steps_offset` (SD1).
    #[serde(rename = "leading")]
    Leading,
    /// `trailing`: evenly down from the last training timestep (sd-turbo).
    #[serde(rename = "trailing")]
    Trailing,
}

/// `scheduler/scheduler_config.json` as diffusers writes it. Unknown keys are ignored; keys
/// that change the numbers but are not implemented (Karras sigmas, zero-SNR rescaling,
/// dynamic thresholding) are rejected by [`Scheduler::new`].
#[derive(Clone, Debug, Deserialize)]
pub struct SchedulerConfig {
    /// `_class_name`: the scheduler class that wrote the file.
    #[serde(rename = "_class_name", default)]
    pub class_name: Option<String>,
    /// Timesteps of the training schedule (default 1000).
    #[serde(default = "default_train_steps")]
    pub num_train_timesteps: usize,
    /// First beta (default 0.0001).
    #[serde(default = "default_beta_start")]
    pub beta_start: f64,
    /// Last beta (default 0.02).
    #[serde(default = "default_beta_end")]
    pub beta_end: f64,
    /// `linear`, `scaled_linear` (SD) or `squaredcos_cap_v2` (default `linear`).
    #[serde(default = "default_beta_schedule")]
    pub beta_schedule: String,
    /// Explicit betas, one per training timestep, instead of `beta_schedule`.
    #[serde(default)]
    pub trained_betas: Option<Vec<f64>>,
    /// What the network predicts (default epsilon).
    #[serde(default)]
    pub prediction_type: Option<PredictionType>,
    /// How inference timesteps are spread (default: `leading` for DDIM, `linspace` for Euler).
    #[serde(default)]
    pub timestep_spacing: Option<TimestepSpacing>,
    /// Added to `leading` timesteps.
    #[serde(default)]
    pub steps_offset: usize,
    /// DDIM: the final step's ᾱ is 1 (default true), else the first training ᾱ.
    #[serde(default)]
    pub set_alpha_to_one: Option<bool>,
    /// DDIM: clip the predicted x_0 to ±`clip_sample_range` (default true).
    #[serde(default)]
    pub clip_sample: Option<bool>,
    /// Bound of `clip_sample` (default 1).
    #[serde(default)]
    pub clip_sample_range: Option<f64>,
    /// Dynamic thresholding; refused when true.
    #[serde(default)]
    pub thresholding: bool,
    /// Zero-terminal-SNR rescaling of the betas; refused when true.
    #[serde(default)]
    pub rescale_betas_zero_snr: bool,
    /// Karras sigmas; refused when true.
    #[serde(default)]
    pub use_karras_sigmas: bool,
    /// Exponential sigmas; refused when true.
    #[serde(default)]
    pub use_exponential_sigmas: bool,
    /// Beta sigmas; refused when true.
    #[serde(default)]
    pub use_beta_sigmas: bool,
    /// Euler's sigma interpolation; only `linear`.
    #[serde(default)]
    pub interpolation_type: Option<String>,
    /// Euler's timestep type; only `discrete`.
    #[serde(default)]
    pub timestep_type: Option<String>,
    /// Euler's last sigma; only `zero`.
    #[serde(default)]
    pub final_sigmas_type: Option<String>,
}

fn default_train_steps() -> usize {
    1000
}
fn default_beta_start() -> f64 {
    0.0001
}
fn default_beta_end() -> f64 {
    0.02
}
fn default_beta_schedule() -> String {
    "linear".into()
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("every field has a default")
    }
}

impl SchedulerConfig {
    /// Reads and checks `scheduler_config.json`; errors name the file and the field.
    pub fn from_file(path: &Path) -> Result<Self> {
        let config: Self = read_json(path, "scheduler config")?;
        config.validate(path)?;
        Ok(config)
    }

    /// Bounds the schedule's fields (hostile `scheduler_config.json` files): the training
    /// schedule is `num_train_timesteps` floats, betas must be probabilities.
    pub fn validate(&self, path: &Path) -> Result<()> {
        self.check_fields().map_err(|message| ModelError::Config {
            path: path.to_path_buf(),
            what: "scheduler config".into(),
            message,
        })
    }

    fn check_fields(&self) -> std::result::Result<(), String> {
        use brainrecon_nn::config_bounds::{finite_in, in_range, positive};
        let n = self.num_train_timesteps;
        positive("num_train_timesteps", n, 1_000_000)?;
        in_range("steps_offset", self.steps_offset, 0, n - 1)?;
        finite_in("beta_start", self.beta_start, 0.0, 1.0)?;
        finite_in("beta_end", self.beta_end, 0.0, 1.0)?;
        if let Some(range) = self.clip_sample_range {
            finite_in("clip_sample_range", range, 0.0, 1e6)?;
        }
        if let Some(betas) = &self.trained_betas {
            if betas.len() != n {
                return Err(format!(
                    "trained_betas: expected {n} values (num_train_timesteps), found {}",
                    betas.len()
                ));
            }
            for (i, b) in betas.iter().enumerate() {
                finite_in(&format!("trained_betas[{i}]"), *b, 0.0, 1.0)?;
            }
        }
        Ok(())
    }

    /// Stable Diffusion's schedule: scaled_linear 0.00085 … 0.012 over 1000 steps.
    pub fn stable_diffusion() -> Self {
        SchedulerConfig {
            beta_start: 0.00085,
            beta_end: 0.012,
            beta_schedule: "scaled_linear".into(),
            steps_offset: 1,
            set_alpha_to_one: Some(false),
            clip_sample: Some(false),
            ..Default::default()
        }
    }

    /// `prediction_type`, epsilon when absent.
    pub fn prediction_type(&self) -> PredictionType {
        self.prediction_type.unwrap_or(PredictionType::Epsilon)
    }

    /// Betas as diffusers computes them (f32).
    pub fn betas(&self) -> Result<Vec<f32>> {
        let n = self.num_train_timesteps;
        // Configs built in code skip `from_file`; bound them before allocating the schedule.
        self.check_fields()
            .map_err(|m| ModelError::Invalid(format!("scheduler config: {m}")))?;
        if let Some(trained) = &self.trained_betas {
            if trained.len() != n {
                return Err(ModelError::Invalid(format!(
                    "scheduler config: trained_betas has {} values, num_train_timesteps is {n}",
                    trained.len()
                )));
            }
            return Ok(trained.iter().map(|&b| b as f32).collect());
        }
        match self.beta_schedule.as_str() {
            "linear" => Ok(torch_linspace_f32(
                self.beta_start as f32,
                self.beta_end as f32,
                n,
            )),
            "scaled_linear" => Ok(torch_linspace_f32(
                self.beta_start.sqrt() as f32,
                self.beta_end.sqrt() as f32,
                n,
            )
            .into_iter()
            .map(|b| b * b)
            .collect()),
            "squaredcos_cap_v2" => {
                let alpha_bar = |t: f64| {
                    ((t + 0.008) / 1.008 * std::f64::consts::PI / 2.0)
                        .cos()
                        .powi(2)
                };
                Ok((0..n)
                    .map(|i| {
                        let t1 = i as f64 / n as f64;
                        let t2 = (i + 1) as f64 / n as f64;
                        (1.0 - alpha_bar(t2) / alpha_bar(t1)).min(0.999) as f32
                    })
                    .collect())
            }
            other => Err(ModelError::Invalid(format!(
                "scheduler config: beta_schedule '{other}' is not supported (linear, \
                 scaled_linear, squaredcos_cap_v2)"
            ))),
        }
    }

    /// Cumulative products of `1 - beta` (f32, sequential as torch.cumprod).
    pub fn alphas_cumprod(&self) -> Result<Vec<f32>> {
        let mut acc = 1.0f32;
        Ok(self
            .betas()?
            .into_iter()
            .map(|b| {
                acc *= 1.0 - b;
                acc
            })
            .collect())
    }
}

/// torch.linspace in f32: the first half counts up from `start`, the second down from `end`.
fn torch_linspace_f32(start: f32, end: f32, steps: usize) -> Vec<f32> {
    if steps == 1 {
        return vec![start];
    }
    let step = (end - start) / (steps - 1) as f32;
    let half = steps / 2;
    (0..steps)
        .map(|i| {
            if i < half {
                start + step * i as f32
            } else {
                end - step * (steps - i - 1) as f32
            }
        })
        .collect()
}

/// Per-sample coefficients as a [B, 1, 1, ...] tensor matching `like`.
fn per_sample(values: &[f64], like: &Tensor) -> Result<Tensor> {
    let mut shape = vec![1usize; like.rank()];
    shape[0] = values.len();
    let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    Ok(Tensor::from_vec(v, shape, like.device())?.to_dtype(like.dtype())?)
}

/// The DDPM forward process q(x_t | x_0) for training, one timestep per sample.
#[derive(Clone, Debug)]
pub struct NoiseSchedule {
    /// ᾱ_t: cumulative products of `1 − β`, one per training timestep (f32).
    pub alphas_cumprod: Vec<f32>,
    /// What the network predicts (the training target).
    pub prediction_type: PredictionType,
}

impl NoiseSchedule {
    /// The training schedule of `config`; errors on an invalid or unsupported beta schedule.
    pub fn new(config: &SchedulerConfig) -> Result<Self> {
        Ok(NoiseSchedule {
            alphas_cumprod: config.alphas_cumprod()?,
            prediction_type: config.prediction_type(),
        })
    }

    /// Timesteps of the training schedule.
    pub fn num_train_timesteps(&self) -> usize {
        self.alphas_cumprod.len()
    }

    fn coefficients(&self, timesteps: &[usize], batch: usize) -> Result<(Vec<f64>, Vec<f64>)> {
        if timesteps.len() != batch {
            return Err(ModelError::Invalid(format!(
                "{} timesteps for a batch of {batch}",
                timesteps.len()
            )));
        }
        let mut a = Vec::with_capacity(batch);
        let mut s = Vec::with_capacity(batch);
        for &t in timesteps {
            let acp = *self.alphas_cumprod.get(t).ok_or_else(|| {
                ModelError::Invalid(format!(
                    "timestep {t} is outside 0..{}",
                    self.alphas_cumprod.len()
                ))
            })?;
            a.push((acp as f64).sqrt());
            s.push((1.0 - acp as f64).sqrt());
        }
        Ok((a, s))
    }

    /// `sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε` for each sample's timestep. Differentiable in both.
    pub fn add_noise(
        &self,
        original: &Tensor,
        noise: &Tensor,
        timesteps: &[usize],
    ) -> Result<Tensor> {
        let (a, s) = self.coefficients(timesteps, original.dim(0)?)?;
        Ok(original
            .broadcast_mul(&per_sample(&a, original)?)?
            .add(&noise.broadcast_mul(&per_sample(&s, noise)?)?)?)
    }

    /// v-prediction target `sqrt(ᾱ_t) ε - sqrt(1 - ᾱ_t) x_0`.
    pub fn get_velocity(
        &self,
        sample: &Tensor,
        noise: &Tensor,
        timesteps: &[usize],
    ) -> Result<Tensor> {
        let (a, s) = self.coefficients(timesteps, sample.dim(0)?)?;
        Ok(noise
            .broadcast_mul(&per_sample(&a, noise)?)?
            .sub(&sample.broadcast_mul(&per_sample(&s, sample)?)?)?)
    }

    /// The regression target of the configured prediction type.
    pub fn training_target(
        &self,
        original: &Tensor,
        noise: &Tensor,
        timesteps: &[usize],
    ) -> Result<Tensor> {
        match self.prediction_type {
            PredictionType::Epsilon => Ok(noise.clone()),
            PredictionType::VPrediction => self.get_velocity(original, noise, timesteps),
            PredictionType::Sample => Ok(original.clone()),
        }
    }
}

/// Which sampler.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SchedulerKind {
    /// DDIM; `eta` 0 is deterministic, `eta` 1 is DDPM-like.
    Ddim {
        /// η: 0 deterministic, 1 DDPM-like.
        eta: f64,
    },
    /// Euler (diffusers' `EulerDiscreteScheduler`).
    Euler,
    /// Euler ancestral (`EulerAncestralDiscreteScheduler`), fresh noise at every step.
    EulerAncestral,
}

impl SchedulerKind {
    /// `ddim`, `euler` or `euler-a` (also `euler_a`, `euler-ancestral`).
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "ddim" => Ok(SchedulerKind::Ddim { eta: 0.0 }),
            "euler" => Ok(SchedulerKind::Euler),
            "euler-a" | "euler_a" | "euler-ancestral" => Ok(SchedulerKind::EulerAncestral),
            other => Err(ModelError::Invalid(format!(
                "unknown scheduler '{other}' (ddim, euler, euler-a)"
            ))),
        }
    }

    /// The CLI name (`ddim`, `euler`, `euler-a`).
    pub fn name(&self) -> &'static str {
        match self {
            SchedulerKind::Ddim { .. } => "ddim",
            SchedulerKind::Euler => "euler",
            SchedulerKind::EulerAncestral => "euler-a",
        }
    }

    /// The kind diffusers would build from a config's `_class_name`, if it is one of ours.
    pub fn from_class_name(name: &str) -> Option<Self> {
        match name {
            "DDIMScheduler" => Some(SchedulerKind::Ddim { eta: 0.0 }),
            "EulerDiscreteScheduler" => Some(SchedulerKind::Euler),
            "EulerAncestralDiscreteScheduler" => Some(SchedulerKind::EulerAncestral),
            _ => None,
        }
    }
}

/// One sampler step's results.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// The sample at the previous (less noisy) timestep.
    pub prev_sample: Tensor,
    /// The predicted clean sample x_0.
    pub pred_original_sample: Tensor,
}

/// A sampler with its inference timesteps.
#[derive(Clone, Debug)]
pub struct Scheduler {
    /// The sampler.
    pub kind: SchedulerKind,
    /// Timesteps of the training schedule.
    pub num_train_timesteps: usize,
    /// What the network predicts.
    pub prediction_type: PredictionType,
    /// How the inference timesteps are spread.
    pub spacing: TimestepSpacing,
    /// Added to `leading` timesteps.
    pub steps_offset: usize,
    /// DDIM's bound on the predicted x_0 (`clip_sample_range`), when clipping.
    pub clip_sample: Option<f64>,
    /// ᾱ_t of the training schedule (f32).
    pub alphas_cumprod: Vec<f32>,
    final_alpha_cumprod: f32,
    num_inference_steps: usize,
    timesteps: Vec<f64>,
    /// Euler: sigma of each inference step, then 0.
    sigmas: Vec<f32>,
}

impl Scheduler {
    /// A sampler from a scheduler config; call [`Scheduler::set_timesteps`] before sampling.
    pub fn new(kind: SchedulerKind, config: &SchedulerConfig) -> Result<Self> {
        let unsupported = [
            (config.thresholding, "thresholding"),
            (config.rescale_betas_zero_snr, "rescale_betas_zero_snr"),
            (config.use_karras_sigmas, "use_karras_sigmas"),
            (config.use_exponential_sigmas, "use_exponential_sigmas"),
            (config.use_beta_sigmas, "use_beta_sigmas"),
        ];
        for (on, key) in unsupported {
            if on {
                return Err(ModelError::Invalid(format!(
                    "scheduler config: {key} = true is not supported"
                )));
            }
        }
        for (value, key, allowed) in [
            (&config.interpolation_type, "interpolation_type", "linear"),
            (&config.timestep_type, "timestep_type", "discrete"),
            (&config.final_sigmas_type, "final_sigmas_type", "zero"),
        ] {
            if let Some(v) = value {
                if v != allowed
                    && matches!(kind, SchedulerKind::Euler | SchedulerKind::EulerAncestral)
                {
                    return Err(ModelError::Invalid(format!(
                        "scheduler config: {key} = '{v}' is not supported (only '{allowed}')"
                    )));
                }
            }
        }
        if let SchedulerKind::Ddim { eta } = kind {
            if !(eta >= 0.0 && eta.is_finite()) {
                return Err(ModelError::Invalid(format!(
                    "DDIM eta must be ≥ 0, found {eta}"
                )));
            }
        }
        let alphas_cumprod = config.alphas_cumprod()?;
        let is_ddim = matches!(kind, SchedulerKind::Ddim { .. });
        let spacing = config.timestep_spacing.unwrap_or(if is_ddim {
            TimestepSpacing::Leading
        } else {
            TimestepSpacing::Linspace
        });
        let set_alpha_to_one = config.set_alpha_to_one.unwrap_or(true);
        let clip_sample = if is_ddim && config.clip_sample.unwrap_or(true) {
            Some(config.clip_sample_range.unwrap_or(1.0))
        } else {
            None
        };
        Ok(Scheduler {
            kind,
            num_train_timesteps: config.num_train_timesteps,
            prediction_type: config.prediction_type(),
            spacing,
            steps_offset: config.steps_offset,
            clip_sample,
            final_alpha_cumprod: if set_alpha_to_one {
                1.0
            } else {
                alphas_cumprod[0]
            },
            alphas_cumprod,
            num_inference_steps: 0,
            timesteps: Vec::new(),
            sigmas: Vec::new(),
        })
    }

    /// Chooses `num_inference_steps` timesteps (high to low).
    pub fn set_timesteps(&mut self, num_inference_steps: usize) -> Result<()> {
        let n_train = self.num_train_timesteps;
        if num_inference_steps == 0 || num_inference_steps > n_train {
            return Err(ModelError::Invalid(format!(
                "the number of inference steps must be 1 to {n_train}, found {num_inference_steps}"
            )));
        }
        let n = num_inference_steps;
        let is_ddim = matches!(self.kind, SchedulerKind::Ddim { .. });
        let timesteps: Vec<f64> = match self.spacing {
            TimestepSpacing::Linspace => {
                let last = (n_train - 1) as f64;
                let lin: Vec<f64> = (0..n)
                    .map(|i| {
                        if n == 1 {
                            0.0
                        } else {
                            last * i as f64 / (n - 1) as f64
                        }
                    })
                    .collect();
                if is_ddim {
                    lin.into_iter().rev().map(f64::round_ties_even).collect()
                } else {
                    // numpy linspace in float32, kept fractional.
                    lin.into_iter().rev().map(|t| t as f32 as f64).collect()
                }
            }
            TimestepSpacing::Leading => {
                let ratio = n_train / n;
                (0..n)
                    .rev()
                    .map(|i| (i * ratio + self.steps_offset) as f64)
                    .collect()
            }
            TimestepSpacing::Trailing => {
                // np.round(np.arange(n_train, 0, -n_train / n)) - 1
                let ratio = n_train as f64 / n as f64;
                let count = ((0.0 - n_train as f64) / -ratio).ceil() as usize;
                (0..count)
                    .map(|i| (n_train as f64 - i as f64 * ratio).round_ties_even() - 1.0)
                    .collect()
            }
        };
        if let Some(&bad) = timesteps
            .iter()
            .find(|&&t| t < 0.0 || t > (n_train - 1) as f64)
        {
            return Err(ModelError::Invalid(format!(
                "timestep {bad} from {n} steps with steps_offset {} lies outside 0..{n_train}",
                self.steps_offset
            )));
        }
        if !is_ddim {
            let base: Vec<f32> = self
                .alphas_cumprod
                .iter()
                .map(|&a| ((1.0 - a) / a).sqrt())
                .collect();
            let mut sigmas: Vec<f32> = timesteps
                .iter()
                .map(|&t| {
                    let lo = (t.floor() as usize).min(n_train - 1);
                    let hi = (lo + 1).min(n_train - 1);
                    let frac = t - lo as f64;
                    let (a, b) = (base[lo] as f64, base[hi] as f64);
                    if hi == lo {
                        a as f32
                    } else {
                        ((b - a) * frac + a) as f32
                    }
                })
                .collect();
            sigmas.push(0.0);
            self.sigmas = sigmas;
        }
        self.num_inference_steps = n;
        self.timesteps = timesteps;
        Ok(())
    }

    /// The inference timesteps, high to low (as given to the U-Net).
    pub fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    /// Euler sigmas (one per step, then 0); empty for DDIM.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    fn check_ready(&self, step_index: usize) -> Result<()> {
        if self.timesteps.is_empty() {
            return Err(ModelError::Invalid(
                "scheduler: set_timesteps was not called".into(),
            ));
        }
        if step_index >= self.timesteps.len() {
            return Err(ModelError::Invalid(format!(
                "scheduler: step {step_index} of {}",
                self.timesteps.len()
            )));
        }
        Ok(())
    }

    /// The standard deviation of the initial noise (1 for DDIM, the largest sigma for Euler).
    pub fn init_noise_sigma(&self) -> f64 {
        match self.kind {
            SchedulerKind::Ddim { .. } => 1.0,
            _ => {
                let max = self.sigmas.iter().cloned().fold(0.0f32, f32::max);
                match self.spacing {
                    TimestepSpacing::Linspace | TimestepSpacing::Trailing => max as f64,
                    TimestepSpacing::Leading => (max * max + 1.0).sqrt() as f64,
                }
            }
        }
    }

    /// The U-Net input at `step_index` (Euler divides by `sqrt(sigma² + 1)`).
    pub fn scale_model_input(&self, sample: &Tensor, step_index: usize) -> Result<Tensor> {
        self.check_ready(step_index)?;
        match self.kind {
            SchedulerKind::Ddim { .. } => Ok(sample.clone()),
            _ => {
                let sigma = self.sigmas[step_index];
                let div = (sigma * sigma + 1.0).sqrt();
                Ok((sample / div as f64)?)
            }
        }
    }

    /// The first step index of img2img at `strength` (diffusers' `get_timesteps`):
    /// `init = min(floor(steps × strength), steps)`, start at `steps - init`.
    pub fn img2img_start(&self, strength: f64) -> Result<usize> {
        if !(0.0..=1.0).contains(&strength) {
            return Err(ModelError::Invalid(format!(
                "strength must be in [0, 1], found {strength}"
            )));
        }
        let n = self.num_inference_steps;
        let init = ((n as f64 * strength) as usize).min(n);
        if init == 0 {
            return Err(ModelError::Invalid(format!(
                "strength {strength} × {n} steps leaves no denoising step; raise --strength or \
                 --steps"
            )));
        }
        Ok(n - init)
    }

    /// Noises a clean latent to the noise level of `step_index` (img2img start).
    pub fn add_noise(
        &self,
        original: &Tensor,
        noise: &Tensor,
        step_index: usize,
    ) -> Result<Tensor> {
        self.check_ready(step_index)?;
        match self.kind {
            SchedulerKind::Ddim { .. } => {
                let t = self.timesteps[step_index] as usize;
                let acp = self.alphas_cumprod[t] as f64;
                Ok(((original * acp.sqrt())? + (noise * (1.0 - acp).sqrt())?)?)
            }
            _ => Ok((original + (noise * self.sigmas[step_index] as f64)?)?),
        }
    }

    /// One sampler step from `step_index` to the next noise level.
    pub fn step(
        &self,
        model_output: &Tensor,
        step_index: usize,
        sample: &Tensor,
        noise: &mut dyn NoiseSource,
    ) -> Result<StepOutput> {
        self.check_ready(step_index)?;
        match self.kind {
            SchedulerKind::Ddim { eta } => {
                self.ddim_step(model_output, step_index, sample, eta, noise)
            }
            SchedulerKind::Euler => self.euler_step(model_output, step_index, sample),
            SchedulerKind::EulerAncestral => {
                self.euler_ancestral_step(model_output, step_index, sample, noise)
            }
        }
    }

    fn ddim_step(
        &self,
        eps_or_v: &Tensor,
        step_index: usize,
        sample: &Tensor,
        eta: f64,
        noise: &mut dyn NoiseSource,
    ) -> Result<StepOutput> {
        let t = self.timesteps[step_index] as i64;
        let prev_t = t - (self.num_train_timesteps / self.num_inference_steps) as i64;
        let a_t = self.alphas_cumprod[t as usize] as f64;
        let a_prev = if prev_t >= 0 {
            self.alphas_cumprod[prev_t as usize] as f64
        } else {
            self.final_alpha_cumprod as f64
        };
        let b_t = 1.0 - a_t;
        let b_prev = 1.0 - a_prev;
        let (mut x0, eps) = match self.prediction_type {
            PredictionType::Epsilon => (
                ((sample - (eps_or_v * b_t.sqrt())?)? / a_t.sqrt())?,
                eps_or_v.clone(),
            ),
            PredictionType::Sample => {
                let x0 = eps_or_v.clone();
                let eps = ((sample - (&x0 * a_t.sqrt())?)? / b_t.sqrt())?;
                (x0, eps)
            }
            PredictionType::VPrediction => (
                ((sample * a_t.sqrt())? - (eps_or_v * b_t.sqrt())?)?,
                ((eps_or_v * a_t.sqrt())? + (sample * b_t.sqrt())?)?,
            ),
        };
        if let Some(range) = self.clip_sample {
            x0 = x0.clamp(-range, range)?;
        }
        let variance = (b_prev / b_t) * (1.0 - a_t / a_prev);
        let std_dev = eta * variance.sqrt();
        let direction = (&eps * (1.0 - a_prev - std_dev * std_dev).sqrt())?;
        let mut prev = ((&x0 * a_prev.sqrt())? + direction)?;
        if eta > 0.0 {
            let z = noise.gaussian(eps_or_v.dims(), eps_or_v.device(), eps_or_v.dtype())?;
            prev = (prev + (z * std_dev)?)?;
        }
        Ok(StepOutput {
            prev_sample: prev,
            pred_original_sample: x0,
        })
    }

    fn predict_original(&self, output: &Tensor, sample: &Tensor, sigma: f64) -> Result<Tensor> {
        Ok(match self.prediction_type {
            PredictionType::Epsilon => (sample - (output * sigma)?)?,
            PredictionType::Sample => output.clone(),
            PredictionType::VPrediction => {
                let s2 = sigma * sigma + 1.0;
                ((output * (-sigma / s2.sqrt()))? + (sample / s2)?)?
            }
        })
    }

    fn euler_step(
        &self,
        output: &Tensor,
        step_index: usize,
        sample: &Tensor,
    ) -> Result<StepOutput> {
        let sample = sample.to_dtype(DType::F32)?;
        let output = output.to_dtype(DType::F32)?;
        let sigma = self.sigmas[step_index] as f64;
        let x0 = self.predict_original(&output, &sample, sigma)?;
        let derivative = ((&sample - &x0)? / sigma)?;
        let dt = (self.sigmas[step_index + 1] - self.sigmas[step_index]) as f64;
        let prev = (&sample + (derivative * dt)?)?;
        Ok(StepOutput {
            prev_sample: prev,
            pred_original_sample: x0,
        })
    }

    fn euler_ancestral_step(
        &self,
        output: &Tensor,
        step_index: usize,
        sample: &Tensor,
        noise: &mut dyn NoiseSource,
    ) -> Result<StepOutput> {
        let sample = sample.to_dtype(DType::F32)?;
        let output = output.to_dtype(DType::F32)?;
        let sigma_from = self.sigmas[step_index];
        let sigma_to = self.sigmas[step_index + 1];
        let x0 = self.predict_original(&output, &sample, sigma_from as f64)?;
        let sigma_up = (sigma_to * sigma_to * (sigma_from * sigma_from - sigma_to * sigma_to)
            / (sigma_from * sigma_from))
            .sqrt();
        let sigma_down = (sigma_to * sigma_to - sigma_up * sigma_up).sqrt();
        let derivative = ((&sample - &x0)? / sigma_from as f64)?;
        let dt = (sigma_down - sigma_from) as f64;
        let prev = (&sample + (derivative * dt)?)?;
        let z = noise.gaussian(output.dims(), output.device(), DType::F32)?;
        let prev = (prev + (z * sigma_up as f64)?)?;
        Ok(StepOutput {
            prev_sample: prev,
            pred_original_sample: x0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_and_trailing_spacing() {
        let config = SchedulerConfig::stable_diffusion();
        let mut ddim = Scheduler::new(SchedulerKind::Ddim { eta: 0.0 }, &config).unwrap();
        ddim.set_timesteps(5).unwrap();
        assert_eq!(ddim.timesteps(), &[801.0, 601.0, 401.0, 201.0, 1.0]);
        let trailing = SchedulerConfig {
            timestep_spacing: Some(TimestepSpacing::Trailing),
            ..config
        };
        let mut euler = Scheduler::new(SchedulerKind::EulerAncestral, &trailing).unwrap();
        euler.set_timesteps(1).unwrap();
        assert_eq!(euler.timesteps(), &[999.0]);
        euler.set_timesteps(3).unwrap();
        assert_eq!(euler.timesteps(), &[999.0, 666.0, 332.0]);
        assert_eq!(euler.sigmas().len(), 4);
        assert_eq!(euler.img2img_start(0.5).unwrap(), 2);
        assert!(euler.img2img_start(0.2).is_err());
    }
}
