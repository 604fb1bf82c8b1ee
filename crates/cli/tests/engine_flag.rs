//! `--engine` of every trainer that has one: an unknown engine is a usage error (exit 2) that
//! names the flag and the accepted values, before any input is read.

mod common;

use common::user_error;

#[test]
fn an_unknown_training_engine_is_a_usage_error_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent");
    let missing = missing.to_str().unwrap();
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let commands: [Vec<&str>; 4] = [
        vec!["train-prior", "--out", out, "--engine", "gpu"],
        vec![
            "b2c",
            "train",
            "--subject",
            missing,
            "--out",
            out,
            "--engine",
            "gpu",
        ],
        vec![
            "eeg",
            "fit",
            "--data",
            missing,
            "--embeddings",
            missing,
            "--subject",
            "sub-01",
            "--out",
            out,
            "--engine",
            "gpu",
        ],
        vec![
            "video",
            "train-encoder",
            "--prepared",
            missing,
            "--stimuli",
            missing,
            "--captions",
            missing,
            "--out",
            out,
            "--engine",
            "gpu",
        ],
    ];
    for args in commands {
        let stderr = user_error(&args);
        // clap's own message where the flag lists its values, the parser's otherwise.
        let named = ["--engine", "'gpu'", "tape", "candle"];
        assert!(
            named.iter().all(|part| stderr.contains(part)),
            "{args:?}: {stderr}"
        );
    }
    assert!(!dir.path().join("out").exists(), "nothing is written");
}
