//! `simulate --kind eeg` read back through THINGS-EEG2's reader: the shipped layout with its
//! pickled dicts, images in condition order, disjoint training and test concepts, and the
//! components the module documents (the position component is contralateral; shapes differ at
//! the N1's latency), deterministic per seed.

use brainrecon_datasets::things_eeg2::{Split, ThingsEeg2};
use brainrecon_simulate::eeg::{simulate_eeg, EegOptions, CHANNELS, TIMES};
use std::collections::BTreeSet;

fn small(out: &std::path::Path) -> EegOptions {
    let mut o = EegOptions::new(out);
    o.subjects = 2;
    o.train_concepts = 40;
    o.images_per_concept = 5;
    o.test_concepts = 6;
    o.train_repetitions = 4;
    o.test_repetitions = 3;
    o.image_size = 16;
    o.seed = 3;
    o
}

#[test]
fn written_as_things_eeg2_ships_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    let sim = simulate_eeg(&small(&out)).unwrap();
    let set = ThingsEeg2::open(&out).unwrap();
    assert_eq!(set.subjects().unwrap(), vec!["sub-01", "sub-02"]);
    let meta = set.image_metadata().unwrap();
    assert_eq!(meta.training.len(), 200);
    assert_eq!(meta.test.len(), 6);
    let train: BTreeSet<&str> = meta.training.iter().map(|e| e.concept.as_str()).collect();
    let test: BTreeSet<&str> = meta.test.iter().map(|e| e.concept.as_str()).collect();
    assert!(
        train.is_disjoint(&test),
        "zero-shot: test concepts unseen in training"
    );
    let paths = set.image_paths(&meta, Split::Training).unwrap();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(
        sorted, paths,
        "condition order is the sorted order of the image paths"
    );
    for (entry, truth) in meta.training.iter().zip(&sim.truth.training) {
        assert_eq!((&entry.concept, &entry.file), (&truth.concept, &truth.file));
    }

    let eeg = set.read_preprocessed("sub-01", Split::Training).unwrap();
    assert_eq!(
        (eeg.conditions, eeg.repetitions, eeg.channels()),
        (200, 4, 17)
    );
    assert_eq!(eeg.times.len(), TIMES);
    assert!((eeg.times[30] - 0.1).abs() < 1e-9);
    let test_eeg = set.read_preprocessed("sub-02", Split::Test).unwrap();
    assert_eq!((test_eeg.conditions, test_eeg.repetitions), (6, 3));

    // The position component at 100 ms: left images raise the right hemisphere's channels
    // over the left's, right images the reverse.
    let hemisphere_difference = |position: usize, t: usize| -> f32 {
        let (mut sum, mut n) = (0f32, 0);
        for (c, image) in sim.truth.training.iter().enumerate() {
            if image.scene.position != position {
                continue;
            }
            for r in 0..eeg.repetitions {
                let epoch = eeg.epoch(c, r);
                for (ch, (_, [x, _])) in CHANNELS.iter().enumerate() {
                    let side = if *x > 0.1 {
                        1.0
                    } else if *x < -0.1 {
                        -1.0
                    } else {
                        0.0
                    };
                    sum += side * epoch[ch * TIMES + t];
                }
                n += 1;
            }
        }
        sum / n as f32
    };
    let t100 = 30;
    let (left, right) = (
        hemisphere_difference(0, t100),
        hemisphere_difference(1, t100),
    );
    assert!(
        left > 0.5 && right < -0.5,
        "contralateral: left {left}, right {right}"
    );
    // Before the image (−0.2 to 0 s) there is only noise: no lateralisation.
    let baseline = (0..20)
        .map(|t| (hemisphere_difference(0, t) - hemisphere_difference(1, t)).abs())
        .fold(0f32, f32::max);
    assert!(
        baseline < (left - right) / 3.0,
        "baseline {baseline} against {}",
        left - right
    );
}

#[test]
fn the_same_seed_writes_the_same_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = "eeg_dataset/preprocessed_data/sub-02/preprocessed_eeg_test.npy";
    let read = |name: &str, seed: u64| {
        let out = dir.path().join(name);
        let mut o = small(&out);
        o.seed = seed;
        simulate_eeg(&o).unwrap();
        std::fs::read(out.join(file)).unwrap()
    };
    assert_eq!(read("a", 3), read("b", 3));
    assert_ne!(read("a2", 3), read("c", 4));
}

#[test]
fn sizes_out_of_range_are_usage_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = small(&dir.path().join("x"));
    o.train_concepts = 180;
    o.test_concepts = 20;
    let err = simulate_eeg(&o).err().unwrap().to_string();
    assert!(err.contains("concepts") && err.contains("192"), "{err}");
    let mut o = small(&dir.path().join("y"));
    o.images_per_concept = 6;
    let err = simulate_eeg(&o).err().unwrap().to_string();
    assert!(err.contains("images per concept"), "{err}");
    assert!(!dir.path().join("x").exists() && !dir.path().join("y").exists());
}
