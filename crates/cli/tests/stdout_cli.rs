//! Every command with standard output closed or full: `--help` of each (clap's output goes
//! through the same writer) and real commands that print. A closed pipe ends quietly with
//! exit 0, as `ls | head` does; a full disk is exit 2 naming standard output; never a panic.

use std::process::{Command, Stdio};

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_brainrecon"))
}

/// The subcommands listed under "Commands:" in `args --help`.
fn subcommands(args: &[String]) -> Vec<String> {
    let out = binary().args(args).arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let Some((_, listed)) = text.split_once("Commands:\n") else {
        return Vec::new();
    };
    listed
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// Every command path: `[]`, `["bids"]`, `["bids", "prepare"]`, …
fn every_command() -> Vec<Vec<String>> {
    let mut all = vec![Vec::new()];
    let mut at = 0;
    while at < all.len() {
        let path = all[at].clone();
        for name in subcommands(&path) {
            let mut child = path.clone();
            child.push(name);
            all.push(child);
        }
        at += 1;
    }
    all
}

fn to_dev_full(args: &[&str]) -> std::process::Output {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    binary()
        .args(args)
        .stdout(full)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn to_closed_pipe(args: &[&str]) -> std::process::Output {
    let mut child = binary()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

fn assert_no_panic(args: &[&str], out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert_ne!(out.status.code(), Some(101), "{args:?}: {stderr}");
}

#[test]
fn help_of_every_command_survives_a_full_disk_and_a_closed_pipe() {
    let commands = every_command();
    assert!(commands.len() > 30, "{commands:?}");
    for path in commands {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let full = to_dev_full(&args);
        assert_no_panic(&args, &full);
        assert_eq!(full.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&full.stderr).contains("writing to standard output"),
            "{args:?}"
        );
        let closed = to_closed_pipe(&args);
        assert_no_panic(&args, &closed);
        assert_eq!(closed.status.code(), Some(0), "{args:?}");
    }
}

#[test]
fn commands_that_print_survive_a_full_disk_and_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    let sim = sim.to_str().unwrap();
    let args = ["simulate", "--kind", "movie", "--out", sim, "--seed", "0"];
    let full = to_dev_full(&args);
    assert_no_panic(&args, &full);
    assert_eq!(full.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&full.stderr);
    assert!(
        stderr.contains("writing to standard output") && stderr.contains("No space"),
        "{stderr}"
    );
    // What the command made is complete: a second run sees a finished dataset.
    let runs = dir.path().join("runs");
    let prepare = [
        "bids",
        "prepare",
        "--bids-root",
        sim,
        "--subject",
        "01",
        "--task",
        "movie",
        "--json",
        "--out",
        runs.to_str().unwrap(),
    ];
    let closed = to_closed_pipe(&prepare);
    assert_no_panic(&prepare, &closed);
    assert_eq!(
        closed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&closed.stderr)
    );
    assert!(runs.join("runset.json").is_file());
    let again = to_dev_full(&prepare);
    assert_no_panic(&prepare, &again);
    assert_eq!(again.status.code(), Some(2));
}
