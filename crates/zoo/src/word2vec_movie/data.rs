//! word2vec-movie's corpus: the synthetic movie annotations of every kind, from the seed.

use brainrecon_language::word2vec::words_of;
use brainrecon_simulate::movie::annotation_corpus;

/// Runs of the grammar the corpus holds.
pub const CORPUS_RUNS: usize = 40;
/// Length of each corpus run, in seconds.
pub const CORPUS_SECONDS: usize = 600;

/// The grammar's annotation lines for `seed`.
pub fn corpus_lines(seed: u64) -> Vec<String> {
    annotation_corpus(seed, CORPUS_RUNS, CORPUS_SECONDS)
}

/// The annotation lines split into words (the training sentences).
pub fn sentences(lines: &[String]) -> Vec<Vec<String>> {
    lines.iter().map(|l| words_of(l)).collect()
}
