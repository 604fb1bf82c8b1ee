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
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

static MODEL_JSON: &str = include_str!("../../../models/tinysegmenter/model.json");

/// The model's tables in the order [`Table`] numbers them.
const TABLE_NAMES: [&str; 38] = [
    "UP1", "UP2", "UP3", "BP1", "BP2", "UW1", "UW2", "UW3", "UW4", "UW5", "UW6", "BW1", "BW2",
    "BW3", "TW1", "TW2", "TW3", "TW4", "UC1", "UC2", "UC3", "UC4", "UC5", "UC6", "BC1", "BC2",
    "BC3", "TC1", "TC2", "TC3", "TC4", "UQ1", "UQ2", "UQ3", "BQ1", "BQ2", "BQ3", "BQ4",
];
/// The four tables after [`TABLE_NAMES`].
const TQ_NAMES: [&str; 4] = ["TQ1", "TQ2", "TQ3", "TQ4"];

/// FNV-1a: the keys are a few bytes long, where SipHash's set-up dominates the lookup.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type Table = HashMap<Box<str>, i32, BuildHasherDefault<Fnv>>;

struct Model {
    bias: i32,
    /// [`TABLE_NAMES`] then [`TQ_NAMES`], by index.
    tables: Vec<Table>,
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
        let tables = TABLE_NAMES
            .iter()
            .chain(TQ_NAMES.iter())
            .map(|name| {
                file.tables
                    .get(*name)
                    .map(|t| t.iter().map(|(k, &v)| (k.as_str().into(), v)).collect())
                    .unwrap_or_default()
            })
            .collect();
        Model {
            bias: file.bias,
            tables,
        }
    })
}

/// Scores of keys built from parts in one reused buffer (no allocation per lookup).
struct Scorer<'m> {
    model: &'m Model,
    key: String,
}

impl Scorer<'_> {
    /// The weight of `parts` concatenated in table `table`.
    fn score(&mut self, table: usize, parts: &[&str]) -> i32 {
        self.key.clear();
        parts.iter().for_each(|p| self.key.push_str(p));
        self.model.tables[table]
            .get(self.key.as_str())
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

/// Splits Japanese text into words (every character kept, in order). Linear in the text's
/// length: a fixed number of table lookups per character.
pub fn segment(text: &str) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut scorer = Scorer {
        model: model(),
        key: String::with_capacity(16),
    };
    let mut seg: Vec<&str> = vec!["B3", "B2", "B1"];
    let mut types: Vec<&str> = vec!["O"; 3];
    for (at, c) in text.char_indices() {
        seg.push(&text[at..at + c.len_utf8()]);
        types.push(char_type(c));
    }
    seg.extend(["E1", "E2", "E3"]);
    types.extend(["O"; 3]);
    let mut words = Vec::new();
    let mut word = String::from(seg[3]);
    let mut previous = ["U", "U", "U"];
    for i in 4..seg.len() - 3 {
        let w: [&str; 6] = std::array::from_fn(|k| seg[i - 3 + k]);
        let c: [&str; 6] = std::array::from_fn(|k| types[i - 3 + k]);
        let score = scorer.model.bias + boundary_score(&mut scorer, &w, &c, &previous);
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
/// last three decisions `p`. Tables are numbered as [`TABLE_NAMES`] lists them.
fn boundary_score(s: &mut Scorer, w: &[&str; 6], c: &[&str; 6], p: &[&str; 3]) -> i32 {
    let [p1, p2, p3] = *p;
    let mut total = s.score(0, &[p1]) + s.score(1, &[p2]) + s.score(2, &[p3]);
    total += s.score(3, &[p1, p2]) + s.score(4, &[p2, p3]);
    for k in 0..6 {
        total += s.score(5 + k, &[w[k]]);
    }
    total += s.score(11, &w[1..3]) + s.score(12, &w[2..4]) + s.score(13, &w[3..5]);
    for k in 0..4 {
        total += s.score(14 + k, &w[k..k + 3]);
    }
    for k in 0..6 {
        total += s.score(18 + k, &[c[k]]);
    }
    total += s.score(24, &c[1..3]) + s.score(25, &c[2..4]) + s.score(26, &c[3..5]);
    for k in 0..4 {
        total += s.score(27 + k, &c[k..k + 3]);
    }
    total += s.score(31, &[p1, c[0]]) + s.score(32, &[p2, c[1]]) + s.score(33, &[p3, c[2]]);
    total += s.score(34, &[p2, c[1], c[2]]) + s.score(35, &[p2, c[2], c[3]]);
    total += s.score(36, &[p3, c[1], c[2]]) + s.score(37, &[p3, c[2], c[3]]);
    total += s.score(38, &[p2, c[0], c[1], c[2]]) + s.score(39, &[p2, c[1], c[2], c[3]]);
    total += s.score(40, &[p3, c[0], c[1], c[2]]) + s.score(41, &[p3, c[1], c[2], c[3]]);
    total
}
