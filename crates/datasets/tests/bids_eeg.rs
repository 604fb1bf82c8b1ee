//! An image experiment in BIDS EEG, here THINGS-EEG1 (ds003825) in miniature as it ships
//! (`tools/fixtures/ds003825_shipped.py`): BrainVision files, events.tsv with onsets in samples and
//! Windows paths, validation images flagged by `isteststim`. Epochs, baseline, resampling and
//! MVNN per repetition against MNE 1.13.2 + scikit-learn 1.9.1 + scipy 1.17.1.

use brainrecon_datasets::bids_eeg::{find_run, image_events, prepare_run, OnsetUnit};
use brainrecon_datasets::eeg_preprocess::MvnnDim;
use brainrecon_datasets::things_eeg2::{ChannelSelection, RawPreprocessing};
use brainrecon_formats::events::Events;
use brainrecon_formats::npy::read_f32;
use brainrecon_testkit::{max_abs, max_abs_diff};
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ds003825")
}

fn options() -> RawPreprocessing {
    RawPreprocessing {
        channels: ChannelSelection::All,
        mvnn: Some(MvnnDim::Epochs),
        ..RawPreprocessing::default()
    }
}

#[test]
fn ds003825_epochs_as_mne_makes_them() {
    let run = find_run(&fixture().join("ds003825"), "02", "rsvp").unwrap();
    let prepared = prepare_run(&run, &options()).unwrap();
    assert_eq!(
        prepared.onsets,
        OnsetUnit::Samples,
        "ds003825 writes samples"
    );
    assert_eq!(prepared.dropped, 0);
    let expected = fixture().join("expected");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(expected.join("expected.json")).unwrap()).unwrap();
    let strings = |key: &str| -> Vec<String> {
        meta[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(prepared.training_images, strings("training"));
    assert_eq!(prepared.test_images, strings("test"));
    assert_eq!(prepared.training.ch_names, strings("ch_names"));
    let times: Vec<f64> = meta["times"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(prepared.training.times.len(), times.len());
    for (a, b) in prepared.training.times.iter().zip(&times) {
        assert!((a - b).abs() < 1e-9);
    }
    for (ours, name) in [(&prepared.training, "training"), (&prepared.test, "test")] {
        let want = read_f32(&expected.join(format!("{name}.npy"))).unwrap();
        assert_eq!(
            vec![
                ours.conditions,
                ours.repetitions,
                ours.channels(),
                ours.times.len()
            ],
            want.shape
        );
        let (scale, worst) = (max_abs(&want.data), max_abs_diff(&ours.data, &want.data));
        eprintln!("{name}: largest difference {worst:.3e} of values up to {scale:.3e}");
        assert!(worst <= 2e-6 * scale, "{name}: {worst} against {scale}");
    }
    assert_eq!(
        (prepared.training.repetitions, prepared.test.repetitions),
        (1, 4)
    );
}

#[test]
fn onsets_in_seconds_and_refusals() {
    let run = find_run(&fixture().join("ds003825"), "sub-02", "rsvp").unwrap();
    // The same events with onsets in seconds, as BIDS defines them, read the same.
    let text = std::fs::read_to_string(&run.events).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let seconds: Vec<String> = lines
        .map(|l| {
            let (onset, rest) = l.split_once('\t').unwrap();
            format!("{}\t{rest}", onset.parse::<f64>().unwrap() / 1000.0)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.tsv");
    std::fs::write(&path, format!("{header}\n{}\n", seconds.join("\n"))).unwrap();
    let samples = Events::read(&run.events).unwrap();
    let in_seconds = Events::read(&path).unwrap();
    let (a, unit_a) = image_events(&samples, 1000.0, 10_000).unwrap();
    let (b, unit_b) = image_events(&in_seconds, 1000.0, 10_000).unwrap();
    assert_eq!((unit_a, unit_b), (OnsetUnit::Samples, OnsetUnit::Seconds));
    assert_eq!(a, b);
    assert!(a[0].image.starts_with("stimuli/") && !a[0].image.contains('\\'));
    // An onset past the end of the recording names the file, the column and the row.
    let err = image_events(&in_seconds, 1000.0, 2_000)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("events.tsv") && err.contains("onset") && err.contains("row"),
        "{err}"
    );
    // No image column.
    std::fs::write(&path, "onset\tduration\n1.0\t0.05\n").unwrap();
    let err = image_events(&Events::read(&path).unwrap(), 1000.0, 10_000)
        .unwrap_err()
        .to_string();
    assert!(err.contains("stim_file"), "{err}");
    // A missing run.
    let err = find_run(&fixture().join("ds003825"), "03", "rsvp")
        .unwrap_err()
        .to_string();
    assert!(err.contains("sub-03_task-rsvp_eeg.vhdr"), "{err}");
}
