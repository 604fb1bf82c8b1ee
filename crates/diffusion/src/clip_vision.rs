//! The CLIP image encoder as transformers' `CLIPVisionModelWithProjection` computes it, and the
//! image preprocessing of its `CLIPImageProcessor`.
//!
//! ViT: a patch embedding (a convolution with stride = kernel = `patch_size`, no bias), a
//! learned class token and position embeddings, `pre_layrnorm` (sic, the checkpoint's name),
//! pre-norm encoder layers with bidirectional self-attention, then `post_layernorm` on the class
//! token and `visual_projection` (no bias) to `image_embeds`.
//!
//! Checkpoints: a full `CLIPModel` (e.g. `openai/clip-vit-large-patch14`: `config.json` nests
//! `vision_config` and sets the top-level `projection_dim`; tensors `vision_model.*`,
//! `visual_projection.weight` next to the text tower's) or a standalone
//! `CLIPVisionModelWithProjection` folder (diffusers' `image_encoder/`: `config.json` is the
//! vision config itself). Both name the tower `vision_model.…`; a checkpoint without that prefix
//! loads as well. Differentiable with respect to the pixels and the weights (nn's softmax and
//! layer norm have backward passes).

use brainrecon_formats::image::{Filter, RgbImage};
use brainrecon_vision::preprocess::{ImageProcessor, ProcessorDefaults};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use serde_json::Value;
use std::path::{Path, PathBuf};

use crate::clip::{Activation, ClipEncoderLayer, LayerDims};
use brainrecon_nn::layers::{self as nn, LayerNorm, Linear};
use brainrecon_nn::vision_tower::VisionTowerConfig;
use brainrecon_nn::weights::{cached_snapshot, component_files, hub_cache_dir, read_json, Weights};
use brainrecon_nn::{ModelError, Result};

/// OpenAI CLIP's channel means, RGB (transformers' `OPENAI_CLIP_MEAN`, as f32).
pub const OPENAI_CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// OpenAI CLIP's channel standard deviations, RGB (transformers' `OPENAI_CLIP_STD`, as f32).
pub const OPENAI_CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// transformers' `CLIPVisionConfig`: a ViT tower (its defaults: [`clip_vision_defaults`]).
pub type ClipVisionConfig = VisionTowerConfig;

/// transformers' `CLIPVisionConfig` defaults (those of ViT-B/32).
pub fn clip_vision_defaults() -> ClipVisionConfig {
    VisionTowerConfig {
        hidden_size: 768,
        intermediate_size: 3072,
        projection_dim: CLIP_PROJECTION_DIM,
        num_hidden_layers: 12,
        num_attention_heads: 12,
        num_channels: 3,
        image_size: 224,
        patch_size: 32,
        hidden_act: "quick_gelu".into(),
        layer_norm_eps: 1e-5,
    }
}

/// `CLIPConfig`'s default `projection_dim`.
const CLIP_PROJECTION_DIM: usize = 512;

const CONFIG_WHAT: &str = "CLIP vision config";

/// Reads `config.json` of a `CLIPVisionModelWithProjection` or of a full `CLIPModel`.
pub fn read_clip_vision_config(path: &Path) -> Result<ClipVisionConfig> {
    let value: Value = read_json(path, CONFIG_WHAT)?;
    parse_clip_vision_config(&value, path)
}

/// Parses either config layout; `path` names the origin in errors.
pub fn parse_clip_vision_config(value: &Value, path: &Path) -> Result<ClipVisionConfig> {
    let bad = |message: String| ModelError::Config {
        path: path.to_path_buf(),
        what: CONFIG_WHAT.into(),
        message,
    };
    let object = value
        .as_object()
        .ok_or_else(|| bad("expected a JSON object".into()))?;
    let model_type = object
        .get("model_type")
        .and_then(Value::as_str)
        .unwrap_or("");
    // Old CLIPConfig files may carry only `vision_config_dict`.
    let nested = ["vision_config", "vision_config_dict"]
        .iter()
        .find_map(|k| object.get(*k).filter(|v| v.is_object()));
    let config = if let Some(vision) = nested {
        let mut config = VisionTowerConfig::from_json(vision, &clip_vision_defaults())
            .map_err(|e| bad(format!("vision_config.{e}")))?;
        // A CLIPModel's visual_projection has the top-level projection_dim (CLIPConfig's
        // default 512); vision_config's own projection_dim is not what the weights use.
        config.projection_dim = match object.get("projection_dim") {
            None => CLIP_PROJECTION_DIM,
            Some(v) => v
                .as_u64()
                .ok_or_else(|| bad(format!("projection_dim {v} is not a whole number")))?
                as usize,
        };
        config
    } else if model_type == "clip" || object.contains_key("text_config") {
        return Err(bad(
            "missing vision_config: a CLIPModel config.json nests the vision tower's \
             settings under \"vision_config\""
                .into(),
        ));
    } else if model_type == "clip_text_model" {
        return Err(bad(
            "model_type clip_text_model is a CLIP text encoder, not an image encoder".into(),
        ));
    } else {
        VisionTowerConfig::from_json(value, &clip_vision_defaults()).map_err(bad)?
    };
    // Bounds every size-like field before any tensor is built (hostile `config.json` files).
    config.validate().map_err(bad)?;
    Activation::parse(&config.hidden_act).map_err(bad)?;
    Ok(config)
}

/// `embeddings`: `class_embedding` `[d]`, `patch_embedding.weight` `[d, C, p, p]` (no bias),
/// `position_embedding.weight` [patches + 1, d].
#[derive(Clone, Debug)]
pub struct ClipVisionEmbeddings {
    /// `class_embedding`: `[d]`.
    pub class_embedding: Tensor,
    /// `patch_embedding.weight`: [d, C, p, p].
    pub patch_embedding: Tensor,
    /// `position_embedding.weight`: [patches + 1, d].
    pub position_embedding: Tensor,
    /// S: side of the square input images, in pixels.
    pub image_size: usize,
    /// p: side of the square patches, in pixels.
    pub patch_size: usize,
}

impl ClipVisionEmbeddings {
    /// Reads `class_embedding`, `patch_embedding` and `position_embedding` under `vb`; errors on a
    /// tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, c: &ClipVisionConfig) -> Result<Self> {
        let d = c.hidden_size;
        Ok(ClipVisionEmbeddings {
            class_embedding: nn::weight(&vb, d, "class_embedding")?,
            patch_embedding: nn::weight(
                &vb.pp("patch_embedding"),
                (d, c.num_channels, c.patch_size, c.patch_size),
                "weight",
            )?,
            position_embedding: nn::weight(
                &vb.pp("position_embedding"),
                (c.num_positions(), d),
                "weight",
            )?,
            image_size: c.image_size,
            patch_size: c.patch_size,
        })
    }

    /// `pixel_values` [B, C, S, S] → [B, patches + 1, d].
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let (d, channels, p, _) = self.patch_embedding.dims4()?;
        let dims = pixel_values.dims().to_vec();
        let s = self.image_size;
        if dims.len() != 4 || dims[1] != channels || dims[2] != s || dims[3] != s {
            return Err(ModelError::Invalid(format!(
                "pixel_values have shape {dims:?}, the CLIP vision model takes [B, {channels}, \
                 {s}, {s}]"
            )));
        }
        let b = dims[0];
        let g = s / p;
        let x = pixel_values.to_dtype(self.patch_embedding.dtype())?;
        let x = if g * p != s {
            x.narrow(2, 0, g * p)?.narrow(3, 0, g * p)?
        } else {
            x
        };
        // A convolution whose stride equals its kernel is a matmul over non-overlapping
        // patches, flattened in the kernel's (channel, row, column) order.
        let patches = x
            .reshape(vec![b, channels, g, p, g, p])?
            .permute([0, 2, 4, 1, 3, 5])?
            .reshape((b, g * g, channels * p * p))?;
        let kernel = self.patch_embedding.reshape((d, channels * p * p))?;
        let patch_embeds = Linear::from_tensors(kernel, None).forward(&patches)?;
        let class = self
            .class_embedding
            .reshape((1, 1, d))?
            .broadcast_as((b, 1, d))?
            .contiguous()?;
        let tokens = Tensor::cat(&[&class, &patch_embeds], 1)?;
        Ok(tokens.broadcast_add(&self.position_embedding.unsqueeze(0)?)?)
    }
}

/// Everything the encoder computes.
#[derive(Clone, Debug)]
pub struct ClipVisionOutput {
    /// The projected pooled output, [B, projection_dim].
    pub image_embeds: Tensor,
    /// The last layer's output (not normalised), [B, patches + 1, d].
    pub last_hidden_state: Tensor,
    /// `post_layernorm` of the class token, [B, d].
    pub pooler_output: Tensor,
    /// The encoder's input (after `pre_layrnorm`) and each layer's output, N + 1 tensors, as
    /// transformers' `hidden_states` (IP-Adapter Plus uses the penultimate one).
    pub hidden_states: Vec<Tensor>,
}

/// transformers' `CLIPVisionModelWithProjection`.
#[derive(Clone, Debug)]
pub struct ClipVisionModel {
    /// `embeddings`.
    pub embeddings: ClipVisionEmbeddings,
    /// `pre_layrnorm` (transformers' spelling), before the first layer.
    pub pre_layrnorm: LayerNorm,
    /// `encoder.layers`: full (not causal) self-attention.
    pub layers: Vec<ClipEncoderLayer>,
    /// `post_layernorm`, on the class token.
    pub post_layernorm: LayerNorm,
    /// `visual_projection`: [projection_dim, d], no bias.
    pub visual_projection: Linear,
    /// The model's config.
    pub config: ClipVisionConfig,
}

/// The prefix of the vision tower in these weights: `vision_model` (every hub CLIP checkpoint
/// and `save_pretrained` of `CLIPModel` / `CLIPVisionModelWithProjection`) or none.
pub fn clip_vision_prefix(weights: &Weights) -> &'static str {
    if weights.contains("vision_model.post_layernorm.weight")
        || weights.contains("vision_model.embeddings.class_embedding")
    {
        "vision_model"
    } else {
        ""
    }
}

impl ClipVisionModel {
    /// `vb` points at the checkpoint root: the tower is under `vision_prefix` (see
    /// [`clip_vision_prefix`]), `visual_projection` at the root.
    pub fn new(vb: VarBuilder, vision_prefix: &str, config: &ClipVisionConfig) -> Result<Self> {
        let tower = if vision_prefix.is_empty() {
            vb.clone()
        } else {
            vb.pp(vision_prefix)
        };
        let d = config.hidden_size;
        let dims = LayerDims {
            hidden: d,
            intermediate: config.intermediate_size,
            heads: config.num_attention_heads,
            activation: Activation::parse(&config.hidden_act).map_err(ModelError::Invalid)?,
            layer_norm_eps: config.layer_norm_eps,
            causal: false,
        };
        let layers = (0..config.num_hidden_layers)
            .map(|i| ClipEncoderLayer::with_dims(tower.pp("encoder").pp("layers").pp(i), &dims))
            .collect::<Result<Vec<_>>>()?;
        Ok(ClipVisionModel {
            embeddings: ClipVisionEmbeddings::new(tower.pp("embeddings"), config)?,
            pre_layrnorm: LayerNorm::new(tower.pp("pre_layrnorm"), d, config.layer_norm_eps, true)?,
            layers,
            post_layernorm: LayerNorm::new(
                tower.pp("post_layernorm"),
                d,
                config.layer_norm_eps,
                true,
            )?,
            visual_projection: Linear::new(
                vb.pp("visual_projection"),
                d,
                config.projection_dim,
                false,
            )?,
            config: config.clone(),
        })
    }

    /// Builds from a store, with or without the `vision_model.` prefix. Errors name the file.
    pub fn from_weights(weights: &Weights, config: &ClipVisionConfig) -> Result<Self> {
        Self::new(weights.var_builder(), clip_vision_prefix(weights), config)
            .map_err(|e| e.in_file(weights.path()))
    }

    /// A folder with `config.json` and `model[.fp16].safetensors` (an `image_encoder/` or a
    /// `CLIPModel` checkpoint).
    pub fn from_dir(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        check_dtype(dtype)?;
        let config = read_clip_vision_config(&dir.join("config.json"))?;
        let files = component_files(dir, dtype == DType::F16)?;
        let weights = Weights::from_files(&files, dtype, device)?;
        Self::from_weights(&weights, &config)
    }

    /// The dtype of the weights.
    pub fn dtype(&self) -> DType {
        self.embeddings.patch_embedding.dtype()
    }

    /// `pixel_values` [B, C, S, S] (as [`ClipImageProcessor::preprocess`] makes them) →
    /// `image_embeds` [B, projection_dim].
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let mut h = self
            .pre_layrnorm
            .forward(&self.embeddings.forward(pixel_values)?)?;
        for layer in &self.layers {
            h = layer.forward(&h)?;
        }
        let pooled = self.post_layernorm.forward(&class_token(&h)?)?;
        self.visual_projection.forward(&pooled)
    }

    /// All outputs, as `CLIPVisionModelWithProjection(pixel_values, output_hidden_states=True)`
    /// returns them.
    pub fn forward_full(&self, pixel_values: &Tensor) -> Result<ClipVisionOutput> {
        let mut hidden_states = vec![self
            .pre_layrnorm
            .forward(&self.embeddings.forward(pixel_values)?)?];
        for layer in &self.layers {
            let next = layer.forward(hidden_states.last().expect("non-empty"))?;
            hidden_states.push(next);
        }
        let last_hidden_state = hidden_states.last().expect("non-empty").clone();
        let pooler_output = self
            .post_layernorm
            .forward(&class_token(&last_hidden_state)?)?;
        let image_embeds = self.visual_projection.forward(&pooler_output)?;
        Ok(ClipVisionOutput {
            image_embeds,
            last_hidden_state,
            pooler_output,
            hidden_states,
        })
    }
}

/// The class token of [B, L, d] hidden states, [B, d].
fn class_token(h: &Tensor) -> Result<Tensor> {
    let d = h.dim(D::Minus1)?;
    let b = h.dim(0)?;
    Ok(h.narrow(1, 0, 1)?.reshape((b, d))?)
}

fn check_dtype(dtype: DType) -> Result<()> {
    if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
        return Err(ModelError::Invalid(format!(
            "dtype {dtype:?}: the CLIP image encoder runs in f32, f16 or bf16"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Preprocessing
// ---------------------------------------------------------------------------------------------

/// How the processor resizes before cropping (transformers' processors share it).
pub use brainrecon_vision::preprocess::{shortest_edge_size, ResizeTarget};

/// transformers' `CLIPImageProcessor` (`preprocessor_config.json`): resize (bicubic by
/// default), centre crop, rescale by 1/255, normalise. Resampling follows Pillow (see
/// [`RgbImage::resize_with`]), as `CLIPImageProcessorPil` does; transformers 5's default
/// torchvision backend differs from Pillow by at most one 8-bit level here and there.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipImageProcessor {
    /// `None` when `do_resize` is false.
    pub resize: Option<ResizeTarget>,
    /// Pillow's resampling filter of the resize (`resample`, bicubic by default).
    pub filter: Filter,
    /// (height, width); `None` when `do_center_crop` is false.
    pub crop: Option<(usize, usize)>,
    /// `None` when `do_rescale` is false.
    pub rescale_factor: Option<f32>,
    /// (mean, std); `None` when `do_normalize` is false.
    pub normalize: Option<([f32; 3], [f32; 3])>,
}

/// `CLIPImageProcessor`'s values for keys absent from `preprocessor_config.json`.
const CLIP_DEFAULTS: ProcessorDefaults = ProcessorDefaults {
    name: "CLIP image processor config",
    size: ResizeTarget::ShortestEdge(224),
    integer_size_is_square: false,
    do_center_crop: true,
    crop: (224, 224),
    mean: OPENAI_CLIP_MEAN,
    std: OPENAI_CLIP_STD,
    filter: Filter::Bicubic,
    filters: &[
        (3, Filter::Bicubic, "bicubic"),
        (1, Filter::Lanczos, "lanczos"),
    ],
};

impl ClipImageProcessor {
    /// OpenAI CLIP's processing for `image_size` (224 for the released models).
    pub fn openai(image_size: usize) -> Self {
        ClipImageProcessor {
            resize: Some(ResizeTarget::ShortestEdge(image_size)),
            filter: Filter::Bicubic,
            crop: Some((image_size, image_size)),
            rescale_factor: Some(1.0 / 255.0),
            normalize: Some((OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)),
        }
    }

    /// `preprocessor_config.json`; absent keys take `CLIPImageProcessor`'s defaults.
    pub fn from_file(path: &Path) -> Result<Self> {
        let value: Value = read_json(path, CLIP_DEFAULTS.name)?;
        Self::from_value(&value, path)
    }

    /// `dir/preprocessor_config.json` when present, else [`ClipImageProcessor::openai`].
    pub fn from_dir_or_openai(dir: &Path, image_size: usize) -> Result<Self> {
        let path = dir.join("preprocessor_config.json");
        if path.is_file() {
            Self::from_file(&path)
        } else {
            Ok(Self::openai(image_size))
        }
    }

    /// Parses a processor config with `CLIPImageProcessor`'s defaults (shortest edge 224,
    /// bicubic, centre crop 224, OpenAI's mean and std); `path` names it in errors.
    pub fn from_value(value: &Value, path: &Path) -> Result<Self> {
        let parsed = ImageProcessor::from_value(value, path, &CLIP_DEFAULTS)?;
        Ok(ClipImageProcessor {
            resize: parsed.resize,
            filter: parsed.filter,
            crop: parsed.crop,
            rescale_factor: parsed.rescale_factor.map(|r| r as f32),
            normalize: parsed.normalize,
        })
    }

    /// The size an image of `height` × `width` is resized to (before cropping).
    pub fn resized_size(&self, height: usize, width: usize) -> (usize, usize) {
        match self.resize {
            None => (height, width),
            Some(ResizeTarget::Exact { height, width }) => (height, width),
            Some(ResizeTarget::ShortestEdge(n)) => shortest_edge_size(height, width, n),
        }
    }

    /// Resized and cropped 8-bit pixels, what the model sees before normalisation.
    pub fn prepare(&self, image: &RgbImage) -> RgbImage {
        let (h, w) = self.resized_size(image.height, image.width);
        let resized = if (h, w) == (image.height, image.width) {
            image.clone()
        } else {
            image.resize_with(h, w, self.filter)
        };
        match self.crop {
            Some((ch, cw)) => resized.center_crop_to(ch, cw),
            None => resized,
        }
    }

    /// Rescales and normalises already prepared pixels: [1, 3, H, W] f32.
    pub fn normalize(&self, image: &RgbImage, device: &Device) -> Result<Tensor> {
        let scale = self.rescale_factor.unwrap_or(1.0);
        let (mean, std) = self.normalize.unwrap_or(([0.0; 3], [1.0; 3]));
        let (h, w) = (image.height, image.width);
        let mut planes = vec![0f32; 3 * h * w];
        for (i, px) in image.pixels.chunks_exact(3).enumerate() {
            for c in 0..3 {
                planes[c * h * w + i] = (px[c] as f32 * scale - mean[c]) / std[c];
            }
        }
        Ok(Tensor::from_vec(planes, (1, 3, h, w), device)?)
    }

    /// `pixel_values` [B, 3, H, W] f32 for a batch of images (they must all end up one size,
    /// which cropping ensures).
    pub fn preprocess(&self, images: &[RgbImage], device: &Device) -> Result<Tensor> {
        let prepared: Vec<RgbImage> = images.iter().map(|im| self.prepare(im)).collect();
        if let Some(first) = prepared.first() {
            if let Some(other) = prepared
                .iter()
                .find(|p| (p.height, p.width) != (first.height, first.width))
            {
                return Err(ModelError::Invalid(format!(
                    "images preprocess to {}×{} and {}×{}: a batch needs one size (set crop_size)",
                    first.height, first.width, other.height, other.width
                )));
            }
        } else {
            return Err(ModelError::Invalid("no images to preprocess".into()));
        }
        let tensors = prepared
            .iter()
            .map(|p| self.normalize(p, device))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&tensors, 0)?)
    }
}

/// OpenAI CLIP preprocessing of one 8-bit RGB image (row-major, interleaved, `height` ×
/// `width`): shortest side to `image_size` with Pillow-exact bicubic, centre crop, rescale,
/// normalise with the OpenAI mean and std. Returns [1, 3, image_size, image_size] f32.
pub fn preprocess(
    image_rgb8: &[u8],
    height: usize,
    width: usize,
    image_size: usize,
    device: &Device,
) -> Result<Tensor> {
    if height == 0 || width == 0 || image_rgb8.len() != height * width * 3 {
        return Err(ModelError::Invalid(format!(
            "{} bytes for a {height}×{width} RGB image",
            image_rgb8.len()
        )));
    }
    let image = RgbImage::new(height, width, image_rgb8.to_vec());
    ClipImageProcessor::openai(image_size).preprocess(&[image], device)
}

// ---------------------------------------------------------------------------------------------
// Finding a model
// ---------------------------------------------------------------------------------------------

/// The folder holding a CLIP image encoder, from `model`: a folder with `config.json` (an
/// `image_encoder/` or a `CLIPModel` checkpoint), a diffusers pipeline folder with
/// `image_encoder/`, a Hugging Face cache snapshot, or a model id in that cache (e.g.
/// `openai/clip-vit-large-patch14`). Nothing is downloaded.
pub fn resolve_clip_vision_dir(model: &str) -> Result<PathBuf> {
    let path = Path::new(model);
    if path.is_dir() {
        return encoder_folder(path);
    }
    if looks_like_model_id(model) {
        let hub = hub_cache_dir();
        return match cached_snapshot(&hub, model)? {
            Some(dir) => encoder_folder(&dir),
            None => Err(ModelError::ModelNotFound {
                model: model.to_string(),
                message: format!(
                    "not a folder, and not in the Hugging Face cache ({}; set HF_HOME or \
                     HF_HUB_CACHE to use another). brainrecon does not download: run \
                     `huggingface-cli download {model} config.json model.safetensors \
                     preprocessor_config.json` on a machine with network (then copy the \
                     cache), or pass a folder with config.json and model.safetensors",
                    hub.join(format!("models--{}", model.replace('/', "--")))
                        .display()
                ),
            }),
        };
    }
    Err(ModelError::ModelNotFound {
        model: model.to_string(),
        message: "no such folder, and not a model id of the form ORG/NAME".into(),
    })
}

fn encoder_folder(dir: &Path) -> Result<PathBuf> {
    if dir.join("config.json").is_file() {
        return Ok(dir.to_path_buf());
    }
    let sub = dir.join("image_encoder");
    if sub.join("config.json").is_file() {
        return Ok(sub);
    }
    Err(ModelError::MissingFile {
        path: dir.join("config.json"),
        what: "a CLIP image encoder folder has config.json and model.safetensors (or is a \
               diffusers pipeline with image_encoder/)"
            .into(),
    })
}

fn looks_like_model_id(model: &str) -> bool {
    let parts: Vec<&str> = model.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
}

/// Loads a CLIP image encoder and its preprocessing from a folder, a cache snapshot or a cached
/// model id (see [`resolve_clip_vision_dir`]). The processor comes from
/// `preprocessor_config.json` (looked for next to the weights, then in the pipeline root for
/// diffusers' `feature_extractor/`), else OpenAI's at the model's `image_size`.
pub fn load_clip_vision(
    model: &str,
    dtype: DType,
    device: &Device,
) -> Result<(ClipVisionModel, ClipImageProcessor)> {
    let dir = resolve_clip_vision_dir(model)?;
    let encoder = ClipVisionModel::from_dir(&dir, dtype, device)?;
    let image_size = encoder.config.image_size;
    let own = dir.join("preprocessor_config.json");
    let pipeline = dir
        .parent()
        .filter(|_| dir.ends_with("image_encoder"))
        .map(|root| {
            root.join("feature_extractor")
                .join("preprocessor_config.json")
        });
    let processor = match pipeline {
        Some(fe) if !own.is_file() && fe.is_file() => ClipImageProcessor::from_file(&fe)?,
        _ => ClipImageProcessor::from_dir_or_openai(&dir, image_size)?,
    };
    if let Some((h, w)) = processor.crop {
        if (h, w) != (image_size, image_size) {
            return Err(ModelError::Invalid(format!(
                "{}: the processor crops to {h}×{w}, the model takes {image_size}×{image_size}",
                dir.display()
            )));
        }
    }
    Ok((encoder, processor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_edge_follows_transformers() {
        assert_eq!(shortest_edge_size(480, 640, 224), (224, 298));
        assert_eq!(shortest_edge_size(640, 480, 224), (298, 224));
        assert_eq!(shortest_edge_size(425, 320, 224), (297, 224));
        assert_eq!(shortest_edge_size(100, 100, 224), (224, 224));
    }

    #[test]
    fn processor_configs() {
        let p = Path::new("preprocessor_config.json");
        let legacy = serde_json::json!({"size": 224, "crop_size": 224, "resample": 3});
        assert_eq!(
            ClipImageProcessor::from_value(&legacy, p).unwrap(),
            ClipImageProcessor::openai(224)
        );
        let exact = serde_json::json!({"size": {"height": 40, "width": 30}, "do_center_crop": false,
            "image_mean": [0.5, 0.5, 0.5], "image_std": 0.5, "resample": 1});
        let q = ClipImageProcessor::from_value(&exact, p).unwrap();
        assert_eq!(q.resized_size(7, 9), (40, 30));
        assert_eq!(q.crop, None);
        assert_eq!(q.filter, Filter::Lanczos);
        assert_eq!(q.normalize, Some(([0.5; 3], [0.5; 3])));
        let bilinear = serde_json::json!({"resample": 2});
        let e = ClipImageProcessor::from_value(&bilinear, p).unwrap_err();
        assert!(e.to_string().contains("resample 2"), "{e}");
    }
}
