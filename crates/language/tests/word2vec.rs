//! Word2Vec files as gensim writes them (fixtures from tools/fixtures/word2vec_formats.py).

use brainrecon_language::word2vec::Word2Vec;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/word2vec")
}

#[test]
fn gensim_text_and_binary_files_load() {
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("expected.json")).unwrap()).unwrap();
    let words: Vec<String> = serde_json::from_value(expected["words"].clone()).unwrap();
    let vectors: Vec<Vec<f64>> = serde_json::from_value(expected["vectors"].clone()).unwrap();
    let text_values: Vec<Vec<f64>> =
        serde_json::from_value(expected["reloaded_text"].clone()).unwrap();
    let binary = Word2Vec::load(&fixtures().join("vectors.bin")).unwrap();
    let text = Word2Vec::load(&fixtures().join("vectors.txt")).unwrap();
    assert_eq!(binary.words, words);
    assert_eq!(text.words, words);
    assert!(words.contains(&"café".to_string()));
    for (i, word) in words.iter().enumerate() {
        let exact: Vec<f32> = vectors[i].iter().map(|&v| v as f32).collect();
        assert_eq!(binary.vector(word).unwrap(), &exact[..], "binary {word}");
        // The text form holds what gensim reads back from it.
        let reread: Vec<f32> = text_values[i].iter().map(|&v| v as f32).collect();
        assert_eq!(text.vector(word).unwrap(), &reread[..], "text {word}");
    }
    assert_eq!(binary.vector("the").unwrap()[1], -123.456f32);
}

#[test]
fn broken_files_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.txt");
    std::fs::write(&path, "2 3\na 1 2 3\nb 1 x 3\n").unwrap();
    let message = Word2Vec::load(&path).unwrap_err().to_string();
    assert!(
        message.contains("bad.txt") && message.contains("line 3"),
        "{message}"
    );
    std::fs::write(&path, "3 2\na 1 2\n").unwrap();
    let message = Word2Vec::load(&path).unwrap_err().to_string();
    assert!(message.contains("header says 3 words"), "{message}");
}
