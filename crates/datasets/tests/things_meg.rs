//! THINGS-MEG's derivatives layout on the MNE-written fixture of brainrecon-formats
//! (tools/fixtures/things_meg_fif.py): a participant split into three parts, another unsplit;
//! the epochs grouped by image into training (`exp`) and test halves with catch trials left
//! out, and written into THINGS-EEG2's layout that the EEG route reads.

use brainrecon_datasets::things_eeg2::{Split, ThingsEeg2};
use brainrecon_datasets::things_meg::{
    prepare_participant, trials, write_things_eeg2, MegOptions, ThingsMeg, TrialKind,
};
use brainrecon_formats::fif;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../formats/tests/fixtures/fif")
}

/// ds004212's tree: P1 split in three parts, P2 the unsplit copy.
fn tree() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ds004212");
    let pre = root.join("derivatives/preprocessed");
    std::fs::create_dir_all(&pre).unwrap();
    for name in [
        "preprocessed_P1-epo.fif",
        "preprocessed_P1-epo-1.fif",
        "preprocessed_P1-epo-2.fif",
    ] {
        std::fs::copy(fixtures().join(name), pre.join(name)).unwrap();
    }
    std::fs::copy(
        fixtures().join("things_unsplit-epo.fif"),
        pre.join("preprocessed_P2-epo.fif"),
    )
    .unwrap();
    std::fs::write(pre.join("P1_cosmofile.mat"), b"not epochs").unwrap();
    (dir, root)
}

#[test]
fn participants_and_their_trials() {
    let (_dir, root) = tree();
    let set = ThingsMeg::open(&root).unwrap();
    assert_eq!(set.participants().unwrap(), vec!["P1", "P2"]);
    let epochs = fif::read_epochs_header(&set.epochs_path("P1")).unwrap();
    assert_eq!(epochs.files.len(), 3);
    let trials = trials(&epochs).unwrap();
    let kinds: Vec<TrialKind> = trials.iter().map(|t| t.kind).collect();
    use TrialKind::{Catch, Test, Training};
    assert_eq!(
        kinds,
        vec![Training, Test, Training, Catch, Training, Test, Training, Test, Training, Test]
    );
    assert_eq!(
        trials[1].image.as_deref(),
        Some("images_test_meg/drawer/drawer_07s.jpg")
    );
    assert_eq!(trials[1].code, 6312);
    assert_eq!(trials[1].session.as_deref(), Some("1"));
    assert_eq!(trials[3].image, None);
    assert_eq!(trials[3].code, 999_999);
    // The folder of the files, or derivatives/, opens too; a folder without them does not.
    assert!(ThingsMeg::open(&root.join("derivatives")).is_ok());
    let err = ThingsMeg::open(&root.join("derivatives/..").join("nothing"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("preprocessed_P1-epo.fif"), "{err}");
}

#[test]
fn epochs_grouped_by_image_into_training_and_test() {
    let (_dir, root) = tree();
    let set = ThingsMeg::open(&root).unwrap();
    let path = set.epochs_path("P1");
    let prepared = prepare_participant(&path, &MegOptions::default()).unwrap();
    let all = fif::read_epochs(&path).unwrap();
    assert_eq!(
        prepared.training_images,
        vec![
            "images_meg/carrot/carrot_12n.jpg",
            "images_meg/flan/flan_03s.jpg",
            "images_meg/gate/gate_06s.jpg",
            "images_meg/swing/swing_02s.jpg",
            "images_meg/wheelbarrow/wheelbarrow_05s.jpg",
        ]
    );
    assert_eq!(
        prepared.test_images,
        vec![
            "images_test_meg/drawer/drawer_07s.jpg",
            "images_test_meg/umbrella/umbrella_09s.jpg",
        ]
    );
    assert_eq!(prepared.catch, 1);
    // MEG channels that are not bad: MLC11, MRT51, MZP01 (MLO11 is bad).
    assert_eq!(
        prepared.training.ch_names,
        vec!["MLC11-1609", "MRT51-1609", "MZP01-1609"]
    );
    assert_eq!(
        (prepared.training.conditions, prepared.training.repetitions),
        (5, 1)
    );
    assert_eq!(
        (prepared.test.conditions, prepared.test.repetitions),
        (2, 2)
    );
    assert_eq!(prepared.training.times, all.times());
    // Each condition's repetitions are the epochs of its image, in recording order.
    let epoch_of = |e: usize| -> Vec<f32> {
        [0usize, 2, 3]
            .iter()
            .flat_map(|&c| all.epoch(e)[c * all.n_times..(c + 1) * all.n_times].to_vec())
            .collect()
    };
    // Saved epochs: 0 wheelbarrow, 1 drawer (test), 2 flan, 3 catch, 4 gate, 5 umbrella (test),
    // 6 carrot, 7 drawer (test), 8 swing, 9 umbrella (test).
    for (condition, epoch) in [(0, 6), (1, 2), (2, 4), (3, 8), (4, 0)] {
        assert_eq!(
            prepared.training.epoch(condition, 0),
            &epoch_of(epoch)[..],
            "{condition}"
        );
    }
    for (condition, repetition, epoch) in [(0, 0, 1), (0, 1, 7), (1, 0, 5), (1, 1, 9)] {
        assert_eq!(
            prepared.test.epoch(condition, repetition),
            &epoch_of(epoch)[..],
            "{condition} {repetition}"
        );
    }
    // A window of 0–0.5 s.
    let window = MegOptions {
        tmin: Some(0.0),
        tmax: Some(0.5),
        ..MegOptions::default()
    };
    let cropped = prepare_participant(&path, &window).unwrap();
    assert_eq!(cropped.test.times.len(), 101);
    assert!(cropped.test.times[0].abs() < 1e-12);
    assert_eq!(
        cropped.test.epoch(1, 1)[..101],
        prepared.test.epoch(1, 1)[20..121]
    );
}

#[test]
fn a_participant_written_as_things_eeg2_reads_back() {
    let (dir, root) = tree();
    let set = ThingsMeg::open(&root).unwrap();
    let prepared = prepare_participant(&set.epochs_path("P2"), &MegOptions::default()).unwrap();
    let out = dir.path().join("things_eeg2_layout");
    write_things_eeg2(&prepared, &out, "sub-02").unwrap();
    let layout = ThingsEeg2::open(&out).unwrap();
    assert_eq!(layout.subjects().unwrap(), vec!["sub-02"]);
    let test = layout.read_preprocessed("sub-02", Split::Test).unwrap();
    assert_eq!(test.data, prepared.test.data);
    assert_eq!(test.ch_names, prepared.test.ch_names);
    assert_eq!((test.conditions, test.repetitions), (2, 2));
    assert_eq!(test.sampling_rate(), 200.0);
    let training = layout.read_preprocessed("sub-02", Split::Training).unwrap();
    assert_eq!(training.data, prepared.training.data);
    let metadata = layout.image_metadata().unwrap();
    assert_eq!(metadata.test[1].concept, "umbrella");
    assert_eq!(metadata.test[1].file, "umbrella_09s.jpg");
    assert_eq!(metadata.training.len(), 5);
}

#[test]
fn epochs_without_trial_types_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("preprocessed_P7-epo.fif");
    // The float64 fixture has no metadata.
    std::fs::copy(fixtures().join("double-epo.fif"), &path).unwrap();
    let err = prepare_participant(&path, &MegOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("preprocessed_P7-epo.fif") && err.contains("trial_type"),
        "{err}"
    );
}
