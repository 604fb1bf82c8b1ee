//! THINGS-EEG2 as it ships (tools/fixtures/things_eeg2_shipped.py: NumPy 1.x pickles of the
//! dataset's own dicts, its tree and image folders): the preprocessed epochs in condition and
//! repetition order, the raw recording, the image metadata and paths; and the bad inputs the
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
