//! SiLU and exact GELU of f32 CPU tensors in vectorised loops (inference).

use candle_core::{DType, Shape, Tensor};

use super::contiguous_f32;
use super::math::{erf_f32, exp_f32};
use super::simd::widest_fn;

/// SiLU and exact GELU of a contiguous f32 CPU tensor with [`exp_f32`], a loop the compiler
/// vectorises (candle calls libm's `expf` and `erff` per element: a tenth of a small U-Net's
/// time). Inference only: a tensor that tracks gradients takes candle's differentiable op, so
/// training is unchanged. Tensors of 64Ki elements or more are split over the caller's pool.
#[derive(Clone, Copy, Debug)]
pub(crate) enum FastActivationF32 {
    Silu,
    GeluErf,
}

impl FastActivationF32 {
    pub(crate) fn applies(x: &Tensor) -> bool {
        !x.track_op() && x.dtype() == DType::F32 && x.device().is_cpu()
    }

    fn apply(self, src: &[f32], dst: &mut [f32]) {
        match self {
            FastActivationF32::Silu => silu_slice(src, dst),
            FastActivationF32::GeluErf => gelu_erf_slice(src, dst),
        }
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

widest_fn!(fn silu_slice(src: &[f32], dst: &mut [f32]) = silu_slice_inline);
widest_fn!(fn gelu_erf_slice(src: &[f32], dst: &mut [f32]) = gelu_erf_slice_inline);

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
        use rayon::prelude::*;
        let src = contiguous_f32(storage, layout, self.name(), "input")?;
        let mut dst = vec![0f32; src.len()];
        const CHUNK: usize = 16 * 1024;
        if src.len() >= 4 * CHUNK {
            dst.par_chunks_mut(CHUNK)
                .zip(src.par_chunks(CHUNK))
                .for_each(|(d, s)| self.apply(s, d));
        } else {
            self.apply(src, &mut dst);
        }
        Ok((candle_core::CpuStorage::F32(dst), layout.shape().clone()))
    }
}
