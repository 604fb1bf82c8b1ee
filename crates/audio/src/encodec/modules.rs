//! The SEANet encoder and decoder of EnCodec, module by module as transformers names them:
//! `EncodecConv1d` / `EncodecConvTranspose1d` (`.conv` holds the kernel, `.norm` the group norm
//! of `time_group_norm` configs), `EncodecLSTM` (`.lstm`), `EncodecResnetBlock` (`.block.{1,3}`,
//! `.shortcut`), `EncodecEncoder` / `EncodecDecoder` (`.layers.{i}`, parameter-free ELUs
//! included in the numbering).
//!
//! Weight-normalised kernels are read in either stored form: today's
//! `conv.parametrizations.weight.original0/1` (what transformers 5 saves) or the older
//! `conv.weight_g` / `conv.weight_v` (earlier conversions); the kernel is `g · v / ‖v‖`, the
//! norm taken over every axis but the first, as torch's `weight_norm(dim=0)` does — for a
//! transposed convolution the first axis is the input channel.

use brainrecon_nn::layers::{self, GroupNorm, Linear};
use brainrecon_nn::{ModelError, Result};
use candle_core::{DType, Tensor, D};
use candle_nn::VarBuilder;

use super::config::{EncodecConfig, NormType, PadMode};

/// torch's `GroupNorm` default.
const GROUP_NORM_EPS: f64 = 1e-5;
/// Output positions per convolution call, so long clips do not need one huge column buffer.
const CONV_BLOCK_ELEMENTS: usize = 8 << 20;

/// The kernel of `vb` (the `.conv` module) with shape `shape` (first axis the one weight norm
/// keeps), composed from `g` and `v` when `norm` is weight norm.
fn conv_kernel(vb: &VarBuilder, shape: (usize, usize, usize), norm: NormType) -> Result<Tensor> {
    if norm == NormType::TimeGroupNorm {
        return layers::weight(vb, shape, "weight");
    }
    let g_shape = (shape.0, 1, 1);
    let (g, v) = if vb.contains_tensor("parametrizations.weight.original0") {
        (
            layers::weight(vb, g_shape, "parametrizations.weight.original0")?,
            layers::weight(vb, shape, "parametrizations.weight.original1")?,
        )
    } else if vb.contains_tensor("weight_g") {
        (
            layers::weight(vb, g_shape, "weight_g")?,
            layers::weight(vb, shape, "weight_v")?,
        )
    } else {
        return Err(brainrecon_nn::ModelError::MissingWeight {
            name: format!(
                "{0}.parametrizations.weight.original0 (or the older {0}.weight_g; a \
                 weight-normalised kernel)",
                vb.prefix()
            ),
        });
    };
    let norm = v.sqr()?.sum_keepdim(2)?.sum_keepdim(1)?.sqrt()?;
    Ok(v.broadcast_mul(&g.broadcast_div(&norm)?)?)
}

/// `x` [B, C, T] padded on the time axis as torch's `F.pad` does in `mode`. Reflection of a
/// signal no longer than the padding first appends zeros (transformers' `_pad1d`).
pub fn pad1d(x: &Tensor, left: usize, right: usize, mode: PadMode) -> Result<Tensor> {
    if left == 0 && right == 0 {
        return Ok(x.clone());
    }
    if mode == PadMode::Constant {
        return Ok(x.pad_with_zeros(D::Minus1, left, right)?);
    }
    let mut x = x.clone();
    let mut extra = 0;
    let length = x.dim(D::Minus1)?;
    if mode == PadMode::Reflect && length <= left.max(right) {
        extra = left.max(right) - length + 1;
        x = x.pad_with_zeros(D::Minus1, 0, extra)?;
    }
    let n = x.dim(D::Minus1)? as i64;
    let source = |i: i64| -> i64 {
        match mode {
            PadMode::Reflect if i < 0 => -i,
            PadMode::Reflect if i >= n => 2 * (n - 1) - i,
            PadMode::Replicate => i.clamp(0, n - 1),
            PadMode::Circular => i.rem_euclid(n),
            _ => i,
        }
    };
    let out_len = n as usize + left + right - extra;
    let index: Vec<u32> = (0..out_len as i64)
        .map(|p| source(p - left as i64) as u32)
        .collect();
    let index = Tensor::from_vec(index, out_len, x.device())?;
    Ok(x.contiguous()?.index_select(&index, 2)?)
}

/// Valid (unpadded) 1-D convolution of `x` [B, C, T] with `w` [O, C, k], in blocks of output
/// positions. f32 on the CPU with no dilation runs on the project's GEMM convolution.
fn conv1d_valid(x: &Tensor, w: &Tensor, stride: usize, dilation: usize) -> Result<Tensor> {
    conv1d_in_blocks(x, w, (stride, dilation), CONV_BLOCK_ELEMENTS)
}

/// [`conv1d_valid`] with at most `budget` column elements (C·k per output position) per call.
fn conv1d_in_blocks(
    x: &Tensor,
    w: &Tensor,
    (stride, dilation): (usize, usize),
    budget: usize,
) -> Result<Tensor> {
    let (_, c, t) = x.dims3()?;
    let k = w.dim(2)?;
    let span = (k - 1) * dilation + 1;
    if t < span {
        return Err(ModelError::Invalid(format!(
            "EnCodec convolution: {t} samples after padding, fewer than the kernel span {span}"
        )));
    }
    let out_len = (t - span) / stride + 1;
    let block = (budget / (c * k).max(1)).max(1);
    let mut pieces = Vec::with_capacity(out_len.div_ceil(block));
    let mut start = 0;
    while start < out_len {
        let n = block.min(out_len - start);
        let input = x.narrow(2, start * stride, (n - 1) * stride + span)?;
        pieces.push(conv1d_raw(&input, w, stride, dilation)?);
        start += n;
    }
    Ok(Tensor::cat(&pieces, 2)?)
}

fn conv1d_raw(x: &Tensor, w: &Tensor, stride: usize, dilation: usize) -> Result<Tensor> {
    let cpu_f32 = x.device().is_cpu() && x.dtype() == DType::F32 && w.dtype() == DType::F32;
    if cpu_f32 && dilation == 1 {
        let y = brainrecon_nn::conv::conv2d_rect(
            &x.unsqueeze(2)?,
            &w.unsqueeze(2)?,
            (0, 0),
            (1, stride),
        )?;
        return Ok(y.squeeze(2)?);
    }
    Ok(x.contiguous()?
        .conv1d(&w.contiguous()?, 0, stride, dilation, 1)?)
}

/// `EncodecConv1d`: a 1-D convolution padded so that `T` samples give `ceil(T / stride)`
/// outputs — causally (all padding on the left) or split with the extra sample on the left.
#[derive(Clone, Debug)]
pub struct EncodecConv1d {
    /// [O, C, k], weight norm already applied.
    pub weight: Tensor,
    /// `[O]`.
    pub bias: Tensor,
    /// The one-group norm after the convolution (`time_group_norm` configs).
    pub norm: Option<GroupNorm>,
    /// Step between output positions, in samples.
    pub stride: usize,
    /// Spacing between kernel taps, in samples.
    pub dilation: usize,
    /// Whether all padding goes on the left (`use_causal_conv`).
    pub causal: bool,
    /// How the input is padded (`pad_mode`).
    pub pad_mode: PadMode,
}

impl EncodecConv1d {
    /// Loads `.conv` (and `.norm`) under `vb`: `in_ch` → `out_ch` channels with a `kernel`-tap
    /// kernel. Errors: a weight missing or of the wrong shape.
    pub fn new(
        vb: VarBuilder,
        c: &EncodecConfig,
        (in_ch, out_ch): (usize, usize),
        kernel: usize,
        stride: usize,
        dilation: usize,
    ) -> Result<Self> {
        let conv = vb.pp("conv");
        Ok(EncodecConv1d {
            weight: conv_kernel(&conv, (out_ch, in_ch, kernel), c.norm_type)?,
            bias: layers::weight(&conv, out_ch, "bias")?,
            norm: match c.norm_type {
                NormType::WeightNorm => None,
                NormType::TimeGroupNorm => {
                    Some(GroupNorm::new(vb.pp("norm"), 1, out_ch, GROUP_NORM_EPS)?)
                }
            },
            stride,
            dilation,
            causal: c.use_causal_conv,
            pad_mode: c.pad_mode,
        })
    }

    /// [B, C, T] → [B, O, ceil(T / stride)].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let length = x.dim(D::Minus1)?;
        let span = (self.weight.dim(2)? - 1) * self.dilation + 1;
        let padding_total = span.saturating_sub(self.stride);
        // Right padding that makes the last window complete.
        let extra = length.div_ceil(self.stride) * self.stride - length;
        let (left, right) = if self.causal {
            (padding_total, extra)
        } else {
            let right = padding_total / 2;
            (padding_total - right, right + extra)
        };
        let x = pad1d(x, left, right, self.pad_mode)?;
        let y = conv1d_valid(&x, &self.weight, self.stride, self.dilation)?;
        let y = y.broadcast_add(&self.bias.reshape((1, (), 1))?)?;
        match &self.norm {
            Some(norm) => Ok(norm.forward(&y)?),
            None => Ok(y),
        }
    }
}

/// `EncodecConvTranspose1d`: a transposed convolution whose `kernel − stride` surplus samples
/// are trimmed — on the right by `trim_right_ratio` when causal, else half on each side with
/// the odd one on the left.
#[derive(Clone, Debug)]
pub struct EncodecConvTranspose1d {
    /// [C, O, k], weight norm already applied.
    pub weight: Tensor,
    /// `[O]`.
    pub bias: Tensor,
    /// The one-group norm after the convolution (`time_group_norm` configs).
    pub norm: Option<GroupNorm>,
    /// Upsampling factor: output samples per input sample.
    pub stride: usize,
    /// Whether the surplus is trimmed by `trim_right_ratio` (`use_causal_conv`).
    pub causal: bool,
    /// Share of the surplus trimmed on the right when causal (`trim_right_ratio`).
    pub trim_right_ratio: f64,
}

impl EncodecConvTranspose1d {
    /// Loads `.conv` (and `.norm`) under `vb`: `in_ch` → `out_ch` channels with a `kernel`-tap
    /// kernel. Errors: a weight missing or of the wrong shape.
    pub fn new(
        vb: VarBuilder,
        c: &EncodecConfig,
        (in_ch, out_ch): (usize, usize),
        kernel: usize,
        stride: usize,
    ) -> Result<Self> {
        let conv = vb.pp("conv");
        Ok(EncodecConvTranspose1d {
            weight: conv_kernel(&conv, (in_ch, out_ch, kernel), c.norm_type)?,
            bias: layers::weight(&conv, out_ch, "bias")?,
            norm: match c.norm_type {
                NormType::WeightNorm => None,
                NormType::TimeGroupNorm => {
                    Some(GroupNorm::new(vb.pp("norm"), 1, out_ch, GROUP_NORM_EPS)?)
                }
            },
            stride,
            causal: c.use_causal_conv,
            trim_right_ratio: c.trim_right_ratio,
        })
    }

    /// [B, C, T] → [B, O, T · stride].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let kernel = self.weight.dim(2)?;
        // One clip at a time: candle 0.11.1's CPU transposed convolution (its col2im path)
        // returns wrong values for every clip after the first of a batch.
        let weight = self.weight.contiguous()?;
        let clips = (0..x.dim(0)?)
            .map(|i| {
                x.narrow(0, i, 1)?
                    .contiguous()?
                    .conv_transpose1d(&weight, 0, 0, self.stride, 1, 1)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let y = Tensor::cat(&clips, 0)?;
        let y = y.broadcast_add(&self.bias.reshape((1, (), 1))?)?;
        let y = match &self.norm {
            Some(norm) => norm.forward(&y)?,
            None => y,
        };
        let padding_total = kernel.saturating_sub(self.stride);
        let right = if self.causal {
            (padding_total as f64 * self.trim_right_ratio).ceil() as usize
        } else {
            padding_total / 2
        };
        let left = padding_total - right;
        let length = y.dim(2)?;
        Ok(y.narrow(2, left, length - left - right)?)
    }
}

/// `EncodecLSTM`: a stack of torch `LSTM` layers over time plus a skip connection.
#[derive(Clone, Debug)]
pub struct EncodecLstm {
    /// `num_lstm_layers` layers, applied in order.
    pub layers: Vec<LstmLayer>,
}

/// One layer of torch's `LSTM` (gates i, f, g, o in that order), zero initial state.
#[derive(Clone, Debug)]
pub struct LstmLayer {
    /// `weight_ih_l{k}` [4H, H] with `bias_ih_l{k} + bias_hh_l{k}`.
    pub input: Linear,
    /// `weight_hh_l{k}` [4H, H], no bias.
    pub recurrent: Linear,
}

impl EncodecLstm {
    /// Loads `.lstm` under `vb`: `num_lstm_layers` layers of `dim` units. Errors: a weight
    /// missing or of the wrong shape.
    pub fn new(vb: VarBuilder, c: &EncodecConfig, dim: usize) -> Result<Self> {
        let vb = vb.pp("lstm");
        let layers = (0..c.num_lstm_layers)
            .map(|k| {
                let w = |n: &str| layers::weight(&vb, (4 * dim, dim), &format!("{n}_l{k}"));
                let b = |n: &str| layers::weight(&vb, 4 * dim, &format!("{n}_l{k}"));
                let bias = (b("bias_ih")? + b("bias_hh")?)?;
                Ok(LstmLayer {
                    input: Linear::from_tensors(w("weight_ih")?, Some(bias)),
                    recurrent: Linear::from_tensors(w("weight_hh")?, None),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(EncodecLstm { layers })
    }

    /// [B, H, T] → [B, H, T]: `lstm(x) + x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let input = x.transpose(1, 2)?.contiguous()?;
        let mut h = input.clone();
        for layer in &self.layers {
            h = layer.forward(&h)?;
        }
        Ok((h + input)?.transpose(1, 2)?.contiguous()?)
    }
}

impl LstmLayer {
    /// [B, T, H] → [B, T, H].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, dim) = x.dims3()?;
        // The input projections of every step at once; only the recurrence is sequential
        // (one matrix-vector product per step, bound by reading the [4H, H] matrix).
        let gates_in = self.input.forward(x)?;
        let mut h = Tensor::zeros((b, dim), x.dtype(), x.device())?;
        let mut cell = h.clone();
        let mut outputs = Vec::with_capacity(t);
        for step in 0..t {
            let gates = (gates_in.narrow(1, step, 1)?.squeeze(1)? + self.recurrent.forward(&h)?)?;
            let gate = |i: usize| gates.narrow(1, i * dim, dim);
            let input_gate = candle_nn::ops::sigmoid(&gate(0)?)?;
            let forget_gate = candle_nn::ops::sigmoid(&gate(1)?)?;
            let candidate = gate(2)?.tanh()?;
            let output_gate = candle_nn::ops::sigmoid(&gate(3)?)?;
            cell = ((forget_gate * cell)? + (input_gate * candidate)?)?;
            h = (output_gate * cell.tanh()?)?;
            outputs.push(h.clone());
        }
        Ok(Tensor::stack(&outputs, 1)?)
    }
}

/// `EncodecResnetBlock`: `shortcut(x) + conv1(elu(conv0(elu(x))))`, the branch narrowed by
/// `compress`; the shortcut is a 1×1 convolution or the identity (`use_conv_shortcut`).
#[derive(Clone, Debug)]
pub struct EncodecResnetBlock {
    /// `block.1` and `block.3` (0 and 2 are ELUs).
    pub block: [EncodecConv1d; 2],
    /// The 1×1 convolution on the skip path (`use_conv_shortcut`); `None` is the identity.
    pub shortcut: Option<EncodecConv1d>,
}

impl EncodecResnetBlock {
    /// Loads `.block.{1,3}` (and `.shortcut`) under `vb`, `dim` channels, the first convolution
    /// dilated by `dilation`. Errors: `compress` leaving no hidden channels, a weight missing or of
    /// the wrong shape.
    pub fn new(vb: VarBuilder, c: &EncodecConfig, dim: usize, dilation: usize) -> Result<Self> {
        let hidden = dim / c.compress;
        if hidden == 0 {
            return Err(ModelError::Invalid(format!(
                "EnCodec config: `compress` {} leaves no channels of the {dim} in a residual block",
                c.compress
            )));
        }
        let b = vb.pp("block");
        let first = EncodecConv1d::new(
            b.pp("1"),
            c,
            (dim, hidden),
            c.residual_kernel_size,
            1,
            dilation,
        )?;
        let second = EncodecConv1d::new(b.pp("3"), c, (hidden, dim), 1, 1, 1)?;
        let shortcut = if c.use_conv_shortcut {
            Some(EncodecConv1d::new(
                vb.pp("shortcut"),
                c,
                (dim, dim),
                1,
                1,
                1,
            )?)
        } else {
            None
        };
        Ok(EncodecResnetBlock {
            block: [first, second],
            shortcut,
        })
    }

    /// [B, dim, T] → [B, dim, T].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.block[0].forward(&x.elu(1.0)?)?;
        let h = self.block[1].forward(&h.elu(1.0)?)?;
        let skip = match &self.shortcut {
            Some(conv) => conv.forward(x)?,
            None => x.clone(),
        };
        Ok((skip + h)?)
    }
}

/// One entry of `encoder.layers` / `decoder.layers`.
#[derive(Clone, Debug)]
pub enum SeanetLayer {
    /// A convolution.
    Conv(EncodecConv1d),
    /// A transposed convolution (decoder upsampling).
    ConvTranspose(EncodecConvTranspose1d),
    /// A residual block.
    Resnet(EncodecResnetBlock),
    /// The LSTM with its skip connection.
    Lstm(EncodecLstm),
    /// An ELU (α = 1), parameter-free but numbered.
    Elu,
}

impl SeanetLayer {
    /// [B, C, T] → the layer's output.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            SeanetLayer::Conv(m) => m.forward(x),
            SeanetLayer::ConvTranspose(m) => m.forward(x),
            SeanetLayer::Resnet(m) => m.forward(x),
            SeanetLayer::Lstm(m) => m.forward(x),
            SeanetLayer::Elu => Ok(x.elu(1.0)?),
        }
    }
}

/// Numbers the layers as transformers' `nn.ModuleList` does.
struct LayerList<'a> {
    vb: VarBuilder<'a>,
    layers: Vec<SeanetLayer>,
}

impl<'a> LayerList<'a> {
    fn new(vb: VarBuilder<'a>) -> Self {
        LayerList {
            vb: vb.pp("layers"),
            layers: Vec::new(),
        }
    }

    /// The builder of the next layer.
    fn next(&self) -> VarBuilder<'a> {
        self.vb.pp(self.layers.len().to_string())
    }

    fn push(&mut self, layer: SeanetLayer) {
        self.layers.push(layer);
    }
}

/// `EncodecEncoder` (SEANet): audio [B, channels, T] → embeddings [B, hidden, ceil(T / hop)].
#[derive(Clone, Debug)]
pub struct EncodecEncoder {
    /// `encoder.layers`, in order.
    pub layers: Vec<SeanetLayer>,
}

impl EncodecEncoder {
    /// Loads `encoder.layers.{i}` under `vb` (the `encoder` prefix), shaped by `c`. Errors: a
    /// weight missing or of the wrong shape.
    pub fn new(vb: VarBuilder, c: &EncodecConfig) -> Result<Self> {
        let mut l = LayerList::new(vb);
        let first = (c.audio_channels, c.num_filters);
        let conv = EncodecConv1d::new(l.next(), c, first, c.kernel_size, 1, 1)?;
        l.push(SeanetLayer::Conv(conv));
        let mut scale = 1;
        for &ratio in c.upsampling_ratios.iter().rev() {
            let dim = scale * c.num_filters;
            for j in 0..c.num_residual_layers {
                let dilation = c.dilation_growth_rate.pow(j as u32);
                let block = EncodecResnetBlock::new(l.next(), c, dim, dilation)?;
                l.push(SeanetLayer::Resnet(block));
            }
            l.push(SeanetLayer::Elu);
            let down = EncodecConv1d::new(l.next(), c, (dim, 2 * dim), 2 * ratio, ratio, 1)?;
            l.push(SeanetLayer::Conv(down));
            scale *= 2;
        }
        let dim = scale * c.num_filters;
        let lstm = EncodecLstm::new(l.next(), c, dim)?;
        l.push(SeanetLayer::Lstm(lstm));
        l.push(SeanetLayer::Elu);
        let last = (dim, c.hidden_size);
        let conv = EncodecConv1d::new(l.next(), c, last, c.last_kernel_size, 1, 1)?;
        l.push(SeanetLayer::Conv(conv));
        Ok(EncodecEncoder { layers: l.layers })
    }

    /// [B, audio_channels, T] → [B, hidden_size, ceil(T / hop_length)].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.layers.iter().try_fold(x.clone(), |h, l| l.forward(&h))
    }
}

/// `EncodecDecoder` (SEANet): embeddings [B, hidden, F] → audio [B, channels, F · hop].
#[derive(Clone, Debug)]
pub struct EncodecDecoder {
    /// `decoder.layers`, in order.
    pub layers: Vec<SeanetLayer>,
}

impl EncodecDecoder {
    /// Loads `decoder.layers.{i}` under `vb` (the `decoder` prefix), shaped by `c`. Errors: a
    /// weight missing or of the wrong shape.
    pub fn new(vb: VarBuilder, c: &EncodecConfig) -> Result<Self> {
        let mut l = LayerList::new(vb);
        let mut scale = 1 << c.upsampling_ratios.len();
        let dim = scale * c.num_filters;
        let conv = EncodecConv1d::new(l.next(), c, (c.hidden_size, dim), c.kernel_size, 1, 1)?;
        l.push(SeanetLayer::Conv(conv));
        let lstm = EncodecLstm::new(l.next(), c, dim)?;
        l.push(SeanetLayer::Lstm(lstm));
        for &ratio in &c.upsampling_ratios {
            let dim = scale * c.num_filters;
            l.push(SeanetLayer::Elu);
            let up = EncodecConvTranspose1d::new(l.next(), c, (dim, dim / 2), 2 * ratio, ratio)?;
            l.push(SeanetLayer::ConvTranspose(up));
            for j in 0..c.num_residual_layers {
                let dilation = c.dilation_growth_rate.pow(j as u32);
                let block = EncodecResnetBlock::new(l.next(), c, dim / 2, dilation)?;
                l.push(SeanetLayer::Resnet(block));
            }
            scale /= 2;
        }
        l.push(SeanetLayer::Elu);
        let last = (c.num_filters, c.audio_channels);
        let conv = EncodecConv1d::new(l.next(), c, last, c.last_kernel_size, 1, 1)?;
        l.push(SeanetLayer::Conv(conv));
        Ok(EncodecDecoder { layers: l.layers })
    }

    /// [B, hidden_size, F] → [B, audio_channels, F · hop_length].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.layers.iter().try_fold(x.clone(), |h, l| l.forward(&h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn signal(n: usize) -> Tensor {
        let v: Vec<f32> = (0..n).map(|i| i as f32 + 1.0).collect();
        Tensor::from_vec(v, (1, 1, n), &Device::Cpu).unwrap()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn padding_follows_torch() {
        let x = signal(4);
        let reflect = pad1d(&x, 2, 3, PadMode::Reflect).unwrap();
        assert_eq!(values(&reflect), [3., 2., 1., 2., 3., 4., 3., 2., 1.]);
        let replicate = pad1d(&x, 2, 1, PadMode::Replicate).unwrap();
        assert_eq!(values(&replicate), [1., 1., 1., 2., 3., 4., 4.]);
        let circular = pad1d(&x, 1, 2, PadMode::Circular).unwrap();
        assert_eq!(values(&circular), [4., 1., 2., 3., 4., 1., 2.]);
        let constant = pad1d(&x, 1, 1, PadMode::Constant).unwrap();
        assert_eq!(values(&constant), [0., 1., 2., 3., 4., 0.]);
        // A signal no longer than the padding is zero-extended before reflecting, and the
        // extension dropped again (transformers' `_pad1d`): [1, 2] → [1, 2, 0, 0] reflected.
        let short = pad1d(&signal(2), 3, 1, PadMode::Reflect).unwrap();
        assert_eq!(values(&short), [0., 0., 2., 1., 2., 0.]);
    }

    #[test]
    fn blocked_convolution_equals_one_call() {
        let x = Tensor::arange(0f32, 2.0 * 3.0 * 50.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 3, 50))
            .unwrap()
            .sin()
            .unwrap();
        let w = Tensor::arange(0f32, 4.0 * 3.0 * 5.0, &Device::Cpu)
            .unwrap()
            .reshape((4, 3, 5))
            .unwrap()
            .cos()
            .unwrap();
        for (stride, dilation) in [(1, 1), (3, 1), (1, 2), (2, 3)] {
            let whole = x.conv1d(&w, 0, stride, dilation, 1).unwrap();
            // 7 output positions per block: several blocks, the last one shorter.
            let blocked = conv1d_in_blocks(&x, &w, (stride, dilation), 3 * 5 * 7).unwrap();
            let single = conv1d_valid(&x, &w, stride, dilation).unwrap();
            for ours in [blocked, single] {
                assert_eq!(ours.dims(), whole.dims());
                let diff = (&whole - ours).unwrap().abs().unwrap().max_all().unwrap();
                assert!(diff.to_scalar::<f32>().unwrap() < 1e-4);
            }
        }
    }

    /// y[b, o, t·s + j] += x[b, c, t] · w[c, o, j], summed directly.
    fn transposed_naive(x: &Tensor, w: &Tensor, stride: usize) -> Vec<f32> {
        let (b, c, t) = x.dims3().unwrap();
        let (_, o, k) = w.dims3().unwrap();
        let xv: Vec<f32> = values(x);
        let wv: Vec<f32> = values(w);
        let len = (t - 1) * stride + k;
        let mut y = vec![0f32; b * o * len];
        for bi in 0..b {
            for ci in 0..c {
                for ti in 0..t {
                    for oi in 0..o {
                        for j in 0..k {
                            y[(bi * o + oi) * len + ti * stride + j] +=
                                xv[(bi * c + ci) * t + ti] * wv[(ci * o + oi) * k + j];
                        }
                    }
                }
            }
        }
        y
    }

    #[test]
    fn transposed_convolution_of_a_batch_matches_the_direct_sum() {
        let dev = Device::Cpu;
        let x = Tensor::arange(0f32, 3.0 * 4.0 * 9.0, &dev)
            .unwrap()
            .reshape((3, 4, 9))
            .unwrap()
            .sin()
            .unwrap();
        let w = Tensor::arange(0f32, 4.0 * 2.0 * 6.0, &dev)
            .unwrap()
            .reshape((4, 2, 6))
            .unwrap()
            .cos()
            .unwrap();
        let conv = EncodecConvTranspose1d {
            weight: w.clone(),
            bias: Tensor::zeros(2, DType::F32, &dev).unwrap(),
            norm: None,
            stride: 3,
            causal: true,
            trim_right_ratio: 0.0,
        };
        // trim_right_ratio 0: the 3 surplus samples are all trimmed on the left.
        let got = conv.forward(&x).unwrap();
        assert_eq!(got.dims(), [3, 2, 27]);
        let want = transposed_naive(&x, &w, 3);
        let full = Tensor::from_vec(want, (3, 2, 30), &dev).unwrap();
        let want = full.narrow(2, 3, 27).unwrap();
        let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
    }
}
