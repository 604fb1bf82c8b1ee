//! Corpus BLEU-4 as sacrebleu's `corpus_bleu(hyps, refs)` computes it with
//! default settings: tokenizer '13a', smoothing 'exp', case-sensitive,
//! any number (>= 1) of references per hypothesis.
//!
//! Used to score decoded captions against the dataset's captions.

use std::collections::HashMap;

use serde::Serialize;

use crate::error::{check_len, MetricsError, Result};

/// Highest n-gram order (BLEU-4).
pub const MAX_NGRAM_ORDER: usize = 4;

/// What sacrebleu's `BLEUScore` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BleuScore {
    /// BLEU on the 0–100 scale.
    pub score: f64,
    /// Modified n-gram precisions for n = 1..=4, in percent (smoothed).
    pub precisions: [f64; MAX_NGRAM_ORDER],
    /// Brevity penalty.
    pub bp: f64,
    /// Total hypothesis length in tokens.
    pub sys_len: usize,
    /// Total effective reference length in tokens.
    pub ref_len: usize,
    /// Clipped n-gram matches for n = 1..=4.
    pub counts: [usize; MAX_NGRAM_ORDER],
    /// Hypothesis n-grams for n = 1..=4.
    pub totals: [usize; MAX_NGRAM_ORDER],
}

/// Whitespace as Python's `str.isspace` sees it (what `str.split()` and
/// `str.rstrip()` use): Unicode White_Space plus the ASCII separators
/// U+001C..=U+001F, which Rust's `char::is_whitespace` leaves out.
pub fn is_python_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The mteval-v13a tokenizer as sacrebleu implements it ('13a'). Returns
/// the tokens joined by single spaces.
pub fn tokenize_13a(line: &str) -> String {
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        // Sequential, so "&amp;lt;" becomes "<" as in sacrebleu.
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    // The padding spaces matter: ".5" at the start becomes ". 5".
    let padded: Vec<char> = format!(" {line} ").chars().collect();

    let spaced = split_punctuation(&padded);
    let spaced = split_period_comma_after_non_digit(&spaced);
    let spaced = split_period_comma_before_non_digit(&spaced);
    let spaced = split_dash_after_digit(&spaced);
    let spaced: String = spaced.into_iter().collect();
    spaced
        .split(is_python_whitespace)
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// ASCII punctuation that 13a always splits off: everything in
/// `[{-~[-\` -&(-+:-@/]`, i.e. all but `'`, `,`, `-`, `.`.
fn is_split_punctuation(c: char) -> bool {
    matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/')
}

fn split_punctuation(chars: &[char]) -> Vec<char> {
    let mut out = Vec::with_capacity(chars.len() * 2);
    for &c in chars {
        if is_split_punctuation(c) {
            out.extend([' ', c, ' ']);
        } else {
            out.push(c);
        }
    }
    out
}

fn is_period_or_comma(c: char) -> bool {
    c == '.' || c == ','
}

/// Applies a two-character rewrite rule left to right without overlap, as
/// Python's `re.sub` does for the fixed-width 13a patterns.
fn rewrite_pairs(
    chars: &[char],
    matches: impl Fn(char, char) -> bool,
    replace: impl Fn(char, char, &mut Vec<char>),
) -> Vec<char> {
    let mut out = Vec::with_capacity(chars.len() * 2);
    let mut i = 0;
    while i < chars.len() {
        if i + 1 < chars.len() && matches(chars[i], chars[i + 1]) {
            replace(chars[i], chars[i + 1], &mut out);
            i += 2;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// `([^0-9])([\.,])` → `\1 \2 `
fn split_period_comma_after_non_digit(chars: &[char]) -> Vec<char> {
    rewrite_pairs(
        chars,
        |a, b| !a.is_ascii_digit() && is_period_or_comma(b),
        |a, b, out| out.extend([a, ' ', b, ' ']),
    )
}

/// `([\.,])([^0-9])` → ` \1 \2`
fn split_period_comma_before_non_digit(chars: &[char]) -> Vec<char> {
    rewrite_pairs(
        chars,
        |a, b| is_period_or_comma(a) && !b.is_ascii_digit(),
        |a, b, out| out.extend([' ', a, ' ', b]),
    )
}

/// `([0-9])(-)` → `\1 \2 `
fn split_dash_after_digit(chars: &[char]) -> Vec<char> {
    rewrite_pairs(
        chars,
        |a, b| a.is_ascii_digit() && b == '-',
        |a, b, out| out.extend([a, ' ', b, ' ']),
    )
}

/// sacrebleu's per-segment preprocessing: strip trailing whitespace, tokenize.
fn preprocess(segment: &str) -> String {
    tokenize_13a(segment.trim_end_matches(is_python_whitespace))
}

fn tokens(tokenized: &str) -> Vec<&str> {
    tokenized
        .split(is_python_whitespace)
        .filter(|t| !t.is_empty())
        .collect()
}

/// Counts of all n-grams of orders 1..=4, keyed by the token slice.
fn ngram_counts<'a>(toks: &'a [&'a str]) -> HashMap<&'a [&'a str], usize> {
    let mut counts = HashMap::new();
    for n in 1..=MAX_NGRAM_ORDER {
        for gram in toks.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

/// The reference length closest to the hypothesis length; ties go to the
/// shorter reference.
fn closest_ref_len(hyp_len: usize, ref_lens: &[usize]) -> usize {
    ref_lens
        .iter()
        .copied()
        .min_by_key(|&r| (hyp_len.abs_diff(r), r))
        .unwrap_or(0)
}

/// Sufficient statistics of one segment.
#[derive(Default)]
struct SegmentStats {
    hyp_len: usize,
    ref_len: usize,
    correct: [usize; MAX_NGRAM_ORDER],
    total: [usize; MAX_NGRAM_ORDER],
}

fn segment_stats(hypothesis: &str, references: &[&str]) -> SegmentStats {
    let ref_tokenized: Vec<String> = references.iter().map(|r| preprocess(r)).collect();
    let ref_tokens: Vec<Vec<&str>> = ref_tokenized.iter().map(|r| tokens(r)).collect();
    let ref_lens: Vec<usize> = ref_tokens.iter().map(Vec::len).collect();
    // Clip each n-gram by its highest count in any single reference.
    let mut max_ref_counts: HashMap<&[&str], usize> = HashMap::new();
    for toks in &ref_tokens {
        for (gram, count) in ngram_counts(toks) {
            let slot = max_ref_counts.entry(gram).or_insert(0);
            *slot = (*slot).max(count);
        }
    }

    let hyp_tokenized = preprocess(hypothesis);
    let hyp_tokens = tokens(&hyp_tokenized);
    let mut stats = SegmentStats {
        hyp_len: hyp_tokens.len(),
        ref_len: closest_ref_len(hyp_tokens.len(), &ref_lens),
        ..SegmentStats::default()
    };
    for (gram, count) in ngram_counts(&hyp_tokens) {
        let order = gram.len() - 1;
        stats.total[order] += count;
        if let Some(&ref_count) = max_ref_counts.get(gram) {
            stats.correct[order] += count.min(ref_count);
        }
    }
    stats
}

/// sacrebleu's `my_log`: log with log(0) floored to -9999999999.
fn floored_ln(x: f64) -> f64 {
    if x == 0.0 {
        -9_999_999_999.0
    } else {
        x.ln()
    }
}

/// BLEU from corpus totals, with sacrebleu's 'exp' smoothing (mteval-v13a's
/// NIST smoothing): the k-th order without matches gets precision
/// `100 / (2^k * total)`.
fn score_from_stats(
    correct: [usize; MAX_NGRAM_ORDER],
    total: [usize; MAX_NGRAM_ORDER],
    sys_len: usize,
    ref_len: usize,
) -> BleuScore {
    let bp = if sys_len >= ref_len {
        1.0
    } else if sys_len > 0 {
        (1.0 - ref_len as f64 / sys_len as f64).exp()
    } else {
        0.0
    };
    let mut result = BleuScore {
        score: 0.0,
        precisions: [0.0; MAX_NGRAM_ORDER],
        bp,
        sys_len,
        ref_len,
        counts: correct,
        totals: total,
    };
    if correct.iter().all(|&c| c == 0) {
        return result;
    }
    let mut smooth = 1.0f64;
    for n in 0..MAX_NGRAM_ORDER {
        // Orders the hypotheses are too short for keep precision 0 and so
        // drive the score to 0, as in sacrebleu without effective_order.
        if total[n] == 0 {
            break;
        }
        result.precisions[n] = if correct[n] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * total[n] as f64)
        } else {
            100.0 * correct[n] as f64 / total[n] as f64
        };
    }
    let log_sum: f64 = result.precisions.iter().map(|&p| floored_ln(p)).sum();
    result.score = bp * (log_sum / MAX_NGRAM_ORDER as f64).exp();
    result
}

/// Corpus BLEU-4 of `hypotheses` against their references.
///
/// Shapes: `hypotheses` is `(n,)`, `n >= 1`; `references` is `(n,)` too,
/// `references[i]` holding the one or more references of hypothesis `i`
/// (sacrebleu takes the transpose: one stream per reference index, padded
/// with `None`; this is the same data grouped per hypothesis).
pub fn corpus_bleu<H, R, S>(hypotheses: &[H], references: &[R]) -> Result<BleuScore>
where
    H: AsRef<str>,
    R: AsRef<[S]>,
    S: AsRef<str>,
{
    if hypotheses.is_empty() {
        return Err(MetricsError::Empty {
            what: "hypothesis list",
            need: "at least one hypothesis is required",
        });
    }
    check_len(
        "reference lists (one per hypothesis)",
        hypotheses.len(),
        references.len(),
    )?;
    let mut correct = [0usize; MAX_NGRAM_ORDER];
    let mut total = [0usize; MAX_NGRAM_ORDER];
    let (mut sys_len, mut ref_len) = (0usize, 0usize);
    for (i, (hyp, refs)) in hypotheses.iter().zip(references).enumerate() {
        let refs: Vec<&str> = refs.as_ref().iter().map(AsRef::as_ref).collect();
        if refs.is_empty() {
            return Err(MetricsError::InvalidArgument(format!(
                "hypothesis {i} has no reference"
            )));
        }
        let stats = segment_stats(hyp.as_ref(), &refs);
        sys_len += stats.hyp_len;
        ref_len += stats.ref_len;
        for n in 0..MAX_NGRAM_ORDER {
            correct[n] += stats.correct[n];
            total[n] += stats.total[n];
        }
    }
    Ok(score_from_stats(correct, total, sys_len, ref_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_basics() {
        assert_eq!(tokenize_13a("Hello, world!"), "Hello , world !");
        assert_eq!(tokenize_13a("3.14 and 1,000"), "3.14 and 1,000");
        assert_eq!(tokenize_13a("1990-2000"), "1990 - 2000");
        assert_eq!(tokenize_13a("e-mail"), "e-mail");
        assert_eq!(tokenize_13a(""), "");
    }

    #[test]
    fn identical_corpus_scores_100() {
        let hyps = ["The quick brown fox jumps over the lazy dog."];
        let refs = [["The quick brown fox jumps over the lazy dog."]];
        let s = corpus_bleu(&hyps, &refs).unwrap();
        assert!((s.score - 100.0).abs() < 1e-9);
        assert_eq!(s.bp, 1.0);
        assert_eq!(s.sys_len, 10);
    }

    #[test]
    fn closest_reference_length_ties_to_shorter() {
        assert_eq!(closest_ref_len(5, &[7, 3]), 3);
        assert_eq!(closest_ref_len(5, &[3, 7]), 3);
        assert_eq!(closest_ref_len(5, &[6, 3]), 6);
    }

    #[test]
    fn clipping_limits_repeated_words() {
        let s = corpus_bleu(&["the the the the"], &[vec!["the cat"]]).unwrap();
        assert_eq!(s.counts[0], 1);
        assert_eq!(s.totals[0], 4);
    }

    #[test]
    fn bad_inputs() {
        let none: [&str; 0] = [];
        assert!(matches!(
            corpus_bleu(&none, &[["a"]; 0]),
            Err(MetricsError::Empty { .. })
        ));
        assert!(matches!(
            corpus_bleu(&["a", "b"], &[vec!["a"]]),
            Err(MetricsError::ShapeMismatch { .. })
        ));
        let empty_refs: Vec<Vec<&str>> = vec![vec![]];
        assert!(matches!(
            corpus_bleu(&["a"], &empty_refs),
            Err(MetricsError::InvalidArgument(_))
        ));
    }
}
