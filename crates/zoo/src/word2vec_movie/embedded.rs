//! The shipped word2vec-movie vectors, compiled into the binary.

use brainrecon_language::word2vec::Word2Vec;
use brainrecon_nn::Result;
use std::path::Path;

/// The name the naturalistic route accepts for the built-in vectors.
pub const WORD2VEC_MOVIE: &str = "word2vec-movie";
static VECTORS: &[u8] = include_bytes!("../../../../models/word2vec-movie/vectors.bin");

/// The built-in vectors.
pub fn word2vec_movie() -> Result<Word2Vec> {
    Word2Vec::from_bytes(VECTORS, Path::new("<built-in word2vec-movie>/vectors.bin"))
}
