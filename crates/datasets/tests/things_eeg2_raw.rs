//! THINGS-EEG2's raw recordings preprocessed as the data set's code does with MNE, scikit-learn
//! and scipy (events, channel selection, epochs with a baseline, FFT resampling, MVNN, sessions
//! merged), against `tools/fixtures/things_eeg2_raw.py`'s reference: the shipped settings, NICE's
//! (all channels, 250 Hz, MVNN per repetition) and no MVNN.

use brainrecon_datasets::eeg_preprocess::MvnnDim;
use brainrecon_datasets::things_eeg2::{
    preprocess_raw, ChannelSelection, PreprocessedEeg, RawPreprocessing, ThingsEeg2,
};
use brainrecon_formats::npy::read_f32;
use brainrecon_testkit::{max_abs, max_abs_diff};
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/things_eeg2_raw")
}

/// Checks `ours` against the reference `<name>_<half>.npy` and `<name>.json`.
fn compare(ours: &PreprocessedEeg, name: &str, half: &str) {
    let expected = fixture().join("expected");
    let want = read_f32(&expected.join(format!("{name}_{half}.npy"))).unwrap();
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(expected.join(format!("{name}.json"))).unwrap())
            .unwrap();
    let names: Vec<String> = meta["ch_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ours.ch_names, names, "{name} {half}");
    let times: Vec<f64> = meta["times"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(ours.times.len(), times.len());
    for (a, b) in ours.times.iter().zip(&times) {
        assert!((a - b).abs() < 1e-9, "{name}: time {a} vs {b}");
    }
    assert_eq!(
        [
            ours.conditions,
            ours.repetitions,
            ours.channels(),
            ours.times.len()
        ]
        .to_vec(),
        want.shape,
        "{name} {half}"
    );
    let (scale, worst) = (max_abs(&want.data), max_abs_diff(&ours.data, &want.data));
    eprintln!("{name} {half}: largest difference {worst:.3e} of values up to {scale:.3e}");
    assert!(
        worst <= 2e-6 * scale,
        "{name} {half}: {worst} against {scale}"
    );
}

#[test]
fn raw_recordings_preprocess_as_the_data_sets_code_does() {
    let set = ThingsEeg2::open(&fixture()).unwrap();
    let settings = [
        (
            "plain",
            RawPreprocessing {
                mvnn: None,
                ..RawPreprocessing::default()
            },
        ),
        ("shipped", RawPreprocessing::default()),
        (
            "nice",
            RawPreprocessing {
                sfreq: 250.0,
                channels: ChannelSelection::All,
                mvnn: Some(MvnnDim::Epochs),
                ..RawPreprocessing::default()
            },
        ),
    ];
    for (name, options) in settings {
        let (training, test) = preprocess_raw(&set, "sub-01", &options).unwrap();
        assert_eq!((training.conditions, training.repetitions), (4, 4));
        assert_eq!((test.conditions, test.repetitions), (2, 6));
        compare(&training, name, "training");
        compare(&test, name, "test");
    }
}

#[test]
fn refusals_name_the_file_and_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("raw");
    brainrecon_testkit::copy_dir(&fixture(), &root);
    let set = ThingsEeg2::open(&root).unwrap();
    let err = preprocess_raw(&set, "sub-09", &RawPreprocessing::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("sub-09"), "{err}");
    // A session without one of its halves.
    let test = root.join("eeg_dataset/raw_data/sub-01/ses-02/raw_eeg_test.npy");
    std::fs::remove_file(&test).unwrap();
    let err = preprocess_raw(&set, "sub-01", &RawPreprocessing::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("raw_eeg_test.npy"), "{err}");
}
