//! The training tape's ops and backward passes against PyTorch (tools/fixtures/tape_gradients.py):
//! linear on inputs of magnitude 100, layer norm on long rows with variances from 1e-4 to 1e6,
//! exact GELU over saturated tails and near zero, two-head attention with peaked scores, an
//! embedding table with an axis swap and a mean, token mixing, and the encoder loss with row
//! norms from 1e-3 to 300. Each case: y = op(inputs), the gradients of Σ y ⊙ g (the loss
//! is a scalar itself) against torch's, relative to the reference's largest |value|.

use std::collections::HashMap;
use std::path::Path;

use brainrecon_nn::tape::{NodeId, Tape};
use candle_core::{Device, Tensor};
use serde_json::Value;

struct Fixture {
    tensors: HashMap<String, Tensor>,
    meta: Value,
}

impl Fixture {
    fn load() -> Self {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tape_gradients.safetensors");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = serde_json::from_str(&meta.metadata().as_ref().unwrap()["fixture"]).unwrap();
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap();
        Fixture { tensors, meta }
    }

    fn values(&self, key: &str) -> Vec<f32> {
        let t = &self.tensors[key];
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    fn shape(&self, key: &str) -> Vec<usize> {
        self.tensors[key].dims().to_vec()
    }

    /// A trainable leaf on `tape` from `<case>.<key>`.
    fn parameter(&self, tape: &mut Tape, case: &str, key: &str) -> NodeId {
        let k = format!("{case}.{key}");
        tape.parameter(&self.shape(&k), &self.values(&k)).unwrap()
    }
}

/// `max |got − want| ≤ tol · max |want|`.
fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
    let diff = got
        .iter()
        .zip(want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        diff <= tol * scale,
        "{what}: off by {diff} (scale {scale}, tolerance {tol})"
    );
}

/// Back-propagates `<case>.g` from `y` and compares y and every listed input's gradient.
fn check(f: &Fixture, tape: &mut Tape, case: &str, y: NodeId, inputs: &[(&str, NodeId)], tol: f32) {
    assert_close(
        &format!("{case}.y"),
        tape.value(y),
        &f.values(&format!("{case}.y")),
        tol,
    );
    tape.backward_from(y, &f.values(&format!("{case}.g")))
        .unwrap();
    for (key, id) in inputs {
        let want = f.values(&format!("{case}.d{key}"));
        let got = tape
            .grad(*id)
            .unwrap_or_else(|| panic!("{case}: no gradient of {key}"));
        assert_close(&format!("{case}.d{key}"), got, &want, tol);
    }
}

#[test]
fn every_case_is_tested() {
    let f = Fixture::load();
    let cases: Vec<&str> = f.meta["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        cases,
        [
            "linear",
            "layer_norm",
            "gelu",
            "attention",
            "embed",
            "mix_rows",
            "loss"
        ]
    );
}

#[test]
fn linear_matches_pytorch() {
    let f = Fixture::load();
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
    let f = Fixture::load();
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
    let f = Fixture::load();
    let mut tape = Tape::new();
    let x = f.parameter(&mut tape, "gelu", "x");
    let y = tape.gelu(x);
    check(&f, &mut tape, "gelu", y, &[("x", x)], 1e-5);
}

#[test]
fn attention_matches_pytorch_with_peaked_scores() {
    let f = Fixture::load();
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
    let f = Fixture::load();
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
    let f = Fixture::load();
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
    let f = Fixture::load();
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
    assert_close("loss.dx", tape.grad(x).unwrap(), &f.values("loss.dx"), 1e-4);
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
