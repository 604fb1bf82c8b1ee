//! Batch norm over [B, C, *] (torch's `BatchNorm1d/2d`), optionally followed by ELU, for f32
//! on the CPU: the per-channel statistics in one pass, the normalisation (+ ELU) in another,
//! and a backward pass of two passes that recomputes the pre-activation.
//!
//! A channel's values are strided over the batch (one plane per sample), so every pass runs
//! per sample, in parallel, and sums per (sample, channel) are combined in sample order: the
//! results do not depend on the pool size.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::contiguous_f32;
use super::math::exp_f32;
use super::norm_backward::{if_tracked, unpack};
use super::simd::widest_fn;

/// `[B, C, plane]` of a tensor [B, C, *]; `None` below rank 2.
pub(crate) fn batch_channels_plane(dims: &[usize]) -> Option<(usize, usize, usize)> {
    match dims {
        [b, c, rest @ ..] => Some((*b, *c, rest.iter().product())),
        _ => None,
    }
}

/// Σ (x − shift), or Σ (x − shift)², in f64 (the norms' four-accumulator sum).
#[inline(always)]
fn shifted_sum_inline(x: &[f32], shift: f64, square: bool) -> f64 {
    super::norm::sum4(x, |v| {
        let d = v as f64 - shift;
        if square {
            d * d
        } else {
            d
        }
    })
}

widest_fn!(fn shifted_sum(x: &[f32], shift: f64, square: bool) -> f64 = shifted_sum_inline);

/// Per-channel sums of `(x − shift[c])` (or their squares) over the batch and the plane:
/// per sample in parallel, then in sample order.
fn channel_sums(
    x: &[f32],
    (b, c, plane): (usize, usize, usize),
    shift: &[f64],
    square: bool,
) -> Vec<f64> {
    let per_sample: Vec<Vec<f64>> = x
        .par_chunks(c * plane)
        .take(b)
        .map(|sample| {
            sample
                .chunks(plane)
                .zip(shift)
                .map(|(p, &s)| shifted_sum(p, s, square))
                .collect()
        })
        .collect();
    let mut total = vec![0f64; c];
    for sample in per_sample {
        for (t, s) in total.iter_mut().zip(sample) {
            *t += s;
        }
    }
    total
}

/// Per-channel mean and biased variance of `x` [B, C, plane] (two passes, sums in f64).
/// `x.len()` must be `b·c·plane` with `b·plane > 0`.
pub(crate) fn channel_moments(x: &[f32], shape: (usize, usize, usize)) -> (Vec<f64>, Vec<f64>) {
    let (b, c, plane) = shape;
    debug_assert_eq!(x.len(), b * c * plane);
    let n = (b * plane).max(1) as f64;
    let zeros = vec![0f64; c];
    let mean: Vec<f64> = channel_sums(x, shape, &zeros, false)
        .into_iter()
        .map(|s| s / n)
        .collect();
    let var = channel_sums(x, shape, &mean, true)
        .into_iter()
        .map(|s| s / n)
        .collect();
    (mean, var)
}

/// The activation after the norm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum NormActivation {
    Identity,
    /// `x` for x > 0, `α(eˣ − 1)` otherwise (torch's `ELU(alpha)`).
    Elu(f32),
}

#[inline(always)]
fn activate(p: f32, act: NormActivation) -> f32 {
    match act {
        NormActivation::Identity => p,
        NormActivation::Elu(alpha) => {
            if p > 0.0 {
                p
            } else {
                alpha * (exp_f32(p) - 1.0)
            }
        }
    }
}

/// d activation / dp at the pre-activation `p`.
#[inline(always)]
fn activation_grad(p: f32, act: NormActivation) -> f32 {
    match act {
        NormActivation::Identity => 1.0,
        NormActivation::Elu(alpha) => {
            if p > 0.0 {
                1.0
            } else {
                alpha * exp_f32(p)
            }
        }
    }
}

/// One plane: `act((x − mean)·a + s)`.
#[inline(always)]
fn normalise_plane_inline(y: &mut [f32], x: &[f32], [mean, a, s]: [f32; 3], act: NormActivation) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = activate((x - mean) * a + s, act);
    }
}

widest_fn!(pub(crate) fn normalise_plane(y: &mut [f32], x: &[f32], mean_scale_shift: [f32; 3], act: NormActivation) = normalise_plane_inline);

/// (x [B, C, *], weight [C], bias [C]) → `act((x − mean[c])·rstd[c]·weight[c] + bias[c])`.
///
/// `mean` and `rstd` are the statistics the caller chose: the batch's own
/// ([`channel_moments`], training; the backward pass then differentiates through them) or the
/// running ones (`batch_statistics` false: a per-channel affine map).
pub(crate) struct BatchNormF32 {
    pub mean: Arc<Vec<f32>>,
    pub rstd: Arc<Vec<f32>>,
    pub batch_statistics: bool,
    pub activation: NormActivation,
}

impl BatchNormF32 {
    fn check(
        &self,
        name: &str,
        dims: &[usize],
        w: usize,
        b: usize,
    ) -> candle_core::Result<(usize, usize, usize)> {
        match batch_channels_plane(dims) {
            Some(shape @ (_, c, _))
                if c == w && c == b && c == self.mean.len() && c == self.rstd.len() =>
            {
                Ok(shape)
            }
            _ => candle_core::bail!(
                "{name}: input {dims:?} does not fit {} channels of statistics and {w} weights",
                self.mean.len()
            ),
        }
    }
}

impl CustomOp3 for BatchNormF32 {
    fn name(&self) -> &'static str {
        "brainrecon-batch-norm-f32"
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
        let (_, c, plane) = self.check(name, l1.dims(), w.len(), b.len())?;
        let mut out = vec![0f32; x.len()];
        if c * plane > 0 {
            out.par_chunks_mut(c * plane)
                .zip(x.par_chunks(c * plane))
                .for_each(|(y, x)| {
                    for (ci, (yc, xc)) in y.chunks_mut(plane).zip(x.chunks(plane)).enumerate() {
                        let terms = [self.mean[ci], self.rstd[ci] * w[ci], b[ci]];
                        normalise_plane(yc, xc, terms, self.activation);
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
        let c = weight.elem_count();
        let wb = Tensor::cat(&[weight.contiguous()?, bias.contiguous()?], 0)?;
        let op = BatchNormBackwardF32 {
            mean: self.mean.clone(),
            rstd: self.rstd.clone(),
            batch_statistics: self.batch_statistics,
            activation: self.activation,
        };
        let packed = x
            .contiguous()?
            .apply_op3_no_bwd(&wb, &grad.contiguous()?, &op)?;
        let [dx, dw, db] = unpack(&packed, x, c)?;
        let dx = x.track_op().then_some(dx);
        Ok((dx, if_tracked(weight, dw), if_tracked(bias, db)))
    }
}

/// `(x [B, C, *], weight‖bias [2C], g [B, C, *])` → `[dx, dweight [C], dbias [C]]` flat.
struct BatchNormBackwardF32 {
    mean: Arc<Vec<f32>>,
    rstd: Arc<Vec<f32>>,
    batch_statistics: bool,
    activation: NormActivation,
}

/// One plane, first pass: the gradient at the affine output `dp` (through the activation,
/// whose input is recomputed), written into `dp`; returns `(Σ dp, Σ dp·x̂)` in f64.
#[inline(always)]
fn plane_sums_inline(
    dp: &mut [f32],
    x: &[f32],
    g: &[f32],
    [mean, rstd, w, b]: [f32; 4],
    act: NormActivation,
) -> (f64, f64) {
    let (mut s1, mut s2) = ([0f32; 8], [0f32; 8]);
    let mut dps = dp.chunks_exact_mut(8);
    let (mut xs, mut gs) = (x.chunks_exact(8), g.chunks_exact(8));
    for ((dp, x), g) in (&mut dps).zip(&mut xs).zip(&mut gs) {
        for l in 0..8 {
            let xh = (x[l] - mean) * rstd;
            let d = g[l] * activation_grad(xh * w + b, act);
            dp[l] = d;
            s1[l] += d;
            s2[l] += d * xh;
        }
    }
    let (mut t1, mut t2) = (0f64, 0f64);
    for ((dp, &x), &g) in dps
        .into_remainder()
        .iter_mut()
        .zip(xs.remainder())
        .zip(gs.remainder())
    {
        let xh = (x - mean) * rstd;
        let d = g * activation_grad(xh * w + b, act);
        *dp = d;
        t1 += d as f64;
        t2 += (d * xh) as f64;
    }
    let fold = |s: [f32; 8]| s.iter().map(|&v| v as f64).sum::<f64>();
    (t1 + fold(s1), t2 + fold(s2))
}

widest_fn!(pub(crate) fn plane_sums(dp: &mut [f32], x: &[f32], g: &[f32], stats: [f32; 4], act: NormActivation) -> (f64, f64) = plane_sums_inline);

/// One plane, second pass: `dx = rstd·w·(dp − m1 − x̂·m2)`, in place over `dp`.
#[inline(always)]
fn plane_dx_inline(dx: &mut [f32], x: &[f32], [mean, rstd, w, m1, m2]: [f32; 5]) {
    let a = rstd * w;
    for (d, &x) in dx.iter_mut().zip(x) {
        let xh = (x - mean) * rstd;
        *d = a * (*d - m1 - xh * m2);
    }
}

widest_fn!(pub(crate) fn plane_dx(dx: &mut [f32], x: &[f32], terms: [f32; 5]) = plane_dx_inline);

impl CustomOp3 for BatchNormBackwardF32 {
    fn name(&self) -> &'static str {
        "brainrecon-batch-norm-f32-backward"
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
        let c = wb.len() / 2;
        let (w, bias) = wb.split_at(c);
        let shape = batch_channels_plane(l1.dims());
        let Some((batch, _, plane)) = shape.filter(|&(_, dc, _)| {
            dc == c && g.len() == x.len() && self.mean.len() == c && self.rstd.len() == c
        }) else {
            candle_core::bail!("{name}: input {:?} does not fit {c} channels", l1.dims());
        };
        let stride = c * plane;
        let mut out = vec![0f32; x.len() + 2 * c];
        let (dx, params) = out.split_at_mut(x.len());
        if stride == 0 || batch == 0 {
            return Ok((CpuStorage::F32(out), Shape::from(x.len() + 2 * c)));
        }
        let per_sample: Vec<Vec<(f64, f64)>> = dx
            .par_chunks_mut(stride)
            .zip(x.par_chunks(stride).zip(g.par_chunks(stride)))
            .map(|(dp, (x, g))| {
                dp.chunks_mut(plane)
                    .zip(x.chunks(plane).zip(g.chunks(plane)))
                    .enumerate()
                    .map(|(ci, (dp, (x, g)))| {
                        let stats = [self.mean[ci], self.rstd[ci], w[ci], bias[ci]];
                        plane_sums(dp, x, g, stats, self.activation)
                    })
                    .collect()
            })
            .collect();
        let (mut s1, mut s2) = (vec![0f64; c], vec![0f64; c]);
        for sample in &per_sample {
            for (ci, &(a, b)) in sample.iter().enumerate() {
                s1[ci] += a;
                s2[ci] += b;
            }
        }
        // With batch statistics the mean and variance move with x: the two projections.
        let n = (batch * plane) as f64;
        let terms: Vec<[f32; 5]> = (0..c)
            .map(|ci| {
                let (m1, m2) = match self.batch_statistics {
                    true => ((s1[ci] / n) as f32, (s2[ci] / n) as f32),
                    false => (0.0, 0.0),
                };
                [self.mean[ci], self.rstd[ci], w[ci], m1, m2]
            })
            .collect();
        dx.par_chunks_mut(stride)
            .zip(x.par_chunks(stride))
            .for_each(|(dx, x)| {
                for ((dx, x), t) in dx.chunks_mut(plane).zip(x.chunks(plane)).zip(&terms) {
                    plane_dx(dx, x, *t);
                }
            });
        let (dw, db) = params.split_at_mut(c);
        for ci in 0..c {
            dw[ci] = s2[ci] as f32;
            db[ci] = s1[ci] as f32;
        }
        Ok((CpuStorage::F32(out), Shape::from(x.len() + 2 * c)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor, Var};

    use crate::kernels::grads_of;
    use crate::layers::BatchNorm;
    use crate::rng::SeededNoise;

    fn seeded(shape: &[usize], seed: u64, scale: f32, shift: f32) -> Tensor {
        let v: Vec<f32> = SeededNoise::new(seed)
            .normal_vec(shape.iter().product())
            .into_iter()
            .map(|x| x * scale + shift)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
        let scale = b
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        diff.to_scalar::<f32>().unwrap() / scale.max(1e-6)
    }

    fn norm(t: &[Tensor], stats: (&Tensor, &Tensor)) -> BatchNorm {
        BatchNorm {
            weight: t[1].clone(),
            bias: t[2].clone(),
            running_mean: Var::from_tensor(&stats.0.to_dtype(t[0].dtype()).unwrap()).unwrap(),
            running_var: Var::from_tensor(&stats.1.to_dtype(t[0].dtype()).unwrap()).unwrap(),
            eps: 1e-5,
            momentum: 0.1,
        }
    }

    #[test]
    fn fused_batch_norm_matches_the_differentiable_ops() {
        // Channel 1 is flat (zero variance), channel 2 has a large offset; [B, C, H, W].
        let mut x = seeded(&[5, 3, 4, 7], 1, 3.0, 0.5);
        let flat = Tensor::full(2.0f32, (5, 1, 4, 7), &Device::Cpu).unwrap();
        let big = seeded(&[5, 1, 4, 7], 2, 1e3, -50.0);
        x = Tensor::cat(&[&x.narrow(1, 0, 1).unwrap(), &flat, &big], 1).unwrap();
        let (w, b) = (seeded(&[3], 3, 1.0, 1.0), seeded(&[3], 4, 1.0, 0.0));
        let probe = seeded(&[5, 3, 4, 7], 5, 1.0, 0.0);
        let running = (seeded(&[3], 6, 1.0, 0.0), seeded(&[3], 7, 0.1, 1.5));
        let f64_of = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
        for elu in [None, Some(1.0), Some(0.7)] {
            for train in [true, false] {
                let run = |t: &[Tensor]| {
                    let bn = norm(t, (&running.0, &running.1));
                    match train {
                        true => bn.forward_train(&t[0], elu).unwrap(),
                        false => bn.forward_eval(&t[0], elu).unwrap(),
                    }
                };
                let inputs = [x.clone(), w.clone(), b.clone()];
                let wide: Vec<Tensor> = inputs.iter().map(f64_of).collect();
                let fast = run(&inputs);
                let reference = run(&wide).to_dtype(DType::F32).unwrap();
                assert!(
                    max_rel(&fast, &reference) < 1e-5,
                    "{elu:?} {train}: forward"
                );
                let (got, want) = (grads_of(run, &inputs, &probe), grads_of(run, &wide, &probe));
                for (i, (g, r)) in got.iter().zip(&want).enumerate() {
                    let err = max_rel(g, r);
                    assert!(
                        err < 2e-4,
                        "{elu:?} train {train}: gradient {i} off by {err}"
                    );
                }
            }
        }
    }

    #[test]
    fn training_moves_the_running_statistics_as_torch_does() {
        // torch: running = 0.9 running + 0.1 batch, the batch variance unbiased.
        let x = Tensor::from_vec(
            vec![1f32, 3., 5., 7., -2., 2., 0., 4.],
            (2, 2, 2),
            &Device::Cpu,
        )
        .unwrap();
        let ones = Tensor::ones(2, DType::F32, &Device::Cpu).unwrap();
        let zeros = ones.zeros_like().unwrap();
        let bn = norm(&[x.clone(), ones.clone(), zeros.clone()], (&zeros, &ones));
        bn.forward_train(&x, None).unwrap();
        // channel 0: 1, 3, -2, 2 (mean 1, unbiased var 14/3); channel 1: 5, 7, 0, 4 (mean 4,
        // unbiased var 26/3).
        let mean = bn.running_mean.as_tensor().to_vec1::<f32>().unwrap();
        let var = bn.running_var.as_tensor().to_vec1::<f32>().unwrap();
        let want_var = [0.9 + 0.1 * 14.0 / 3.0, 0.9 + 0.1 * 26.0 / 3.0];
        assert!(
            (mean[0] - 0.1).abs() < 1e-6 && (mean[1] - 0.4).abs() < 1e-6,
            "{mean:?}"
        );
        assert!(
            var.iter().zip(want_var).all(|(a, b)| (a - b).abs() < 1e-5),
            "{var:?}"
        );
    }
}
