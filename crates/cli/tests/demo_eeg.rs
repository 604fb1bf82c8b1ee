//! `brainrecon demo --route eeg`: a simulated group in THINGS-EEG2's layout, ridge and NICE's
//! contrastive encoder per subject and leave one subject out, scored by zero-shot retrieval.
//! As on THINGS-EEG2, the contrastive encoder beats ridge, both are far above chance, and
//! decoders trained on the other subjects still retrieve above chance. The first subject's test
//! images are reconstructed from NICE's decoded embeddings, and from the images' own
//! embeddings through the same maps, which must resemble the images seen.

#[allow(dead_code)] // the shared helpers; this test needs only `p`
mod common;

use common::p;
use std::process::Command;

fn demo(out: &std::path::Path) -> (serde_json::Value, String) {
    let run = Command::new(env!("CARGO_BIN_EXE_brainrecon"))
        .args(["demo", "--route", "eeg", "--out", p(out), "--json"])
        .output()
        .expect("run brainrecon demo");
    let stderr = String::from_utf8_lossy(&run.stderr).to_string();
    assert!(run.status.success(), "demo failed:\n{stderr}");
    let summary = serde_json::from_slice(&run.stdout).expect("demo --json prints JSON only");
    (summary, stderr)
}

#[test]
fn the_eeg_demo_decodes_unseen_concepts_and_nice_beats_ridge() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let (summary, stderr) = demo(&out);
    eprintln!("{}", serde_json::to_string_pretty(&summary).unwrap());
    assert!(stderr.contains("[7/7]"), "{stderr}");
    assert!(stderr.contains("brainrecon eeg reconstruct"), "{stderr}");
    assert!(stderr.contains("brainrecon eeg fit"), "{stderr}");
    assert!(stderr.contains("--leave-out sub-02"), "{stderr}");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("demo-eeg.json")).unwrap()).unwrap();
    assert_eq!(written, summary);
    assert_eq!(summary["route"], "eeg");
    assert_eq!(summary["subjects"], 3);
    assert_eq!(summary["test_images"], 32);

    let f = |group: &str, key: &str| summary[group][key]["mean"].as_f64().unwrap();
    let two_way = |group: &str| {
        summary[group]["ways"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w[0] == 2)
            .map(|w| w[1]["mean"].as_f64().unwrap())
            .unwrap()
    };
    let (c1, c5) = (
        summary["chance_top1"].as_f64().unwrap(),
        summary["chance_top5"].as_f64().unwrap(),
    );
    for group in ["ridge", "nice", "nice_leave_one_out"] {
        assert_eq!(summary[group]["n"], 3, "{group}: one decoder per subject");
    }
    // The contrastive encoder beats ridge (measured: top-1 13.5 vs 10.4 %, top-5 55 vs 28 %,
    // 2-way 81 vs 68 %).
    assert!(f("nice", "top5") > f("ridge", "top5") + 0.1, "{summary}");
    assert!(two_way("nice") > two_way("ridge") + 0.05, "{summary}");
    assert!(f("nice", "top1") >= f("ridge", "top1"), "{summary}");
    // Both far above chance (3.1 % top-1, 15.6 % top-5, 50 % 2-way).
    assert!(
        f("nice", "top1") > 3.0 * c1 && f("nice", "top5") > 3.0 * c5,
        "{summary}"
    );
    assert!(
        f("ridge", "top5") > 1.4 * c5 && two_way("ridge") > 0.6,
        "{summary}"
    );
    // Leave one subject out (60 epochs of the pooled trials): above chance (measured 2-way
    // 78 %, top-5 46 %).
    assert!(two_way("nice_leave_one_out") > 0.65, "{summary}");
    assert!(f("nice_leave_one_out", "top5") > 2.0 * c5, "{summary}");
    // Decoding is fast (the issue asks under 5 ms per trial).
    assert!(summary["ms_per_trial"].as_f64().unwrap() < 5.0, "{summary}");
    let retrievals = std::path::PathBuf::from(summary["retrievals"].as_str().unwrap());
    assert!(std::fs::read(&retrievals).unwrap().starts_with(b"\x89PNG"));

    // Reconstruction: every test image, from the decoded embedding (2 samples) and from its
    // own embedding. Through the same maps, the own embedding's reconstructions resemble the
    // images seen (measured: 2-way on pixels 83 %, PixCorr 0.54; the decoded z 92 %), which
    // shows the maps and img2img work; from NICE's decoded embeddings they are near chance on
    // pixels (measured 52–58 %): the simulated EEG decodes the attributes too weakly.
    let recon = &summary["reconstruction"];
    assert_eq!(recon["images"], 32);
    let set = |name: &str| {
        recon["sets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no set {name}: {recon}"))
            .clone()
    };
    for name in ["decoded z", "sample 1", "sample 2"] {
        let dir = std::path::PathBuf::from(set(name)["dir"].as_str().unwrap());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 32, "{name}");
    }
    let own = set("own embedding, sample 1");
    assert!(own["two_way_pixels"].as_f64().unwrap() > 0.75, "{own}");
    assert!(own["pixcorr"].as_f64().unwrap() > 0.35, "{own}");
    let own_z = set("own embedding, decoded z");
    assert!(own_z["two_way_pixels"].as_f64().unwrap() > 0.8, "{own_z}");
    let features = &recon["features"];
    assert!(features["ceiling_c"].as_f64().unwrap() > 0.8, "{features}");
    assert!(features["ceiling_z"].as_f64().unwrap() > 0.5, "{features}");
    let comparison = std::path::PathBuf::from(recon["comparison"].as_str().unwrap());
    assert!(std::fs::read(&comparison).unwrap().starts_with(b"\x89PNG"));

    // A rerun finds every step done and prints the same scores.
    let (again, stderr) = demo(&out);
    assert!(stderr.contains("simulated EEG found"), "{stderr}");
    assert!(stderr.contains("(already done)"), "{stderr}");
    for group in ["ridge", "nice", "nice_leave_one_out"] {
        assert_eq!(again[group], summary[group], "{group}");
    }
    assert_eq!(again["reconstruction"]["already_done"], true);
    assert_eq!(again["reconstruction"]["sets"], recon["sets"]);
}
