//! NICE's EEG encoder (Song et al., ICLR 2024, "Decoding natural images from EEG for object
//! recognition"): a temporal and a spatial convolution ("TSConv", after ShallowNet), then a
//! projection into an image-embedding space, trained with CLIP's contrastive loss against the
//! embeddings of the images seen.
//!
//! ```text
//! eeg [B, C, T]  → [B, 1, C, T]
//! enc_eeg.0.tsconv.0   Conv2d(1, F, (1, K))              temporal filters     [B, F, C, T−K+1]
//!          tsconv.1    AvgPool2d((1, P), (1, S))                              [B, F, C, T']
//!          tsconv.2,3  BatchNorm2d(F), ELU
//!          tsconv.4    Conv2d(F, F, (C, 1))              spatial filters      [B, F, 1, T']
//!          tsconv.5,6  BatchNorm2d(F), ELU;  tsconv.7 Dropout(p)
//! enc_eeg.0.projection.0  Conv2d(F, E, 1×1), then b e h w → b (h w) e, flattened  [B, T'·E]
//! proj_eeg.0           Linear(T'·E, D)
//! proj_eeg.1.fn.1      h + Dropout(Linear(D, D)(GELU(h)))
//! proj_eeg.2           LayerNorm(D)                                           [B, D]
//! logit_scale          log of the contrastive loss's scale, learnable (CLIP's, from ln 1/0.07)
//! ```
//! T' = (T − K + 1 − P) / S + 1. Names are those of NICE's `Enc_eeg` and `Proj_eeg` state
//! dicts under `enc_eeg.` and `proj_eeg.` (NICE saves each module in its own file). NICE's
//! `Proj_img` returns its input unchanged, so the image side has no parameters.
//!
//! The average pool follows a convolution without a nonlinearity between them, so the two are
//! one convolution: the temporal kernel convolved with a box of P taps, applied at stride S
//! (kernel K + P − 1). It is the same function (up to rounding) at a sixth of the work for
//! THINGS-EEG2's 250 samples, and the gradient reaches the temporal kernel through the box.

pub mod tape;

use std::path::Path;

use brainrecon_nn::conv::conv2d_rect;
use brainrecon_nn::layers::{gelu, BatchNorm, LayerNorm, Linear};
use brainrecon_nn::loss::symmetric_info_nce;
use brainrecon_nn::rng::dropout;
use brainrecon_nn::{ModelError, Result};
use candle_core::{Tensor, D};
use candle_nn::VarBuilder;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// `_class_name` of the config file.
pub const CLASS_NAME: &str = "NiceEegEncoder";

fn class_name() -> String {
    CLASS_NAME.to_string()
}

/// The encoder's `config.json`; defaults are NICE's for THINGS-EEG2 (63 channels × 250
/// samples, CLIP ViT-H/14's 1,024-wide image embeddings would set `proj_dim` 1024).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NiceConfig {
    /// Must be [`CLASS_NAME`] (`_class_name` in the file).
    #[serde(rename = "_class_name", default = "class_name")]
    pub class_name: String,
    /// C: EEG channels.
    pub channels: usize,
    /// T: samples of a trial's window.
    pub times: usize,
    /// F: temporal filters (and spatial ones).
    pub filters: usize,
    /// K: taps of the temporal convolution.
    pub temporal_kernel: usize,
    /// P: taps of the average pool.
    pub pool_kernel: usize,
    /// S: stride of the average pool.
    pub pool_stride: usize,
    /// E: channels of the 1×1 projection.
    pub emb_size: usize,
    /// D: width of the image embedding.
    pub proj_dim: usize,
    /// Dropout after the spatial block (NICE's 0.5).
    pub dropout: f64,
    /// Dropout in the projection's residual branch (NICE's `drop_proj` 0.5).
    pub drop_proj: f64,
    /// Epsilon of the BatchNorms.
    pub batch_norm_eps: f64,
    /// Momentum of the BatchNorms' running statistics (PyTorch's convention: the new batch's
    /// weight).
    pub batch_norm_momentum: f64,
    /// Epsilon of the projection's LayerNorm.
    pub layer_norm_eps: f64,
}

impl NiceConfig {
    /// NICE's encoder for `channels` × `times` trials into `proj_dim`-wide embeddings.
    pub fn new(channels: usize, times: usize, proj_dim: usize) -> Self {
        NiceConfig {
            class_name: class_name(),
            channels,
            times,
            filters: 40,
            temporal_kernel: 25,
            pool_kernel: 51,
            pool_stride: 5,
            emb_size: 40,
            proj_dim,
            dropout: 0.5,
            drop_proj: 0.5,
            batch_norm_eps: 1e-5,
            batch_norm_momentum: 0.1,
            layer_norm_eps: 1e-5,
        }
    }

    /// T': time steps after the pool.
    pub fn pooled_times(&self) -> usize {
        let span = self.temporal_kernel + self.pool_kernel - 1;
        match self.times.checked_sub(span) {
            Some(rest) if self.pool_stride > 0 => rest / self.pool_stride + 1,
            _ => 0,
        }
    }

    /// T'·E: the width entering the projection.
    pub fn embedding_dim(&self) -> usize {
        self.pooled_times() * self.emb_size
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
            in_range("times", self.times, 1, 1 << 20)?;
            in_range("filters", self.filters, 1, MAX_CHANNELS)?;
            in_range("temporal_kernel", self.temporal_kernel, 1, self.times)?;
            in_range("pool_kernel", self.pool_kernel, 1, self.times)?;
            in_range("pool_stride", self.pool_stride, 1, self.times)?;
            in_range("emb_size", self.emb_size, 1, MAX_CHANNELS)?;
            in_range("proj_dim", self.proj_dim, 1, MAX_CHANNELS)?;
            epsilon("batch_norm_eps", self.batch_norm_eps)?;
            epsilon("layer_norm_eps", self.layer_norm_eps)?;
            Ok(())
        };
        if let Err(e) = sizes() {
            return Some(e);
        }
        if self.pooled_times() == 0 {
            return Some(format!(
                "times: expected at least temporal_kernel + pool_kernel − 1 = {} samples, found {}",
                self.temporal_kernel + self.pool_kernel - 1,
                self.times
            ));
        }
        let rates = [
            ("dropout", self.dropout),
            ("drop_proj", self.drop_proj),
            ("batch_norm_momentum", self.batch_norm_momentum),
        ];
        for (name, p) in rates {
            if !(0.0..1.0).contains(&p) {
                return Some(format!("{name}: expected a value in [0, 1), found {p}"));
            }
        }
        let projection = self.embedding_dim() as u64 * self.proj_dim as u64;
        (projection > 1 << 28).then(|| {
            format!(
                "times: the projection would hold {projection} weights (T'·E × proj_dim), \
                 expected at most {}",
                1u64 << 28
            )
        })
    }

    /// Reads and checks `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        brainrecon_nn::layers::read_checked_config(path, NiceConfig::problem)
    }
}

/// The encoder; see the module documentation.
#[derive(Debug, Clone)]
pub struct NiceEegEncoder {
    config: NiceConfig,
    /// [F, 1, 1, K].
    temporal_weight: Tensor,
    temporal_bias: Tensor,
    /// [K, K + P − 1]: row k is the box of P taps (1/P each) starting at k.
    pool_box: Tensor,
    norm_temporal: BatchNorm,
    /// [F, F, C, 1].
    spatial_weight: Tensor,
    spatial_bias: Tensor,
    norm_spatial: BatchNorm,
    /// [E, F, 1, 1].
    projection_weight: Tensor,
    projection_bias: Tensor,
    proj_in: Linear,
    proj_residual: Linear,
    proj_norm: LayerNorm,
    /// Scalar, the log of the logits' scale.
    pub logit_scale: Tensor,
}

impl NiceEegEncoder {
    /// Builds the encoder from NICE's state dict names under `vb`. Errors: an invalid `config`
    /// ([`ModelError::InvalidConfig`]), a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, config: &NiceConfig) -> Result<Self> {
        if let Some(problem) = config.problem() {
            return Err(ModelError::InvalidConfig(format!(
                "NICE encoder: {problem}"
            )));
        }
        let c = config;
        let (f, k, p) = (c.filters, c.temporal_kernel, c.pool_kernel);
        let ts = vb.pp("enc_eeg.0.tsconv");
        let w = |vb: &VarBuilder, shape: &[usize], name: &str| {
            brainrecon_nn::layers::weight(vb, shape, name)
        };
        let temporal_weight = w(&ts.pp("0"), &[f, 1, 1, k], "weight")?;
        let temporal_bias = w(&ts.pp("0"), &[f], "bias")?;
        let span = k + p - 1;
        let mut taps = vec![0f32; k * span];
        for row in 0..k {
            taps[row * span + row..row * span + row + p].fill(1.0 / p as f32);
        }
        let pool_box = Tensor::from_vec(taps, (k, span), vb.device())?.to_dtype(vb.dtype())?;
        let bn = |vb: VarBuilder| BatchNorm::new(vb, f, c.batch_norm_eps, c.batch_norm_momentum);
        let proj = vb.pp("enc_eeg.0.projection.0");
        let head = vb.pp("proj_eeg");
        Ok(Self {
            temporal_weight,
            temporal_bias,
            pool_box,
            norm_temporal: bn(ts.pp("2"))?,
            spatial_weight: w(&ts.pp("4"), &[f, f, c.channels, 1], "weight")?,
            spatial_bias: w(&ts.pp("4"), &[f], "bias")?,
            norm_spatial: bn(ts.pp("5"))?,
            projection_weight: w(&proj, &[c.emb_size, f, 1, 1], "weight")?,
            projection_bias: w(&proj, &[c.emb_size], "bias")?,
            proj_in: Linear::new(head.pp("0"), c.embedding_dim(), c.proj_dim, true)?,
            proj_residual: Linear::new(head.pp("1.fn.1"), c.proj_dim, c.proj_dim, true)?,
            proj_norm: LayerNorm::new(head.pp("2"), c.proj_dim, c.layer_norm_eps, true)?,
            logit_scale: w(&vb, &[], "logit_scale")?,
            config: config.clone(),
        })
    }

    /// The encoder's config.
    pub fn config(&self) -> &NiceConfig {
        &self.config
    }

    /// The temporal kernel convolved with the pool's box: [F, 1, 1, K + P − 1].
    fn pooled_temporal_kernel(&self) -> Result<Tensor> {
        let (f, k) = (self.config.filters, self.config.temporal_kernel);
        let span = self.pool_box.dim(1)?;
        let w = self
            .temporal_weight
            .reshape((f, k))?
            .matmul(&self.pool_box)?;
        Ok(w.reshape((f, 1, 1, span))?)
    }

    /// `eeg` [B, C, T] → embeddings [B, D] (not normalised). With `rng` the encoder trains:
    /// batch norms use the batch's statistics (and move their running ones) and dropout draws
    /// its masks from `rng`; without it, inference.
    pub fn forward(&self, eeg: &Tensor, mut rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        let c = &self.config;
        let (b, channels, times) = eeg.dims3().map_err(|_| ModelError::InvalidInput {
            name: "EEG trials",
            msg: format!(
                "shape {:?}, expected [B, {}, {}]",
                eeg.dims(),
                c.channels,
                c.times
            ),
        })?;
        if (channels, times) != (c.channels, c.times) || b == 0 {
            return Err(ModelError::InvalidInput {
                name: "EEG trials",
                msg: format!(
                    "shape {:?}, expected [B, {}, {}] with B > 0",
                    eeg.dims(),
                    c.channels,
                    c.times
                ),
            });
        }
        let training = rng.is_some();
        let norm = |bn: &BatchNorm, x: &Tensor| match training {
            true => bn.forward_train(x, Some(1.0)),
            false => bn.forward_eval(x, Some(1.0)),
        };
        let bias = |x: &Tensor, b: &Tensor| -> Result<Tensor> {
            Ok(brainrecon_nn::channel::channel_affine(x, None, Some(b))?)
        };
        let x = eeg.reshape((b, 1, channels, times))?;
        let x = conv2d_rect(
            &x,
            &self.pooled_temporal_kernel()?,
            (0, 0),
            (1, c.pool_stride),
        )?;
        let x = norm(&self.norm_temporal, &bias(&x, &self.temporal_bias)?)?;
        let x = conv2d_rect(&x, &self.spatial_weight, (0, 0), (1, 1))?;
        let mut x = norm(&self.norm_spatial, &bias(&x, &self.spatial_bias)?)?;
        if let Some(rng) = rng.as_deref_mut() {
            x = dropout(&x, c.dropout, rng)?;
        }
        let x = conv2d_rect(&x, &self.projection_weight, (0, 0), (1, 1))?;
        let x = bias(&x, &self.projection_bias)?; // [B, E, 1, T']
        let t = x.dim(3)?;
        let x = x
            .reshape((b, c.emb_size, t))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, t * c.emb_size))?;
        let h = self.proj_in.forward(&x)?;
        let mut r = self.proj_residual.forward(&gelu(&h)?)?;
        if let Some(rng) = rng {
            r = dropout(&r, c.drop_proj, rng)?;
        }
        self.proj_norm.forward(&(h + r)?)
    }
}

/// A new encoder with seeded initial values: the project's defaults (PyTorch's module
/// defaults), the running variances at 1 and the logit scale at ln(1/0.07), as torch starts
/// them. (NICE re-draws conv and linear weights from N(0, 0.02); that is not followed.)
pub fn initialise(
    config: &NiceConfig,
    seed: u64,
    device: &candle_core::Device,
) -> Result<(NiceEegEncoder, brainrecon_nn::params::Parameters)> {
    use brainrecon_nn::init::{init_parameters_with, ParamInit};
    init_parameters_with(
        |vb| NiceEegEncoder::new(vb, config),
        seed,
        candle_core::DType::F32,
        device,
        |name, _, rule| match name {
            "logit_scale" => ParamInit::Constant((1.0f64 / 0.07).ln()),
            n if n.ends_with("running_var") => ParamInit::Constant(1.0),
            _ => rule,
        },
    )
}

/// Rows scaled to unit length (torch's `x / x.norm(dim=1, keepdim=True)`, no epsilon).
pub fn unit_rows(x: &Tensor) -> Result<Tensor> {
    Ok(x.broadcast_div(&x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?)?)
}

/// NICE's loss: both sides made unit length, `logits = exp(logit_scale) · eeg · imageᵀ`, and
/// CLIP's symmetric cross-entropy with matched pairs on the diagonal. `eeg` and `image`
/// [B, D], `logit_scale` a scalar.
pub fn nice_loss(eeg: &Tensor, image: &Tensor, logit_scale: &Tensor) -> Result<Tensor> {
    let logits = unit_rows(eeg)?
        .matmul(&unit_rows(image)?.t()?)?
        .broadcast_mul(&logit_scale.exp()?)?;
    symmetric_info_nce(&logits, &logits.t()?)
}
