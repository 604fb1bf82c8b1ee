//! Llama as transformers' `LlamaModel` computes it, loaded from a checkpoint in its layout:
//! `embed_tokens`, `layers.{i}.{input_layernorm, self_attn.{q,k,v,o}_proj,
//! post_attention_layernorm, mlp.{gate,up,down}_proj}`, `norm` — bare, or under `model.` as
//! `LlamaForCausalLM` saves it (TinyLlama, Llama 2, Llama 3).
//!
//! Pre-norm decoder layers with RMSNorm; causal self-attention with rotary position embeddings
//! (the half-split "rotate_half" form) on queries and keys, grouped-query attention
//! (`num_key_value_heads` key/value heads, each shared by `heads / kv_heads` query heads), an
//! explicit `head_dim` when the config gives one; a SwiGLU feed-forward
//! `down(silu(gate(x)) · up(x))`; `norm` after the last layer.
//!
//! RoPE follows transformers 5's `rope_parameters` (or the older `rope_scaling` with a
//! top-level `rope_theta`, which it converts): `default`, `linear` (positions divided by
//! `factor`), `llama3` (Llama 3.1's frequency-dependent scaling) and `dynamic` (the default
//! frequencies up to `max_position_embeddings`, beyond which it is refused). The inverse
//! frequencies and the cos/sin tables are computed in f32, as transformers does.

use std::path::Path;

use brainrecon_nn::layers::{self, Linear};
use brainrecon_nn::{ModelError, Result};
use candle_core::{Device, Tensor, D};
use candle_nn::VarBuilder;
use serde_json::Value;

use crate::checkpoint::{
    attention_bias, check_divisible, checked_ids, embed, merge_heads, read_config, split_heads,
    weight_files, Checkpoint, ConfigFields,
};

const WHAT: &str = "Llama config";

/// How the rotary frequencies are derived from `rope_theta` (`rope_parameters.rope_type`).
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    /// `default`: `θ^(−2i/Dh)`.
    Default,
    /// `linear`: the default frequencies divided by `factor`.
    Linear {
        /// Divisor of every frequency.
        factor: f64,
    },
    /// `llama3`: low frequencies divided by `factor`, high ones kept, a smooth ramp between.
    Llama3 {
        /// Divisor of the low frequencies.
        factor: f64,
        /// Wavelengths above `original_max_position_embeddings / low_freq_factor` are divided by
        /// `factor`.
        low_freq_factor: f64,
        /// Wavelengths below `original_max_position_embeddings / high_freq_factor` are kept.
        high_freq_factor: f64,
        /// The context length the model was trained with.
        original_max_position_embeddings: usize,
    },
    /// `dynamic` (NTK): the default frequencies for inputs up to `max_position_embeddings`.
    Dynamic,
}

/// transformers' `LlamaConfig` (the fields the base model reads). Sizes are required; the
/// rest default as in transformers.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    /// Token embeddings (rows of `embed_tokens`).
    pub vocab_size: usize,
    /// d: token width.
    pub hidden_size: usize,
    /// Width of the SwiGLU feed-forward.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (default: `num_attention_heads`, i.e. no grouping).
    pub num_key_value_heads: usize,
    /// Per-head width (default `hidden_size / num_attention_heads`).
    pub head_dim: usize,
    /// The longest input (features truncate to it).
    pub max_position_embeddings: usize,
    /// Epsilon of the RMSNorms (default 1e-6).
    pub rms_norm_eps: f64,
    /// θ: base of the rotary frequencies (default 10000).
    pub rope_theta: f64,
    /// How the rotary frequencies are scaled.
    pub rope_scaling: RopeScaling,
    /// Biases on the q, k, v and o projections (default false).
    pub attention_bias: bool,
    /// Biases on the feed-forward's projections (default false).
    pub mlp_bias: bool,
}

impl LlamaConfig {
    /// Reads and parses a `config.json`; errors name the file and the field.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_value(&read_config(path)?, path)
    }

    /// Parses a `config.json`; `path` names it in errors.
    #[allow(clippy::manual_is_multiple_of)] // `is_multiple_of` needs Rust 1.87
    pub fn from_value(value: &Value, path: &Path) -> Result<Self> {
        let f = ConfigFields::new(value, path, WHAT)?;
        let hidden_size = f.usize(&["hidden_size"], "the hidden width")?;
        let heads = f.usize(&["num_attention_heads"], "attention heads")?;
        check_divisible(
            &f,
            ("hidden_size", hidden_size),
            ("num_attention_heads", heads),
        )?;
        let kv_heads = f.opt_usize(&["num_key_value_heads"])?.unwrap_or(heads);
        if kv_heads == 0 || heads % kv_heads != 0 {
            return Err(f.error(format!(
                "`num_attention_heads` {heads} is not a multiple of `num_key_value_heads` \
                 {kv_heads}"
            )));
        }
        let head_dim = f.opt_usize(&["head_dim"])?.unwrap_or(hidden_size / heads);
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(f.error(format!(
                "`head_dim` {head_dim} must be even (rotary embeddings rotate pairs)"
            )));
        }
        let act = f.string_or(&["hidden_act"], "silu")?;
        if act != "silu" && act != "swish" {
            return Err(f.error(format!(
                "field `hidden_act` is \"{act}\"; Llama's feed-forward uses \"silu\""
            )));
        }
        let max_position_embeddings = f.opt_usize(&["max_position_embeddings"])?.unwrap_or(2048);
        let (rope_theta, rope_scaling) = rope(&f, max_position_embeddings)?;
        Ok(LlamaConfig {
            vocab_size: f.usize(&["vocab_size"], "the number of token embeddings")?,
            hidden_size,
            intermediate_size: f.usize(&["intermediate_size"], "the feed-forward width")?,
            num_hidden_layers: f.usize(&["num_hidden_layers"], "the number of layers")?,
            num_attention_heads: heads,
            num_key_value_heads: kv_heads,
            head_dim,
            max_position_embeddings,
            rms_norm_eps: f.f64_or(&["rms_norm_eps"], 1e-6)?,
            rope_theta,
            rope_scaling,
            attention_bias: f.bool_or("attention_bias", false)?,
            mlp_bias: f.bool_or("mlp_bias", false)?,
        })
    }

    /// The rotary inverse frequencies, `head_dim / 2` of them (f32, as transformers computes
    /// them).
    pub fn inv_freq(&self) -> Vec<f32> {
        let dim = self.head_dim;
        let base = self.rope_theta as f32;
        let plain = (0..dim)
            .step_by(2)
            .map(|i| 1.0 / base.powf(i as f32 / dim as f32));
        match &self.rope_scaling {
            RopeScaling::Default | RopeScaling::Dynamic => plain.collect(),
            RopeScaling::Linear { factor } => plain.map(|f| f / *factor as f32).collect(),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                let (factor, low, high) = (
                    *factor as f32,
                    *low_freq_factor as f32,
                    *high_freq_factor as f32,
                );
                let old = *original_max_position_embeddings as f32;
                let (low_wavelen, high_wavelen) = (old / low, old / high);
                plain
                    .map(|f| {
                        let wavelen = 2.0 * std::f32::consts::PI / f;
                        if wavelen > low_wavelen {
                            f / factor
                        } else if wavelen < high_wavelen {
                            f
                        } else {
                            let smooth = (old / wavelen - low) / (high - low);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
        }
    }
}

/// `rope_theta` and the scaling, from `rope_scaling` (older configs) or `rope_parameters`
/// (transformers 5), with a top-level `rope_theta` as fallback (default 10000).
fn rope(f: &ConfigFields, max_positions: usize) -> Result<(f64, RopeScaling)> {
    let top_theta = f.f64_or(&["rope_theta"], 10_000.0)?;
    let Some(p) = (match f.nested("rope_scaling")? {
        Some(p) => Some(p),
        None => f.nested("rope_parameters")?,
    }) else {
        return Ok((top_theta, RopeScaling::Default));
    };
    let theta = p.f64_or(&["rope_theta"], top_theta)?;
    let kind = p.string_or(&["rope_type", "type"], "default")?;
    let factor = || -> Result<f64> {
        match p.find(&["factor"]) {
            Some((_, v)) => v.as_f64().ok_or_else(|| {
                p.error(format!(
                    "field `{}` is {v}, expected a number",
                    p.name("factor")
                ))
            }),
            None => Err(p.error(format!(
                "field `{}` is missing (the rope scaling factor)",
                p.name("factor")
            ))),
        }
    };
    let scaling = match kind.as_str() {
        "default" => RopeScaling::Default,
        "linear" => RopeScaling::Linear { factor: factor()? },
        "dynamic" => RopeScaling::Dynamic,
        "llama3" => {
            let required = |key: &'static str| -> Result<f64> {
                p.find(&[key]).and_then(|(_, v)| v.as_f64()).ok_or_else(|| {
                    p.error(format!(
                        "field `{}` is missing or not a number",
                        p.name(key)
                    ))
                })
            };
            // a top-level value wins, as transformers' standardisation does
            let original = match f.opt_usize(&["original_max_position_embeddings"])? {
                Some(n) => n,
                None => p
                    .opt_usize(&["original_max_position_embeddings"])?
                    .unwrap_or(max_positions),
            };
            RopeScaling::Llama3 {
                factor: factor()?,
                low_freq_factor: required("low_freq_factor")?,
                high_freq_factor: required("high_freq_factor")?,
                original_max_position_embeddings: original,
            }
        }
        other => {
            return Err(p.error(format!(
                "field `{}` is \"{other}\"; supported: default, linear, dynamic, llama3",
                p.name("rope_type")
            )))
        }
    };
    Ok((theta, scaling))
}

/// Llama's RMSNorm: `weight · x / √(mean(x²) + eps)`.
#[derive(Clone, Debug)]
pub struct RmsNorm {
    /// `[d]`.
    pub weight: Tensor,
    /// Added to the mean square before the root.
    pub eps: f64,
}

impl RmsNorm {
    /// Reads `weight` `[dim]` under `vb`; errors when it is missing or misshaped.
    pub fn new(vb: VarBuilder, dim: usize, eps: f64) -> Result<Self> {
        Ok(RmsNorm {
            weight: layers::weight(&vb, dim, "weight")?,
            eps,
        })
    }

    /// [..., d] → [..., d].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::rms_norm(
            &x.contiguous()?,
            &self.weight,
            self.eps as f32,
        )?)
    }
}

/// `layers.{i}.self_attn`.
#[derive(Clone, Debug)]
pub struct LlamaAttention {
    /// `q_proj`: d → heads·Dh.
    pub q_proj: Linear,
    /// `k_proj`: d → kv_heads·Dh.
    pub k_proj: Linear,
    /// `v_proj`: d → kv_heads·Dh.
    pub v_proj: Linear,
    /// `o_proj`: heads·Dh → d.
    pub o_proj: Linear,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads, each shared by `heads / kv_heads` query heads.
    pub kv_heads: usize,
    /// Dh: width of one head.
    pub head_dim: usize,
}

impl LlamaAttention {
    /// Reads `{q,k,v,o}_proj` under `vb`; errors on a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, c: &LlamaConfig) -> Result<Self> {
        let (d, dh, bias) = (c.hidden_size, c.head_dim, c.attention_bias);
        let (q, kv) = (c.num_attention_heads * dh, c.num_key_value_heads * dh);
        Ok(LlamaAttention {
            q_proj: Linear::new(vb.pp("q_proj"), d, q, bias)?,
            k_proj: Linear::new(vb.pp("k_proj"), d, kv, bias)?,
            v_proj: Linear::new(vb.pp("v_proj"), d, kv, bias)?,
            o_proj: Linear::new(vb.pp("o_proj"), q, d, bias)?,
            heads: c.num_attention_heads,
            kv_heads: c.num_key_value_heads,
            head_dim: dh,
        })
    }

    /// `x` [B, L, d]; `rope` the cos/sin tables [L, Dh/2]; `bias` the additive mask
    /// [B, 1, L, L] → [B, L, d].
    pub fn forward(
        &self,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (cos, sin) = rope;
        let q = split_heads(&self.q_proj.forward(x)?, self.heads)?;
        let k = split_heads(&self.k_proj.forward(x)?, self.kv_heads)?;
        let v = split_heads(&self.v_proj.forward(x)?, self.kv_heads)?;
        let q = candle_nn::rotary_emb::rope(&q, cos, sin)?;
        let k = candle_nn::rotary_emb::rope(&k, cos, sin)?;
        let (k, v) = (self.repeat_kv(&k)?, self.repeat_kv(&v)?);
        let scale = (self.head_dim as f64).powf(-0.5);
        let o = layers::scaled_dot_product_attention(&q, &k, &v, bias, scale, false)?;
        self.o_proj.forward(&merge_heads(&o)?)
    }

    /// [B, kv_heads, L, Dh] → [B, heads, L, Dh], key/value head `h / group` for query head `h`.
    fn repeat_kv(&self, x: &Tensor) -> Result<Tensor> {
        let group = self.heads / self.kv_heads;
        if group == 1 {
            return Ok(x.clone());
        }
        let (b, kvh, l, dh) = x.dims4()?;
        Ok(x.unsqueeze(2)?
            .expand((b, kvh, group, l, dh))?
            .reshape((b, kvh * group, l, dh))?)
    }
}

/// `layers.{i}.mlp`: `down_proj(silu(gate_proj(x)) · up_proj(x))`.
#[derive(Clone, Debug)]
pub struct LlamaMlp {
    /// `gate_proj`: d → intermediate.
    pub gate_proj: Linear,
    /// `up_proj`: d → intermediate.
    pub up_proj: Linear,
    /// `down_proj`: intermediate → d.
    pub down_proj: Linear,
}

impl LlamaMlp {
    /// Reads `{gate,up,down}_proj` under `vb`; errors on a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, c: &LlamaConfig) -> Result<Self> {
        let (d, i, bias) = (c.hidden_size, c.intermediate_size, c.mlp_bias);
        Ok(LlamaMlp {
            gate_proj: Linear::new(vb.pp("gate_proj"), d, i, bias)?,
            up_proj: Linear::new(vb.pp("up_proj"), d, i, bias)?,
            down_proj: Linear::new(vb.pp("down_proj"), i, d, bias)?,
        })
    }

    /// [B, L, d] → `down(silu(gate(x)) · up(x))` [B, L, d].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = layers::silu(&self.gate_proj.forward(x)?)?;
        self.down_proj.forward(&(gate * self.up_proj.forward(x)?)?)
    }
}

/// `layers.{i}`.
#[derive(Clone, Debug)]
pub struct LlamaDecoderLayer {
    /// RMSNorm before the attention.
    pub input_layernorm: RmsNorm,
    /// `self_attn`.
    pub self_attn: LlamaAttention,
    /// RMSNorm before the feed-forward.
    pub post_attention_layernorm: RmsNorm,
    /// `mlp`.
    pub mlp: LlamaMlp,
}

impl LlamaDecoderLayer {
    /// Reads `input_layernorm`, `self_attn`, `post_attention_layernorm` and `mlp` under `vb`;
    /// errors on a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, c: &LlamaConfig) -> Result<Self> {
        let (d, eps) = (c.hidden_size, c.rms_norm_eps);
        Ok(LlamaDecoderLayer {
            input_layernorm: RmsNorm::new(vb.pp("input_layernorm"), d, eps)?,
            self_attn: LlamaAttention::new(vb.pp("self_attn"), c)?,
            post_attention_layernorm: RmsNorm::new(vb.pp("post_attention_layernorm"), d, eps)?,
            mlp: LlamaMlp::new(vb.pp("mlp"), c)?,
        })
    }

    /// `x` [B, L, d]; `rope` the cos/sin tables [L, Dh/2]; `bias` the additive mask [B, 1, L, L] →
    /// [B, L, d].
    pub fn forward(
        &self,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        let h = (x + self
            .self_attn
            .forward(&self.input_layernorm.forward(x)?, rope, bias)?)?;
        Ok((&h
            + self
                .mlp
                .forward(&self.post_attention_layernorm.forward(&h)?)?)?)
    }
}

/// transformers' `LlamaModel`.
#[derive(Clone, Debug)]
pub struct LlamaModel {
    /// [V, d].
    pub embed_tokens: Tensor,
    /// `layers`: the decoder layers.
    pub layers: Vec<LlamaDecoderLayer>,
    /// `norm`: RMSNorm after the last layer.
    pub norm: RmsNorm,
    /// The model's config.
    pub config: LlamaConfig,
    inv_freq: Vec<f32>,
}

impl LlamaModel {
    /// Builds from a [`VarBuilder`] rooted at the base model.
    pub fn new(vb: VarBuilder, c: &LlamaConfig) -> Result<Self> {
        let layers = (0..c.num_hidden_layers)
            .map(|i| LlamaDecoderLayer::new(vb.pp("layers").pp(i), c))
            .collect::<Result<Vec<_>>>()?;
        Ok(LlamaModel {
            embed_tokens: layers::weight(
                &vb.pp("embed_tokens"),
                (c.vocab_size, c.hidden_size),
                "weight",
            )?,
            layers,
            norm: RmsNorm::new(vb.pp("norm"), c.hidden_size, c.rms_norm_eps)?,
            config: c.clone(),
            inv_freq: c.inv_freq(),
        })
    }

    /// Loads a folder with `config.json` and safetensors weights (f32 on `device`; bf16 and
    /// f16 checkpoints are converted).
    pub fn load_dir(dir: &Path, device: &Device) -> Result<Self> {
        Self::load_with_config(
            dir,
            &LlamaConfig::from_file(&dir.join("config.json"))?,
            device,
        )
    }

    /// Loads a folder's weights with the given configuration.
    pub fn load_with_config(dir: &Path, config: &LlamaConfig, device: &Device) -> Result<Self> {
        let checkpoint = Checkpoint::open(
            &weight_files(dir)?,
            device,
            "embed_tokens.weight",
            &["", "model"],
        )?;
        Self::new(checkpoint.var_builder(), config).map_err(|e| checkpoint.in_file(e))
    }

    /// cos and sin [L, Dh/2] of positions `0 .. L`.
    fn rope_tables(&self, l: usize, device: &Device) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let angles: Vec<f32> = (0..l)
            .flat_map(|p| self.inv_freq.iter().map(move |f| p as f32 * f))
            .collect();
        let angles = Tensor::from_vec(angles, (l, half), device)?;
        Ok((angles.cos()?, angles.sin()?))
    }

    /// `model(input_ids, attention_mask, output_hidden_states=True).hidden_states`: the token
    /// embeddings and each layer's output, the last with `norm` applied —
    /// `num_hidden_layers + 1` tensors [B, L, d]. Positions count from 0 in every row, so
    /// padding must be on the right.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<Vec<Tensor>> {
        let ids = checked_ids(input_ids, self.config.vocab_size)?;
        let (b, l) = ids.dims2()?;
        if self.config.rope_scaling == RopeScaling::Dynamic
            && l > self.config.max_position_embeddings
        {
            return Err(ModelError::Invalid(format!(
                "{l} tokens exceed max_position_embeddings {}, beyond which dynamic RoPE \
                 rescales its frequencies (not supported)",
                self.config.max_position_embeddings
            )));
        }
        let device = ids.device();
        let bias = attention_bias(attention_mask, (b, l), true, device)?;
        let rope = self.rope_tables(l, device)?;
        let mut x = embed(&self.embed_tokens, &ids)?;
        let mut states = Vec::with_capacity(self.layers.len() + 1);
        for layer in &self.layers {
            states.push(x.clone());
            x = layer.forward(&x, &rope, bias.as_ref())?;
        }
        states.push(self.norm.forward(&x)?);
        debug_assert_eq!(states[0].dim(D::Minus1)?, self.config.hidden_size);
        Ok(states)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<LlamaConfig> {
        LlamaConfig::from_value(&v, Path::new("m/config.json"))
    }

    #[test]
    fn hub_configs_load() {
        // TinyLlama/TinyLlama-1.1B-Chat-v1.0
        let c = parse(serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
            "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
            "intermediate_size": 5632, "max_position_embeddings": 2048, "model_type": "llama",
            "num_attention_heads": 32, "num_hidden_layers": 22, "num_key_value_heads": 4,
            "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null,
            "tie_word_embeddings": false, "torch_dtype": "bfloat16", "use_cache": true,
            "vocab_size": 32000
        }))
        .unwrap();
        assert_eq!((c.head_dim, c.num_key_value_heads), (64, 4));
        assert_eq!(
            (c.rope_theta, &c.rope_scaling),
            (10_000.0, &RopeScaling::Default)
        );
        // meta-llama/Llama-2-7b-hf
        let c = parse(serde_json::json!({
            "hidden_size": 4096, "intermediate_size": 11008, "max_position_embeddings": 4096,
            "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32,
            "num_key_value_heads": 32, "rms_norm_eps": 1e-05, "rope_scaling": null,
            "rope_theta": 10000.0, "vocab_size": 32000
        }))
        .unwrap();
        assert_eq!(c.head_dim, 128);
        // meta-llama/Llama-3.1-8B
        let c = parse(serde_json::json!({
            "hidden_size": 4096, "intermediate_size": 14336, "max_position_embeddings": 131072,
            "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32,
            "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
            "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                "original_max_position_embeddings": 8192, "rope_type": "llama3"},
            "vocab_size": 128256
        }))
        .unwrap();
        assert_eq!(c.rope_theta, 500_000.0);
        assert_eq!(
            c.rope_scaling,
            RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192
            }
        );
        // the long-wavelength frequencies are divided by 8, the short ones kept
        let plain = LlamaConfig {
            rope_scaling: RopeScaling::Default,
            ..c.clone()
        }
        .inv_freq();
        let scaled = c.inv_freq();
        assert_eq!(scaled[0], plain[0]);
        assert_eq!(scaled[63], plain[63] / 8.0);
    }

    #[test]
    fn bad_fields_are_named() {
        let base = serde_json::json!({"hidden_size": 32, "num_attention_heads": 4,
            "num_hidden_layers": 2, "intermediate_size": 64, "vocab_size": 10});
        assert!(parse(base.clone()).is_ok());
        let mut v = base.clone();
        v["num_key_value_heads"] = 3.into();
        let e = parse(v).unwrap_err();
        assert!(e.to_string().contains("`num_key_value_heads` 3"), "{e}");
        let mut v = base.clone();
        v["rope_parameters"] = serde_json::json!({"rope_type": "yarn", "factor": 4.0});
        let e = parse(v).unwrap_err();
        assert!(
            e.to_string()
                .contains("`rope_parameters.rope_type` is \"yarn\""),
            "{e}"
        );
        let mut v = base.clone();
        v["rope_scaling"] = serde_json::json!({"rope_type": "llama3", "factor": 8.0});
        let e = parse(v).unwrap_err();
        assert!(
            e.to_string().contains("`rope_scaling.low_freq_factor`"),
            "{e}"
        );
        let mut v = base;
        v.as_object_mut().unwrap().remove("vocab_size");
        let e = parse(v).unwrap_err();
        assert!(
            e.to_string().contains("m/config.json") && e.to_string().contains("`vocab_size`"),
            "{e}"
        );
    }
}
