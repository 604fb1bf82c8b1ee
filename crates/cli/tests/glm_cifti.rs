//! `glm --space fsLR`: fMRIPrep's CIFTI runs (`*_space-fsLR_den-91k_bold.dtseries.nii` with
//! their `_bold.json`). The simulated experiment's T1w runs are copied into CIFTI files as
//! fMRIPrep names them (the brain-mask voxels as grayordinates: a surface model of the left
//! cortex, then a voxel model on the runs' grid), and the fit of the grayordinates must equal the
//! fit of the volume, column for voxel. Then what CIFTI cannot do yet is refused with exit 2.

mod common;

use brainrecon_formats::cifti::{self, BrainModel, CiftiVolume, LabelMap, ModelType, SeriesMap};
use brainrecon_formats::nifti4d;
use brainrecon_formats::npy;
use common::{json, ok, p as s, user_error};
use std::path::Path;

/// Writes each T1w run of `func` as a CIFTI run whose columns are `voxels` (i, j, k), in order.
fn write_cifti_runs(func: &Path, voxels: &[[usize; 3]]) -> (usize, Vec<BrainModel>, CiftiVolume) {
    let mut written = 0;
    let mut last = None;
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
        last = Some((models.to_vec(), volume));
    }
    let (models, volume) = last.expect("T1w runs");
    (written, models, volume)
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
    let (written, models, volume) = write_cifti_runs(&func, &voxels);
    assert!(written >= 2);

    let printed = glm(&sim, &cifti_glm, "fsLR");
    assert!(printed.contains("TYPED_FITHRF_GLMDENOISE_RR"), "{printed}");
    let runset = json(&cifti_glm.join("timeseries/runset.json"));
    assert_eq!(runset["n_voxels"].as_u64(), Some(voxels.len() as u64));
    let listed = runset["grayordinates"]["models"].as_array().unwrap();
    assert_eq!(listed[0]["structure"], "CIFTI_STRUCTURE_CORTEX_LEFT");
    assert_eq!(listed[1]["kind"], "voxels");
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
        assert!(!cifti_glm.join(model).join("R2.nii.gz").exists());
        // Maps as CIFTI dense scalars over the runs' grayordinates, equal to the .npy.
        let (names, dscalar_models, map) =
            cifti::read_dense_scalars(&cifti_glm.join(model).join("R2.dscalar.nii")).unwrap();
        assert_eq!(names, ["R2"]);
        assert_eq!(dscalar_models.len(), 2);
        let r2 = npy::read_f32(&cifti_glm.join(model).join("R2.npy")).unwrap();
        assert_eq!(map, r2.data, "{model}");
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

    prepared_subjects_agree(
        dir.path(),
        &volume_glm,
        &cifti_glm,
        &voxels,
        &models,
        &volume,
    );

    // What CIFTI runs cannot take: exit 2 naming it.
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

/// `glm prepare` of the CIFTI fit with a `.dlabel.nii` holding, at each grayordinate, the
/// aparc+aseg label the volume fit's voxel gets: the same ROIs and the same betas as the volume's
/// prepared subject.
fn prepared_subjects_agree(
    dir: &Path,
    volume_glm: &Path,
    cifti_glm: &Path,
    voxels: &[[usize; 3]],
    models: &[BrainModel],
    volume: &CiftiVolume,
) {
    let rois = "visual,streams,aparcaseg";
    let from_volume = dir.join("prepared-t1w");
    ok(&[
        "glm",
        "prepare",
        "--glm",
        s(volume_glm),
        "--rois",
        rois,
        "--out",
        s(&from_volume),
    ]);
    let coords = npy::read_i64(&from_volume.join("rois/aparcaseg.npy")).unwrap();
    let values = npy::read_i64(&from_volume.join("rois/aparcaseg_labels.npy")).unwrap();
    let label_at: std::collections::HashMap<[usize; 3], i32> = coords
        .data
        .chunks(3)
        .zip(&values.data)
        .map(|(c, &v)| ([c[0] as usize, c[1] as usize, c[2] as usize], v as i32))
        .collect();
    let keys: Vec<i32> = voxels
        .iter()
        .map(|v| label_at.get(v).copied().unwrap_or(0))
        .collect();
    let meta = json(&from_volume.join("subject.json"));
    let aparcaseg = meta["atlases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "aparcaseg")
        .unwrap();
    let mut labels: std::collections::BTreeMap<i32, String> = aparcaseg["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["value"].as_i64().unwrap() as i32,
                l["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    labels.insert(0, "???".into());
    let dlabel = dir.join("sub-01_atlas-aparc_den-91k_dseg.dlabel.nii");
    let maps = [LabelMap {
        name: "aparc".into(),
        labels,
    }];
    cifti::write_dense_labels(&dlabel, &maps, models, Some(volume), &keys).unwrap();

    let from_cifti = dir.join("prepared-fslr");
    ok(&[
        "glm",
        "prepare",
        "--glm",
        s(cifti_glm),
        "--atlas",
        s(&dlabel),
        "--rois",
        rois,
        "--out",
        s(&from_cifti),
    ]);
    let cifti_meta = json(&from_cifti.join("subject.json"));
    assert_eq!(cifti_meta["atlases"], meta["atlases"]);
    let column = |v: &[i64]| {
        voxels
            .iter()
            .position(|x| x.iter().zip(v).all(|(a, &b)| *a as i64 == b))
            .unwrap()
    };
    let visual = npy::read_i64(&from_volume.join("rois/visual.npy")).unwrap();
    let visual_columns: Vec<i64> = visual.data.chunks(3).map(|c| column(c) as i64).collect();
    let cifti_visual = npy::read_i64(&from_cifti.join("rois/visual.npy")).unwrap();
    let cifti_columns: Vec<i64> = cifti_visual.data.chunks(3).map(|c| c[0]).collect();
    assert_eq!(cifti_columns, visual_columns);
    for file in ["betas/visual/test.npy", "betas/streams/train.npy"] {
        let a = npy::read_f32(&from_volume.join(file)).unwrap();
        let b = npy::read_f32(&from_cifti.join(file)).unwrap();
        assert_eq!(a.shape, b.shape, "{file}");
        let worst = a
            .data
            .iter()
            .zip(&b.data)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(worst < 1e-3, "{file}: z-scored betas differ by {worst}");
    }
}
