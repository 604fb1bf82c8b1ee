//! The training tape's ops and backward passes against PyTorch (tools/fixtures/tape_gradients.py):
//! linear on inputs of magnitude 100, layer norm on long rows with variances from 1e-4 to 1e6,
//! exact GELU over saturated tails and near zero, two-head attention with peaked scores, an
//! embedding table with an axis swap and a mean, token mixing, and the encoder loss with row
//! norms from 1e-3 to 300. Each case: y = op(inputs), the gradients of Σ y ⊙ g (the loss
//! is a scalar itself) against torch's, relative to the reference's largest |value|.
//!
//! The U-Net's ops (reference in float64 from the same float32 inputs): convolutions 3×3 at
//! stride 1 and 2 on odd sizes with channels of magnitude 100 and 1e-3, 1×1, and one on data
//! (no input gradient); group norm with variances from 1e-4 (around 10) to 1e6 and constant
//! groups, with and without SiLU; SiLU; upsampling and a skip concatenation; a per-channel
//! addition (the time embedding); GEGLU after its
//! linear; cross-attention on a 77-token context through the k/v linears; the MSE of two
//! nodes and B2C's CLIP alignment term. The convolutions, group norms and cross-attention run
//! in pools of 1 and 3 threads (the per-image and the threaded-product paths); a chain of
//! them on inputs large enough to be split agrees between 1 and 3 threads, and a second step
//! on the tape's kept buffers gives the same bits as the first.

mod common;

use brainrecon_nn::tape::Tape;
use common::tape::{assert_scaled_close, check, in_pools, Fixture};

#[test]
fn every_case_is_tested() {
    let f = Fixture::load("tape_gradients.safetensors");
    assert_eq!(
        f.cases(),
        [
            "linear",
            "layer_norm",
            "gelu",
            "attention",
            "embed",
            "mix_rows",
            "loss",
            "conv3x3",
            "conv3x3_s2",
            "conv1x1",
            "conv_input",
            "group_norm",
            "group_norm_silu",
            "silu",
            "upsample_concat",
            "channel_add",
            "geglu",
            "cross_attention",
            "mse",
            "align"
        ]
    );
}

#[test]
fn linear_matches_pytorch() {
    let f = Fixture::load("tape_gradients.safetensors");
    let mut tape = Tape::new();
    let [x, w, b] = ["x", "w", "b"].map(|k| f.parameter(&mut tape, "linear", k));
    let y = tape.linear(x, w, Some(b)).unwrap();
    assert_eq!(tape.shape(y), [3, 37, 11]);
    check(
        &f,
        &mut tape,
        "linear",
        y,
        &[("x", x), ("w", w), ("b", b)],
        1e-5,
    );
}

#[test]
fn layer_norm_matches_pytorch_on_long_rows_and_extreme_variances() {
    let f = Fixture::load("tape_gradients.safetensors");
    let mut tape = Tape::new();
    let [x, w, b] = ["x", "w", "b"].map(|k| f.parameter(&mut tape, "layer_norm", k));
    let y = tape.layer_norm(x, w, b, 1e-5).unwrap();
    // the row of variance 1e-4 around 100 loses digits in f32 on both sides
    check(
        &f,
        &mut tape,
        "layer_norm",
        y,
        &[("x", x), ("w", w), ("b", b)],
        2e-4,
    );
}

#[test]
fn gelu_matches_pytorch() {
    let f = Fixture::load("tape_gradients.safetensors");
    let mut tape = Tape::new();
    let x = f.parameter(&mut tape, "gelu", "x");
    let y = tape.gelu(x);
    check(&f, &mut tape, "gelu", y, &[("x", x)], 1e-5);
}

#[test]
fn attention_matches_pytorch_with_peaked_scores() {
    let f = Fixture::load("tape_gradients.safetensors");
    let mut tape = Tape::new();
    let [q, k, v] = ["q", "k", "v"].map(|key| f.parameter(&mut tape, "attention", key));
    let y = tape.attention(q, k, v, 2).unwrap();
    check(
        &f,
        &mut tape,
        "attention",
        y,
        &[("q", q), ("k", k), ("v", v)],
        1e-4,
    );
}

#[test]
fn embedding_swap_and_mean_match_pytorch() {
    let f = Fixture::load("tape_gradients.safetensors");
    let mut tape = Tape::new();
    let [x, table] = ["x", "table"].map(|k| f.parameter(&mut tape, "embed", k));
    let (o, r, i, d) = (2, 3, 4, 5);
    let added = tape.add_table(x, table, [o, r, i, d]).unwrap();
    let swapped = tape.swap_axes(added, [o, r, i, d]).unwrap();
    let y = tape.mean_axis(swapped, [o * i, r, d]).unwrap();
    tape.reshape(y, &[o, i, d]).unwrap();
    check(
        &f,
        &mut tape,
        "embed",
        y,
        &[("x", x), ("table", table)],
        1e-5,
    );
}

#[test]
fn mix_rows_matches_pytorch() {
    let f = Fixture::load("tape_gradients.safetensors");
    let mut tape = Tape::new();
    let [x, w, b] = ["x", "w", "b"].map(|k| f.parameter(&mut tape, "mix_rows", k));
    let y = tape.mix_rows(x, w, b).unwrap();
    check(
        &f,
        &mut tape,
        "mix_rows",
        y,
        &[("x", x), ("w", w), ("b", b)],
        1e-5,
    );
}

#[test]
fn encoder_loss_matches_pytorch_across_row_norms() {
    let f = Fixture::load("tape_gradients.safetensors");
    let mut tape = Tape::new();
    let x = f.parameter(&mut tape, "loss", "x");
    let settings = &f.meta["loss"];
    let (loss, parts) = tape
        .contrastive_alignment_loss(
            x,
            &f.values("loss.target"),
            settings["temperature"].as_f64().unwrap(),
            settings["align_weight"].as_f64().unwrap(),
        )
        .unwrap();
    let want = f.values("loss.y")[0];
    assert!((parts.total as f32 - want).abs() <= 1e-5 * want.abs().max(1.0));
    tape.backward(loss).unwrap();
    assert_scaled_close("loss.dx", tape.grad(x).unwrap(), &f.values("loss.dx"), 1e-4);
}

#[test]
fn gradients_accumulate_over_several_uses_and_buffers_are_reused() {
    // y = gelu(x) + x: x gets a written and then an added gradient; a second step on the
    // cleared tape gives the same values from the reused buffers.
    let mut tape = Tape::new();
    let values: Vec<f32> = (0..50_000).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
    let mut first = Vec::new();
    for _ in 0..2 {
        tape.clear();
        let x = tape.parameter(&[50_000], &values).unwrap();
        let g = tape.gelu(x);
        let y = tape.add(g, x).unwrap();
        tape.backward_from(y, &vec![1.0; 50_000]).unwrap();
        let dx = tape.grad(x).unwrap().to_vec();
        for (i, (&d, &v)) in dx.iter().zip(&values).enumerate().step_by(997) {
            let phi = (-0.5 * (v as f64).powi(2)).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let cdf = 0.5 * (1.0 + erf(v as f64 / std::f64::consts::SQRT_2));
            let want = 1.0 + cdf + v as f64 * phi;
            assert!(
                (d as f64 - want).abs() < 1e-5,
                "dx[{i}] = {d}, expected {want}"
            );
        }
        if first.is_empty() {
            first = dx;
        } else {
            assert_eq!(dx, first);
        }
    }
}

/// The error function (Abramowitz & Stegun 7.1.26 is too coarse here: a series to 1e-12).
fn erf(x: f64) -> f64 {
    if x.abs() > 6.0 {
        return x.signum();
    }
    // Σ (−1)^n x^(2n+1) / (n! (2n+1)) · 2/√π, enough terms for |x| ≤ 6
    let (mut term, mut sum, mut n) = (x, x, 0.0);
    while term.abs() > 1e-17 * sum.abs().max(1e-300) && n < 400.0 {
        n += 1.0;
        term *= -x * x / n;
        sum += term / (2.0 * n + 1.0);
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

/// `<case>`: conv2d of x, w (and b) at `stride`, `padding`; x is data when the case has no dx.
fn check_conv(case: &str, stride: usize, padding: usize) {
    let f = Fixture::load("tape_gradients.safetensors");
    in_pools(|| {
        let mut tape = Tape::new();
        let key = |k: &str| format!("{case}.{k}");
        let x = if f.tensors.contains_key(&key("dx")) {
            f.parameter(&mut tape, case, "x")
        } else {
            tape.input(&f.shape(&key("x")), &f.values(&key("x")))
                .unwrap()
        };
        let w = f.parameter(&mut tape, case, "w");
        let b = f
            .tensors
            .contains_key(&key("b"))
            .then(|| f.parameter(&mut tape, case, "b"));
        let y = tape.conv2d(x, w, b, stride, padding).unwrap();
        assert_eq!(tape.shape(y), f.shape(&key("y")));
        let mut inputs = vec![("w", w)];
        if let Some(b) = b {
            inputs.push(("b", b));
        }
        if f.tensors.contains_key(&key("dx")) {
            inputs.push(("x", x));
        } else {
            assert!(tape.grad(x).is_none());
        }
        check(&f, &mut tape, case, y, &inputs, 1e-5);
    });
}

#[test]
fn conv3x3_matches_pytorch_across_channel_magnitudes() {
    check_conv("conv3x3", 1, 1);
}

#[test]
fn conv3x3_at_stride_2_matches_pytorch_on_odd_sizes() {
    check_conv("conv3x3_s2", 2, 1);
}

#[test]
fn conv1x1_matches_pytorch() {
    check_conv("conv1x1", 1, 0);
}

#[test]
fn conv_on_data_matches_pytorch_without_an_input_gradient() {
    check_conv("conv_input", 1, 0);
}

#[test]
fn group_norm_matches_pytorch_on_extreme_and_constant_groups() {
    let f = Fixture::load("tape_gradients.safetensors");
    for (case, groups, silu) in [("group_norm", 4, false), ("group_norm_silu", 3, true)] {
        in_pools(|| {
            let mut tape = Tape::new();
            let [x, w, b] = ["x", "w", "b"].map(|k| f.parameter(&mut tape, case, k));
            let y = tape.group_norm(x, w, b, groups, 1e-5, silu).unwrap();
            // the group of variance 1e-4 around 10: its mean rounded to f32 costs ~1e-4
            check(
                &f,
                &mut tape,
                case,
                y,
                &[("x", x), ("w", w), ("b", b)],
                2e-4,
            );
        });
    }
}

#[test]
fn silu_matches_pytorch() {
    let f = Fixture::load("tape_gradients.safetensors");
    let mut tape = Tape::new();
    let x = f.parameter(&mut tape, "silu", "x");
    let y = tape.silu(x);
    check(&f, &mut tape, "silu", y, &[("x", x)], 1e-5);
}

#[test]
fn upsampling_and_skip_concatenation_match_pytorch() {
    let f = Fixture::load("tape_gradients.safetensors");
    let mut tape = Tape::new();
    let [a, skip] = ["a", "skip"].map(|k| f.parameter(&mut tape, "upsample_concat", k));
    let up = tape.upsample_nearest2x(a).unwrap();
    let y = tape.concat_channels(&[up, skip]).unwrap();
    assert_eq!(tape.shape(y), [2, 5, 6, 10]);
    check(
        &f,
        &mut tape,
        "upsample_concat",
        y,
        &[("a", a), ("skip", skip)],
        1e-6,
    );
}

#[test]
fn per_channel_addition_matches_pytorch() {
    let f = Fixture::load("tape_gradients.safetensors");
    let mut tape = Tape::new();
    let [x, t] = ["x", "t"].map(|k| f.parameter(&mut tape, "channel_add", k));
    let y = tape.add_per_channel(x, t).unwrap();
    check(&f, &mut tape, "channel_add", y, &[("x", x), ("t", t)], 1e-6);
}

#[test]
fn geglu_after_its_linear_matches_pytorch() {
    let f = Fixture::load("tape_gradients.safetensors");
    let mut tape = Tape::new();
    let [x, w, b] = ["x", "w", "b"].map(|k| f.parameter(&mut tape, "geglu", k));
    let h = tape.linear(x, w, Some(b)).unwrap();
    let y = tape.geglu(h).unwrap();
    assert_eq!(tape.shape(y), [2, 7, 10]);
    check(
        &f,
        &mut tape,
        "geglu",
        y,
        &[("x", x), ("w", w), ("b", b)],
        1e-5,
    );
}

#[test]
fn cross_attention_on_a_long_context_matches_pytorch() {
    let f = Fixture::load("tape_gradients.safetensors");
    in_pools(|| {
        let mut tape = Tape::new();
        let [q, context, wk, wv] =
            ["q", "context", "wk", "wv"].map(|k| f.parameter(&mut tape, "cross_attention", k));
        let k = tape.linear(context, wk, None).unwrap();
        let v = tape.linear(context, wv, None).unwrap();
        let y = tape.attention(q, k, v, 2).unwrap();
        assert_eq!(tape.shape(y), [2, 11, 16]);
        // the context's gradient arrives twice (through k and v): written, then added
        check(
            &f,
            &mut tape,
            "cross_attention",
            y,
            &[("q", q), ("context", context), ("wk", wk), ("wv", wv)],
            1e-5,
        );
    });
}

#[test]
fn mse_of_two_nodes_matches_pytorch() {
    let f = Fixture::load("tape_gradients.safetensors");
    let mut tape = Tape::new();
    let [a, b] = ["a", "b"].map(|k| f.parameter(&mut tape, "mse", k));
    let loss = tape.mse(a, b).unwrap();
    assert_scaled_close("mse.y", tape.value(loss), &f.values("mse.y"), 1e-6);
    tape.backward(loss).unwrap();
    assert_scaled_close("mse.da", tape.grad(a).unwrap(), &f.values("mse.da"), 1e-6);
    assert_scaled_close("mse.db", tape.grad(b).unwrap(), &f.values("mse.db"), 1e-6);
}

#[test]
fn b2c_alignment_term_matches_pytorch_across_row_norms() {
    let f = Fixture::load("tape_gradients.safetensors");
    let mut tape = Tape::new();
    let x = f.parameter(&mut tape, "align", "x");
    let weight = f.meta["align"]["weight"].as_f64().unwrap();
    let (loss, term) = tape
        .alignment_loss(x, &f.values("align.target"), weight)
        .unwrap();
    let want = f.values("align.y")[0];
    assert!((tape.value(loss)[0] - want).abs() <= 1e-6 * want.abs().max(1.0));
    assert!(((weight * term) as f32 - want).abs() <= 1e-6 * want.abs().max(1.0));
    tape.backward(loss).unwrap();
    assert_scaled_close(
        "align.dx",
        tape.grad(x).unwrap(),
        &f.values("align.dx"),
        1e-5,
    );
}

/// Seeded values in [-scale, scale), a sine so that no generator is needed.
fn wave(n: usize, phase: f32, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| (i as f32 * 0.7311 + phase).sin() * scale)
        .collect()
}

#[test]
fn split_work_agrees_with_one_thread_and_buffers_are_reused() {
    // Inputs above the serial threshold, so that 3 threads split the images, the groups and
    // the element-wise passes; each pool runs two steps on one tape (the second from the
    // kept buffers, the same bits). Between pools the weight gradients are summed in
    // another order (per grain, then the grains), so they agree to rounding.
    let (b, c, h, w) = (4, 16, 15, 17);
    let x0 = wave(b * c * h * w, 0.3, 2.0);
    let w3 = wave(c * c * 9, 1.1, 0.1);
    let w1 = wave(8 * c, 2.3, 0.3);
    let ones = vec![1f32; c];
    let zeros = vec![0f32; c];
    let run = || {
        let mut tape = Tape::new();
        let mut all = Vec::new();
        for _ in 0..2 {
            tape.clear();
            let x = tape.parameter(&[b, c, h, w], &x0).unwrap();
            let k3 = tape.parameter(&[c, c, 3, 3], &w3).unwrap();
            let k1 = tape.parameter(&[8, c, 1, 1], &w1).unwrap();
            let gw = tape.parameter(&[c], &ones).unwrap();
            let gb = tape.parameter(&[c], &zeros).unwrap();
            let n = tape.group_norm(x, gw, gb, 4, 1e-5, true).unwrap();
            let y = tape.conv2d(n, k3, None, 1, 1).unwrap();
            let s = tape.silu(y);
            let z = tape.conv2d(s, k3, None, 2, 1).unwrap();
            let u = tape.upsample_nearest2x(z).unwrap();
            let p = tape.conv2d(x, k1, None, 1, 0).unwrap();
            let shape = tape.shape(p).to_vec();
            let target = tape.input(&shape, &vec![0.5; 8 * b * h * w]).unwrap();
            let loss = tape.mse(p, target).unwrap();
            let len = tape.value(u).len();
            tape.backward_from(u, &wave(len, 0.9, 1.0)).unwrap();
            let mut step: Vec<Vec<f32>> = [n, y, z, u, p, loss]
                .iter()
                .map(|&id| tape.value(id).to_vec())
                .collect();
            step.extend([x, k3, gw, gb].map(|id| tape.grad(id).unwrap().to_vec()));
            tape.backward(loss).unwrap();
            step.extend([x, k1].map(|id| tape.grad(id).unwrap().to_vec()));
            all.push(step);
        }
        assert_eq!(all[0], all[1], "a second step on the kept buffers");
        all.pop().unwrap()
    };
    let pool = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(run)
    };
    let (one, three) = (pool(1), pool(3));
    for (k, (a, b)) in one.iter().zip(&three).enumerate() {
        assert_scaled_close(&format!("1 against 3 threads, output {k}"), b, a, 1e-5);
    }
}
