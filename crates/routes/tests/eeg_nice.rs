//! NICE's contrastive encoder trained on `simulate --kind eeg` with the project's nn path: the
//! loss falls, unseen test concepts are retrieved far above chance, and a seed reproduces the
//! run bit for bit. ATM's encoder (channel attention in front) trains on the same path. The
//! project's tape (the default engine) and candle's autograd agree over the first steps.

use brainrecon_datasets::things_eeg2::{Split, ThingsEeg2};
use brainrecon_routes::eeg::nice_train::{
    encode_conditions, train_nice, EncoderKind, NiceTrainOptions, TrainEngine,
};
use brainrecon_routes::eeg::retrieval::zero_shot;
use brainrecon_simulate::eeg::{simulate_eeg, EegOptions, ImageTruth};

fn attributes(images: &[ImageTruth]) -> Vec<f32> {
    images.iter().flat_map(|i| i.scene.one_hot()).collect()
}

#[test]
fn nice_retrieves_unseen_concepts_and_reproduces() {
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
    let (y, d) = (attributes(&sim.truth.training), 21);
    let opts = NiceTrainOptions {
        epochs: 120,
        ..NiceTrainOptions::default()
    };
    let started = std::time::Instant::now();
    let trained = train_nice(EncoderKind::Nice, &train, &y, d, &opts, None, |_, _| {}).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let losses = &trained.epoch_losses;
    let decoded = encode_conditions(&trained.encoder, &test).unwrap();
    let scores = zero_shot(&decoded, &attributes(&sim.truth.test), d, &[2, 4], 20, 0).unwrap();
    eprintln!(
        "NICE ({} epochs, {seconds:.1} s): loss {:.3} → {:.3}; top-1 {:.3}, top-5 {:.3}, 2-way {:.3}, 4-way {:.3}",
        losses.len(),
        losses[0],
        losses[losses.len() - 1],
        scores.top1,
        scores.top5,
        scores.ways[0].top1,
        scores.ways[1].top1
    );
    assert!(losses[losses.len() - 1] < losses[0] - 2.0, "{losses:?}");
    assert!(scores.top1 > 8.0 * scores.chance_top1, "{scores:?}");
    assert!(scores.ways[0].top1 > 0.85, "{scores:?}");

    // A seed reproduces a run bit for bit (two epochs suffice to show it).
    let short = NiceTrainOptions {
        epochs: 2,
        ..opts.clone()
    };
    let run = || {
        train_nice(EncoderKind::Nice, &train, &y, d, &short, None, |_, _| {})
            .unwrap()
            .epoch_losses
    };
    assert_eq!(run(), run(), "same seed, same run");
    let other = NiceTrainOptions { seed: 1, ..short };
    assert_ne!(
        train_nice(EncoderKind::Nice, &train, &y, d, &other, None, |_, _| {})
            .unwrap()
            .epoch_losses,
        run()
    );
}

#[test]
fn an_interrupted_run_resumes_to_the_same_bits() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    let mut options = EegOptions::new(&out);
    options.subjects = 1;
    options.image_size = 16;
    options.train_concepts = 24;
    options.seed = 6;
    let sim = simulate_eeg(&options).unwrap();
    let set = ThingsEeg2::open(&out).unwrap();
    let train = set.read_preprocessed("sub-01", Split::Training).unwrap();
    let test = set.read_preprocessed("sub-01", Split::Test).unwrap();
    let (y, d) = (attributes(&sim.truth.training), 21);
    let four = NiceTrainOptions {
        epochs: 4,
        batch: 64,
        checkpoint_every: 2,
        ..NiceTrainOptions::default()
    };
    let whole = train_nice(EncoderKind::Nice, &train, &y, d, &four, None, |_, _| {}).unwrap();
    // A run stopped after its second epoch's checkpoint, then the same command again.
    let work = dir.path().join("work");
    let two = NiceTrainOptions {
        epochs: 2,
        ..four.clone()
    };
    train_nice(
        EncoderKind::Nice,
        &train,
        &y,
        d,
        &two,
        Some(&work),
        |_, _| {},
    )
    .unwrap();
    let mut seen = Vec::new();
    let resumed = train_nice(
        EncoderKind::Nice,
        &train,
        &y,
        d,
        &four,
        Some(&work),
        |e, _| seen.push(e),
    )
    .unwrap();
    assert_eq!(resumed.resumed_from, 2);
    assert_eq!(seen, [3, 4], "only the epochs left run");
    assert_eq!(resumed.epoch_losses, whole.epoch_losses);
    assert_eq!(
        encode_conditions(&resumed.encoder, &test).unwrap(),
        encode_conditions(&whole.encoder, &test).unwrap(),
        "the same weights and batch-norm statistics"
    );
    // A checkpoint past the epochs asked for is refused, not silently used.
    let one = NiceTrainOptions { epochs: 1, ..four };
    let err = train_nice(
        EncoderKind::Nice,
        &train,
        &y,
        d,
        &one,
        Some(&work),
        |_, _| {},
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("past --epochs 1"), "{err}");
}

#[test]
fn atm_trains_on_the_same_path_and_retrieves_unseen_concepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    let mut options = EegOptions::new(&out);
    options.subjects = 1;
    options.image_size = 16;
    options.train_concepts = 24;
    options.seed = 5;
    let sim = simulate_eeg(&options).unwrap();
    let set = ThingsEeg2::open(&out).unwrap();
    let train = set.read_preprocessed("sub-01", Split::Training).unwrap();
    let test = set.read_preprocessed("sub-01", Split::Test).unwrap();
    let (y, d) = (attributes(&sim.truth.training), 21);
    // ATM's convolutions run over its 250-wide tokens (NICE's here over 100 samples), so a
    // trial costs several of NICE's: fewer concepts and epochs keep the test short.
    let opts = NiceTrainOptions {
        epochs: 25,
        batch: 64,
        ..NiceTrainOptions::default()
    };
    let started = std::time::Instant::now();
    let trained = train_nice(EncoderKind::Atm, &train, &y, d, &opts, None, |_, _| {}).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let losses = &trained.epoch_losses;
    let decoded = encode_conditions(&trained.encoder, &test).unwrap();
    let scores = zero_shot(&decoded, &attributes(&sim.truth.test), d, &[2, 4], 20, 0).unwrap();
    eprintln!(
        "ATM ({} epochs, {seconds:.1} s): loss {:.3} → {:.3}; top-1 {:.3}, top-5 {:.3}, 2-way {:.3}, 4-way {:.3}",
        losses.len(),
        losses[0],
        losses[losses.len() - 1],
        scores.top1,
        scores.top5,
        scores.ways[0].top1,
        scores.ways[1].top1
    );
    assert!(losses[losses.len() - 1] < losses[0] - 0.5, "{losses:?}");
    assert!(scores.top1 > 3.0 * scores.chance_top1, "{scores:?}");
    assert!(scores.ways[0].top1 > 0.7, "{scores:?}");
}

#[test]
fn the_tape_and_candle_engines_agree_over_the_first_steps() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    let mut options = EegOptions::new(&out);
    options.subjects = 1;
    options.image_size = 16;
    options.train_concepts = 24;
    options.seed = 7;
    let sim = simulate_eeg(&options).unwrap();
    let set = ThingsEeg2::open(&out).unwrap();
    let train = set.read_preprocessed("sub-01", Split::Training).unwrap();
    let (y, d) = (attributes(&sim.truth.training), 21);
    assert_eq!(NiceTrainOptions::default().engine, TrainEngine::Tape);
    for kind in [EncoderKind::Nice, EncoderKind::Atm] {
        // one epoch in batches of 16: several steps, each after the previous step's update
        let mut losses = Vec::new();
        for engine in [TrainEngine::Tape, TrainEngine::Candle] {
            let opts = NiceTrainOptions {
                epochs: 1,
                batch: 16,
                engine,
                ..NiceTrainOptions::default()
            };
            let trained = train_nice(kind, &train, &y, d, &opts, None, |_, _| {}).unwrap();
            losses.push(trained.epoch_losses[0]);
        }
        let (tape, candle) = (losses[0], losses[1]);
        assert!(
            (tape - candle).abs() < 1e-5 * candle.abs(),
            "{}: mean loss {tape} on the tape, {candle} on candle",
            kind.name()
        );
    }
}
