//! CLAP's configurations as transformers reads them from `config.json`: [`ClapConfig`] with the
//! nested [`ClapAudioConfig`] (`audio_config`) and the text tower's
//! [`RobertaConfig`] (`text_config`, `ClapTextConfig`'s defaults).
//!
//! Absent keys take transformers' defaults (`laion/clap-htsat-fused`'s sizes). As
//! `ClapConfig.__post_init__` does, the top-level `projection_dim` and `projection_hidden_act`
//! replace the towers' own. Unknown keys are ignored.

use std::path::Path;

use brainrecon_language::blip::Activation;
use brainrecon_language::checkpoint::{read_config, size_cap, ConfigFields};
use brainrecon_language::roberta::RobertaConfig;
use brainrecon_nn::Result;
use serde_json::Value;

const WHAT: &str = "CLAP config";

/// transformers' `ClapAudioConfig`: the HTSAT (Swin) tower over the mel spectrogram.
#[derive(Clone, Debug, PartialEq)]
pub struct ClapAudioConfig {
    /// Side of the square attention windows.
    pub window_size: usize,
    /// Mel bins of the input features.
    pub num_mel_bins: usize,
    /// Side of the square "image" the spectrogram is folded into.
    pub spec_size: usize,
    /// `hidden_act` of the feed-forward layers.
    pub activation: Activation,
    /// Patch kernel (height, width).
    pub patch_size: (usize, usize),
    /// Patch stride (height, width).
    pub patch_stride: (usize, usize),
    /// Width of the pooled output; must be `patch_embeds_hidden_size · 2^(stages − 1)`.
    pub hidden_size: usize,
    /// Width of the joint audio–text space (replaced by the top-level `projection_dim`).
    pub projection_dim: usize,
    /// Blocks per stage.
    pub depths: Vec<usize>,
    /// Heads per stage.
    pub num_attention_heads: Vec<usize>,
    /// The fused variant (`clap-htsat-fused`): the three local crops are fused into the
    /// patch embedding of clips flagged as longer.
    pub enable_fusion: bool,
    /// `fusion_type` as given (`aff_2d`; `channel_map` is refused), when present.
    pub fusion_type: Option<String>,
    /// Input channels of the patch projection (1: the mel spectrogram).
    pub patch_embed_input_channels: usize,
    /// Channels of the patch embedding (the first stage's width).
    pub patch_embeds_hidden_size: usize,
    /// Whether a layer norm follows the patch projection.
    pub enable_patch_layer_norm: bool,
    /// Whether the attention's query, key and value projections have biases.
    pub qkv_bias: bool,
    /// Feed-forward width over block width (4).
    pub mlp_ratio: f64,
    /// Channel reduction of the attentional feature fusion block.
    pub aff_block_r: usize,
    /// Activation between the audio projection head's two layers (replaced by the top-level
    /// `projection_hidden_act`).
    pub projection_activation: Activation,
    /// Epsilon of the blocks' layer norms (the patch embedding's, the merges' and the final
    /// norm use PyTorch's default 1e-5, as transformers builds them).
    pub layer_norm_eps: f64,
}

impl Default for ClapAudioConfig {
    /// transformers' `ClapAudioConfig()`.
    fn default() -> Self {
        ClapAudioConfig {
            window_size: 8,
            num_mel_bins: 64,
            spec_size: 256,
            activation: Activation::Gelu,
            patch_size: (4, 4),
            patch_stride: (4, 4),
            hidden_size: 768,
            projection_dim: 512,
            depths: vec![2, 2, 6, 2],
            num_attention_heads: vec![4, 8, 16, 32],
            enable_fusion: false,
            fusion_type: None,
            patch_embed_input_channels: 1,
            patch_embeds_hidden_size: 96,
            enable_patch_layer_norm: true,
            qkv_bias: true,
            mlp_ratio: 4.0,
            aff_block_r: 4,
            projection_activation: Activation::Relu,
            layer_norm_eps: 1e-5,
        }
    }
}

impl ClapAudioConfig {
    /// Spectrogram frames per image row group: `spec_size / num_mel_bins`.
    pub fn freq_ratio(&self) -> usize {
        self.spec_size / self.num_mel_bins
    }

    /// Width of stage `i`.
    pub fn stage_dim(&self, i: usize) -> usize {
        self.patch_embeds_hidden_size << i
    }

    /// The feed-forward width of a block of width `dim` (`int(mlp_ratio * dim)`).
    pub fn mlp_dim(&self, dim: usize) -> usize {
        (self.mlp_ratio * dim as f64) as usize
    }

    /// The patch grid (height, width) of the folded spectrogram.
    pub fn grid(&self) -> (usize, usize) {
        (
            self.spec_size / self.patch_stride.0,
            self.spec_size / self.patch_stride.1,
        )
    }

    /// Reads `audio_config`'s fields.
    pub fn from_fields(f: &ConfigFields) -> Result<Self> {
        let d = ClapAudioConfig::default();
        let size = |key: &'static str, default: usize| positive(f, key, default);
        let act = |key: &'static str, default: Activation| activation(f, key, default);
        let c = ClapAudioConfig {
            window_size: size("window_size", d.window_size)?,
            num_mel_bins: size("num_mel_bins", d.num_mel_bins)?,
            spec_size: size("spec_size", d.spec_size)?,
            activation: act("hidden_act", d.activation)?,
            patch_size: pair(f, "patch_size", d.patch_size)?,
            patch_stride: pair(f, "patch_stride", d.patch_stride)?,
            hidden_size: size("hidden_size", d.hidden_size)?,
            projection_dim: size("projection_dim", d.projection_dim)?,
            depths: list(f, "depths", &d.depths)?,
            num_attention_heads: list(f, "num_attention_heads", &d.num_attention_heads)?,
            enable_fusion: f.bool_or("enable_fusion", d.enable_fusion)?,
            fusion_type: match f.find(&["fusion_type"]) {
                None => None,
                Some(_) => Some(f.string_or(&["fusion_type"], "")?),
            },
            patch_embed_input_channels: size(
                "patch_embed_input_channels",
                d.patch_embed_input_channels,
            )?,
            patch_embeds_hidden_size: size("patch_embeds_hidden_size", d.patch_embeds_hidden_size)?,
            enable_patch_layer_norm: f
                .bool_or("enable_patch_layer_norm", d.enable_patch_layer_norm)?,
            qkv_bias: f.bool_or("qkv_bias", d.qkv_bias)?,
            mlp_ratio: f.f64_or(&["mlp_ratio"], d.mlp_ratio)?,
            aff_block_r: size("aff_block_r", d.aff_block_r)?,
            projection_activation: act("projection_hidden_act", d.projection_activation)?,
            layer_norm_eps: f.f64_or(&["layer_norm_eps"], d.layer_norm_eps)?,
        };
        if !f.bool_or("flatten_patch_embeds", true)? {
            return Err(f.error(format!(
                "field `{}` is false; transformers' HTSAT only runs with flattened patch \
                 embeddings",
                f.name("flatten_patch_embeds")
            )));
        }
        c.validate(f)?;
        Ok(c)
    }

    #[allow(clippy::manual_is_multiple_of)] // `is_multiple_of` needs Rust 1.87; the workspace supports 1.85
    fn validate(&self, f: &ConfigFields) -> Result<()> {
        self.check_sizes()
            .map_err(|m| f.error(format!("{}{m}", f.name(""))))?;
        let stages = self.depths.len();
        if self.num_attention_heads.len() != stages {
            return Err(f.error(format!(
                "`{}` has {} entries but `{}` has {stages}: one head count per stage",
                f.name("num_attention_heads"),
                self.num_attention_heads.len(),
                f.name("depths")
            )));
        }
        for (i, &heads) in self.num_attention_heads.iter().enumerate() {
            if self.stage_dim(i) % heads != 0 {
                return Err(f.error(format!(
                    "stage {i} is {} wide (`patch_embeds_hidden_size` · 2^{i}), not divisible \
                     by its {heads} heads",
                    self.stage_dim(i)
                )));
            }
        }
        let last = self.stage_dim(stages - 1);
        if self.hidden_size != last {
            return Err(f.error(format!(
                "`{}` is {}, but the last stage is {last} wide (`patch_embeds_hidden_size` · \
                 2^{}); the projection reads the last stage",
                f.name("hidden_size"),
                self.hidden_size,
                stages - 1
            )));
        }
        if self.spec_size < self.num_mel_bins {
            return Err(f.error(format!(
                "`{}` {} is smaller than `{}` {}",
                f.name("spec_size"),
                self.spec_size,
                f.name("num_mel_bins"),
                self.num_mel_bins
            )));
        }
        if self.enable_fusion && self.fusion_type.as_deref() == Some("channel_map") {
            return Err(f.error(format!(
                "`{}` \"channel_map\" cannot run in transformers' HTSAT (its patch projection \
                 expects 4 channels but is given 1); use \"aff_2d\"",
                f.name("fusion_type")
            )));
        }
        if self.patch_size.0 < self.patch_stride.0 || self.patch_size.1 < self.patch_stride.1 {
            return Err(f.error(format!(
                "`{}` {:?} is smaller than `{}` {:?}",
                f.name("patch_size"),
                self.patch_size,
                f.name("patch_stride"),
                self.patch_stride
            )));
        }
        Ok(())
    }
}

impl ClapAudioConfig {
    /// Bounds the HTSAT sizes (hostile `config.json` files): stage widths double per stage,
    /// windows size a (2w-1)² relative-position table, the spectrogram image is spec_size².
    fn check_sizes(&self) -> std::result::Result<(), String> {
        use brainrecon_nn::config_bounds::*;
        list_len("depths", self.depths.len(), 1, 8)?;
        positive("window_size", self.window_size, 256)?;
        positive("spec_size", self.spec_size, MAX_IMAGE_SIDE)?;
        positive(
            "patch_size",
            self.patch_size.0.max(self.patch_size.1),
            self.spec_size,
        )?;
        positive(
            "patch_stride",
            self.patch_stride.0.max(self.patch_stride.1),
            self.spec_size,
        )?;
        positive("aff_block_r", self.aff_block_r, MAX_CHANNELS)?;
        finite_in("mlp_ratio", self.mlp_ratio, 1e-3, 64.0)?;
        epsilon("layer_norm_eps", self.layer_norm_eps)?;
        let widest = self.patch_embeds_hidden_size << (self.depths.len() - 1);
        positive(
            "patch_embeds_hidden_size (last stage)",
            widest,
            MAX_CHANNELS,
        )?;
        Ok(())
    }
}

fn positive(f: &ConfigFields, key: &'static str, default: usize) -> Result<usize> {
    match f.opt_usize(&[key])? {
        None => Ok(default),
        Some(0) => Err(f.error(format!(
            "field `{}` is 0, expected a positive number",
            f.name(key)
        ))),
        Some(n) => Ok(n),
    }
}

fn activation(f: &ConfigFields, key: &'static str, default: Activation) -> Result<Activation> {
    match f.find(&[key]) {
        None => Ok(default),
        Some(_) => {
            let name = f.string_or(&[key], "")?;
            Activation::parse(&name).map_err(|m| f.error(format!("field `{}`: {m}", f.name(key))))
        }
    }
}

/// A list of positive whole numbers.
fn list(f: &ConfigFields, key: &'static str, default: &[usize]) -> Result<Vec<usize>> {
    let Some((_, value)) = f.find(&[key]) else {
        return Ok(default.to_vec());
    };
    let bad = || {
        f.error(format!(
            "field `{}` is {value}, expected a non-empty list of positive whole numbers",
            f.name(key)
        ))
    };
    let items = value.as_array().ok_or_else(bad)?;
    // Stages, heads and patches are small; the cap keeps hostile values out of arithmetic.
    let max = size_cap(key) as u64;
    let parsed: Option<Vec<usize>> = items
        .iter()
        .map(|v| {
            v.as_u64()
                .filter(|&n| n > 0 && n <= max)
                .map(|n| n as usize)
        })
        .collect();
    match parsed {
        Some(v) if !v.is_empty() && v.len() <= 64 => Ok(v),
        _ => Err(f.error(format!(
            "{}: expected 1 to 64 whole numbers in 1..={max}, found {value}",
            f.name(key)
        ))),
    }
}

/// A number or a pair of numbers (PyTorch's `int | tuple` kernel sizes).
fn pair(f: &ConfigFields, key: &'static str, default: (usize, usize)) -> Result<(usize, usize)> {
    match f.find(&[key]) {
        None => Ok(default),
        Some((_, Value::Number(_))) => {
            let n = positive(f, key, default.0)?;
            Ok((n, n))
        }
        Some((_, value)) => {
            let v = list(f, key, &[])?;
            match v.as_slice() {
                [a, b] => Ok((*a, *b)),
                _ => Err(f.error(format!(
                    "field `{}` is {value}, expected a number or two numbers",
                    f.name(key)
                ))),
            }
        }
    }
}

/// transformers' `ClapConfig`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClapConfig {
    /// `text_config` (`ClapTextConfig`: RoBERTa).
    pub text_config: RobertaConfig,
    /// `audio_config`: the HTSAT audio tower.
    pub audio_config: ClapAudioConfig,
    /// The joint space's width.
    pub projection_dim: usize,
    /// The activation between the projection heads' two layers.
    pub projection_activation: Activation,
    /// The initial temperature `exp(logit_scale)` of freshly initialised models.
    pub logit_scale_init_value: f64,
}

impl ClapConfig {
    /// Reads a checkpoint's `config.json` ([`ClapConfig::from_value`]). Errors: the file
    /// unreadable or not JSON, a field of the wrong type or a size the model cannot run, each
    /// naming the file and field.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_value(&read_config(path)?, path)
    }

    /// Parses a `config.json`; `path` names it in errors.
    pub fn from_value(value: &Value, path: &Path) -> Result<Self> {
        let f = ConfigFields::new(value, path, WHAT)?;
        let text_config = match f.nested("text_config")? {
            Some(t) => RobertaConfig::from_fields(&t, &RobertaConfig::clap_text())?,
            None => RobertaConfig::clap_text(),
        };
        let mut audio_config = match f.nested("audio_config")? {
            Some(a) => ClapAudioConfig::from_fields(&a)?,
            None => ClapAudioConfig::default(),
        };
        let projection_dim = positive(&f, "projection_dim", 512)?;
        let projection_activation = activation(&f, "projection_hidden_act", Activation::Relu)?;
        // ClapConfig.__post_init__: the top level wins
        audio_config.projection_dim = projection_dim;
        audio_config.projection_activation = projection_activation;
        let logit_scale_init_value = f.f64_or(&["logit_scale_init_value"], 1.0 / 0.07)?;
        // A temperature: CLIP clamps it at 100; far beyond that softmaxes saturate.
        if !(logit_scale_init_value > 0.0 && logit_scale_init_value <= 1e4) {
            return Err(f.error(format!(
                "logit_scale_init_value: expected a number in (0, 10000], found \
                 {logit_scale_init_value}"
            )));
        }
        Ok(ClapConfig {
            text_config,
            audio_config,
            projection_dim,
            projection_activation,
            logit_scale_init_value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<ClapConfig> {
        ClapConfig::from_value(&v, Path::new("clap/config.json"))
    }

    #[test]
    fn defaults_are_transformers() {
        let c = parse(serde_json::json!({})).unwrap();
        assert_eq!(c.audio_config, ClapAudioConfig::default());
        assert_eq!(c.text_config, RobertaConfig::clap_text());
        assert_eq!((c.projection_dim, c.audio_config.freq_ratio()), (512, 4));
        assert_eq!(c.audio_config.grid(), (64, 64));
    }

    #[test]
    fn the_top_level_projection_wins_and_bad_fields_are_named() {
        let c = parse(serde_json::json!({
            "projection_dim": 16, "projection_hidden_act": "gelu",
            "audio_config": {"projection_dim": 512, "patch_stride": [4, 4], "patch_size": 4},
            "text_config": {"hidden_size": 32, "num_attention_heads": 4}
        }))
        .unwrap();
        assert_eq!(c.audio_config.projection_dim, 16);
        assert_eq!(c.audio_config.projection_activation, Activation::Gelu);
        assert_eq!(c.text_config.hidden_size, 32);
        let err = |v: Value| parse(v).unwrap_err().to_string();
        let e = err(serde_json::json!({"audio_config": {"depths": [2, 2]}}));
        assert!(
            e.contains("audio_config.num_attention_heads") && e.contains("clap/config.json"),
            "{e}"
        );
        let e = err(serde_json::json!({"audio_config": {"hidden_size": 512}}));
        assert!(e.contains("audio_config.hidden_size"), "{e}");
        let e = err(serde_json::json!({"audio_config": {"patch_stride": [4, 4, 4]}}));
        assert!(e.contains("audio_config.patch_stride"), "{e}");
        let e = err(serde_json::json!({"audio_config": {"enable_fusion": true,
            "fusion_type": "channel_map"}}));
        assert!(e.contains("channel_map"), "{e}");
        let e = err(serde_json::json!({"text_config": {"vocab_size": "big"}}));
        assert!(e.contains("text_config.vocab_size"), "{e}");
    }
}

#[cfg(test)]
mod hostile_tests {
    use super::*;
    use brainrecon_nn::config_bounds::hostile::problems;

    /// Every number of the shipped genres-clap config set to 0, -1, huge or the wrong type:
    /// no panic; huge values and wrong types refused, naming the field.
    #[test]
    fn every_numeric_field_of_the_shipped_config_is_bounded() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/genres-clap/config.json");
        let config = read_config(&path).unwrap();
        let load = |v: &Value| {
            ClapConfig::from_value(v, &path)
                .map(drop)
                .map_err(|e| e.to_string())
        };
        // transformers keys this implementation does not read (dropouts, init scales, ids of
        // the text tower's special tokens other than padding).
        let unread = [
            "attention_probs_dropout_prob",
            "hidden_dropout_prob",
            "drop_path_rate",
            "initializer_factor",
            "initializer_range",
            "num_hidden_layers",
            "bos_token_id",
            "eos_token_id",
            "projection_dim",
        ];
        let found = problems(&config, &unread, &load);
        assert!(found.is_empty(), "{}", found.join("\n"));
    }
}
