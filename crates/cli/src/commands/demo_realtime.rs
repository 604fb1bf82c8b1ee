//! Step 5 of `demo --route realtime`: the subject's next session is exported by a simulated
//! scanner while `realtime run` reconstructs it.

use super::demo::path;
use super::realtime_simulate::Pace;
use brainrecon_core::fs::read_json;
use std::path::Path;
use std::time::{Duration, Instant};

pub(super) struct Settings<'a> {
    pub tr: f64,
    pub pace: Pace,
    pub images: Option<usize>,
    pub rest_seconds: f64,
    pub seed: u64,
    pub model: &'a str,
    pub device: &'a str,
}

/// Runs the scanner (a thread running `realtime simulate`) and `realtime run` side by side.
/// OUT/realtime-sim and OUT/realtime-session are made again.
pub(super) fn session(
    settings: &Settings,
    out: &Path,
    experiment: &Path,
    subject: &Path,
    decoders: &Path,
) -> anyhow::Result<()> {
    let (sim, live) = (out.join("realtime-sim"), out.join("realtime-session"));
    for dir in [&sim, &live] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| brainrecon_data::DataError::io(dir, e))?;
        }
    }
    let (tr, seed) = (settings.tr.to_string(), settings.seed.to_string());
    let rest = settings.rest_seconds.to_string();
    let pace = match settings.pace {
        Pace::Real => "real",
        Pace::None => "none",
    };
    let mut simulate: Vec<String> = [
        "realtime",
        "simulate",
        "--experiment",
        path(experiment),
        "--out",
        path(&sim),
        "--tr",
        &tr,
        "--pace",
        pace,
        "--seed",
        &seed,
        "--rest-seconds",
        &rest,
    ]
    .map(String::from)
    .to_vec();
    if let Some(n) = settings.images {
        simulate.extend(["--images".to_string(), n.to_string()]);
    }
    eprintln!(
        "\n[5/6] a scanner exports the subject's next session while it is reconstructed\n  brainrecon {} &",
        simulate.join(" ")
    );
    let scanner = std::thread::spawn(move || {
        let args: Vec<&str> = simulate.iter().map(String::as_str).collect();
        crate::run_command_line(&args)
    });
    let volumes = match wait_for_truth(&sim.join("truth.json"), &scanner)? {
        Some(volumes) => volumes,
        None => return finish(scanner).and(Err(anyhow::anyhow!("the scanner stopped early"))),
    };
    let boldref = experiment.join(
        "derivatives/fmriprep/sub-01/func/sub-01_task-images_run-01_space-T1w_boldref.nii.gz",
    );
    let (events, export) = (sim.join("events.tsv"), sim.join("export"));
    let volumes = volumes.to_string();
    let idle = (10.0 * settings.tr).max(10.0).to_string();
    let mut run = vec![
        "realtime",
        "run",
        "--folder",
        path(&export),
        "--subject",
        path(subject),
        "--decoders",
        path(decoders),
        "--subject-reference",
        path(&boldref),
        "--tr",
        &tr,
        "--events",
        path(&events),
        "--model",
        settings.model,
        "--seed",
        &seed,
        "--device",
        settings.device,
        "--volumes",
        &volumes,
        "--idle-seconds",
        &idle,
        "--out",
        path(&live),
    ];
    if settings.pace == Pace::None {
        run.push("--draw-all");
    }
    eprintln!("  brainrecon {}", run.join(" "));
    let result = crate::run_command_line(&run);
    finish(scanner)?;
    result
}

/// Waits for the scanner's truth.json (written before its first volume) and returns the
/// session's volume count; None when the scanner ended without one.
fn wait_for_truth(
    truth: &Path,
    scanner: &std::thread::JoinHandle<anyhow::Result<()>>,
) -> anyhow::Result<Option<usize>> {
    let started = Instant::now();
    while !truth.is_file() {
        if scanner.is_finished() || started.elapsed() > Duration::from_secs(120) {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let value: serde_json::Value = read_json(truth)?;
    Ok(value["volumes"].as_u64().map(|n| n as usize))
}

fn finish(scanner: std::thread::JoinHandle<anyhow::Result<()>>) -> anyhow::Result<()> {
    scanner
        .join()
        .map_err(|_| anyhow::anyhow!("the simulated scanner panicked"))?
}
