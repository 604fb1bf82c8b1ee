//! Valid inputs that other people's software writes, from `../shared/inputs/realworld/` (each
//! folder's `make.py` wrote them with numpy, nibabel, MNE and pydicom, and saved the reference
//! library's reading beside them): the commands read them as MNE and nibabel do. Each case is
//! run again with a second file of the same kind written here: every text file of the input
//! given a UTF-8 byte-order mark (MNE-BIDS's TSVs, Windows editors' "UTF-8").
//!
//! The shared folder lies beside the repository; where it is missing the tests fail in CI and
//! say they were skipped elsewhere.

mod common;

use common::{brainrecon, copy_dir, p};
use std::path::{Path, PathBuf};

/// The case folder `name` of `../shared/inputs/realworld`, or None (reported) when absent.
fn case(name: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/inputs/realworld");
    let dir = root.join(name);
    if dir.join("input").is_dir() {
        return Some(dir);
    }
    brainrecon_testkit::cannot_run(
        &format!("the realworld input {name}"),
        &format!("{} is missing", dir.display()),
    );
    None
}

/// Puts a UTF-8 byte-order mark at the start of every text file under `dir`.
fn add_byte_order_marks(dir: &Path) -> usize {
    let mut marked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            marked += add_byte_order_marks(&path);
            continue;
        }
        let text = ["json", "tsv", "vhdr", "vmrk"]
            .iter()
            .any(|e| path.extension().is_some_and(|x| x == *e));
        if text {
            let bytes = std::fs::read(&path).unwrap();
            if !bytes.starts_with(b"\xef\xbb\xbf") {
                let mut marked_bytes = b"\xef\xbb\xbf".to_vec();
                marked_bytes.extend(bytes);
                std::fs::write(&path, marked_bytes).unwrap();
            }
            marked += 1;
        }
    }
    marked
}

/// A `.npy` file's values as f64 in C order (float32, float64 or an integer type on disk; numpy
/// saves the references Fortran-ordered) and its shape.
fn npy(path: &Path) -> (Vec<f64>, Vec<usize>) {
    use brainrecon_formats::npy;
    let header = npy::read_header(path).unwrap();
    if header.descr.contains('f') {
        let a = npy::read_f32(path).unwrap();
        (a.data.iter().map(|&v| v as f64).collect(), a.shape)
    } else {
        let a = npy::read_i64(path).unwrap();
        (a.data.iter().map(|&v| v as f64).collect(), a.shape)
    }
}

/// `eeg bids-prepare` on the case's BIDS folder (copied to `work`), epochs at 250 Hz without
/// MVNN; each split's epochs equal MNE's (`expected_{train,test}.npy`) to 1e-3 of their scale.
fn eeg_case_reads_as_mne(dir: &Path, work: &Path) {
    let out = work.join("out");
    let run = brainrecon(&[
        "eeg",
        "bids-prepare",
        "--bids-root",
        p(&work.join("bids")),
        "--subject",
        "01",
        "--task",
        "images",
        "--sfreq",
        "250",
        "--mvnn",
        "none",
        "--out",
        p(&out),
    ]);
    assert!(
        run.status.success(),
        "{}: {}",
        dir.display(),
        String::from_utf8_lossy(&run.stderr)
    );
    let subject = out.join("eeg_dataset/preprocessed_data/sub-01");
    for (half, name) in [("train", "training"), ("test", "test")] {
        let got = brainrecon_datasets::things_eeg2::read_preprocessed(
            &subject.join(format!("preprocessed_eeg_{name}.npy")),
        )
        .unwrap();
        let (want, shape) = npy(&dir.join(format!("expected_{half}.npy")));
        assert_eq!(
            [
                got.conditions,
                got.repetitions,
                got.channels(),
                got.times.len()
            ],
            shape[..],
            "{half}"
        );
        let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
        let worst = got
            .data
            .iter()
            .zip(&want)
            .fold(0f64, |m, (&g, &w)| m.max((g as f64 - w).abs()));
        assert!(worst <= 1e-3 * scale, "{half}: {worst} of {scale}");
    }
}

/// `bids prepare` (raw BIDS with `--mask`, or fMRIPrep) of the case's input copied to `work`;
/// the voxels kept and each run's z-scored series equal nibabel's reading.
fn runset_case_reads_as_nibabel(dir: &Path, work: &Path, fmriprep: bool) {
    let out = work.join("out");
    let mut args = vec!["bids".to_string(), "prepare".into()];
    let words = if fmriprep {
        format!(
            "--fmriprep {} --space T1w --subject 01 --task rest --confounds none",
            p(&work.join("fmriprep"))
        )
    } else {
        format!(
            "--bids-root {} --subject 01 --task rest --mask {} --detrend none",
            p(&work.join("bids")),
            p(&work.join("mask.nii.gz"))
        )
    };
    args.extend(words.split(' ').map(String::from));
    args.extend(["--out".into(), p(&out).into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = brainrecon(&args);
    assert!(
        run.status.success(),
        "{}: {}",
        dir.display(),
        String::from_utf8_lossy(&run.stderr)
    );
    let (voxels, _) = npy(&out.join("voxels.npy"));
    let (want, _) = npy(&dir.join("expected_voxels.npy"));
    assert_eq!(voxels, want, "voxels kept");
    let meta = common::json(&out.join("runset.json"));
    let ddof = match meta["preprocessing"]["zscore"].as_str() {
        Some("run_sample") => 1.0,
        _ => 0.0,
    };
    for (i, run) in meta["runs"].as_array().unwrap().iter().enumerate() {
        let (got, shape) = npy(&out.join(run["data"].as_str().unwrap()));
        let (raw, want_shape) = npy(&dir.join(format!("expected_run{}.npy", i + 1)));
        assert_eq!(shape, want_shape, "run {}", i + 1);
        let (t, v) = (shape[0], shape[1]);
        for column in 0..v {
            let x: Vec<f64> = (0..t).map(|r| raw[r * v + column]).collect();
            let mean = x.iter().sum::<f64>() / t as f64;
            let var = x.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (t as f64 - ddof);
            let sd = if var > 0.0 { var.sqrt() } else { 1.0 };
            for r in 0..t {
                let want = (x[r] - mean) / sd;
                let diff = (got[r * v + column] - want).abs();
                assert!(diff <= 1e-4, "run {} voxel {column} row {r}: {diff}", i + 1);
            }
        }
    }
}

/// Copies the case's input into a fresh folder, marks its text files when `marks`.
fn input_copy(dir: &Path, marks: bool) -> tempfile::TempDir {
    let work = tempfile::tempdir().unwrap();
    copy_dir(&dir.join("input"), work.path());
    if marks {
        assert!(add_byte_order_marks(work.path()) > 0);
    }
    work
}

#[test]
fn events_tsv_with_a_byte_order_mark_reads_as_mne() {
    let Some(dir) = case("01_events-tsv-bom") else {
        return;
    };
    for marks in [false, true] {
        let work = input_copy(&dir, marks);
        eeg_case_reads_as_mne(&dir, work.path());
    }
}

#[test]
fn brainvision_marker_at_zero_and_unitless_channels_read_as_mne() {
    let Some(dir) = case("05_brainvision-marker-at-zero") else {
        return;
    };
    for marks in [false, true] {
        let work = input_copy(&dir, marks);
        eeg_case_reads_as_mne(&dir, work.path());
    }
}

#[test]
fn fmriprep_masks_with_nan_scaling_read_as_nibabel() {
    let Some(dir) = case("02_fmriprep-mask-nan-scaling") else {
        return;
    };
    for marks in [false, true] {
        let work = input_copy(&dir, marks);
        runset_case_reads_as_nibabel(&dir, work.path(), true);
    }
}

#[test]
fn a_mask_placed_by_its_qform_only_reads_as_nibabel() {
    let Some(dir) = case("03_nifti-qform-only-mask") else {
        return;
    };
    for marks in [false, true] {
        let work = input_copy(&dir, marks);
        runset_case_reads_as_nibabel(&dir, work.path(), false);
    }
}

/// `realtime watch` of a folder of files, with `--json`: the session summary.
fn watch(folder: &Path, out: &Path) -> (Option<i32>, serde_json::Value) {
    let run = brainrecon(&[
        "realtime",
        "watch",
        "--folder",
        p(folder),
        "--idle-seconds",
        "1",
        "--settle-ms",
        "50",
        "--out",
        p(out),
        "--json",
    ]);
    let summary = serde_json::from_slice(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "{}: no summary ({e}): {}",
            folder.display(),
            String::from_utf8_lossy(&run.stderr)
        )
    });
    (run.status.code(), summary)
}

/// Motion rows of a session's `motion.tsv` (the six parameters of each volume).
fn motion(out: &Path) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(out.join("motion.tsv")).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<&str> = line.split('\t').collect();
            cells[2..8].iter().map(|c| c.parse().unwrap()).collect()
        })
        .collect()
}

#[test]
fn mosaics_stripped_of_their_csa_header_read_as_with_it() {
    let Some(dir) = case("04_mosaic-csa-stripped") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (code, control) = watch(&dir.join("input/export-csa"), &work.path().join("out-csa"));
    assert_eq!((code, control["volumes"].as_u64()), (Some(0), Some(5)));
    let (code, stripped) = watch(
        &dir.join("input/export-stripped"),
        &work.path().join("out-stripped"),
    );
    assert_eq!(
        (code, stripped["volumes"].as_u64()),
        (Some(0), Some(5)),
        "{stripped}"
    );
    let (a, b) = (
        motion(&work.path().join("out-csa")),
        motion(&work.path().join("out-stripped")),
    );
    assert_eq!(a.len(), 5);
    for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
        assert!((x - y).abs() <= 0.05, "motion {x} against {y}");
    }
    // A folder of files that are no images reads nothing: not a success.
    let junk = work.path().join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    for k in 0..3 {
        std::fs::write(junk.join(format!("vol{k}.dcm")), vec![7u8; 400]).unwrap();
    }
    let (code, summary) = watch(&junk, &work.path().join("out-junk"));
    assert_eq!(code, Some(2), "{summary}");
}
