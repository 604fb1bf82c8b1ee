//! `bids prepare --fmriprep` against nilearn: tools/fixtures/fmriprep_confounds.py writes a tiny
//! fMRIPrep output folder and what nilearn 0.14's `load_confounds` + `signal.clean` make of it
//! for several strategies; the run sets prepared here must match on the kept rows within 1e-5,
//! hold zeros on the censored rows and list exactly the volumes nilearn's sample mask leaves
//! out. Then bad input: each refusal names the file and the column or field.

use brainrecon_datasets::fmriprep::confounds::{
    Strategy, DEFAULT_FD_THRESHOLD, DEFAULT_STD_DVARS_THRESHOLD,
};
use brainrecon_datasets::fmriprep::{FmriprepOptions, Space};
use brainrecon_datasets::runs::prepare::{prepare_fmriprep, Layout, MaskChoice, PrepareOptions};
use brainrecon_datasets::runs::RunSet;
use brainrecon_formats::npy;
use brainrecon_testkit::copy_dir;
use std::path::{Path, PathBuf};

const TOLERANCE: f32 = 1e-5;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fmriprep")
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn options(root: &Path, out: &Path) -> PrepareOptions {
    PrepareOptions {
        root: root.to_path_buf(),
        subject: "01".into(),
        tasks: vec!["movie".into()],
        sessions: Vec::new(),
        out: out.to_path_buf(),
        layout: Layout::Fmriprep,
        mask: MaskChoice::Auto,
        detrend: None,
        drop_seconds: None,
        progress: false,
        keep_units: false,
    }
}

fn strategy(text: &str, fd: f64, dvars: f64) -> FmriprepOptions {
    FmriprepOptions {
        space: Space::default_volume(),
        strategy: Strategy::parse(text, fd, dvars).unwrap(),
        raw_root: Some(fixtures().join("bids")),
    }
}

/// Compares one run of `set` with nilearn's output; returns the largest difference.
fn compare_run(set: &RunSet, i: usize, case: &Path, expected: &serde_json::Value) -> f32 {
    let run = &set.runs()[i];
    let want = &expected["runs"][&run.name];
    let kept: Vec<usize> = want["sample_mask"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let info = run
        .confounds
        .as_ref()
        .expect("fMRIPrep runs list their confounds");
    let censored: Vec<usize> = (0..run.n_trs).filter(|r| !kept.contains(r)).collect();
    assert_eq!(info.censored, censored, "{}: censored rows", run.name);
    let mut names: Vec<&str> = info.regressors.iter().map(String::as_str).collect();
    let mut nilearn: Vec<&str> = want["confound_columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    names.sort_unstable();
    nilearn.sort_unstable();
    assert_eq!(names, nilearn, "{}: regressors", run.name);
    let reference = npy::read_f32(&case.join(want["file"].as_str().unwrap())).unwrap();
    assert_eq!(
        reference.shape,
        [kept.len(), set.n_voxels()],
        "{}",
        run.name
    );
    let data = set.run_data(i).unwrap();
    let mut worst = 0f32;
    for (k, &row) in kept.iter().enumerate() {
        let want = &reference.data[k * set.n_voxels()..(k + 1) * set.n_voxels()];
        for (a, b) in data.row(row).iter().zip(want) {
            worst = worst.max((a - b).abs());
        }
    }
    for &row in &censored {
        assert!(
            data.row(row).iter().all(|v| *v == 0.0),
            "{} row {row}",
            run.name
        );
    }
    worst
}

#[test]
fn every_strategy_matches_nilearn() {
    let dir = tempfile::tempdir().unwrap();
    let expected_voxels = npy::read_i64(&fixtures().join("expected/voxels.npy")).unwrap();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(fixtures().join("expected"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 6, "{cases:?}");
    for case in cases {
        let expected = json(&case.join("case.json"));
        let text = expected["confounds"].as_str().unwrap();
        let fm = strategy(
            text,
            expected["fd_threshold"].as_f64().unwrap(),
            expected["std_dvars_threshold"].as_f64().unwrap(),
        );
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let out = dir.path().join(&name);
        let report =
            prepare_fmriprep(&options(&fixtures().join("derivatives"), &out), &fm).unwrap();
        assert_eq!(report.zero_variance_voxels, 0, "{name}");
        let set = RunSet::open(&out).unwrap();
        let voxels: Vec<i64> = set
            .voxel_indices()
            .iter()
            .flatten()
            .map(|&v| v as i64)
            .collect();
        assert_eq!(voxels, expected_voxels.data, "{name}: voxels");
        assert_eq!(set.runs().len(), 2);
        let worst = (0..2)
            .map(|i| compare_run(&set, i, &case, &expected))
            .fold(0f32, f32::max);
        println!("{name} ({text}): max |difference| to nilearn {worst:.3e}");
        assert!(worst < TOLERANCE, "{name}: {worst}");
        let meta = set.meta();
        let c = meta.preprocessing.confounds.as_ref().unwrap();
        assert_eq!(
            Strategy::parse(&c.strategy, 0.5, 1.5).unwrap().label(),
            c.strategy
        );
        assert_eq!((meta.source.layout.as_str(), meta.tr), ("fmriprep", 2.0));
        assert_eq!(c.generated_by, "fMRIPrep 23.2.1");
        assert!(
            set.events(0).unwrap().is_some(),
            "events from the raw dataset"
        );
    }
}

#[test]
fn drop_seconds_cut_rows_and_shift_the_censored_list() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&fixtures().join("derivatives"), &dir.path().join("out"));
    opts.drop_seconds = Some(4.0);
    let fm = strategy(
        "motion:basic",
        DEFAULT_FD_THRESHOLD,
        DEFAULT_STD_DVARS_THRESHOLD,
    );
    prepare_fmriprep(&opts, &fm).unwrap();
    let set = RunSet::open(&dir.path().join("out")).unwrap();
    assert_eq!(set.runs()[0].n_trs, 62);
    // run 1's non-steady-state volumes 0 and 1 are among the dropped ones.
    assert!(set.runs()[0]
        .confounds
        .as_ref()
        .unwrap()
        .censored
        .is_empty());
    let again = prepare_fmriprep(&opts, &fm).unwrap();
    assert!(again.already_prepared);
}

/// A writable copy of the derivatives, with `edit` applied to run 1's confounds table.
fn edited(dir: &Path, edit: impl Fn(&str) -> String) -> PathBuf {
    let root = dir.join("derivatives");
    copy_dir(&fixtures().join("derivatives"), &root);
    let tsv = root.join("sub-01/func/sub-01_task-movie_run-01_desc-confounds_timeseries.tsv");
    let text = std::fs::read_to_string(&tsv).unwrap();
    std::fs::write(&tsv, edit(&text)).unwrap();
    root
}

fn refusal(root: &Path, fm: &FmriprepOptions, dir: &Path, fragments: &[&str]) -> String {
    let out = dir.join("out");
    let err = prepare_fmriprep(&options(root, &out), fm)
        .unwrap_err()
        .to_string();
    for f in fragments {
        assert!(err.contains(f), "missing '{f}' in: {err}");
    }
    assert!(!out.exists() && !dir.join("out.partial").exists(), "{err}");
    err
}

/// Column `name`'s index in the table's header.
fn column(text: &str, name: &str) -> usize {
    text.lines()
        .next()
        .unwrap()
        .split('\t')
        .position(|c| c == name)
        .unwrap()
}

fn set_cell(text: &str, row: usize, col: usize, value: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut cells: Vec<&str> = lines[row + 1].split('\t').collect();
    cells[col] = value;
    lines[row + 1] = cells.join("\t");
    lines.join("\n") + "\n"
}

#[test]
fn bad_confounds_are_named() {
    let full = strategy("motion:full,wm_csf:basic,high_pass,scrub", 0.5, 1.5);
    // a requested column absent
    let dir = tempfile::tempdir().unwrap();
    let root = edited(dir.path(), |t| {
        t.replacen("rot_z_derivative1_power2", "rot_z_d1p2", 1)
    });
    refusal(
        &root,
        &full,
        dir.path(),
        &[
            "run-01_desc-confounds_timeseries.tsv",
            "column rot_z_derivative1_power2",
            "motion:full",
        ],
    );
    // n/a in the middle of a selected column
    let dir = tempfile::tempdir().unwrap();
    let root = edited(dir.path(), |t| {
        set_cell(t, 30, column(t, "white_matter"), "n/a")
    });
    refusal(
        &root,
        &full,
        dir.path(),
        &["row 31 column white_matter", "n/a"],
    );
    // n/a in the middle of framewise_displacement, with scrub
    let dir = tempfile::tempdir().unwrap();
    let root = edited(dir.path(), |t| {
        set_cell(t, 10, column(t, "framewise_displacement"), "n/a")
    });
    refusal(&root, &full, dir.path(), &["column framewise_displacement"]);
    // a row short
    let dir = tempfile::tempdir().unwrap();
    let root = edited(dir.path(), |t| {
        let mut lines: Vec<&str> = t.lines().collect();
        lines.pop();
        lines.join("\n") + "\n"
    });
    refusal(
        &root,
        &full,
        dir.path(),
        &["rows", "64 rows, one per volume", "63 rows"],
    );
    // text in a number column
    let dir = tempfile::tempdir().unwrap();
    let root = edited(dir.path(), |t| set_cell(t, 5, column(t, "trans_x"), "abc"));
    refusal(&root, &full, dir.path(), &["row 6 column trans_x", "abc"]);
}

#[test]
fn missing_files_and_bad_options_are_named() {
    let full = strategy("motion:full", 0.5, 1.5);
    let dir = tempfile::tempdir().unwrap();
    let root = edited(dir.path(), |t| t.to_string());
    let tsv = root.join("sub-01/func/sub-01_task-movie_run-02_desc-confounds_timeseries.tsv");
    std::fs::remove_file(&tsv).unwrap();
    refusal(
        &root,
        &full,
        dir.path(),
        &["run-02_desc-confounds_timeseries.tsv", "confounds table"],
    );
    let dir = tempfile::tempdir().unwrap();
    let root = edited(dir.path(), |t| t.to_string());
    std::fs::remove_file(root.join("dataset_description.json")).unwrap();
    refusal(
        &root,
        &full,
        dir.path(),
        &["dataset_description.json", "fMRIPrep"],
    );
    let mut t1w = full.clone();
    t1w.space = Space::parse("T1w").unwrap();
    refusal(
        &fixtures().join("derivatives"),
        &t1w,
        dir.path(),
        &["space", "T1w", "MNI152NLin2009cAsym only"],
    );
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&fixtures().join("derivatives"), &dir.path().join("out"));
    opts.detrend = Some(brainrecon_core::signal::detrend::Detrend::Poly { order: 2 });
    let err = prepare_fmriprep(&opts, &full).unwrap_err().to_string();
    assert!(
        err.contains("--detrend") && err.contains("high_pass"),
        "{err}"
    );
    // scrubbing everything leaves nothing to clean
    let all = strategy("scrub", 0.000001, 1.5);
    let err = prepare_fmriprep(
        &options(&fixtures().join("derivatives"), &dir.path().join("o2")),
        &all,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("censored volumes") && err.contains("--fd-threshold"),
        "{err}"
    );
}

/// The fixture moved into `ses-1/` (files renamed `sub-01_ses-1_…`), events likewise.
fn with_session(dir: &Path) -> (PathBuf, PathBuf) {
    let (root, raw) = (dir.join("derivatives"), dir.join("bids"));
    for (from, to) in [
        (fixtures().join("derivatives"), &root),
        (fixtures().join("bids"), &raw),
    ] {
        let func = to.join("sub-01/ses-1/func");
        std::fs::create_dir_all(&func).unwrap();
        std::fs::copy(
            from.join("dataset_description.json"),
            to.join("dataset_description.json"),
        )
        .unwrap();
        for entry in std::fs::read_dir(from.join("sub-01/func")).unwrap() {
            let name = entry
                .unwrap()
                .file_name()
                .to_string_lossy()
                .replace("sub-01_", "sub-01_ses-1_");
            std::fs::copy(
                from.join("sub-01/func").join(name.replace("ses-1_", "")),
                func.join(&name),
            )
            .unwrap();
        }
    }
    (root, raw)
}

#[test]
fn sessions_name_runs_and_find_their_tables_and_events() {
    let dir = tempfile::tempdir().unwrap();
    let (root, raw) = with_session(dir.path());
    let mut fm = strategy("motion:full,high_pass", 0.5, 1.5);
    fm.raw_root = Some(raw);
    let out = dir.path().join("out");
    prepare_fmriprep(&options(&root, &out), &fm).unwrap();
    let set = RunSet::open(&out).unwrap();
    let names: Vec<&str> = set.runs().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["ses-1_task-movie_run-01", "ses-1_task-movie_run-02"]
    );
    assert_eq!(set.runs()[0].session.as_deref(), Some("1"));
    assert!(set.events(1).unwrap().is_some());
    let table = &set.runs()[1].confounds.as_ref().unwrap().file;
    assert!(
        table.ends_with("sub-01_ses-1_task-movie_run-02_desc-confounds_timeseries.tsv"),
        "{table:?}"
    );
}

#[test]
fn the_tr_comes_from_the_sidecar_else_the_header() {
    let fm = strategy("motion:basic", 0.5, 1.5);
    let dir = tempfile::tempdir().unwrap();
    let root = edited(dir.path(), |t| t.to_string());
    let func = root.join("sub-01/func");
    for run in ["run-01", "run-02"] {
        let sidecar = func.join(format!(
            "sub-01_task-movie_{run}_space-MNI152NLin2009cAsym_desc-preproc_bold.json"
        ));
        std::fs::remove_file(sidecar).unwrap();
    }
    let out = dir.path().join("header");
    prepare_fmriprep(&options(&root, &out), &fm).unwrap();
    assert_eq!(RunSet::open(&out).unwrap().tr(), 2.0);
    let sidecar =
        func.join("sub-01_task-movie_run-02_space-MNI152NLin2009cAsym_desc-preproc_bold.json");
    std::fs::write(&sidecar, r#"{"RepetitionTime": "2 s"}"#).unwrap();
    refusal(
        &root,
        &fm,
        dir.path(),
        &[
            "run-02_space-MNI152NLin2009cAsym_desc-preproc_bold.json",
            "RepetitionTime",
        ],
    );
}
