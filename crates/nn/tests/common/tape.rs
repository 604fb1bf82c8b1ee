//! The tape's PyTorch goldens (`tools/fixtures/tape_gradients.py`,
//! `tools/fixtures/tape_eeg_gradients.py`): one safetensors file of cases `<case>.<key>` with
//! the script's settings as JSON under the `fixture` metadata key, the scaled comparison every
//! tape test uses, the check of one case's value and gradients, and the thread pools the
//! tests run in.

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

    /// The case names the script wrote, in its order.
    pub fn cases(&self) -> Vec<&str> {
        self.meta["cases"]
            .as_array()
            .expect("the fixture lists its cases")
            .iter()
            .map(|c| c.as_str().expect("a case name"))
            .collect()
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

/// Compares `y` with `<case>.y` (shape and values), back-propagates `<case>.g` from it (1 when
/// the case has none: a scalar loss) and compares every listed input's gradient with
/// `<case>.d<name>`, all within `tol` of the reference's largest |value|.
pub fn check(
    f: &Fixture,
    tape: &mut Tape,
    case: &str,
    y: NodeId,
    inputs: &[(&str, NodeId)],
    tol: f32,
) {
    let key = |k: &str| format!("{case}.{k}");
    assert_eq!(tape.shape(y), f.shape(&key("y")), "{case}: shape");
    assert_scaled_close(&key("y"), tape.value(y), &f.values(&key("y")), tol);
    let g = match f.tensors.contains_key(&key("g")) {
        true => f.values(&key("g")),
        false => vec![1.0],
    };
    tape.backward_from(y, &g).unwrap();
    for (name, id) in inputs {
        let want = f.values(&key(&format!("d{name}")));
        let got = tape
            .grad(*id)
            .unwrap_or_else(|| panic!("{case}: no gradient of {name}"));
        assert_scaled_close(&key(&format!("d{name}")), got, &want, tol);
    }
}

/// Runs `f` in rayon pools of 1 and 3 threads (one grain, and grains split over the pool).
pub fn in_pools(f: impl Fn() + Send + Sync) {
    for threads in [1, 3] {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(&f);
    }
}
