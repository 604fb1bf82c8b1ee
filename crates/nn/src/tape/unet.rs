//! Attention for a U-Net's many narrow heads (shapes-ldm's are 32 heads of 2): the same
//! function as [`Tape::attention`], computed one (sample, head) at a time on a copy of the
//! head's keys and values laid out transposed (`[Dh, Lk]`), so that every inner loop runs
//! over the Lk keys, contiguous and vectorised, whatever the head's width. `Tape::attention`
//! runs its inner loops over Dh and reads the probabilities by column in its backward pass,
//! which costs most of a shapes-ldm training step when Dh is 2.

use super::ops::{emit, Op};
use super::{NodeId, Sink, Tape};
use crate::kernels::attention::exp_shifted_widest;
use crate::kernels::simd::widest_fn;
use crate::kernels::softmax::dot8;
use crate::{ModelError, Result};
use rayon::prelude::*;

/// What [`Tape::attention_narrow_heads`]'s backward pass needs.
pub(super) struct NarrowAttentionState {
    q: NodeId,
    k: NodeId,
    v: NodeId,
    /// `[B, Lq, Lk, H, Dh]`.
    dims: [usize; 5],
    scale: f32,
    /// `[B, H, Lq, Lk]`.
    probs: Vec<f32>,
}

/// One head's rows copied out of `[L, H·Dh]`: `rows` `[L, Dh]` when `!transposed`, else
/// `[Dh, L]`.
fn head_copy(
    src: &[f32],
    l: usize,
    width: usize,
    h: usize,
    dh: usize,
    transposed: bool,
    out: &mut [f32],
) {
    for i in 0..l {
        let row = &src[i * width + h * dh..][..dh];
        if transposed {
            for (d, &x) in row.iter().enumerate() {
                out[d * l + i] = x;
            }
        } else {
            out[i * dh..][..dh].copy_from_slice(row);
        }
    }
}

/// `y += a · x`.
#[inline(always)]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
}

/// One head's forward: `qh` [L, Dh], `kt`, `vt` [Dh, Lk] → its probabilities `probs` [L, Lk]
/// and its `Dh` columns (from `h·Dh`) of the sample's output `ob` [L, width].
#[inline(always)]
fn head_forward(
    qh: &[f32],
    kt: &[f32],
    vt: &[f32],
    probs: &mut [f32],
    ob: &mut [f32],
    [l, lk, dh, width, h]: [usize; 5],
    scale: f32,
) {
    for i in 0..l {
        let row = &mut probs[i * lk..][..lk];
        row.fill(0.0);
        for (d, kd) in kt.chunks_exact(lk).enumerate() {
            axpy(row, scale * qh[i * dh + d], kd);
        }
        let inv = 1.0 / exp_shifted_widest(row);
        row.iter_mut().for_each(|s| *s *= inv);
        let o = &mut ob[i * width + h * dh..][..dh];
        for (od, vd) in o.iter_mut().zip(vt.chunks_exact(lk)) {
            *od = dot8(row, vd);
        }
    }
}

widest_fn!(fn head_forward_widest(
    qh: &[f32],
    kt: &[f32],
    vt: &[f32],
    probs: &mut [f32],
    ob: &mut [f32],
    dims: [usize; 5],
    scale: f32,
) = head_forward);

/// One head's backward pass: from `qh`, the output's gradient `goh` [L, Dh], `kt`, `vt`
/// [Dh, Lk] and `probs` [L, Lk], writes `dkt`, `dvt` [Dh, Lk] and the head's columns of
/// the sample's `dqb` [L, width]; `ds` is a scratch row of Lk.
#[inline(always)]
fn head_backward(
    [qh, goh, kt, vt, probs]: [&[f32]; 5],
    [dkt, dvt, ds]: [&mut [f32]; 3],
    dqb: &mut [f32],
    [l, lk, dh, width, h]: [usize; 5],
    scale: f32,
) {
    dkt.fill(0.0);
    dvt.fill(0.0);
    for i in 0..l {
        let p = &probs[i * lk..][..lk];
        let (qi, gi) = (&qh[i * dh..][..dh], &goh[i * dh..][..dh]);
        ds.fill(0.0);
        for d in 0..dh {
            axpy(&mut dvt[d * lk..][..lk], gi[d], p);
            axpy(ds, gi[d], &vt[d * lk..][..lk]);
        }
        let dot = dot8(ds, p);
        ds.iter_mut()
            .zip(p)
            .for_each(|(s, &pj)| *s = pj * (*s - dot) * scale);
        let dqi = &mut dqb[i * width + h * dh..][..dh];
        for d in 0..dh {
            dqi[d] = dot8(ds, &kt[d * lk..][..lk]);
            axpy(&mut dkt[d * lk..][..lk], qi[d], ds);
        }
    }
}

widest_fn!(fn head_backward_widest(
    inputs: [&[f32]; 5],
    grads: [&mut [f32]; 3],
    dqb: &mut [f32],
    dims: [usize; 5],
    scale: f32,
) = head_backward);

impl Tape {
    /// Multi-head self- or cross-attention without a mask, as [`Tape::attention`] (`q` [B, Lq,
    /// H·Dh], `k`, `v` [B, Lk, H·Dh] → [B, Lq, H·Dh], scale `Dh^-0.5`, the B·H·Lq·Lk
    /// probabilities kept for the backward pass), with every inner loop over the keys: the
    /// faster of the two for narrow heads (a U-Net's: shapes-ldm's are 2 wide). Samples are
    /// split over the pool. Errors when the sizes do not fit.
    pub fn attention_narrow_heads(
        &mut self,
        q: NodeId,
        k: NodeId,
        v: NodeId,
        heads: usize,
    ) -> Result<NodeId> {
        let shape = self.shape(q).to_vec();
        let [b, l, width] = shape[..] else {
            return Err(ModelError::Invalid(format!(
                "tape attention_narrow_heads: q must be [B, L, H·Dh], found {shape:?}"
            )));
        };
        if heads == 0 || width % heads != 0 {
            return Err(ModelError::Invalid(format!(
                "tape attention_narrow_heads: width {width} is not divisible by {heads} heads"
            )));
        }
        let lk = match self.shape(k)[..] {
            [kb, lk, kw] if kb == b && kw == width && self.shape(v) == self.shape(k) => lk,
            _ => {
                return Err(ModelError::Invalid(format!(
                    "tape attention_narrow_heads: k {:?} and v {:?} do not fit q {shape:?}",
                    self.shape(k),
                    self.shape(v)
                )))
            }
        };
        let dh = width / heads;
        let scale = (dh as f32).powf(-0.5);
        let needs = self.needs(&[q, k, v]);
        let state = NarrowAttentionState {
            q,
            k,
            v,
            dims: [b, l, lk, heads, dh],
            scale,
            probs: vec![0f32; b * heads * l * lk],
        };
        let (id, _) = self.push(&shape, Op::NarrowAttention(Box::new(state)), needs);
        let (before, last) = self.values.split_at_mut(id.0);
        let Op::NarrowAttention(state) = &mut self.nodes[id.0].op else {
            unreachable!("pushed above")
        };
        let (qv, kv, vv) = (&before[q.0], &before[k.0], &before[v.0]);
        let out = &mut last[0];
        if lk == 0 || l == 0 {
            out.fill(0.0);
            return Ok(id);
        }
        let grain = b.div_ceil(rayon::current_num_threads().max(1));
        state
            .probs
            .par_chunks_mut(heads * l * lk)
            .zip(out.par_chunks_mut(l * width))
            .with_min_len(grain)
            .enumerate()
            .for_each(|(bi, (pb, ob))| {
                let (qb, kb, vb) = (
                    &qv[bi * l * width..][..l * width],
                    &kv[bi * lk * width..][..lk * width],
                    &vv[bi * lk * width..][..lk * width],
                );
                let (mut qh, mut kt, mut vt) =
                    (vec![0f32; l * dh], vec![0f32; dh * lk], vec![0f32; dh * lk]);
                for h in 0..heads {
                    head_copy(qb, l, width, h, dh, false, &mut qh);
                    head_copy(kb, lk, width, h, dh, true, &mut kt);
                    head_copy(vb, lk, width, h, dh, true, &mut vt);
                    let probs = &mut pb[h * l * lk..][..l * lk];
                    head_forward_widest(&qh, &kt, &vt, probs, ob, [l, lk, dh, width, h], scale);
                }
            });
        Ok(id)
    }
}

/// The backward pass of [`Tape::attention_narrow_heads`]: per (sample, head), with dO the
/// output's gradient, dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ∘ (dP − rowsum(dP ∘ P)) · scale,
/// dQ = dS·K, dK = dSᵀ·Q.
pub(super) fn narrow_attention_backward(
    state: &NarrowAttentionState,
    values: &[Vec<f32>],
    g: &[f32],
    sink: &mut Sink,
) {
    let [b, l, lk, heads, dh] = state.dims;
    let width = heads * dh;
    let (qv, kv, vv) = (&values[state.q.0], &values[state.k.0], &values[state.v.0]);
    let (mut dq, mut dk, mut dv) = (
        vec![0f32; b * l * width],
        vec![0f32; b * lk * width],
        vec![0f32; b * lk * width],
    );
    if l > 0 && lk > 0 {
        let grain = b.div_ceil(rayon::current_num_threads().max(1));
        dq.par_chunks_mut(l * width)
            .zip(dk.par_chunks_mut(lk * width))
            .zip(dv.par_chunks_mut(lk * width))
            .with_min_len(grain)
            .enumerate()
            .for_each(|(bi, ((dqb, dkb), dvb))| {
                let (qb, kb, vb, gb) = (
                    &qv[bi * l * width..][..l * width],
                    &kv[bi * lk * width..][..lk * width],
                    &vv[bi * lk * width..][..lk * width],
                    &g[bi * l * width..][..l * width],
                );
                let mut qh = vec![0f32; l * dh];
                let mut goh = vec![0f32; l * dh];
                let (mut kt, mut vt) = (vec![0f32; dh * lk], vec![0f32; dh * lk]);
                let (mut dkt, mut dvt) = (vec![0f32; dh * lk], vec![0f32; dh * lk]);
                let mut ds = vec![0f32; lk];
                for h in 0..heads {
                    head_copy(qb, l, width, h, dh, false, &mut qh);
                    head_copy(gb, l, width, h, dh, false, &mut goh);
                    head_copy(kb, lk, width, h, dh, true, &mut kt);
                    head_copy(vb, lk, width, h, dh, true, &mut vt);
                    let probs = &state.probs[(bi * heads + h) * l * lk..][..l * lk];
                    head_backward_widest(
                        [&qh, &goh, &kt, &vt, probs],
                        [&mut dkt, &mut dvt, &mut ds],
                        dqb,
                        [l, lk, dh, width, h],
                        state.scale,
                    );
                    for j in 0..lk {
                        for d in 0..dh {
                            dkb[j * width + h * dh + d] = dkt[d * lk + j];
                            dvb[j * width + h * dh + d] = dvt[d * lk + j];
                        }
                    }
                }
            });
    }
    for (id, grad) in [(state.q, &dq), (state.k, &dk), (state.v, &dv)] {
        if let Some((dst, add)) = sink.slot(id) {
            super::ops::split_units(dst, 1, |s, d| emit(d, add, |i| grad[s + i]));
        }
    }
}
