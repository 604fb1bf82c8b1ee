//! One-pass backward passes of the fused f32 CPU ops in [`super::norm`]: layer norm, group norm
//! (with or without SiLU) and the GEGLU gate.
//!
//! Built from candle's elementary ops, each of these forward ops is six to ten graph nodes, and
//! each node's backward pass is a pass over memory into a fresh tensor, plus a zero-filled
//! buffer and an addition to accumulate it. Here one op computes the input's gradient and the
//! parameters' gradients together. The statistics are recomputed from the input (a pass over a
//! row or group is cheaper than storing them). Parameter gradients are summed per fixed block
//! of rows (or per sample), then the blocks in order, so results do not depend on the pool size.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::contiguous_f32;
use super::math::{normal_cdf_pdf_f32, silu_grad_f32};
// The forward pass's statistics, recomputed with the same operations.
use super::norm::moments;
use super::simd::widest_fn;

/// Splits the packed output of a backward op, `[input gradient (numel of `input`), then
/// `parameters` blocks of `width`]`, into tensors: the input's gradient in its shape, each
/// parameter's `[width]`.
pub(super) fn unpack(
    packed: &Tensor,
    input: &Tensor,
    width: usize,
) -> candle_core::Result<[Tensor; 3]> {
    let n = input.elem_count();
    Ok([
        packed.narrow(0, 0, n)?.reshape(input.shape())?,
        packed.narrow(0, n, width)?,
        packed.narrow(0, n + width, width)?,
    ])
}

/// The gradient of a parameter, or none when it does not track gradients.
pub(super) fn if_tracked(parameter: &Tensor, grad: Tensor) -> Option<Tensor> {
    parameter.track_op().then_some(grad)
}

// ---------------------------------------------------------------------------------------------
// Layer norm

/// The backward pass of [`super::norm::LayerNormF32`]: `(x, weight, upstream gradient)` →
/// `[dx, dweight, dbias]`.
pub(crate) fn layer_norm_backward(
    eps: f64,
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    grad: &Tensor,
) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
    let d = weight.elem_count();
    let (xc, gc) = (x.contiguous()?, grad.contiguous()?);
    let packed = xc.apply_op3_no_bwd(&weight.contiguous()?, &gc, &LayerNormBackwardF32 { eps })?;
    let [dx, dw, db] = unpack(&packed, x, d)?;
    Ok((Some(dx), if_tracked(weight, dw), if_tracked(bias, db)))
}

/// `(x [..., D], weight [D], g [..., D])` → `[dx (x's length), dweight [D], dbias [D]]` flat.
struct LayerNormBackwardF32 {
    eps: f64,
}

/// One row: writes dx, adds this row's terms to the block's `dw` and `db`.
#[inline(always)]
fn layer_norm_grad_row_inline(
    dx: &mut [f32],
    x: &[f32],
    g: &[f32],
    w: &[f32],
    [mean, rstd]: [f32; 2],
    dw: &mut [f32],
    db: &mut [f32],
) {
    // Σ dy and Σ dy·x̂ with dy = g·w, eight lanes so the sums vectorise.
    let (mut s1, mut s2) = ([0f32; 8], [0f32; 8]);
    let (mut xs, mut gs, mut ws) = (x.chunks_exact(8), g.chunks_exact(8), w.chunks_exact(8));
    for ((x, g), w) in (&mut xs).zip(&mut gs).zip(&mut ws) {
        for l in 0..8 {
            let dy = g[l] * w[l];
            s1[l] += dy;
            s2[l] += dy * ((x[l] - mean) * rstd);
        }
    }
    let (mut t1, mut t2) = (0f32, 0f32);
    for ((&x, &g), &w) in xs
        .remainder()
        .iter()
        .zip(gs.remainder())
        .zip(ws.remainder())
    {
        let dy = g * w;
        t1 += dy;
        t2 += dy * ((x - mean) * rstd);
    }
    let inv_n = 1.0 / x.len().max(1) as f32;
    let mean_dy = (t1 + s1.iter().sum::<f32>()) * inv_n;
    let mean_dy_xh = (t2 + s2.iter().sum::<f32>()) * inv_n;
    for (((dx, &x), (&g, &w)), (dw, db)) in dx
        .iter_mut()
        .zip(x)
        .zip(g.iter().zip(w))
        .zip(dw.iter_mut().zip(db.iter_mut()))
    {
        let xh = (x - mean) * rstd;
        *dx = rstd * (g * w - mean_dy - xh * mean_dy_xh);
        *dw += g * xh;
        *db += g;
    }
}

widest_fn!(pub(crate) fn layer_norm_grad_row(dx: &mut [f32], x: &[f32], g: &[f32], w: &[f32], stats: [f32; 2], dw: &mut [f32], db: &mut [f32]) = layer_norm_grad_row_inline);

impl CustomOp3 for LayerNormBackwardF32 {
    fn name(&self) -> &'static str {
        "brainrecon-layer-norm-f32-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let name = self.name();
        let x = contiguous_f32(s1, l1, name, "input")?;
        let w = contiguous_f32(s2, l2, name, "weight")?;
        let g = contiguous_f32(s3, l3, name, "output gradient")?;
        let d = w.len();
        if l1.dims().last().copied().unwrap_or(0) != d || g.len() != x.len() {
            candle_core::bail!(
                "{name}: input {:?}, gradient {:?}, weight [{d}]",
                l1.dims(),
                l3.dims()
            );
        }
        let mut out = vec![0f32; x.len() + 2 * d];
        if d == 0 {
            let len = out.len();
            return Ok((CpuStorage::F32(out), Shape::from(len)));
        }
        // Fixed blocks of rows (~16Ki values), each with its own parameter-gradient partials.
        let rows = (16384 / d).max(1);
        let (dx, params) = out.split_at_mut(x.len());
        let partials: Vec<Vec<f32>> = dx
            .par_chunks_mut(rows * d)
            .zip(x.par_chunks(rows * d).zip(g.par_chunks(rows * d)))
            .map(|(dx, (x, g))| {
                let mut part = vec![0f32; 2 * d];
                let (dw, db) = part.split_at_mut(d);
                for ((dx, x), g) in dx.chunks_mut(d).zip(x.chunks(d)).zip(g.chunks(d)) {
                    let (mean, rstd) = moments(x, self.eps);
                    layer_norm_grad_row(dx, x, g, w, [mean, rstd], dw, db);
                }
                part
            })
            .collect();
        for part in &partials {
            for (p, v) in params.iter_mut().zip(part) {
                *p += v;
            }
        }
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}

// ---------------------------------------------------------------------------------------------
// Group norm (+ SiLU)

/// The backward pass of [`super::norm::GroupNormF32`]: `(x [B, C, *], weight, bias, upstream
/// gradient)` → `[dx, dweight, dbias]`. With SiLU, the pre-activation is recomputed.
pub(crate) fn group_norm_backward(
    groups: usize,
    eps: f64,
    silu: bool,
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    grad: &Tensor,
) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
    let c = weight.elem_count();
    let wb = Tensor::cat(&[weight.contiguous()?, bias.contiguous()?], 0)?;
    let packed = x.contiguous()?.apply_op3_no_bwd(
        &wb,
        &grad.contiguous()?,
        &GroupNormBackwardF32 { groups, eps, silu },
    )?;
    let [dx, dw, db] = unpack(&packed, x, c)?;
    Ok((Some(dx), if_tracked(weight, dw), if_tracked(bias, db)))
}

/// `(x [B, C, *], weight‖bias [2C], g [B, C, *])` → `[dx, dweight [C], dbias [C]]` flat.
struct GroupNormBackwardF32 {
    groups: usize,
    eps: f64,
    silu: bool,
}

/// One channel's plane, first pass: the gradient at the affine output `dp` (through SiLU
/// when `with_silu`), written into `dp`; returns `(Σ dp, Σ dp·x̂)`.
#[inline(always)]
fn group_plane_sums_inline(
    dp: &mut [f32],
    x: &[f32],
    g: &[f32],
    [mean, rstd, w, b]: [f32; 4],
    with_silu: bool,
) -> (f32, f32) {
    #[inline(always)]
    fn lane(x: f32, g: f32, [mean, rstd, w, b]: [f32; 4], with_silu: bool) -> (f32, f32) {
        let xh = (x - mean) * rstd;
        let d = if with_silu {
            g * silu_grad_f32(xh * w + b)
        } else {
            g
        };
        (d, xh)
    }
    let terms = [mean, rstd, w, b];
    let (mut s1, mut s2) = ([0f32; 8], [0f32; 8]);
    let mut dps = dp.chunks_exact_mut(8);
    let (mut xs, mut gs) = (x.chunks_exact(8), g.chunks_exact(8));
    for ((dp, x), g) in (&mut dps).zip(&mut xs).zip(&mut gs) {
        for l in 0..8 {
            let (d, xh) = lane(x[l], g[l], terms, with_silu);
            dp[l] = d;
            s1[l] += d;
            s2[l] += d * xh;
        }
    }
    let (mut t1, mut t2) = (0f32, 0f32);
    for ((dp, &x), &g) in dps
        .into_remainder()
        .iter_mut()
        .zip(xs.remainder())
        .zip(gs.remainder())
    {
        let (d, xh) = lane(x, g, terms, with_silu);
        *dp = d;
        t1 += d;
        t2 += d * xh;
    }
    (t1 + s1.iter().sum::<f32>(), t2 + s2.iter().sum::<f32>())
}

widest_fn!(pub(crate) fn group_plane_sums(dp: &mut [f32], x: &[f32], g: &[f32], stats: [f32; 4], with_silu: bool) -> (f32, f32) = group_plane_sums_inline);

/// One channel's plane, second pass: `dx = rstd·(w·dp − m1 − x̂·m2)`, in place over `dp`.
#[inline(always)]
fn group_plane_dx_inline(dx: &mut [f32], x: &[f32], [mean, rstd, w, m1, m2]: [f32; 5]) {
    for (d, &x) in dx.iter_mut().zip(x) {
        let xh = (x - mean) * rstd;
        *d = rstd * (w * *d - m1 - xh * m2);
    }
}

widest_fn!(pub(crate) fn group_plane_dx(dx: &mut [f32], x: &[f32], terms: [f32; 5]) = group_plane_dx_inline);

impl CustomOp3 for GroupNormBackwardF32 {
    fn name(&self) -> &'static str {
        "brainrecon-group-norm-f32-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let name = self.name();
        let x = contiguous_f32(s1, l1, name, "input")?;
        let wb = contiguous_f32(s2, l2, name, "weight and bias")?;
        let g = contiguous_f32(s3, l3, name, "output gradient")?;
        let dims = l1.dims();
        let c = wb.len() / 2;
        let groups = self.groups;
        if dims.len() < 2 || dims[1] != c || groups == 0 || c % groups != 0 || g.len() != x.len() {
            candle_core::bail!(
                "{name}: input {dims:?} does not fit {groups} groups of {c} channels"
            );
        }
        let (w, b) = wb.split_at(c);
        let plane: usize = dims[2..].iter().product();
        let per_channel_group = c / groups;
        let per_group = per_channel_group * plane;
        let mut out = vec![0f32; x.len() + 2 * c];
        let (dx, params) = out.split_at_mut(x.len());
        if per_group > 0 {
            // Per group: its channels' (Σ dp, Σ dp·x̂), in channel order.
            let sums: Vec<Vec<(f32, f32)>> = dx
                .par_chunks_mut(per_group)
                .zip(x.par_chunks(per_group).zip(g.par_chunks(per_group)))
                .enumerate()
                .map(|(k, (dx, (x, g)))| {
                    let (mean, rstd) = moments(x, self.eps);
                    let c0 = (k % groups) * per_channel_group;
                    let sums: Vec<(f32, f32)> = dx
                        .chunks_mut(plane)
                        .zip(x.chunks(plane).zip(g.chunks(plane)))
                        .zip(c0..)
                        .map(|((dp, (x, g)), ci)| {
                            group_plane_sums(dp, x, g, [mean, rstd, w[ci], b[ci]], self.silu)
                        })
                        .collect();
                    let inv_n = 1.0 / per_group as f32;
                    let (mut m1, mut m2) = (0f32, 0f32);
                    for (&(s1, s2), ci) in sums.iter().zip(c0..) {
                        m1 += w[ci] * s1;
                        m2 += w[ci] * s2;
                    }
                    let (m1, m2) = (m1 * inv_n, m2 * inv_n);
                    for ((dx, x), ci) in dx.chunks_mut(plane).zip(x.chunks(plane)).zip(c0..) {
                        group_plane_dx(dx, x, [mean, rstd, w[ci], m1, m2]);
                    }
                    sums
                })
                .collect();
            let (dw, db) = params.split_at_mut(c);
            for (k, group) in sums.iter().enumerate() {
                let c0 = (k % groups) * per_channel_group;
                for (&(s1, s2), ci) in group.iter().zip(c0..) {
                    dw[ci] += s2;
                    db[ci] += s1;
                }
            }
        }
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}

// ---------------------------------------------------------------------------------------------
// GEGLU

/// The backward pass of [`super::norm::GegluF32`]: `(h [..., 2n], upstream gradient [..., n])`
/// → dh `[..., 2n]`.
pub(crate) fn geglu_backward(h: &Tensor, grad: &Tensor) -> candle_core::Result<Tensor> {
    h.contiguous()?
        .apply_op2_no_bwd(&grad.contiguous()?, &GegluBackwardF32)
}

struct GegluBackwardF32;

/// One row: `d hidden = g·gelu(gate)`, `d gate = g·hidden·gelu'(gate)` with
/// `gelu'(u) = Φ(u) + u·φ(u)`.
#[inline(always)]
fn geglu_grad_row_inline(dh: &mut [f32], h: &[f32], g: &[f32]) {
    let n = g.len();
    let (hidden, gate) = h.split_at(n);
    let (d_hidden, d_gate) = dh.split_at_mut(n);
    for (((dh, dg), (&a, &u)), &g) in d_hidden
        .iter_mut()
        .zip(d_gate.iter_mut())
        .zip(hidden.iter().zip(gate))
        .zip(g)
    {
        let (cdf, pdf) = normal_cdf_pdf_f32(u);
        *dh = g * (u * cdf);
        *dg = g * a * (cdf + u * pdf);
    }
}

widest_fn!(pub(crate) fn geglu_grad_row(dh: &mut [f32], h: &[f32], g: &[f32]) = geglu_grad_row_inline);

impl CustomOp2 for GegluBackwardF32 {
    fn name(&self) -> &'static str {
        "brainrecon-geglu-f32-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let name = self.name();
        let h = contiguous_f32(s1, l1, name, "input")?;
        let g = contiguous_f32(s2, l2, name, "output gradient")?;
        let two_n = l1.dims().last().copied().unwrap_or(0);
        let n = two_n / 2;
        if two_n % 2 != 0 || g.len() * 2 != h.len() || l2.dims().last() != Some(&n) {
            candle_core::bail!("{name}: input {:?}, gradient {:?}", l1.dims(), l2.dims());
        }
        let mut dh = vec![0f32; h.len()];
        if let Some(per_task) = 16384usize.checked_div(n) {
            let rows = per_task.max(1);
            dh.par_chunks_mut(rows * two_n)
                .zip(h.par_chunks(rows * two_n).zip(g.par_chunks(rows * n)))
                .for_each(|(dh, (h, g))| {
                    for ((dh, h), g) in dh.chunks_mut(two_n).zip(h.chunks(two_n)).zip(g.chunks(n)) {
                        geglu_grad_row(dh, h, g);
                    }
                });
        }
        Ok((CpuStorage::F32(dh), l1.shape().clone()))
    }
}
