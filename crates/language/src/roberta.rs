//! RoBERTa as transformers' `RobertaModel` computes it (and CLAP's text tower, `ClapTextModel`,
//! which is the same network), loaded from a checkpoint in its layout:
//! `embeddings.{word_embeddings, position_embeddings, token_type_embeddings, LayerNorm}`,
//! `encoder.layer.{i}.…` (BERT's layers, [`crate::bert::BertLayer`]) and `pooler.dense`.
//!
//! What differs from BERT is the embedding: position ids count the non-padding tokens from
//! `pad_token_id + 1` (fairseq's `make_positions`), padding tokens take position
//! `pad_token_id`, and there is a single token type. [`RobertaTokenizer`] is the byte-level BPE
//! tokenizer as transformers 5's `RobertaTokenizer` rebuilds it from `tokenizer.json`.

use std::path::{Path, PathBuf};

use brainrecon_nn::layers::{self, LayerNorm, Linear};
use brainrecon_nn::weights::read_json;
use brainrecon_nn::{ModelError, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde_json::Value;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{NormalizerWrapper, Tokenizer};

use crate::bert::{BertConfig, BertLayer};
use crate::blip::Activation;
use crate::checkpoint::{
    attention_bias, check_divisible, checked_ids, embed, read_config, weight_files, Checkpoint,
    ConfigFields,
};

const WHAT: &str = "RoBERTa config";

/// transformers' `RobertaConfig` / `ClapTextConfig` (the fields the encoder reads). Absent
/// fields take the defaults of the family ([`RobertaConfig::roberta_base`] or
/// [`RobertaConfig::clap_text`]).
#[derive(Clone, Debug, PartialEq)]
pub struct RobertaConfig {
    /// Token embeddings (rows of `word_embeddings`).
    pub vocab_size: usize,
    /// d: token width.
    pub hidden_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads (dividing `hidden_size`).
    pub num_attention_heads: usize,
    /// Width of the feed-forward's hidden layer.
    pub intermediate_size: usize,
    /// `hidden_act`.
    pub activation: Activation,
    /// Rows of the position table (positions count from `pad_token_id + 1`).
    pub max_position_embeddings: usize,
    /// Rows of `token_type_embeddings`; every token has type 0.
    pub type_vocab_size: usize,
    /// Epsilon of the LayerNorms.
    pub layer_norm_eps: f64,
    /// The padding token; positions count from `pad_token_id + 1`.
    pub pad_token_id: usize,
}

impl RobertaConfig {
    /// transformers' `RobertaConfig()` defaults (roberta-base).
    pub fn roberta_base() -> Self {
        RobertaConfig {
            vocab_size: 50265,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            activation: Activation::Gelu,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            pad_token_id: 1,
        }
    }

    /// transformers' `ClapTextConfig()` defaults (514 positions, one token type).
    pub fn clap_text() -> Self {
        RobertaConfig {
            max_position_embeddings: 514,
            type_vocab_size: 1,
            ..Self::roberta_base()
        }
    }

    /// A standalone RoBERTa `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let value = read_config(path)?;
        Self::from_fields(
            &ConfigFields::new(&value, path, WHAT)?,
            &Self::roberta_base(),
        )
    }

    /// Reads the fields of a config object (a whole file, or CLAP's nested `text_config`);
    /// absent ones are taken from `defaults`.
    pub fn from_fields(f: &ConfigFields, defaults: &RobertaConfig) -> Result<Self> {
        let size = |key: &'static str, default: usize| -> Result<usize> {
            match f.opt_usize(&[key])? {
                None => Ok(default),
                Some(0) => Err(f.error(format!(
                    "field `{}` is 0, expected a positive number",
                    f.name(key)
                ))),
                Some(n) => Ok(n),
            }
        };
        let hidden_size = size("hidden_size", defaults.hidden_size)?;
        let heads = size("num_attention_heads", defaults.num_attention_heads)?;
        check_divisible(
            f,
            ("hidden_size", hidden_size),
            ("num_attention_heads", heads),
        )?;
        let activation = match f.find(&["hidden_act"]) {
            None => defaults.activation,
            Some(_) => {
                let act = f.string_or(&["hidden_act"], "gelu")?;
                Activation::parse(&act)
                    .map_err(|m| f.error(format!("field `{}`: {m}", f.name("hidden_act"))))?
            }
        };
        let position_type = f.string_or(&["position_embedding_type"], "absolute")?;
        if position_type != "absolute" {
            return Err(f.error(format!(
                "field `{}` is \"{position_type}\"; only \"absolute\" position embeddings are \
                 supported",
                f.name("position_embedding_type")
            )));
        }
        let config = RobertaConfig {
            vocab_size: size("vocab_size", defaults.vocab_size)?,
            hidden_size,
            num_hidden_layers: size("num_hidden_layers", defaults.num_hidden_layers)?,
            num_attention_heads: heads,
            intermediate_size: size("intermediate_size", defaults.intermediate_size)?,
            activation,
            max_position_embeddings: size(
                "max_position_embeddings",
                defaults.max_position_embeddings,
            )?,
            type_vocab_size: size("type_vocab_size", defaults.type_vocab_size)?,
            layer_norm_eps: f.f64_or(&["layer_norm_eps"], defaults.layer_norm_eps)?,
            pad_token_id: f
                .opt_usize(&["pad_token_id"])?
                .unwrap_or(defaults.pad_token_id),
        };
        if config.pad_token_id >= config.max_position_embeddings {
            return Err(f.error(format!(
                "field `{}` is {}, but positions count from it and `{}` is only {}",
                f.name("pad_token_id"),
                config.pad_token_id,
                f.name("max_position_embeddings"),
                config.max_position_embeddings
            )));
        }
        Ok(config)
    }

    /// The same sizes as a [`BertConfig`], for the encoder layers RoBERTa shares with BERT.
    pub fn bert(&self) -> BertConfig {
        BertConfig {
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: self.num_attention_heads,
            intermediate_size: self.intermediate_size,
            activation: self.activation,
            max_position_embeddings: self.max_position_embeddings,
            type_vocab_size: self.type_vocab_size,
            layer_norm_eps: self.layer_norm_eps,
            is_decoder: false,
        }
    }
}

/// RoBERTa's position ids of one row: the running count of non-padding tokens, offset by
/// `pad`; padding tokens get `pad` itself.
pub fn position_ids(ids: &[u32], pad: usize) -> Vec<u32> {
    let mut count = 0u32;
    ids.iter()
        .map(|&t| {
            if t as usize == pad {
                pad as u32
            } else {
                count += 1;
                count + pad as u32
            }
        })
        .collect()
}

/// `embeddings`: word + position (from the padding-aware ids) + token type 0, then `LayerNorm`.
#[derive(Clone, Debug)]
pub struct RobertaEmbeddings {
    /// [V, d].
    pub word_embeddings: Tensor,
    /// [P, d].
    pub position_embeddings: Tensor,
    /// [types, d]; row 0 is added to every token.
    pub token_type_embeddings: Tensor,
    /// `LayerNorm` over the summed embeddings.
    pub layer_norm: LayerNorm,
    /// The padding token; positions count from `pad_token_id + 1`.
    pub pad_token_id: usize,
}

impl RobertaEmbeddings {
    /// Reads `word_embeddings`, `position_embeddings`, `token_type_embeddings` and `LayerNorm`
    /// under `vb`; errors on a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, c: &RobertaConfig) -> Result<Self> {
        let d = c.hidden_size;
        let table = |name: &str, rows: usize| layers::weight(&vb.pp(name), (rows, d), "weight");
        Ok(RobertaEmbeddings {
            word_embeddings: table("word_embeddings", c.vocab_size)?,
            position_embeddings: table("position_embeddings", c.max_position_embeddings)?,
            token_type_embeddings: table("token_type_embeddings", c.type_vocab_size)?,
            layer_norm: LayerNorm::new(vb.pp("LayerNorm"), d, c.layer_norm_eps, true)?,
            pad_token_id: c.pad_token_id,
        })
    }

    /// Checked ids [B, L] (u32) → [B, L, d].
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, l) = ids.dims2()?;
        let rows: Vec<Vec<u32>> = ids.to_vec2()?;
        let positions: Vec<u32> = rows
            .iter()
            .flat_map(|r| position_ids(r, self.pad_token_id))
            .collect();
        let max_positions = self.position_embeddings.dim(0)?;
        if let Some(&p) = positions.iter().max() {
            if p as usize >= max_positions {
                return Err(ModelError::Invalid(format!(
                    "{l} tokens need position id {p}, but the model has {max_positions} \
                     positions (max_position_embeddings, counted from pad_token_id {} + 1)",
                    self.pad_token_id
                )));
            }
        }
        let positions = Tensor::from_vec(positions, (b, l), ids.device())?;
        let x = embed(&self.word_embeddings, ids)?
            .broadcast_add(&self.token_type_embeddings.narrow(0, 0, 1)?)?
            .add(&embed(&self.position_embeddings, &positions)?)?;
        self.layer_norm.forward(&x)
    }
}

/// What [`RobertaModel::forward`] returns.
#[derive(Clone, Debug)]
pub struct RobertaOutput {
    /// [B, L, d].
    pub last_hidden_state: Tensor,
    /// `tanh(pooler.dense(h[:, 0]))` [B, d], when the model has a pooler.
    pub pooler_output: Option<Tensor>,
}

/// transformers' `RobertaModel` (`ClapTextModel`).
#[derive(Clone, Debug)]
pub struct RobertaModel {
    /// `embeddings`.
    pub embeddings: RobertaEmbeddings,
    /// `encoder.layer`: BERT's post-norm layers.
    pub layers: Vec<BertLayer>,
    /// `pooler.dense`.
    pub pooler: Option<Linear>,
    /// The model's config.
    pub config: RobertaConfig,
}

impl RobertaModel {
    /// Builds from a [`VarBuilder`] rooted at the base model; `add_pooling_layer` as in
    /// transformers.
    pub fn new(vb: VarBuilder, c: &RobertaConfig, add_pooling_layer: bool) -> Result<Self> {
        let bert = c.bert();
        let layers = (0..c.num_hidden_layers)
            .map(|i| BertLayer::new(vb.pp("encoder").pp("layer").pp(i), &bert))
            .collect::<Result<Vec<_>>>()?;
        let pooler = if add_pooling_layer {
            let d = c.hidden_size;
            Some(Linear::new(vb.pp("pooler").pp("dense"), d, d, true)?)
        } else {
            None
        };
        Ok(RobertaModel {
            embeddings: RobertaEmbeddings::new(vb.pp("embeddings"), c)?,
            layers,
            pooler,
            config: c.clone(),
        })
    }

    /// Loads a folder with `config.json` and safetensors weights (bare, or under `roberta.` as
    /// the task models store it), in f32 on `device`; the pooler when the checkpoint has one.
    pub fn load_dir(dir: &Path, device: &Device) -> Result<Self> {
        let config = RobertaConfig::from_file(&dir.join("config.json"))?;
        let checkpoint = Checkpoint::open(
            &weight_files(dir)?,
            device,
            "embeddings.word_embeddings.weight",
            &["", "roberta"],
        )?;
        let vb = checkpoint.var_builder();
        let pooled = vb.contains_tensor("pooler.dense.weight");
        Self::new(vb, &config, pooled).map_err(|e| checkpoint.in_file(e))
    }

    /// `model(input_ids, attention_mask)`: ids [B, L] (u32 or i64), mask [B, L] (1 = token,
    /// 0 = padding; None = all tokens).
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<RobertaOutput> {
        let ids = checked_ids(input_ids, self.config.vocab_size)?;
        let (b, l) = ids.dims2()?;
        if l == 0 {
            return Err(ModelError::Invalid(
                "input_ids have no tokens; a RoBERTa input has at least <s> and </s>".into(),
            ));
        }
        let bias = attention_bias(attention_mask, (b, l), false, ids.device())?;
        let mut x = self.embeddings.forward(&ids)?;
        for layer in &self.layers {
            x = layer.forward(&x, bias.as_ref())?;
        }
        let pooler_output = match &self.pooler {
            Some(dense) => Some(dense.forward(&x.narrow(1, 0, 1)?.squeeze(1)?)?.tanh()?),
            None => None,
        };
        Ok(RobertaOutput {
            last_hidden_state: x,
            pooler_output,
        })
    }
}

/// RoBERTa's byte-level BPE tokenizer as transformers 5's `RobertaTokenizer` rebuilds it: the
/// vocabulary and merges of `tokenizer.json`, no normalizer, a `ByteLevel(add_prefix_space)`
/// pre-tokenizer and `<s> … </s>` (`RobertaProcessing`), with `add_prefix_space`,
/// `trim_offsets`, `cls_token` and `sep_token` from `tokenizer_config.json`. Added tokens are
/// those of `tokenizer.json`.
#[derive(Clone)]
pub struct RobertaTokenizer {
    tokenizer: Tokenizer,
    pad_id: u32,
    path: PathBuf,
}

impl std::fmt::Debug for RobertaTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RobertaTokenizer")
            .field("path", &self.path)
            .field("pad_id", &self.pad_id)
            .finish()
    }
}

/// A string option of `tokenizer_config.json` (a token may be `{"content": ...}`).
fn config_string(config: &Value, key: &str, default: &str) -> Option<String> {
    match config.get(key) {
        None | Some(Value::Null) => Some(default.to_string()),
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(o)) => o.get("content")?.as_str().map(String::from),
        Some(_) => None,
    }
}

impl RobertaTokenizer {
    /// Loads `dir/tokenizer.json` with `dir/tokenizer_config.json` when present.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(ModelError::MissingFile {
                path,
                what: "the RoBERTa tokenizer (tokenizer.json, transformers' fast tokenizer \
                       file)"
                    .into(),
            });
        }
        let config_path = dir.join("tokenizer_config.json");
        let config: Value = if config_path.is_file() {
            read_json(&config_path, "tokenizer config")?
        } else {
            Value::Object(Default::default())
        };
        let bad_config = |message: String| ModelError::Tokenizer {
            path: config_path.clone(),
            message,
        };
        if let Some(class) = config.get("tokenizer_class").and_then(Value::as_str) {
            if class.strip_suffix("Fast").unwrap_or(class) != "RobertaTokenizer" {
                return Err(bad_config(format!(
                    "field `tokenizer_class` is \"{class}\", expected RobertaTokenizer"
                )));
            }
        }
        let flag = |key: &str, default: bool| match config.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(bad_config(format!(
                "field `{key}` is {v}, expected true or false"
            ))),
        };
        let add_prefix_space = flag("add_prefix_space", false)?;
        let trim_offsets = flag("trim_offsets", true)?;
        let token = |key: &str, default: &str| {
            config_string(&config, key, default)
                .ok_or_else(|| bad_config(format!("field `{key}` is not a token string")))
        };
        let (cls, sep, pad) = (
            token("cls_token", "<s>")?,
            token("sep_token", "</s>")?,
            token("pad_token", "<pad>")?,
        );
        let bad = |message: String| ModelError::Tokenizer {
            path: path.clone(),
            message,
        };
        let mut tokenizer = Tokenizer::from_file(&path).map_err(|e| bad(e.to_string()))?;
        let id = |t: &str| {
            tokenizer
                .token_to_id(t)
                .ok_or_else(|| bad(format!("the special token {t:?} is not in the vocabulary")))
        };
        let (cls_id, sep_id, pad_id) = (id(&cls)?, id(&sep)?, id(&pad)?);
        tokenizer.with_normalizer(None::<NormalizerWrapper>);
        tokenizer.with_pre_tokenizer(Some(ByteLevel::new(add_prefix_space, trim_offsets, true)));
        tokenizer.with_decoder(Some(ByteLevel::default()));
        tokenizer.with_post_processor(Some(
            RobertaProcessing::new((sep, sep_id), (cls, cls_id))
                .trim_offsets(trim_offsets)
                .add_prefix_space(add_prefix_space),
        ));
        tokenizer
            .with_truncation(None)
            .map_err(|e| bad(e.to_string()))?;
        tokenizer.with_padding(None);
        Ok(RobertaTokenizer {
            tokenizer,
            pad_id,
            path,
        })
    }

    /// `tokenizer(text)["input_ids"]`: `<s> … </s>`, no truncation.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| ModelError::Invalid(format!("cannot tokenize {text:?}: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// `tokenizer(texts, padding=True)`: ids [B, L] (u32, right padding with `<pad>`) and the
    /// attention mask [B, L] (u32). With `max_length`, longer texts are cut to it (the last
    /// token is still `</s>`, as `truncation=True` does).
    pub fn encode_batch(
        &self,
        texts: &[&str],
        max_length: Option<usize>,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        if texts.is_empty() {
            return Err(ModelError::Invalid("no texts to tokenize".into()));
        }
        if max_length.is_some_and(|m| m < 2) {
            return Err(ModelError::Invalid(
                "max_length must leave room for <s> and </s> (at least 2)".into(),
            ));
        }
        let mut rows = Vec::with_capacity(texts.len());
        for text in texts {
            let mut ids = self.encode(text)?;
            if let Some(m) = max_length {
                if ids.len() > m {
                    let last = ids[ids.len() - 1];
                    ids.truncate(m);
                    ids[m - 1] = last;
                }
            }
            rows.push(ids);
        }
        let l = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = vec![self.pad_id; rows.len() * l];
        let mut mask = vec![0u32; rows.len() * l];
        for (i, row) in rows.iter().enumerate() {
            ids[i * l..i * l + row.len()].copy_from_slice(row);
            mask[i * l..i * l + row.len()].fill(1);
        }
        Ok((
            Tensor::from_vec(ids, (rows.len(), l), device)?,
            Tensor::from_vec(mask, (rows.len(), l), device)?.to_dtype(DType::U32)?,
        ))
    }

    /// The padding token's id.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<RobertaConfig> {
        let path = Path::new("m/config.json");
        RobertaConfig::from_fields(
            &ConfigFields::new(&v, path, WHAT)?,
            &RobertaConfig::roberta_base(),
        )
    }

    #[test]
    fn positions_skip_padding() {
        // fairseq's make_positions: pad 1, tokens count from 2
        assert_eq!(position_ids(&[0, 5, 7, 2, 1, 1], 1), [2, 3, 4, 5, 1, 1]);
        assert_eq!(position_ids(&[0, 1, 7], 1), [2, 1, 3]);
    }

    #[test]
    fn the_hub_roberta_base_config_loads_and_bad_fields_are_named() {
        // FacebookAI/roberta-base's config.json
        let c = parse(serde_json::json!({
            "architectures": ["RobertaForMaskedLM"], "attention_probs_dropout_prob": 0.1,
            "bos_token_id": 0, "eos_token_id": 2, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02,
            "intermediate_size": 3072, "layer_norm_eps": 1e-05, "max_position_embeddings": 514,
            "model_type": "roberta", "num_attention_heads": 12, "num_hidden_layers": 12,
            "pad_token_id": 1, "type_vocab_size": 1, "vocab_size": 50265
        }))
        .unwrap();
        assert_eq!((c.max_position_embeddings, c.type_vocab_size), (514, 1));
        assert_eq!(c.layer_norm_eps, 1e-5);
        // absent fields take the defaults
        assert_eq!(
            parse(serde_json::json!({})).unwrap(),
            RobertaConfig::roberta_base()
        );
        let e = parse(serde_json::json!({"hidden_size": 30, "num_attention_heads": 4}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not divisible") && e.contains("m/config.json"),
            "{e}"
        );
        let e = parse(serde_json::json!({"hidden_act": "swish"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("hidden_act"), "{e}");
        let e = parse(serde_json::json!({"pad_token_id": 600}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("pad_token_id"), "{e}");
    }
}
