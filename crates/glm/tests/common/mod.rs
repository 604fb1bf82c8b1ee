//! Reading the GLMsingle fixtures (`tests/fixtures/*.json`, written by tools/fixtures).

use serde_json::Value;

/// `tests/fixtures/<name>` parsed.
pub fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A JSON array of numbers.
pub fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// One of the fixtures' experiments: each run's data (float32 as GLMsingle fitted it), design
/// and extra regressors (empty when the fixture gives none).
#[allow(dead_code)] // the fit fixtures' files use it, the HRF one does not
pub struct Experiment {
    pub data: Vec<Vec<f32>>,
    pub designs: Vec<Vec<f64>>,
    pub extras: Vec<Vec<f64>>,
    pub n_times: usize,
    pub voxels: usize,
    pub conditions: usize,
    pub tr: f64,
    pub stimdur: f64,
}

#[allow(dead_code)]
impl Experiment {
    pub fn read(f: &Value) -> Experiment {
        let count = |k: &str| f[k].as_u64().unwrap() as usize;
        let list = |k: &str| -> Vec<Vec<f64>> {
            f[k].as_array()
                .map(|a| a.iter().map(numbers).collect())
                .unwrap_or_default()
        };
        let designs = list("designs");
        let mut extras = list("extra_regressors");
        extras.resize(designs.len(), Vec::new());
        Experiment {
            data: list("data")
                .iter()
                .map(|d| d.iter().map(|&v| v as f32).collect())
                .collect(),
            designs,
            extras,
            n_times: count("n_times"),
            voxels: count("voxels"),
            conditions: count("conditions"),
            tr: f["tr"].as_f64().unwrap(),
            stimdur: f["stimdur"].as_f64().unwrap(),
        }
    }

    pub fn runs(&self) -> Vec<brainrecon_glm::fit::Run<'_>> {
        (0..self.designs.len())
            .map(|p| brainrecon_glm::fit::Run {
                data: &self.data[p],
                design: &self.designs[p],
                n_times: self.n_times,
                extra: &self.extras[p],
            })
            .collect()
    }
}

/// Largest |a − b| over the pairs, and the largest |b|. A pair where both are NaN (a voxel
/// without variance) agrees; NaN on one side only is an infinite difference.
#[allow(dead_code)] // not every test file compares arrays this way
pub fn worst(ours: &[f64], theirs: &[f64]) -> (f64, f64) {
    assert_eq!(ours.len(), theirs.len());
    let pairs = ours
        .iter()
        .zip(theirs)
        .filter(|(a, b)| !(a.is_nan() && b.is_nan()));
    let error = pairs
        .clone()
        .map(|(a, b)| {
            let d = (a - b).abs();
            if d.is_nan() {
                f64::INFINITY
            } else {
                d
            }
        })
        .fold(0.0, f64::max);
    (error, pairs.map(|(_, b)| b.abs()).fold(0.0, f64::max))
}
