//! NICE's EEG encoder against PyTorch (tools/fixtures/eeg_nice.py, the modules as NICE's code
//! defines them): the embeddings and the contrastive loss in training mode, the gradient of
//! every parameter, the batch norms' running statistics after the step, and the embeddings in
//! inference mode. One trial has magnitude 40, one is constant across time.

use brainrecon_brain::nice::{nice_loss, NiceConfig, NiceEegEncoder};
use brainrecon_nn::params::Parameters;
use brainrecon_nn::rng::dropout_stream;
use brainrecon_nn::weights::{Overlay, Weights};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nice")
}

fn load(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

/// Largest |a − b| over the largest |b| (at least `floor`).
fn error_over(a: &Tensor, b: &Tensor, floor: f32) -> f32 {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale.max(floor)
}

fn relative_error(a: &Tensor, b: &Tensor) -> f32 {
    error_over(a, b, 1e-6)
}

#[test]
fn embeddings_loss_gradients_and_running_statistics_match_pytorch() {
    let dir = fixtures();
    let io = load(&dir.join("io.safetensors"));
    let config = NiceConfig::from_file(&dir.join("config.json")).unwrap();
    let weights =
        Weights::from_files(&[dir.join("model.safetensors")], DType::F32, &Device::Cpu).unwrap();
    let (overlay, vars) = Overlay::trainable(&weights, |_| true, DType::F32).unwrap();
    let encoder = NiceEegEncoder::new(overlay.var_builder(), &config).unwrap();
    let params = Parameters::from_vars(vars).unwrap();

    // Training mode (dropout 0 in the fixture's config, so the stream draws nothing).
    let mut rng = dropout_stream(0, 0);
    let embedding = encoder.forward(&io["eeg"], Some(&mut rng)).unwrap();
    let err = relative_error(&embedding, &io["embedding"]);
    assert!(err < 2e-5, "embedding off by {err}");
    let loss = nice_loss(&embedding, &io["image"], &encoder.logit_scale).unwrap();
    let want = io["loss"].to_vec1::<f32>().unwrap()[0];
    let got = loss.to_scalar::<f32>().unwrap();
    assert!(
        (got - want).abs() < 2e-5 * want.abs(),
        "loss {got}, torch {want}"
    );

    let grads = loss.backward().unwrap();
    let mut compared = 0;
    for name in params.names() {
        let var = params.get(&name).unwrap();
        if name.contains("running_") {
            assert!(
                grads.get(var.as_tensor()).is_none(),
                "{name} has a gradient"
            );
            let err = relative_error(var.as_tensor(), &io[&format!("running.{name}")]);
            assert!(err < 1e-5, "running statistic {name} off by {err}");
            continue;
        }
        // The biases of the convolutions before the batch norms have a zero gradient (the norm
        // subtracts their mean): both sides hold rounding noise of 1e-6 there, so errors are
        // measured against gradients of at least 1.
        let got = grads.get(var.as_tensor()).unwrap();
        let err = error_over(got, &io[&format!("grad.{name}")], 1.0);
        assert!(err < 1e-4, "gradient of {name} off by {err}");
        compared += 1;
    }
    assert_eq!(
        compared,
        io.keys().filter(|k| k.starts_with("grad.")).count(),
        "every PyTorch parameter is compared"
    );

    // Inference reads the running statistics the training step left.
    let eval = encoder.forward(&io["eeg"], None).unwrap();
    let err = relative_error(&eval, &io["embedding_eval"]);
    assert!(err < 2e-5, "inference embedding off by {err}");
}

#[test]
fn configs_that_cannot_build_are_refused_by_field() {
    let mut config = NiceConfig::new(63, 250, 768);
    assert_eq!(config.pooled_times(), 36, "NICE's 1,440 = 36 × 40");
    assert_eq!(config.embedding_dim(), 1440);
    assert!(config.problem().is_none());
    config.times = 70;
    let problem = config.problem().unwrap();
    assert!(problem.starts_with("times:"), "{problem}");
    let mut config = NiceConfig::new(63, 250, 768);
    config.dropout = 1.0;
    assert!(config.problem().unwrap().starts_with("dropout:"));
    let mut config = NiceConfig::new(63, 250, 768);
    config.channels = 0;
    assert!(config.problem().unwrap().contains("channels"));
}

#[test]
fn a_bad_config_file_is_an_error_naming_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let mut config = NiceConfig::new(17, 100, 768);
    config.pool_stride = 0;
    std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
    let err = NiceConfig::from_file(&path).unwrap_err().to_string();
    assert!(
        err.contains("config.json") && err.contains("pool_stride"),
        "{err}"
    );
    std::fs::write(&path, "{\"channels\": 3}").unwrap();
    let err = NiceConfig::from_file(&path).unwrap_err().to_string();
    assert!(err.contains("config.json"), "{err}");
}
