//! TYPEA and TYPEB against GLMsingle's own `GLM_single.fit` on a small seeded experiment
//! (`tools/fixtures/glmsingle_fit.py`: 3 runs × 80 volumes, 40 voxels, 39 trials of 6
//! conditions, each voxel's response made with one of the library's HRFs). GLMsingle computes
//! in float32, brainrecon-glm in float64: values agree to float32's rounding of the fit.

use brainrecon_glm::fit::{fit_hrf_library, fit_on_off, Run};
use brainrecon_glm::hrf::{canonical_hrf, hrf_library};
mod common;

use common::numbers;
use serde_json::Value;

fn fixture() -> Value {
    common::fixture("glmsingle_fit.json")
}

struct Experiment {
    data: Vec<Vec<f32>>,
    designs: Vec<Vec<f64>>,
    n_times: usize,
    voxels: usize,
    conditions: usize,
    degrees: Vec<usize>,
    tr: f64,
    stimdur: f64,
}

impl Experiment {
    fn read(f: &Value) -> Experiment {
        let count = |k: &str| f[k].as_u64().unwrap() as usize;
        let designs: Vec<Vec<f64>> = f["designs"]
            .as_array()
            .unwrap()
            .iter()
            .map(numbers)
            .collect();
        Experiment {
            data: f["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| numbers(d).iter().map(|&v| v as f32).collect())
                .collect(),
            degrees: vec![f["maxpolydeg"][0].as_u64().unwrap() as usize; designs.len()],
            designs,
            n_times: count("n_times"),
            voxels: count("voxels"),
            conditions: count("conditions"),
            tr: f["tr"].as_f64().unwrap(),
            stimdur: f["stimdur"].as_f64().unwrap(),
        }
    }

    fn runs(&self) -> Vec<Run<'_>> {
        self.data
            .iter()
            .zip(&self.designs)
            .map(|(data, design)| Run {
                data,
                design,
                n_times: self.n_times,
                extra: &[],
            })
            .collect()
    }
}

/// Largest |a − b| over the pairs, and the largest |b|.
fn worst(ours: &[f64], theirs: &[f64]) -> (f64, f64) {
    assert_eq!(ours.len(), theirs.len());
    let error = ours
        .iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    (error, theirs.iter().map(|b| b.abs()).fold(0.0, f64::max))
}

#[test]
fn typea_on_off_equals_glmsingles() {
    let f = fixture();
    let e = Experiment::read(&f);
    let hrf = canonical_hrf(e.stimdur, e.tr);
    let fit = fit_on_off(&e.runs(), e.voxels, e.conditions, &hrf, &e.degrees).unwrap();
    for (name, ours, tolerance) in [
        ("meanvol", &fit.meanvol, 1e-6),
        ("onoffR2", &fit.onoff_r2, 1e-5),
        ("betasmd", &fit.betasmd, 1e-5),
    ] {
        let (error, scale) = worst(ours, &numbers(&f["typea"][name]));
        eprintln!("TYPEA {name}: largest difference {error:.2e} (largest value {scale:.3})");
        assert!(error <= tolerance * scale, "TYPEA {name}: {error}");
    }
}

#[test]
fn typeb_hrf_choice_r2_and_single_trial_betas_equal_glmsingles() {
    let f = fixture();
    let e = Experiment::read(&f);
    let library = hrf_library(e.stimdur, e.tr);
    let fit = fit_hrf_library(&e.runs(), e.voxels, e.conditions, &library, &e.degrees).unwrap();
    let theirs: Vec<usize> = f["typeb"]["HRFindex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(fit.hrf_index, theirs, "HRFindex");
    assert_eq!(fit.stim_order.len(), 39);
    let (error, scale) = worst(&fit.r2, &numbers(&f["typeb"]["R2"]));
    eprintln!("TYPEB R2: largest difference {error:.2e} (largest value {scale:.3})");
    assert!(error <= 1e-5 * scale, "TYPEB R2: {error}");
    let (error, scale) = worst(&fit.betasmd, &numbers(&f["typeb"]["betasmd"]));
    eprintln!("TYPEB betasmd: largest difference {error:.2e} (largest value {scale:.3})");
    assert!(error <= 1e-4 * scale, "TYPEB betasmd: {error}");
    // The planted HRFs are found for most voxels (neighbours in the library otherwise).
    let planted: Vec<usize> = f["planted_hrf_index"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let found = fit
        .hrf_index
        .iter()
        .zip(&planted)
        .filter(|(a, b)| a == b)
        .count();
    let near = fit
        .hrf_index
        .iter()
        .zip(&planted)
        .filter(|(a, b)| a.abs_diff(**b) <= 1)
        .count();
    eprintln!("planted HRF found for {found} of 40 voxels, within one for {near}");
    assert!(found >= 34 && near >= 38, "{found}, {near}");
}
