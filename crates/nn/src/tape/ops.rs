//! The tape's ops: each records what its backward needs, writes its output once, and in its
//! backward writes (first gradient) or adds (later ones) into its inputs' gradient buffers.

use super::{NodeId, Sink, Tape};
use crate::kernels::activation::{
    gelu_erf_grad_slice, gelu_erf_slice, silu_grad_slice, silu_slice,
};
use crate::kernels::attention::exp_shifted_widest;
use crate::kernels::norm::{geglu_row, moments};
use crate::kernels::norm_backward::{geglu_grad_row, layer_norm_grad_row};
use crate::kernels::softmax::dot8;
use crate::Result;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Below this many values an op runs on the calling thread.
pub(super) const SERIAL_BELOW: usize = 16 * 1024;

pub(super) enum Op {
    Leaf,
    Linear {
        x: NodeId,
        w: NodeId,
        b: Option<NodeId>,
        rows: usize,
        inp: usize,
        out: usize,
    },
    AddTable {
        x: NodeId,
        table: NodeId,
        dims: [usize; 4],
    },
    Add {
        a: NodeId,
        b: NodeId,
    },
    Mask {
        x: NodeId,
        mask: Vec<f32>,
    },
    LayerNorm {
        x: NodeId,
        w: NodeId,
        b: NodeId,
        width: usize,
        stats: Vec<[f32; 2]>,
    },
    Gelu {
        x: NodeId,
    },
    Attention {
        q: NodeId,
        k: NodeId,
        v: NodeId,
        /// `[B, Lq, Lk, H, Dh]`.
        dims: [usize; 5],
        scale: f32,
        probs: Vec<f32>,
    },
    SwapAxes {
        x: NodeId,
        dims: [usize; 4],
    },
    MeanAxis {
        x: NodeId,
        dims: [usize; 3],
    },
    MixRows {
        x: NodeId,
        w: NodeId,
        b: NodeId,
        dims: [usize; 4],
    },
    Loss {
        x: NodeId,
        dx: Vec<f32>,
    },
    Conv2d(Box<super::image::ConvState>),
    NarrowAttention(Box<super::unet::NarrowAttentionState>),
    GroupNorm(Box<super::image::GroupNormState>),
    Upsample2x {
        x: NodeId,
        /// `[B·C, H, W]` of the input.
        dims: [usize; 3],
    },
    AddPerChannel {
        x: NodeId,
        t: NodeId,
        plane: usize,
    },
    Concat {
        /// Each part and its channels.
        parts: Vec<(NodeId, usize)>,
        plane: usize,
    },
    Silu {
        x: NodeId,
    },
    Geglu {
        h: NodeId,
        /// The output's last dimension (the input's is twice it).
        n: usize,
    },
    Mse {
        a: NodeId,
        b: NodeId,
    },
    /// The EEG encoders' ops (`eeg.rs`).
    Eeg(Box<super::eeg::EegOp>),
}

impl Op {
    /// The work buffer this op owns, handed back to the tape when the step is cleared.
    pub(super) fn into_kept(self) -> Option<Vec<f32>> {
        match self {
            Op::Conv2d(state) => Some(state.work),
            _ => None,
        }
    }
}

/// faer's parallelism for the current pool.
pub(super) fn par() -> Par {
    match rayon::current_num_threads() {
        0 | 1 => Par::Seq,
        n => Par::rayon(n),
    }
}

/// `dst = v` or `dst += v` over `dst`, `v` given by index.
#[inline(always)]
pub(super) fn emit(dst: &mut [f32], add: bool, f: impl Fn(usize) -> f32) {
    if add {
        for (i, d) in dst.iter_mut().enumerate() {
            *d += f(i);
        }
    } else {
        for (i, d) in dst.iter_mut().enumerate() {
            *d = f(i);
        }
    }
}

/// Runs `f(first_unit, chunk)` over `dst` cut into one chunk of whole units (`unit` values
/// each) per thread, or once on this thread when `dst` is small.
pub(super) fn split_units(
    dst: &mut [f32],
    unit: usize,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) {
    let unit = unit.max(1);
    let units = dst.len() / unit;
    let threads = rayon::current_num_threads();
    if threads <= 1 || dst.len() < SERIAL_BELOW || units < 2 {
        f(0, dst);
        return;
    }
    let per = units.div_ceil(threads);
    dst.par_chunks_mut(per * unit)
        .enumerate()
        .for_each(|(c, d)| f(c * per, d));
}

pub(super) fn accum(add: bool) -> Accum {
    if add {
        Accum::Add
    } else {
        Accum::Replace
    }
}

impl Tape {
    /// `x [R, in] · wᵀ + b`: `w` [out, in], `b` `[out]` → [R, out] (R: the product of `x`'s
    /// leading dimensions). Errors when the sizes do not fit.
    pub fn linear(&mut self, x: NodeId, w: NodeId, b: Option<NodeId>) -> Result<NodeId> {
        let (out, inp) = match self.shape(w) {
            [o, i] => (*o, *i),
            s => {
                return Err(crate::ModelError::Invalid(format!(
                    "tape linear: the weight must be [out, in], found {s:?}"
                )))
            }
        };
        let xs = self.shape(x).to_vec();
        if xs.last() != Some(&inp) {
            return Err(crate::ModelError::Invalid(format!(
                "tape linear: input {xs:?} does not end in the weight's {inp} inputs"
            )));
        }
        if let Some(b) = b {
            self.check("linear bias", b, &[out])?;
        }
        let rows = xs[..xs.len() - 1].iter().product();
        let mut shape = xs;
        *shape.last_mut().expect("checked above") = out;
        let needs = self.needs(&[x, w]) || b.is_some_and(|b| self.needs(&[b]));
        let op = Op::Linear {
            x,
            w,
            b,
            rows,
            inp,
            out,
        };
        let (id, _) = self.push(&shape, op, needs);
        let (values, y) = self.split_last();
        if let Some(b) = b {
            for row in y.chunks_exact_mut(out) {
                row.copy_from_slice(&values[b.0]);
            }
        }
        matmul(
            MatMut::from_row_major_slice_mut(y, rows, out),
            accum(b.is_some()),
            MatRef::from_row_major_slice(&values[x.0], rows, inp),
            MatRef::from_row_major_slice(&values[w.0], out, inp).transpose(),
            1.0f32,
            par(),
        );
        Ok(id)
    }

    /// `x [O, R, I, D] + table [R, D]` broadcast over O and I (a position or frame
    /// embedding). Errors when the sizes do not fit.
    pub fn add_table(&mut self, x: NodeId, table: NodeId, dims: [usize; 4]) -> Result<NodeId> {
        self.check("add_table input", x, &dims)?;
        self.check("add_table table", table, &[dims[1], dims[3]])?;
        let needs = self.needs(&[x, table]);
        let shape = self.shape(x).to_vec();
        self.push(&shape, Op::AddTable { x, table, dims }, needs);
        let (values, y) = self.split_last();
        let [_, r, i, d] = dims;
        let (xv, tv) = (&values[x.0], &values[table.0]);
        for (c, (yc, xc)) in y.chunks_exact_mut(d).zip(xv.chunks_exact(d)).enumerate() {
            let row = &tv[(c / i % r) * d..][..d];
            for ((y, x), t) in yc.iter_mut().zip(xc).zip(row) {
                *y = x + t;
            }
        }
        Ok(NodeId(self.nodes.len() - 1))
    }

    /// `a + b`, same lengths. Errors when the lengths differ.
    pub fn add(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        let shape = self.shape(a).to_vec();
        self.check("add", b, &shape)?;
        let needs = self.needs(&[a, b]);
        let (id, _) = self.push(&shape, Op::Add { a, b }, needs);
        let (values, y) = self.split_last();
        let (av, bv) = (&values[a.0], &values[b.0]);
        split_units(y, 1, |s, y| emit(y, false, |i| av[s + i] + bv[s + i]));
        Ok(id)
    }

    /// Inverted dropout of `x` with probability `p`, drawing one `f64` from `rng` per value in
    /// order, as [`crate::rng::dropout`] does (the same masks from the same stream); `p = 0`
    /// returns `x`.
    pub fn dropout(&mut self, x: NodeId, p: f64, rng: &mut ChaCha8Rng) -> NodeId {
        if p == 0.0 {
            return x;
        }
        let scale = (1.0 / (1.0 - p)) as f32;
        let mask: Vec<f32> = (0..self.values[x.0].len())
            .map(|_| if rng.gen::<f64>() >= p { scale } else { 0.0 })
            .collect();
        let shape = self.shape(x).to_vec();
        let needs = self.needs(&[x]);
        let (id, _) = self.push(&shape, Op::Mask { x, mask }, needs);
        let i = id.0;
        let (before, last) = self.values.split_at_mut(i);
        let Op::Mask { mask, .. } = &self.nodes[i].op else {
            unreachable!("pushed above")
        };
        let xv = &before[x.0];
        emit(&mut last[0], false, |j| xv[j] * mask[j]);
        id
    }

    /// Layer norm over the last dimension (biased variance, `eps` inside the root), then
    /// `· w + b` (`[D]` each). Errors when the sizes do not fit.
    pub fn layer_norm(&mut self, x: NodeId, w: NodeId, b: NodeId, eps: f64) -> Result<NodeId> {
        let shape = self.shape(x).to_vec();
        let width = *shape.last().unwrap_or(&1);
        self.check("layer_norm weight", w, &[width])?;
        self.check("layer_norm bias", b, &[width])?;
        let xv = &self.values[x.0];
        let stats: Vec<[f32; 2]> = xv
            .par_chunks(width.max(1))
            .with_min_len((xv.len() / width.max(1)).div_ceil(rayon::current_num_threads()))
            .map(|row| {
                let (mean, rstd) = moments(row, eps);
                [mean, rstd]
            })
            .collect();
        let needs = self.needs(&[x, w, b]);
        let op = Op::LayerNorm {
            x,
            w,
            b,
            width,
            stats,
        };
        let (id, _) = self.push(&shape, op, needs);
        let i = id.0;
        let (before, last) = self.values.split_at_mut(i);
        let Op::LayerNorm { stats, .. } = &self.nodes[i].op else {
            unreachable!("pushed above")
        };
        let (xv, wv, bv) = (&before[x.0], &before[w.0], &before[b.0]);
        split_units(&mut last[0], width, |r0, y| {
            for (r, yr) in y.chunks_exact_mut(width).enumerate() {
                let [mean, rstd] = stats[r0 + r];
                let xr = &xv[(r0 + r) * width..][..width];
                for (((y, &x), &w), &b) in yr.iter_mut().zip(xr).zip(wv).zip(bv) {
                    *y = (x - mean) * rstd * w + b;
                }
            }
        });
        Ok(id)
    }

    /// Exact GELU, `x·Φ(x)` (torch's `gelu(approximate="none")`).
    pub fn gelu(&mut self, x: NodeId) -> NodeId {
        let shape = self.shape(x).to_vec();
        let needs = self.needs(&[x]);
        let (id, _) = self.push(&shape, Op::Gelu { x }, needs);
        let (values, y) = self.split_last();
        let xv = &values[x.0];
        split_units(y, 1, |s, y| gelu_erf_slice(&xv[s..s + y.len()], y));
        id
    }

    /// SiLU, `x·σ(x)`.
    pub fn silu(&mut self, x: NodeId) -> NodeId {
        let shape = self.shape(x).to_vec();
        let needs = self.needs(&[x]);
        let (id, _) = self.push(&shape, Op::Silu { x }, needs);
        let (values, y) = self.split_last();
        let xv = &values[x.0];
        split_units(y, 1, |s, y| silu_slice(&xv[s..s + y.len()], y));
        id
    }

    /// diffusers' GEGLU gate after its linear layer: `h` `[..., 2n]` → `h[..., :n] ·
    /// gelu(h[..., n:])` `[..., n]` (exact GELU). Errors when the last dimension is odd or
    /// `h` is a scalar.
    pub fn geglu(&mut self, h: NodeId) -> Result<NodeId> {
        let mut shape = self.shape(h).to_vec();
        let two_n = match shape.last() {
            Some(&d) if d % 2 == 0 => d,
            _ => {
                return Err(crate::ModelError::Invalid(format!(
                    "tape geglu: input {shape:?} must end in an even dimension (hidden ‖ gate)"
                )))
            }
        };
        let n = two_n / 2;
        *shape.last_mut().expect("checked above") = n;
        let needs = self.needs(&[h]);
        let (id, _) = self.push(&shape, Op::Geglu { h, n }, needs);
        let (values, y) = self.split_last();
        let hv = &values[h.0];
        split_units(y, n, |r0, y| {
            for (r, yr) in y.chunks_exact_mut(n.max(1)).enumerate() {
                let (hidden, gate) = hv[(r0 + r) * two_n..][..two_n].split_at(n);
                geglu_row(yr, hidden, gate);
            }
        });
        Ok(id)
    }

    /// The mean squared error `mean((a − b)²)` of two nodes of the same length, a scalar
    /// (summed in f64); gradients flow into both. Errors when the lengths differ.
    pub fn mse(&mut self, a: NodeId, b: NodeId) -> Result<NodeId> {
        let len = self.values[a.0].len();
        self.check("mse", b, self.shape(a).to_vec().as_slice())?;
        let needs = self.needs(&[a, b]);
        let (av, bv) = (&self.values[a.0], &self.values[b.0]);
        let sum: f64 = av
            .iter()
            .zip(bv)
            .map(|(&x, &y)| {
                let d = x as f64 - y as f64;
                d * d
            })
            .sum();
        let value = (sum / len.max(1) as f64) as f32;
        let (id, y) = self.push(&[], Op::Mse { a, b }, needs);
        y[0] = value;
        Ok(id)
    }

    /// Multi-head self- or cross-attention without a mask on projected tensors: `q` [B, Lq,
    /// H·Dh], `k`, `v` [B, Lk, H·Dh] (Lk may differ from Lq: cross-attention on a context) →
    /// [B, Lq, H·Dh], scale `Dh^-0.5`. The probabilities are kept for the backward
    /// (B·H·Lq·Lk values: for short sequences, such as the window encoder's patches and
    /// frames or a small U-Net's 8×8 maps on a 77-token context). Errors when the sizes do
    /// not fit.
    pub fn attention(&mut self, q: NodeId, k: NodeId, v: NodeId, heads: usize) -> Result<NodeId> {
        let shape = self.shape(q).to_vec();
        let [b, l, width] = shape[..] else {
            return Err(crate::ModelError::Invalid(format!(
                "tape attention: q must be [B, L, H·Dh], found {shape:?}"
            )));
        };
        if heads == 0 || width % heads != 0 {
            return Err(crate::ModelError::Invalid(format!(
                "tape attention: width {width} is not divisible by {heads} heads"
            )));
        }
        let lk = match self.shape(k)[..] {
            [kb, lk, kw] if kb == b && kw == width => lk,
            _ => {
                return Err(crate::ModelError::Invalid(format!(
                    "tape attention: k {:?} does not fit q {shape:?}",
                    self.shape(k)
                )))
            }
        };
        if self.shape(v) != self.shape(k) {
            return Err(crate::ModelError::Invalid(format!(
                "tape attention: v {:?} is not shaped as k {:?}",
                self.shape(v),
                self.shape(k)
            )));
        }
        let dh = width / heads;
        let dims = [b, l, lk, heads, dh];
        let scale = (dh as f32).powf(-0.5);
        let mut probs = vec![0f32; b * heads * l * lk];
        let needs = self.needs(&[q, k, v]);
        if lk > 0 {
            let (qv, kv) = (&self.values[q.0], &self.values[k.0]);
            probs
                .par_chunks_mut(heads * l * lk)
                .with_min_len(b.div_ceil(rayon::current_num_threads()))
                .enumerate()
                .for_each(|(bi, p)| {
                    let (qbase, kbase) = (bi * l * width, bi * lk * width);
                    for h in 0..heads {
                        for i in 0..l {
                            let qi = &qv[qbase + i * width + h * dh..][..dh];
                            let row = &mut p[(h * l + i) * lk..][..lk];
                            for (j, s) in row.iter_mut().enumerate() {
                                let kj = &kv[kbase + j * width + h * dh..][..dh];
                                *s = scale * dot8(qi, kj);
                            }
                            let inv = 1.0 / exp_shifted_widest(row);
                            row.iter_mut().for_each(|s| *s *= inv);
                        }
                    }
                });
        }
        let op = Op::Attention {
            q,
            k,
            v,
            dims,
            scale,
            probs,
        };
        let (id, _) = self.push(&shape, op, needs);
        let i = id.0;
        let (before, last) = self.values.split_at_mut(i);
        let Op::Attention { probs, .. } = &self.nodes[i].op else {
            unreachable!("pushed above")
        };
        let vv = &before[v.0];
        split_units(&mut last[0], l * width, |b0, y| {
            for (bo, yb) in y.chunks_exact_mut(l * width).enumerate() {
                let bi = b0 + bo;
                for h in 0..heads {
                    for i in 0..l {
                        let p = &probs[((bi * heads + h) * l + i) * lk..][..lk];
                        let out = &mut yb[i * width + h * dh..][..dh];
                        out.fill(0.0);
                        for (j, &pj) in p.iter().enumerate() {
                            let vj = &vv[(bi * lk + j) * width + h * dh..][..dh];
                            for (o, &vv) in out.iter_mut().zip(vj) {
                                *o += pj * vv;
                            }
                        }
                    }
                }
            }
        });
        Ok(id)
    }

    /// `[O, A, B, I]` → `[O, B, A, I]` (swaps the middle axes).
    pub fn swap_axes(&mut self, x: NodeId, dims: [usize; 4]) -> Result<NodeId> {
        self.check("swap_axes", x, &dims)?;
        let [o, a, b, i] = dims;
        let needs = self.needs(&[x]);
        let (id, _) = self.push(&[o, b, a, i], Op::SwapAxes { x, dims }, needs);
        let (values, y) = self.split_last();
        swap_middle(&values[x.0], y, dims, false);
        Ok(id)
    }

    /// Mean over the middle axis: `[O, A, I]` → `[O, I]`.
    pub fn mean_axis(&mut self, x: NodeId, dims: [usize; 3]) -> Result<NodeId> {
        self.check("mean_axis", x, &dims)?;
        let [o, a, i] = dims;
        let needs = self.needs(&[x]);
        let (id, _) = self.push(&[o, i], Op::MeanAxis { x, dims }, needs);
        let (values, y) = self.split_last();
        let xv = &values[x.0];
        let inv = 1.0 / a.max(1) as f32;
        for (oi, yo) in y.chunks_exact_mut(i).enumerate() {
            yo.copy_from_slice(&xv[oi * a * i..][..i]);
            for k in 1..a {
                let xk = &xv[(oi * a + k) * i..][..i];
                yo.iter_mut().zip(xk).for_each(|(y, x)| *y += x);
            }
            yo.iter_mut().for_each(|y| *y *= inv);
        }
        Ok(id)
    }

    /// A linear map over the row axis of each sample: `x` [B, N, D], `w` [T, N], `b` `[T]` →
    /// `y[s] = w · x[s] + b` [B, T, D] (a 1×1 convolution over tokens). Errors when the sizes
    /// do not fit.
    pub fn mix_rows(&mut self, x: NodeId, w: NodeId, b: NodeId) -> Result<NodeId> {
        let (t, n) = match self.shape(w) {
            [t, n] => (*t, *n),
            s => {
                return Err(crate::ModelError::Invalid(format!(
                    "tape mix_rows: the weight must be [T, N], found {s:?}"
                )))
            }
        };
        let [bs, n2, d] = self.shape(x)[..] else {
            return Err(crate::ModelError::Invalid(format!(
                "tape mix_rows: x must be [B, N, D], found {:?}",
                self.shape(x)
            )));
        };
        if n2 != n {
            return Err(crate::ModelError::Invalid(format!(
                "tape mix_rows: x has {n2} rows, the weight maps {n}"
            )));
        }
        self.check("mix_rows bias", b, &[t])?;
        let dims = [bs, n, t, d];
        let needs = self.needs(&[x, w, b]);
        let (id, _) = self.push(&[bs, t, d], Op::MixRows { x, w, b, dims }, needs);
        let (values, y) = self.split_last();
        let (xv, wv, bv) = (&values[x.0], &values[w.0], &values[b.0]);
        for (s, ys) in y.chunks_exact_mut(t * d).enumerate() {
            for (row, &bias) in ys.chunks_exact_mut(d).zip(bv) {
                row.fill(bias);
            }
            matmul(
                MatMut::from_row_major_slice_mut(ys, t, d),
                Accum::Add,
                MatRef::from_row_major_slice(wv, t, n),
                MatRef::from_row_major_slice(&xv[s * n * d..][..n * d], n, d),
                1.0f32,
                Par::Seq,
            );
        }
        Ok(id)
    }

    /// Records a scalar computed outside the tape from `x`, with its gradient `dx` (same
    /// length as `x`): the backward adds `g·dx` to `x`'s gradient.
    pub(super) fn scalar_with_grad(&mut self, x: NodeId, value: f32, dx: Vec<f32>) -> NodeId {
        let needs = self.needs(&[x]);
        let (id, y) = self.push(&[], Op::Loss { x, dx }, needs);
        y[0] = value;
        id
    }
}

/// `[O, A, B, I]` → `[O, B, A, I]` from `x` into `y` (written, or added when `add`).
fn swap_middle(x: &[f32], y: &mut [f32], [o, a, b, i]: [usize; 4], add: bool) {
    for oi in 0..o {
        for bi in 0..b {
            for ai in 0..a {
                let src = &x[((oi * a + ai) * b + bi) * i..][..i];
                let dst = &mut y[((oi * b + bi) * a + ai) * i..][..i];
                emit(dst, add, |k| src[k]);
            }
        }
    }
}

impl Op {
    /// Writes or adds this op's input gradients given its output gradient `g`.
    pub(super) fn backward(&mut self, values: &[Vec<f32>], g: &[f32], sink: &mut Sink) {
        match self {
            Op::Leaf => {}
            Op::Linear {
                x,
                w,
                b,
                rows,
                inp,
                out,
            } => {
                let (rows, inp, out) = (*rows, *inp, *out);
                let gm = MatRef::from_row_major_slice(g, rows, out);
                if let Some((dx, add)) = sink.slot(*x) {
                    matmul(
                        MatMut::from_row_major_slice_mut(dx, rows, inp),
                        accum(add),
                        gm,
                        MatRef::from_row_major_slice(&values[w.0], out, inp),
                        1.0f32,
                        par(),
                    );
                }
                if let Some((dw, add)) = sink.slot(*w) {
                    matmul(
                        MatMut::from_row_major_slice_mut(dw, out, inp),
                        accum(add),
                        gm.transpose(),
                        MatRef::from_row_major_slice(&values[x.0], rows, inp),
                        1.0f32,
                        par(),
                    );
                }
                if let Some((db, add)) = b.and_then(|b| sink.slot(b)) {
                    column_sums(g, out, db, add);
                }
            }
            Op::AddTable { x, table, dims } => {
                if let Some((dx, add)) = sink.slot(*x) {
                    split_units(dx, 1, |s, d| emit(d, add, |i| g[s + i]));
                }
                if let Some((dt, add)) = sink.slot(*table) {
                    let [o, r, i, d] = *dims;
                    for ri in 0..r {
                        let dst = &mut dt[ri * d..][..d];
                        let mut first = !add;
                        for oi in 0..o {
                            for ii in 0..i {
                                let src = &g[((oi * r + ri) * i + ii) * d..][..d];
                                emit(dst, !first, |k| src[k]);
                                first = false;
                            }
                        }
                    }
                }
            }
            Op::Add { a, b } => {
                for id in [a, b] {
                    if let Some((d, add)) = sink.slot(*id) {
                        split_units(d, 1, |s, d| emit(d, add, |i| g[s + i]));
                    }
                }
            }
            Op::Mask { x, mask } => {
                if let Some((dx, add)) = sink.slot(*x) {
                    split_units(dx, 1, |s, d| emit(d, add, |i| g[s + i] * mask[s + i]));
                }
            }
            Op::LayerNorm {
                x,
                w,
                b,
                width,
                stats,
            } => layer_norm_backward(values, g, sink, [*x, *w, *b], *width, stats),
            Op::Gelu { x } => {
                if let Some((dx, add)) = sink.slot(*x) {
                    let xv = &values[x.0];
                    split_units(dx, 1, |s, d| {
                        let (xs, gs) = (&xv[s..s + d.len()], &g[s..s + d.len()]);
                        if add {
                            let mut tmp = vec![0f32; d.len()];
                            gelu_erf_grad_slice(xs, gs, &mut tmp);
                            d.iter_mut().zip(&tmp).for_each(|(d, t)| *d += t);
                        } else {
                            gelu_erf_grad_slice(xs, gs, d);
                        }
                    });
                }
            }
            Op::Attention {
                q,
                k,
                v,
                dims,
                scale,
                probs,
            } => attention_backward(values, g, sink, [*q, *k, *v], *dims, *scale, probs),
            Op::SwapAxes { x, dims } => {
                if let Some((dx, add)) = sink.slot(*x) {
                    let [o, a, b, i] = *dims;
                    swap_middle(g, dx, [o, b, a, i], add);
                }
            }
            Op::MeanAxis { x, dims } => {
                if let Some((dx, add)) = sink.slot(*x) {
                    let [_, a, i] = *dims;
                    let inv = 1.0 / a.max(1) as f32;
                    for (c, d) in dx.chunks_exact_mut(i).enumerate() {
                        let src = &g[(c / a) * i..][..i];
                        emit(d, add, |k| src[k] * inv);
                    }
                }
            }
            Op::MixRows { x, w, b, dims } => {
                let [bs, n, t, d] = *dims;
                let wm = MatRef::from_row_major_slice(&values[w.0], t, n);
                if let Some((dx, add)) = sink.slot(*x) {
                    for s in 0..bs {
                        matmul(
                            MatMut::from_row_major_slice_mut(&mut dx[s * n * d..][..n * d], n, d),
                            accum(add),
                            wm.transpose(),
                            MatRef::from_row_major_slice(&g[s * t * d..][..t * d], t, d),
                            1.0f32,
                            Par::Seq,
                        );
                    }
                }
                if let Some((dw, add)) = sink.slot(*w) {
                    let xv = &values[x.0];
                    for s in 0..bs {
                        matmul(
                            MatMut::from_row_major_slice_mut(dw, t, n),
                            accum(add || s > 0),
                            MatRef::from_row_major_slice(&g[s * t * d..][..t * d], t, d),
                            MatRef::from_row_major_slice(&xv[s * n * d..][..n * d], n, d)
                                .transpose(),
                            1.0f32,
                            Par::Seq,
                        );
                    }
                }
                if let Some((db, add)) = sink.slot(*b) {
                    for ti in 0..t {
                        let sum: f32 = (0..bs)
                            .map(|s| g[(s * t + ti) * d..][..d].iter().sum::<f32>())
                            .sum();
                        if add {
                            db[ti] += sum;
                        } else {
                            db[ti] = sum;
                        }
                    }
                }
            }
            Op::Loss { x, dx: saved } => {
                if let Some((dx, add)) = sink.slot(*x) {
                    let g0 = g[0];
                    emit(dx, add, |i| g0 * saved[i]);
                }
            }
            Op::Conv2d(state) => super::image::conv_backward(state, values, g, sink),
            Op::NarrowAttention(state) => {
                super::unet::narrow_attention_backward(state, values, g, sink)
            }
            Op::GroupNorm(state) => super::image::group_norm_backward(state, values, g, sink),
            Op::Upsample2x { x, dims } => super::image::upsample_backward(*x, *dims, g, sink),
            Op::AddPerChannel { x, t, plane } => {
                super::image::add_per_channel_backward([*x, *t], *plane, g, sink)
            }
            Op::Concat { parts, plane } => super::image::concat_backward(parts, *plane, g, sink),
            Op::Silu { x } => {
                if let Some((dx, add)) = sink.slot(*x) {
                    let xv = &values[x.0];
                    split_units(dx, 1, |s, d| {
                        let (xs, gs) = (&xv[s..s + d.len()], &g[s..s + d.len()]);
                        with_scratch(d, add, |out| silu_grad_slice(xs, gs, out));
                    });
                }
            }
            Op::Geglu { h, n } => {
                let n = *n;
                if let Some((dh, add)) = sink.slot(*h) {
                    let hv = &values[h.0];
                    split_units(dh, 2 * n, |r0, d| {
                        let rows = d.len() / (2 * n).max(1);
                        let hs = &hv[r0 * 2 * n..][..rows * 2 * n];
                        let gs = &g[r0 * n..][..rows * n];
                        with_scratch(d, add, |out| {
                            for ((o, hr), gr) in out
                                .chunks_exact_mut(2 * n)
                                .zip(hs.chunks_exact(2 * n))
                                .zip(gs.chunks_exact(n))
                            {
                                geglu_grad_row(o, hr, gr);
                            }
                        });
                    });
                }
            }
            Op::Mse { a, b } => {
                let (av, bv) = (&values[a.0], &values[b.0]);
                let coef = g[0] * 2.0 / av.len().max(1) as f32;
                for (id, sign) in [(*a, coef), (*b, -coef)] {
                    if let Some((d, add)) = sink.slot(id) {
                        split_units(d, 1, |s, d| {
                            emit(d, add, |i| sign * (av[s + i] - bv[s + i]))
                        });
                    }
                }
            }
            Op::Eeg(op) => op.backward(values, g, sink),
        }
    }
}

/// Runs `f` into `dst` directly, or into a scratch buffer then added to `dst` when `add`.
fn with_scratch(dst: &mut [f32], add: bool, f: impl FnOnce(&mut [f32])) {
    if add {
        let mut tmp = vec![0f32; dst.len()];
        f(&mut tmp);
        dst.iter_mut().zip(&tmp).for_each(|(d, t)| *d += t);
    } else {
        f(dst);
    }
}

/// `db[c] (=|+=) Σ_r g[r, c]` over rows of `width`.
fn column_sums(g: &[f32], width: usize, db: &mut [f32], add: bool) {
    let mut rows = g.chunks_exact(width);
    if !add {
        match rows.next() {
            Some(first) => db.copy_from_slice(first),
            None => db.fill(0.0),
        }
    }
    for row in rows {
        db.iter_mut().zip(row).for_each(|(d, g)| *d += g);
    }
}

fn layer_norm_backward(
    values: &[Vec<f32>],
    g: &[f32],
    sink: &mut Sink,
    [x, w, b]: [NodeId; 3],
    width: usize,
    stats: &[[f32; 2]],
) {
    let (xv, wv) = (&values[x.0], &values[w.0]);
    let rows = stats.len();
    let threads = rayon::current_num_threads().max(1);
    let per = rows.div_ceil(threads).max(1);
    // dx in place, row by row; each grain sums its own dw, db and the grains are added after.
    let row_grads = |r0: usize, dx: Option<(&mut [f32], bool)>| -> (Vec<f32>, Vec<f32>) {
        let (mut dw, mut db) = (vec![0f32; width], vec![0f32; width]);
        let n = dx
            .as_ref()
            .map_or(per.min(rows - r0), |(d, _)| d.len() / width);
        let mut scratch = vec![0f32; width];
        let mut dx = dx;
        for r in 0..n {
            let (xr, gr) = (
                &xv[(r0 + r) * width..][..width],
                &g[(r0 + r) * width..][..width],
            );
            let stat = stats[r0 + r];
            match dx.as_mut() {
                Some((d, false)) => {
                    let dr = &mut d[r * width..][..width];
                    layer_norm_grad_row(dr, xr, gr, wv, stat, &mut dw, &mut db);
                }
                Some((d, true)) => {
                    layer_norm_grad_row(&mut scratch, xr, gr, wv, stat, &mut dw, &mut db);
                    let dr = &mut d[r * width..][..width];
                    dr.iter_mut().zip(&scratch).for_each(|(d, s)| *d += s);
                }
                None => layer_norm_grad_row(&mut scratch, xr, gr, wv, stat, &mut dw, &mut db),
            }
        }
        (dw, db)
    };
    let partials: Vec<(Vec<f32>, Vec<f32>)> = match sink.slot(x) {
        Some((dx, add)) if threads > 1 && g.len() >= SERIAL_BELOW => dx
            .par_chunks_mut(per * width)
            .enumerate()
            .map(|(c, d)| row_grads(c * per, Some((d, add))))
            .collect(),
        Some((dx, add)) => vec![row_grads(0, Some((dx, add)))],
        None => (0..rows.div_ceil(per))
            .into_par_iter()
            .map(|c| row_grads(c * per, None))
            .collect(),
    };
    for (id, pick) in [(w, 0), (b, 1)] {
        if let Some((d, add)) = sink.slot(id) {
            let mut first = !add;
            for p in &partials {
                let src = if pick == 0 { &p.0 } else { &p.1 };
                emit(d, !first, |k| src[k]);
                first = false;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn attention_backward(
    values: &[Vec<f32>],
    g: &[f32],
    sink: &mut Sink,
    [q, k, v]: [NodeId; 3],
    [b, l, lk, heads, dh]: [usize; 5],
    scale: f32,
    probs: &[f32],
) {
    let width = heads * dh;
    let (qv, kv, vv) = (&values[q.0], &values[k.0], &values[v.0]);
    let grain = b.div_ceil(rayon::current_num_threads().max(1));
    // dS = P ∘ (dP − rowsum(dP ∘ P)) · scale, with dP = dO · Vᵀ; one [Lq, Lk] block per head.
    let mut ds = vec![0f32; probs.len()];
    if lk > 0 {
        ds.par_chunks_mut(heads * l * lk)
            .with_min_len(grain)
            .enumerate()
            .for_each(|(bi, dsb)| {
                for h in 0..heads {
                    for i in 0..l {
                        let gi = &g[(bi * l + i) * width + h * dh..][..dh];
                        let p = &probs[((bi * heads + h) * l + i) * lk..][..lk];
                        let row = &mut dsb[(h * l + i) * lk..][..lk];
                        let mut dot = 0f32;
                        for (j, r) in row.iter_mut().enumerate() {
                            let vj = &vv[(bi * lk + j) * width + h * dh..][..dh];
                            *r = dot8(gi, vj);
                            dot += *r * p[j];
                        }
                        for (r, &pj) in row.iter_mut().zip(p) {
                            *r = pj * (*r - dot) * scale;
                        }
                    }
                }
            });
    }
    // dst[b, i, h, :] (=|+=) Σ_j coef(b, h, ·, ·) · src[b, j, h, :] over `n_dst` rows of
    // dst and `n_src` of src; coef is [Lq, Lk] per head, read at (i, j), or at (j, i) when
    // `transposed`.
    let gather = |dst: &mut [f32],
                  add: bool,
                  coef: &[f32],
                  transposed: bool,
                  src: &[f32],
                  (n_dst, n_src): (usize, usize)| {
        if n_dst == 0 {
            return;
        }
        dst.par_chunks_mut(n_dst * width)
            .with_min_len(grain)
            .enumerate()
            .for_each(|(bi, db)| {
                let mut acc = vec![0f32; dh];
                for h in 0..heads {
                    for i in 0..n_dst {
                        acc.fill(0.0);
                        for j in 0..n_src {
                            let (r, c) = if transposed { (j, i) } else { (i, j) };
                            let cij = coef[((bi * heads + h) * l + r) * lk + c];
                            let sj = &src[(bi * n_src + j) * width + h * dh..][..dh];
                            acc.iter_mut().zip(sj).for_each(|(a, s)| *a += cij * s);
                        }
                        emit(&mut db[i * width + h * dh..][..dh], add, |d| acc[d]);
                    }
                }
            });
    };
    if let Some((dv, add)) = sink.slot(v) {
        gather(dv, add, probs, true, g, (lk, l));
    }
    if let Some((dq, add)) = sink.slot(q) {
        gather(dq, add, &ds, false, kv, (l, lk));
    }
    if let Some((dk, add)) = sink.slot(k) {
        gather(dk, add, &ds, true, qv, (lk, l));
    }
}
