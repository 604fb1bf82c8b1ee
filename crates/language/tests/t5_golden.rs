//! Golden tests of the T5 encoder against transformers 5.23's `T5EncoderModel` (fixtures from
//! `tools/fixtures/musicgen.py`: tiny random checkpoints, one in t5-base's layout with relu
//! feed-forward blocks saved as a full `T5ForConditionalGeneration`, one with gated-gelu blocks
//! and few buckets; see the README there).

use std::collections::HashMap;
use std::path::PathBuf;

use brainrecon_language::t5::{T5Config, T5EncoderModel};
use brainrecon_testkit::tensor::assert_close_scaled;
use candle_core::{DType, Device, Tensor};

/// max |got − want| ≤ TOL · max |want|.
const TOL: f32 = 2e-5;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/t5")
}

fn expected(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(
        fixtures().join(name).join("expected.safetensors"),
        &Device::Cpu,
    )
    .unwrap()
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Checks and returns the max abs error.
fn assert_close(what: &str, got: &Tensor, want: &Tensor) -> f32 {
    assert_close_scaled(what, got, want, TOL, 0.1)
}

fn check(name: &str) {
    let model = T5EncoderModel::load_dir(&fixtures().join(name), &Device::Cpu).unwrap();
    let e = expected(name);
    let long = model.forward(&e["long.input_ids"], None).unwrap();
    assert_close(
        &format!("{name} long sequence"),
        &long,
        &e["long.last_hidden_state"],
    );
    let mask = &e["batch.attention_mask"];
    let batch = model.forward(&e["batch.input_ids"], Some(mask)).unwrap();
    assert_close(
        &format!("{name} padded batch"),
        &batch,
        &e["batch.last_hidden_state"],
    );
    // Padding matters: without the mask the padded rows' real tokens change.
    let unmasked = model.forward(&e["batch.input_ids"], None).unwrap();
    let real = |t: &Tensor| {
        t.broadcast_mul(&mask.to_dtype(DType::F32).unwrap().unsqueeze(2).unwrap())
            .unwrap()
    };
    let moved = max_abs(&(real(&unmasked) - real(&e["batch.last_hidden_state"])).unwrap());
    assert!(moved > 1e-2, "{name}: the mask changes nothing ({moved})");
}

#[test]
fn relu_encoder_matches_transformers() {
    check("relu");
}

#[test]
fn gated_gelu_encoder_matches_transformers() {
    check("gated");
}

#[test]
fn the_long_sequence_reaches_past_max_distance() {
    for name in ["relu", "gated"] {
        let c = T5Config::from_file(&fixtures().join(name).join("config.json")).unwrap();
        let e = expected(name);
        let len = e["long.input_ids"].dim(1).unwrap();
        assert!(len > c.relative_attention_max_distance, "{name}: {len}");
    }
}

#[test]
fn a_missing_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures().join("gated");
    std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
    let mut tensors =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    tensors.remove("encoder.block.1.layer.1.DenseReluDense.wi_1.weight");
    brainrecon_testkit::tensor::save_safetensors(&tensors, dir.path().join("model.safetensors"));
    let err = T5EncoderModel::load_dir(dir.path(), &Device::Cpu).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("encoder.block.1.layer.1.DenseReluDense.wi_1.weight"),
        "{msg}"
    );
    assert!(msg.contains("model.safetensors"), "{msg}");
}
