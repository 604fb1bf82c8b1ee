//! `simulate --kind video` then `video prepare` as a user runs them: the summary and its JSON,
//! the arrays' shapes, z-scoring, and bad datasets (a missing repetition, a run with fewer TRs,
//! a cut file, brain models that differ) refused with exit 2, naming the file, leaving nothing.
//! Then the other video commands' bad input on the binary (exit 2, nothing written). The route
//! itself (`video demo`'s fit, clips, scores and report, the window encoder, the refusals that
//! need a fit or a trained adapter) is checked through the library in
//! crates/routes/tests/video.rs.

mod common;

use brainrecon_formats::cifti::cc2017::{run_path, Split};
use brainrecon_formats::cifti::{write_dense_series, CiftiSeries, SeriesMap};
use brainrecon_formats::npy;
use common::{ok, p, user_error};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The small default dataset, simulated once by the binary.
fn dataset() -> &'static (tempfile::TempDir, PathBuf) {
    static DATA: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("sim-video");
        let out = ok(&[
            "simulate",
            "--kind",
            "video",
            "--out",
            p(&root),
            "--seed",
            "2",
        ]);
        assert!(
            out.contains("4 training segments × 2, 2 test segments × 4, 40 TRs"),
            "{out}"
        );
        (dir, root)
    })
}

/// A copy of the dataset's fMRI and design (not the frames) to break.
fn copy_of_fmri(to: &Path) -> PathBuf {
    let (_, root) = dataset();
    let copy = to.join("broken");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(root.join("design.json"), copy.join("design.json")).unwrap();
    let mut stack = vec![PathBuf::from("subject1")];
    while let Some(rel) = stack.pop() {
        let from = root.join(&rel);
        if from.is_dir() {
            std::fs::create_dir_all(copy.join(&rel)).unwrap();
            for entry in std::fs::read_dir(&from).unwrap() {
                stack.push(rel.join(entry.unwrap().file_name()));
            }
        } else {
            std::fs::copy(&from, copy.join(&rel)).unwrap();
        }
    }
    copy
}

/// Nothing of an output (or its staging folder) may be left by a failed run.
fn nothing_written(out: &Path) {
    assert!(!out.exists(), "{} was left behind", out.display());
    let staging = out.with_file_name(format!(
        "{}.partial",
        out.file_name().unwrap().to_string_lossy()
    ));
    assert!(!staging.exists(), "{} was left behind", staging.display());
}

fn std_of(values: &[f32]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
    (values
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt()
}

#[test]
fn prepare_writes_windows_with_a_summary() {
    let (dir, root) = dataset();
    let out = dir.path().join("prepared");
    let text = ok(&[
        "video",
        "prepare",
        "--cc2017",
        p(root),
        "--subject",
        "1",
        "--out",
        p(&out),
    ]);
    assert!(
        text.contains("16 runs read") && text.contains("window 2 from lag 0"),
        "{text}"
    );
    let json = ok(&[
        "video",
        "prepare",
        "--cc2017",
        p(root),
        "--subject",
        "1",
        "--out",
        p(&out),
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["already_prepared"], true);
    let meta = &report["meta"];
    let v = meta["n_voxels"].as_u64().unwrap() as usize;
    assert!(v > 500 && v < 1800, "{v} voxels kept");
    assert_eq!(meta["n_features"].as_u64().unwrap() as usize, 2 * v);
    assert_eq!(meta["n_train"], 4 * 39);
    assert_eq!(meta["n_test"], 2 * 39);
    let x = npy::read_f32(&out.join("X_train.npy")).unwrap();
    assert_eq!(x.shape, [156, 2 * v]);
    assert_eq!(
        npy::read_i64(&out.join("test_index.npy")).unwrap().shape,
        [78, 2]
    );
    let mask = npy::read_u8(&out.join("mask.npy")).unwrap();
    assert_eq!(mask.data.iter().filter(|&&m| m == 1).count(), v);
    // Averages of z-scored runs have at most unit spread; without z-scores the data keep the
    // scanner's scale.
    let z = npy::read_f32(&out.join("fmri_train.npy")).unwrap();
    let raw_out = dir.path().join("prepared-raw");
    ok(&[
        "video",
        "prepare",
        "--cc2017",
        p(root),
        "--subject",
        "1",
        "--out",
        p(&raw_out),
        "--no-zscore",
        "--window",
        "1",
        "--lag",
        "2",
    ]);
    let raw = npy::read_f32(&raw_out.join("fmri_train.npy")).unwrap();
    assert!(
        std_of(&z.data) < 1.0 && std_of(&z.data) > 0.5,
        "z-scored spread {}",
        std_of(&z.data)
    );
    assert!(std_of(&raw.data) > 20.0, "raw spread {}", std_of(&raw.data));
    assert_eq!(
        npy::read_f32(&raw_out.join("X_test.npy")).unwrap().shape[0],
        2 * 38
    );
}

#[test]
fn help_shows_an_example() {
    let help = ok(&["video", "prepare", "--help"]);
    assert!(help.contains("brainrecon video prepare --cc2017"), "{help}");
    let help = ok(&["simulate", "--help"]);
    assert!(help.contains("--kind video"), "{help}");
}

#[test]
fn a_missing_repetition_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = copy_of_fmri(dir.path());
    let gone = run_path(&root, 1, Split::Train, 2, 2);
    std::fs::remove_file(&gone).unwrap();
    let out = dir.path().join("out");
    let err = user_error(&[
        "video",
        "prepare",
        "--cc2017",
        p(&root),
        "--subject",
        "1",
        "--out",
        p(&out),
    ]);
    assert!(
        err.contains("seg2_2_Atlas.dtseries.nii") && err.contains("repetition 2"),
        "{err}"
    );
    nothing_written(&out);
    let err = user_error(&[
        "video",
        "prepare",
        "--cc2017",
        p(&root),
        "--subject",
        "2",
        "--out",
        p(&out),
    ]);
    assert!(err.contains("subject2"), "{err}");
    nothing_written(&out);
}

/// Rewrites a run with the first `n_time` TRs and the models given by `change`.
fn rewrite(
    path: &Path,
    n_time: usize,
    change: impl Fn(&mut Vec<brainrecon_formats::cifti::BrainModel>),
) {
    let cifti = CiftiSeries::read(path).unwrap();
    let mut models = cifti.brain_models.clone();
    change(&mut models);
    let series = SeriesMap {
        count: n_time,
        ..cifti.series.clone()
    };
    let data = &cifti.data()[..n_time * cifti.n_grayordinates()];
    write_dense_series(path, &series, &models, cifti.volume.as_ref(), data).unwrap();
}

#[test]
fn short_cut_or_mismatched_runs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = copy_of_fmri(dir.path());
    let out = dir.path().join("out");
    let prepare = || {
        user_error(&[
            "video",
            "prepare",
            "--cc2017",
            p(&root),
            "--subject",
            "1",
            "--out",
            p(&out),
        ])
    };
    // Fewer TRs than the design's.
    let short = run_path(&root, 1, Split::Test, 1, 3);
    let original = std::fs::read(&short).unwrap();
    rewrite(&short, 30, |_| {});
    let err = prepare();
    assert!(
        err.contains("test1_3_Atlas.dtseries.nii")
            && err.contains("fewer TRs than the design's 40"),
        "{err}"
    );
    nothing_written(&out);
    // A file cut short.
    std::fs::write(&short, &original[..original.len() - 1000]).unwrap();
    let err = prepare();
    assert!(
        err.contains("test1_3_Atlas.dtseries.nii") && err.contains("truncated"),
        "{err}"
    );
    nothing_written(&out);
    std::fs::write(&short, &original).unwrap();
    // Other cortical vertices than the first run's.
    let other = run_path(&root, 1, Split::Train, 3, 1);
    rewrite(&other, 40, |models| models[1].vertex_indices[0] = 9);
    let err = prepare();
    assert!(
        err.contains("seg3_1_Atlas.dtseries.nii") && err.contains("brain models"),
        "{err}"
    );
    assert!(
        err.contains("seg1_1_Atlas.dtseries.nii"),
        "names the reference run: {err}"
    );
    nothing_written(&out);
}

#[test]
fn bad_options_are_refused() {
    let (dir, root) = dataset();
    let out = dir.path().join("never");
    let err = user_error(&[
        "video",
        "prepare",
        "--cc2017",
        p(root),
        "--subject",
        "1",
        "--out",
        p(&out),
        "--window",
        "0",
    ]);
    assert!(err.contains("--window"), "{err}");
    let err = user_error(&[
        "video",
        "prepare",
        "--cc2017",
        p(root),
        "--subject",
        "1",
        "--out",
        p(&out),
        "--reliability-threshold",
        "0.99",
    ]);
    assert!(err.contains("no grayordinate is above it"), "{err}");
    let err = user_error(&[
        "video",
        "prepare",
        "--cc2017",
        p(root),
        "--subject",
        "1",
        "--out",
        p(&out),
        "--structure",
        "CEREBELLUM",
    ]);
    assert!(err.contains("CEREBELLUM"), "{err}");
    nothing_written(&out);
    let err = user_error(&[
        "simulate",
        "--kind",
        "video",
        "--out",
        p(&out),
        "--size",
        "nsd",
    ]);
    assert!(err.contains("--size nsd"), "{err}");
}

#[test]
fn video_fit_opens_every_stimulus_before_writing_and_leaves_out_as_it_was() {
    let (_, root) = dataset();
    let dir = tempfile::tempdir().unwrap();
    let prepared = dir.path().join("prepared");
    ok(&[
        "video",
        "prepare",
        "--cc2017",
        p(root),
        "--subject",
        "1",
        "--out",
        p(&prepared),
    ]);
    let stimuli = dir.path().join("stimuli");
    common::copy_dir(&root.join("stimuli"), &stimuli);
    // Found before the frame folder test2/, and not an MP4.
    std::fs::write(stimuli.join("test2.mp4"), b"\0\0\0\x10ftypisom not a movie").unwrap();
    let out = dir.path().join("fit");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "from before").unwrap();
    let err = user_error(&[
        "video",
        "fit",
        "--prepared",
        p(&prepared),
        "--stimuli",
        p(&stimuli),
        "--captions",
        p(&root.join("stimuli/captions.tsv")),
        "--out",
        p(&out),
    ]);
    assert!(err.contains("test2.mp4"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["keep.txt"]);
    assert!(!dir.path().join("fit.partial").exists());
}

/// `video fit`, `video train-encoder` and `video train-motion` refuse bad input with exit 2,
/// naming the flag or file, before any model is loaded, and write nothing.
#[test]
fn video_commands_refuse_bad_input_with_exit_2() {
    let (_, root) = dataset();
    let dir = tempfile::tempdir().unwrap();
    let prepared = dir.path().join("prepared");
    ok(&[
        "video",
        "prepare",
        "--cc2017",
        p(root),
        "--subject",
        "1",
        "--lag",
        "2",
        "--out",
        p(&prepared),
    ]);
    let stimuli = root.join("stimuli");
    // A captions table without a test TR's row.
    let captions = std::fs::read_to_string(stimuli.join("captions.tsv")).unwrap();
    let short: String = captions
        .lines()
        .filter(|l| !l.starts_with("test\t1\t5\t"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(short.len() < captions.len());
    let short_path = dir.path().join("captions.tsv");
    std::fs::write(&short_path, short).unwrap();
    let out = dir.path().join("fit-short");
    let err = user_error(&[
        "video",
        "fit",
        "--prepared",
        p(&prepared),
        "--stimuli",
        p(&stimuli),
        "--captions",
        p(&short_path),
        "--out",
        p(&out),
    ]);
    assert!(
        err.contains("captions.tsv") && err.contains("test segment 1 TR 5"),
        "{err}"
    );
    nothing_written(&out);
    // A batch without negatives.
    let bad = dir.path().join("encoder-bad");
    let err = user_error(&[
        "video",
        "train-encoder",
        "--prepared",
        p(&prepared),
        "--stimuli",
        p(&stimuli),
        "--captions",
        p(&stimuli.join("captions.tsv")),
        "--out",
        p(&bad),
        "--steps",
        "150",
        "--patch-size",
        "64",
        "--batch",
        "1",
    ]);
    assert!(
        err.contains("--batch") && err.contains("at least 2"),
        "{err}"
    );
    assert!(!bad.join("video_fit.json").exists());
    // A timestep shift that is not positive.
    let out = dir.path().join("train-bad-shift");
    let err = user_error(&[
        "video",
        "train-motion",
        "--timestep-shift",
        "0",
        "--out",
        p(&out),
    ]);
    assert!(err.contains("--timestep-shift"), "{err}");
    assert!(!out.join("config.json").exists());
}
