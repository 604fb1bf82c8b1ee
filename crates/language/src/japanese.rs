//! Japanese word segmentation: TinySegmenter (Taku Kudo's compact segmenter, New BSD), its
//! feature weights read from `models/tinysegmenter/model.json`, which
//! `tools/fixtures/tinysegmenter_model.py` exports from the pinned Python package.
//!
//! Why not a dictionary analyser (lindera, vibrato, sudachi): their Rust crates fetch the
//! dictionary from the network at build time or need one installed, and crates.io's size limit
//! keeps dictionaries out of crates; this one builds offline. TinySegmenter splits newspaper
//! text at about 95% word F-measure, enough for the word-level features of annotations.
//!
//! Each character boundary is scored by a linear model over character n-grams, character
//! types and the previous decisions; a positive score starts a new word. The tokens equal the
//! Python package's (`crates/language/tests/fixtures/tinysegmenter.json`).

use std::collections::HashMap;
use std::sync::OnceLock;

static MODEL_JSON: &str = include_str!("../../../models/tinysegmenter/model.json");

struct Model {
    bias: i32,
    tables: HashMap<String, HashMap<String, i32>>,
}

#[derive(serde::Deserialize)]
struct ModelFile {
    bias: i32,
    tables: HashMap<String, HashMap<String, i32>>,
}

fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        // The file is compiled in and checked by this crate's tests: it cannot be malformed
        // at run time.
        let file: ModelFile =
            serde_json::from_str(MODEL_JSON).expect("embedded TinySegmenter model parses");
        Model {
            bias: file.bias,
            tables: file.tables,
        }
    })
}

impl Model {
    fn score(&self, table: &str, key: &str) -> i32 {
        self.tables
            .get(table)
            .and_then(|t| t.get(key))
            .copied()
            .unwrap_or(0)
    }
}

/// TinySegmenter's character classes: M kanji numerals, H kanji, I hiragana, K katakana,
/// A Latin letters, N digits, O anything else (tested in this order).
fn char_type(c: char) -> &'static str {
    const NUMERALS: &str = "一二三四五六七八九十百千万億兆";
    match c {
        _ if NUMERALS.contains(c) => "M",
        '一'..='龠' | '々' | '〆' | 'ヵ' | 'ヶ' => "H",
        'ぁ'..='ん' => "I",
        'ァ'..='ヺ' | 'ー' | 'ｦ'..='ﾞ' => "K",
        'a'..='z' | 'A'..='Z' | 'ａ'..='ｚ' | 'Ａ'..='Ｚ' => "A",
        'À'..='Ö' | 'Ø'..='ö' | 'ø'..='ÿ' | 'Ā'..='ſ' => "A",
        '0'..='9' | '０'..='９' => "N",
        _ => "O",
    }
}

/// True when `text` holds hiragana, katakana or kanji (then [`segment`] splits it).
pub fn has_japanese(text: &str) -> bool {
    text.chars()
        .any(|c| matches!(char_type(c), "H" | "I" | "K" | "M") && !c.is_ascii())
}

/// Splits Japanese text into words (every character kept, in order).
pub fn segment(text: &str) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    let m = model();
    let mut seg: Vec<String> = ["B3", "B2", "B1"].map(String::from).to_vec();
    let mut types: Vec<&str> = vec!["O"; 3];
    for c in text.chars() {
        seg.push(c.to_string());
        types.push(char_type(c));
    }
    seg.extend(["E1", "E2", "E3"].map(String::from));
    types.extend(["O"; 3]);
    let mut words = Vec::new();
    let mut word = seg[3].clone();
    let mut previous = ["U", "U", "U"];
    for i in 4..seg.len() - 3 {
        let w: [&str; 6] = std::array::from_fn(|k| seg[i - 3 + k].as_str());
        let c: [&str; 6] = std::array::from_fn(|k| types[i - 3 + k]);
        let score = m.bias + boundary_score(m, &w, &c, &previous);
        let decision = if score > 0 {
            words.push(std::mem::take(&mut word));
            "B"
        } else {
            "O"
        };
        previous = [previous[1], previous[2], decision];
        word.push_str(w[3]);
    }
    words.push(word);
    words
}

/// The model's score for a boundary before `w[3]`: characters `w`, their types `c` and the
/// last three decisions `p`.
fn boundary_score(m: &Model, w: &[&str; 6], c: &[&str; 6], p: &[&str; 3]) -> i32 {
    let cat = |parts: &[&str]| parts.concat();
    let [p1, p2, p3] = *p;
    let mut s = m.score("UP1", p1) + m.score("UP2", p2) + m.score("UP3", p3);
    s += m.score("BP1", &cat(&[p1, p2])) + m.score("BP2", &cat(&[p2, p3]));
    for (k, table) in ["UW1", "UW2", "UW3", "UW4", "UW5", "UW6"]
        .iter()
        .enumerate()
    {
        s += m.score(table, w[k]);
    }
    s += m.score("BW1", &cat(&w[1..3])) + m.score("BW2", &cat(&w[2..4]));
    s += m.score("BW3", &cat(&w[3..5]));
    for (k, table) in ["TW1", "TW2", "TW3", "TW4"].iter().enumerate() {
        s += m.score(table, &cat(&w[k..k + 3]));
    }
    for (k, table) in ["UC1", "UC2", "UC3", "UC4", "UC5", "UC6"]
        .iter()
        .enumerate()
    {
        s += m.score(table, c[k]);
    }
    s += m.score("BC1", &cat(&c[1..3])) + m.score("BC2", &cat(&c[2..4]));
    s += m.score("BC3", &cat(&c[3..5]));
    for (k, table) in ["TC1", "TC2", "TC3", "TC4"].iter().enumerate() {
        s += m.score(table, &cat(&c[k..k + 3]));
    }
    s += m.score("UQ1", &cat(&[p1, c[0]])) + m.score("UQ2", &cat(&[p2, c[1]]));
    s += m.score("UQ3", &cat(&[p3, c[2]]));
    s += m.score("BQ1", &cat(&[p2, c[1], c[2]])) + m.score("BQ2", &cat(&[p2, c[2], c[3]]));
    s += m.score("BQ3", &cat(&[p3, c[1], c[2]])) + m.score("BQ4", &cat(&[p3, c[2], c[3]]));
    s += m.score("TQ1", &cat(&[p2, c[0], c[1], c[2]]));
    s += m.score("TQ2", &cat(&[p2, c[1], c[2], c[3]]));
    s += m.score("TQ3", &cat(&[p3, c[0], c[1], c[2]]));
    s += m.score("TQ4", &cat(&[p3, c[1], c[2], c[3]]));
    s
}
