//! Helpers shared by the golden tests.
#![allow(dead_code)]

use brainrecon_nn::weights::Weights;
/// The largest |a − b| of two tensors, and the largest |value| of one (to show a comparison
/// is not between two near-zero tensors).
#[allow(unused_imports)] // not every test file compares tensors
pub use brainrecon_testkit::tensor::{max_abs, max_abs_diff};
use candle_core::{DType, Device, Tensor};
use std::path::{Path, PathBuf};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A fixture safetensors file, tensors read as f32 on the CPU.
pub fn tensors(relative: &str) -> Weights {
    Weights::from_files(&[fixtures().join(relative)], DType::F32, &Device::Cpu).unwrap()
}

pub fn get(w: &Weights, name: &str) -> Tensor {
    w.get_unchecked(name)
        .unwrap_or_else(|e| panic!("fixture tensor {name}: {e}"))
}

pub fn read_json(relative: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(relative)).unwrap()).unwrap()
}
