//! An image experiment in BIDS EEG, here THINGS-EEG1 (ds003825) in miniature as it ships
//! (`tools/fixtures/ds003825_shipped.py`): BrainVision files, events.tsv with onsets in samples and
//! Windows paths, validation images flagged by `isteststim`. And the same design recorded as
//! EDF+ (512 Hz) and BDF+ (256 Hz) with BIDS's events.tsv in seconds
//! (`tools/fixtures/bids_eeg_edf.py`, written by MNE's export through edfio 0.4.18). Epochs,
//! baseline, resampling and MVNN per repetition against MNE 1.13.2 + scikit-learn 1.9.1 +
//! scipy 1.17.1.

use brainrecon_datasets::bids_eeg::{
    find_run, image_events, prepare_run, EegFormat, OnsetUnit, PreparedEegRun,
};
use brainrecon_datasets::eeg_preprocess::MvnnDim;
use brainrecon_datasets::things_eeg2::{ChannelSelection, RawPreprocessing};
use brainrecon_formats::events::Events;
use brainrecon_formats::npy::read_f32;
use brainrecon_testkit::{max_abs, max_abs_diff};
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ds003825")
}

fn edf_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bids_eeg_edf")
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
    equals_mne(&prepared, &fixture().join("expected"));
    assert_eq!(
        (prepared.training.repetitions, prepared.test.repetitions),
        (1, 4)
    );
}

/// `prepared` against MNE's epochs in `expected` (`expected.json`, `training.npy`, `test.npy`):
/// the same images, channels and times, and values equal to 2e-6 of the largest. Returns the
/// largest difference relative to the largest value.
fn equals_mne(prepared: &PreparedEegRun, expected: &Path) -> f32 {
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
    let mut relative = 0f32;
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
        relative = relative.max(worst / scale);
    }
    relative
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

#[test]
fn edf_and_bdf_runs_epoch_as_mne_makes_them() {
    let root = edf_fixture().join("bids");
    for (subject, extension, sfreq) in [("01", "edf", 512.0), ("02", "bdf", 256.0)] {
        let run = find_run(&root, subject, "images").unwrap();
        assert_eq!(run.format, EegFormat::Edf);
        assert!(run
            .recording
            .to_string_lossy()
            .ends_with(&format!("_eeg.{extension}")));
        let prepared = prepare_run(&run, &options()).unwrap();
        assert_eq!(prepared.onsets, OnsetUnit::Seconds);
        assert_eq!(prepared.dropped, 0);
        // The EDF Annotations signal is not a channel.
        assert_eq!(prepared.training.ch_names.len(), 8);
        let expected = edf_fixture()
            .join("expected")
            .join(format!("sub-{subject}"));
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(expected.join("expected.json")).unwrap())
                .unwrap();
        assert_eq!(meta["sfreq"].as_f64(), Some(sfreq));
        let relative = equals_mne(&prepared, &expected);
        eprintln!(
            "sub-{subject} ({extension}): largest difference {relative:.3e} of the largest value"
        );
        assert_eq!(
            (prepared.training.repetitions, prepared.test.repetitions),
            (1, 4)
        );
    }
}

#[test]
fn a_damaged_edf_run_is_refused_naming_the_file() {
    let source = edf_fixture().join("bids/sub-01/eeg");
    let dir = tempfile::tempdir().unwrap();
    let eeg = dir.path().join("sub-01/eeg");
    std::fs::create_dir_all(&eeg).unwrap();
    std::fs::copy(
        source.join("sub-01_task-images_events.tsv"),
        eeg.join("sub-01_task-images_events.tsv"),
    )
    .unwrap();
    let bytes = std::fs::read(source.join("sub-01_task-images_eeg.edf")).unwrap();
    let path = eeg.join("sub-01_task-images_eeg.edf");
    let refusal = |bytes: &[u8]| -> String {
        std::fs::write(&path, bytes).unwrap();
        let run = find_run(dir.path(), "01", "images").unwrap();
        prepare_run(&run, &options()).unwrap_err().to_string()
    };
    // Cut in the data records, in the signal headers, in the main header.
    let err = refusal(&bytes[..bytes.len() - 100]);
    assert!(
        err.contains("sub-01_task-images_eeg.edf")
            && err.contains("data records")
            && err.contains("file truncated"),
        "{err}"
    );
    let err = refusal(&bytes[..1000]);
    assert!(
        err.contains("sub-01_task-images_eeg.edf") && err.contains("2560 bytes for 9 signals"),
        "{err}"
    );
    let err = refusal(&bytes[..100]);
    assert!(
        err.contains("sub-01_task-images_eeg.edf") && err.contains("at least 256 bytes"),
        "{err}"
    );
    // Every cut is an error, never a panic.
    for cut in (0..bytes.len()).step_by(997) {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let run = find_run(dir.path(), "01", "images").unwrap();
        let err = prepare_run(&run, &options()).unwrap_err().to_string();
        assert!(
            err.contains("sub-01_task-images_eeg.edf"),
            "cut at {cut}: {err}"
        );
    }
    // A signal at another rate: every signal of a run must share one. Signal 2 halved, and the
    // five data records shortened to match.
    let at = 256 + 9 * 216 + 8; // samples per data record: after 216 bytes of fields per signal
    assert_eq!(&bytes[at..at + 8], b"512     ");
    let record = (bytes.len() - 2560) / 5;
    let mut mixed = bytes[..2560 + 5 * (record - 512)].to_vec();
    mixed[at..at + 8].copy_from_slice(b"256     ");
    let err = refusal(&mixed);
    assert!(
        err.contains("sub-01_task-images_eeg.edf") && err.contains("samples per data record"),
        "{err}"
    );
}

/// ds003825's run copied under `dir`, its header and marker file changed by `edit`.
fn edited_run(
    dir: &Path,
    edit: impl Fn(&str, String) -> String,
) -> brainrecon_datasets::bids_eeg::EegRun {
    let source = fixture().join("ds003825/sub-02/eeg");
    let eeg = dir.join("sub-02/eeg");
    std::fs::create_dir_all(&eeg).unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        match name.ends_with(".vhdr") || name.ends_with(".vmrk") {
            true => {
                let text = std::fs::read_to_string(&path).unwrap();
                std::fs::write(eeg.join(&name), edit(&name, text)).unwrap();
            }
            false => {
                std::fs::copy(&path, eeg.join(&name)).unwrap();
            }
        }
    }
    find_run(dir, "02", "rsvp").unwrap()
}

#[test]
fn a_marker_before_the_first_sample_and_channels_without_units_epoch_as_mne() {
    // Amplifier software logs events before the first sample (position 0) and older headers
    // leave out the unit (µV). MNE 1.13.2 reads this copy's samples exactly as the original's
    // and keeps the marker as an annotation at 0 s; the epochs come from events.tsv, so
    // MNE's epochs of the original are the reference.
    let dir = tempfile::tempdir().unwrap();
    let run = edited_run(dir.path(), |name, text| match name.ends_with(".vmrk") {
        true => format!(
            "{}\nMk1=New Segment,,1,1,0\nMk2=Comment,Impedance,0,1,0\n",
            text.trim_end()
        ),
        false => text
            .lines()
            .map(|l| match l.starts_with("Ch") {
                true => l.trim_end_matches(",µV").to_string(),
                false => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
    });
    let header = std::fs::read_to_string(&run.recording).unwrap();
    assert!(header.contains("Ch1=Fp1,,0.1\n"), "the unit is left out");
    let prepared = prepare_run(&run, &options()).unwrap();
    assert_eq!(prepared.dropped, 0);
    equals_mne(&prepared, &fixture().join("expected"));
}

#[test]
fn sampling_intervals_giving_no_rate_or_too_high_a_rate_are_refused() {
    // 1e-300 µs (1e306 Hz) overflowed the epoch's length; 0.0001 µs (1e10 Hz) sized the
    // resampler at tens of gigabytes. Each is an error naming the header and the field.
    let dir = tempfile::tempdir().unwrap();
    for interval in ["1e-300", "0", "-1", "NaN", "0.0001"] {
        let run = edited_run(dir.path(), |name, text| match name.ends_with(".vhdr") {
            true => text.replace(
                "SamplingInterval=1000.0",
                &format!("SamplingInterval={interval}"),
            ),
            false => text,
        });
        let err = prepare_run(&run, &options()).unwrap_err().to_string();
        assert!(
            err.contains("sub-02_task-rsvp_eeg.vhdr") && err.contains("SamplingInterval"),
            "{interval}: {err}"
        );
    }
}
