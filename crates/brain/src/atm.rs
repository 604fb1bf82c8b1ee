//! ATM's EEG encoder (Li et al., NeurIPS 2024, "Visual decoding and reconstruction via EEG
//! embeddings with guided diffusion"; its `ATMS` module): a channel-attention Transformer in
//! front of NICE's convolutions. Each channel's time course is one token (iTransformer's
//! "inverted" embedding), a learned subject token joins them, and a post-norm encoder layer
//! lets every channel attend to every other before the temporal and spatial filters.
//!
//! ```text
//! eeg [B, C, T]
//! encoder.enc_embedding.value_embedding    Linear(T, d) per channel           [B, C, d]
//!        .subject_embedding                the subject's row of an Embedding(S, d), or the
//!                                          shared token (unknown subject), prepended [B, C+1, d]
//!        dropout
//! encoder.encoder.attn_layers.i            x = norm1(x + drop(out(MHA(q(x), k(x), v(x)))))
//!                                          x = norm2(x + drop(conv2(drop(gelu(conv1(x))))))
//!        (conv1, conv2 are 1-wide Conv1d: linear maps d → d_ff → d per token)
//! encoder.encoder.norm                     LayerNorm(d)
//! keep the first C tokens                  [B, C, d]   (the subject token and channels 0..C−1)
//! enc_eeg, proj_eeg, logit_scale           NICE's encoder with T = d ([`crate::nice`])  [B, D]
//! ```
//! Heads have width ⌊d / H⌋ (ATM's `d_keys`), so q, k and v are H·⌊d/H⌋ wide (248 for ATM's
//! d = 250, H = 4). Keeping the first C of the C + 1 tokens, ATM's `enc_out[:, :63, :]`, drops
//! the last channel's token and keeps the subject's: that is what its code computes, and it
//! is followed. Names are those of ATM's `ATMS` state dict; its `subject_wise_linear`,
//! `mask_token` and `mask_embedding` take no part in the forward pass and are not read.
//!
//! ATM's loss ([`atm_loss`]) differs from NICE's: the logits are `logit_scale · eeg · imageᵀ`
//! with neither side made unit length and the scale not exponentiated (ATM passes its
//! `logit_scale` parameter to open_clip's `ClipLoss`, which expects the exponentiated one).

pub mod tape;

use std::path::Path;

use brainrecon_nn::layers::{gelu, softmax_last_dim, LayerNorm, Linear};
use brainrecon_nn::loss::symmetric_info_nce;
use brainrecon_nn::rng::dropout;
use brainrecon_nn::{ModelError, Result};
use candle_core::{Tensor, D};
use candle_nn::VarBuilder;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::nice::{NiceConfig, NiceEegEncoder};

/// `_class_name` of the config file.
pub const CLASS_NAME: &str = "AtmEegEncoder";

fn class_name() -> String {
    CLASS_NAME.to_string()
}

/// The encoder's `config.json`; defaults are ATM's `Config` for THINGS-EEG2 (63 channels ×
/// 250 samples, d 250, 4 heads, one layer, d_ff 256, 10 subjects, dropout 0.25).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AtmConfig {
    /// Must be [`CLASS_NAME`] (`_class_name` in the file).
    #[serde(rename = "_class_name", default = "class_name")]
    pub class_name: String,
    /// C: EEG channels.
    pub channels: usize,
    /// T: samples of a trial's window.
    pub times: usize,
    /// d: width of a channel's token.
    pub d_model: usize,
    /// H: attention heads.
    pub n_heads: usize,
    /// Encoder layers.
    pub e_layers: usize,
    /// Width of the layers' feed-forward maps.
    pub d_ff: usize,
    /// S: subjects with a token of their own.
    pub num_subjects: usize,
    /// Dropout of the embedding, the attention weights and the residual branches.
    pub dropout: f64,
    /// Epsilon of the encoder layers' LayerNorms.
    pub layer_norm_eps: f64,
    /// NICE's convolutions and projection over the [C, d] tokens (`channels` C, `times` d).
    pub conv: NiceConfig,
}

impl AtmConfig {
    /// ATM's encoder for `channels` × `times` trials into `proj_dim`-wide embeddings.
    pub fn new(channels: usize, times: usize, proj_dim: usize) -> Self {
        let d_model = 250;
        AtmConfig {
            class_name: class_name(),
            channels,
            times,
            d_model,
            n_heads: 4,
            e_layers: 1,
            d_ff: 256,
            num_subjects: 10,
            dropout: 0.25,
            layer_norm_eps: 1e-5,
            conv: NiceConfig::new(channels, d_model, proj_dim),
        }
    }

    /// Width of one head (ATM's `d_keys`).
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads.max(1)
    }

    /// What is wrong with the config, if anything (hostile `config.json` files included).
    pub fn problem(&self) -> Option<String> {
        use brainrecon_nn::config_bounds::*;
        if self.class_name != CLASS_NAME {
            return Some(format!(
                "_class_name is '{}', expected '{CLASS_NAME}'",
                self.class_name
            ));
        }
        let sizes = || -> std::result::Result<(), String> {
            in_range("channels", self.channels, 1, 4096)?;
            in_range("times", self.times, 1, 1 << 16)?;
            in_range("d_model", self.d_model, 1, MAX_CHANNELS)?;
            in_range("n_heads", self.n_heads, 1, self.d_model)?;
            in_range("e_layers", self.e_layers, 1, 64)?;
            in_range("d_ff", self.d_ff, 1, MAX_CHANNELS)?;
            in_range("num_subjects", self.num_subjects, 1, 1 << 16)?;
            epsilon("layer_norm_eps", self.layer_norm_eps)?;
            Ok(())
        };
        if let Err(e) = sizes() {
            return Some(e);
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Some(format!(
                "dropout: expected a value in [0, 1), found {}",
                self.dropout
            ));
        }
        if (self.conv.channels, self.conv.times) != (self.channels, self.d_model) {
            return Some(format!(
                "conv: expected channels {} and times {} (the tokens: channels × d_model), \
                 found {} and {}",
                self.channels, self.d_model, self.conv.channels, self.conv.times
            ));
        }
        let embedding = self.times as u64 * self.d_model as u64;
        if embedding > 1 << 28 {
            return Some(format!(
                "times: the value embedding would hold {embedding} weights, expected at most {}",
                1u64 << 28
            ));
        }
        self.conv.problem().map(|p| format!("conv.{p}"))
    }

    /// Reads and checks `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        brainrecon_nn::layers::read_checked_config(path, AtmConfig::problem)
    }
}

/// One post-norm encoder layer (iTransformer's `EncoderLayer` with `AttentionLayer` and
/// `FullAttention`, no mask).
#[derive(Debug, Clone)]
struct EncoderLayer {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    feed_in: Linear,
    feed_out: Linear,
    /// The 1-wide Conv1d kernels [out, in, 1] behind `feed_in` and `feed_out` (the trainable
    /// variables the training tape binds).
    feed_kernels: [Tensor; 2],
    norm1: LayerNorm,
    norm2: LayerNorm,
}

/// A 1-wide Conv1d's weight [out, in, 1] as a linear map, and the kernel itself.
fn pointwise(vb: VarBuilder, in_dim: usize, out_dim: usize) -> Result<(Linear, Tensor)> {
    let weight = brainrecon_nn::layers::weight(&vb, &[out_dim, in_dim, 1], "weight")?;
    let bias = brainrecon_nn::layers::weight(&vb, &[out_dim], "bias")?;
    let linear = Linear::from_tensors(weight.reshape((out_dim, in_dim))?, Some(bias));
    Ok((linear, weight))
}

impl EncoderLayer {
    fn new(vb: VarBuilder, c: &AtmConfig) -> Result<Self> {
        let (d, inner) = (c.d_model, c.head_dim() * c.n_heads);
        let attention = vb.pp("attention");
        let ln = |name: &str| LayerNorm::new(vb.pp(name), d, c.layer_norm_eps, true);
        let (feed_in, feed_in_kernel) = pointwise(vb.pp("conv1"), d, c.d_ff)?;
        let (feed_out, feed_out_kernel) = pointwise(vb.pp("conv2"), c.d_ff, d)?;
        Ok(EncoderLayer {
            query: Linear::new(attention.pp("query_projection"), d, inner, true)?,
            key: Linear::new(attention.pp("key_projection"), d, inner, true)?,
            value: Linear::new(attention.pp("value_projection"), d, inner, true)?,
            out: Linear::new(attention.pp("out_projection"), inner, d, true)?,
            feed_in,
            feed_out,
            feed_kernels: [feed_in_kernel, feed_out_kernel],
            norm1: ln("norm1")?,
            norm2: ln("norm2")?,
        })
    }

    /// `x` [B, L, d] → [B, L, d].
    fn forward(
        &self,
        x: &Tensor,
        heads: usize,
        p: f64,
        mut rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        let mut drop = |t: Tensor| -> Result<Tensor> {
            match rng.as_deref_mut() {
                Some(rng) => dropout(&t, p, rng),
                None => Ok(t),
            }
        };
        let (q, k, v) = (
            self.query.forward(x)?,
            self.key.forward(x)?,
            self.value.forward(x)?,
        );
        let attended = match p > 0.0 {
            // dropout on the attention weights needs them in hand
            true => attention_with_dropout(&q, &k, &v, heads, &mut drop)?,
            false => {
                brainrecon_nn::layers::multi_head_attention(&q, &k, &v, heads, false, None, false)?
            }
        };
        let attended = drop(self.out.forward(&attended)?)?;
        let x = self.norm1.forward(&(x + attended)?)?;
        let y = drop(gelu(&self.feed_in.forward(&x)?)?)?;
        let y = drop(self.feed_out.forward(&y)?)?;
        self.norm2.forward(&(x + y)?)
    }
}

/// Softmax attention of [B, L, H·Dh] projections with dropout on the weights (training only:
/// without a generator `drop` returns its input, and the fused path is taken instead).
fn attention_with_dropout(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    drop: &mut impl FnMut(Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let (b, l, inner) = q.dims3()?;
    let dh = inner / heads;
    let split = |t: &Tensor| -> Result<Tensor> {
        Ok(t.reshape((b, l, heads, dh))?
            .transpose(1, 2)?
            .contiguous()?)
    };
    let (q, k, v) = (split(q)?, split(k)?, split(v)?);
    let scores = (q * (dh as f64).powf(-0.5))?.matmul(&k.transpose(D::Minus2, D::Minus1)?)?;
    let weights = drop(softmax_last_dim(&scores)?)?;
    Ok(weights
        .matmul(&v)?
        .transpose(1, 2)?
        .reshape((b, l, inner))?)
}

/// The encoder; see the module documentation.
#[derive(Debug, Clone)]
pub struct AtmEegEncoder {
    config: AtmConfig,
    value_embedding: Linear,
    /// [S, d].
    subject_tokens: Tensor,
    /// [1, d]: the token of a subject without one of its own.
    shared_token: Tensor,
    layers: Vec<EncoderLayer>,
    norm: LayerNorm,
    conv: NiceEegEncoder,
}

impl AtmEegEncoder {
    /// Builds the encoder from ATM's `ATMS` state dict names under `vb`. Errors: an invalid
    /// `config` ([`ModelError::InvalidConfig`]), a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, config: &AtmConfig) -> Result<Self> {
        if let Some(problem) = config.problem() {
            return Err(ModelError::InvalidConfig(format!("ATM encoder: {problem}")));
        }
        let c = config;
        let embedding = vb.pp("encoder.enc_embedding");
        let subject = embedding.pp("subject_embedding");
        let w = brainrecon_nn::layers::weight;
        let layers = (0..c.e_layers)
            .map(|i| EncoderLayer::new(vb.pp(format!("encoder.encoder.attn_layers.{i}")), c))
            .collect::<Result<Vec<_>>>()?;
        Ok(AtmEegEncoder {
            value_embedding: Linear::new(
                embedding.pp("value_embedding"),
                c.times,
                c.d_model,
                true,
            )?,
            subject_tokens: w(
                &subject.pp("subject_embedding"),
                &[c.num_subjects, c.d_model],
                "weight",
            )?,
            shared_token: w(&subject, &[1, c.d_model], "shared_embedding")?,
            layers,
            norm: LayerNorm::new(
                vb.pp("encoder.encoder.norm"),
                c.d_model,
                c.layer_norm_eps,
                true,
            )?,
            conv: NiceEegEncoder::new(vb, &c.conv)?,
            config: config.clone(),
        })
    }

    /// The encoder's config.
    pub fn config(&self) -> &AtmConfig {
        &self.config
    }

    /// Scalar, the loss's learnable scale (used as it is: see [`atm_loss`]).
    pub fn logit_scale(&self) -> &Tensor {
        &self.conv.logit_scale
    }

    /// `eeg` [B, C, T] → embeddings [B, D] (not normalised). `subject` picks the subject's
    /// token; `None` or a subject past `num_subjects` takes the shared one, as ATM does for
    /// unknown subjects. With `rng` the encoder trains (batch statistics, dropout drawn from
    /// `rng`); without it, inference.
    pub fn forward(
        &self,
        eeg: &Tensor,
        subject: Option<usize>,
        mut rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        let c = &self.config;
        let shape_error = || ModelError::InvalidInput {
            name: "EEG trials",
            msg: format!(
                "shape {:?}, expected [B, {}, {}] with B > 0",
                eeg.dims(),
                c.channels,
                c.times
            ),
        };
        let (b, channels, times) = eeg.dims3().map_err(|_| shape_error())?;
        if (channels, times) != (c.channels, c.times) || b == 0 {
            return Err(shape_error());
        }
        let token = match subject {
            Some(s) if s < c.num_subjects => self.subject_tokens.narrow(0, s, 1)?,
            _ => self.shared_token.clone(),
        };
        let token = token.unsqueeze(0)?.broadcast_as((b, 1, c.d_model))?;
        let x = self.value_embedding.forward(eeg)?; // [B, C, d]
        let mut x = Tensor::cat(&[&token, &x], 1)?; // [B, C + 1, d]
        if let Some(rng) = rng.as_deref_mut() {
            x = dropout(&x, c.dropout, rng)?;
        }
        for layer in &self.layers {
            x = layer.forward(&x, c.n_heads, c.dropout, rng.as_deref_mut())?;
        }
        let x = self
            .norm
            .forward(&x)?
            .narrow(1, 0, c.channels)?
            .contiguous()?;
        self.conv.forward(&x, rng)
    }
}

/// A new encoder with seeded initial values: PyTorch's module defaults (the value embedding's
/// too, whose name would otherwise read as an embedding table), the tokens from N(0, 1) as
/// `nn.Embedding` and `torch.randn` draw them, running variances at 1 and the logit scale at
/// ln(1/0.07).
pub fn initialise(
    config: &AtmConfig,
    seed: u64,
    device: &candle_core::Device,
) -> Result<(AtmEegEncoder, brainrecon_nn::params::Parameters)> {
    use brainrecon_nn::init::{init_parameters_with, ParamInit};
    let value_bound = 1.0 / (config.times as f64).sqrt();
    init_parameters_with(
        |vb| AtmEegEncoder::new(vb, config),
        seed,
        candle_core::DType::F32,
        device,
        |name, _, rule| match name {
            "logit_scale" => ParamInit::Constant((1.0f64 / 0.07).ln()),
            n if n.ends_with("running_var") => ParamInit::Constant(1.0),
            n if n.contains("value_embedding.") => ParamInit::Uniform { bound: value_bound },
            n if n.ends_with("subject_embedding.weight") || n.ends_with("shared_embedding") => {
                ParamInit::Normal { std: 1.0 }
            }
            _ => rule,
        },
    )
}

/// ATM's loss: `logits = logit_scale · eeg · imageᵀ` (no unit rows, no exponent) and CLIP's
/// symmetric cross-entropy with matched pairs on the diagonal. `eeg`, `image` [B, D],
/// `logit_scale` a scalar. ATM's image embeddings are unit rows (its data set divides them by
/// their norms); the caller passes them so.
pub fn atm_loss(eeg: &Tensor, image: &Tensor, logit_scale: &Tensor) -> Result<Tensor> {
    let logits = eeg.matmul(&image.t()?)?.broadcast_mul(logit_scale)?;
    symmetric_info_nce(&logits, &logits.t()?)
}
