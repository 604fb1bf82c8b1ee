//! Layer norm and group norm, differentiable, with fused inference paths.

use candle_core::{Tensor, D};
use candle_nn::VarBuilder;

use super::activation::silu;
use super::upcast;
use crate::error::{ModelError, Result};
use crate::kernels::cpu_f32;
#[cfg(feature = "cuda")]
use crate::kernels::fused;

/// Normalises over the last dimension: `(x - mean) / sqrt(var + eps)`, biased variance,
/// computed in f32 (or f64 for f64 inputs), returned in the input dtype.
pub fn normalize_last_dim(x: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let xf = upcast(x)?;
    let mean = xf.mean_keepdim(D::Minus1)?;
    let centered = xf.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    let y = centered.broadcast_div(&(var + eps)?.sqrt()?)?;
    Ok(y.to_dtype(dtype)?)
}

/// Layer norm over the last dimension, parameters `weight` and `bias` [dim] when affine.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    /// Scale `[dim]`, when affine.
    pub weight: Option<Tensor>,
    /// Shift `[dim]`, when affine.
    pub bias: Option<Tensor>,
    /// Added to the variance.
    pub eps: f64,
}

impl LayerNorm {
    /// Loads `weight` and `bias` from `vb` when `affine`.
    pub fn new(vb: VarBuilder, dim: usize, eps: f64, affine: bool) -> Result<Self> {
        let (weight, bias) = if affine {
            (
                Some(super::weight(&vb, dim, "weight")?),
                Some(super::weight(&vb, dim, "bias")?),
            )
        } else {
            (None, None)
        };
        Ok(Self { weight, bias, eps })
    }

    /// `x` `[..., dim]` → the same shape.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        {
            let parameters: Vec<&Tensor> = self.weight.iter().chain(&self.bias).collect();
            if fused(x, &parameters) {
                return Ok(crate::cuda::layer_norm(
                    x,
                    self.weight.as_ref(),
                    self.bias.as_ref(),
                    self.eps,
                )?);
            }
        }
        if let (Some(w), Some(b)) = (&self.weight, &self.bias) {
            if cpu_f32(x, &[w, b]) {
                // One pass forward, one backward when tracked.
                let op = crate::kernels::norm::LayerNormF32 { eps: self.eps };
                return Ok(x
                    .contiguous()?
                    .apply_op3(&w.contiguous()?, &b.contiguous()?, op)?);
            }
        }
        let y = normalize_last_dim(x, self.eps)?;
        let y = match &self.weight {
            Some(w) => y.broadcast_mul(w)?,
            None => y,
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

/// Group norm over [B, C, *] inputs, parameters `weight` and `bias` [C].
#[derive(Debug, Clone)]
pub struct GroupNorm {
    /// Scale `[C]`.
    pub weight: Tensor,
    /// Shift `[C]`.
    pub bias: Tensor,
    /// Groups the channels are split into.
    pub num_groups: usize,
    /// Added to the variance.
    pub eps: f64,
}

impl GroupNorm {
    // `usize::is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
    #[allow(clippy::manual_is_multiple_of)]
    /// Loads `weight` and `bias` `[channels]` from `vb`; `channels` must split into `num_groups`.
    pub fn new(vb: VarBuilder, num_groups: usize, channels: usize, eps: f64) -> Result<Self> {
        if num_groups == 0 || channels % num_groups != 0 {
            return Err(ModelError::InvalidConfig(format!(
                "group norm `{}`: {channels} channels are not divisible into {num_groups} groups",
                vb.prefix()
            )));
        }
        let weight = super::weight(&vb, channels, "weight")?;
        let bias = super::weight(&vb, channels, "bias")?;
        Ok(Self {
            weight,
            bias,
            num_groups,
            eps,
        })
    }

    /// `x` `[B, C, ...]` → the same shape.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        if dims.len() < 2 || dims[1] != self.weight.dim(0)? {
            return Err(ModelError::InvalidInput {
                name: "group norm input",
                msg: format!("shape {dims:?}, expected [B, {}, ...]", self.weight.dim(0)?),
            });
        }
        #[cfg(feature = "cuda")]
        if fused(x, &[&self.weight, &self.bias]) {
            return Ok(crate::cuda::group_norm(
                x,
                &self.weight,
                &self.bias,
                self.num_groups,
                self.eps,
                false,
            )?);
        }
        if cpu_f32(x, &[&self.weight, &self.bias]) {
            return self.forward_cpu_f32(x, false);
        }
        let grouped = x.reshape((dims[0], self.num_groups, ()))?;
        let y = normalize_last_dim(&grouped, self.eps)?.reshape(dims.as_slice())?;
        Ok(crate::channel::channel_affine(
            &y,
            Some(&self.weight),
            Some(&self.bias),
        )?)
    }

    /// `silu(self.forward(x))`, one pass on a GPU.
    pub fn forward_silu(&self, x: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if fused(x, &[&self.weight, &self.bias])
            && x.rank() >= 2
            && x.dim(1)? == self.weight.dim(0)?
        {
            return Ok(crate::cuda::group_norm(
                x,
                &self.weight,
                &self.bias,
                self.num_groups,
                self.eps,
                true,
            )?);
        }
        if cpu_f32(x, &[&self.weight, &self.bias]) {
            return self.forward_cpu_f32(x, true);
        }
        silu(&self.forward(x)?)
    }

    /// One pass per group on the CPU, with SiLU fused when `silu`; one backward pass when
    /// tracked.
    fn forward_cpu_f32(&self, x: &Tensor, silu: bool) -> Result<Tensor> {
        let op = crate::kernels::norm::GroupNormF32 {
            groups: self.num_groups,
            eps: self.eps,
            silu,
        };
        let (w, b) = (self.weight.contiguous()?, self.bias.contiguous()?);
        Ok(x.contiguous()?.apply_op3(&w, &b, op)?)
    }
}
