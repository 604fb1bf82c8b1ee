//! The contrastive encoders (NICE's, or ATM's with its channel attention) trained on the
//! project's nn path, as NICE trains them: every training trial against the embedding of its
//! image, batches shuffled each epoch, CLIP's symmetric loss with a learnable temperature (each
//! encoder's own form of it, see [`EegEncoder::loss`]), Adam (lr 2e-4, betas 0.5/0.999), the
//! encoders' dropout. Test conditions are encoded from their repetitions' average, as NICE
//! scores them.
//!
//! Each step is differentiated on the project's tape by default ([`TrainEngine::Tape`], the
//! same function and dropout masks as candle's autograd, tested equal within f32 rounding), or
//! on candle's autograd ([`TrainEngine::Candle`]).
//!
//! Deterministic: the initial values, each epoch's order and each step's dropout masks come
//! from ChaCha8 streams of the seed, each epoch's and step's drawn from its number alone, so a
//! run resumed from a checkpoint (every `checkpoint_every` epochs into a work folder) ends
//! with the same bits as one that never stopped.

use crate::error::{Result, RouteError};
use brainrecon_brain::atm::{atm_loss, AtmConfig, AtmEegEncoder};
use brainrecon_brain::nice::{nice_loss, unit_rows, NiceConfig, NiceEegEncoder};
use brainrecon_datasets::things_eeg2::PreprocessedEeg;
use brainrecon_nn::checkpoint::{
    latest_checkpoint, load_checkpoint, logged_losses, save_checkpoint,
};
use brainrecon_nn::optim::AdamW;
use brainrecon_nn::params::Parameters;
use brainrecon_nn::rng::dropout_stream;
use brainrecon_nn::tape::Tape;
pub use brainrecon_nn::tape::TrainEngine;
use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// Which contrastive encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncoderKind {
    /// NICE's (Song et al. 2024): temporal-spatial convolution, then a projection.
    Nice,
    /// ATM's: NICE's behind a channel-attention Transformer.
    Atm,
}

/// A contrastive encoder of either kind.
#[derive(Debug, Clone)]
pub enum EegEncoder {
    /// NICE's encoder.
    Nice(Box<NiceEegEncoder>),
    /// ATM's encoder (Li et al. 2024).
    Atm(Box<AtmEegEncoder>),
}

impl EegEncoder {
    /// A new encoder for `channels` × `times` trials into `d`-wide embeddings, with the
    /// paper's sizes and seeded initial values.
    pub fn initialise(
        kind: EncoderKind,
        channels: usize,
        times: usize,
        d: usize,
        seed: u64,
    ) -> Result<(Self, Parameters)> {
        let usage = |problem: String| RouteError::Usage(format!("{}: {problem}", kind.name()));
        Ok(match kind {
            EncoderKind::Nice => {
                let config = NiceConfig::new(channels, times, d);
                if let Some(problem) = config.problem() {
                    return Err(usage(problem));
                }
                let (e, p) = brainrecon_brain::nice::initialise(&config, seed, &Device::Cpu)?;
                (EegEncoder::Nice(Box::new(e)), p)
            }
            EncoderKind::Atm => {
                let config = AtmConfig::new(channels, times, d);
                if let Some(problem) = config.problem() {
                    return Err(usage(problem));
                }
                let (e, p) = brainrecon_brain::atm::initialise(&config, seed, &Device::Cpu)?;
                (EegEncoder::Atm(Box::new(e)), p)
            }
        })
    }

    /// Loads the encoder saved by [`EegEncoder::save`] in `dir`.
    pub fn load(kind: EncoderKind, dir: &Path) -> Result<Self> {
        let config = dir.join("config.json");
        let weights = dir.join("model.safetensors");
        Ok(match kind {
            EncoderKind::Nice => {
                let config = NiceConfig::from_file(&config)?;
                let (e, mut p) = brainrecon_brain::nice::initialise(&config, 0, &Device::Cpu)?;
                p.load_safetensors(weights)?;
                EegEncoder::Nice(Box::new(e))
            }
            EncoderKind::Atm => {
                let config = AtmConfig::from_file(&config)?;
                let (e, mut p) = brainrecon_brain::atm::initialise(&config, 0, &Device::Cpu)?;
                p.load_safetensors(weights)?;
                EegEncoder::Atm(Box::new(e))
            }
        })
    }

    /// Writes `config.json` and `model.safetensors` into `dir` (created).
    pub fn save(&self, parameters: &Parameters, dir: &Path) -> Result<()> {
        use brainrecon_core::fs::write_json_atomic;
        std::fs::create_dir_all(dir).map_err(|e| brainrecon_core::DataError::io(dir, e))?;
        match self {
            EegEncoder::Nice(e) => write_json_atomic(&dir.join("config.json"), e.config())?,
            EegEncoder::Atm(e) => write_json_atomic(&dir.join("config.json"), e.config())?,
        }
        parameters.save_safetensors(dir.join("model.safetensors"))?;
        Ok(())
    }

    /// `eeg` [B, C, T] → [B, d]; training with `rng`. ATM's encoder takes the shared subject
    /// token: a decoder is trained on one subject or on a pool whose trials are not told
    /// apart, so one learned token serves either.
    pub fn forward(&self, eeg: &Tensor, rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        Ok(match self {
            EegEncoder::Nice(e) => e.forward(eeg, rng)?,
            EegEncoder::Atm(e) => e.forward(eeg, None, rng)?,
        })
    }

    /// The encoder's paper's loss of `embedded` [B, d] against `images` [B, d]: NICE's on unit
    /// rows with an exponentiated scale, ATM's on its raw embeddings with the scale as it is,
    /// the image rows made unit length first as ATM's data set makes them.
    pub fn loss(&self, embedded: &Tensor, images: &Tensor) -> Result<Tensor> {
        Ok(match self {
            EegEncoder::Nice(e) => nice_loss(embedded, images, &e.logit_scale)?,
            EegEncoder::Atm(e) => atm_loss(embedded, &unit_rows(images)?, e.logit_scale())?,
        })
    }

    /// One training step of `eeg` [B, C, T] against `images` [B, d] with dropout masks from
    /// `rng`: the loss ([`EegEncoder::loss`]) and every parameter's gradient, on `tape` when
    /// given (cleared first), else on candle's autograd. Moves the batch norms' running
    /// statistics either way.
    pub fn train_step(
        &self,
        tape: Option<&mut Tape>,
        eeg: &Tensor,
        images: &Tensor,
        rng: &mut ChaCha8Rng,
    ) -> Result<(f64, candle_core::backprop::GradStore)> {
        let Some(tape) = tape else {
            let embedded = self.forward(eeg, Some(rng))?;
            let loss = self.loss(&embedded, images)?;
            let grads = loss.backward()?;
            return Ok((loss.to_scalar::<f32>()? as f64, grads));
        };
        let step = match self {
            EegEncoder::Nice(e) => e.train_step_on_tape(tape, eeg, images, rng)?,
            EegEncoder::Atm(e) => e.train_step_on_tape(tape, eeg, images, rng)?,
        };
        Ok((step.loss, step.grads))
    }
}

impl EncoderKind {
    /// The name in messages: `NICE` or `ATM`.
    pub fn name(self) -> &'static str {
        match self {
            EncoderKind::Nice => "NICE",
            EncoderKind::Atm => "ATM",
        }
    }
}

/// How the encoder trains.
#[derive(Clone, Debug)]
pub struct NiceTrainOptions {
    /// Passes over the training trials.
    pub epochs: usize,
    /// Trials per step.
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Seed of the initial values, each epoch's order and each step's dropout masks.
    pub seed: u64,
    /// Epochs between checkpoints in the work folder (the last epoch always saves one).
    pub checkpoint_every: usize,
    /// What differentiates each step: the project's tape (the default) or candle's autograd.
    pub engine: TrainEngine,
}

impl Default for NiceTrainOptions {
    /// NICE's learning rate; 40 epochs of 256 trials (NICE: 200 epochs of 1,000 on the full data
    /// set).
    fn default() -> Self {
        NiceTrainOptions {
            epochs: 40,
            batch: 256,
            lr: 2e-4,
            seed: 0,
            checkpoint_every: 5,
            engine: TrainEngine::default(),
        }
    }
}

/// The trained encoder and its loss per epoch (mean over the epoch's batches).
pub struct TrainedNice {
    /// The trained encoder.
    pub encoder: EegEncoder,
    /// Its trained values, for [`EegEncoder::save`].
    pub parameters: Parameters,
    /// Mean loss of each epoch, resumed epochs included.
    pub epoch_losses: Vec<f64>,
    /// The epoch resumed from (0: a fresh start).
    pub resumed_from: usize,
}

/// Epochs [rows, channels, times] of the given (condition, repetition) pairs.
fn batch_tensor(eeg: &PreprocessedEeg, rows: &[(usize, usize)]) -> Result<Tensor> {
    let (c, t) = (eeg.channels(), eeg.times.len());
    let mut values = Vec::with_capacity(rows.len() * c * t);
    for &(condition, repetition) in rows {
        values.extend_from_slice(eeg.epoch(condition, repetition));
    }
    Ok(Tensor::from_vec(values, (rows.len(), c, t), &Device::Cpu)?)
}

/// Trains a contrastive encoder of `kind` from `train` to `embeddings` [conditions, d] (row i
/// the image of condition i); `each_epoch(epoch, mean loss)` reports progress. With `work`,
/// checkpoints go to `work/step-<epoch>` and training resumes from the newest one there.
// `usize::is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
#[allow(clippy::manual_is_multiple_of)]
pub fn train_nice(
    kind: EncoderKind,
    train: &PreprocessedEeg,
    embeddings: &[f32],
    d: usize,
    options: &NiceTrainOptions,
    work: Option<&Path>,
    mut each_epoch: impl FnMut(usize, f64),
) -> Result<TrainedNice> {
    if d == 0 || embeddings.len() != train.conditions * d {
        return Err(RouteError::Usage(format!(
            "{}: {} conditions need as many embeddings of width {d}, found {} values",
            kind.name(),
            train.conditions,
            embeddings.len()
        )));
    }
    if options.batch < 2 || options.epochs == 0 {
        return Err(RouteError::Usage(format!(
            "{}: --batch must be at least 2 (the loss contrasts a batch's trials) and \
             --epochs at least 1, found {} and {}",
            kind.name(),
            options.batch,
            options.epochs
        )));
    }
    let (encoder, mut parameters) =
        EegEncoder::initialise(kind, train.channels(), train.times.len(), d, options.seed)?;
    let mut optimizer = AdamW::new(options.lr, 0.5, 0.999, 1e-8, 0.0)?;
    let mut epoch_losses = Vec::with_capacity(options.epochs);
    let mut resumed_from = 0;
    if let Some((epoch, dir)) = work.map(latest_checkpoint).transpose()?.flatten() {
        if epoch > options.epochs {
            return Err(RouteError::Usage(format!(
                "{}: a checkpoint of epoch {epoch}, past --epochs {}",
                dir.display(),
                options.epochs
            )));
        }
        let (saved, extra) = load_checkpoint(&dir, &mut parameters)?;
        optimizer = saved;
        epoch_losses = logged_losses(&extra);
        resumed_from = epoch;
    }
    let all_trials: Vec<(usize, usize)> = (0..train.conditions)
        .flat_map(|c| (0..train.repetitions).map(move |r| (c, r)))
        .collect();
    let per_epoch = all_trials
        .chunks(options.batch)
        .filter(|rows| rows.len() >= 2)
        .count() as u64;
    let mut step = resumed_from as u64 * per_epoch;
    let mut tape = (options.engine == TrainEngine::Tape).then(Tape::new);
    let every = options.checkpoint_every.max(1);
    for epoch in resumed_from..options.epochs {
        let mut order = ChaCha8Rng::seed_from_u64(options.seed ^ 0x0D3E_0000 ^ epoch as u64);
        let mut trials = all_trials.clone();
        trials.shuffle(&mut order);
        let (mut sum, mut batches) = (0.0, 0usize);
        // A last batch of one trial has nothing to contrast with: it waits for the next epoch.
        for rows in trials.chunks(options.batch).filter(|rows| rows.len() >= 2) {
            let x = batch_tensor(train, rows)?;
            let targets: Vec<f32> = rows
                .iter()
                .flat_map(|&(c, _)| embeddings[c * d..(c + 1) * d].iter().copied())
                .collect();
            let y = Tensor::from_vec(targets, (rows.len(), d), &Device::Cpu)?;
            let mut masks = dropout_stream(options.seed, step);
            let (loss, grads) = encoder.train_step(tape.as_mut(), &x, &y, &mut masks)?;
            optimizer.step(&parameters, &grads)?;
            sum += loss;
            batches += 1;
            step += 1;
        }
        let mean = sum / batches.max(1) as f64;
        epoch_losses.push(mean);
        if let Some(work) = work {
            if (epoch + 1) % every == 0 || epoch + 1 == options.epochs {
                let losses = serde_json::json!({ "losses": epoch_losses });
                save_checkpoint(work, epoch + 1, &parameters, &optimizer, &losses)?;
            }
        }
        each_epoch(epoch + 1, mean);
    }
    Ok(TrainedNice {
        encoder,
        parameters,
        epoch_losses,
        resumed_from,
    })
}

/// Embeddings [conditions, d] of `eeg` by `encoder` in inference mode, each condition from its
/// repetitions' average.
pub fn encode_conditions(encoder: &EegEncoder, eeg: &PreprocessedEeg) -> Result<Vec<f32>> {
    let (c, t) = (eeg.channels(), eeg.times.len());
    let means: Vec<f32> = (0..eeg.conditions)
        .flat_map(|condition| eeg.condition_mean(condition))
        .collect();
    let x = Tensor::from_vec(means, (eeg.conditions, c, t), &Device::Cpu)?;
    let embedded = encoder.forward(&x, None)?;
    Ok(embedded.flatten_all()?.to_vec1::<f32>()?)
}
