//! Running the built binary as a user would, shared by the CLI test files.

#[allow(unused_imports)] // not every test file copies fixtures or reads JSON
pub use brainrecon_testkit::{copy_dir, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn brainrecon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_brainrecon"))
        .args(args)
        .output()
        .expect("run brainrecon")
}

/// Stdout of a run that must succeed.
pub fn ok(args: &[&str]) -> String {
    let out = brainrecon(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Stderr of a run that must fail as bad input does: exit code 2.
#[allow(dead_code)] // not every test file checks bad input
pub fn user_error(args: &[&str]) -> String {
    let out = brainrecon(args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}: expected exit 2, stdout {} stderr {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// `simulate` (NSD layout, `images` images of `image_size` px, `seed`) into DIR/nsd, then
/// `nsd prepare` of subj01 into DIR/subj01, which it returns.
#[allow(dead_code)] // not every test file needs a subject
pub fn simulated_subject(dir: &Path, images: usize, seed: u64, image_size: usize) -> PathBuf {
    let (root, subject) = (dir.join("nsd"), dir.join("subj01"));
    let (images, seed, image_size) = (images.to_string(), seed.to_string(), image_size.to_string());
    ok(&[
        "simulate",
        "--out",
        p(&root),
        "--images",
        &images,
        "--seed",
        &seed,
        "--image-size",
        &image_size,
    ]);
    ok(&[
        "nsd",
        "prepare",
        "--nsd-root",
        p(&root),
        "--subject",
        "subj01",
        "--out",
        p(&subject),
    ]);
    subject
}

/// A command line's words (split at spaces), each placeholder of `paths` (`{d}`, `{out}`, …)
/// replaced by its path.
#[allow(dead_code)] // used by the campaigns (fuzz_commands, crash)
pub fn words(line: &str, paths: &[(&str, &Path)]) -> Vec<String> {
    line.split_whitespace()
        .map(|word| {
            paths
                .iter()
                .fold(word.to_string(), |w, (name, path)| w.replace(name, p(path)))
        })
        .collect()
}

/// One setting-up line of a campaign's inputs in `dir` (`{d}`): `copy FROM TO` copies a file
/// (paths relative to `dir`), anything else is a brainrecon command line that must succeed.
#[allow(dead_code)] // used by the campaigns (fuzz_commands, crash)
pub fn set_up(dir: &Path, line: &str) {
    if let Some((from, to)) = line.strip_prefix("copy ").and_then(|l| l.split_once(' ')) {
        std::fs::copy(dir.join(from), dir.join(to)).unwrap();
        return;
    }
    let args = words(line, &[("{d}", dir)]);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
}
