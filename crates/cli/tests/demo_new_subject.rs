//! `brainrecon demo --route new-subject`: a simulated group, its shared space, and a new
//! subject brought in from one session, scored against the same subject's one session alone
//! and all its sessions.

#[allow(dead_code)] // the shared helpers; this test needs only `p`
mod common;

use common::p;
use std::process::Command;

/// (width, height) from a PNG's IHDR chunk.
fn png_size(path: &std::path::Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[1..4], b"PNG", "{}", path.display());
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

#[test]
fn the_new_subject_demo_scores_one_session_through_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let (out, cache) = (dir.path().join("demo"), dir.path().join("cache"));
    let run = Command::new(env!("CARGO_BIN_EXE_brainrecon"))
        .args(["demo", "--route", "new-subject", "--out", p(&out), "--json"])
        .env("BRAINRECON_CACHE", &cache)
        .output()
        .expect("run brainrecon demo");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "demo failed:\n{stderr}");
    assert!(stderr.contains("[6/6]"), "{stderr}");
    assert!(stderr.contains("brainrecon group adapt"), "{stderr}");
    let summary: serde_json::Value =
        serde_json::from_slice(&run.stdout).expect("demo --json prints JSON only");
    eprintln!("{}", serde_json::to_string_pretty(&summary).unwrap());

    // The file holds what was printed.
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("demo-new-subject.json")).unwrap()).unwrap();
    assert_eq!(written, summary);
    assert_eq!(summary["route"], "new-subject");
    assert_eq!(summary["subjects"], 5);
    assert_eq!(summary["images"], 300);
    assert_eq!(summary["shared_images"], 100);
    assert_eq!(summary["k"], 32);
    // Half the shared images align, half test.
    assert_eq!(summary["n_test"], 50);
    assert_eq!(summary["pictured"].as_array().unwrap().len(), 6);

    let one_session_trials = summary["one_session"]["n_train_trials"].as_u64().unwrap();
    for name in ["one_session", "one_session_group", "all_sessions"] {
        let condition = &summary[name];
        for key in ["two_way_z", "two_way_c", "two_way_mean"] {
            let v = condition[key].as_f64().unwrap_or(f64::NAN);
            assert!((0.0..=1.0).contains(&v), "{name}.{key} = {v}");
        }
        for key in ["colour", "shape", "both"] {
            let v = condition["reconstruction"][key]
                .as_f64()
                .unwrap_or(f64::NAN);
            assert!(
                (0.0..=1.0).contains(&v),
                "{name}.reconstruction.{key} = {v}"
            );
        }
        let recons = std::path::PathBuf::from(condition["recons"].as_str().unwrap());
        assert!(
            recons.join("manifest.json").is_file(),
            "{}",
            recons.display()
        );
    }
    assert_eq!(summary["one_session"]["sessions"], 1);
    assert_eq!(summary["one_session_group"]["sessions"], 1);
    assert_eq!(
        summary["one_session_group"]["n_train_trials"],
        one_session_trials
    );
    assert!(summary["all_sessions"]["n_train_trials"].as_u64().unwrap() > one_session_trials);

    // One session mapped into the group's space identifies the test images above chance.
    let group = &summary["one_session_group"];
    for key in ["two_way_z", "two_way_c", "two_way_mean"] {
        let v = group[key].as_f64().unwrap();
        assert!(v > 0.5, "one session + group: {key} = {v:.3}");
    }

    // truth | alone | + group | all sessions, two test images a row, 64 px images.
    let pairs = out.join("pairs-new-subject.png");
    assert_eq!(summary["pairs"].as_str().unwrap(), p(&pairs));
    assert_eq!(
        png_size(&pairs),
        (2 * (4 * 64 + 3 * 2 + 8) + 8, 3 * (64 + 8) + 8)
    );
}
