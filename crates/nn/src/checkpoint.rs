//! Resumable training: checkpoints (`dir/step-<N>/`) and [`ResumableRun`].
//!
//! [`save_checkpoint`] writes `dir/step-<N>/` (`params.safetensors`, `optimizer.safetensors`,
//! `state.json`) into a temporary folder and renames it into place, then keeps the newest
//! [`KEEP_CHECKPOINTS`]; [`latest_checkpoint`] finds the newest, [`load_checkpoint`] restores

use std::path::{Path, PathBuf};

use brainrecon_core::fs::{
    remove_dead_temps, remove_dir_atomic, sync_dir, write_bytes_atomic, write_folder_atomic,
};
use candle_core::Tensor;

use crate::error::{ModelError, Result};
use crate::optim::{clip_grad_norm, learning_rate, AdamW};
use crate::params::Parameters;

// ---------------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------------

/// How many checkpoints [`save_checkpoint`] keeps.
pub const KEEP_CHECKPOINTS: usize = 2;

const CHECKPOINT_FORMAT: &str = "brainrecon-train-checkpoint";
const PARAMS_FILE: &str = "params.safetensors";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const STATE_FILE: &str = "state.json";

/// One saved training state, `dir/step-<step>/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The step the checkpoint was saved at.
    pub step: usize,
    /// Its folder, `<root>/step-<step>`.
    pub dir: PathBuf,
}

impl Checkpoint {
    /// See [`save_checkpoint`].
    pub fn save(
        root: &Path,
        step: usize,
        params: &Parameters,
        optimizer: &AdamW,
        extra: &serde_json::Value,
    ) -> Result<Checkpoint> {
        let dir = save_checkpoint(root, step, params, optimizer, extra)?;
        Ok(Checkpoint { step, dir })
    }

    /// See [`latest_checkpoint`].
    pub fn latest(root: &Path) -> Result<Option<Checkpoint>> {
        Ok(latest_checkpoint(root)?.map(|(step, dir)| Checkpoint { step, dir }))
    }

    /// See [`load_checkpoint`].
    pub fn load(&self, params: &mut Parameters) -> Result<(AdamW, serde_json::Value)> {
        load_checkpoint(&self.dir, params)
    }

    /// The parameters file in the folder.
    pub fn params_file(&self) -> PathBuf {
        self.dir.join(PARAMS_FILE)
    }
}

fn step_dir_name(step: usize) -> String {
    format!("step-{step}")
}

fn parse_step_dir(name: &str) -> Option<usize> {
    let digits = name.strip_prefix("step-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The complete checkpoints under `root`, sorted by step.
fn list_checkpoints(root: &Path) -> Result<Vec<(usize, PathBuf)>> {
    // What a run killed while checkpointing left (its staging folder, or its lock after the
    // checkpoint landed) goes before a resumed run reads the folder.
    remove_dead_temps(root);
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ModelError::io(root, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ModelError::io(root, e))?;
        let name = entry.file_name();
        let Some(step) = name.to_str().and_then(parse_step_dir) else {
            continue;
        };
        let path = entry.path();
        if path.join(STATE_FILE).is_file() {
            found.push((step, path));
        }
    }
    found.sort();
    Ok(found)
}

/// Saves a resumable training state as `dir/step-<step>/` (`params.safetensors`,
/// `optimizer.safetensors`, `state.json` holding the step and `extra`): the three files are
/// written into a temporary folder that is then renamed into place (replacing an existing
/// checkpoint of the same step), so `step-<step>/` is complete whenever it exists. Then only
/// the [`KEEP_CHECKPOINTS`] checkpoints with the highest steps are kept. Returns the folder.
pub fn save_checkpoint(
    dir: &Path,
    step: usize,
    params: &Parameters,
    optimizer: &AdamW,
    extra: &serde_json::Value,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let target = dir.join(step_dir_name(step));
    // Staged as `step-<step>.partial` (never read as a checkpoint); an earlier checkpoint of
    // this step is replaced only once the new one is complete.
    write_folder_atomic(&target, |staging| -> Result<()> {
        params.save_safetensors(staging.join(PARAMS_FILE))?;
        optimizer.save(staging.join(OPTIMIZER_FILE))?;
        let state = serde_json::json!({
            "format": CHECKPOINT_FORMAT,
            "version": 1,
            "step": step,
            "extra": extra,
        });
        let text = serde_json::to_vec_pretty(&state)
            .map_err(|e| ModelError::Invalid(format!("checkpoint state: {e}")))?;
        write_bytes_atomic(&staging.join(STATE_FILE), &text)?;
        sync_dir(staging);
        Ok(())
    })?;
    prune_checkpoints(dir)?;
    Ok(target)
}

/// Keeps the [`KEEP_CHECKPOINTS`] newest checkpoints under `dir` and returns them, sorted by
/// step. Each older one is removed whole ([`remove_dir_atomic`]): a run killed half-way
/// through a removal leaves no part-emptied `step-<N>/` for good.
fn prune_checkpoints(dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let mut all = list_checkpoints(dir)?;
    let excess = all.len().saturating_sub(KEEP_CHECKPOINTS);
    for (_, path) in all.drain(..excess) {
        remove_dir_atomic(&path)?;
    }
    Ok(all)
}

/// The checkpoint with the highest step under `dir` (`step-<N>/` folders holding
/// `state.json`), or None when there is none (or `dir` does not exist). Older checkpoints
/// beyond [`KEEP_CHECKPOINTS`] are removed first, as [`save_checkpoint`] would have: a run
/// killed between its last checkpoint and that clean-up resumes to the same folder as an
/// unbroken run.
pub fn latest_checkpoint(dir: &Path) -> Result<Option<(usize, PathBuf)>> {
    Ok(prune_checkpoints(dir)?.pop())
}

/// Restores a checkpoint folder written by [`save_checkpoint`]: sets `params` from its
/// `params.safetensors` (names and shapes checked) and returns the optimizer and the `extra`
/// JSON saved with it.
pub fn load_checkpoint(dir: &Path, params: &mut Parameters) -> Result<(AdamW, serde_json::Value)> {
    let state_path = dir.join(STATE_FILE);
    let state: serde_json::Value = crate::weights::read_json(&state_path, "checkpoint state")?;
    let invalid = |message: String| ModelError::Config {
        path: state_path.clone(),
        what: "checkpoint state".into(),
        message,
    };
    if state.get("format").and_then(|f| f.as_str()) != Some(CHECKPOINT_FORMAT) {
        return Err(invalid(format!(
            "`format` is {:?}, expected \"{CHECKPOINT_FORMAT}\"",
            state.get("format")
        )));
    }
    let step = state
        .get("step")
        .and_then(|s| s.as_u64())
        .ok_or_else(|| invalid("no integer `step`".into()))?;
    if let Some(named) = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_step_dir)
    {
        if named as u64 != step {
            return Err(invalid(format!(
                "`step` is {step}, but the folder is named for step {named}"
            )));
        }
    }
    let optimizer = AdamW::load(dir.join(OPTIMIZER_FILE))?;
    optimizer
        .validate_against(params)
        .map_err(|e| ModelError::Invalid(format!("{}: {e}", dir.join(OPTIMIZER_FILE).display())))?;
    params.load_safetensors(dir.join(PARAMS_FILE))?;
    let extra = state
        .get("extra")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    Ok((optimizer, extra))
}

/// Losses logged so far in a stage's checkpoint (`extra.losses`).
pub fn logged_losses(extra: &serde_json::Value) -> Vec<f64> {
    extra
        .get("losses")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default()
}

/// One training run (or stage) that resumes: its parameters, AdamW, the losses so far and its
/// checkpoints (`work/<name>/step-*`), with the warm-up + cosine schedule of [`learning_rate`]
/// and gradients clipped to norm 1.
pub struct ResumableRun {
    /// The stage folder, `work/<name>`, holding its checkpoints.
    pub work: PathBuf,
    /// The trained parameters.
    pub params: Parameters,
    /// The optimiser and its state.
    pub optimizer: AdamW,
    /// The loss of every step so far.
    pub losses: Vec<f64>,
    /// First step still to run (the checkpoint's step after a resume).
    pub start: usize,
    /// The learning rate after warm-up.
    pub peak_lr: f64,
    /// The number of steps of the stage.
    pub total: usize,
    /// Steps between checkpoints (the last step always saves one).
    pub checkpoint_every: usize,
}

impl ResumableRun {
    /// Starts the stage, or resumes it from the newest checkpoint in `work/name` and notes
    /// that in `resumed_from`. `schedule` is (peak learning rate, steps, checkpoint every).
    pub fn resume(
        name: &str,
        work: &Path,
        mut params: Parameters,
        schedule: (f64, usize, usize),
        resumed_from: &mut Vec<(String, usize)>,
    ) -> Result<Self> {
        let (peak_lr, total, checkpoint_every) = schedule;
        let work = work.join(name);
        let (optimizer, losses, start) = match latest_checkpoint(&work)? {
            Some((step, dir)) => {
                let (optimizer, extra) = load_checkpoint(&dir, &mut params)?;
                resumed_from.push((name.to_string(), step));
                (optimizer, logged_losses(&extra), step)
            }
            None => (AdamW::with_defaults(peak_lr)?, Vec::new(), 0),
        };
        Ok(ResumableRun {
            work,
            params,
            optimizer,
            losses,
            start,
            peak_lr,
            total,
            checkpoint_every,
        })
    }

    /// Step `step` (0-based) on `loss`: backward, gradients clipped to norm 1, AdamW at the
    /// scheduled learning rate, and a checkpoint when one is due. Returns the loss.
    // `usize::is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
    #[allow(clippy::manual_is_multiple_of)]
    pub fn step(&mut self, loss: &Tensor, step: usize) -> Result<f64> {
        let value = loss.to_scalar::<f32>()? as f64;
        self.step_with_grads(value, loss.backward()?, step)
    }

    /// [`ResumableRun::step`] for gradients computed elsewhere (the training tape): `value` is
    /// the step's loss, `grads` holds the gradient of every parameter, keyed by the
    /// parameters' tensors. Clips, updates, records and checkpoints as `step` does.
    pub fn step_with_grads(
        &mut self,
        value: f64,
        mut grads: candle_core::backprop::GradStore,
        step: usize,
    ) -> Result<f64> {
        clip_grad_norm(&mut grads, &self.params, 1.0)?;
        self.optimizer
            .set_lr(learning_rate(self.peak_lr, step, self.total));
        self.optimizer.step(&self.params, &grads)?;
        self.losses.push(value);
        if (step + 1) % self.checkpoint_every == 0 || step + 1 == self.total {
            save_checkpoint(
                &self.work,
                step + 1,
                &self.params,
                &self.optimizer,
                &serde_json::json!({"losses": self.losses}),
            )?;
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_names() {
        assert_eq!(parse_step_dir("step-12"), Some(12));
        assert_eq!(parse_step_dir("step-"), None);
        assert_eq!(parse_step_dir("step-1a"), None);
        assert_eq!(parse_step_dir("step--1"), None);
        assert_eq!(parse_step_dir(".step-3.staging-1-2"), None);
        assert_eq!(parse_step_dir("step-3.partial"), None);
        assert_eq!(parse_step_dir("step-3.old"), None);
        assert_eq!(step_dir_name(7), "step-7");
    }
}
