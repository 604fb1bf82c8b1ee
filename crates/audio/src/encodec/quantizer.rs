//! EnCodec's residual vector quantizer (`quantizer.layers.{i}.codebook.embed`): each stage
//! replaces the residual left by the stages before it with its nearest codebook entry
//! (Euclidean); decoding sums the chosen entries.

use brainrecon_nn::layers;
use brainrecon_nn::{ModelError, Result};
use candle_core::{DType, Tensor, D};
use candle_nn::VarBuilder;

use super::config::EncodecConfig;

/// `EncodecEuclideanCodebook`: only `embed` is used at inference (`embed_avg`, `cluster_size`
/// and `inited` are training state and are not read).
#[derive(Clone, Debug)]
pub struct EncodecCodebook {
    /// [K, D].
    pub embed: Tensor,
    /// [K]: ‖entry‖², computed once.
    embed_sqr: Tensor,
}

impl EncodecCodebook {
    /// Loads `embed` [codebook_size, codebook_dim] under `vb`. Errors: the weight missing or of
    /// the wrong shape.
    pub fn new(vb: VarBuilder, c: &EncodecConfig) -> Result<Self> {
        let embed = layers::weight(&vb, (c.codebook_size, c.codebook_dim), "embed")?;
        let embed_sqr = embed.sqr()?.sum(1)?;
        Ok(EncodecCodebook { embed, embed_sqr })
    }

    /// Frames [N, D] → the index of each frame's nearest entry `[N]` (u32).
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        // ‖x − e‖² = ‖x‖² − 2 x·e + ‖e‖²; ‖x‖² is the same for every entry, so it is left out.
        let cross = x.matmul(&self.embed.t()?)?;
        let dist = (cross * -2.0)?.broadcast_add(&self.embed_sqr)?;
        Ok(dist.argmin(D::Minus1)?)
    }

    /// Indices `[N]` (u32) → entries [N, D].
    pub fn decode(&self, indices: &Tensor) -> Result<Tensor> {
        Ok(self.embed.index_select(indices, 0)?)
    }
}

/// `EncodecResidualVectorQuantizer`.
#[derive(Clone, Debug)]
pub struct EncodecResidualVectorQuantizer {
    /// `layers.{i}.codebook`.
    pub layers: Vec<EncodecCodebook>,
}

impl EncodecResidualVectorQuantizer {
    /// Loads `num_quantizers()` codebooks (`layers.{i}.codebook`) under `vb`. Errors: a weight
    /// missing or of the wrong shape.
    pub fn new(vb: VarBuilder, c: &EncodecConfig) -> Result<Self> {
        let layers = (0..c.num_quantizers())
            .map(|i| EncodecCodebook::new(vb.pp(format!("layers.{i}.codebook")), c))
            .collect::<Result<Vec<_>>>()?;
        Ok(EncodecResidualVectorQuantizer { layers })
    }

    /// Embeddings [B, D, T] → codes [B, n_q, T] (u32) from the first `n_q` stages.
    pub fn encode(&self, embeddings: &Tensor, n_q: usize) -> Result<Tensor> {
        if n_q == 0 || n_q > self.layers.len() {
            return Err(ModelError::Invalid(format!(
                "EnCodec quantizer: {n_q} codebooks asked for, the model has {}",
                self.layers.len()
            )));
        }
        let (b, d, t) = embeddings.dims3()?;
        let mut residual = embeddings.transpose(1, 2)?.reshape((b * t, d))?;
        let mut codes = Vec::with_capacity(n_q);
        for layer in &self.layers[..n_q] {
            let indices = layer.encode(&residual)?;
            residual = (residual - layer.decode(&indices)?)?;
            codes.push(indices.reshape((b, t))?);
        }
        Ok(Tensor::stack(&codes, 1)?)
    }

    /// Codes [B, n_q, T] (u32 or i64) → the sum of the chosen entries [B, D, T]. More codebooks
    /// than the model has, or an index outside the codebook, is an error.
    pub fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        let codes = check_codes(codes, self.layers.len(), self.codebook_size())?;
        let (b, n_q, t) = codes.dims3()?;
        let mut sum: Option<Tensor> = None;
        for (q, layer) in self.layers[..n_q].iter().enumerate() {
            let indices = codes.narrow(1, q, 1)?.flatten_all()?;
            let entries = layer.decode(&indices)?;
            sum = Some(match sum {
                None => entries,
                Some(s) => (s + entries)?,
            });
        }
        let sum = sum.expect("at least one codebook, checked above");
        let d = sum.dim(1)?;
        Ok(sum.reshape((b, t, d))?.transpose(1, 2)?.contiguous()?)
    }

    /// Entries per codebook (0 with no codebooks).
    pub fn codebook_size(&self) -> usize {
        self.layers
            .first()
            .map_or(0, |l| l.embed.dim(0).unwrap_or(0))
    }
}

/// `codes` as u32 [B, n_q, T] after checking its rank, dtype, codebook count and range.
fn check_codes(codes: &Tensor, max_q: usize, size: usize) -> Result<Tensor> {
    let bad = |m: String| Err(ModelError::Invalid(format!("EnCodec codes: {m}")));
    let (_, n_q, t) = match codes.dims3() {
        Ok(d) => d,
        Err(_) => {
            return bad(format!(
                "shape {:?}, expected [batch, codebooks, frames]",
                codes.dims()
            ))
        }
    };
    if n_q == 0 || n_q > max_q {
        return bad(format!(
            "{n_q} codebooks, but the model has {max_q} (its largest target bandwidth)"
        ));
    }
    if t == 0 {
        return bad("no frames".into());
    }
    let values: Vec<i64> = match codes.dtype() {
        DType::U32 | DType::I64 | DType::U8 => {
            codes.to_dtype(DType::I64)?.flatten_all()?.to_vec1()?
        }
        other => return bad(format!("dtype {other:?}, expected u32 or i64 indices")),
    };
    if let Some(v) = values.iter().find(|&&v| v < 0 || v as usize >= size) {
        return bad(format!("index {v} outside the codebook of {size} entries"));
    }
    Ok(codes.to_dtype(DType::U32)?)
}
