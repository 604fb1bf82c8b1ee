//! BLEU-1..4 as pycocoevalcap's `Bleu(4)` computes it (`bleu_scorer.py`,
//! `compute_score(option='closest')`), on captions already tokenized by
//! [`coco_tokenize`](super::ptb::coco_tokenize).
//!
//! It differs from sacrebleu's corpus BLEU ([`crate::bleu`]): tokens are the
//! whitespace-split tokenized captions; no smoothing, but every n-gram
//! precision is `(correct + 1e-15) / (total + 1e-9)`, so an order without
//! matches gives a tiny positive value rather than zero; BLEU-n is the
//! running geometric mean of the first n precisions; the brevity penalty
//! uses, per hypothesis, the reference length closest to it (ties to the
//! shorter), summed over the corpus, and is applied when the total ratio is
//! below 1. Per-item scores are the same formulas on one item's statistics.

use std::collections::HashMap;

use crate::bleu::is_python_whitespace;

/// Highest n-gram order.
pub const BLEU_N: usize = 4;

/// pycocoevalcap's `small`: added to each denominator.
const SMALL: f64 = 1e-9;
/// pycocoevalcap's `tiny`: added to each numerator.
const TINY: f64 = 1e-15;

/// Corpus and per-item BLEU-1..4 on the 0–1 scale pycocoevalcap returns.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoBleu {
    /// BLEU-1..4 of the corpus.
    pub corpus: [f64; BLEU_N],
    /// BLEU-1..4 of each item, shape `(n_items,)`.
    pub items: Vec<[f64; BLEU_N]>,
}

/// Sufficient statistics of one hypothesis.
struct ItemStats {
    test_len: usize,
    ref_len: usize,
    guess: [usize; BLEU_N],
    correct: [usize; BLEU_N],
}

/// Whitespace-split words, as Python's `str.split()`.
fn words(s: &str) -> Vec<&str> {
    s.split(is_python_whitespace)
        .filter(|w| !w.is_empty())
        .collect()
}

fn ngram_counts<'a>(toks: &[&'a str]) -> HashMap<Vec<&'a str>, usize> {
    let mut counts = HashMap::new();
    for n in 1..=BLEU_N {
        for gram in toks.windows(n) {
            *counts.entry(gram.to_vec()).or_insert(0) += 1;
        }
    }
    counts
}

fn item_stats(hypothesis: &str, references: &[String]) -> ItemStats {
    let mut ref_lens = Vec::with_capacity(references.len());
    let mut max_counts: HashMap<Vec<&str>, usize> = HashMap::new();
    for r in references {
        let toks = words(r);
        ref_lens.push(toks.len());
        for (gram, count) in ngram_counts(&toks) {
            let slot = max_counts.entry(gram).or_insert(0);
            *slot = (*slot).max(count);
        }
    }
    let toks = words(hypothesis);
    let test_len = toks.len();
    // min((|l - testlen|, l)): closest, ties to the shorter.
    let ref_len = ref_lens
        .iter()
        .copied()
        .min_by_key(|&l| (l.abs_diff(test_len), l))
        .unwrap_or(0);
    let mut guess = [0usize; BLEU_N];
    for (k, g) in guess.iter_mut().enumerate() {
        *g = (test_len + 1).saturating_sub(k + 1);
    }
    let mut correct = [0usize; BLEU_N];
    for (gram, count) in ngram_counts(&toks) {
        correct[gram.len() - 1] += count.min(*max_counts.get(&gram).unwrap_or(&0));
    }
    ItemStats {
        test_len,
        ref_len,
        guess,
        correct,
    }
}

/// BLEU-1..4 from (possibly summed) statistics, in pycocoevalcap's order of
/// operations.
fn bleu_from(
    correct: &[usize; BLEU_N],
    guess: &[usize; BLEU_N],
    test_len: usize,
    ref_len: usize,
) -> [f64; BLEU_N] {
    let mut out = [0.0; BLEU_N];
    let mut bleu = 1.0f64;
    for k in 0..BLEU_N {
        bleu *= (correct[k] as f64 + TINY) / (guess[k] as f64 + SMALL);
        out[k] = bleu.powf(1.0 / (k as f64 + 1.0));
    }
    let ratio = (test_len as f64 + TINY) / (ref_len as f64 + SMALL);
    if ratio < 1.0 {
        let bp = (1.0 - 1.0 / ratio).exp();
        for v in &mut out {
            *v *= bp;
        }
    }
    out
}

/// pycocoevalcap BLEU of tokenized hypotheses against tokenized references.
///
/// Shapes: `hypotheses` `(n,)`, `references` `(n,)` with at least one
/// reference each; the caller checks them (see
/// [`caption_scores`](super::caption_scores)).
pub fn coco_bleu(hypotheses: &[String], references: &[Vec<String>]) -> CocoBleu {
    let mut items = Vec::with_capacity(hypotheses.len());
    let (mut test_len, mut ref_len) = (0usize, 0usize);
    let mut guess = [0usize; BLEU_N];
    let mut correct = [0usize; BLEU_N];
    for (hyp, refs) in hypotheses.iter().zip(references) {
        let s = item_stats(hyp, refs);
        items.push(bleu_from(&s.correct, &s.guess, s.test_len, s.ref_len));
        test_len += s.test_len;
        ref_len += s.ref_len;
        for k in 0..BLEU_N {
            guess[k] += s.guess[k];
            correct[k] += s.correct[k];
        }
    }
    CocoBleu {
        corpus: bleu_from(&correct, &guess, test_len, ref_len),
        items,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn identical_caption_scores_one() {
        let b = coco_bleu(&s(&["a dog on a couch"]), &[s(&["a dog on a couch"])]);
        for v in b.corpus {
            assert!((v - 1.0).abs() < 1e-8, "{v}");
        }
    }

    #[test]
    fn empty_hypothesis_is_near_zero_not_nan() {
        let b = coco_bleu(&s(&[""]), &[s(&["a dog"])]);
        assert!(b.corpus.iter().all(|v| v.is_finite() && *v < 1e-6));
    }

    #[test]
    fn closest_reference_length_ties_to_shorter() {
        let st = item_stats("a b c", &s(&["a b c d", "a b"]));
        assert_eq!(st.ref_len, 2);
        assert_eq!(st.guess, [3, 2, 1, 0]);
    }
}
