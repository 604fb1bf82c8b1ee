//! The naturalistic encoding route end to end on the synthetic movie subject, as a user runs
//! it: simulate --kind movie → bids prepare → encode-runs with every annotation kind as a band
//! and unique variance; then the route's bad inputs.

mod common;

use common::{ok, p, user_error};
use std::path::{Path, PathBuf};

const KINDS: [&str; 5] = ["speech", "objects", "story", "summary", "timeplace"];

/// The simulated subject prepared as a run set: (simulation, run set).
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

fn read_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let array = brainrecon_formats::npy::read_f32(path).unwrap();
    (array.shape, array.data)
}

#[test]
fn each_kind_explains_its_own_voxels_best() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, runs) = prepared_movie(dir.path());
    let out = dir.path().join("enc");
    let bands = KINDS.join(",");
    let summary: serde_json::Value = serde_json::from_str(&ok(&[
        "encode-runs",
        "--subject",
        p(&runs),
        "--bands",
        &bands,
        "--unique",
        "--n-iter",
        "8",
        "--permutations",
        "100",
        "--out",
        p(&out),
        "--json",
    ]))
    .unwrap();
    assert!(
        summary["significant_voxels"].as_u64().unwrap() > 100,
        "{summary}"
    );
    let (shape, unique) = read_f32(&out.join("unique.npy"));
    let voxels = shape[1];
    assert_eq!(shape[0], KINDS.len());
    let groups = brainrecon_formats::npy::read_i64(&sim.join("truth/voxel_group.npy"))
        .unwrap()
        .data;
    assert_eq!(
        groups.len(),
        voxels,
        "truth and run set have the same voxels"
    );
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sim.join("truth/truth.json")).unwrap()).unwrap();
    let mut table = String::new();
    for (g, group) in truth["groups"].as_array().unwrap().iter().enumerate() {
        let kinds: Vec<&str> = group["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        let means: Vec<f64> = (0..KINDS.len())
            .map(|b| {
                let members: Vec<f64> = (0..voxels)
                    .filter(|&j| groups[j] == g as i64)
                    .map(|j| unique[b * voxels + j] as f64)
                    .collect();
                members.iter().sum::<f64>() / members.len() as f64
            })
            .collect();
        table += &format!("{:<16} {:?}\n", group["name"], means);
        if let [kind] = kinds[..] {
            let planted = KINDS.iter().position(|k| *k == kind).unwrap();
            let best = (0..KINDS.len())
                .max_by(|&a, &b| means[a].total_cmp(&means[b]))
                .unwrap();
            assert_eq!(
                best, planted,
                "group {kind}: unique variance per band {means:?}"
            );
        }
    }
    eprintln!("mean unique variance per group (rows) and band (columns {KINDS:?}):\n{table}");
    for file in [
        "r.npy",
        "q.npy",
        "r2_split.npy",
        "maps/r.nii.gz",
        "maps/unique-story.nii.gz",
        "report.html",
    ] {
        assert!(out.join(file).is_file(), "{file}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("data:image/png;base64,") && html.contains("<svg"));
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
