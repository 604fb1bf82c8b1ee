//! A full CLIP checkpoint (transformers' `CLIPModel`) as a pair of embedders: text and images
//! to the shared projection space, as `get_text_features` and `get_image_features` compute them.
//! CLIP-S / RefCLIP-S (Hessel et al. 2021) compare these embeddings.
//!
//! Checkpoint: `config.json` with `text_config`, `vision_config` and the top-level
//! `projection_dim`; tensors `text_model.*`, `text_projection.weight` (no bias),
//! `vision_model.*`, `visual_projection.weight` (no bias); the tokenizer files
//! (`tokenizer.json`, or `vocab.json` + `merges.txt`, with `tokenizer_config.json`) and
//! `preprocessor_config.json` at the folder's root, as hub CLIP models ship them.
//!
//! Text: transformers' `CLIPTokenizer` with `padding="max_length"`, `truncation=True` to the
//! model's 77 positions (BOS, at most 75 tokens, EOS, pad), the text tower, the hidden state at
//! the EOS position (the first `eos_token_id`, or the largest id for configs that still carry
//! the old `eos_token_id` 2, as transformers 5 decides), then `text_projection`. Padding does
//! not change the result: attention is causal and pooling happens at the EOS. Images: the
//! checkpoint's `CLIPImageProcessor` with Pillow's resampling, the vision tower,
//! `visual_projection`.

use brainrecon_formats::image::RgbImage;
use candle_core::{DType, Device, Tensor};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

use crate::clip::{ClipTextConfig, ClipTextModel};
use crate::clip_vision::{
    parse_clip_vision_config, ClipImageProcessor, ClipVisionConfig, ClipVisionModel,
};
use crate::tokenizer::ClipTokenizer;
use brainrecon_nn::layers::Linear;
use brainrecon_nn::weights::resolve_model_folder;
use brainrecon_nn::weights::{component_files, read_json, Weights};
use brainrecon_nn::{ModelError, Result};

const CONFIG_WHAT: &str = "CLIPModel config";

/// Texts per forward pass (bounds memory for long reference lists).
const TEXT_BATCH: usize = 64;
/// Images per forward pass.
const IMAGE_BATCH: usize = 32;

/// transformers' `CLIPConfig`: the two towers' configs and the shared `projection_dim`.
#[derive(Clone, Debug)]
pub struct ClipModelConfig {
    /// `text_config`.
    pub text_config: ClipTextConfig,
    /// Its `projection_dim` is the top-level one (what both projections use).
    pub vision_config: ClipVisionConfig,
    /// Width of the joint text-image space (`projection_dim`).
    pub projection_dim: usize,
}

impl ClipModelConfig {
    /// Reads and parses a `CLIPModel` `config.json`; errors name the file and the field.
    pub fn from_file(path: &Path) -> Result<Self> {
        let value: Value = read_json(path, CONFIG_WHAT)?;
        Self::from_value(&value, path)
    }

    /// Parses a `CLIPModel` `config.json`; `path` names the origin in errors.
    pub fn from_value(value: &Value, path: &Path) -> Result<Self> {
        let bad = |message: String| ModelError::Config {
            path: path.to_path_buf(),
            what: CONFIG_WHAT.into(),
            message,
        };
        let object = value
            .as_object()
            .ok_or_else(|| bad("expected a JSON object".into()))?;
        let model_type = object.get("model_type").and_then(Value::as_str);
        if !object.contains_key("text_config") && !object.contains_key("text_config_dict") {
            return Err(bad(format!(
                "no text_config: model_type {} is not a full CLIPModel (text and vision towers)",
                model_type.unwrap_or("(none)")
            )));
        }
        let text_config = text_config_from(object).map_err(bad)?;
        let vision_config = parse_clip_vision_config(value, path)?;
        Ok(ClipModelConfig {
            projection_dim: vision_config.projection_dim,
            text_config,
            vision_config,
        })
    }
}

/// transformers 5's `CLIPTextConfig` defaults (those of ViT-B/32's text tower).
fn text_defaults() -> Map<String, Value> {
    let mut m = Map::new();
    for (key, v) in [
        ("vocab_size", 49408),
        ("hidden_size", 512),
        ("intermediate_size", 2048),
        ("num_hidden_layers", 12),
        ("num_attention_heads", 8),
        ("max_position_embeddings", 77),
        ("eos_token_id", 49407),
    ] {
        m.insert(key.into(), Value::from(v));
    }
    m.insert("hidden_act".into(), Value::from("quick_gelu"));
    m.insert("layer_norm_eps".into(), Value::from(1e-5));
    m
}

/// The text tower's settings: `text_config_dict` (old configs; transformers rebuilds the whole
/// text config from it when present) else `text_config`, over the defaults.
fn text_config_from(object: &Map<String, Value>) -> std::result::Result<ClipTextConfig, String> {
    let (key, given) = ["text_config_dict", "text_config"]
        .iter()
        .find_map(|k| object.get(*k).filter(|v| !v.is_null()).map(|v| (*k, v)))
        .ok_or("text_config is null: expected the text tower's settings")?;
    let given = given
        .as_object()
        .ok_or_else(|| format!("{key} is {given}, expected a JSON object"))?;
    let mut merged = text_defaults();
    for (k, v) in given {
        // transformers writes null for unset optional fields; the defaults stand for them.
        if !v.is_null() || k == "eos_token_id" {
            merged.insert(k.clone(), v.clone());
        }
    }
    match merged.get("eos_token_id") {
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= u32::MAX as u64) => {}
        Some(other) => {
            return Err(format!(
                "{key}.eos_token_id is {other}, expected one token id (the pooled position)"
            ))
        }
        None => unreachable!("the defaults set eos_token_id"),
    }
    let config: ClipTextConfig = brainrecon_nn::weights::from_json_value(Value::Object(merged))
        .map_err(|e| format!("{key}.{e}"))?;
    config.validate().map_err(|e| format!("{key}.{e}"))?;
    Ok(config)
}

/// transformers' `CLIPModel`, with its tokenizer and image processor.
pub struct ClipModel {
    /// The text tower (`text_model`).
    pub text_model: ClipTextModel,
    /// [projection_dim, text hidden], no bias.
    pub text_projection: Linear,
    /// The vision tower with `visual_projection`.
    pub vision_model: ClipVisionModel,
    /// The checkpoint's tokenizer.
    pub tokenizer: ClipTokenizer,
    /// The checkpoint's image processor (`preprocessor_config.json`, else OpenAI's).
    pub processor: ClipImageProcessor,
    /// The model's config.
    pub config: ClipModelConfig,
    /// Ids per text: the tokenizer's length, at most the text tower's positions (77).
    pub max_length: usize,
    /// Where the weights live.
    pub device: Device,
}

impl ClipModel {
    /// A `CLIPModel` folder: `config.json`, `model[.fp16].safetensors` (or a sharded index),
    /// the tokenizer files and optionally `preprocessor_config.json` (else OpenAI's
    /// preprocessing at the model's image size).
    pub fn from_dir(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
            return Err(ModelError::Invalid(format!(
                "dtype {dtype:?}: CLIP runs in f32, f16 or bf16"
            )));
        }
        let config = ClipModelConfig::from_file(&dir.join("config.json"))?;
        // The small files first: a wrong folder fails before the weights are read.
        let mut tokenizer = ClipTokenizer::from_dir(dir)?;
        check_tokenizer(&tokenizer, &config.text_config, dir)?;
        let max_length = tokenizer
            .max_length
            .min(config.text_config.max_position_embeddings);
        tokenizer.max_length = max_length;
        let image_size = config.vision_config.image_size;
        let processor = ClipImageProcessor::from_dir_or_openai(dir, image_size)?;
        if let Some((h, w)) = processor.crop {
            if (h, w) != (image_size, image_size) {
                return Err(ModelError::Config {
                    path: dir.join("preprocessor_config.json"),
                    what: "CLIP image processor config".into(),
                    message: format!(
                        "crop_size {h}×{w}, expected the model's image_size {image_size}×{image_size}"
                    ),
                });
            }
        }
        let files = component_files(dir, dtype == DType::F16)?;
        let weights = Weights::from_files(&files, dtype, device)?;
        let (text_model, text_projection, vision_model) = Self::modules(&weights, &config)?;
        Ok(ClipModel {
            text_model,
            text_projection,
            vision_model,
            tokenizer,
            processor,
            config,
            max_length,
            device: device.clone(),
        })
    }

    fn modules(
        weights: &Weights,
        config: &ClipModelConfig,
    ) -> Result<(ClipTextModel, Linear, ClipVisionModel)> {
        // The towers' loaders name the file in their errors; the projection's is named here.
        let text_model = ClipTextModel::from_weights(weights, &config.text_config)?;
        let text_projection = Linear::new(
            weights.var_builder().pp("text_projection"),
            config.text_config.hidden_size,
            config.projection_dim,
            false,
        )
        .map_err(|e| e.in_file(weights.path()))?;
        let vision_model = ClipVisionModel::from_weights(weights, &config.vision_config)?;
        Ok((text_model, text_projection, vision_model))
    }

    /// Width of the joint text-image space.
    pub fn projection_dim(&self) -> usize {
        self.config.projection_dim
    }

    /// `max_length` ids per text (BOS, at most `max_length - 2` tokens, EOS, padding).
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        self.tokenizer.encode_batch(texts)
    }

    /// `ids` [B, L] u32 → `get_text_features` [B, projection_dim] f32 (not normalised).
    pub fn text_features_from_ids(&self, ids: &Tensor) -> Result<Tensor> {
        let pooled = self.text_model.forward_full(ids)?.pooler_output;
        Ok(self
            .text_projection
            .forward(&pooled)?
            .to_dtype(DType::F32)?)
    }

    /// Texts → `get_text_features` [B, projection_dim] f32 (not normalised). Long texts are
    /// truncated to `max_length` ids, as clipscore.py's `clip.tokenize(..., truncate=True)`.
    pub fn text_features(&self, texts: &[&str]) -> Result<Tensor> {
        if texts.is_empty() {
            return Ok(Tensor::zeros(
                (0, self.projection_dim()),
                DType::F32,
                &self.device,
            )?);
        }
        let parts = texts
            .chunks(TEXT_BATCH)
            .map(|chunk| {
                let ids = crate::clip::ids_tensor(&self.tokenize(chunk)?, &self.device)?;
                self.text_features_from_ids(&ids)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&parts, 0)?)
    }

    /// `pixel_values` [B, 3, S, S] → `get_image_features` [B, projection_dim] f32.
    pub fn image_features_from_pixels(&self, pixel_values: &Tensor) -> Result<Tensor> {
        Ok(self
            .vision_model
            .forward(pixel_values)?
            .to_dtype(DType::F32)?)
    }

    /// Images (any size; the processor resizes and crops) → `get_image_features`
    /// [B, projection_dim] f32 (not normalised).
    pub fn image_features(&self, images: &[RgbImage]) -> Result<Tensor> {
        if images.is_empty() {
            return Ok(Tensor::zeros(
                (0, self.projection_dim()),
                DType::F32,
                &self.device,
            )?);
        }
        let parts = images
            .chunks(IMAGE_BATCH)
            .map(|chunk| {
                let pixels = self.processor.preprocess(chunk, &self.device)?;
                self.image_features_from_pixels(&pixels)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&parts, 0)?)
    }
}

/// The tokenizer's special ids must exist in the text tower's vocabulary.
fn check_tokenizer(tokenizer: &ClipTokenizer, text: &ClipTextConfig, dir: &Path) -> Result<()> {
    let largest = tokenizer.bos_id.max(tokenizer.eos_id).max(tokenizer.pad_id) as usize;
    if tokenizer.vocab_size() > text.vocab_size || largest >= text.vocab_size {
        return Err(ModelError::Tokenizer {
            path: dir.to_path_buf(),
            message: format!(
                "{} tokens, but config.json's text_config.vocab_size is {}: the tokenizer \
                 files and the weights do not belong together",
                tokenizer.vocab_size(),
                text.vocab_size
            ),
        });
    }
    Ok(())
}

/// The folder holding a `CLIPModel`: a folder with `config.json`, a Hugging Face cache
/// snapshot, or a model id in that cache (e.g. `openai/clip-vit-base-patch32`). Nothing is
/// downloaded.
pub fn resolve_clip_model_dir(model: &str) -> Result<PathBuf> {
    resolve_model_folder(
        model,
        "a CLIPModel folder",
        "config.json model.safetensors preprocessor_config.json tokenizer.json \
         tokenizer_config.json vocab.json merges.txt special_tokens_map.json",
    )
}

/// Loads a `CLIPModel` with its tokenizer and image processor from a folder, a cache snapshot
/// or a cached model id (see [`resolve_clip_model_dir`]).
pub fn load_clip_model(model: &str, dtype: DType, device: &Device) -> Result<ClipModel> {
    ClipModel::from_dir(&resolve_clip_model_dir(model)?, dtype, device)
}

/// Each row divided by its L2 norm, as clipscore.py normalises features ([N, d] f32). A zero
/// row stays zero (numpy would give NaN; no trained CLIP produces one).
pub fn l2_normalize_rows(x: &Tensor) -> Result<Tensor> {
    let x = x.to_dtype(DType::F32)?;
    let norm = x.sqr()?.sum_keepdim(1)?.sqrt()?;
    let safe = norm.maximum(f32::MIN_POSITIVE as f64)?;
    Ok(x.broadcast_div(&safe)?)
}
