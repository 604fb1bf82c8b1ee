//! Caption metrics against pycocoevalcap 1.2 (its PTBTokenizer jar and
//! METEOR 1.5 jar) and a transcription of clipscore.py's formulas, on the
//! fixtures written by tools/fixtures/caption_metrics.py.

mod common;

use std::path::PathBuf;

use brainrecon_metrics::caption::cider::coco_cider;
use brainrecon_metrics::caption::coco_bleu::coco_bleu;
use brainrecon_metrics::caption::meteor::normalize::{normalize_line, parse_nonbreaking_prefixes};
use brainrecon_metrics::caption::meteor::stem::snowball_english_stem;
use brainrecon_metrics::caption::meteor::{coco_meteor, MeteorFiles};
use brainrecon_metrics::caption::ptb::coco_tokenize;
use brainrecon_metrics::caption::rouge::coco_rouge_l;
use brainrecon_metrics::caption::{caption_scores_detailed, coco_tokenize_corpus};
use brainrecon_metrics::{clip_scores, ReferenceEmbeddings};
use common::{assert_close, load};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    hypotheses: Vec<String>,
    references: Vec<Vec<String>>,
    hypotheses_tokenized: Vec<String>,
    references_tokenized: Vec<Vec<String>>,
    corpus: Corpus,
    items: Items,
    tokenizer_cases: Vec<Case>,
    tokenizer_random_lines: Vec<String>,
    tokenizer_random_expected: Vec<String>,
    stemmer_cases: Vec<Case>,
    normalizer_cases: Vec<Case>,
    clip_cases: Vec<ClipCase>,
}

#[derive(Deserialize)]
struct Corpus {
    bleu: Vec<f64>,
    meteor: f64,
    rouge_l: f64,
    cider: f64,
}

#[derive(Deserialize)]
struct Items {
    bleu: Vec<Vec<f64>>,
    meteor: Vec<f64>,
    rouge_l: Vec<f64>,
    cider: Vec<f64>,
    meteor_stats: Vec<Vec<f64>>,
}

#[derive(Deserialize)]
struct Case {
    input: String,
    expected: String,
}

#[derive(Deserialize)]
struct ClipCase {
    name: String,
    images: Vec<Vec<f32>>,
    captions: Vec<Vec<f32>>,
    references: Vec<Vec<Vec<f32>>>,
    clip_s_items: Vec<f64>,
    refclip_s_items: Vec<f64>,
    clip_s: f64,
    refclip_s: f64,
}

fn fixture() -> Fixture {
    load("caption_metrics.json")
}

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// METEOR's data cut down to this corpus (see the fixture script).
fn subset_files() -> MeteorFiles {
    MeteorFiles {
        jar: fixture_path("meteor_subset.jar"),
        paraphrase: Some(fixture_path("meteor_subset_paraphrase-en.gz")),
    }
}

#[test]
fn corpus_tokens_match_ptbtokenizer() {
    let fx = fixture();
    let (hyps, refs) = coco_tokenize_corpus(&fx.hypotheses, &fx.references);
    for (i, (got, want)) in hyps.iter().zip(&fx.hypotheses_tokenized).enumerate() {
        assert_eq!(got, want, "hypothesis {i}: {:?}", fx.hypotheses[i]);
    }
    for (i, (got, want)) in refs.iter().zip(&fx.references_tokenized).enumerate() {
        assert_eq!(got, want, "references of item {i}");
    }
}

#[test]
fn tokenizer_cases_match_ptbtokenizer() {
    let fx = fixture();
    let inputs: Vec<&str> = fx
        .tokenizer_cases
        .iter()
        .map(|c| c.input.as_str())
        .collect();
    let got = coco_tokenize(&inputs);
    for (g, c) in got.iter().zip(&fx.tokenizer_cases) {
        assert_eq!(g, &c.expected, "input {:?}", c.input);
    }
    let got = coco_tokenize(&fx.tokenizer_random_lines);
    assert_eq!(got.len(), fx.tokenizer_random_expected.len());
    for (i, (g, e)) in got.iter().zip(&fx.tokenizer_random_expected).enumerate() {
        assert_eq!(g, e, "random line {i}: {:?}", fx.tokenizer_random_lines[i]);
    }
}

#[test]
fn bleu_matches_pycocoevalcap() {
    let fx = fixture();
    let b = coco_bleu(&fx.hypotheses_tokenized, &fx.references_tokenized);
    for n in 0..4 {
        assert_close(
            &format!("BLEU-{}", n + 1),
            b.corpus[n],
            fx.corpus.bleu[n],
            1e-12,
        );
        for (i, item) in b.items.iter().enumerate() {
            assert_close(
                &format!("BLEU-{} item {i}", n + 1),
                item[n],
                fx.items.bleu[n][i],
                1e-12,
            );
        }
    }
    // Not a degenerate corpus: scores strictly between the extremes.
    assert!(fx.corpus.bleu[3] > 0.1 && fx.corpus.bleu[3] < 0.9);
}

#[test]
fn rouge_l_matches_pycocoevalcap() {
    let fx = fixture();
    let r = coco_rouge_l(&fx.hypotheses_tokenized, &fx.references_tokenized);
    assert_close("ROUGE-L", r.corpus, fx.corpus.rouge_l, 1e-12);
    for (i, (a, b)) in r.items.iter().zip(&fx.items.rouge_l).enumerate() {
        assert_close(&format!("ROUGE-L item {i}"), *a, *b, 1e-12);
    }
}

#[test]
fn cider_matches_pycocoevalcap() {
    let fx = fixture();
    let c = coco_cider(&fx.hypotheses_tokenized, &fx.references_tokenized);
    assert_close("CIDEr", c.corpus, fx.corpus.cider, 1e-9);
    for (i, (a, b)) in c.items.iter().zip(&fx.items.cider).enumerate() {
        assert_close(&format!("CIDEr item {i}"), *a, *b, 1e-9);
    }
}

#[test]
fn meteor_matches_meteor_jar() {
    let fx = fixture();
    let m = coco_meteor(
        &fx.hypotheses_tokenized,
        &fx.references_tokenized,
        &subset_files(),
    )
    .unwrap();
    for (i, (got, want)) in m.stats.iter().zip(&fx.items.meteor_stats).enumerate() {
        assert_eq!(&got.to_vec(), want, "METEOR statistics of item {i}");
    }
    // The jar prints full-precision doubles: no rounding to allow for.
    for (i, (a, b)) in m.items.iter().zip(&fx.items.meteor).enumerate() {
        assert_close(&format!("METEOR item {i}"), *a, *b, 1e-12);
    }
    assert_close("METEOR", m.corpus, fx.corpus.meteor, 1e-12);
}

#[test]
fn meteor_needs_its_modules() {
    // Without the paraphrase table (and so without its matches) the scores
    // must change on this corpus: the fixture exercises that module.
    let fx = fixture();
    let files = MeteorFiles {
        paraphrase: None,
        ..subset_files()
    };
    let m = coco_meteor(&fx.hypotheses_tokenized, &fx.references_tokenized, &files).unwrap();
    assert!((m.corpus - fx.corpus.meteor).abs() > 1e-4);
    // Every module (exact, stem, synonym, paraphrase) aligns some words of
    // some item in METEOR's own statistics (hypothesis matches of module k
    // sit at 4 + 4k, content, and 6 + 4k, function words).
    for k in 0..4 {
        let used = fx
            .items
            .meteor_stats
            .iter()
            .any(|s| s[4 + 4 * k] + s[6 + 4 * k] > 0.0);
        assert!(used, "module {k} is not exercised by the corpus");
    }
}

#[test]
fn stemmer_matches_meteor_jar() {
    for c in &fixture().stemmer_cases {
        assert_eq!(
            snowball_english_stem(&c.input),
            c.expected,
            "word {:?}",
            c.input
        );
    }
}

#[test]
fn normalizer_matches_meteor_jar() {
    let files = subset_files();
    let jar_text = read_jar_prefixes(&files.jar);
    let prefixes = parse_nonbreaking_prefixes(&jar_text);
    for c in &fixture().normalizer_cases {
        assert_eq!(
            normalize_line(&c.input, &prefixes),
            c.expected,
            "line {:?}",
            c.input
        );
    }
}

/// The nonbreaking-prefix list, through the crate's own jar reader.
fn read_jar_prefixes(jar: &std::path::Path) -> String {
    brainrecon_metrics::caption::meteor::resources::read_jar_text(
        jar,
        "nonbreaking/english.prefixes",
    )
    .unwrap()
}

#[test]
fn caption_scores_report_percentages() {
    let fx = fixture();
    let (s, items) =
        caption_scores_detailed(&fx.hypotheses, &fx.references, Some(&subset_files())).unwrap();
    assert_close("BLEU-1 %", s.bleu_1, 100.0 * fx.corpus.bleu[0], 1e-9);
    assert_close("BLEU-4 %", s.bleu_4, 100.0 * fx.corpus.bleu[3], 1e-9);
    assert_close(
        "METEOR %",
        s.meteor.unwrap(),
        100.0 * fx.corpus.meteor,
        1e-9,
    );
    assert_close("ROUGE-L %", s.rouge_l, 100.0 * fx.corpus.rouge_l, 1e-9);
    assert_close("CIDEr %", s.cider, 100.0 * fx.corpus.cider, 1e-7);
    assert_eq!(s.n_items, fx.hypotheses.len());
    assert_eq!(items.rouge_l.len(), fx.hypotheses.len());
    let json = serde_json::to_value(&s).unwrap();
    assert!(json.get("bleu_4").is_some() && json.get("clip_s").is_some());
}

#[test]
fn clip_scores_match_clipscore_formulas() {
    for c in &fixture().clip_cases {
        let dim = c.images[0].len();
        let images: Vec<f32> = c.images.concat();
        let captions: Vec<f32> = c.captions.concat();
        let counts: Vec<usize> = c.references.iter().map(Vec::len).collect();
        let refs: Vec<f32> = c.references.iter().flat_map(|r| r.concat()).collect();
        let s = clip_scores(
            &images,
            &captions,
            dim,
            Some(ReferenceEmbeddings {
                embeddings: &refs,
                counts: &counts,
            }),
        )
        .unwrap();
        let n = &c.name;
        assert_close(&format!("{n} CLIP-S"), s.clip_s, c.clip_s, 1e-12);
        assert_close(
            &format!("{n} RefCLIP-S"),
            s.ref_clip_s.unwrap(),
            c.refclip_s,
            1e-12,
        );
        for (i, (a, b)) in s.clip_s_items.iter().zip(&c.clip_s_items).enumerate() {
            assert_close(&format!("{n} CLIP-S item {i}"), *a, *b, 1e-12);
        }
        let ref_items = s.ref_clip_s_items.as_ref().unwrap();
        for (i, (a, b)) in ref_items.iter().zip(&c.refclip_s_items).enumerate() {
            assert_close(&format!("{n} RefCLIP-S item {i}"), *a, *b, 1e-12);
        }
    }
}

/// Opt-in check against a full pycocoevalcap install (its own jar and
/// paraphrase table): `BRAINRECON_METEOR_JAR=/path/to/meteor-1.5.jar cargo
/// test -p brainrecon-metrics --test caption_metrics -- --ignored`.
#[test]
#[ignore = "needs pycocoevalcap's meteor-1.5.jar (BRAINRECON_METEOR_JAR)"]
fn meteor_with_full_jar_matches() {
    let jar = std::env::var("BRAINRECON_METEOR_JAR")
        .expect("set BRAINRECON_METEOR_JAR to pycocoevalcap/meteor/meteor-1.5.jar");
    let fx = fixture();
    let m = coco_meteor(
        &fx.hypotheses_tokenized,
        &fx.references_tokenized,
        &MeteorFiles::from_jar(jar),
    )
    .unwrap();
    for (i, (got, want)) in m.stats.iter().zip(&fx.items.meteor_stats).enumerate() {
        assert_eq!(&got.to_vec(), want, "METEOR statistics of item {i}");
    }
    assert_close("METEOR", m.corpus, fx.corpus.meteor, 1e-12);
}
