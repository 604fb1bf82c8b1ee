//! The layers the metric networks share, inference only: convolution (any kernel, padding and
//! stride per axis; depthwise), batch norm with running statistics, pooling as torch pools.

use brainrecon_nn::channel::channel_affine;
use brainrecon_nn::conv::conv2d_rect;
use brainrecon_nn::layers::weight;
use brainrecon_nn::Result;
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor, D};
use candle_nn::VarBuilder;
use rayon::prelude::*;

/// torch's `nn.Conv2d`: `weight` `[O, C/groups, kh, kw]`, optional `bias` `[O]`. Groups are 1 or
/// the channel count (depthwise), the two kinds these networks use.
#[derive(Debug, Clone)]
pub struct Conv {
    /// [O, C/groups, kh, kw].
    pub weight: Tensor,
    /// `[O]`, when the convolution has a bias.
    pub bias: Option<Tensor>,
    /// Zero padding (rows, columns) on each side.
    pub padding: (usize, usize),
    /// Stride (rows, columns).
    pub stride: (usize, usize),
    /// One group per channel (C = O, weight [O, 1, kh, kw]) instead of one group.
    pub depthwise: bool,
}

/// How a convolution is shaped: in and out channels, kernel, stride, padding, bias, depthwise.
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    /// C: input channels.
    pub in_channels: usize,
    /// O: output channels.
    pub out_channels: usize,
    /// Kernel (height, width).
    pub kernel: (usize, usize),
    /// Stride (rows, columns).
    pub stride: (usize, usize),
    /// Zero padding (rows, columns) on each side.
    pub padding: (usize, usize),
    /// Whether the convolution has a `bias` tensor.
    pub bias: bool,
    /// One group per channel (in = out channels).
    pub depthwise: bool,
}

impl ConvSpec {
    /// A square `k`×`k` convolution with the same `stride` and `padding` on both axes, no bias,
    /// not depthwise.
    pub fn square(
        in_channels: usize,
        out_channels: usize,
        k: usize,
        stride: usize,
        padding: usize,
    ) -> Self {
        ConvSpec {
            in_channels,
            out_channels,
            kernel: (k, k),
            stride: (stride, stride),
            padding: (padding, padding),
            bias: false,
            depthwise: false,
        }
    }

    /// The same convolution with a `bias` tensor.
    pub fn with_bias(mut self) -> Self {
        self.bias = true;
        self
    }
}

impl Conv {
    /// Reads `weight` (and `bias` when `spec.bias`) under `vb`; errors on a tensor `vb` lacks or
    /// misshapes.
    pub fn new(vb: VarBuilder, spec: ConvSpec) -> Result<Self> {
        let per_group = if spec.depthwise { 1 } else { spec.in_channels };
        let shape = (spec.out_channels, per_group, spec.kernel.0, spec.kernel.1);
        Ok(Conv {
            weight: weight(&vb, shape, "weight")?,
            bias: match spec.bias {
                true => Some(weight(&vb, spec.out_channels, "bias")?),
                false => None,
            },
            padding: spec.padding,
            stride: spec.stride,
            depthwise: spec.depthwise,
        })
    }

    /// `x` [B, C, H, W] → [B, O, Ho, Wo].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = if self.depthwise {
            depthwise_conv2d(x, &self.weight, self.padding, self.stride)?
        } else {
            conv2d_rect(x, &self.weight, self.padding, self.stride)?
        };
        Ok(match &self.bias {
            Some(b) => channel_affine(&y, None, Some(b))?,
            None => y,
        })
    }
}

/// torch's `nn.BatchNorm2d` in eval mode, folded into a per-channel scale and shift:
/// `(x − running_mean) / √(running_var + eps) · weight + bias`.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    /// `[C]`: `weight / √(running_var + eps)`.
    pub scale: Tensor,
    /// `[C]`: `bias − running_mean · scale`.
    pub shift: Tensor,
}

impl BatchNorm {
    /// Reads `weight`, `bias`, `running_mean` and `running_var` (`[C]` each) under `vb` and folds
    /// them with `eps`.
    pub fn new(vb: VarBuilder, channels: usize, eps: f64) -> Result<Self> {
        let w = weight(&vb, channels, "weight")?;
        let b = weight(&vb, channels, "bias")?;
        let mean = weight(&vb, channels, "running_mean")?;
        let var = weight(&vb, channels, "running_var")?;
        let scale = (w / (var + eps)?.sqrt()?)?;
        let shift = (b - (&mean * &scale)?)?;
        Ok(BatchNorm { scale, shift })
    }

    /// `x` [B, C, H, W] → `x · scale + shift` per channel, same shape.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(channel_affine(x, Some(&self.scale), Some(&self.shift))?)
    }
}

/// Max pooling as torch's `max_pool2d(k, stride, padding)` (padding never wins the maximum).
pub fn max_pool(x: &Tensor, k: usize, stride: usize, padding: usize) -> Result<Tensor> {
    if padding == 0 {
        return Ok(x.max_pool2d_with_stride((k, k), (stride, stride))?);
    }
    // pad with a value below every input, so that it never wins
    let floor = (x
        .min_all()?
        .to_dtype(candle_core::DType::F64)?
        .to_scalar::<f64>()?
        - 1.0) as f32;
    let shifted = (x - floor as f64)?;
    let padded = shifted
        .pad_with_zeros(D::Minus1, padding, padding)?
        .pad_with_zeros(D::Minus2, padding, padding)?;
    Ok((padded.max_pool2d_with_stride((k, k), (stride, stride))? + floor as f64)?)
}

/// torch's `avg_pool2d(k, stride, padding)` with `count_include_pad=True` (the default): the
/// padding counts as zeros in every window.
pub fn avg_pool(x: &Tensor, k: usize, stride: usize, padding: usize) -> Result<Tensor> {
    let padded = x
        .pad_with_zeros(D::Minus1, padding, padding)?
        .pad_with_zeros(D::Minus2, padding, padding)?;
    Ok(padded.avg_pool2d_with_stride((k, k), (stride, stride))?)
}

/// `AdaptiveAvgPool2d(1)` flattened: [B, C, H, W] → [B, C].
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    Ok(x.mean(D::Minus1)?.mean(D::Minus1)?)
}

/// Depthwise convolution (groups = channels): `weight` [C, 1, kh, kw]. On the CPU in f32 a
/// direct loop per channel; elsewhere candle's grouped convolution (square padding only).
pub fn depthwise_conv2d(
    x: &Tensor,
    weight: &Tensor,
    padding: (usize, usize),
    stride: (usize, usize),
) -> Result<Tensor> {
    let f32_cpu = |t: &Tensor| t.device().is_cpu() && t.dtype() == candle_core::DType::F32;
    if f32_cpu(x) && f32_cpu(weight) {
        let op = Depthwise { padding, stride };
        return Ok(x
            .contiguous()?
            .apply_op2_no_bwd(&weight.contiguous()?, &op)?);
    }
    let channels = x.dim(1)?;
    Ok(x.conv2d(weight, padding.0, stride.0, 1, channels)?)
}

struct Depthwise {
    padding: (usize, usize),
    stride: (usize, usize),
}

impl CustomOp2 for Depthwise {
    fn name(&self) -> &'static str {
        "brainrecon-depthwise-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w) = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(w)) => (x, w),
            _ => candle_core::bail!("depthwise conv2d: f32 expected"),
        };
        let (Some((x0, x1)), Some((w0, w1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("depthwise conv2d: contiguous tensors expected");
        };
        let (x, w) = (&x[x0..x1], &w[w0..w1]);
        let (b, c, h, wd) = l1.shape().dims4()?;
        let (o, one, kh, kw) = l2.shape().dims4()?;
        let ((ph, pw), (sh, sw)) = (self.padding, self.stride);
        if o != c || one != 1 || h + 2 * ph < kh || wd + 2 * pw < kw {
            candle_core::bail!(
                "depthwise conv2d: input {:?} and weight {:?} do not fit",
                l1.dims(),
                l2.dims()
            );
        }
        let (ho, wo) = ((h + 2 * ph - kh) / sh + 1, (wd + 2 * pw - kw) / sw + 1);
        let mut out = vec![0f32; b * c * ho * wo];
        out.par_chunks_mut(ho * wo)
            .enumerate()
            .for_each(|(plane, y)| {
                let ch = plane % c;
                let src = &x[plane * h * wd..(plane + 1) * h * wd];
                let k = &w[ch * kh * kw..(ch + 1) * kh * kw];
                for oy in 0..ho {
                    let dst = &mut y[oy * wo..(oy + 1) * wo];
                    for ky in 0..kh {
                        let iy = (oy * sh + ky) as isize - ph as isize;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        let row = &src[iy as usize * wd..(iy as usize + 1) * wd];
                        for kx in 0..kw {
                            // output columns whose input column ox·sw + kx − pw is inside the row
                            let lo = pw.saturating_sub(kx).div_ceil(sw).min(wo);
                            let hi = match (wd + pw).checked_sub(kx + 1) {
                                Some(last) => (last / sw + 1).min(wo).max(lo),
                                None => lo,
                            };
                            let tap = k[ky * kw + kx];
                            let first = lo * sw + kx - pw;
                            if sw == 1 {
                                // contiguous: a loop the compiler vectorises
                                for (o, i) in dst[lo..hi].iter_mut().zip(&row[first..]) {
                                    *o += tap * i;
                                }
                            } else {
                                for (j, o) in dst[lo..hi].iter_mut().enumerate() {
                                    *o += tap * row[first + j * sw];
                                }
                            }
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((b, c, ho, wo))))
    }
}
