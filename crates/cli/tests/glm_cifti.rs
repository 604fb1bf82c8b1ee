//! `glm --space fsLR`: fMRIPrep's CIFTI runs (`*_space-fsLR_den-91k_bold.dtseries.nii` with
//! their `_bold.json`). The simulated experiment's T1w runs are copied into CIFTI files as
//! fMRIPrep names them (the brain-mask voxels as grayordinates: a surface model of the left
//! cortex, then a voxel model on the runs' grid), and the fit of the grayordinates must equal the
//! fit of the volume, column for voxel. Then what CIFTI cannot do yet is refused with exit 2.

mod common;

use brainrecon_data::cifti::{self, BrainModel, CiftiVolume, ModelType, SeriesMap};
use brainrecon_data::npy;
use brainrecon_data::runs::nifti4d;
use common::{json, ok, p as s, user_error};
use std::path::Path;

/// Writes each T1w run of `func` as a CIFTI run whose columns are `voxels` (i, j, k), in order.
fn write_cifti_runs(func: &Path, voxels: &[[usize; 3]]) -> usize {
    let mut written = 0;
    let mut names: Vec<String> = std::fs::read_dir(func)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("_space-T1w_desc-preproc_bold.nii.gz"))
        .collect();
    names.sort();
    for name in names {
        let bold = func.join(&name);
        let header = nifti4d::read_header(&bold).unwrap();
        let [nx, ny, _] = header.shape;
        let mut data = Vec::new();
        nifti4d::for_each_volume(&bold, |_, volume| {
            data.extend(
                voxels
                    .iter()
                    .map(|&[i, j, k]| volume[i + nx * (j + ny * k)] as f32),
            );
            Ok(())
        })
        .unwrap();
        let cortex = voxels.len() / 3;
        let models = [
            BrainModel {
                index_offset: 0,
                index_count: cortex,
                model_type: ModelType::Surface,
                brain_structure: "CIFTI_STRUCTURE_CORTEX_LEFT".into(),
                surface_number_of_vertices: Some(32492),
                vertex_indices: (0..cortex).map(|v| 7 * v).collect(),
                voxel_indices_ijk: vec![],
            },
            BrainModel {
                index_offset: cortex,
                index_count: voxels.len() - cortex,
                model_type: ModelType::Voxels,
                brain_structure: "CIFTI_STRUCTURE_THALAMUS_LEFT".into(),
                surface_number_of_vertices: None,
                vertex_indices: vec![],
                voxel_indices_ijk: voxels[cortex..].to_vec(),
            },
        ];
        let volume = CiftiVolume {
            dimensions: header.shape,
            ijk_to_xyz: header.affine,
            meter_exponent: -3,
        };
        let sidecar = func.join(name.replace(".nii.gz", ".json"));
        let tr = json(&sidecar)["RepetitionTime"].as_f64().unwrap();
        let series = SeriesMap {
            count: header.n_volumes,
            start: 0.0,
            step: tr,
            exponent: 0,
            unit: "SECOND".into(),
        };
        let stem = name.replace(
            "_space-T1w_desc-preproc_bold.nii.gz",
            "_space-fsLR_den-91k_bold",
        );
        cifti::write_dense_series(
            &func.join(format!("{stem}.dtseries.nii")),
            &series,
            &models,
            Some(&volume),
            &data,
        )
        .unwrap();
        std::fs::write(
            func.join(format!("{stem}.json")),
            format!("{{\"RepetitionTime\": {tr}}}"),
        )
        .unwrap();
        written += 1;
    }
    written
}

/// `glm` on the simulated dataset in `space`, with `extra` options.
fn glm_args(sim: &Path, out: &Path, space: &str, extra: &[&str]) -> Vec<String> {
    let fmriprep = sim.join("derivatives/fmriprep");
    let mut args: Vec<String> = [
        "glm",
        "--fmriprep",
        s(&fmriprep),
        "--bids-root",
        s(sim),
        "--subject",
        "01",
        "--task",
        "images",
        "--space",
        space,
        "--out",
        s(out),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

fn glm(sim: &Path, out: &Path, space: &str) -> String {
    let args = glm_args(sim, out, space, &[]);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn glm_refused(sim: &Path, out: &Path, space: &str, extra: &[&str]) -> String {
    let args = glm_args(sim, out, space, extra);
    user_error(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn cifti_runs_fit_as_their_volume_does() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    ok(&[
        "simulate",
        "--kind",
        "events",
        "--out",
        s(&sim),
        "--seed",
        "5",
    ]);
    let (volume_glm, cifti_glm) = (dir.path().join("glm-t1w"), dir.path().join("glm-fslr"));
    glm(&sim, &volume_glm, "T1w");
    let ijk = npy::read_i64(&volume_glm.join("timeseries/voxels.npy")).unwrap();
    let voxels: Vec<[usize; 3]> = ijk
        .data
        .chunks(3)
        .map(|c| [c[0] as usize, c[1] as usize, c[2] as usize])
        .collect();
    let func = sim.join("derivatives/fmriprep/sub-01/func");
    assert!(write_cifti_runs(&func, &voxels) >= 2);

    let printed = glm(&sim, &cifti_glm, "fsLR");
    assert!(printed.contains("TYPED_FITHRF_GLMDENOISE_RR"), "{printed}");
    let runset = json(&cifti_glm.join("timeseries/runset.json"));
    assert_eq!(runset["n_voxels"].as_u64(), Some(voxels.len() as u64));
    let models = runset["grayordinates"]["models"].as_array().unwrap();
    assert_eq!(models[0]["structure"], "CIFTI_STRUCTURE_CORTEX_LEFT");
    assert_eq!(models[1]["kind"], "voxels");
    assert_eq!(
        json(&cifti_glm.join("glm.json"))["trials"],
        json(&volume_glm.join("glm.json"))["trials"]
    );
    for model in ["TYPEB_FITHRF", "TYPED_FITHRF_GLMDENOISE_RR"] {
        let a = npy::read_f32(&volume_glm.join(model).join("betasmd.npy")).unwrap();
        let b = npy::read_f32(&cifti_glm.join(model).join("betasmd.npy")).unwrap();
        assert_eq!(a.shape, b.shape, "{model}");
        let scale = a.data.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = a
            .data
            .iter()
            .zip(&b.data)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            worst <= 1e-5 * scale,
            "{model}: betas differ by {worst} (scale {scale})"
        );
        let ha = npy::read_f32(&volume_glm.join(model).join("HRFindex.npy")).unwrap();
        let hb = npy::read_f32(&cifti_glm.join(model).join("HRFindex.npy")).unwrap();
        assert_eq!(ha.data, hb.data, "{model}");
        assert!(
            !cifti_glm.join(model).join("R2.nii.gz").exists(),
            "no volume maps for CIFTI"
        );
    }

    // The continuous-run reader shares it: cleaned and z-scored grayordinates.
    let runs = dir.path().join("runs-fslr");
    ok(&[
        "bids",
        "prepare",
        "--fmriprep",
        s(&sim.join("derivatives/fmriprep")),
        "--bids-root",
        s(&sim),
        "--subject",
        "01",
        "--task",
        "images",
        "--space",
        "fsLR",
        "--confounds",
        "motion:basic",
        "--out",
        s(&runs),
    ]);
    let set = json(&runs.join("runset.json"));
    assert_eq!(set["volume_shape"][0].as_u64(), Some(voxels.len() as u64));
    assert!(set["preprocessing"]["mask"]
        .as_str()
        .unwrap()
        .contains("grayordinate"));
    let first = npy::read_f32(&runs.join("runs/task-images_run-01.npy")).unwrap();
    let n = first.shape[0] as f64;
    let column: Vec<f64> = (0..first.shape[0])
        .map(|t| first.data[t * first.shape[1]] as f64)
        .collect();
    let mean = column.iter().sum::<f64>() / n;
    assert!(mean.abs() < 1e-4, "z-scored: mean {mean}");

    // What CIFTI runs cannot take yet, or at all: exit 2 naming it.
    let err = user_error(&[
        "glm",
        "prepare",
        "--glm",
        s(&cifti_glm),
        "--out",
        s(&dir.path().join("prepared")),
    ]);
    assert!(
        err.contains("grayordinates") && err.contains("dlabel"),
        "{err}"
    );
    let mask = func.join("sub-01_task-images_run-01_space-T1w_desc-brain_mask.nii.gz");
    let masked = dir.path().join("masked");
    let err = glm_refused(&sim, &masked, "fsLR", &["--mask", s(&mask)]);
    assert!(
        err.contains("--mask") && err.contains("grayordinates"),
        "{err}"
    );
    let err = glm_refused(&sim, &dir.path().join("gifti"), "fsaverage5", &[]);
    assert!(err.contains("GIFTI"), "{err}");
}
