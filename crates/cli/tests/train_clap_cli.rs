//! `brainrecon train-clap`: its help, a short run, and bad input refused with exit status 2.

use std::process::{Command, Output};

fn brainrecon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_brainrecon"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_has_an_example() {
    let out = brainrecon(&["train-clap", "--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Example:") && text.contains("--checkpoint-every"),
        "{text}"
    );
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clap");
    let out = out.to_str().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = file.join("clap");
    let cases: [(&[&str], &str); 4] = [
        (&["--out", out, "--steps", "0"], "--steps"),
        (&["--out", out, "--batch", "1"], "--batch"),
        (
            &["--out", out, "--checkpoint-every", "0"],
            "--checkpoint-every",
        ),
        (
            &["--out", under_file.to_str().unwrap(), "--steps", "1"],
            "cannot write",
        ),
    ];
    for (args, expected) in cases {
        let r = brainrecon(&[&["train-clap"], args].concat());
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

/// `train <model>` is the same command as each older verb: the same help but for its usage line.
#[test]
fn train_model_is_the_older_verb() {
    for (model, older) in [
        (vec!["train", "shapes-ldm"], vec!["train-prior"]),
        (vec!["train", "shapes-blip"], vec!["train-captioner"]),
        (vec!["train", "genres-clap"], vec!["train-clap"]),
        (
            vec!["train", "shapes-motion"],
            vec!["video", "train-motion"],
        ),
        (vec!["train", "word2vec-movie"], vec!["train-word2vec"]),
    ] {
        let help = |args: &[&str]| {
            let out = brainrecon(&[args, &["--help"]].concat());
            assert!(out.status.success(), "{args:?}");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.starts_with("Usage:"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(help(&model), help(&older), "{model:?}");
    }
}

/// `--preset tiny` trains the tests' small model; its record's command names the preset, so
/// running that command again makes the same weights, and the shipped size is refused over
/// its checkpoints.
#[test]
fn a_tiny_run_records_a_command_that_makes_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let first_out = first.to_str().unwrap();
    let r = brainrecon(&[
        "train-clap",
        "--preset",
        "tiny",
        "--seed",
        "3",
        "--out",
        first_out,
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(first.join("training.json")).unwrap()).unwrap();
    let command = record["command"].as_str().unwrap();
    assert!(command.contains("--preset tiny"), "{command}");
    assert_eq!(record["config"]["preset"], "tiny");
    let again = dir.path().join("again");
    let words: Vec<String> = command
        .split_whitespace()
        .skip(1)
        .map(|w| {
            if w == first_out {
                again.to_str().unwrap().to_string()
            } else {
                w.to_string()
            }
        })
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let r = brainrecon(&words);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(
        std::fs::read(first.join("model.safetensors")).unwrap(),
        std::fs::read(again.join("model.safetensors")).unwrap()
    );
    let r = brainrecon(&["train-clap", "--steps", "1", "--out", first_out]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("other settings"));
    let r = brainrecon(&["train-clap", "--preset", "huge", "--out", first_out]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("tiny"));
}
