//! `glm` stopped by SIGKILL once TYPEB is kept resumes from it: the rerun takes TYPEA and
//! TYPEB from `<out>/.stages/`, fits the rest and writes what an unbroken fit writes.
mod common;

use common::{ok, p as s};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn glm_args<'a>(sim: &'a Path, out: &'a Path) -> Vec<String> {
    let fmriprep = sim.join("derivatives/fmriprep");
    [
        "glm",
        "--fmriprep",
        s(&fmriprep),
        "--bids-root",
        s(sim),
        "--subject",
        "01",
        "--task",
        "images",
        "--space",
        "T1w",
        "--out",
        s(out),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all = Vec::new();
    for model in std::fs::read_dir(dir).unwrap().flatten() {
        if model.path().is_dir() && model.file_name().to_string_lossy().starts_with("TYPE") {
            for file in std::fs::read_dir(model.path()).unwrap().flatten() {
                let name = format!(
                    "{}/{}",
                    model.file_name().to_string_lossy(),
                    file.file_name().to_string_lossy()
                );
                all.push((name, std::fs::read(file.path()).unwrap()));
            }
        }
    }
    all.sort();
    all
}

#[test]
fn a_fit_killed_after_typeb_resumes_to_the_same_files() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    ok(&[
        "simulate",
        "--kind",
        "events",
        "--out",
        s(&sim),
        "--seed",
        "1",
        "--images",
        "60",
        "--runs",
        "5",
        "--volume",
        "24,26,20",
        "--image-size",
        "16",
    ]);
    let unbroken = dir.path().join("unbroken");
    let args = glm_args(&sim, &unbroken);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        !unbroken.join(".stages").exists(),
        "stages left after the fit"
    );

    let cut = dir.path().join("cut");
    let mut child = Command::new(env!("CARGO_BIN_EXE_brainrecon"))
        .args(glm_args(&sim, &cut))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let typeb = cut.join(".stages/typeb.f64");
    let start = Instant::now();
    while !typeb.exists() && start.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(typeb.exists(), "TYPEB was never kept");
    assert!(
        !cut.join("glm.json").exists(),
        "the fit ended before it was stopped"
    );

    let rerun = glm_args(&sim, &cut);
    let output = common::brainrecon(&rerun.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("resumed the interrupted fit's typea, typeb"),
        "{stderr}"
    );
    assert!(!cut.join(".stages").exists());
    let (a, b) = (files(&unbroken), files(&cut));
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{name} differs from the unbroken fit's");
    }
    let json = |d: &Path| std::fs::read(d.join("glm.json")).unwrap();
    let (x, y) = (json(&unbroken), json(&cut));
    let text = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .replace(s(&unbroken), "OUT")
            .replace(s(&cut), "OUT")
    };
    assert_eq!(text(&x), text(&y));
}
