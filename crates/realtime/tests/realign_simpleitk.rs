//! Realignment against an independent implementation: SimpleITK's rigid registration (mean
//! squares, Euler3DTransform) of int16 NIfTI volumes moved by planted motions
//! (tools/fixtures/realign_simpleitk.py). brainrecon's estimate must be within 0.1 mm and
//! 0.1° of both the planted motion and SimpleITK's estimate.
use brainrecon_formats::nifti_io::read_volume;
use brainrecon_realtime::grid::{Grid, Image};
use brainrecon_realtime::realign::{RealignOptions, Reference};
use brainrecon_realtime::rigid::{Rigid, RigidParams};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/realign")
}

fn image(path: &Path) -> Image {
    let v = read_volume(path).unwrap();
    let values = v.values.iter().map(|&x| x as f32).collect();
    Image::new(
        Grid {
            shape: v.shape,
            affine: v.affine,
        },
        values,
    )
    .unwrap()
}

fn params(value: &serde_json::Value) -> RigidParams {
    serde_json::from_value(value.clone()).unwrap()
}

fn largest_difference(a: &RigidParams, b: &RigidParams) -> (f64, f64) {
    let d = |x: &[f64; 3], y: &[f64; 3]| (0..3).map(|i| (x[i] - y[i]).abs()).fold(0.0, f64::max);
    (
        d(&a.translation_mm, &b.translation_mm),
        d(&a.rotation_deg, &b.rotation_deg),
    )
}

#[test]
fn estimates_agree_with_simpleitk_and_the_planted_motion() {
    let dir = fixtures();
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("simpleitk.json")).unwrap())
            .unwrap();
    let reference_image = image(&dir.join("reference.nii.gz"));
    // The script's grid: 3.5 × 3.5 × 4 mm voxels centred on the origin (the written affine read back).
    let centre = reference_image.grid.centre();
    assert!(
        centre.iter().all(|c| c.abs() < 1e-3),
        "grid centre {centre:?}"
    );
    assert_eq!(
        reference_image
            .grid
            .voxel_sizes()
            .map(|v| (v * 100.0).round() / 100.0),
        [3.5, 3.5, 4.0]
    );
    let reference = Reference::new(&reference_image, &RealignOptions::default()).unwrap();
    for row in record["volumes"].as_array().unwrap() {
        let file = row["file"].as_str().unwrap();
        let planted = params(&row["planted"]);
        let simpleitk = params(&row["simpleitk"]);
        let estimate = reference
            .estimate(&image(&dir.join(file)), &Rigid::IDENTITY)
            .unwrap();
        let (pt, pr) = largest_difference(&estimate.params, &planted);
        let (st, sr) = largest_difference(&estimate.params, &simpleitk);
        let (it, ir) = largest_difference(&simpleitk, &planted);
        println!(
            "{file}: brainrecon − planted {pt:.4} mm {pr:.4}°; brainrecon − SimpleITK {st:.4} mm {sr:.4}°; SimpleITK − planted {it:.4} mm {ir:.4}°"
        );
        assert!(estimate.converged, "{file}");
        assert!(
            pt <= 0.1 && pr <= 0.1,
            "{file}: {pt} mm {pr}° from the planted motion"
        );
        assert!(
            st <= 0.1 && sr <= 0.1,
            "{file}: {st} mm {sr}° from SimpleITK's estimate"
        );
    }
}
