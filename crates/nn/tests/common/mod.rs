//! Helpers shared by nn's integration tests: the AdamW fixture torch wrote
//! (tools/fixtures/train_adamw.py, kept with diffusion's training fixtures beside
//! `init_reference.json`, which the same script writes) and bit-level comparisons.
#![allow(dead_code)]

pub mod tape;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use brainrecon_nn::optim::AdamW;
use brainrecon_nn::params::Parameters;
use brainrecon_nn::weights::Weights;
#[allow(unused_imports)] // not every test file uses each
pub use brainrecon_testkit::tensor::{assert_close, max_abs, values};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use serde_json::Value;

/// `tools/fixtures/train_adamw.py`'s output folder.
pub fn train_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../diffusion/tests/fixtures/train")
}

pub struct AdamFixture {
    pub weights: Weights,
    pub meta: HashMap<String, Value>,
    pub names: Vec<String>,
}

impl AdamFixture {
    pub fn load() -> Self {
        let path = train_fixtures().join("adamw.safetensors");
        let bytes = std::fs::read(&path).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let fixture = &meta.metadata().as_ref().unwrap()["fixture"];
        let meta: HashMap<String, Value> = serde_json::from_str(fixture).unwrap();
        let names: Vec<String> = serde_json::from_value(meta["names"].clone()).unwrap();
        AdamFixture {
            weights: Weights::from_files(&[path], DType::F32, &Device::Cpu).unwrap(),
            meta,
            names,
        }
    }

    pub fn f64(&self, key: &str) -> f64 {
        self.meta[key].as_f64().unwrap()
    }

    pub fn usize(&self, key: &str) -> usize {
        self.meta[key].as_u64().unwrap() as usize
    }

    pub fn tensor(&self, name: &str) -> Tensor {
        self.weights
            .get_unchecked(name)
            .unwrap_or_else(|e| panic!("fixture tensor {name}: {e}"))
    }

    pub fn has(&self, name: &str) -> bool {
        self.weights.contains(name)
    }

    /// Fresh variables holding the initial values.
    pub fn params(&self) -> Parameters {
        Parameters::from_vars(self.names.iter().map(|n| {
            (
                n.clone(),
                Var::from_tensor(&self.tensor(&format!("init.{n}"))).unwrap(),
            )
        }))
        .unwrap()
    }

    pub fn optimizer(&self) -> AdamW {
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
    pub fn grads(&self, k: usize, params: &Parameters) -> GradStore {
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
    pub fn step(&self, k: usize, opt: &mut AdamW, params: &Parameters) {
        if k == self.usize("lr_change_step") {
            opt.set_lr(self.f64("lr_later"));
        }
        opt.step(params, &self.grads(k, params)).unwrap();
    }
}

pub fn bits(t: &Tensor) -> Vec<u32> {
    values(t).iter().map(|v| v.to_bits()).collect()
}
