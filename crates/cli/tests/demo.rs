//! `brainrecon demo` and `brainrecon bench` at the command line: with --json the demo's steps
//! report on stderr and stdout holds only the JSON summary (the file's), the built-in model is
//! written once to BRAINRECON_CACHE, and bad benchmark input exits with 2. What the demos and
//! benchmarks compute is checked in crates/showcase/tests.

mod common;

use common::{ok, p, user_error};
use std::process::Command;

/// (stdout, stderr) of `brainrecon demo --out OUT` at a small size, with `extra` flags.
fn demo(out: &std::path::Path, cache: &std::path::Path, extra: &[&str]) -> (String, String) {
    let run = Command::new(env!("CARGO_BIN_EXE_brainrecon"))
        .args(["demo", "--out", p(out), "--images", "60", "--samples", "1"])
        .args(["--steps", "5"])
        .args(extra)
        .env("BRAINRECON_CACHE", cache)
        .output()
        .expect("run brainrecon demo");
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "demo failed:\n{stderr}");
    (String::from_utf8(run.stdout).unwrap(), stderr)
}

#[test]
fn the_demo_shows_its_steps_on_stderr_and_prints_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let (out, cache) = (dir.path().join("demo"), dir.path().join("cache"));
    let (stdout, stderr) = demo(&out, &cache, &["--json"]);
    // The steps and their own output went to stderr; stdout is one JSON document.
    assert!(stderr.contains("[6/6]"), "{stderr}");
    assert!(stderr.contains("  brainrecon simulate --out"), "{stderr}");
    assert!(stderr.contains("prepared subj01 at"), "{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(&stdout).expect("demo --json prints JSON only");
    assert_eq!(summary, common::json(&out.join("demo.json")));
    assert_eq!(summary["n_test"], 6);
    // The built-in model was written once to the cache.
    let models: Vec<_> = std::fs::read_dir(cache.join("models")).unwrap().collect();
    assert_eq!(models.len(), 1);

    // Without --json, the summary is printed for people; found steps are noted on stderr.
    let (stdout, stderr) = demo(&out, &cache, &[]);
    assert!(stdout.contains("demo finished in"), "{stdout}");
    assert!(stdout.contains("pairs:  "), "{stdout}");
    assert!(stderr.contains("decoder c found"), "{stderr}");
}

fn pipeline() -> String {
    format!("{}/../../models/shapes-ldm", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn bench_train_step_prints_one_json_line() {
    let pipeline = pipeline();
    let args = [
        "bench",
        "train-step",
        "--model",
        "window-encoder",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--batch",
        "2",
        "--pipeline",
        &pipeline,
    ];
    let out = ok(&[&args[..], &["--json"]].concat());
    assert_eq!(out.lines().count(), 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["workload"], "window-encoder");
    let out = ok(&args);
    assert!(
        out.starts_with("window-encoder training step (tape), batch 2, "),
        "{out}"
    );
}

#[test]
fn contrastive_batch_of_one_is_refused() {
    let err = user_error(&[
        "bench",
        "train-step",
        "--model",
        "window-encoder",
        "--batch",
        "1",
        "--pipeline",
        &pipeline(),
    ]);
    assert!(err.contains("--batch"), "{err}");
}
