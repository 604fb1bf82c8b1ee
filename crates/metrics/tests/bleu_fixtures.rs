//! BLEU and the 13a tokenizer against sacrebleu.

mod common;

use brainrecon_metrics::bleu::{corpus_bleu, tokenize_13a};
use common::{assert_close, load};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    tokenizer_cases: Vec<TokenizerCase>,
    corpus_cases: Vec<CorpusCase>,
}

#[derive(Deserialize)]
struct TokenizerCase {
    input: String,
    expected: String,
}

#[derive(Deserialize)]
struct CorpusCase {
    name: String,
    hypotheses: Vec<String>,
    references: Vec<Vec<String>>,
    expected: Expected,
}

#[derive(Deserialize)]
struct Expected {
    score: f64,
    precisions: Vec<f64>,
    bp: f64,
    sys_len: usize,
    ref_len: usize,
    counts: Vec<usize>,
    totals: Vec<usize>,
}

fn fixture() -> Fixture {
    load("bleu.json")
}

#[test]
fn tokenizer_matches_sacrebleu_13a() {
    for case in &fixture().tokenizer_cases {
        assert_eq!(
            tokenize_13a(&case.input),
            case.expected,
            "input {:?}",
            case.input
        );
    }
}

#[test]
fn corpus_bleu_matches_sacrebleu() {
    let fx = fixture();
    assert!(fx
        .corpus_cases
        .iter()
        .any(|c| c.expected.score > 1.0 && c.expected.score < 99.0));
    for c in &fx.corpus_cases {
        let s = corpus_bleu(&c.hypotheses, &c.references).unwrap();
        let e = &c.expected;
        let n = &c.name;
        assert_eq!(s.counts.to_vec(), e.counts, "{n} counts");
        assert_eq!(s.totals.to_vec(), e.totals, "{n} totals");
        assert_eq!(s.sys_len, e.sys_len, "{n} sys_len");
        assert_eq!(s.ref_len, e.ref_len, "{n} ref_len");
        assert_close(&format!("{n} bp"), s.bp, e.bp, 1e-12);
        for (k, (a, b)) in s.precisions.iter().zip(&e.precisions).enumerate() {
            assert_close(&format!("{n} precision {}", k + 1), *a, *b, 1e-9);
        }
        assert_close(&format!("{n} score"), s.score, e.score, 1e-6);
    }
}
