//! ROUGE-L as pycocoevalcap's `Rouge` computes it (`rouge.py`): per item,
//! the longest common subsequence with each reference gives a precision and
//! a recall; the *maximum* precision and the *maximum* recall over the
//! references (each maximised on its own, possibly from different
//! references) enter an F-measure with beta = 1.2; the corpus score is the
//! mean over items.
//!
//! Tokens are the tokenized caption split on single spaces (`split(" ")`),
//! so an empty caption is one empty token.

/// pycocoevalcap's beta (favours recall).
pub const ROUGE_BETA: f64 = 1.2;

/// Corpus ROUGE-L and per-item scores on the 0–1 scale.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoRouge {
    /// Mean of the item scores.
    pub corpus: f64,
    /// Score of each item, `(n_items,)`.
    pub items: Vec<f64>,
}

/// Length of the longest common subsequence of two token lists.
fn lcs_len(a: &[&str], b: &[&str]) -> usize {
    // One row of the dynamic-programming table at a time.
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// ROUGE-L of one tokenized hypothesis against its tokenized references.
pub fn rouge_l_item(hypothesis: &str, references: &[String]) -> f64 {
    let cand: Vec<&str> = hypothesis.split(' ').collect();
    let mut prec_max = f64::NEG_INFINITY;
    let mut rec_max = f64::NEG_INFINITY;
    for r in references {
        let toks: Vec<&str> = r.split(' ').collect();
        let lcs = lcs_len(&toks, &cand) as f64;
        prec_max = prec_max.max(lcs / cand.len() as f64);
        rec_max = rec_max.max(lcs / toks.len() as f64);
    }
    if prec_max != 0.0 && rec_max != 0.0 {
        let b2 = ROUGE_BETA * ROUGE_BETA;
        ((1.0 + b2) * prec_max * rec_max) / (rec_max + b2 * prec_max)
    } else {
        0.0
    }
}

/// pycocoevalcap ROUGE-L over a corpus. Shapes as in
/// [`coco_bleu`](super::coco_bleu::coco_bleu).
pub fn coco_rouge_l(hypotheses: &[String], references: &[Vec<String>]) -> CocoRouge {
    let items: Vec<f64> = hypotheses
        .iter()
        .zip(references)
        .map(|(h, r)| rouge_l_item(h, r))
        .collect();
    let corpus = items.iter().sum::<f64>() / items.len().max(1) as f64;
    CocoRouge { corpus, items }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcs_of_small_sequences() {
        assert_eq!(lcs_len(&["a", "b", "c", "d"], &["a", "c", "d"]), 3);
        assert_eq!(lcs_len(&["a"], &["b"]), 0);
        assert_eq!(lcs_len(&[], &["b"]), 0);
    }

    #[test]
    fn precision_and_recall_maximised_separately() {
        // Precision 1 from the long reference, recall 1 from the short one.
        let refs = vec!["a b c d e f".to_string(), "a".to_string()];
        let s = rouge_l_item("a b", &refs);
        let (p, r) = (1.0, 1.0);
        let b2 = ROUGE_BETA * ROUGE_BETA;
        assert!((s - (1.0 + b2) * p * r / (r + b2 * p)).abs() < 1e-15);
    }
}
