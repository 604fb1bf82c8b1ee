//! ATM's EEG encoder against PyTorch (tools/fixtures/eeg_atm.py, the modules as ATM's code
//! defines them): the embeddings and ATM's contrastive loss in training mode, the gradient of
//! every parameter that takes part, the batch norms' running statistics after the step, and the
//! embeddings in inference mode with the subject's token and with the shared one. Two layers,
//! heads of width ⌊30 / 4⌋ = 7; one trial has magnitude 40, one is constant across time.

use brainrecon_brain::atm::{atm_loss, AtmConfig, AtmEegEncoder};
use brainrecon_nn::params::Parameters;
use brainrecon_nn::rng::dropout_stream;
use brainrecon_nn::weights::{Overlay, Weights};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/atm")
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

const SUBJECT: usize = 1;

#[test]
fn embeddings_loss_gradients_and_running_statistics_match_pytorch() {
    let dir = fixtures();
    let io = load(&dir.join("io.safetensors"));
    let config = AtmConfig::from_file(&dir.join("config.json")).unwrap();
    assert_eq!(config.head_dim() * config.n_heads, 28, "ATM's d // H heads");
    let weights =
        Weights::from_files(&[dir.join("model.safetensors")], DType::F32, &Device::Cpu).unwrap();
    let (overlay, vars) = Overlay::trainable(&weights, |_| true, DType::F32).unwrap();
    let encoder = AtmEegEncoder::new(overlay.var_builder(), &config).unwrap();
    let params = Parameters::from_vars(vars).unwrap();

    // Training mode (dropout 0 in the fixture's config, so the stream draws nothing).
    let mut rng = dropout_stream(0, 0);
    let embedding = encoder
        .forward(&io["eeg"], Some(SUBJECT), Some(&mut rng))
        .unwrap();
    let err = error_over(&embedding, &io["embedding"], 1e-6);
    assert!(err < 2e-5, "embedding off by {err}");
    let loss = atm_loss(&embedding, &io["image"], encoder.logit_scale()).unwrap();
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
            let err = error_over(var.as_tensor(), &io[&format!("running.{name}")], 1e-6);
            assert!(err < 1e-5, "running statistic {name} off by {err}");
            continue;
        }
        let Some(want) = io.get(&format!("grad.{name}")) else {
            // the shared token and the parts of ATM's module outside its forward pass
            assert!(
                grads.get(var.as_tensor()).is_none(),
                "{name}: a gradient where PyTorch has none"
            );
            continue;
        };
        // Biases before a batch norm have a zero gradient (rounding noise on both sides), so
        // errors are measured against gradients of at least 1.
        let got = grads.get(var.as_tensor()).unwrap();
        let err = error_over(got, want, 1.0);
        assert!(err < 1e-4, "gradient of {name} off by {err}");
        compared += 1;
    }
    assert_eq!(
        compared,
        io.keys().filter(|k| k.starts_with("grad.")).count(),
        "every PyTorch gradient is compared"
    );

    // Inference reads the running statistics the training step left.
    let eval = encoder.forward(&io["eeg"], Some(SUBJECT), None).unwrap();
    let err = error_over(&eval, &io["embedding_eval"], 1e-6);
    assert!(err < 2e-5, "inference embedding off by {err}");
    // A subject without a token of its own takes the shared one.
    for subject in [None, Some(config.num_subjects + 2)] {
        let shared = encoder.forward(&io["eeg"], subject, None).unwrap();
        let err = error_over(&shared, &io["embedding_shared"], 1e-6);
        assert!(
            err < 2e-5,
            "shared-token embedding ({subject:?}) off by {err}"
        );
    }
}

#[test]
fn configs_that_cannot_build_are_refused_by_field() {
    let config = AtmConfig::new(63, 250, 1024);
    assert!(config.problem().is_none());
    assert_eq!(config.head_dim(), 62, "ATM's d_keys = 250 // 4");
    assert_eq!(config.conv.embedding_dim(), 1440, "ATM's Proj_eeg(1440, …)");
    let mut bad = config.clone();
    bad.conv.times = 200;
    assert!(
        bad.problem().unwrap().starts_with("conv:"),
        "{:?}",
        bad.problem()
    );
    let mut bad = config.clone();
    bad.n_heads = 0;
    assert!(bad.problem().unwrap().contains("n_heads"));
    let mut bad = config.clone();
    bad.dropout = 1.0;
    assert!(bad.problem().unwrap().starts_with("dropout:"));
    let mut bad = config;
    bad.conv.pool_stride = 0;
    assert!(
        bad.problem().unwrap().starts_with("conv.pool_stride"),
        "{:?}",
        bad.problem()
    );
}

#[test]
fn a_bad_config_file_is_an_error_naming_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let mut config = AtmConfig::new(17, 100, 64);
    config.d_ff = 0;
    std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
    let err = AtmConfig::from_file(&path).unwrap_err().to_string();
    assert!(err.contains("config.json") && err.contains("d_ff"), "{err}");
}

#[test]
fn training_with_dropout_draws_from_the_stream_and_is_repeatable() {
    let mut config = AtmConfig::new(4, 24, 8);
    config.d_model = 20;
    config.conv = brainrecon_brain::NiceConfig::new(4, 20, 8);
    config.conv.temporal_kernel = 3;
    config.conv.pool_kernel = 4;
    config.conv.pool_stride = 2;
    let (encoder, params) = brainrecon_brain::atm::initialise(&config, 7, &Device::Cpu).unwrap();
    let values: Vec<f32> = (0..3 * 4 * 24)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) / 5.0)
        .collect();
    let eeg = Tensor::from_vec(values, (3, 4, 24), &Device::Cpu).unwrap();
    let run = |step| {
        let mut rng = dropout_stream(3, step);
        encoder.forward(&eeg, Some(0), Some(&mut rng)).unwrap()
    };
    let (a, b, other) = (run(0), run(0), run(1));
    assert_eq!(error_over(&a, &b, 1e-6), 0.0, "same stream, same values");
    assert!(
        error_over(&a, &other, 1e-6) > 1e-3,
        "another step draws other masks"
    );
    let loss = atm_loss(&a, &a.detach(), encoder.logit_scale()).unwrap();
    let grads = loss.backward().unwrap();
    let tokens = params
        .get("encoder.enc_embedding.subject_embedding.subject_embedding.weight")
        .unwrap();
    assert!(
        grads.get(tokens.as_tensor()).is_some(),
        "the subject token learns"
    );
}
