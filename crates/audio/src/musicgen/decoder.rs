//! MusicGen's decoder as transformers' `MusicgenForCausalLM` computes it, with its parameter
//! names: `model.decoder.{embed_tokens.{k}, layers.{i}.{self_attn, self_attn_layer_norm,
//! encoder_attn, encoder_attn_layer_norm, fc1, fc2, final_layer_norm}, layer_norm}` and
//! `lm_heads.{k}`.
//!
//! The input of each step is one code per codebook; their embeddings (one table per codebook,
//! with an extra row for the pad/bos token) are summed, sinusoidal positions added, then pre-norm
//! layers of causal self-attention, cross-attention over the text encoder's states and a
//! feed-forward block; a final layer norm and one linear head per codebook give the logits.
//! Projections have no biases.
//!
//! A [`DecoderCache`] holds each layer's self-attention keys/values of the steps seen so far and
//! the cross-attention keys/values, computed once from the encoder states.

use brainrecon_language::blip::Activation;
use brainrecon_language::checkpoint::{embed, merge_heads, split_heads};
use brainrecon_nn::layers::{self, LayerNorm, Linear};
use brainrecon_nn::Result;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::config::{invalid, MusicgenDecoderConfig};

/// nn.LayerNorm's default epsilon, which MusicGen's layers keep.
const LAYER_NORM_EPS: f64 = 1e-5;

/// What the decoder's cross-attention reads: the text encoder's states (projected to the
/// decoder's width when the checkpoint has `enc_to_dec_proj`, zero at padding).
#[derive(Clone, Debug)]
pub struct EncoderOutput {
    /// [B, S, d].
    pub hidden_states: Tensor,
    /// [B, S] f32, 1 = token, 0 = padding; None = every position is a token.
    pub attention_mask: Option<Tensor>,
}

impl EncoderOutput {
    /// Batch size `B`.
    pub fn batch(&self) -> Result<usize> {
        Ok(self.hidden_states.dim(0)?)
    }

    /// The batch followed by its unconditional copy, as transformers' classifier-free guidance
    /// builds it: zero states, and an all-zero mask when there is a mask.
    pub fn with_unconditional(&self) -> Result<EncoderOutput> {
        let h = &self.hidden_states;
        let mask = match &self.attention_mask {
            Some(m) => Some(Tensor::cat(&[m, &m.zeros_like()?], 0)?),
            None => None,
        };
        Ok(EncoderOutput {
            hidden_states: Tensor::cat(&[h, &h.zeros_like()?], 0)?,
            attention_mask: mask,
        })
    }
}

/// `self_attn` / `encoder_attn`: multi-head attention without biases, scaled by head_dim^-0.5.
#[derive(Clone, Debug)]
pub struct MusicgenAttention {
    /// `q_proj`, d → d.
    pub q_proj: Linear,
    /// `k_proj`, d → d.
    pub k_proj: Linear,
    /// `v_proj`, d → d.
    pub v_proj: Linear,
    /// `out_proj`, d → d.
    pub out_proj: Linear,
    /// Attention heads (head_dim = d / heads).
    pub heads: usize,
}

impl MusicgenAttention {
    /// Loads the four projections (width `dim`) under `vb`. Errors: a weight missing or of the
    /// wrong shape.
    pub fn new(vb: VarBuilder, dim: usize, heads: usize) -> Result<Self> {
        Ok(MusicgenAttention {
            q_proj: Linear::new(vb.pp("q_proj"), dim, dim, false)?,
            k_proj: Linear::new(vb.pp("k_proj"), dim, dim, false)?,
            v_proj: Linear::new(vb.pp("v_proj"), dim, dim, false)?,
            out_proj: Linear::new(vb.pp("out_proj"), dim, dim, false)?,
            heads,
        })
    }

    /// Keys and values of `states` [B, S, d] → two [B, H, S, Dh].
    pub fn keys_values(&self, states: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            split_heads(&self.k_proj.forward(states)?, self.heads)?,
            split_heads(&self.v_proj.forward(states)?, self.heads)?,
        ))
    }

    /// Queries from `x` [B, L, d] over keys/values [B, H, S, Dh], additive `mask`
    /// broadcastable to [B, H, L, S] → [B, L, d].
    pub fn attend(
        &self,
        x: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let q = split_heads(&self.q_proj.forward(x)?, self.heads)?;
        let scale = (q.dim(3)? as f64).powf(-0.5);
        let o = layers::scaled_dot_product_attention(&q, k, v, mask, scale, false)?;
        self.out_proj.forward(&merge_heads(&o)?)
    }
}

/// `model.decoder.layers.{i}`.
#[derive(Clone, Debug)]
pub struct MusicgenDecoderLayer {
    /// `self_attn`: causal self-attention over the codes so far.
    pub self_attn: MusicgenAttention,
    /// Layer norm ahead of the self-attention.
    pub self_attn_layer_norm: LayerNorm,
    /// `encoder_attn`: cross-attention over the text encoder's states.
    pub encoder_attn: MusicgenAttention,
    /// Layer norm ahead of the cross-attention.
    pub encoder_attn_layer_norm: LayerNorm,
    /// `fc1`, d → ffn_dim, no bias.
    pub fc1: Linear,
    /// `fc2`, ffn_dim → d, no bias.
    pub fc2: Linear,
    /// Layer norm ahead of the feed-forward block.
    pub final_layer_norm: LayerNorm,
    /// The feed-forward activation (`activation_function`).
    pub activation: Activation,
}

impl MusicgenDecoderLayer {
    /// Loads `layers.{i}` under `vb`. Errors: a weight missing or of the wrong shape.
    pub fn new(vb: VarBuilder, c: &MusicgenDecoderConfig) -> Result<Self> {
        let d = c.hidden_size;
        let norm = |name: &str| LayerNorm::new(vb.pp(name), d, LAYER_NORM_EPS, true);
        Ok(MusicgenDecoderLayer {
            self_attn: MusicgenAttention::new(vb.pp("self_attn"), d, c.num_attention_heads)?,
            self_attn_layer_norm: norm("self_attn_layer_norm")?,
            encoder_attn: MusicgenAttention::new(vb.pp("encoder_attn"), d, c.num_attention_heads)?,
            encoder_attn_layer_norm: norm("encoder_attn_layer_norm")?,
            fc1: Linear::new(vb.pp("fc1"), d, c.ffn_dim, false)?,
            fc2: Linear::new(vb.pp("fc2"), c.ffn_dim, d, false)?,
            final_layer_norm: norm("final_layer_norm")?,
            activation: c.activation,
        })
    }

    /// `x` [B, L, d] → [B, L, d]; appends this step's keys/values to `cache`.
    fn forward(
        &self,
        x: &Tensor,
        cache: &mut LayerCache,
        self_mask: Option<&Tensor>,
        cross_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let h = self.self_attn_layer_norm.forward(x)?;
        let (k, v) = self.self_attn.keys_values(&h)?;
        let (k, v) = match cache.self_kv.take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
            None => (k, v),
        };
        let x = (x + self.self_attn.attend(&h, &k, &v, self_mask)?)?;
        cache.self_kv = Some((k, v));

        let h = self.encoder_attn_layer_norm.forward(&x)?;
        let (ck, cv) = &cache.cross_kv;
        let x = (&x + self.encoder_attn.attend(&h, ck, cv, cross_mask)?)?;

        let h = self.final_layer_norm.forward(&x)?;
        let h = self
            .fc2
            .forward(&self.activation.forward(&self.fc1.forward(&h)?)?)?;
        Ok((x + h)?)
    }
}

/// One layer's cached keys/values, [B, H, ·, Dh].
#[derive(Clone, Debug)]
struct LayerCache {
    self_kv: Option<(Tensor, Tensor)>,
    cross_kv: (Tensor, Tensor),
}

/// The key/value cache of one generation: self-attention keys/values of the steps seen so far,
/// cross-attention keys/values and mask of the encoder states.
#[derive(Clone, Debug)]
pub struct DecoderCache {
    layers: Vec<LayerCache>,
    /// Additive cross-attention mask [B, 1, 1, S].
    cross_mask: Option<Tensor>,
    batch: usize,
    seen: usize,
}

impl DecoderCache {
    /// Steps already run (the position of the next one).
    pub fn len(&self) -> usize {
        self.seen
    }

    /// Whether no step has run yet.
    pub fn is_empty(&self) -> bool {
        self.seen == 0
    }

    /// Batch size the cache was started for.
    pub fn batch(&self) -> usize {
        self.batch
    }
}

/// transformers' `MusicgenSinusoidalPositionalEmbedding` table [positions, d]: `cos` of
/// position × frequency in the first half, `sin` in the second, frequencies
/// `exp(-i ln(10000) / (d/2 - 1))`, in float32 as torch computes it.
pub fn sinusoidal_positions(positions: usize, dim: usize, device: &Device) -> Result<Tensor> {
    let half = dim / 2;
    if half < 2 {
        return Err(invalid(format!(
            "hidden_size {dim} is too small for sinusoidal positions (at least 4)"
        )));
    }
    let step = -((10000f64).ln() / (half - 1) as f64) as f32;
    let freqs: Vec<f32> = (0..half).map(|i| (i as f32 * step).exp()).collect();
    let mut table = Vec::with_capacity(positions * dim);
    for p in 0..positions {
        let angles: Vec<f32> = freqs.iter().map(|f| p as f32 * f).collect();
        table.extend(angles.iter().map(|a| a.cos()));
        table.extend(angles.iter().map(|a| a.sin()));
        if dim % 2 == 1 {
            table.push(0.0);
        }
    }
    Ok(Tensor::from_vec(table, (positions, dim), device)?)
}

/// `model.decoder`: `MusicgenDecoder`.
#[derive(Clone, Debug)]
pub struct MusicgenDecoder {
    /// `embed_tokens.{k}.weight`, each [vocab_size + 1, d].
    pub embed_tokens: Vec<Tensor>,
    /// The sinusoidal table [max_position_embeddings, d] (not a checkpoint tensor).
    pub positions: Tensor,
    /// `layers.{i}`, in order.
    pub layers: Vec<MusicgenDecoderLayer>,
    /// `layer_norm` after the last layer.
    pub layer_norm: LayerNorm,
    /// The decoder's config.
    pub config: MusicgenDecoderConfig,
}

impl MusicgenDecoder {
    /// Loads `model.decoder` under `vb` (that prefix). Errors: a weight missing or of the wrong
    /// shape, `hidden_size` too small for the sinusoidal positions.
    pub fn new(vb: VarBuilder, c: &MusicgenDecoderConfig) -> Result<Self> {
        let d = c.hidden_size;
        let embed_tokens = (0..c.num_codebooks)
            .map(|k| {
                layers::weight(
                    &vb.pp("embed_tokens").pp(k),
                    (c.vocab_size + 1, d),
                    "weight",
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let layers = (0..c.num_hidden_layers)
            .map(|i| MusicgenDecoderLayer::new(vb.pp("layers").pp(i), c))
            .collect::<Result<Vec<_>>>()?;
        Ok(MusicgenDecoder {
            positions: sinusoidal_positions(c.max_position_embeddings, d, vb.device())?,
            embed_tokens,
            layers,
            layer_norm: LayerNorm::new(vb.pp("layer_norm"), d, LAYER_NORM_EPS, true)?,
            config: c.clone(),
        })
    }

    /// A cache for `encoder`'s batch: the cross-attention keys/values of every layer.
    pub fn start(&self, encoder: &EncoderOutput) -> Result<DecoderCache> {
        let (b, s, d) = encoder.hidden_states.dims3()?;
        if d != self.config.hidden_size {
            return Err(invalid(format!(
                "encoder states have width {d}; the decoder's cross-attention expects {}",
                self.config.hidden_size
            )));
        }
        let cross_mask = match &encoder.attention_mask {
            None => None,
            Some(m) => {
                if m.dims() != [b, s] {
                    return Err(invalid(format!(
                        "the encoder attention mask has shape {:?}; expected [{b}, {s}]",
                        m.dims()
                    )));
                }
                let keep = m.to_dtype(DType::F32)?.clamp(0f32, 1f32)?;
                // (1 − keep) · f32::MIN: padding keys get the most negative finite score.
                Some(((keep - 1.0)? * (-(f32::MIN as f64)))?.reshape((b, 1, 1, s))?)
            }
        };
        let layers = self
            .layers
            .iter()
            .map(|l| {
                Ok(LayerCache {
                    self_kv: None,
                    cross_kv: l.encoder_attn.keys_values(&encoder.hidden_states)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(DecoderCache {
            layers,
            cross_mask,
            batch: b,
            seen: 0,
        })
    }

    /// Checks codes [B, K, L] against the batch, the codebooks and the embedding tables.
    fn check_codes(&self, codes: &Tensor, cache: &DecoderCache) -> Result<Tensor> {
        let c = &self.config;
        let dims = codes.dims();
        if dims.len() != 3 || dims[0] != cache.batch || dims[1] != c.num_codebooks || dims[2] == 0 {
            return Err(invalid(format!(
                "decoder codes have shape {dims:?}; expected [{}, {}, steps ≥ 1]",
                cache.batch, c.num_codebooks
            )));
        }
        let codes = match codes.dtype() {
            DType::U32 | DType::I64 | DType::U8 => codes.to_dtype(DType::I64)?,
            other => {
                return Err(invalid(format!(
                    "decoder codes are {other:?}; expected integers"
                )))
            }
        };
        let values: Vec<i64> = codes.flatten_all()?.to_vec1()?;
        if let Some(bad) = values.iter().find(|&&v| v < 0 || v as usize > c.vocab_size) {
            return Err(invalid(format!(
                "code {bad} is outside 0..={} (vocab_size codes and the pad/bos token)",
                c.vocab_size
            )));
        }
        Ok(codes.to_dtype(DType::U32)?)
    }

    /// Codes [B, K, L] of the steps after those `cache` has seen → hidden states [B, L, d]
    /// (after the final layer norm); the cache then holds them too.
    pub fn forward(&self, codes: &Tensor, cache: &mut DecoderCache) -> Result<Tensor> {
        let codes = self.check_codes(codes, cache)?;
        let l = codes.dim(2)?;
        let past = cache.seen;
        let max = self.config.max_position_embeddings;
        if past + l > max {
            return Err(invalid(format!(
                "{} decoder steps exceed max_position_embeddings {max}",
                past + l
            )));
        }
        let mut x = self.positions.narrow(0, past, l)?.unsqueeze(0)?;
        for (k, table) in self.embed_tokens.iter().enumerate() {
            x = embed(table, &codes.narrow(1, k, 1)?.squeeze(1)?)?.broadcast_add(&x)?;
        }
        let self_mask = causal_mask_after(past, l, x.device())?;
        for (layer, layer_cache) in self.layers.iter().zip(cache.layers.iter_mut()) {
            x = layer.forward(
                &x,
                layer_cache,
                self_mask.as_ref(),
                cache.cross_mask.as_ref(),
            )?;
        }
        cache.seen += l;
        self.layer_norm.forward(&x)
    }
}

/// The additive causal mask [1, 1, L, past + L] of L new steps after `past` cached ones; None for
/// a single step (it sees everything).
fn causal_mask_after(past: usize, l: usize, device: &Device) -> Result<Option<Tensor>> {
    if l == 1 {
        return Ok(None);
    }
    let total = past + l;
    let data: Vec<f32> = (0..l)
        .flat_map(|i| (0..total).map(move |j| if j > past + i { f32::MIN } else { 0.0 }))
        .collect();
    Ok(Some(Tensor::from_vec(data, (1, 1, l, total), device)?))
}

/// transformers' `MusicgenForCausalLM`: the decoder and one head per codebook.
#[derive(Clone, Debug)]
pub struct MusicgenForCausalLM {
    /// `model.decoder`.
    pub decoder: MusicgenDecoder,
    /// `lm_heads.{k}` [vocab_size, d], no bias.
    pub lm_heads: Vec<Linear>,
}

impl MusicgenForCausalLM {
    /// Builds from a [`VarBuilder`] rooted at the causal LM (MusicGen's `decoder.`).
    pub fn new(vb: VarBuilder, c: &MusicgenDecoderConfig) -> Result<Self> {
        let lm_heads = (0..c.num_codebooks)
            .map(|k| Linear::new(vb.pp("lm_heads").pp(k), c.hidden_size, c.vocab_size, false))
            .collect::<Result<Vec<_>>>()?;
        Ok(MusicgenForCausalLM {
            decoder: MusicgenDecoder::new(vb.pp("model").pp("decoder"), c)?,
            lm_heads,
        })
    }

    /// The decoder's config.
    pub fn config(&self) -> &MusicgenDecoderConfig {
        &self.decoder.config
    }

    /// See [`MusicgenDecoder::start`].
    pub fn start(&self, encoder: &EncoderOutput) -> Result<DecoderCache> {
        self.decoder.start(encoder)
    }

    /// Codes [B, K, L] after the steps `cache` holds → logits [B, K, L, vocab_size].
    pub fn forward(&self, codes: &Tensor, cache: &mut DecoderCache) -> Result<Tensor> {
        let h = self.decoder.forward(codes, cache)?;
        let logits = self
            .lm_heads
            .iter()
            .map(|head| head.forward(&h))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::stack(&logits, 1)?)
    }

    /// The logits of a whole code sequence [B, K, L] at once (no cache kept), as
    /// `model(input_ids=..., encoder_hidden_states=..., encoder_attention_mask=...)` gives them
    /// (reshaped from transformers' [B·K, L, V] to [B, K, L, V]).
    pub fn forward_all(&self, codes: &Tensor, encoder: &EncoderOutput) -> Result<Tensor> {
        let mut cache = self.start(encoder)?;
        self.forward(codes, &mut cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_cos_then_sin() {
        let t = sinusoidal_positions(5, 8, &Device::Cpu).unwrap();
        let rows: Vec<Vec<f32>> = t.to_vec2().unwrap();
        assert_eq!(rows[0], [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        // frequencies 1, 10000^(-1/3), 10000^(-2/3), 1e-4
        let f = [
            1.0f64,
            10000f64.powf(-1.0 / 3.0),
            10000f64.powf(-2.0 / 3.0),
            1e-4,
        ];
        for (i, f) in f.iter().enumerate() {
            assert!((rows[3][i] as f64 - (3.0 * f).cos()).abs() < 1e-6);
            assert!((rows[3][4 + i] as f64 - (3.0 * f).sin()).abs() < 1e-6);
        }
        let odd = sinusoidal_positions(2, 9, &Device::Cpu).unwrap();
        assert_eq!(odd.to_vec2::<f32>().unwrap()[1][8], 0.0);
    }

    #[test]
    fn the_causal_mask_sees_the_past() {
        let m = causal_mask_after(2, 3, &Device::Cpu).unwrap().unwrap();
        let rows: Vec<Vec<f32>> = m.squeeze(0).unwrap().squeeze(0).unwrap().to_vec2().unwrap();
        let open: Vec<Vec<bool>> = rows
            .iter()
            .map(|r| r.iter().map(|&v| v == 0.0).collect())
            .collect();
        assert_eq!(
            open,
            [
                [true, true, true, false, false],
                [true, true, true, true, false],
                [true, true, true, true, true]
            ]
        );
        assert!(causal_mask_after(4, 1, &Device::Cpu).unwrap().is_none());
    }
}
