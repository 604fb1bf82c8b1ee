//! The README's Generic Object Decoding commands (`glm` → `glm prepare`) on a tiny copy of
//! OpenNeuro ds001246 as it ships (tools/fixtures/god_shipped.py: its sessions, the
//! top-level task sidecar, its events' columns, rests, 9-s blocks and one-back repeats, ImageNet
//! names without extension), with fMRIPrep derivatives and a planted response per image.
//! Asserted: the trials and conditions are the events' stimulus blocks, a one-back repeat is
//! two trials of one condition, the betas identify the test images across runs, and the
//! prepared subject's test set, training rows and images are the right ones.
mod common;

use brainrecon_data::npy;
use common::{ok, p as s};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Pearson correlation.
fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let mean = |x: &[f32]| x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let (ma, mb) = (mean(a), mean(b));
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64 - ma, y as f64 - mb);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).sqrt()
}

#[test]
fn generic_object_decoding_as_shipped_reaches_a_prepared_subject() {
    let root = fixtures().join("ds001246_shipped");
    let extra = fixtures().join("ds001246_extra");
    let truth = json(&extra.join("truth.json"));
    let dir = tempfile::tempdir().unwrap();
    let (glm, prepared) = (dir.path().join("glm-god-01"), dir.path().join("god-01"));
    let fmriprep = root.join("derivatives/fmriprep");
    ok(&[
        "glm",
        "--fmriprep",
        s(&fmriprep),
        "--bids-root",
        s(&root),
        "--subject",
        "01",
        "--task",
        "perception",
        "--space",
        "T1w",
        "--condition-column",
        "stimulus_name",
        "--out",
        s(&glm),
    ]);
    let meta = json(&glm.join("glm.json"));
    assert_eq!(meta["tr"], 3.0, "RepetitionTime from task-perception_bold.json");
    assert_eq!(meta["stimdur"], 9.0, "GOD's 9-s blocks");
    assert_eq!(meta["condition_column"], "stimulus_name");
    let conditions: Vec<String> = meta["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let trials = meta["trials"].as_array().unwrap();

    // Runs in the order glm read them (sessions, then runs); the blocks of each, rests left out.
    let mut planted: Vec<(String, u64, Vec<String>)> = truth["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let blocks = r["blocks"].as_array().unwrap();
            (
                r["session"].as_str().unwrap().to_string(),
                r["run"].as_u64().unwrap(),
                blocks.iter().map(|b| b.as_str().unwrap().into()).collect(),
            )
        })
        .collect();
    planted.sort();
    let blocks: Vec<&String> = planted.iter().flat_map(|(_, _, b)| b).collect();
    assert_eq!(trials.len(), blocks.len(), "one trial per stimulus block");
    let mut distinct: Vec<&String> = blocks.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(conditions.len(), distinct.len(), "one condition per image");
    let mut one_back = 0;
    for (i, trial) in trials.iter().enumerate() {
        let name = &conditions[trial["condition"].as_u64().unwrap() as usize];
        assert_eq!(name, blocks[i], "trial {i}");
        assert_eq!((trial["onset"].as_f64().unwrap() - 33.0) % 9.0, 0.0);
        if i > 0 && trials[i - 1]["condition"] == trial["condition"] {
            one_back += 1;
        }
    }
    assert_eq!(one_back, 4, "each run's one-back repeat: two trials of one condition");

    // The planted response: each test image's TYPED betas in one test run identify it in the
    // other.
    let betas = npy::read_f32(&glm.join("TYPED_FITHRF_GLMDENOISE_RR/betasmd.npy")).unwrap();
    let (n_voxels, n_trials) = (betas.shape[0], betas.shape[1]);
    let test: Vec<String> = serde_json::from_value(truth["test"].clone()).unwrap();
    let mut patterns: BTreeMap<(u64, usize), Vec<f32>> = BTreeMap::new();
    for (i, trial) in trials.iter().enumerate() {
        let name = &conditions[trial["condition"].as_u64().unwrap() as usize];
        if let Some(k) = test.iter().position(|t| t == name) {
            let run = trial["run"].as_u64().unwrap();
            let sum = patterns.entry((run, k)).or_insert(vec![0.0; n_voxels]);
            for (v, value) in sum.iter_mut().enumerate() {
                *value += betas.data[v * n_trials + i];
            }
        }
    }
    let runs: Vec<u64> = {
        let mut r: Vec<u64> = patterns.keys().map(|(run, _)| *run).collect();
        r.dedup();
        r
    };
    assert_eq!(runs.len(), 2, "the two test runs");
    for k in 0..test.len() {
        let r: Vec<f64> = (0..test.len())
            .map(|j| correlation(&patterns[&(runs[0], k)], &patterns[&(runs[1], j)]))
            .collect();
        let best = (0..test.len()).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap();
        assert!(best == k && r[k] > 0.5, "test image {k}: {r:?}");
    }

    // glm prepare: the test set is the images shown 4 times or more, the other trials training
    // rows, the images read from <stimulus_name>.JPEG.
    ok(&[
        "glm",
        "prepare",
        "--glm",
        s(&glm),
        "--stimuli",
        s(&extra.join("images")),
        "--test-repeats",
        "4",
        "--image-size",
        "32",
        "--out",
        s(&prepared),
    ]);
    let names = json(&prepared.join("stimuli/names.json"));
    let name_of = |id: i64| names[id.to_string()].as_str().unwrap().to_string();
    let test_ids = npy::read_i64(&prepared.join("test_stimulus_ids.npy")).unwrap();
    let mut prepared_test: Vec<String> = test_ids.data.iter().map(|&id| name_of(id)).collect();
    prepared_test.sort();
    let mut expected = test.clone();
    expected.sort();
    assert_eq!(prepared_test, expected);
    let train_ids = npy::read_i64(&prepared.join("train_stimulus_ids.npy")).unwrap();
    let training_blocks = blocks.iter().filter(|b| !test.contains(b)).count();
    assert_eq!(train_ids.data.len(), training_blocks);
    // Each image is its JPEG's colour.
    let images = npy::read_u8(&prepared.join("stimuli/images.npy")).unwrap();
    let ids = npy::read_i64(&prepared.join("stimuli/ids.npy")).unwrap();
    let pixels = 32 * 32 * 3;
    for (row, &id) in ids.data.iter().enumerate() {
        let colour = &truth["colours"][name_of(id)];
        let image = &images.data[row * pixels..(row + 1) * pixels];
        for c in 0..3 {
            let mean = image.iter().skip(c).step_by(3).map(|&v| v as f64).sum::<f64>() / 1024.0;
            let want = colour[c].as_f64().unwrap();
            assert!((mean - want).abs() < 6.0, "{}: {mean} vs {want}", name_of(id));
        }
    }
}
