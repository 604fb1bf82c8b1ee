//! BERT as transformers' `BertModel` computes it (without the pooler), loaded from a checkpoint
//! in its layout: `embeddings.{word_embeddings, position_embeddings, token_type_embeddings,
//! LayerNorm}`, `encoder.layer.{i}.{attention.self.{query,key,value}, attention.output.{dense,
//! LayerNorm}, intermediate.dense, output.{dense, LayerNorm}}` — bare, or under `bert.` as
//! `BertForMaskedLM`, `BertForPreTraining` and the other task models save it; old checkpoints'
//! `LayerNorm.gamma`/`beta` names are read as transformers 5 renames them.
//!
//! Post-norm layers: every block is `LayerNorm(dense(x) + residual)`. Attention is
//! bidirectional (causal with `is_decoder`); padding keys are masked.

use std::path::Path;

use brainrecon_nn::layers::{self, LayerNorm, Linear};
use brainrecon_nn::{ModelError, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use serde_json::Value;

use crate::blip::Activation;
use crate::checkpoint::{
    attention_bias, check_divisible, checked_ids, embed, merge_heads, read_config, split_heads,
    weight_files, Checkpoint, ConfigFields,
};

const WHAT: &str = "BERT config";

/// transformers' `BertConfig` (the fields the encoder reads). Sizes are required; the rest
/// default as in transformers.
#[derive(Clone, Debug, PartialEq)]
pub struct BertConfig {
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
    /// `hidden_act` (default exact `gelu`).
    pub activation: Activation,
    /// Rows of the position table: the longest input.
    pub max_position_embeddings: usize,
    /// Rows of `token_type_embeddings` (default 2); every token here has type 0.
    pub type_vocab_size: usize,
    /// Epsilon of the LayerNorms (default 1e-12).
    pub layer_norm_eps: f64,
    /// Causal self-attention (`BertLMHeadModel` checkpoints trained as decoders).
    pub is_decoder: bool,
}

impl BertConfig {
    /// Reads and parses a `config.json`; errors name the file and the field.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_value(&read_config(path)?, path)
    }

    /// Parses a `config.json`; `path` names it in errors.
    pub fn from_value(value: &Value, path: &Path) -> Result<Self> {
        let f = ConfigFields::new(value, path, WHAT)?;
        let hidden_size = f.usize(&["hidden_size"], "the hidden width")?;
        let heads = f.usize(&["num_attention_heads"], "attention heads")?;
        check_divisible(
            &f,
            ("hidden_size", hidden_size),
            ("num_attention_heads", heads),
        )?;
        let act = f.string_or(&["hidden_act"], "gelu")?;
        let activation =
            Activation::parse(&act).map_err(|m| f.error(format!("field `hidden_act`: {m}")))?;
        // transformers 4 also had relative position embeddings; a checkpoint trained with them
        // would be computed wrongly with absolute ones, so it is refused.
        let position_type = f.string_or(&["position_embedding_type"], "absolute")?;
        if position_type != "absolute" {
            return Err(f.error(format!(
                "field `position_embedding_type` is \"{position_type}\"; only \"absolute\" \
                 position embeddings are supported"
            )));
        }
        Ok(BertConfig {
            vocab_size: f.usize(&["vocab_size"], "the number of token embeddings")?,
            hidden_size,
            num_hidden_layers: f.usize(&["num_hidden_layers"], "the number of layers")?,
            num_attention_heads: heads,
            intermediate_size: f.usize(&["intermediate_size"], "the feed-forward width")?,
            activation,
            max_position_embeddings: f.usize(
                &["max_position_embeddings"],
                "the rows of the position table",
            )?,
            type_vocab_size: f.opt_usize(&["type_vocab_size"])?.unwrap_or(2),
            layer_norm_eps: f.f64_or(&["layer_norm_eps"], 1e-12)?,
            is_decoder: f.bool_or("is_decoder", false)?,
        })
    }
}

/// `embeddings`: word + position + token type (0), then `LayerNorm`.
#[derive(Clone, Debug)]
pub struct BertEmbeddings {
    /// [V, d].
    pub word_embeddings: Tensor,
    /// [P, d].
    pub position_embeddings: Tensor,
    /// [types, d]; row 0 is added to every token.
    pub token_type_embeddings: Tensor,
    /// `LayerNorm` over the summed embeddings.
    pub layer_norm: LayerNorm,
}

impl BertEmbeddings {
    /// Reads `word_embeddings`, `position_embeddings`, `token_type_embeddings` and `LayerNorm`
    /// under `vb`; errors on a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, c: &BertConfig) -> Result<Self> {
        let d = c.hidden_size;
        Ok(BertEmbeddings {
            word_embeddings: layers::weight(
                &vb.pp("word_embeddings"),
                (c.vocab_size, d),
                "weight",
            )?,
            position_embeddings: layers::weight(
                &vb.pp("position_embeddings"),
                (c.max_position_embeddings, d),
                "weight",
            )?,
            token_type_embeddings: layers::weight(
                &vb.pp("token_type_embeddings"),
                (c.type_vocab_size, d),
                "weight",
            )?,
            layer_norm: LayerNorm::new(vb.pp("LayerNorm"), d, c.layer_norm_eps, true)?,
        })
    }

    /// Checked ids [B, L] (u32) → [B, L, d].
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let l = ids.dim(1)?;
        let x = embed(&self.word_embeddings, ids)?
            .broadcast_add(&self.token_type_embeddings.narrow(0, 0, 1)?)?
            .broadcast_add(&self.position_embeddings.narrow(0, 0, l)?)?;
        self.layer_norm.forward(&x)
    }
}

/// `attention.output` and `output`: `LayerNorm(dense(x) + residual)`.
#[derive(Clone, Debug)]
pub struct BertOutput {
    /// `dense`: Linear in → d.
    pub dense: Linear,
    /// `LayerNorm` after the residual sum.
    pub layer_norm: LayerNorm,
}

impl BertOutput {
    /// Reads `dense` (`in_dim` → d) and `LayerNorm` under `vb`; errors on a tensor `vb` lacks or
    /// misshapes.
    pub fn new(vb: VarBuilder, c: &BertConfig, in_dim: usize) -> Result<Self> {
        Ok(BertOutput {
            dense: Linear::new(vb.pp("dense"), in_dim, c.hidden_size, true)?,
            layer_norm: LayerNorm::new(vb.pp("LayerNorm"), c.hidden_size, c.layer_norm_eps, true)?,
        })
    }

    /// `x` [B, L, in] and `residual` [B, L, d] → `LayerNorm(dense(x) + residual)` [B, L, d].
    pub fn forward(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        self.layer_norm
            .forward(&(self.dense.forward(x)? + residual)?)
    }
}

/// `attention`: `self.{query, key, value}` and `output`.
#[derive(Clone, Debug)]
pub struct BertAttention {
    /// `self.query`: Linear d → d.
    pub query: Linear,
    /// `self.key`: Linear d → d.
    pub key: Linear,
    /// `self.value`: Linear d → d.
    pub value: Linear,
    /// `output`: projection, residual and LayerNorm.
    pub output: BertOutput,
    /// Attention heads.
    pub heads: usize,
}

impl BertAttention {
    /// Reads `self.{query,key,value}` and `output` under `vb`; errors on a tensor `vb` lacks or
    /// misshapes.
    pub fn new(vb: VarBuilder, c: &BertConfig) -> Result<Self> {
        let d = c.hidden_size;
        let s = vb.pp("self");
        Ok(BertAttention {
            query: Linear::new(s.pp("query"), d, d, true)?,
            key: Linear::new(s.pp("key"), d, d, true)?,
            value: Linear::new(s.pp("value"), d, d, true)?,
            output: BertOutput::new(vb.pp("output"), c, d)?,
            heads: c.num_attention_heads,
        })
    }

    /// `x` [B, L, d], `bias` the additive mask (broadcastable to [B, H, L, L]) → [B, L, d].
    pub fn forward(&self, x: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let q = split_heads(&self.query.forward(x)?, self.heads)?;
        let k = split_heads(&self.key.forward(x)?, self.heads)?;
        let v = split_heads(&self.value.forward(x)?, self.heads)?;
        let scale = (q.dim(3)? as f64).powf(-0.5);
        let o = layers::scaled_dot_product_attention(&q, &k, &v, bias, scale, false)?;
        self.output.forward(&merge_heads(&o)?, x)
    }
}

/// `encoder.layer.{i}`.
#[derive(Clone, Debug)]
pub struct BertLayer {
    /// `attention`: self-attention and its output block.
    pub attention: BertAttention,
    /// `intermediate.dense`.
    pub intermediate: Linear,
    /// The feed-forward's activation (`hidden_act`).
    pub activation: Activation,
    /// `output`: feed-forward projection, residual and LayerNorm.
    pub output: BertOutput,
}

impl BertLayer {
    /// Reads `attention`, `intermediate.dense` and `output` under `vb`; errors on a tensor `vb`
    /// lacks or misshapes.
    pub fn new(vb: VarBuilder, c: &BertConfig) -> Result<Self> {
        Ok(BertLayer {
            attention: BertAttention::new(vb.pp("attention"), c)?,
            intermediate: Linear::new(
                vb.pp("intermediate").pp("dense"),
                c.hidden_size,
                c.intermediate_size,
                true,
            )?,
            activation: c.activation,
            output: BertOutput::new(vb.pp("output"), c, c.intermediate_size)?,
        })
    }

    /// `x` [B, L, d], `bias` the additive mask (broadcastable to [B, H, L, L]) → [B, L, d].
    pub fn forward(&self, x: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let h = self.attention.forward(x, bias)?;
        let inner = self.activation.forward(&self.intermediate.forward(&h)?)?;
        self.output.forward(&inner, &h)
    }
}

/// transformers' `BertModel` without the pooler.
#[derive(Clone, Debug)]
pub struct BertModel {
    /// `embeddings`.
    pub embeddings: BertEmbeddings,
    /// `encoder.layer`.
    pub layers: Vec<BertLayer>,
    /// The model's config.
    pub config: BertConfig,
}

impl BertModel {
    /// Builds from a [`VarBuilder`] rooted at the base model.
    pub fn new(vb: VarBuilder, c: &BertConfig) -> Result<Self> {
        let layers = (0..c.num_hidden_layers)
            .map(|i| BertLayer::new(vb.pp("encoder").pp("layer").pp(i), c))
            .collect::<Result<Vec<_>>>()?;
        Ok(BertModel {
            embeddings: BertEmbeddings::new(vb.pp("embeddings"), c)?,
            layers,
            config: c.clone(),
        })
    }

    /// Loads a folder with `config.json` and safetensors weights, in f32 on `device`.
    pub fn load_dir(dir: &Path, device: &Device) -> Result<Self> {
        Self::load_with_config(
            dir,
            &BertConfig::from_file(&dir.join("config.json"))?,
            device,
        )
    }

    /// Loads a folder's weights with the given configuration.
    pub fn load_with_config(dir: &Path, config: &BertConfig, device: &Device) -> Result<Self> {
        let checkpoint = Checkpoint::open(
            &weight_files(dir)?,
            device,
            "embeddings.word_embeddings.weight",
            &["", "bert"],
        )?;
        Self::new(checkpoint.var_builder(), config).map_err(|e| checkpoint.in_file(e))
    }

    /// `model(input_ids, attention_mask, output_hidden_states=True).hidden_states`: the
    /// embeddings (after their LayerNorm) and each layer's output, `num_hidden_layers + 1`
    /// tensors [B, L, d]. Token types are all 0, positions count from 0 in every row.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<Vec<Tensor>> {
        let ids = checked_ids(input_ids, self.config.vocab_size)?;
        let (b, l) = ids.dims2()?;
        if l > self.config.max_position_embeddings {
            return Err(ModelError::Invalid(format!(
                "{l} tokens exceed BERT's max_position_embeddings {}",
                self.config.max_position_embeddings
            )));
        }
        let bias = attention_bias(attention_mask, (b, l), self.config.is_decoder, ids.device())?;
        let mut x = self.embeddings.forward(&ids)?;
        let mut states = Vec::with_capacity(self.layers.len() + 1);
        for layer in &self.layers {
            states.push(x.clone());
            x = layer.forward(&x, bias.as_ref())?;
        }
        states.push(x);
        Ok(states)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<BertConfig> {
        BertConfig::from_value(&v, Path::new("m/config.json"))
    }

    #[test]
    fn the_hub_bert_base_config_loads() {
        // google-bert/bert-base-uncased's config.json
        let c = parse(serde_json::json!({
            "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1,
            "gradient_checkpointing": false, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
            "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
            "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
            "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0,
            "position_embedding_type": "absolute", "transformers_version": "4.6.0.dev0",
            "type_vocab_size": 2, "use_cache": true, "vocab_size": 30522
        }))
        .unwrap();
        assert_eq!(
            (c.hidden_size, c.num_hidden_layers, c.vocab_size),
            (768, 12, 30522)
        );
        assert_eq!(c.activation, Activation::Gelu);
        assert!(!c.is_decoder);
    }

    #[test]
    fn bad_fields_are_named() {
        let base = serde_json::json!({"hidden_size": 32, "num_attention_heads": 4,
            "num_hidden_layers": 2, "intermediate_size": 64, "max_position_embeddings": 16,
            "vocab_size": 10});
        assert!(parse(base.clone()).is_ok());
        let mut v = base.clone();
        v.as_object_mut().unwrap().remove("intermediate_size");
        let e = parse(v).unwrap_err();
        assert!(
            e.to_string().contains("`intermediate_size` is missing"),
            "{e}"
        );
        let mut v = base.clone();
        v["position_embedding_type"] = "relative_key".into();
        let e = parse(v).unwrap_err();
        assert!(e.to_string().contains("position_embedding_type"), "{e}");
        let mut v = base;
        v["layer_norm_eps"] = "small".into();
        let e = parse(v).unwrap_err();
        assert!(e.to_string().contains("`layer_norm_eps`"), "{e}");
    }
}
