//! Siemens EPI mosaics (tools/fixtures/dicom_mosaic.py writes them as a real-time export
//! does) read against dcm2niix's conversion of the same files: every voxel's value and world
//! position. And the files a scanner's export folder can hold mid-write or broken: clear
//! errors, never a panic.
use brainrecon_data::dicom::{read_volume, DicomVolume};
use brainrecon_data::runs::nifti4d::for_each_volume;
use brainrecon_data::DataError;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dicom")
}

fn mosaic_file(t: usize) -> PathBuf {
    fixtures().join(format!("mosaic/001_000007_{:06}.dcm", t + 1))
}

fn world(affine: &[[f64; 4]; 4], v: [f64; 3]) -> [f64; 3] {
    std::array::from_fn(|r| (0..3).map(|c| affine[r][c] * v[c]).sum::<f64>() + affine[r][3])
}

fn invert(affine: &[[f64; 4]; 4]) -> [[f64; 4]; 4] {
    // Gauss-Jordan on the 4 × 4 (the test's own, independent of the reader's geometry code).
    let mut a = *affine;
    let mut inv = [[0.0; 4]; 4];
    for (i, row) in inv.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for col in 0..4 {
        let pivot = (col..4)
            .max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))
            .unwrap();
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let p = a[col][col];
        for k in 0..4 {
            a[col][k] /= p;
            inv[col][k] /= p;
        }
        for r in 0..4 {
            if r != col {
                let f = a[r][col];
                for k in 0..4 {
                    a[r][k] -= f * a[col][k];
                    inv[r][k] -= f * inv[col][k];
                }
            }
        }
    }
    inv
}

#[test]
fn mosaics_match_dcm2niix_voxel_for_voxel_in_world_space() {
    let mut converted = Vec::new();
    let header = for_each_volume(&fixtures().join("dcm2niix/mosaic.nii"), |_, v| {
        converted.push(v.to_vec());
        Ok(())
    })
    .unwrap();
    assert_eq!(header.shape, [40, 36, 10]);
    assert_eq!(converted.len(), 3);
    let to_dcm2niix = invert(&header.affine);
    for (t, expected) in converted.iter().enumerate() {
        let volume: DicomVolume = read_volume(&mosaic_file(t)).unwrap();
        assert_eq!(volume.shape, [40, 36, 10]);
        assert_eq!(volume.series.acquisition_number, Some(t as i64 + 1));
        let [nx, ny, nz] = volume.shape;
        let mut largest_offgrid: f64 = 0.0;
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    let w = world(&volume.affine, [i as f64, j as f64, k as f64]);
                    let d = world(&to_dcm2niix, w);
                    let index = d.map(|x| x.round());
                    largest_offgrid = d
                        .iter()
                        .zip(&index)
                        .map(|(x, r)| (x - r).abs())
                        .fold(largest_offgrid, f64::max);
                    let [x, y, z] = index.map(|x| x as usize);
                    let theirs = expected[x + nx * (y + ny * z)];
                    let ours = volume.values[i + nx * (j + ny * k)] as f64;
                    assert_eq!(ours, theirs, "volume {t} voxel ({i}, {j}, {k})");
                }
            }
        }
        assert!(
            largest_offgrid < 1e-3,
            "voxel centres differ from dcm2niix's by {largest_offgrid} voxels"
        );
    }
}

#[test]
fn the_planted_geometry_is_read() {
    let planted: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("mosaic.json")).unwrap())
            .unwrap();
    let volume = read_volume(&mosaic_file(0)).unwrap();
    let first: Vec<f64> = serde_json::from_value(planted["first_voxel_lps"].clone()).unwrap();
    let origin = world(&volume.affine, [0.0; 3]);
    for (axis, sign) in [-1.0, -1.0, 1.0].into_iter().enumerate() {
        assert!(
            (origin[axis] - sign * first[axis]).abs() < 1e-4,
            "{origin:?} vs {first:?}"
        );
    }
    // Unique values: voxel (i, j, k) of volume 0 holds 1 + i + 40 j + 1440 k.
    assert_eq!(volume.values[0], 1.0);
    assert_eq!(
        volume.values[39 + 40 * (35 + 36 * 9)],
        (1 + 39 + 40 * 35 + 1440 * 9) as f32
    );
}

fn error_of(bytes: &[u8], name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let err = read_volume(&path).expect_err("a broken file must be refused");
    let message = err.to_string();
    assert!(
        message.contains(name),
        "the message names the file: {message}"
    );
    message
}

#[test]
fn half_written_and_broken_files_are_refused_with_their_name() {
    let whole = std::fs::read(mosaic_file(0)).unwrap();
    // A file caught mid-copy: cut inside the pixel data and inside the header.
    let message = error_of(&whole[..whole.len() - 1000], "cut_in_pixels.dcm");
    assert!(
        message.contains("PixelData") || message.contains("DICOM"),
        "{message}"
    );
    error_of(&whole[..700], "cut_in_header.dcm");
    error_of(b"not a dicom file at all", "garbage.dcm");
    error_of(&[], "empty.dcm");
    // Single-byte corruptions through the header (every 7th byte) and the pixels: an error
    // or a volume, never a panic or an allocation a length field asked for.
    let header_end = whole.len() - 144 * 160 * 2;
    for at in (132..header_end)
        .step_by(7)
        .chain((header_end..whole.len()).step_by(997))
    {
        let mut bytes = whole.clone();
        bytes[at] ^= 0xA5;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flipped.dcm");
        std::fs::write(&path, &bytes).unwrap();
        let _ = read_volume(&path);
    }
    match read_volume(&fixtures().join("mosaic/missing.dcm")) {
        Err(DataError::Missing { .. }) => {}
        other => panic!("expected a missing-file error, got {other:?}"),
    }
}

#[test]
fn a_mosaic_whose_slice_count_does_not_fit_is_refused() {
    let mut bytes = std::fs::read(mosaic_file(0)).unwrap();
    // NumberOfImagesInMosaic "10" → "99": 10 × 10 tiles do not divide 144 × 160.
    let at = bytes.windows(3).position(|w| w == b"10\0").unwrap();
    bytes[at..at + 2].copy_from_slice(b"99");
    let message = error_of(&bytes, "too_many_slices.dcm");
    assert!(
        message.contains("Rows") && message.contains("multiples of 10"),
        "{message}"
    );
}

#[test]
fn a_written_mosaic_reads_back_with_its_values_and_geometry() {
    use brainrecon_data::dicom::write::{write_mosaic, MosaicVolume};
    let original = read_volume(&mosaic_file(1)).unwrap();
    let values: Vec<u16> = original.values.iter().map(|&v| v as u16).collect();
    let dir = tempfile::tempdir().unwrap();
    for slices in [10, 7, 1] {
        let [nx, ny, _] = original.shape;
        let path = dir.path().join(format!("001_000003_{slices:06}.dcm"));
        write_mosaic(
            &path,
            &MosaicVolume {
                shape: [nx, ny, slices],
                affine: original.affine,
                values: &values[..nx * ny * slices],
                uid_root: "1.2.826.0.1.3680043.10.1082",
                series_number: 3,
                volume: 5,
                repetition_time_ms: 1000.0,
            },
        )
        .unwrap();
        let back = read_volume(&path).unwrap();
        assert_eq!(back.shape, [nx, ny, slices]);
        assert_eq!(back.values, original.values[..nx * ny * slices]);
        for r in 0..3 {
            for c in 0..4 {
                assert!(
                    (back.affine[r][c] - original.affine[r][c]).abs() < 1e-4,
                    "{slices} slices: affine {:?} vs {:?}",
                    back.affine,
                    original.affine
                );
            }
        }
        assert_eq!(back.series.acquisition_number, Some(5));
    }
    // Nothing half-written is left beside the files.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        names.iter().all(|n| !n.to_string_lossy().starts_with('.')),
        "{names:?}"
    );
}
