//! Losses.

use candle_core::Tensor;

use crate::error::Result;

/// Cross-entropy of each row of `logits` [B, B] against its diagonal entry, averaged.
fn diagonal_cross_entropy(logits: &Tensor) -> Result<Tensor> {
    let b = logits.dim(0)?;
    let max = logits.max_keepdim(1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let log_sum = shifted.exp()?.sum_keepdim(1)?.log()?;
    let eye = Tensor::eye(b, logits.dtype(), logits.device())?;
    let target = (shifted * eye)?.sum_keepdim(1)?;
    Ok((log_sum - target)?.mean_all()?)
}

/// CLIP's symmetric InfoNCE of B matched pairs (row i of each [B, B] logit matrix is pair i,
/// one matrix per direction): `½·[CE(logits_a) + CE(logits_b)]` with the diagonal as the target.
pub fn symmetric_info_nce(logits_a: &Tensor, logits_b: &Tensor) -> Result<Tensor> {
    let a = diagonal_cross_entropy(logits_a)?;
    let b = diagonal_cross_entropy(logits_b)?;
    Ok(((a + b)? * 0.5)?)
}
