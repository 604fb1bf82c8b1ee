//! The CPU build with `--device cuda`: it hands the command to `brainrecon-cuda` beside it when
//! every CUDA library loads, and otherwise runs it on the CPU after saying why (exit status and
//! output as on the CPU).
#![cfg(unix)]

use std::path::Path;
use std::process::Command;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_brainrecon")
}

fn tiny_model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/diffusion/tests/fixtures/tiny-sd")
        .display()
        .to_string()
}

#[test]
fn without_a_gpu_build_a_cuda_command_runs_on_the_cpu_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.png");
    let output = Command::new(bin())
        .args([
            "generate",
            "--model",
            &tiny_model(),
            "--prompt",
            "a red circle",
            "--steps",
            "2",
        ])
        .args(["--guidance", "1", "--device", "cuda", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("running on the CPU") && stderr.contains("brainrecon-cuda"),
        "{stderr}"
    );
    assert!(out.is_file());
}

#[test]
fn with_a_gpu_build_and_its_libraries_the_command_goes_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let launcher = dir.path().join("brainrecon");
    std::fs::copy(bin(), &launcher).unwrap();
    // a stand-in GPU build that reports the arguments it was given
    let gpu = dir.path().join("brainrecon-cuda");
    std::fs::write(&gpu, "#!/bin/sh\necho \"gpu build: $*\"\n").unwrap();
    std::fs::set_permissions(&gpu, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let run = |libraries: &str| {
        Command::new(&launcher)
            .args([
                "ridge",
                "fit",
                "--x",
                "X.npy",
                "--y",
                "Y.npy",
                "--device=cuda:0",
                "--out",
                "m",
            ])
            .env("BRAINRECON_CUDA_LIBRARIES", libraries)
            .output()
            .unwrap()
    };
    // libraries every Linux has stand in for CUDA's: the GPU build takes the command
    let output = run("libc.so.6,libm.so.6");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "gpu build: ridge fit --x X.npy --y Y.npy --device=cuda:0 --out m"
    );
    // a library that does not load: the CPU runs it (here an error about the missing X.npy)
    let output = run("libcublas-not-here.so.13");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("libcublas-not-here.so.13"), "{stderr}");
    assert!(stderr.contains("X.npy"), "{stderr}");
    assert_eq!(output.status.code(), Some(2), "{stderr}");
}
