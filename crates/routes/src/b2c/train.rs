//! `brainrecon b2c train`: the B2C encoder trained with the U-Net on a subject's single-trial
//! train betas (Ishizaki & Kobayashi's recipe: diffusion loss, optionally plus a CLIP
//! alignment loss; the VAE frozen, its latents computed once).
//!
//! ```text
//! <out>/training.json              B2cRecord: settings, layout, model fingerprint, timing
//! <out>/losses.json                per-step total, diffusion and CLIP-alignment losses
//! <out>/loss.png, loss.svg         the loss curves (smoothed)
//! <out>/encoder/config.json        BrainToContextConfig
//! <out>/encoder/model.safetensors  the encoder's weights
//! <out>/unet/tuned.safetensors     the tuned U-Net tensors only (diffusers names)
//! <out>/.train/step-<N>/           resumable checkpoints (parameters, AdamW state, losses)
//! ```
//! Every random draw of step s (batch order, timesteps, noise, dropout, context dropout) comes
//! from streams seeded by (seed, s), so a resumed run gives the same bytes as an unbroken one.

use super::groups::{layout_betas, voxel_layout, Patch, VoxelLayout, INPUT_ATLAS};
use super::{B2cRecord, Objective, Tune, B2C_FORMAT, ENCODER_DIR, TUNED_UNET_FILE};
use crate::decode::features::{
    compute_features, load_features, ClipTextFeatures, FeatureKind, VaeFeatures,
};
use crate::error::{Result, RouteError};
use brainrecon_brain::b2c::{
    per_sample_cosine, per_sample_mse, BrainToContextConfig, BrainToContextEncoder,
};
use brainrecon_core::fs::{read_json, write_json_atomic};
use brainrecon_datasets::prepared::{PreparedSubject, Split};
use brainrecon_diffusion::pipeline::{DType, Device, Posterior, StableDiffusion, Tensor};
use brainrecon_diffusion::scheduler::NoiseSchedule;
use brainrecon_diffusion::unet::UNet2DConditionModel;
use brainrecon_nn::checkpoint::{latest_checkpoint, load_checkpoint, save_checkpoint};
use brainrecon_nn::init::init_parameters;
use brainrecon_nn::optim::{clip_grad_norm, AdamW};
use brainrecon_nn::params::Parameters;
use brainrecon_nn::rng::shuffled_batches;
use brainrecon_nn::rng::{NoiseSource, SeededNoise};
use brainrecon_nn::tape::Tape;
/// What differentiates a training step ([`TrainOptions::engine`]).
pub use brainrecon_nn::tape::TrainEngine;
use candle_core::backprop::GradStore;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Settings of one training run (all recorded; a resume must use the same).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// The encoder's input patches (anatomical groups or one of all voxels).
    pub patch: Patch,
    /// Weight W of the CLIP alignment loss W·(MSE + 1 − cos); 0 turns it off.
    pub clip_loss: f64,
    /// What the U-Net learns to predict.
    pub objective: Objective,
    /// Which U-Net tensors are trained with the encoder.
    pub tune: Tune,
    /// Optimiser steps.
    pub steps: usize,
    /// Trials per step.
    pub batch: usize,
    /// Peak learning rate (warm-up then cosine decay).
    pub lr: f64,
    /// Seed of every random draw (initialisation, batches, timesteps, noise, dropout).
    pub seed: u64,
    /// Transformer blocks of the encoder (6 in the paper).
    pub layers: usize,
    /// Dropout inside the encoder.
    pub dropout: f64,
    /// Share of samples whose context is replaced by the empty prompt's, so that guidance
    /// against the empty prompt works at reconstruction.
    pub context_dropout: f64,
    /// Steps between resumable checkpoints in `<out>/.train/`.
    pub checkpoint_every: usize,
    /// What differentiates a step on the CPU: the project's tape (the default) or candle's
    /// autograd (other devices always take candle). Recorded, but not part of the settings a
    /// resume must match: both engines compute the same step within f32 rounding.
    #[serde(default, with = "engine_name")]
    pub engine: TrainEngine,
}

/// [`TrainEngine`] as its name in the JSON records (`tape` when absent, as in records
/// written before the engine was recorded).
mod engine_name {
    use super::TrainEngine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(e: &TrainEngine, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(e.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TrainEngine, D::Error> {
        let name = String::deserialize(d)?;
        TrainEngine::parse(&name).map_err(serde::de::Error::custom)
    }
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            patch: Patch::Roi,
            clip_loss: 1.0,
            objective: Objective::Eps,
            tune: Tune::Unet,
            steps: 2000,
            batch: 8,
            lr: 1e-4,
            seed: 42,
            layers: 6,
            dropout: 0.1,
            context_dropout: 0.1,
            checkpoint_every: 200,
            engine: TrainEngine::Tape,
        }
    }
}

impl TrainOptions {
    /// Rejects settings that cannot train, naming the flag.
    pub fn check(&self) -> Result<()> {
        let usage = |m: String| Err(RouteError::Usage(m));
        if self.steps == 0 {
            return usage("--steps must be at least 1, found 0".into());
        }
        if self.batch == 0 {
            return usage("--batch must be at least 1, found 0".into());
        }
        if !(self.clip_loss.is_finite() && (0.0..=100.0).contains(&self.clip_loss)) {
            return usage(format!(
                "--clip-loss must be a weight in [0, 100], found {}",
                self.clip_loss
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr < 1.0) {
            return usage(format!("--lr must be in (0, 1), found {}", self.lr));
        }
        if self.layers == 0 {
            return usage("--layers must be at least 1".into());
        }
        for (flag, p) in [
            ("--dropout", self.dropout),
            ("--context-dropout", self.context_dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                return usage(format!("{flag} must be in [0, 1), found {p}"));
            }
        }
        if self.checkpoint_every == 0 {
            return usage("--checkpoint-every must be at least 1".into());
        }
        Ok(())
    }
}

/// One step's losses.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepLoss {
    /// The loss optimised: diffusion + W × clip.
    pub total: f64,
    /// MSE of the U-Net's prediction against the objective's target.
    pub diffusion: f64,
    /// MSE + 1 − cosine of the encoder's context against the true CLIP text context (0 when W is 0).
    pub clip: f64,
}

/// What [`train`] did.
#[derive(Clone, Debug, Serialize)]
pub struct TrainSummary {
    /// The B2C folder written.
    pub out: PathBuf,
    /// Steps of the whole training.
    pub steps: usize,
    /// The checkpoint's step this run resumed from, if any.
    pub resumed_from: Option<usize>,
    /// Trainable values of the encoder.
    pub encoder_parameters: usize,
    /// Trainable values of the U-Net.
    pub tuned_unet_parameters: usize,
    /// The last step's losses.
    pub final_loss: StepLoss,
    /// Mean wall time of a step in this run (seconds).
    pub seconds_per_step: f64,
}

/// The subject's images' full-size VAE latents and CLIP text contexts (rows follow
/// stimuli/ids.npy), computed once into `features` (and reused from there).
fn image_targets(
    subject: &PreparedSubject,
    sd: &StableDiffusion,
    model: &str,
    features: &Path,
    show_progress: bool,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let vae = VaeFeatures {
        sd,
        image_size: sd.default_size(),
        posterior: Posterior::Mean,
        seed: 0,
    };
    compute_features(subject, features, model, &vae, 16, show_progress)?;
    compute_features(
        subject,
        features,
        model,
        &ClipTextFeatures { sd },
        16,
        show_progress,
    )?;
    let (_, latents) = load_features(subject, features, FeatureKind::Vae)?;
    let (_, contexts) = load_features(subject, features, FeatureKind::ClipText)?;
    Ok((latents, contexts))
}

/// Row of each train trial's image in the feature arrays.
fn trial_image_rows(subject: &PreparedSubject) -> Result<Vec<usize>> {
    let image_ids = subject.images()?.ids;
    subject
        .train_stimulus_ids()?
        .iter()
        .map(|id| {
            image_ids.binary_search(id).map_err(|_| {
                RouteError::mismatch(
                    &subject.path("stimuli/ids.npy"),
                    "ids",
                    format!("train image {id}"),
                    "missing",
                )
            })
        })
        .collect()
}

/// The encoder's config for `sd`'s context (T tokens of width D).
pub fn encoder_config(
    layout: &VoxelLayout,
    sd: &StableDiffusion,
    options: &TrainOptions,
) -> BrainToContextConfig {
    let mut config =
        BrainToContextConfig::paper(layout.groups.clone(), sd.unet.config.cross_attention_dim);
    config.num_layers = options.layers;
    config.dropout = options.dropout;
    config
}

/// The U-Net with the tensors `tune` selects as variables (prefixed "unet.").
pub(crate) fn trainable_unet(
    sd: &StableDiffusion,
    tune: Tune,
) -> Result<(UNet2DConditionModel, Vec<(String, candle_core::Var)>)> {
    let (unet, vars) = brainrecon_diffusion::prior::trainable_unet(sd, |name| tune.selects(name))?;
    Ok((
        unet,
        vars.into_iter()
            .map(|(n, v)| (format!("unet.{n}"), v))
            .collect(),
    ))
}

/// Everything fixed during training, on the device.
struct TrainData {
    betas: Tensor,
    image_rows: Vec<usize>,
    latents: Tensor,
    contexts: Tensor,
    empty_context: Tensor,
}

/// One batch of training inputs.
pub struct BatchInputs<'a> {
    /// [B, V] betas in the layout's column order.
    pub betas: &'a Tensor,
    /// [B, C, h, w] the images' VAE latents (U-Net scale).
    pub latents: &'a Tensor,
    /// [B, C, h, w] ε.
    pub noise: &'a Tensor,
    /// `[B]` diffusion timesteps, each in `0..num_train_timesteps`.
    pub timesteps: &'a [usize],
    /// [B, T, D] the CLIP text context of the images' captions.
    pub true_context: &'a Tensor,
    /// [B, 1, 1] 1 where the encoder's context is used, 0 where the empty prompt's replaces it,
    /// with that context [1, T, D]; `None` uses the encoder's everywhere.
    pub context_dropout: Option<(&'a Tensor, &'a Tensor)>,
}

/// B2C's loss: the diffusion loss of `schedule`'s prediction type on the U-Net conditioned on
/// the encoder's context, plus `clip_weight` × (MSE + 1 − cosine) of that context against the
/// true one. Returns (total, diffusion, clip) as scalars; dropout masks come from `rng`.
pub fn b2c_loss(
    encoder: &BrainToContextEncoder,
    unet: &UNet2DConditionModel,
    schedule: &NoiseSchedule,
    inputs: &BatchInputs,
    clip_weight: f64,
    rng: Option<&mut ChaCha8Rng>,
) -> Result<(Tensor, Tensor, Tensor)> {
    let b = inputs.betas.dim(0)?;
    let device = inputs.betas.device();
    let context = encoder.forward(inputs.betas, rng)?;
    let used = match inputs.context_dropout {
        Some((keep, empty)) => {
            (context.broadcast_mul(keep)? + empty.broadcast_mul(&keep.affine(-1.0, 1.0)?)?)?
        }
        None => context.clone(),
    };
    let noisy = schedule.add_noise(inputs.latents, inputs.noise, inputs.timesteps)?;
    let t = Tensor::from_vec(
        inputs
            .timesteps
            .iter()
            .map(|&t| t as f32)
            .collect::<Vec<_>>(),
        b,
        device,
    )?;
    let predicted = unet.forward(&noisy, &t, &used)?;
    let target = schedule.training_target(inputs.latents, inputs.noise, inputs.timesteps)?;
    let diffusion = (predicted - target)?.sqr()?.mean_all()?;
    let clip = if clip_weight > 0.0 {
        let mse = per_sample_mse(&context, inputs.true_context)?.mean_all()?;
        let cos = per_sample_cosine(&context, inputs.true_context)?.mean_all()?;
        (mse + cos.affine(-1.0, 1.0)?)?
    } else {
        Tensor::zeros((), DType::F32, device)?
    };
    let total = (&diffusion + clip.affine(clip_weight, 0.0)?)?;
    Ok((total, diffusion, clip))
}

/// One step's batch: the trials' inputs and the step's random draws (but dropout's, which
/// come from the stream handed on with it).
struct Batch {
    betas: Tensor,
    latents: Tensor,
    true_context: Tensor,
    timesteps: Vec<usize>,
    /// [B, 1, 1]: 1 where the encoder's context is used, 0 where the empty prompt's is.
    keep: Tensor,
    noise: Tensor,
}

impl Batch {
    fn inputs<'a>(&'a self, data: &'a TrainData) -> BatchInputs<'a> {
        BatchInputs {
            betas: &self.betas,
            latents: &self.latents,
            noise: &self.noise,
            timesteps: &self.timesteps,
            true_context: &self.true_context,
            context_dropout: Some((&self.keep, &data.empty_context)),
        }
    }
}

/// Step `step`'s batch of `rows` (train trials) with its random draws, and the stream its
/// dropout masks come from.
fn draw_batch(
    schedule: &NoiseSchedule,
    data: &TrainData,
    rows: &[usize],
    options: &TrainOptions,
    step: usize,
) -> Result<(Batch, ChaCha8Rng)> {
    let device = data.betas.device();
    let b = rows.len();
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0xB2C0_0000_0000 ^ step as u64);
    let index = |values: Vec<usize>| {
        Tensor::new(values.iter().map(|&r| r as u32).collect::<Vec<_>>(), device)
    };
    let trial_ids = index(rows.to_vec())?;
    let image_ids = index(rows.iter().map(|&r| data.image_rows[r]).collect())?;
    let betas = data.betas.index_select(&trial_ids, 0)?;
    let latents = data.latents.index_select(&image_ids, 0)?;
    let true_context = data.contexts.index_select(&image_ids, 0)?;
    let timesteps: Vec<usize> = (0..b)
        .map(|_| rng.gen_range(0..schedule.num_train_timesteps()))
        .collect();
    let keep: Vec<f32> = (0..b)
        .map(|_| f32::from(!rng.gen_bool(options.context_dropout)))
        .collect();
    let keep = Tensor::from_vec(keep, (b, 1, 1), device)?;
    let mut noise = SeededNoise::new(options.seed ^ 0xB2C1_0000_0000 ^ step as u64);
    let noise = noise.gaussian(latents.dims(), device, DType::F32)?;
    let batch = Batch {
        betas,
        latents,
        true_context,
        timesteps,
        keep,
        noise,
    };
    Ok((batch, rng))
}

/// The models a step trains and how.
struct Trainee<'a> {
    encoder: &'a BrainToContextEncoder,
    unet: &'a UNet2DConditionModel,
    schedule: &'a NoiseSchedule,
    /// The tape when the tape engine differentiates (on the CPU), else candle's autograd.
    tape: Option<Tape>,
}

/// Step `step` on `rows`: the batch's draws, the loss and every trained tensor's gradient,
/// on the tape or through candle's autograd.
fn step_gradients(
    trainee: &mut Trainee,
    data: &TrainData,
    rows: &[usize],
    options: &TrainOptions,
    step: usize,
) -> Result<(StepLoss, GradStore)> {
    let (batch, mut rng) = draw_batch(trainee.schedule, data, rows, options, step)?;
    let inputs = batch.inputs(data);
    let (encoder, unet, schedule) = (trainee.encoder, trainee.unet, trainee.schedule);
    let weight = options.clip_loss;
    let (loss, grads) = match &mut trainee.tape {
        Some(tape) => {
            let tune = options.tune;
            let trainable = |name: &str| tune.selects(name);
            let done = super::tape::b2c_step_on_tape(
                encoder,
                unet,
                schedule,
                &inputs,
                weight,
                Some(&mut rng),
                &trainable,
                tape,
            )?;
            (done.loss, done.grads)
        }
        None => {
            let (total, diffusion, clip) =
                b2c_loss(encoder, unet, schedule, &inputs, weight, Some(&mut rng))?;
            let loss = StepLoss {
                total: total.to_scalar::<f32>()? as f64,
                diffusion: diffusion.to_scalar::<f32>()? as f64,
                clip: clip.to_scalar::<f32>()? as f64,
            };
            (loss, total.backward()?)
        }
    };
    finite_loss(loss, step, options)?;
    Ok((loss, grads))
}

/// Settings that must match for a resume, with the folder's identity.
fn resume_settings(
    subject: &PreparedSubject,
    model_fingerprint: &str,
    layout: &VoxelLayout,
    options: &TrainOptions,
) -> serde_json::Value {
    // The engine changes how a step is differentiated, not what it computes.
    let mut options = serde_json::to_value(options).expect("options are plain data");
    if let Some(fields) = options.as_object_mut() {
        fields.remove("engine");
    }
    serde_json::json!({
        "subject": subject.meta.subject,
        "n_voxels": layout.columns.len(),
        "model_fingerprint": model_fingerprint,
        "groups": layout.groups,
        "options": options,
    })
}

/// Refuses an output folder made for another subject, model or settings.
fn check_out_folder(out: &Path, settings: &serde_json::Value) -> Result<()> {
    let path = out.join(".train").join("settings.json");
    if path.exists() {
        let old: serde_json::Value = read_json(&path)?;
        if &old != settings {
            return Err(RouteError::mismatch(
                &path,
                "settings",
                format!("{settings} (to resume)"),
                format!("{old}: a B2C training with other settings, subject or model; use another --out"),
            ));
        }
    } else if out.join(super::RECORD_FILE).exists() {
        return Err(RouteError::mismatch(
            &out.join(super::RECORD_FILE),
            "folder",
            "an empty folder or a B2C training to resume",
            "a finished B2C training without its checkpoints; use another --out",
        ));
    }
    Ok(())
}

/// Everything fixed during training, on the model's device: the (n_trials, V) betas, the
/// images' latents and true contexts, and the empty prompt's context.
fn train_data(
    subject: &PreparedSubject,
    sd: &StableDiffusion,
    model: &str,
    features: &Path,
    (n_trials, betas): (usize, Vec<f32>),
    image_rows: Vec<usize>,
    show_progress: bool,
) -> Result<TrainData> {
    let device = &sd.device;
    let (latents, contexts) = image_targets(subject, sd, model, features, show_progress)?;
    let n_images = subject.images()?.ids.len();
    let h = sd.default_size() / sd.vae_scale_factor();
    let latent_shape = (n_images, sd.unet.config.in_channels, h, h);
    let (tokens, d) = (
        sd.text_encoder.config.max_position_embeddings,
        sd.unet.config.cross_attention_dim,
    );
    let v = betas.len() / n_trials.max(1);
    Ok(TrainData {
        betas: Tensor::from_vec(betas, (n_trials, v), device)?,
        image_rows,
        latents: Tensor::from_vec(latents, latent_shape, device)?,
        contexts: Tensor::from_vec(contexts, (n_images, tokens, d), device)?,
        empty_context: sd.encode_text(&[""])?.to_dtype(DType::F32)?,
    })
}

/// AdamW, the losses so far and the first step to run: from the newest checkpoint in `work`
/// (which also sets `params`), or fresh.
fn resume_or_start(
    work: &Path,
    params: &mut Parameters,
    options: &TrainOptions,
) -> Result<(AdamW, Vec<StepLoss>, usize)> {
    Ok(match latest_checkpoint(work)? {
        Some((step, dir)) => {
            let (optimizer, extra) = load_checkpoint(&dir, params)?;
            let losses: Vec<StepLoss> =
                serde_json::from_value(extra["losses"].clone()).unwrap_or_default();
            (optimizer, losses, step)
        }
        None => (AdamW::with_defaults(options.lr)?, Vec::new(), 0),
    })
}

/// A loss that is no longer finite stops the run.
fn finite_loss(loss: StepLoss, step: usize, options: &TrainOptions) -> Result<()> {
    if !loss.total.is_finite() {
        return Err(RouteError::Usage(format!(
            "the loss became {} at step {}: lower --lr (now {})",
            loss.total,
            step + 1,
            options.lr
        )));
    }
    Ok(())
}

/// `losses.json`, the loss charts, then `training.json` (last: its presence means done).
fn write_record(out: &Path, record: &B2cRecord, losses: &[StepLoss]) -> Result<()> {
    write_json_atomic(&out.join(super::LOSSES_FILE), &losses)?;
    super::chart::write_loss_charts(out, losses)?;
    write_json_atomic(&out.join(super::RECORD_FILE), record)?;
    Ok(())
}

/// Trains into `out`. `model` is recorded as given; `features` receives the image latents and
/// contexts. `progress(step, total, loss)` runs after each step.
#[allow(clippy::too_many_arguments)]
pub fn train(
    subject: &PreparedSubject,
    sd: &StableDiffusion,
    model: &str,
    features: &Path,
    out: &Path,
    options: &TrainOptions,
    show_progress: bool,
    progress: &mut dyn FnMut(usize, usize, StepLoss),
) -> Result<TrainSummary> {
    options.check()?;
    let device: Device = sd.device.clone();
    let tokens = sd.text_encoder.config.max_position_embeddings;
    let layout = voxel_layout(subject, options.patch, tokens)?;
    let (n_trials, betas) = layout_betas(subject, &layout, Split::Train)?;
    let fingerprint = sd.root.fingerprint()?;
    let settings = resume_settings(subject, &fingerprint, &layout, options);
    check_out_folder(out, &settings)?;
    let image_rows = trial_image_rows(subject)?;
    let data = train_data(
        subject,
        sd,
        model,
        features,
        (n_trials, betas),
        image_rows,
        show_progress,
    )?;

    let config = encoder_config(&layout, sd, options);
    let (encoder, encoder_params) = init_parameters(
        |vb| BrainToContextEncoder::new(vb, &config),
        options.seed ^ 0xB2C,
        DType::F32,
        &device,
    )?;
    let (unet, unet_vars) = trainable_unet(sd, options.tune)?;
    let encoder_vars = encoder_params
        .vars()
        .into_iter()
        .map(|(n, v)| (format!("encoder.{n}"), v));
    let mut params = Parameters::from_vars(encoder_vars.chain(unet_vars))?;
    let mut schedule = NoiseSchedule::new(&sd.scheduler_config)?;
    schedule.prediction_type = options.objective.prediction_type();

    std::fs::create_dir_all(out.join(".train"))
        .map_err(|e| brainrecon_core::DataError::io(out, e))?;
    write_json_atomic(&out.join(".train").join("settings.json"), &settings)?;
    let work = out.join(".train");
    let (mut optimizer, mut losses, start) = resume_or_start(&work, &mut params, options)?;
    let per_epoch = n_trials.div_ceil(options.batch);
    let on_tape = options.engine == TrainEngine::Tape && device.is_cpu();
    let mut trainee = Trainee {
        encoder: &encoder,
        unet: &unet,
        schedule: &schedule,
        tape: on_tape.then(Tape::new),
    };
    let started = std::time::Instant::now();
    for step in start..options.steps {
        let batches = shuffled_batches(
            n_trials,
            options.batch,
            options.seed,
            (step / per_epoch) as u64,
        );
        let rows = &batches[step % per_epoch];
        let (loss, mut grads) = step_gradients(&mut trainee, &data, rows, options, step)?;
        clip_grad_norm(&mut grads, &params, 1.0)?;
        optimizer.set_lr(brainrecon_nn::optim::learning_rate(
            options.lr,
            step,
            options.steps,
        ));
        optimizer.step(&params, &grads)?;
        losses.push(loss);
        if (step + 1) % options.checkpoint_every == 0 || step + 1 == options.steps {
            save_checkpoint(
                &work,
                step + 1,
                &params,
                &optimizer,
                &serde_json::json!({ "losses": losses }),
            )?;
        }
        progress(step + 1, options.steps, loss);
    }
    let ran = options.steps - start;
    let seconds_per_step = if ran > 0 {
        started.elapsed().as_secs_f64() / ran as f64
    } else {
        0.0
    };
    write_outputs(out, &params, &config, options)?;
    let record = B2cRecord {
        format: B2C_FORMAT.into(),
        subject: subject.meta.subject.clone(),
        subject_dir: subject.root.clone(),
        input_atlas: INPUT_ATLAS.into(),
        layout,
        model: model.into(),
        model_fingerprint: fingerprint,
        options: options.clone(),
        n_train_trials: n_trials,
        encoder_parameters: params.with_prefix("encoder.").count_elements(),
        tuned_unet_parameters: params.with_prefix("unet.").count_elements(),
        seconds_per_step,
        features: features.to_path_buf(),
        versions: vec![("brainrecon".into(), env!("CARGO_PKG_VERSION").into())],
    };
    write_record(out, &record, &losses)?;
    Ok(TrainSummary {
        out: out.to_path_buf(),
        steps: options.steps,
        resumed_from: (start > 0).then_some(start),
        encoder_parameters: record.encoder_parameters,
        tuned_unet_parameters: record.tuned_unet_parameters,
        final_loss: *losses.last().expect("at least one step"),
        seconds_per_step,
    })
}

/// The encoder folder and the tuned U-Net tensors, each written atomically.
fn write_outputs(
    out: &Path,
    params: &Parameters,
    config: &BrainToContextConfig,
    options: &TrainOptions,
) -> Result<()> {
    let encoder_dir = out.join(ENCODER_DIR);
    params
        .with_prefix("encoder.")
        .save_safetensors(encoder_dir.join(brainrecon_brain::b2c::WEIGHTS_FILE))?;
    write_json_atomic(
        &encoder_dir.join(brainrecon_brain::b2c::CONFIG_FILE),
        config,
    )?;
    let tuned = out.join(TUNED_UNET_FILE);
    if options.tune != Tune::None {
        params.with_prefix("unet.").save_safetensors(&tuned)?;
    } else if tuned.exists() {
        std::fs::remove_file(&tuned).map_err(|e| brainrecon_core::DataError::io(&tuned, e))?;
    }
    Ok(())
}
