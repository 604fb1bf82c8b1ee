//! `brainrecon demo`, the README's main job, from a clean state with the built-in model:
//! it runs every step, reports colour and shape read back from the reconstructions, and
//! resumes without redoing work.

#[allow(dead_code)] // the shared helpers; this test needs only `p`
mod common;

use common::p;
use std::process::Command;

/// (summary, stderr) of `brainrecon demo --out OUT --json`.
fn demo(out: &std::path::Path, cache: &std::path::Path) -> (serde_json::Value, String) {
    let run = Command::new(env!("CARGO_BIN_EXE_brainrecon"))
        .args(["demo", "--out", p(out), "--json"])
        .env("BRAINRECON_CACHE", cache)
        .output()
        .expect("run brainrecon demo");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "demo failed:\n{stderr}");
    // The steps' own output went to stderr; stdout is one JSON document.
    assert!(stderr.contains("[6/6]"), "{stderr}");
    let summary = serde_json::from_slice(&run.stdout).expect("demo --json prints JSON only");
    (summary, stderr.into_owned())
}

#[test]
fn the_demo_reconstructs_colour_and_shape_from_simulated_brain_activity() {
    let dir = tempfile::tempdir().unwrap();
    let (out, cache) = (dir.path().join("demo"), dir.path().join("cache"));
    let (summary, _) = demo(&out, &cache);
    eprintln!("{}", serde_json::to_string_pretty(&summary).unwrap());

    let n_test = summary["n_test"].as_u64().unwrap();
    assert_eq!(n_test, 60);
    let colour = summary["reconstruction"]["colour"].as_f64().unwrap();
    let shape = summary["reconstruction"]["shape"].as_f64().unwrap();
    // Most colours right; shapes better than chance (1/4) by a margin the test images'
    // count makes clear (one standard error at chance is 0.056 for 60 images).
    assert!(
        colour > 0.5,
        "colour right for {colour:.3} of reconstructions"
    );
    assert!(shape > 0.4, "shape right for {shape:.3} of reconstructions");
    let two_way = summary["two_way_pixels"].as_f64().unwrap();
    assert!(
        two_way > 0.6,
        "two-way identification on pixels {two_way:.3}"
    );
    assert!(summary["two_way_latent_z"].as_f64().unwrap() > 0.7);
    assert!(summary["two_way_latent_c"].as_f64().unwrap() > 0.7);

    for file in [
        "demo.json",
        "pairs.png",
        "recons/eval/report.html",
        "recons/eval/metrics.json",
    ] {
        assert!(out.join(file).is_file(), "{file}");
    }
    // The built-in model was written once to the cache.
    let models: Vec<_> = std::fs::read_dir(cache.join("models")).unwrap().collect();
    assert_eq!(models.len(), 1);

    // A second run finds every step's output and gives the same figures.
    let (again, log) = demo(&out, &cache);
    assert!(log.contains("decoder c found"), "{log}");
    let figures = [
        "reconstruction",
        "decoded_z",
        "two_way_pixels",
        "two_way_latent_z",
    ];
    for key in figures {
        assert_eq!(again[key], summary[key], "{key}");
    }

    // A decoder fit on features of other model files (an earlier shapes-ldm) is fit again,
    // and the reconstructions made with it are made again: the same figures.
    let model_json = out.join("decoders/c/model.json");
    let mut fit: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&model_json).unwrap()).unwrap();
    fit["metadata"]["target_model_fingerprint"] = serde_json::json!("0123456789abcdef");
    std::fs::write(&model_json, serde_json::to_vec(&fit).unwrap()).unwrap();
    let (redone, log) = demo(&out, &cache);
    assert!(
        log.contains("decoder c in") && log.contains("fitting it again"),
        "{log}"
    );
    assert!(log.contains("decoder z found"), "{log}");
    assert!(log.contains("making them again"), "{log}");
    for key in figures {
        assert_eq!(redone[key], summary[key], "{key}");
    }
}
