//! The EEG decoders with the project's image embeddings (shapes-blip's pooled image tower) on
//! `simulate --kind eeg`: both retrieve unseen concepts above chance, and the contrastive
//! encoder beats the ridge baseline, as NICE and ATM report on THINGS-EEG2.

use brainrecon_datasets::things_eeg2::{Split, ThingsEeg2};
use brainrecon_routes::eeg::embed::ImageEmbedder;
use brainrecon_routes::eeg::nice_train::{
    encode_conditions, train_nice, EncoderKind, NiceTrainOptions,
};
use brainrecon_routes::eeg::retrieval::zero_shot;
use brainrecon_routes::eeg::ridge_decoder::{RidgeDecoder, RidgeDecoderOptions};
use brainrecon_simulate::eeg::{simulate_eeg, EegOptions};

#[test]
fn the_contrastive_encoder_beats_ridge_on_image_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    let mut options = EegOptions::new(&out);
    options.subjects = 1;
    options.seed = 5;
    let sim = simulate_eeg(&options).unwrap();
    let set = ThingsEeg2::open(&out).unwrap();
    let meta = set.image_metadata().unwrap();
    let embedder = ImageEmbedder::load("shapes-blip").unwrap();
    let d = embedder.width();
    let y = embedder
        .embed(&set.image_paths(&meta, Split::Training).unwrap(), 64)
        .unwrap();
    let candidates = embedder
        .embed(&set.image_paths(&meta, Split::Test).unwrap(), 64)
        .unwrap();
    let train = set.read_preprocessed("sub-01", Split::Training).unwrap();
    let test = set.read_preprocessed("sub-01", Split::Test).unwrap();
    let groups: Vec<i64> = sim
        .truth
        .training
        .iter()
        .map(|i| i.concept[..5].parse().unwrap())
        .collect();

    let ridge = RidgeDecoder::fit(&train, &y, d, &groups, &RidgeDecoderOptions::default()).unwrap();
    let r = zero_shot(
        &ridge.predict(&test).unwrap(),
        &candidates,
        d,
        &[2, 4],
        20,
        0,
    )
    .unwrap();
    let opts = NiceTrainOptions {
        epochs: 120,
        ..NiceTrainOptions::default()
    };
    let nice = train_nice(EncoderKind::Nice, &train, &y, d, &opts, None, |_, _| {}).unwrap();
    let n = zero_shot(
        &encode_conditions(&nice.encoder, &test).unwrap(),
        &candidates,
        d,
        &[2, 4],
        20,
        0,
    )
    .unwrap();
    for (name, s) in [("ridge", &r), ("NICE", &n)] {
        eprintln!(
            "{name} (shapes-blip): top-1 {:.3}, top-5 {:.3}, 2-way {:.3}, 4-way {:.3}",
            s.top1, s.top5, s.ways[0].top1, s.ways[1].top1
        );
    }
    assert!(
        r.ways[0].top1 > 0.55 && r.top5 > r.chance_top5,
        "ridge: {r:?}"
    );
    assert!(
        n.ways[0].top1 > 0.75 && n.top5 > 3.0 * n.chance_top5,
        "NICE: {n:?}"
    );
    assert!(
        n.top1 > r.top1 && n.top5 > r.top5 && n.ways[0].top1 > r.ways[0].top1,
        "NICE {n:?} against ridge {r:?}"
    );
}
