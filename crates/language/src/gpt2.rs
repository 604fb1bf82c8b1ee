//! GPT-2 as transformers' `GPT2Model` computes it, loaded from a checkpoint in its layout
//! (`wte`, `wpe`, `h.{i}.{ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj}`, `ln_f`;
//! bare as the hub's `gpt2` stores it, or under `transformer.` as `GPT2LMHeadModel` saves it).
//!
//! Pre-norm blocks: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`; causal self-attention scaled
//! by `1/√Dh` (`scale_attn_weights`) and, with `scale_attn_by_inverse_layer_idx`, by
//! `1/(layer + 1)`; `ln_f` after the last block. transformers' `Conv1D` stores its weight as
//! [in, out], the transpose of a linear layer's; it is transposed once on load.
//! `reorder_and_upcast_attn` only changes how half-precision scores are computed; here
//! everything is f32.

use std::path::Path;

use brainrecon_nn::layers::{self, LayerNorm, Linear};
use brainrecon_nn::Result;
use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use serde_json::Value;

use crate::blip::Activation;
use crate::checkpoint::{
    attention_bias, check_divisible, checked_ids, embed, merge_heads, read_config, split_heads,
    weight_files, Checkpoint, ConfigFields,
};

const WHAT: &str = "GPT-2 config";

/// transformers' `GPT2Config` (the fields the base model reads). `config.json` names the sizes
/// `n_embd`, `n_layer`, `n_head`, `n_positions` (`hidden_size` etc. are accepted too); the
/// sizes are required, the rest default as in transformers.
#[derive(Clone, Debug, PartialEq)]
pub struct Gpt2Config {
    /// Token embeddings (rows of `wte`).
    pub vocab_size: usize,
    /// Rows of the position table: the longest input.
    pub n_positions: usize,
    /// d: token width (alias `hidden_size`).
    pub n_embd: usize,
    /// Blocks (alias `num_hidden_layers`).
    pub n_layer: usize,
    /// Attention heads (alias `num_attention_heads`), dividing `n_embd`.
    pub n_head: usize,
    /// Width of the feed-forward layer (`n_inner`, default `4 · n_embd`).
    pub n_inner: usize,
    /// `activation_function` (default `gelu_new`, the tanh approximation).
    pub activation: Activation,
    /// Epsilon of the LayerNorms (default 1e-5).
    pub layer_norm_epsilon: f64,
    /// Scale attention scores by `1/√Dh` (default true).
    pub scale_attn_weights: bool,
    /// Also divide attention scores by `layer + 1` (default false).
    pub scale_attn_by_inverse_layer_idx: bool,
}

impl Gpt2Config {
    /// Reads and parses a `config.json`; errors name the file and the field.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_value(&read_config(path)?, path)
    }

    /// Parses a `config.json`; `path` names it in errors.
    pub fn from_value(value: &Value, path: &Path) -> Result<Self> {
        let f = ConfigFields::new(value, path, WHAT)?;
        let n_embd = f.usize(&["n_embd", "hidden_size"], "the hidden width")?;
        let n_head = f.usize(&["n_head", "num_attention_heads"], "attention heads")?;
        check_divisible(&f, ("n_embd", n_embd), ("n_head", n_head))?;
        let activation_name = f.string_or(&["activation_function"], "gelu_new")?;
        let activation = Activation::parse(&activation_name)
            .map_err(|m| f.error(format!("field `activation_function`: {m}")))?;
        Ok(Gpt2Config {
            vocab_size: f.usize(&["vocab_size"], "the number of token embeddings")?,
            n_positions: f.usize(
                &["n_positions", "max_position_embeddings", "n_ctx"],
                "the rows of the position table",
            )?,
            n_embd,
            n_layer: f.usize(&["n_layer", "num_hidden_layers"], "the number of blocks")?,
            n_head,
            n_inner: f.opt_usize(&["n_inner"])?.unwrap_or(4 * n_embd),
            activation,
            layer_norm_epsilon: f.f64_or(&["layer_norm_epsilon"], 1e-5)?,
            scale_attn_weights: f.bool_or("scale_attn_weights", true)?,
            scale_attn_by_inverse_layer_idx: f.bool_or("scale_attn_by_inverse_layer_idx", false)?,
        })
    }
}

/// transformers' `Conv1D(nf, nx)`: weight [nx, nf] (in, out), bias [nf]; as a [`Linear`].
fn conv1d(vb: VarBuilder, nx: usize, nf: usize) -> Result<Linear> {
    let weight = layers::weight(&vb, (nx, nf), "weight")?;
    let bias = layers::weight(&vb, nf, "bias")?;
    Ok(Linear::from_tensors(weight.t()?.contiguous()?, Some(bias)))
}

/// `h.{i}.attn`: fused `c_attn` (queries, keys, values), `c_proj`.
#[derive(Clone, Debug)]
pub struct Gpt2Attention {
    /// `c_attn`: queries, keys and values, d → 3d.
    pub c_attn: Linear,
    /// `c_proj`: output projection, d → d.
    pub c_proj: Linear,
    /// Attention heads.
    pub heads: usize,
    /// Score scale: `1/√Dh` (or 1), divided by `layer + 1` when so configured.
    pub scale: f64,
}

impl Gpt2Attention {
    /// Reads `c_attn` and `c_proj` (transposing `Conv1D`'s [in, out] weights) under `vb` for block
    /// `layer` (0-based); errors on a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, c: &Gpt2Config, layer: usize) -> Result<Self> {
        let d = c.n_embd;
        let mut scale = 1.0;
        if c.scale_attn_weights {
            scale = ((d / c.n_head) as f64).powf(-0.5);
        }
        if c.scale_attn_by_inverse_layer_idx {
            scale /= (layer + 1) as f64;
        }
        Ok(Gpt2Attention {
            c_attn: conv1d(vb.pp("c_attn"), d, 3 * d)?,
            c_proj: conv1d(vb.pp("c_proj"), d, d)?,
            heads: c.n_head,
            scale,
        })
    }

    /// `x` [B, L, d], `bias` the additive mask [B, 1, L, L] → [B, L, d].
    pub fn forward(&self, x: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let d = x.dim(2)?;
        let qkv = self.c_attn.forward(x)?;
        let q = split_heads(&qkv.narrow(2, 0, d)?, self.heads)?;
        let k = split_heads(&qkv.narrow(2, d, d)?, self.heads)?;
        let v = split_heads(&qkv.narrow(2, 2 * d, d)?, self.heads)?;
        let o = layers::scaled_dot_product_attention(&q, &k, &v, bias, self.scale, false)?;
        self.c_proj.forward(&merge_heads(&o)?)
    }
}

/// `h.{i}.mlp`: `c_proj(act(c_fc(x)))`.
#[derive(Clone, Debug)]
pub struct Gpt2Mlp {
    /// `c_fc`: d → `n_inner`.
    pub c_fc: Linear,
    /// `c_proj`: `n_inner` → d.
    pub c_proj: Linear,
    /// The activation between them (`activation_function`).
    pub activation: Activation,
}

impl Gpt2Mlp {
    /// Reads `c_fc` and `c_proj` (transposing `Conv1D`'s [in, out] weights) under `vb`; errors on a
    /// tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, c: &Gpt2Config) -> Result<Self> {
        Ok(Gpt2Mlp {
            c_fc: conv1d(vb.pp("c_fc"), c.n_embd, c.n_inner)?,
            c_proj: conv1d(vb.pp("c_proj"), c.n_inner, c.n_embd)?,
            activation: c.activation,
        })
    }

    /// [B, L, d] → `c_proj(act(c_fc(x)))` [B, L, d].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.activation.forward(&self.c_fc.forward(x)?)?;
        self.c_proj.forward(&h)
    }
}

/// `h.{i}`.
#[derive(Clone, Debug)]
pub struct Gpt2Block {
    /// LayerNorm before the attention.
    pub ln_1: LayerNorm,
    /// `attn`: causal self-attention.
    pub attn: Gpt2Attention,
    /// LayerNorm before the MLP.
    pub ln_2: LayerNorm,
    /// `mlp`.
    pub mlp: Gpt2Mlp,
}

impl Gpt2Block {
    /// Reads `ln_1`, `attn`, `ln_2` and `mlp` under `vb` for block `layer` (0-based); errors on a
    /// tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, c: &Gpt2Config, layer: usize) -> Result<Self> {
        let eps = c.layer_norm_epsilon;
        Ok(Gpt2Block {
            ln_1: LayerNorm::new(vb.pp("ln_1"), c.n_embd, eps, true)?,
            attn: Gpt2Attention::new(vb.pp("attn"), c, layer)?,
            ln_2: LayerNorm::new(vb.pp("ln_2"), c.n_embd, eps, true)?,
            mlp: Gpt2Mlp::new(vb.pp("mlp"), c)?,
        })
    }

    /// `x` [B, L, d], `bias` the additive mask [B, 1, L, L] → [B, L, d].
    pub fn forward(&self, x: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.ln_1.forward(x)?, bias)?)?;
        Ok((&x + self.mlp.forward(&self.ln_2.forward(&x)?)?)?)
    }
}

/// transformers' `GPT2Model`.
#[derive(Clone, Debug)]
pub struct Gpt2Model {
    /// Token embeddings [V, d].
    pub wte: Tensor,
    /// Position embeddings [n_positions, d].
    pub wpe: Tensor,
    /// `h`: the blocks.
    pub h: Vec<Gpt2Block>,
    /// `ln_f`: LayerNorm after the last block.
    pub ln_f: LayerNorm,
    /// The model's config.
    pub config: Gpt2Config,
}

impl Gpt2Model {
    /// Builds from a [`VarBuilder`] rooted at the base model.
    pub fn new(vb: VarBuilder, c: &Gpt2Config) -> Result<Self> {
        let h = (0..c.n_layer)
            .map(|i| Gpt2Block::new(vb.pp("h").pp(i), c, i))
            .collect::<Result<Vec<_>>>()?;
        Ok(Gpt2Model {
            wte: layers::weight(&vb.pp("wte"), (c.vocab_size, c.n_embd), "weight")?,
            wpe: layers::weight(&vb.pp("wpe"), (c.n_positions, c.n_embd), "weight")?,
            h,
            ln_f: LayerNorm::new(vb.pp("ln_f"), c.n_embd, c.layer_norm_epsilon, true)?,
            config: c.clone(),
        })
    }

    /// Loads a folder with `config.json` and safetensors weights, in f32 on `device`.
    pub fn load_dir(dir: &Path, device: &Device) -> Result<Self> {
        Self::load_with_config(
            dir,
            &Gpt2Config::from_file(&dir.join("config.json"))?,
            device,
        )
    }

    /// Loads a folder's weights with the given configuration.
    pub fn load_with_config(dir: &Path, config: &Gpt2Config, device: &Device) -> Result<Self> {
        let checkpoint = Checkpoint::open(
            &weight_files(dir)?,
            device,
            "wte.weight",
            &["", "transformer"],
        )?;
        Self::new(checkpoint.var_builder(), config).map_err(|e| checkpoint.in_file(e))
    }

    /// `model(input_ids, attention_mask, output_hidden_states=True).hidden_states`: the
    /// embeddings (`wte + wpe`) and each block's output, the last with `ln_f` applied —
    /// `n_layer + 1` tensors [B, L, d]. `input_ids` [B, L] (u32 or i64); `attention_mask`
    /// [B, L] (1 = token, 0 = padding; None: all tokens). Positions count from 0 in every row,
    /// so padding must be on the right.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<Vec<Tensor>> {
        let ids = checked_ids(input_ids, self.config.vocab_size)?;
        let (b, l) = ids.dims2()?;
        if l > self.config.n_positions {
            return Err(brainrecon_nn::ModelError::Invalid(format!(
                "{l} tokens exceed GPT-2's n_positions {}",
                self.config.n_positions
            )));
        }
        let bias = attention_bias(attention_mask, (b, l), true, ids.device())?;
        let mut x = embed(&self.wte, &ids)?.broadcast_add(&self.wpe.narrow(0, 0, l)?)?;
        let mut states = Vec::with_capacity(self.h.len() + 1);
        for block in &self.h {
            states.push(x.clone());
            x = block.forward(&x, bias.as_ref())?;
        }
        states.push(self.ln_f.forward(&x)?);
        Ok(states)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<Gpt2Config> {
        Gpt2Config::from_value(&v, Path::new("m/config.json"))
    }

    #[test]
    fn the_hub_gpt2_config_loads() {
        // openai-community/gpt2's config.json (the fields that matter)
        let c = parse(serde_json::json!({
            "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"],
            "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768,
            "n_head": 12, "n_layer": 12, "n_positions": 1024, "vocab_size": 50257
        }))
        .unwrap();
        assert_eq!((c.n_embd, c.n_inner, c.n_positions), (768, 3072, 1024));
        assert_eq!(c.activation, Activation::GeluTanh);
        assert!(c.scale_attn_weights && !c.scale_attn_by_inverse_layer_idx);
    }

    #[test]
    fn bad_fields_are_named() {
        let e = parse(
            serde_json::json!({"n_embd": 32, "n_layer": 2, "vocab_size": 10,
            "n_positions": 8}),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("m/config.json") && e.to_string().contains("`n_head`"),
            "{e}"
        );
        let e = parse(serde_json::json!({"n_embd": 30, "n_head": 4, "n_layer": 2,
            "vocab_size": 10, "n_positions": 8}))
        .unwrap_err();
        assert!(
            e.to_string().contains("`n_embd` 30 is not divisible"),
            "{e}"
        );
        let e = parse(
            serde_json::json!({"n_embd": 32, "n_head": 4, "n_layer": "two",
            "vocab_size": 10, "n_positions": 8}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("field `n_layer` is \"two\""), "{e}");
        let e = parse(serde_json::json!({"n_embd": 32, "n_head": 4, "n_layer": 2,
            "vocab_size": 10, "n_positions": 8, "activation_function": "swiglu"}))
        .unwrap_err();
        assert!(e.to_string().contains("activation_function"), "{e}");
    }
}
