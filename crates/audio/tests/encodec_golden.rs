//! Golden tests of EnCodec against transformers 5.23's `EncodecModel` (fixtures from
//! `tools/fixtures/encodec.py`: tiny random checkpoints in three configurations — encodec_32khz's
//! flags with legacy `weight_g`/`weight_v` names, encodec_24khz's flags, and a stereo
//! normalising `time_group_norm` one). Per case: the encoder output, the codes at every target
//! bandwidth (exactly), and the audio decoded from the reference codes.

use std::collections::HashMap;
use std::path::PathBuf;

use brainrecon_audio::encodec::{EncodecConfig, EncodecModel};
use brainrecon_testkit::tensor::assert_close_scaled;
use candle_core::{DType, Device, IndexOp, Tensor};
use serde_json::Value;

const MODELS: [&str; 3] = ["a_32khz", "b_24khz", "c_stereo"];
/// max |got − want| ≤ RTOL · max |want| for the embeddings and the decoded audio.
const RTOL: f32 = 2e-5;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/encodec")
}

fn cases() -> Value {
    let text = std::fs::read_to_string(fixtures().join("cases.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn expected(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(
        fixtures().join(name).join("expected.safetensors"),
        &Device::Cpu,
    )
    .unwrap()
}

fn load(name: &str) -> EncodecModel {
    EncodecModel::load(fixtures().join(name).to_str().unwrap(), &Device::Cpu).unwrap()
}

/// Checks `got` against `want` and returns max |got − want|.
fn assert_close(what: &str, got: &Tensor, want: &Tensor) -> f32 {
    assert_close_scaled(what, got, want, RTOL, 0.0)
}

fn bandwidths(name: &str) -> Vec<f64> {
    cases()[name]["bandwidths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_f64().unwrap())
        .collect()
}

/// Python's `str(float)` for the bandwidths the fixtures use ("20.0").
fn bw_key(bw: f64) -> String {
    format!("{bw:?}")
}

#[test]
fn embeddings_match_transformers() {
    for name in MODELS {
        let model = load(name);
        let want = expected(name);
        for case in ["batch", "short"] {
            let input = &want[&format!("{case}.input")];
            let (emb, scale) = model.embeddings_and_scale(input).unwrap();
            // The per-clip average is the average of the same frames.
            let mean = model.mean_embedding(input).unwrap();
            let want_mean = want[&format!("{case}.embeddings")].mean(2).unwrap();
            assert_close(&format!("{name} {case} mean embedding"), &mean, &want_mean);
            assert_close(
                &format!("{name} {case} embeddings"),
                &emb,
                &want[&format!("{case}.embeddings")],
            );
            match (scale, want.get(&format!("{case}.scale"))) {
                (Some(got), Some(w)) => {
                    assert_close(&format!("{name} {case} scale"), &got, w);
                }
                (None, None) => {}
                (got, w) => panic!("{name} {case}: scale {got:?} vs {w:?}"),
            }
        }
    }
}

#[test]
fn codes_match_transformers_exactly() {
    for name in MODELS {
        let model = load(name);
        let want = expected(name);
        let n_q: Vec<u64> = cases()[name]["num_quantizers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        for case in ["batch", "short"] {
            let input = &want[&format!("{case}.input")];
            for (bw, n_q) in bandwidths(name).into_iter().zip(n_q.iter()) {
                let got = model.encode(input, Some(bw)).unwrap();
                let reference = &want[&format!("{case}.codes.{}", bw_key(bw))];
                assert_eq!(got.codes.dims(), reference.dims(), "{name} {case} {bw}");
                assert_eq!(got.codes.dim(1).unwrap() as u64, *n_q);
                let got = got.codes.to_dtype(DType::I64).unwrap();
                let (g, w) = (
                    got.flatten_all().unwrap().to_vec1::<i64>().unwrap(),
                    reference.flatten_all().unwrap().to_vec1::<i64>().unwrap(),
                );
                let differing = g.iter().zip(&w).filter(|(a, b)| a != b).count();
                assert_eq!(
                    differing,
                    0,
                    "{name} {case} at {bw} kbps: {differing} of {} codes differ",
                    g.len()
                );
            }
        }
        // The default bandwidth is the first one, as in transformers.
        let input = &want["batch.input"];
        let default = model.encode(input, None).unwrap().codes;
        let first = bw_key(bandwidths(name)[0]);
        let reference = &want[&format!("batch.codes.{first}")];
        let default = default.to_dtype(DType::I64).unwrap();
        assert_eq!(
            default.flatten_all().unwrap().to_vec1::<i64>().unwrap(),
            reference.flatten_all().unwrap().to_vec1::<i64>().unwrap()
        );
    }
}

#[test]
fn decoded_audio_matches_transformers() {
    for name in MODELS {
        let model = load(name);
        let want = expected(name);
        for case in ["batch", "short"] {
            let scale = want.get(&format!("{case}.scale"));
            for bw in bandwidths(name) {
                let key = bw_key(bw);
                let codes = &want[&format!("{case}.codes.{key}")];
                let audio = model.decode(codes, scale).unwrap();
                assert_close(
                    &format!("{name} {case} decoded at {key} kbps"),
                    &audio,
                    &want[&format!("{case}.audio.{key}")],
                );
            }
        }
    }
}

#[test]
fn batch_items_are_independent() {
    // The first clip alone gives the same codes as inside the batch.
    let model = load("b_24khz");
    let want = expected("b_24khz");
    let batch = &want["batch.input"];
    let alone = model.encode(&batch.i(0..1).unwrap(), Some(20.0)).unwrap();
    let together = model.encode(batch, Some(20.0)).unwrap();
    assert_eq!(
        alone.codes.i(0).unwrap().to_vec2::<u32>().unwrap(),
        together.codes.i(0).unwrap().to_vec2::<u32>().unwrap()
    );
}

#[test]
fn bad_inputs_are_clear_errors() {
    let model = load("a_32khz");
    let dev = Device::Cpu;
    // Stereo audio into a mono model.
    let stereo = Tensor::zeros((1, 2, 400), DType::F32, &dev).unwrap();
    let e = model.embeddings(&stereo).unwrap_err().to_string();
    assert!(
        e.contains("2 channel") && e.contains("audio_channels"),
        "{e}"
    );
    // A missing channel axis.
    let flat = Tensor::zeros((1, 400), DType::F32, &dev).unwrap();
    let e = model.encode(&flat, None).unwrap_err().to_string();
    assert!(e.contains("[batch, 1 channel(s), samples]"), "{e}");
    // NaN samples.
    let nan = Tensor::new(&[[[0f32, f32::NAN, 1.0]]], &dev).unwrap();
    let e = model.encode(&nan, None).unwrap_err().to_string();
    assert!(e.contains("NaN"), "{e}");
    // A bandwidth the model was not trained for.
    let audio = Tensor::zeros((1, 1, 400), DType::F32, &dev).unwrap();
    let e = model.encode(&audio, Some(6.0)).unwrap_err().to_string();
    assert!(e.contains("6") && e.contains("target_bandwidths"), "{e}");
    // More codebooks than the model has (4 at its only bandwidth), and indices out of range.
    let codes = Tensor::zeros((1, 5, 3), DType::U32, &dev).unwrap();
    let e = model.decode(&codes, None).unwrap_err().to_string();
    assert!(e.contains("5 codebooks") && e.contains("has 4"), "{e}");
    let codes = Tensor::full(64u32, (1, 4, 3), &dev).unwrap();
    let e = model.decode(&codes, None).unwrap_err().to_string();
    assert!(e.contains("index 64") && e.contains("64 entries"), "{e}");
    // A scale that does not fit the batch.
    let codes = Tensor::zeros((2, 4, 3), DType::U32, &dev).unwrap();
    let scale = Tensor::ones((3, 1), DType::F32, &dev).unwrap();
    let e = model.decode(&codes, Some(&scale)).unwrap_err().to_string();
    assert!(e.contains("scale"), "{e}");
}

#[test]
fn bad_checkpoints_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures().join("a_32khz");
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    std::fs::copy(
        src.join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let write = |c: &Value| {
        std::fs::write(dir.path().join("config.json"), c.to_string()).unwrap();
    };
    let path = dir.path().to_str().unwrap();
    // A bandwidth needing more codebooks than the checkpoint stores (8 instead of 4).
    let mut c = config.clone();
    c["target_bandwidths"] = serde_json::json!([40.0]);
    write(&c);
    let e = EncodecModel::load(path, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("quantizer.layers.4.codebook.embed"),
        "{e}"
    );
    // A channel count the weights were not made for.
    let mut c = config.clone();
    c["audio_channels"] = serde_json::json!(2);
    write(&c);
    let e = EncodecModel::load(path, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("encoder.layers.0.conv.weight_v"),
        "{e}"
    );
    // A chunked (encodec_48khz-style) config.
    let mut c = config.clone();
    c["chunk_length_s"] = serde_json::json!(1.0);
    c["overlap"] = serde_json::json!(0.01);
    write(&c);
    let e = EncodecModel::load(path, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("config.json") && e.contains("chunk_length_s"),
        "{e}"
    );
    // No weights at all.
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    write(&config);
    let e = EncodecModel::load(path, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.safetensors"), "{e}");
    // Not a folder, not a model id.
    assert!(EncodecModel::load("no/such/encodec/folder", &Device::Cpu).is_err());
}

#[test]
fn config_of_the_fixture_parses_as_transformers_wrote_it() {
    let c = EncodecConfig::from_file(&fixtures().join("a_32khz/config.json")).unwrap();
    assert!(!c.use_causal_conv && !c.use_conv_shortcut && !c.normalize);
    assert_eq!(c.num_quantizers(), 4);
    assert_eq!(c.hop_length(), 40);
}
