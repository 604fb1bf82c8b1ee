//! TYPEA and TYPEB against GLMsingle's own `GLM_single.fit` on a small seeded experiment
//! (`tools/fixtures/glmsingle_fit.py`: 3 runs × 80 volumes, 40 voxels, 39 trials of 6
//! conditions, each voxel's response made with one of the library's HRFs). GLMsingle computes
//! in float32, brainrecon-glm in float64: values agree to float32's rounding of the fit.

use brainrecon_glm::fit::{fit_hrf_library, fit_on_off};
use brainrecon_glm::hrf::{canonical_hrf, hrf_library};
mod common;

use common::{numbers, worst, Experiment};
use serde_json::Value;

fn fixture() -> Value {
    common::fixture("glmsingle_fit.json")
}

/// GLMsingle's polynomial degree, as the fixture recorded it, for every run.
fn degrees(f: &Value, e: &Experiment) -> Vec<usize> {
    vec![f["maxpolydeg"][0].as_u64().unwrap() as usize; e.designs.len()]
}

#[test]
fn typea_on_off_equals_glmsingles() {
    let f = fixture();
    let e = Experiment::read(&f);
    let hrf = canonical_hrf(e.stimdur, e.tr);
    let fit = fit_on_off(&e.runs(), e.voxels, e.conditions, &hrf, &degrees(&f, &e)).unwrap();
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
    let fit = fit_hrf_library(
        &e.runs(),
        e.voxels,
        e.conditions,
        &library,
        &degrees(&f, &e),
    )
    .unwrap();
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
