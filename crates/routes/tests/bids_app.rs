//! The BIDS App on a simulated experiment of two participants (`simulate --kind events`, made
//! small): the participant level as two Slurm array tasks, a rerun that skips both, the group
//! level and its rerun; every derivative file named by the BIDS specification's derivative
//! pattern. The command line's refusals (exit 2) are checked in crates/cli/tests/bids_app.rs.

use brainrecon_routes::bids_app::{group_done, run, shard_done, BidsAppOptions, Level};
use brainrecon_routes::linear::shards::ImageShard;
use brainrecon_routes::CortexChoice;
use brainrecon_simulate::events::{simulate_events, EventsOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A small event-related experiment (3 runs, 48 training and 12 test images) with `seed`.
fn simulate(out: &Path, seed: u64) {
    simulate_events(&EventsOptions {
        seed,
        runs: 3,
        train_images: 48,
        test_images: 12,
        volume_shape: [16, 18, 12],
        image_size: 32,
        ..EventsOptions::new(out)
    })
    .unwrap();
}

/// Copies the tree `from` into `to`, `sub-01` becoming `sub-02` in every name and in the text
/// of the JSON and TSV files.
fn graft(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        let target = to.join(name.replace("sub-01", "sub-02"));
        if path.is_dir() {
            graft(&path, &target);
        } else if name.ends_with(".json") || name.ends_with(".tsv") {
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&target, text.replace("sub-01", "sub-02")).unwrap();
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// Two participants: sub-01 from seed 1, sub-02 from seed 2 (its raw runs, fMRIPrep's
/// derivatives and its stimuli grafted in).
fn two_participants(dir: &Path) -> PathBuf {
    let (ds, other) = (dir.join("ds"), dir.join("other"));
    simulate(&ds, 1);
    simulate(&other, 2);
    graft(&other.join("sub-01"), &ds.join("sub-02"));
    let fmriprep = |root: &Path| root.join("derivatives").join("fmriprep");
    graft(
        &fmriprep(&other).join("sub-01"),
        &fmriprep(&ds).join("sub-02"),
    );
    for entry in std::fs::read_dir(other.join("stimuli")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "png") {
            std::fs::copy(&path, ds.join("stimuli").join(path.file_name().unwrap())).unwrap();
        }
    }
    let mut captions = json(&ds.join("stimuli/captions.json"));
    let theirs = json(&other.join("stimuli/captions.json"));
    for (name, caption) in theirs.as_object().unwrap() {
        captions[name] = caption.clone();
    }
    std::fs::write(
        ds.join("stimuli/captions.json"),
        serde_json::to_string(&captions).unwrap(),
    )
    .unwrap();
    ds
}

/// The BIDS specification's derivative file name (Common derivatives: entities in their
/// order, then the suffix and extension): sub-<label>[_ses-<label>][_task-<label>]
/// [_acq-<label>][_run-<index>][_space-<label>][_res-<label>][_desc-<label>]_<suffix><.ext>.
fn bids_derivative_name() -> regex::Regex {
    regex::Regex::new(
        r"^sub-[a-zA-Z0-9]+(_ses-[a-zA-Z0-9]+)?(_task-[a-zA-Z0-9]+)?(_acq-[a-zA-Z0-9]+)?(_run-[0-9]+)?(_space-[a-zA-Z0-9]+)?(_res-[a-zA-Z0-9]+)?(_desc-[a-zA-Z0-9]+)?_[a-zA-Z0-9]+\.(nii\.gz|nii|json|tsv)$",
    )
    .unwrap()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn options(ds: &Path, out: &Path, level: Level) -> BidsAppOptions {
    BidsAppOptions {
        permutations: 50,
        group_dimensions: 8,
        cortex: CortexChoice::None,
        space: Some("T1w".into()),
        ..BidsAppOptions::new(ds, out, level)
    }
}

#[test]
fn both_levels_write_a_bids_derivative_and_skip_what_is_finished() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = two_participants(tmp.path());
    let out = tmp.path().join("out");

    // The participant level as a Slurm array of two tasks, one participant each.
    for index in 0..2 {
        let report = run(&BidsAppOptions {
            shard: Some(ImageShard { index, count: 2 }),
            ..options(&ds, &out, Level::Participant)
        })
        .unwrap();
        assert_eq!(report.participants.len(), 1, "{}", report.text());
        assert!(!report.participants[0].skipped);
        // 6 files with their sidecars, and the report
        assert_eq!(report.participants[0].files.len(), 13);
        assert!(shard_done(&out, index, 2));
    }
    assert!(!group_done(&out));

    let description = json(&out.join("dataset_description.json"));
    assert_eq!(description["DatasetType"], "derivative");
    assert_eq!(description["GeneratedBy"][0]["Name"], "brainrecon");
    assert_eq!(
        description["GeneratedBy"][0]["Version"],
        env!("CARGO_PKG_VERSION")
    );

    let pattern = bids_derivative_name();
    let mut files = Vec::new();
    for label in ["01", "02"] {
        files_under(&out.join(format!("sub-{label}")), &mut files);
        assert!(out.join(format!("sub-{label}.html")).is_file());
    }
    assert_eq!(files.len(), 2 * 12, "{files:?}");
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy();
        assert!(
            pattern.is_match(&name),
            "not a BIDS derivative name: {name}"
        );
        assert_eq!(
            file.parent().unwrap().file_name().unwrap(),
            "func",
            "{}",
            file.display()
        );
    }
    let func = out.join("sub-01/func");
    let sidecar = json(&func.join("sub-01_task-images_space-T1w_desc-singletrial_betas.json"));
    assert_eq!(sidecar["Settings"]["space"], "T1w");
    assert_eq!(sidecar["Settings"]["permutations"], 50);
    assert_eq!(sidecar["SettingsHash"].as_str().unwrap().len(), 16);
    // One betas volume per trial: 3 runs of 48·2 + 12·3 = 132 trials.
    let trials =
        std::fs::read_to_string(func.join("sub-01_task-images_desc-singletrial_events.tsv"))
            .unwrap();
    assert_eq!(trials.lines().count(), 1 + 132);
    assert!(trials.starts_with("onset\tduration\trun\tvolume\ttrial_type\n"));

    // A rerun skips both participants, however BIDS_DIR is spelled (a trailing slash, `..`);
    // other settings are refused, naming the sidecar.
    let respelled = PathBuf::from(format!("{}/../ds/", ds.display()));
    let again = run(&options(&respelled, &out, Level::Participant)).unwrap();
    assert!(
        again.participants.iter().all(|p| p.skipped) && again.participants.len() == 2,
        "{}",
        again.text()
    );
    let other = run(&BidsAppOptions {
        permutations: 60,
        ..options(&ds, &out, Level::Participant)
    })
    .unwrap_err()
    .to_string();
    assert!(
        other.contains("sub-01_task-images_space-T1w_desc-singletrial_betas.json"),
        "{other}"
    );

    // The group level: a shared space over both, its report; a rerun does nothing.
    let group = run(&options(&ds, &out, Level::Group)).unwrap();
    let outcome = group.group.as_ref().unwrap();
    assert_eq!(outcome.participants, ["01", "02"]);
    assert!(!outcome.skipped);
    assert!(group_done(&out));
    assert!(out
        .join("brainrecon/group/spaces/shared/space.json")
        .is_file());
    let html = std::fs::read_to_string(out.join("group.html")).unwrap();
    assert!(html.contains("group of 2 subjects"), "{html}");
    let again = run(&options(&ds, &out, Level::Group)).unwrap();
    assert!(again.group.unwrap().skipped);
}

/// An OUTPUT_DIR that is BIDS_DIR, a raw participant's folder or fMRIPrep's is refused before
/// anything is written: both datasets keep their bytes.
#[test]
fn an_output_dir_inside_the_data_read_is_refused_before_any_write() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    simulate(&ds, 1);
    let fmriprep = ds.join("derivatives").join("fmriprep");
    let raw_description = std::fs::read(ds.join("dataset_description.json")).unwrap();
    let fmriprep_description = std::fs::read(fmriprep.join("dataset_description.json")).unwrap();
    let sub01 = ds.join("sub-01").join("out");
    let spelled_again = PathBuf::from(format!("{}/", ds.display()));
    for out in [
        &ds,
        &spelled_again,
        &sub01,
        &fmriprep,
        &fmriprep.join("brainrecon"),
    ] {
        let error = run(&options(&ds, out, Level::Participant)).unwrap_err();
        let text = error.to_string();
        assert!(error.is_user_error(), "{}: {text}", out.display());
        assert!(text.starts_with("OUTPUT_DIR "), "{text}");
        assert!(text.contains("derivatives/brainrecon"), "{text}");
    }
    assert_eq!(
        std::fs::read(ds.join("dataset_description.json")).unwrap(),
        raw_description
    );
    assert_eq!(
        std::fs::read(fmriprep.join("dataset_description.json")).unwrap(),
        fmriprep_description
    );
    assert!(!ds.join(".bidsignore").exists() && !fmriprep.join(".bidsignore").exists());
    assert!(!sub01.exists());
}
