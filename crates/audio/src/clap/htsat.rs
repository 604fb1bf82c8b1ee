//! HTSAT, CLAP's audio tower, as transformers' `ClapAudioEncoder` computes it (parameter names
//! under `audio_model.audio_encoder`): the mel batch norm, the spectrogram folded into a square
//! image (`reshape_mel2img`, with bicubic resizing of the time axis), the patch embedding
//! ([`super::patch_embed`]), Swin stages (`layers.{i}`) of window attention with a learned
//! relative position bias, every second block on windows shifted by half a window (with the
//! mask that keeps the wrapped-around regions apart), patch merging between stages, a final
//! layer norm and the mean over all tokens (transformers' regrouping before its average pool
//! only permutes the tokens).
//!
//! Differentiable throughout: softmax and layer norms are the project's (`brainrecon_nn::layers`),
//! windows are reshapes, rolls and zero pads, the relative bias an `index_select`.

use brainrecon_language::blip::Activation;
use brainrecon_nn::layers::{self, LayerNorm, Linear};
use brainrecon_nn::{ModelError, Result};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;

use super::config::ClapAudioConfig;
use super::patch_embed::{BatchNorm2d, ClapAudioPatchEmbed};

/// The relative position index of a `ws`×`ws` window: [N·N] with N = ws², row-major over
/// (query, key), as transformers' `create_relative_position_index`.
pub fn relative_position_index(ws: usize) -> Vec<u32> {
    let n = ws * ws;
    let span = 2 * ws - 1;
    let mut idx = Vec::with_capacity(n * n);
    for q in 0..n {
        for k in 0..n {
            let dy = (q / ws) as isize - (k / ws) as isize + ws as isize - 1;
            let dx = (q % ws) as isize - (k % ws) as isize + ws as isize - 1;
            idx.push((dy as usize * span + dx as usize) as u32);
        }
    }
    idx
}

/// `attention`: `self.{query, key, value, relative_position_bias_table}` and `output.dense`.
#[derive(Clone, Debug)]
pub struct WindowAttention {
    /// `self.query`, C → C.
    pub query: Linear,
    /// `self.key`, C → C.
    pub key: Linear,
    /// `self.value`, C → C.
    pub value: Linear,
    /// [(2·ws − 1)², heads].
    pub relative_position_bias_table: Tensor,
    /// `output.dense`.
    pub output: Linear,
    /// Attention heads.
    pub heads: usize,
    /// The window side the bias table is made for (`config.window_size`).
    pub window_size: usize,
}

impl WindowAttention {
    /// Loads `attention` for width `dim` and `heads` heads under `vb`. Errors: a weight
    /// missing or of the wrong shape.
    pub fn new(vb: VarBuilder, c: &ClapAudioConfig, dim: usize, heads: usize) -> Result<Self> {
        let s = vb.pp("self");
        let ws = c.window_size;
        Ok(WindowAttention {
            query: Linear::new(s.pp("query"), dim, dim, c.qkv_bias)?,
            key: Linear::new(s.pp("key"), dim, dim, c.qkv_bias)?,
            value: Linear::new(s.pp("value"), dim, dim, c.qkv_bias)?,
            relative_position_bias_table: layers::weight(
                &s,
                ((2 * ws - 1) * (2 * ws - 1), heads),
                "relative_position_bias_table",
            )?,
            output: Linear::new(vb.pp("output").pp("dense"), dim, dim, true)?,
            heads,
            window_size: ws,
        })
    }

    /// The relative position bias [1, heads, N, N].
    fn bias(&self, device: &Device) -> Result<Tensor> {
        let ws = self.window_size;
        let n = ws * ws;
        let idx = Tensor::from_vec(relative_position_index(ws), n * n, device)?;
        Ok(self
            .relative_position_bias_table
            .index_select(&idx, 0)?
            .reshape((n, n, self.heads))?
            .permute((2, 0, 1))?
            .unsqueeze(0)?)
    }

    /// `x` [B·nW, N, C] windows (batch-major), `mask` [nW, N, N] for shifted windows →
    /// [B·nW, N, C].
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (bw, n, c) = x.dims3()?;
        let dh = c / self.heads;
        let split = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((bw, n, self.heads, dh))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = split(self.query.forward(x)?)?;
        let k = split(self.key.forward(x)?)?;
        let v = split(self.value.forward(x)?)?;
        let scores = (q.matmul(&k.transpose(2, 3)?.contiguous()?)? / (dh as f64).sqrt())?;
        let scores = scores.broadcast_add(&self.bias(x.device())?)?;
        let scores = match mask {
            None => scores,
            Some(m) => {
                let nw = m.dim(0)?;
                scores
                    .reshape((bw / nw, nw, self.heads, n, n))?
                    .broadcast_add(&m.unsqueeze(1)?.unsqueeze(0)?)?
                    .reshape((bw, self.heads, n, n))?
            }
        };
        let probs = layers::softmax_last_dim(&scores)?;
        let o = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((bw, n, c))?;
        self.output.forward(&o)
    }
}

/// [B, H, W, C] → windows [B·(H/ws)·(W/ws), ws·ws, C].
fn window_partition(x: &Tensor, ws: usize) -> Result<Tensor> {
    let (b, h, w, c) = x.dims4()?;
    Ok(x.reshape((b, h / ws, ws, w / ws, ws, c))?
        .permute((0, 1, 3, 2, 4, 5))?
        .contiguous()?
        .reshape((b * (h / ws) * (w / ws), ws * ws, c))?)
}

/// Windows [B·nW, ws·ws, C] → [B, H, W, C].
fn window_reverse(windows: &Tensor, ws: usize, h: usize, w: usize) -> Result<Tensor> {
    let c = windows.dim(D::Minus1)?;
    let b = windows.dim(0)? / ((h / ws) * (w / ws));
    Ok(windows
        .reshape((b, h / ws, w / ws, ws, ws, c))?
        .permute((0, 1, 3, 2, 4, 5))?
        .contiguous()?
        .reshape((b, h, w, c))?)
}

/// The shifted-window mask [nW, N, N] of a padded `h`×`w` map: −100 between positions of
/// different regions of the cyclic shift, 0 within one.
fn shift_mask(h: usize, w: usize, ws: usize, shift: usize, device: &Device) -> Result<Tensor> {
    let region = |i: usize, len: usize| usize::from(i >= len - ws) + usize::from(i >= len - shift);
    let n = ws * ws;
    let (nh, nw) = (h / ws, w / ws);
    let mut mask = Vec::with_capacity(nh * nw * n * n);
    for wy in 0..nh {
        for wx in 0..nw {
            let ids: Vec<usize> = (0..n)
                .map(|p| region(wy * ws + p / ws, h) * 3 + region(wx * ws + p % ws, w))
                .collect();
            for &a in &ids {
                mask.extend(ids.iter().map(|&b| if a == b { 0f32 } else { -100.0 }));
            }
        }
    }
    Ok(Tensor::from_vec(mask, (nh * nw, n, n), device)?)
}

/// `blocks.{j}`: a Swin block (pre-norm window attention, pre-norm MLP).
#[derive(Clone, Debug)]
pub struct ClapAudioLayer {
    /// `layernorm_before`, ahead of the attention.
    pub layernorm_before: LayerNorm,
    /// `attention`: (shifted) window attention.
    pub attention: WindowAttention,
    /// `layernorm_after`, ahead of the MLP.
    pub layernorm_after: LayerNorm,
    /// `intermediate.dense`.
    pub intermediate: Linear,
    /// `output.dense`.
    pub output: Linear,
    /// The MLP's activation (`hidden_act`).
    pub activation: Activation,
    /// Half a window on odd blocks, 0 on even ones (before adapting to the resolution).
    pub shift_size: usize,
}

impl ClapAudioLayer {
    /// Loads `blocks.{j}` under `vb`: width `dim`, `heads` heads, windows shifted by
    /// `shift_size`. Errors: a weight missing or of the wrong shape.
    pub fn new(
        vb: VarBuilder,
        c: &ClapAudioConfig,
        dim: usize,
        heads: usize,
        shift_size: usize,
    ) -> Result<Self> {
        let eps = c.layer_norm_eps;
        let hidden = c.mlp_dim(dim);
        Ok(ClapAudioLayer {
            layernorm_before: LayerNorm::new(vb.pp("layernorm_before"), dim, eps, true)?,
            attention: WindowAttention::new(vb.pp("attention"), c, dim, heads)?,
            layernorm_after: LayerNorm::new(vb.pp("layernorm_after"), dim, eps, true)?,
            intermediate: Linear::new(vb.pp("intermediate").pp("dense"), dim, hidden, true)?,
            output: Linear::new(vb.pp("output").pp("dense"), hidden, dim, true)?,
            activation: c.activation,
            shift_size,
        })
    }

    /// `x` [B, h·w, C] → [B, h·w, C].
    pub fn forward(&self, x: &Tensor, (h, w): (usize, usize)) -> Result<Tensor> {
        let ws_config = self.attention.window_size;
        // transformers' set_shift_and_window_size: no shift (one window) on small maps
        let (ws, shift) = if h.min(w) <= ws_config {
            (h.min(w), 0)
        } else {
            (ws_config, self.shift_size)
        };
        if ws != ws_config {
            return Err(ModelError::Invalid(format!(
                "a {h}×{w} stage is smaller than the {ws_config}×{ws_config} attention window \
                 (transformers cannot run this configuration either)"
            )));
        }
        let (b, l, c) = x.dims3()?;
        if l != h * w {
            return Err(ModelError::Invalid(format!(
                "a stage of {h}×{w} patches is given {l} tokens"
            )));
        }
        let hs = self.layernorm_before.forward(x)?.reshape((b, h, w, c))?;
        let (pad_h, pad_w) = ((ws - h % ws) % ws, (ws - w % ws) % ws);
        let hs = hs
            .pad_with_zeros(1, 0, pad_h)?
            .pad_with_zeros(2, 0, pad_w)?;
        let (hp, wp) = (h + pad_h, w + pad_w);
        let shifted = if shift > 0 {
            hs.roll(-(shift as i32), 1)?.roll(-(shift as i32), 2)?
        } else {
            hs
        };
        let mask = if shift > 0 {
            Some(shift_mask(hp, wp, ws, shift, x.device())?)
        } else {
            None
        };
        let attended = self
            .attention
            .forward(&window_partition(&shifted, ws)?, mask.as_ref())?;
        let mut hs = window_reverse(&attended, ws, hp, wp)?;
        if shift > 0 {
            hs = hs.roll(shift as i32, 1)?.roll(shift as i32, 2)?;
        }
        if pad_h > 0 || pad_w > 0 {
            hs = hs.narrow(1, 0, h)?.narrow(2, 0, w)?;
        }
        let x = (x + hs.reshape((b, l, c))?)?;
        let inner = self.activation.forward(
            &self
                .intermediate
                .forward(&self.layernorm_after.forward(&x)?)?,
        )?;
        Ok((&x + self.output.forward(&inner)?)?)
    }
}

/// `downsample`: 2×2 neighbourhoods concatenated (`[x(0,0), x(1,0), x(0,1), x(1,1)]`),
/// normalised and reduced to twice the width.
#[derive(Clone, Debug)]
pub struct ClapAudioPatchMerging {
    /// `reduction` (no bias), 4C → 2C.
    pub reduction: Linear,
    /// `norm` over 4C (eps 1e-5).
    pub norm: LayerNorm,
}

impl ClapAudioPatchMerging {
    /// Loads `downsample` under `vb` for input width `dim`. Errors: a weight missing or of the
    /// wrong shape.
    pub fn new(vb: VarBuilder, dim: usize) -> Result<Self> {
        Ok(ClapAudioPatchMerging {
            reduction: Linear::new(vb.pp("reduction"), 4 * dim, 2 * dim, false)?,
            norm: LayerNorm::new(vb.pp("norm"), 4 * dim, 1e-5, true)?,
        })
    }

    /// [B, h·w, C] → [B, ⌈h/2⌉·⌈w/2⌉, 2C] (odd sides zero padded).
    pub fn forward(&self, x: &Tensor, (h, w): (usize, usize)) -> Result<Tensor> {
        let (b, _, c) = x.dims3()?;
        let x = x
            .reshape((b, h, w, c))?
            .pad_with_zeros(1, 0, h % 2)?
            .pad_with_zeros(2, 0, w % 2)?;
        let (h2, w2) = (h.div_ceil(2), w.div_ceil(2));
        let x = x.reshape((b, h2, 2, w2, 2, c))?;
        let parts = [(0, 0), (1, 0), (0, 1), (1, 1)]
            .iter()
            .map(|&(row, col)| {
                Ok(x.narrow(2, row, 1)?
                    .narrow(4, col, 1)?
                    .reshape((b, h2 * w2, c))?)
            })
            .collect::<Result<Vec<_>>>()?;
        let merged = Tensor::cat(&parts, 2)?;
        self.reduction.forward(&self.norm.forward(&merged)?)
    }
}

/// `layers.{i}`: the blocks of one resolution, then the patch merging (all but the last).
#[derive(Clone, Debug)]
pub struct ClapAudioStage {
    /// `blocks`, in order.
    pub blocks: Vec<ClapAudioLayer>,
    /// `downsample`: the patch merging after the blocks (none after the last stage).
    pub downsample: Option<ClapAudioPatchMerging>,
}

impl ClapAudioStage {
    /// Loads `layers.{i}` under `vb` (stage `i` of `c`). Errors: a weight missing or of the
    /// wrong shape.
    pub fn new(vb: VarBuilder, c: &ClapAudioConfig, i: usize) -> Result<Self> {
        let dim = c.stage_dim(i);
        let heads = c.num_attention_heads[i];
        let blocks = (0..c.depths[i])
            .map(|j| {
                let shift = if j % 2 == 0 { 0 } else { c.window_size / 2 };
                ClapAudioLayer::new(vb.pp("blocks").pp(j), c, dim, heads, shift)
            })
            .collect::<Result<Vec<_>>>()?;
        let downsample = if i + 1 < c.depths.len() {
            Some(ClapAudioPatchMerging::new(vb.pp("downsample"), dim)?)
        } else {
            None
        };
        Ok(ClapAudioStage { blocks, downsample })
    }

    /// [B, h·w, C] at `resolution` (h, w) → the blocks' output, merged to [B, ⌈h/2⌉·⌈w/2⌉, 2C]
    /// when the stage downsamples.
    pub fn forward(&self, x: &Tensor, resolution: (usize, usize)) -> Result<Tensor> {
        let mut x = x.clone();
        for block in &self.blocks {
            x = block.forward(&x, resolution)?;
        }
        match &self.downsample {
            Some(d) => d.forward(&x, resolution),
            None => Ok(x),
        }
    }
}

/// PyTorch's bicubic `interpolate(align_corners=True)` along one axis as a matrix
/// [out, in] (A = −0.75, edge samples repeated), weights computed in f32 as PyTorch does.
pub fn bicubic_matrix(input: usize, output: usize) -> Vec<f32> {
    const A: f32 = -0.75;
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let scale = if output > 1 {
        (input - 1) as f32 / (output - 1) as f32
    } else {
        0.0
    };
    let mut m = vec![0f32; output * input];
    for o in 0..output {
        let real = scale * o as f32;
        let i0 = real.floor();
        let t = real - i0;
        let weights = [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)];
        for (k, wk) in weights.iter().enumerate() {
            let i = (i0 as isize - 1 + k as isize).clamp(0, input as isize - 1) as usize;
            m[o * input + i] += wk;
        }
    }
    m
}

/// Resizes axis 2 of [B, C, T, F] to `out` bicubically (a differentiable matrix product).
fn resize_axis2(x: &Tensor, out: usize) -> Result<Tensor> {
    let t = x.dim(2)?;
    let m = Tensor::from_vec(bicubic_matrix(t, out), (out, t), x.device())?.to_dtype(x.dtype())?;
    Ok(m.broadcast_matmul(&x.contiguous()?)?)
}

/// `audio_model.audio_encoder`.
#[derive(Clone, Debug)]
pub struct ClapAudioEncoder {
    /// `batch_norm` over the mel bins.
    pub batch_norm: BatchNorm2d,
    /// `patch_embed`: the (fused) patch embedding.
    pub patch_embed: ClapAudioPatchEmbed,
    /// `layers`.
    pub stages: Vec<ClapAudioStage>,
    /// `norm` over the last stage's width (eps 1e-5).
    pub norm: LayerNorm,
    /// The tower's config.
    pub config: ClapAudioConfig,
}

/// What [`ClapAudioEncoder::forward`] returns.
#[derive(Clone, Debug)]
pub struct AudioEncoderOutput {
    /// The last stage's tokens after `norm`, [B, L, hidden] (row-major over the final patch grid).
    pub last_hidden_state: Tensor,
    /// Their mean, [B, hidden] (`pooler_output`).
    pub pooler_output: Tensor,
}

impl ClapAudioEncoder {
    /// Loads `audio_model.audio_encoder` under `vb` (that prefix). Errors: a weight missing or of
    /// the wrong shape.
    pub fn new(vb: VarBuilder, c: &ClapAudioConfig) -> Result<Self> {
        let stages = (0..c.depths.len())
            .map(|i| ClapAudioStage::new(vb.pp("layers").pp(i), c, i))
            .collect::<Result<Vec<_>>>()?;
        Ok(ClapAudioEncoder {
            batch_norm: BatchNorm2d::new(vb.pp("batch_norm"), c.num_mel_bins)?,
            patch_embed: ClapAudioPatchEmbed::new(vb.pp("patch_embed"), c)?,
            stages,
            norm: LayerNorm::new(vb.pp("norm"), c.hidden_size, 1e-5, true)?,
            config: c.clone(),
        })
    }

    /// `reshape_mel2img`: [B, C, T, F] → [B, C, F·r, T'/r] with T resized to
    /// `spec_size · r` (r = `spec_size / num_mel_bins`).
    pub fn reshape_mel2img(&self, x: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let r = c.freq_ratio();
        let (spec_width, spec_height) = (c.spec_size * r, c.spec_size / r);
        let (b, ch, t, f) = x.dims4()?;
        if t > spec_width || f > spec_height {
            return Err(ModelError::Invalid(format!(
                "mel features of {t} frames × {f} bins exceed the audio tower's input \
                 ({spec_width} frames × {spec_height} bins)"
            )));
        }
        let mut x = x.clone();
        if t < spec_width {
            x = resize_axis2(&x, spec_width)?;
        }
        if f < spec_height {
            // transformers resizes to (original frames, spec_height) here
            x = resize_axis2(&x, t)?;
            x = resize_axis2(&x.transpose(2, 3)?, spec_height)?.transpose(2, 3)?;
        }
        let (t, f) = (x.dim(2)?, x.dim(3)?);
        if t % r != 0 {
            return Err(ModelError::Invalid(format!(
                "{t} frames cannot be folded into {r} rows"
            )));
        }
        Ok(x.reshape((b, ch * r, t / r, f))?
            .transpose(2, 3)?
            .contiguous()?
            .reshape((b, ch, f * r, t / r))?)
    }

    /// `input_features` [B, C, T, F] (f32), `is_longer` per clip (fused model) → tokens and
    /// their mean.
    pub fn forward(
        &self,
        input_features: &Tensor,
        is_longer: &[bool],
    ) -> Result<AudioEncoderOutput> {
        let c = &self.config;
        let (_, _, _, f) = input_features.dims4()?;
        if f != c.num_mel_bins {
            return Err(ModelError::Invalid(format!(
                "input features have {f} mel bins, the audio tower {}",
                c.num_mel_bins
            )));
        }
        let x = self
            .batch_norm
            .forward_along(&input_features.to_dtype(DType::F32)?, &[1, 1, 1, f])?;
        let img = self.reshape_mel2img(&x)?;
        let frames = img.dim(2)?;
        let mut x = self.patch_embed.forward(&img, is_longer)?;
        let grid = c.grid();
        for (i, stage) in self.stages.iter().enumerate() {
            x = stage.forward(&x, (grid.0 >> i, grid.1 >> i))?;
        }
        let last_hidden_state = self.norm.forward(&x)?;
        let down = 1 << (self.stages.len() - 1);
        let expected = (frames / down / c.patch_stride.0) * (frames / down / c.patch_stride.1);
        if last_hidden_state.dim(1)? != expected {
            return Err(ModelError::Invalid(format!(
                "the last stage has {} tokens where transformers' pooling expects {expected}",
                last_hidden_state.dim(1)?
            )));
        }
        let pooler_output = last_hidden_state.mean(1)?;
        Ok(AudioEncoderOutput {
            last_hidden_state,
            pooler_output,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bicubic_rows_sum_to_one_and_keep_the_ends() {
        let m = bicubic_matrix(51, 256);
        for o in 0..256 {
            let s: f32 = m[o * 51..(o + 1) * 51].iter().sum();
            assert!((s - 1.0).abs() < 1e-5, "{o}: {s}");
        }
        assert_eq!(m[0], 1.0);
        assert_eq!(m[255 * 51 + 50], 1.0);
        // same size: the identity
        let id = bicubic_matrix(5, 5);
        for i in 0..5 {
            for j in 0..5 {
                assert_eq!(id[i * 5 + j], f32::from(u8::from(i == j)));
            }
        }
    }

    #[test]
    fn shift_mask_separates_the_wrapped_regions() {
        let m = shift_mask(8, 8, 4, 2, &Device::Cpu).unwrap();
        let v: Vec<Vec<Vec<f32>>> = m.to_vec3().unwrap();
        // the first window holds one region only; the last holds four
        assert!(v[0].iter().flatten().all(|&x| x == 0.0));
        let blocked = v[3].iter().flatten().filter(|&&x| x == -100.0).count();
        assert_eq!(blocked, 16 * 16 - 4 * 4 * 4);
    }
}
