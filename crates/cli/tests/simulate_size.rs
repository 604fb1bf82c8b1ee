//! `simulate`'s size options: the NSD preset, its overrides, and the volume shape.

mod common;

use brainrecon_datasets::nsd::{H5Dataset, Layout};
use common::{ok, p, user_error};

#[test]
fn volume_and_preset_overrides_shape_the_betas() {
    let dir = tempfile::tempdir().unwrap();
    let (small, preset) = (dir.path().join("small"), dir.path().join("preset"));
    let size = ["--images", "30", "--sessions", "2", "--volume", "16,18,14"];
    let mut args = vec!["simulate", "--out", p(&small), "--seed", "4", "--json"];
    args.extend(size);
    let summary: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
    assert_eq!(summary["volume_shape"], serde_json::json!([16, 18, 14]));
    assert_eq!(summary["trials_per_session"], serde_json::json!([45, 45]));
    for session in [1, 2] {
        let betas =
            H5Dataset::open(&Layout::new(&small, 1).betas(session), "betas", "betas").unwrap();
        // NSD's order: (trials, Z, Y, X).
        assert_eq!(betas.shape(), vec![45, 14, 18, 16]);
    }
    // --size nsd with every part overridden is the same subject.
    let mut args = vec![
        "simulate",
        "--size",
        "nsd",
        "--out",
        p(&preset),
        "--seed",
        "4",
    ];
    args.extend(size);
    ok(&args);
    for file in ["truth/truth.json", "truth/betas_psc.npy"] {
        assert_eq!(
            std::fs::read(small.join(file)).unwrap(),
            std::fs::read(preset.join(file)).unwrap(),
            "{file}"
        );
    }
}

#[test]
fn size_options_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    let err = user_error(&["simulate", "--out", p(&out), "--volume", "4,30,20"]);
    assert!(
        err.contains("--volume") && err.contains("8 to 512"),
        "{err}"
    );
    let err = user_error(&["simulate", "--out", p(&out), "--volume", "10,10"]);
    assert!(err.contains("--volume"), "{err}");
    let err = user_error(&["simulate", "--out", p(&out), "--size", "huge"]);
    assert!(err.contains("nsd"), "{err}");
    let err = user_error(&[
        "simulate",
        "--kind",
        "movie",
        "--out",
        p(&out),
        "--size",
        "nsd",
    ]);
    assert!(err.contains("--size"), "{err}");
    assert!(!out.exists());
    let help = ok(&["simulate", "--help"]);
    assert!(
        help.contains("--size") && help.contains("81 × 104 × 83"),
        "{help}"
    );
}

#[test]
fn eeg_writes_things_eeg2_and_refuses_flags_of_other_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("eeg");
    let err = user_error(&[
        "simulate",
        "--kind",
        "eeg",
        "--out",
        p(&out),
        "--images",
        "30",
    ]);
    assert!(
        err.contains("--images") && err.contains("--kind eeg"),
        "{err}"
    );
    assert!(!out.exists());
    let args = [
        "simulate",
        "--kind",
        "eeg",
        "--out",
        p(&out),
        "--subjects",
        "1",
        "--image-size",
        "16",
        "--json",
    ];
    let summary: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
    assert_eq!(summary["n_training_images"], 288);
    assert_eq!(summary["n_test_images"], 32);
    assert_eq!(summary["subjects"].as_array().unwrap().len(), 1);
    for file in ["preprocessed_eeg_training.npy", "preprocessed_eeg_test.npy"] {
        assert!(out
            .join("eeg_dataset/preprocessed_data/sub-01")
            .join(file)
            .is_file());
    }
    assert!(out.join("image_set/image_metadata.npy").is_file());
}
