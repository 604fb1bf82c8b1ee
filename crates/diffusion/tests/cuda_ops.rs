//! The fused CUDA inference kernels (`--features cuda`, run where a GPU is present) against the
//! differentiable ops on the CPU in f32, which the golden tests check against diffusers. Inputs
//! stress the numerics: a constant channel (zero variance), a large offset with a small spread
//! (the variance's cancellation), long rows, and f16/bf16 storage.
#![cfg(feature = "cuda")]

use brainrecon_nn::conv::conv2d;
use brainrecon_nn::layers::{
    multi_head_attention, softmax_last_dim, GeGlu, GroupNorm, LayerNorm, Linear,
};
use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

fn gpu() -> Device {
    Device::new_cuda(0).expect("a CUDA device")
}

fn normal(shape: &[usize], seed: u64, mean: f32, std: f32) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            let z: f32 = StandardNormal.sample(&mut rng);
            mean + std * z
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Max |a − b| over max |b|, both read back as f32 on the CPU.
fn relative(a: &Tensor, b: &Tensor) -> f32 {
    let a = a
        .to_device(&Device::Cpu)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let b = b
        .to_device(&Device::Cpu)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    assert_eq!(a.dims(), b.dims());
    let diff = (&a - &b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let scale = b
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff.is_finite(), "non-finite difference");
    diff / scale.max(1e-12)
}

/// Tolerance of a dtype's rounding, relative to the output's magnitude.
fn tolerance(dtype: DType) -> f32 {
    match dtype {
        DType::F32 => 2e-5,
        DType::F16 => 4e-3,
        _ => 3e-2,
    }
}

const DTYPES: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

fn on_gpu(t: &Tensor, dtype: DType) -> Tensor {
    t.to_dtype(dtype).unwrap().to_device(&gpu()).unwrap()
}

#[test]
fn group_norm_and_its_silu_match_the_cpu() {
    let channels = 64;
    // channel 3 is constant; the rest sit at 100 with a spread of 0.05
    let mut x = normal(&[2, channels, 24, 20], 1, 100.0, 0.05);
    let flat = Tensor::full(7.5f32, (2, 1, 24, 20), &Device::Cpu).unwrap();
    x = x.slice_assign(&[0..2, 3..4, 0..24, 0..20], &flat).unwrap();
    let weight = normal(&[channels], 2, 1.0, 0.3);
    let bias = normal(&[channels], 3, 0.0, 0.3);
    let cpu = GroupNorm {
        weight: weight.clone(),
        bias: bias.clone(),
        num_groups: 32,
        eps: 1e-5,
    };
    let want = cpu.forward(&x).unwrap();
    let want_silu = cpu.forward_silu(&x).unwrap();
    for dtype in DTYPES {
        // the offset itself is not representable in half precision: give the GPU the same rounded input
        let x_rounded = x.to_dtype(dtype).unwrap().to_dtype(DType::F32).unwrap();
        let want = if dtype == DType::F32 {
            want.clone()
        } else {
            cpu.forward(&x_rounded).unwrap()
        };
        let want_silu = if dtype == DType::F32 {
            want_silu.clone()
        } else {
            cpu.forward_silu(&x_rounded).unwrap()
        };
        let g = GroupNorm {
            weight: on_gpu(&weight, dtype),
            bias: on_gpu(&bias, dtype),
            num_groups: 32,
            eps: 1e-5,
        };
        let xg = on_gpu(&x, dtype);
        let e = relative(&g.forward(&xg).unwrap(), &want);
        let es = relative(&g.forward_silu(&xg).unwrap(), &want_silu);
        eprintln!("group norm {dtype:?}: {e:.2e}, with SiLU {es:.2e}");
        // in f32 the mean of values near 100 is known to ~100·2⁻²⁴, which is 8e-5 of the 0.05
        // spread: both sides carry that much, whatever the summation order
        let allowed = if dtype == DType::F32 {
            3e-4
        } else {
            tolerance(dtype)
        };
        assert!(e < allowed && es < allowed, "{dtype:?}: {e} {es}");
    }
}

#[test]
fn group_norm_of_a_large_plane_splits_groups_into_chunks() {
    // 4 channels × 256² per group: 256 chunks per group in the moments pass
    let x = normal(&[1, 128, 256, 256], 4, -3.0, 2.0);
    let weight = normal(&[128], 5, 1.0, 0.1);
    let bias = normal(&[128], 6, 0.0, 0.1);
    let want = GroupNorm {
        weight: weight.clone(),
        bias: bias.clone(),
        num_groups: 32,
        eps: 1e-6,
    }
    .forward_silu(&x)
    .unwrap();
    let g = GroupNorm {
        weight: on_gpu(&weight, DType::F32),
        bias: on_gpu(&bias, DType::F32),
        num_groups: 32,
        eps: 1e-6,
    };
    let e = relative(&g.forward_silu(&on_gpu(&x, DType::F32)).unwrap(), &want);
    assert!(e < 2e-5, "{e}");
}

#[test]
fn layer_norm_matches_the_cpu_with_and_without_affine() {
    for (dim, affine) in [(320, true), (1280, true), (77, false)] {
        let x = normal(&[3, 50, dim], 7, 20.0, 0.5);
        let (w, b) = (normal(&[dim], 8, 1.0, 0.2), normal(&[dim], 9, 0.0, 0.2));
        let cpu = LayerNorm {
            weight: affine.then(|| w.clone()),
            bias: affine.then(|| b.clone()),
            eps: 1e-5,
        };
        let want = cpu.forward(&x).unwrap();
        for dtype in DTYPES {
            let x_rounded = x.to_dtype(dtype).unwrap().to_dtype(DType::F32).unwrap();
            let want = if dtype == DType::F32 {
                want.clone()
            } else {
                cpu.forward(&x_rounded).unwrap()
            };
            let g = LayerNorm {
                weight: affine.then(|| on_gpu(&w, dtype)),
                bias: affine.then(|| on_gpu(&b, dtype)),
                eps: 1e-5,
            };
            let e = relative(&g.forward(&on_gpu(&x, dtype)).unwrap(), &want);
            assert!(e < tolerance(dtype), "dim {dim} {dtype:?}: {e}");
        }
    }
}

#[test]
fn softmax_matches_the_cpu_on_long_and_short_rows() {
    for cols in [77, 4096, 5000] {
        let x = normal(&[2, 3, 33, cols], 10, 0.0, 4.0);
        let want = softmax_last_dim(&x).unwrap();
        for dtype in DTYPES {
            let x_rounded = x.to_dtype(dtype).unwrap().to_dtype(DType::F32).unwrap();
            let want = if dtype == DType::F32 {
                want.clone()
            } else {
                softmax_last_dim(&x_rounded).unwrap()
            };
            let got = softmax_last_dim(&on_gpu(&x, dtype)).unwrap();
            assert_eq!(got.dtype(), dtype);
            let e = relative(&got, &want);
            assert!(e < tolerance(dtype), "cols {cols} {dtype:?}: {e}");
        }
    }
}

#[test]
fn attention_linear_and_geglu_match_the_cpu() {
    let (b, l, lc, heads, dh) = (2, 300, 77, 8, 40);
    let q = normal(&[b, l, heads * dh], 11, 0.0, 1.0);
    let k = normal(&[b, lc, heads * dh], 12, 0.0, 1.0);
    let v = normal(&[b, lc, heads * dh], 13, 0.0, 1.0);
    let self_attention = multi_head_attention(&q, &q, &q, heads, false, None, false).unwrap();
    let cross = multi_head_attention(&q, &k, &v, heads, false, None, false).unwrap();
    let proj = Linear {
        weight: normal(&[640, 320], 14, 0.0, 0.05),
        bias: Some(normal(&[640], 15, 0.0, 0.1)),
    };
    let geglu = GeGlu { proj: proj.clone() };
    let x = normal(&[b, l, 320], 16, 0.0, 1.0);
    let (want_linear, want_geglu) = (proj.forward(&x).unwrap(), geglu.forward(&x).unwrap());
    for dtype in DTYPES {
        let (qg, kg, vg) = (on_gpu(&q, dtype), on_gpu(&k, dtype), on_gpu(&v, dtype));
        let e_self = relative(
            &multi_head_attention(&qg, &qg, &qg, heads, false, None, false).unwrap(),
            &self_attention,
        );
        let e_cross = relative(
            &multi_head_attention(&qg, &kg, &vg, heads, false, None, false).unwrap(),
            &cross,
        );
        let gproj = Linear {
            weight: on_gpu(&proj.weight, dtype),
            bias: proj.bias.as_ref().map(|t| on_gpu(t, dtype)),
        };
        let e_linear = relative(&gproj.forward(&on_gpu(&x, dtype)).unwrap(), &want_linear);
        let e_geglu = relative(
            &GeGlu { proj: gproj }.forward(&on_gpu(&x, dtype)).unwrap(),
            &want_geglu,
        );
        eprintln!("{dtype:?}: self {e_self:.2e} cross {e_cross:.2e} linear {e_linear:.2e} geglu {e_geglu:.2e}");
        // products of rounded operands: a few roundings of the dtype
        let t = 4.0 * tolerance(dtype);
        assert!(
            e_self < t && e_cross < t && e_linear < t && e_geglu < t,
            "{dtype:?}"
        );
    }
}

#[test]
fn convolutions_match_the_cpu() {
    // (batch, channels, height, width, out, kernel, stride, padding)
    let cases = [
        (2, 8, 17, 13, 6, 3, 1, 1),
        (1, 8, 16, 16, 5, 3, 2, 1),
        (2, 8, 9, 11, 4, 3, 2, 0),
        (2, 16, 12, 12, 7, 1, 1, 0),
        (1, 3, 10, 10, 4, 5, 1, 2),
    ];
    for (i, &(b, c, h, w, o, k, stride, pad)) in cases.iter().enumerate() {
        let x = normal(&[b, c, h, w], 20 + i as u64, 0.0, 1.0);
        let weight = normal(&[o, c, k, k], 40 + i as u64, 0.0, 0.3);
        let want = conv2d(&x, &weight, pad, stride).unwrap();
        for dtype in DTYPES {
            let got = conv2d(&on_gpu(&x, dtype), &on_gpu(&weight, dtype), pad, stride).unwrap();
            let e = relative(&got, &want);
            assert!(e < 4.0 * tolerance(dtype), "case {i} {dtype:?}: {e}");
        }
    }
}

#[test]
fn a_large_convolution_is_made_in_bands_of_rows() {
    // 64 channels × 9 taps × 512 columns per output row: more than 2^27 column values in all
    let x = normal(&[1, 64, 512, 512], 60, 0.0, 1.0);
    let weight = normal(&[8, 64, 3, 3], 61, 0.0, 0.05);
    let want = conv2d(&x, &weight, 1, 1).unwrap();
    let got = conv2d(&on_gpu(&x, DType::F32), &on_gpu(&weight, DType::F32), 1, 1).unwrap();
    let e = relative(&got, &want);
    assert!(e < 1e-4, "{e}");
    // and the row at a band border is right, not only the maximum
    let row = |t: &Tensor| {
        t.to_device(&Device::Cpu)
            .unwrap()
            .narrow(2, 455, 2)
            .unwrap()
    };
    assert!(relative(&row(&got), &row(&want)) < 1e-4);
}
