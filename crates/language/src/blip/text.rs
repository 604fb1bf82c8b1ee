//! BLIP's text tower as transformers' `BlipTextModel` / `BlipTextLMHeadModel` compute it
//! (checkpoint prefix `text_decoder`, the language model under `bert`, the head under `cls`).
//!
//! BERT with post-norm layers: embeddings (word + absolute position, LayerNorm); per layer
//! self-attention (causal in the decoder), cross-attention to the encoder states when they are
//! given (the layer skips it otherwise, as transformers does), feed-forward; each block is
//! `LayerNorm(dense(x) + residual)`. The head (`cls.predictions`) is dense → activation →
//! LayerNorm → `decoder` (tied to the word embeddings unless the checkpoint has its own
//! `decoder.weight`) plus `bias`.
//!
//! [`TextKvCache`] holds the self-attention keys/values of the tokens seen so far and the
//! cross-attention keys/values of the encoder states (computed once), one row per beam; its rows
//! can be selected ([`TextKvCache::reorder`]) when beams are reordered.

use brainrecon_nn::layers::{self, LayerNorm, Linear};
use brainrecon_nn::{ModelError, Result};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;

use super::config::{Activation, BlipTextConfig};

/// The additive mask value of masked positions (transformers 5 uses the dtype's minimum).
const MASKED: f32 = f32::MIN;

/// [B, L, H·Dh] → [B, H, L, Dh].
fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, l, d) = x.dims3()?;
    Ok(x.reshape((b, l, heads, d / heads))?
        .transpose(1, 2)?
        .contiguous()?)
}

/// [B, H, L, Dh] → [B, L, H·Dh].
fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let (b, h, l, dh) = x.dims4()?;
    Ok(x.transpose(1, 2)?.reshape((b, l, h * dh))?)
}

/// Keys and values, each [B, H, L, Dh].
pub type KeyValues = (Tensor, Tensor);

/// Token ids as a U32 tensor, each checked against the vocabulary.
fn checked_ids(input_ids: &Tensor, vocab: usize) -> Result<Tensor> {
    let ids = match input_ids.dtype() {
        DType::U32 | DType::I64 | DType::U8 => input_ids.to_dtype(DType::I64)?,
        other => {
            return Err(ModelError::Invalid(format!(
                "input_ids are {other:?}; expected integer token ids (u32 or i64)"
            )))
        }
    };
    let values: Vec<i64> = ids.flatten_all()?.to_vec1()?;
    if let Some(bad) = values.iter().find(|&&v| v < 0 || v as usize >= vocab) {
        return Err(ModelError::Invalid(format!(
            "token id {bad} is outside the vocabulary (vocab_size {vocab})"
        )));
    }
    Ok(ids.to_dtype(DType::U32)?)
}

/// `bert.embeddings`: `word_embeddings` [V, d], `position_embeddings` [P, d], `LayerNorm`.
#[derive(Clone, Debug)]
pub struct BlipTextEmbeddings {
    /// `word_embeddings`: [V, d].
    pub word_embeddings: Tensor,
    /// `position_embeddings`: [P, d].
    pub position_embeddings: Tensor,
    /// `LayerNorm` over the summed embeddings.
    pub layer_norm: LayerNorm,
}

impl BlipTextEmbeddings {
    /// Reads `word_embeddings`, `position_embeddings` and `LayerNorm` under `vb`; errors on a
    /// tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, c: &BlipTextConfig) -> Result<Self> {
        let d = c.hidden_size;
        Ok(BlipTextEmbeddings {
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
            layer_norm: LayerNorm::new(vb.pp("LayerNorm"), d, c.layer_norm_eps, true)?,
        })
    }

    /// `input_ids` [B, L] at positions `past .. past + L` → [B, L, d].
    pub fn forward(&self, input_ids: &Tensor, past: usize) -> Result<Tensor> {
        let (vocab, d) = self.word_embeddings.dims2()?;
        let max_positions = self.position_embeddings.dim(0)?;
        let (b, l) = input_ids.dims2()?;
        if past + l > max_positions {
            return Err(ModelError::Invalid(format!(
                "{} tokens exceed max_position_embeddings {max_positions}",
                past + l
            )));
        }
        let ids = checked_ids(input_ids, vocab)?;
        let words = self
            .word_embeddings
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, l, d))?;
        let positions = self.position_embeddings.narrow(0, past, l)?;
        self.layer_norm.forward(&words.broadcast_add(&positions)?)
    }
}

/// `attention.self` / `crossattention.self`: `query`, `key`, `value` projections.
#[derive(Clone, Debug)]
pub struct BlipTextSelfAttention {
    /// `query`: Linear d → d.
    pub query: Linear,
    /// `key`: Linear kv width → d.
    pub key: Linear,
    /// `value`: Linear kv width → d.
    pub value: Linear,
    /// Attention heads.
    pub heads: usize,
}

impl BlipTextSelfAttention {
    /// Keys and values come from `kv_width`-wide states (the encoder's for cross-attention).
    pub fn new(vb: VarBuilder, c: &BlipTextConfig, kv_width: usize) -> Result<Self> {
        let d = c.hidden_size;
        Ok(BlipTextSelfAttention {
            query: Linear::new(vb.pp("query"), d, d, true)?,
            key: Linear::new(vb.pp("key"), kv_width, d, true)?,
            value: Linear::new(vb.pp("value"), kv_width, d, true)?,
            heads: c.num_attention_heads,
        })
    }

    /// `states` [B, Lk, kv_width] → keys and values [B, H, Lk, Dh].
    pub fn key_values(&self, states: &Tensor) -> Result<KeyValues> {
        Ok((
            split_heads(&self.key.forward(states)?, self.heads)?,
            split_heads(&self.value.forward(states)?, self.heads)?,
        ))
    }

    /// Queries from `x` [B, Lq, d] attend to `kv`; `mask` is additive, broadcastable to
    /// [B, H, Lq, Lk]. Returns [B, Lq, d].
    pub fn attend(&self, x: &Tensor, kv: &KeyValues, mask: Option<&Tensor>) -> Result<Tensor> {
        let q = split_heads(&self.query.forward(x)?, self.heads)?;
        let dh = q.dim(D::Minus1)?;
        let scale = 1.0 / (dh as f64).sqrt();
        let o = layers::scaled_dot_product_attention(&q, &kv.0, &kv.1, mask, scale, false)?;
        merge_heads(&o)
    }
}

/// `…output` of an attention or feed-forward block: `LayerNorm(dense(x) + residual)`.
#[derive(Clone, Debug)]
pub struct BlipTextOutput {
    /// `dense`: Linear in → d.
    pub dense: Linear,
    /// `LayerNorm` after the residual sum.
    pub layer_norm: LayerNorm,
}

impl BlipTextOutput {
    /// Reads `dense` (`in_dim` → d) and `LayerNorm` under `vb`; errors on a tensor `vb` lacks or
    /// misshapes.
    pub fn new(vb: VarBuilder, c: &BlipTextConfig, in_dim: usize) -> Result<Self> {
        Ok(BlipTextOutput {
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

/// `attention` / `crossattention`: `self` (the projections) and `output`.
#[derive(Clone, Debug)]
pub struct BlipTextAttention {
    /// `self`: the query, key and value projections.
    pub self_attention: BlipTextSelfAttention,
    /// `output`: projection, residual and LayerNorm.
    pub output: BlipTextOutput,
}

impl BlipTextAttention {
    /// Reads `self` and `output` under `vb`, keys and values from `kv_width`-wide states; errors on
    /// a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, c: &BlipTextConfig, kv_width: usize) -> Result<Self> {
        Ok(BlipTextAttention {
            self_attention: BlipTextSelfAttention::new(vb.pp("self"), c, kv_width)?,
            output: BlipTextOutput::new(vb.pp("output"), c, c.hidden_size)?,
        })
    }

    /// `x` attends to `kv` (its own keys/values, or the encoder's); [B, Lq, d].
    pub fn forward(&self, x: &Tensor, kv: &KeyValues, mask: Option<&Tensor>) -> Result<Tensor> {
        let context = self.self_attention.attend(x, kv, mask)?;
        self.output.forward(&context, x)
    }
}

/// `encoder.layer.{i}`.
#[derive(Clone, Debug)]
pub struct BlipTextLayer {
    /// `attention`: causal or bidirectional self-attention.
    pub attention: BlipTextAttention,
    /// Present in decoders (`is_decoder`); used only when encoder states are given.
    pub crossattention: Option<BlipTextAttention>,
    /// `intermediate.dense`.
    pub intermediate: Linear,
    /// The feed-forward's activation (`hidden_act`).
    pub activation: Activation,
    /// `output`: feed-forward projection, residual and LayerNorm.
    pub output: BlipTextOutput,
}

impl BlipTextLayer {
    /// Reads `attention`, `crossattention` (decoders), `intermediate.dense` and `output` under
    /// `vb`; errors on a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, c: &BlipTextConfig) -> Result<Self> {
        let crossattention = if c.is_decoder {
            Some(BlipTextAttention::new(
                vb.pp("crossattention"),
                c,
                c.encoder_hidden_size,
            )?)
        } else {
            None
        };
        Ok(BlipTextLayer {
            attention: BlipTextAttention::new(vb.pp("attention"), c, c.hidden_size)?,
            crossattention,
            intermediate: Linear::new(
                vb.pp("intermediate").pp("dense"),
                c.hidden_size,
                c.intermediate_size,
                true,
            )?,
            activation: c.activation(),
            output: BlipTextOutput::new(vb.pp("output"), c, c.intermediate_size)?,
        })
    }

    /// `x` [B, L, d]. `past`: the cached self-attention keys/values, extended in place with
    /// this step's (None: no cache). `cross`: the encoder's keys/values for this layer.
    pub fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        past: Option<&mut Option<KeyValues>>,
        cross: Option<&KeyValues>,
    ) -> Result<Tensor> {
        let own = self.attention.self_attention.key_values(x)?;
        let kv = match past {
            None => own,
            Some(slot) => {
                let kv = match slot.take() {
                    None => own,
                    Some((k, v)) => (
                        Tensor::cat(&[&k, &own.0], 2)?,
                        Tensor::cat(&[&v, &own.1], 2)?,
                    ),
                };
                *slot = Some(kv.clone());
                kv
            }
        };
        let mut h = self.attention.forward(x, &kv, mask)?;
        if let Some(cross) = cross {
            let attention = self.crossattention.as_ref().ok_or_else(|| {
                ModelError::Invalid(
                    "encoder states were given to a text tower without cross-attention \
                     (is_decoder false)"
                        .into(),
                )
            })?;
            h = attention.forward(&h, cross, None)?;
        }
        let inner = self.activation.forward(&self.intermediate.forward(&h)?)?;
        self.output.forward(&inner, &h)
    }

    /// The cross-attention keys/values of `encoder_hidden_states` [B, Lenc, encoder width].
    pub fn cross_key_values(&self, encoder_hidden_states: &Tensor) -> Result<KeyValues> {
        match &self.crossattention {
            Some(a) => a.self_attention.key_values(encoder_hidden_states),
            None => Err(ModelError::Invalid(
                "this text tower has no cross-attention (is_decoder false)".into(),
            )),
        }
    }
}

/// How the tokens of a text attend to each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AttentionMode {
    /// Each token sees itself and the tokens before it (the decoder; `is_decoder=True`).
    #[default]
    Causal,
    /// Every token sees every token (`BlipTextModel(..., is_decoder=False)`).
    Bidirectional,
}

/// The inputs of a full (uncached) text forward besides the ids.
#[derive(Clone, Copy, Debug, Default)]
pub struct TextInputs<'a> {
    /// [B, L], 1 for tokens to attend to, 0 for padding (None: all attended).
    pub attention_mask: Option<&'a Tensor>,
    /// [B, Lenc, encoder width], attended in full by every layer's cross-attention (None: the
    /// cross-attention blocks are skipped).
    pub encoder_hidden_states: Option<&'a Tensor>,
    /// How the text's tokens attend to each other.
    pub mode: AttentionMode,
    /// Keep the embeddings' and every layer's output.
    pub output_hidden_states: bool,
}

/// What the text tower returns.
#[derive(Clone, Debug)]
pub struct TextModelOutput {
    /// [B, L, d].
    pub last_hidden_state: Tensor,
    /// The embeddings (after their LayerNorm) and each layer's output,
    /// `num_hidden_layers + 1` tensors [B, L, d]; empty unless asked for.
    pub hidden_states: Vec<Tensor>,
}

/// The additive self-attention mask for `lq` new tokens after `past` cached ones:
/// causal and/or padding, broadcastable to [B, H, lq, past + lq]. None when nothing is masked.
fn self_attention_mask(
    lq: usize,
    past: usize,
    mode: AttentionMode,
    padding: Option<&Tensor>,
    device: &Device,
) -> Result<Option<Tensor>> {
    let lk = past + lq;
    let causal = if mode == AttentionMode::Causal && lq > 1 {
        let data: Vec<f32> = (0..lq)
            .flat_map(|i| (0..lk).map(move |j| if j > past + i { MASKED } else { 0.0 }))
            .collect();
        Some(Tensor::from_vec(data, (lq, lk), device)?)
    } else {
        None
    };
    let padding = match padding {
        None => None,
        Some(m) => {
            let (b, l) = m.dims2()?;
            if l != lk {
                return Err(ModelError::Invalid(format!(
                    "attention_mask covers {l} tokens, the text has {lk}"
                )));
            }
            // (1 - mask) · MASKED, with 0/1 masks of any dtype
            let keep = m.to_dtype(DType::F32)?.clamp(0f32, 1f32)?;
            let additive = ((keep - 1.0)? * (-(MASKED as f64)))?;
            Some(additive.reshape((b, 1, 1, lk))?)
        }
    };
    Ok(match (causal, padding) {
        (Some(c), Some(p)) => Some(p.broadcast_add(&c)?),
        (c, p) => c.or(p),
    })
}

/// `text_decoder.bert`: embeddings and `encoder.layer` (no pooler in the captioner).
#[derive(Clone, Debug)]
pub struct BlipTextModel {
    /// `embeddings`.
    pub embeddings: BlipTextEmbeddings,
    /// `encoder.layer`.
    pub layers: Vec<BlipTextLayer>,
    /// The tower's config.
    pub config: BlipTextConfig,
}

impl BlipTextModel {
    /// Reads `embeddings` and `encoder.layer.{i}` under `vb`; errors on a tensor `vb` lacks or
    /// misshapes.
    pub fn new(vb: VarBuilder, c: &BlipTextConfig) -> Result<Self> {
        let layers = (0..c.num_hidden_layers)
            .map(|i| BlipTextLayer::new(vb.pp("encoder").pp("layer").pp(i), c))
            .collect::<Result<Vec<_>>>()?;
        Ok(BlipTextModel {
            embeddings: BlipTextEmbeddings::new(vb.pp("embeddings"), c)?,
            layers,
            config: c.clone(),
        })
    }

    fn check_encoder(&self, states: &Tensor, rows: usize) -> Result<()> {
        let dims = states.dims();
        let width = self.config.encoder_hidden_size;
        if dims.len() != 3 || dims[0] != rows || dims[2] != width || dims[1] == 0 {
            return Err(ModelError::Invalid(format!(
                "encoder_hidden_states have shape {dims:?}; expected [{rows}, tokens, {width}]"
            )));
        }
        Ok(())
    }

    /// A full forward over `input_ids` [B, L] (u32 or i64).
    pub fn forward(&self, input_ids: &Tensor, inputs: &TextInputs) -> Result<TextModelOutput> {
        let (b, l) = input_ids.dims2()?;
        let cross = match inputs.encoder_hidden_states {
            None => None,
            Some(states) => {
                self.check_encoder(states, b)?;
                Some(
                    self.layers
                        .iter()
                        .map(|layer| layer.cross_key_values(states))
                        .collect::<Result<Vec<_>>>()?,
                )
            }
        };
        let mask =
            self_attention_mask(l, 0, inputs.mode, inputs.attention_mask, input_ids.device())?;
        let mut h = self.embeddings.forward(input_ids, 0)?;
        let mut hidden_states = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            if inputs.output_hidden_states {
                hidden_states.push(h.clone());
            }
            h = layer.forward(&h, mask.as_ref(), None, cross.as_ref().map(|c| &c[i]))?;
        }
        if inputs.output_hidden_states {
            hidden_states.push(h.clone());
        }
        Ok(TextModelOutput {
            last_hidden_state: h,
            hidden_states,
        })
    }

    /// A cache for decoding with cross-attention to `encoder_hidden_states` [B, Lenc, width]
    /// (None: no cross-attention), one row per sequence.
    pub fn new_cache(&self, encoder_hidden_states: Option<&Tensor>) -> Result<TextKvCache> {
        let cross = match encoder_hidden_states {
            None => None,
            Some(states) => {
                let rows = states.dim(0)?;
                self.check_encoder(states, rows)?;
                Some(
                    self.layers
                        .iter()
                        .map(|layer| layer.cross_key_values(states))
                        .collect::<Result<Vec<_>>>()?,
                )
            }
        };
        Ok(TextKvCache {
            past: vec![None; self.layers.len()],
            cross,
            len: 0,
        })
    }

    /// Causal decoding step: runs only the new tokens `input_ids` [B, L] after the cache's
    /// `len()` tokens, extends the cache, returns their last hidden states [B, L, d].
    pub fn forward_cached(&self, input_ids: &Tensor, cache: &mut TextKvCache) -> Result<Tensor> {
        let (b, l) = input_ids.dims2()?;
        if l == 0 {
            return Err(ModelError::Invalid(
                "a decoding step needs at least one token".into(),
            ));
        }
        if let Some(rows) = cache.rows()? {
            if rows != b {
                return Err(ModelError::Invalid(format!(
                    "the cache holds {rows} rows, the step has {b}"
                )));
            }
        }
        let past = cache.len;
        let mask = self_attention_mask(l, past, AttentionMode::Causal, None, input_ids.device())?;
        let mut h = self.embeddings.forward(input_ids, past)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let cross = cache.cross.as_ref().map(|c| &c[i]);
            h = layer.forward(&h, mask.as_ref(), Some(&mut cache.past[i]), cross)?;
        }
        cache.len += l;
        Ok(h)
    }
}

/// The key/value cache of a decoding run, one row per sequence (beam).
#[derive(Clone, Debug)]
pub struct TextKvCache {
    /// Per layer, the self-attention keys/values of the tokens seen, [B, H, len, Dh].
    past: Vec<Option<KeyValues>>,
    /// Per layer, the cross-attention keys/values of the encoder states, [B, H, Lenc, Dh].
    cross: Option<Vec<KeyValues>>,
    len: usize,
}

impl TextKvCache {
    /// Tokens seen.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no token has been seen.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rows held (None for an empty cache without encoder states).
    pub fn rows(&self) -> Result<Option<usize>> {
        if let Some(Some((k, _))) = self.past.first() {
            return Ok(Some(k.dim(0)?));
        }
        match &self.cross {
            Some(c) if !c.is_empty() => Ok(Some(c[0].0.dim(0)?)),
            _ => Ok(None),
        }
    }

    /// Keeps `rows` (new row i is old row `rows[i]`; rows may repeat or be dropped), in the
    /// self- and cross-attention entries alike.
    pub fn reorder(&mut self, rows: &[usize]) -> Result<()> {
        if let Some(held) = self.rows()? {
            if let Some(bad) = rows.iter().find(|&&r| r >= held) {
                return Err(ModelError::Invalid(format!(
                    "row {bad} does not exist: the cache holds {held} rows"
                )));
            }
        }
        let Some(first) = self.any_tensor() else {
            return Ok(());
        };
        let index = Tensor::from_vec(
            rows.iter().map(|&r| r as u32).collect::<Vec<_>>(),
            rows.len(),
            first.device(),
        )?;
        let select = |kv: &KeyValues| -> Result<KeyValues> {
            Ok((kv.0.index_select(&index, 0)?, kv.1.index_select(&index, 0)?))
        };
        for slot in self.past.iter_mut() {
            if let Some(kv) = slot.as_ref() {
                *slot = Some(select(kv)?);
            }
        }
        if let Some(cross) = self.cross.as_mut() {
            for kv in cross.iter_mut() {
                *kv = select(kv)?;
            }
        }
        Ok(())
    }

    fn any_tensor(&self) -> Option<Tensor> {
        self.past
            .iter()
            .flatten()
            .map(|kv| kv.0.clone())
            .next()
            .or_else(|| {
                self.cross
                    .as_ref()
                    .and_then(|c| c.first())
                    .map(|kv| kv.0.clone())
            })
    }
}

/// Where the head's output projection comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecoderWeight {
    /// The word embeddings (`tie_word_embeddings`; transformers 5 saves no `decoder.weight`).
    Tied,
    /// `cls.predictions.decoder.weight` from the checkpoint.
    Own,
}

/// `cls.predictions`: `transform.{dense, LayerNorm}`, `decoder` and `bias`.
#[derive(Clone, Debug)]
pub struct BlipTextPredictionHead {
    /// `transform.dense`: Linear d → d.
    pub transform_dense: Linear,
    /// The transform's activation (`hidden_act`).
    pub activation: Activation,
    /// `transform.LayerNorm`.
    pub transform_layer_norm: LayerNorm,
    /// The weight `[V, d]` and the `bias` `[V]`.
    pub decoder: Linear,
}

impl BlipTextPredictionHead {
    /// `word_embeddings` [V, d] serves as the decoder weight when `decoder_weight` is Tied.
    /// The bias is `bias` (what `decoder.bias` is tied to), else `decoder.bias`.
    pub fn new(
        vb: VarBuilder,
        c: &BlipTextConfig,
        word_embeddings: &Tensor,
        decoder_weight: DecoderWeight,
    ) -> Result<Self> {
        let (d, v) = (c.hidden_size, c.vocab_size);
        let transform = vb.pp("transform");
        let weight = match decoder_weight {
            DecoderWeight::Tied => word_embeddings.clone(),
            DecoderWeight::Own => layers::weight(&vb.pp("decoder"), (v, d), "weight")?,
        };
        let bias = if vb.contains_tensor("bias") || !vb.contains_tensor("decoder.bias") {
            layers::weight(&vb, v, "bias")?
        } else {
            layers::weight(&vb.pp("decoder"), v, "bias")?
        };
        Ok(BlipTextPredictionHead {
            transform_dense: Linear::new(transform.pp("dense"), d, d, true)?,
            activation: c.activation(),
            transform_layer_norm: LayerNorm::new(
                transform.pp("LayerNorm"),
                d,
                c.layer_norm_eps,
                true,
            )?,
            decoder: Linear::from_tensors(weight, Some(bias)),
        })
    }

    /// [..., d] → logits [..., V].
    pub fn forward(&self, h: &Tensor) -> Result<Tensor> {
        let t = self.activation.forward(&self.transform_dense.forward(h)?)?;
        self.decoder
            .forward(&self.transform_layer_norm.forward(&t)?)
    }
}

/// What the language model returns.
#[derive(Clone, Debug)]
pub struct TextOutput {
    /// [B, L, V], before any softmax.
    pub logits: Tensor,
    /// As [`TextModelOutput::hidden_states`]; empty unless asked for.
    pub hidden_states: Vec<Tensor>,
}

/// transformers' `BlipTextLMHeadModel` (`text_decoder`): `bert` and `cls.predictions`.
#[derive(Clone, Debug)]
pub struct BlipTextLMHeadModel {
    /// `bert`: the text tower.
    pub bert: BlipTextModel,
    /// `cls.predictions`.
    pub head: BlipTextPredictionHead,
}

impl BlipTextLMHeadModel {
    /// The head's weight tied to the word embeddings when `tie_word_embeddings`, else read from
    /// `cls.predictions.decoder.weight`.
    pub fn new(vb: VarBuilder, c: &BlipTextConfig) -> Result<Self> {
        let tie = if c.tie_word_embeddings {
            DecoderWeight::Tied
        } else {
            DecoderWeight::Own
        };
        Self::with_decoder_weight(vb, c, tie)
    }

    /// Builds the tower and head under `vb` with the head's weight as `decoder_weight` says; errors
    /// on a tensor `vb` lacks or misshapes.
    pub fn with_decoder_weight(
        vb: VarBuilder,
        c: &BlipTextConfig,
        decoder_weight: DecoderWeight,
    ) -> Result<Self> {
        let bert = BlipTextModel::new(vb.pp("bert"), c)?;
        let head = BlipTextPredictionHead::new(
            vb.pp("cls").pp("predictions"),
            c,
            &bert.embeddings.word_embeddings,
            decoder_weight,
        )?;
        Ok(BlipTextLMHeadModel { bert, head })
    }

    /// The text tower's config.
    pub fn config(&self) -> &BlipTextConfig {
        &self.bert.config
    }

    /// A full forward: logits of every position (and hidden states when asked).
    pub fn forward(&self, input_ids: &Tensor, inputs: &TextInputs) -> Result<TextOutput> {
        let out = self.bert.forward(input_ids, inputs)?;
        Ok(TextOutput {
            logits: self.head.forward(&out.last_hidden_state)?,
            hidden_states: out.hidden_states,
        })
    }

    /// A cached causal step ([`BlipTextModel::forward_cached`]); returns the logits of the last
    /// new token, [B, V].
    pub fn next_token_logits(&self, input_ids: &Tensor, cache: &mut TextKvCache) -> Result<Tensor> {
        let h = self.bert.forward_cached(input_ids, cache)?;
        let (b, l, d) = h.dims3()?;
        let last = h.narrow(1, l - 1, 1)?.reshape((b, d))?;
        self.head.forward(&last)
    }
}
