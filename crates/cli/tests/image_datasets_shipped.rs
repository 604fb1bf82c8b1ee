//! The README's real-dataset commands (`glm` → `glm prepare`) on tiny copies of OpenNeuro
//! ds001246 (Generic Object Decoding), ds001506 (Deep Image Reconstruction) and ds004192
//! (THINGS-fMRI) as they ship (tools/fixtures/god_shipped.py, dir_shipped.py,
//! things_shipped.py: their sessions, sidecars, events' columns, rests, blocks and one-back
//! repeats; GOD's ImageNet names without extension, DIR's numeric ImageNet ids and its
//! artificial-shape sessions under the same task, THINGS' file paths, catch trials and rest
//! run), with fMRIPrep derivatives and a planted response per image. Asserted: the trials and conditions are the
//! events' stimulus blocks (of the chosen sessions), a one-back repeat is two trials of one
//! condition, the betas identify the test images across runs, and the prepared subject's
//! test set, training rows and images are the right ones.
mod common;

use brainrecon_formats::npy;
use common::{json, ok, p as s};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
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

/// One data set's fixture and the README's command for it.
struct Case {
    dataset: &'static str,
    subject: &'static str,
    task: &'static str,
    condition_column: &'static str,
    sessions: &'static [&'static str],
    tr: f64,
    /// The first block's onset and the time from one block to the next (s), when onsets
    /// fall on that grid; a stimulus's duration (s, within 0.05).
    grid: Option<(f64, f64)>,
    duration: f64,
    /// Whether the subjects' task is a one-back (an image twice in a row in every run).
    one_back: bool,
    /// The images' folder in the fixture's extra folder.
    stimuli: &'static str,
    /// glm prepare's options beyond --glm, --stimuli, --image-size and --out.
    prepare: &'static [&'static str],
    /// The sessions the run order starts with (glm reads sessions in name order).
    planted_sessions: &'static [&'static str],
}

/// DIR's numeric form of an ImageNet name: n01639765_47681 → 1639765.047681.
fn numeric_id(name: &str) -> String {
    let (synset, image) = name[1..].split_once('_').unwrap();
    format!(
        "{}.{:06}",
        synset.parse::<u64>().unwrap(),
        image.parse::<u64>().unwrap()
    )
}

#[test]
fn things_fmri_as_shipped_reaches_a_prepared_subject() {
    shipped_dataset_reaches_a_prepared_subject(Case {
        dataset: "ds004192",
        subject: "01",
        task: "things",
        condition_column: "file_path",
        sessions: &[],
        tr: 1.5,
        grid: Some((3.0, 4.5)),
        duration: 0.5,
        one_back: false,
        stimuli: "object_images",
        // Test images once a session (12 in the real data, 2 here); catch images not supplied.
        prepare: &["--test-repeats", "2", "--leave-out-missing"],
        planted_sessions: &["things01", "things02"],
    });
}

#[test]
fn bold5000_as_shipped_with_its_fmriprep_1x_derivatives_reaches_a_prepared_subject() {
    let meta = shipped_dataset_reaches_a_prepared_subject(Case {
        dataset: "ds001499",
        subject: "CSI1",
        task: "5000scenes",
        condition_column: "ImgName",
        sessions: &[],
        tr: 2.0,
        // Onsets as the stimulus computer logged them, between volumes.
        grid: None,
        duration: 1.0,
        one_back: false,
        stimuli: "Scene_Stimuli/Presented_Stimuli",
        prepare: &["--test-repeats", "4"],
        planted_sessions: &["01", "02"],
    });
    // fMRIPrep 1.x's NonSteadyStateOutlier00 read as today's column: the first volume of each
    // run left out; onsets moved to their volume by less than half a TR.
    assert_eq!(meta["dropped_volumes"], serde_json::json!([1, 1, 1, 1]));
    let rounding = meta["largest_onset_rounding_seconds"].as_f64().unwrap();
    assert!(rounding > 0.0 && rounding <= 1.0, "{rounding}");
}

#[test]
fn bold5000_fmriprep_1x_confounds_are_read_under_todays_names() {
    let root = fixtures().join("ds001499_shipped");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    ok(&[
        "bids",
        "prepare",
        "--fmriprep",
        s(&root.join("derivatives/fmriprep")),
        "--bids-root",
        s(&root),
        "--subject",
        "CSI1",
        "--task",
        "5000scenes",
        "--space",
        "T1w",
        // fMRIPrep 1.x wrote no derivative or squared motion columns (motion:full's).
        "--confounds",
        "motion:basic,wm_csf:basic,high_pass",
        "--out",
        s(&out),
    ]);
    let runset = json(&out.join("runset.json"));
    let text = runset.to_string();
    for name in ["trans_x", "rot_z", "csf", "white_matter", "cosine00"] {
        assert!(text.contains(name), "{name} among the regressors: {text}");
    }
    assert!(text.contains("fMRIPrep 1.x"), "{text}");
}

#[test]
fn generic_object_decoding_as_shipped_reaches_a_prepared_subject() {
    shipped_dataset_reaches_a_prepared_subject(Case {
        dataset: "ds001246",
        subject: "01",
        task: "perception",
        condition_column: "stimulus_name",
        sessions: &[],
        tr: 3.0,
        grid: Some((33.0, 9.0)),
        duration: 9.0,
        one_back: true,
        stimuli: "images",
        prepare: &["--test-repeats", "4"],
        planted_sessions: &["perceptionTest01", "perceptionTraining01"],
    });
}

#[test]
fn deep_image_reconstruction_as_shipped_reaches_a_prepared_subject() {
    shipped_dataset_reaches_a_prepared_subject(Case {
        dataset: "ds001506",
        subject: "01",
        task: "perception",
        condition_column: "stimulus_id",
        sessions: &["perceptionNaturalImage*"],
        tr: 2.0,
        grid: Some((32.0, 8.0)),
        duration: 8.0,
        one_back: true,
        stimuli: "images",
        prepare: &["--test-repeats", "4"],
        planted_sessions: &[
            "perceptionNaturalImageTest01",
            "perceptionNaturalImageTraining01",
        ],
    });
}

/// Runs the README's `glm` → `glm prepare` on the data set and checks both; returns glm.json.
fn shipped_dataset_reaches_a_prepared_subject(case: Case) -> Value {
    let root = fixtures().join(format!("{}_shipped", case.dataset));
    let extra = fixtures().join(format!("{}_extra", case.dataset));
    let stimuli = extra.join(case.stimuli);
    let truth = json(&extra.join("truth.json"));
    let dir = tempfile::tempdir().unwrap();
    let (glm, prepared) = (dir.path().join("glm-01"), dir.path().join("prepared-01"));
    let fmriprep = root.join("derivatives/fmriprep");
    let mut args = vec![
        "glm",
        "--fmriprep",
        s(&fmriprep),
        "--bids-root",
        s(&root),
        "--subject",
        case.subject,
        "--task",
        case.task,
        "--space",
        "T1w",
        "--condition-column",
        case.condition_column,
        "--out",
        s(&glm),
    ];
    for session in case.sessions {
        args.extend(["--session", session]);
    }
    ok(&args);
    let meta = json(&glm.join("glm.json"));
    assert_eq!(meta["tr"], case.tr, "RepetitionTime from the sidecars");
    let stimdur = meta["stimdur"].as_f64().unwrap();
    assert!(
        (stimdur - case.duration).abs() < 0.05,
        "stimulus duration {stimdur} s"
    );
    assert_eq!(meta["condition_column"], case.condition_column);
    let condition_of = |name: &str| match case.condition_column {
        "stimulus_id" => numeric_id(name),
        _ => name.to_string(),
    };
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
        .filter(|r| {
            case.planted_sessions
                .contains(&r["session"].as_str().unwrap())
        })
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
        assert_eq!(*name, condition_of(blocks[i]), "trial {i}");
        if let Some((lead, block)) = case.grid {
            assert_eq!((trial["onset"].as_f64().unwrap() - lead) % block, 0.0);
        }
        let same_run = i > 0 && trials[i - 1]["run"] == trial["run"];
        if same_run && trials[i - 1]["condition"] == trial["condition"] {
            one_back += 1;
        }
    }
    let planted_repeats: usize = planted
        .iter()
        .map(|(_, _, b)| b.windows(2).filter(|w| w[0] == w[1]).count())
        .sum();
    if case.one_back {
        assert!(
            planted_repeats >= planted.len(),
            "a one-back repeat in every run"
        );
    }
    assert_eq!(
        one_back, planted_repeats,
        "a one-back repeat: two trials of one condition"
    );

    // The planted response: each test image's TYPED betas in one run identify it in another.
    let betas = npy::read_f32(&glm.join("TYPED_FITHRF_GLMDENOISE_RR/betasmd.npy")).unwrap();
    let (n_voxels, n_trials) = (betas.shape[0], betas.shape[1]);
    let test: Vec<String> = serde_json::from_value(truth["test"].clone()).unwrap();
    let mut patterns: BTreeMap<(u64, usize), Vec<f32>> = BTreeMap::new();
    for (i, trial) in trials.iter().enumerate() {
        let name = &conditions[trial["condition"].as_u64().unwrap() as usize];
        if let Some(k) = test.iter().position(|t| condition_of(t) == *name) {
            let run = trial["run"].as_u64().unwrap();
            let sum = patterns.entry((run, k)).or_insert(vec![0.0; n_voxels]);
            for (v, value) in sum.iter_mut().enumerate() {
                *value += betas.data[v * n_trials + i];
            }
        }
    }
    // Each test image's sum over its first run and over its last.
    let first_and_last = |k: usize| {
        let runs: Vec<u64> = patterns
            .keys()
            .filter(|(_, image)| *image == k)
            .map(|(run, _)| *run)
            .collect();
        assert!(runs.len() >= 2, "test image {k} in two runs or more");
        (
            &patterns[&(runs[0], k)],
            &patterns[&(runs[runs.len() - 1], k)],
        )
    };
    for k in 0..test.len() {
        let r: Vec<f64> = (0..test.len())
            .map(|j| correlation(first_and_last(k).0, first_and_last(j).1))
            .collect();
        let best = (0..test.len())
            .max_by(|&a, &b| r[a].total_cmp(&r[b]))
            .unwrap();
        assert!(best == k && r[k] > 0.5, "test image {k}: {r:?}");
    }

    // glm prepare: the test set is the images shown --test-repeats times, the trials of the
    // other images with one training rows, the images read from the stimuli folder.
    let mut args = vec![
        "glm",
        "prepare",
        "--glm",
        s(&glm),
        "--stimuli",
        s(&stimuli),
        "--image-size",
        "32",
        "--out",
        s(&prepared),
    ];
    args.extend(case.prepare);
    ok(&args);
    let names = json(&prepared.join("stimuli/names.json"));
    let name_of = |id: i64| names[id.to_string()].as_str().unwrap().to_string();
    let test: Vec<String> = test.iter().map(|t| condition_of(t)).collect();
    let image_name = |id: i64| {
        let condition = name_of(id);
        let all: Vec<String> = serde_json::from_value(truth["training"].clone()).unwrap();
        all.into_iter()
            .chain(serde_json::from_value::<Vec<String>>(truth["test"].clone()).unwrap())
            .find(|n| condition_of(n) == condition)
            .unwrap()
    };
    let test_ids = npy::read_i64(&prepared.join("test_stimulus_ids.npy")).unwrap();
    let mut prepared_test: Vec<String> = test_ids.data.iter().map(|&id| name_of(id)).collect();
    prepared_test.sort();
    let mut expected = test.clone();
    expected.sort();
    assert_eq!(prepared_test, expected);
    let train_ids = npy::read_i64(&prepared.join("train_stimulus_ids.npy")).unwrap();
    let training: Vec<String> = serde_json::from_value(truth["training"].clone()).unwrap();
    let training_blocks = blocks.iter().filter(|b| training.contains(b)).count();
    assert_eq!(train_ids.data.len(), training_blocks);
    // Each image is its JPEG's colour.
    let images = npy::read_u8(&prepared.join("stimuli/images.npy")).unwrap();
    let ids = npy::read_i64(&prepared.join("stimuli/ids.npy")).unwrap();
    let pixels = 32 * 32 * 3;
    for (row, &id) in ids.data.iter().enumerate() {
        let colour = &truth["colours"][image_name(id)];
        let image = &images.data[row * pixels..(row + 1) * pixels];
        for c in 0..3 {
            let mean = image
                .iter()
                .skip(c)
                .step_by(3)
                .map(|&v| v as f64)
                .sum::<f64>()
                / 1024.0;
            let want = colour[c].as_f64().unwrap();
            assert!(
                (mean - want).abs() < 6.0,
                "{}: {mean} vs {want}",
                name_of(id)
            );
        }
    }
    meta
}
