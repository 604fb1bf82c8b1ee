//! ITK's HDF5 composite transforms (`itk_transform`) and labels resampled through them
//! (`experiment::atlas::warped_values`) against SimpleITK 2.5.2 (ITK 5.4), which wrote the files
//! (tools/fixtures/itk_warp.py): an affine with a centre and a displacement field on a rotated
//! grid, in both orders, and the field stored as float32 as ANTs writes fMRIPrep's transforms.

use brainrecon_core::DataError;
use brainrecon_datasets::experiment::atlas::warped_values;
use brainrecon_formats::itk_transform::{ItkStep, ItkTransform};
use brainrecon_formats::{nifti_io, npy};
use std::path::{Path, PathBuf};

const CASES: [&str; 3] = ["affine_field", "field_first", "field_float"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/itk_warp")
}

fn transform(case: &str) -> ItkTransform {
    ItkTransform::read(&fixtures().join(format!("{case}_xfm.h5"))).unwrap()
}

#[test]
fn the_files_hold_an_affine_and_a_field_in_itks_queue_order() {
    let kinds = |case: &str| -> Vec<&'static str> {
        transform(case)
            .steps
            .iter()
            .map(|s| match s {
                ItkStep::Affine(_) => "affine",
                ItkStep::Field(_) => "field",
            })
            .collect()
    };
    assert_eq!(kinds("affine_field"), ["affine", "field"]);
    assert_eq!(kinds("field_first"), ["field", "affine"]);
    assert_eq!(kinds("field_float"), ["affine", "field"]);
    let t = transform("affine_field");
    let ItkStep::Field(field) = &t.steps[1] else {
        unreachable!()
    };
    assert_eq!(field.size, [14, 16, 12]);
    assert_eq!(field.spacing, [6.0, 6.0, 6.0]);
}

#[test]
fn points_map_as_itk_maps_them() {
    let points: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("points.json")).unwrap())
            .unwrap();
    let triple =
        |v: &serde_json::Value| -> [f64; 3] { std::array::from_fn(|i| v[i].as_f64().unwrap()) };
    for case in CASES {
        let t = transform(case);
        let ras = points[case]["ras"].as_array().unwrap();
        let mapped = points[case]["mapped_ras"].as_array().unwrap();
        let mut moved = 0;
        for (p, expected) in ras.iter().zip(mapped) {
            let (p, expected) = (triple(p), triple(expected));
            let ours = t.map_ras(p);
            let error = (0..3)
                .map(|i| (ours[i] - expected[i]).abs())
                .fold(0.0, f64::max);
            assert!(error < 1e-9, "{case}: {p:?} → {ours:?}, ITK {expected:?}");
            moved += usize::from((0..3).any(|i| (expected[i] - p[i]).abs() > 0.5));
        }
        assert!(
            moved > ras.len() / 2,
            "{case}: the transform barely moves points"
        );
    }
}

#[test]
fn labels_resampled_through_the_transform_equal_itks() {
    let labels = nifti_io::read_volume(&fixtures().join("labels_t1w.nii.gz")).unwrap();
    let target = nifti_io::read_volume(&fixtures().join("target.nii.gz")).unwrap();
    let [nx, ny, nz] = target.shape;
    // (X, Y, Z) in C order: z fastest.
    let voxels: Vec<[usize; 3]> = (0..nx)
        .flat_map(|i| (0..ny).flat_map(move |j| (0..nz).map(move |k| [i, j, k])))
        .collect();
    for case in CASES {
        let expected = npy::read_i64(&fixtures().join(format!("itk_{case}.npy"))).unwrap();
        assert_eq!(expected.shape, [nx, ny, nz], "{case}");
        let ours = warped_values(&labels, &transform(case), &target.affine, &voxels).unwrap();
        let differ: Vec<_> = ours
            .iter()
            .zip(&expected.data)
            .enumerate()
            .filter(|(_, (v, &theirs))| v.map_or(0, |x| x as i64) != theirs)
            .map(|(i, (v, theirs))| (voxels[i], *v, *theirs))
            .collect();
        assert!(
            differ.is_empty(),
            "{case}: {} voxels differ, e.g. {:?}",
            differ.len(),
            &differ[..differ.len().min(5)]
        );
        let labelled = expected.data.iter().filter(|&&v| v > 0).count();
        let outside = ours.iter().filter(|v| v.is_none()).count();
        assert!(
            labelled > voxels.len() / 4 && outside > 0,
            "{case}: {labelled} labelled, {outside} outside"
        );
    }
}

#[test]
fn broken_transform_files_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let not_h5 = dir.path().join("xfm.h5");
    std::fs::write(&not_h5, b"#Insight Transform File V1.0\n").unwrap();
    let err = ItkTransform::read(&not_h5).unwrap_err();
    assert!(matches!(err, DataError::Format { .. }), "{err}");
    // Truncated: the header is there, the data is not.
    let bytes = std::fs::read(fixtures().join("affine_field_xfm.h5")).unwrap();
    let cut = dir.path().join("cut.h5");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    assert!(ItkTransform::read(&cut).is_err());
    let missing = ItkTransform::read(&dir.path().join("none.h5")).unwrap_err();
    assert!(missing.to_string().contains("from-T1w_to-"), "{missing}");
}
