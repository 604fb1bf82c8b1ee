//! The EEG route's linear baseline on `simulate --kind eeg`: ridge from the epochs to the
//! images' attribute vectors (the truth's, standing in for an image encoder's embedding),
//! scored by zero-shot retrieval of test concepts the fit never saw, far above chance; the same
//! decoder on shuffled training labels stays near chance.

use brainrecon_datasets::things_eeg2::{Split, ThingsEeg2};
use brainrecon_routes::eeg::retrieval::zero_shot;
use brainrecon_routes::eeg::ridge_decoder::{RidgeDecoder, RidgeDecoderOptions};
use brainrecon_simulate::eeg::{simulate_eeg, EegOptions, ImageTruth};

fn attributes(images: &[ImageTruth]) -> Vec<f32> {
    images.iter().flat_map(|i| i.scene.one_hot()).collect()
}

fn concepts(images: &[ImageTruth]) -> Vec<i64> {
    images
        .iter()
        .map(|i| i.concept[..5].parse::<i64>().unwrap())
        .collect()
}

#[test]
fn ridge_retrieves_unseen_concepts_far_above_chance() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    let mut options = EegOptions::new(&out);
    options.subjects = 1;
    options.image_size = 16;
    options.seed = 5;
    let sim = simulate_eeg(&options).unwrap();
    let set = ThingsEeg2::open(&out).unwrap();
    let train = set.read_preprocessed("sub-01", Split::Training).unwrap();
    let test = set.read_preprocessed("sub-01", Split::Test).unwrap();
    let (y, d) = (
        attributes(&sim.truth.training),
        sim.truth.training[0].scene.one_hot().len(),
    );
    let groups = concepts(&sim.truth.training);
    let opts = RidgeDecoderOptions::default();

    let decoder = RidgeDecoder::fit(&train, &y, d, &groups, &opts).unwrap();
    let decoded = decoder.predict(&test).unwrap();
    let candidates = attributes(&sim.truth.test);
    let scores = zero_shot(&decoded, &candidates, d, &[2, 4], 20, 0).unwrap();
    eprintln!(
        "ridge: top-1 {:.3}, top-5 {:.3}, 2-way {:.3}, 4-way {:.3}",
        scores.top1, scores.top5, scores.ways[0].top1, scores.ways[1].top1
    );
    assert_eq!(scores.n, 32);
    assert!(
        scores.top1 > 5.0 * scores.chance_top1 && scores.top5 > 0.5,
        "{scores:?}"
    );
    assert!(scores.ways[0].top1 > 0.85, "{scores:?}");

    // Shuffled labels: the same fit learns nothing that transfers.
    let mut shuffled = y.clone();
    let n = train.conditions;
    for i in 0..n {
        let j = (i * 7 + 3) % n;
        for k in 0..d {
            shuffled.swap(i * d + k, j * d + k);
        }
    }
    let null = RidgeDecoder::fit(&train, &shuffled, d, &groups, &opts).unwrap();
    let null_scores =
        zero_shot(&null.predict(&test).unwrap(), &candidates, d, &[2], 20, 0).unwrap();
    eprintln!(
        "shuffled: top-1 {:.3}, 2-way {:.3}",
        null_scores.top1, null_scores.ways[0].top1
    );
    assert!(null_scores.ways[0].top1 < 0.75, "{null_scores:?}");
    assert!(
        null_scores.top1 < scores.top1,
        "{null_scores:?} against {scores:?}"
    );
}

#[test]
fn a_window_outside_the_epoch_and_mismatched_embeddings_are_usage_errors() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets/tests/fixtures/things_eeg2");
    let set = ThingsEeg2::open(&root).unwrap();
    let train = set.read_preprocessed("sub-01", Split::Training).unwrap();
    let y = vec![0.5f32; train.conditions * 3];
    let groups: Vec<i64> = (0..train.conditions as i64).collect();
    let opts = RidgeDecoderOptions {
        window: Some(90..120),
        ..RidgeDecoderOptions::default()
    };
    let err = RidgeDecoder::fit(&train, &y, 3, &groups, &opts)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("--window") && err.contains("0..100"), "{err}");
    let err = RidgeDecoder::fit(&train, &y[..5], 3, &groups, &RidgeDecoderOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("embeddings"), "{err}");
}
