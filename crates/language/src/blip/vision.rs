//! BLIP's image tower as transformers' `BlipVisionModel` computes it (checkpoint prefix
//! `vision_model`).
//!
//! A ViT without a pre-norm: patch embedding (a convolution with stride = kernel, with bias),
//! class token, learned position table; pre-norm encoder layers (`layer_norm1` → attention with
//! one fused `qkv` projection → residual, `layer_norm2` → MLP → residual); `post_layernorm` on
//! every token. Images whose patch grid differs from the config's get the position table
//! resized bicubically ([`interpolate_position_table`]), as transformers'
//! `interpolate_pos_encoding=True` and Salesforce's `interpolate_pos_embed` do.

use brainrecon_nn::layers::{self, LayerNorm, Linear};
use brainrecon_nn::{ModelError, Result};
use candle_core::{Tensor, D};
use candle_nn::VarBuilder;

use super::config::{vision_activation, Activation, BlipVisionConfig};
use super::interpolate::interpolate_position_table;

/// `embeddings`: `class_embedding` [1, 1, d], `patch_embedding.{weight [d, 3, p, p], bias}`,
/// `position_embedding` [1, 1 + g·g, d] (a bare parameter, no `.weight`).
#[derive(Clone, Debug)]
pub struct BlipVisionEmbeddings {
    /// `class_embedding`: [1, 1, d].
    pub class_embedding: Tensor,
    /// `patch_embedding` as a linear map over flattened patches, [d, 3·p·p].
    pub patch_embedding: Linear,
    /// `position_embedding`: [1, 1 + g·g, d].
    pub position_embedding: Tensor,
    /// p: side of the square patches, in pixels.
    pub patch_size: usize,
    /// Patches per side of the stored position table.
    pub grid: usize,
}

impl BlipVisionEmbeddings {
    /// Reads `class_embedding`, `patch_embedding` and `position_embedding` under `vb`; errors on a
    /// tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, c: &BlipVisionConfig) -> Result<Self> {
        let d = c.hidden_size;
        let p = c.patch_size;
        let pe = vb.pp("patch_embedding");
        // A convolution whose stride equals its kernel is a matmul over flattened patches.
        let kernel = layers::weight(&pe, (d, 3, p, p), "weight")?.reshape((d, 3 * p * p))?;
        Ok(BlipVisionEmbeddings {
            class_embedding: layers::weight(&vb, (1, 1, d), "class_embedding")?,
            patch_embedding: Linear::from_tensors(kernel, Some(layers::weight(&pe, d, "bias")?)),
            position_embedding: layers::weight(
                &vb,
                (1, c.num_positions(), d),
                "position_embedding",
            )?,
            patch_size: p,
            grid: c.grid(),
        })
    }

    /// The position table for a `gh × gw` patch grid: the stored one, or resized.
    pub fn position_table(&self, gh: usize, gw: usize) -> Result<Tensor> {
        if (gh, gw) == (self.grid, self.grid) {
            return Ok(self.position_embedding.clone());
        }
        interpolate_position_table(&self.position_embedding, gh, gw)
    }

    /// `pixel_values` [B, 3, H, W] → [B, 1 + (H/p)(W/p), d]; trailing pixels that do not fill a
    /// patch are ignored (as the strided convolution does).
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let dims = pixel_values.dims().to_vec();
        let p = self.patch_size;
        if dims.len() != 4 || dims[1] != 3 || dims[2] < p || dims[3] < p {
            return Err(ModelError::Invalid(format!(
                "pixel_values have shape {dims:?}; BLIP's image tower takes [B, 3, H, W] with H \
                 and W at least the patch size {p}"
            )));
        }
        let (b, gh, gw) = (dims[0], dims[2] / p, dims[3] / p);
        let x = pixel_values.to_dtype(self.class_embedding.dtype())?;
        let x = x.narrow(2, 0, gh * p)?.narrow(3, 0, gw * p)?;
        let patches = x
            .reshape(vec![b, 3, gh, p, gw, p])?
            .permute([0, 2, 4, 1, 3, 5])?
            .reshape((b, gh * gw, 3 * p * p))?;
        let patch_embeds = self.patch_embedding.forward(&patches)?;
        let d = patch_embeds.dim(D::Minus1)?;
        let class = self.class_embedding.broadcast_as((b, 1, d))?;
        let tokens = Tensor::cat(&[&class, &patch_embeds], 1)?;
        Ok(tokens.broadcast_add(&self.position_table(gh, gw)?)?)
    }
}

/// `self_attn`: `qkv` [3d, d] (queries, keys, values, each head-major) and `projection`.
#[derive(Clone, Debug)]
pub struct BlipAttention {
    /// `qkv`: Linear d → 3d.
    pub qkv: Linear,
    /// `projection`: Linear d → d.
    pub projection: Linear,
    /// Attention heads.
    pub heads: usize,
}

impl BlipAttention {
    /// Reads `qkv` and `projection` under `vb`; errors on a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, c: &BlipVisionConfig) -> Result<Self> {
        let d = c.hidden_size;
        Ok(BlipAttention {
            qkv: Linear::new(vb.pp("qkv"), d, 3 * d, true)?,
            projection: Linear::new(vb.pp("projection"), d, d, true)?,
            heads: c.num_attention_heads,
        })
    }

    /// [B, L, d] → [B, L, d], bidirectional.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let d = x.dim(D::Minus1)?;
        let qkv = self.qkv.forward(x)?;
        let q = qkv.narrow(D::Minus1, 0, d)?;
        let k = qkv.narrow(D::Minus1, d, d)?;
        let v = qkv.narrow(D::Minus1, 2 * d, d)?;
        let o = layers::multi_head_attention(&q, &k, &v, self.heads, false, None, false)?;
        self.projection.forward(&o)
    }
}

/// `mlp`: `fc1` → activation → `fc2`.
#[derive(Clone, Debug)]
pub struct BlipMlp {
    /// `fc1`: Linear d → intermediate.
    pub fc1: Linear,
    /// `fc2`: Linear intermediate → d.
    pub fc2: Linear,
    /// The activation between them (`hidden_act`).
    pub activation: Activation,
}

impl BlipMlp {
    /// Reads `fc1` and `fc2` under `vb`; errors on a tensor `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, c: &BlipVisionConfig) -> Result<Self> {
        Ok(BlipMlp {
            fc1: Linear::new(vb.pp("fc1"), c.hidden_size, c.intermediate_size, true)?,
            fc2: Linear::new(vb.pp("fc2"), c.intermediate_size, c.hidden_size, true)?,
            activation: vision_activation(c),
        })
    }

    /// [B, L, d] → `fc2(act(fc1(x)))` [B, L, d].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.activation.forward(&self.fc1.forward(x)?)?;
        self.fc2.forward(&h)
    }
}

/// `encoder.layers.{i}`.
#[derive(Clone, Debug)]
pub struct BlipEncoderLayer {
    /// `self_attn`.
    pub self_attn: BlipAttention,
    /// LayerNorm before the attention.
    pub layer_norm1: LayerNorm,
    /// `mlp`.
    pub mlp: BlipMlp,
    /// LayerNorm before the MLP.
    pub layer_norm2: LayerNorm,
}

impl BlipEncoderLayer {
    /// Reads `self_attn`, `layer_norm1`, `mlp` and `layer_norm2` under `vb`; errors on a tensor
    /// `vb` lacks or misshapes.
    pub fn new(vb: VarBuilder, c: &BlipVisionConfig) -> Result<Self> {
        let (d, eps) = (c.hidden_size, c.layer_norm_eps);
        Ok(BlipEncoderLayer {
            self_attn: BlipAttention::new(vb.pp("self_attn"), c)?,
            layer_norm1: LayerNorm::new(vb.pp("layer_norm1"), d, eps, true)?,
            mlp: BlipMlp::new(vb.pp("mlp"), c)?,
            layer_norm2: LayerNorm::new(vb.pp("layer_norm2"), d, eps, true)?,
        })
    }

    /// [B, L, d] → [B, L, d].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = (self.self_attn.forward(&self.layer_norm1.forward(x)?)? + x)?;
        Ok((self.mlp.forward(&self.layer_norm2.forward(&h)?)? + h)?)
    }
}

/// Everything `BlipVisionModel(pixel_values, output_hidden_states=True)` returns.
#[derive(Clone, Debug)]
pub struct BlipVisionOutput {
    /// `post_layernorm` of the last layer's output, [B, 1 + patches, d]: what the captioner
    /// cross-attends to (the published caption route's image features).
    pub last_hidden_state: Tensor,
    /// The embeddings and each layer's output (the last one before `post_layernorm`),
    /// `num_hidden_layers + 1` tensors [B, 1 + patches, d].
    pub hidden_states: Vec<Tensor>,
    /// `post_layernorm` applied once more to the class token of `last_hidden_state`, [B, d]
    /// (transformers normalises it twice).
    pub pooler_output: Tensor,
}

/// transformers' `BlipVisionModel`.
#[derive(Clone, Debug)]
pub struct BlipVisionModel {
    /// `embeddings`.
    pub embeddings: BlipVisionEmbeddings,
    /// `encoder.layers`.
    pub layers: Vec<BlipEncoderLayer>,
    /// `post_layernorm`, on every token of the last layer's output.
    pub post_layernorm: LayerNorm,
    /// The tower's config.
    pub config: BlipVisionConfig,
}

impl BlipVisionModel {
    /// `vb` points at the tower (`vision_model`).
    pub fn new(vb: VarBuilder, c: &BlipVisionConfig) -> Result<Self> {
        let layers = (0..c.num_hidden_layers)
            .map(|i| BlipEncoderLayer::new(vb.pp("encoder").pp("layers").pp(i), c))
            .collect::<Result<Vec<_>>>()?;
        Ok(BlipVisionModel {
            embeddings: BlipVisionEmbeddings::new(vb.pp("embeddings"), c)?,
            layers,
            post_layernorm: LayerNorm::new(
                vb.pp("post_layernorm"),
                c.hidden_size,
                c.layer_norm_eps,
                true,
            )?,
            config: c.clone(),
        })
    }

    /// `pixel_values` [B, 3, H, W] → the image features, `last_hidden_state` [B, 1 + patches, d].
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let mut h = self.embeddings.forward(pixel_values)?;
        for layer in &self.layers {
            h = layer.forward(&h)?;
        }
        self.post_layernorm.forward(&h)
    }

    /// All outputs ([`BlipVisionOutput`]).
    pub fn forward_full(&self, pixel_values: &Tensor) -> Result<BlipVisionOutput> {
        let mut hidden_states = vec![self.embeddings.forward(pixel_values)?];
        for layer in &self.layers {
            let next = layer.forward(hidden_states.last().expect("non-empty"))?;
            hidden_states.push(next);
        }
        let last = hidden_states.last().expect("non-empty");
        let last_hidden_state = self.post_layernorm.forward(last)?;
        let (b, _, d) = last_hidden_state.dims3()?;
        let class = last_hidden_state.narrow(1, 0, 1)?.reshape((b, d))?;
        let pooler_output = self.post_layernorm.forward(&class)?;
        Ok(BlipVisionOutput {
            last_hidden_state,
            hidden_states,
            pooler_output,
        })
    }
}
