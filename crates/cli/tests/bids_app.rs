//! `brainrecon bids-app`'s command line: what it refuses with exit status 2, naming the file,
//! before anything is read or written. Both levels run on a simulated experiment in
//! crates/routes/tests/bids_app.rs.

mod common;

use common::{p, user_error};
use std::path::Path;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A raw dataset with sub-01 (one run of task images) and fMRIPrep's derivative of it in T1w;
/// the files are names only: every refusal comes before a volume is read.
fn dataset(root: &Path) {
    write(
        &root.join("dataset_description.json"),
        r#"{"Name": "t", "BIDSVersion": "1.9.0"}"#,
    );
    write(
        &root.join("sub-01/func/sub-01_task-images_run-01_bold.nii.gz"),
        "",
    );
    let fmriprep = root.join("derivatives/fmriprep");
    write(
        &fmriprep.join("dataset_description.json"),
        r#"{"Name": "f", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "fMRIPrep", "Version": "24.1.1"}]}"#,
    );
    write(
        &fmriprep.join("sub-01/func/sub-01_task-images_run-01_space-T1w_desc-preproc_bold.nii.gz"),
        "",
    );
}

#[test]
fn bids_app_refuses_what_is_not_a_bids_dataset_or_its_derivative() {
    let tmp = tempfile::tempdir().unwrap();
    let (ds, out) = (tmp.path().join("ds"), tmp.path().join("out"));
    dataset(&ds);
    let app = |extra: &[&str]| -> String {
        let mut args = vec!["bids-app", p(&ds), p(&out), "participant"];
        args.extend_from_slice(extra);
        user_error(&args)
    };

    // An absent participant, named with the folder it would be.
    let e = app(&["--participant-label", "sub-02"]);
    assert!(
        e.contains(&format!("{}", ds.join("sub-02").display())),
        "{e}"
    );
    // The derivatives lack the raw run in the space asked for.
    let e = app(&["--space", "MNI152NLin2009cAsym"]);
    assert!(
        e.contains("sub-01_task-images_run-01_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz")
            && e.contains("do not match the raw data"),
        "{e}"
    );
    // A task the participant has no run of.
    let e = app(&["--task", "rest"]);
    assert!(e.contains("raw BOLD runs of task rest"), "{e}");
    // Derivatives that are not a derivative.
    let raw_like = tmp.path().join("raw-like");
    write(
        &raw_like.join("dataset_description.json"),
        r#"{"Name": "r", "BIDSVersion": "1.9.0", "DatasetType": "raw"}"#,
    );
    let derivatives = format!("fmriprep={}", p(&raw_like));
    let e = app(&["--derivatives", &derivatives]);
    assert!(
        e.contains(&format!(
            "{}: DatasetType",
            raw_like.join("dataset_description.json").display()
        )),
        "{e}"
    );
    let e = app(&["--derivatives", "freesurfer=/x"]);
    assert!(e.contains("--derivatives: expected fmriprep=DIR"), "{e}");
    // A shard out of range, as Slurm's array would never give.
    let e = app(&["--shard", "2/2"]);
    assert!(e.contains("--shard"), "{e}");
    assert!(!out.exists(), "nothing written before the checks pass");

    // The group level before any participant finished.
    let e = user_error(&["bids-app", p(&ds), p(&out), "group"]);
    assert!(
        e.contains(&format!("{}", out.join("sub-*").display())),
        "{e}"
    );

    // A dataset without dataset_description.json.
    std::fs::remove_file(ds.join("dataset_description.json")).unwrap();
    let e = app(&[]);
    assert!(
        e.contains(&format!(
            "{}",
            ds.join("dataset_description.json").display()
        )),
        "{e}"
    );
}

/// Offline (the container's setting): the one socket to another machine, `stream`'s, is
/// refused by name, with `--offline` or with BRAINRECON_OFFLINE=1.
#[test]
fn offline_refuses_what_would_reach_the_network_by_name() {
    let source = [
        "stream",
        "--source",
        "tcp://10.255.255.1:9",
        "--channels",
        "8",
        "--rate",
        "250",
        "--format",
        "f32",
        "--no-serve",
    ];
    let mut args = vec!["--offline"];
    args.extend_from_slice(&source);
    let e = user_error(&args);
    assert!(
        e.contains("--source tcp://10.255.255.1:9") && e.contains("offline"),
        "{e}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_brainrecon"))
        .args([
            "stream",
            "--source",
            "synthetic",
            "--frames",
            "1",
            "--fast",
            "--serve",
            "0.0.0.0:0",
        ])
        .env("BRAINRECON_OFFLINE", "1")
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(e.contains("--serve 0.0.0.0:0"), "{e}");
}
