//! Training the project's own model: a tiny configuration for a few steps writes a diffusers
//! folder that the standard loader reads and samples from, and an interrupted run resumes to
//! the same weights.

use brainrecon_diffusion::pipeline::{Device, SampleOptions, StableDiffusion};
use brainrecon_diffusion::scheduler::SchedulerKind;
use brainrecon_nn::rng::SeededNoise;
use brainrecon_zoo::shapes_ldm::{caption_words, train_prior, PriorConfig, TrainEngine};
use std::path::Path;

fn train(out: &Path, config: &PriorConfig) -> brainrecon_zoo::shapes_ldm::PriorSummary {
    train_prior(out, config, 7, &Device::Cpu, &mut |_, _, _, loss| {
        assert!(loss.is_finite())
    })
    .unwrap()
}

#[test]
fn a_trained_prior_loads_and_samples_like_any_diffusers_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiny-ldm");
    let config = PriorConfig::tiny();
    let summary = train(&out, &config);
    assert_eq!(summary.vae_losses.len(), config.vae_steps);
    assert_eq!(summary.decoder_losses.len(), config.decoder_steps);
    assert_eq!(summary.unet_losses.len(), config.unet_steps);
    assert!(summary.scaling_factor.is_finite() && summary.scaling_factor > 0.0);
    for file in [
        "model_index.json",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
        "scheduler/scheduler_config.json",
    ] {
        assert!(out.join(file).is_file(), "{file}");
    }

    let sd = StableDiffusion::load(out.to_str().unwrap(), candle_core::DType::F32, &Device::Cpu)
        .unwrap();
    assert_eq!(sd.default_size(), config.image_size);
    assert_eq!(sd.tokenizer.max_length, config.max_length);
    // Every caption word is one token of the trained vocabulary.
    let ids = sd
        .tokenizer
        .tokens("a small red circle on a grey background")
        .unwrap();
    assert_eq!(ids.len(), 8);
    assert!(caption_words().contains(&"triangle".to_string()));
    let context = sd
        .encode_prompts(&["a large blue square"], None, 3.0)
        .unwrap();
    let options = SampleOptions {
        steps: 3,
        guidance: 3.0,
        scheduler: SchedulerKind::Ddim { eta: 0.0 },
    };
    let latents = sd
        .txt2img(
            &context,
            16,
            16,
            &options,
            &mut SeededNoise::new(1),
            &mut |_| {},
        )
        .unwrap();
    let image = sd.decode_latent(&latents).unwrap();
    assert_eq!(image.dims(), &[1, 3, 16, 16]);
}

#[test]
fn an_interrupted_run_resumes_to_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let config = PriorConfig::tiny();
    let whole = dir.path().join("whole");
    train(&whole, &config);

    // Stop after one step of the decoder and of the denoiser, then run again with the full
    // schedule.
    let parts = dir.path().join("parts");
    train(
        &parts,
        &PriorConfig {
            decoder_steps: 1,
            unet_steps: 1,
            ..config.clone()
        },
    );
    let resumed = train(&parts, &config);
    assert_eq!(
        resumed.resumed_from,
        vec![
            ("vae".to_string(), config.vae_steps),
            ("decoder".to_string(), 1),
            ("denoiser".to_string(), 1)
        ]
    );
    for file in [
        "vae/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors",
    ] {
        assert_eq!(
            std::fs::read(whole.join(file)).unwrap(),
            std::fs::read(parts.join(file)).unwrap(),
            "{file}"
        );
    }
}

#[test]
fn fine_tuning_the_decoder_leaves_the_encoder_and_the_denoiser_alone() {
    let dir = tempfile::tempdir().unwrap();
    let config = PriorConfig::tiny();
    let tuned = dir.path().join("tuned");
    let summary = train(&tuned, &config);
    assert_eq!(summary.decoder_losses.len(), config.decoder_steps);
    let plain = dir.path().join("plain");
    train(
        &plain,
        &PriorConfig {
            decoder_steps: 0,
            ..config.clone()
        },
    );
    let read = |dir: &Path, file: &str| {
        candle_core::safetensors::load(dir.join(file), &candle_core::Device::Cpu).unwrap()
    };
    let (a, b) = (
        read(&tuned, "vae/diffusion_pytorch_model.safetensors"),
        read(&plain, "vae/diffusion_pytorch_model.safetensors"),
    );
    let same = |name: &str| {
        let d = (&a[name] - &b[name]).unwrap().abs().unwrap();
        d.flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            == 0.0
    };
    let mut decoder_changed = false;
    for name in a.keys() {
        if name.starts_with("decoder.") || name.starts_with("post_quant_conv.") {
            decoder_changed |= !same(name);
        } else {
            assert!(same(name), "{name} changed");
        }
    }
    assert!(decoder_changed, "the decoder stage trained nothing");
    for file in [
        "unet/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors",
    ] {
        assert_eq!(
            std::fs::read(tuned.join(file)).unwrap(),
            std::fs::read(plain.join(file)).unwrap(),
            "{file}"
        );
    }
}

/// The denoiser trained on the tape (the default on the CPU) and on candle's autograd: the
/// same autoencoder (its stage is candle's on both), and the denoiser's losses agree over
/// the first steps, the later ones after AdamW has moved every weight with the engine's
/// gradients.
#[test]
fn the_tape_and_candle_train_the_denoiser_alike() {
    let dir = tempfile::tempdir().unwrap();
    let config = PriorConfig {
        decoder_steps: 0,
        unet_steps: 6,
        ..PriorConfig::tiny()
    };
    assert_eq!(config.engine, TrainEngine::Tape);
    let tape = train(&dir.path().join("tape"), &config);
    let candle = train(
        &dir.path().join("candle"),
        &PriorConfig {
            engine: TrainEngine::Candle,
            ..config.clone()
        },
    );
    assert_eq!(tape.vae_losses, candle.vae_losses);
    assert_eq!(tape.unet_losses.len(), 6);
    for (step, (a, b)) in tape.unet_losses.iter().zip(&candle.unet_losses).enumerate() {
        eprintln!("denoiser step {step}: tape {a:.7}, candle {b:.7}");
        assert!(
            (a - b).abs() <= 1e-4 * b.abs(),
            "step {step}: tape {a}, candle {b}"
        );
    }
}
