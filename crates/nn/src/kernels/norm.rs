//! Group norm (optionally followed by SiLU), layer norm and the GEGLU gate for f32 CPU
//! inference, each one pass over its input after the statistics.
//!
//! Built from candle's generic ops these take six to ten passes over memory on one thread
//! (a twentieth of a 512 px VAE decode). Statistics are summed in f64, per group or per row,
//! by the task that owns it, so results do not depend on the pool size. Each op has a one-pass
//! backward pass ([`super::norm_backward`]), so training takes the same forward kernels.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::contiguous_f32;
use super::math::{erf_f32, exp_f32};
use super::simd::widest_fn;

/// `Σ f(x_i)` in f64 with four independent accumulators (which keep the sums vectorised).
#[inline(always)]
pub(crate) fn sum4(x: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    let mut acc = [0f64; 4];
    let mut chunks = x.chunks_exact(4);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    chunks.remainder().iter().map(|&v| f(v)).sum::<f64>() + acc.iter().sum::<f64>()
}

/// Mean and 1/sqrt(variance + eps) of `x`, biased variance, sums in f64.
#[inline(always)]
fn moments_inline(x: &[f32], eps: f64) -> (f32, f32) {
    let n = x.len().max(1) as f64;
    let mean = sum4(x, |v| v as f64) / n;
    let var = sum4(x, |v| (v as f64 - mean) * (v as f64 - mean)) / n;
    (mean as f32, (1.0 / (var + eps).sqrt()) as f32)
}

widest_fn!(pub(crate) fn moments(x: &[f32], eps: f64) -> (f32, f32) = moments_inline);

/// One channel's plane of a group norm: `(x − mean)·a + s`, then SiLU if `with_silu`.
/// (x − mean)·a + s, not x·a + (s − mean·a): in a flat region a is large and the second form
/// cancels.
#[inline(always)]
fn normalise_plane_inline(y: &mut [f32], x: &[f32], [mean, a, s]: [f32; 3], with_silu: bool) {
    if with_silu {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = silu((x - mean) * a + s);
        }
    } else {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = (x - mean) * a + s;
        }
    }
}

widest_fn!(pub(crate) fn normalise_plane(y: &mut [f32], x: &[f32], mean_scale_shift: [f32; 3], with_silu: bool) = normalise_plane_inline);

/// One row of a layer norm: `(x − mean)·rstd·w + b`.
#[inline(always)]
fn layer_norm_row_inline(y: &mut [f32], x: &[f32], w: &[f32], b: &[f32], eps: f64) {
    let (mean, rstd) = moments_inline(x, eps);
    for ((y, &x), (&w, &b)) in y.iter_mut().zip(x).zip(w.iter().zip(b)) {
        *y = (x - mean) * rstd * w + b;
    }
}

widest_fn!(fn layer_norm_row(y: &mut [f32], x: &[f32], w: &[f32], b: &[f32], eps: f64) = layer_norm_row_inline);

/// One row of the GEGLU gate: `hidden · gelu(gate)`.
#[inline(always)]
fn geglu_row_inline(y: &mut [f32], hidden: &[f32], gate: &[f32]) {
    for ((y, &a), &g) in y.iter_mut().zip(hidden).zip(gate) {
        *y = a * 0.5 * g * (1.0 + erf_f32(g * std::f32::consts::FRAC_1_SQRT_2));
    }
}

widest_fn!(pub(crate) fn geglu_row(y: &mut [f32], hidden: &[f32], gate: &[f32]) = geglu_row_inline);

#[inline(always)]
fn silu(v: f32) -> f32 {
    v / (1.0 + exp_f32(-v))
}

/// (x [B, C, *], weight [C], bias [C]) → group norm over `groups` groups, then SiLU if `silu`.
pub(crate) struct GroupNormF32 {
    pub groups: usize,
    pub eps: f64,
    pub silu: bool,
}

impl CustomOp3 for GroupNormF32 {
    fn name(&self) -> &'static str {
        "brainrecon-group-norm-f32"
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
        let b = contiguous_f32(s3, l3, name, "bias")?;
        let dims = l1.dims();
        let (c, g) = (dims.get(1).copied().unwrap_or(0), self.groups);
        if dims.len() < 2 || g == 0 || c % g != 0 || w.len() != c || b.len() != c {
            candle_core::bail!(
                "{name}: input {dims:?} does not fit {g} groups of {} channels",
                w.len()
            );
        }
        let plane: usize = dims[2..].iter().product();
        let per_group = c / g * plane;
        let mut out = vec![0f32; x.len()];
        if per_group > 0 {
            out.par_chunks_mut(per_group)
                .zip(x.par_chunks(per_group))
                .enumerate()
                .for_each(|(k, (y, x))| {
                    let (mean, rstd) = moments(x, self.eps);
                    let c0 = (k % g) * (c / g);
                    for ((yc, xc), ci) in y.chunks_mut(plane).zip(x.chunks(plane)).zip(c0..) {
                        normalise_plane(yc, xc, [mean, rstd * w[ci], b[ci]], self.silu);
                    }
                });
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        super::norm_backward::group_norm_backward(
            self.groups,
            self.eps,
            self.silu,
            x,
            weight,
            bias,
            grad,
        )
    }
}

/// (x [..., D], weight [D], bias [D]) → layer norm over the last dimension.
pub(crate) struct LayerNormF32 {
    pub eps: f64,
}

impl CustomOp3 for LayerNormF32 {
    fn name(&self) -> &'static str {
        "brainrecon-layer-norm-f32"
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
        let b = contiguous_f32(s3, l3, name, "bias")?;
        let d = l1.dims().last().copied().unwrap_or(0);
        if w.len() != d || b.len() != d {
            candle_core::bail!("{name}: input {:?}, parameters of {}", l1.dims(), w.len());
        }
        let mut out = vec![0f32; x.len()];
        if let Some(per_task) = 65536usize.checked_div(d) {
            // Rows in chunks of ~64Ki values per task.
            let rows = per_task.max(1) * d;
            out.par_chunks_mut(rows)
                .zip(x.par_chunks(rows))
                .for_each(|(y, x)| {
                    for (y, x) in y.chunks_mut(d).zip(x.chunks(d)) {
                        layer_norm_row(y, x, w, b, self.eps);
                    }
                });
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        super::norm_backward::layer_norm_backward(self.eps, x, weight, bias, grad)
    }
}

/// h [..., 2n] → [..., n]: `h[..., :n] · gelu(h[..., n:])` (diffusers' GEGLU, exact GELU).
pub(crate) struct GegluF32;

impl CustomOp1 for GegluF32 {
    fn name(&self) -> &'static str {
        "brainrecon-geglu-f32"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let h = contiguous_f32(s, l, self.name(), "input")?;
        let mut dims = l.dims().to_vec();
        let two_n = dims.last().copied().unwrap_or(0);
        if two_n % 2 != 0 {
            candle_core::bail!("{}: odd last dimension {two_n}", self.name());
        }
        let n = two_n / 2;
        *dims.last_mut().expect("checked above") = n;
        let mut out = vec![0f32; h.len() / 2];
        if let Some(per_task) = 32768usize.checked_div(n) {
            let rows = per_task.max(1);
            out.par_chunks_mut(rows * n)
                .zip(h.par_chunks(rows * two_n))
                .for_each(|(y, h)| {
                    for (y, h) in y.chunks_mut(n).zip(h.chunks(two_n)) {
                        let (hidden, gate) = h.split_at(n);
                        geglu_row(y, hidden, gate);
                    }
                });
        }
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }

    fn bwd(&self, h: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(super::norm_backward::geglu_backward(h, grad)?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};

    use crate::kernels::grads_of;

    use crate::layers::{silu, GeGlu, GroupNorm, LayerNorm, Linear};
    use crate::rng::SeededNoise;

    fn seeded(shape: &[usize], seed: u64, scale: f32, shift: f32) -> Tensor {
        let mut noise = SeededNoise::new(seed);
        let n: usize = shape.iter().product();
        let v: Vec<f32> = noise
            .normal_vec(n)
            .into_iter()
            .map(|x| x * scale + shift)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn fused_norms_and_gate_match_the_differentiable_ops() {
        // Large offsets stress the variance (one-pass formulas lose it); a flat group (all
        // equal values) has zero variance.
        let mut x = seeded(&[2, 8, 5, 3], 1, 3.0, 100.0);
        let flat = Tensor::full(7.5f32, (1, 8, 5, 3), &Device::Cpu).unwrap();
        x = Tensor::cat(&[&x, &flat], 0).unwrap();
        let gn = GroupNorm {
            weight: seeded(&[8], 2, 1.0, 1.0),
            bias: seeded(&[8], 3, 1.0, 0.0),
            num_groups: 4,
            eps: 1e-6,
        };
        // The reference runs the elementary ops in f64 (in f32 they lose digits to the offset).
        let f64_of = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
        let gn64 = GroupNorm {
            weight: f64_of(&gn.weight),
            bias: f64_of(&gn.bias),
            ..gn.clone()
        };
        let reference = gn64
            .forward(&f64_of(&x))
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let fast = gn.forward(&x).unwrap();
        assert!(max_diff(&fast, &reference) < 1e-5, "group norm");
        let fast = gn.forward_silu(&x).unwrap();
        let reference = silu(&reference).unwrap();
        assert!(max_diff(&fast, &reference) < 1e-5, "group norm + silu");

        let y = seeded(&[3, 7, 40], 4, 2.0, -50.0);
        let ln = LayerNorm {
            weight: Some(seeded(&[40], 5, 1.0, 1.0)),
            bias: Some(seeded(&[40], 6, 1.0, 0.0)),
            eps: 1e-5,
        };
        let ln64 = LayerNorm {
            weight: ln.weight.as_ref().map(f64_of),
            bias: ln.bias.as_ref().map(f64_of),
            eps: 1e-5,
        };
        let reference = ln64
            .forward(&f64_of(&y))
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        assert!(
            max_diff(&ln.forward(&y).unwrap(), &reference) < 1e-4,
            "layer norm"
        );

        let geglu = GeGlu {
            proj: Linear::from_tensors(seeded(&[12, 40], 7, 0.5, 0.0), None),
        };
        let geglu64 = GeGlu {
            proj: Linear::from_tensors(f64_of(&geglu.proj.weight), None),
        };
        let (fast, reference) = (
            geglu.forward(&y).unwrap(),
            geglu64
                .forward(&f64_of(&y))
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap(),
        );
        assert_eq!(fast.dims(), &[3, 7, 6]);
        let scale = reference
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(max_diff(&fast, &reference) < 1e-5 * scale, "geglu");
    }

    /// The fused ops' backward passes (f32) against candle's elementary ops in f64, on a large
    /// offset with a small spread, a flat group or row (zero variance) and a wide gate range.
    #[test]
    fn fused_backward_passes_match_the_elementary_ops_in_f64() {
        let f64_of = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
        let check = |what: &str, fast: &[Tensor], reference: &[Tensor], rel: f32| {
            for (k, (a, b)) in fast.iter().zip(reference).enumerate() {
                let scale = b
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                let diff = max_diff(a, b);
                assert!(
                    diff <= rel * scale + 1e-6,
                    "{what} input {k}: {diff} (scale {scale})"
                );
            }
        };
        let mut x = seeded(&[2, 8, 5, 3], 11, 0.01, 40.0);
        let flat = Tensor::full(-2.0f32, (1, 8, 5, 3), &Device::Cpu).unwrap();
        x = Tensor::cat(&[&x, &flat], 0).unwrap();
        let (w, b) = (seeded(&[8], 12, 1.0, 1.0), seeded(&[8], 13, 1.0, 0.0));
        let probe = seeded(&[3, 8, 5, 3], 14, 1.0, 0.0);
        for with_silu in [false, true] {
            let run = |t: &[Tensor]| {
                let gn = GroupNorm {
                    weight: t[1].clone(),
                    bias: t[2].clone(),
                    num_groups: 4,
                    eps: 1e-5,
                };
                match with_silu {
                    true => gn.forward_silu(&t[0]).unwrap(),
                    false => gn.forward(&t[0]).unwrap(),
                }
            };
            let inputs = [x.clone(), w.clone(), b.clone()];
            let wide: Vec<Tensor> = inputs.iter().map(f64_of).collect();
            check(
                &format!("group norm (silu {with_silu})"),
                &grads_of(run, &inputs, &probe),
                &grads_of(run, &wide, &probe),
                2e-4,
            );
        }

        let mut rows = seeded(&[3, 5, 40], 15, 1e3, -50.0);
        let flat = Tensor::full(3.0f32, (1, 5, 40), &Device::Cpu).unwrap();
        rows = Tensor::cat(&[&rows, &flat], 0).unwrap();
        let (w, b) = (seeded(&[40], 16, 1.0, 1.0), seeded(&[40], 17, 1.0, 0.0));
        let probe = seeded(&[4, 5, 40], 18, 1.0, 0.0);
        let run = |t: &[Tensor]| {
            let ln = LayerNorm {
                weight: Some(t[1].clone()),
                bias: Some(t[2].clone()),
                eps: 1e-5,
            };
            ln.forward(&t[0]).unwrap()
        };
        let inputs = [rows.clone(), w, b];
        let wide: Vec<Tensor> = inputs.iter().map(f64_of).collect();
        check(
            "layer norm",
            &grads_of(run, &inputs, &probe),
            &grads_of(run, &wide, &probe),
            1e-4,
        );

        // SiLU and exact GELU over a wide range (saturated tails, zero).
        let x = seeded(&[4, 33], 26, 4.0, 0.0);
        let probe = seeded(&[4, 33], 27, 1.0, 0.0);
        for (name, f) in [
            (
                "silu",
                crate::layers::silu as fn(&Tensor) -> crate::Result<Tensor>,
            ),
            ("gelu", crate::layers::gelu),
        ] {
            let run = |t: &[Tensor]| f(&t[0]).unwrap();
            check(
                name,
                &grads_of(run, std::slice::from_ref(&x), &probe),
                &grads_of(run, &[f64_of(&x)], &probe),
                1e-5,
            );
        }

        let h = seeded(&[3, 7, 24], 19, 4.0, 0.0);
        let probe = seeded(&[3, 7, 12], 20, 1.0, 0.0);
        let gate = GeGlu {
            proj: Linear::from_tensors(seeded(&[24, 4], 21, 1.0, 0.0), None),
        };
        let run = |t: &[Tensor]| gate.gate(&t[0]).unwrap();
        check(
            "geglu",
            &grads_of(run, std::slice::from_ref(&h), &probe),
            &grads_of(run, &[f64_of(&h)], &probe),
            1e-5,
        );
    }
}
