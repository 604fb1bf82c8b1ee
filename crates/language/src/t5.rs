//! T5's encoder as transformers' `T5EncoderModel` computes it, loaded from a checkpoint in its
//! layout: `shared` (or `encoder.embed_tokens`, the same tied table), `encoder.block.{i}.layer.0.
//! {SelfAttention.{q,k,v,o}, layer_norm}` (block 0 also holds `SelfAttention.
//! relative_attention_bias`), `encoder.block.{i}.layer.1.{DenseReluDense.{wi | wi_0, wi_1, wo},
//! layer_norm}`, `encoder.final_layer_norm` — bare (a `T5EncoderModel` or a full
//! `T5ForConditionalGeneration`, whose decoder is ignored) or under `text_encoder.` as
//! MusicGen stores it.
//!
//! Pre-norm blocks with T5's layer norm (a root-mean-square scale, no mean, no bias). Attention is
//! bidirectional and unscaled; its only position information is a learned bias per head and
//! relative-distance bucket, computed by the first block and shared by all the others.

use std::path::Path;

use brainrecon_nn::layers::{self, Linear};
use brainrecon_nn::{ModelError, Result};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use serde_json::Value;

use crate::blip::Activation;
use crate::checkpoint::{
    attention_bias, checked_ids, embed, merge_heads, read_config, split_heads, weight_files,
    Checkpoint, ConfigFields,
};

const WHAT: &str = "T5 config";

/// The feed-forward block of `feed_forward_proj`: `"relu"` (t5-base), `"gated-gelu"` (t5 v1.1,
/// flan-t5), or any `"[gated-]ACT"` with an activation transformers and [`Activation`] know.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct T5FeedForward {
    /// `wo(act(wi_0 x) * wi_1 x)` when gated, `wo(act(wi x))` otherwise.
    pub gated: bool,
    /// The activation of `wi` (`wi_0` when gated).
    pub activation: Activation,
}

impl T5FeedForward {
    /// Parses `feed_forward_proj` as transformers' `T5Config` does (`gated-gelu` means the tanh
    /// approximation, `gelu_new`).
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let parts: Vec<&str> = text.split('-').collect();
        let (gated, act) = match parts.as_slice() {
            [act] => (false, *act),
            ["gated", act] => (true, *act),
            _ => {
                return Err(format!(
                    "\"{text}\" is not of the form \"gated-ACT\" or \"ACT\" (e.g. \"gated-gelu\" \
                     or \"relu\")"
                ))
            }
        };
        let act = if text == "gated-gelu" {
            "gelu_new"
        } else {
            act
        };
        Ok(T5FeedForward {
            gated,
            activation: Activation::parse(act)?,
        })
    }
}

/// transformers' `T5Config` (the fields the encoder reads). Sizes are required; the rest default
/// as in transformers (32 buckets, max_distance 128, eps 1e-6, `relu`).
#[derive(Clone, Debug, PartialEq)]
pub struct T5Config {
    /// Token embeddings (rows of `shared`).
    pub vocab_size: usize,
    /// `d_model` (alias `hidden_size`).
    pub d_model: usize,
    /// Width of one head (`d_kv`); `num_heads * d_kv` need not equal `d_model`.
    pub d_kv: usize,
    /// Width of the feed-forward's hidden layer.
    pub d_ff: usize,
    /// Encoder blocks (`num_layers`).
    pub num_layers: usize,
    /// Attention heads (alias `num_attention_heads`).
    pub num_heads: usize,
    /// Relative-position buckets (both directions together).
    pub relative_attention_num_buckets: usize,
    /// Distance beyond which relative positions share the last bucket.
    pub relative_attention_max_distance: usize,
    /// Epsilon of the layer norms (default 1e-6).
    pub layer_norm_epsilon: f64,
    /// `feed_forward_proj`.
    pub feed_forward: T5FeedForward,
}

impl T5Config {
    /// Reads and parses a `config.json`; errors name the file and the field.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_value(&read_config(path)?, path)
    }

    /// Parses a `config.json`; `path` names it in errors.
    pub fn from_value(value: &Value, path: &Path) -> Result<Self> {
        Self::from_fields(&ConfigFields::new(value, path, WHAT)?)
    }

    /// Parses the fields of a config object (also a nested one, such as MusicGen's
    /// `text_encoder`, whose errors then name `text_encoder.field`).
    pub fn from_fields(f: &ConfigFields) -> Result<Self> {
        let proj = f.string_or(&["feed_forward_proj"], "relu")?;
        let feed_forward = T5FeedForward::parse(&proj)
            .map_err(|m| f.error(format!("field `{}`: {m}", f.name("feed_forward_proj"))))?;
        let buckets = f
            .opt_usize(&["relative_attention_num_buckets"])?
            .unwrap_or(32);
        let max_distance = f
            .opt_usize(&["relative_attention_max_distance"])?
            .unwrap_or(128);
        // Bidirectional buckets: half per direction, half of those exact; fewer than 4 leaves no
        // room for the logarithmic ones transformers computes.
        if buckets < 4 {
            return Err(f.error(format!(
                "field `{}` is {buckets}; expected at least 4",
                f.name("relative_attention_num_buckets")
            )));
        }
        if max_distance <= buckets / 4 {
            return Err(f.error(format!(
                "field `{}` is {max_distance}; expected more than a quarter of the buckets ({})",
                f.name("relative_attention_max_distance"),
                buckets / 4
            )));
        }
        Ok(T5Config {
            vocab_size: f.usize(&["vocab_size"], "the number of token embeddings")?,
            d_model: f.usize(&["d_model", "hidden_size"], "the hidden width")?,
            d_kv: f.usize(&["d_kv", "head_dim"], "the width of one attention head")?,
            d_ff: f.usize(&["d_ff"], "the feed-forward width")?,
            num_layers: f.usize(&["num_layers", "num_hidden_layers"], "encoder blocks")?,
            num_heads: f.usize(&["num_heads", "num_attention_heads"], "attention heads")?,
            relative_attention_num_buckets: buckets,
            relative_attention_max_distance: max_distance,
            layer_norm_epsilon: f.f64_or(&["layer_norm_epsilon"], 1e-6)?,
            feed_forward,
        })
    }
}

/// transformers' `T5Attention._relative_position_bucket` for bidirectional attention: the
/// bucket of `relative = key position - query position`. Half the buckets per direction; in
/// each, distances below a quarter of the buckets are exact, larger ones grow logarithmically
/// up to `max_distance`, beyond which they share the last bucket.
pub fn relative_position_bucket(relative: i64, num_buckets: usize, max_distance: usize) -> usize {
    let half = num_buckets / 2;
    let mut bucket = if relative > 0 { half } else { 0 };
    let distance = relative.unsigned_abs() as usize;
    let max_exact = half / 2;
    if distance < max_exact {
        return bucket + distance;
    }
    // float32 as torch computes it (the ratio's log in double, rounded once), truncated
    let ratio_log = ((max_distance as f64) / (max_exact as f64)).ln() as f32;
    let scaled = (distance as f32 / max_exact as f32).ln() / ratio_log * (half - max_exact) as f32;
    let large = max_exact + scaled as usize;
    bucket += large.min(half - 1);
    bucket
}

/// T5's layer norm: `weight * x / sqrt(mean(x²) + eps)` (no mean subtracted, no bias).
#[derive(Clone, Debug)]
pub struct T5LayerNorm {
    /// `[d]`.
    pub weight: Tensor,
    /// Added to the mean square before the root.
    pub eps: f64,
}

impl T5LayerNorm {
    /// Reads `weight` `[dim]` under `vb`; errors when it is missing or misshaped.
    pub fn new(vb: VarBuilder, dim: usize, eps: f64) -> Result<Self> {
        Ok(T5LayerNorm {
            weight: layers::weight(&vb, dim, "weight")?,
            eps,
        })
    }

    /// [..., d] → [..., d].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let variance = x.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = x.broadcast_mul(&(variance + self.eps)?.sqrt()?.recip()?)?;
        Ok(normed.broadcast_mul(&self.weight)?)
    }
}

/// `layer.0.SelfAttention`: unscaled multi-head attention with an additive position bias.
#[derive(Clone, Debug)]
pub struct T5Attention {
    /// `q`: d → heads·d_kv, no bias.
    pub q: Linear,
    /// `k`: d → heads·d_kv, no bias.
    pub k: Linear,
    /// `v`: d → heads·d_kv, no bias.
    pub v: Linear,
    /// `o`: heads·d_kv → d, no bias.
    pub o: Linear,
    /// `relative_attention_bias.weight` [buckets, heads] (the first block only).
    pub relative_attention_bias: Option<Tensor>,
    /// Attention heads.
    pub heads: usize,
    /// Relative-position buckets.
    pub num_buckets: usize,
    /// Distance beyond which relative positions share the last bucket.
    pub max_distance: usize,
}

impl T5Attention {
    /// Reads `q`, `k`, `v`, `o` and, when `has_relative_bias` (the first block),
    /// `relative_attention_bias` under `vb`; errors on a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, c: &T5Config, has_relative_bias: bool) -> Result<Self> {
        let inner = c.num_heads * c.d_kv;
        let relative_attention_bias = if has_relative_bias {
            Some(layers::weight(
                &vb.pp("relative_attention_bias"),
                (c.relative_attention_num_buckets, c.num_heads),
                "weight",
            )?)
        } else {
            None
        };
        Ok(T5Attention {
            q: Linear::new(vb.pp("q"), c.d_model, inner, false)?,
            k: Linear::new(vb.pp("k"), c.d_model, inner, false)?,
            v: Linear::new(vb.pp("v"), c.d_model, inner, false)?,
            o: Linear::new(vb.pp("o"), inner, c.d_model, false)?,
            relative_attention_bias,
            heads: c.num_heads,
            num_buckets: c.relative_attention_num_buckets,
            max_distance: c.relative_attention_max_distance,
        })
    }

    /// The position bias [1, H, L, L] of a sequence of `len` tokens (`compute_bias`); None for
    /// blocks without the table.
    pub fn position_bias(&self, len: usize, device: &Device) -> Result<Option<Tensor>> {
        let Some(table) = &self.relative_attention_bias else {
            return Ok(None);
        };
        let buckets: Vec<u32> = (0..len as i64)
            .flat_map(|q| {
                (0..len as i64).map(move |k| {
                    relative_position_bucket(k - q, self.num_buckets, self.max_distance) as u32
                })
            })
            .collect();
        let index = Tensor::from_vec(buckets, len * len, device)?;
        let values = table.index_select(&index, 0)?; // [L·L, H]
        Ok(Some(
            values
                .reshape((len, len, self.heads))?
                .permute((2, 0, 1))?
                .unsqueeze(0)?
                .contiguous()?,
        ))
    }

    /// `x` [B, L, d], `bias` the position bias plus the padding mask (broadcastable to
    /// [B, H, L, L]) → [B, L, d].
    pub fn forward(&self, x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let q = split_heads(&self.q.forward(x)?, self.heads)?;
        let k = split_heads(&self.k.forward(x)?, self.heads)?;
        let v = split_heads(&self.v.forward(x)?, self.heads)?;
        // T5 folds the scale into its initialisation: scores are plain dot products.
        let o = layers::scaled_dot_product_attention(&q, &k, &v, Some(bias), 1.0, false)?;
        self.o.forward(&merge_heads(&o)?)
    }
}

/// `layer.1.DenseReluDense`.
#[derive(Clone, Debug)]
pub struct T5DenseActDense {
    /// `wi` (plain) or `wi_0` (gated: the activated half).
    pub wi: Linear,
    /// `wi_1` (gated only: the linear half).
    pub wi_1: Option<Linear>,
    /// `wo`: d_ff → d, no bias.
    pub wo: Linear,
    /// The activation of `wi`.
    pub activation: Activation,
}

impl T5DenseActDense {
    /// Reads `wi` (or `wi_0` and `wi_1` when gated) and `wo` under `vb`; errors on a tensor `vb`
    /// lacks or misshapes.
    pub fn new(vb: VarBuilder, c: &T5Config) -> Result<Self> {
        let (wi, wi_1) = if c.feed_forward.gated {
            (
                Linear::new(vb.pp("wi_0"), c.d_model, c.d_ff, false)?,
                Some(Linear::new(vb.pp("wi_1"), c.d_model, c.d_ff, false)?),
            )
        } else {
            (Linear::new(vb.pp("wi"), c.d_model, c.d_ff, false)?, None)
        };
        Ok(T5DenseActDense {
            wi,
            wi_1,
            wo: Linear::new(vb.pp("wo"), c.d_ff, c.d_model, false)?,
            activation: c.feed_forward.activation,
        })
    }

    /// [B, L, d] → [B, L, d]: `wo(act(wi x))`, or `wo(act(wi_0 x) · wi_1 x)` when gated.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.activation.forward(&self.wi.forward(x)?)?;
        if let Some(wi_1) = &self.wi_1 {
            h = (h * wi_1.forward(x)?)?;
        }
        self.wo.forward(&h)
    }
}

/// `encoder.block.{i}`: `x + SelfAttention(norm(x))`, then `x + DenseReluDense(norm(x))`.
#[derive(Clone, Debug)]
pub struct T5Block {
    /// `layer.0.SelfAttention`.
    pub attention: T5Attention,
    /// `layer.0.layer_norm`.
    pub attention_norm: T5LayerNorm,
    /// `layer.1.DenseReluDense`.
    pub feed_forward: T5DenseActDense,
    /// `layer.1.layer_norm`.
    pub feed_forward_norm: T5LayerNorm,
}

impl T5Block {
    /// Reads `layer.0` (attention, its relative bias when `has_relative_bias`) and `layer.1`
    /// (feed-forward) under `vb`; errors on a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, c: &T5Config, has_relative_bias: bool) -> Result<Self> {
        let attn = vb.pp("layer").pp(0);
        let ff = vb.pp("layer").pp(1);
        Ok(T5Block {
            attention: T5Attention::new(attn.pp("SelfAttention"), c, has_relative_bias)?,
            attention_norm: T5LayerNorm::new(
                attn.pp("layer_norm"),
                c.d_model,
                c.layer_norm_epsilon,
            )?,
            feed_forward: T5DenseActDense::new(ff.pp("DenseReluDense"), c)?,
            feed_forward_norm: T5LayerNorm::new(
                ff.pp("layer_norm"),
                c.d_model,
                c.layer_norm_epsilon,
            )?,
        })
    }

    /// `x` [B, L, d], `bias` as [`T5Attention::forward`] takes it.
    pub fn forward(&self, x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let h = (x + self
            .attention
            .forward(&self.attention_norm.forward(x)?, bias)?)?;
        Ok((&h
            + self
                .feed_forward
                .forward(&self.feed_forward_norm.forward(&h)?)?)?)
    }
}

/// transformers' `T5EncoderModel`.
#[derive(Clone, Debug)]
pub struct T5EncoderModel {
    /// `shared.weight` [V, d] (also saved as `encoder.embed_tokens.weight`).
    pub embed_tokens: Tensor,
    /// `encoder.block`.
    pub blocks: Vec<T5Block>,
    /// `encoder.final_layer_norm`.
    pub final_layer_norm: T5LayerNorm,
    /// The model's config.
    pub config: T5Config,
}

impl T5EncoderModel {
    /// Builds from a [`VarBuilder`] rooted at the model (where `shared` and `encoder` are).
    pub fn new(vb: VarBuilder, c: &T5Config) -> Result<Self> {
        if c.num_layers == 0 {
            return Err(ModelError::Invalid("T5 config: num_layers is 0".into()));
        }
        // The table is tied: a checkpoint holds it under either name.
        let table = if vb.contains_tensor("shared.weight") {
            vb.pp("shared")
        } else {
            vb.pp("encoder").pp("embed_tokens")
        };
        let encoder = vb.pp("encoder");
        let blocks = (0..c.num_layers)
            .map(|i| T5Block::new(encoder.pp("block").pp(i), c, i == 0))
            .collect::<Result<Vec<_>>>()?;
        Ok(T5EncoderModel {
            embed_tokens: layers::weight(&table, (c.vocab_size, c.d_model), "weight")?,
            blocks,
            final_layer_norm: T5LayerNorm::new(
                encoder.pp("final_layer_norm"),
                c.d_model,
                c.layer_norm_epsilon,
            )?,
            config: c.clone(),
        })
    }

    /// Loads a folder with `config.json` and safetensors weights (a T5 checkpoint, or a MusicGen
    /// one, whose `text_encoder` sub-config and tensors are read), in f32 on `device`.
    pub fn load_dir(dir: &Path, device: &Device) -> Result<Self> {
        let path = dir.join("config.json");
        let value = read_config(&path)?;
        let f = ConfigFields::new(&value, &path, WHAT)?;
        let config = match f.nested("text_encoder")? {
            Some(nested) => T5Config::from_fields(&nested)?,
            None => T5Config::from_fields(&f)?,
        };
        Self::load_with_config(dir, &config, device)
    }

    /// Loads a folder's weights with the given configuration.
    pub fn load_with_config(dir: &Path, config: &T5Config, device: &Device) -> Result<Self> {
        let checkpoint = Checkpoint::open(
            &weight_files(dir)?,
            device,
            "encoder.final_layer_norm.weight",
            &["", "text_encoder"],
        )?;
        Self::new(checkpoint.var_builder(), config).map_err(|e| checkpoint.in_file(e))
    }

    /// `model(input_ids, attention_mask).last_hidden_state`: ids [B, L] (u32 or i64), mask
    /// [B, L] (1 = token, 0 = padding; None = all tokens) → [B, L, d]. Padded positions are
    /// computed too (they attend to the real tokens), as transformers does.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        let ids = checked_ids(input_ids, self.config.vocab_size)?;
        let (b, l) = ids.dims2()?;
        if l == 0 {
            return Err(ModelError::Invalid(
                "T5 encoder: input_ids hold no tokens".into(),
            ));
        }
        let device = ids.device();
        let position = self.blocks[0]
            .attention
            .position_bias(l, device)?
            .expect("block 0 holds the relative attention bias");
        let bias = match attention_bias(attention_mask, (b, l), false, device)? {
            Some(mask) => position.broadcast_add(&mask.to_dtype(DType::F32)?)?,
            None => position,
        };
        let mut x = embed(&self.embed_tokens, &ids)?;
        for block in &self.blocks {
            x = block.forward(&x, &bias)?;
        }
        self.final_layer_norm.forward(&x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<T5Config> {
        T5Config::from_value(&v, Path::new("m/config.json"))
    }

    #[test]
    fn buckets_follow_mesh_tensorflow() {
        // t5's defaults: 32 buckets, max_distance 128; 16 per direction, 8 exact
        let b = |r| relative_position_bucket(r, 32, 128);
        assert_eq!((b(0), b(-1), b(-7), b(1), b(7)), (0, 1, 7, 17, 23));
        // log bins: 8 + floor(ln(d / 8) / ln(16) * 8)
        assert_eq!((b(-8), b(-11), b(-12), b(-16), b(-32)), (8, 8, 9, 10, 12));
        assert_eq!((b(16), b(127), b(128), b(1000)), (26, 31, 31, 31));
        assert_eq!(b(-1000), 15);
    }

    #[test]
    fn the_hub_t5_configs_load() {
        // google-t5/t5-base (MusicGen's text encoder)
        let c = parse(serde_json::json!({
            "architectures": ["T5ForConditionalGeneration"], "d_ff": 3072, "d_kv": 64,
            "d_model": 768, "decoder_start_token_id": 0, "dropout_rate": 0.1,
            "eos_token_id": 1, "initializer_factor": 1.0, "is_encoder_decoder": true,
            "layer_norm_epsilon": 1e-06, "model_type": "t5", "n_positions": 512,
            "num_heads": 12, "num_layers": 12, "output_past": true, "pad_token_id": 0,
            "relative_attention_num_buckets": 32, "vocab_size": 32128
        }))
        .unwrap();
        assert_eq!((c.d_model, c.num_layers, c.num_heads), (768, 12, 12));
        assert_eq!(c.relative_attention_max_distance, 128);
        assert_eq!(
            c.feed_forward,
            T5FeedForward {
                gated: false,
                activation: Activation::Relu
            }
        );
        let gated = T5FeedForward::parse("gated-gelu").unwrap();
        assert_eq!(
            (gated.gated, gated.activation),
            (true, Activation::GeluTanh)
        );
        let silu = T5FeedForward::parse("gated-relu").unwrap();
        assert!(silu.gated);
    }

    #[test]
    fn bad_fields_are_named() {
        let base = serde_json::json!({"vocab_size": 10, "d_model": 8, "d_kv": 4, "d_ff": 16,
            "num_layers": 1, "num_heads": 2});
        assert!(parse(base.clone()).is_ok());
        let mut v = base.clone();
        v["feed_forward_proj"] = "gated-gelu-extra".into();
        let e = parse(v).unwrap_err();
        assert!(e.to_string().contains("`feed_forward_proj`"), "{e}");
        let mut v = base.clone();
        v["feed_forward_proj"] = "swish".into();
        let e = parse(v).unwrap_err();
        assert!(e.to_string().contains("swish"), "{e}");
        let mut v = base.clone();
        v.as_object_mut().unwrap().remove("d_kv");
        let e = parse(v).unwrap_err();
        assert!(e.to_string().contains("`d_kv` is missing"), "{e}");
        let mut v = base;
        v["relative_attention_num_buckets"] = 2.into();
        let e = parse(v).unwrap_err();
        assert!(
            e.to_string().contains("relative_attention_num_buckets"),
            "{e}"
        );
    }
}
