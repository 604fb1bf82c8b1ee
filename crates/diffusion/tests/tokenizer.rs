//! The CLIP tokenizer against transformers' `CLIPTokenizer` (fixtures written by
//! tools/fixtures/diffusion_pipeline.py).

use brainrecon_diffusion::tokenizer::{ClipTokenizer, SpecialTokens};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[derive(serde::Deserialize)]
struct RealIds {
    prompts: Vec<String>,
    sd1_pad_eos: Vec<Vec<u32>>,
    sd2_pad_bang: Vec<Vec<u32>>,
}

fn check(tok: &ClipTokenizer, prompts: &[String], expected: &[Vec<u32>]) {
    assert_eq!(prompts.len(), expected.len());
    for (prompt, want) in prompts.iter().zip(expected) {
        let got = tok.encode(prompt).unwrap();
        assert_eq!(got.len(), 77);
        assert_eq!(&got, want, "prompt {prompt:?}");
    }
}

#[test]
fn real_clip_vocabulary_matches_transformers() {
    let dir = fixtures().join("tokenizer");
    let ids: RealIds =
        serde_json::from_str(&std::fs::read_to_string(dir.join("real_vocab_ids.json")).unwrap())
            .unwrap();
    let gz = dir.join("bpe_simple_vocab_16e6.txt.gz");
    let sd1 = ClipTokenizer::from_open_clip_bpe(&gz, SpecialTokens::default()).unwrap();
    assert_eq!(sd1.vocab_size(), 49408);
    assert_eq!((sd1.bos_id, sd1.eos_id, sd1.pad_id), (49406, 49407, 49407));
    check(&sd1, &ids.prompts, &ids.sd1_pad_eos);
    let sd2 = ClipTokenizer::from_open_clip_bpe(&gz, SpecialTokens::sd2()).unwrap();
    assert_eq!(sd2.pad_id, 0);
    check(&sd2, &ids.prompts, &ids.sd2_pad_bang);
    // A well-known id: "a" + </w> is 320 in CLIP's vocabulary, "photo" 1125.
    assert_eq!(sd1.tokens("a photo").unwrap(), vec![320, 1125]);
}

#[derive(serde::Deserialize)]
struct TinyIds {
    prompts: Vec<String>,
    sd1_ids: Vec<Vec<u32>>,
    sd2_ids: Vec<Vec<u32>>,
}

#[test]
fn vocab_json_and_merges_txt_folder_matches_transformers() {
    let ids: TinyIds = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("clip/prompts.json")).unwrap(),
    )
    .unwrap();
    let dir = fixtures().join("clip/tokenizer-tiny");
    assert!(!dir.join("tokenizer.json").exists());
    let tok = ClipTokenizer::from_dir(&dir).unwrap();
    assert_eq!(tok.vocab_size(), 1514);
    check(&tok, &ids.prompts, &ids.sd1_ids);
    let sd2 = ClipTokenizer::from_vocab_merges(
        &dir.join("vocab.json"),
        &dir.join("merges.txt"),
        SpecialTokens::sd2(),
    )
    .unwrap();
    check(&sd2, &ids.prompts, &ids.sd2_ids);
}

#[test]
fn tokenizer_json_folder_matches_the_vocab_merges_build() {
    // tiny-sd/tokenizer holds only tokenizer.json (transformers 5's save_pretrained).
    let ids: TinyIds = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("clip/prompts.json")).unwrap(),
    )
    .unwrap();
    let dir = fixtures().join("tiny-sd/tokenizer");
    assert!(dir.join("tokenizer.json").exists() && !dir.join("vocab.json").exists());
    let tok = ClipTokenizer::from_dir(&dir).unwrap();
    check(&tok, &ids.prompts, &ids.sd1_ids);
}

#[test]
fn missing_tokenizer_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let err = ClipTokenizer::from_dir(tmp.path())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("vocab.json"), "{err}");
    std::fs::write(tmp.path().join("vocab.json"), "{}").unwrap();
    let err = ClipTokenizer::from_dir(tmp.path())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("merges.txt"), "{err}");
}
