//! The tape's ops on NCHW feature maps (row-major f32 `[B, C, H, W]`): convolution with a
//! bias, group norm with an optional fused SiLU, nearest-neighbour 2× upsampling and
//! concatenation along channels (a U-Net's skip connections).

use super::ops::{accum, emit, par, Op, SERIAL_BELOW};
use super::{NodeId, Sink, Tape};
use crate::conv::Geometry;
use crate::kernels::norm::{moments, normalise_plane};
use crate::kernels::norm_backward::{group_plane_dx, group_plane_sums};
use crate::{ModelError, Result};
use faer::linalg::matmul::matmul;
use faer::{MatMut, MatRef, Par};
use rayon::prelude::*;

/// What a convolution keeps for its backward pass.
pub(super) struct ConvState {
    pub(super) x: NodeId,
    pub(super) w: NodeId,
    pub(super) b: Option<NodeId>,
    geometry: Geometry,
    /// Whether the kernel is 1×1 with stride 1 and no padding: the input is its own columns.
    direct: bool,
    /// One image's columns `[C·kh·kw, Ho·Wo]` per grain (none when `direct`): im2col's
    /// output in the forward pass and again in the backward pass (recomputed, not kept: a
    /// batch's columns are kh·kw times its input), then the column gradients; kept by the
    /// tape between steps.
    pub(super) work: Vec<f32>,
}

/// What a group norm keeps for its backward pass.
pub(super) struct GroupNormState {
    x: NodeId,
    w: NodeId,
    b: NodeId,
    groups: usize,
    silu: bool,
    /// `[B, C, plane]`.
    dims: [usize; 3],
    /// Mean and 1/√(variance + eps) of each (sample, group).
    stats: Vec<[f32; 2]>,
}

/// Images per grain when the batch is split over the pool (one grain per thread), or `None`
/// when there are fewer images than threads and the products take the pool instead.
fn images_per_grain(batch: usize) -> Option<usize> {
    let threads = rayon::current_num_threads().max(1);
    (threads > 1 && batch >= threads).then(|| batch.div_ceil(threads))
}

fn invalid(message: String) -> ModelError {
    ModelError::Invalid(message)
}

impl Tape {
    /// 2-D convolution (cross-correlation, as torch's `conv2d`): `x` `[B, C, H, W]`, `w`
    /// `[O, C, kh, kw]`, optional bias `b` `[O]`, the same `stride` and zero `padding` on both
    /// axes → `[B, O, Ho, Wo]` with `Ho = (H + 2·padding − kh) / stride + 1` (likewise `Wo`).
    ///
    /// Each image is unfolded (im2col) into columns (`C·kh·kw·Ho·Wo` values per thread; none
    /// for a 1×1 kernel with stride 1 and no padding) and multiplied by the weight in faer
    /// straight into the output. The backward pass unfolds each image again for the weight's
    /// gradient (the batch's columns are not kept: they are kh·kw times the input), sums the
    /// bias's, and computes the input's through the transposed product and col2im, skipped
    /// when the input needs no gradient. Images are
    /// split over the pool, one grain per thread; with fewer images than threads the products
    /// take the pool. Errors when the shapes do not fit or `stride` is 0.
    pub fn conv2d(
        &mut self,
        x: NodeId,
        w: NodeId,
        b: Option<NodeId>,
        stride: usize,
        padding: usize,
    ) -> Result<NodeId> {
        let (xs, ws) = (self.shape(x).to_vec(), self.shape(w).to_vec());
        let ([batch, c, h, wd], [o, wc, kh, kw]) = (&xs[..], &ws[..]) else {
            return Err(invalid(format!(
                "tape conv2d: input must be [B, C, H, W] and weight [O, C, kh, kw], found \
                 {xs:?} and {ws:?}"
            )));
        };
        let fits = wc == c && h + 2 * padding >= *kh && wd + 2 * padding >= *kw && stride > 0;
        if !fits || *kh == 0 || *kw == 0 {
            return Err(invalid(format!(
                "tape conv2d: input {xs:?} and weight {ws:?} do not fit with stride {stride} \
                 and padding {padding}"
            )));
        }
        if let Some(b) = b {
            self.check("conv2d bias", b, &[*o])?;
        }
        let geometry = Geometry {
            batch: *batch,
            channels: *c,
            height: *h,
            width: *wd,
            out_channels: *o,
            kernel: (*kh, *kw),
            stride: (stride, stride),
            padding: (padding, padding),
            // one block of rows: a grain unfolds a whole image at once
            budget: usize::MAX,
        };
        let (ho, wo) = geometry.out_hw();
        let direct = (*kh, *kw, stride, padding) == (1, 1, 1, 0);
        let work = self.take_kept();
        let needs = self.needs(&[x, w]) || b.is_some_and(|b| self.needs(&[b]));
        let state = ConvState {
            x,
            w,
            b,
            geometry,
            direct,
            work,
        };
        let (id, _) = self.push(&[*batch, *o, ho, wo], Op::Conv2d(Box::new(state)), needs);
        let (before, last) = self.values.split_at_mut(id.0);
        let Op::Conv2d(state) = &mut self.nodes[id.0].op else {
            unreachable!("pushed above")
        };
        let bias = b.map(|b| &before[b.0][..]);
        conv_forward(state, &before[x.0], &before[w.0], bias, &mut last[0]);
        Ok(id)
    }

    /// Group norm of `x` `[B, C, *]` over `groups` groups of channels (biased variance, `eps`
    /// inside the root, statistics in f64), then `· w + b` per channel (`[C]` each), then SiLU
    /// when `silu` (one op: the backward pass recomputes the pre-activation). Errors when C is
    /// not a multiple of `groups` or the parameters are not `[C]`.
    pub fn group_norm(
        &mut self,
        x: NodeId,
        w: NodeId,
        b: NodeId,
        groups: usize,
        eps: f64,
        silu: bool,
    ) -> Result<NodeId> {
        let shape = self.shape(x).to_vec();
        let (batch, c) = match shape[..] {
            [batch, c, ..] if groups > 0 && c % groups == 0 => (batch, c),
            _ => {
                return Err(invalid(format!(
                    "tape group_norm: input {shape:?} is not [B, C, *] with C a multiple of \
                     {groups} groups"
                )))
            }
        };
        self.check("group_norm weight", w, &[c])?;
        self.check("group_norm bias", b, &[c])?;
        let plane: usize = shape[2..].iter().product();
        let per_group = c / groups * plane;
        let xv = &self.values[x.0];
        let grains = (batch * groups)
            .div_ceil(rayon::current_num_threads().max(1))
            .max(1);
        let stats: Vec<[f32; 2]> = if per_group == 0 {
            vec![[0.0, 0.0]; batch * groups]
        } else {
            xv.par_chunks(per_group)
                .with_min_len(grains)
                .map(|g| {
                    let (mean, rstd) = moments(g, eps);
                    [mean, rstd]
                })
                .collect()
        };
        let needs = self.needs(&[x, w, b]);
        let state = GroupNormState {
            x,
            w,
            b,
            groups,
            silu,
            dims: [batch, c, plane],
            stats,
        };
        let (id, _) = self.push(&shape, Op::GroupNorm(Box::new(state)), needs);
        let (before, last) = self.values.split_at_mut(id.0);
        let Op::GroupNorm(state) = &self.nodes[id.0].op else {
            unreachable!("pushed above")
        };
        let (xv, wv, bv) = (&before[x.0], &before[w.0], &before[b.0]);
        let cg = c / groups;
        for_groups(&mut last[0], per_group, |k, y| {
            let [mean, rstd] = state.stats[k];
            let c0 = (k % groups) * cg;
            let xg = &xv[k * per_group..][..per_group];
            for ((yc, xc), ci) in y.chunks_mut(plane).zip(xg.chunks(plane)).zip(c0..) {
                normalise_plane(yc, xc, [mean, rstd * wv[ci], bv[ci]], silu);
            }
        });
        Ok(id)
    }

    /// Nearest-neighbour 2× upsampling: `[B, C, H, W]` → `[B, C, 2H, 2W]` (each value
    /// repeated over a 2×2 block, torch's `interpolate(scale_factor=2, mode="nearest")`).
    /// Errors when `x` is not four-dimensional.
    pub fn upsample_nearest2x(&mut self, x: NodeId) -> Result<NodeId> {
        let shape = self.shape(x).to_vec();
        let [b, c, h, w] = shape[..] else {
            return Err(invalid(format!(
                "tape upsample_nearest2x: input must be [B, C, H, W], found {shape:?}"
            )));
        };
        let needs = self.needs(&[x]);
        let dims = [b * c, h, w];
        let (id, _) = self.push(&[b, c, 2 * h, 2 * w], Op::Upsample2x { x, dims }, needs);
        let (values, y) = self.split_last();
        let xv = &values[x.0];
        for_groups(y, 4 * h * w, |p, out| {
            for (yi, row) in out.chunks_exact_mut(2 * w).enumerate() {
                let src = &xv[(p * h + yi / 2) * w..][..w];
                for (pair, &v) in row.chunks_exact_mut(2).zip(src) {
                    pair[0] = v;
                    pair[1] = v;
                }
            }
        });
        Ok(id)
    }

    /// `x` `[B, C, *]` plus `t` `[B, C]` broadcast over each channel's plane (a resnet
    /// block's time embedding). Errors when the shapes do not fit.
    pub fn add_per_channel(&mut self, x: NodeId, t: NodeId) -> Result<NodeId> {
        let shape = self.shape(x).to_vec();
        if shape.len() < 2 || self.shape(t) != &shape[..2] {
            return Err(invalid(format!(
                "tape add_per_channel: {:?} is not [B, C] of the input {shape:?}",
                self.shape(t)
            )));
        }
        let plane: usize = shape[2..].iter().product();
        let needs = self.needs(&[x, t]);
        let (id, _) = self.push(&shape, Op::AddPerChannel { x, t, plane }, needs);
        let (values, y) = self.split_last();
        let (xv, tv) = (&values[x.0], &values[t.0]);
        for_groups(y, plane, |k, yc| {
            let (xc, tk) = (&xv[k * plane..][..plane], tv[k]);
            yc.iter_mut().zip(xc).for_each(|(y, x)| *y = x + tk);
        });
        Ok(id)
    }

    /// Concatenation along channels: `parts` `[B, C_i, *]` (the same B and trailing sizes) →
    /// `[B, Σ C_i, *]`. Errors when `parts` is empty or the shapes differ but for C.
    pub fn concat_channels(&mut self, parts: &[NodeId]) -> Result<NodeId> {
        let Some(&first) = parts.first() else {
            return Err(invalid("tape concat_channels: no inputs".into()));
        };
        let shape = self.shape(first).to_vec();
        if shape.len() < 2 {
            return Err(invalid(format!(
                "tape concat_channels: inputs must be [B, C, *], found {shape:?}"
            )));
        }
        let mut channels = Vec::with_capacity(parts.len());
        for &p in parts {
            let s = self.shape(p);
            if s.len() != shape.len() || s[0] != shape[0] || s[2..] != shape[2..] {
                return Err(invalid(format!(
                    "tape concat_channels: {s:?} does not stack with {shape:?} along channels"
                )));
            }
            channels.push(s[1]);
        }
        let (batch, plane) = (shape[0], shape[2..].iter().product::<usize>());
        let mut out_shape = shape.clone();
        out_shape[1] = channels.iter().sum();
        let needs = self.needs(parts);
        let op = Op::Concat {
            parts: parts.iter().copied().zip(channels).collect(),
            plane,
        };
        let (id, _) = self.push(&out_shape, op, needs);
        let (before, last) = self.values.split_at_mut(id.0);
        let Op::Concat { parts, .. } = &self.nodes[id.0].op else {
            unreachable!("pushed above")
        };
        let row = out_shape[1] * plane;
        for (bi, y) in last[0].chunks_exact_mut(row.max(1)).take(batch).enumerate() {
            let mut at = 0;
            for &(p, ch) in parts {
                let n = ch * plane;
                y[at..at + n].copy_from_slice(&before[p.0][bi * n..][..n]);
                at += n;
            }
        }
        Ok(id)
    }
}

/// Runs `f(group index, group's values)` over `dst` cut into groups (or planes) of
/// `per_group`, the groups split over the pool in one grain per thread (or on this thread
/// when `dst` is small).
fn for_groups(dst: &mut [f32], per_group: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if per_group == 0 {
        return;
    }
    let groups = dst.len() / per_group;
    let threads = rayon::current_num_threads().max(1);
    if threads == 1 || dst.len() < SERIAL_BELOW || groups < 2 {
        dst.chunks_exact_mut(per_group)
            .enumerate()
            .for_each(|(k, d)| f(k, d));
        return;
    }
    let per = groups.div_ceil(threads);
    dst.par_chunks_mut(per * per_group)
        .enumerate()
        .for_each(|(c, d)| {
            for (k, g) in d.chunks_exact_mut(per_group).enumerate() {
                f(c * per + k, g)
            }
        });
}

/// The forward product of a convolution, image by image: `y_b = w · cols(x_b) (+ b)`.
fn conv_forward(state: &mut ConvState, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    let g = state.geometry;
    let (ho, wo) = g.out_hw();
    let (hw, ckk, o) = (ho * wo, g.ckk(), g.out_channels);
    let chw = g.channels * g.height * g.width;
    let direct = state.direct;
    let image = |b: usize, cols: &mut [f32], yb: &mut [f32], par: Par| {
        let xb = &x[b * chw..][..chw];
        if let Some(bias) = bias {
            for (row, &v) in yb.chunks_exact_mut(hw).zip(bias) {
                row.fill(v);
            }
        }
        let rhs: &[f32] = if direct {
            xb
        } else {
            g.im2col(xb, 0..ho, cols);
            cols
        };
        matmul(
            MatMut::from_row_major_slice_mut(yb, o, hw),
            accum(bias.is_some()),
            MatRef::from_row_major_slice(w, o, ckk),
            MatRef::from_row_major_slice(rhs, ckk, hw),
            1.0f32,
            par,
        );
    };
    let cols_per_image = if direct { 0 } else { ckk * hw };
    let per = images_per_grain(g.batch);
    let grains = per.map_or(1, |p| g.batch.div_ceil(p));
    state.work.resize(grains * cols_per_image, 0.0);
    match per {
        Some(per) => {
            let col_chunks = chunks_or_empty(&mut state.work, cols_per_image, grains);
            y.par_chunks_mut(per * o * hw)
                .zip(col_chunks.into_par_iter())
                .enumerate()
                .for_each(|(c, (yg, cols))| {
                    for (k, yb) in yg.chunks_exact_mut(o * hw).enumerate() {
                        image(c * per + k, cols, yb, Par::Seq);
                    }
                });
        }
        None => {
            for (b, yb) in y.chunks_exact_mut(o * hw).enumerate() {
                image(b, &mut state.work, yb, par());
            }
        }
    }
}

/// `n` chunks of `len` values of `buf` in order (`n` empty slices when `len` is 0).
fn chunks_or_empty(buf: &mut [f32], len: usize, n: usize) -> Vec<&mut [f32]> {
    if len == 0 {
        (0..n).map(|_| <&mut [f32]>::default()).collect()
    } else {
        buf.chunks_mut(len).collect()
    }
}

/// The backward pass of [`Tape::conv2d`]: `dw (=|+=) Σ_b g_b · cols_bᵀ`, `db (=|+=) Σ g`,
/// `dx_b (=|+=) col2im(wᵀ · g_b)`.
pub(super) fn conv_backward(
    state: &mut ConvState,
    values: &[Vec<f32>],
    g: &[f32],
    sink: &mut Sink,
) {
    let geo = state.geometry;
    let (ho, wo) = geo.out_hw();
    let (hw, ckk, o, batch) = (ho * wo, geo.ckk(), geo.out_channels, geo.batch);
    let chw = geo.channels * geo.height * geo.width;
    let (xv, wv) = (&values[state.x.0], &values[state.w.0]);
    let direct = state.direct;
    let cols_per_image = if direct { 0 } else { ckk * hw };
    let per = images_per_grain(batch);
    let grains = per.map_or(1, |p| batch.div_ceil(p));
    state.work.resize(grains * cols_per_image, 0.0);
    let scratch = &mut state.work[..];
    let g_of = |b: usize| MatRef::from_row_major_slice(&g[b * o * hw..][..o * hw], o, hw);
    if let Some(bias) = state.b {
        if let Some((db, add)) = sink.slot(bias) {
            for (oi, d) in db.iter_mut().enumerate() {
                let mut sum = 0f32;
                for b in 0..batch {
                    sum += g[(b * o + oi) * hw..][..hw].iter().sum::<f32>();
                }
                *d = if add { *d + sum } else { sum };
            }
        }
    }
    if let Some((dw, add)) = sink.slot(state.w) {
        // `dst (=|+=) g_b · cols_bᵀ`, image b unfolded again into `cols`.
        let wmat = |dst: &mut [f32], b: usize, cols: &mut [f32], acc: bool, par: Par| {
            let xb = &xv[b * chw..][..chw];
            let rhs: &[f32] = if direct {
                xb
            } else {
                geo.im2col(xb, 0..ho, cols);
                cols
            };
            matmul(
                MatMut::from_row_major_slice_mut(dst, o, ckk),
                accum(acc),
                g_of(b),
                MatRef::from_row_major_slice(rhs, ckk, hw).transpose(),
                1.0f32,
                par,
            );
        };
        match per {
            Some(per) => {
                // One partial sum per grain, added in grain order.
                let partials: Vec<Vec<f32>> = chunks_or_empty(scratch, cols_per_image, grains)
                    .into_par_iter()
                    .enumerate()
                    .map(|(c, cols)| {
                        let mut part = vec![0f32; o * ckk];
                        for (k, b) in (c * per..((c + 1) * per).min(batch)).enumerate() {
                            wmat(&mut part, b, cols, k > 0, Par::Seq);
                        }
                        part
                    })
                    .collect();
                for (k, part) in partials.iter().enumerate() {
                    emit(dw, add || k > 0, |i| part[i]);
                }
            }
            None => {
                for b in 0..batch {
                    wmat(dw, b, scratch, add || b > 0, par());
                }
            }
        }
    }
    if let Some((dx, add)) = sink.slot(state.x) {
        let wt = MatRef::from_row_major_slice(wv, o, ckk).transpose();
        let image = |b: usize, dxb: &mut [f32], dcols: &mut [f32], par: Par| {
            if direct {
                let dst = MatMut::from_row_major_slice_mut(dxb, ckk, hw);
                matmul(dst, accum(add), wt, g_of(b), 1.0f32, par);
            } else {
                let dst = MatMut::from_row_major_slice_mut(dcols, ckk, hw);
                matmul(dst, faer::Accum::Replace, wt, g_of(b), 1.0f32, par);
                if !add {
                    dxb.fill(0.0);
                }
                geo.col2im(dcols, 0..ho, dxb);
            }
        };
        match per {
            Some(per) => {
                let chunks = chunks_or_empty(scratch, cols_per_image, grains);
                dx.par_chunks_mut(per * chw)
                    .zip(chunks.into_par_iter())
                    .enumerate()
                    .for_each(|(c, (dg, dcols))| {
                        for (k, dxb) in dg.chunks_exact_mut(chw).enumerate() {
                            image(c * per + k, dxb, dcols, Par::Seq);
                        }
                    });
            }
            None => {
                for (b, dxb) in dx.chunks_exact_mut(chw).enumerate() {
                    image(b, dxb, scratch, par());
                }
            }
        }
    }
}

/// The backward pass of [`Tape::group_norm`] (with SiLU when the op has it): per (sample,
/// group) the two sums over its channels' planes, then `dx`; `dw`, `db` summed over the
/// samples in order.
pub(super) fn group_norm_backward(
    state: &GroupNormState,
    values: &[Vec<f32>],
    g: &[f32],
    sink: &mut Sink,
) {
    let [batch, c, plane] = state.dims;
    let groups = state.groups;
    let cg = c / groups;
    let per_group = cg * plane;
    let (xv, wv, bv) = (&values[state.x.0], &values[state.w.0], &values[state.b.0]);
    let silu = state.silu;
    // Per (sample, group): dp = dL/d(affine output) into `dp`; its channels' (Σ dp, Σ dp·x̂).
    let sums_into = |k: usize, dp: &mut [f32]| -> Vec<(f32, f32)> {
        let [mean, rstd] = state.stats[k];
        let c0 = (k % groups) * cg;
        let (xg, gg) = (
            &xv[k * per_group..][..per_group],
            &g[k * per_group..][..per_group],
        );
        dp.chunks_mut(plane)
            .zip(xg.chunks(plane).zip(gg.chunks(plane)))
            .zip(c0..)
            .map(|((dp, (x, g)), ci)| {
                group_plane_sums(dp, x, g, [mean, rstd, wv[ci], bv[ci]], silu)
            })
            .collect()
    };
    let dx_from = |k: usize, dp: &mut [f32], sums: &[(f32, f32)]| {
        let [mean, rstd] = state.stats[k];
        let c0 = (k % groups) * cg;
        let (mut m1, mut m2) = (0f32, 0f32);
        for (&(s1, s2), ci) in sums.iter().zip(c0..) {
            m1 += wv[ci] * s1;
            m2 += wv[ci] * s2;
        }
        let inv_n = 1.0 / per_group as f32;
        let (m1, m2) = (m1 * inv_n, m2 * inv_n);
        let xg = &xv[k * per_group..][..per_group];
        for ((dx, x), ci) in dp.chunks_mut(plane).zip(xg.chunks(plane)).zip(c0..) {
            group_plane_dx(dx, x, [mean, rstd, wv[ci], m1, m2]);
        }
    };
    let count = batch * groups;
    let mut sums: Vec<Vec<(f32, f32)>> = vec![Vec::new(); count];
    if per_group > 0 {
        match sink.slot(state.x) {
            Some((dx, false)) => {
                let pairs = grouped(dx, per_group, |k, d| {
                    let s = sums_into(k, d);
                    dx_from(k, d, &s);
                    s
                });
                for (k, s) in pairs {
                    sums[k] = s;
                }
            }
            Some((dx, true)) => {
                let pairs = grouped(dx, per_group, |k, d| {
                    let mut dp = vec![0f32; per_group];
                    let s = sums_into(k, &mut dp);
                    dx_from(k, &mut dp, &s);
                    d.iter_mut().zip(&dp).for_each(|(d, v)| *d += v);
                    s
                });
                for (k, s) in pairs {
                    sums[k] = s;
                }
            }
            None => {
                let per = count.div_ceil(rayon::current_num_threads().max(1)).max(1);
                sums = (0..count)
                    .into_par_iter()
                    .with_min_len(per)
                    .map_init(|| vec![0f32; per_group], |dp, k| sums_into(k, dp))
                    .collect();
            }
        }
    }
    for (id, pick) in [(state.w, 1), (state.b, 0)] {
        if let Some((d, add)) = sink.slot(id) {
            if !add {
                d.fill(0.0);
            }
            for (k, s) in sums.iter().enumerate() {
                let c0 = (k % groups) * cg;
                for (&(s1, s2), ci) in s.iter().zip(c0..) {
                    d[ci] += if pick == 1 { s2 } else { s1 };
                }
            }
        }
    }
}

/// `f(group index, its slice of dst)` over groups of `per_group` split over the pool in one
/// grain per thread; the results tagged with their group indices.
fn grouped<T: Send>(
    dst: &mut [f32],
    per_group: usize,
    f: impl Fn(usize, &mut [f32]) -> T + Sync,
) -> Vec<(usize, T)> {
    let groups = dst.len() / per_group;
    let threads = rayon::current_num_threads().max(1);
    if threads == 1 || dst.len() < SERIAL_BELOW || groups < 2 {
        return dst
            .chunks_exact_mut(per_group)
            .enumerate()
            .map(|(k, d)| (k, f(k, d)))
            .collect();
    }
    let per = groups.div_ceil(threads);
    dst.par_chunks_mut(per * per_group)
        .enumerate()
        .flat_map_iter(|(c, d)| {
            d.chunks_exact_mut(per_group)
                .enumerate()
                .map(|(k, g)| (c * per + k, f(c * per + k, g)))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The backward pass of [`Tape::upsample_nearest2x`]: each input value's gradient is the sum
/// of its 2×2 block's.
pub(super) fn upsample_backward(x: NodeId, [planes, h, w]: [usize; 3], g: &[f32], sink: &mut Sink) {
    let Some((dx, add)) = sink.slot(x) else {
        return;
    };
    debug_assert_eq!(dx.len(), planes * h * w);
    for_groups(dx, h * w, |p, d| {
        let gp = &g[p * 4 * h * w..][..4 * h * w];
        for (yi, row) in d.chunks_exact_mut(w).enumerate() {
            let (r0, r1) = (
                &gp[2 * yi * 2 * w..][..2 * w],
                &gp[(2 * yi + 1) * 2 * w..][..2 * w],
            );
            emit(row, add, |i| {
                r0[2 * i] + r0[2 * i + 1] + r1[2 * i] + r1[2 * i + 1]
            });
        }
    });
}

/// The backward pass of [`Tape::add_per_channel`]: `dx = g`, `dt[b, c] = Σ g[b, c, :]`.
pub(super) fn add_per_channel_backward(
    [x, t]: [NodeId; 2],
    plane: usize,
    g: &[f32],
    sink: &mut Sink,
) {
    if let Some((dx, add)) = sink.slot(x) {
        for_groups(dx, plane, |k, d| {
            let gk = &g[k * plane..][..plane];
            emit(d, add, |i| gk[i]);
        });
    }
    if let Some((dt, add)) = sink.slot(t) {
        for (k, d) in dt.iter_mut().enumerate() {
            let sum: f32 = g[k * plane..][..plane].iter().sum();
            *d = if add { *d + sum } else { sum };
        }
    }
}

/// The backward pass of [`Tape::concat_channels`]: each part's slice of the gradient.
pub(super) fn concat_backward(parts: &[(NodeId, usize)], plane: usize, g: &[f32], sink: &mut Sink) {
    let total: usize = parts.iter().map(|p| p.1).sum::<usize>() * plane;
    let mut at = 0;
    for &(p, ch) in parts {
        let n = ch * plane;
        if let Some((d, add)) = sink.slot(p) {
            for (bi, db) in d.chunks_exact_mut(n.max(1)).enumerate() {
                let src = &g[bi * total + at..][..n];
                emit(db, add, |i| src[i]);
            }
        }
        at += n;
    }
}
