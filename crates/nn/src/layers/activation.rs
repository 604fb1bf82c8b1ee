//! Softmax and the activations (GELU, SiLU, quick GELU, GEGLU).

use candle_core::{DType, Tensor, D};
use candle_nn::VarBuilder;

use super::linear::Linear;
use super::upcast;
use crate::error::{ModelError, Result};
use crate::kernels::activation::FastActivationF32;
use crate::kernels::cpu_f32;
#[cfg(feature = "cuda")]
use crate::kernels::fused;
use crate::kernels::softmax::SoftmaxF32;

/// Numerically stable softmax over the last dimension, computed in f32 (f64 for f64 input)
/// and returned in the input dtype. Differentiable: f32 on the CPU takes the one-pass op with
/// its one-pass backward (`SoftmaxF32`); other tensors that track gradients are built from
/// elementary ops; otherwise (inference) candle's fused kernel, which has no backward pass,
/// computes the same values faster.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let dtype = x.dtype();
    let xf = upcast(x)?;
    #[cfg(feature = "cuda")]
    if fused(x, &[]) {
        return Ok(crate::cuda::softmax_last_dim(x, 1.0)?);
    }
    if xf.dtype() == DType::F32 && xf.device().is_cpu() {
        // records its backward pass only when `x` tracks gradients
        return Ok(xf.contiguous()?.apply_op1(SoftmaxF32)?.to_dtype(dtype)?);
    }
    if !x.track_op() {
        let y = candle_nn::ops::softmax_last_dim(&xf.contiguous()?)?;
        return Ok(y.to_dtype(dtype)?);
    }
    softmax_last_dim_differentiable(&xf)?
        .to_dtype(dtype)
        .map_err(ModelError::from)
}

/// The elementary-op softmax (always differentiable), in the input dtype.
pub fn softmax_last_dim_differentiable(x: &Tensor) -> Result<Tensor> {
    // Subtracting the (detached) row maximum changes nothing mathematically.
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    let s = e.sum_keepdim(D::Minus1)?;
    Ok(e.broadcast_div(&s)?)
}

/// Exact GELU, `x * Φ(x)` with the error function (torch `gelu(approximate="none")`).
/// f32 CPU tensors take `FastActivationF32` (one pass forward, one backward when tracked).
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    match FastActivationF32::applies(x) {
        true => Ok(x.contiguous()?.apply_op1(FastActivationF32::GeluErf)?),
        false => Ok(x.gelu_erf()?),
    }
}

/// Tanh-approximated GELU (torch `gelu(approximate="tanh")`, transformers `gelu_new`).
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    Ok(x.gelu()?)
}

/// OpenAI CLIP's `x * sigmoid(1.702 x)`.
pub fn quick_gelu(x: &Tensor) -> Result<Tensor> {
    // x * sigmoid(a x) = silu(a x) / a
    Ok(((x * 1.702)?.silu()? / 1.702)?)
}

/// `x * sigmoid(x)`. f32 CPU tensors take `FastActivationF32` (one pass forward, one
/// backward when tracked).
pub fn silu(x: &Tensor) -> Result<Tensor> {
    match FastActivationF32::applies(x) {
        true => Ok(x.contiguous()?.apply_op1(FastActivationF32::Silu)?),
        false => Ok(x.silu()?),
    }
}

/// GEGLU feed-forward input projection (diffusers): `proj` [2*out, in]; returns
/// `hidden * gelu(gate)` where `hidden, gate = proj(x).chunk(2, -1)`.
#[derive(Debug, Clone)]
pub struct GeGlu {
    /// The input projection, `[2·out, in]`.
    pub proj: Linear,
}

impl GeGlu {
    /// Loads `proj` from `vb`.
    pub fn new(vb: VarBuilder, dim_in: usize, dim_out: usize) -> Result<Self> {
        Ok(Self {
            proj: Linear::new(vb.pp("proj"), dim_in, dim_out * 2, true)?,
        })
    }

    /// `x` `[..., in]` → `[..., out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.gate(&self.proj.forward(x)?)
    }

    /// `hidden * gelu(gate)` of the projection `h` [..., 2·out] → [..., out].
    pub fn gate(&self, h: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if fused(h, &[]) {
            return Ok(crate::cuda::geglu(h)?);
        }
        if cpu_f32(h, &[]) {
            return Ok(h.contiguous()?.apply_op1(crate::kernels::norm::GegluF32)?);
        }
        let half = h.dim(D::Minus1)? / 2;
        let hidden = h.narrow(D::Minus1, 0, half)?;
        let gate = h.narrow(D::Minus1, half, half)?;
        Ok((hidden * gelu(&gate)?)?)
    }
}
