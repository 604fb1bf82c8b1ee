//! Siemens EPI mosaics, enhanced multi-frame files and single-frame series
//! (tools/fixtures/dicom_mosaic.py and dicom_frames.py write them as real-time exports do)
//! read against dcm2niix's conversion of the same files: every voxel's value and world
//! position. And the files a scanner's export folder can hold mid-write or broken: clear
//! errors, never a panic.
use brainrecon_formats::dicom::slices::{stack_files, DicomSlice};
use brainrecon_formats::dicom::{read_file, read_volume, DicomFile, DicomVolume};
use brainrecon_formats::nifti4d::for_each_volume;
use brainrecon_formats::DataError;
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

/// dcm2niix's NIfTI of a series: its affine and its volumes.
fn converted(name: &str) -> ([[f64; 4]; 4], Vec<Vec<f64>>) {
    let mut volumes = Vec::new();
    let header = for_each_volume(&fixtures().join("dcm2niix").join(name), |_, v| {
        volumes.push(v.to_vec());
        Ok(())
    })
    .unwrap();
    assert_eq!(header.shape, [40, 36, 10]);
    (header.affine, volumes)
}

/// Every voxel of `volume` has dcm2niix's value at the same world position, and the voxel
/// centres coincide.
fn assert_matches_dcm2niix(volume: &DicomVolume, theirs: &[f64], their_affine: &[[f64; 4]; 4]) {
    assert_eq!(volume.shape, [40, 36, 10]);
    assert_matches_reference(volume, theirs, their_affine, [40, 36, 10]);
}

/// Every voxel of `volume`, placed in world coordinates by its affine, lands within 1e-3
/// voxel of a voxel of the reference (`their_shape`, x fastest) holding the same value.
fn assert_matches_reference(
    volume: &DicomVolume,
    theirs: &[f64],
    their_affine: &[[f64; 4]; 4],
    their_shape: [usize; 3],
) {
    let to_dcm2niix = invert(their_affine);
    let [nx, ny, nz] = volume.shape;
    let [mx, my, mz] = their_shape;
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
                assert!(
                    index
                        .iter()
                        .zip([mx, my, mz])
                        .all(|(&x, m)| x >= 0.0 && x < m as f64),
                    "voxel ({i}, {j}, {k}) lands outside the reference, at {d:?}"
                );
                let [x, y, z] = index.map(|x| x as usize);
                let expected = theirs[x + mx * (y + my * z)];
                let ours = volume.values[i + nx * (j + ny * k)] as f64;
                assert_eq!(ours, expected, "voxel ({i}, {j}, {k})");
            }
        }
    }
    assert!(
        largest_offgrid < 1e-3,
        "voxel centres differ from dcm2niix's by {largest_offgrid} voxels"
    );
}

fn assert_same_affine(ours: &[[f64; 4]; 4], theirs: &[[f64; 4]; 4], what: &str) {
    for r in 0..3 {
        for c in 0..4 {
            assert!(
                (ours[r][c] - theirs[r][c]).abs() < 1e-4,
                "{what}: affine {ours:?} vs {theirs:?}"
            );
        }
    }
}

/// Voxel (i, j, k) of volume t holds 1 + i + 40 j + 1440 k + 16000 t (the fixtures' values).
fn assert_planted_values(volume: &DicomVolume, t: usize) {
    let planted = |i: usize, j: usize, k: usize| (1 + i + 40 * j + 1440 * k + 16000 * t) as f32;
    assert_eq!(volume.values[0], planted(0, 0, 0));
    assert_eq!(volume.values[39 + 40 * (35 + 36 * 9)], planted(39, 35, 9));
    assert_eq!(volume.values[3 + 40 * (2 + 36 * 5)], planted(3, 2, 5));
}

#[test]
fn mosaics_match_dcm2niix_voxel_for_voxel_in_world_space() {
    let (affine, volumes) = converted("mosaic.nii");
    assert_eq!(volumes.len(), 3);
    for (t, expected) in volumes.iter().enumerate() {
        let volume: DicomVolume = read_volume(&mosaic_file(t)).unwrap();
        assert_eq!(volume.series.acquisition_number, Some(t as i64 + 1));
        assert_matches_dcm2niix(&volume, expected, &affine);
    }
}

#[test]
fn enhanced_multiframe_files_match_dcm2niix_voxel_for_voxel() {
    let mosaic = read_volume(&mosaic_file(0)).unwrap();
    for t in 0..3 {
        let (affine, volumes) = converted(&format!("enhanced_{}.nii", t + 1));
        let path = fixtures().join(format!("enhanced/001_000009_{:06}.dcm", t + 1));
        let volume = read_volume(&path).unwrap();
        // Frames written from the last slice to the first, stored as value + 2000.
        assert_planted_values(&volume, t);
        assert_matches_dcm2niix(&volume, &volumes[0], &affine);
        assert_eq!(volume.series.acquisition_number, Some(t as i64 + 1));
        assert_same_affine(&volume.affine, &mosaic.affine, "enhanced against mosaic");
    }
}

/// The single-frame fixture's files grouped into volumes by the key the scanner wrote.
fn single_frame_volumes() -> Vec<Vec<(PathBuf, DicomSlice)>> {
    let mut groups: std::collections::BTreeMap<i64, Vec<_>> = Default::default();
    let mut names: Vec<_> = std::fs::read_dir(fixtures().join("slices"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for path in names {
        match read_file(&path).unwrap() {
            DicomFile::Slice(slice) => groups
                .entry(slice.volume_key().unwrap())
                .or_default()
                .push((path, slice)),
            DicomFile::Volume(_) => panic!("{} is one slice", path.display()),
        }
    }
    groups.into_values().collect()
}

#[test]
fn single_frame_series_stack_into_dcm2niix_volumes() {
    let (affine, volumes) = converted("slices.nii");
    let groups = single_frame_volumes();
    assert_eq!(groups.len(), 3);
    for (t, files) in groups.iter().enumerate() {
        assert_eq!(files.len(), 10);
        let volume = stack_files(files).unwrap();
        assert_planted_values(&volume, t);
        assert_matches_dcm2niix(&volume, &volumes[t], &affine);
    }
    // One slice is not a volume.
    let message = read_volume(&groups[0][0].0).unwrap_err().to_string();
    assert!(message.contains("single-frame"), "{message}");
}

#[test]
fn a_stack_with_a_missing_or_repeated_slice_is_refused() {
    let mut files = single_frame_volumes().remove(0);
    // Slice 2 of 10 missing.
    let mut missing = files.clone();
    missing.remove(2);
    let message = stack_files(&missing).unwrap_err().to_string();
    assert!(
        message.contains("ImagePositionPatient") && message.contains("evenly spaced"),
        "{message}"
    );
    // A slice of the same volume twice.
    let repeated = files[0].clone();
    files[9] = repeated;
    let message = stack_files(&files).unwrap_err().to_string();
    assert!(message.contains("missing or repeated"), "{message}");
}

#[test]
fn broken_enhanced_files_are_refused_never_a_panic() {
    let whole = std::fs::read(fixtures().join("enhanced/001_000009_000001.dcm")).unwrap();
    let message = error_of(&whole[..whole.len() - 500], "cut_enhanced.dcm");
    assert!(
        message.contains("PixelData") || message.contains("DICOM"),
        "{message}"
    );
    flip_bytes(&whole, 40 * 36 * 10 * 2, 5);
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
    assert_planted_values(&volume, 0);
}

/// Reads `whole` with one byte flipped, every `step`-th byte through the header and every
/// 997th through the last `pixel_bytes`: an error or a volume, never a panic or an
/// allocation a length field asked for.
fn flip_bytes(whole: &[u8], pixel_bytes: usize, step: usize) {
    let header_end = whole.len() - pixel_bytes;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flipped.dcm");
    for at in (132..header_end)
        .step_by(step)
        .chain((header_end..whole.len()).step_by(997))
    {
        let mut bytes = whole.to_vec();
        bytes[at] ^= 0xA5;
        std::fs::write(&path, &bytes).unwrap();
        let _ = read_volume(&path);
    }
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
    flip_bytes(&whole, 144 * 160 * 2, 7);
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
    use brainrecon_formats::dicom::write::{write_mosaic, ScannerVolume};
    let original = read_volume(&mosaic_file(1)).unwrap();
    let values: Vec<u16> = original.values.iter().map(|&v| v as u16).collect();
    let dir = tempfile::tempdir().unwrap();
    for slices in [10, 7, 1] {
        let [nx, ny, _] = original.shape;
        let path = dir.path().join(format!("001_000003_{slices:06}.dcm"));
        write_mosaic(
            &path,
            &ScannerVolume {
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
        assert_same_affine(&back.affine, &original.affine, &format!("{slices} slices"));
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

#[test]
fn every_layout_written_reads_back_with_its_values_and_geometry() {
    use brainrecon_formats::dicom::write::{write_volume, DicomLayout, ScannerVolume};
    let original = read_volume(&mosaic_file(2)).unwrap();
    let values: Vec<u16> = original.values.iter().map(|&v| v as u16).collect();
    let dir = tempfile::tempdir().unwrap();
    for layout in [
        DicomLayout::Mosaic,
        DicomLayout::Enhanced,
        DicomLayout::Slices,
    ] {
        let folder = dir.path().join(format!("{layout:?}"));
        std::fs::create_dir(&folder).unwrap();
        let volume = ScannerVolume {
            shape: original.shape,
            affine: original.affine,
            values: &values,
            uid_root: "1.2.826.0.1.3680043.10.1082",
            series_number: 4,
            volume: 3,
            repetition_time_ms: 1600.0,
        };
        let files = write_volume(&folder, "001_000004_000003", &volume, layout).unwrap();
        let back = match layout {
            DicomLayout::Slices => {
                assert_eq!(files.len(), 10);
                let slices: Vec<(PathBuf, DicomSlice)> = files
                    .iter()
                    .rev()
                    .map(|f| match read_file(f).unwrap() {
                        DicomFile::Slice(s) => {
                            assert_eq!(s.volume_key(), Some(3));
                            (f.clone(), s)
                        }
                        DicomFile::Volume(_) => panic!("{} is a slice", f.display()),
                    })
                    .collect();
                stack_files(&slices).unwrap()
            }
            _ => {
                assert_eq!(files.len(), 1);
                read_volume(&files[0]).unwrap()
            }
        };
        assert_eq!(back.shape, original.shape, "{layout:?}");
        assert_eq!(back.values, original.values, "{layout:?}");
        assert_same_affine(&back.affine, &original.affine, &format!("{layout:?}"));
        assert_eq!(back.series.acquisition_number, Some(3));
        let hidden = std::fs::read_dir(&folder)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')
            })
            .count();
        assert_eq!(hidden, 0, "{layout:?}: nothing half-written left");
    }
}

#[test]
fn a_nan_or_infinite_rescale_is_refused() {
    let whole = std::fs::read(fixtures().join("enhanced/001_000009_000001.dcm")).unwrap();
    // RescaleSlope (0028,1053), DS of 4 bytes: "1.0 ".
    let tag = [0x28, 0x00, 0x53, 0x10, b'D', b'S', 0x04, 0x00];
    let at = whole.windows(8).position(|w| w == tag).unwrap() + 8;
    assert_eq!(&whole[at..at + 4], b"1.0 ");
    for value in [b"NaN ", b"inf ", b"0.0 "] {
        let mut bytes = whole.clone();
        bytes[at..at + 4].copy_from_slice(value);
        let message = error_of(&bytes, "scaled.dcm");
        assert!(message.contains("RescaleSlope"), "{message}");
    }
}

/// `mosaic_file(t)` as an anonymiser leaves it: the private CSA header (group 0029) removed,
/// the Siemens MR header's (0019,100A) NumberOfImagesInMosaic kept (added here: the fixture
/// has none), in implicit VR (the tag's two bytes come as UN) or explicit VR (US).
fn strip_csa(t: usize, explicit: bool, orientation: Option<&str>, dir: &Path) -> PathBuf {
    use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
    let mut object = dicom_object::open_file(mosaic_file(t)).unwrap();
    let private: Vec<Tag> = object
        .iter()
        .map(|e| e.header().tag)
        .filter(|tag| tag.0 == 0x0029)
        .collect();
    assert!(!private.is_empty(), "the fixture has a CSA header to strip");
    for tag in private {
        object.remove_element(tag);
    }
    object.put(DataElement::new(
        Tag(0x0019, 0x0010),
        VR::LO,
        PrimitiveValue::from("SIEMENS MR HEADER "),
    ));
    object.put(DataElement::new(
        Tag(0x0019, 0x100A),
        VR::US,
        PrimitiveValue::from(10u16),
    ));
    if let Some(orientation) = orientation {
        object.put(DataElement::new(
            Tag(0x0020, 0x0037),
            VR::DS,
            PrimitiveValue::from(orientation),
        ));
    }
    if explicit {
        object.update_meta(|meta| meta.transfer_syntax = "1.2.840.10008.1.2.1\0".into());
    }
    let path = dir.join(format!("stripped_{t}_{explicit}.dcm"));
    object.write_to_file(&path).unwrap();
    path
}

#[test]
fn a_mosaic_without_its_csa_header_reads_as_dcm2niix_reads_it() {
    // The kind of tests/../shared/inputs/realworld/04_mosaic-csa-stripped: the slice count
    // from (0019,100A), the slice normal the cross product of the orientation's directions.
    let (affine, volumes) = converted("mosaic.nii");
    let dir = tempfile::tempdir().unwrap();
    for explicit in [false, true] {
        for (t, expected) in volumes.iter().enumerate() {
            let path = strip_csa(t, explicit, None, dir.path());
            let stripped = read_volume(&path).unwrap();
            let with_csa = read_volume(&mosaic_file(t)).unwrap();
            assert_eq!(stripped.values, with_csa.values, "explicit VR {explicit}");
            assert_same_affine(&stripped.affine, &with_csa.affine, "stripped vs CSA");
            assert_matches_dcm2niix(&stripped, expected, &affine);
        }
    }
    // Rows going to the patient's anterior: the cross product points to the feet, and is
    // turned to the head as dcm2niix's default normal (0, 0, 1) turns it.
    let path = strip_csa(0, true, Some("1\\0\\0\\0\\-1\\0"), dir.path());
    let flipped = read_volume(&path).unwrap();
    assert!(flipped.affine[2][2] > 0.0, "{:?}", flipped.affine);
    // Without either count the file is refused, naming both places the count can be.
    let mut object = dicom_object::open_file(strip_csa(0, false, None, dir.path())).unwrap();
    object.remove_element(dicom_core::Tag(0x0019, 0x100A));
    let bare = dir.path().join("no_count.dcm");
    object.write_to_file(&bare).unwrap();
    let message = read_volume(&bare).unwrap_err().to_string();
    assert!(
        message.contains("no_count.dcm") && message.contains("(0019,xx0A)"),
        "{message}"
    );
}

/// `<workspace root>/../shared/realdata/<name>`: real recordings kept beside the repository.
/// Absent, the test fails in CI and says it was skipped elsewhere ([`brainrecon_testkit::cannot_run`],
/// the rule every test needing the shared folder follows).
fn realdata(name: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = root.join("../shared/realdata").join(name);
    if dir.is_dir() {
        return Some(dir);
    }
    brainrecon_testkit::cannot_run(
        &format!("the real recordings {name}"),
        &format!("{} is missing", dir.display()),
    );
    None
}

#[test]
fn real_siemens_mosaics_match_dcm2niix_voxel_for_voxel() {
    let Some(dir) = realdata("siemens-mosaic-vd13") else {
        return;
    };
    // Ascending F>>H slices, and interleaved H>>F mosaic numbering (the top-left tile the
    // most superior slice): each volume against dcm2niix's conversion.
    for (series, reference) in [
        ("In/ep2d_Asc_2", "Ref/2_ep2d_Asc.nii"),
        ("In/ep2d_Int_HF_5", "Ref/5_ep2d_Int_HF.nii"),
    ] {
        let mut ours: Vec<DicomVolume> = std::fs::read_dir(dir.join(series))
            .unwrap()
            .map(|e| read_volume(&e.unwrap().path()).unwrap())
            .collect();
        ours.sort_by_key(|v| (v.series.acquisition_number, v.series.instance_number));
        let mut theirs = Vec::new();
        let header = for_each_volume(&dir.join(reference), |_, v| {
            theirs.push(v.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(ours.len(), 6, "{series}");
        assert_eq!(theirs.len(), ours.len(), "{reference}");
        for (volume, expected) in ours.iter().zip(&theirs) {
            assert_eq!(volume.shape, [64, 64, 36], "{series}");
            assert_matches_reference(volume, expected, &header.affine, header.shape);
        }
    }
}
