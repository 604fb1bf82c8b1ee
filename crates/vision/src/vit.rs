//! transformers' `ViTForImageClassification` (inference), the frame classifier of MinD-Video's
//! 2-way-I / 50-way-I scores (`google/vit-base-patch16-224`, ImageNet-1k).
//!
//! `vit.embeddings`: a patch convolution (stride = kernel = `patch_size`, with bias) as a matmul
//! over non-overlapping patches, the `cls_token` in front, learned `position_embeddings`;
//! `vit.encoder.layer.N`: pre-norm layers (`layernorm_before`, self-attention
//! `attention.attention.{query,key,value}` + `attention.output.dense`, residual,
//! `layernorm_after`, `intermediate.dense` + activation, `output.dense`, residual);
//! `vit.layernorm`, then `classifier` on the class token. The encoder layer is shared with
//! VideoMAE ([`crate::videomae`]), whose key projection has no bias.
//!
//! Weights: a folder with `config.json` and `model.safetensors` (transformers' layout), or a
//! model id in the Hugging Face cache; the processor is [`ImageProcessor`] with
//! [`ProcessorDefaults::VIT`].

use std::path::Path;

use brainrecon_nn::layers::{gelu, gelu_tanh, multi_head_attention, quick_gelu, LayerNorm, Linear};
use brainrecon_nn::weights::{component_files, read_json, resolve_model_folder, Weights};
use brainrecon_nn::{ModelError, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;
use serde_json::Value;

use crate::preprocess::{ImageProcessor, ProcessorDefaults};

/// An activation named by `hidden_act`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`: exact (erf) GELU.
    Gelu,
    /// `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`: the tanh approximation.
    GeluTanh,
    /// `quick_gelu`: `x · σ(1.702 x)` (OpenAI CLIP's).
    QuickGelu,
    /// `relu`.
    Relu,
    /// `silu`, `swish`.
    Silu,
}

impl Activation {
    /// The activation of a `hidden_act` name; errors list the supported names.
    pub fn parse(name: &str) -> std::result::Result<Self, String> {
        Ok(match name {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "quick_gelu" => Activation::QuickGelu,
            "relu" => Activation::Relu,
            "silu" | "swish" => Activation::Silu,
            other => {
                return Err(format!(
                    "hidden_act \"{other}\" is not supported (gelu, gelu_new, gelu_pytorch_tanh, \
                     quick_gelu, relu, silu)"
                ))
            }
        })
    }

    /// Applies the activation elementwise.
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Activation::Gelu => gelu(x)?,
            Activation::GeluTanh => gelu_tanh(x)?,
            Activation::QuickGelu => quick_gelu(x)?,
            Activation::Relu => x.relu()?,
            Activation::Silu => brainrecon_nn::layers::silu(x)?,
        })
    }
}

/// `image_size` / `patch_size` as transformers accepts them: one number or [height, width].
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Size2 {
    /// One number: a square.
    Square(usize),
    /// [height, width].
    Pair([usize; 2]),
}

impl Size2 {
    /// (height, width).
    pub fn hw(self) -> (usize, usize) {
        match self {
            Size2::Square(n) => (n, n),
            Size2::Pair([h, w]) => (h, w),
        }
    }
}

/// transformers' `ViTConfig` (the fields inference needs; defaults are ViT-B/16's).
#[derive(Clone, Debug, Deserialize)]
pub struct ViTConfig {
    /// The encoder's fields (top-level keys of `config.json`).
    #[serde(flatten)]
    pub encoder: EncoderFields,
    /// Biases on the query, key and value projections.
    #[serde(default = "d_true")]
    pub qkv_bias: bool,
    /// The class names in index order (from `id2label`); their count is `num_labels`.
    #[serde(skip)]
    pub labels: Vec<String>,
}

fn d_hidden() -> usize {
    768
}
fn d_layers() -> usize {
    12
}
fn d_heads() -> usize {
    12
}
fn d_intermediate() -> usize {
    3072
}
fn d_act() -> String {
    "gelu".into()
}
fn d_eps() -> f64 {
    1e-12
}
fn d_image() -> Size2 {
    Size2::Square(224)
}
fn d_patch() -> Size2 {
    Size2::Square(16)
}
fn d_channels() -> usize {
    3
}
pub(crate) fn d_true() -> bool {
    true
}

/// The class names of a transformers config: `id2label` sorted by index, else `num_labels`
/// placeholders `LABEL_i` (transformers' default of 2 when neither is given).
pub(crate) fn read_labels(
    object: &serde_json::Map<String, Value>,
) -> std::result::Result<Vec<String>, String> {
    if let Some(Value::Object(map)) = object.get("id2label") {
        let mut pairs = Vec::with_capacity(map.len());
        for (k, v) in map {
            let index: usize = k
                .parse()
                .map_err(|_| format!("id2label key \"{k}\" is not a class index"))?;
            let name = v
                .as_str()
                .ok_or_else(|| format!("id2label[{k}] is {v}, expected a string"))?;
            pairs.push((index, name.to_string()));
        }
        pairs.sort();
        if pairs.iter().enumerate().any(|(i, (k, _))| i != *k) {
            return Err("id2label does not number its classes 0..n".into());
        }
        if let Some(n) = object.get("num_labels").and_then(Value::as_u64) {
            if n as usize != pairs.len() {
                return Err(format!(
                    "num_labels {n} but id2label has {} classes",
                    pairs.len()
                ));
            }
        }
        return Ok(pairs.into_iter().map(|(_, name)| name).collect());
    }
    let n = match object.get("num_labels") {
        None | Some(Value::Null) => 2,
        Some(v) => v
            .as_u64()
            .filter(|&n| n <= MAX_LABELS as u64)
            .ok_or_else(|| {
                format!("num_labels: expected an integer in 0..={MAX_LABELS}, found {v}")
            })? as usize,
    };
    Ok((0..n).map(|i| format!("LABEL_{i}")).collect())
}

/// Shared checks of the ViT-style configs: every size bounded (hostile `config.json` files),
/// heads dividing the width, patches fitting the image, at most 16384 patches.
pub(crate) fn check_dims(
    hidden: usize,
    heads: usize,
    image: (usize, usize),
    patch: (usize, usize),
    channels: usize,
    labels: usize,
) -> std::result::Result<(), String> {
    use brainrecon_nn::config_bounds::*;
    positive("hidden_size", hidden, MAX_CHANNELS)?;
    heads_divide("num_attention_heads", heads, hidden)?;
    positive("image_size", image.0.max(image.1), MAX_IMAGE_SIDE)?;
    positive("image_size", image.0.min(image.1), MAX_IMAGE_SIDE)?;
    positive("patch_size", patch.0, image.0)?;
    positive("patch_size", patch.1, image.1)?;
    let patches = (image.0 / patch.0) * (image.1 / patch.1);
    positive("patch_size (patches per image)", patches, 16_384)?;
    positive("num_channels", channels, MAX_CHANNELS)?;
    positive("num_labels", labels, MAX_LABELS)?;
    Ok(())
}

/// Classes of a classification head (each gets a name string).
pub(crate) const MAX_LABELS: usize = 1_000_000;

impl ViTConfig {
    /// Parses `config.json`; errors name the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let value: Value = read_json(path, "ViT config")?;
        Self::from_value(&value, path)
    }

    /// Checks a parsed `config.json` (`model_type`, sizes, `id2label`); `path` names it in errors
    /// ([`ModelError::Config`]).
    pub fn from_value(value: &Value, path: &Path) -> Result<Self> {
        let bad = |message: String| ModelError::Config {
            path: path.to_path_buf(),
            what: "ViT config".into(),
            message,
        };
        let object = value
            .as_object()
            .ok_or_else(|| bad("expected a JSON object".into()))?;
        if let Some(kind) = object.get("model_type").and_then(Value::as_str) {
            if kind != "vit" {
                return Err(bad(format!("model_type is \"{kind}\", expected \"vit\"")));
            }
        }
        // The flattened encoder fields first: `flatten` hides the field name in errors.
        let _: EncoderFields =
            brainrecon_nn::weights::from_json_value(value.clone()).map_err(bad)?;
        let mut config: ViTConfig =
            brainrecon_nn::weights::from_json_value(value.clone()).map_err(bad)?;
        config.labels = read_labels(object).map_err(bad)?;
        config.encoder.check(config.labels.len()).map_err(bad)?;
        Ok(config)
    }

    /// Classes of the head.
    pub fn num_labels(&self) -> usize {
        self.labels.len()
    }
}

/// The encoder fields of transformers' ViT-family configs (ViT, VideoMAE), read from the top
/// level of `config.json`; defaults are the base models'.
#[derive(Clone, Debug, Deserialize)]
pub struct EncoderFields {
    /// d: token width.
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    /// Encoder layers.
    #[serde(default = "d_layers")]
    pub num_hidden_layers: usize,
    /// Attention heads (dividing `hidden_size`).
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    /// Width of the MLP's hidden layer.
    #[serde(default = "d_intermediate")]
    pub intermediate_size: usize,
    /// The MLP's activation, an [`Activation`] name.
    #[serde(default = "d_act")]
    pub hidden_act: String,
    /// Epsilon of the LayerNorms.
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
    /// Input image size (pixels).
    #[serde(default = "d_image")]
    pub image_size: Size2,
    /// Patch size (pixels).
    #[serde(default = "d_patch")]
    pub patch_size: Size2,
    /// Channels of the input images.
    #[serde(default = "d_channels")]
    pub num_channels: usize,
}

impl EncoderFields {
    /// transformers' constraints on the fields, for a head of `labels` classes.
    pub(crate) fn check(&self, labels: usize) -> std::result::Result<(), String> {
        use brainrecon_nn::config_bounds::*;
        Activation::parse(&self.hidden_act)?;
        positive("num_hidden_layers", self.num_hidden_layers, MAX_LAYERS)?;
        positive("intermediate_size", self.intermediate_size, MAX_FFN)?;
        epsilon("layer_norm_eps", self.layer_norm_eps)?;
        check_dims(
            self.hidden_size,
            self.num_attention_heads,
            self.image_size.hw(),
            self.patch_size.hw(),
            self.num_channels,
            labels,
        )
    }

    /// Patches per column and per row (transformers floors: trailing pixels are ignored).
    pub fn grid(&self) -> (usize, usize) {
        let ((h, w), (ph, pw)) = (self.image_size.hw(), self.patch_size.hw());
        (h / ph, w / pw)
    }

    /// The sizes of each encoder layer.
    pub(crate) fn layer_dims(&self) -> Result<LayerDims> {
        Ok(LayerDims {
            hidden: self.hidden_size,
            intermediate: self.intermediate_size,
            heads: self.num_attention_heads,
            activation: Activation::parse(&self.hidden_act).map_err(ModelError::Invalid)?,
            eps: self.layer_norm_eps,
        })
    }
}

/// The sizes of one encoder layer.
#[derive(Clone, Copy, Debug)]
pub struct LayerDims {
    /// d: token width.
    pub hidden: usize,
    /// Width of the MLP's hidden layer.
    pub intermediate: usize,
    /// Attention heads.
    pub heads: usize,
    /// The MLP's activation.
    pub activation: Activation,
    /// Epsilon of the LayerNorms.
    pub eps: f64,
}

/// `attention.attention` of a layer: the query, key and value projections.
#[derive(Clone, Debug)]
pub struct SelfAttention {
    /// `query`: Linear d → d.
    pub query: Linear,
    /// `key`: Linear d → d.
    pub key: Linear,
    /// `value`: Linear d → d.
    pub value: Linear,
}

/// `encoder.layer.N` of ViT (and VideoMAE).
#[derive(Clone, Debug)]
pub struct EncoderLayer {
    /// LayerNorm before the attention.
    pub layernorm_before: LayerNorm,
    /// The query, key and value projections.
    pub attention: SelfAttention,
    /// `attention.output.dense`.
    pub attention_output: Linear,
    /// LayerNorm before the MLP.
    pub layernorm_after: LayerNorm,
    /// `intermediate.dense`.
    pub intermediate: Linear,
    /// `output.dense`.
    pub output: Linear,
    /// Attention heads.
    pub heads: usize,
    /// The MLP's activation.
    pub activation: Activation,
}

impl EncoderLayer {
    /// ViT's layer: query, key and value all with bias when `qkv_bias`.
    pub fn new(vb: VarBuilder, dims: &LayerDims, qkv_bias: bool) -> Result<Self> {
        let at = vb.pp("attention").pp("attention");
        let d = dims.hidden;
        let attention = SelfAttention {
            query: Linear::new(at.pp("query"), d, d, qkv_bias)?,
            key: Linear::new(at.pp("key"), d, d, qkv_bias)?,
            value: Linear::new(at.pp("value"), d, d, qkv_bias)?,
        };
        Self::with_attention(vb, dims, attention)
    }

    /// A layer around projections already built (VideoMAE's have no key bias).
    pub fn with_attention(
        vb: VarBuilder,
        dims: &LayerDims,
        attention: SelfAttention,
    ) -> Result<Self> {
        let d = dims.hidden;
        Ok(EncoderLayer {
            layernorm_before: LayerNorm::new(vb.pp("layernorm_before"), d, dims.eps, true)?,
            attention,
            attention_output: Linear::new(vb.pp("attention").pp("output").pp("dense"), d, d, true)?,
            layernorm_after: LayerNorm::new(vb.pp("layernorm_after"), d, dims.eps, true)?,
            intermediate: Linear::new(
                vb.pp("intermediate").pp("dense"),
                d,
                dims.intermediate,
                true,
            )?,
            output: Linear::new(vb.pp("output").pp("dense"), dims.intermediate, d, true)?,
            heads: dims.heads,
            activation: dims.activation,
        })
    }

    /// [B, L, d] → [B, L, d].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.layernorm_before.forward(x)?;
        let a = &self.attention;
        let context = multi_head_attention(
            &a.query.forward(&h)?,
            &a.key.forward(&h)?,
            &a.value.forward(&h)?,
            self.heads,
            false,
            None,
            false,
        )?;
        let x = (self.attention_output.forward(&context)? + x)?;
        let h = self.layernorm_after.forward(&x)?;
        let h = self.activation.apply(&self.intermediate.forward(&h)?)?;
        Ok((self.output.forward(&h)? + x)?)
    }
}

/// Non-overlapping patches of [B, C, H, W] pixels, [B, gh·gw, C·ph·pw] in a convolution
/// kernel's (channel, row, column) order; rows and columns past the last whole patch are
/// dropped, as a strided convolution drops them.
pub fn patches_2d(x: &Tensor, (ph, pw): (usize, usize)) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (gh, gw) = (h / ph, w / pw);
    let x = x.narrow(2, 0, gh * ph)?.narrow(3, 0, gw * pw)?;
    Ok(x.reshape(vec![b, c, gh, ph, gw, pw])?
        .permute([0, 2, 4, 1, 3, 5])?
        .reshape((b, gh * gw, c * ph * pw))?)
}

/// `vit.embeddings`.
#[derive(Clone, Debug)]
pub struct ViTEmbeddings {
    /// `cls_token`: [1, 1, d].
    pub cls_token: Tensor,
    /// `patch_embeddings.projection` as a linear map over flattened patches.
    pub projection: Linear,
    /// `position_embeddings`: [1, patches + 1, d], learned.
    pub position_embeddings: Tensor,
    /// Patch (height, width).
    pub patch: (usize, usize),
}

impl ViTEmbeddings {
    /// Reads `cls_token`, `patch_embeddings.projection` and `position_embeddings` under `vb`;
    /// errors on a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, c: &ViTConfig) -> Result<Self> {
        let d = c.encoder.hidden_size;
        let (ph, pw) = c.encoder.patch_size.hw();
        let (gh, gw) = c.encoder.grid();
        let proj = vb.pp("patch_embeddings").pp("projection");
        let weight =
            brainrecon_nn::layers::weight(&proj, (d, c.encoder.num_channels, ph, pw), "weight")?;
        let bias = brainrecon_nn::layers::weight(&proj, d, "bias")?;
        Ok(ViTEmbeddings {
            cls_token: brainrecon_nn::layers::weight(&vb, (1, 1, d), "cls_token")?,
            projection: Linear::from_tensors(
                weight.reshape((d, c.encoder.num_channels * ph * pw))?,
                Some(bias),
            ),
            position_embeddings: brainrecon_nn::layers::weight(
                &vb,
                (1, gh * gw + 1, d),
                "position_embeddings",
            )?,
            patch: (ph, pw),
        })
    }

    /// [B, C, H, W] → [B, patches + 1, d].
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let tokens = self
            .projection
            .forward(&patches_2d(pixel_values, self.patch)?)?;
        let (b, _, d) = tokens.dims3()?;
        let cls = self.cls_token.broadcast_as((b, 1, d))?.contiguous()?;
        Ok(Tensor::cat(&[&cls, &tokens], 1)?.broadcast_add(&self.position_embeddings)?)
    }
}

/// transformers' `ViTForImageClassification`.
#[derive(Clone, Debug)]
pub struct ViTForImageClassification {
    /// `vit.embeddings`.
    pub embeddings: ViTEmbeddings,
    /// `vit.encoder.layer.N`.
    pub layers: Vec<EncoderLayer>,
    /// `vit.layernorm`.
    pub layernorm: LayerNorm,
    /// `classifier`: Linear d → num_labels, on the class token.
    pub classifier: Linear,
    /// The model's config.
    pub config: ViTConfig,
}

impl ViTForImageClassification {
    /// `vb` at the checkpoint root (`vit.…`, `classifier.…`).
    pub fn new(vb: VarBuilder, config: &ViTConfig) -> Result<Self> {
        let vit = vb.pp("vit");
        let dims = config.encoder.layer_dims()?;
        let layers = (0..config.encoder.num_hidden_layers)
            .map(|i| EncoderLayer::new(vit.pp("encoder").pp("layer").pp(i), &dims, config.qkv_bias))
            .collect::<Result<Vec<_>>>()?;
        Ok(ViTForImageClassification {
            embeddings: ViTEmbeddings::new(vit.pp("embeddings"), config)?,
            layers,
            layernorm: LayerNorm::new(
                vit.pp("layernorm"),
                config.encoder.hidden_size,
                config.encoder.layer_norm_eps,
                true,
            )?,
            classifier: Linear::new(
                vb.pp("classifier"),
                config.encoder.hidden_size,
                config.num_labels(),
                true,
            )?,
            config: config.clone(),
        })
    }

    /// A folder with `config.json` and `model.safetensors`, in f32.
    pub fn from_dir(dir: &Path, device: &Device) -> Result<Self> {
        let config = ViTConfig::from_file(&dir.join("config.json"))?;
        let weights = Weights::from_files(&component_files(dir, false)?, DType::F32, device)?;
        Self::new(weights.var_builder(), &config).map_err(|e| in_file(e, &weights))
    }

    /// A folder or a model id in the Hugging Face cache (`google/vit-base-patch16-224`), with
    /// its processor (`preprocessor_config.json`, else `ViTImageProcessor`'s defaults).
    pub fn load(name_or_dir: &str, device: &Device) -> Result<(Self, ImageProcessor)> {
        let dir = resolve_model_folder(
            name_or_dir,
            "a ViTForImageClassification folder",
            "config.json model.safetensors preprocessor_config.json",
        )?;
        let model = Self::from_dir(&dir, device)?;
        let processor = ImageProcessor::from_dir(&dir, &ProcessorDefaults::VIT)?;
        Ok((model, processor))
    }

    /// `pixel_values` [B, C, H, W] at the configured image size → logits [B, num_labels].
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let (h, w) = c.encoder.image_size.hw();
        let dims = pixel_values.dims();
        if dims.len() != 4 || dims[1] != c.encoder.num_channels || dims[2] != h || dims[3] != w {
            return Err(ModelError::Invalid(format!(
                "pixel_values have shape {dims:?}, the ViT classifier takes [B, {}, {h}, {w}]",
                c.encoder.num_channels
            )));
        }
        let x = pixel_values.to_dtype(self.classifier.weight.dtype())?;
        let mut hidden = self.embeddings.forward(&x)?;
        for layer in &self.layers {
            hidden = layer.forward(&hidden)?;
        }
        let hidden = self.layernorm.forward(&hidden)?;
        let (b, _, d) = hidden.dims3()?;
        self.classifier
            .forward(&hidden.narrow(1, 0, 1)?.reshape((b, d))?)
    }
}

/// Names the weight file in a module error.
pub(crate) fn in_file(e: ModelError, weights: &Weights) -> ModelError {
    e.in_file(weights.path())
}

#[cfg(test)]
mod hostile_tests {
    use super::*;
    use brainrecon_nn::config_bounds::hostile::problems;

    /// Every number of small ViT and VideoMAE configs set to 0, -1, huge or the wrong type: no
    /// panic; huge values and wrong types refused, naming the field.
    #[test]
    fn every_numeric_field_is_bounded() {
        let path = Path::new("vit/config.json");
        let vit = serde_json::json!({"model_type": "vit", "hidden_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
            "image_size": 32, "patch_size": 8, "num_channels": 3, "layer_norm_eps": 1e-12,
            "num_labels": 3});
        let load = |v: &Value| {
            ViTConfig::from_value(v, path)
                .map(drop)
                .map_err(|e| e.to_string())
        };
        let found = problems(&vit, &[], &load);
        assert!(found.is_empty(), "{}", found.join("\n"));
        let mut videomae = vit.clone();
        videomae["model_type"] = "videomae".into();
        videomae["num_frames"] = 4.into();
        videomae["tubelet_size"] = 2.into();
        let load = |v: &Value| {
            crate::videomae::VideoMAEConfig::from_value(v, path)
                .map(drop)
                .map_err(|e| e.to_string())
        };
        let found = problems(&videomae, &[], &load);
        assert!(found.is_empty(), "{}", found.join("\n"));
    }
}
