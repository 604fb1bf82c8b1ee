//! word2vec-movie: retraining with the shipped seed gives the shipped vectors, bit for bit.

use brainrecon_zoo::word2vec_movie::{train_word2vec_movie, word2vec_movie};

#[test]
fn retraining_gives_the_shipped_vectors() {
    let out = tempfile::tempdir().unwrap();
    let trained = train_word2vec_movie(out.path(), 0).unwrap();
    let shipped = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/word2vec-movie/vectors.bin"),
    )
    .unwrap();
    assert_eq!(
        std::fs::read(out.path().join("vectors.bin")).unwrap(),
        shipped
    );
    assert_eq!(trained, word2vec_movie().unwrap());
}
