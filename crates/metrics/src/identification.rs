//! Identification scores: can each prediction pick out its own ground truth
//! among the others by correlation?
//!
//! Inputs are row-major matrices: `preds` and `truths` are `(n, d)`, row `i`
//! of `preds` being the reconstruction (or its features) of row `i` of
//! `truths`.

use rand::Rng;

use crate::error::{check_len, shape_len, MetricsError, Result};
use crate::rank::{at_least_as_good, beats, require_finite};

/// Correlation matrix `r[i][j] = pearson(preds_i, truths_j)`, shape `(n, n)`
/// row-major. NaN where a row is constant (as `np.corrcoef`). Errors on shapes that disagree
/// and on a non-finite input value ([`MetricsError::NonFinite`], naming the row).
///
/// Rows are centred and scaled to unit norm in f64 (two passes over each row), then `r` is one
/// f64 matrix product, done in blocks of columns so that features of 10⁵ values or more (AlexNet's
/// feature maps) never need an f64 copy of the whole matrices.
pub fn correlation_matrix(preds: &[f32], truths: &[f32], n: usize, d: usize) -> Result<Vec<f64>> {
    check_matrices(preds, truths, n, d)?;
    let (p_stats, t_stats) = (row_statistics(preds, n, d), row_statistics(truths, n, d));
    let mut r = faer::Mat::<f64>::zeros(n, n);
    const BLOCK: usize = 2048;
    let mut start = 0;
    while start < d {
        let width = BLOCK.min(d - start);
        let standardized = |m: &[f32], stats: &[(f64, f64)]| {
            faer::Mat::from_fn(n, width, |i, k| {
                (f64::from(m[i * d + start + k]) - stats[i].0) * stats[i].1
            })
        };
        let (p, t) = (
            standardized(preds, &p_stats),
            standardized(truths, &t_stats),
        );
        faer::linalg::matmul::matmul(
            r.as_mut(),
            faer::Accum::Add,
            p.as_ref(),
            t.as_ref().transpose(),
            1.0,
            faer::Par::rayon(0),
        );
        start += width;
    }
    Ok((0..n * n).map(|k| r[(k / n, k % n)]).collect())
}

/// Per row: the mean and the inverse norm of the centred row (NaN when the row is constant).
fn row_statistics(m: &[f32], n: usize, d: usize) -> Vec<(f64, f64)> {
    (0..n)
        .map(|i| {
            let row = &m[i * d..(i + 1) * d];
            let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / d as f64;
            let norm = row
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                .sqrt();
            (mean, if norm > 0.0 { 1.0 / norm } else { f64::NAN })
        })
        .collect()
}

/// Two-way identification per prediction, as MindEye's
/// `two_way_identification(..., return_avg=False)` divided by `n - 1`.
///
/// Entry `i` is the share of other truths `j != i` with
/// `corr(preds_i, truths_j) < corr(preds_i, truths_i)`. The comparison is
/// strict ([`crate::rank`]), so ties (e.g. duplicated truths) count as failures, as
/// in MindEye; a constant prediction (correlation undefined) fails every comparison and
/// scores 0. Shapes: `(n, d)` each, `n >= 2`, `d >= 2`; result `(n,)`. Errors on a
/// non-finite input value.
pub fn two_way_identification_per_prediction(
    preds: &[f32],
    truths: &[f32],
    n: usize,
    d: usize,
) -> Result<Vec<f64>> {
    if n < 2 {
        return Err(MetricsError::InvalidArgument(format!(
            "two-way identification needs at least 2 items, got {n}"
        )));
    }
    let r = correlation_matrix(preds, truths, n, d)?;
    Ok((0..n)
        .map(|i| {
            let own = r[i * n + i];
            // j == i never counts: own < own is false.
            let beaten = (0..n).filter(|&j| beats(own, r[i * n + j])).count();
            beaten as f64 / (n - 1) as f64
        })
        .collect())
}

/// Two-way identification score in [0, 1] (chance 0.5): the mean of
/// [`two_way_identification_per_prediction`], equal to MindEye's
/// `np.mean(success_cnt) / (len(all_images) - 1)`.
///
/// MindEye builds `r = corrcoef(reals, preds)[:n, n:]` (truths on rows) and
/// sums `r < diag(r)` over axis 0, i.e. for each *prediction* it compares
/// the truths; this function does the same. Shapes: `(n, d)` each, `n >= 2`.
pub fn two_way_identification(preds: &[f32], truths: &[f32], n: usize, d: usize) -> Result<f64> {
    let per = two_way_identification_per_prediction(preds, truths, n, d)?;
    Ok(per.iter().sum::<f64>() / n as f64)
}

/// Settings of [`n_way_top_k_identification`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NWaySettings {
    /// Candidates per draw: the matched truth plus `n_way - 1` distractors.
    pub n_way: usize,
    /// Success if the matched truth ranks within the best `top_k`.
    pub top_k: usize,
    /// Independent distractor draws per prediction.
    pub trials: usize,
}

/// N-way top-k identification in [0, 1].
///
/// For each prediction `i` and each of `trials` draws, `n_way - 1`
/// distinct distractor truths `j != i` are sampled uniformly with `rng`;
/// the draw succeeds when fewer than `top_k` distractors correlate with
/// `preds_i` at least as well as `truths_i` does (ties count against, like
/// the strict comparison of the two-way score: [`crate::rank`]). Returns successes divided
/// by `n * trials`. Chance level is `top_k / n_way`; a constant prediction scores 0. Errors
/// on a non-finite input value.
///
/// Shapes: `(n, d)` each; `2 <= n_way <= n`, `top_k >= 1`, `trials >= 1`.
pub fn n_way_top_k_identification<R: Rng + ?Sized>(
    preds: &[f32],
    truths: &[f32],
    n: usize,
    d: usize,
    settings: NWaySettings,
    rng: &mut R,
) -> Result<f64> {
    let NWaySettings {
        n_way,
        top_k,
        trials,
    } = settings;
    if n_way < 2 || n_way > n {
        return Err(MetricsError::InvalidArgument(format!(
            "n_way must be in 2..={n} (number of items), got {n_way}"
        )));
    }
    if top_k == 0 || trials == 0 {
        return Err(MetricsError::InvalidArgument(format!(
            "top_k and trials must be >= 1, got top_k={top_k}, trials={trials}"
        )));
    }
    let r = correlation_matrix(preds, truths, n, d)?;
    let mut successes = 0usize;
    for i in 0..n {
        let row = &r[i * n..(i + 1) * n];
        let own = row[i];
        for _ in 0..trials {
            // Sample among the n - 1 other indices, then skip over i.
            let picks = rand::seq::index::sample(rng, n - 1, n_way - 1);
            let above = at_least_as_good(
                own,
                picks.iter().map(|p| row[if p >= i { p + 1 } else { p }]),
            );
            if above < top_k {
                successes += 1;
            }
        }
    }
    Ok(successes as f64 / (n * trials) as f64)
}

fn check_matrices(preds: &[f32], truths: &[f32], n: usize, d: usize) -> Result<()> {
    if n == 0 {
        return Err(MetricsError::Empty {
            what: "item set",
            need: "at least one prediction/truth pair is required",
        });
    }
    if d < 2 {
        return Err(MetricsError::InvalidArgument(format!(
            "correlation needs feature dimension d >= 2, got {d}"
        )));
    }
    let len = shape_len("feature matrix", &[n, d])?;
    check_len("predictions (n*d)", len, preds.len())?;
    check_len("truths (n*d)", len, truths.len())?;
    require_finite("predictions (n, d)", preds, d)?;
    require_finite("truths (n, d)", truths, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn settings(n_way: usize, top_k: usize, trials: usize) -> NWaySettings {
        NWaySettings {
            n_way,
            top_k,
            trials,
        }
    }

    /// Rows that are clearly distinct from each other.
    fn distinct_rows(n: usize, d: usize) -> Vec<f32> {
        (0..n * d)
            .map(|k| {
                let (i, j) = ((k / d) as f32, (k % d) as f32);
                ((i + 1.0) * 0.7 * j + i * i).sin()
            })
            .collect()
    }

    #[test]
    fn perfect_predictions_identify_everything() {
        let (n, d) = (6, 20);
        let t = distinct_rows(n, d);
        assert_eq!(two_way_identification(&t, &t, n, d).unwrap(), 1.0);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let s = n_way_top_k_identification(&t, &t, n, d, settings(n, 1, 5), &mut rng).unwrap();
        assert_eq!(s, 1.0);
    }

    #[test]
    fn inverted_predictions_identify_nothing() {
        // corr(-t_i, t_i) = -1: no other truth can correlate less.
        let (n, d) = (5, 16);
        let t = distinct_rows(n, d);
        let p: Vec<f32> = t.iter().map(|v| -v).collect();
        assert_eq!(two_way_identification(&p, &t, n, d).unwrap(), 0.0);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let s = n_way_top_k_identification(&p, &t, n, d, settings(3, 1, 4), &mut rng).unwrap();
        assert_eq!(s, 0.0);
    }

    #[test]
    fn one_swapped_pair_misses_only_its_rival() {
        // Prediction 0 copies truth 1: truth 1 beats truth 0 for it, the
        // others (distinct rows) do not, so its share is (n-2)/(n-1).
        let (n, d) = (5, 16);
        let t = distinct_rows(n, d);
        let mut p = t.clone();
        p[..d].copy_from_slice(&t[d..2 * d]);
        let per = two_way_identification_per_prediction(&p, &t, n, d).unwrap();
        let r = correlation_matrix(&p, &t, n, d).unwrap();
        let expected0 = (1..n).filter(|&j| r[j] < r[0]).count() as f64 / (n - 1) as f64;
        assert_eq!(per[0], expected0);
        assert!(per[0] <= (n - 2) as f64 / (n - 1) as f64);
        assert_eq!(&per[1..], &[1.0; 4]);
    }

    #[test]
    fn top_k_covering_all_candidates_always_succeeds() {
        let (n, d) = (7, 12);
        let t = distinct_rows(n, d);
        let p: Vec<f32> = distinct_rows(n + 3, d)[3 * d..].to_vec();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        assert_eq!(
            n_way_top_k_identification(&p, &t, n, d, settings(4, 4, 3), &mut rng).unwrap(),
            1.0
        );
    }

    #[test]
    fn nan_predictions_are_refused_and_constant_ones_score_at_most_chance() {
        let (n, d) = (6, 10);
        let t = distinct_rows(n, d);
        let mut p = t.clone();
        p[2 * d + 3] = f32::NAN;
        let err = two_way_identification(&p, &t, n, d).unwrap_err();
        assert!(
            matches!(
                err,
                MetricsError::NonFinite {
                    row: 2,
                    column: 3,
                    ..
                }
            ),
            "{err:?}"
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        assert!(n_way_top_k_identification(&p, &t, n, d, settings(3, 1, 2), &mut rng).is_err());
        let mut bad_truth = t.clone();
        bad_truth[0] = f32::INFINITY;
        assert!(two_way_identification(&t, &bad_truth, n, d).is_err());
        // All-zero and constant predictions: no correlation, every comparison lost.
        for constant in [0.0f32, 0.7] {
            let p = vec![constant; n * d];
            let two = two_way_identification(&p, &t, n, d).unwrap();
            assert!(two <= 0.5, "{constant}: two-way {two}");
            let s = n_way_top_k_identification(&p, &t, n, d, settings(3, 1, 4), &mut rng).unwrap();
            assert!(s <= 1.0 / 3.0, "{constant}: 3-way {s}");
        }
        // Duplicated truths tie: neither copy identifies its prediction against the other.
        let mut dup = t.clone();
        dup.copy_within(0..d, d);
        let per = two_way_identification_per_prediction(&dup, &dup, n, d).unwrap();
        assert!(per[0] < 1.0 && per[1] < 1.0 && per[2] == 1.0, "{per:?}");
    }

    #[test]
    fn argument_errors() {
        let t = distinct_rows(3, 4);
        assert!(matches!(
            two_way_identification(&t, &t, 1, 12),
            Err(MetricsError::InvalidArgument(_))
        ));
        assert!(matches!(
            two_way_identification(&t, &t[..11], 3, 4),
            Err(MetricsError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            correlation_matrix(&t, &t, 0, 4),
            Err(MetricsError::Empty { .. })
        ));
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        assert!(n_way_top_k_identification(&t, &t, 3, 4, settings(4, 1, 1), &mut rng).is_err());
        assert!(n_way_top_k_identification(&t, &t, 3, 4, settings(2, 0, 1), &mut rng).is_err());
    }
}
