//! METEOR 1.5 as pycocoevalcap runs it: `java -jar meteor-1.5.jar - -
//! -stdio -l en -norm`, one `SCORE` line per image (hypothesis against its
//! references, best reference kept), then one `EVAL` line whose answer is
//! the score of each image and the corpus score from the summed statistics.
//!
//! English, default task ("rank"): modules exact, stem, synonym, paraphrase
//! with weights 1.0, 0.6, 0.8, 0.6; alpha 0.85, beta 0.2, gamma 0.6, delta
//! 0.75; `-norm` normalizes and lower-cases both sides, keeping punctuation.
//!
//! The algorithms (normalizer, Snowball stemmer, WordNet morphology,
//! aligner, scorer) are implemented here; the data METEOR needs — function
//! words, nonbreaking prefixes, WordNet synonyms and the paraphrase table —
//! are read from the user's `meteor-1.5.jar` and `paraphrase-en.gz` (see
//! [`MeteorFiles`]). With the full resources the scores equal
//! pycocoevalcap's (tests compare per-image statistics exactly).

pub mod align;
pub mod normalize;
pub mod resources;
pub mod stem;

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde::Serialize;

use crate::error::Result;
use align::{align, AlignerData, AlignmentCounts, Module, PhraseIndex};
use normalize::normalize_line;
pub use resources::{MeteorFiles, MeteorResources, ParaphraseTable};

/// Modules in METEOR's English order (the order matters: it numbers the
/// stages and breaks ties between candidate matches).
pub const ENGLISH_MODULES: [Module; 4] = [
    Module::Exact,
    Module::Stem,
    Module::Synonym,
    Module::Paraphrase,
];

/// Parameters of METEOR 1.5's English "rank" task (its default).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeteorParams {
    /// Weight of recall against precision in the harmonic mean.
    pub alpha: f64,
    /// Exponent of the fragmentation penalty.
    pub beta: f64,
    /// Maximum fragmentation penalty.
    pub gamma: f64,
    /// Weight of content words against function words.
    pub delta: f64,
    /// Weights of the exact, stem, synonym and paraphrase matches.
    pub weights: [f64; 4],
}

/// `Constants.PARAM_RANK[LANG_EN]` and `WEIGHT_RANK[LANG_EN]`.
pub const ENGLISH_RANK: MeteorParams = MeteorParams {
    alpha: 0.85,
    beta: 0.20,
    gamma: 0.60,
    delta: 0.75,
    weights: [1.0, 0.6, 0.8, 0.6],
};

/// METEOR's sufficient statistics of one segment (or a sum of segments), in
/// the order the jar prints them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MeteorStats {
    /// Hypothesis length in words.
    pub test_length: f64,
    /// Reference length in words.
    pub reference_length: f64,
    /// Function words in the hypothesis.
    pub test_function_words: f64,
    /// Function words in the reference.
    pub reference_function_words: f64,
    /// Per module: hypothesis content-word matches.
    pub test_content: [f64; 4],
    /// Per module: reference content-word matches.
    pub reference_content: [f64; 4],
    /// Per module: hypothesis function-word matches.
    pub test_function: [f64; 4],
    /// Per module: reference function-word matches.
    pub reference_function: [f64; 4],
    /// Chunks of the alignment (perfect segments add none to a sum).
    pub chunks: f64,
    /// Matched hypothesis words, all modules.
    pub test_word_matches: f64,
    /// Matched reference words, all modules.
    pub reference_word_matches: f64,
}

impl MeteorStats {
    fn from_alignment(c: &AlignmentCounts) -> MeteorStats {
        let mut s = MeteorStats {
            test_length: c.len1 as f64,
            reference_length: c.len2 as f64,
            test_function_words: c.function1 as f64,
            reference_function_words: c.function2 as f64,
            chunks: c.chunks as f64,
            ..MeteorStats::default()
        };
        for k in 0..c.content1.len() {
            s.test_content[k] = c.content1[k] as f64;
            s.reference_content[k] = c.content2[k] as f64;
            s.test_function[k] = c.functional1[k] as f64;
            s.reference_function[k] = c.functional2[k] as f64;
            s.test_word_matches += (c.content1[k] + c.functional1[k]) as f64;
            s.reference_word_matches += (c.content2[k] + c.functional2[k]) as f64;
        }
        s
    }

    /// The 23 numbers of METEOR's `SCORE` output line.
    pub fn to_vec(&self) -> Vec<f64> {
        let mut v = vec![
            self.test_length,
            self.reference_length,
            self.test_function_words,
            self.reference_function_words,
        ];
        for k in 0..4 {
            v.extend([
                self.test_content[k],
                self.reference_content[k],
                self.test_function[k],
                self.reference_function[k],
            ]);
        }
        v.extend([
            self.chunks,
            self.test_word_matches,
            self.reference_word_matches,
        ]);
        v
    }

    fn total_matches(&self) -> (f64, f64) {
        let mut t = 0.0;
        let mut r = 0.0;
        for k in 0..4 {
            t += self.test_content[k];
            t += self.test_function[k];
            r += self.reference_content[k];
            r += self.reference_function[k];
        }
        (t, r)
    }

    /// A perfect segment: everything matched in one chunk.
    fn is_perfect(&self) -> bool {
        let (t, r) = self.total_matches();
        t == self.test_length && r == self.reference_length && self.chunks == 1.0
    }

    /// `MeteorStats.addStats`: sums, except that perfect segments add no
    /// chunks.
    pub fn add(&mut self, o: &MeteorStats) {
        self.test_length += o.test_length;
        self.reference_length += o.reference_length;
        self.test_function_words += o.test_function_words;
        self.reference_function_words += o.reference_function_words;
        for k in 0..4 {
            self.test_content[k] += o.test_content[k];
            self.reference_content[k] += o.reference_content[k];
            self.test_function[k] += o.test_function[k];
            self.reference_function[k] += o.reference_function[k];
        }
        if !o.is_perfect() {
            self.chunks += o.chunks;
        }
        self.test_word_matches += o.test_word_matches;
        self.reference_word_matches += o.reference_word_matches;
    }

    /// `MeteorScorer.computeMetrics`: the score on the 0–1 scale.
    pub fn score(&self, p: &MeteorParams) -> f64 {
        let d = p.delta;
        let test_len = d * (self.test_length - self.test_function_words)
            + (1.0 - d) * self.test_function_words;
        let ref_len = d * (self.reference_length - self.reference_function_words)
            + (1.0 - d) * self.reference_function_words;
        let (mut test_m, mut ref_m) = (0.0, 0.0);
        for k in 0..4 {
            test_m += self.test_content[k] * p.weights[k] * d;
        }
        for k in 0..4 {
            ref_m += self.reference_content[k] * p.weights[k] * d;
        }
        for k in 0..4 {
            test_m += self.test_function[k] * p.weights[k] * (1.0 - d);
        }
        for k in 0..4 {
            ref_m += self.reference_function[k] * p.weights[k] * (1.0 - d);
        }
        let precision = test_m / test_len;
        let recall = ref_m / ref_len;
        let f_mean = 1.0 / (((1.0 - p.alpha) / precision) + (p.alpha / recall));
        let frag = if self.is_perfect() {
            0.0
        } else {
            self.chunks / ((self.test_word_matches + self.reference_word_matches) / 2.0)
        };
        let score = f_mean * (1.0 - p.gamma * frag.powf(p.beta));
        if score.is_nan() {
            0.0
        } else {
            score.max(0.0)
        }
    }
}

/// Corpus and per-item METEOR on the 0–1 scale, with each item's statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct MeteorScore {
    /// Corpus score, from the summed statistics.
    pub corpus: f64,
    /// Score of each item, `(n,)`.
    pub items: Vec<f64>,
    /// Statistics of each item against its best reference, `(n,)`.
    pub stats: Vec<MeteorStats>,
}

/// One image as the jar reads pycocoevalcap's `SCORE` line: pycocoevalcap
/// strips "|||" from the hypothesis and joins everything with " ||| "; the
/// jar splits on "|||" (Java `split`, trailing empty parts dropped) and
/// trims. Returns (hypothesis, references).
fn stdio_segment(hypothesis: &str, references: &[String]) -> (String, Vec<String>) {
    let hyp = hypothesis.replace("|||", "").replace("  ", " ");
    let line = format!("SCORE ||| {} ||| {}", references.join(" ||| "), hyp);
    let mut parts: Vec<&str> = line.split("|||").collect();
    while parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    let java_trim = |s: &str| s.trim_matches(|c: char| c <= ' ').to_string();
    let test = parts.last().map(|s| java_trim(s)).unwrap_or_default();
    let refs = parts[1..parts.len().saturating_sub(1)]
        .iter()
        .map(|s| java_trim(s))
        .collect();
    (test, refs)
}

/// `-norm` then lower-casing, then METEOR's whitespace tokenization.
fn meteor_words(line: &str, resources: &MeteorResources) -> Vec<String> {
    normalize_line(line, &resources.nonbreaking)
        .to_lowercase()
        .split(normalize::is_java_tokenizer_space)
        .filter(|w| !w.is_empty())
        .map(|w| w.to_string())
        .collect()
}

/// Hashes of every run of words in the corpus, to keep only paraphrase
/// entries that can match. A hash collision only keeps an entry that then
/// never matches, so it cannot change a score.
fn phrase_hashes(lines: &[&Vec<String>]) -> HashSet<u64> {
    let mut set = HashSet::new();
    for words in lines {
        for i in 0..words.len() {
            for j in i + 1..=words.len() {
                set.insert(hash_words(&words[i..j]));
            }
        }
    }
    set
}

fn hash_words<S: AsRef<str>>(words: &[S]) -> u64 {
    let mut h = DefaultHasher::new();
    for w in words {
        w.as_ref().hash(&mut h);
    }
    h.finish()
}

/// METEOR 1.5 of tokenized hypotheses against tokenized references, as
/// pycocoevalcap's `Meteor().compute_score` returns it (corpus score from
/// the summed statistics; per-item scores).
///
/// Shapes: `hypotheses` `(n,)`, `references` `(n,)` with at least one
/// reference each (checked by [`caption_scores`](super::caption_scores)).
pub fn coco_meteor(
    hypotheses: &[String],
    references: &[Vec<String>],
    files: &MeteorFiles,
) -> Result<MeteorScore> {
    let resources = MeteorResources::from_jar(&files.jar)?;
    let segments: Vec<(Vec<String>, Vec<Vec<String>>)> = hypotheses
        .iter()
        .zip(references)
        .map(|(h, r)| {
            let (test, refs) = stdio_segment(h, r);
            let test_words = meteor_words(&test, &resources);
            let ref_words = refs.iter().map(|r| meteor_words(r, &resources)).collect();
            (test_words, ref_words)
        })
        .collect();
    let paraphrases = match &files.paraphrase {
        Some(path) => {
            let lines: Vec<&Vec<String>> = segments
                .iter()
                .flat_map(|(t, rs)| std::iter::once(t).chain(rs.iter()))
                .collect();
            let wanted = phrase_hashes(&lines);
            let table = ParaphraseTable::load_filtered(path, |phrase, para| {
                wanted.contains(&hash_words(phrase)) && wanted.contains(&hash_words(para))
            })?;
            Some(PhraseIndex::new(&table.entries))
        }
        None => None,
    };
    let modules: &[Module] = if paraphrases.is_some() {
        &ENGLISH_MODULES
    } else {
        &ENGLISH_MODULES[..3]
    };
    let data = AlignerData {
        modules,
        synonyms: Some(&resources.synonyms),
        paraphrases: paraphrases.as_ref(),
        function_words: &resources.function_words,
    };
    Ok(score_segments(&segments, &data, &ENGLISH_RANK))
}

/// Best-reference statistics per segment, per-item scores and the corpus
/// score from the summed statistics.
fn score_segments(
    segments: &[(Vec<String>, Vec<Vec<String>>)],
    data: &AlignerData,
    params: &MeteorParams,
) -> MeteorScore {
    let mut stats = Vec::with_capacity(segments.len());
    let mut items = Vec::with_capacity(segments.len());
    let mut total = MeteorStats::default();
    for (test, refs) in segments {
        let mut best: Option<(f64, MeteorStats)> = None;
        for r in refs {
            let s = MeteorStats::from_alignment(&align(test, r, data));
            let score = s.score(params);
            // The first reference with the highest score is kept.
            if best.as_ref().is_none_or(|(b, _)| score > *b) {
                best = Some((score, s));
            }
        }
        let (score, s) = best.unwrap_or_else(|| (0.0, MeteorStats::default()));
        total.add(&s);
        items.push(score);
        stats.push(s);
    }
    MeteorScore {
        corpus: total.score(params),
        items,
        stats,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdio_line_parsing() {
        let refs = vec!["a b".to_string(), "c".to_string()];
        let (t, r) = stdio_segment("x ||| y", &refs);
        assert_eq!(t, "x y");
        assert_eq!(r, refs);
        let (t, r) = stdio_segment("", &refs);
        assert_eq!(t, "");
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn perfect_segment_scores_its_fmean() {
        let mut s = MeteorStats {
            test_length: 3.0,
            reference_length: 3.0,
            chunks: 1.0,
            test_word_matches: 3.0,
            reference_word_matches: 3.0,
            ..Default::default()
        };
        s.test_content[0] = 3.0;
        s.reference_content[0] = 3.0;
        assert!((s.score(&ENGLISH_RANK) - 1.0).abs() < 1e-15);
        let empty = MeteorStats::default();
        assert_eq!(empty.score(&ENGLISH_RANK), 0.0);
    }
}
