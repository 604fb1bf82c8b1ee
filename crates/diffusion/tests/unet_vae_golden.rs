//! Golden tests of the U-Net and VAE against diffusers 0.42.1 (torch 2.15.0), float32, CPU.
//!
//! Fixtures (committed; regenerate with `tools/fixtures/diffusion_unet_vae.py`) live in
//! `tests/fixtures/unet_vae/`: tiny random diffusers model folders (`save_pretrained`) and
//! safetensors with inputs, explicit noise, outputs and gradients.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use brainrecon_diffusion::unet::{UNet2DConditionModel, WEIGHTS_FILE};
use brainrecon_diffusion::vae::AutoencoderKL;
use brainrecon_nn::Error;
use brainrecon_testkit::tensor::{max_abs, max_abs_diff};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;

const TOL: f32 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/unet_vae")
}

/// `BRAINRECON_TEST_DEVICE=cuda` runs the golden comparisons on a GPU (a `--features cuda`
/// build): the fused inference kernels are then what is checked against diffusers.
fn test_device() -> Device {
    match std::env::var("BRAINRECON_TEST_DEVICE").as_deref() {
        Ok("cuda") => {
            Device::new_cuda(0).expect("BRAINRECON_TEST_DEVICE=cuda needs a CUDA build and GPU")
        }
        Ok("cpu") | Err(_) => Device::Cpu,
        Ok(other) => panic!("BRAINRECON_TEST_DEVICE: expected cpu or cuda, found {other}"),
    }
}

fn io(name: &str) -> HashMap<String, Tensor> {
    let path = fixtures().join(format!("{name}_io.safetensors"));
    candle_core::safetensors::load(&path, &test_device())
        .unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()))
}

fn get<'a>(m: &'a HashMap<String, Tensor>, k: &str) -> &'a Tensor {
    m.get(k)
        .unwrap_or_else(|| panic!("fixture tensor `{k}` missing"))
}

fn check(what: &str, got: &Tensor, want: &Tensor, tol: f32) {
    let err = max_abs_diff(got, want);
    eprintln!(
        "{what}: max abs error {err:.3e} (|want| max {:.3e})",
        max_abs(want)
    );
    assert!(err < tol, "{what}: max abs error {err} >= {tol}");
    // A golden comparison is only meaningful when the reference is not trivially zero.
    assert!(max_abs(want) > 1e-3, "{what}: reference is ~0");
}

fn unet_forward_matches(name: &str) {
    let dev = test_device();
    let io = io(name);
    let unet = UNet2DConditionModel::from_pretrained(&fixtures().join(name), DType::F32, &dev)
        .expect("load U-Net");
    let eps = unet
        .forward(
            get(&io, "sample"),
            get(&io, "timesteps"),
            get(&io, "context"),
        )
        .unwrap();
    check(&format!("{name} eps"), &eps, get(&io, "eps"), TOL);
}

#[test]
fn unet_sd1_noise_prediction_matches_diffusers() {
    unet_forward_matches("unet_sd1");
}

#[test]
fn unet_sd2_noise_prediction_matches_diffusers() {
    unet_forward_matches("unet_sd2");
}

fn is_attn2_kv(name: &str) -> bool {
    name.contains("attn2.to_k") || name.contains("attn2.to_v")
}

fn unet_gradients_match(name: &str) {
    let dev = test_device();
    let io = io(name);
    let varmap = VarMap::new();
    let unet = UNet2DConditionModel::from_pretrained_trainable(
        &fixtures().join(name),
        &varmap,
        is_attn2_kv,
        DType::F32,
        &dev,
    )
    .expect("load trainable U-Net");
    let context = Var::from_tensor(get(&io, "context")).unwrap();
    let eps = unet
        .forward(
            get(&io, "sample"),
            get(&io, "timesteps"),
            context.as_tensor(),
        )
        .unwrap();
    let loss = (eps * get(&io, "loss_weights")).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();

    let want: Vec<&String> = io.keys().filter(|k| k.starts_with("grad.")).collect();
    let vars = varmap.data().lock().unwrap();
    let mut trained: Vec<&String> = vars.keys().collect();
    trained.sort();
    let mut expected: Vec<String> = want
        .iter()
        .filter(|k| *k != &"grad.context")
        .map(|k| k.trim_start_matches("grad.").to_string())
        .collect();
    expected.sort();
    assert_eq!(
        trained.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        expected.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "the trainable parameters are exactly the attn2 k/v weights"
    );
    assert_eq!(expected.len(), 8);
    for p in &expected {
        let g = grads
            .get(vars[p].as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {p}"));
        check(
            &format!("{name} grad {p}"),
            g,
            get(&io, &format!("grad.{p}")),
            TOL,
        );
    }
    let gc = grads
        .get(context.as_tensor())
        .expect("no gradient for context");
    check(
        &format!("{name} grad context"),
        gc,
        get(&io, "grad.context"),
        TOL,
    );
}

#[test]
fn unet_sd1_attn2_kv_and_context_gradients_match_torch_autograd() {
    unet_gradients_match("unet_sd1");
}

#[test]
fn unet_sd2_attn2_kv_and_context_gradients_match_torch_autograd() {
    unet_gradients_match("unet_sd2");
}

#[test]
fn unet_timesteps_are_per_sample() {
    // Each sample of the batch, run alone with its own timestep, gives the batched result.
    let dev = test_device();
    let io = io("unet_sd1");
    let unet =
        UNet2DConditionModel::from_pretrained(&fixtures().join("unet_sd1"), DType::F32, &dev)
            .unwrap();
    let batched = get(&io, "eps");
    for i in 0..3 {
        let one = unet
            .forward(
                &get(&io, "sample").narrow(0, i, 1).unwrap(),
                &get(&io, "timesteps").narrow(0, i, 1).unwrap(),
                &get(&io, "context").narrow(0, i, 1).unwrap(),
            )
            .unwrap();
        let err = max_abs_diff(&one, &batched.narrow(0, i, 1).unwrap());
        assert!(err < TOL, "sample {i}: {err}");
    }
    // And a different timestep gives a different prediction.
    let t_same = Tensor::new(&[500f32, 500., 500.], &dev).unwrap();
    let eps_same = unet
        .forward(get(&io, "sample"), &t_same, get(&io, "context"))
        .unwrap();
    assert!(
        max_abs_diff(
            &eps_same.narrow(0, 0, 1).unwrap(),
            &batched.narrow(0, 0, 1).unwrap()
        ) > 1e-3
    );
    assert!(
        max_abs_diff(
            &eps_same.narrow(0, 1, 1).unwrap(),
            &batched.narrow(0, 1, 1).unwrap()
        ) < TOL
    );
}

#[test]
fn unet_f16_agrees_with_f32_golden() {
    let dev = test_device();
    for name in ["unet_sd1", "unet_sd2"] {
        let io = io(name);
        let unet = UNet2DConditionModel::from_pretrained(&fixtures().join(name), DType::F16, &dev)
            .unwrap();
        assert_eq!(unet.dtype(), DType::F16);
        let eps = unet
            .forward(
                get(&io, "sample"),
                get(&io, "timesteps"),
                get(&io, "context"),
            )
            .unwrap();
        assert_eq!(eps.dtype(), DType::F16);
        let err = max_abs_diff(&eps, get(&io, "eps"));
        eprintln!("{name} f16 eps: max abs error {err:.3e}");
        assert!(err < 2e-2, "{name} f16 error {err}");
    }
}

#[test]
fn vae_posterior_and_decode_match_diffusers() {
    let dev = test_device();
    let io = io("vae");
    let vae = AutoencoderKL::from_pretrained(&fixtures().join("vae"), DType::F32, &dev).unwrap();
    assert_eq!(vae.scaling_factor(), 0.18215);
    assert_eq!(vae.shift_factor(), None);
    let post = vae.encode(get(&io, "image")).unwrap();
    check("vae posterior mean", &post.mean, get(&io, "mean"), TOL);
    check("vae posterior std", &post.std, get(&io, "std"), TOL);
    check(
        "vae posterior logvar",
        &post.logvar,
        get(&io, "logvar"),
        TOL,
    );
    let latents = post.sample(get(&io, "noise")).unwrap();
    check("vae latents", &latents, get(&io, "latents"), TOL);
    let decoded = vae.decode(get(&io, "latents")).unwrap();
    check("vae decode", &decoded, get(&io, "decoded"), TOL);
    // Scaling round trip.
    let scaled = vae.scale_latents(&latents).unwrap();
    let back = vae.unscale_latents(&scaled).unwrap();
    assert!(max_abs_diff(&back, &latents) < 1e-6);
}

#[test]
fn vae_decode_gradient_matches_torch_autograd() {
    let dev = test_device();
    let io = io("vae");
    let vae = AutoencoderKL::from_pretrained(&fixtures().join("vae"), DType::F32, &dev).unwrap();
    let z = Var::from_tensor(get(&io, "latents")).unwrap();
    let decoded = vae.decode(z.as_tensor()).unwrap();
    let loss = (decoded * get(&io, "decode_weights"))
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    check(
        "vae grad latents",
        grads.get(z.as_tensor()).unwrap(),
        get(&io, "grad.latents"),
        TOL,
    );
}

#[test]
fn vae_f16_agrees_with_f32_golden() {
    let dev = test_device();
    let io = io("vae");
    let vae = AutoencoderKL::from_pretrained(&fixtures().join("vae"), DType::F16, &dev).unwrap();
    let post = vae.encode(get(&io, "image")).unwrap();
    assert_eq!(post.mean.dtype(), DType::F16);
    let e_mean = max_abs_diff(&post.mean, get(&io, "mean"));
    let decoded = vae.decode(get(&io, "latents")).unwrap();
    let e_dec = max_abs_diff(&decoded, get(&io, "decoded"));
    eprintln!("vae f16: mean error {e_mean:.3e}, decode error {e_dec:.3e}");
    assert!(e_mean < 2e-2 && e_dec < 2e-2);
}

/// Copies a fixture model folder into a temporary directory with its weights edited.
fn edited_copy(
    name: &str,
    edit: impl FnOnce(&mut HashMap<String, Tensor>),
) -> (tempfile::TempDir, PathBuf) {
    let src = fixtures().join(name);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    let mut tensors = candle_core::safetensors::load(src.join(WEIGHTS_FILE), &Device::Cpu).unwrap();
    edit(&mut tensors);
    brainrecon_testkit::tensor::save_safetensors(&tensors, dir.join(WEIGHTS_FILE));
    (tmp, dir)
}

#[test]
fn missing_unet_tensor_is_named_with_its_file() {
    let victim = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight";
    let (_tmp, dir) = edited_copy("unet_sd1", |t| {
        assert!(t.remove(victim).is_some());
    });
    let err = UNet2DConditionModel::from_pretrained(&dir, DType::F32, &Device::Cpu).unwrap_err();
    match &err {
        Error::InFile { file, source } => {
            assert_eq!(file, &dir.join(WEIGHTS_FILE));
            match source.as_ref() {
                Error::MissingWeight { name } => assert_eq!(name, victim),
                other => panic!("expected MissingWeight, got {other:?}"),
            }
        }
        other => panic!("expected InFile, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(victim) && msg.contains(WEIGHTS_FILE), "{msg}");
}

#[test]
fn misshapen_vae_tensor_reports_both_shapes() {
    let victim = "decoder.mid_block.attentions.0.to_q.weight";
    let (_tmp, dir) = edited_copy("vae", |t| {
        let w = t[victim].clone();
        assert_eq!(w.dims(), &[32, 32]);
        t.insert(victim.to_string(), w.narrow(0, 0, 16).unwrap());
    });
    let err = AutoencoderKL::from_pretrained(&dir, DType::F32, &Device::Cpu).unwrap_err();
    match &err {
        Error::InFile { source, .. } => match source.as_ref() {
            Error::ShapeMismatch {
                name,
                expected,
                got,
            } => {
                assert_eq!(name, victim);
                assert_eq!(expected, &vec![32, 32]);
                assert_eq!(got, &vec![16, 32]);
            }
            other => panic!("expected ShapeMismatch, got {other:?}"),
        },
        other => panic!("expected InFile, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("[16, 32]") && msg.contains("[32, 32]"),
        "{msg}"
    );
}

#[test]
fn misshapen_tensor_in_trainable_loader_reports_both_shapes() {
    let victim = "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v.weight";
    let (_tmp, dir) = edited_copy("unet_sd2", |t| {
        let w = t[victim].clone();
        t.insert(victim.to_string(), w.narrow(1, 0, 40).unwrap());
    });
    let err = UNet2DConditionModel::from_pretrained_trainable(
        &dir,
        &VarMap::new(),
        is_attn2_kv,
        DType::F32,
        &Device::Cpu,
    )
    .unwrap_err();
    match err {
        Error::InFile { source, .. } => match *source {
            Error::ShapeMismatch {
                name,
                expected,
                got,
            } => {
                assert_eq!(name, victim);
                assert_eq!(expected, vec![16, 48]);
                assert_eq!(got, vec![16, 40]);
            }
            other => panic!("expected ShapeMismatch, got {other:?}"),
        },
        other => panic!("expected InFile, got {other:?}"),
    }
}

#[test]
fn missing_weights_file_and_bad_config_are_typed_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("unet");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        fixtures().join("unet_sd1/config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    match UNet2DConditionModel::from_pretrained(&dir, DType::F32, &Device::Cpu) {
        Err(Error::ReadFile { path, .. }) => assert_eq!(path, dir.join(WEIGHTS_FILE)),
        other => panic!("expected ReadFile, got {other:?}"),
    }
    std::fs::write(dir.join("config.json"), "{\"block_out_channels\": [16,").unwrap();
    match UNet2DConditionModel::from_pretrained(&dir, DType::F32, &Device::Cpu) {
        Err(Error::ConfigParse { path, .. }) => assert_eq!(path, dir.join("config.json")),
        other => panic!("expected ConfigParse, got {other:?}"),
    }
    let mut cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("unet_sd1/config.json")).unwrap(),
    )
    .unwrap();
    cfg["down_block_types"] = serde_json::json!(["SimpleCrossAttnDownBlock2D", "DownBlock2D"]);
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    match UNet2DConditionModel::from_pretrained(&dir, DType::F32, &Device::Cpu) {
        Err(Error::InvalidConfig(msg)) => assert!(msg.contains("SimpleCrossAttnDownBlock2D")),
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}
