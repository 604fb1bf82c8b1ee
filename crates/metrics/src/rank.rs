//! The one rule by which every rank-based score of the project places a match among its
//! candidates: retrieval top-k (EEG/MEG zero-shot, music genre), two-way and n-way
//! identification, MinD-Video's n-way classification.
//!
//! **Ties count against the match.** A candidate beats the match unless the match scores
//! *strictly* higher, so the match's rank is `1 + #{candidates j ≠ match : score_j ≥
//! score_match}` and a comparison is won only when `score_match > score_j`. This is MindEye's and
//! Takagi & Nishimoto's two-way comparison (`corr(pred, true) > corr(pred, other)`, a tie is a
//! failure) and the pessimistic reading of `torch.topk` (which makes no promise to favour the
//! match among equals). With it a broken decoder cannot score well: an all-zero or constant
//! prediction ties every candidate (or ranks them the same way for every trial) and scores at or
//! below chance, never 100 %.
//!
//! A NaN score is never a win (`NaN > x` is false), but callers refuse non-finite inputs
//! before scoring ([`require_finite`]): a NaN prediction is a broken model to report, not a
//! score of zero to print.

use crate::error::{MetricsError, Result};

/// Whether the match (scoring `own`) beats a candidate scoring `other`: `own > other`,
/// strictly. A tie, or a NaN on either side, is a loss.
#[inline]
pub fn beats<T: PartialOrd>(own: T, other: T) -> bool {
    own > other
}

/// How many of `others` score at least as high as `own` (ties and NaN count against the
/// match): the number of candidates ranked above the match.
pub fn at_least_as_good<T: PartialOrd + Copy>(
    own: T,
    others: impl IntoIterator<Item = T>,
) -> usize {
    others.into_iter().filter(|&o| !beats(own, o)).count()
}

/// The 1-based rank of `row[own]` among the whole `row` (the match included):
/// `1 + #{j ≠ own : row[j] ≥ row[own]}`. The match is within the top `k` when this is `≤ k`.
///
/// Panics if `own >= row.len()` (an index bug, not bad input).
pub fn match_rank<T: PartialOrd + Copy>(row: &[T], own: usize) -> usize {
    let score = row[own];
    1 + row
        .iter()
        .enumerate()
        .filter(|&(j, &s)| j != own && !beats(score, s))
        .count()
}

/// Refuses a non-finite value in `values`, a row-major matrix `width` values wide, naming
/// `what` (the file or model it came from), the row and the column of the first one. `width`
/// 0 is read as one row.
pub fn require_finite<T: Copy + Into<f64>>(what: &str, values: &[T], width: usize) -> Result<()> {
    match values.iter().position(|&v| !v.into().is_finite()) {
        None => Ok(()),
        Some(at) => {
            let width = width.max(1);
            Err(MetricsError::NonFinite {
                what: what.to_string(),
                row: at / width,
                column: at % width,
                value: values[at].into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_and_nan_count_against_the_match() {
        assert!(beats(0.6, 0.5));
        assert!(!beats(0.5, 0.5));
        assert!(!beats(f64::NAN, 0.5) && !beats(0.5, f64::NAN));
        assert_eq!(at_least_as_good(0.5, [0.1, 0.5, 0.9, f64::NAN]), 3);
        // the match first, alone: rank 1; tied with everyone: last.
        assert_eq!(match_rank(&[0.9f32, 0.1, 0.2], 0), 1);
        assert_eq!(match_rank(&[0.0f32; 5], 2), 5);
        assert_eq!(match_rank(&[0.3f32, 0.7, 0.3, 0.1], 2), 3);
    }

    #[test]
    fn non_finite_values_are_refused_with_their_place() {
        assert!(require_finite("p.npy", &[1.0f32, 2.0, 3.0], 3).is_ok());
        let err = require_finite("p.npy", &[1.0f32, 2.0, 3.0, f32::NAN], 2).unwrap_err();
        assert!(
            matches!(&err, MetricsError::NonFinite { what, row: 1, column: 1, value }
                if what == "p.npy" && value.is_nan()),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("p.npy") && text.contains("row 1"), "{text}");
        assert!(require_finite("x", &[f64::INFINITY], 0).is_err());
    }
}
