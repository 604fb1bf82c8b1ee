//! CLIP text encoders against transformers 5.23.0 `CLIPTextModel` (fixtures from
//! tools/fixtures/diffusion_pipeline.py): a quick_gelu encoder (SD1 style, transformers 5
//! names, the text encoder of tiny-sd) and a gelu encoder (SD2 style, hub `text_model.` names,
//! padded with "!").

mod common;

use brainrecon_diffusion::clip::{ids_tensor, ClipTextConfig, ClipTextModel};
use brainrecon_diffusion::tokenizer::{ClipTokenizer, SpecialTokens};
use brainrecon_nn::weights::Weights;
use brainrecon_nn::ModelError;
use candle_core::{DType, Device, Tensor};
use common::{fixtures, get, max_abs, max_abs_diff, read_json, tensors};

const TOL: f32 = 1e-4;

fn check(model: &ClipTextModel, outputs: &str, ids_key: &str) {
    let t = tensors(outputs);
    let ids = get(&t, "input_ids");
    // The fixture ids are what our tokenizer produces for the prompts.
    let prompts = read_json("clip/prompts.json");
    let rows: Vec<Vec<u32>> = serde_json::from_value(prompts[ids_key].clone()).unwrap();
    let fixture_rows: Vec<Vec<i64>> = ids.to_vec2().unwrap();
    for (a, b) in rows.iter().zip(&fixture_rows) {
        assert_eq!(a.iter().map(|&v| v as i64).collect::<Vec<_>>(), *b);
    }
    let ids = ids_tensor(&rows, &Device::Cpu).unwrap();
    let out = model.forward_full(&ids).unwrap();
    for (name, got) in [
        ("last_hidden_state", &out.last_hidden_state),
        ("pooler_output", &out.pooler_output),
    ] {
        let want = get(&t, name);
        let e = max_abs_diff(got, &want);
        println!(
            "{outputs} {name}: max abs error {e:.2e} (values up to {:.2})",
            max_abs(&want)
        );
        assert!(e < TOL, "{outputs} {name}: {e}");
        assert!(max_abs(&want) > 0.5);
    }
    let skip = model.forward_clip_skip(&ids, 1).unwrap();
    let e = max_abs_diff(&skip, &get(&t, "clip_skip_1"));
    println!("{outputs} clip_skip_1: max abs error {e:.2e}");
    assert!(e < TOL, "clip skip: {e}");
    assert!(max_abs_diff(&skip, &out.last_hidden_state) > 0.1);
    let plain = model.forward(&ids).unwrap();
    assert_eq!(max_abs_diff(&plain, &out.last_hidden_state), 0.0);
}

#[test]
fn quick_gelu_encoder_matches_transformers() {
    let dir = fixtures().join("tiny-sd/text_encoder");
    let model = ClipTextModel::from_dir(&dir, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(model.config.hidden_act, "quick_gelu");
    check(&model, "clip/quick_gelu_outputs.safetensors", "sd1_ids");
}

#[test]
fn gelu_encoder_with_hub_names_matches_transformers() {
    let dir = fixtures().join("clip/gelu");
    let w = Weights::from_component(&dir, DType::F32, &Device::Cpu).unwrap();
    assert!(w.contains("text_model.final_layer_norm.weight"));
    let model = ClipTextModel::from_dir(&dir, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(model.config.hidden_act, "gelu");
    check(&model, "clip/gelu_outputs.safetensors", "sd2_ids");
    // And the SD2 tokenizer produced those ids (pad "!" = 0).
    let tok = ClipTokenizer::from_vocab_merges(
        &fixtures().join("clip/tokenizer-tiny/vocab.json"),
        &fixtures().join("clip/tokenizer-tiny/merges.txt"),
        SpecialTokens::sd2(),
    )
    .unwrap();
    let ids = tok.encode("").unwrap();
    assert_eq!(&ids[..3], &[1512, 1513, 0]);
}

#[test]
fn f16_encoder_stays_close() {
    let dir = fixtures().join("tiny-sd/text_encoder");
    let model = ClipTextModel::from_dir(&dir, DType::F16, &Device::Cpu).unwrap();
    assert_eq!(model.dtype(), DType::F16);
    let t = tensors("clip/quick_gelu_outputs.safetensors");
    let rows: Vec<Vec<i64>> = get(&t, "input_ids").to_vec2().unwrap();
    let rows: Vec<Vec<u32>> = rows
        .into_iter()
        .map(|r| r.into_iter().map(|v| v as u32).collect())
        .collect();
    let out = model
        .forward(&ids_tensor(&rows, &Device::Cpu).unwrap())
        .unwrap();
    assert_eq!(out.dtype(), DType::F16);
    let e = max_abs_diff(&out, &get(&t, "last_hidden_state"));
    println!("f16 last_hidden_state: max abs error {e:.2e}");
    assert!(e < 2e-2, "f16 error {e}");
}

#[test]
fn missing_and_misshapen_tensors_are_named() {
    let dir = fixtures().join("tiny-sd/text_encoder");
    let config = ClipTextConfig::from_file(&dir.join("config.json")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // A copy of the weights without one tensor, and one with a wrong shape.
    let w = Weights::from_component(&dir, DType::F32, &Device::Cpu).unwrap();
    let mut all: Vec<(String, Tensor)> = w
        .names()
        .into_iter()
        .map(|n| {
            let t = w.get_unchecked(&n).unwrap();
            (n, t)
        })
        .collect();
    let missing: Vec<(String, Tensor)> = all
        .iter()
        .filter(|(n, _)| n != "encoder.layers.1.mlp.fc2.bias")
        .cloned()
        .collect();
    let path = tmp.path().join("model.safetensors");
    brainrecon_testkit::tensor::save_safetensors(&missing.into_iter().collect(), &path);
    let w2 = Weights::from_files(std::slice::from_ref(&path), DType::F32, &Device::Cpu).unwrap();
    let err = ClipTextModel::from_weights(&w2, &config)
        .unwrap_err()
        .to_string();
    assert!(err.contains("encoder.layers.1.mlp.fc2.bias"), "{err}");
    assert!(err.contains("model.safetensors"), "{err}");

    for (n, t) in all.iter_mut() {
        if n == "final_layer_norm.weight" {
            *t = Tensor::zeros(5, DType::F32, &Device::Cpu).unwrap();
        }
    }
    brainrecon_testkit::tensor::save_safetensors(&all.iter().cloned().collect(), &path);
    let w3 = Weights::from_files(&[path], DType::F32, &Device::Cpu).unwrap();
    let err = ClipTextModel::from_weights(&w3, &config)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("final_layer_norm.weight") && err.contains("[5]") && err.contains("[32]"),
        "{err}"
    );
}

#[test]
fn pickle_checkpoints_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("pytorch_model.bin"), b"not read").unwrap();
    std::fs::write(tmp.path().join("model.bin"), b"not read").unwrap();
    let err = Weights::from_component(tmp.path(), DType::F32, &Device::Cpu)
        .err()
        .unwrap();
    assert!(matches!(err, ModelError::Pickle { .. }), "{err}");
    assert!(err.to_string().contains("model.bin") && err.to_string().contains("safetensors"));
}
