//! `Linear`: `y = x Wᵀ + b`.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use crate::error::{ModelError, Result};
use crate::kernels::fused;
use crate::kernels::linear::InferenceLinearF32;

/// `y = x W^T + b`, parameters `weight` `[out, in]` and optional `bias` `[out]`.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[out, in]`.
    pub weight: Tensor,
    /// `[out]`.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// Loads `weight` (and `bias` when `bias`) from `vb`.
    pub fn new(vb: VarBuilder, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        let weight = super::weight(&vb, (out_dim, in_dim), "weight")?;
        let bias = if bias {
            Some(super::weight(&vb, out_dim, "bias")?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    /// A layer over tensors already at hand.
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// `x` has shape [..., in]; returns [..., out].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let in_dim = *dims.last().ok_or(ModelError::InvalidInput {
            name: "linear input",
            msg: "scalar input".into(),
        })?;
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let (out_dim, w_in) = self.weight.dims2()?;
        if w_in != in_dim {
            return Err(ModelError::InvalidInput {
                name: "linear input",
                msg: format!("last dim {in_dim}, weight expects {w_in}"),
            });
        }
        let x2 = x.reshape((rows, in_dim))?;
        let y = if InferenceLinearF32::applies(&x2, &self.weight) {
            x2.contiguous()?
                .apply_op2_no_bwd(&self.weight.contiguous()?, &InferenceLinearF32)?
        } else {
            x2.matmul(&self.weight.t()?)?
        };
        let y = match &self.bias {
            Some(b) if fused(&y, &[b]) => fused_channel_affine(&y, None, Some(b))?,
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = dims;
        *out_dims.last_mut().unwrap() = out_dim;
        Ok(y.reshape(out_dims)?)
    }
}

#[cfg(feature = "cuda")]
fn fused_channel_affine(
    x: &Tensor,
    scale: Option<&Tensor>,
    shift: Option<&Tensor>,
) -> Result<Tensor> {
    Ok(crate::cuda::channel_affine(x, scale, shift)?)
}

#[cfg(not(feature = "cuda"))]
fn fused_channel_affine(_: &Tensor, _: Option<&Tensor>, _: Option<&Tensor>) -> Result<Tensor> {
    unreachable!("fused kernels exist only in CUDA builds")
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        Linear::forward(self, xs).map_err(|e| match e {
            ModelError::Candle(c) | ModelError::Tensor(c) => c,
            other => candle_core::Error::Msg(other.to_string()),
        })
    }
}
