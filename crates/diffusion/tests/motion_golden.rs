//! Golden tests of the AnimateDiff motion module against diffusers 0.42.1's
//! `AnimateDiffTransformer3D` (torch 2.15.0, float32, CPU).
//!
//! Fixtures (committed; regenerate with `tools/fixtures/motion_module.py`) live in
//! `tests/fixtures/motion/`: each module's weights under a diffusers adapter prefix (every
//! parameter random, `proj_out` included), its config, and inputs/outputs at 8 frames (two
//! clips), 16 and 24 frames, random and flat; and a whole tiny `MotionAdapter` folder. The reference outputs are diffusers' module run
//! in float64 (on the same float32 weights and inputs), rounded to float32: in float32,
//! torch's group norm loses ~1e-4 on a constant clip, which the float32 run is kept to show.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use brainrecon_diffusion::motion::{
    sinusoidal_table, AnimateDiffTransformer3D, MotionAdapter, MotionAdapterConfig,
    MotionModuleConfig,
};
use brainrecon_nn::init::record_parameters;
use brainrecon_nn::layers::{mmaped_var_builder, trainable_var_builder};
use brainrecon_nn::Error;
use brainrecon_testkit::tensor::{max_abs, max_abs_diff};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;

const TOL: f32 = 1e-5;
const CASES: [(&str, usize); 3] = [("f8_b2", 8), ("f16", 16), ("f24", 24)];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/motion")
}

/// The module's config and diffusers prefix, as the fixture script wrote them.
fn config(name: &str) -> (MotionModuleConfig, String) {
    let path = fixtures().join(format!("{name}_config.json"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {path:?}")) as usize;
    let mut cfg = MotionModuleConfig::for_adapter(
        n("in_channels"),
        n("num_attention_heads"),
        n("num_layers"),
        n("norm_num_groups"),
        n("max_seq_length"),
    );
    cfg.attention_head_dim = n("attention_head_dim");
    (cfg, v["prefix"].as_str().unwrap().to_string())
}

fn load(name: &str) -> AnimateDiffTransformer3D {
    let (cfg, prefix) = config(name);
    let file = fixtures().join(format!("{name}.safetensors"));
    let vb = mmaped_var_builder(&[file], DType::F32, &Device::Cpu).unwrap();
    AnimateDiffTransformer3D::new(vb.pp(prefix), &cfg).unwrap()
}

fn load_tensors(file: &str) -> HashMap<String, Tensor> {
    let path = fixtures().join(file);
    candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()))
}

/// The shared inputs with module `name`'s outputs.
fn io(name: &str) -> HashMap<String, Tensor> {
    let mut io = load_tensors("inputs.safetensors");
    io.extend(load_tensors(&format!("{name}_io.safetensors")));
    io
}

fn module_matches_diffusers(name: &str) {
    let module = load(name);
    let io = io(name);
    for (case, frames) in CASES {
        for kind in ["random", "flat"] {
            let x = &io[&format!("{case}.{kind}.input")];
            let want = &io[&format!("{case}.{kind}.output")];
            let got = module.forward(x, frames).unwrap();
            let err = max_abs_diff(&got, want);
            // The module's own contribution (output − input): what the test actually checks.
            let delta = max_abs(&(want - x).unwrap());
            eprintln!("{name} {case} {kind}: max abs error {err:.3e} (|out − in| max {delta:.3e})");
            assert!(
                delta > 1e-2,
                "{name} {case} {kind}: module output ~ its input"
            );
            assert!(
                err < TOL,
                "{name} {case} {kind}: max abs error {err} >= {TOL}"
            );
            if let Some(torch_f32) = io.get(&format!("{case}.{kind}.output_f32")) {
                // On the constant clip torch's float32 group norm cancels (~1e-4 off the
                // float64 run); ours keeps (x − mean)·a and must stay the closer of the two.
                let torch_err = max_abs_diff(torch_f32, want);
                eprintln!("{name} {case} {kind}: diffusers float32 run is {torch_err:.3e} off");
                assert!(
                    err < torch_err,
                    "{name} {case} {kind}: {err} vs torch {torch_err}"
                );
            }
        }
    }
}

#[test]
fn one_layer_module_matches_diffusers() {
    module_matches_diffusers("layers1");
}

#[test]
fn two_layer_module_matches_diffusers() {
    module_matches_diffusers("layers2");
}

/// The formula the fresh modules use equals the `pos_embed.pe` buffers diffusers stored.
#[test]
fn computed_positions_match_diffusers_buffers() {
    for name in ["layers1", "layers2"] {
        let module = load(name);
        let cfg = &module.config;
        let table = sinusoidal_table(cfg.max_seq_length, cfg.inner_dim(), &Device::Cpu).unwrap();
        for block in &module.transformer_blocks {
            let stored = block.pos_embed.as_ref().expect("positions loaded");
            let err = max_abs_diff(&table, stored);
            eprintln!("{name}: sinusoidal table max abs error {err:.3e}");
            assert!(err < 1e-6, "{name}: computed table differs by {err}");
        }
    }
}

#[test]
fn more_frames_than_the_table_is_an_error() {
    let module = load("layers1");
    let max = module.config.max_seq_length;
    let x = Tensor::zeros((max + 1, 32, 1, 3), DType::F32, &Device::Cpu).unwrap();
    let err = module.forward(&x, max + 1).unwrap_err();
    match &err {
        Error::InvalidInput { name, msg } => {
            assert_eq!(*name, "num_frames");
            assert!(msg.contains(&format!("at most {max}")), "{msg}");
        }
        other => panic!("expected an input error, got {other:?}"),
    }
    // Exactly the table's length still runs.
    let x = Tensor::zeros((max, 32, 1, 3), DType::F32, &Device::Cpu).unwrap();
    module.forward(&x, max).unwrap();
    // Frames that do not divide the batch are an error too, not a reshape panic.
    let x = Tensor::zeros((10, 32, 1, 3), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        module.forward(&x, 4),
        Err(Error::InvalidInput {
            name: "num_frames",
            ..
        })
    ));
}

/// A stored table of another length than the config's names the tensor and both shapes.
#[test]
fn wrong_max_seq_length_names_the_tensor() {
    let (mut cfg, prefix) = config("layers1");
    cfg.max_seq_length = 32;
    let file = fixtures().join("layers1.safetensors");
    let vb = mmaped_var_builder(&[file], DType::F32, &Device::Cpu).unwrap();
    let err = AnimateDiffTransformer3D::new(vb.pp(&prefix), &cfg).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{prefix}.transformer_blocks.0.pos_embed.pe")) && msg.contains("24"),
        "{msg}"
    );
}

/// A zero-initialised module (fresh, seeded) returns its input exactly, on the fixture
/// inputs, and its other parameters are not zero (the identity comes from `proj_out` alone).
#[test]
fn zero_initialised_module_is_the_identity() {
    let (cfg, _) = config("layers2");
    let (module, params) =
        AnimateDiffTransformer3D::init_zero_out(&cfg, 7, DType::F32, &Device::Cpu).unwrap();
    let io = io("layers2");
    for (case, frames) in CASES {
        for kind in ["random", "flat"] {
            let x = &io[&format!("{case}.{kind}.input")];
            let y = module.forward(x, frames).unwrap();
            assert_eq!(max_abs_diff(&y, x), 0.0, "{case} {kind}: not the identity");
        }
    }
    let q = &module.transformer_blocks[0].attn1.to_q.weight;
    assert!(max_abs(q) > 0.0, "attention weights should be random");
    // The positional tables are buffers, not parameters to train.
    assert!(params.names().iter().all(|n| !n.contains("pos_embed")));
    let out = params
        .get("proj_out.weight")
        .expect("proj_out.weight is a parameter");
    assert_eq!(max_abs(out.as_tensor()), 0.0);
}

/// With trainable weights the module takes the differentiable ops (elementary softmax and
/// norms): same outputs, and gradients reach every block.
#[test]
fn trainable_module_matches_diffusers_and_backpropagates() {
    let (cfg, prefix) = config("layers2");
    let file = fixtures().join("layers2.safetensors");
    let varmap = VarMap::new();
    let vb = trainable_var_builder(
        &[file],
        &varmap,
        |n| !n.ends_with("pos_embed.pe"),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let module = AnimateDiffTransformer3D::new(vb.pp(&prefix), &cfg).unwrap();
    let io = io("layers2");
    let x = &io["f16.flat.input"];
    let got = module.forward(x, 16).unwrap();
    assert!(got.track_op(), "the trainable module should build a graph");
    let err = max_abs_diff(&got, &io["f16.flat.output"]);
    eprintln!("layers2 f16 flat, differentiable ops: max abs error {err:.3e}");
    assert!(err < TOL, "differentiable path: max abs error {err}");
    let grads = got.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    let vars = varmap.data().lock().unwrap();
    assert!(vars.keys().all(|k| !k.contains("pos_embed")));
    for leaf in [
        "norm.weight",
        "proj_in.weight",
        "transformer_blocks.0.attn1.to_q.weight",
        "transformer_blocks.0.attn2.to_k.weight",
        "transformer_blocks.1.ff.net.0.proj.weight",
        "proj_out.weight",
    ] {
        let var = &vars[&format!("{prefix}.{leaf}")];
        let g = grads
            .get(var)
            .unwrap_or_else(|| panic!("no gradient for {leaf}"));
        assert!(max_abs(g) > 0.0, "zero gradient for {leaf}");
    }
}

/// A whole diffusers `MotionAdapter` folder (float16 weights, per-block heads and depths):
/// every module loads at its prefix and matches diffusers.
#[test]
fn motion_adapter_folder_matches_diffusers() {
    let dir = fixtures().join("adapter");
    let adapter = MotionAdapter::from_pretrained(&dir, DType::F32, &Device::Cpu).unwrap();
    let io = load_tensors("adapter_io.safetensors");
    let modules = adapter.modules();
    let expected: Vec<String> = {
        let mut v: Vec<String> = io
            .keys()
            .filter_map(|k| k.strip_suffix(".input").map(str::to_string))
            .collect();
        v.sort();
        v
    };
    let mut names: Vec<String> = modules.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    assert_eq!(
        names, expected,
        "the adapter's modules and diffusers' differ"
    );
    for (prefix, module) in modules {
        let x = &io[&format!("{prefix}.input")];
        let want = &io[&format!("{prefix}.output")];
        let got = module.forward(x, 8).unwrap();
        let err = max_abs_diff(&got, want);
        let delta = max_abs(&(want - x).unwrap());
        eprintln!("adapter {prefix}: max abs error {err:.3e} (|out − in| max {delta:.3e})");
        assert!(delta > 1e-2, "{prefix}: module output ~ its input");
        assert!(err < TOL, "{prefix}: max abs error {err} >= {TOL}");
    }
    // Per-block layout: heads (2, 4) → head dims 8 and 6; depths (2, 1), the mid block 1.
    let d0 = &adapter.down_blocks[0].motion_modules[0];
    assert_eq!(
        (d0.config.attention_head_dim, d0.transformer_blocks.len()),
        (8, 2)
    );
    let u0 = &adapter.up_blocks[0].motion_modules[1];
    assert_eq!(
        (u0.config.attention_head_dim, u0.transformer_blocks.len()),
        (6, 1)
    );
    let mid = &adapter.mid_block.as_ref().unwrap().motion_modules[0];
    assert_eq!(mid.config.in_channels, 24);
    // More frames than motion_max_seq_length (16) is an error.
    let x = Tensor::zeros((17, 16, 1, 1), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        d0.forward(&x, 17),
        Err(Error::InvalidInput {
            name: "num_frames",
            ..
        })
    ));
}

/// The adapter reads exactly the tensors of the checkpoint: none missing, none left over.
#[test]
fn motion_adapter_reads_every_tensor() {
    let dir = fixtures().join("adapter");
    let cfg = MotionAdapterConfig::from_file(&dir.join("config.json")).unwrap();
    let read =
        record_parameters(|vb| MotionAdapter::new(vb, &cfg), DType::F32, &Device::Cpu).unwrap();
    let mut read: Vec<String> = read.into_iter().map(|(n, _)| n).collect();
    read.sort();
    let mut stored: Vec<String> = load_tensors("adapter/diffusion_pytorch_model.safetensors")
        .into_keys()
        .collect();
    stored.sort();
    assert_eq!(read, stored);
}

/// A config that does not fit its blocks names the file and the field.
#[test]
fn bad_adapter_config_names_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(
        &path,
        r#"{"block_out_channels": [16, 24], "motion_num_attention_heads": [2, 4, 8]}"#,
    )
    .unwrap();
    let msg = MotionAdapterConfig::from_file(&path)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("config.json") && msg.contains("motion_num_attention_heads"),
        "{msg}"
    );
}
