//! The naturalistic encoding route's command refusing bad input on the binary: exit 2, the
//! band, file or run named, nothing written. The route itself (encode-runs with every
//! annotation kind as a band and unique variance on the synthetic movie subject) is checked
//! through the library in crates/routes/tests/naturalistic.rs.

mod common;

use common::{ok, p, user_error};
use std::path::{Path, PathBuf};

/// A small simulated subject (3 runs of 60 s, as few as the refusals need) prepared as a run
/// set: (simulation, run set).
fn prepared_movie(dir: &Path) -> (PathBuf, PathBuf) {
    let (sim, runs) = (dir.join("sim"), dir.join("runs"));
    ok(&[
        "simulate",
        "--kind",
        "movie",
        "--out",
        p(&sim),
        "--seed",
        "0",
        "--runs",
        "3",
        "--run-seconds",
        "60",
    ]);
    let mask = sim.join("derivatives/mask/sub-01_mask.nii.gz");
    ok(&[
        "bids",
        "prepare",
        "--bids-root",
        p(&sim),
        "--subject",
        "01",
        "--task",
        "movie",
        "--mask",
        p(&mask),
        "--out",
        p(&runs),
    ]);
    (sim, runs)
}

#[test]
fn bad_bands_and_feature_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (_, runs) = prepared_movie(dir.path());
    let out = dir.path().join("enc");
    let message = user_error(&[
        "encode-runs",
        "--subject",
        p(&runs),
        "--bands",
        "speech,music",
        "--out",
        p(&out),
    ]);
    assert!(message.contains("music"), "{message}");
    // Feature files with the wrong number of rows for a run.
    let feats = dir.path().join("feats");
    std::fs::create_dir_all(&feats).unwrap();
    let run_set: serde_json::Value =
        serde_json::from_slice(&std::fs::read(runs.join("runset.json")).unwrap()).unwrap();
    for run in run_set["runs"].as_array().unwrap() {
        let name = run["name"].as_str().unwrap();
        brainrecon_formats::npy::write(&feats.join(format!("{name}.npy")), &[7, 3], &[0.5f32; 21])
            .unwrap();
    }
    let band = format!("custom={}", p(&feats));
    let message = user_error(&[
        "encode-runs",
        "--subject",
        p(&runs),
        "--bands",
        &band,
        "--out",
        p(&out),
    ]);
    assert!(
        message.contains(".npy") && message.contains("rows"),
        "{message}"
    );
    let message = user_error(&[
        "encode-runs",
        "--subject",
        p(&runs),
        "--bands",
        "speech",
        "--test-runs",
        "run-9",
        "--out",
        p(&out),
    ]);
    assert!(message.contains("run-9"), "{message}");
    assert!(!out.join("encoding.json").exists(), "nothing written");
}
