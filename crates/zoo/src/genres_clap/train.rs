//! Training genres-clap: CLAP's contrastive objective on the synthetic music generator's clips
//! and captions.
//!
//! 1. The tokenizer is trained on the captions of the training stream ([`super::tokenizer`]).
//! 2. The model is initialised from the seed ([`ClapModel::init_rule`]: PyTorch's defaults,
//!    both temperatures at 1/0.07).
//! 3. The training clips are rendered ([`ClipBank`]); one pass over every frame of them sets
//!    the running mean and variance of the audio tower's mel batch norm (the only batch norm
//!    of the unfused HTSAT), which then stay fixed: they are left out of the optimiser, as a
//!    batch norm's running statistics are no parameters of it.
//! 4. Each step takes a batch of distinct clips (a seeded permutation per epoch,
//!    [`shuffled_batches`]), a random 10-s window of each (offsets seeded by step), their
//!    captions, and minimises the symmetric InfoNCE loss
//!    `½·[CE(logits_per_audio, diag) + CE(logits_per_text, diag)]`: audio → text with
//!    `exp(logit_scale_a)`, text → audio with `exp(logit_scale_t)`, as LAION's CLAP trains both
//!    directions. (transformers' `ClapModel(return_loss=True)` scores `logits_per_audio.t()`,
//!    which is text → audio a second time.) Both temperatures are learnt and clamped to
//!    [1, 100] as LAION's training clamps them; AdamW (torch's defaults, weight decay 0.01),
//!    warm-up then cosine decay, gradients clipped to norm 1 ([`ResumableRun`]).
//!
//! Checkpoints go to `out/.train/clap/step-N` every `checkpoint_every` steps; rerunning the
//! same command resumes from the newest and ends with the bytes of an unbroken run. Every
//! random draw comes from seeded ChaCha streams (never candle's generator).

use std::path::{Path, PathBuf};

use brainrecon_language::roberta::RobertaTokenizer;
use brainrecon_nn::checkpoint::ResumableRun;
use brainrecon_nn::init::init_parameters_with;
use brainrecon_nn::params::Parameters;
use brainrecon_nn::rng::shuffled_batches;
use brainrecon_nn::{ModelError, Result};
use brainrecon_simulate::music::StreamClip;
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::data::{training_stream, ClipBank, HeldOut};
use super::quality::{retrieval, Retrieval};
use super::tokenizer::{train_tokenizer, MAX_TOKENS};
use super::GenresClapConfig;
use brainrecon_audio::clap::ClapModel;

/// The training record written next to the model (not part of the model's files).
pub const TRAINING_RECORD: &str = "training.json";
/// The loss curve written next to the model.
pub const LOSS_CHART: &str = "loss.svg";
/// The settings of a run, kept beside its checkpoints so that a rerun with others is refused.
const RUN_FILE: &str = "run.json";

/// What [`train_genres_clap`] reports while it runs.
#[derive(Clone, Debug)]
pub enum ClapProgress {
    /// A preparation (tokenizer, clips) is done.
    Prepared(String),
    /// Step `step` (1-based) of `total` finished with `loss`.
    Step {
        /// Steps done, 1-based.
        step: usize,
        /// Steps of the run.
        total: usize,
        /// The step's loss.
        loss: f64,
    },
    /// Held-out retrieval after `step` steps.
    HeldOut {
        /// Steps done.
        step: usize,
        /// The held-out scores.
        retrieval: Retrieval,
    },
}

/// What [`train_genres_clap`] did.
#[derive(Clone, Debug, Serialize)]
pub struct ClapSummary {
    /// The model folder written.
    pub out: PathBuf,
    /// Trainable parameters (elements).
    pub parameters: usize,
    /// Tokens of the trained tokenizer.
    pub vocab_size: usize,
    /// Training loss of every step.
    pub losses: Vec<f64>,
    /// The step the run resumed from.
    pub resumed_from: Option<usize>,
    /// Wall-clock time of the run, in seconds.
    pub seconds: f64,
    /// Held-out retrieval of the final model.
    pub held_out: Retrieval,
    /// The learnt temperatures `exp(logit_scale_a)`, `exp(logit_scale_t)`.
    pub temperatures: (f64, f64),
}

impl ClapSummary {
    /// The run in one line for people: time, size, final loss, held-out retrieval, folder.
    pub fn text(&self) -> String {
        format!(
            "trained genres-clap in {:.0} s: {} parameters, {} tokens, final loss {:.4}; {} → {}",
            self.seconds,
            self.parameters,
            self.vocab_size,
            self.losses.last().copied().unwrap_or(f64::NAN),
            self.held_out.text(),
            self.out.display()
        )
    }
}

/// The symmetric InfoNCE loss of matched audio and text (row i of each is a pair):
/// `½·[CE(logits_per_audio) + CE(logits_per_text)]`.
pub use brainrecon_nn::loss::symmetric_info_nce as contrastive_loss;

/// Keeps both log-temperatures in [0, ln 100].
fn clamp_temperatures(params: &Parameters) -> Result<()> {
    for name in ["logit_scale_a", "logit_scale_t"] {
        let var = params
            .get(name)
            .ok_or_else(|| ModelError::Invalid(format!("the model has no {name}")))?;
        let value = var.as_tensor().to_scalar::<f32>()?;
        let clamped = value.clamp(0.0, 100f32.ln());
        if clamped != value {
            var.set(&Tensor::new(clamped, var.device())?)?;
        }
    }
    Ok(())
}

fn temperatures(model: &ClapModel) -> Result<(f64, f64)> {
    Ok((
        model.logit_scale_a.exp()?.to_scalar::<f32>()? as f64,
        model.logit_scale_t.exp()?.to_scalar::<f32>()? as f64,
    ))
}

/// The (clip, window offset) pairs of step `step`: the step's batch of a seeded permutation
/// of the clips (whole batches only), offsets from a stream keyed by (seed, step).
fn step_picks(bank: &ClipBank, batch: usize, seed: u64, step: usize) -> Vec<(usize, usize)> {
    let per_epoch = bank.len() / batch;
    let epoch = (step / per_epoch) as u64;
    let clips = &shuffled_batches(bank.len(), batch, seed, epoch)[step % per_epoch];
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x57EB_0000_0000 ^ step as u64);
    clips
        .iter()
        .map(|&c| (c, rng.gen_range(0..bank.offsets())))
        .collect()
}

/// Creates `out` and checks that a file can be written in it, before any training.
fn check_writable(out: &Path) -> Result<()> {
    let fail = |e: std::io::Error| {
        ModelError::Invalid(format!("--out {}: cannot write there: {e}", out.display()))
    };
    std::fs::create_dir_all(out).map_err(fail)?;
    let probe = out.join(format!(".write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(fail)?;
    std::fs::remove_file(&probe).map_err(fail)
}

/// Refuses to resume checkpoints made with other settings.
fn check_run_file(work: &Path, config: &GenresClapConfig, seed: u64) -> Result<()> {
    let path = work.join(RUN_FILE);
    let settings = serde_json::json!({"config": config, "seed": seed});
    if path.is_file() {
        let found: serde_json::Value = brainrecon_nn::weights::read_json(&path, "training run")?;
        if found != settings {
            return Err(ModelError::Config {
                path,
                what: "training run".into(),
                message: format!(
                    "its checkpoints were made with other settings ({found}); use another \
                     --out or remove its .train folder"
                ),
            });
        }
        return Ok(());
    }
    std::fs::create_dir_all(work).map_err(|e| ModelError::io(work, e))?;
    write_json(&path, &settings)
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| ModelError::Invalid(format!("{}: {e}", path.display())))?;
    std::fs::write(path, text + "\n").map_err(|e| ModelError::io(path, e))
}

/// Trains genres-clap into `out` (a transformers `ClapModel` folder; `out/.train/` holds the
/// checkpoints). `progress` hears each preparation, every step and the held-out retrieval at
/// every checkpoint.
pub fn train_genres_clap(
    out: &Path,
    config: &GenresClapConfig,
    seed: u64,
    device: &Device,
    progress: &mut dyn FnMut(ClapProgress),
) -> Result<ClapSummary> {
    let started = std::time::Instant::now();
    config.check()?;
    check_writable(out)?;
    let work = out.join(".train");
    check_run_file(&work, config, seed)?;
    let stream = training_stream(seed);
    let captions: Vec<String> = (0..config.tokenizer_captions as u64)
        .map(|i| StreamClip::new(stream, i).caption)
        .collect();
    let vocab_size = train_tokenizer(&captions, config.max_vocab, out)?;
    let tokenizer = RobertaTokenizer::from_dir(out)?;
    progress(ClapProgress::Prepared(format!(
        "tokenizer: {vocab_size} tokens from {} captions",
        captions.len()
    )));
    let clap = config.clap_config(vocab_size)?;
    let (model, params) = init_parameters_with(
        |vb| ClapModel::new(vb, &clap),
        seed,
        DType::F32,
        device,
        ClapModel::init_rule(&clap),
    )?;
    let fe = config.feature_extractor();
    let bank = ClipBank::render(seed, config.training_clips, &fe)?;
    set_mel_statistics(&params, &bank, device)?;
    let held_out = HeldOut::new(config.held_out_clips, &fe, device)?;
    progress(ClapProgress::Prepared(format!(
        "{} training clips, {} held-out clips",
        bank.len(),
        config.held_out_clips
    )));
    let trainable = Parameters::from_vars(
        params
            .vars()
            .into_iter()
            .filter(|(name, _)| !name.contains("running_")),
    )?;
    let mut resumed = Vec::new();
    let mut run = ResumableRun::resume(
        "clap",
        &work,
        trainable,
        (config.lr, config.steps, config.checkpoint_every),
        &mut resumed,
    )?;
    // The held-out scores at each checkpoint, kept beside the checkpoints so that a resumed run
    // records those made before it was stopped. A run stopped between a checkpoint and its
    // scores scores the restored parameters, which are that checkpoint's.
    let scores_path = work.join(HELD_OUT_FILE);
    let mut checkpoints: Vec<(usize, Retrieval)> = if run.start > 0 && scores_path.is_file() {
        brainrecon_core::fs::read_json(&scores_path)?
    } else {
        Vec::new()
    };
    checkpoints.retain(|&(step, _)| step <= run.start);
    let is_checkpoint = |step: usize| step % config.checkpoint_every == 0 && step < config.steps;
    if run.start > 0 && is_checkpoint(run.start) && !checkpoints.iter().any(|c| c.0 == run.start) {
        clamp_temperatures(&params)?;
        checkpoints.push((run.start, retrieval(&model, &tokenizer, &held_out, device)?));
        brainrecon_core::fs::write_json_atomic(&scores_path, &checkpoints)?;
    }
    for step in run.start..config.steps {
        clamp_temperatures(&params)?;
        let picks = step_picks(&bank, config.batch, seed, step);
        let features = bank.windows(&picks, device)?;
        let texts: Vec<&str> = picks
            .iter()
            .map(|&(c, _)| bank.captions[c].as_str())
            .collect();
        let (ids, mask) = tokenizer.encode_batch(&texts, Some(MAX_TOKENS), device)?;
        let output = model.forward(&ids, Some(&mask), &features, &vec![false; picks.len()])?;
        let loss = contrastive_loss(&output.logits_per_audio, &output.logits_per_text)?;
        let value = run.step(&loss, step)?;
        progress(ClapProgress::Step {
            step: step + 1,
            total: config.steps,
            loss: value,
        });
        if is_checkpoint(step + 1) {
            let scores = retrieval(&model, &tokenizer, &held_out, device)?;
            checkpoints.push((step + 1, scores));
            brainrecon_core::fs::write_json_atomic(&scores_path, &checkpoints)?;
            progress(ClapProgress::HeldOut {
                step: step + 1,
                retrieval: scores,
            });
        }
    }
    clamp_temperatures(&params)?;
    let held = retrieval(&model, &tokenizer, &held_out, device)?;
    progress(ClapProgress::HeldOut {
        step: config.steps,
        retrieval: held,
    });
    let summary = ClapSummary {
        out: out.to_path_buf(),
        parameters: run.params.count_elements(),
        vocab_size,
        losses: run.losses.clone(),
        resumed_from: resumed.first().map(|(_, step)| *step),
        seconds: started.elapsed().as_secs_f64(),
        held_out: held,
        temperatures: temperatures(&model)?,
    };
    write_folder(out, config, seed, &params, &summary, &checkpoints)?;
    Ok(summary)
}

/// Sets the mel batch norm's running statistics from the bank.
fn set_mel_statistics(params: &Parameters, bank: &ClipBank, device: &Device) -> Result<()> {
    let (mean, var) = bank.mel_statistics();
    let prefix = "audio_model.audio_encoder.batch_norm";
    for (leaf, values) in [("running_mean", mean), ("running_var", var)] {
        let name = format!("{prefix}.{leaf}");
        let v = params
            .get(&name)
            .ok_or_else(|| ModelError::Invalid(format!("the model has no {name}")))?;
        let n = values.len();
        v.set(&Tensor::from_vec(values, n, device)?)?;
    }
    Ok(())
}

/// The transformers folder (config.json, model.safetensors, preprocessor_config.json; the
/// tokenizer files are already there) and, beside the model's files, training.json and
/// loss.svg.
fn write_folder(
    out: &Path,
    config: &GenresClapConfig,
    seed: u64,
    params: &Parameters,
    summary: &ClapSummary,
    checkpoints: &[(usize, Retrieval)],
) -> Result<()> {
    write_json(
        &out.join("config.json"),
        &config.clap_config_json(summary.vocab_size),
    )?;
    write_json(
        &out.join("preprocessor_config.json"),
        &config.preprocessor_json(),
    )?;
    params.save_safetensors(out.join("model.safetensors"))?;
    let svg = crate::chart::raw_and_smoothed_svg(
        "genres-clap training loss",
        "contrastive loss",
        &summary.losses,
    )?;
    let chart = out.join(LOSS_CHART);
    std::fs::write(&chart, svg).map_err(|e| ModelError::io(&chart, e))?;
    let held_out: Vec<serde_json::Value> = checkpoints
        .iter()
        .map(|(step, r)| serde_json::json!({"step": step, "retrieval": r}))
        .collect();
    write_json(
        &out.join(TRAINING_RECORD),
        &serde_json::json!({
            "command": command(out, config, seed),
            "seed": seed,
            "config": config,
            "parameters": summary.parameters,
            "vocab_size": summary.vocab_size,
            "held_out": summary.held_out,
            "held_out_at_checkpoints": held_out,
            "temperatures": summary.temperatures,
            "losses": summary.losses,
        }),
    )
}

/// The `train-clap` command of a run (every setting its flags change).
pub fn command(out: &Path, config: &GenresClapConfig, seed: u64) -> String {
    format!(
        "brainrecon train-clap --out {}{} --steps {} --batch {} --seed {seed} --checkpoint-every {} \
         --lr {} --clips {}",
        out.display(),
        config.preset.flag(),
        config.steps,
        config.batch,
        config.checkpoint_every,
        config.lr,
        config.training_clips
    )
}

/// The held-out scores of the checkpoints so far, beside them in `out/.train`.
const HELD_OUT_FILE: &str = "clap-held-out.json";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loss_is_infonce_in_both_directions() {
        let dev = Device::Cpu;
        let a = Tensor::new(&[[2f32, 0.0], [1.0, 3.0]], &dev).unwrap();
        let t = a.t().unwrap().contiguous().unwrap();
        let got = contrastive_loss(&a, &t)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let ce = |row: [f32; 2], k: usize| {
            let lse = row.iter().map(|v| v.exp()).sum::<f32>().ln();
            lse - row[k]
        };
        let want = 0.5 * ((ce([2.0, 0.0], 0) + ce([1.0, 3.0], 1)) / 2.0)
            + 0.5 * ((ce([2.0, 1.0], 0) + ce([0.0, 3.0], 1)) / 2.0);
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }
}
