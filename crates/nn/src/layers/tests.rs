//! Gradients against finite differences, fused paths against differentiable ones.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};

use super::*;

#[test]
fn fast_activations_match_libm_in_f64_and_leave_training_to_candle() -> Result<()> {
    let dev = Device::Cpu;
    // 200,001 points over [-12, 12], more than 64Ki so the parallel split runs too.
    let xs: Vec<f32> = (0..=200_000).map(|i| -12.0 + i as f32 * 1.2e-4).collect();
    let x = Tensor::from_vec(xs.clone(), xs.len(), &dev)?;
    let x64 = x.to_dtype(DType::F64)?;
    for (ours, reference, what) in [
        (silu(&x)?, x64.silu()?, "silu"),
        (gelu(&x)?, x64.gelu_erf()?, "gelu"),
    ] {
        let ours: Vec<f32> = ours.to_vec1()?;
        let reference: Vec<f64> = reference.to_vec1()?;
        for ((&v, &o), &r) in xs.iter().zip(&ours).zip(&reference) {
            let tolerance = 1e-6 * (v.abs() as f64).max(1.0);
            assert!(
                (o as f64 - r).abs() < tolerance,
                "{what}({v}) = {o}, expected {r}"
            );
        }
    }
    // A tensor that tracks gradients takes candle's op, which has a backward pass.
    let var = Var::from_tensor(&Tensor::new(&[-1.5f32, 0.5, 2.0], &dev)?)?;
    let loss = (silu(var.as_tensor())? + gelu(var.as_tensor())?)?.sum_all()?;
    let grad: Vec<f32> = loss.backward()?.get(var.as_tensor()).unwrap().to_vec1()?;
    assert!(
        grad.iter().all(|g| g.is_finite() && g.abs() > 1e-3),
        "{grad:?}"
    );
    Ok(())
}

fn det_values(n: usize, seed: u64) -> Vec<f64> {
    // A small deterministic generator (splitmix64) mapped to [-1, 1).
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

/// Central finite difference of a scalar function of one tensor, in f64.
fn finite_diff(f: &dyn Fn(&Tensor) -> Result<Tensor>, x: &Tensor, h: f64) -> Result<Vec<f64>> {
    let base: Vec<f64> = x.flatten_all()?.to_vec1()?;
    let mut out = Vec::with_capacity(base.len());
    for i in 0..base.len() {
        let mut p = base.clone();
        p[i] += h;
        let mut m = base.clone();
        m[i] -= h;
        let fp = f(&Tensor::from_vec(p, x.shape(), x.device())?)?.to_scalar::<f64>()?;
        let fm = f(&Tensor::from_vec(m, x.shape(), x.device())?)?.to_scalar::<f64>()?;
        out.push((fp - fm) / (2.0 * h));
    }
    Ok(out)
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn softmax_matches_definition_and_gradient_matches_finite_differences() -> Result<()> {
    let dev = Device::Cpu;
    let x = Tensor::from_vec(det_values(24, 1), (2, 3, 4), &dev)?;
    let x = (x * 5.0)?;
    let probe = Tensor::from_vec(det_values(24, 2), (2, 3, 4), &dev)?;
    // Forward against the definition.
    let y: Vec<f64> = softmax_last_dim(&x)?.flatten_all()?.to_vec1()?;
    let xv: Vec<f64> = x.flatten_all()?.to_vec1()?;
    for row in 0..6 {
        let r = &xv[row * 4..row * 4 + 4];
        let z: f64 = r.iter().map(|v| v.exp()).sum();
        for j in 0..4 {
            assert!((y[row * 4 + j] - r[j].exp() / z).abs() < 1e-12);
        }
    }
    let loss = |t: &Tensor| -> Result<Tensor> { Ok((softmax_last_dim(t)? * &probe)?.sum_all()?) };
    let var = Var::from_tensor(&x)?;
    let grads = loss(var.as_tensor())?.backward()?;
    let g: Vec<f64> = grads
        .get(var.as_tensor())
        .unwrap()
        .flatten_all()?
        .to_vec1()?;
    let fd = finite_diff(&loss, &x, 1e-5)?;
    let err = max_abs_diff(&g, &fd);
    assert!(err < 1e-7, "softmax grad error {err}");
    assert!(g.iter().any(|v| v.abs() > 1e-3));
    Ok(())
}

#[test]
fn layer_norm_gradients_reach_input_weight_and_bias() -> Result<()> {
    let dev = Device::Cpu;
    let x = Tensor::from_vec(det_values(30, 3), (2, 3, 5), &dev)?;
    let w = (Tensor::from_vec(det_values(5, 4), 5, &dev)? + 1.0)?;
    let b = Tensor::from_vec(det_values(5, 5), 5, &dev)?;
    let probe = Tensor::from_vec(det_values(30, 6), (2, 3, 5), &dev)?;
    let eps = 1e-5;
    let loss_of = |x: &Tensor, w: &Tensor, b: &Tensor| -> Result<Tensor> {
        let ln = LayerNorm {
            weight: Some(w.clone()),
            bias: Some(b.clone()),
            eps,
        };
        // A nonlinear scalar so that the bias gradient is not trivial.
        Ok((ln.forward(x)?.sqr()? * &probe)?.sum_all()?)
    };
    let (xv, wv, bv) = (
        Var::from_tensor(&x)?,
        Var::from_tensor(&w)?,
        Var::from_tensor(&b)?,
    );
    let grads = loss_of(xv.as_tensor(), wv.as_tensor(), bv.as_tensor())?.backward()?;
    let gx: Vec<f64> = grads
        .get(xv.as_tensor())
        .unwrap()
        .flatten_all()?
        .to_vec1()?;
    let gw: Vec<f64> = grads
        .get(wv.as_tensor())
        .unwrap()
        .flatten_all()?
        .to_vec1()?;
    let gb: Vec<f64> = grads
        .get(bv.as_tensor())
        .unwrap()
        .flatten_all()?
        .to_vec1()?;
    let fx = finite_diff(&|t| loss_of(t, &w, &b), &x, 1e-5)?;
    let fw = finite_diff(&|t| loss_of(&x, t, &b), &w, 1e-5)?;
    let fb = finite_diff(&|t| loss_of(&x, &w, t), &b, 1e-5)?;
    for (name, g, f) in [("x", &gx, &fx), ("weight", &gw, &fw), ("bias", &gb, &fb)] {
        let err = max_abs_diff(g, f);
        assert!(err < 1e-6, "layer norm grad error for {name}: {err}");
        assert!(g.iter().any(|v| v.abs() > 1e-3), "{name} grad is zero");
    }
    Ok(())
}

#[test]
fn group_norm_gradient_matches_finite_differences() -> Result<()> {
    let dev = Device::Cpu;
    let x = Tensor::from_vec(det_values(2 * 4 * 3 * 2, 7), (2, 4, 3, 2), &dev)?;
    let w = (Tensor::from_vec(det_values(4, 8), 4, &dev)? + 1.0)?;
    let b = Tensor::from_vec(det_values(4, 9), 4, &dev)?;
    let probe = Tensor::from_vec(det_values(48, 10), (2, 4, 3, 2), &dev)?;
    let loss_of = |x: &Tensor, w: &Tensor| -> Result<Tensor> {
        let gn = GroupNorm {
            weight: w.clone(),
            bias: b.clone(),
            num_groups: 2,
            eps: 1e-6,
        };
        Ok((gn.forward(x)?.sqr()? * &probe)?.sum_all()?)
    };
    let (xv, wv) = (Var::from_tensor(&x)?, Var::from_tensor(&w)?);
    let grads = loss_of(xv.as_tensor(), wv.as_tensor())?.backward()?;
    let gx: Vec<f64> = grads
        .get(xv.as_tensor())
        .unwrap()
        .flatten_all()?
        .to_vec1()?;
    let gw: Vec<f64> = grads
        .get(wv.as_tensor())
        .unwrap()
        .flatten_all()?
        .to_vec1()?;
    assert!(max_abs_diff(&gx, &finite_diff(&|t| loss_of(t, &w), &x, 1e-5)?) < 1e-6);
    assert!(max_abs_diff(&gw, &finite_diff(&|t| loss_of(&x, t), &w, 1e-5)?) < 1e-6);
    Ok(())
}

#[test]
fn conv_attention_and_activations_are_differentiable() -> Result<()> {
    let dev = Device::Cpu;
    // Strided conv + 2x upsample + GEGLU-style activations + causal attention.
    let x = Tensor::from_vec(det_values(2 * 3 * 6 * 6, 11), (2, 3, 6, 6), &dev)?;
    let k = Tensor::from_vec(det_values(4 * 3 * 3 * 3, 12), (4, 3, 3, 3), &dev)?;
    let probe = Tensor::from_vec(det_values(2 * 4 * 6 * 6, 13), (2, 4, 6, 6), &dev)?;
    let loss_of = |x: &Tensor, k: &Tensor| -> Result<Tensor> {
        let conv = Conv2d {
            weight: k.clone(),
            bias: None,
            stride: 2,
            padding: 1,
        };
        let y = upsample_nearest_2x(&conv.forward(x)?)?; // [2, 4, 6, 6]
        let y = (gelu(&y)? + gelu_tanh(&y)? + quick_gelu(&y)? + silu(&y)?)?;
        let seq = y.reshape((2, 4, 36))?.transpose(1, 2)?.contiguous()?; // [2, 36, 4]
        let a = multi_head_attention(&seq, &seq, &seq, 2, true, None, false)?;
        let a = a.transpose(1, 2)?.reshape((2, 4, 6, 6))?;
        Ok((a * &probe)?.sum_all()?)
    };
    let (xv, kv) = (Var::from_tensor(&x)?, Var::from_tensor(&k)?);
    let grads = loss_of(xv.as_tensor(), kv.as_tensor())?.backward()?;
    let gx: Vec<f64> = grads
        .get(xv.as_tensor())
        .unwrap()
        .flatten_all()?
        .to_vec1()?;
    let gk: Vec<f64> = grads
        .get(kv.as_tensor())
        .unwrap()
        .flatten_all()?
        .to_vec1()?;
    let ex = max_abs_diff(&gx, &finite_diff(&|t| loss_of(t, &k), &x, 1e-5)?);
    let ek = max_abs_diff(&gk, &finite_diff(&|t| loss_of(&x, t), &k, 1e-5)?);
    // candle's GELU backward formulas use 6-digit constants (0.398942, 0.0356774), so the
    // tolerance is relative to the gradient scale rather than at f64 precision.
    let scale = |g: &[f64]| g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(scale(&gx) > 1e-2 && scale(&gk) > 1e-2);
    assert!(ex < 1e-5 * scale(&gx), "input grad error {ex}");
    assert!(ek < 1e-5 * scale(&gk), "kernel grad error {ek}");
    Ok(())
}

/// f32 softmax while gradients are tracked: the one-pass op and its one-pass backward
/// against the elementary ops in f64, on rows with a wide range and a constant row.
#[test]
fn trainable_f32_softmax_matches_the_elementary_ops() -> Result<()> {
    let dev = Device::Cpu;
    let mut v = det_values(7 * 37, 41);
    v.iter_mut().for_each(|x| *x *= 30.0);
    v[..37].iter_mut().for_each(|x| *x = 2.5);
    let x64 = Tensor::from_vec(v, (7, 37), &dev)?;
    let probe64 = Tensor::from_vec(det_values(7 * 37, 42), (7, 37), &dev)?;
    let run = |x: &Tensor, probe: &Tensor| -> Result<(Vec<f64>, Vec<f64>)> {
        let var = Var::from_tensor(x)?;
        let y = softmax_last_dim(var.as_tensor())?;
        let grads = (&y * probe)?.sum_all()?.backward()?;
        let g = grads.get(var.as_tensor()).expect("a gradient");
        let flat = |t: &Tensor| -> Result<Vec<f64>> {
            Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?)
        };
        Ok((flat(&y)?, flat(g)?))
    };
    let (y64, g64) = run(&x64, &probe64)?;
    let (y32, g32) = run(&x64.to_dtype(DType::F32)?, &probe64.to_dtype(DType::F32)?)?;
    let gscale = g64.iter().fold(0f64, |m, v| m.max(v.abs()));
    assert!(max_abs_diff(&y32, &y64) < 1e-6, "softmax values");
    assert!(
        max_abs_diff(&g32, &g64) < 1e-5 * gscale,
        "softmax gradients"
    );
    // the constant row: uniform probabilities, gradient summing to zero
    assert!(y32[..37].iter().all(|p| (p - 1.0 / 37.0).abs() < 1e-7));
    assert!(g32[..37].iter().sum::<f64>().abs() < 1e-6);
    Ok(())
}

#[test]
fn fused_inference_paths_agree_with_differentiable_paths() -> Result<()> {
    let dev = Device::Cpu;
    // Softmax: fused kernel (constant input) vs elementary ops.
    let x = (Tensor::from_vec(det_values(600, 30), (4, 150), &dev)?.to_dtype(DType::F32)? * 20.0)?;
    let fused = softmax_last_dim(&x)?;
    let ops = softmax_last_dim_differentiable(&x)?;
    let d = (fused - ops)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(d < 1e-6, "softmax paths differ by {d}");
    // Attention: chunked inference path (2 x 3000 x 3000 scores > 2^24) vs one-shot
    // tracked path.
    let mk = |seed| -> Result<Tensor> {
        Ok(
            Tensor::from_vec(det_values(2 * 3000 * 8, seed), (2, 1, 3000, 8), &dev)?
                .to_dtype(DType::F32)?,
        )
    };
    let (q, k, v) = (mk(31)?, mk(32)?, mk(33)?);
    let chunked = scaled_dot_product_attention(&q, &k, &v, None, 0.5, false)?;
    let qv = Var::from_tensor(&q)?;
    let whole = scaled_dot_product_attention(qv.as_tensor(), &k, &v, None, 0.5, false)?;
    let d = (chunked - whole.detach())?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    assert!(d < 1e-6, "attention paths differ by {d}");
    Ok(())
}

#[test]
fn causal_attention_ignores_future_positions() -> Result<()> {
    let dev = Device::Cpu;
    let q = Tensor::from_vec(det_values(5 * 4, 20), (1, 5, 4), &dev)?.to_dtype(DType::F32)?;
    let v1 = Tensor::from_vec(det_values(20, 21), (1, 5, 4), &dev)?.to_dtype(DType::F32)?;
    // Changing the last position must not change the outputs at earlier positions.
    let mut vals: Vec<f32> = v1.flatten_all()?.to_vec1()?;
    for x in vals[16..].iter_mut() {
        *x += 3.0;
    }
    let v2 = Tensor::from_vec(vals, (1, 5, 4), &dev)?;
    let a1 = multi_head_attention(&q, &v1, &v1, 2, true, None, false)?;
    let a2 = multi_head_attention(&q, &v2, &v2, 2, true, None, false)?;
    let d = (a1 - a2)?.abs()?;
    let early = d.narrow(1, 0, 4)?.max_all()?.to_scalar::<f32>()?;
    let last = d.narrow(1, 4, 1)?.max_all()?.to_scalar::<f32>()?;
    assert_eq!(early, 0.0);
    assert!(last > 0.1);
    Ok(())
}

#[test]
fn missing_and_misshapen_weights_are_named() {
    let dev = Device::Cpu;
    let mut ts = HashMap::new();
    ts.insert(
        "blk.proj.weight".to_string(),
        Tensor::zeros((3, 2), DType::F32, &dev).unwrap(),
    );
    let vb = tensors_var_builder(ts, DType::F32, &dev);
    match Linear::new(vb.pp("blk").pp("proj"), 2, 3, true) {
        Err(ModelError::MissingWeight { name }) => assert_eq!(name, "blk.proj.bias"),
        other => panic!("expected a missing tensor, got {other:?}"),
    }
    match Linear::new(vb.pp("blk").pp("proj"), 3, 3, false) {
        Err(ModelError::ShapeMismatch {
            name,
            expected,
            got,
        }) => {
            assert_eq!(name, "blk.proj.weight");
            assert_eq!(expected, vec![3, 3]);
            assert_eq!(got, vec![3, 2]);
        }
        other => panic!("expected a shape mismatch, got {other:?}"),
    }
}
