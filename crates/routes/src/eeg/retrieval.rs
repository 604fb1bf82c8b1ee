//! Zero-shot retrieval as NICE and ATM score it: each test trial's decoded embedding is compared
//! by cosine similarity with the embeddings of all test images, whose concepts training never
//! saw; row i's match is image i.
//!
//! - **Top-k of all m** (200-way top-1 and top-5 on THINGS-EEG2): the match ranks among the k
//!   most similar images.
//! - **k-way** (ATM's 2-way, 4-way, 50-way …): k − 1 distractors are drawn from the other m − 1
//!   images and the match must be the most similar of the k; averaged over `draws` draws per
//!   trial. ATM draws with Python's unseeded `random.sample`; here a ChaCha8 stream per seed
//!   and trial, so a score reproduces.
//!
//! Ties count **against** the match, in both: the project's one rule,
//! [`brainrecon_metrics::rank`] (the match's rank is 1 + the number of other candidates at
//! least as similar). `torch.topk` makes no promise to favour the match among equals, and a
//! zero or constant prediction, which ties every candidate or ranks them alike for every trial,
//! must score at or below chance rather than 100 %. Non-finite predictions or candidates are
//! refused, naming the row.

use crate::error::{Result, RouteError};
use brainrecon_metrics::rank::{beats, match_rank, require_finite};
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Cosine similarity of every row of `predicted` [n, d] with every row of `candidates` [m, d]:
/// [n, m] row-major. A zero row has similarity 0 with everything.
pub fn cosine_similarities(predicted: &[f32], candidates: &[f32], d: usize) -> Vec<f32> {
    assert!(d > 0 && predicted.len() % d == 0 && candidates.len() % d == 0);
    let unit = |rows: &[f32]| -> Vec<f64> {
        rows.chunks_exact(d)
            .flat_map(|r| {
                let norm = r.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
                let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
                r.iter().map(move |&v| v as f64 * scale)
            })
            .collect()
    };
    let (p, c) = (unit(predicted), unit(candidates));
    p.chunks_exact(d)
        .flat_map(|a| {
            c.chunks_exact(d)
                .map(move |b| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>() as f32)
        })
        .collect()
}

/// The indices of the `k` largest of `similarities` (one row), most similar first; ties keep
/// index order. For display only: whether the match is among them is [`match_rank`]'s
/// question (ties against it), not this order's.
pub fn ranked(similarities: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..similarities.len()).collect();
    order.sort_by(|&a, &b| similarities[b].total_cmp(&similarities[a]));
    order.truncate(k);
    order
}

/// One k-way score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WayScore {
    /// Candidates per draw: the match and k − 1 others.
    pub k: usize,
    /// Share of draws where the match was the most similar of the k.
    pub top1: f64,
    /// 1/k.
    pub chance: f64,
}

/// Zero-shot retrieval scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetrievalScores {
    /// Trials (= candidates) scored.
    pub n: usize,
    /// Top-1 and top-5 among all n candidates.
    pub top1: f64,
    /// Top-5 among all n candidates.
    pub top5: f64,
    /// 1/n and 5/n.
    pub chance_top1: f64,
    /// 5/n.
    pub chance_top5: f64,
    /// The k-way scores, in the order the ks were asked for.
    pub ways: Vec<WayScore>,
    /// Random draws of k − 1 others per trial, for each k.
    pub draws: usize,
    /// Seed of the draws.
    pub seed: u64,
}

/// The match's 1-based rank per row of `similarities` [n, n] (row i's match is column i):
/// 1 + the number of other candidates at least as similar ([`match_rank`]: ties against).
pub fn match_ranks(similarities: &[f32], n: usize) -> Vec<usize> {
    (0..n)
        .map(|i| match_rank(&similarities[i * n..(i + 1) * n], i))
        .collect()
}

/// Scores `predicted` [n, d] against `candidates` [n, d] (row i's match is candidate i): top-1
/// and top-5 of all n, and each k of `ways` (2 ≤ k ≤ n) over `draws` draws per trial, ties
/// against the match. Errors: sizes, an impossible k, a non-finite prediction or candidate
/// (naming its row; callers that know the file check first and name it).
pub fn zero_shot(
    predicted: &[f32],
    candidates: &[f32],
    d: usize,
    ways: &[usize],
    draws: usize,
    seed: u64,
) -> Result<RetrievalScores> {
    let n = candidates.len() / d.max(1);
    if d == 0 || n < 2 || predicted.len() != n * d || candidates.len() != n * d {
        return Err(RouteError::Usage(format!(
            "retrieval: expected as many predictions as candidates (at least 2) of width {d}, \
             found {} and {} values",
            predicted.len(),
            candidates.len()
        )));
    }
    if let Some(&k) = ways.iter().find(|&&k| k < 2 || k > n) {
        return Err(RouteError::Usage(format!(
            "retrieval: a {k}-way score needs 2 to {n} candidates"
        )));
    }
    require_finite("decoded embeddings (test trials, d)", predicted, d)?;
    require_finite("candidate embeddings (test images, d)", candidates, d)?;
    let sim = cosine_similarities(predicted, candidates, d);
    let ranks = match_ranks(&sim, n);
    let share = |hits: usize, of: usize| hits as f64 / of.max(1) as f64;
    let ways = ways
        .iter()
        .map(|&k| {
            let mut hits = 0usize;
            for i in 0..n {
                let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((k as u64) << 32));
                rng.set_stream(i as u64);
                let row = &sim[i * n..(i + 1) * n];
                for _ in 0..draws {
                    // k − 1 of the n − 1 others: index j ≥ i stands for j + 1.
                    let beaten = sample(&mut rng, n - 1, k - 1)
                        .into_iter()
                        .map(|j| if j >= i { j + 1 } else { j })
                        .all(|j| beats(row[i], row[j]));
                    hits += beaten as usize;
                }
            }
            WayScore {
                k,
                top1: share(hits, n * draws),
                chance: 1.0 / k as f64,
            }
        })
        .collect();
    Ok(RetrievalScores {
        n,
        top1: share(ranks.iter().filter(|&&r| r <= 1).count(), n),
        top5: share(ranks.iter().filter(|&&r| r <= 5).count(), n),
        chance_top1: 1.0 / n as f64,
        chance_top5: (5.0 / n as f64).min(1.0),
        ways,
        draws,
        seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_reversed_and_tied_predictions_score_as_defined() {
        // Four orthogonal candidates.
        let eye: Vec<f32> = (0..16)
            .map(|i| if i % 5 == 0 { 1.0 } else { 0.0 })
            .collect();
        let s = zero_shot(&eye, &eye, 4, &[2, 4], 10, 1).unwrap();
        assert_eq!((s.top1, s.top5), (1.0, 1.0));
        assert!(s.ways.iter().all(|w| w.top1 == 1.0));
        // Each prediction points mostly at the next image and half as much at its own: the
        // match is never first, and it is beaten by exactly one candidate, so k-way is right
        // whenever that one is not drawn.
        let shifted: Vec<f32> = (0..4)
            .flat_map(|i| {
                (0..4).map(move |j| match j {
                    _ if j == (i + 1) % 4 => 1.0,
                    _ if j == i => 0.5,
                    _ => 0.0,
                })
            })
            .collect();
        let s = zero_shot(&shifted, &eye, 4, &[2, 4], 2000, 1).unwrap();
        assert_eq!(s.top1, 0.0);
        assert_eq!(s.top5, 1.0, "all four fit in the top 5");
        assert_eq!(s.ways[1].top1, 0.0, "4-way draws every candidate");
        assert!(
            (s.ways[0].top1 - 2.0 / 3.0).abs() < 0.03,
            "2-way: {}",
            s.ways[0].top1
        );
        // Zero predictions tie with every candidate: ties count against the match, so they
        // score 0, below chance, never 100 %.
        let s = zero_shot(&[0.0; 16], &eye, 4, &[2], 5, 1).unwrap();
        assert_eq!((s.top1, s.ways[0].top1), (0.0, 0.0));
        assert!(s.top1 <= s.chance_top1);
        // Pointing at the next image only ties the match with the two others: ties against it.
        let next: Vec<f32> = (0..4)
            .flat_map(|i| eye[((i + 1) % 4) * 4..((i + 1) % 4) * 4 + 4].to_vec())
            .collect();
        let s = zero_shot(&next, &eye, 4, &[2], 50, 1).unwrap();
        assert_eq!((s.top1, s.ways[0].top1), (0.0, 0.0));
    }

    #[test]
    fn broken_predictions_are_refused_or_score_at_most_chance() {
        // Eight distinct candidates in 3 dimensions (no two parallel).
        let n = 8;
        let cand: Vec<f32> = (0..n * 3)
            .map(|k| ((k * 7 + 3) % 11) as f32 - 4.5)
            .collect();
        let perfect = zero_shot(&cand, &cand, 3, &[2, 8], 10, 0).unwrap();
        assert_eq!((perfect.top1, perfect.top5), (1.0, 1.0));
        assert!(perfect.ways.iter().all(|w| w.top1 == 1.0));
        // NaN and infinity: refused, naming the row.
        for bad in [f32::NAN, f32::INFINITY] {
            let mut p = cand.clone();
            p[3 * 5 + 1] = bad;
            let err = zero_shot(&p, &cand, 3, &[2], 1, 0).unwrap_err().to_string();
            assert!(err.contains("row 5") && err.contains("decoded"), "{err}");
        }
        let mut c = cand.clone();
        c[0] = f32::NAN;
        assert!(zero_shot(&cand, &c, 3, &[2], 1, 0).is_err());
        // A constant prediction ranks the candidates alike for every trial: one match at most
        // can be first, and at most five can be in the top 5.
        for constant in [0.0f32, 1.0, -2.5] {
            let s = zero_shot(&vec![constant; n * 3], &cand, 3, &[2, 4], 50, 3).unwrap();
            assert!(s.top1 <= s.chance_top1, "{constant}: top-1 {}", s.top1);
            assert!(s.top5 <= s.chance_top5, "{constant}: top-5 {}", s.top5);
            for w in &s.ways {
                // 50 draws per trial: allow the sampling error above chance.
                assert!(w.top1 <= w.chance + 0.1, "{constant}: {w:?}");
            }
        }
    }

    #[test]
    fn cosine_ignores_scale_and_draws_reproduce() {
        let c = vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let sim = cosine_similarities(&[3.0, 0.0], &c, 2);
        assert_eq!(sim[0], 1.0);
        assert_eq!(sim[1], 0.0);
        assert!((sim[2] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        let p: Vec<f32> = (0..40).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
        let q: Vec<f32> = (0..40).map(|i| ((i * 104_729) % 11) as f32 - 5.0).collect();
        let a = zero_shot(&p, &q, 4, &[2, 5], 50, 9).unwrap();
        assert_eq!(a, zero_shot(&p, &q, 4, &[2, 5], 50, 9).unwrap());
        assert_ne!(a.ways, zero_shot(&p, &q, 4, &[2, 5], 50, 10).unwrap().ways);
    }

    #[test]
    fn mismatched_sizes_and_impossible_ways_are_usage_errors() {
        assert!(zero_shot(&[1.0; 6], &[1.0; 8], 2, &[2], 1, 0).is_err());
        let err = zero_shot(&[1.0; 8], &[1.0; 8], 2, &[5], 1, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("5-way") && err.contains("2 to 4"), "{err}");
    }
}
