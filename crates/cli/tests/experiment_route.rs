//! A lab's own experiment, end to end as a new user runs it: `demo --route experiment`
//! simulates an event-related experiment as fMRIPrep leaves it (T1w-space runs, FreeSurfer's
//! aparc+aseg on the anatomical grid), fits GLMsingle's models (`glm`), prepares a subject from
//! TYPED's betas (`glm prepare`) and runs the linear route on it: the reconstructions identify
//! their stimuli. Then the prepared subject is checked against the betas and the planted
//! truth it came from, and bad input to `glm prepare` is refused with exit status 2.

mod common;
#[path = "experiment_route/realtime_session.rs"]
mod realtime_session;

use brainrecon_formats::npy;
use common::{json, ok, p as s, user_error};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// `demo --route experiment` at CI size; returns its JSON summary.
fn demo(out: &Path, cache: &Path) -> Value {
    let run = Command::new(env!("CARGO_BIN_EXE_brainrecon"))
        .args([
            "demo",
            "--route",
            "experiment",
            "--out",
            s(out),
            "--images",
            "180",
            "--samples",
            "1",
            "--steps",
            "12",
            "--json",
        ])
        .env("BRAINRECON_CACHE", cache)
        .output()
        .expect("run brainrecon demo");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "demo failed:\n{stderr}");
    assert!(
        stderr.contains("brainrecon glm prepare --glm"),
        "the demo shows each command: {stderr}"
    );
    serde_json::from_slice(&run.stdout).expect("demo --json prints JSON only")
}

/// The experiment demo, made once and shared by this file's tests (in the tests' target
/// folder, replaced on every run).
fn shared_demo() -> &'static (std::path::PathBuf, Value) {
    static DEMO: std::sync::OnceLock<(std::path::PathBuf, Value)> = std::sync::OnceLock::new();
    DEMO.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("experiment-route");
        let _ = std::fs::remove_dir_all(&root);
        let (out, cache) = (root.join("demo"), root.join("cache"));
        let summary = demo(&out, &cache);
        (out, summary)
    })
}

#[test]
fn an_own_experiment_reaches_reconstructions_through_glm_and_glm_prepare() {
    let dir = tempfile::tempdir().unwrap();
    let (out, summary) = shared_demo();
    let out = out.clone();
    eprintln!("{}", serde_json::to_string_pretty(&summary).unwrap());

    // 180 images: 30 test images shown three times, 150 training images twice.
    assert_eq!(summary["n_test"].as_u64(), Some(30));
    // Above chance (0.5 for two-way, 1/6 colour, 1/4 shape) by several standard errors at
    // 30 images (two-way over 29 pairs each: about 0.02).
    let two_way = summary["two_way_pixels"].as_f64().unwrap();
    assert!(
        two_way > 0.65,
        "two-way identification on pixels {two_way:.3}"
    );
    assert!(summary["two_way_latent_z"].as_f64().unwrap() > 0.7);
    assert!(summary["two_way_latent_c"].as_f64().unwrap() > 0.8);
    let colour = summary["reconstruction"]["colour"].as_f64().unwrap();
    assert!(
        colour > 0.4,
        "colour right for {colour:.3} of reconstructions"
    );
    for file in [
        "demo-experiment.json",
        "pairs-experiment.png",
        "recons-experiment/eval/report.html",
        "glm/TYPED_FITHRF_GLMDENOISE_RR/betasmd.npy",
    ] {
        assert!(out.join(file).is_file(), "{file}");
    }

    let subject = out.join("sub-01");
    check_prepared_subject(&out, &subject);
    refuse_bad_input(dir.path(), &out);
    atlas_through_a_transform(dir.path(), &out, &subject);
}

/// `--atlas-transform`: the T1w aparc+aseg through an ITK transform file (written by ITK,
/// tools/fixtures/itk_warp.py) that shifts the runs' points 3 mm (one run voxel) towards +x.
/// Voxel (i, j, k) then takes the label the untransformed atlas gives voxel (i + 1, j, k).
fn atlas_through_a_transform(dir: &Path, out: &Path, subject: &Path) {
    let atlas =
        out.join("events/derivatives/fmriprep/sub-01/anat/sub-01_desc-aparcaseg_dseg.nii.gz");
    let shift = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets/tests/fixtures/itk_warp/shift_x3mm_xfm.h5");
    let shifted = dir.join("shifted");
    let report = ok(&[
        "glm",
        "prepare",
        "--glm",
        s(&out.join("glm")),
        "--atlas",
        s(&atlas),
        "--atlas-transform",
        s(&shift),
        "--out",
        s(&shifted),
        "--json",
    ]);
    let report: Value = serde_json::from_str(&report).unwrap();
    assert!(report["atlas_transform"]
        .as_str()
        .is_some_and(|t| t.ends_with("shift_x3mm_xfm.h5")));
    let coords = |path: &Path| -> std::collections::BTreeSet<[i64; 3]> {
        let a = npy::read_i64(path).unwrap();
        a.data.chunks(3).map(|c| [c[0], c[1], c[2]]).collect()
    };
    let plain = coords(&subject.join("rois/visual.npy"));
    let moved = coords(&shifted.join("rois/visual.npy"));
    let mask = coords(&out.join("glm/timeseries/voxels.npy"));
    let next = |[i, j, k]: [i64; 3]| [i + 1, j, k];
    for v in &mask {
        if mask.contains(&next(*v)) {
            assert_eq!(moved.contains(v), plain.contains(&next(*v)), "voxel {v:?}");
        }
    }
    assert!(moved.len() > plain.len() / 2 && moved != plain);
    // Without --atlas it is refused as a usage error.
    let err = user_error(&[
        "glm",
        "prepare",
        "--glm",
        s(&out.join("glm")),
        "--atlas-transform",
        s(&shift),
        "--out",
        s(&dir.join("no-atlas")),
    ]);
    assert!(err.contains("--atlas"), "{err}");
}

/// The prepared subject holds the TYPED betas of the planted visual voxels, averaged over the
/// test images' repeats after z-scoring, under the layout `nsd prepare` writes.
fn check_prepared_subject(out: &Path, subject: &Path) {
    let meta = json(&subject.join("subject.json"));
    assert_eq!(meta["n_train_trials"].as_u64(), Some(300));
    assert_eq!(meta["n_test_trials"].as_u64(), Some(90));
    assert_eq!(meta["captions_per_image"].as_u64(), Some(5));
    assert_eq!(meta["roi_aliases"]["nsdgeneral"].as_str(), Some("visual"));

    // The atlas sampled at the runs' voxels recovers the simulator's visual voxels exactly.
    let truth = json(&out.join("events/truth/events_truth.json"));
    let visual = &meta["atlases"][0];
    assert_eq!(visual["name"].as_str(), Some("visual"));
    assert_eq!(visual["n_voxels"], truth["visual_voxels"]);
    let streams = &meta["atlases"][1]["labels"];
    let count = |name: &str| {
        streams
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"].as_str() == Some(name))
            .unwrap()["n_voxels"]
            .as_u64()
            .unwrap()
    };
    assert!(count("early") > 100 && count("ventral") > 100, "{streams}");

    // Test row 0 = the mean over its repeats of the per-session z-scored TYPED betas.
    let glm = json(&out.join("glm/glm.json"));
    let betas = npy::read_f32(&out.join("glm/TYPED_FITHRF_GLMDENOISE_RR/betasmd.npy")).unwrap();
    let (n_vox, n_trials) = (betas.shape[0], betas.shape[1]);
    let coords = npy::read_i64(&subject.join("rois/visual.npy")).unwrap();
    let voxels = npy::read_i64(&out.join("glm/timeseries/voxels.npy")).unwrap();
    let first = [coords.data[0], coords.data[1], coords.data[2]];
    let v = voxels
        .data
        .chunks(3)
        .position(|c| c == first)
        .expect("an ROI voxel is a voxel of the fit");
    let row: Vec<f64> = (0..n_trials)
        .map(|t| betas.data[v * n_trials + t] as f64)
        .collect();
    let mean = row.iter().sum::<f64>() / n_trials as f64;
    let sd = (row.iter().map(|b| (b - mean).powi(2)).sum::<f64>() / n_trials as f64).sqrt();
    let test_ids = npy::read_i64(&subject.join("test_stimulus_ids.npy")).unwrap();
    let condition = test_ids.data[0] as u64;
    let repeats: Vec<usize> = glm["trials"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, t)| t["condition"].as_u64() == Some(condition))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(repeats.len(), 3);
    let expected = repeats.iter().map(|&t| (row[t] - mean) / sd).sum::<f64>() / 3.0;
    let test = npy::read_f32(&subject.join("betas/visual/test.npy")).unwrap();
    assert_eq!(test.shape, vec![30, coords.shape[0]]);
    assert!(
        (test.data[0] as f64 - expected).abs() < 1e-4,
        "{} vs {expected}",
        test.data[0]
    );
    assert!(n_vox > coords.shape[0]);
    let names = json(&subject.join("stimuli/names.json"));
    assert!(names[condition.to_string()]
        .as_str()
        .is_some_and(|n| n.starts_with("scene-")));
}

/// Bad input to `glm prepare`: exit 2, the file and field named, nothing written.
fn refuse_bad_input(dir: &Path, out: &Path) {
    let glm = out.join("glm");
    let target = dir.join("bad");
    let prepare = |extra: &[&str]| -> String {
        let mut args = vec!["glm", "prepare", "--glm", s(&glm), "--out", s(&target)];
        args.extend_from_slice(extra);
        let err = user_error(&args);
        assert!(!target.exists(), "{args:?} left {}", target.display());
        assert!(!dir.join("bad.partial").exists());
        err
    };
    // Stimulus files not where the events say.
    let empty = dir.join("no-images");
    std::fs::create_dir_all(&empty).unwrap();
    let err = prepare(&["--stimuli", s(&empty)]);
    assert!(err.contains("glm.json") && err.contains("scene-"), "{err}");
    // No condition is shown nine times.
    let err = prepare(&["--test-repeats", "9"]);
    assert!(err.contains("--test-repeats"), "{err}");
    // A segmentation of another subject or space: a grid far from the runs'.
    let atlas = dir.join("elsewhere_dseg.nii.gz");
    let mut affine = [[0.0; 4]; 4];
    (0..4).for_each(|i| affine[i][i] = 1.0);
    affine[0][3] = 500.0;
    brainrecon_formats::nifti_io::write_i16(&atlas, [10, 10, 10], &affine, &[1021; 1000]).unwrap();
    let err = prepare(&["--atlas", s(&atlas)]);
    assert!(
        err.contains("elsewhere_dseg.nii.gz") && err.contains("grid"),
        "{err}"
    );
    // Captions missing for a stimulus.
    let captions = dir.join("captions.json");
    std::fs::write(&captions, "{}").unwrap();
    let err = prepare(&["--captions", s(&captions)]);
    assert!(
        err.contains("captions.json") && err.contains("scene-"),
        "{err}"
    );
    // Images sorted into subfolders (as BOLD5000 ships them) are found by file name; one
    // missing is an error naming it, or left out with --leave-out-missing.
    let nested = dir.join("stimuli-nested");
    std::fs::create_dir_all(nested.join("Scene")).unwrap();
    let mut pngs: Vec<_> = std::fs::read_dir(out.join("events/stimuli"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    pngs.sort();
    for png in &pngs[1..] {
        std::fs::copy(png, nested.join("Scene").join(png.file_name().unwrap())).unwrap();
    }
    let err = prepare(&["--stimuli", s(&nested)]);
    assert!(err.contains("1 of 180"), "{err}");
    let kept = dir.join("kept");
    let report = ok(&[
        "glm",
        "prepare",
        "--glm",
        s(&glm),
        "--stimuli",
        s(&nested),
        "--leave-out-missing",
        "--out",
        s(&kept),
        "--json",
    ]);
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["left_out"].as_array().unwrap().len(), 1);
    let m = &report["meta"];
    assert_eq!(
        m["n_train_images"].as_u64().unwrap() + m["n_test_images"].as_u64().unwrap(),
        179
    );
    // A rerun over the finished subject with the same settings does nothing.
    let again = ok(&[
        "glm",
        "prepare",
        "--glm",
        s(&glm),
        "--captions",
        s(&out.join("events/stimuli/captions.json")),
        "--out",
        s(&out.join("sub-01")),
    ]);
    assert!(again.contains("already prepared"), "{again}");
}
