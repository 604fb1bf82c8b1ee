//! CLIP text encoders as transformers' `CLIPTextModel` computes them.
//!
//! - SD1: CLIP ViT-L/14 text tower, `hidden_act: "quick_gelu"`, 12 layers.
//! - SD2 / sd-turbo: OpenCLIP ViT-H text tower converted to `CLIPTextModel` with
//!   `hidden_act: "gelu"` and `num_hidden_layers: 23`: the checkpoint is already truncated to
//!   the penultimate layer, and diffusers' `StableDiffusionPipeline.encode_prompt` uses
//!   `last_hidden_state` (after `final_layer_norm`) for both families, as here. `clip_skip`
//!   takes an earlier layer's output through `final_layer_norm`, as diffusers does.
//!
//! Token embeddings plus learned position embeddings; pre-norm encoder layers with causal
//! self-attention; `final_layer_norm`. Module fields mirror the checkpoint names
//! (`text_model.embeddings.token_embedding.weight`,
//! `text_model.encoder.layers.N.self_attn.q_proj.weight`, `…mlp.fc1`, `…layer_norm1`,
//! `text_model.final_layer_norm`); transformers 5 saves the same names without the
//! `text_model.` prefix, and both load (see [`crate::weights::clip_text_prefix`]).
//! Differentiable (nn's softmax and layer norm have backward passes).

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use serde::Deserialize;
use std::path::Path;

use crate::weights::clip_text_prefix;
use brainrecon_nn::layers::{self as nn, LayerNorm, Linear};
use brainrecon_nn::weights::{read_json, Weights};
use brainrecon_nn::{ModelError, Result};

/// `text_encoder/config.json`.
#[derive(Clone, Debug, Deserialize)]
pub struct ClipTextConfig {
    /// Token embeddings (rows of `token_embedding`).
    pub vocab_size: usize,
    /// d: token width.
    pub hidden_size: usize,
    /// Width of the MLP's hidden layer.
    pub intermediate_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads (dividing `hidden_size`).
    pub num_attention_heads: usize,
    /// Rows of the position table: the longest prompt in tokens (77 for SD).
    pub max_position_embeddings: usize,
    /// The MLP's activation, an [`Activation`] name (default `quick_gelu`).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Epsilon of the LayerNorms (default 1e-5).
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// The EOS token whose position pools the output; 2 (the default) is transformers' legacy
    /// value, for which the largest id in the sequence is taken instead.
    #[serde(default = "default_eos")]
    pub eos_token_id: u32,
}

fn default_act() -> String {
    "quick_gelu".into()
}
fn default_eps() -> f64 {
    1e-5
}
fn default_eos() -> u32 {
    2
}

impl ClipTextConfig {
    /// Reads and checks `text_encoder/config.json`; errors name the file and the field.
    pub fn from_file(path: &Path) -> Result<Self> {
        let config: Self = read_json(path, "CLIP text encoder config")?;
        config.validate().map_err(|message| ModelError::Config {
            path: path.to_path_buf(),
            what: "CLIP text encoder config".into(),
            message,
        })?;
        Ok(config)
    }

    /// Bounds every size-like field before any tensor is built (hostile `config.json` files).
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        use brainrecon_nn::config_bounds::*;
        positive("vocab_size", self.vocab_size, MAX_VOCAB)?;
        encoder_trunk(
            self.hidden_size,
            self.num_attention_heads,
            self.intermediate_size,
            self.num_hidden_layers,
        )?;
        // BOS and EOS take two positions; the causal mask is positions² floats.
        in_range(
            "max_position_embeddings",
            self.max_position_embeddings,
            2,
            16_384,
        )?;
        epsilon("layer_norm_eps", self.layer_norm_eps)?;
        Activation::parse(&self.hidden_act)?;
        Ok(())
    }
}

/// The MLP activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `quick_gelu`: `x · σ(1.702 x)` (OpenAI CLIP, SD1).
    QuickGelu,
    /// `gelu`: exact (erf) GELU (OpenCLIP, SD2).
    Gelu,
    /// `gelu_new`, `gelu_pytorch_tanh`: the tanh approximation.
    GeluTanh,
}

impl Activation {
    /// The activation of a `hidden_act` name; errors list the supported names.
    pub fn parse(name: &str) -> std::result::Result<Self, String> {
        match name {
            "quick_gelu" => Ok(Activation::QuickGelu),
            "gelu" => Ok(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" => Ok(Activation::GeluTanh),
            other => Err(format!(
                "hidden_act '{other}' is not supported (quick_gelu, gelu, gelu_new)"
            )),
        }
    }

    /// Applies the activation elementwise.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Activation::QuickGelu => nn::quick_gelu(x)?,
            Activation::Gelu => nn::gelu(x)?,
            Activation::GeluTanh => nn::gelu_tanh(x)?,
        })
    }
}

/// `embeddings`: `token_embedding.weight` [vocab, d], `position_embedding.weight` [77, d].
#[derive(Clone, Debug)]
pub struct ClipTextEmbeddings {
    /// `token_embedding.weight`: [vocab, d].
    pub token_embedding: Tensor,
    /// `position_embedding.weight`: [max_position_embeddings, d].
    pub position_embedding: Tensor,
}

impl ClipTextEmbeddings {
    /// Reads `token_embedding` and `position_embedding` under `vb`; errors on a tensor `vb` lacks
    /// or misshapes.
    pub fn new(vb: VarBuilder, c: &ClipTextConfig) -> Result<Self> {
        Ok(ClipTextEmbeddings {
            token_embedding: nn::weight(
                &vb.pp("token_embedding"),
                (c.vocab_size, c.hidden_size),
                "weight",
            )?,
            position_embedding: nn::weight(
                &vb.pp("position_embedding"),
                (c.max_position_embeddings, c.hidden_size),
                "weight",
            )?,
        })
    }

    /// `ids` [B, L] (u32) → [B, L, d].
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, l) = ids.dims2()?;
        let (vocab, d) = self.token_embedding.dims2()?;
        let max_len = self.position_embedding.dim(0)?;
        if l > max_len {
            return Err(ModelError::Invalid(format!(
                "{l} tokens, the text encoder has {max_len} positions"
            )));
        }
        let flat = ids.flatten_all()?.to_dtype(DType::U32)?;
        let max_id = flat.max(0)?.to_scalar::<u32>()? as usize;
        if max_id >= vocab {
            return Err(ModelError::Invalid(format!(
                "token id {max_id} is outside the text encoder's vocabulary of {vocab}: the \
                 tokenizer and text_encoder do not belong together"
            )));
        }
        let tokens = self
            .token_embedding
            .index_select(&flat, 0)?
            .reshape((b, l, d))?;
        let positions = self.position_embedding.narrow(0, 0, l)?.unsqueeze(0)?;
        Ok(tokens.broadcast_add(&positions)?)
    }
}

/// `self_attn`: `q_proj`, `k_proj`, `v_proj`, `out_proj` (all with biases).
#[derive(Clone, Debug)]
pub struct ClipAttention {
    /// `q_proj`: Linear d → d.
    pub q_proj: Linear,
    /// `k_proj`: Linear d → d.
    pub k_proj: Linear,
    /// `v_proj`: Linear d → d.
    pub v_proj: Linear,
    /// `out_proj`: Linear d → d.
    pub out_proj: Linear,
    /// Attention heads.
    pub heads: usize,
    /// Text towers mask future tokens; vision towers attend everywhere.
    pub causal: bool,
}

impl ClipAttention {
    /// The text tower's attention (causal) under `vb`; errors on an invalid `hidden_act` or a
    /// tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, c: &ClipTextConfig) -> Result<Self> {
        Self::with_dims(vb, &LayerDims::text(c)?)
    }

    /// Reads `{q,k,v,out}_proj` under `vb` for layers of `dims`; errors on a tensor `vb` lacks or
    /// misshapes.
    pub fn with_dims(vb: VarBuilder, dims: &LayerDims) -> Result<Self> {
        let d = dims.hidden;
        Ok(ClipAttention {
            q_proj: Linear::new(vb.pp("q_proj"), d, d, true)?,
            k_proj: Linear::new(vb.pp("k_proj"), d, d, true)?,
            v_proj: Linear::new(vb.pp("v_proj"), d, d, true)?,
            out_proj: Linear::new(vb.pp("out_proj"), d, d, true)?,
            heads: dims.heads,
            causal: dims.causal,
        })
    }

    /// Self-attention on [B, L, d] (causal for text).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let q = self.q_proj.forward(x)?;
        let k = self.k_proj.forward(x)?;
        let v = self.v_proj.forward(x)?;
        let o = nn::multi_head_attention(&q, &k, &v, self.heads, self.causal, None, false)?;
        self.out_proj.forward(&o)
    }
}

/// The sizes of one encoder layer, shared by CLIP's text and vision towers.
#[derive(Clone, Debug)]
pub struct LayerDims {
    /// d: token width.
    pub hidden: usize,
    /// Width of the MLP's hidden layer.
    pub intermediate: usize,
    /// Attention heads.
    pub heads: usize,
    /// The MLP's activation.
    pub activation: Activation,
    /// Epsilon of the LayerNorms.
    pub layer_norm_eps: f64,
    /// Causal self-attention (text) or full (vision).
    pub causal: bool,
}

impl LayerDims {
    /// The text tower's layers: causal attention.
    pub fn text(c: &ClipTextConfig) -> Result<Self> {
        Ok(LayerDims {
            hidden: c.hidden_size,
            intermediate: c.intermediate_size,
            heads: c.num_attention_heads,
            activation: Activation::parse(&c.hidden_act).map_err(ModelError::Invalid)?,
            layer_norm_eps: c.layer_norm_eps,
            causal: true,
        })
    }
}

/// `mlp`: `fc1`, activation, `fc2`.
#[derive(Clone, Debug)]
pub struct ClipMlp {
    /// `fc1`: Linear d → intermediate.
    pub fc1: Linear,
    /// `fc2`: Linear intermediate → d.
    pub fc2: Linear,
    /// The activation between them.
    pub activation: Activation,
}

impl ClipMlp {
    /// The text tower's MLP under `vb`; errors on an invalid `hidden_act` or a tensor `vb` lacks or
    /// misshapes.
    pub fn new(vb: VarBuilder, c: &ClipTextConfig) -> Result<Self> {
        Self::with_dims(vb, &LayerDims::text(c)?)
    }

    /// Reads `fc1` and `fc2` under `vb` for layers of `dims`; errors on a tensor `vb` lacks or
    /// misshapes.
    pub fn with_dims(vb: VarBuilder, dims: &LayerDims) -> Result<Self> {
        Ok(ClipMlp {
            fc1: Linear::new(vb.pp("fc1"), dims.hidden, dims.intermediate, true)?,
            fc2: Linear::new(vb.pp("fc2"), dims.intermediate, dims.hidden, true)?,
            activation: dims.activation,
        })
    }

    /// [B, L, d] → `fc2(act(fc1(x)))` [B, L, d].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.activation.forward(&self.fc1.forward(x)?)?;
        self.fc2.forward(&h)
    }
}

/// `encoder.layers.N`: pre-norm attention and MLP, each with a residual.
#[derive(Clone, Debug)]
pub struct ClipEncoderLayer {
    /// `self_attn`.
    pub self_attn: ClipAttention,
    /// LayerNorm before the attention.
    pub layer_norm1: LayerNorm,
    /// `mlp`.
    pub mlp: ClipMlp,
    /// LayerNorm before the MLP.
    pub layer_norm2: LayerNorm,
}

impl ClipEncoderLayer {
    /// A text tower layer under `vb`; errors on an invalid `hidden_act` or a tensor `vb` lacks or
    /// misshapes.
    pub fn new(vb: VarBuilder, c: &ClipTextConfig) -> Result<Self> {
        Self::with_dims(vb, &LayerDims::text(c)?)
    }

    /// Reads `self_attn`, `layer_norm1`, `mlp` and `layer_norm2` under `vb` for layers of `dims`;
    /// errors on a tensor `vb` lacks or misshapes.
    pub fn with_dims(vb: VarBuilder, dims: &LayerDims) -> Result<Self> {
        let norm = |name: &str| -> Result<LayerNorm> {
            LayerNorm::new(vb.pp(name), dims.hidden, dims.layer_norm_eps, true)
        };
        Ok(ClipEncoderLayer {
            self_attn: ClipAttention::with_dims(vb.pp("self_attn"), dims)?,
            layer_norm1: norm("layer_norm1")?,
            mlp: ClipMlp::with_dims(vb.pp("mlp"), dims)?,
            layer_norm2: norm("layer_norm2")?,
        })
    }

    /// [B, L, d] → [B, L, d].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = (x + self.self_attn.forward(&self.layer_norm1.forward(x)?)?)?;
        Ok((&h + self.mlp.forward(&self.layer_norm2.forward(&h)?)?)?)
    }
}

/// Everything the encoder computes.
#[derive(Clone, Debug)]
pub struct ClipTextOutput {
    /// The last layer's output after `final_layer_norm`, [B, L, d].
    pub last_hidden_state: Tensor,
    /// `last_hidden_state` at each sequence's EOS token, [B, d].
    pub pooler_output: Tensor,
    /// The embeddings and each layer's output (before `final_layer_norm`), N + 1 tensors.
    pub hidden_states: Vec<Tensor>,
}

/// transformers' `CLIPTextModel`.
#[derive(Clone, Debug)]
pub struct ClipTextModel {
    /// `embeddings`.
    pub embeddings: ClipTextEmbeddings,
    /// `encoder.layers`.
    pub layers: Vec<ClipEncoderLayer>,
    /// `final_layer_norm`, after the last layer.
    pub final_layer_norm: LayerNorm,
    /// The model's config.
    pub config: ClipTextConfig,
}

impl ClipTextModel {
    /// `vb` points at the model root (`text_model` for hub checkpoints, see
    /// [`ClipTextModel::from_weights`]).
    pub fn new(vb: VarBuilder, config: &ClipTextConfig) -> Result<Self> {
        // Configs built in code (training) skip `from_file`; check them here too.
        config.validate().map_err(ModelError::Invalid)?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| ClipEncoderLayer::new(vb.pp("encoder").pp("layers").pp(i), config))
            .collect::<Result<Vec<_>>>()?;
        Ok(ClipTextModel {
            embeddings: ClipTextEmbeddings::new(vb.pp("embeddings"), config)?,
            layers,
            final_layer_norm: LayerNorm::new(
                vb.pp("final_layer_norm"),
                config.hidden_size,
                config.layer_norm_eps,
                true,
            )?,
            config: config.clone(),
        })
    }

    /// Builds from a store, with or without the `text_model.` prefix. Errors name the file.
    pub fn from_weights(weights: &Weights, config: &ClipTextConfig) -> Result<Self> {
        let vb = weights.var_builder();
        let prefix = clip_text_prefix(weights);
        let vb = if prefix.is_empty() { vb } else { vb.pp(prefix) };
        Self::new(vb, config).map_err(|e| e.in_file(weights.path()))
    }

    /// A `text_encoder/` folder: `config.json` + `model[.fp16].safetensors`.
    pub fn from_dir(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let config = ClipTextConfig::from_file(&dir.join("config.json"))?;
        let weights = Weights::from_component(dir, dtype, device)?;
        Self::from_weights(&weights, &config)
    }

    /// The dtype of the weights.
    pub fn dtype(&self) -> DType {
        self.embeddings.token_embedding.dtype()
    }

    /// `ids` [B, L] → `last_hidden_state` [B, L, d] (what Stable Diffusion conditions on).
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let mut h = self.embeddings.forward(ids)?;
        for layer in &self.layers {
            h = layer.forward(&h)?;
        }
        self.final_layer_norm.forward(&h)
    }

    /// diffusers' `clip_skip`: 0 is `last_hidden_state`; k takes the output of the layer k
    /// before the last, through `final_layer_norm`.
    pub fn forward_clip_skip(&self, ids: &Tensor, clip_skip: usize) -> Result<Tensor> {
        if clip_skip == 0 {
            return self.forward(ids);
        }
        if clip_skip >= self.layers.len() {
            return Err(ModelError::Invalid(format!(
                "clip_skip {clip_skip} needs more than {} layers",
                self.layers.len()
            )));
        }
        let mut h = self.embeddings.forward(ids)?;
        for layer in &self.layers[..self.layers.len() - clip_skip] {
            h = layer.forward(&h)?;
        }
        self.final_layer_norm.forward(&h)
    }

    /// All outputs, as `CLIPTextModel(ids, output_hidden_states=True)` returns them.
    pub fn forward_full(&self, ids: &Tensor) -> Result<ClipTextOutput> {
        let mut hidden_states = vec![self.embeddings.forward(ids)?];
        for layer in &self.layers {
            let next = layer.forward(hidden_states.last().expect("non-empty"))?;
            hidden_states.push(next);
        }
        let last_hidden_state = self
            .final_layer_norm
            .forward(hidden_states.last().expect("non-empty"))?;
        // The EOS position: the largest id (legacy configs with eos_token_id 2), else the
        // first occurrence of eos_token_id.
        let rows: Vec<Vec<u32>> = ids.to_dtype(DType::U32)?.to_vec2()?;
        let positions: Vec<u32> = rows
            .iter()
            .map(|row| {
                let pos = if self.config.eos_token_id == 2 {
                    let max = row.iter().copied().max().unwrap_or(0);
                    row.iter().position(|&t| t == max)
                } else {
                    row.iter().position(|&t| t == self.config.eos_token_id)
                };
                pos.unwrap_or(0) as u32
            })
            .collect();
        let b = rows.len();
        let d = last_hidden_state.dim(D::Minus1)?;
        let pooler_output = (0..b)
            .map(|i| {
                last_hidden_state
                    .get(i)?
                    .narrow(0, positions[i] as usize, 1)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let pooler_output = Tensor::cat(&pooler_output, 0)?.reshape((b, d))?;
        Ok(ClipTextOutput {
            last_hidden_state,
            pooler_output,
            hidden_states,
        })
    }
}

/// Token ids as the [B, L] u32 tensor the encoder takes.
pub fn ids_tensor(ids: &[Vec<u32>], device: &Device) -> Result<Tensor> {
    let b = ids.len();
    let l = ids.first().map(|r| r.len()).unwrap_or(0);
    if ids.iter().any(|r| r.len() != l) {
        return Err(ModelError::Invalid(
            "token id rows have different lengths".into(),
        ));
    }
    let flat: Vec<u32> = ids.iter().flatten().copied().collect();
    Ok(Tensor::from_vec(flat, (b, l), device)?)
}
