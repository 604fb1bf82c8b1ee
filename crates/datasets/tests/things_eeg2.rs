//! THINGS-EEG2 as it ships (tools/fixtures/things_eeg2_shipped.py: NumPy 1.x pickles of the
//! dataset's own dicts, its tree and image folders): the preprocessed epochs in condition and
//! repetition order, the raw recording, the image metadata and paths; NICE's and ATM's 250 Hz
//! re-preprocessing as ATM's users download it (tools/fixtures/things_eeg2_nice_layout.py:
//! `pickle.dump` without a `.npy` header, 300 times for 250 samples); and the bad inputs the
//! route must refuse by file and key.

use brainrecon_datasets::things_eeg2::{read_preprocessed, read_raw, Split, ThingsEeg2};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/things_eeg2")
}

const CHANNELS: [&str; 17] = [
    "Pz", "P3", "P7", "O1", "Oz", "O2", "P4", "P8", "P1", "P5", "PO7", "PO3", "POz", "PO4", "PO8",
    "P6", "P2",
];

#[test]
fn preprocessed_epochs_come_in_condition_and_repetition_order() {
    let set = ThingsEeg2::open(&root()).unwrap();
    assert_eq!(set.subjects().unwrap(), vec!["sub-01", "sub-02"]);
    for (split, conditions, repetitions) in [(Split::Training, 6, 4), (Split::Test, 2, 8)] {
        let eeg = set.read_preprocessed("sub-01", split).unwrap();
        assert_eq!((eeg.conditions, eeg.repetitions), (conditions, repetitions));
        assert_eq!(eeg.ch_names, CHANNELS);
        assert_eq!(eeg.times.len(), 100);
        assert!((eeg.times[0] + 0.2).abs() < 1e-12 && (eeg.times[99] - 0.79).abs() < 1e-12);
        // The fixture marks each trial: first sample condition + repetition / 1000, last the
        // channel index.
        for c in 0..conditions {
            for r in 0..repetitions {
                let epoch = eeg.epoch(c, r);
                for ch in 0..17 {
                    let row = &epoch[ch * 100..(ch + 1) * 100];
                    assert!((row[0] - (c as f32 + r as f32 / 1000.0)).abs() < 1e-6);
                    assert_eq!(row[99], ch as f32);
                }
            }
        }
    }
}

#[test]
fn images_follow_the_metadata_in_condition_order() {
    let set = ThingsEeg2::open(&root()).unwrap();
    let meta = set.image_metadata().unwrap();
    assert_eq!(meta.training.len(), 6);
    assert_eq!(meta.training[0].concept, "00001_aardvark");
    assert_eq!(meta.training[5].file, "accordion_03s.jpg");
    assert_eq!(meta.test[0].concept, "00003_aircraft_carrier");
    let paths = set.image_paths(&meta, Split::Training).unwrap();
    assert!(paths[2].ends_with("training_images/00002_abacus/abacus_01b.jpg"));
    assert_eq!(set.image_paths(&meta, Split::Test).unwrap().len(), 2);
    // Sorted image paths are the metadata's order, as the dataset's own code reads them.
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(sorted, paths);
}

#[test]
fn raw_recording_keeps_its_channels_and_events() {
    let set = ThingsEeg2::open(&root()).unwrap();
    let raw = read_raw(&set.raw_path("sub-01", 1, Split::Training)).unwrap();
    assert_eq!(raw.ch_names.len(), 64);
    assert_eq!(raw.ch_names[63], "stim");
    assert_eq!(raw.ch_types[63], "stim");
    assert_eq!(raw.sfreq, 1000.0);
    assert_eq!(raw.samples, 600);
    let stim = &raw.data[63 * 600..];
    let events: Vec<(usize, f64)> = stim
        .iter()
        .enumerate()
        .filter(|(_, v)| **v != 0.0)
        .map(|(i, v)| (i, *v))
        .collect();
    assert_eq!(events, vec![(100, 1.0), (300, 2.0), (500, 99999.0)]);
}

#[test]
fn names_that_disagree_with_the_data_are_refused_by_file_and_key() {
    let set = ThingsEeg2::open(&root()).unwrap();
    let path = set.preprocessed_path("sub-02", Split::Training);
    let err = read_preprocessed(&path).unwrap_err().to_string();
    assert!(
        err.contains("sub-02") && err.contains("preprocessed_eeg_training.npy"),
        "{err}"
    );
    assert!(
        err.contains("preprocessed_eeg_data") && err.contains("16 channels"),
        "{err}"
    );
}

/// Writes `dict` as np.save would (format 1.0, |O) with a protocol-2 pickle built here.
fn write_pickled_dict(path: &Path, pickle: &[u8]) {
    let mut header = String::from("{'descr': '|O', 'fortran_order': False, 'shape': (), }");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(pickle);
    std::fs::write(path, bytes).unwrap();
}

/// A protocol-2 pickle of a 0-d object array holding {key: "x"} for each key.
fn dict_pickle(keys: &[&str]) -> Vec<u8> {
    let mut p = b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R(K\x01)cnumpy\ndtype\nX\x02\x00\x00\x00O8\x89\x88\x87R(K\x03X\x01\x00\x00\x00|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tb\x89]}".to_vec();
    for key in keys {
        p.push(b'X');
        p.extend_from_slice(&(key.len() as u32).to_le_bytes());
        p.extend_from_slice(key.as_bytes());
        p.extend_from_slice(b"X\x01\x00\x00\x00xs");
    }
    p.extend_from_slice(b"atb.");
    p
}

#[test]
fn missing_keys_other_types_and_missing_images_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("preprocessed_eeg_training.npy");
    write_pickled_dict(&path, &dict_pickle(&["ch_names", "times"]));
    let err = read_preprocessed(&path).unwrap_err().to_string();
    assert!(err.contains("preprocessed_eeg_training.npy"), "{err}");
    assert!(
        err.contains("key 'ch_names'") || err.contains("ch_names"),
        "{err}"
    );

    write_pickled_dict(&path, &dict_pickle(&["times"]));
    let err = read_preprocessed(&path).unwrap_err().to_string();
    assert!(
        err.contains("key 'ch_names'") && err.contains("keys [\"times\"]"),
        "{err}"
    );

    // A pickle naming anything but NumPy's reconstructors is refused, never run.
    let evil = b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00echo\x85R.";
    write_pickled_dict(&path, evil);
    let err = read_preprocessed(&path).unwrap_err().to_string();
    assert!(
        err.contains("posix.system") && err.contains("refused"),
        "{err}"
    );

    // An image listed in the metadata but absent from its concept's folder.
    let copy = dir.path().join("set");
    copy_tree(&root().join("image_set"), &copy.join("image_set"));
    std::fs::create_dir_all(copy.join("eeg_dataset/preprocessed_data")).unwrap();
    std::fs::remove_file(copy.join("image_set/training_images/00002_abacus/abacus_02s.jpg"))
        .unwrap();
    let set = ThingsEeg2::open(&copy).unwrap();
    let meta = set.image_metadata().unwrap();
    let err = set
        .image_paths(&meta, Split::Training)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("abacus_02s.jpg") && err.contains("00002_abacus"),
        "{err}"
    );
    assert!(set.image_paths(&meta, Split::Test).is_ok());

    let err = ThingsEeg2::open(dir.path().join("nothing").as_path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("preprocessed_data"), "{err}");
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn subjects_stack_as_more_repetitions_of_the_same_conditions() {
    use brainrecon_datasets::things_eeg2::PreprocessedEeg;
    use std::path::PathBuf;
    // Values mark (subject, condition, repetition, sample).
    let part = |s: usize, reps: usize| PreprocessedEeg {
        data: (0..2 * reps * 2 * 3)
            .map(|i| (s * 1000 + i) as f32)
            .collect(),
        conditions: 2,
        repetitions: reps,
        ch_names: vec!["O1".into(), "O2".into()],
        times: vec![0.0, 0.01, 0.02],
    };
    let names = [PathBuf::from("a.npy"), PathBuf::from("b.npy")];
    let (a, b) = (part(1, 2), part(2, 3));
    let stacked = PreprocessedEeg::stack_repetitions(&[a.clone(), b.clone()], &names).unwrap();
    assert_eq!((stacked.conditions, stacked.repetitions), (2, 5));
    for c in 0..2 {
        for r in 0..2 {
            assert_eq!(stacked.epoch(c, r), a.epoch(c, r));
        }
        for r in 0..3 {
            assert_eq!(stacked.epoch(c, 2 + r), b.epoch(c, r));
        }
    }
    let mut other = part(2, 3);
    other.ch_names[1] = "Oz".into();
    let err = PreprocessedEeg::stack_repetitions(&[a, other], &names)
        .unwrap_err()
        .to_string();
    assert!(err.contains("b.npy") && err.contains("ch_names"), "{err}");
}

#[test]
fn nice_and_atm_pickle_dump_files_read_as_their_loaders_read_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/things_eeg2_nice");
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("expected.json")).unwrap())
            .unwrap();
    // The folder as ATM's users have it: Preprocessed_data_250Hz/sub-XX.
    let set = ThingsEeg2::open(&root).unwrap();
    assert_eq!(set.subjects().unwrap(), vec!["sub-01"]);
    for (split, name) in [(Split::Training, "training"), (Split::Test, "test")] {
        let want = &want[name];
        let path = set.preprocessed_path("sub-01", split);
        assert!(path.ends_with(format!(
            "Preprocessed_data_250Hz/sub-01/preprocessed_eeg_{name}.npy"
        )));
        // A raw pickle stream of protocol 4, not a .npy file.
        assert_eq!(std::fs::read(&path).unwrap()[..2], [0x80, 4]);
        let eeg = set.read_preprocessed("sub-01", split).unwrap();
        let shape: Vec<usize> = want["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(
            vec![
                eeg.conditions,
                eeg.repetitions,
                eeg.channels(),
                eeg.times.len()
            ],
            shape
        );
        assert_eq!(shape[2..], [63, 250]);
        let names: Vec<&str> = want["ch_names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        assert_eq!(eeg.ch_names, names);
        // times[50:], as the loaders slice it: 0 to 0.996 s at 250 Hz.
        let times: Vec<f64> = want["times"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_f64().unwrap())
            .collect();
        assert_eq!(eeg.times, times);
        assert!(eeg.times[0].abs() < 1e-12);
        assert_eq!(eeg.sampling_rate(), 250.0);
        // Values are multiples of 1/8: exact in f32, so sums and probes compare exactly.
        for (c, sums) in want["epoch_sums"].as_array().unwrap().iter().enumerate() {
            for (r, sum) in sums.as_array().unwrap().iter().enumerate() {
                let got: f64 = eeg.epoch(c, r).iter().map(|&v| v as f64).sum();
                assert_eq!(
                    got,
                    sum.as_f64().unwrap(),
                    "{name} condition {c} repetition {r}"
                );
            }
        }
        for probe in want["probes"].as_array().unwrap() {
            let p: Vec<f64> = probe
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let (c, r, ch, t) = (p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize);
            assert_eq!(eeg.epoch(c, r)[ch * 250 + t] as f64, p[4], "{name} {probe}");
        }
    }
}

#[test]
fn times_longer_than_the_epochs_must_end_with_them_from_the_onset() {
    use brainrecon_datasets::things_eeg2::write_preprocessed;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("preprocessed_eeg_test.npy");
    let names = vec!["O1".to_string(), "O2".to_string()];
    let data = vec![0.5; 2 * 2 * 4];
    // 6 times from -0.2 s at 10 Hz for 4 samples: the last 4 start at 0 s, as NICE crops.
    let times: Vec<f64> = (0..6).map(|i| -0.2 + i as f64 / 10.0).collect();
    write_preprocessed(&path, &data, [1, 2, 2, 4], &names, &times).unwrap();
    let eeg = read_preprocessed(&path).unwrap();
    assert_eq!(eeg.times.len(), 4);
    assert!(eeg.times[0].abs() < 1e-12);
    // 6 times from -0.3 s: the last 4 start at -0.1 s, not at the onset; refused by name.
    let times: Vec<f64> = (0..6).map(|i| -0.3 + i as f64 / 10.0).collect();
    write_preprocessed(&path, &data, [1, 2, 2, 4], &names, &times).unwrap();
    let err = read_preprocessed(&path).unwrap_err().to_string();
    assert!(
        err.contains("preprocessed_eeg_test.npy") && err.contains("6 times (times)"),
        "{err}"
    );
}

#[test]
fn a_shared_channel_name_is_not_copied_past_the_memory_limit() {
    // ch_names: one 1 MB str referenced 40,000 times (memo BINGET + APPEND), 40 GB as
    // separate strings: refused by file and key before it is copied, not an abort.
    let mut p = b"\x80\x04}(X\x08\x00\x00\x00ch_names](\x8d".to_vec();
    p.extend_from_slice(&(1u64 << 20).to_le_bytes());
    p.extend(std::iter::repeat_n(b'O', 1 << 20));
    p.extend_from_slice(b"q\x01");
    for _ in 1..40_000 {
        p.extend_from_slice(b"h\x01");
    }
    p.extend_from_slice(b"eX\x05\x00\x00\x00times]u.");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("preprocessed_eeg_training.npy");
    std::fs::write(&path, &p).unwrap();
    let err = read_preprocessed(&path).unwrap_err().to_string();
    assert!(
        err.contains("preprocessed_eeg_training.npy")
            && err.contains("ch_names")
            && err.contains("BRAINRECON_MAX_ARRAY_BYTES"),
        "{err}"
    );
}
