//! word2vec-movie's settings: gensim's `Word2Vec` arguments, named as the checkpoint
//! ([`Word2VecConfig::word2vec_movie`]).

use serde::{Deserialize, Serialize};

/// Training settings, named as gensim's `Word2Vec` arguments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Word2VecConfig {
    /// `vector_size`.
    pub dim: usize,
    /// `window`: the largest distance from the centre word to a context word (each centre draws a
    /// reach in 1..=window).
    pub window: usize,
    /// `negative`: noise words per (centre, context) pair.
    pub negative: usize,
    /// `min_count`: words seen fewer times are left out of the vocabulary.
    pub min_count: usize,
    /// `epochs`: passes over the corpus.
    pub epochs: usize,
    /// `alpha`: the starting learning rate.
    pub alpha: f32,
    /// `sample`: threshold of frequent-word subsampling (0 = off).
    pub sample: f64,
    /// `seed`: of the initial vectors and every draw.
    pub seed: u64,
}

impl Default for Word2VecConfig {
    /// gensim's defaults with skip-gram (`sg=1`).
    fn default() -> Self {
        Word2VecConfig {
            dim: 100,
            window: 5,
            negative: 5,
            min_count: 5,
            epochs: 5,
            alpha: 0.025,
            sample: 1e-3,
            seed: 1,
        }
    }
}

impl Word2VecConfig {
    /// The settings of the shipped vectors: 32 dimensions, window 5, 5 negatives, 5 epochs, no
    /// subsampling (the vocabulary is small).
    pub fn word2vec_movie(seed: u64) -> Self {
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
}
