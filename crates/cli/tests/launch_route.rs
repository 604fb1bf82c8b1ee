//! Which process runs a command line (the CPU build's hand-off to `brainrecon-cuda`, see
//! src/launch.rs), seen from outside: only CUDA devices leave the process; when the GPU build
//! or a CUDA library is missing, `--device` is rewritten to the CPU in either spelling and the
//! rest of the line is kept.
#![cfg(unix)]

use std::path::Path;
use std::process::{Command, Output};

/// `brainrecon` copied into `dir` (so that what lies beside it is the test's choice), run with
/// `args` and `libraries` standing in for CUDA's.
fn run_from(dir: &Path, args: &[&str], libraries: Option<&str>) -> Output {
    let launcher = dir.join("brainrecon");
    if !launcher.exists() {
        std::fs::copy(env!("CARGO_BIN_EXE_brainrecon"), &launcher).unwrap();
    }
    let mut command = Command::new(&launcher);
    command.args(args).current_dir(dir);
    if let Some(libraries) = libraries {
        command.env("BRAINRECON_CUDA_LIBRARIES", libraries);
    }
    // A copy just written can be "busy" for a moment: a test running beside this one may have
    // forked while the copy's file was open, and its child holds that descriptor until it execs.
    for _ in 0..100 {
        match command.output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            result => return result.unwrap(),
        }
    }
    command.output().unwrap()
}

fn ridge_fit<'a>(device: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["ridge", "fit"];
    args.extend_from_slice(device);
    args.extend(["--x", "X.npy", "--y", "Y.npy", "--out", "m"]);
    args
}

#[test]
fn only_cuda_devices_leave_this_process() {
    let dir = tempfile::tempdir().unwrap();
    for device in [&[][..], &["--device", "cpu"], &["--device=cpu"]] {
        let output = run_from(dir.path(), &ridge_fit(device), None);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("running on the CPU"), "{stderr}");
        assert!(stderr.contains("X.npy"), "{stderr}");
        assert_eq!(output.status.code(), Some(2), "{stderr}");
    }
}

#[test]
fn a_missing_gpu_build_or_library_falls_back_to_the_cpu_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    // no brainrecon-cuda beside it: the reason names it; `cuda:1` becomes `cpu`, the rest stays
    let output = run_from(dir.path(), &ridge_fit(&["--device", "cuda:1"]), None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("running on the CPU") && stderr.contains("brainrecon-cuda"),
        "{stderr}"
    );
    assert!(!stderr.contains("--device cuda"), "{stderr}");
    assert!(stderr.contains("X.npy"), "{stderr}");
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    // a GPU build beside it, a library that does not load: `--device=cuda` becomes
    // `--device=cpu`
    std::fs::write(dir.path().join("brainrecon-cuda"), "").unwrap();
    let absent = Some("libbrainrecon-absent.so.7");
    let output = run_from(dir.path(), &ridge_fit(&["--device=cuda"]), absent);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("libbrainrecon-absent.so.7"), "{stderr}");
    assert!(!stderr.contains("--device cuda"), "{stderr}");
    assert!(stderr.contains("X.npy"), "{stderr}");
    assert_eq!(output.status.code(), Some(2), "{stderr}");
}
