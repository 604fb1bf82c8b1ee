//! word2vec-movie: skip-gram vectors trained by the project on the synthetic movie
//! annotations (the grammar of `simulate --kind movie`), built into the binary so the
//! naturalistic encoding route runs offline. `brainrecon train-word2vec` retrains it.

use crate::error::Result;
use brainrecon_data::atomic::write_json_atomic;
use brainrecon_language::word2vec::{train_word2vec, words_of, Word2Vec, Word2VecConfig};
use brainrecon_simulate::movie::annotation_corpus;
use std::path::Path;

pub const WORD2VEC_MOVIE: &str = "word2vec-movie";
static VECTORS: &[u8] = include_bytes!("../../../../models/word2vec-movie/vectors.bin");

/// The built-in vectors.
pub fn word2vec_movie() -> Result<Word2Vec> {
    Ok(Word2Vec::from_bytes(
        VECTORS,
        Path::new("<built-in word2vec-movie>/vectors.bin"),
    )?)
}

/// The settings of the shipped vectors: 32 dimensions, window 5, 5 negatives, 5 epochs, no
/// subsampling (the vocabulary is small).
pub fn word2vec_movie_config(seed: u64) -> Word2VecConfig {
    Word2VecConfig {
        dim: 32,
        window: 5,
        negative: 5,
        min_count: 1,
        epochs: 5,
        alpha: 0.025,
        sample: 0.0,
        seed,
    }
}

/// Runs of the grammar the corpus holds, and their length in seconds.
pub const CORPUS_RUNS: usize = 40;
pub const CORPUS_SECONDS: usize = 600;

/// Trains the vectors on the grammar's annotations and writes `out/vectors.bin` and
/// `out/training.json`. Returns the vectors.
pub fn train_word2vec_movie(out: &Path, seed: u64) -> Result<Word2Vec> {
    let corpus = annotation_corpus(seed, CORPUS_RUNS, CORPUS_SECONDS);
    let sentences: Vec<Vec<String>> = corpus.iter().map(|l| words_of(l)).collect();
    let config = word2vec_movie_config(seed);
    let vectors = train_word2vec(&sentences, &config)?;
    std::fs::create_dir_all(out).map_err(|e| brainrecon_data::DataError::io(out, e))?;
    vectors.save(&out.join("vectors.bin"), true)?;
    write_json_atomic(
        &out.join("training.json"),
        &serde_json::json!({
            "command": format!("brainrecon train-word2vec --out {} --seed {seed}", out.display()),
            "corpus": {"runs": CORPUS_RUNS, "seconds": CORPUS_SECONDS, "lines": corpus.len()},
            "config": config,
            "words": vectors.words.len(),
        }),
    )?;
    Ok(vectors)
}
