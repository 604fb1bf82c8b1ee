//! A ViT image tower's settings as transformers spells them in `config.json` for CLIP
//! (`CLIPVisionConfig`) and BLIP (`BlipVisionConfig`): one struct and one reader, the models
//! differing only in their defaults and in the activations they know.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The settings of a ViT image tower: a patch embedding, a class token, position embeddings and
/// pre-norm encoder layers.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct VisionTowerConfig {
    /// d: token width.
    pub hidden_size: usize,
    /// Width of the MLP's hidden layer.
    pub intermediate_size: usize,
    /// Width of the image-text projection.
    pub projection_dim: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads (dividing `hidden_size`).
    pub num_attention_heads: usize,
    /// Channels of the input images.
    pub num_channels: usize,
    /// Side of the square input images (the position table's), in pixels.
    pub image_size: usize,
    /// Side of the square patches, in pixels.
    pub patch_size: usize,
    /// The MLP's activation, by transformers' name (each model checks it against its own).
    pub hidden_act: String,
    /// Epsilon of the LayerNorms.
    pub layer_norm_eps: f64,
}

impl VisionTowerConfig {
    /// The tower's keys of the JSON object `value` (other keys are ignored); a key it lacks
    /// takes its value in `defaults`. Errors name the field (`hidden_size: invalid type: …`).
    pub fn from_json(value: &Value, defaults: &VisionTowerConfig) -> Result<Self, String> {
        let Value::Object(given) = value else {
            return Err(format!("expected a JSON object, found {value}"));
        };
        let mut merged = match serde_json::to_value(defaults) {
            Ok(Value::Object(map)) => map,
            _ => unreachable!("the config serializes to a JSON object"),
        };
        for (key, slot) in merged.iter_mut() {
            if let Some(v) = given.get(key) {
                *slot = v.clone();
            }
        }
        crate::weights::from_json_value(Value::Object(merged))
    }

    /// Bounds every size-like field before any tensor is built (hostile `config.json` files).
    /// `hidden_act` is the model's to check.
    pub fn validate(&self) -> Result<(), String> {
        use crate::config_bounds::*;
        encoder_trunk(
            self.hidden_size,
            self.num_attention_heads,
            self.intermediate_size,
            self.num_hidden_layers,
        )?;
        positive("projection_dim", self.projection_dim, MAX_CHANNELS)?;
        positive("num_channels", self.num_channels, MAX_CHANNELS)?;
        square_patches(self.image_size, self.patch_size)?;
        epsilon("layer_norm_eps", self.layer_norm_eps)
    }

    /// Patches per side (transformers floors, so trailing pixels are ignored).
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Tokens per image, the rows of the position table: the class token and one per patch.
    pub fn num_positions(&self) -> usize {
        self.grid() * self.grid() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defaults() -> VisionTowerConfig {
        VisionTowerConfig {
            hidden_size: 768,
            intermediate_size: 3072,
            projection_dim: 512,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
        }
    }

    #[test]
    fn absent_keys_take_the_defaults_and_others_are_ignored() {
        let c = VisionTowerConfig::from_json(
            &json!({"hidden_size": 64, "num_attention_heads": 4, "text_config": {}}),
            &defaults(),
        )
        .unwrap();
        assert_eq!(
            c,
            VisionTowerConfig {
                hidden_size: 64,
                num_attention_heads: 4,
                ..defaults()
            }
        );
        assert_eq!((c.grid(), c.num_positions()), (7, 50));
    }

    #[test]
    fn bad_values_name_the_field() {
        let e = VisionTowerConfig::from_json(&json!({"image_size": [384, 384]}), &defaults())
            .unwrap_err();
        assert!(e.starts_with("image_size: invalid type"), "{e}");
        let e =
            VisionTowerConfig::from_json(&json!({"patch_size": null}), &defaults()).unwrap_err();
        assert!(e.starts_with("patch_size: invalid type: null"), "{e}");
        let c = VisionTowerConfig {
            num_channels: 0,
            ..defaults()
        };
        assert!(c.validate().unwrap_err().starts_with("num_channels"));
    }
}
