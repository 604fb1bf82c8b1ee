//! Per-channel scale and shift of [B, C, ...] tensors (convolution biases, group norm's affine
//! parameters), differentiable, with a fast backward on the CPU.
//!
//! With candle's broadcast ops, the gradient of a `[C]` parameter broadcast over `[B, C, H, W]` is a
//! sum over dimensions 0, 2 and 3, which candle's CPU reduction runs as a generic strided loop on
//! one thread: a fifth of a training step of the project's autoencoder. Here the sums run over
//! each contiguous H·W plane, one channel per task.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

fn contiguous_f32<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &str,
) -> candle_core::Result<&'a [f32]> {
    crate::kernels::contiguous_f32(storage, layout, "channel affine", what)
}

/// (batch, channels, plane) of a [B, C, ...] input and a [C] parameter.
fn geometry(x: &[usize], parameter: &[usize]) -> candle_core::Result<(usize, usize, usize)> {
    match (x, parameter) {
        ([b, c, rest @ ..], [pc]) if c == pc => Ok((*b, *c, rest.iter().product())),
        _ => {
            candle_core::bail!("channel affine: input {x:?} and parameter {parameter:?} do not fit")
        }
    }
}

/// `y[b, c, i] = x[b, c, i] · scale[c] + shift[c]` (either may be absent).
fn forward(
    x: &[f32],
    scale: Option<&[f32]>,
    shift: Option<&[f32]>,
    channels: usize,
    plane: usize,
) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(plane)
        .zip(x.par_chunks(plane))
        .enumerate()
        .for_each(|(k, (y, x))| {
            let c = k % channels;
            let (a, b) = (scale.map_or(1.0, |s| s[c]), shift.map_or(0.0, |s| s[c]));
            for (y, x) in y.iter_mut().zip(x) {
                *y = x * a + b;
            }
        });
    out
}

/// Per channel: `Σ grad·x` (when `x` is given) and `Σ grad` over batch and plane, summed in f64.
fn channel_sums(
    grad: &[f32],
    x: Option<&[f32]>,
    batch: usize,
    channels: usize,
    plane: usize,
) -> (Vec<f32>, Vec<f32>) {
    (0..channels)
        .into_par_iter()
        .map(|c| {
            let (mut dot, mut sum) = (0f64, 0f64);
            for b in 0..batch {
                let at = (b * channels + c) * plane;
                let g = &grad[at..at + plane];
                sum += g.iter().map(|&v| v as f64).sum::<f64>();
                if let Some(x) = x {
                    let x = &x[at..at + plane];
                    dot += g
                        .iter()
                        .zip(x)
                        .map(|(&g, &x)| g as f64 * x as f64)
                        .sum::<f64>();
                }
            }
            (dot as f32, sum as f32)
        })
        .unzip()
}

/// (x, parameter) → `x + parameter[c]` or `x · parameter[c]`. Only the shift is differentiated:
/// the scale alone serves as the input gradient of [`ScaleShift`].
#[derive(Clone, Copy)]
enum OneParameter {
    Shift,
    Scale,
}

impl CustomOp2 for OneParameter {
    fn name(&self) -> &'static str {
        match self {
            OneParameter::Shift => "brainrecon-channel-shift",
            OneParameter::Scale => "brainrecon-channel-scale",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (_, c, plane) = geometry(l1.dims(), l2.dims())?;
        let (x, parameter) = (
            contiguous_f32(s1, l1, "input")?,
            contiguous_f32(s2, l2, "parameter")?,
        );
        let out = match self {
            OneParameter::Shift => forward(x, None, Some(parameter), c, plane),
            OneParameter::Scale => forward(x, Some(parameter), None, c, plane),
        };
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        parameter: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        if let OneParameter::Scale = self {
            candle_core::bail!("channel scale alone has no backward (it is a gradient itself)");
        }
        let grad = grad.contiguous()?;
        let grad_shift = grad.apply_op1_no_bwd(&Sums {
            parameter: parameter.dims().to_vec(),
        })?;
        Ok((Some(grad), Some(grad_shift)))
    }
}

/// (x, scale, shift) → x · scale[c] + shift[c].
struct ScaleShift;

impl CustomOp3 for ScaleShift {
    fn name(&self) -> &'static str {
        "brainrecon-channel-scale-shift"
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
        let (_, c, plane) = geometry(l1.dims(), l2.dims())?;
        geometry(l1.dims(), l3.dims())?;
        let x = contiguous_f32(s1, l1, "input")?;
        let (scale, shift) = (
            contiguous_f32(s2, l2, "scale")?,
            contiguous_f32(s3, l3, "shift")?,
        );
        Ok((
            CpuStorage::F32(forward(x, Some(scale), Some(shift), c, plane)),
            l1.shape().clone(),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        scale: &Tensor,
        _shift: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let grad_x = grad.apply_op2_no_bwd(&scale.contiguous()?, &OneParameter::Scale)?;
        let sums = grad.apply_op2_no_bwd(
            &x.contiguous()?,
            &SumsWithInput {
                parameter: scale.dims().to_vec(),
            },
        )?;
        Ok((Some(grad_x), Some(sums.get(0)?), Some(sums.get(1)?)))
    }
}

/// grad → [C]: `Σ grad` per channel.
struct Sums {
    parameter: Vec<usize>,
}

impl candle_core::CustomOp1 for Sums {
    fn name(&self) -> &'static str {
        "brainrecon-channel-sums"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, c, plane) = geometry(l1.dims(), &self.parameter)?;
        let (_, sums) = channel_sums(contiguous_f32(s1, l1, "gradient")?, None, b, c, plane);
        Ok((CpuStorage::F32(sums), Shape::from(c)))
    }
}

/// (grad, x) → [2, C]: `Σ grad·x` and `Σ grad` per channel.
struct SumsWithInput {
    parameter: Vec<usize>,
}

impl CustomOp2 for SumsWithInput {
    fn name(&self) -> &'static str {
        "brainrecon-channel-sums-with-input"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, c, plane) = geometry(l1.dims(), &self.parameter)?;
        let g = contiguous_f32(s1, l1, "gradient")?;
        let x = contiguous_f32(s2, l2, "input")?;
        let (mut out, sums) = channel_sums(g, Some(x), b, c, plane);
        out.extend(sums);
        Ok((CpuStorage::F32(out), Shape::from((2, c))))
    }
}

/// `x · scale[c] + shift[c]` for `x` `[B, C, ...]` and parameters `[C]`; either may be absent.
/// f32 on the CPU takes the fast path; anything else uses candle's broadcast ops.
pub fn channel_affine(
    x: &Tensor,
    scale: Option<&Tensor>,
    shift: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    #[cfg(feature = "cuda")]
    {
        let parameters: Vec<&Tensor> = scale.into_iter().chain(shift).collect();
        if x.rank() >= 2 && crate::kernels::fused(x, &parameters) {
            return crate::cuda::channel_affine(x, scale, shift);
        }
    }
    let fast = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
    if fast(x) && scale.is_none_or(fast) && shift.is_none_or(fast) && x.rank() >= 2 {
        return match (scale, shift) {
            (Some(a), Some(b)) => {
                x.contiguous()?
                    .apply_op3(&a.contiguous()?, &b.contiguous()?, ScaleShift)
            }
            (None, Some(b)) => x
                .contiguous()?
                .apply_op2(&b.contiguous()?, OneParameter::Shift),
            (Some(a), None) => {
                let zeros = a.zeros_like()?.detach();
                x.contiguous()?
                    .apply_op3(&a.contiguous()?, &zeros, ScaleShift)
            }
            (None, None) => Ok(x.clone()),
        };
    }
    let mut shape = vec![1usize; x.rank()];
    shape[1] = x.dim(1)?;
    let mut y = x.clone();
    if let Some(a) = scale {
        y = y.broadcast_mul(&a.reshape(shape.as_slice())?)?;
    }
    if let Some(b) = shift {
        y = y.broadcast_add(&b.reshape(shape.as_slice())?)?;
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    /// The fast op and candle's broadcast ops agree, forward and in every gradient.
    #[test]
    fn matches_broadcast_ops_forward_and_backward() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let (b, c, h, w) = (3, 5, 4, 6);
        let x = Var::from_vec(values(b * c * h * w, 1), (b, c, h, w), &dev)?;
        let scale = Var::from_vec(values(c, 2), c, &dev)?;
        let shift = Var::from_vec(values(c, 3), c, &dev)?;
        let probe = Tensor::from_vec(values(b * c * h * w, 4), (b, c, h, w), &dev)?;
        for (use_scale, use_shift) in [(true, true), (false, true), (true, false)] {
            let (a, s) = (
                use_scale.then_some(scale.as_tensor()),
                use_shift.then_some(shift.as_tensor()),
            );
            let fast = channel_affine(x.as_tensor(), a, s)?;
            let mut reference = x.as_tensor().clone();
            if let Some(a) = a {
                reference = reference.broadcast_mul(&a.reshape((1, c, 1, 1))?)?;
            }
            if let Some(s) = s {
                reference = reference.broadcast_add(&s.reshape((1, c, 1, 1))?)?;
            }
            let diff = (&fast - &reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-6, "forward differs by {diff}");
            let grads_fast = (fast.sqr()? * &probe)?.sum_all()?.backward()?;
            let grads_ref = (reference.sqr()? * &probe)?.sum_all()?.backward()?;
            for (name, var, used) in [
                ("x", &x, true),
                ("scale", &scale, use_scale),
                ("shift", &shift, use_shift),
            ] {
                if !used {
                    continue;
                }
                let (g1, g2) = (
                    grads_fast.get(var.as_tensor()).unwrap(),
                    grads_ref.get(var.as_tensor()).unwrap(),
                );
                let diff = (g1 - g2)?.abs()?.max_all()?.to_scalar::<f32>()?;
                let scale = g2.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
                assert!(
                    diff < 1e-5 * scale,
                    "{name} gradient differs by {diff} ({use_scale}, {use_shift})"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn a_parameter_of_the_wrong_length_is_an_error() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((2, 3, 4), DType::F32, &dev).unwrap();
        let shift = Tensor::zeros(4, DType::F32, &dev).unwrap();
        assert!(channel_affine(&x, None, Some(&shift)).is_err());
    }
}
