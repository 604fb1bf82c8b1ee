//! The continuous-fMRI data layer against references no one here wrote: detrending against
//! scipy/numpy, NIfTI decoding and affines against nibabel, and whole run sets against what
//! tools/fixtures/runs_fixtures.py computes from tiny copies of ds003720's and ds005531's
//! layouts. Then bad input: every refusal names the file and what was expected, and leaves
//! nothing behind.

use brainrecon_core::signal::detrend::Detrend;
use brainrecon_core::signal::detrend::{running_median, PolyBasis};
use brainrecon_datasets::runs::prepare::{prepare, Layout, MaskChoice, PrepareOptions};
use brainrecon_datasets::runs::RunSet;
use brainrecon_formats::nifti4d::{self, Storage};
use brainrecon_formats::{nifti_io, npy};
use brainrecon_testkit::{copy_dir, max_abs_diff};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runs")
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn options(
    root: &Path,
    subject: &str,
    tasks: &[&str],
    out: &Path,
    layout: Layout,
) -> PrepareOptions {
    PrepareOptions {
        root: root.to_path_buf(),
        subject: subject.into(),
        tasks: tasks.iter().map(|t| t.to_string()).collect(),
        sessions: Vec::new(),
        out: out.to_path_buf(),
        layout,
        mask: MaskChoice::Auto,
        detrend: None,
        drop_seconds: None,
        progress: false,
        keep_units: false,
    }
}

/// ds003720's fixture with its mask file (`ds003720_mask.nii.gz`), the other settings default.
fn masked_ds003720(subject: &str, tasks: &[&str], out: &Path) -> PrepareOptions {
    PrepareOptions {
        mask: MaskChoice::File(fixtures().join("ds003720_mask.nii.gz")),
        ..options(
            &fixtures().join("ds003720"),
            subject,
            tasks,
            out,
            Layout::Bids,
        )
    }
}

/// Checks a prepared run set against an expected case folder: voxels and every run's data.
fn assert_matches_expected(set: &RunSet, case: &Path, tolerance: f32) {
    let settings = json(&case.join("settings.json"));
    let voxels = npy::read_i64(&case.join("voxels.npy")).unwrap();
    let got: Vec<i64> = set
        .voxel_indices()
        .iter()
        .flatten()
        .map(|&c| c as i64)
        .collect();
    assert_eq!(got, voxels.data, "voxel order");
    let names: Vec<&str> = settings["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let ours: Vec<&str> = set.runs().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(ours, names);
    for (i, name) in names.iter().enumerate() {
        let expected = npy::read_f32(&case.join(format!("{name}.npy"))).unwrap();
        let data = set.run_data(i).unwrap();
        assert_eq!(data.shape(), expected.shape.as_slice(), "{name}");
        let diff = max_abs_diff(data.as_slice(), &expected.data);
        assert!(diff <= tolerance, "{name}: max |difference| {diff}");
    }
    assert_eq!(set.tr(), settings["tr"].as_f64().unwrap());
}

#[test]
fn detrending_matches_scipy_and_numpy() {
    let dir = fixtures().join("detrend");
    let cases = json(&dir.join("cases.json"));
    let cases = cases["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 14);
    for case in cases {
        let input = npy::read_f32(&dir.join(case["input"].as_str().unwrap())).unwrap();
        let expected = npy::read_f32(&dir.join(case["expected"].as_str().unwrap())).unwrap();
        // read_f32 narrows; the signals are compared at float32 precision relative to their scale.
        let raw: Vec<f64> = {
            let bytes = std::fs::read(dir.join(case["input"].as_str().unwrap())).unwrap();
            let header = npy::parse_header(Path::new("x"), &bytes).unwrap();
            bytes[header.data_offset..]
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        let n = input.shape[1];
        let size = case["size"].as_u64().unwrap() as usize;
        for (s, signal) in raw.chunks_exact(n).enumerate() {
            let mut x = signal.to_vec();
            match case["method"].as_str().unwrap() {
                "median" => {
                    let trend = running_median(&x, size);
                    x.iter_mut().zip(trend).for_each(|(a, m)| *a -= m);
                }
                _ => PolyBasis::new(n, size).remove_fit(&mut x),
            }
            let scale = signal.iter().map(|v| v.abs()).fold(1.0, f64::max);
            for (t, (&ours, &theirs)) in
                x.iter().zip(&expected.data[s * n..(s + 1) * n]).enumerate()
            {
                let error = (ours - theirs as f64).abs() / scale;
                assert!(
                    error < 1e-6,
                    "{case}: signal {s} sample {t}: {ours} vs {theirs}"
                );
            }
        }
    }
}

#[test]
fn nifti_datatypes_and_affines_read_as_nibabel_reads_them() {
    let dir = fixtures().join("datatypes");
    for name in [
        "uint8_scaled",
        "int16_scaled",
        "int16_unscaled",
        "float32",
        "float64",
    ] {
        let file = if name == "int16_scaled" {
            format!("{name}.nii")
        } else {
            format!("{name}.nii.gz")
        };
        let expected = npy::read_f32(&dir.join(format!("{name}.npy"))).unwrap();
        let mut got = Vec::new();
        let header = nifti4d::for_each_volume(&dir.join(&file), |t, v| {
            assert_eq!(t, got.len() / v.len());
            got.extend(v.iter().map(|&x| x as f32));
            Ok(())
        })
        .unwrap();
        assert_eq!((header.shape, header.n_volumes), ([4, 3, 2], 5), "{name}");
        assert_eq!(got, expected.data, "{name}");
    }
    let affines = json(&dir.join("affines.json"));
    for case in ["sform", "qform", "both"] {
        let header =
            nifti4d::read_header(&dir.join(affines[case]["file"].as_str().unwrap())).unwrap();
        for r in 0..4 {
            for c in 0..4 {
                let theirs = affines[case]["affine"][r][c].as_f64().unwrap();
                assert!(
                    (header.affine[r][c] - theirs).abs() < 1e-5,
                    "{case} [{r}][{c}]: {} vs {theirs}",
                    header.affine[r][c]
                );
            }
        }
    }
}

#[test]
fn ds003720_threshold_mask_and_running_median() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let case = fixtures().join("expected/ds003720_threshold_median");
    let settings = json(&case.join("settings.json"));
    let mut opts = options(
        &fixtures().join("ds003720"),
        "001",
        &["Training", "Test"],
        &out,
        Layout::Bids,
    );
    opts.mask = MaskChoice::Threshold(settings["mask_threshold"].as_f64().unwrap());
    opts.detrend = Some(Detrend::parse(settings["detrend"].as_str().unwrap()).unwrap());
    opts.drop_seconds = settings["drop_seconds"].as_f64();
    let report = prepare(&opts).unwrap();
    assert_eq!((report.runs_processed, report.runs_resumed), (3, 0));
    let set = RunSet::open(&out).unwrap();
    assert_matches_expected(&set, &case, 2e-5);
    assert_eq!(set.volume_shape(), [6, 5, 4]);
    for r in 0..4 {
        for c in 0..4 {
            assert!((set.affine()[r][c] - settings["affine"][r][c].as_f64().unwrap()).abs() < 1e-6);
        }
    }
    let meta = set.meta();
    assert_eq!(meta.preprocessing.detrend, "median:12");
    let robust_max = settings["robust_max"].as_f64().unwrap();
    let reported: f64 = meta
        .preprocessing
        .mask
        .rsplit("(here ")
        .next()
        .unwrap()
        .trim_end_matches(')')
        .parse()
        .unwrap();
    assert!(
        (reported - robust_max).abs() < 1e-9 * robust_max,
        "{}",
        meta.preprocessing.mask
    );
    assert_eq!(meta.preprocessing.drop_seconds, 3.0);
    assert_eq!(meta.runs[0].start_seconds, 3.0);
    // ds003720's events as shipped: genres quoted, numbers typed.
    let events = set.events(0).unwrap().expect("events of Training run 1");
    assert_eq!(
        events.columns(),
        ["onset", "duration", "genre", "track", "start", "end"]
    );
    assert_eq!(events.onsets().unwrap(), vec![0.0, 15.0, 30.0]);
    assert_eq!(events.unquoted("genre").unwrap()[0], Some("metal"));
    assert_eq!(events.integers("track").unwrap()[0], Some(30));
    assert!(set.annotation_kinds(0).unwrap().is_empty());
    // A rerun over the finished set does nothing; other settings are refused.
    assert!(prepare(&opts).unwrap().already_prepared);
    opts.drop_seconds = Some(0.0);
    let err = prepare(&opts).unwrap_err().to_string();
    assert!(err.contains("other settings"), "{err}");
}

#[test]
fn ds003720_mask_file_and_polynomial() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let mut opts = masked_ds003720("sub-001", &["Training"], &out);
    opts.detrend = Some(Detrend::Poly { order: 2 });
    prepare(&opts).unwrap();
    let set = RunSet::open(&out).unwrap();
    assert_matches_expected(&set, &fixtures().join("expected/ds003720_mask_poly"), 2e-5);
}

#[test]
fn ds005531_derivatives_read_as_shipped() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let opts = options(
        &fixtures().join("ds005531"),
        "S01",
        &["breakingbad"],
        &out,
        Layout::Ds005531,
    );
    let report = prepare(&opts).unwrap();
    assert_eq!(report.zero_variance_voxels, 0);
    let set = RunSet::open(&out).unwrap();
    let case = fixtures().join("expected/ds005531");
    assert_matches_expected(&set, &case, 1e-5);
    let meta = set.meta();
    assert_eq!(meta.preprocessing.detrend, "none");
    assert_eq!(meta.preprocessing.drop_seconds, 20.0);
    assert!(
        meta.preprocessing.mask.contains("tvoxels"),
        "{}",
        meta.preprocessing.mask
    );
    assert_eq!(meta.source.layout, "ds005531");
    // The 20 dummy seconds are cut from the annotations too: line 0 is the run's row 0.
    assert_eq!(
        set.annotation_kinds(0).unwrap(),
        ["speechTranscription", "story"]
    );
    let shipped = std::fs::read_to_string(fixtures().join(
        "ds005531/derivatives/annotation/breakingbad_run-01_speechTranscription_each1sec.txt",
    ))
    .unwrap();
    let lines = set.annotations(0, "speechTranscription").unwrap();
    assert_eq!(lines.len(), 12);
    assert_eq!(lines, shipped.lines().skip(20).collect::<Vec<_>>());
    assert!(lines.iter().any(|l| l.contains("こんにちは")));
    let err = set.annotations(0, "summary").unwrap_err().to_string();
    assert!(err.contains("speechTranscription, story"), "{err}");
}

#[test]
fn voxel_maps_go_back_to_the_subjects_grid() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let opts = masked_ds003720("001", &["Test"], &out);
    prepare(&opts).unwrap();
    let set = RunSet::open(&out).unwrap();
    let values: Vec<f32> = (0..set.n_voxels()).map(|v| v as f32 * 0.5 - 3.0).collect();
    let map = dir.path().join("map.nii.gz");
    set.write_voxel_map(&map, &values).unwrap();
    let volume = nifti_io::read_volume(&map).unwrap();
    assert_eq!(volume.shape, set.volume_shape());
    assert_eq!(&volume.affine, set.affine());
    for (&[i, j, k], &v) in set.voxel_indices().iter().zip(&values) {
        assert_eq!(volume.get(i, j, k), v as f64);
    }
    let inside = set.voxel_indices().len();
    assert_eq!(
        volume.values.iter().filter(|v| v.is_nan()).count(),
        volume.values.len() - inside
    );
    let err = set
        .write_voxel_map(&map, &values[1..])
        .unwrap_err()
        .to_string();
    assert!(err.contains("one per voxel"), "{err}");
}

#[test]
fn an_interrupted_prepare_resumes_per_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let opts = masked_ds003720("001", &["Training", "Test"], &out);
    prepare(&opts).unwrap();
    // Pretend the last run was never finished: move the set back to its staging name.
    let staging = dir.path().join("runs.partial");
    std::fs::rename(&out, &staging).unwrap();
    std::fs::remove_file(staging.join("runs/task-Test_run-01.npy")).unwrap();
    std::fs::remove_file(staging.join("runset.json")).unwrap();
    std::fs::create_dir_all(staging.join(".done")).unwrap();
    for name in ["task-Training_run-01", "task-Training_run-02"] {
        std::fs::write(
            staging.join(format!(".done/{name}.json")),
            r#"{"zero_variance": 0}"#,
        )
        .unwrap();
    }
    let report = prepare(&opts).unwrap();
    assert_eq!((report.runs_processed, report.runs_resumed), (1, 2));
    assert!(!staging.exists());
    RunSet::open(&out).unwrap();
}

/// A NaN written into a prepared run (a damaged or hand-edited file) is named with its row and
/// column where the run is read, not left to surface in a fit as "X contains a non-finite value".
#[test]
fn a_nan_in_a_prepared_run_names_the_file_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let opts = masked_ds003720("001", &["Training", "Test"], &out);
    prepare(&opts).unwrap();
    let file = out.join("runs/task-Test_run-01.npy");
    let mut run = npy::read_f32(&file).unwrap();
    let voxels = run.shape[1];
    run.data[3 * voxels + 2] = f32::NAN;
    npy::write(&file, &run.shape, &run.data).unwrap();
    let set = RunSet::open(&out).unwrap();
    let i = (0..set.meta().runs.len())
        .find(|&i| set.meta().runs[i].data.ends_with("task-Test_run-01.npy"))
        .unwrap();
    let err = set.run_data(i).err().unwrap().to_string();
    for needle in [
        "task-Test_run-01.npy",
        "row 3, column 2",
        "finite values",
        "NaN",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

// ------------------------------------------------------------------------------- bad input

/// A BIDS dataset of `runs` float32 runs on `shape`, `n` volumes at TR 2, in a temp folder.
fn synthetic_bids(
    root: &Path,
    shape: [usize; 3],
    n: usize,
    fill: impl Fn(usize, usize, usize) -> f64,
) {
    std::fs::create_dir_all(root.join("sub-01/func")).unwrap();
    std::fs::write(
        root.join("task-movie_bold.json"),
        r#"{"RepetitionTime": 2.0}"#,
    )
    .unwrap();
    let len: usize = shape.iter().product();
    let affine = [
        [3.0, 0.0, 0.0, 0.0],
        [0.0, 3.0, 0.0, 0.0],
        [0.0, 0.0, 3.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    for run in 1..=2 {
        let volumes: Vec<Vec<f64>> = (0..n)
            .map(|t| (0..len).map(|v| fill(run, t, v)).collect())
            .collect();
        let path = root.join(format!(
            "sub-01/func/sub-01_task-movie_run-0{run}_bold.nii.gz"
        ));
        nifti4d::write_series(&path, shape, 2.0, &affine, Storage::Float32, &volumes).unwrap();
    }
}

fn noise(run: usize, t: usize, v: usize) -> f64 {
    let x = ((run * 7919 + t * 104729 + v * 1299709) % 1000) as f64 / 1000.0;
    500.0 + 20.0 * x + (t as f64 * 0.3 + v as f64).sin()
}

fn expect_refusal(opts: &PrepareOptions, fragments: &[&str]) -> String {
    let err = prepare(opts).unwrap_err();
    let text = err.to_string();
    for f in fragments {
        assert!(text.contains(f), "missing '{f}' in: {text}");
    }
    let name = opts.out.file_name().unwrap().to_string_lossy().into_owned();
    assert!(!opts.out.exists(), "{text}: output left behind");
    assert!(
        !opts.out.with_file_name(format!("{name}.partial")).exists(),
        "{text}: partial output left behind"
    );
    text
}

#[test]
fn runs_of_another_grid_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bids");
    synthetic_bids(&root, [5, 4, 3], 12, noise);
    let other = root.join("sub-01/func/sub-01_task-movie_run-02_bold.nii.gz");
    let affine = [
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    nifti4d::write_series(
        &other,
        [5, 4, 2],
        2.0,
        &affine,
        Storage::Float32,
        &vec![vec![1.0; 40]; 12],
    )
    .unwrap();
    let opts = options(
        &root,
        "01",
        &["movie"],
        &dir.path().join("out"),
        Layout::Bids,
    );
    expect_refusal(
        &opts,
        &[
            "sub-01_task-movie_run-02_bold.nii.gz",
            "grid",
            "[5, 4, 3]",
            "[5, 4, 2]",
        ],
    );
}

#[test]
fn missing_or_mismatched_repetition_time_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bids");
    synthetic_bids(&root, [5, 4, 3], 12, noise);
    let out = dir.path().join("out");
    let opts = options(&root, "01", &["movie"], &out, Layout::Bids);
    std::fs::write(
        root.join("sub-01/func/sub-01_task-movie_run-02_bold.json"),
        r#"{"RepetitionTime": 1.5}"#,
    )
    .unwrap();
    expect_refusal(
        &opts,
        &["run-02_bold.nii.gz", "RepetitionTime", "2 s", "1.5 s"],
    );
    std::fs::remove_file(root.join("sub-01/func/sub-01_task-movie_run-02_bold.json")).unwrap();
    std::fs::remove_file(root.join("task-movie_bold.json")).unwrap();
    expect_refusal(
        &opts,
        &[
            "run-01_bold.nii.gz",
            "RepetitionTime",
            "task-movie_bold.json",
            "none in any sidecar",
        ],
    );
}

#[test]
fn nan_voxels_are_named_and_nothing_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bids");
    synthetic_bids(&root, [5, 4, 3], 12, |run, t, v| {
        if run == 2 && t == 7 && v == 5 + 5 * 4 {
            f64::NAN
        } else {
            noise(run, t, v)
        }
    });
    let mut opts = options(
        &root,
        "01",
        &["movie"],
        &dir.path().join("out"),
        Layout::Bids,
    );
    let mask = dir.path().join("mask.nii.gz");
    let affine = [
        [3.0, 0.0, 0.0, 0.0],
        [0.0, 3.0, 0.0, 0.0],
        [0.0, 0.0, 3.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    nifti_io::write_i16(&mask, [5, 4, 3], &affine, &[1; 60]).unwrap();
    opts.mask = MaskChoice::File(mask);
    expect_refusal(
        &opts,
        &[
            "run-02_bold.nii.gz",
            "voxel (0, 1, 1) at volume 7",
            "finite values",
            "NaN",
        ],
    );
}

#[test]
fn a_mask_of_another_shape_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bids");
    synthetic_bids(&root, [5, 4, 3], 12, noise);
    let mask = dir.path().join("mask.nii.gz");
    let affine = [
        [3.0, 0.0, 0.0, 0.0],
        [0.0, 3.0, 0.0, 0.0],
        [0.0, 0.0, 3.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    nifti_io::write_i16(&mask, [4, 4, 3], &affine, &[1; 48]).unwrap();
    let mut opts = options(
        &root,
        "01",
        &["movie"],
        &dir.path().join("out"),
        Layout::Bids,
    );
    opts.mask = MaskChoice::File(mask);
    expect_refusal(&opts, &["mask.nii.gz", "[5, 4, 3]", "shape [4, 4, 3]"]);
    // The runs' shape on another grid (shifted 5 mm; 2-mm voxels) was once read silently.
    for (i, j, v) in [(2, 3, 5.0), (0, 0, 2.0)] {
        let mut other = affine;
        other[i][j] = v;
        nifti_io::write_i16(&opts_mask(&opts), [5, 4, 3], &other, &[1; 60]).unwrap();
        expect_refusal(
            &opts,
            &[
                "mask.nii.gz",
                "sub-01_task-movie_run-01_bold.nii.gz",
                "grid",
                "affine",
            ],
        );
    }
}

fn opts_mask(opts: &PrepareOptions) -> PathBuf {
    match &opts.mask {
        MaskChoice::File(p) => p.clone(),
        _ => unreachable!("the test set a mask file"),
    }
}

#[test]
fn no_runs_of_the_task_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bids");
    synthetic_bids(&root, [5, 4, 3], 12, noise);
    let opts = options(
        &root,
        "01",
        &["music"],
        &dir.path().join("out"),
        Layout::Bids,
    );
    expect_refusal(
        &opts,
        &["sub-01", "runs of task music", "runs of task movie only"],
    );
}

#[test]
fn flat_voxels_are_zeros_when_few_and_an_error_when_many() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bids");
    // 10 × 10 × 2 = 200 voxels, all in the mask: 2 flat voxels are allowed (1%).
    let flat_two = |run: usize, t: usize, v: usize| {
        if v == 3 || v == 150 {
            400.0
        } else {
            noise(run, t, v)
        }
    };
    synthetic_bids(&root, [10, 10, 2], 12, flat_two);
    let mask = dir.path().join("mask.nii.gz");
    let affine = [
        [3.0, 0.0, 0.0, 0.0],
        [0.0, 3.0, 0.0, 0.0],
        [0.0, 0.0, 3.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    nifti_io::write_i16(&mask, [10, 10, 2], &affine, &vec![1; 200]).unwrap();
    let mut opts = options(
        &root,
        "01",
        &["movie"],
        &dir.path().join("out"),
        Layout::Bids,
    );
    opts.mask = MaskChoice::File(mask.clone());
    opts.detrend = Some(Detrend::Poly { order: 1 });
    let report = prepare(&opts).unwrap();
    assert_eq!(
        report.zero_variance_voxels, 4,
        "two voxels in each of two runs"
    );
    let set = RunSet::open(&opts.out).unwrap();
    let data = set.run_data(0).unwrap();
    assert!((0..12).all(|t| data.row(t)[3] == 0.0 && data.row(t)[150] == 0.0));
    assert_eq!(set.meta().preprocessing.zero_variance_voxels, 4);

    // A perfectly linear voxel is flat once its linear trend is gone: 3 is one too many.
    let root = dir.path().join("bids3");
    synthetic_bids(&root, [10, 10, 2], 12, |run, t, v| {
        if v == 77 {
            300.0 + 2.0 * t as f64
        } else {
            flat_two(run, t, v)
        }
    });
    opts.root = root;
    opts.out = dir.path().join("out3");
    expect_refusal(
        &opts,
        &[
            "run-01_bold.nii.gz",
            "at most 2 voxels (1%)",
            "3 flat voxels",
            "[3, 0, 0]",
            "[7, 7, 0]",
        ],
    );
}

fn ds005531_copy(dir: &Path) -> PathBuf {
    let root = dir.join("ds005531");
    copy_dir(&fixtures().join("ds005531"), &root);
    root
}

#[test]
fn annotations_set_the_movie_length_and_must_agree() {
    let dir = tempfile::tempdir().unwrap();
    let root = ds005531_copy(dir.path());
    let annotation = |kind: &str| {
        root.join(format!(
            "derivatives/annotation/breakingbad_run-02_{kind}_each1sec.txt"
        ))
    };
    let story = annotation("story");
    let text = std::fs::read_to_string(&story).unwrap();
    std::fs::write(&story, format!("{text}\n\nextra\n")).unwrap();
    let opts = options(
        &root,
        "S01",
        &["breakingbad"],
        &dir.path().join("out"),
        Layout::Ds005531,
    );
    // Kinds of one run disagree on the movie's length.
    expect_refusal(
        &opts,
        &[
            "breakingbad_run-02_story_each1sec.txt",
            "30 lines (one per second of the movie)",
            "33",
        ],
    );
    // A movie longer than dataDT (30 rows) is refused naming the run.
    let speech = annotation("speechTranscription");
    let speech_text = std::fs::read_to_string(&speech).unwrap();
    std::fs::write(&speech, format!("{speech_text}\n\nextra\n")).unwrap();
    expect_refusal(
        &opts,
        &[
            "sub-S01_task-breakingbad_run-02.mat",
            "dataDT",
            "at least 33 rows",
            "30 rows",
        ],
    );
    // A movie shorter than dataDT keeps rows 21 … 28 and says two were left out.
    for (file, text) in [(&story, &text), (&speech, &speech_text)] {
        let lines: Vec<&str> = text.lines().take(28).collect();
        std::fs::write(file, lines.join("\n") + "\n").unwrap();
    }
    let report = prepare(&opts).unwrap();
    let run = &report.meta.runs[1];
    assert_eq!((run.n_trs, run.dropped_end_volumes), (8, 2));
    assert_eq!(
        (
            report.meta.runs[0].n_trs,
            report.meta.runs[0].dropped_end_volumes
        ),
        (12, 0)
    );
    let set = RunSet::open(&opts.out).unwrap();
    assert_eq!(set.annotations(1, "story").unwrap().len(), 8);
}

#[test]
fn ds005531_runs_with_other_voxel_counts_are_refused() {
    use hdf5_writer::{DatasetBuilder, Hdf5Builder, WriteOptions};
    let dir = tempfile::tempdir().unwrap();
    let root = ds005531_copy(dir.path());
    let file =
        root.join("derivatives/preprocessed_data/sub-S01/sub-S01_task-breakingbad_run-02.mat");
    let values = vec![1.0f32; 30 * 100];
    let bytes = Hdf5Builder::new()
        .dataset(DatasetBuilder::typed_data::<f32>("dataDT", vec![30u64, 100], &values).unwrap())
        .into_plan()
        .unwrap()
        .encode(WriteOptions::default())
        .unwrap();
    std::fs::write(&file, bytes).unwrap();
    let opts = options(
        &root,
        "S01",
        &["breakingbad"],
        &dir.path().join("out"),
        Layout::Ds005531,
    );
    expect_refusal(&opts, &["run-02.mat", "120 voxels per volume", "100"]);
}

#[test]
fn run_set_times_that_would_not_make_a_row_index_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let opts = options(
        &fixtures().join("ds003720"),
        "001",
        &["Test"],
        &out,
        Layout::Bids,
    );
    prepare(&opts).unwrap();
    let path = out.join("runset.json");
    let original = json(&path);
    for (field, value) in [
        ("start_seconds", serde_json::json!(9e18)),
        ("start_seconds", serde_json::json!(-2.0)),
        ("n_trs", serde_json::json!(1u64 << 40)),
    ] {
        let mut meta = original.clone();
        meta["runs"][0][field] = value;
        std::fs::write(&path, meta.to_string()).unwrap();
        let err = RunSet::open(&out).err().unwrap().to_string();
        assert!(err.contains("runset.json") && err.contains(field), "{err}");
    }
}
