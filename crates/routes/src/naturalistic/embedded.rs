//! word2vec-movie, the built-in vectors of the naturalistic encoding route. The model (its
//! settings, corpus, training and shipped vectors) lives in the model zoo; its old paths here
//! keep working.

pub use brainrecon_zoo::word2vec_movie::{
    train_word2vec_movie, word2vec_movie, word2vec_movie_config, CORPUS_RUNS, CORPUS_SECONDS,
    WORD2VEC_MOVIE,
};
