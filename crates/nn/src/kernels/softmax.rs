//! Softmax over the last dimension of f32 CPU tensors, one pass forward and one backward.

use candle_core::{DType, Shape, Tensor};

use super::contiguous_f32;
use super::math::exp_shifted_in_place;
use super::simd::widest_fn;

/// Softmax over the last dimension of a contiguous f32 CPU tensor, rows in parallel, with its
/// backward pass for training: one pass forward and one backward (`dx = y ⊙ (g − Σ g ⊙ y)`
/// per row) instead of candle's five elementary ops and their gradients, each a pass over
/// memory.
pub(crate) struct SoftmaxF32;

impl candle_core::CustomOp1 for SoftmaxF32 {
    fn name(&self) -> &'static str {
        "brainrecon-softmax-f32"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        use rayon::prelude::*;
        let src = contiguous_f32(storage, layout, self.name(), "input")?;
        let dims = layout.shape().dims();
        let n = *dims.last().unwrap_or(&1);
        let mut dst = vec![0f32; src.len()];
        if n > 0 {
            dst.par_chunks_mut(n)
                .zip(src.par_chunks(n))
                .for_each(|(d, s)| {
                    d.copy_from_slice(s);
                    softmax_row_in_place(d);
                });
        }
        Ok((candle_core::CpuStorage::F32(dst), Shape::from_dims(dims)))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let grad = grad_res.to_dtype(DType::F32)?.contiguous()?;
        Ok(Some(
            res.contiguous()?
                .apply_op2_no_bwd(&grad, &SoftmaxBackwardF32)?,
        ))
    }
}

/// (y, g) → y ⊙ (g − Σ g ⊙ y) over the last dimension: the gradient of a softmax whose output
/// is y, given the gradient g of its output. f32 CPU, rows in parallel.
struct SoftmaxBackwardF32;

impl candle_core::CustomOp2 for SoftmaxBackwardF32 {
    fn name(&self) -> &'static str {
        "brainrecon-softmax-f32-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        use rayon::prelude::*;
        let y = contiguous_f32(s1, l1, self.name(), "softmax output")?;
        let g = contiguous_f32(s2, l2, self.name(), "output gradient")?;
        let dims = l1.shape().dims();
        if l2.shape().dims() != dims {
            candle_core::bail!("{}: output {dims:?}, gradient {:?}", self.name(), l2.dims());
        }
        let n = *dims.last().unwrap_or(&1);
        let mut dx = vec![0f32; y.len()];
        if n > 0 {
            dx.par_chunks_mut(n)
                .zip(y.par_chunks(n).zip(g.par_chunks(n)))
                .for_each(|(d, (y, g))| softmax_grad_row(y, g, d));
        }
        Ok((candle_core::CpuStorage::F32(dx), Shape::from_dims(dims)))
    }
}

/// `Σ y·g` with eight independent lanes, which let the compiler vectorise the sum.
#[inline(always)]
pub(crate) fn dot8(y: &[f32], g: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (mut ys, mut gs) = (y.chunks_exact(8), g.chunks_exact(8));
    for (yc, gc) in (&mut ys).zip(&mut gs) {
        for ((a, &y), &g) in acc.iter_mut().zip(yc).zip(gc) {
            *a += y * g;
        }
    }
    let tail: f32 = ys
        .remainder()
        .iter()
        .zip(gs.remainder())
        .map(|(y, g)| y * g)
        .sum();
    tail + acc.iter().sum::<f32>()
}

/// One row of [`SoftmaxBackwardF32`].
#[inline(always)]
fn softmax_grad_row_inline(y: &[f32], g: &[f32], dx: &mut [f32]) {
    let dot = dot8(y, g);
    for ((d, &y), &g) in dx.iter_mut().zip(y).zip(g) {
        *d = y * (g - dot);
    }
}

widest_fn!(fn softmax_grad_row(y: &[f32], g: &[f32], dx: &mut [f32]) = softmax_grad_row_inline);

widest_fn!(fn softmax_row_in_place(d: &mut [f32]) = softmax_row_inline);

/// Softmax of one row of f32 values, in place.
#[inline(always)]
fn softmax_row_inline(d: &mut [f32]) {
    let inv = 1.0 / exp_shifted_in_place(d);
    for o in d.iter_mut() {
        *o *= inv;
    }
}

/// `d ← y ⊙ (d − Σ d ⊙ y)` over one row: the softmax gradient in place over the output's
/// gradient `d`, given the softmax output `y` (the same operations as [`SoftmaxBackwardF32`]).
pub(crate) fn softmax_grad_in_place(y: &[f32], d: &mut [f32]) {
    let dot = dot8(y, d);
    for (d, &y) in d.iter_mut().zip(y) {
        *d = y * (*d - dot);
    }
}
