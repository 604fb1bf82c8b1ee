//! Running the built binary as a user would, shared by the CLI test files.

use std::path::Path;
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
