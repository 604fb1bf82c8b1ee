//! METEOR 1.5's aligner (`edu.cmu.meteor.aligner.Aligner`): candidate
//! matches from the exact, stem, synonym and paraphrase modules, then a beam
//! search (beam 40) for the alignment with the most weighted matches, fewest
//! chunks and smallest distance.
//!
//! Details kept as METEOR has them, since they change scores:
//! - words are compared by their Java `String.hashCode` (so a hash collision
//!   counts as a match), as the `Stage` keys are;
//! - the search's running match totals are Java `int`s incremented by
//!   `length * weight` with weights 1 / 0.5 / 0.5 / 0.5, so each half-weight
//!   match adds its length times 0.5 *truncated*;
//! - when a position offers several matches, the distance of each new path
//!   is added to the *current* path (the one that later skips the position),
//!   as the Java code does;
//! - paths are ordered with a stable sort (Java's `Collections.sort`).

use std::collections::{HashMap, HashSet};

use super::resources::SynonymDictionary;
use super::stem::snowball_english_stem;

/// A METEOR matcher module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    /// Identical words.
    Exact,
    /// Words with the same Snowball stem.
    Stem,
    /// Words sharing a WordNet synset.
    Synonym,
    /// Phrases listed as paraphrases in `paraphrase-en.gz`.
    Paraphrase,
}

impl Module {
    /// The weight the beam search uses for this module's matches
    /// (`MeteorScorer.loadConfiguration`).
    fn search_weight(self) -> f64 {
        match self {
            Module::Exact => 1.0,
            _ => 0.5,
        }
    }
}

/// Java's `String.hashCode`.
pub fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)))
}

/// One candidate match: `length` words of line 2 (the reference) from
/// `start` against `match_length` words of line 1 (the hypothesis) from
/// `match_start`, found by module number `module`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// First reference word.
    pub start: usize,
    /// Reference words covered.
    pub length: usize,
    /// First hypothesis word.
    pub match_start: usize,
    /// Hypothesis words covered.
    pub match_length: usize,
    /// Index of the module in [`AlignerData::modules`].
    pub module: usize,
}

/// Paraphrases keyed by phrase, entries in file order.
#[derive(Debug, Clone, Default)]
pub struct PhraseIndex {
    by_phrase: HashMap<Vec<String>, Vec<usize>>,
    paraphrases: Vec<Vec<String>>,
    max_len: usize,
}

impl PhraseIndex {
    /// Indexes `(phrase, paraphrase)` word lists, keeping their file order.
    pub fn new(entries: &[(Vec<String>, Vec<String>)]) -> PhraseIndex {
        let mut index = PhraseIndex::default();
        for (phrase, para) in entries {
            index
                .by_phrase
                .entry(phrase.clone())
                .or_default()
                .push(index.paraphrases.len());
            index.paraphrases.push(para.clone());
            index.max_len = index.max_len.max(phrase.len());
        }
        index
    }

    /// `getReferencePaths`: (phrase length, paraphrase index) for every
    /// phrase starting at `start`, shorter phrases first, file order within.
    fn paths(&self, words: &[String], start: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for len in 1..=self.max_len.min(words.len() - start) {
            // METEOR walks a trie of the full table and stops at a prefix no
            // phrase has; this table may be cut down to a corpus, so look up
            // every length (a longer phrase implies its prefix was a node).
            if let Some(ids) = self.by_phrase.get(&words[start..start + len]) {
                out.extend(ids.iter().map(|&id| (len, id)));
            }
        }
        out
    }
}

/// What the matchers need besides the two lines.
pub struct AlignerData<'a> {
    /// Modules in stage order (see [`super::ENGLISH_MODULES`]).
    pub modules: &'a [Module],
    /// WordNet synonyms; without them the synonym module finds nothing.
    pub synonyms: Option<&'a SynonymDictionary>,
    /// Paraphrase table; without it the paraphrase module finds nothing.
    pub paraphrases: Option<&'a PhraseIndex>,
    /// Function words (lower-case), counted apart from content words.
    pub function_words: &'a HashSet<String>,
}

/// Candidate matches per reference position, with coverage counts.
struct Stage {
    keys1: Vec<i32>,
    keys2: Vec<i32>,
    matches: Vec<Vec<Match>>,
    cover1: Vec<usize>,
    cover2: Vec<usize>,
}

impl Stage {
    fn new(w1: &[String], w2: &[String]) -> Stage {
        Stage {
            keys1: w1.iter().map(|w| java_hash(w)).collect(),
            keys2: w2.iter().map(|w| java_hash(w)).collect(),
            matches: vec![Vec::new(); w2.len()],
            cover1: vec![0; w1.len()],
            cover2: vec![0; w2.len()],
        }
    }

    fn add(&mut self, m: Match) {
        for k in 0..m.match_length {
            self.cover1[m.match_start + k] += 1;
        }
        for k in 0..m.length {
            self.cover2[m.start + k] += 1;
        }
        self.matches[m.start].push(m);
    }

    fn add_word_pairs(&mut self, module: usize, same: impl Fn(usize, usize) -> bool) {
        for j in 0..self.keys2.len() {
            for i in 0..self.keys1.len() {
                if same(i, j) {
                    self.add(Match {
                        start: j,
                        length: 1,
                        match_start: i,
                        match_length: 1,
                        module,
                    });
                }
            }
        }
    }
}

fn exact_matches(stage: &mut Stage, module: usize) {
    let (k1, k2) = (stage.keys1.clone(), stage.keys2.clone());
    stage.add_word_pairs(module, |i, j| k1[i] == k2[j]);
}

fn stem_matches(stage: &mut Stage, module: usize, w1: &[String], w2: &[String]) {
    let s1: Vec<i32> = w1
        .iter()
        .map(|w| java_hash(&snowball_english_stem(w)))
        .collect();
    let s2: Vec<i32> = w2
        .iter()
        .map(|w| java_hash(&snowball_english_stem(w)))
        .collect();
    let (k1, k2) = (stage.keys1.clone(), stage.keys2.clone());
    stage.add_word_pairs(module, |i, j| s1[i] == s2[j] && k1[i] != k2[j]);
}

fn synonym_matches(
    stage: &mut Stage,
    module: usize,
    w1: &[String],
    w2: &[String],
    dict: &SynonymDictionary,
) {
    let sets = |w: &String| -> HashSet<u32> {
        let mut set: HashSet<u32> = dict.synsets(w).cloned().unwrap_or_default();
        set.extend(dict.stem_synsets(w));
        set
    };
    let sets1: Vec<HashSet<u32>> = w1.iter().map(sets).collect();
    let sets2: Vec<HashSet<u32>> = w2.iter().map(sets).collect();
    let (k1, k2) = (stage.keys1.clone(), stage.keys2.clone());
    stage.add_word_pairs(module, |i, j| {
        !sets1[i].is_disjoint(&sets2[j]) && k1[i] != k2[j]
    });
}

/// Whether `line[at..]` starts with `words`.
fn occurs_at(line: &[String], at: usize, words: &[String]) -> bool {
    at + words.len() <= line.len() && line[at..at + words.len()] == words[..]
}

fn paraphrase_matches(
    stage: &mut Stage,
    module: usize,
    w1: &[String],
    w2: &[String],
    index: &PhraseIndex,
) {
    // Phrases of the reference paraphrased in the hypothesis.
    for j in 0..w2.len() {
        for (len, id) in index.paths(w2, j) {
            let para = &index.paraphrases[id];
            for i in 0..w1.len() {
                if occurs_at(w1, i, para) {
                    stage.add(Match {
                        start: j,
                        length: len,
                        match_start: i,
                        match_length: para.len(),
                        module,
                    });
                }
            }
        }
    }
    // Phrases of the hypothesis paraphrased in the reference.
    for i in 0..w1.len() {
        for (len, id) in index.paths(w1, i) {
            let para = &index.paraphrases[id];
            for j in 0..w2.len() {
                if occurs_at(w2, j, para) {
                    stage.add(Match {
                        start: j,
                        length: para.len(),
                        match_start: i,
                        match_length: len,
                        module,
                    });
                }
            }
        }
    }
}

/// A path of the beam search (`PartialAlignment`).
#[derive(Clone)]
struct Path {
    matches: Vec<Option<Match>>,
    matches1: i32,
    matches2: i32,
    chunks: i32,
    idx: usize,
    last_match_end: Option<usize>,
    distance: i32,
    used1: Vec<bool>,
    used2: Vec<bool>,
}

impl Path {
    fn is_used(&self, m: &Match) -> bool {
        (0..m.length).any(|k| self.used2[m.start + k])
            || (0..m.match_length).any(|k| self.used1[m.match_start + k])
    }

    fn set_used(&mut self, m: &Match) {
        for k in 0..m.length {
            self.used2[m.start + k] = true;
        }
        for k in 0..m.match_length {
            self.used1[m.match_start + k] = true;
        }
    }

    /// The bookkeeping both branches of the search do when `m` is taken.
    fn take(&mut self, m: &Match, weights: &[f64]) {
        let w = weights[m.module];
        // Java `int += double`: the sum is truncated toward zero.
        self.matches1 = (f64::from(self.matches1) + m.match_length as f64 * w) as i32;
        self.matches2 = (f64::from(self.matches2) + m.length as f64 * w) as i32;
        if self.last_match_end.is_some_and(|end| m.match_start != end) {
            self.chunks += 1;
        }
        self.idx = m.start + m.length;
        self.last_match_end = Some(m.match_start + m.match_length);
    }
}

/// `PARTIAL_COMPARE_TOTAL`: more weighted matches, then fewer chunks, then
/// smaller distance first.
fn compare(x: &Path, y: &Path) -> std::cmp::Ordering {
    ((y.matches1 + y.matches2).cmp(&(x.matches1 + x.matches2)))
        .then(x.chunks.cmp(&y.chunks))
        .then(x.distance.cmp(&y.distance))
}

const BEAM_SIZE: usize = 40;

fn abs_diff(a: usize, b: usize) -> i32 {
    a.abs_diff(b) as i32
}

/// Advances one path at reference position `current`, pushing its
/// successors onto `next`.
fn extend(path: &mut Path, stage: &Stage, current: usize, weights: &[f64], next: &mut Vec<Path>) {
    if path.used2[current] {
        if current < path.idx {
            next.push(path.clone());
        } else if let Some(m) = path.matches[path.idx] {
            // A match fixed before the search.
            path.take(&m, weights);
            path.distance += abs_diff(m.start, m.match_start);
            next.push(path.clone());
        }
        return;
    }
    for m in &stage.matches[current] {
        if path.is_used(m) {
            continue;
        }
        let mut new_path = path.clone();
        new_path.set_used(m);
        new_path.matches[current] = Some(*m);
        new_path.take(m, weights);
        // METEOR adds this distance to the path being extended, not to the
        // new one.
        path.distance += abs_diff(m.start, m.match_start);
        next.push(new_path);
    }
    if path.last_match_end.is_some() {
        path.chunks += 1;
        path.last_match_end = None;
    }
    path.idx += 1;
    next.push(path.clone());
}

fn resolve(stage: &Stage, start: Path, weights: &[f64]) -> Path {
    let n = stage.matches.len();
    let mut next = vec![start];
    for current in 0..=n {
        let mut paths = std::mem::take(&mut next);
        paths.sort_by(compare);
        for path in paths.iter_mut().take(BEAM_SIZE) {
            if current == n {
                if path.last_match_end.is_some() {
                    path.chunks += 1;
                }
                next.push(path.clone());
                continue;
            }
            extend(path, stage, current, weights, &mut next);
        }
        if next.is_empty() {
            // METEOR warns and continues with the best path so far.
            next.push(paths[0].clone());
        }
    }
    next.sort_by(compare);
    next.swap_remove(0)
}

/// Per-module match counts of an alignment and its chunk count.
#[derive(Debug, Clone, PartialEq)]
pub struct AlignmentCounts {
    /// Hypothesis length in words.
    pub len1: usize,
    /// Reference length in words.
    pub len2: usize,
    /// Function words in the hypothesis.
    pub function1: usize,
    /// Function words in the reference.
    pub function2: usize,
    /// Matched hypothesis content words, per module.
    pub content1: Vec<usize>,
    /// Matched reference content words, per module.
    pub content2: Vec<usize>,
    /// Matched hypothesis function words, per module.
    pub functional1: Vec<usize>,
    /// Matched reference function words, per module.
    pub functional2: Vec<usize>,
    /// Chunks: runs of matches contiguous and in the same order on both sides.
    pub chunks: usize,
}

/// Aligns hypothesis words `w1` with reference words `w2`.
pub fn align(w1: &[String], w2: &[String], data: &AlignerData) -> AlignmentCounts {
    let mut stage = Stage::new(w1, w2);
    let identical = w1.len() == w2.len() && stage.keys1 == stage.keys2;
    let used_modules = if identical { 1 } else { data.modules.len() };
    for (k, module) in data.modules.iter().enumerate().take(used_modules) {
        match module {
            Module::Exact => exact_matches(&mut stage, k),
            Module::Stem => stem_matches(&mut stage, k, w1, w2),
            Module::Synonym => {
                if let Some(dict) = data.synonyms {
                    synonym_matches(&mut stage, k, w1, w2, dict);
                }
            }
            Module::Paraphrase => {
                if let Some(index) = data.paraphrases {
                    paraphrase_matches(&mut stage, k, w1, w2, index);
                }
            }
        }
    }
    let weights: Vec<f64> = data.modules.iter().map(|m| m.search_weight()).collect();
    let best = resolve(&stage, initial_path(&stage, w1.len(), w2.len()), &weights);
    count(&best.matches, w1, w2, data)
}

/// Matches that are the only candidate for all the words they cover are
/// fixed before the search.
fn initial_path(stage: &Stage, n1: usize, n2: usize) -> Path {
    let mut path = Path {
        matches: vec![None; n2],
        matches1: 0,
        matches2: 0,
        chunks: 0,
        idx: 0,
        last_match_end: None,
        distance: 0,
        used1: vec![false; n1],
        used2: vec![false; n2],
    };
    for (i, candidates) in stage.matches.iter().enumerate() {
        if let [m] = candidates.as_slice() {
            let overlap = (0..m.length).any(|k| stage.cover2[i + k] != 1)
                || (0..m.match_length).any(|k| stage.cover1[m.match_start + k] != 1);
            if !overlap {
                path.matches[i] = Some(*m);
                path.set_used(m);
            }
        }
    }
    path
}

fn count(
    matches: &[Option<Match>],
    w1: &[String],
    w2: &[String],
    data: &AlignerData,
) -> AlignmentCounts {
    let n_mod = data.modules.len();
    let is_fn1: Vec<bool> = w1
        .iter()
        .map(|w| data.function_words.contains(&w.to_lowercase()))
        .collect();
    let is_fn2: Vec<bool> = w2
        .iter()
        .map(|w| data.function_words.contains(&w.to_lowercase()))
        .collect();
    let mut c = AlignmentCounts {
        len1: w1.len(),
        len2: w2.len(),
        function1: is_fn1.iter().filter(|&&f| f).count(),
        function2: is_fn2.iter().filter(|&&f| f).count(),
        content1: vec![0; n_mod],
        content2: vec![0; n_mod],
        functional1: vec![0; n_mod],
        functional2: vec![0; n_mod],
        chunks: 0,
    };
    for m in matches.iter().flatten() {
        for k in 0..m.match_length {
            if is_fn1[m.match_start + k] {
                c.functional1[m.module] += 1;
            } else {
                c.content1[m.module] += 1;
            }
        }
        for k in 0..m.length {
            if is_fn2[m.start + k] {
                c.functional2[m.module] += 1;
            } else {
                c.content2[m.module] += 1;
            }
        }
    }
    c.chunks = count_chunks(matches);
    c
}

/// `getCountAndChunks`: walks the reference; a chunk ends at a gap in the
/// reference or a jump in the hypothesis.
fn count_chunks(matches: &[Option<Match>]) -> usize {
    let mut chunks = 0;
    let mut idx = 0;
    let mut last_end: Option<usize> = None;
    while idx < matches.len() {
        match matches[idx] {
            None => {
                if last_end.take().is_some() {
                    chunks += 1;
                }
                idx += 1;
            }
            Some(m) => {
                if last_end.is_some_and(|e| m.match_start != e) {
                    chunks += 1;
                }
                idx = m.start + m.length;
                last_end = Some(m.match_start + m.match_length);
            }
        }
    }
    if last_end.is_some() {
        chunks += 1;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(|w| w.to_string()).collect()
    }

    #[test]
    fn java_string_hash() {
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("a"), 97);
        assert_eq!(java_hash("hello"), 99_162_322);
        // Wraps like a Java int.
        assert_eq!(java_hash("polygenelubricants"), i32::MIN);
    }

    #[test]
    fn exact_alignment_counts_chunks() {
        let fw: HashSet<String> = ["a", "the"].iter().map(|s| s.to_string()).collect();
        let data = AlignerData {
            modules: &[Module::Exact],
            synonyms: None,
            paraphrases: None,
            function_words: &fw,
        };
        let c = align(
            &words("the cat sat on a mat"),
            &words("a cat sat on the mat"),
            &data,
        );
        assert_eq!(c.content1[0] + c.functional1[0], 6);
        assert_eq!(c.function1, 2);
        // [a] [cat sat on] [the] [mat] in reference order.
        assert_eq!(c.chunks, 4);
    }
}
