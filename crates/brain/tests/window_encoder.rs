//! The fMRI window encoder against PyTorch: the context, MinD-Video's contrastive loss with the
//! alignment term, and the gradient of every parameter, on the tiny configuration of
//! tools/fixtures/window_encoder.py (diffusers' BasicTransformerBlock for the spatial and
//! temporal blocks; one constant window, one of magnitude 30).

use brainrecon_brain::window::{encoder_loss, FmriWindowEncoder, WindowEncoderConfig};
use brainrecon_nn::params::Parameters;
use brainrecon_nn::weights::{Overlay, Weights};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/window_encoder")
}

fn load(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

/// Largest |a − b| and the largest |b|.
fn max_abs_diff(a: &Tensor, b: &Tensor) -> (f32, f32) {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    (diff, scale)
}

fn scalar(t: &Tensor) -> f32 {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0]
}

#[test]
fn context_loss_and_gradients_match_pytorch() {
    let dir = fixtures();
    let io = load(&dir.join("io.safetensors"));
    let weights =
        Weights::from_files(&[dir.join("model.safetensors")], DType::F32, &Device::Cpu).unwrap();
    let (overlay, vars) = Overlay::trainable(&weights, |_| true, DType::F32).unwrap();
    let config = WindowEncoderConfig::from_file(&dir.join("config.json")).unwrap();
    let encoder = FmriWindowEncoder::new(overlay.var_builder(), &config).unwrap();
    let params = Parameters::from_vars(vars).unwrap();

    let context = encoder.forward(&io["windows"], None).unwrap();
    let (diff, scale) = max_abs_diff(&context, &io["context"]);
    assert!(diff <= 2e-5 * scale.max(1.0), "context off by {diff}");
    // The folder reader builds the same encoder (inference takes the fused layer norm, hence
    // not bit for bit).
    let read = FmriWindowEncoder::from_dir(&dir, &Device::Cpu).unwrap();
    let (diff, _) = max_abs_diff(&read.forward(&io["windows"], None).unwrap(), &context);
    assert!(
        diff <= 2e-5 * scale.max(1.0),
        "read from the folder: off by {diff}"
    );

    let (temperature, weight) = (scalar(&io["temperature"]), scalar(&io["align_weight"]));
    let (total, contrastive, _) = encoder_loss(
        &context,
        &io["true_context"],
        temperature as f64,
        weight as f64,
    )
    .unwrap();
    let (total_v, contrastive_v) = (
        total.to_scalar::<f32>().unwrap(),
        contrastive.to_scalar::<f32>().unwrap(),
    );
    assert!((contrastive_v - scalar(&io["contrastive"])).abs() < 1e-5);
    assert!((total_v - scalar(&io["loss"])).abs() < 1e-5);

    let grads = total.backward().unwrap();
    let names = params.names();
    assert_eq!(
        names.len(),
        io.keys().filter(|k| k.starts_with("grad.")).count(),
        "every PyTorch parameter is a variable here"
    );
    for name in names {
        let var = params.get(&name).unwrap();
        let got = grads.get(var.as_tensor()).unwrap();
        let (diff, scale) = max_abs_diff(got, &io[&format!("grad.{name}")]);
        assert!(
            diff <= 1e-4 * scale.max(1e-3),
            "gradient of {name} off by {diff} (scale {scale})"
        );
    }
}
