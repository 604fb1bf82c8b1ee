//! `simulate --kind movie` → `bids prepare` as a user runs them, and every refusal of bad input:
//! exit code 2, one message naming the file and what was expected, nothing written.

mod common;

use brainrecon_datasets::runs::RunSet;
use brainrecon_formats::nifti4d::{self, Storage};
use common::{copy_dir, ok, p, user_error};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/tests/fixtures/runs")
}

/// A short simulated movie subject in DIR/sim.
fn simulated(dir: &Path) -> PathBuf {
    let sim = dir.join("sim");
    ok(&[
        "simulate",
        "--kind",
        "movie",
        "--out",
        p(&sim),
        "--runs",
        "2",
        "--run-seconds",
        "90",
        "--seed",
        "3",
    ]);
    sim
}

/// Runs `bids prepare ARGS --out DIR/out`, expects exit 2 with every fragment in the message
/// and no output, and returns the message.
fn refused(dir: &Path, args: &[&str], fragments: &[&str]) -> String {
    let out = dir.join("out");
    let mut all = vec!["bids", "prepare"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", p(&out)]);
    let stderr = user_error(&all);
    for f in fragments {
        assert!(stderr.contains(f), "missing '{f}' in: {stderr}");
    }
    assert_eq!(stderr.trim().lines().count(), 1, "one message: {stderr}");
    assert!(
        !out.exists() && !dir.join("out.partial").exists(),
        "output left behind: {stderr}"
    );
    stderr
}

#[test]
fn help_has_examples() {
    for command in [vec!["bids", "prepare"], vec!["simulate"]] {
        let mut args = command.clone();
        args.push("--help");
        let help = ok(&args);
        assert!(
            help.contains("Example:") && help.contains("--kind movie"),
            "{command:?}:\n{help}"
        );
    }
    let top = ok(&["--help"]);
    let line = top
        .lines()
        .find(|l| l.trim_start().starts_with("bids "))
        .expect("bids in --help");
    assert!(line.len() > 20, "{line}");
}

#[test]
fn simulated_movie_prepares_into_a_run_set() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulated(dir.path());
    for file in [
        "dataset_description.json",
        "sub-01/func/sub-01_task-movie_run-01_bold.nii.gz",
        "sub-01/func/sub-01_task-movie_run-02_bold.json",
        "sub-01/func/sub-01_task-movie_run-02_events.tsv",
        "derivatives/mask/sub-01_mask.nii.gz",
        "derivatives/annotation/movie_run-01_timeplace_each1sec.txt",
        "truth/truth.json",
        "truth/signal/run-02.npy",
        "truth/semantics/run-01_speech.npy",
    ] {
        assert!(sim.join(file).is_file(), "{file} missing");
    }
    let out = dir.path().join("runs");
    let stdout = ok(&[
        "bids",
        "prepare",
        "--bids-root",
        p(&sim),
        "--subject",
        "sub-01",
        "--task",
        "movie",
        "--out",
        p(&out),
        "--drop-seconds",
        "4",
    ]);
    assert!(stdout.contains("2 runs, 172 volumes at TR 1 s"), "{stdout}");
    let set = RunSet::open(&out).unwrap();
    assert_eq!(set.runs()[1].name, "task-movie_run-02");
    assert_eq!(set.annotations(0, "summary").unwrap().len(), 86);
    // The same command again: nothing to do.
    let again = ok(&[
        "bids",
        "prepare",
        "--bids-root",
        p(&sim),
        "--subject",
        "01",
        "--task",
        "movie",
        "--out",
        p(&out),
        "--drop-seconds",
        "4",
    ]);
    assert!(again.contains("already prepared"), "{again}");
    let report: serde_json::Value = serde_json::from_str(&ok(&[
        "bids",
        "prepare",
        "--bids-root",
        p(&sim),
        "--subject",
        "01",
        "--task",
        "movie",
        "--out",
        p(&dir.path().join("json")),
        "--mask",
        p(&sim.join("derivatives/mask/sub-01_mask.nii.gz")),
        "--detrend",
        "poly:2",
        "--json",
    ]))
    .unwrap();
    assert_eq!(report["meta"]["preprocessing"]["detrend"], "poly:2");
    assert_eq!(report["runs_processed"], 2);
}

#[test]
fn ds005531_layout_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let stdout = ok(&[
        "bids",
        "prepare",
        "--layout",
        "ds005531",
        "--bids-root",
        p(&fixtures().join("ds005531")),
        "--subject",
        "S01",
        "--task",
        "breakingbad",
        "--out",
        p(&out),
    ]);
    assert!(
        stdout.contains("2 runs, 22 volumes at TR 1 s, 48 voxels"),
        "{stdout}"
    );
}

/// `bids prepare --bids-root SIM --subject 01 --task movie EXTRA…`, refused with `fragments`.
fn refused_movie(dir: &Path, sim: &Path, extra: &[&str], fragments: &[&str]) -> String {
    let mut args = vec!["--bids-root", p(sim), "--subject", "01", "--task", "movie"];
    args.extend_from_slice(extra);
    refused(dir, &args, fragments)
}

#[test]
fn bad_options_tasks_and_masks_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulated(dir.path());
    let args = ["--bids-root", p(&sim), "--subject", "01", "--task", "music"];
    refused(
        dir.path(),
        &args,
        &["sub-01", "runs of task music", "runs of task movie only"],
    );
    let other_mask = fixtures().join("ds003720_mask.nii.gz");
    refused_movie(
        dir.path(),
        &sim,
        &["--mask", p(&other_mask)],
        &["ds003720_mask.nii.gz", "[20, 20, 10]", "grid"],
    );
    refused_movie(
        dir.path(),
        &sim,
        &["--detrend", "median"],
        &["--detrend", "median:<seconds>"],
    );
    refused_movie(
        dir.path(),
        &sim,
        &["--drop-seconds", "2.5"],
        &["--drop-seconds", "multiple of the TR"],
    );
    let mut both = vec!["bids", "prepare", "--bids-root", p(&sim), "--subject", "01"];
    both.extend([
        "--task",
        "movie",
        "--out",
        "x",
        "--mask-threshold",
        "0.2",
        "--mask",
        "m.nii",
    ]);
    let clap = user_error(&both);
    assert!(
        clap.contains("--mask") && clap.contains("cannot be used with"),
        "{clap}"
    );
}

#[test]
fn annotations_and_repetition_times_that_disagree_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulated(dir.path());
    let annotation = sim.join("derivatives/annotation/movie_run-02_story_each1sec.txt");
    let text = std::fs::read_to_string(&annotation).unwrap();
    let short: Vec<&str> = text.lines().take(85).collect();
    std::fs::write(&annotation, short.join("\n") + "\n").unwrap();
    let fragments = [
        "movie_run-02_story_each1sec.txt",
        "90 lines",
        "85 lines: 5 seconds shorter than the run",
    ];
    refused_movie(dir.path(), &sim, &[], &fragments);
    std::fs::write(&annotation, text).unwrap();

    let sidecar = sim.join("sub-01/func/sub-01_task-movie_run-02_bold.json");
    std::fs::write(&sidecar, r#"{"RepetitionTime": 2.0, "TaskName": "movie"}"#).unwrap();
    refused_movie(
        dir.path(),
        &sim,
        &[],
        &["run-02_bold.nii.gz", "RepetitionTime", "1 s", "2 s"],
    );
    std::fs::write(&sidecar, r#"{"TaskName": "movie"}"#).unwrap();
    refused_movie(
        dir.path(),
        &sim,
        &[],
        &[
            "run-02_bold.nii.gz",
            "RepetitionTime",
            "none in any sidecar",
        ],
    );
}

#[test]
fn runs_on_another_grid_or_with_nan_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulated(dir.path());
    let run2 = sim.join("sub-01/func/sub-01_task-movie_run-02_bold.nii.gz");
    let affine = nifti4d::read_header(&run2).unwrap().affine;
    let flat = vec![vec![100.0; 3600]; 90];
    nifti4d::write_series(&run2, [20, 20, 9], 1.0, &affine, Storage::Float32, &flat).unwrap();
    refused_movie(
        dir.path(),
        &sim,
        &[],
        &["run-02_bold.nii.gz", "grid", "[20, 20, 10]", "[20, 20, 9]"],
    );
    // The same shape, shifted by 5 mm: another grid, named with both files' affines.
    let mut shifted = affine;
    shifted[2][3] += 5.0;
    nifti4d::write_series(
        &run2,
        [20, 20, 10],
        1.0,
        &shifted,
        Storage::Float32,
        &vec![vec![100.0; 4000]; 90],
    )
    .unwrap();
    refused_movie(
        dir.path(),
        &sim,
        &[],
        &["run-02_bold.nii.gz", "run-01_bold.nii.gz", "grid", "affine"],
    );

    let nan_at = 10 + 20 * (10 + 20 * 5);
    let volumes: Vec<Vec<f64>> = (0..90)
        .map(|t| {
            (0..4000)
                .map(|v| {
                    if t == 33 && v == nan_at {
                        f64::NAN
                    } else {
                        500.0 + ((t * 7 + v) % 13) as f64
                    }
                })
                .collect()
        })
        .collect();
    nifti4d::write_series(
        &run2,
        [20, 20, 10],
        1.0,
        &affine,
        Storage::Float32,
        &volumes,
    )
    .unwrap();
    let mask = sim.join("derivatives/mask/sub-01_mask.nii.gz");
    let fragments = [
        "run-02_bold.nii.gz",
        "voxel (10, 10, 5) at volume 33",
        "NaN",
    ];
    refused_movie(dir.path(), &sim, &["--mask", p(&mask)], &fragments);
}

#[test]
fn a_finished_run_set_with_other_settings_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulated(dir.path());
    let out = dir.path().join("out");
    let args = [
        "bids",
        "prepare",
        "--bids-root",
        p(&sim),
        "--subject",
        "01",
        "--task",
        "movie",
        "--out",
        p(&out),
    ];
    ok(&args);
    let mut other = args.to_vec();
    other.extend(["--detrend", "none"]);
    let stderr = user_error(&other);
    assert!(stderr.contains("prepared with other settings"), "{stderr}");
    RunSet::open(&out).unwrap();
}

#[test]
fn ds005531_data_off_the_raw_grid_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ds005531");
    copy_dir(&fixtures().join("ds005531"), &root);
    // The raw run's header says the grid has 150 voxels; dataDT has 120.
    let raw = root.join("sub-S01/func/sub-S01_task-breakingbad_run-01_bold.nii.gz");
    let affine = [
        [2.0, 0.0, 0.0, 0.0],
        [0.0, 2.0, 0.0, 0.0],
        [0.0, 0.0, 2.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    nifti4d::write_series(
        &raw,
        [6, 5, 5],
        1.0,
        &affine,
        Storage::Float32,
        &vec![vec![0.0; 150]; 2],
    )
    .unwrap();
    let args = [
        "--layout",
        "ds005531",
        "--bids-root",
        p(&root),
        "--subject",
        "S01",
        "--task",
        "breakingbad",
    ];
    refused(
        dir.path(),
        &args,
        &[
            "run-01.mat",
            "dataDT",
            "150 voxels per volume",
            "120 voxels",
        ],
    );
}
