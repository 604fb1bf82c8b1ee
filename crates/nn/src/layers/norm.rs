//! Layer norm and group norm, differentiable, with fused inference paths.

use candle_core::{Tensor, Var, D};
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

/// Layer norm over the last dimension, parameters `weight` and `bias` `[dim]` when affine.
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

/// Group norm over `[B, C, *]` inputs, parameters `weight` and `bias` `[C]`.
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

/// Batch norm over [B, C, *] (torch's `BatchNorm1d/2d`, affine, with running statistics):
/// `weight`, `bias`, `running_mean`, `running_var` `[C]`.
///
/// In training ([`BatchNorm::forward_train`]) it normalises by the batch's own per-channel
/// mean and biased variance, differentiates through them, and moves the running statistics
/// by `momentum` (the variance unbiased, as torch does); in inference
/// ([`BatchNorm::forward_eval`]) it normalises by the running statistics. torch's
/// `num_batches_tracked` is not read (it matters only when `momentum` is None).
#[derive(Debug, Clone)]
pub struct BatchNorm {
    /// Scale `[C]`.
    pub weight: Tensor,
    /// Shift `[C]`.
    pub bias: Tensor,
    /// `[C]`; a variable when the model trains, so that training updates it in place.
    pub running_mean: Var,
    /// `[C]`, as `running_mean`.
    pub running_var: Var,
    /// Added to the variance.
    pub eps: f64,
    /// Weight of the new batch in the running statistics (torch's default 0.1).
    pub momentum: f64,
}

impl BatchNorm {
    /// Loads `weight`, `bias`, `running_mean` and `running_var` `[channels]` from `vb`.
    pub fn new(vb: VarBuilder, channels: usize, eps: f64, momentum: f64) -> Result<Self> {
        let weight = super::weight(&vb, channels, "weight")?;
        let bias = super::weight(&vb, channels, "bias")?;
        let running_mean = Var::from_tensor(&super::weight(&vb, channels, "running_mean")?)?;
        let running_var = Var::from_tensor(&super::weight(&vb, channels, "running_var")?)?;
        Ok(Self {
            weight,
            bias,
            running_mean,
            running_var,
            eps,
            momentum,
        })
    }

    fn check(&self, x: &Tensor) -> Result<()> {
        let c = self.weight.dim(0)?;
        match x.dims() {
            [_, dc, ..] if *dc == c && x.elem_count() > 0 => Ok(()),
            dims => Err(ModelError::InvalidInput {
                name: "batch norm input",
                msg: format!("shape {dims:?}, expected [B, {c}, ...] with B and the rest > 0"),
            }),
        }
    }

    /// Training: `elu(α)` (when `elu_alpha` is given) of `x` normalised by its own batch
    /// statistics; updates the running statistics. `x` [B, C, ...] → the same shape.
    pub fn forward_train(&self, x: &Tensor, elu_alpha: Option<f64>) -> Result<Tensor> {
        self.check(x)?;
        let (b, c, plane) =
            crate::kernels::batch_norm::batch_channels_plane(x.dims()).expect("checked rank");
        let (mean, var) = if cpu_f32(x, &[]) {
            let xc = x.detach().contiguous()?;
            let (storage, layout) = xc.storage_and_layout();
            let candle_core::Storage::Cpu(cpu) = &*storage else {
                unreachable!("checked CPU")
            };
            let values = crate::kernels::contiguous_f32(cpu, layout, "batch norm", "input")?;
            crate::kernels::batch_norm::channel_moments(values, (b, c, plane))
        } else {
            let x3 = x
                .detach()
                .reshape((b, c, plane))?
                .to_dtype(candle_core::DType::F64)?;
            let mean = x3.mean_keepdim(2)?.mean_keepdim(0)?;
            let var = x3
                .broadcast_sub(&mean)?
                .sqr()?
                .mean_keepdim(2)?
                .mean_keepdim(0)?;
            (
                mean.flatten_all()?.to_vec1::<f64>()?,
                var.flatten_all()?.to_vec1::<f64>()?,
            )
        };
        self.update_running(&mean, &var, b * plane)?;
        self.normalise(x, &mean, &var, true, elu_alpha)
    }

    /// Inference: `elu(α)` (when given) of `x` normalised by the running statistics.
    pub fn forward_eval(&self, x: &Tensor, elu_alpha: Option<f64>) -> Result<Tensor> {
        self.check(x)?;
        let read = |v: &Var| -> Result<Vec<f64>> {
            Ok(v.as_tensor()
                .to_dtype(candle_core::DType::F64)?
                .to_vec1::<f64>()?)
        };
        let (mean, var) = (read(&self.running_mean)?, read(&self.running_var)?);
        self.normalise(x, &mean, &var, false, elu_alpha)
    }

    /// `running ← (1 − m)·running + m·batch`, the variance made unbiased over `n` values (a
    /// batch's per-channel mean and biased variance `[C]`, over `n` values a channel; the
    /// training tape's batch norm hands them here). Errors when the lengths are not C.
    pub fn update_running(&self, mean: &[f64], var: &[f64], n: usize) -> Result<()> {
        let m = self.momentum;
        let unbias = if n > 1 {
            n as f64 / (n - 1) as f64
        } else {
            1.0
        };
        let mix = |running: &Var, batch: Vec<f64>| -> Result<()> {
            let t = running.as_tensor();
            let old = t.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?;
            let new: Vec<f64> = old
                .iter()
                .zip(batch)
                .map(|(o, v)| (1.0 - m) * o + m * v)
                .collect();
            let new = Tensor::from_vec(new, t.dims(), t.device())?.to_dtype(t.dtype())?;
            Ok(running.set(&new)?)
        };
        mix(&self.running_mean, mean.to_vec())?;
        mix(&self.running_var, var.iter().map(|v| v * unbias).collect())
    }

    fn normalise(
        &self,
        x: &Tensor,
        mean: &[f64],
        var: &[f64],
        batch_statistics: bool,
        elu_alpha: Option<f64>,
    ) -> Result<Tensor> {
        let rstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect();
        if cpu_f32(x, &[&self.weight, &self.bias]) {
            use crate::kernels::batch_norm::{BatchNormF32, NormActivation};
            let op = BatchNormF32 {
                mean: std::sync::Arc::new(mean.iter().map(|&v| v as f32).collect()),
                rstd: std::sync::Arc::new(rstd.iter().map(|&v| v as f32).collect()),
                batch_statistics,
                activation: match elu_alpha {
                    Some(a) => NormActivation::Elu(a as f32),
                    None => NormActivation::Identity,
                },
            };
            let (w, b) = (self.weight.contiguous()?, self.bias.contiguous()?);
            return Ok(x.contiguous()?.apply_op3(&w, &b, op)?);
        }
        // Elementary ops: with batch statistics, the mean and variance are recomputed on the
        // graph so that the gradient flows through them.
        let (b, c, plane) =
            crate::kernels::batch_norm::batch_channels_plane(x.dims()).expect("checked rank");
        let x3 = x.reshape((b, c, plane))?;
        let xhat = if batch_statistics {
            let mean = x3.mean_keepdim(2)?.mean_keepdim(0)?;
            let centred = x3.broadcast_sub(&mean)?;
            let var = centred.sqr()?.mean_keepdim(2)?.mean_keepdim(0)?;
            centred.broadcast_div(&(var + self.eps)?.sqrt()?)?
        } else {
            let stat = |v: &[f64]| -> Result<Tensor> {
                Ok(Tensor::from_vec(v.to_vec(), (1, c, 1), x.device())?.to_dtype(x.dtype())?)
            };
            x3.broadcast_sub(&stat(mean)?)?
                .broadcast_mul(&stat(&rstd)?)?
        };
        let y = crate::channel::channel_affine(&xhat, Some(&self.weight), Some(&self.bias))?
            .reshape(x.dims())?;
        Ok(match elu_alpha {
            Some(a) => y.elu(a)?,
            None => y,
        })
    }
}
