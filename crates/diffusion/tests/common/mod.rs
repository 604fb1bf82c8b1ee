//! Helpers shared by the golden tests.
#![allow(dead_code)]

use brainrecon_diffusion::weights::Weights;
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

pub fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a.to_dtype(DType::F32).unwrap() - b.to_dtype(DType::F32).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// The largest |value|, to show a comparison is not between two near-zero tensors.
pub fn max_norm(a: &Tensor) -> f32 {
    a.to_dtype(DType::F32)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

pub fn read_json(relative: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(relative)).unwrap()).unwrap()
}
