//! brainrecon-glm against GLMsingle's own functions (`tools/fixtures/glmsingle_hrf.py`, cvnlab/GLMsingle
//! at a pinned commit): the canonical HRF and the HRF library for several stimulus durations
//! and TRs, and onset-time designs with onsets between TRs. GLMsingle returns float32, so
//! values agree to float32's rounding.

use brainrecon_glm::design::onset_design;
use brainrecon_glm::hrf::{canonical_hrf, hrf_library, LIBRARY_SIZE};
mod common;

use common::numbers;
use serde_json::Value;

fn fixture() -> Value {
    common::fixture("glmsingle_hrf.json")
}

/// Largest absolute difference; the lengths must agree.
fn worst(ours: &[f64], theirs: &[f64], what: &str) -> f64 {
    assert_eq!(ours.len(), theirs.len(), "{what}: lengths");
    ours.iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

#[test]
fn canonical_hrfs_equal_glmsingles() {
    let fixture = fixture();
    for case in fixture["canonical"].as_array().unwrap() {
        let (duration, tr) = (
            case["duration"].as_f64().unwrap(),
            case["tr"].as_f64().unwrap(),
        );
        let what = format!("getcanonicalhrf({duration}, {tr})");
        let error = worst(&canonical_hrf(duration, tr), &numbers(&case["hrf"]), &what);
        eprintln!("{what}: largest difference {error:.2e}");
        assert!(error < 1e-6, "{what}: {error}");
    }
}

#[test]
fn hrf_libraries_equal_glmsingles() {
    let fixture = fixture();
    for case in fixture["library"].as_array().unwrap() {
        let (duration, tr) = (
            case["duration"].as_f64().unwrap(),
            case["tr"].as_f64().unwrap(),
        );
        let ours = hrf_library(duration, tr);
        let theirs = case["hrfs"].as_array().unwrap();
        assert_eq!((ours.len(), theirs.len()), (LIBRARY_SIZE, LIBRARY_SIZE));
        for (k, (a, b)) in ours.iter().zip(theirs).enumerate() {
            let what = format!("getcanonicalhrflibrary({duration}, {tr})[{k}]");
            let error = worst(a, &numbers(b), &what);
            if k == 0 {
                eprintln!("{what}: largest difference {error:.2e}");
            }
            assert!(error < 1e-6, "{what}: {error}");
        }
    }
}

#[test]
fn onset_designs_equal_glmsingles() {
    let fixture = fixture();
    for case in fixture["designs"].as_array().unwrap() {
        let tr = case["tr"].as_f64().unwrap();
        let n_times = case["n_times"].as_u64().unwrap() as usize;
        let onsets: Vec<Vec<f64>> = case["onsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(numbers)
            .collect();
        // The HRF GLMsingle used (float32) goes in, so only the design's own steps are compared.
        let hrf = numbers(&case["hrf"]);
        let ours = onset_design(&onsets, &hrf, tr, n_times);
        let what = format!("convolve_design at TR {tr}");
        let error = worst(&ours, &numbers(&case["design"]), &what);
        eprintln!("{what}: largest difference {error:.2e}");
        assert!(error < 1e-9, "{what}: {error}");
        // And from our own HRF of the same duration: float32's rounding only.
        let own = canonical_hrf(case["duration"].as_f64().unwrap(), tr);
        let error = worst(&onset_design(&onsets, &own, tr, n_times), &ours, &what);
        assert!(error < 1e-5, "{what} from our HRF: {error}");
    }
}
