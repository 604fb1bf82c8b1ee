//! Step 5 of `demo --route realtime`: the subject's next session is exported by a simulated
//! scanner while `realtime run` reconstructs it.

use super::demo::path;
use super::realtime_simulate::Pace;
use brainrecon_simulate::scanner_export::wait_for_volume_count;
use std::path::Path;
use std::time::Duration;

pub(super) struct Settings<'a> {
    pub tr: f64,
    pub pace: Pace,
    pub images: Option<usize>,
    pub rest_seconds: f64,
    pub seed: u64,
    pub model: &'a str,
    pub device: &'a str,
}

/// `words`, then each flag and its value.
fn command(words: &[&str], flags: &[(&str, &str)]) -> Vec<String> {
    let flags = flags.iter().flat_map(|(flag, value)| [*flag, *value]);
    words
        .iter()
        .copied()
        .chain(flags)
        .map(String::from)
        .collect()
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
            std::fs::remove_dir_all(dir).map_err(|e| brainrecon_core::DataError::io(dir, e))?;
        }
    }
    let (tr, seed) = (settings.tr.to_string(), settings.seed.to_string());
    let rest = settings.rest_seconds.to_string();
    let pace = match settings.pace {
        Pace::Real => "real",
        Pace::None => "none",
    };
    let mut simulate = command(
        &["realtime", "simulate"],
        &[
            ("--experiment", path(experiment)),
            ("--out", path(&sim)),
            ("--tr", &tr),
            ("--pace", pace),
            ("--seed", &seed),
            ("--rest-seconds", &rest),
        ],
    );
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
    let volumes = wait_for_volume_count(&sim, Duration::from_secs(120), || scanner.is_finished());
    let volumes = match volumes? {
        Some(volumes) => volumes.to_string(),
        None => return finish(scanner).and(Err(anyhow::anyhow!("the scanner stopped early"))),
    };
    let boldref = experiment.join(
        "derivatives/fmriprep/sub-01/func/sub-01_task-images_run-01_space-T1w_boldref.nii.gz",
    );
    let (events, export) = (sim.join("events.tsv"), sim.join("export"));
    let idle = (10.0 * settings.tr).max(10.0).to_string();
    let mut run = command(
        &["realtime", "run"],
        &[
            ("--folder", path(&export)),
            ("--subject", path(subject)),
            ("--decoders", path(decoders)),
            ("--subject-reference", path(&boldref)),
            ("--tr", &tr),
            ("--events", path(&events)),
            ("--model", settings.model),
            ("--seed", &seed),
            ("--device", settings.device),
            ("--volumes", &volumes),
            ("--idle-seconds", &idle),
            ("--out", path(&live)),
        ],
    );
    if settings.pace == Pace::None {
        run.push("--draw-all".to_string());
    }
    eprintln!("  brainrecon {}", run.join(" "));
    let result = crate::run_command_line(&run.iter().map(String::as_str).collect::<Vec<_>>());
    finish(scanner)?;
    result
}

fn finish(scanner: std::thread::JoinHandle<anyhow::Result<()>>) -> anyhow::Result<()> {
    scanner
        .join()
        .map_err(|_| anyhow::anyhow!("the simulated scanner panicked"))?
}
