//! HTSAT's input side, as transformers names it under `audio_model.audio_encoder`:
//! the mel batch norm (`batch_norm`, inference statistics), the patch embedding
//! (`patch_embed.{proj, norm}`) and, in the fused model, the local-crop convolution
//! (`patch_embed.mel_conv2d`) with the attentional feature fusion block
//! (`patch_embed.fusion_model.{local_att, global_att}`).
//!
//! Everything is built from differentiable tensor ops (the project's convolution, elementwise
//! arithmetic), so the modules can be trained; batch norms use their running statistics (as
//! in `model.eval()`).

use brainrecon_nn::conv::conv2d_rect;
use brainrecon_nn::layers::{self, LayerNorm};
use brainrecon_nn::{channel, ModelError, Result};
use candle_core::{Tensor, D};
use candle_nn::VarBuilder;

use super::config::ClapAudioConfig;

/// `nn.Conv2d` with rectangular kernel, stride and padding: `weight` [O, C, kh, kw], `bias`.
#[derive(Clone, Debug)]
pub struct Conv2dRect {
    /// [O, C, kh, kw].
    pub weight: Tensor,
    /// `[O]`.
    pub bias: Tensor,
    /// (rows, columns).
    pub stride: (usize, usize),
    /// Zeros added on each side (rows, columns).
    pub padding: (usize, usize),
}

impl Conv2dRect {
    /// Loads `weight` and `bias` under `vb` for the given channels (in, out) and kernel
    /// (rows, columns). Errors: a weight missing or of the wrong shape.
    pub fn new(
        vb: VarBuilder,
        (in_channels, out_channels): (usize, usize),
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Self> {
        Ok(Conv2dRect {
            weight: layers::weight(
                &vb,
                (out_channels, in_channels, kernel.0, kernel.1),
                "weight",
            )?,
            bias: layers::weight(&vb, out_channels, "bias")?,
            stride,
            padding,
        })
    }

    /// [B, C, H, W] → [B, O, H', W'].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = conv2d_rect(x, &self.weight, self.padding, self.stride)?;
        Ok(channel::channel_affine(&y, None, Some(&self.bias))?)
    }
}

/// `nn.BatchNorm2d` with its running statistics (`weight`, `bias`, `running_mean`,
/// `running_var`; eps 1e-5): `x · α + β`, `α = weight / √(var + eps)`,
/// `β = bias − mean · α`, as PyTorch's CPU kernel computes it.
#[derive(Clone, Debug)]
pub struct BatchNorm2d {
    /// `[C]`: the scale γ.
    pub weight: Tensor,
    /// `[C]`: the shift β.
    pub bias: Tensor,
    /// `[C]`: the running mean.
    pub running_mean: Tensor,
    /// `[C]`: the running variance.
    pub running_var: Tensor,
    /// Added to the variance (1e-5).
    pub eps: f64,
}

impl BatchNorm2d {
    /// Loads the four `[channels]` tensors under `vb`. Errors: a weight missing or of the wrong
    /// shape.
    pub fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        Ok(BatchNorm2d {
            weight: layers::weight(&vb, channels, "weight")?,
            bias: layers::weight(&vb, channels, "bias")?,
            running_mean: layers::weight(&vb, channels, "running_mean")?,
            running_var: layers::weight(&vb, channels, "running_var")?,
            eps: 1e-5,
        })
    }

    /// Normalises the channels laid along `shape` (the broadcast shape of the statistics,
    /// e.g. [1, C, 1, 1] for [B, C, H, W]).
    pub fn forward_along(&self, x: &Tensor, shape: &[usize]) -> Result<Tensor> {
        let alpha = (&self.weight / (&self.running_var + self.eps)?.sqrt()?)?;
        let beta = (&self.bias - (&self.running_mean * &alpha)?)?;
        Ok(x.broadcast_mul(&alpha.reshape(shape)?)?
            .broadcast_add(&beta.reshape(shape)?)?)
    }

    /// [B, C, H, W].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_along(x, &[1, x.dim(1)?, 1, 1])
    }
}

/// `1 / (1 + exp(−x))` from differentiable ops.
fn sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok((x.neg()?.exp()? + 1.0)?.recip()?)
}

/// A `Sequential` of conv → batch norm → ReLU → conv → batch norm (1×1 convolutions).
#[derive(Clone, Debug)]
pub struct AttentionBranch {
    /// 1×1 convolution, C → inter.
    pub conv1: Conv2dRect,
    /// Batch norm over inter channels.
    pub bn1: BatchNorm2d,
    /// 1×1 convolution, inter → C.
    pub conv2: Conv2dRect,
    /// Batch norm over C channels.
    pub bn2: BatchNorm2d,
}

impl AttentionBranch {
    /// `first` is the index of the first convolution in the `Sequential` (0 for `local_att`,
    /// 1 for `global_att`, which starts with the pooling).
    fn new(vb: VarBuilder, channels: usize, inter: usize, first: usize) -> Result<Self> {
        let one = (1, 1);
        let zero = (0, 0);
        Ok(AttentionBranch {
            conv1: Conv2dRect::new(vb.pp(first), (channels, inter), one, one, zero)?,
            bn1: BatchNorm2d::new(vb.pp(first + 1), inter)?,
            conv2: Conv2dRect::new(vb.pp(first + 3), (inter, channels), one, one, zero)?,
            bn2: BatchNorm2d::new(vb.pp(first + 4), channels)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.bn1.forward(&self.conv1.forward(x)?)?.relu()?;
        self.bn2.forward(&self.conv2.forward(&h)?)
    }
}

/// `fusion_model`: attentional feature fusion (2-D) of the global patches and the local crops.
#[derive(Clone, Debug)]
pub struct ClapAudioAffBlock {
    /// `local_att`: the per-position branch.
    pub local_att: AttentionBranch,
    /// `global_att`: the branch on the spatially averaged input.
    pub global_att: AttentionBranch,
}

impl ClapAudioAffBlock {
    /// Loads `fusion_model` under `vb` (`patch_embeds_hidden_size` channels reduced by
    /// `aff_block_r`). Errors: no channels left after the reduction, a weight missing or of the
    /// wrong shape.
    pub fn new(vb: VarBuilder, c: &ClapAudioConfig) -> Result<Self> {
        let channels = c.patch_embeds_hidden_size;
        let inter = channels / c.aff_block_r;
        if inter == 0 {
            return Err(ModelError::Invalid(format!(
                "aff_block_r {} leaves no channels of {channels}",
                c.aff_block_r
            )));
        }
        Ok(ClapAudioAffBlock {
            local_att: AttentionBranch::new(vb.pp("local_att"), channels, inter, 0)?,
            global_att: AttentionBranch::new(vb.pp("global_att"), channels, inter, 1)?,
        })
    }

    /// `x`, `residual` [b, D, h, w] → `2·x·w + 2·residual·(1 − w)`,
    /// `w = σ(local(x + residual) + global(x + residual))`.
    pub fn forward(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        let input = (x + residual)?;
        let pooled = input.mean_keepdim(D::Minus1)?.mean_keepdim(D::Minus2)?;
        let local = self.local_att.forward(&input)?;
        let global = self.global_att.forward(&pooled)?;
        let w = sigmoid(&local.broadcast_add(&global)?)?;
        let keep = ((x * &w)? * 2.0)?;
        let rest = ((residual * (w.ones_like()? - &w)?)? * 2.0)?;
        Ok((keep + rest)?)
    }
}

/// `patch_embed`: the patch projection (and, fused, the local crops and their fusion), then
/// flattened to tokens and layer-normalised.
#[derive(Clone, Debug)]
pub struct ClapAudioPatchEmbed {
    /// `proj`: the patch projection, `patch_embed_input_channels` → `patch_embeds_hidden_size`.
    pub proj: Conv2dRect,
    /// `norm` (PyTorch's default eps 1e-5), when `enable_patch_layer_norm`.
    pub norm: Option<LayerNorm>,
    /// `mel_conv2d` and `fusion_model`, when `enable_fusion`.
    pub fusion: Option<(Conv2dRect, ClapAudioAffBlock)>,
    /// The input size (height, width) the projection expects.
    pub img_size: (usize, usize),
    /// Channels of the input (`patch_embed_input_channels`).
    pub input_channels: usize,
}

impl ClapAudioPatchEmbed {
    /// Loads `patch_embed` under `vb`. Errors: a weight missing or of the wrong shape.
    pub fn new(vb: VarBuilder, c: &ClapAudioConfig) -> Result<Self> {
        let (p, s) = (c.patch_size, c.patch_stride);
        let padding = ((p.0 - s.0) / 2, (p.1 - s.1) / 2);
        let d = c.patch_embeds_hidden_size;
        let channels = c.patch_embed_input_channels;
        let proj = Conv2dRect::new(vb.pp("proj"), (channels, d), p, s, padding)?;
        let norm = if c.enable_patch_layer_norm {
            Some(LayerNorm::new(vb.pp("norm"), d, 1e-5, true)?)
        } else {
            None
        };
        let fusion = if c.enable_fusion {
            let mel_conv2d = Conv2dRect::new(
                vb.pp("mel_conv2d"),
                (channels, d),
                (p.0, p.1 * 3),
                (s.0, s.1 * 3),
                padding,
            )?;
            Some((
                mel_conv2d,
                ClapAudioAffBlock::new(vb.pp("fusion_model"), c)?,
            ))
        } else {
            None
        };
        Ok(ClapAudioPatchEmbed {
            proj,
            norm,
            fusion,
            img_size: (c.spec_size, c.spec_size),
            input_channels: channels,
        })
    }

    /// `x` [B, C, H, W] (fused: C = 4, the whole and the three crops) → tokens [B, h·w, D].
    /// `is_longer` flags the clips whose crops are fused (fused model only).
    pub fn forward(&self, x: &Tensor, is_longer: &[bool]) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        if (h, w) != self.img_size {
            return Err(ModelError::Invalid(format!(
                "input audio size ({h}*{w}) doesn't match the model ({}*{})",
                self.img_size.0, self.img_size.1
            )));
        }
        let y = match &self.fusion {
            None => {
                if c != self.input_channels {
                    return Err(ModelError::Invalid(format!(
                        "the unfused audio tower takes {} channel(s) of mel features, given {c} \
                         (extract with truncation \"rand_trunc\")",
                        self.input_channels
                    )));
                }
                self.proj.forward(x)?
            }
            Some((mel_conv2d, aff)) => {
                if c != 4 || self.input_channels != 1 {
                    return Err(ModelError::Invalid(format!(
                        "the fused audio tower takes 4 channels of mel features (extract with \
                         truncation \"fusion\"), given {c}"
                    )));
                }
                if is_longer.len() != b {
                    return Err(ModelError::Invalid(format!(
                        "is_longer has {} entries for a batch of {b}",
                        is_longer.len()
                    )));
                }
                self.fused(x, is_longer, mel_conv2d, aff)?
            }
        };
        let tokens = y.flatten_from(2)?.transpose(1, 2)?;
        Ok(match &self.norm {
            Some(n) => n.forward(&tokens)?,
            None => tokens,
        })
    }

    /// The global patches, with the clips flagged as longer fused with their local crops.
    fn fused(
        &self,
        x: &Tensor,
        is_longer: &[bool],
        mel_conv2d: &Conv2dRect,
        aff: &ClapAudioAffBlock,
    ) -> Result<Tensor> {
        let global = self.proj.forward(&x.narrow(1, 0, 1)?)?;
        let longer: Vec<u32> = (0..is_longer.len() as u32)
            .filter(|&i| is_longer[i as usize])
            .collect();
        if longer.is_empty() {
            return Ok(global);
        }
        let (_, _, h, w) = x.dims4()?;
        let out_width = global.dim(3)?;
        let idx = Tensor::new(longer.as_slice(), x.device())?;
        let n = longer.len();
        let local = x.index_select(&idx, 0)?.narrow(1, 1, 3)?;
        let local = mel_conv2d.forward(&local.reshape((n * 3, 1, h, w))?)?;
        let (_, d, lh, lw) = local.dims4()?;
        // [n, 3, D, h, w] → [n, D, h, 3, w] → [n, D, h, 3·w], padded (or cut) to the width
        let local = local
            .reshape((n, 3, d, lh, lw))?
            .permute((0, 2, 3, 1, 4))?
            .reshape((n, d, lh, 3 * lw))?;
        let local = if 3 * lw < out_width {
            local.pad_with_zeros(3, 0, out_width - 3 * lw)?
        } else {
            local.narrow(3, 0, out_width)?
        };
        let fused = aff.forward(&global.index_select(&idx, 0)?, &local)?;
        let mut rows = Vec::with_capacity(is_longer.len());
        let mut k = 0;
        for (i, &l) in is_longer.iter().enumerate() {
            if l {
                rows.push(fused.narrow(0, k, 1)?);
                k += 1;
            } else {
                rows.push(global.narrow(0, i, 1)?);
            }
        }
        Ok(Tensor::cat(&rows, 0)?)
    }
}
