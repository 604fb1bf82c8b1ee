//! Cross-validation folds, per-target scores and the alpha choice.

use faer::MatRef;
use serde::{Deserialize, Serialize};

use crate::error::{Result, RidgeError};

/// Per-target validation score. Higher is better for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scoring {
    /// `-mean((y - ŷ)²)`: the default of scikit-learn's RidgeCV (LOO) and of
    /// himalaya's RidgeCV/KernelRidgeCV (`l2_neg_loss`).
    #[default]
    NegMse,
    /// `1 - SSE / SST` per target, SST around the validation mean; a constant
    /// validation target scores 0 (himalaya's `r2_score`). With LOO this is the
    /// R² of the LOO predictions and selects the same alphas as `NegMse`.
    R2,
}

/// Fold id (0..n_folds) of each sample.
///
/// Unique `groups` in order of first appearance are split into `n_folds`
/// contiguous blocks, the first `G % n_folds` blocks one group larger
/// (scikit-learn `KFold(shuffle=False)` applied to the groups). Without
/// groups every sample is its own group, which is exactly `KFold(n_folds)`.
/// All repeats of a stimulus (same group) land in the same fold.
pub fn fold_assignment(
    n_samples: usize,
    n_folds: usize,
    groups: Option<&[i64]>,
) -> Result<Vec<usize>> {
    if let Some(g) = groups {
        if g.len() != n_samples {
            return Err(RidgeError::Cv(format!(
                "{} group labels for {} samples",
                g.len(),
                n_samples
            )));
        }
    }
    let labels: Vec<i64> = match groups {
        Some(g) => g.to_vec(),
        None => (0..n_samples as i64).collect(),
    };
    let mut unique: Vec<i64> = Vec::new();
    let mut rank_of = std::collections::HashMap::new();
    for &label in &labels {
        rank_of.entry(label).or_insert_with(|| {
            unique.push(label);
            unique.len() - 1
        });
    }
    let n_groups = unique.len();
    if n_folds < 2 || n_folds > n_groups {
        return Err(RidgeError::Cv(format!(
            "n_folds = {n_folds} must be between 2 and the number of groups ({n_groups})"
        )));
    }
    let fold_of_rank = contiguous_blocks(n_groups, n_folds);
    Ok(labels
        .iter()
        .map(|label| fold_of_rank[rank_of[label]])
        .collect())
}

/// Block id of each of `n` items split into `k` contiguous blocks (sizes differ by ≤ 1).
fn contiguous_blocks(n: usize, k: usize) -> Vec<usize> {
    let (base, extra) = (n / k, n % k);
    (0..k)
        .flat_map(|block| std::iter::repeat_n(block, base + usize::from(block < extra)))
        .collect()
}

/// Scores (len t) of predictions `pred` (n×t, f32) against `truth` (n×t, f64).
pub(crate) fn score_targets(
    truth: MatRef<'_, f64>,
    pred: MatRef<'_, f32>,
    scoring: Scoring,
) -> Vec<f64> {
    assert_eq!(
        (truth.nrows(), truth.ncols()),
        (pred.nrows(), pred.ncols()),
        "score shapes"
    );
    let n = truth.nrows().max(1) as f64;
    (0..truth.ncols())
        .map(|j| {
            let sse: f64 = (0..truth.nrows())
                .map(|i| (truth[(i, j)] - pred[(i, j)] as f64).powi(2))
                .sum();
            match scoring {
                Scoring::NegMse => -sse / n,
                Scoring::R2 => r2_from_sse(truth, j, sse),
            }
        })
        .collect()
}

/// `1 - sse / SST` for column `j`, 0 when the column is constant (himalaya).
pub(crate) fn r2_from_sse(truth: MatRef<'_, f64>, j: usize, sse: f64) -> f64 {
    let n = truth.nrows().max(1) as f64;
    let mean = (0..truth.nrows()).map(|i| truth[(i, j)]).sum::<f64>() / n;
    let sst: f64 = (0..truth.nrows())
        .map(|i| (truth[(i, j)] - mean).powi(2))
        .sum();
    if sst == 0.0 {
        0.0
    } else {
        1.0 - sse / sst
    }
}

/// LOO choice (scikit-learn RidgeCV): the first alpha in grid order with the
/// maximal score — a later alpha replaces the best only if strictly better.
pub(crate) fn select_first_best(scores: &[f64]) -> usize {
    let mut best = 0;
    for (k, &s) in scores.iter().enumerate().skip(1) {
        if s > scores[best] {
            best = k;
        }
    }
    best
}

/// K-fold choice (himalaya `_select_best_alphas`): argmax of
/// `score + 1e-10·ln(α)`, so exact ties go to the larger alpha.
pub(crate) fn select_himalaya(scores: &[f64], alphas: &[f64]) -> usize {
    assert_eq!(scores.len(), alphas.len(), "one score per alpha");
    let tilted: Vec<f64> = scores
        .iter()
        .zip(alphas)
        .map(|(s, a)| s + 1e-10 * a.ln())
        .collect();
    select_first_best(&tilted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_match_kfold_without_groups() {
        assert_eq!(
            fold_assignment(7, 3, None).unwrap(),
            vec![0, 0, 0, 1, 1, 2, 2]
        );
    }

    #[test]
    fn groups_never_straddle_folds() {
        let groups = [5, 5, 9, 9, 1, 1, 4, 4];
        let folds = fold_assignment(8, 3, Some(&groups)).unwrap();
        assert_eq!(folds, vec![0, 0, 0, 0, 1, 1, 2, 2]);
    }

    #[test]
    fn too_many_folds_is_an_error() {
        assert!(fold_assignment(4, 3, Some(&[1, 1, 2, 2])).is_err());
        assert!(fold_assignment(4, 2, Some(&[1, 1, 2])).is_err());
    }

    #[test]
    fn tie_breaking_rules() {
        assert_eq!(select_first_best(&[1.0, 2.0, 2.0]), 1);
        assert_eq!(select_himalaya(&[1.0, 2.0, 2.0], &[0.1, 1.0, 10.0]), 2);
    }
}
