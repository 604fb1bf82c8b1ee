//! Scaled dot-product and multi-head attention, and diffusers' `Attention` module.

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;

use super::activation::softmax_last_dim;
use super::linear::Linear;
use super::upcast;
use crate::error::{ModelError, Result};
use crate::kernels::fused;

/// An additive causal mask [len, len]: 0 on and below the diagonal, the most negative finite
/// f32 above it (as transformers' CLIP does).
pub fn causal_mask(len: usize, device: &Device) -> Result<Tensor> {
    let data: Vec<f32> = (0..len)
        .flat_map(|i| (0..len).map(move |j| if j > i { f32::MIN } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(data, (len, len), device)?)
}

/// Scaled dot-product attention on [B, H, Lq, Dh] queries and [B, H, Lk, Dh] keys/values.
/// `mask` is an additive mask broadcastable to [B, H, Lq, Lk] (f32 or the scores' dtype);
/// `upcast` computes the scores in f32 (diffusers' `upcast_attention`). The softmax always
/// runs in f32.
pub fn scaled_dot_product_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
    upcast_scores: bool,
) -> Result<Tensor> {
    let tracked = q.track_op() || k.track_op() || v.track_op();
    let dims = q.dims().to_vec();
    let lk = k.dim(D::Minus2)?;
    let rank = dims.len();
    // Inference on long sequences: process the leading (batch x head) slices in chunks so
    // that the [.., Lq, Lk] score matrix never exceeds ~64 MiB of f32.
    let rows: usize = dims[..rank.saturating_sub(2)].iter().product();
    let per_row = dims[rank - 2] * lk;
    // a GPU holds far larger score matrices (2 × 8 heads × 4096² halves is 0.5 GB)
    let max_elems = if q.device().is_cuda() {
        1usize << 28
    } else {
        1usize << 24
    };
    if !tracked && mask.is_none() && rank >= 3 && rows > 1 && rows * per_row > max_elems {
        let lq = dims[rank - 2];
        let dh = dims[rank - 1];
        let dv = v.dim(D::Minus1)?;
        let q3 = q.reshape((rows, lq, dh))?;
        let k3 = k.reshape((rows, lk, dh))?;
        let v3 = v.reshape((rows, lk, dv))?;
        let chunk = (max_elems / per_row).max(1);
        let mut outs = Vec::with_capacity(rows.div_ceil(chunk));
        let mut start = 0;
        while start < rows {
            let n = chunk.min(rows - start);
            outs.push(attention_core(
                &q3.narrow(0, start, n)?,
                &k3.narrow(0, start, n)?,
                &v3.narrow(0, start, n)?,
                None,
                scale,
                upcast_scores,
            )?);
            start += n;
        }
        let mut out_dims = dims;
        out_dims[rank - 1] = dv;
        return Ok(Tensor::cat(&outs, 0)?.reshape(out_dims)?);
    }
    attention_core(q, k, v, mask, scale, upcast_scores)
}

fn attention_core(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
    upcast_scores: bool,
) -> Result<Tensor> {
    let dtype = q.dtype();
    // GPU inference: scores in the input dtype, scaled inside one f32 softmax pass
    if mask.is_none() && !upcast_scores && fused(q, &[k, v]) {
        let scores = q
            .contiguous()?
            .matmul(&k.transpose(D::Minus2, D::Minus1)?.contiguous()?)?;
        #[cfg(feature = "cuda")]
        let probs = crate::cuda::softmax_last_dim(&scores, scale as f32)?;
        #[cfg(not(feature = "cuda"))]
        let probs = scores;
        return Ok(probs.matmul(&v.contiguous()?)?);
    }
    let (q, k) = if upcast_scores {
        (upcast(q)?, upcast(k)?)
    } else {
        (q.clone(), k.clone())
    };
    // Scaling the queries (L x D) is cheaper than scaling the scores (L x L).
    let q = (q * scale)?;
    let scores = q
        .contiguous()?
        .matmul(&k.transpose(D::Minus2, D::Minus1)?.contiguous()?)?;
    let scores = match mask {
        Some(m) => {
            let s = upcast(&scores)?;
            let m = m.to_dtype(s.dtype())?;
            s.broadcast_add(&m)?
        }
        None => scores,
    };
    let probs = softmax_last_dim(&scores)?.to_dtype(dtype)?;
    Ok(probs.matmul(&v.contiguous()?)?)
}

/// Multi-head attention on projected tensors: `q` [B, Lq, H*Dh], `k`, `v` [B, Lk, H*Dh] →
/// [B, Lq, H*Dh]; scale `Dh^-0.5`; optional causal mask (requires Lq == Lk) and/or additive
/// mask broadcastable to [B, H, Lq, Lk].
pub fn multi_head_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    causal: bool,
    mask: Option<&Tensor>,
    upcast_scores: bool,
) -> Result<Tensor> {
    let (b, lq, inner) = q.dims3()?;
    let (_, lk, _) = k.dims3()?;
    if heads == 0 || inner % heads != 0 {
        return Err(ModelError::InvalidInput {
            name: "attention",
            msg: format!("inner dim {inner} is not divisible by {heads} heads"),
        });
    }
    let dh = inner / heads;
    let cpu_f32 = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
    if !causal && mask.is_none() && cpu_f32(q) && cpu_f32(k) && cpu_f32(v) {
        // One pass; when tracked, one backward pass that recomputes the scores.
        let op = crate::kernels::attention::FusedAttentionF32 {
            heads,
            scale: (dh as f32).powf(-0.5),
        };
        return Ok(q
            .contiguous()?
            .apply_op3(&k.contiguous()?, &v.contiguous()?, op)?);
    }
    let split = |t: &Tensor, l: usize| -> Result<Tensor> {
        Ok(t.reshape((b, l, heads, dh))?
            .transpose(1, 2)?
            .contiguous()?)
    };
    let (qh, kh, vh) = (split(q, lq)?, split(k, lk)?, split(v, lk)?);
    let mut full_mask: Option<Tensor> = None;
    if causal {
        if lq != lk {
            return Err(ModelError::InvalidInput {
                name: "attention",
                msg: format!("causal mask needs equal lengths, got {lq} and {lk}"),
            });
        }
        full_mask = Some(causal_mask(lq, q.device())?);
    }
    if let Some(m) = mask {
        let m = m.to_dtype(DType::F32)?;
        full_mask = Some(match full_mask {
            Some(c) => m.broadcast_add(&c)?,
            None => m,
        });
    }
    let out = scaled_dot_product_attention(
        &qh,
        &kh,
        &vh,
        full_mask.as_ref(),
        (dh as f64).powf(-0.5),
        upcast_scores,
    )?;
    Ok(out.transpose(1, 2)?.reshape((b, lq, inner))?)
}

/// diffusers' `Attention` with `to_q`, `to_k`, `to_v` and `to_out.0` projections.
#[derive(Debug, Clone)]
pub struct Attention {
    /// Query projection.
    pub to_q: Linear,
    /// Key projection.
    pub to_k: Linear,
    /// Value projection.
    pub to_v: Linear,
    /// Output projection (`to_out.0`).
    pub to_out: Linear,
    /// Number of heads.
    pub heads: usize,
    /// Computes the scores in f32 (diffusers' `upcast_attention`).
    pub upcast_attention: bool,
}

impl Attention {
    /// `query_dim` → `heads * dim_head`; keys/values from `context_dim` (the query dim for
    /// self-attention). `qkv_bias` adds biases to q/k/v (the VAE's attention has them, the
    /// U-Net's does not); `to_out.0` always has a bias.
    pub fn new(
        vb: VarBuilder,
        query_dim: usize,
        context_dim: Option<usize>,
        heads: usize,
        dim_head: usize,
        qkv_bias: bool,
        upcast_attention: bool,
    ) -> Result<Self> {
        let inner = heads * dim_head;
        let ctx = context_dim.unwrap_or(query_dim);
        Ok(Self {
            to_q: Linear::new(vb.pp("to_q"), query_dim, inner, qkv_bias)?,
            to_k: Linear::new(vb.pp("to_k"), ctx, inner, qkv_bias)?,
            to_v: Linear::new(vb.pp("to_v"), ctx, inner, qkv_bias)?,
            to_out: Linear::new(vb.pp("to_out").pp("0"), inner, query_dim, true)?,
            heads,
            upcast_attention,
        })
    }

    /// `x` [B, L, query_dim], `context` [B, Lc, context_dim] (None: self-attention).
    pub fn forward(&self, x: &Tensor, context: Option<&Tensor>) -> Result<Tensor> {
        let ctx = context.unwrap_or(x);
        let q = self.to_q.forward(x)?;
        let k = self.to_k.forward(ctx)?;
        let v = self.to_v.forward(ctx)?;
        let o = multi_head_attention(&q, &k, &v, self.heads, false, None, self.upcast_attention)?;
        self.to_out.forward(&o)
    }
}
