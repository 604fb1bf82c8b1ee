//! Training through diffusion's models: initialisation rules against the parameters torch
//! constructs for the same tiny diffusers / transformers models (tools/fixtures/train_adamw.py),
//! gradients reaching every parameter, parameter files loading as checkpoints, and the
//! denoiser's min-SNR-γ loss weights against diffusers' `compute_snr`
//! (tools/fixtures/min_snr.py). The optimizer, checkpoints and initialisation themselves are
//! tested in brainrecon-nn.

mod common;

use std::collections::{BTreeMap, HashMap};

use brainrecon_diffusion::clip::{ClipTextConfig, ClipTextModel};
use brainrecon_diffusion::unet::{UNet2DConditionConfig, UNet2DConditionModel};
use brainrecon_diffusion::vae::{AutoencoderKL, AutoencoderKLConfig};
use brainrecon_nn::init::{
    default_init_rules, fan_in, init_parameters, record_parameters, ParamInit,
};
use brainrecon_nn::optim::{clip_grad_norm, AdamW};
use brainrecon_nn::params::Parameters;
use brainrecon_nn::rng::SeededNoise;
use brainrecon_nn::weights::Weights;
use brainrecon_nn::ModelError;
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use serde_json::Value;

fn values(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    values(t).iter().map(|v| v.to_bits()).collect()
}

// ---------------------------------------------------------------------------------------------
// Initialisation
// ---------------------------------------------------------------------------------------------

fn vae_config() -> AutoencoderKLConfig {
    AutoencoderKLConfig::from_file(&common::fixtures().join("tiny-sd/vae/config.json")).unwrap()
}

fn clip_config() -> ClipTextConfig {
    ClipTextConfig::from_file(&common::fixtures().join("tiny-sd/text_encoder/config.json")).unwrap()
}

fn unet_config() -> UNet2DConditionConfig {
    UNet2DConditionConfig::from_file(&common::fixtures().join("tiny-sd/unet/config.json")).unwrap()
}

fn init_vae(seed: u64) -> (AutoencoderKL, Parameters) {
    let cfg = vae_config();
    init_parameters(
        |vb| AutoencoderKL::new(vb, &cfg),
        seed,
        DType::F32,
        &Device::Cpu,
    )
    .unwrap()
}

fn init_clip(seed: u64) -> (ClipTextModel, Parameters) {
    let cfg = clip_config();
    init_parameters(
        |vb| ClipTextModel::new(vb, &cfg),
        seed,
        DType::F32,
        &Device::Cpu,
    )
    .unwrap()
}

/// The rules torch used for one model of `init_reference.json`: name → [shape, kind, ...].
fn reference(model: &str) -> BTreeMap<String, Vec<Value>> {
    let all = common::read_json("train/init_reference.json");
    serde_json::from_value(all[model].clone()).unwrap()
}

/// Our rule for every parameter agrees with what torch did for the same names: the same set
/// of names and shapes; uniform bounds equal to torch's 1/sqrt(fan_in) (and torch's values
/// inside them); constants equal; normal scales near torch's empirical std.
fn check_rules_against_torch(model: &str, shapes: &[(String, Vec<usize>)]) {
    let torch = reference(model);
    let ours: BTreeMap<String, Vec<usize>> = shapes.iter().cloned().collect();
    let torch_names: Vec<&String> = torch.keys().collect();
    let our_names: Vec<&String> = ours.keys().collect();
    assert_eq!(our_names, torch_names, "{model}: parameter names differ");
    for (name, rule) in default_init_rules(shapes) {
        let entry = &torch[&name];
        let shape: Vec<usize> = serde_json::from_value(entry[0].clone()).unwrap();
        assert_eq!(shape, ours[&name], "{model} {name}: shape");
        match (entry[1].as_str().unwrap(), rule) {
            ("uniform", ParamInit::Uniform { bound }) => {
                let want = entry[2].as_f64().unwrap();
                assert!(
                    (bound - want).abs() <= 1e-12 * want,
                    "{name}: {bound} vs {want}"
                );
                if let Some(max_abs) = entry[3].as_f64() {
                    assert!(max_abs <= bound * (1.0 + 1e-6), "{name}");
                }
            }
            ("const", ParamInit::Constant(c)) => {
                assert_eq!(c, entry[2].as_f64().unwrap(), "{model} {name}");
            }
            ("normal", ParamInit::Normal { std }) => {
                let empirical = entry[2].as_f64().unwrap();
                assert!(
                    (empirical - std).abs() < 0.05 * std,
                    "{name}: {std} vs {empirical}"
                );
            }
            (kind, rule) => panic!("{model} {name}: torch {kind}, ours {rule:?}"),
        }
    }
}

#[test]
fn init_rules_match_torch_for_vae_unet_and_clip() {
    let dev = Device::Cpu;
    let vae = vae_config();
    let shapes = record_parameters(|vb| AutoencoderKL::new(vb, &vae), DType::F32, &dev).unwrap();
    check_rules_against_torch("vae", &shapes);
    let unet = unet_config();
    let shapes =
        record_parameters(|vb| UNet2DConditionModel::new(vb, &unet), DType::F32, &dev).unwrap();
    check_rules_against_torch("unet", &shapes);
    let clip = clip_config();
    let shapes = record_parameters(|vb| ClipTextModel::new(vb, &clip), DType::F32, &dev).unwrap();
    check_rules_against_torch("clip", &shapes);
}

#[test]
fn init_is_seeded_and_follows_the_rules() {
    let (_, a) = init_vae(1);
    let (_, b) = init_vae(1);
    let (_, c) = init_vae(2);
    assert_eq!(a.names(), b.names());
    assert!(a.len() > 50 && a.count_elements() > 10_000);
    let (ta, tb, tc) = (
        a.tensors().unwrap(),
        b.tensors().unwrap(),
        c.tensors().unwrap(),
    );
    let rules: HashMap<String, ParamInit> = default_init_rules(&a.shapes()).into_iter().collect();
    let mut checked_variance = 0;
    for name in a.names() {
        assert_eq!(
            bits(&ta[&name]),
            bits(&tb[&name]),
            "{name}: same seed differs"
        );
        let v: Vec<f64> = values(&ta[&name]).iter().map(|&x| x as f64).collect();
        match rules[&name] {
            ParamInit::Uniform { bound } => {
                assert_ne!(bits(&ta[&name]), bits(&tc[&name]), "{name}: seeds agree");
                assert!(v.iter().all(|x| x.abs() <= bound), "{name} out of range");
                if v.len() >= 1000 {
                    // U(-b, b) has variance b²/3 = 1 / (3 fan_in).
                    let mean = v.iter().sum::<f64>() / v.len() as f64;
                    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
                    let want = bound * bound / 3.0;
                    assert!(
                        (var / want - 1.0).abs() < 0.1,
                        "{name}: var {var}, want {want}"
                    );
                    let shape = a.get(&name).unwrap().dims().to_vec();
                    if shape.len() >= 2 {
                        assert!((want - 1.0 / (3.0 * fan_in(&shape) as f64)).abs() < 1e-12);
                    }
                    checked_variance += 1;
                }
            }
            ParamInit::Constant(k) => assert!(v.iter().all(|&x| x == k), "{name}"),
            ParamInit::Normal { .. } => panic!("the VAE has no embeddings ({name})"),
        }
        if name.contains("norm") && name.ends_with(".weight") {
            assert!(v.iter().all(|&x| x == 1.0), "{name}");
        }
        if name.contains("norm") && name.ends_with(".bias") {
            assert!(v.iter().all(|&x| x == 0.0), "{name}");
        }
    }
    assert!(checked_variance >= 10, "{checked_variance}");

    // CLIP: embeddings N(0, 0.02²), linear layers U(±1/sqrt(fan_in)), layer norms 1 / 0.
    let (_, clip) = init_clip(5);
    let (_, clip_again) = init_clip(5);
    let t = clip.tensors().unwrap();
    let t2 = clip_again.tensors().unwrap();
    for name in clip.names() {
        assert_eq!(bits(&t[&name]), bits(&t2[&name]));
    }
    let emb: Vec<f64> = values(&t["embeddings.token_embedding.weight"])
        .iter()
        .map(|&x| x as f64)
        .collect();
    let std = (emb.iter().map(|x| x * x).sum::<f64>() / emb.len() as f64).sqrt();
    assert!((std - 0.02).abs() < 0.001, "token embedding std {std}");
    let fc1 = values(&t["encoder.layers.0.mlp.fc1.weight"]);
    let bound = 1.0 / (clip_config().hidden_size as f64).sqrt();
    let max = fc1.iter().fold(0f64, |m, &x| m.max(x.abs() as f64));
    assert!(
        max <= bound && max > 0.9 * bound,
        "fc1 max {max}, bound {bound}"
    );
    let var = fc1.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / fc1.len() as f64;
    assert!((var * 3.0 * 32.0 - 1.0).abs() < 0.1, "fc1 variance {var}");
    assert!(values(&t["final_layer_norm.weight"])
        .iter()
        .all(|&x| x == 1.0));
    assert!(values(&t["encoder.layers.2.layer_norm1.bias"])
        .iter()
        .all(|&x| x == 0.0));
}

// ---------------------------------------------------------------------------------------------
// Training through our modules
// ---------------------------------------------------------------------------------------------

fn seeded(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(SeededNoise::new(seed).normal_vec(n), shape, &Device::Cpu).unwrap()
}

fn vae_loss(vae: &AutoencoderKL, x: &Tensor, noise: &Tensor) -> Tensor {
    let posterior = vae.encode(x).unwrap();
    let z = posterior.sample(noise).unwrap();
    let y = vae.decode(&z).unwrap();
    (y - x).unwrap().sqr().unwrap().mean_all().unwrap()
}

fn grad_norm(grads: &GradStore, var: &Var) -> Option<f64> {
    grads.get(var.as_tensor()).map(|g| {
        g.sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            .sqrt() as f64
    })
}

#[test]
fn vae_gradients_reach_every_parameter_and_adamw_overfits_a_batch() {
    let (vae, params) = init_vae(11);
    // A smooth fixed batch in [-1, 1], 2 images 3x16x16, and fixed posterior noise.
    let x = (seeded(&[2, 3, 16, 16], 1) * 0.5).unwrap().tanh().unwrap();
    let noise = seeded(&[2, 4, 8, 8], 2);
    let loss0 = vae_loss(&vae, &x, &noise);
    let grads = loss0.backward().unwrap();
    let missing: Vec<String> = params
        .vars()
        .into_iter()
        .filter(|(_, v)| !matches!(grad_norm(&grads, v), Some(n) if n > 0.0))
        .map(|(n, _)| n)
        .collect();
    assert!(missing.is_empty(), "no gradient for {missing:?}");

    let mut opt = AdamW::with_defaults(2e-3).unwrap();
    let before = params.tensors().unwrap();
    opt.step(&params, &grads).unwrap();
    for (name, var) in params.vars() {
        assert_ne!(
            bits(var.as_tensor()),
            bits(&before[&name]),
            "{name} did not change"
        );
    }
    let first = loss0.to_scalar::<f32>().unwrap();
    let mut last = first;
    for _ in 0..20 {
        let loss = vae_loss(&vae, &x, &noise);
        last = loss.to_scalar::<f32>().unwrap();
        let mut grads = loss.backward().unwrap();
        clip_grad_norm(&mut grads, &params, 1.0).unwrap();
        opt.step(&params, &grads).unwrap();
    }
    assert!(last < 0.7 * first, "loss {first} -> {last}");
}

#[test]
fn clip_gradients_reach_every_parameter() {
    let (clip, params) = init_clip(3);
    let ids = Tensor::from_vec(
        vec![1512u32, 5, 17, 900, 1513, 1512, 44, 1000, 3, 1513],
        (2, 5),
        &Device::Cpu,
    )
    .unwrap();
    let h = clip.forward(&ids).unwrap();
    let probe = seeded(h.dims(), 4);
    let loss = (h.sqr().unwrap() * probe).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    for (name, var) in params.vars() {
        assert!(
            matches!(grad_norm(&grads, &var), Some(n) if n > 0.0),
            "no gradient for {name}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

#[test]
fn parameters_round_trip_and_bad_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (_, a) = init_clip(1);
    let (clip_b, mut b) = init_clip(2);
    let path = dir.path().join("clip.safetensors");
    a.save_safetensors(&path).unwrap();
    // The file is an ordinary checkpoint: our weight loader builds the model from it.
    let w = Weights::from_files(std::slice::from_ref(&path), DType::F32, &Device::Cpu).unwrap();
    let loaded = ClipTextModel::from_weights(&w, &clip_config()).unwrap();
    let ta = a.tensors().unwrap();
    assert_eq!(
        bits(&loaded.embeddings.token_embedding),
        bits(&ta["embeddings.token_embedding.weight"])
    );
    // Loading sets the variables in place: the module built over them sees the new values.
    b.load_safetensors(&path).unwrap();
    assert_eq!(
        bits(&clip_b.embeddings.token_embedding),
        bits(&ta["embeddings.token_embedding.weight"])
    );
    let tb = b.tensors().unwrap();
    for name in a.names() {
        assert_eq!(bits(&ta[&name]), bits(&tb[&name]), "{name}");
    }

    // A file whose tensor has the wrong shape: named file and tensor, nothing changed.
    let (_, mut c) = init_clip(3);
    let before = c.tensors().unwrap();
    let mut tensors = a.tensors().unwrap();
    tensors.insert(
        "final_layer_norm.weight".into(),
        Tensor::zeros(7, DType::F32, &Device::Cpu).unwrap(),
    );
    let bad = dir.path().join("bad.safetensors");
    brainrecon_testkit::tensor::save_safetensors(&tensors, &bad);
    let err = c.load_safetensors(&bad).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, ModelError::Shape { .. })
            && msg.contains("bad.safetensors")
            && msg.contains("final_layer_norm.weight"),
        "{msg}"
    );
    let after = c.tensors().unwrap();
    for name in c.names() {
        assert_eq!(bits(&before[&name]), bits(&after[&name]), "{name} changed");
    }
    // A missing tensor, and an unexpected one.
    let mut tensors = a.tensors().unwrap();
    tensors.remove("encoder.layers.1.mlp.fc2.bias");
    let missing = dir.path().join("missing.safetensors");
    brainrecon_testkit::tensor::save_safetensors(&tensors, &missing);
    let msg = c.load_safetensors(&missing).unwrap_err().to_string();
    assert!(
        msg.contains("missing.safetensors") && msg.contains("encoder.layers.1.mlp.fc2.bias"),
        "{msg}"
    );
    let mut tensors = a.tensors().unwrap();
    tensors.insert(
        "stray.weight".into(),
        Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap(),
    );
    let extra = dir.path().join("extra.safetensors");
    brainrecon_testkit::tensor::save_safetensors(&tensors, &extra);
    let msg = c.load_safetensors(&extra).unwrap_err().to_string();
    assert!(
        msg.contains("extra.safetensors") && msg.contains("stray.weight"),
        "{msg}"
    );
    let msg = c
        .load_safetensors(dir.path().join("absent.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("absent.safetensors"), "{msg}");
}

#[test]
fn min_snr_weights_match_diffusers() {
    use brainrecon_diffusion::prior::min_snr_weights;
    use brainrecon_diffusion::scheduler::{NoiseSchedule, SchedulerConfig};
    let fixture = common::read_json("train/min_snr.json");
    let list = |key: &str| -> Vec<f64> {
        fixture[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let timesteps: Vec<usize> = list("timesteps").iter().map(|&t| t as usize).collect();
    let schedule = NoiseSchedule::new(&SchedulerConfig::stable_diffusion()).unwrap();
    for (gamma, key) in [(5.0, "weights_gamma_5"), (1.0, "weights_gamma_1")] {
        let got = min_snr_weights(&schedule.alphas_cumprod, &timesteps, gamma);
        let want = list(key);
        for ((t, g), w) in timesteps.iter().zip(&got).zip(&want) {
            assert!(
                (*g as f64 - w).abs() <= 1e-5 * w.abs().max(1e-3),
                "γ {gamma}, t {t}: {g} vs diffusers {w}"
            );
        }
        // The cap bites somewhere and leaves the noisiest timesteps at full weight.
        assert!(
            want.iter().any(|&w| w < 0.5) && want.last() == Some(&1.0),
            "{want:?}"
        );
    }
}
