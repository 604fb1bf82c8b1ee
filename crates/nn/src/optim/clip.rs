//! Gradient clipping by global norm.

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Storage, Tensor};

use crate::error::{ModelError, Result};
use crate::params::Parameters;

/// `torch.nn.utils.clip_grad_norm_(params, max_norm)`: the 2-norm of all gradients of
/// `params` together (parameters without a gradient are ignored); when
/// `max_norm / (norm + 1e-6)` is below 1 every gradient is multiplied by it, in place in
/// `grads`. Returns the norm before clipping. A non-finite norm is returned without touching
/// the gradients (torch would scale them by NaN): the caller should skip that step.
pub fn clip_grad_norm(grads: &mut GradStore, params: &Parameters, max_norm: f64) -> Result<f64> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(ModelError::Invalid(format!(
            "clip_grad_norm: max_norm must be a positive number, got {max_norm}"
        )));
    }
    let mut sum_sq = 0f64;
    for var in params.vars.values() {
        if let Some(g) = grads.get(var.as_tensor()) {
            sum_sq += sum_of_squares(g)?;
        }
    }
    let total = sum_sq.sqrt();
    if !total.is_finite() {
        return Ok(total);
    }
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        for var in params.vars.values() {
            if let Some(g) = grads.get(var.as_tensor()) {
                let scaled = (g.detach() * coef)?;
                grads.insert(var.as_tensor(), scaled);
            }
        }
    }
    Ok(total)
}

/// `Σ g²` in f64: read in place for a contiguous f32 CPU tensor (one pass, no copies; each
/// term exact in f64, summed in order), by tensor ops otherwise.
fn sum_of_squares(g: &Tensor) -> Result<f64> {
    if g.dtype() == DType::F32 && g.device().is_cpu() {
        let (storage, layout) = g.storage_and_layout();
        if let (Storage::Cpu(CpuStorage::F32(values)), Some((start, end))) =
            (&*storage, layout.contiguous_offsets())
        {
            return Ok(values[start..end]
                .iter()
                .map(|&x| x as f64 * x as f64)
                .sum());
        }
    }
    Ok(g.detach()
        .to_dtype(DType::F64)?
        .sqr()?
        .sum_all()?
        .to_scalar::<f64>()?)
}
