//! `bids prepare --fmriprep` as a user runs it on fMRIPrep's output (the tiny tree
//! tools/fixtures/fmriprep_confounds.py writes), and its refusals: exit code 2, one message
//! naming the file and the column or option, nothing written.

mod common;

use brainrecon_datasets::runs::RunSet;
use brainrecon_formats::npy;
use common::{ok, p, user_error};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/tests/fixtures/fmriprep")
}

fn derivatives() -> PathBuf {
    fixtures().join("derivatives")
}

fn refused(dir: &Path, args: &[&str], fragments: &[&str]) {
    let out = dir.join("out");
    let mut all = vec!["bids", "prepare", "--subject", "01", "--task", "movie"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", p(&out)]);
    let stderr = user_error(&all);
    for f in fragments {
        assert!(stderr.contains(f), "missing '{f}' in: {stderr}");
    }
    assert_eq!(stderr.trim().lines().count(), 1, "one message: {stderr}");
    assert!(
        !out.exists() && !dir.join("out.partial").exists(),
        "{stderr}"
    );
}

#[test]
fn fmriprep_runs_are_cleaned_as_nilearn_cleans_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let case = fixtures().join("expected/scrub");
    let stdout = ok(&[
        "bids",
        "prepare",
        "--fmriprep",
        p(&derivatives()),
        "--bids-root",
        p(&fixtures().join("bids")),
        "--subject",
        "sub-01",
        "--task",
        "movie",
        "--confounds",
        "motion:full,wm_csf:full,global_signal:basic,high_pass,scrub",
        "--out",
        p(&out),
    ]);
    assert!(
        stdout.contains("2 runs, 128 volumes at TR 2 s, 47 voxels"),
        "{stdout}"
    );
    assert!(
        stdout.contains("task-movie_run-01: 12 of 64 rows censored"),
        "{stdout}"
    );
    let set = RunSet::open(&out).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case.join("case.json")).unwrap()).unwrap();
    for (i, run) in set.runs().iter().enumerate() {
        let want = &expected["runs"][&run.name];
        let kept: Vec<usize> = want["sample_mask"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let reference = npy::read_f32(&case.join(want["file"].as_str().unwrap())).unwrap();
        let data = set.run_data(i).unwrap();
        let n = set.n_voxels();
        for (k, &row) in kept.iter().enumerate() {
            let worst = data
                .row(row)
                .iter()
                .zip(&reference.data[k * n..(k + 1) * n])
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-5, "{} row {row}: {worst}", run.name);
        }
        assert_eq!(
            run.confounds.as_ref().unwrap().censored.len(),
            64 - kept.len()
        );
        assert!(run.events.is_some());
    }
    let meta = std::fs::read_to_string(out.join("runset.json")).unwrap();
    for key in [
        "\"strategy\": \"motion:full,wm_csf:full,global_signal:basic,high_pass,scrub:5\"",
        "\"fd_threshold\": 0.5",
        "\"censored\"",
        "\"zscore\": \"run_sample\"",
    ] {
        assert!(meta.contains(key), "{key} in {meta}");
    }
    let again = ok(&[
        "bids",
        "prepare",
        "--fmriprep",
        p(&derivatives()),
        "--bids-root",
        p(&fixtures().join("bids")),
        "--subject",
        "01",
        "--task",
        "movie",
        "--confounds",
        "motion:full,wm_csf:full,global_signal:basic,high_pass,scrub",
        "--out",
        p(&out),
    ]);
    assert!(again.contains("already prepared"), "{again}");
}

#[test]
fn help_documents_the_confounds_syntax() {
    let help = ok(&["bids", "prepare", "--help"]);
    for text in [
        "--fmriprep",
        "--confounds",
        "motion:full,wm_csf:basic,global_signal:basic,high_pass,scrub",
        "--fd-threshold",
        "--std-dvars-threshold",
        "censored",
    ] {
        assert!(help.contains(text), "{text}:\n{help}");
    }
}

#[test]
fn bad_fmriprep_input_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = derivatives();
    refused(
        dir.path(),
        &["--fmriprep", p(&d), "--confounds", "motion:everything"],
        &["--confounds", "unknown model 'everything'", "e.g."],
    );
    refused(
        dir.path(),
        &["--fmriprep", p(&d), "--space", "fsLR"],
        &["_space-fsLR_den-91k_bold.dtseries.nii", "runs in space"],
    );
    refused(
        dir.path(),
        &["--fmriprep", p(&d), "--space", "fsaverage5"],
        &["GIFTI", "volume space"],
    );
    refused(
        dir.path(),
        &["--fmriprep", p(&d), "--fd-threshold", "0.3"],
        &["--fd-threshold", "scrub"],
    );
    refused(
        dir.path(),
        &["--fmriprep", p(&d), "--detrend", "poly:2"],
        &["--detrend", "high_pass"],
    );
    // a copy whose run 2 table lacks global_signal
    let root = dir.path().join("derivatives");
    std::fs::create_dir_all(root.join("sub-01/func")).unwrap();
    std::fs::copy(
        d.join("dataset_description.json"),
        root.join("dataset_description.json"),
    )
    .unwrap();
    for entry in std::fs::read_dir(d.join("sub-01/func")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            root.join("sub-01/func").join(entry.file_name()),
        )
        .unwrap();
    }
    let tsv = root.join("sub-01/func/sub-01_task-movie_run-02_desc-confounds_timeseries.tsv");
    let text = std::fs::read_to_string(&tsv)
        .unwrap()
        .replacen("global_signal\t", "gs\t", 1);
    std::fs::write(&tsv, text).unwrap();
    refused(
        dir.path(),
        &["--fmriprep", p(&root), "--confounds", "global_signal:basic"],
        &[
            "run-02_desc-confounds_timeseries.tsv",
            "column global_signal",
        ],
    );
    std::fs::remove_file(&tsv).unwrap();
    refused(
        dir.path(),
        &["--fmriprep", p(&root)],
        &["run-02_desc-confounds_timeseries.tsv", "file not found"],
    );
}

#[test]
fn encode_runs_leaves_censored_rows_out() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    ok(&[
        "bids",
        "prepare",
        "--fmriprep",
        p(&derivatives()),
        "--bids-root",
        p(&fixtures().join("bids")),
        "--subject",
        "01",
        "--task",
        "movie",
        "--confounds",
        "motion:full,wm_csf:full,global_signal:basic,high_pass,scrub",
        "--out",
        p(&out),
    ]);
    let set = RunSet::open(&out).unwrap();
    let censored: usize = set
        .runs()
        .iter()
        .map(|r| r.confounds.as_ref().unwrap().censored.len())
        .sum();
    assert!(censored > 0);
    let features = dir.path().join("features");
    for (k, run) in set.runs().iter().enumerate() {
        let values: Vec<f32> = (0..run.n_trs * 3)
            .map(|i| ((i * 7919 + k * 104729) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        npy::write(
            &features.join(format!("{}.npy", run.name)),
            &[run.n_trs, 3],
            &values,
        )
        .unwrap();
    }
    let bands = format!("noise={}", features.display());
    let summary: serde_json::Value = serde_json::from_str(&ok(&[
        "encode-runs",
        "--subject",
        p(&out),
        "--bands",
        &bands,
        "--folds",
        "2",
        "--n-iter",
        "1",
        "--permutations",
        "10",
        "--json",
        "--out",
        p(&dir.path().join("enc")),
    ]))
    .unwrap();
    let total: usize = set.runs().iter().map(|r| r.n_trs).sum();
    assert_eq!(summary["censored_trs"], censored);
    let used = summary["train_trs"].as_u64().unwrap() + summary["test_trs"].as_u64().unwrap();
    assert_eq!(used as usize, total - censored);
}
