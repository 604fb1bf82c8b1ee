//! The window encoder's training step on the project's tape against the candle path (same
//! weights, inputs and dropout stream: the same loss and gradients within f32 rounding) and
//! against PyTorch's goldens of tools/fixtures/window_encoder.py.

use brainrecon_brain::window::tape::{forward_on_tape, train_step_on_tape};
use brainrecon_brain::window::{encoder_loss, FmriWindowEncoder, WindowEncoderConfig};
use brainrecon_nn::init::init_parameters;
use brainrecon_nn::params::Parameters;
use brainrecon_nn::rng::SeededNoise;
use brainrecon_nn::tape::Tape;
use brainrecon_nn::weights::{Overlay, Weights};
use candle_core::{DType, Device, Tensor};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::Path;

/// Largest |a − b| over the largest |b|.
fn relative_diff(a: &Tensor, b: &Tensor) -> f32 {
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Runs both engines on one step; returns the worst relative gradient difference.
fn compare(config: &WindowEncoderConfig, batch: usize, scale: f32, seed: u64) -> f32 {
    let (encoder, params) = init_parameters(
        |vb| FmriWindowEncoder::new(vb, config),
        seed,
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let mut noise = SeededNoise::new(seed ^ 0x5EED);
    let width = config.window * config.voxels;
    let mut draw = |shape: &[usize], scale: f32| {
        let values = noise.normal_vec(shape.iter().product());
        let values = values.into_iter().map(|v| v * scale).collect::<Vec<_>>();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    };
    let windows = draw(&[batch, width], scale);
    let target = draw(&[batch, config.tokens, config.hidden_size], 1.0);
    let (temperature, align) = (0.1, 0.5);

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let context = encoder.forward(&windows, Some(&mut rng)).unwrap();
    let (total, _, _) = encoder_loss(&context, &target, temperature, align).unwrap();
    let candle_grads = total.backward().unwrap();

    let mut tape = Tape::new();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let step = train_step_on_tape(
        &encoder,
        &mut tape,
        &windows,
        &target,
        Some(&mut rng),
        temperature,
        align,
    )
    .unwrap();
    let want = total.to_scalar::<f32>().unwrap() as f64;
    assert!(
        (step.loss.total - want).abs() <= 2e-5 * want.abs().max(1.0),
        "loss {} on the tape, {want} on candle",
        step.loss.total
    );
    // the same tape again (buffers reused) gives the same gradients
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let again = train_step_on_tape(
        &encoder,
        &mut tape,
        &windows,
        &target,
        Some(&mut rng),
        temperature,
        align,
    )
    .unwrap();
    let mut worst = 0f32;
    let largest = params
        .vars()
        .iter()
        .map(|(_, v)| max_abs(candle_grads.get(v.as_tensor()).unwrap()))
        .fold(0f32, f32::max);
    for (name, var) in params.vars() {
        let want = candle_grads.get(var.as_tensor()).unwrap();
        let got = step.grads.get(var.as_tensor()).unwrap();
        // a key bias's and token_map's bias's gradients are zero but for rounding (softmax
        // and norm_out ignore a constant added to a row): those compare against the largest
        let scale = max_abs(want).max(1e-2 * largest);
        let diff = relative_diff(got, want) * max_abs(want) / scale;
        assert!(diff <= 1e-4, "gradient of {name} off by {diff} (relative)");
        let repeat = again.grads.get(var.as_tensor()).unwrap();
        assert_eq!(relative_diff(repeat, got), 0.0, "{name} on a reused tape");
        worst = worst.max(diff);
    }
    worst
}

#[test]
fn tape_step_equals_the_candle_step() {
    // padded patches (37 voxels in patches of 8), two heads, dropout on
    let mut config = WindowEncoderConfig::new(3, 37, 5, 16);
    config.patch_size = 8;
    config.num_attention_heads = 2;
    config.intermediate_size = 24;
    config.dropout = 0.2;
    for (scale, seed) in [(1.0, 1), (30.0, 2), (1e-3, 3)] {
        let worst = compare(&config, 4, scale, seed);
        assert!(worst <= 1e-4, "scale {scale}: {worst}");
    }
}

#[test]
fn tape_step_matches_pytorch() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/window_encoder");
    let io: HashMap<String, Tensor> =
        candle_core::safetensors::load(dir.join("io.safetensors"), &Device::Cpu).unwrap();
    let weights =
        Weights::from_files(&[dir.join("model.safetensors")], DType::F32, &Device::Cpu).unwrap();
    let (overlay, vars) = Overlay::trainable(&weights, |_| true, DType::F32).unwrap();
    let config = WindowEncoderConfig::from_file(&dir.join("config.json")).unwrap();
    let encoder = FmriWindowEncoder::new(overlay.var_builder(), &config).unwrap();
    let params = Parameters::from_vars(vars).unwrap();
    let scalar = |k: &str| io[k].flatten_all().unwrap().to_vec1::<f32>().unwrap()[0] as f64;

    let mut tape = Tape::new();
    let (context, _) = forward_on_tape(&encoder, &mut tape, &io["windows"], None).unwrap();
    let got = Tensor::from_slice(tape.value(context), io["context"].dims(), &Device::Cpu).unwrap();
    assert!(relative_diff(&got, &io["context"]) <= 2e-5);

    let step = train_step_on_tape(
        &encoder,
        &mut tape,
        &io["windows"],
        &io["true_context"],
        None,
        scalar("temperature"),
        scalar("align_weight"),
    )
    .unwrap();
    assert!((step.loss.contrastive - scalar("contrastive")).abs() < 1e-5);
    assert!((step.loss.total - scalar("loss")).abs() < 1e-5);
    for name in params.names() {
        let var = params.get(&name).unwrap();
        let got = step.grads.get(var.as_tensor()).unwrap();
        let want = &io[&format!("grad.{name}")];
        let scale = want
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let diff = relative_diff(got, want) * scale;
        assert!(
            diff <= 1e-4 * scale.max(1e-3),
            "gradient of {name} off by {diff} (scale {scale})"
        );
    }
}
