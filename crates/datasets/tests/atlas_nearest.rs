//! `glm prepare`'s atlas sampling (`experiment::atlas::nearest_values`) against nilearn 0.14.1's
//! `resample_to_img(..., interpolation="nearest")` (fixtures from
//! tools/fixtures/atlas_nearest.py): an LIA aparc+aseg under a RAS grid, grids whose centres all
//! fall on ties, and an oblique grid partly outside the atlas.

use brainrecon_datasets::experiment::atlas::nearest_values;
use brainrecon_formats::{nifti_io, npy};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/atlas")
}

#[test]
fn labels_sampled_on_another_grid_match_nilearn() {
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("cases.json")).unwrap())
            .unwrap();
    for (name, case) in cases["cases"].as_object().unwrap() {
        let volume =
            nifti_io::read_volume(&fixtures().join(case["labels"].as_str().unwrap())).unwrap();
        let shape: Vec<usize> = case["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let affine: [[f64; 4]; 4] = std::array::from_fn(|r| {
            std::array::from_fn(|c| case["affine"][r][c].as_f64().unwrap())
        });
        // nilearn's (X, Y, Z) array in C order: z fastest.
        let expected = npy::read_i64(&fixtures().join(case["nilearn"].as_str().unwrap())).unwrap();
        assert_eq!(expected.shape, shape, "{name}");
        let (nx, ny, nz) = (shape[0], shape[1], shape[2]);
        let voxels: Vec<[usize; 3]> = (0..nx)
            .flat_map(|i| (0..ny).flat_map(move |j| (0..nz).map(move |k| [i, j, k])))
            .collect();
        let ours = nearest_values(&volume, false, &affine, &voxels).unwrap();
        let mut differ = Vec::new();
        let mut outside = 0;
        for (v, (value, &theirs)) in ours.iter().zip(&expected.data).enumerate() {
            let value = value.map_or_else(
                || {
                    outside += 1;
                    0
                },
                |x| x as i64,
            );
            if value != theirs {
                differ.push((voxels[v], value, theirs));
            }
        }
        assert!(
            differ.is_empty(),
            "{name}: {} of {} voxels differ from nilearn, e.g. {:?}",
            differ.len(),
            voxels.len(),
            &differ[..differ.len().min(5)]
        );
        if name == "oblique" {
            assert!(
                outside > 0,
                "the oblique case should reach outside the atlas"
            );
        }
    }
}
