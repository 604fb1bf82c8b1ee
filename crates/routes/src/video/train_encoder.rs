//! `video train-encoder`: MinD-Video's decoder for the video route. An fMRI window encoder
//! (spatial and temporal attention, `brainrecon_brain::window`) is trained in two stages:
//! 1. **contrastive**: the encoder's context against the clip caption's text context, with
//!    MinD-Video's contrastive loss (CLIP's symmetric InfoNCE) plus B2C's alignment term
//!    (MSE + 1 − cosine), so the contexts land where the U-Net reads captions;
//! 2. **co-training** (`cotrain_steps` > 0): the diffusion loss of the motion U-Net on the
//!    stimulus clips' latents, conditioned on the encoder's context (one in ten replaced by
//!    the empty prompt's, for guidance), plus stage 1's loss; with `tune` the motion U-Net's
//!    tensors train too (MinD-Video tunes its inflated U-Net; B2C's `--tune` choices).
//!
//! The folder is laid out as `video fit`'s, so `video reconstruct --decoded <out>` and
//! `video eval` use it unchanged:
//! ```text
//! <out>/video_fit.json        VideoFitSummary (decoder "window-encoder")
//! <out>/decoded_c.npy, negative_c.npy, true_c_test.npy, test_index.npy   as video fit's
//! <out>/encoder/              config.json, model.safetensors (FmriWindowEncoder)
//! <out>/unet_motion/          with tune: the co-trained motion U-Net (UNetMotionModel folder,
//!                             for --adapter)
//! <out>/training.json         settings and every step's losses
//! <out>/.train/               resumable checkpoints of both stages
//! ```
//! Every draw of step s (batch order, dropout, timesteps, noise) is keyed by (seed, s), so a
//! resumed run ends with the weights of an uninterrupted one.

use super::fit::{
    contexts, default_alphas, samples, stimulus_clip_latents, windows, write_decoded_contexts,
    LatentFrames, VideoFitSummary, DEFAULT_FOLDS, SUMMARY_FILE,
};
use super::motion::fit_motion;
use super::stimuli::{captions_of, read_captions, StimulusClips, StimulusTr};
use crate::decode::arrays::{identification, matrix, row_major};
use crate::decode::options::Tune;
use crate::error::{Result, RouteError};
use brainrecon_brain::window::tape::train_step_on_tape;
/// What differentiates the encoder's training step ([`EncoderTrainOptions::engine`]).
pub use brainrecon_brain::window::tape::TrainEngine;
use brainrecon_brain::window::{
    encoder_loss, FmriWindowEncoder, WindowEncoderConfig, CONFIG_FILE, WEIGHTS_FILE,
};
use brainrecon_core::fs::write_json_atomic;
use brainrecon_datasets::cc2017::{read_meta, VideoPrepared};
use brainrecon_diffusion::pipeline::{StableDiffusion, VideoDiffusion};
use brainrecon_diffusion::scheduler::{NoiseSchedule, SchedulerConfig};
use brainrecon_diffusion::unet_motion::{
    is_unet_motion_folder, save_unet_motion, UNetMotionConfig, UNetMotionModel,
};
use brainrecon_formats::cifti::cc2017::Split;
use brainrecon_nn::checkpoint::ResumableRun;
use brainrecon_nn::init::init_parameters;
use brainrecon_nn::params::Parameters;
use brainrecon_nn::rng::shuffled_batches;
use brainrecon_nn::rng::{NoiseSource, SeededNoise};
use brainrecon_nn::tape::Tape;
use brainrecon_nn::weights::{Overlay, Weights};
use candle_core::{DType, Tensor};
use faer::Mat;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::path::{Path, PathBuf};

/// The trained encoder's folder: `config.json` and `model.safetensors`.
pub const ENCODER_DIR: &str = "encoder";
/// With `tune`: the co-trained motion U-Net, a `UNetMotionModel` folder.
pub const TUNED_DIR: &str = "unet_motion";
/// The run's settings and every step's losses.
pub const TRAINING_RECORD: &str = "training.json";

/// Settings of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EncoderTrainOptions {
    /// `video prepare`'s folder.
    pub prepared: PathBuf,
    /// The stimulus clips: `segK.mp4` / `testK.mp4` or frame folders.
    pub stimuli: PathBuf,
    /// The captions file, `split<TAB>segment<TAB>tr<TAB>caption`.
    pub captions: PathBuf,
    /// The folder to write, laid out as `video fit`'s.
    pub out: PathBuf,
    /// Voxels of a patch (MinD-Video: 16).
    pub patch_size: usize,
    /// Spatial + temporal block pairs of the encoder.
    pub layers: usize,
    /// Dropout inside the encoder.
    pub dropout: f64,
    /// Contrastive logits are cosines / temperature.
    pub temperature: f64,
    /// Weight of the alignment term (MSE + 1 − cosine).
    pub align_weight: f64,
    /// Stage 1 steps.
    pub steps: usize,
    /// Stage 2 steps (0: no co-training).
    pub cotrain_steps: usize,
    /// What of the motion U-Net trains in stage 2.
    pub tune: Tune,
    /// Samples per step (at least 2: the contrastive loss compares a batch's samples).
    pub batch: usize,
    /// Peak learning rate of stage 1.
    pub lr: f64,
    /// Peak learning rate of stage 2.
    pub cotrain_lr: f64,
    /// Share of stage 2's samples conditioned on the empty prompt instead, for guidance.
    pub context_dropout: f64,
    /// Steps between resumable checkpoints in `<out>/.train/`.
    pub checkpoint_every: usize,
    /// Seed of every draw (initialisation, batches, dropout, timesteps, noise).
    pub seed: u64,
    /// Also decode each clip's global velocity with ridge (`motion.rs`).
    pub motion: bool,
    /// What differentiates stage 1 on the CPU: the project's tape (default) or candle's
    /// autograd (other devices always take candle).
    #[serde(serialize_with = "engine_name")]
    pub engine: TrainEngine,
}

fn engine_name<S: serde::Serializer>(
    e: &TrainEngine,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(e.name())
}

impl EncoderTrainOptions {
    /// Rejects settings that cannot train, naming the flag.
    pub fn check(&self) -> Result<()> {
        let usage = |m: String| Err(RouteError::Usage(m));
        if self.steps == 0 {
            return usage("--steps must be at least 1".into());
        }
        if self.batch < 2 {
            return usage(format!(
                "--batch must be at least 2 (the contrastive loss compares the samples of a \
                 batch), found {}",
                self.batch
            ));
        }
        for (flag, v) in [("--lr", self.lr), ("--cotrain-lr", self.cotrain_lr)] {
            if !(v.is_finite() && v > 0.0 && v < 1.0) {
                return usage(format!("{flag} must be in (0, 1), found {v}"));
            }
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return usage(format!(
                "--temperature must be positive, found {}",
                self.temperature
            ));
        }
        if !(self.align_weight.is_finite() && self.align_weight >= 0.0) {
            return usage(format!(
                "--align-weight must be at least 0, found {}",
                self.align_weight
            ));
        }
        for (flag, p) in [
            ("--dropout", self.dropout),
            ("--context-dropout", self.context_dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                return usage(format!("{flag} must be in [0, 1), found {p}"));
            }
        }
        if self.layers == 0 || self.checkpoint_every == 0 || self.patch_size == 0 {
            return usage(
                "--layers, --patch-size and --checkpoint-every must be at least 1".into(),
            );
        }
        Ok(())
    }
}

/// What a run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EncoderTrainSummary {
    /// `video_fit.json` as written (decoder `window-encoder`).
    pub fit: VideoFitSummary,
    /// Trainable values of the encoder.
    pub encoder_parameters: usize,
    /// Trainable values of the motion U-Net (0 without `tune`).
    pub tuned_parameters: usize,
    /// Stage 1's loss at every step.
    pub contrastive_losses: Vec<f64>,
    /// Stage 2's loss at every step (empty without co-training).
    pub cotrain_losses: Vec<f64>,
    /// (stage, step) of each checkpoint this run resumed from.
    pub resumed_from: Vec<(String, usize)>,
}

/// The windows and caption contexts of both splits, on the model's device.
struct EncoderData {
    train: Vec<StimulusTr>,
    test: Vec<StimulusTr>,
    /// [n, K·V]
    x_train: Tensor,
    x_test: Tensor,
    /// [n, T, D]
    c_train: Tensor,
    c_test: Tensor,
    /// `video prepare`'s settings (window K, voxels V, design).
    meta: VideoPrepared,
}

fn tensor_of(m: &Mat<f32>, sd: &StableDiffusion) -> Result<Tensor> {
    Ok(Tensor::from_vec(
        row_major(m),
        (m.nrows(), m.ncols()),
        &sd.device,
    )?)
}

fn load_data(sd: &StableDiffusion, opts: &EncoderTrainOptions) -> Result<EncoderData> {
    let meta = read_meta(&opts.prepared)?;
    let train = samples(&opts.prepared, Split::Train)?;
    let test = samples(&opts.prepared, Split::Test)?;
    let (x_train, x_test) = (
        windows(&opts.prepared, Split::Train, &meta)?,
        windows(&opts.prepared, Split::Test, &meta)?,
    );
    if x_train.nrows() != train.len() || x_test.nrows() != test.len() || train.len() < 2 {
        return Err(RouteError::mismatch(
            &opts.prepared.join("video.json"),
            "samples",
            "X rows equal to the index rows, at least 2 training samples",
            format!("train {} / {}", x_train.nrows(), train.len()),
        ));
    }
    let table = read_captions(&opts.captions)?;
    let (c_train, [t, d]) = contexts(sd, &captions_of(&opts.captions, &table, &train)?)?;
    let (c_test, _) = contexts(sd, &captions_of(&opts.captions, &table, &test)?)?;
    let shaped = |m: &Mat<f32>| -> Result<Tensor> { Ok(tensor_of(m, sd)?.reshape(((), t, d))?) };
    Ok(EncoderData {
        x_train: tensor_of(&x_train, sd)?,
        x_test: tensor_of(&x_test, sd)?,
        c_train: shaped(&c_train)?,
        c_test: shaped(&c_test)?,
        meta,
        train,
        test,
    })
}

/// Rows `rows` of `t` along dim 0.
fn select(t: &Tensor, rows: &[usize]) -> Result<Tensor> {
    let ids: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
    Ok(t.index_select(&Tensor::new(ids, t.device())?, 0)?)
}

/// Step `step`'s rows of `n` training samples.
fn batch_rows(n: usize, opts: &EncoderTrainOptions, step: usize) -> Vec<usize> {
    let per_epoch = n.div_ceil(opts.batch);
    let batches = shuffled_batches(n, opts.batch, opts.seed, (step / per_epoch) as u64);
    let mut rows = batches[step % per_epoch].clone();
    if rows.len() < 2 {
        // a last batch of one sample has no negatives: borrow the epoch's first sample
        rows.push(batches[0][0]);
    }
    rows
}

fn step_rng(opts: &EncoderTrainOptions, stage: u64, step: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(opts.seed ^ (0x71D0_0000_0000 + (stage << 32)) ^ step as u64)
}

/// Stage 1: contrastive + alignment on the encoder alone.
fn train_contrastive(
    encoder: &FmriWindowEncoder,
    params: Parameters,
    data: &EncoderData,
    opts: &EncoderTrainOptions,
    resumed_from: &mut Vec<(String, usize)>,
    progress: &mut dyn FnMut(&str, usize, usize, f64),
) -> Result<Vec<f64>> {
    let schedule = (opts.lr, opts.steps, opts.checkpoint_every);
    let work = opts.out.join(".train");
    let mut run = ResumableRun::resume("contrastive", &work, params, schedule, resumed_from)?;
    let on_cpu = data.x_train.device().is_cpu();
    let mut tape = (opts.engine == TrainEngine::Tape && on_cpu).then(Tape::new);
    for step in run.start..opts.steps {
        let rows = batch_rows(data.train.len(), opts, step);
        let mut rng = step_rng(opts, 1, step);
        let windows = select(&data.x_train, &rows)?;
        let target = select(&data.c_train, &rows)?;
        let value = match &mut tape {
            Some(tape) => {
                let done = train_step_on_tape(
                    encoder,
                    tape,
                    &windows,
                    &target,
                    Some(&mut rng),
                    opts.temperature,
                    opts.align_weight,
                )?;
                run.step_with_grads(done.loss.total, done.grads, step)?
            }
            None => {
                let context = encoder.forward(&windows, Some(&mut rng))?;
                let (loss, _, _) =
                    encoder_loss(&context, &target, opts.temperature, opts.align_weight)?;
                run.step(&loss, step)?
            }
        };
        progress("contrastive", step + 1, opts.steps, value);
    }
    Ok(run.losses)
}

/// Stage 2's motion U-Net, its trainable tensors (U-Net names) and, when tuned, its config.
struct MotionUnet {
    unet: UNetMotionModel,
    vars: Vec<(String, candle_core::Var)>,
    config: Option<UNetMotionConfig>,
}

/// The motion U-Net for stage 2 with the tensors `tune` selects as variables: a whole
/// UNetMotionModel folder read through an overlay, or the pipeline's own when nothing trains.
fn trainable_motion_unet(vd: &VideoDiffusion, adapter: &Path, tune: Tune) -> Result<MotionUnet> {
    if tune == Tune::None {
        return Ok(MotionUnet {
            unet: vd.unet.clone(),
            vars: Vec::new(),
            config: None,
        });
    }
    let config = UNetMotionConfig::from_file(&adapter.join("config.json"))?;
    let weights = Weights::from_component(adapter, DType::F32, &vd.sd.device)?;
    // the frame positions are buffers, not parameters
    let select = |name: &str| !name.ends_with("pos_encoder.pe") && tune.selects(name);
    let (overlay, vars) = Overlay::trainable(&weights, select, DType::F32)?;
    Ok(MotionUnet {
        unet: UNetMotionModel::new(overlay.var_builder(), &config)?,
        vars,
        config: Some(config),
    })
}

/// Refuses to tune an adapter that is not a whole motion U-Net, before anything trains.
fn check_tunable(adapter: &Path, opts: &EncoderTrainOptions) -> Result<()> {
    if opts.cotrain_steps == 0 || opts.tune == Tune::None || is_unet_motion_folder(adapter)? {
        return Ok(());
    }
    Err(RouteError::Usage(format!(
        "--tune {} trains a whole motion U-Net: --adapter must be a UNetMotionModel folder (as \
         shapes-motion, or what video train-motion --tune unet writes); {} is a MotionAdapter",
        opts.tune.name(),
        adapter.display()
    )))
}

/// VAE latents [n, C, F, h, w] of the training samples' stimulus clips.
fn stimulus_latents(
    sd: &StableDiffusion,
    opts: &EncoderTrainOptions,
    data: &EncoderData,
) -> Result<Tensor> {
    let design = &data.meta.design;
    let mut clips = StimulusClips::new(&opts.stimuli, design.tr, design.frames_per_tr);
    stimulus_clip_latents(sd, &mut clips, &data.train, LatentFrames::All)
}

/// Stage 2's fixed inputs.
struct Cotrain<'a> {
    unet: &'a UNetMotionModel,
    latents: Tensor,
    empty: Tensor,
    schedule: NoiseSchedule,
}

/// Stage 2 step `step`: diffusion loss of the motion U-Net conditioned on the encoder's
/// context (context dropout to the empty prompt), plus stage 1's loss.
fn cotrain_loss(
    encoder: &FmriWindowEncoder,
    co: &Cotrain,
    data: &EncoderData,
    opts: &EncoderTrainOptions,
    step: usize,
) -> Result<Tensor> {
    let rows = batch_rows(data.train.len(), opts, step);
    let mut rng = step_rng(opts, 2, step);
    let context = encoder.forward(&select(&data.x_train, &rows)?, Some(&mut rng))?;
    let (aligned, _, _) = encoder_loss(
        &context,
        &select(&data.c_train, &rows)?,
        opts.temperature,
        opts.align_weight,
    )?;
    let b = rows.len();
    let n_train = co.schedule.num_train_timesteps();
    let timesteps: Vec<usize> = (0..b).map(|_| rng.gen_range(0..n_train)).collect();
    let keep: Vec<f32> = (0..b)
        .map(|_| f32::from(!rng.gen_bool(opts.context_dropout)))
        .collect();
    let keep = Tensor::from_vec(keep, (b, 1, 1), context.device())?;
    let used =
        (context.broadcast_mul(&keep)? + co.empty.broadcast_mul(&keep.affine(-1.0, 1.0)?)?)?;
    let latents = select(&co.latents, &rows)?;
    let mut noise = SeededNoise::new(opts.seed ^ 0x71D2_0000_0000 ^ step as u64);
    let eps = noise.gaussian(latents.dims(), latents.device(), DType::F32)?;
    let noisy = co.schedule.add_noise(&latents, &eps, &timesteps)?;
    let t = Tensor::from_vec(
        timesteps.iter().map(|&t| t as f32).collect::<Vec<_>>(),
        b,
        latents.device(),
    )?;
    let predicted = co.unet.forward(&noisy, &t, &used)?;
    let diffusion = (predicted - eps)?.sqr()?.mean_all()?;
    Ok((diffusion + aligned)?)
}

/// Stage 2 (see the module documentation). Returns its losses and the tuned U-Net's
/// parameters (empty when nothing of it trains).
fn cotrain(
    vd: &VideoDiffusion,
    adapter: &Path,
    encoder: (&FmriWindowEncoder, &Parameters),
    data: &EncoderData,
    opts: &EncoderTrainOptions,
    resumed_from: &mut Vec<(String, usize)>,
    progress: &mut dyn FnMut(&str, usize, usize, f64),
) -> Result<(Vec<f64>, Parameters)> {
    let MotionUnet {
        unet,
        vars: unet_vars,
        config,
    } = trainable_motion_unet(vd, adapter, opts.tune)?;
    let co = Cotrain {
        unet: &unet,
        latents: stimulus_latents(&vd.sd, opts, data)?,
        empty: vd.sd.encode_text(&[""])?,
        schedule: NoiseSchedule::new(&SchedulerConfig::stable_diffusion())?,
    };
    let encoder_vars = encoder
        .1
        .vars()
        .into_iter()
        .map(|(n, v)| (format!("encoder.{n}"), v));
    let unet_vars = unet_vars.into_iter().map(|(n, v)| (format!("unet.{n}"), v));
    let params = Parameters::from_vars(encoder_vars.chain(unet_vars))?;
    let schedule = (opts.cotrain_lr, opts.cotrain_steps, opts.checkpoint_every);
    let work = opts.out.join(".train");
    let mut run = ResumableRun::resume("cotrain", &work, params, schedule, resumed_from)?;
    for step in run.start..opts.cotrain_steps {
        let loss = cotrain_loss(encoder.0, &co, data, opts, step)?;
        let value = run.step(&loss, step)?;
        progress("co-training", step + 1, opts.cotrain_steps, value);
    }
    if let Some(config) = config {
        let tuned = run.params.with_prefix("unet.");
        save_unet_motion(
            &tuned,
            &config.unet_config()?,
            &config.adapter_config(),
            &opts.out.join(TUNED_DIR),
        )?;
    }
    Ok((run.losses, run.params.with_prefix("unet.")))
}

/// [B, T, D] → (B, T·D); [B, F] as it is.
fn flat_rows(t: &Tensor) -> Result<Mat<f32>> {
    let rows = t.flatten_from(1)?.to_vec2::<f32>()?;
    let width = rows.first().map_or(0, Vec::len);
    Ok(matrix(&rows.concat(), width))
}

/// The decoded test contexts and the mean training window's, written as `video fit` writes
/// them; the summary.
fn write_decoded(
    encoder: &FmriWindowEncoder,
    data: &EncoderData,
    sd_name: &str,
    opts: &EncoderTrainOptions,
    seconds: f64,
) -> Result<VideoFitSummary> {
    let out = &opts.out;
    let decoded = flat_rows(&encoder.forward(&data.x_test, None)?)?;
    let mean_window = data.x_train.mean_keepdim(0)?;
    let negative = flat_rows(&encoder.forward(&mean_window, None)?)?;
    let truth = flat_rows(&data.c_test)?;
    write_decoded_contexts(out, [&decoded, &negative, &truth], &data.test)?;
    let meta = &data.meta;
    let motion = match opts.motion {
        true => {
            let design = &meta.design;
            let mut clips = StimulusClips::new(&opts.stimuli, design.tr, design.frames_per_tr);
            let [x_train, x_test] = [&data.x_train, &data.x_test].map(flat_rows);
            Some(fit_motion(
                [&x_train?, &x_test?],
                [&data.train, &data.test],
                &mut clips,
                &default_alphas(),
                DEFAULT_FOLDS,
                out,
            )?)
        }
        false => None,
    };
    let (_, t, d) = data.c_test.dims3()?;
    let summary = VideoFitSummary {
        format: "brainrecon-video-fit".into(),
        decoder: "window-encoder".into(),
        prepared: opts.prepared.clone(),
        stimuli: opts.stimuli.clone(),
        captions: opts.captions.clone(),
        model: sd_name.to_string(),
        n_train: data.train.len(),
        n_test: data.test.len(),
        n_features: meta.n_features,
        context_shape: [t, d],
        latent_shape: None,
        latent_frames: 1,
        frames_per_tr: meta.design.frames_per_tr,
        tr_seconds: meta.design.tr,
        cv_r2_c: None,
        cv_r2_z: None,
        identification_c: identification(&decoded, &truth)?.0,
        identification_z: None,
        motion,
        caption_words: None,
        seconds,
    };
    write_json_atomic(&out.join(SUMMARY_FILE), &summary)?;
    Ok(summary)
}

/// Trains the encoder (and, with co-training, tunes the motion U-Net `adapter` names) and
/// writes the decoded test set (see the module documentation). `progress(stage, step, total,
/// loss)` runs after each step.
pub fn train_encoder(
    vd: &VideoDiffusion,
    names: (&str, &Path),
    opts: &EncoderTrainOptions,
    progress: &mut dyn FnMut(&str, usize, usize, f64),
) -> Result<EncoderTrainSummary> {
    opts.check()?;
    check_tunable(names.1, opts)?;
    let started = std::time::Instant::now();
    let sd = &vd.sd;
    let data = load_data(sd, opts)?;
    let (_, t, d) = data.c_train.dims3()?;
    let mut config = WindowEncoderConfig::new(data.meta.settings.window, data.meta.n_voxels, t, d);
    config.num_layers = opts.layers;
    config.dropout = opts.dropout;
    config.patch_size = opts.patch_size;
    let (encoder, params) = init_parameters(
        |vb| FmriWindowEncoder::new(vb, &config),
        opts.seed ^ 0x71D,
        DType::F32,
        &sd.device,
    )?;
    let mut resumed_from = Vec::new();
    let contrastive = train_contrastive(
        &encoder,
        params.clone(),
        &data,
        opts,
        &mut resumed_from,
        progress,
    )?;
    let (cotrain_losses, tuned) = if opts.cotrain_steps > 0 {
        cotrain(
            vd,
            names.1,
            (&encoder, &params),
            &data,
            opts,
            &mut resumed_from,
            progress,
        )?
    } else {
        (Vec::new(), Parameters::from_vars(Vec::new())?)
    };
    let encoder_dir = opts.out.join(ENCODER_DIR);
    params.save_safetensors(encoder_dir.join(WEIGHTS_FILE))?;
    write_json_atomic(&encoder_dir.join(CONFIG_FILE), &config)?;
    write_json_atomic(
        &opts.out.join(TRAINING_RECORD),
        &json!({
            "settings": opts,
            "encoder": config,
            "adapter": names.1,
            "contrastive_losses": contrastive,
            "cotrain_losses": cotrain_losses,
        }),
    )?;
    let fit = write_decoded(
        &encoder,
        &data,
        names.0,
        opts,
        started.elapsed().as_secs_f64(),
    )?;
    Ok(EncoderTrainSummary {
        fit,
        encoder_parameters: params.count_elements(),
        tuned_parameters: tuned.count_elements(),
        contrastive_losses: contrastive,
        cotrain_losses,
        resumed_from,
    })
}

impl EncoderTrainSummary {
    /// The summary line `video train-encoder` prints; `out` is its folder.
    pub fn text(&self, out: &Path) -> String {
        let summary = self;
        let last = |l: &[f64]| l.last().copied().unwrap_or(f64::NAN);
        format!(
            "trained the window encoder ({} parameters; last contrastive loss {:.4}{}): test \
             contexts identified {:.3} (chance 0.5) → {}{}\n",
            summary.encoder_parameters,
            last(&summary.contrastive_losses),
            if summary.cotrain_losses.is_empty() {
                String::new()
            } else {
                format!(", co-training {:.4}", last(&summary.cotrain_losses))
            },
            summary.fit.identification_c,
            out.display(),
            if summary.tuned_parameters > 0 {
                format!(
                    " (motion U-Net, {} parameters tuned: {})",
                    summary.tuned_parameters,
                    out.join(TUNED_DIR).display()
                )
            } else {
                String::new()
            }
        )
    }
}

/// `video train-encoder` whole: the options checked, the diffusion model `model` (f32) and
/// the motion adapter or U-Net `adapter` (see [`super::adapter_dir`]) loaded on `device`,
/// then [`train_encoder`].
pub fn train_encoder_with(
    model: &str,
    adapter: &str,
    device: &candle_core::Device,
    opts: &EncoderTrainOptions,
    progress: &mut dyn FnMut(&str, usize, usize, f64),
) -> Result<EncoderTrainSummary> {
    opts.check()?;
    let adapter = super::adapter_dir(adapter)?;
    let sd = StableDiffusion::load(model, DType::F32, device)?;
    let vd = VideoDiffusion::with_adapter(sd, &adapter)?;
    train_encoder(&vd, (model, &adapter), opts, progress)
}
