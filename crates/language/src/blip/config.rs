//! BLIP's configurations as transformers reads them from `config.json`: [`BlipConfig`] with the
//! nested [`BlipVisionConfig`] (`vision_config`) and [`BlipTextConfig`] (`text_config`).
//!
//! Absent keys take transformers' defaults (the same in 4.x and 5.x). As `BlipConfig.__init__`
//! does, the text tower's `encoder_hidden_size` is set to the vision tower's `hidden_size`,
//! whatever the file says. Unknown keys are ignored.

use std::path::Path;

use brainrecon_nn::vision_tower::VisionTowerConfig;
use brainrecon_nn::weights::read_json;
use brainrecon_nn::{ModelError, Result};
use candle_core::Tensor;
use serde::Deserialize;
use serde_json::Value;

const WHAT: &str = "BLIP config";

/// The activations transformers' `ACT2FN` names that BLIP checkpoints use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`: exact (erf) GELU.
    Gelu,
    /// `gelu_new`, `gelu_pytorch_tanh`: the tanh approximation.
    GeluTanh,
    /// `quick_gelu`: `x * sigmoid(1.702 x)`.
    QuickGelu,
    /// `relu`.
    Relu,
}

impl Activation {
    /// The activation of a `hidden_act` name; errors list the supported names.
    pub fn parse(name: &str) -> std::result::Result<Self, String> {
        match name {
            "gelu" => Ok(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" => Ok(Activation::GeluTanh),
            "quick_gelu" => Ok(Activation::QuickGelu),
            "relu" => Ok(Activation::Relu),
            other => Err(format!(
                "hidden_act \"{other}\" is not supported (expected gelu, gelu_new, \
                 gelu_pytorch_tanh, quick_gelu or relu)"
            )),
        }
    }

    /// Differentiable when `x` tracks gradients (the project's activations fall back to
    /// candle's ops then).
    pub fn forward(self, x: &Tensor) -> Result<Tensor> {
        use brainrecon_nn::layers;
        Ok(match self {
            Activation::Gelu => layers::gelu(x)?,
            Activation::GeluTanh => layers::gelu_tanh(x)?,
            Activation::QuickGelu => layers::quick_gelu(x)?,
            Activation::Relu => x.relu()?,
        })
    }
}

/// transformers' `BlipVisionConfig`: a ViT tower (its defaults: [`blip_vision_defaults`]).
/// `layer_norm_eps`: transformers' default is 1e-5; the published Salesforce ViT uses 1e-6.
pub type BlipVisionConfig = VisionTowerConfig;

/// transformers' `BlipVisionConfig` defaults (ViT-B/16 at 384 px).
pub fn blip_vision_defaults() -> BlipVisionConfig {
    VisionTowerConfig {
        hidden_size: 768,
        intermediate_size: 3072,
        projection_dim: 512,
        num_hidden_layers: 12,
        num_attention_heads: 12,
        num_channels: RGB,
        image_size: 384,
        patch_size: 16,
        hidden_act: "gelu".into(),
        layer_norm_eps: 1e-5,
    }
}

/// BLIP's image tower takes RGB images: transformers' `BlipVisionConfig` has no `num_channels`,
/// so a key of that name is ignored.
const RGB: usize = 3;

/// The vision MLP's activation ([`Activation::Gelu`] for an unknown name, which reading the
/// config refuses).
pub fn vision_activation(config: &BlipVisionConfig) -> Activation {
    Activation::parse(&config.hidden_act).unwrap_or(Activation::Gelu)
}

/// A token id, a list of them, or null (transformers allows all three for `eos_token_id`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum TokenIds {
    /// A single id.
    One(u32),
    /// Several ids.
    Many(Vec<u32>),
}

/// transformers' `BlipTextConfig` (defaults: BERT-base with cross-attention, 8 heads).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct BlipTextConfig {
    /// Token embeddings (rows of `word_embeddings`).
    pub vocab_size: usize,
    /// d: token width.
    pub hidden_size: usize,
    /// Width of the cross-attended states; [`BlipConfig`] sets it to the vision width.
    pub encoder_hidden_size: usize,
    /// Width of the feed-forward's hidden layer.
    pub intermediate_size: usize,
    /// Width of the image-text projection (not used by captioning).
    pub projection_dim: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads (dividing `hidden_size`).
    pub num_attention_heads: usize,
    /// Rows of the position table: the longest caption, prompt included.
    pub max_position_embeddings: usize,
    /// The feed-forward's activation, an [`Activation`] name.
    pub hidden_act: String,
    /// Epsilon of the LayerNorms.
    pub layer_norm_eps: f64,
    /// `[DEC]`, put at position 0 of every caption prompt.
    pub bos_token_id: Option<u32>,
    /// transformers' default 2; BLIP's generate stops on `sep_token_id` instead.
    pub eos_token_id: Option<TokenIds>,
    /// The padding token (`[PAD]`).
    pub pad_token_id: Option<u32>,
    /// `[SEP]`, where captions end.
    pub sep_token_id: Option<u32>,
    /// Decoder layers have cross-attention (`crossattention.*`).
    pub is_decoder: bool,
    /// The head's output projection is the word embeddings (unless the checkpoint has its own
    /// `decoder.weight`, as transformers 5 reads it).
    pub tie_word_embeddings: bool,
    /// Label smoothing of the captioning loss (0 = none; see [`crate::blip::lm_loss`]).
    pub label_smoothing: f64,
}

impl Default for BlipTextConfig {
    fn default() -> Self {
        BlipTextConfig {
            vocab_size: 30524,
            hidden_size: 768,
            encoder_hidden_size: 768,
            intermediate_size: 3072,
            projection_dim: 768,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 512,
            hidden_act: "gelu".into(),
            layer_norm_eps: 1e-12,
            bos_token_id: Some(30522),
            eos_token_id: Some(TokenIds::One(2)),
            pad_token_id: Some(0),
            sep_token_id: Some(102),
            is_decoder: true,
            tie_word_embeddings: true,
            label_smoothing: 0.0,
        }
    }
}

impl BlipTextConfig {
    /// The feed-forward's activation ([`Activation::Gelu`] for an unknown name, which reading the config refuses).
    pub fn activation(&self) -> Activation {
        Activation::parse(&self.hidden_act).unwrap_or(Activation::Gelu)
    }

    /// Bounds every size-like field before any tensor is built (hostile `config.json` files).
    fn validate(&self) -> std::result::Result<(), String> {
        use brainrecon_nn::config_bounds::*;
        positive("vocab_size", self.vocab_size, MAX_VOCAB)?;
        encoder_trunk(
            self.hidden_size,
            self.num_attention_heads,
            self.intermediate_size,
            self.num_hidden_layers,
        )?;
        positive(
            "encoder_hidden_size",
            self.encoder_hidden_size,
            MAX_CHANNELS,
        )?;
        positive("projection_dim", self.projection_dim, MAX_CHANNELS)?;
        positive(
            "max_position_embeddings",
            self.max_position_embeddings,
            MAX_POSITIONS,
        )?;
        epsilon("layer_norm_eps", self.layer_norm_eps)?;
        finite_in("label_smoothing", self.label_smoothing, 0.0, 1.0)?;
        let eos: &[u32] = match &self.eos_token_id {
            None => &[],
            Some(TokenIds::One(id)) => std::slice::from_ref(id),
            Some(TokenIds::Many(ids)) => ids,
        };
        for (i, id) in eos.iter().enumerate() {
            in_range(
                &format!("eos_token_id[{i}]"),
                *id as usize,
                0,
                self.vocab_size - 1,
            )?;
        }
        for (name, id) in [
            ("bos_token_id", self.bos_token_id),
            ("pad_token_id", self.pad_token_id),
            ("sep_token_id", self.sep_token_id),
        ] {
            if let Some(id) = id {
                if id as usize >= self.vocab_size {
                    return Err(format!(
                        "{name} {id} is outside the vocabulary (vocab_size {})",
                        self.vocab_size
                    ));
                }
            }
        }
        Activation::parse(&self.hidden_act)?;
        Ok(())
    }
}

/// transformers' `BlipConfig`: the two towers and the top-level keys captioning reads.
#[derive(Clone, Debug, PartialEq)]
pub struct BlipConfig {
    /// `vision_config`.
    pub vision_config: BlipVisionConfig,
    /// `text_config` (its `encoder_hidden_size` set to the vision width).
    pub text_config: BlipTextConfig,
    /// Width of the image-text projection (not used by captioning).
    pub projection_dim: usize,
    /// Top-level `tie_word_embeddings`.
    pub tie_word_embeddings: bool,
    /// `architectures` as written in the file (empty when absent).
    pub architectures: Vec<String>,
}

impl Default for BlipConfig {
    fn default() -> Self {
        BlipConfig::from_parts(blip_vision_defaults(), BlipTextConfig::default())
    }
}

impl BlipConfig {
    /// Joins two tower configs as `BlipConfig(text_config=…, vision_config=…)` does.
    pub fn from_parts(vision_config: BlipVisionConfig, mut text_config: BlipTextConfig) -> Self {
        text_config.encoder_hidden_size = vision_config.hidden_size;
        BlipConfig {
            vision_config,
            text_config,
            projection_dim: 512,
            tie_word_embeddings: true,
            architectures: Vec::new(),
        }
    }

    /// Reads a BLIP `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let value: Value = read_json(path, WHAT)?;
        Self::from_value(&value, path)
    }

    /// Parses the JSON of a `config.json`; `path` names it in errors.
    pub fn from_value(value: &Value, path: &Path) -> Result<Self> {
        let bad = |message: String| ModelError::Config {
            path: path.to_path_buf(),
            what: WHAT.into(),
            message,
        };
        let object = value
            .as_object()
            .ok_or_else(|| bad("expected a JSON object".into()))?;
        check_model_type(object).map_err(bad)?;
        let section = |key: &str| -> Result<Value> {
            match object.get(key) {
                None | Some(Value::Null) => Ok(Value::Object(Default::default())),
                Some(v @ Value::Object(_)) => Ok(v.clone()),
                Some(other) => Err(bad(format!("{key} is {other}, expected an object"))),
            }
        };
        use brainrecon_nn::weights::from_json_value;
        let mut vision_config =
            VisionTowerConfig::from_json(&section("vision_config")?, &blip_vision_defaults())
                .map_err(|e| bad(format!("vision_config.{e}")))?;
        vision_config.num_channels = RGB;
        let text_config: BlipTextConfig = from_json_value(section("text_config")?)
            .map_err(|e| bad(format!("text_config.{e}")))?;
        vision_config
            .validate()
            .and_then(|()| Activation::parse(&vision_config.hidden_act).map(drop))
            .map_err(|m| bad(format!("vision_config.{m}")))?;
        text_config
            .validate()
            .map_err(|m| bad(format!("text_config.{m}")))?;
        let mut config = BlipConfig::from_parts(vision_config, text_config);
        let top = |key: &str| object.get(key).filter(|v| !v.is_null());
        if let Some(v) = top("projection_dim") {
            config.projection_dim = v
                .as_u64()
                .filter(|n| (1..=brainrecon_nn::config_bounds::MAX_CHANNELS as u64).contains(n))
                .ok_or_else(|| {
                    bad(format!(
                        "projection_dim: expected an integer in 1..={}, found {v}",
                        brainrecon_nn::config_bounds::MAX_CHANNELS
                    ))
                })? as usize;
        }
        if let Some(v) = top("tie_word_embeddings") {
            config.tie_word_embeddings = v
                .as_bool()
                .ok_or_else(|| bad(format!("tie_word_embeddings {v} is not true or false")))?;
        }
        if let Some(v) = top("architectures") {
            config.architectures = serde_json::from_value(v.clone())
                .map_err(|_| bad(format!("architectures {v} is not a list of names")))?;
        }
        Ok(config)
    }

    /// An error unless `architectures` (when present) names `BlipForConditionalGeneration`:
    /// BLIP's retrieval and question-answering checkpoints have no captioning decoder.
    pub fn check_captioning(&self, path: &Path) -> Result<()> {
        if self.architectures.is_empty()
            || self
                .architectures
                .iter()
                .any(|a| a == "BlipForConditionalGeneration")
        {
            return Ok(());
        }
        Err(ModelError::Config {
            path: path.to_path_buf(),
            what: WHAT.into(),
            message: format!(
                "architectures {:?}: expected BlipForConditionalGeneration (a BLIP captioning \
                 checkpoint with text_decoder.* weights)",
                self.architectures
            ),
        })
    }
}

/// `model_type` must be `blip`; a file without it must at least nest the two towers.
fn check_model_type(object: &serde_json::Map<String, Value>) -> std::result::Result<(), String> {
    match object.get("model_type").and_then(Value::as_str) {
        Some("blip") => Ok(()),
        Some(sub @ ("blip_vision_model" | "blip_text_model")) => Err(format!(
            "model_type is \"{sub}\", one tower of BLIP; expected \"blip\" (the config.json of \
             a BlipForConditionalGeneration folder, with vision_config and text_config)"
        )),
        Some(other) => Err(format!(
            "model_type is \"{other}\", expected \"blip\" (a BlipForConditionalGeneration \
             checkpoint)"
        )),
        None if object.contains_key("vision_config") && object.contains_key("text_config") => {
            Ok(())
        }
        None => Err(
            "no model_type and no vision_config/text_config: expected a BLIP config.json \
             (model_type \"blip\")"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<BlipConfig> {
        BlipConfig::from_value(&v, Path::new("dir/config.json"))
    }

    #[test]
    fn defaults_follow_transformers() {
        let c = parse(serde_json::json!({"model_type": "blip"})).unwrap();
        assert_eq!(c.vision_config, blip_vision_defaults());
        assert_eq!(c.vision_config.grid(), 24);
        assert_eq!(c.text_config.num_attention_heads, 8);
        assert_eq!(c.text_config.layer_norm_eps, 1e-12);
        assert_eq!(c.text_config.bos_token_id, Some(30522));
    }

    #[test]
    fn encoder_width_follows_the_vision_tower() {
        let c = parse(serde_json::json!({"model_type": "blip",
            "vision_config": {"hidden_size": 64, "num_attention_heads": 4},
            "text_config": {"encoder_hidden_size": 768, "eos_token_id": [2, 102]}}))
        .unwrap();
        assert_eq!(c.text_config.encoder_hidden_size, 64);
        assert_eq!(
            c.text_config.eos_token_id,
            Some(TokenIds::Many(vec![2, 102]))
        );
    }

    #[test]
    fn other_architectures_are_named() {
        let e = parse(serde_json::json!({"model_type": "clip"})).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("dir/config.json") && m.contains("\"clip\""),
            "{m}"
        );
        let e = parse(serde_json::json!({"model_type": "blip_text_model"})).unwrap_err();
        assert!(e.to_string().contains("one tower"), "{e}");
        let c = parse(serde_json::json!({"model_type": "blip",
            "architectures": ["BlipForImageTextRetrieval"]}))
        .unwrap();
        let e = c
            .check_captioning(Path::new("dir/config.json"))
            .unwrap_err();
        assert!(
            e.to_string().contains("BlipForConditionalGeneration"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_name_the_field() {
        let e = parse(serde_json::json!({"model_type": "blip",
            "vision_config": {"hidden_size": 30, "num_attention_heads": 4}}))
        .unwrap_err();
        assert!(
            e.to_string().contains(
                "vision_config.num_attention_heads: expected a divisor of the width 30, found 4"
            ),
            "{e}"
        );
        let e = parse(serde_json::json!({"model_type": "blip",
            "text_config": {"hidden_act": "swish"}}))
        .unwrap_err();
        assert!(e.to_string().contains("text_config.hidden_act"), "{e}");
        let e = parse(serde_json::json!({"model_type": "blip",
            "text_config": {"vocab_size": 100}}))
        .unwrap_err();
        assert!(e.to_string().contains("bos_token_id 30522"), "{e}");
        let e = parse(serde_json::json!({"model_type": "blip",
            "vision_config": {"image_size": [384, 384]}}))
        .unwrap_err();
        assert!(e.to_string().contains("vision_config.image_size"), "{e}");
    }
}

#[cfg(test)]
mod hostile_tests {
    use super::*;
    use brainrecon_nn::config_bounds::hostile::problems;

    /// Every number of the shipped BLIP config set to 0, -1, huge or the wrong type: no panic;
    /// huge values and wrong types refused, naming the field.
    #[test]
    fn every_numeric_field_of_the_shipped_config_is_bounded() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/shapes-blip/config.json");
        let config: Value = read_json(&path, WHAT).unwrap();
        let load = |v: &Value| {
            BlipConfig::from_value(v, &path)
                .map(drop)
                .map_err(|e| e.to_string())
        };
        // Not read: the retrieval head's width. A list of ids is a valid `eos_token_id`
        // (each is still checked against the vocabulary).
        let unread = ["image_text_hidden_size", "eos_token_id"];
        let found = problems(&config, &unread, &load);
        assert!(found.is_empty(), "{}", found.join("\n"));
    }
}
