//! AdamW and clip_grad_norm_ against PyTorch step for step (tools/fixtures/train_adamw.py), and
//! the optimizer state's file.

mod common;

use std::collections::{BTreeMap, HashMap};

use brainrecon_nn::optim::{clip_grad_norm, AdamW};
use brainrecon_nn::params::Parameters;
use candle_core::{DType, Device, Tensor, Var};
use common::{assert_close, bits, values, AdamFixture};

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
            let scale = common::max_abs(&want) as f64;
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
