//! `brainrecon slurm` on a real one-node Slurm cluster (tools/slurm/one-node.sh, started by
//! tools/test.sh when BRAINRECON_TEST_SLURM=1, as CI does): a sharded ridge fit and a sharded
//! reconstruction are bit-identical to one process, and a task stopped mid-way by SIGTERM
//! fails, holds the merge back, and is resumed to the same bytes.

mod common;

use common::{ok, p, simulated_subject};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Whether this run must test on the cluster; without it the test says so and passes.
fn cluster() -> bool {
    if std::env::var("BRAINRECON_TEST_SLURM").as_deref() != Ok("1") {
        eprintln!(
            "note: the Slurm cluster test was left out (BRAINRECON_TEST_SLURM=1 with a cluster \
             from tools/slurm/one-node.sh runs it)"
        );
        return false;
    }
    let sinfo = std::process::Command::new("sinfo").arg("-h").output();
    assert!(
        sinfo.is_ok_and(|o| o.status.success()),
        "BRAINRECON_TEST_SLURM=1 but sinfo fails: start tools/slurm/one-node.sh and export SLURM_CONF"
    );
    true
}

fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../diffusion/tests/fixtures/tiny-sd")
}

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(args)).unwrap()
}

fn status(jobs: &Path) -> serde_json::Value {
    json(&["slurm", "status", "--jobs", p(jobs), "--json"])
}

/// The logs of a submission, for a failure's message.
fn logs(jobs: &Path) -> String {
    let mut text = String::new();
    if let Ok(entries) = std::fs::read_dir(jobs.join("logs")) {
        for entry in entries.flatten() {
            let body = std::fs::read_to_string(entry.path()).unwrap_or_default();
            text.push_str(&format!("== {}\n{body}\n", entry.path().display()));
        }
    }
    text
}

/// Polls `slurm status` until `until` holds of it, or fails after `seconds`.
fn wait_for(jobs: &Path, seconds: u64, what: &str, until: impl Fn(&serde_json::Value) -> bool) {
    let start = Instant::now();
    loop {
        let s = status(jobs);
        if until(&s) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(seconds),
            "waited {seconds} s for {what}; status {s:#}\n{}",
            logs(jobs)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Every file under `dir` (relative path → bytes).
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let name = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn random_matrix(path: &Path, rows: usize, cols: usize, seed: u64) {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let values: Vec<f32> = (0..rows * cols)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    brainrecon_formats::npy::write(path, &[rows, cols], &values).unwrap();
}

#[test]
fn sharded_ridge_fit_on_slurm_is_identical_to_one_process() {
    if !cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = (dir.path().join("X.npy"), dir.path().join("Y.npy"));
    random_matrix(&x, 160, 48, 1);
    random_matrix(&y, 160, 37, 2);
    let one = dir.path().join("one");
    ok(&[
        "ridge",
        "fit",
        "--x",
        p(&x),
        "--y",
        p(&y),
        "--cv",
        "4",
        "--out",
        p(&one),
    ]);
    let merged = dir.path().join("merged");
    let jobs = dir.path().join("jobs");
    let submitted = json(&[
        "slurm",
        "submit",
        "--shards",
        "5",
        "--jobs",
        p(&jobs),
        "--json",
        "--",
        "ridge",
        "fit",
        "--x",
        p(&x),
        "--y",
        p(&y),
        "--cv",
        "4",
        "--out",
        p(&merged),
    ]);
    assert_eq!(
        submitted["submitted_shards"],
        serde_json::json!([0, 1, 2, 3, 4])
    );
    // The merge's output is in place a moment before Slurm counts its job as ended.
    wait_for(&jobs, 120, "the merged model and its job's end", |s| {
        s["done"] == true
            && !["RUNNING", "PENDING", "COMPLETING"]
                .contains(&s["merge_state"].as_str().unwrap_or(""))
    });
    let s = status(&jobs);
    assert_eq!(s["merge_state"], "COMPLETED", "{s:#}");
    assert_eq!(
        std::fs::read(one.join("weights.safetensors")).unwrap(),
        std::fs::read(merged.join("weights.safetensors")).unwrap(),
        "the merged shards differ from one process"
    );
    // Logs are appended to, named per task.
    let log = std::fs::read_to_string(jobs.join("logs/task-3.log")).unwrap();
    assert!(
        log.contains("shard 3/5") && log.contains("targets 23..30"),
        "{log}"
    );
    // Resuming a finished submission submits nothing.
    let again = json(&["slurm", "resume", "--jobs", p(&jobs), "--json"]);
    assert_eq!(again["done"], true);
    assert!(again["merge_job"].is_null() && again["array_job"].is_null());
}

/// The decoders of a tiny simulated subject, as the linear route's test makes them.
fn subject_and_decoders(dir: &Path) -> (PathBuf, PathBuf) {
    let subject = simulated_subject(dir, 150, 3, 32);
    let model = tiny_model();
    for kind in ["vae", "clip-text"] {
        ok(&[
            "features",
            "--subject",
            p(&subject),
            "--model",
            p(&model),
            "--kind",
            kind,
        ]);
    }
    let decoders = dir.join("decoders");
    for target in ["z", "c"] {
        ok(&[
            "fit",
            "--subject",
            p(&subject),
            "--target",
            target,
            "--out",
            p(&decoders.join(target)),
        ]);
    }
    (subject, decoders)
}

#[test]
fn sharded_reconstruction_survives_a_killed_task_and_matches_one_process() {
    if !cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (subject, decoders) = subject_and_decoders(dir.path());
    let model = tiny_model();
    let recon_args = |out: &Path| -> Vec<String> {
        [
            "reconstruct",
            "--subject",
            p(&subject),
            "--decoders",
            p(&decoders),
            "--model",
            p(&model),
            "--samples",
            "2",
            "--steps",
            "40",
            "--out",
            p(out),
        ]
        .map(String::from)
        .to_vec()
    };
    let one = dir.path().join("recons-one");
    let args = recon_args(&one);
    let single = json(
        &[
            args.iter().map(String::as_str).collect::<Vec<_>>(),
            vec!["--json"],
        ]
        .concat(),
    );
    let n_test = single["n_images"].as_u64().unwrap() as usize;
    assert!(n_test >= 10, "{single}");

    let sharded = dir.path().join("recons-sharded");
    let jobs = dir.path().join("recons.slurm");
    let mut submit = vec![
        "slurm",
        "submit",
        "--shards",
        "2",
        "--jobs",
        p(&jobs),
        "--json",
        "--",
    ];
    let args = recon_args(&sharded);
    submit.extend(args.iter().map(String::as_str));
    let submitted = json(&submit);
    let array = submitted["array_job"].as_str().unwrap().to_string();
    let first_merge = submitted["merge_job"].as_str().unwrap().to_string();

    // Stop shard 1 once it has written its first image (its slice: the second half).
    let start = Instant::now();
    let first_of_shard_1 = loop {
        if let Ok(a) = brainrecon_formats::npy::read_i64(&sharded.join("decoded/ids.npy")) {
            break a.data[a.data.len().div_ceil(2)] as u64;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{}",
            logs(&jobs)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let marker = sharded
        .join("sample-2")
        .join(format!("{first_of_shard_1}.png"));
    while !marker.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "{}",
            logs(&jobs)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let task = format!("{array}_1");
    let cancel = std::process::Command::new("scancel")
        .args(["--batch", "--signal=TERM", &task])
        .status()
        .unwrap();
    assert!(cancel.success());
    wait_for(&jobs, 120, "shard 1 to fail", |s| {
        s["shards"][1]["state"] == "FAILED" && s["shards"][0]["done"] == true
    });
    let s = status(&jobs);
    assert_eq!(s["shards"][1]["done"], false, "{s:#}");
    assert_eq!(
        s["done"], false,
        "the merge must not run on an incomplete shard: {s:#}"
    );
    assert_eq!(s["merge_state"], "PENDING", "{s:#}");
    let log = std::fs::read_to_string(jobs.join("logs/task-1.log")).unwrap();
    assert!(log.contains("stopped by a signal"), "{log}");
    let written = std::fs::read_dir(sharded.join("sample-2")).unwrap().count();
    assert!(
        written < n_test,
        "shard 1 was to be stopped mid-way: {written} of {n_test} written"
    );

    // Resume: only shard 1 again, and a new merge waiting for it.
    let resumed = json(&["slurm", "resume", "--jobs", p(&jobs), "--json"]);
    assert_eq!(
        resumed["submitted_shards"],
        serde_json::json!([1]),
        "{resumed}"
    );
    assert_ne!(resumed["merge_job"].as_str().unwrap(), first_merge);
    wait_for(&jobs, 240, "the merged reconstruction", |s| {
        s["done"] == true
    });
    let log = std::fs::read_to_string(jobs.join("logs/task-1.log")).unwrap();
    assert!(
        log.matches("shard 1/2").count() == 2,
        "the log was appended to: {log}"
    );

    // The same folder as one process: every image and decoded array bit-identical; the
    // manifest the same but for the command line.
    let (mut a, mut b) = (files(&one), files(&sharded));
    let manifest = |files: &mut BTreeMap<String, Vec<u8>>| -> serde_json::Value {
        let mut m: serde_json::Value =
            serde_json::from_slice(&files.remove("manifest.json").unwrap()).unwrap();
        m["command"] = serde_json::Value::Null;
        m
    };
    assert_eq!(manifest(&mut a), manifest(&mut b));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(
            bytes == &b[name],
            "{name} differs between one process and the shards"
        );
    }
    assert_eq!(
        a.len(),
        3 * n_test + 3,
        "decoded-z, 2 samples, decoded/{{ids,z,c}}.npy"
    );
}

/// Without a cluster: what the commands refuse, each with exit 2 and the file named.
#[test]
fn bad_submissions_and_shards_are_refused_clearly() {
    use common::user_error;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let err = user_error(&[
        "slurm", "submit", "--shards", "2", "--", "fit", "--out", "x",
    ]);
    assert!(
        err.contains("ridge fit ARGS") && err.contains("reconstruct ARGS"),
        "{err}"
    );
    let err = user_error(&[
        "slurm",
        "submit",
        "--shards",
        "2",
        "--",
        "reconstruct",
        "--subject",
        "s",
        "--out",
        "r",
        "--shard",
        "0/2",
    ]);
    assert!(err.contains("leave --shard out"), "{err}");
    let err = user_error(&["slurm", "status", "--jobs", p(d)]);
    assert!(
        err.contains("slurm.json") && err.contains("missing"),
        "{err}"
    );
    let garbage = d.join("garbage.slurm");
    std::fs::create_dir_all(&garbage).unwrap();
    std::fs::write(garbage.join("slurm.json"), "{\"format\": 3").unwrap();
    let err = user_error(&["slurm", "resume", "--jobs", p(&garbage)]);
    assert!(err.contains("slurm.json"), "{err}");

    // reconstruct merge: no shards, a shard missing, a shard unfinished, a broken manifest.
    let out = d.join("recons");
    let err = user_error(&["reconstruct", "merge", "--out", p(&out)]);
    assert!(err.contains("manifest.json"), "{err}");
    let shards = out.join("shards");
    std::fs::create_dir_all(&shards).unwrap();
    std::fs::write(shards.join("0-of-2.json"), "not json").unwrap();
    let err = user_error(&["reconstruct", "merge", "--out", p(&out)]);
    assert!(err.contains("0-of-2.json"), "{err}");
    let err = user_error(&[
        "reconstruct",
        "--subject",
        p(d),
        "--out",
        p(&out),
        "--shard",
        "2/2",
    ]);
    assert!(
        err.contains("--shard") && err.contains("0 ≤ k < N"),
        "{err}"
    );
}

#[test]
fn a_failed_then_step_is_run_again_and_a_rejected_submit_leaves_nothing() {
    if !cluster() {
        return;
    }
    use common::user_error;
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = (dir.path().join("X.npy"), dir.path().join("Y.npy"));
    random_matrix(&x, 60, 8, 3);
    random_matrix(&y, 60, 6, 4);
    let (model, jobs) = (dir.path().join("model"), dir.path().join("jobs"));
    let later_x = dir.path().join("later.npy");
    let predicted = dir.path().join("predicted.npy");
    let command = |partition: Option<&str>| {
        let mut args = vec![
            "slurm",
            "submit",
            "--shards",
            "2",
            "--jobs",
            p(&jobs),
            "--json",
        ];
        if let Some(partition) = partition {
            args.extend(["--partition", partition]);
        }
        let then = format!(
            "ridge predict --model {} --x {} --out {}",
            p(&model),
            p(&later_x),
            p(&predicted)
        );
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(["--then".into(), then, "--".into()]);
        all.extend(
            [
                "ridge",
                "fit",
                "--x",
                p(&x),
                "--y",
                p(&y),
                "--out",
                p(&model),
            ]
            .map(String::from),
        );
        all
    };
    // A partition Slurm rejects: nothing queued, so nothing recorded; the next submit runs.
    let rejected = command(Some("no-such-partition"));
    let err = user_error(&rejected.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("sbatch"), "{err}");
    assert!(
        !jobs.join("slurm.json").exists(),
        "a rejected submit left its record"
    );
    // The then-step fails (its input is not there yet); the merge itself succeeds.
    let submit = command(None);
    json(&submit.iter().map(String::as_str).collect::<Vec<_>>());
    wait_for(&jobs, 120, "the merge job's failure", |s| {
        s["done"] == true && s["merge_state"] == "FAILED"
    });
    assert_eq!(status(&jobs)["then_done"], false);
    random_matrix(&later_x, 5, 8, 5);
    let again = json(&["slurm", "resume", "--jobs", p(&jobs), "--json"]);
    assert!(again["merge_job"].is_string(), "{again:#}");
    wait_for(&jobs, 120, "the then-step run again", |s| {
        s["then_done"] == true && s["merge_state"] == "COMPLETED"
    });
    assert!(predicted.is_file());
    let done = json(&["slurm", "resume", "--jobs", p(&jobs), "--json"]);
    assert_eq!(done["done"], true);
    assert!(done["merge_job"].is_null());
}
