//! The training foundation (src/train.rs) against PyTorch: AdamW and clip_grad_norm_ step for
//! step (tools/fixtures/train_adamw.py), initialisation rules against the parameters torch
//! constructs for the same tiny diffusers / transformers models, exact resumption, and the
//! denoiser's min-SNR-γ loss weights against diffusers' `compute_snr`
//! (tools/fixtures/min_snr.py).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use brainrecon_diffusion::clip::{ClipTextConfig, ClipTextModel};
use brainrecon_diffusion::rng::SeededNoise;
use brainrecon_diffusion::train::{
    clip_grad_norm, default_init_rules, fan_in, init_parameters, init_parameters_with,
    latest_checkpoint, load_checkpoint, record_parameters, save_checkpoint, AdamW, Checkpoint,
    ParamInit, Parameters, KEEP_CHECKPOINTS,
};
use brainrecon_diffusion::unet::{UNet2DConditionConfig, UNet2DConditionModel};
use brainrecon_diffusion::vae::{AutoencoderKL, AutoencoderKLConfig};
use brainrecon_diffusion::weights::{DiffusionError, Weights};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// The AdamW fixture
// ---------------------------------------------------------------------------------------------

struct AdamFixture {
    weights: Weights,
    meta: HashMap<String, Value>,
    names: Vec<String>,
}

impl AdamFixture {
    fn load() -> Self {
        let path = common::fixtures().join("train/adamw.safetensors");
        let bytes = std::fs::read(&path).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let fixture = &meta.metadata().as_ref().unwrap()["fixture"];
        let meta: HashMap<String, Value> = serde_json::from_str(fixture).unwrap();
        let names: Vec<String> = serde_json::from_value(meta["names"].clone()).unwrap();
        AdamFixture {
            weights: common::tensors("train/adamw.safetensors"),
            meta,
            names,
        }
    }

    fn f64(&self, key: &str) -> f64 {
        self.meta[key].as_f64().unwrap()
    }

    fn usize(&self, key: &str) -> usize {
        self.meta[key].as_u64().unwrap() as usize
    }

    fn tensor(&self, name: &str) -> Tensor {
        common::get(&self.weights, name)
    }

    fn has(&self, name: &str) -> bool {
        self.weights.contains(name)
    }

    /// Fresh variables holding the initial values.
    fn params(&self) -> Parameters {
        Parameters::from_vars(self.names.iter().map(|n| {
            (
                n.clone(),
                Var::from_tensor(&self.tensor(&format!("init.{n}"))).unwrap(),
            )
        }))
        .unwrap()
    }

    fn optimizer(&self) -> AdamW {
        AdamW::new(
            self.f64("lr"),
            self.f64("beta1"),
            self.f64("beta2"),
            self.f64("eps"),
            self.f64("weight_decay"),
        )
        .unwrap()
    }

    /// Gradient set `k` for `params` (names absent from the fixture have no gradient).
    fn grads(&self, k: usize, params: &Parameters) -> GradStore {
        let mut store = GradStore::default();
        for (name, var) in params.vars() {
            let key = format!("grad.{k}.{name}");
            if self.has(&key) {
                store.insert(var.as_tensor(), self.tensor(&key));
            }
        }
        store
    }

    /// One step as the fixture ran it (the learning rate changes before `lr_change_step`).
    fn step(&self, k: usize, opt: &mut AdamW, params: &Parameters) {
        if k == self.usize("lr_change_step") {
            opt.set_lr(self.f64("lr_later"));
        }
        opt.step(params, &self.grads(k, params)).unwrap();
    }
}

fn values(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Element-wise `|a - b| <= rel |b| + abs`, with the worst offender in the message.
fn assert_close(what: &str, got: &Tensor, want: &Tensor, rel: f64, abs: f64) {
    assert_eq!(got.dims(), want.dims(), "{what}: shapes differ");
    let (g, w) = (values(got), values(want));
    let mut worst = (0.0f64, 0usize);
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let excess = (*a as f64 - *b as f64).abs() - (rel * (*b as f64).abs() + abs);
        if excess > worst.0 {
            worst = (excess, i);
        }
    }
    assert!(
        worst.0 <= 0.0,
        "{what}: element {} is {} , torch {}",
        worst.1,
        g[worst.1],
        w[worst.1]
    );
}

fn bits(t: &Tensor) -> Vec<u32> {
    values(t).iter().map(|v| v.to_bits()).collect()
}

#[test]
fn adamw_matches_torch_step_by_step() {
    let fx = AdamFixture::load();
    let params = fx.params();
    let mut opt = fx.optimizer();
    let steps = fx.usize("steps");
    for k in 0..steps {
        let before: HashMap<String, Vec<u32>> = params
            .vars()
            .into_iter()
            .map(|(n, v)| (n, bits(v.as_tensor())))
            .collect();
        fx.step(k, &mut opt, &params);
        for (name, var) in params.vars() {
            let want = fx.tensor(&format!("param.{k}.{name}"));
            assert_close(
                &format!("step {k} {name}"),
                var.as_tensor(),
                &want,
                1e-6,
                1e-9,
            );
            // A parameter without a gradient is left exactly as it was (no weight decay).
            if !fx.has(&format!("grad.{k}.{name}")) {
                assert_eq!(bits(var.as_tensor()), before[&name], "{name} changed");
            }
        }
    }
    assert_eq!(opt.step_count(), steps as u64);
    let param_steps: BTreeMap<String, u64> =
        serde_json::from_value(fx.meta["param_steps"].clone()).unwrap();
    // The moments are running sums of gradients with cancellations (torch's lerp may also
    // fuse a multiply-add), so they are compared relative to each tensor's scale.
    for name in &fx.names {
        assert_eq!(opt.param_step(name), Some(param_steps[name]), "{name}");
        for key in ["exp_avg", "exp_avg_sq"] {
            let want = fx.tensor(&format!("{key}.{name}"));
            let got = if key == "exp_avg" {
                opt.exp_avg(name)
            } else {
                opt.exp_avg_sq(name)
            };
            let scale = common::max_norm(&want) as f64;
            assert_close(
                &format!("{key} {name}"),
                got.unwrap(),
                &want,
                1e-6,
                1e-6 * scale,
            );
        }
    }
    // `late.weight` had no gradient at step 0, so it has one step fewer than the others.
    assert_eq!(opt.param_step("late.weight"), Some(steps as u64 - 2));
}

#[test]
fn clip_grad_norm_matches_torch() {
    let fx = AdamFixture::load();
    let params = fx.params();
    // Clipping (max_norm 1).
    let mut grads = fx.grads(0, &params);
    let total = clip_grad_norm(&mut grads, &params, fx.f64("clip1_max_norm")).unwrap();
    let want = values(&fx.tensor("clip1.total_norm"))[0] as f64;
    assert!(
        (total - want).abs() <= 1e-6 * want,
        "norm {total}, torch {want}"
    );
    let mut clipped = 0;
    for (name, var) in params.vars() {
        let key = format!("clip1.grad.{name}");
        match grads.get(var.as_tensor()) {
            Some(g) => {
                assert_close(&key, g, &fx.tensor(&key), 1e-6, 1e-12);
                clipped += 1;
            }
            None => assert!(!fx.has(&key), "{name} lost its gradient"),
        }
    }
    assert_eq!(clipped, fx.names.len() - 1);
    // No clipping (max_norm 1000): the same norm, gradients untouched.
    let mut grads = fx.grads(0, &params);
    let total2 = clip_grad_norm(&mut grads, &params, fx.f64("clip2_max_norm")).unwrap();
    let want2 = values(&fx.tensor("clip2.total_norm"))[0] as f64;
    assert!((total2 - want2).abs() <= 1e-6 * want2);
    for (name, var) in params.vars() {
        if let Some(g) = grads.get(var.as_tensor()) {
            assert_eq!(bits(g), bits(&fx.tensor(&format!("grad.0.{name}"))));
        }
    }
    assert!(clip_grad_norm(&mut grads, &params, 0.0).is_err());
}

#[test]
fn resuming_from_a_checkpoint_is_bit_identical() {
    let fx = AdamFixture::load();
    let steps = fx.usize("steps");
    // Uninterrupted.
    let straight = fx.params();
    let mut opt = fx.optimizer();
    for k in 0..steps {
        fx.step(k, &mut opt, &straight);
    }
    // Interrupted after 2 steps: checkpoint, then new variables and a loaded optimizer.
    let dir = tempfile::tempdir().unwrap();
    let first = fx.params();
    let mut opt1 = fx.optimizer();
    for k in 0..2 {
        fx.step(k, &mut opt1, &first);
    }
    let extra = serde_json::json!({"epoch": 0, "note": "mid-way"});
    save_checkpoint(dir.path(), 2, &first, &opt1, &extra).unwrap();
    let (step, path) = latest_checkpoint(dir.path()).unwrap().unwrap();
    assert_eq!(step, 2);
    let mut resumed = fx.params();
    let (mut opt2, extra2) = load_checkpoint(&path, &mut resumed).unwrap();
    assert_eq!(extra2, extra);
    assert_eq!(opt2.step_count(), 2);
    for k in 2..steps {
        fx.step(k, &mut opt2, &resumed);
        fx.step(k, &mut opt1, &first);
    }
    for ((name, a), (_, b)) in straight.vars().into_iter().zip(resumed.vars()) {
        assert_eq!(bits(a.as_tensor()), bits(b.as_tensor()), "{name} differs");
    }
    for ((name, a), (_, b)) in straight.vars().into_iter().zip(first.vars()) {
        assert_eq!(bits(a.as_tensor()), bits(b.as_tensor()), "{name} differs");
    }
    for name in &fx.names {
        assert_eq!(
            bits(opt.exp_avg_sq(name).unwrap()),
            bits(opt2.exp_avg_sq(name).unwrap())
        );
        assert_eq!(opt.param_step(name), opt2.param_step(name));
    }
    assert_eq!(opt.lr(), opt2.lr());
}

#[test]
fn optimizer_state_round_trips_and_bad_files_are_named() {
    let fx = AdamFixture::load();
    let params = fx.params();
    let mut opt = fx.optimizer();
    for k in 0..3 {
        fx.step(k, &mut opt, &params);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opt.safetensors");
    opt.save(&path).unwrap();
    let back = AdamW::load(&path).unwrap();
    assert_eq!(back.step_count(), 3);
    assert_eq!(
        (back.lr, back.beta1, back.beta2, back.eps, back.weight_decay),
        (opt.lr, opt.beta1, opt.beta2, opt.eps, opt.weight_decay)
    );
    for name in &fx.names {
        assert_eq!(back.param_step(name), opt.param_step(name));
        assert_eq!(
            bits(back.exp_avg(name).unwrap()),
            bits(opt.exp_avg(name).unwrap())
        );
    }
    back.validate_against(&params).unwrap();
    // A parameters file is not an optimizer state.
    let pfile = dir.path().join("params.safetensors");
    params.save_safetensors(&pfile).unwrap();
    let err = AdamW::load(&pfile).unwrap_err().to_string();
    assert!(
        err.contains("params.safetensors") && err.contains("brainrecon_adamw"),
        "{err}"
    );
    // Saving is byte-for-byte reproducible (parameters and optimizer state).
    let again = dir.path().join("opt2.safetensors");
    back.save(&again).unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(&again).unwrap()
    );
    let pfile2 = dir.path().join("params2.safetensors");
    params.save_safetensors(&pfile2).unwrap();
    assert_eq!(
        std::fs::read(&pfile).unwrap(),
        std::fs::read(&pfile2).unwrap()
    );
    // State for a parameter the model does not have.
    let other = Parameters::from_vars([(
        "layer.weight".to_string(),
        Var::from_tensor(&Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap()).unwrap(),
    )])
    .unwrap();
    let err = back.validate_against(&other).unwrap_err().to_string();
    assert!(
        err.contains("conv.weight") || err.contains("layer.weight"),
        "{err}"
    );
    assert!(AdamW::new(-1.0, 0.9, 0.999, 1e-8, 0.0).is_err());
    assert!(AdamW::new(1e-3, 1.0, 0.999, 1e-8, 0.0).is_err());
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

#[test]
fn init_values_do_not_depend_on_build_order_or_prefix_neighbours() {
    // The same tensor name gets the same values whatever else the module holds.
    let dev = Device::Cpu;
    let build_one = |vb: candle_nn::VarBuilder<'static>| {
        brainrecon_diffusion::nn::Linear::new(vb.pp("a"), 8, 4, true)
    };
    let build_two = |vb: candle_nn::VarBuilder<'static>| {
        let _b = brainrecon_diffusion::nn::Linear::new(vb.pp("b"), 3, 3, true)?;
        brainrecon_diffusion::nn::Linear::new(vb.pp("a"), 8, 4, true)
    };
    let (l1, p1) = init_parameters(build_one, 3, DType::F32, &dev).unwrap();
    let (l2, p2) = init_parameters(build_two, 3, DType::F32, &dev).unwrap();
    assert_eq!(p1.len(), 2);
    assert_eq!(p2.len(), 4);
    assert_eq!(bits(&l1.weight), bits(&l2.weight));
    // f64 parameters hold the same draws before rounding.
    let (l3, _) = init_parameters(build_one, 3, DType::F64, &dev).unwrap();
    assert_eq!(l3.weight.dtype(), DType::F64);
    assert_eq!(bits(&l3.weight), bits(&l1.weight));
    // A custom rule for chosen tensors.
    let (l4, _) = init_parameters_with(build_one, 3, DType::F32, &dev, |name, _, rule| {
        if name == "a.weight" {
            ParamInit::Constant(0.0)
        } else {
            rule
        }
    })
    .unwrap();
    assert!(values(&l4.weight).iter().all(|&x| x == 0.0));
    assert_eq!(
        bits(l4.bias.as_ref().unwrap()),
        bits(l1.bias.as_ref().unwrap())
    );
    // Integer dtypes are refused.
    assert!(init_parameters(build_one, 3, DType::U32, &dev).is_err());
    // A module error during the build comes back as is.
    let err = init_parameters(
        |vb| brainrecon_diffusion::nn::GroupNorm::new(vb, 3, 8, 1e-5),
        0,
        DType::F32,
        &dev,
    )
    .unwrap_err();
    assert!(err.to_string().contains("not divisible"), "{err}");
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
    candle_core::safetensors::save(&tensors, &bad).unwrap();
    let err = c.load_safetensors(&bad).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, DiffusionError::Shape { .. })
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
    candle_core::safetensors::save(&tensors, &missing).unwrap();
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
    candle_core::safetensors::save(&tensors, &extra).unwrap();
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

fn step_dirs(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn checkpoints_keep_the_latest_two() {
    let fx = AdamFixture::load();
    let params = fx.params();
    let mut opt = fx.optimizer();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ckpt");
    assert_eq!(latest_checkpoint(&root).unwrap(), None);
    for k in 0..4 {
        fx.step(k, &mut opt, &params);
        let saved = Checkpoint::save(
            &root,
            (k + 1) * 10,
            &params,
            &opt,
            &serde_json::json!({"k": k}),
        )
        .unwrap();
        assert_eq!(saved.dir, root.join(format!("step-{}", (k + 1) * 10)));
    }
    assert_eq!(KEEP_CHECKPOINTS, 2);
    assert_eq!(step_dirs(&root), vec!["step-30", "step-40"]);
    for d in ["step-30", "step-40"] {
        let mut files = step_dirs(&root.join(d));
        files.sort();
        assert_eq!(
            files,
            vec!["optimizer.safetensors", "params.safetensors", "state.json"]
        );
    }
    let latest = Checkpoint::latest(&root).unwrap().unwrap();
    assert_eq!(latest.step, 40);
    // Saving the same step again replaces it.
    let saved =
        Checkpoint::save(&root, 40, &params, &opt, &serde_json::json!({"k": "again"})).unwrap();
    assert_eq!(step_dirs(&root), vec!["step-30", "step-40"]);
    let mut restored = fx.params();
    let (opt2, extra) = saved.load(&mut restored).unwrap();
    assert_eq!(extra, serde_json::json!({"k": "again"}));
    assert_eq!(opt2.step_count(), 4);
    // Folders that are not checkpoints are ignored; a state.json naming another step is an
    // error naming the file.
    std::fs::create_dir_all(root.join("step-99x")).unwrap();
    std::fs::create_dir_all(root.join("step-99")).unwrap(); // incomplete: no state.json
    assert_eq!(latest_checkpoint(&root).unwrap().unwrap().0, 40);
    std::fs::rename(root.join("step-30"), root.join("step-31")).unwrap();
    let msg = load_checkpoint(&root.join("step-31"), &mut restored)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("state.json") && msg.contains("30"), "{msg}");
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
