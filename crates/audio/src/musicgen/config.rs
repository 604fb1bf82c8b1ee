//! MusicGen's `config.json` (transformers' `MusicgenConfig`: the `text_encoder`, `audio_encoder`
//! and `decoder` sub-configs) and `generation_config.json`.

use std::path::Path;

use brainrecon_language::blip::Activation;
use brainrecon_language::checkpoint::{check_divisible, read_config, ConfigFields};
use brainrecon_language::t5::T5Config;
use brainrecon_nn::{ModelError, Result};
use serde_json::Value;

const WHAT: &str = "MusicGen config";

/// transformers' `MusicgenDecoderConfig` (the fields the decoder reads). Sizes are required; the
/// rest default as in transformers.
#[derive(Clone, Debug, PartialEq)]
pub struct MusicgenDecoderConfig {
    /// Codes per codebook (EnCodec's `codebook_size`); each embedding table has one more row,
    /// for the pad/bos token.
    pub vocab_size: usize,
    /// Longest code sequence the decoder accepts (its sinusoidal position table).
    pub max_position_embeddings: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Feed-forward width.
    pub ffn_dim: usize,
    /// Attention heads (self- and cross-attention).
    pub num_attention_heads: usize,
    /// Decoder width.
    pub hidden_size: usize,
    /// `activation_function` (default exact `gelu`).
    pub activation: Activation,
    /// Codebooks (streams) predicted per step, all audio channels together.
    pub num_codebooks: usize,
    /// 1 (mono) or 2 (stereo: left/right codebooks interleaved).
    pub audio_channels: usize,
    /// The token of the delay pattern's forced positions (default `vocab_size`).
    pub pad_token_id: u32,
    /// The first decoder token (default `vocab_size`).
    pub bos_token_id: u32,
    /// Width of the encoder states the cross-attention reads when the text encoder's width is
    /// used directly (no `enc_to_dec_proj`); None when the states are projected.
    pub cross_attention_hidden_size: Option<usize>,
}

impl MusicgenDecoderConfig {
    /// Parses the decoder's fields (MusicGen's nested `decoder`, or a standalone
    /// `MusicgenForCausalLM` config.json).
    pub fn from_fields(f: &ConfigFields) -> Result<Self> {
        let hidden_size = f.usize(&["hidden_size"], "the decoder width")?;
        let heads = f.usize(&["num_attention_heads"], "attention heads")?;
        check_divisible(
            f,
            (&f.name("hidden_size"), hidden_size),
            (&f.name("num_attention_heads"), heads),
        )?;
        let vocab_size = f.usize(&["vocab_size"], "codes per codebook")?;
        let act = f.string_or(&["activation_function"], "gelu")?;
        let activation = Activation::parse(&act)
            .map_err(|m| f.error(format!("field `{}`: {m}", f.name("activation_function"))))?;
        let token = |key: &'static str| -> Result<u32> {
            let id = f.opt_usize(&[key])?.unwrap_or(vocab_size);
            if id > vocab_size {
                return Err(f.error(format!(
                    "field `{}` is {id}; expected at most vocab_size {vocab_size} (the embedding \
                     tables have vocab_size + 1 rows)",
                    f.name(key)
                )));
            }
            Ok(id as u32)
        };
        let num_codebooks = f.usize(&["num_codebooks"], "parallel codebooks")?;
        let audio_channels = f.opt_usize(&["audio_channels"])?.unwrap_or(1);
        if audio_channels != 1 && audio_channels != 2 {
            return Err(f.error(format!(
                "field `{}` is {audio_channels}; expected 1 (mono) or 2 (stereo)",
                f.name("audio_channels")
            )));
        }
        if audio_channels == 2 && num_codebooks % 2 != 0 {
            return Err(f.error(format!(
                "field `{}` is {num_codebooks}; stereo needs an even number (left and right \
                 interleaved)",
                f.name("num_codebooks")
            )));
        }
        let max_position_embeddings =
            f.usize(&["max_position_embeddings"], "the longest code sequence")?;
        // The sinusoidal table [positions, hidden] is built, not loaded: keep it under 1 GiB.
        if max_position_embeddings as u64 * hidden_size as u64 > 1 << 28 {
            return Err(f.error(format!(
                "{}: expected at most {} positions of width {hidden_size}, found \
                 {max_position_embeddings}",
                f.name("max_position_embeddings"),
                (1u64 << 28) / hidden_size as u64
            )));
        }
        Ok(MusicgenDecoderConfig {
            vocab_size,
            max_position_embeddings,
            num_hidden_layers: f.usize(&["num_hidden_layers"], "decoder layers")?,
            ffn_dim: f.usize(&["ffn_dim"], "the feed-forward width")?,
            num_attention_heads: heads,
            hidden_size,
            activation,
            num_codebooks,
            audio_channels,
            pad_token_id: token("pad_token_id")?,
            bos_token_id: token("bos_token_id")?,
            cross_attention_hidden_size: f.opt_usize(&["cross_attention_hidden_size"])?,
        })
    }

    /// Codebooks per audio channel (the delay pattern's rows before stereo interleaving).
    pub fn channel_codebooks(&self) -> usize {
        self.num_codebooks / self.audio_channels
    }
}

/// transformers' `MusicgenConfig`.
#[derive(Clone, Debug, PartialEq)]
pub struct MusicgenConfig {
    /// The `text_encoder` sub-config (T5's).
    pub text_encoder: T5Config,
    /// The `decoder` sub-config.
    pub decoder: MusicgenDecoderConfig,
    /// The `audio_encoder` sub-config (EnCodec's), kept as written for
    /// [`crate::encodec`], which decodes the generated codes.
    pub audio_encoder: Value,
}

impl MusicgenConfig {
    /// Reads a checkpoint's `config.json` ([`MusicgenConfig::from_value`]). Errors: the file
    /// unreadable or not JSON, a field missing or of the wrong type, each naming the file and
    /// field.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_value(&read_config(path)?, path)
    }

    /// Parses a `config.json`; `path` names it in errors.
    pub fn from_value(value: &Value, path: &Path) -> Result<Self> {
        let f = ConfigFields::new(value, path, WHAT)?;
        let model_type = f.string_or(&["model_type"], "musicgen")?;
        if model_type != "musicgen" {
            return Err(f.error(format!(
                "field `model_type` is \"{model_type}\"; expected \"musicgen\" (a \
                 MusicgenForConditionalGeneration checkpoint)"
            )));
        }
        let nested = |key: &'static str, meaning: &str| {
            f.nested(key)?
                .ok_or_else(|| f.error(format!("field `{key}` is missing ({meaning} sub-config)")))
        };
        let text_encoder =
            T5Config::from_fields(&nested("text_encoder", "the T5 text encoder's")?)?;
        let decoder_fields = nested("decoder", "the MusicGen decoder's")?;
        let decoder = MusicgenDecoderConfig::from_fields(&decoder_fields)?;
        nested("audio_encoder", "the EnCodec audio codec's")?;
        if let Some(width) = decoder.cross_attention_hidden_size {
            if width != text_encoder.d_model {
                return Err(f.error(format!(
                    "field `decoder.cross_attention_hidden_size` is {width}; it has to equal the \
                     text encoder's d_model {}",
                    text_encoder.d_model
                )));
            }
        }
        Ok(MusicgenConfig {
            text_encoder,
            decoder,
            audio_encoder: value["audio_encoder"].clone(),
        })
    }

    /// Whether the text encoder's states pass through `enc_to_dec_proj` (widths differ and no
    /// `cross_attention_hidden_size` is set), as transformers decides.
    pub fn projects_encoder_states(&self) -> bool {
        self.text_encoder.d_model != self.decoder.hidden_size
            && self.decoder.cross_attention_hidden_size.is_none()
    }

    /// The width of the states the decoder's cross-attention reads.
    pub fn cross_attention_width(&self) -> usize {
        if self.projects_encoder_states() {
            self.decoder.hidden_size
        } else {
            self.text_encoder.d_model
        }
    }
}

/// The defaults of `generation_config.json` that MusicGen's generation reads (facebook's
/// checkpoints: sampling with top-k 250, guidance 3, 1500 tokens).
#[derive(Clone, Debug, PartialEq)]
pub struct MusicgenGenerationDefaults {
    /// The first decoder token and the delay pattern's pad (`decoder_start_token_id`, else
    /// `bos_token_id`, else the decoder config's `bos_token_id`).
    pub decoder_start_token_id: u32,
    /// 1 (none) when absent.
    pub guidance_scale: f32,
    /// Whether to sample (top-k) rather than take the most likely code (false when absent).
    pub do_sample: bool,
    /// 50 when absent, as transformers' `GenerationConfig`.
    pub top_k: usize,
    /// Divides the logits before sampling (1 when absent).
    pub temperature: f32,
    /// `max_length` counts the start token: new tokens = max_length - 1.
    pub max_new_tokens: Option<usize>,
}

impl MusicgenGenerationDefaults {
    /// transformers' defaults for a checkpoint without `generation_config.json`.
    pub fn from_decoder(decoder: &MusicgenDecoderConfig) -> Self {
        MusicgenGenerationDefaults {
            decoder_start_token_id: decoder.bos_token_id,
            guidance_scale: 1.0,
            do_sample: false,
            top_k: 50,
            temperature: 1.0,
            max_new_tokens: None,
        }
    }

    /// Reads `generation_config.json` when the folder has one.
    pub fn from_dir(dir: &Path, decoder: &MusicgenDecoderConfig) -> Result<Self> {
        let path = dir.join("generation_config.json");
        let mut d = Self::from_decoder(decoder);
        if !path.is_file() {
            return Ok(d);
        }
        let value = read_config(&path)?;
        let f = ConfigFields::new(&value, &path, "generation config")?;
        if let Some(id) = f.opt_usize(&["decoder_start_token_id", "bos_token_id"])? {
            if id > decoder.vocab_size {
                return Err(f.error(format!(
                    "field `decoder_start_token_id` is {id}; expected at most the decoder's \
                     vocab_size {}",
                    decoder.vocab_size
                )));
            }
            d.decoder_start_token_id = id as u32;
        }
        d.guidance_scale = f.f64_or(&["guidance_scale"], 1.0)? as f32;
        d.do_sample = f.bool_or("do_sample", false)?;
        d.top_k = f.opt_usize(&["top_k"])?.unwrap_or(50);
        d.temperature = f.f64_or(&["temperature"], 1.0)? as f32;
        d.max_new_tokens = match f.opt_usize(&["max_new_tokens"])? {
            Some(n) => Some(n),
            None => f.opt_usize(&["max_length"])?.map(|n| n.saturating_sub(1)),
        };
        Ok(d)
    }
}

/// An error about MusicGen's inputs or settings.
pub(crate) fn invalid(message: String) -> ModelError {
    ModelError::Invalid(format!("MusicGen: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<MusicgenConfig> {
        MusicgenConfig::from_value(&v, Path::new("m/config.json"))
    }

    /// facebook/musicgen-small's config.json, abridged to the fields read and a few others.
    pub(super) fn small() -> Value {
        serde_json::json!({
            "architectures": ["MusicgenForConditionalGeneration"],
            "audio_encoder": {"model_type": "encodec", "codebook_size": 2048,
                "sampling_rate": 32000, "target_bandwidths": [2.2]},
            "decoder": {"activation_dropout": 0.0, "activation_function": "gelu",
                "attention_dropout": 0.0, "bos_token_id": 2048, "dropout": 0.1,
                "ffn_dim": 4096, "hidden_size": 1024, "layerdrop": 0.0,
                "max_position_embeddings": 2048, "model_type": "musicgen_decoder",
                "num_attention_heads": 16, "num_codebooks": 4, "num_hidden_layers": 24,
                "pad_token_id": 2048, "scale_embedding": false, "vocab_size": 2048},
            "model_type": "musicgen",
            "text_encoder": {"d_ff": 3072, "d_kv": 64, "d_model": 768,
                "feed_forward_proj": "relu", "model_type": "t5", "num_heads": 12,
                "num_layers": 12, "relative_attention_num_buckets": 32, "vocab_size": 32128}
        })
    }

    #[test]
    fn the_hub_musicgen_small_config_loads() {
        let c = parse(small()).unwrap();
        assert_eq!(c.decoder.num_codebooks, 4);
        assert_eq!(
            (c.decoder.pad_token_id, c.decoder.bos_token_id),
            (2048, 2048)
        );
        assert_eq!(c.text_encoder.d_model, 768);
        assert!(c.projects_encoder_states());
        assert_eq!(c.cross_attention_width(), 1024);
        assert_eq!(c.audio_encoder["codebook_size"], 2048);
    }

    #[test]
    fn bad_fields_are_named() {
        let mut v = small();
        v["decoder"].as_object_mut().unwrap().remove("ffn_dim");
        let e = parse(v).unwrap_err().to_string();
        assert!(e.contains("`decoder.ffn_dim` is missing"), "{e}");
        let mut v = small();
        v["decoder"]["pad_token_id"] = 5000.into();
        let e = parse(v).unwrap_err().to_string();
        assert!(e.contains("decoder.pad_token_id"), "{e}");
        let mut v = small();
        v["decoder"]["audio_channels"] = 3.into();
        let e = parse(v).unwrap_err().to_string();
        assert!(e.contains("decoder.audio_channels"), "{e}");
        let mut v = small();
        v["text_encoder"]["feed_forward_proj"] = "gated".into();
        assert!(parse(v).is_err());
        let mut v = small();
        v.as_object_mut().unwrap().remove("text_encoder");
        let e = parse(v).unwrap_err().to_string();
        assert!(e.contains("`text_encoder` is missing"), "{e}");
        let mut v = small();
        v["decoder"]["cross_attention_hidden_size"] = 512.into();
        let e = parse(v).unwrap_err().to_string();
        assert!(e.contains("cross_attention_hidden_size"), "{e}");
        let mut v = small();
        v["model_type"] = "t5".into();
        assert!(parse(v).unwrap_err().to_string().contains("model_type"));
    }
}

#[cfg(test)]
mod hostile_tests {
    use super::*;
    use brainrecon_nn::config_bounds::hostile::problems;

    /// Every number of a MusicGen config (T5 encoder, decoder) and of its EnCodec config set to
    /// 0, -1, huge or the wrong type: no panic; huge and wrong types refused, naming the field.
    #[test]
    fn every_numeric_field_is_bounded() {
        let path = Path::new("m/config.json");
        let config = tests::small();
        let load = |v: &Value| {
            MusicgenConfig::from_value(v, path)
                .map(drop)
                .map_err(|e| e.to_string())
        };
        // The audio codec is read by EncodecConfig (below); dropouts are training-only.
        let unread = [
            "codebook_size",
            "sampling_rate",
            "target_bandwidths",
            "dropout",
            "attention_dropout",
            "activation_dropout",
            "layerdrop",
        ];
        let found = problems(&config, &unread, &load);
        assert!(found.is_empty(), "{}", found.join("\n"));
        let codec = serde_json::json!({
            "codebook_size": 2048, "sampling_rate": 32000, "target_bandwidths": [2.2],
            "hidden_size": 128, "num_filters": 64, "num_residual_layers": 1,
            "upsampling_ratios": [8, 5, 4, 4], "kernel_size": 7, "last_kernel_size": 7,
            "residual_kernel_size": 3, "dilation_growth_rate": 2, "compress": 2,
            "num_lstm_layers": 2, "trim_right_ratio": 1.0, "audio_channels": 1
        });
        let load = |v: &Value| {
            crate::encodec::EncodecConfig::from_value(v, path)
                .map(drop)
                .map_err(|e| e.to_string())
        };
        let found = problems(&codec, &[], &load);
        assert!(found.is_empty(), "{}", found.join("\n"));
    }
}
