//! Two-way identification against a numpy transcription of MindEye's code,
//! plus statistical checks of the n-way score (its RNG is Rust's own, so it
//! has no Python reference).

mod common;

use brainrecon_metrics::identification::{
    correlation_matrix, n_way_top_k_identification, two_way_identification,
    two_way_identification_per_prediction, NWaySettings,
};
use common::load;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    n: usize,
    d: usize,
    preds: Vec<f32>,
    truths: Vec<f32>,
    expected_score: f64,
    expected_per_prediction: Vec<f64>,
}

fn cases() -> Vec<Case> {
    let fx: Fixture = load("identification.json");
    fx.cases
}

#[test]
fn two_way_matches_mindeye() {
    let cases = cases();
    // The fixture must exercise imperfect scores, not only 1.0.
    assert!(cases.iter().any(|c| c.expected_score < 0.9));
    for c in &cases {
        let score = two_way_identification(&c.preds, &c.truths, c.n, c.d).unwrap();
        // Counts over (n - 1): equal up to the rounding of one division.
        assert!(
            (score - c.expected_score).abs() < 1e-12,
            "{}: got {score}, MindEye {}",
            c.name,
            c.expected_score
        );
        let per = two_way_identification_per_prediction(&c.preds, &c.truths, c.n, c.d).unwrap();
        assert_eq!(per.len(), c.n);
        for (i, (a, b)) in per.iter().zip(&c.expected_per_prediction).enumerate() {
            assert!(
                (a - b).abs() < 1e-12,
                "{} prediction {i}: got {a}, MindEye {b}",
                c.name
            );
        }
    }
}

/// Swapping the roles of predictions and truths compares along the other
/// axis; on the noisier fixtures that gives a different number, so the
/// test above really pins down which axis MindEye uses.
#[test]
fn axis_matters_on_fixture() {
    let differs = cases().iter().any(|c| {
        let per_pred =
            two_way_identification_per_prediction(&c.preds, &c.truths, c.n, c.d).unwrap();
        let per_truth =
            two_way_identification_per_prediction(&c.truths, &c.preds, c.n, c.d).unwrap();
        per_pred != per_truth
    });
    assert!(differs);
}

fn settings(n_way: usize, top_k: usize, trials: usize) -> NWaySettings {
    NWaySettings {
        n_way,
        top_k,
        trials,
    }
}

#[test]
fn n_way_is_reproducible_with_seed() {
    let c = &cases()[2];
    let s = settings(4, 1, 20);
    let a = n_way_top_k_identification(
        &c.preds,
        &c.truths,
        c.n,
        c.d,
        s,
        &mut ChaCha8Rng::seed_from_u64(42),
    )
    .unwrap();
    let b = n_way_top_k_identification(
        &c.preds,
        &c.truths,
        c.n,
        c.d,
        s,
        &mut ChaCha8Rng::seed_from_u64(42),
    )
    .unwrap();
    assert_eq!(a, b);
    assert!(
        a > 0.0 && a < 1.0,
        "expected an imperfect score on the noisiest case, got {a}"
    );
}

/// With every other item as a distractor and k = 1, success means "own truth
/// strictly best": checkable directly on the correlation matrix.
#[test]
fn n_way_with_all_distractors_is_strict_argmax() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for c in &cases() {
        let r = correlation_matrix(&c.preds, &c.truths, c.n, c.d).unwrap();
        let wins = (0..c.n)
            .filter(|&i| (0..c.n).all(|j| j == i || r[i * c.n + j] < r[i * c.n + i]))
            .count();
        let expected = wins as f64 / c.n as f64;
        let got = n_way_top_k_identification(
            &c.preds,
            &c.truths,
            c.n,
            c.d,
            settings(c.n, 1, 3),
            &mut rng,
        )
        .unwrap();
        assert_eq!(got, expected, "{}", c.name);
    }
}

/// Two-way is the n-way score with n_way = 2 averaged over all distractors:
/// many random draws must approach it.
#[test]
fn n_way_two_approaches_two_way() {
    let c = &cases()[2];
    let two_way = two_way_identification(&c.preds, &c.truths, c.n, c.d).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let sampled = n_way_top_k_identification(
        &c.preds,
        &c.truths,
        c.n,
        c.d,
        settings(2, 1, 4000),
        &mut rng,
    )
    .unwrap();
    // 48k Bernoulli draws: standard error < 0.003.
    assert!(
        (sampled - two_way).abs() < 0.015,
        "sampled {sampled}, exact {two_way}"
    );
}
