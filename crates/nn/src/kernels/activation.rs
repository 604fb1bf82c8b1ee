//! SiLU and exact GELU of f32 CPU tensors in vectorised loops, each with a one-pass backward.

use candle_core::{DType, Shape, Tensor};

use super::contiguous_f32;
use super::math::{erf_f32, exp_f32, normal_cdf_pdf_f32, silu_grad_f32};
use super::simd::widest_fn;

/// SiLU and exact GELU of a contiguous f32 CPU tensor with [`exp_f32`], a loop the compiler
/// vectorises (candle calls libm's `expf` and `erff` per element: a tenth of a small U-Net's
/// time). A tensor that tracks gradients gets one backward pass (`g·σ(x)·(1 + x·(1 − σ(x)))`,
/// `g·(Φ(x) + x·φ(x))`) instead of candle's six to eight element-wise ops. Tensors of 64Ki
/// elements or more are split over the caller's pool.
#[derive(Clone, Copy, Debug)]
pub(crate) enum FastActivationF32 {
    Silu,
    GeluErf,
}

impl FastActivationF32 {
    pub(crate) fn applies(x: &Tensor) -> bool {
        x.dtype() == DType::F32 && x.device().is_cpu()
    }

    fn apply(self, src: &[f32], dst: &mut [f32]) {
        match self {
            FastActivationF32::Silu => silu_slice(src, dst),
            FastActivationF32::GeluErf => gelu_erf_slice(src, dst),
        }
    }

    /// `dx = g · f'(x)` over a slice.
    fn apply_grad(self, x: &[f32], g: &[f32], dx: &mut [f32]) {
        match self {
            FastActivationF32::Silu => silu_grad_slice(x, g, dx),
            FastActivationF32::GeluErf => gelu_erf_grad_slice(x, g, dx),
        }
    }
}

/// `dst = f(src)` (or its gradient) over chunks of 16Ki values split over the pool when the
/// tensor has 64Ki values or more.
fn chunked(len: usize, f: impl Fn(std::ops::Range<usize>, &mut [f32]) + Sync) -> Vec<f32> {
    use rayon::prelude::*;
    let mut dst = vec![0f32; len];
    const CHUNK: usize = 16 * 1024;
    if len >= 4 * CHUNK {
        dst.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(k, d)| f(k * CHUNK..k * CHUNK + d.len(), d));
    } else {
        f(0..len, &mut dst);
    }
    dst
}

#[inline(always)]
fn silu_grad_slice_inline(x: &[f32], g: &[f32], dx: &mut [f32]) {
    for ((d, &v), &g) in dx.iter_mut().zip(x).zip(g) {
        *d = g * silu_grad_f32(v);
    }
}

#[inline(always)]
fn gelu_erf_grad_slice_inline(x: &[f32], g: &[f32], dx: &mut [f32]) {
    for ((d, &v), &g) in dx.iter_mut().zip(x).zip(g) {
        let (cdf, pdf) = normal_cdf_pdf_f32(v);
        *d = g * (cdf + v * pdf);
    }
}

widest_fn!(pub(crate) fn silu_grad_slice(x: &[f32], g: &[f32], dx: &mut [f32]) = silu_grad_slice_inline);
widest_fn!(pub(crate) fn gelu_erf_grad_slice(x: &[f32], g: &[f32], dx: &mut [f32]) = gelu_erf_grad_slice_inline);

/// The gradient of a [`FastActivationF32`]: `(x, g)` → `g · f'(x)`.
struct ActivationGradF32(FastActivationF32);

impl candle_core::CustomOp2 for ActivationGradF32 {
    fn name(&self) -> &'static str {
        "brainrecon-activation-f32-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, self.name(), "input")?;
        let g = contiguous_f32(s2, l2, self.name(), "output gradient")?;
        if x.len() != g.len() {
            candle_core::bail!(
                "{}: input {:?}, gradient {:?}",
                self.name(),
                l1.dims(),
                l2.dims()
            );
        }
        let dx = chunked(x.len(), |r, d| self.0.apply_grad(&x[r.clone()], &g[r], d));
        Ok((candle_core::CpuStorage::F32(dx), l1.shape().clone()))
    }
}

#[inline(always)]
fn silu_slice_inline(src: &[f32], dst: &mut [f32]) {
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = v / (1.0 + exp_f32(-v));
    }
}

#[inline(always)]
fn gelu_erf_slice_inline(src: &[f32], dst: &mut [f32]) {
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = 0.5 * v * (1.0 + erf_f32(v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

widest_fn!(pub(crate) fn silu_slice(src: &[f32], dst: &mut [f32]) = silu_slice_inline);
widest_fn!(pub(crate) fn gelu_erf_slice(src: &[f32], dst: &mut [f32]) = gelu_erf_slice_inline);

impl candle_core::CustomOp1 for FastActivationF32 {
    fn name(&self) -> &'static str {
        match self {
            FastActivationF32::Silu => "brainrecon-silu-f32",
            FastActivationF32::GeluErf => "brainrecon-gelu-erf-f32",
        }
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        let src = contiguous_f32(storage, layout, self.name(), "input")?;
        let dst = chunked(src.len(), |r, d| self.apply(&src[r], d));
        Ok((candle_core::CpuStorage::F32(dst), layout.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        Ok(Some(
            x.contiguous()?
                .apply_op2_no_bwd(&grad, &ActivationGradF32(*self))?,
        ))
    }
}
