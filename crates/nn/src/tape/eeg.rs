//! The tape's ops for the contrastive EEG encoders (NICE's and ATM's, `brainrecon-brain`):
//! a temporal convolution over each channel's time course, a mix of all (filter, channel)
//! rows into new filters (the spatial convolution), batch norm in training mode with an
//! optional fused ELU, CLIP's symmetric loss with a learnable logit scale in NICE's and ATM's
//! forms, a learned token prepended to every sample, keeping a sample's first rows, and
//! multi-head attention with dropout on its weights.
//!
//! Every op splits its work by sample over rayon's pool, one grain per thread, and sums
//! per-grain parameter gradients in grain order: the results do not depend on the pool size
//! but for those sums.

use super::ops::{accum, emit, Op, SERIAL_BELOW};
use super::{NodeId, Sink, Tape};
use crate::kernels::attention::exp_shifted_widest;
use crate::kernels::batch_norm::{
    channel_moments, normalise_plane, plane_dx, plane_sums, NormActivation,
};
use crate::kernels::softmax::dot8;
use crate::{ModelError, Result};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// What an EEG op keeps for its backward pass.
pub(super) enum EegOp {
    TemporalConv {
        x: NodeId,
        w: NodeId,
        b: Option<NodeId>,
        /// `[N, R, T, F, K, stride, T']`.
        dims: [usize; 7],
    },
    ChannelMix {
        x: NodeId,
        w: NodeId,
        b: Option<NodeId>,
        /// `[N, A, T, O]`.
        dims: [usize; 4],
    },
    BatchNorm {
        x: NodeId,
        w: NodeId,
        b: NodeId,
        /// `[B, C, plane]`.
        dims: [usize; 3],
        mean: Vec<f32>,
        rstd: Vec<f32>,
        activation: NormActivation,
    },
    ClipLoss {
        x: NodeId,
        scale: NodeId,
        dx: Vec<f32>,
        dscale: f32,
    },
    PrependToken {
        x: NodeId,
        token: NodeId,
        /// `[B, L, D]` of the input.
        dims: [usize; 3],
    },
    KeepRows {
        x: NodeId,
        /// `[B, L, kept, D]`.
        dims: [usize; 4],
    },
    Attention {
        q: NodeId,
        k: NodeId,
        v: NodeId,
        /// `[B, L, H, Dh]`.
        dims: [usize; 4],
        scale: f32,
        /// Softmax weights `[B, H, L, L]` before the dropout.
        probs: Vec<f32>,
        /// Dropout's factor of each weight (0 or 1/(1 − p)); empty: none.
        mask: Vec<f32>,
    },
}

/// The logits of [`Tape::clip_loss`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClipLogits {
    /// NICE's: both sides made unit rows (no epsilon), `logits = exp(s) · x̂ · îᵀ`.
    UnitRowsExpScale,
    /// ATM's: the image side made unit rows, the EEG side as it is, `logits = s · x · îᵀ`.
    RawRowsLinearScale,
}

fn invalid(message: String) -> ModelError {
    ModelError::Invalid(message)
}

/// Samples per grain over `n` samples (one grain per thread; all on this thread when the work
/// of `values` values is small).
fn per_grain(n: usize, values: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    if threads <= 1 || values < SERIAL_BELOW {
        n.max(1)
    } else {
        n.div_ceil(threads).max(1)
    }
}

/// Runs `f(samples)` over `0..n` cut into grains and returns each grain's result in order.
fn over_grains<T: Send>(
    n: usize,
    per: usize,
    f: impl Fn(std::ops::Range<usize>) -> T + Sync,
) -> Vec<T> {
    let grains = n.div_ceil(per.max(1));
    if grains <= 1 {
        return vec![f(0..n)];
    }
    (0..grains)
        .into_par_iter()
        .map(|g| f(g * per..((g + 1) * per).min(n)))
        .collect()
}

/// Adds (or writes, when `!add`) the per-grain `partials` into `dst` in grain order.
fn sum_partials(dst: &mut [f32], add: bool, partials: &[Vec<f32>]) {
    let mut first = !add;
    for p in partials {
        emit(dst, !first, |k| p[k]);
        first = false;
    }
    if first {
        dst.fill(0.0);
    }
}

/// Sums per-grain (weight, bias) gradient `partials` into `w`'s and `b`'s gradients, where
/// they are needed.
fn weight_and_bias_gradients(
    sink: &mut Sink,
    w: NodeId,
    b: Option<NodeId>,
    partials: Vec<(Vec<f32>, Vec<f32>)>,
) {
    let (dws, dbs): (Vec<Vec<f32>>, Vec<Vec<f32>>) = partials.into_iter().unzip();
    if let Some((dw, add)) = sink.slot(w) {
        sum_partials(dw, add, &dws);
    }
    if let Some((db, add)) = b.and_then(|b| sink.slot(b)) {
        sum_partials(db, add, &dbs);
    }
}

/// `cols[k, r·T' + t] = x[r, t·stride + k]` of one sample `x` [R, T].
fn temporal_columns(cols: &mut [f32], x: &[f32], [r, t, k, stride, to]: [usize; 5]) {
    for ki in 0..k {
        for ri in 0..r {
            let src = &x[ri * t + ki..];
            let dst = &mut cols[(ki * r + ri) * to..][..to];
            for (ti, d) in dst.iter_mut().enumerate() {
                *d = src[ti * stride];
            }
        }
    }
}

impl Tape {
    /// A convolution along time of every row of every sample with F filters: `x` [N, R, T]
    /// (R rows, such as EEG channels), `w` [F, K], optional `b` `[F]` → [N, F, R, T'] with
    /// `y[n, f, r, t] = Σ_k w[f, k]·x[n, r, t·stride + k] + b[f]`, T' = (T − K) / stride + 1
    /// (torch's `conv2d` of [N, 1, R, T] with a [F, 1, 1, K] kernel at stride (1, stride)).
    /// The columns are rebuilt per sample in both passes, not kept. Errors when the shapes do
    /// not fit, K > T or `stride` is 0.
    pub fn temporal_conv(
        &mut self,
        x: NodeId,
        w: NodeId,
        b: Option<NodeId>,
        stride: usize,
    ) -> Result<NodeId> {
        let (xs, ws) = (self.shape(x).to_vec(), self.shape(w).to_vec());
        let ([n, r, t], [f, k]) = (&xs[..], &ws[..]) else {
            return Err(invalid(format!(
                "tape temporal_conv: input must be [N, R, T] and weight [F, K], found {xs:?} \
                 and {ws:?}"
            )));
        };
        let (n, r, t, f, k) = (*n, *r, *t, *f, *k);
        if k == 0 || k > t || stride == 0 {
            return Err(invalid(format!(
                "tape temporal_conv: a kernel of {k} taps at stride {stride} does not fit {t} \
                 samples"
            )));
        }
        if let Some(b) = b {
            self.check("temporal_conv bias", b, &[f])?;
        }
        let to = (t - k) / stride + 1;
        let dims = [n, r, t, f, k, stride, to];
        let needs = self.needs(&[x, w]) || b.is_some_and(|b| self.needs(&[b]));
        let op = Op::Eeg(Box::new(EegOp::TemporalConv { x, w, b, dims }));
        let (id, _) = self.push(&[n, f, r, to], op, needs);
        let (values, y) = self.split_last();
        let (xv, wv) = (&values[x.0], &values[w.0]);
        let bv = b.map(|b| &values[b.0][..]);
        let out = f * r * to;
        let per = per_grain(n, y.len());
        y.par_chunks_mut((per * out).max(1))
            .enumerate()
            .for_each(|(g, yg)| {
                let mut cols = vec![0f32; k * r * to];
                for (i, ys) in yg.chunks_exact_mut(out).enumerate() {
                    let s = g * per + i;
                    temporal_columns(&mut cols, &xv[s * r * t..][..r * t], [r, t, k, stride, to]);
                    if let Some(bv) = bv {
                        for (row, &bias) in ys.chunks_exact_mut(r * to).zip(bv) {
                            row.fill(bias);
                        }
                    }
                    matmul(
                        MatMut::from_row_major_slice_mut(ys, f, r * to),
                        accum(bv.is_some()),
                        MatRef::from_row_major_slice(wv, f, k),
                        MatRef::from_row_major_slice(&cols, k, r * to),
                        1.0f32,
                        Par::Seq,
                    );
                }
            });
        Ok(id)
    }

    /// Mixes the rows of each sample: `x` [N, A, T], `w` [O, A], optional `b` `[O]` →
    /// `y[n] = w · x[n] + b` [N, O, T] (a convolution whose kernel spans all but the last
    /// axis, such as NICE's spatial convolution over (filter, channel) rows). Errors when the
    /// shapes do not fit.
    pub fn channel_mix(&mut self, x: NodeId, w: NodeId, b: Option<NodeId>) -> Result<NodeId> {
        let (xs, ws) = (self.shape(x).to_vec(), self.shape(w).to_vec());
        let ([n, a, t], [o, wa]) = (&xs[..], &ws[..]) else {
            return Err(invalid(format!(
                "tape channel_mix: input must be [N, A, T] and weight [O, A], found {xs:?} and \
                 {ws:?}"
            )));
        };
        if wa != a {
            return Err(invalid(format!(
                "tape channel_mix: input {xs:?} has {a} rows, the weight {ws:?} mixes {wa}"
            )));
        }
        let (n, a, t, o) = (*n, *a, *t, *o);
        if let Some(b) = b {
            self.check("channel_mix bias", b, &[o])?;
        }
        let dims = [n, a, t, o];
        let needs = self.needs(&[x, w]) || b.is_some_and(|b| self.needs(&[b]));
        let op = Op::Eeg(Box::new(EegOp::ChannelMix { x, w, b, dims }));
        let (id, _) = self.push(&[n, o, t], op, needs);
        let (values, y) = self.split_last();
        let (xv, wv) = (&values[x.0], &values[w.0]);
        let bv = b.map(|b| &values[b.0][..]);
        let per = per_grain(n, y.len() * a);
        y.par_chunks_mut((per * o * t).max(1))
            .enumerate()
            .for_each(|(g, yg)| {
                for (i, ys) in yg.chunks_exact_mut((o * t).max(1)).enumerate() {
                    let s = g * per + i;
                    if let Some(bv) = bv {
                        for (row, &bias) in ys.chunks_exact_mut(t).zip(bv) {
                            row.fill(bias);
                        }
                    }
                    matmul(
                        MatMut::from_row_major_slice_mut(ys, o, t),
                        accum(bv.is_some()),
                        MatRef::from_row_major_slice(wv, o, a),
                        MatRef::from_row_major_slice(&xv[s * a * t..][..a * t], a, t),
                        1.0f32,
                        Par::Seq,
                    );
                }
            });
        Ok(id)
    }

    /// Batch norm in training mode of `x` [B, C, *] (torch's `BatchNorm1d/2d` in `train()`):
    /// normalised by the batch's per-channel mean and biased variance (statistics in f64,
    /// `eps` inside the root), then `· w + b` (`[C]` each), then ELU(`elu_alpha`) when given
    /// (one op: the backward pass recomputes the pre-activation and differentiates through
    /// the statistics). Returns the node and the batch's mean and biased variance `[C]` for
    /// the running statistics ([`crate::layers::BatchNorm::update_running`] over B·plane
    /// values a channel). Errors when x has no values or the parameters are not `[C]`.
    pub fn batch_norm(
        &mut self,
        x: NodeId,
        w: NodeId,
        b: NodeId,
        eps: f64,
        elu_alpha: Option<f64>,
    ) -> Result<(NodeId, Vec<f64>, Vec<f64>)> {
        let shape = self.shape(x).to_vec();
        let Some((batch, c, plane)) = crate::kernels::batch_norm::batch_channels_plane(&shape)
            .filter(|&(b, c, p)| b * c * p > 0)
        else {
            return Err(invalid(format!(
                "tape batch_norm: input {shape:?} must be [B, C, ...] with values"
            )));
        };
        self.check("batch_norm weight", w, &[c])?;
        self.check("batch_norm bias", b, &[c])?;
        let (mean64, var64) = channel_moments(&self.values[x.0], (batch, c, plane));
        let mean: Vec<f32> = mean64.iter().map(|&m| m as f32).collect();
        let rstd: Vec<f32> = var64
            .iter()
            .map(|v| (1.0 / (v + eps).sqrt()) as f32)
            .collect();
        let activation = match elu_alpha {
            Some(a) => NormActivation::Elu(a as f32),
            None => NormActivation::Identity,
        };
        let needs = self.needs(&[x, w, b]);
        let op = EegOp::BatchNorm {
            x,
            w,
            b,
            dims: [batch, c, plane],
            mean: mean.clone(),
            rstd: rstd.clone(),
            activation,
        };
        let (id, _) = self.push(&shape, Op::Eeg(Box::new(op)), needs);
        let (values, y) = self.split_last();
        let (xv, wv, bv) = (&values[x.0], &values[w.0], &values[b.0]);
        let stride = c * plane;
        let per = per_grain(batch, y.len());
        y.par_chunks_mut(per * stride)
            .zip(xv.par_chunks(per * stride))
            .for_each(|(yg, xg)| {
                for (ys, xs) in yg.chunks_exact_mut(stride).zip(xg.chunks_exact(stride)) {
                    for (ci, (yc, xc)) in ys
                        .chunks_exact_mut(plane)
                        .zip(xs.chunks_exact(plane))
                        .enumerate()
                    {
                        let terms = [mean[ci], rstd[ci] * wv[ci], bv[ci]];
                        normalise_plane(yc, xc, terms, activation);
                    }
                }
            });
        Ok((id, mean64, var64))
    }

    /// CLIP's symmetric InfoNCE of `x` [B, D] (the EEG embeddings) against the constant
    /// `images` [B, D] with matched pairs on the diagonal, the logits scaled by the scalar
    /// node `scale` in the form `logits` picks (NICE's or ATM's); the image rows are made
    /// unit length in both. `½·[CE(logits) + CE(logitsᵀ)]`, each cross-entropy the mean over
    /// rows. One scalar node; value and gradients (of `x` and of `scale`) in f64. Returns the
    /// node and the loss. Errors when the shapes differ, B < 1 or `scale` is not one value.
    pub fn clip_loss(
        &mut self,
        x: NodeId,
        images: &[f32],
        scale: NodeId,
        logits: ClipLogits,
    ) -> Result<(NodeId, f64)> {
        let b = self.shape(x).first().copied().unwrap_or(0);
        let xv = &self.values[x.0];
        if b == 0 || xv.len() != images.len() || xv.len() % b != 0 {
            return Err(invalid(format!(
                "tape clip_loss: embeddings {:?} and images of {} values do not pair",
                self.shape(x),
                images.len()
            )));
        }
        if self.values[scale.0].len() != 1 {
            return Err(invalid(format!(
                "tape clip_loss: the logit scale must be one value, found shape {:?}",
                self.shape(scale)
            )));
        }
        let d = xv.len() / b;
        let s = self.values[scale.0][0] as f64;
        let unit = |v: &[f32]| -> (Vec<f64>, Vec<f64>) {
            let mut out: Vec<f64> = v.iter().map(|&e| e as f64).collect();
            let norms: Vec<f64> = out
                .chunks_exact_mut(d)
                .map(|row| {
                    let n = row.iter().map(|e| e * e).sum::<f64>().sqrt();
                    row.iter_mut().for_each(|e| *e /= n);
                    n
                })
                .collect();
            (out, norms)
        };
        let (img, _) = unit(images);
        let (e, norms) = match logits {
            ClipLogits::UnitRowsExpScale => unit(xv),
            ClipLogits::RawRowsLinearScale => (xv.iter().map(|&v| v as f64).collect(), vec![]),
        };
        let factor = match logits {
            ClipLogits::UnitRowsExpScale => s.exp(),
            ClipLogits::RawRowsLinearScale => s,
        };
        // products [B, B] = e · imgᵀ, logits = factor · products
        let mut products = vec![0f64; b * b];
        matmul(
            MatMut::from_row_major_slice_mut(&mut products, b, b),
            Accum::Replace,
            MatRef::from_row_major_slice(&e, b, d),
            MatRef::from_row_major_slice(&img, b, d).transpose(),
            1.0f64,
            Par::Seq,
        );
        let logit = |i: usize, j: usize| factor * products[i * b + j];
        let mut dlogits = vec![0f64; b * b];
        let half_mean = 0.5 / b as f64;
        let mut total = 0f64;
        for transposed in [false, true] {
            for i in 0..b {
                let at = |j: usize| if transposed { logit(j, i) } else { logit(i, j) };
                let max = (0..b).map(at).fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = (0..b).map(|j| (at(j) - max).exp()).sum();
                let lse = max + sum.ln();
                total += half_mean * (lse - at(i));
                for j in 0..b {
                    let p = (at(j) - lse).exp() - if i == j { 1.0 } else { 0.0 };
                    let (r, c) = if transposed { (j, i) } else { (i, j) };
                    dlogits[r * b + c] += half_mean * p;
                }
            }
        }
        // d scale: Σ dlogits ∘ d logits / d s (the logits themselves for exp(s), the products
        // for s)
        let dscale: f64 = dlogits
            .iter()
            .zip(&products)
            .map(|(g, p)| {
                g * p
                    * if logits == ClipLogits::UnitRowsExpScale {
                        factor
                    } else {
                        1.0
                    }
            })
            .sum();
        // d e = factor · dlogits · img [B, D]
        let mut de = vec![0f64; b * d];
        matmul(
            MatMut::from_row_major_slice_mut(&mut de, b, d),
            Accum::Replace,
            MatRef::from_row_major_slice(&dlogits, b, b),
            MatRef::from_row_major_slice(&img, b, d),
            factor,
            Par::Seq,
        );
        let dx: Vec<f32> = match logits {
            // through x̂ = x / |x|: (dx̂ − x̂ (x̂ · dx̂)) / |x|
            ClipLogits::UnitRowsExpScale => de
                .chunks_exact(d)
                .zip(e.chunks_exact(d))
                .zip(&norms)
                .flat_map(|((dr, er), &n)| {
                    let dot: f64 = dr.iter().zip(er).map(|(a, b)| a * b).sum();
                    dr.iter()
                        .zip(er)
                        .map(move |(g, v)| ((g - v * dot) / n) as f32)
                })
                .collect(),
            ClipLogits::RawRowsLinearScale => de.iter().map(|&v| v as f32).collect(),
        };
        let needs = self.needs(&[x, scale]);
        let op = EegOp::ClipLoss {
            x,
            scale,
            dx,
            dscale: dscale as f32,
        };
        let (id, y) = self.push(&[], Op::Eeg(Box::new(op)), needs);
        y[0] = total as f32;
        Ok((id, total))
    }

    /// A learned token before every sample's rows: `x` [B, L, D], `token` [1, D] (or `[D]`) →
    /// [B, L + 1, D] with row 0 the token. Errors when the shapes do not fit.
    pub fn prepend_token(&mut self, x: NodeId, token: NodeId) -> Result<NodeId> {
        let shape = self.shape(x).to_vec();
        let [b, l, d] = shape[..] else {
            return Err(invalid(format!(
                "tape prepend_token: input must be [B, L, D], found {shape:?}"
            )));
        };
        self.check("prepend_token token", token, &[d])?;
        let needs = self.needs(&[x, token]);
        let op = EegOp::PrependToken {
            x,
            token,
            dims: [b, l, d],
        };
        let (id, _) = self.push(&[b, l + 1, d], Op::Eeg(Box::new(op)), needs);
        let (values, y) = self.split_last();
        let (xv, tv) = (&values[x.0], &values[token.0]);
        for (ys, xs) in y.chunks_exact_mut((l + 1) * d).zip(xv.chunks_exact(l * d)) {
            ys[..d].copy_from_slice(tv);
            ys[d..].copy_from_slice(xs);
        }
        Ok(id)
    }

    /// Each sample's first `kept` rows: `x` [B, L, D] → [B, kept, D]. Errors when `x` is not
    /// [B, L, D] or `kept` > L.
    pub fn keep_rows(&mut self, x: NodeId, kept: usize) -> Result<NodeId> {
        let shape = self.shape(x).to_vec();
        let [b, l, d] = shape[..] else {
            return Err(invalid(format!(
                "tape keep_rows: input must be [B, L, D], found {shape:?}"
            )));
        };
        if kept > l {
            return Err(invalid(format!(
                "tape keep_rows: {kept} rows asked of {shape:?}"
            )));
        }
        let needs = self.needs(&[x]);
        let op = EegOp::KeepRows {
            x,
            dims: [b, l, kept, d],
        };
        let (id, _) = self.push(&[b, kept, d], Op::Eeg(Box::new(op)), needs);
        let (values, y) = self.split_last();
        let xv = &values[x.0];
        for (ys, xs) in y
            .chunks_exact_mut((kept * d).max(1))
            .zip(xv.chunks_exact((l * d).max(1)))
        {
            ys.copy_from_slice(&xs[..kept * d]);
        }
        Ok(id)
    }

    /// Multi-head self-attention with dropout on its weights: `q`, `k`, `v` [B, L, H·Dh] →
    /// `(dropout(softmax(q kᵀ·Dh^-½)) · v)` [B, L, H·Dh] per head, the dropout (probability
    /// `p`) drawing one `f64` from `rng` per weight in [B, H, L, L] order, as
    /// [`crate::rng::dropout`] of the weights tensor does (`rng` `None` or `p` 0: no
    /// dropout). See [`Tape::attention_masked`]. Errors as it does.
    pub fn attention_dropout(
        &mut self,
        q: NodeId,
        k: NodeId,
        v: NodeId,
        heads: usize,
        p: f64,
        rng: Option<&mut ChaCha8Rng>,
    ) -> Result<NodeId> {
        let [b, l, _] = self.shape(q)[..] else {
            return self.attention_masked(q, k, v, heads, Vec::new());
        };
        let mask: Vec<f32> = match rng {
            Some(rng) if p > 0.0 => {
                let keep = (1.0 / (1.0 - p)) as f32;
                (0..b * heads * l * l)
                    .map(|_| if rng.gen::<f64>() >= p { keep } else { 0.0 })
                    .collect()
            }
            _ => Vec::new(),
        };
        self.attention_masked(q, k, v, heads, mask)
    }

    /// Multi-head self-attention whose weights are multiplied by `mask` [B, H, L, L] after the
    /// softmax (a dropout mask: 0 or 1/(1 − p); empty: none): `q`, `k`, `v` [B, L, H·Dh] →
    /// `((softmax(q kᵀ·Dh^-½) ∘ mask) · v)` [B, L, H·Dh] per head. The weights and the mask
    /// are kept for the backward pass (B·H·L² values each). Errors when the shapes do not
    /// fit, `heads` does not divide the width or the mask has neither 0 nor B·H·L² values.
    pub fn attention_masked(
        &mut self,
        q: NodeId,
        k: NodeId,
        v: NodeId,
        heads: usize,
        mask: Vec<f32>,
    ) -> Result<NodeId> {
        let shape = self.shape(q).to_vec();
        let [b, l, width] = shape[..] else {
            return Err(invalid(format!(
                "tape attention_masked: q must be [B, L, H·Dh], found {shape:?}"
            )));
        };
        if heads == 0 || width % heads != 0 {
            return Err(invalid(format!(
                "tape attention_masked: width {width} is not divisible by {heads} heads"
            )));
        }
        if self.shape(k) != &shape[..] || self.shape(v) != &shape[..] {
            return Err(invalid(format!(
                "tape attention_masked: k {:?} and v {:?} are not shaped as q {shape:?}",
                self.shape(k),
                self.shape(v)
            )));
        }
        if !mask.is_empty() && mask.len() != b * heads * l * l {
            return Err(invalid(format!(
                "tape attention_masked: a mask of {} values for [{b}, {heads}, {l}, {l}] weights",
                mask.len()
            )));
        }
        let dh = width / heads;
        let scale = (dh as f32).powf(-0.5);
        let mut probs = vec![0f32; b * heads * l * l];
        let (qv, kv) = (&self.values[q.0], &self.values[k.0]);
        let per = per_grain(b, probs.len() * dh);
        probs
            .par_chunks_mut((per * heads * l * l).max(1))
            .enumerate()
            .for_each(|(g, pg)| {
                for (i, ps) in pg.chunks_exact_mut((heads * l * l).max(1)).enumerate() {
                    let s = g * per + i;
                    for h in 0..heads {
                        let qh = head(qv, s, h, [l, width, dh]);
                        let kh = head(kv, s, h, [l, width, dh]);
                        let block = &mut ps[h * l * l..][..l * l];
                        matmul(
                            MatMut::from_row_major_slice_mut(block, l, l),
                            Accum::Replace,
                            qh,
                            kh.transpose(),
                            scale,
                            Par::Seq,
                        );
                        for row in block.chunks_exact_mut(l) {
                            let inv = 1.0 / exp_shifted_widest(row);
                            row.iter_mut().for_each(|s| *s *= inv);
                        }
                    }
                }
            });
        let needs = self.needs(&[q, k, v]);
        let op = EegOp::Attention {
            q,
            k,
            v,
            dims: [b, l, heads, dh],
            scale,
            probs,
            mask,
        };
        let (id, _) = self.push(&shape, Op::Eeg(Box::new(op)), needs);
        let i = id.0;
        let (before, last) = self.values.split_at_mut(i);
        let Op::Eeg(op) = &self.nodes[i].op else {
            unreachable!("pushed above")
        };
        let EegOp::Attention { probs, mask, .. } = &**op else {
            unreachable!("pushed above")
        };
        let vv = &before[v.0];
        let y = &mut last[0];
        let per = per_grain(b, y.len() * l);
        y.par_chunks_mut((per * l * width).max(1))
            .enumerate()
            .for_each(|(g, yg)| {
                let mut dropped = vec![0f32; l * l];
                for (i, ys) in yg.chunks_exact_mut((l * width).max(1)).enumerate() {
                    let s = g * per + i;
                    for h in 0..heads {
                        let weights = masked(probs, mask, (s * heads + h) * l * l, l, &mut dropped);
                        let out = head_mut(&mut ys[h * dh..], [l, width, dh]);
                        matmul(
                            out,
                            Accum::Replace,
                            MatRef::from_row_major_slice(weights, l, l),
                            head(vv, s, h, [l, width, dh]),
                            1.0f32,
                            Par::Seq,
                        );
                    }
                }
            });
        Ok(id)
    }
}

/// Head `h` of sample `s` of a [B, L, H·Dh] tensor as an [L, Dh] view.
fn head(t: &[f32], s: usize, h: usize, [l, width, dh]: [usize; 3]) -> MatRef<'_, f32> {
    let start = s * l * width + h * dh;
    let len = if l == 0 { 0 } else { (l - 1) * width + dh };
    MatRef::from_row_major_slice_with_stride(&t[start..start + len], l, dh, width)
}

/// Head `h` of one sample, `t` starting at the head's first value, as a mutable [L, Dh] view.
/// (faer 0.24's `from_row_major_slice_with_stride_mut` lays the values out column-major: the
/// transpose of a column-major view is used instead.)
fn head_mut(t: &mut [f32], [l, width, dh]: [usize; 3]) -> MatMut<'_, f32> {
    let len = if l == 0 { 0 } else { (l - 1) * width + dh };
    MatMut::from_column_major_slice_with_stride_mut(&mut t[..len], dh, l, width).transpose_mut()
}

/// The [L, L] block of `probs` at `at`, times the dropout `mask` when there is one (written
/// into `scratch`).
fn masked<'a>(
    probs: &'a [f32],
    mask: &[f32],
    at: usize,
    l: usize,
    scratch: &'a mut [f32],
) -> &'a [f32] {
    let block = &probs[at..][..l * l];
    if mask.is_empty() {
        return block;
    }
    let m = &mask[at..][..l * l];
    scratch
        .iter_mut()
        .zip(block.iter().zip(m))
        .for_each(|(d, (p, m))| *d = p * m);
    scratch
}

impl EegOp {
    /// Writes or adds this op's input gradients given its output gradient `g`.
    pub(super) fn backward(&mut self, values: &[Vec<f32>], g: &[f32], sink: &mut Sink) {
        match self {
            EegOp::TemporalConv { x, w, b, dims } => {
                temporal_backward(values, g, sink, [*x, *w], *b, *dims)
            }
            EegOp::ChannelMix { x, w, b, dims } => {
                mix_backward(values, g, sink, [*x, *w], *b, *dims)
            }
            EegOp::BatchNorm {
                x,
                w,
                b,
                dims,
                mean,
                rstd,
                activation,
            } => batch_norm_backward(
                values,
                g,
                sink,
                [*x, *w, *b],
                *dims,
                mean,
                rstd,
                *activation,
            ),
            EegOp::ClipLoss {
                x,
                scale,
                dx,
                dscale,
            } => {
                if let Some((d, add)) = sink.slot(*x) {
                    let g0 = g[0];
                    emit(d, add, |i| g0 * dx[i]);
                }
                if let Some((d, add)) = sink.slot(*scale) {
                    emit(d, add, |_| g[0] * *dscale);
                }
            }
            EegOp::PrependToken { x, token, dims } => {
                let [_, l, d] = *dims;
                if let Some((dx, add)) = sink.slot(*x) {
                    for (dxs, gs) in dx
                        .chunks_exact_mut((l * d).max(1))
                        .zip(g.chunks_exact((l + 1) * d))
                    {
                        emit(dxs, add, |i| gs[d + i]);
                    }
                }
                if let Some((dt, add)) = sink.slot(*token) {
                    let mut sum = vec![0f32; d];
                    for gs in g.chunks_exact((l + 1) * d) {
                        sum.iter_mut().zip(&gs[..d]).for_each(|(a, g)| *a += g);
                    }
                    emit(dt, add, |i| sum[i]);
                }
            }
            EegOp::KeepRows { x, dims } => {
                let [_, l, kept, d] = *dims;
                if let Some((dx, add)) = sink.slot(*x) {
                    for (dxs, gs) in dx
                        .chunks_exact_mut((l * d).max(1))
                        .zip(g.chunks_exact((kept * d).max(1)))
                    {
                        let (head, tail) = dxs.split_at_mut(kept * d);
                        emit(head, add, |i| gs[i]);
                        if !add {
                            tail.fill(0.0);
                        }
                    }
                }
            }
            EegOp::Attention {
                q,
                k,
                v,
                dims,
                scale,
                probs,
                mask,
            } => attention_backward(values, g, sink, [*q, *k, *v], *dims, *scale, probs, mask),
        }
    }
}

fn temporal_backward(
    values: &[Vec<f32>],
    g: &[f32],
    sink: &mut Sink,
    [x, w]: [NodeId; 2],
    b: Option<NodeId>,
    [n, r, t, f, k, stride, to]: [usize; 7],
) {
    let (xv, wv) = (&values[x.0], &values[w.0]);
    let out = f * r * to;
    let per = per_grain(n, g.len() * k);
    let geometry = [r, t, k, stride, to];
    // asked without taking the slot (taking it marks the gradient as written)
    let need_w = sink.nodes[w.0].needs_grad;
    // the weight's and bias's gradients per grain, from columns rebuilt per sample
    let partials: Vec<(Vec<f32>, Vec<f32>)> = over_grains(n, per, |samples| {
        let mut dw = vec![0f32; if need_w { f * k } else { 0 }];
        let mut db = vec![0f32; f];
        let mut cols = vec![0f32; if need_w { k * r * to } else { 0 }];
        for (i, s) in samples.enumerate() {
            let gs = &g[s * out..][..out];
            if need_w {
                temporal_columns(&mut cols, &xv[s * r * t..][..r * t], geometry);
                matmul(
                    MatMut::from_row_major_slice_mut(&mut dw, f, k),
                    accum(i > 0),
                    MatRef::from_row_major_slice(gs, f, r * to),
                    MatRef::from_row_major_slice(&cols, k, r * to).transpose(),
                    1.0f32,
                    Par::Seq,
                );
            }
            for (d, row) in db.iter_mut().zip(gs.chunks_exact((r * to).max(1))) {
                *d += row.iter().sum::<f32>();
            }
        }
        (dw, db)
    });
    weight_and_bias_gradients(sink, w, b, partials);
    if let Some((dx, add)) = sink.slot(x) {
        dx.par_chunks_mut((per * r * t).max(1))
            .enumerate()
            .for_each(|(gi, dxg)| {
                let mut dcols = vec![0f32; k * r * to];
                for (i, dxs) in dxg.chunks_exact_mut((r * t).max(1)).enumerate() {
                    let s = gi * per + i;
                    matmul(
                        MatMut::from_row_major_slice_mut(&mut dcols, k, r * to),
                        Accum::Replace,
                        MatRef::from_row_major_slice(wv, f, k).transpose(),
                        MatRef::from_row_major_slice(&g[s * out..][..out], f, r * to),
                        1.0f32,
                        Par::Seq,
                    );
                    if !add {
                        dxs.fill(0.0);
                    }
                    for ki in 0..k {
                        for ri in 0..r {
                            let src = &dcols[(ki * r + ri) * to..][..to];
                            let dst = &mut dxs[ri * t + ki..];
                            for (ti, &v) in src.iter().enumerate() {
                                dst[ti * stride] += v;
                            }
                        }
                    }
                }
            });
    }
}

fn mix_backward(
    values: &[Vec<f32>],
    g: &[f32],
    sink: &mut Sink,
    [x, w]: [NodeId; 2],
    b: Option<NodeId>,
    [n, a, t, o]: [usize; 4],
) {
    let (xv, wv) = (&values[x.0], &values[w.0]);
    let per = per_grain(n, g.len() * a);
    // asked without taking the slot (taking it marks the gradient as written)
    let need_w = sink.nodes[w.0].needs_grad;
    let partials: Vec<(Vec<f32>, Vec<f32>)> = over_grains(n, per, |samples| {
        let mut dw = vec![0f32; if need_w { o * a } else { 0 }];
        let mut db = vec![0f32; o];
        for (i, s) in samples.enumerate() {
            let gs = &g[s * o * t..][..o * t];
            if need_w {
                matmul(
                    MatMut::from_row_major_slice_mut(&mut dw, o, a),
                    accum(i > 0),
                    MatRef::from_row_major_slice(gs, o, t),
                    MatRef::from_row_major_slice(&xv[s * a * t..][..a * t], a, t).transpose(),
                    1.0f32,
                    Par::Seq,
                );
            }
            for (d, row) in db.iter_mut().zip(gs.chunks_exact(t.max(1))) {
                *d += row.iter().sum::<f32>();
            }
        }
        (dw, db)
    });
    weight_and_bias_gradients(sink, w, b, partials);
    if let Some((dx, add)) = sink.slot(x) {
        dx.par_chunks_mut((per * a * t).max(1))
            .enumerate()
            .for_each(|(gi, dxg)| {
                for (i, dxs) in dxg.chunks_exact_mut((a * t).max(1)).enumerate() {
                    let s = gi * per + i;
                    matmul(
                        MatMut::from_row_major_slice_mut(dxs, a, t),
                        accum(add),
                        MatRef::from_row_major_slice(wv, o, a).transpose(),
                        MatRef::from_row_major_slice(&g[s * o * t..][..o * t], o, t),
                        1.0f32,
                        Par::Seq,
                    );
                }
            });
    }
}

#[allow(clippy::too_many_arguments)]
fn batch_norm_backward(
    values: &[Vec<f32>],
    g: &[f32],
    sink: &mut Sink,
    [x, w, b]: [NodeId; 3],
    [batch, c, plane]: [usize; 3],
    mean: &[f32],
    rstd: &[f32],
    activation: NormActivation,
) {
    let (xv, wv, bv) = (&values[x.0], &values[w.0], &values[b.0]);
    let stride = c * plane;
    let per = per_grain(batch, g.len());
    // First pass: the gradient at the affine output (through the recomputed activation) into
    // dx's buffer (a scratch one when dx is added to or not needed), and per (sample, channel)
    // sums Σ dp and Σ dp·x̂.
    let first = |dp: &mut [f32]| -> Vec<Vec<(f64, f64)>> {
        let grains: Vec<Vec<Vec<(f64, f64)>>> = dp
            .par_chunks_mut(per * stride)
            .enumerate()
            .map(|(gi, dpg)| {
                dpg.chunks_exact_mut(stride)
                    .enumerate()
                    .map(|(i, dps)| {
                        let s = gi * per + i;
                        let (xs, gs) = (&xv[s * stride..][..stride], &g[s * stride..][..stride]);
                        dps.chunks_exact_mut(plane)
                            .zip(xs.chunks_exact(plane).zip(gs.chunks_exact(plane)))
                            .enumerate()
                            .map(|(ci, (dp, (x, g)))| {
                                let stats = [mean[ci], rstd[ci], wv[ci], bv[ci]];
                                plane_sums(dp, x, g, stats, activation)
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        grains.into_iter().flatten().collect()
    };
    let (mut s1, mut s2) = (vec![0f64; c], vec![0f64; c]);
    let add_sums = |sums: Vec<Vec<(f64, f64)>>, s1: &mut [f64], s2: &mut [f64]| {
        for sample in sums {
            for (ci, (a, b)) in sample.into_iter().enumerate() {
                s1[ci] += a;
                s2[ci] += b;
            }
        }
    };
    let n = (batch * plane) as f64;
    let terms = |s1: &[f64], s2: &[f64]| -> Vec<[f32; 5]> {
        (0..c)
            .map(|ci| {
                let (m1, m2) = ((s1[ci] / n) as f32, (s2[ci] / n) as f32);
                [mean[ci], rstd[ci], wv[ci], m1, m2]
            })
            .collect()
    };
    let second = |dx: &mut [f32], terms: &[[f32; 5]]| {
        dx.par_chunks_mut(per * stride)
            .zip(xv.par_chunks(per * stride))
            .for_each(|(dxg, xg)| {
                for (dxs, xs) in dxg.chunks_exact_mut(stride).zip(xg.chunks_exact(stride)) {
                    for ((d, x), t) in dxs
                        .chunks_exact_mut(plane)
                        .zip(xs.chunks_exact(plane))
                        .zip(terms)
                    {
                        plane_dx(d, x, *t);
                    }
                }
            });
    };
    match sink.slot(x) {
        Some((dx, false)) => {
            add_sums(first(dx), &mut s1, &mut s2);
            second(dx, &terms(&s1, &s2));
        }
        Some((dx, true)) => {
            let mut scratch = vec![0f32; dx.len()];
            add_sums(first(&mut scratch), &mut s1, &mut s2);
            second(&mut scratch, &terms(&s1, &s2));
            dx.par_chunks_mut(SERIAL_BELOW)
                .zip(scratch.par_chunks(SERIAL_BELOW))
                .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(d, s)| *d += s));
        }
        None => {
            // sample by sample through one sample's scratch
            let mut scratch = vec![0f32; stride];
            for s in 0..batch {
                let (xs, gs) = (&xv[s * stride..][..stride], &g[s * stride..][..stride]);
                for (ci, (dp, (x, g))) in scratch
                    .chunks_exact_mut(plane)
                    .zip(xs.chunks_exact(plane).zip(gs.chunks_exact(plane)))
                    .enumerate()
                {
                    let (a, b) =
                        plane_sums(dp, x, g, [mean[ci], rstd[ci], wv[ci], bv[ci]], activation);
                    s1[ci] += a;
                    s2[ci] += b;
                }
            }
        }
    }
    for (id, sums) in [(w, &s2), (b, &s1)] {
        if let Some((d, add)) = sink.slot(id) {
            emit(d, add, |ci| sums[ci] as f32);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn attention_backward(
    values: &[Vec<f32>],
    g: &[f32],
    sink: &mut Sink,
    [q, k, v]: [NodeId; 3],
    [b, l, heads, dh]: [usize; 4],
    scale: f32,
    probs: &[f32],
    mask: &[f32],
) {
    let width = heads * dh;
    let (qv, kv, vv) = (&values[q.0], &values[k.0], &values[v.0]);
    let geometry = [l, width, dh];
    let per = per_grain(b, probs.len() * dh);
    // dS = P ∘ (dP − rowsum(dP ∘ P))·scale with dP = mask ∘ (dO · Vᵀ), per (sample, head).
    let mut ds = vec![0f32; probs.len()];
    ds.par_chunks_mut((per * heads * l * l).max(1))
        .enumerate()
        .for_each(|(gi, dsg)| {
            for (i, dss) in dsg.chunks_exact_mut((heads * l * l).max(1)).enumerate() {
                let s = gi * per + i;
                for h in 0..heads {
                    let at = (s * heads + h) * l * l;
                    let block = &mut dss[h * l * l..][..l * l];
                    matmul(
                        MatMut::from_row_major_slice_mut(block, l, l),
                        Accum::Replace,
                        head(g, s, h, geometry),
                        head(vv, s, h, geometry).transpose(),
                        1.0f32,
                        Par::Seq,
                    );
                    let p = &probs[at..][..l * l];
                    for (ri, row) in block.chunks_exact_mut(l).enumerate() {
                        let pr = &p[ri * l..][..l];
                        if !mask.is_empty() {
                            let mr = &mask[at + ri * l..][..l];
                            row.iter_mut().zip(mr).for_each(|(d, m)| *d *= m);
                        }
                        let dot = dot8(row, pr);
                        row.iter_mut()
                            .zip(pr)
                            .for_each(|(d, &pj)| *d = pj * (*d - dot) * scale);
                    }
                }
            }
        });
    // per sample and head: dst (=|+=) coef (or coefᵀ) · src
    let gather = |dst: &mut [f32],
                  add: bool,
                  coef: &[f32],
                  masked_probs: bool,
                  transposed: bool,
                  src: &[f32]| {
        dst.par_chunks_mut((per * l * width).max(1))
            .enumerate()
            .for_each(|(gi, dg)| {
                let mut dropped = vec![0f32; l * l];
                for (i, ds_) in dg.chunks_exact_mut((l * width).max(1)).enumerate() {
                    let s = gi * per + i;
                    for h in 0..heads {
                        let at = (s * heads + h) * l * l;
                        let block = if masked_probs {
                            masked(coef, mask, at, l, &mut dropped)
                        } else {
                            &coef[at..][..l * l]
                        };
                        let c = MatRef::from_row_major_slice(block, l, l);
                        let c = if transposed { c.transpose() } else { c };
                        let out = head_mut(&mut ds_[h * dh..], [l, width, dh]);
                        matmul(
                            out,
                            accum(add),
                            c,
                            head(src, s, h, geometry),
                            1.0f32,
                            Par::Seq,
                        );
                    }
                }
            });
    };
    if let Some((dv, add)) = sink.slot(v) {
        gather(dv, add, probs, true, true, g);
    }
    if let Some((dq, add)) = sink.slot(q) {
        gather(dq, add, &ds, false, false, kv);
    }
    if let Some((dk, add)) = sink.slot(k) {
        gather(dk, add, &ds, false, true, qv);
    }
}
