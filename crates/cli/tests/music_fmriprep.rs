//! The music route from fMRIPrep's output of a ds003720-layout dataset: the raw runs
//! (ds003720 ships them without motion correction) stand behind fMRIPrep-named derivatives
//! (`*_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz`, brain masks, confounds tables with
//! fMRIPrep's columns), `bids prepare --fmriprep` regresses the confounds, and `music fit`
//! reaches identification well above chance; wrong inputs are all reported up front.

mod common;

use brainrecon_formats::nifti4d::{self, Storage};
use common::{ok, p, user_error};
use std::path::Path;

const SPACE: &str = "space-MNI152NLin2009cAsym";

/// fMRIPrep's tree for every raw run of `sim`: preprocessed series (the raw values, gzipped),
/// a brain mask, a sidecar and a confounds table whose motion columns are small, known drifts.
fn fmriprep_tree(sim: &Path, out: &Path) {
    let func = out.join("sub-001/func");
    std::fs::create_dir_all(&func).unwrap();
    std::fs::write(
        out.join("dataset_description.json"),
        r#"{"Name": "fMRIPrep - fMRI PREProcessing workflow", "BIDSVersion": "1.4.0", "DatasetType": "derivative", "GeneratedBy": [{"Name": "fMRIPrep", "Version": "23.2.1"}]}"#,
    )
    .unwrap();
    let mask = sim.join("derivatives/mask/sub-001_mask.nii.gz");
    let mut raw: Vec<_> = std::fs::read_dir(sim.join("sub-001/func"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|f| f.to_string_lossy().ends_with("_bold.nii"))
        .collect();
    raw.sort();
    assert!(raw.len() >= 3);
    for bold in raw {
        let name = bold
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace("_bold.nii", "");
        let mut volumes = Vec::new();
        let header = nifti4d::for_each_volume(&bold, |_, v| {
            volumes.push(v.to_vec());
            Ok(())
        })
        .unwrap();
        let preproc = func.join(format!("{name}_{SPACE}_desc-preproc_bold.nii.gz"));
        nifti4d::write_series(
            &preproc,
            header.shape,
            1.5,
            &header.affine,
            Storage::Float32,
            &volumes,
        )
        .unwrap();
        std::fs::write(
            func.join(format!("{name}_{SPACE}_desc-preproc_bold.json")),
            r#"{"RepetitionTime": 1.5, "SkullStripped": false}"#,
        )
        .unwrap();
        std::fs::copy(
            &mask,
            func.join(format!("{name}_{SPACE}_desc-brain_mask.nii.gz")),
        )
        .unwrap();
        std::fs::write(
            func.join(format!("{name}_desc-confounds_timeseries.tsv")),
            confounds(volumes.len()),
        )
        .unwrap();
    }
}

/// A confounds table in fMRIPrep's column names: `n/a` in the first row of derivatives and FD;
/// fMRIPrep's discrete cosine basis of a 128-s high-pass filter (`cosineNN`).
fn confounds(n: usize) -> String {
    let n_cosines = (2.0 * n as f64 * 1.5 / 128.0).floor() as usize;
    let cosines: Vec<String> = (0..n_cosines).map(|k| format!("cosine{k:02}")).collect();
    let mut columns: Vec<&str> = vec![
        "global_signal",
        "csf",
        "white_matter",
        "trans_x",
        "trans_x_derivative1",
        "trans_y",
        "trans_y_derivative1",
        "trans_z",
        "trans_z_derivative1",
        "rot_x",
        "rot_x_derivative1",
        "rot_y",
        "rot_y_derivative1",
        "rot_z",
        "rot_z_derivative1",
        "framewise_displacement",
        "std_dvars",
    ];
    columns.extend(cosines.iter().map(String::as_str));
    let mut text = columns.join("\t") + "\n";
    for t in 0..n {
        let x = t as f64 / n as f64;
        let row: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(c, name)| {
                if t == 0
                    && (name.ends_with("derivative1")
                        || name.starts_with("framewise")
                        || name.starts_with("std_dvars"))
                {
                    return "n/a".to_string();
                }
                let value = match *name {
                    "framewise_displacement" => 0.05,
                    "std_dvars" => 1.0,
                    _ if name.starts_with("cosine") => {
                        let k: f64 = name[6..].parse::<f64>().unwrap() + 1.0;
                        (2.0 / n as f64).sqrt()
                            * (std::f64::consts::PI * k * (t as f64 + 0.5) / n as f64).cos()
                    }
                    _ if name.ends_with("derivative1") => 0.001 * (c as f64 + 1.0),
                    // Jitter around the baseline, as head motion and tissue signals of a still
                    // subject look; nothing slow, which would take the music's own signal.
                    _ => 0.01 * (jitter(t, c) + 0.1 * x),
                };
                format!("{value:.6}")
            })
            .collect();
        text += &(row.join("\t") + "\n");
    }
    text
}

/// A deterministic value in [-0.5, 0.5) for row `t`, column `c`.
fn jitter(t: usize, c: usize) -> f64 {
    let h = ((t as u64) << 8 | c as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(29);
    (h >> 11) as f64 / (1u64 << 53) as f64 - 0.5
}

#[test]
fn music_route_runs_from_fmriprep_derivatives_to_identification() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, deriv, runs, fit) = (
        dir.path().join("ds003720"),
        dir.path().join("ds003720/derivatives/fmriprep"),
        dir.path().join("runs"),
        dir.path().join("fit"),
    );
    ok(&[
        "simulate",
        "--kind",
        "music",
        "--out",
        p(&sim),
        "--seed",
        "0",
    ]);
    fmriprep_tree(&sim, &deriv);
    let prepared = ok(&[
        "bids",
        "prepare",
        "--fmriprep",
        p(&deriv),
        "--bids-root",
        p(&sim),
        "--subject",
        "001",
        "--task",
        "Training",
        "--task",
        "Test",
        "--confounds",
        "motion:basic,wm_csf:basic",
        "--out",
        p(&runs),
    ]);
    assert!(prepared.contains("prepared sub-001"), "{prepared}");
    let atlas = sim.join("derivatives/atlas/sub-001_atlas-Destrieux_dseg.nii.gz");
    let stimuli = sim.join("stimuli/genres");
    // Every wrong input at once, before anything is embedded.
    let err = user_error(&[
        "music",
        "fit",
        "--runs",
        p(&runs),
        "--stimuli",
        p(&dir.path().join("no-stimuli")),
        "--atlas",
        p(&dir.path().join("no-atlas.nii.gz")),
        "--out",
        p(&fit),
    ]);
    assert!(
        err.contains("no-stimuli") && err.contains("no-atlas.nii.gz"),
        "{err}"
    );
    assert!(!fit.exists());
    let summary: serde_json::Value = serde_json::from_str(&ok(&[
        "music",
        "fit",
        "--runs",
        p(&runs),
        "--stimuli",
        p(&stimuli),
        "--atlas",
        p(&atlas),
        "--out",
        p(&fit),
        "--json",
    ]))
    .unwrap();
    let windows = summary["identification_windows"].as_f64().unwrap();
    let clips = summary["identification_clips"].as_f64().unwrap();
    assert!(
        windows > 0.75 && clips > 0.75,
        "identification {windows} / {clips}"
    );
}
