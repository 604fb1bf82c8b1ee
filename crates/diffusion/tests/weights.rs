//! Weight files: variant choice, sharded checkpoints, legacy VAE attention names, dtype
//! conversion, typed errors, Hugging Face cache snapshots.

use brainrecon_diffusion::weights::ModelDir;
use brainrecon_nn::weights::{cached_snapshot, Weights};
use brainrecon_nn::ModelError;
use brainrecon_testkit::copy_dir;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

fn save(path: &Path, tensors: &[(&str, Tensor)]) {
    let map: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    brainrecon_testkit::tensor::save_safetensors(&map, path);
}

fn filled(value: f32, shape: &[usize], dtype: DType) -> Tensor {
    (Tensor::ones(shape, DType::F32, &Device::Cpu).unwrap() * value as f64)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

#[test]
fn fp16_variant_is_preferred_only_for_f16() {
    let tmp = tempfile::tempdir().unwrap();
    save(
        &tmp.path().join("diffusion_pytorch_model.safetensors"),
        &[("w", filled(1.0, &[2, 3], DType::F32))],
    );
    save(
        &tmp.path().join("diffusion_pytorch_model.fp16.safetensors"),
        &[("w", filled(2.0, &[2, 3], DType::F16))],
    );
    let w32 = Weights::from_component(tmp.path(), DType::F32, &Device::Cpu).unwrap();
    let t = w32.get("w", &[2, 3]).unwrap();
    assert_eq!(t.dtype(), DType::F32);
    assert_eq!(t.to_vec2::<f32>().unwrap()[0][0], 1.0);
    let w16 = Weights::from_component(tmp.path(), DType::F16, &Device::Cpu).unwrap();
    let t = w16.get("w", &[2, 3]).unwrap();
    assert_eq!(t.dtype(), DType::F16);
    assert_eq!(
        t.to_dtype(DType::F32).unwrap().to_vec2::<f32>().unwrap()[0][0],
        2.0
    );
    // Only the fp16 file: f32 loads it and converts.
    std::fs::remove_file(tmp.path().join("diffusion_pytorch_model.safetensors")).unwrap();
    let t = Weights::from_component(tmp.path(), DType::F32, &Device::Cpu)
        .unwrap()
        .get("w", &[2, 3])
        .unwrap();
    assert_eq!(
        (t.dtype(), t.to_vec2::<f32>().unwrap()[1][2]),
        (DType::F32, 2.0)
    );
}

#[test]
fn sharded_checkpoints_and_legacy_attention_names_load() {
    let tmp = tempfile::tempdir().unwrap();
    save(
        &tmp.path().join("model-00001-of-00002.safetensors"),
        &[("a.weight", filled(1.0, &[4], DType::F32))],
    );
    save(
        &tmp.path().join("model-00002-of-00002.safetensors"),
        &[
            (
                "encoder.mid_block.attentions.0.query.weight",
                filled(3.0, &[4, 4, 1, 1], DType::BF16),
            ),
            (
                "encoder.mid_block.attentions.0.proj_attn.bias",
                filled(4.0, &[4], DType::F32),
            ),
        ],
    );
    std::fs::write(
        tmp.path().join("model.safetensors.index.json"),
        r#"{"metadata": {}, "weight_map": {"a.weight": "model-00001-of-00002.safetensors",
            "encoder.mid_block.attentions.0.query.weight": "model-00002-of-00002.safetensors",
            "encoder.mid_block.attentions.0.proj_attn.bias": "model-00002-of-00002.safetensors"}}"#,
    )
    .unwrap();
    let w = Weights::from_component(tmp.path(), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(
        w.get("a.weight", &[4]).unwrap().to_vec1::<f32>().unwrap(),
        vec![1.0; 4]
    );
    // Today's name, old checkpoint: found under the legacy name, 1×1 kernel squeezed.
    let q = w
        .get("encoder.mid_block.attentions.0.to_q.weight", &[4, 4])
        .unwrap();
    assert_eq!(q.dims(), &[4, 4]);
    assert_eq!(q.dtype(), DType::F32);
    assert!(w.contains("encoder.mid_block.attentions.0.to_out.0.bias"));
    // Through a VarBuilder as the nn modules use it.
    let vb = w.var_builder();
    let lin = brainrecon_nn::layers::Linear::new(
        vb.pp("encoder.mid_block.attentions.0.to_q"),
        4,
        4,
        false,
    )
    .unwrap();
    assert_eq!(lin.weight.dims(), &[4, 4]);
}

#[test]
fn missing_tensors_and_wrong_shapes_are_typed_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("model.safetensors");
    save(&file, &[("w", filled(1.0, &[2, 3], DType::F32))]);
    let w = Weights::from_files(std::slice::from_ref(&file), DType::F32, &Device::Cpu).unwrap();
    match w.get("v", &[2, 3]) {
        Err(ModelError::MissingTensor { path, name }) => {
            assert_eq!(path, file);
            assert_eq!(name, "v");
        }
        other => panic!("{other:?}"),
    }
    match w.get("w", &[3, 2]) {
        Err(ModelError::Shape {
            name,
            expected,
            found,
            ..
        }) => {
            assert_eq!(
                (name.as_str(), expected, found),
                ("w", vec![3, 2], vec![2, 3])
            );
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(tmp.path().join("broken.safetensors"), b"\x05\x00").unwrap();
    let err = Weights::from_files(
        &[tmp.path().join("broken.safetensors")],
        DType::F32,
        &Device::Cpu,
    )
    .err()
    .unwrap();
    assert!(matches!(err, ModelError::Safetensors { .. }), "{err}");
    let err = Weights::from_files(&[tmp.path().join("model.ckpt")], DType::F32, &Device::Cpu)
        .err()
        .unwrap();
    assert!(matches!(err, ModelError::Pickle { .. }), "{err}");
    let err = Weights::from_component(
        tmp.path().join("absent").as_path(),
        DType::F32,
        &Device::Cpu,
    )
    .err()
    .unwrap();
    assert!(matches!(err, ModelError::MissingFile { .. }), "{err}");
}

#[test]
fn cache_snapshots_follow_refs_main() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("models--org--name");
    std::fs::create_dir_all(repo.join("snapshots/aaa")).unwrap();
    std::fs::create_dir_all(repo.join("snapshots/bbb")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    // Two snapshots and no refs/main: ambiguous.
    assert!(cached_snapshot(tmp.path(), "org/name").is_err());
    std::fs::write(repo.join("refs/main"), "bbb").unwrap();
    assert_eq!(
        cached_snapshot(tmp.path(), "org/name").unwrap(),
        Some(repo.join("snapshots/bbb"))
    );
    assert_eq!(cached_snapshot(tmp.path(), "org/other").unwrap(), None);
    // A snapshot without model_index.json is not a pipeline.
    let err = ModelDir::open(&repo.join("snapshots/bbb")).unwrap_err();
    assert!(err.to_string().contains("model_index.json"), "{err}");
}

#[test]
fn a_model_folder_fingerprint_follows_its_contents_not_its_place() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-sd");
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("elsewhere/b"));
    copy_dir(&fixture, &a);
    copy_dir(&fixture, &b);
    let print = |p: &Path| ModelDir::open(p).unwrap().fingerprint().unwrap();
    let original = print(&a);
    assert_eq!(original.len(), 16);
    assert_eq!(original, print(&b), "the same files in another folder");
    // Checkpoints and partial files beside the pipeline do not count.
    std::fs::create_dir_all(b.join(".train")).unwrap();
    std::fs::write(b.join(".train/state.json"), "{}").unwrap();
    assert_eq!(original, print(&b));
    // One weight changed (the last byte of the U-Net's data) is another model.
    let weights = b.join("unet/diffusion_pytorch_model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    *bytes.last_mut().unwrap() ^= 0x01;
    std::fs::write(&weights, bytes).unwrap();
    assert_ne!(original, print(&b));
    // So is another scheduler setting.
    let scheduler = a.join("scheduler/scheduler_config.json");
    let text = std::fs::read_to_string(&scheduler).unwrap();
    std::fs::write(&scheduler, text.replacen('{', "{\"steps_offset\": 1,", 1)).unwrap();
    assert_ne!(original, print(&a));
}
