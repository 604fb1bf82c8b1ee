//! The CPU kernels under the layers, and the math they share: f32 ops in one pass over memory
//! (linear for inference; softmax, layer and group norm, GEGLU, attention and SiLU/GELU each
//! with a one-pass backward pass for training), written as candle custom ops, plus the run-time
//! choice of vector unit. A backward pass is one graph node where candle's elementary ops
//! would be six to ten, each with its own gradient pass, zero fill and accumulating addition.
//!
//! Nothing here imports the layers: the layers choose a kernel ([`fused`],
//! [`cpu_f32`]) and the kernels compute.

pub(crate) mod activation;
pub(crate) mod attention;
pub(crate) mod batch_norm;
pub(crate) mod linear;
pub(crate) mod math;
pub(crate) mod norm;
pub(crate) mod norm_backward;
pub(crate) mod simd;
pub(crate) mod softmax;

use candle_core::{CpuStorage, DType, Layout, Tensor};

/// The f32 values of a contiguous CPU tensor; `op` and `what` name it in the error.
pub(crate) fn contiguous_f32<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
    what: &str,
) -> candle_core::Result<&'a [f32]> {
    let data = match storage {
        CpuStorage::F32(v) => v.as_slice(),
        _ => candle_core::bail!("{op} ({what}): f32 expected"),
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op} ({what}): contiguous tensor expected"),
    }
}

/// Whether `x` and `parameters` are all f32 CPU tensors, tracked or not: the fused CPU ops
/// with one-pass backward passes apply (training and inference).
pub(crate) fn cpu_f32(x: &Tensor, parameters: &[&Tensor]) -> bool {
    let ok = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
    ok(x) && parameters.iter().all(|p| ok(p))
}

/// Whether inference on `x` (with `parameters` of its dtype) takes the fused CUDA kernels.
#[cfg(feature = "cuda")]
pub(crate) fn fused(x: &Tensor, parameters: &[&Tensor]) -> bool {
    crate::cuda::applies(x)
        && parameters
            .iter()
            .all(|p| p.dtype() == x.dtype() && !p.track_op() && p.device().same_device(x.device()))
}

#[cfg(not(feature = "cuda"))]
pub(crate) fn fused(_: &Tensor, _: &[&Tensor]) -> bool {
    false
}

/// `Σ y·probe` of `forward`'s output, backpropagated: the gradients of `inputs` (each made a
/// variable), in f32. The kernels' gradient tests run it once in f32 (the fused ops) and once
/// in f64 (candle's elementary ops, the reference).
#[cfg(test)]
pub(crate) fn grads_of(
    forward: impl Fn(&[Tensor]) -> Tensor,
    inputs: &[Tensor],
    probe: &Tensor,
) -> Vec<Tensor> {
    let vars: Vec<candle_core::Var> = inputs
        .iter()
        .map(|t| candle_core::Var::from_tensor(t).unwrap())
        .collect();
    let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = forward(&tensors);
    let probe = probe.to_dtype(y.dtype()).unwrap();
    let grads = (y * probe).unwrap().sum_all().unwrap().backward().unwrap();
    tensors
        .iter()
        .map(|t| grads.get(t).unwrap().to_dtype(DType::F32).unwrap())
        .collect()
}
