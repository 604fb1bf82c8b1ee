//! word2vec-movie: skip-gram vectors trained by the project on the synthetic movie
//! annotations (the grammar of `simulate --kind movie`), built into the binary so the
//! naturalistic encoding route runs offline. `brainrecon train word2vec-movie` retrains it.
//!
//! - [`config`]: the settings ([`Word2VecConfig::word2vec_movie`]);
//! - [`data`]: the corpus, the grammar's annotations split into words;
//! - [`train`]: the skip-gram trainer and the run that writes the model folder;
//! - [`embedded`]: the shipped vectors.

pub mod config;
pub mod data;
pub mod embedded;
pub mod train;

pub use config::Word2VecConfig;
pub use data::{CORPUS_RUNS, CORPUS_SECONDS};
pub use embedded::{word2vec_movie, WORD2VEC_MOVIE};
pub use train::{train_word2vec, train_word2vec_movie, MovieTraining};

/// The settings of the shipped vectors (see [`Word2VecConfig::word2vec_movie`]).
pub fn word2vec_movie_config(seed: u64) -> Word2VecConfig {
    Word2VecConfig::word2vec_movie(seed)
}
