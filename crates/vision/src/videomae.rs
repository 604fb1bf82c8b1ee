//! transformers' `VideoMAEForVideoClassification` (inference), the clip classifier of
//! MinD-Video's 2-way-V / 50-way-V scores (`MCG-NJU/videomae-base-finetuned-kinetics`,
//! Kinetics-400).
//!
//! `videomae.embeddings`: a tubelet convolution (`patch_embeddings.projection`, a Conv3d with
//! kernel = stride = (`tubelet_size`, `patch_size`, `patch_size`) and bias) written as a matmul
//! over non-overlapping tubelets, tokens in (time, row, column) order, plus a fixed sinusoidal
//! position table (not in the checkpoint: `get_sinusoid_encoding_table`, angle
//! `pos / 10000^(2⌊j/2⌋/d)`, sine on even `j`, cosine on odd, computed in f64, stored f32).
//! No class token. The encoder layers are ViT's ([`EncoderLayer`]) except that the key
//! projection has no bias and the query and value biases are separate parameters: `q_bias` /
//! `v_bias` in the hub checkpoints, `query.bias` / `value.bias` as transformers 5 names them
//! in memory; both load. With `use_mean_pooling` (the released classifiers) the tokens are
//! averaged and normalised by `fc_norm` — an `nn.LayerNorm(hidden_size)` with torch's default
//! eps 1e-5, not the config's `layer_norm_eps` — before `classifier`; without it,
//! `videomae.layernorm` (config eps) and the first token.
//!
//! **Frames.** The position table is sized from `num_frames`. MinD-Video loads the Kinetics
//! checkpoint with `from_pretrained(..., num_frames=6)`, so its 6-frame clips (3 tubelets ×
//! 196 patches = 588 tokens) see the first 588 rows of the table: [`VideoMAEConfig`]'s
//! `num_frames` can be overridden the same way ([`VideoMAEForVideoClassification::load`]),
//! and a clip with another frame count is an error, as in transformers.

use std::path::Path;

use brainrecon_nn::layers::{weight, LayerNorm, Linear};
use brainrecon_nn::weights::{component_files, read_json, resolve_model_folder, Weights};
use brainrecon_nn::{ModelError, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;
use serde_json::Value;

use crate::preprocess::{ImageProcessor, ProcessorDefaults};
use crate::vit::{d_true, in_file, read_labels, EncoderFields, EncoderLayer, SelfAttention};

/// transformers' `VideoMAEConfig` (the fields inference needs; defaults are VideoMAE-base's).
#[derive(Clone, Debug, Deserialize)]
pub struct VideoMAEConfig {
    /// The encoder's fields (top-level keys of `config.json`).
    #[serde(flatten)]
    pub encoder: EncoderFields,
    /// Frames of a clip; sizes the position table (MinD-Video: 6).
    #[serde(default = "d_frames")]
    pub num_frames: usize,
    /// Frames of a tubelet (the Conv3d's temporal kernel and stride).
    #[serde(default = "d_tubelet")]
    pub tubelet_size: usize,
    /// `qv_bias` (transformers 5) or `qkv_bias` (the hub configs).
    #[serde(default = "d_true", alias = "qkv_bias")]
    pub qv_bias: bool,
    /// Mean-pool the tokens and apply `fc_norm` before the classifier; otherwise
    /// `videomae.layernorm` and the first token.
    #[serde(default = "d_true")]
    pub use_mean_pooling: bool,
    /// The class names in index order (from `id2label`).
    #[serde(skip)]
    pub labels: Vec<String>,
}

fn d_frames() -> usize {
    16
}
fn d_tubelet() -> usize {
    2
}

impl VideoMAEConfig {
    /// Reads and checks `config.json`; errors name the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let value: Value = read_json(path, "VideoMAE config")?;
        Self::from_value(&value, path)
    }

    /// Checks a parsed `config.json` (`model_type`, sizes, `id2label`, frames); `path` names it in
    /// errors ([`ModelError::Config`]).
    pub fn from_value(value: &Value, path: &Path) -> Result<Self> {
        let bad = |message: String| ModelError::Config {
            path: path.to_path_buf(),
            what: "VideoMAE config".into(),
            message,
        };
        let object = value
            .as_object()
            .ok_or_else(|| bad("expected a JSON object".into()))?;
        if let Some(kind) = object.get("model_type").and_then(Value::as_str) {
            if kind != "videomae" {
                return Err(bad(format!(
                    "model_type is \"{kind}\", expected \"videomae\""
                )));
            }
        }
        // The flattened encoder fields first: `flatten` hides the field name in errors.
        let _: EncoderFields =
            brainrecon_nn::weights::from_json_value(value.clone()).map_err(bad)?;
        let mut config: VideoMAEConfig =
            brainrecon_nn::weights::from_json_value(value.clone()).map_err(bad)?;
        config.labels = read_labels(object).map_err(bad)?;
        config.encoder.check(config.labels.len()).map_err(bad)?;
        config.check_frames().map_err(bad)?;
        Ok(config)
    }

    fn check_frames(&self) -> std::result::Result<(), String> {
        use brainrecon_nn::config_bounds::positive;
        positive("num_frames", self.num_frames, 4096)?;
        if self.tubelet_size == 0 || self.num_frames < self.tubelet_size {
            return Err(format!(
                "tubelet_size: expected an integer in 1..={} (num_frames), found {}",
                self.num_frames, self.tubelet_size
            ));
        }
        // The sinusoidal position table is tokens × hidden floats: keep it under 1 GiB.
        let floats = self.num_patches() as u64 * self.encoder.hidden_size as u64;
        if floats > 1 << 28 {
            return Err(format!(
                "num_frames: expected at most {} tokens of width {}, found {} \
                 (num_frames / tubelet_size × patches)",
                (1u64 << 28) / self.encoder.hidden_size.max(1) as u64,
                self.encoder.hidden_size,
                self.num_patches()
            ));
        }
        Ok(())
    }

    /// The same model for clips of `frames` frames, as `from_pretrained(..., num_frames=n)`.
    pub fn with_num_frames(&self, frames: usize) -> Result<Self> {
        let config = VideoMAEConfig {
            num_frames: frames,
            ..self.clone()
        };
        config.check_frames().map_err(ModelError::Invalid)?;
        Ok(config)
    }

    /// Classes of the head.
    pub fn num_labels(&self) -> usize {
        self.labels.len()
    }

    /// Tokens per clip: (num_frames / tubelet_size) · grid.
    pub fn num_patches(&self) -> usize {
        let (gh, gw) = self.encoder.grid();
        (self.num_frames / self.tubelet_size) * gh * gw
    }
}

/// transformers' `get_sinusoid_encoding_table(n, d)`: [n, d] f32.
pub fn sinusoid_table(n: usize, d: usize) -> Vec<f32> {
    let mut table = Vec::with_capacity(n * d);
    for pos in 0..n {
        for j in 0..d {
            let angle = pos as f64 / 10000f64.powf((2 * (j / 2)) as f64 / d as f64);
            table.push(if j % 2 == 0 { angle.sin() } else { angle.cos() } as f32);
        }
    }
    table
}

/// Non-overlapping tubelets of [B, T, C, H, W] clips, [B, (T/t)·gh·gw, C·t·ph·pw], the tokens
/// in (time, row, column) order and each tubelet in a Conv3d kernel's (channel, time, row,
/// column) order. Frames, rows and columns past the last whole tubelet are dropped.
pub fn tubelets(x: &Tensor, t: usize, (ph, pw): (usize, usize)) -> Result<Tensor> {
    let (b, frames, c, h, w) = x.dims5()?;
    let (gt, gh, gw) = (frames / t, h / ph, w / pw);
    let x = x
        .narrow(1, 0, gt * t)?
        .narrow(3, 0, gh * ph)?
        .narrow(4, 0, gw * pw)?;
    // [B·gt, t, C, gh, ph, gw, pw] → [B·gt, gh, gw, C, t, ph, pw]
    Ok(x.reshape(vec![b * gt, t, c, gh, ph, gw, pw])?
        .permute([0, 3, 5, 2, 1, 4, 6])?
        .reshape((b, gt * gh * gw, c * t * ph * pw))?)
}

/// `videomae.embeddings`.
#[derive(Clone, Debug)]
pub struct VideoMAEEmbeddings {
    /// `patch_embeddings.projection` as a linear map over flattened tubelets.
    pub projection: Linear,
    /// The sinusoidal table, [1, num_patches, d].
    pub position_embeddings: Tensor,
    /// Frames of a tubelet.
    pub tubelet_size: usize,
    /// Patch (height, width).
    pub patch: (usize, usize),
}

impl VideoMAEEmbeddings {
    /// Builds the tubelet projection from `patch_embeddings.projection` under `vb` and computes the
    /// sinusoidal table; errors on a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, c: &VideoMAEConfig) -> Result<Self> {
        let d = c.encoder.hidden_size;
        let (ph, pw) = c.encoder.patch_size.hw();
        let t = c.tubelet_size;
        let proj = vb.pp("patch_embeddings").pp("projection");
        let kernel = weight(&proj, (d, c.encoder.num_channels, t, ph, pw), "weight")?;
        let bias = weight(&proj, d, "bias")?;
        let n = c.num_patches();
        let table = Tensor::from_vec(sinusoid_table(n, d), (1, n, d), kernel.device())?
            .to_dtype(kernel.dtype())?;
        Ok(VideoMAEEmbeddings {
            projection: Linear::from_tensors(
                kernel.reshape((d, c.encoder.num_channels * t * ph * pw))?,
                Some(bias),
            ),
            position_embeddings: table,
            tubelet_size: t,
            patch: (ph, pw),
        })
    }

    /// [B, T, C, H, W] → [B, num_patches, d].
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let tokens =
            self.projection
                .forward(&tubelets(pixel_values, self.tubelet_size, self.patch)?)?;
        Ok(tokens.broadcast_add(&self.position_embeddings)?)
    }
}

/// One layer's query/key/value: key without bias; the query and value biases under either
/// name (`q_bias` / `query.bias`).
fn videomae_attention(vb: &VarBuilder, d: usize, qv_bias: bool) -> Result<SelfAttention> {
    let at = vb.pp("attention").pp("attention");
    let projection = |name: &str, legacy_bias: &str| -> Result<Linear> {
        let p = at.pp(name);
        let w = weight(&p, (d, d), "weight")?;
        let bias = if !qv_bias {
            None
        } else if at.contains_tensor(legacy_bias) {
            Some(weight(&at, d, legacy_bias)?)
        } else {
            Some(weight(&p, d, "bias")?)
        };
        Ok(Linear::from_tensors(w, bias))
    };
    Ok(SelfAttention {
        query: projection("query", "q_bias")?,
        key: Linear::new(at.pp("key"), d, d, false)?,
        value: projection("value", "v_bias")?,
    })
}

/// The classification head: mean pooling + `fc_norm`, or `videomae.layernorm` + first token.
#[derive(Clone, Debug)]
pub enum Pooling {
    /// `fc_norm` (eps 1e-5) of the token mean.
    Mean(LayerNorm),
    /// `videomae.layernorm` of the sequence, then its first token.
    FirstToken(LayerNorm),
}

/// transformers' `VideoMAEForVideoClassification`.
#[derive(Clone, Debug)]
pub struct VideoMAEForVideoClassification {
    /// `videomae.embeddings`.
    pub embeddings: VideoMAEEmbeddings,
    /// `videomae.encoder.layer.N`.
    pub layers: Vec<EncoderLayer>,
    /// The head's normalisation and pooling.
    pub pooling: Pooling,
    /// `classifier`: Linear d → num_labels.
    pub classifier: Linear,
    /// The model's config.
    pub config: VideoMAEConfig,
}

/// torch's `nn.LayerNorm` default eps, which `fc_norm` keeps.
const FC_NORM_EPS: f64 = 1e-5;

impl VideoMAEForVideoClassification {
    /// `vb` at the checkpoint root (`videomae.…`, `fc_norm.…`, `classifier.…`).
    pub fn new(vb: VarBuilder, config: &VideoMAEConfig) -> Result<Self> {
        let root = vb.pp("videomae");
        let d = config.encoder.hidden_size;
        let dims = config.encoder.layer_dims()?;
        let layers = (0..config.encoder.num_hidden_layers)
            .map(|i| {
                let lvb = root.pp("encoder").pp("layer").pp(i);
                let attention = videomae_attention(&lvb, d, config.qv_bias)?;
                EncoderLayer::with_attention(lvb, &dims, attention)
            })
            .collect::<Result<Vec<_>>>()?;
        let pooling = if config.use_mean_pooling {
            Pooling::Mean(LayerNorm::new(vb.pp("fc_norm"), d, FC_NORM_EPS, true)?)
        } else {
            Pooling::FirstToken(LayerNorm::new(
                root.pp("layernorm"),
                d,
                config.encoder.layer_norm_eps,
                true,
            )?)
        };
        Ok(VideoMAEForVideoClassification {
            embeddings: VideoMAEEmbeddings::new(root.pp("embeddings"), config)?,
            layers,
            pooling,
            classifier: Linear::new(vb.pp("classifier"), d, config.num_labels(), true)?,
            config: config.clone(),
        })
    }

    /// A folder with `config.json` and `model.safetensors`, in f32; `num_frames` overrides the
    /// config's (MinD-Video: 6).
    pub fn from_dir(dir: &Path, num_frames: Option<usize>, device: &Device) -> Result<Self> {
        let mut config = VideoMAEConfig::from_file(&dir.join("config.json"))?;
        if let Some(frames) = num_frames {
            config = config.with_num_frames(frames)?;
        }
        let weights = Weights::from_files(&component_files(dir, false)?, DType::F32, device)?;
        Self::new(weights.var_builder(), &config).map_err(|e| in_file(e, &weights))
    }

    /// A folder or a model id in the Hugging Face cache
    /// (`MCG-NJU/videomae-base-finetuned-kinetics`), with its processor
    /// (`preprocessor_config.json`, else `VideoMAEImageProcessor`'s defaults).
    pub fn load(
        name_or_dir: &str,
        num_frames: Option<usize>,
        device: &Device,
    ) -> Result<(Self, ImageProcessor)> {
        let dir = resolve_model_folder(
            name_or_dir,
            "a VideoMAEForVideoClassification folder",
            "config.json model.safetensors preprocessor_config.json",
        )?;
        let model = Self::from_dir(&dir, num_frames, device)?;
        let processor = ImageProcessor::from_dir(&dir, &ProcessorDefaults::VIDEOMAE)?;
        Ok((model, processor))
    }

    /// `pixel_values` [B, T, C, H, W] (transformers' layout: frames before channels) with
    /// T = `num_frames` → logits [B, num_labels]. One clip's
    /// [`ImageProcessor::pixel_values`] of its T frames is [1, T, C, H, W] as it stands.
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let (h, w) = c.encoder.image_size.hw();
        let dims = pixel_values.dims();
        if dims.len() != 5
            || dims[1] != c.num_frames
            || dims[2] != c.encoder.num_channels
            || dims[3] != h
            || dims[4] != w
        {
            return Err(ModelError::Invalid(format!(
                "pixel_values have shape {dims:?}, this VideoMAE classifier takes [B, {}, {}, \
                 {h}, {w}] (num_frames {}; load it with the clip's frame count to change it)",
                c.num_frames, c.encoder.num_channels, c.num_frames
            )));
        }
        let x = pixel_values.to_dtype(self.classifier.weight.dtype())?;
        let mut hidden = self.embeddings.forward(&x)?;
        for layer in &self.layers {
            hidden = layer.forward(&hidden)?;
        }
        let (b, _, d) = hidden.dims3()?;
        let pooled = match &self.pooling {
            Pooling::Mean(fc_norm) => fc_norm.forward(&hidden.mean(1)?)?,
            Pooling::FirstToken(norm) => norm.forward(&hidden)?.narrow(1, 0, 1)?.reshape((b, d))?,
        };
        self.classifier.forward(&pooled)
    }
}
