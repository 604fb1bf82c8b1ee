//! The Japanese segmenter against the pinned Python TinySegmenter
//! (tools/fixtures/tinysegmenter_model.py wrote the cases).

use brainrecon_language::japanese::{has_japanese, segment};
use brainrecon_language::word2vec::words_of;

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    tokens: Vec<String>,
}

#[derive(serde::Deserialize)]
struct Cases {
    cases: Vec<Case>,
}

#[test]
fn tokens_equal_the_python_package() {
    let text = include_str!("fixtures/tinysegmenter.json");
    let cases: Cases = serde_json::from_str(text).unwrap();
    assert!(cases.cases.len() >= 40);
    for case in &cases.cases {
        assert_eq!(segment(&case.text), case.tokens, "{:?}", case.text);
    }
}

#[test]
fn tokens_equal_the_python_package_on_the_ds005531_fixture_sentences() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../cli/tests/fixtures/ds005531_extra/segmentation.json"
    );
    let cases: Cases = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(cases.cases.len() >= 40);
    for case in &cases.cases {
        assert_eq!(segment(&case.text), case.tokens, "{:?}", case.text);
    }
}

#[test]
fn words_of_japanese_are_segmented_and_lower_cased() {
    assert_eq!(
        words_of("男が車を運転している。ABC"),
        ["男", "が", "車", "を", "運転", "し", "て", "いる", "abc"]
    );
    // A clause without spaces is no longer one word.
    assert!(words_of("白いシャツを着た男性").len() >= 4);
    assert_eq!(
        words_of("The man's car, red."),
        ["the", "man's", "car", "red"]
    );
    assert!(has_japanese("カタカナ") && has_japanese("漢字") && !has_japanese("Café 42"));
}

/// Segmentation is linear with a small constant: a long line costs a fixed number of table
/// lookups per character (the issue measured 5–9 µs per character before).
#[test]
fn a_long_line_segments_in_linear_time() {
    let unit = "今日は晴れていたので、私たちは東京の公園まで歩いて行きました。";
    let text = unit.repeat(4_000);
    let start = std::time::Instant::now();
    let words = segment(&text);
    let elapsed = start.elapsed();
    assert_eq!(words.concat(), text);
    eprintln!(
        "{} characters in {:.3} s ({:.2} µs per character)",
        text.chars().count(),
        elapsed.as_secs_f64(),
        1e6 * elapsed.as_secs_f64() / text.chars().count() as f64
    );
}
