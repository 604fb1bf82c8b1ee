//! The tape's PyTorch goldens (`tools/fixtures/tape_gradients.py`,
//! `tools/fixtures/tape_eeg_gradients.py`): one safetensors file of cases `<case>.<key>` with
//! the script's settings as JSON under the `fixture` metadata key, and the scaled comparison
//! every tape test uses.

use std::collections::HashMap;
use std::path::Path;

use brainrecon_nn::tape::{NodeId, Tape};
use candle_core::{Device, Tensor};
use serde_json::Value;

/// One golden file: its tensors and its settings.
pub struct Fixture {
    pub tensors: HashMap<String, Tensor>,
    pub meta: Value,
}

impl Fixture {
    /// `tests/fixtures/<file>`.
    pub fn load(file: &str) -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = serde_json::from_str(&meta.metadata().as_ref().unwrap()["fixture"]).unwrap();
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap();
        Fixture { tensors, meta }
    }

    pub fn values(&self, key: &str) -> Vec<f32> {
        let t = &self.tensors[key];
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    pub fn shape(&self, key: &str) -> Vec<usize> {
        self.tensors[key].dims().to_vec()
    }

    /// A trainable leaf on `tape` from `<case>.<key>`.
    pub fn parameter(&self, tape: &mut Tape, case: &str, key: &str) -> NodeId {
        let k = format!("{case}.{key}");
        tape.parameter(&self.shape(&k), &self.values(&k)).unwrap()
    }
}

/// `max |got − want| ≤ tol · max |want|`.
pub fn assert_scaled_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
    let diff = got
        .iter()
        .zip(want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        diff <= tol * scale,
        "{what}: off by {diff} (scale {scale}, tolerance {tol})"
    );
}
