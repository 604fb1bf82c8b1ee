//! Real files that PyPI packages ship (nibabel's test data: a 4-D EPI, Siemens and Philips
//! DICOM, GIFTI from Caret, FreeSurfer and AFNI; nitime's fMRI run), copied by
//! tools/fixtures/packaged_real_data.py into tests/fixtures/packaged/ with nibabel's reading of
//! each in expected.json. Each is read here with brainrecon's own readers: values equal
//! (CRC-32 of every value, plus sampled voxels that name the first one to differ), affines
//! within 1e-4 mm; DICOM compared in world space, since nibabel indexes (row, column, slice)
//! in LPS and brainrecon (column, row, slice) in RAS. Files a reader does not support must be
//! refused with an error naming the file, never a panic.
use brainrecon_formats::dicom::{self, mosaic::MosaicHeader, slices, DicomFile, DicomVolume};
use brainrecon_formats::gifti::read_gifti;
use brainrecon_formats::nifti4d::{for_each_volume, read_header};
use brainrecon_formats::nifti_io;
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/packaged")
        .join(name)
}

fn expected(name: &str) -> &'static Value {
    static ALL: OnceLock<Value> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        let text = std::fs::read_to_string(fixture("expected.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    });
    &all[name]
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    f64s(v).into_iter().map(|x| x as usize).collect()
}

fn matrix(v: &Value) -> [[f64; 4]; 4] {
    let rows: Vec<Vec<f64>> = v.as_array().unwrap().iter().map(f64s).collect();
    std::array::from_fn(|r| std::array::from_fn(|c| rows[r][c]))
}

fn crc32(bytes: impl Iterator<Item = [u8; 8]>, width: usize) -> u32 {
    let mut crc = flate2::Crc::new();
    for b in bytes {
        crc.update(&b[..width]);
    }
    crc.sum()
}

/// CRC-32 of values as little-endian float32, as the script computes it with zlib.
fn crc32_f32(values: impl Iterator<Item = f32>) -> u32 {
    crc32(
        values.map(|v| {
            let mut b = [0; 8];
            b[..4].copy_from_slice(&v.to_le_bytes());
            b
        }),
        4,
    )
}

fn crc32_f64(values: impl Iterator<Item = f64>) -> u32 {
    crc32(values.map(f64::to_le_bytes), 8)
}

/// Entry by entry within `tolerance` (mm).
fn assert_affine(ours: &[[f64; 4]; 4], theirs: &[[f64; 4]; 4], tolerance: f64, what: &str) {
    for r in 0..4 {
        for c in 0..4 {
            assert!(
                (ours[r][c] - theirs[r][c]).abs() < tolerance,
                "{what}: affine[{r}][{c}] brainrecon {} nibabel {}\nours {ours:?}\ntheirs {theirs:?}",
                ours[r][c],
                theirs[r][c]
            );
        }
    }
}

/// Sums agree to rounding: numpy adds pairwise, this test in order.
fn assert_sum(ours: f64, theirs: &Value, what: &str) {
    let theirs = theirs.as_f64().unwrap();
    assert!(
        (ours - theirs).abs() <= 1e-12 * theirs.abs().max(1.0),
        "{what}: sum brainrecon {ours} nibabel {theirs}"
    );
}

fn assert_refused_naming(err: brainrecon_formats::DataError, path: &Path, words: &[&str]) {
    let message = err.to_string();
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(message.contains(name), "the error names {name}: {message}");
    for w in words {
        assert!(message.contains(w), "the error says {w:?}: {message}");
    }
}

// ---------------------------------------------------------------- NIfTI

fn check_nifti(name: &str) {
    let e = expected(name);
    let path = fixture(name);
    let shape = usizes(&e["shape"]);
    let header = read_header(&path).unwrap();
    assert_eq!(header.shape.to_vec(), shape[..3], "{name}: shape");
    assert_eq!(
        header.n_volumes,
        shape.get(3).copied().unwrap_or(1),
        "{name}: volumes"
    );
    assert_affine(&header.affine, &matrix(&e["affine"]), 1e-4, name);

    let mut volumes = Vec::new();
    for_each_volume(&path, |_, v| {
        volumes.push(v.to_vec());
        Ok(())
    })
    .unwrap();
    let [nx, ny, _] = header.shape;
    // Samples first: a mismatch names the voxel.
    for s in e["samples"].as_array().unwrap() {
        let i = usizes(&s["index"]);
        let t = i.get(3).copied().unwrap_or(0);
        let ours = volumes[t][i[0] + nx * (i[1] + ny * i[2])] as f32;
        assert_eq!(
            ours as f64,
            s["value"].as_f64().unwrap(),
            "{name}: voxel {i:?}"
        );
    }
    let theirs = e["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), theirs.len(), "{name}: volumes read");
    for (t, (ours, theirs)) in volumes.iter().zip(theirs).enumerate() {
        // nibabel's sum is of the float32 values
        let sum: f64 = ours.iter().map(|&v| v as f32 as f64).sum();
        assert_sum(sum, &theirs["sum"], &format!("{name}: volume {t}"));
        assert_eq!(
            crc32_f32(ours.iter().map(|&v| v as f32)) as u64,
            theirs["crc32_f32"].as_u64().unwrap(),
            "{name}: volume {t} values"
        );
    }

    // The 3-D reader: the same volume for a 3-D file, a clear refusal of a 4-D one.
    match nifti_io::read_volume(&path) {
        Ok(volume) if shape.len() == 3 => {
            assert_eq!(volume.values, volumes[0], "{name}: read_volume");
            assert_affine(&volume.affine, &header.affine, 1e-4, name);
        }
        Ok(_) => panic!("{name}: read_volume read a 4-D file"),
        Err(err) if shape.len() == 4 => assert_refused_naming(err, &path, &["dim"]),
        Err(err) => panic!("{name}: {err}"),
    }
}

#[test]
fn nibabel_example4d_epi_reads_as_nibabel_reads_it() {
    check_nifti("example4d.nii.gz");
}

#[test]
fn nibabel_functional_and_anatomical_read_as_nibabel_reads_them() {
    check_nifti("functional.nii");
    // big-endian int16
    check_nifti("anatomical.nii");
}

#[test]
fn nitime_fmri_run_reads_as_nibabel_reads_it() {
    check_nifti("fmri1.nii.gz");
}

// ---------------------------------------------------------------- DICOM

/// The file, inflated into `dir` when it is stored gzipped.
fn dicom_file(name: &str, dir: &Path) -> PathBuf {
    let path = fixture(name);
    let Some(stem) = name.strip_suffix(".gz") else {
        return path;
    };
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    let out = dir.join(stem);
    std::fs::write(&out, raw).unwrap();
    out
}

fn invert(a: &[[f64; 4]; 4]) -> [[f64; 4]; 4] {
    // Gauss-Jordan with partial pivoting (the test's own, not the reader's geometry).
    let mut a = *a;
    let mut inv: [[f64; 4]; 4] =
        std::array::from_fn(|r| std::array::from_fn(|c| (r == c) as u8 as f64));
    for col in 0..4 {
        let p = (col..4)
            .max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))
            .unwrap();
        a.swap(col, p);
        inv.swap(col, p);
        let d = a[col][col];
        for k in 0..4 {
            a[col][k] /= d;
            inv[col][k] /= d;
        }
        for r in (0..4).filter(|&r| r != col) {
            let f = a[r][col];
            for k in 0..4 {
                a[r][k] -= f * a[col][k];
                inv[r][k] -= f * inv[col][k];
            }
        }
    }
    inv
}

fn mul(a: &[[f64; 4]; 4], b: &[[f64; 4]; 4]) -> [[f64; 4]; 4] {
    std::array::from_fn(|r| std::array::from_fn(|c| (0..4).map(|k| a[r][k] * b[k][c]).sum()))
}

/// nibabel's voxel (its index order) → brainrecon's, found from the two affines: a signed
/// permutation of the axes plus an integer offset, so that both place every voxel at the same
/// world position (1e-4 mm on the affine). Panics, naming the file, when no such map exists.
struct IndexMap {
    /// ours[axis[i]] = sign[i] · theirs[i] + offset[axis[i]]
    axis: [usize; 3],
    sign: [i64; 3],
    offset: [i64; 3],
    our_shape: [usize; 3],
}

impl IndexMap {
    fn new(
        what: &str,
        ours: &[[f64; 4]; 4],
        our_shape: [usize; 3],
        nib_lps: &[[f64; 4]; 4],
        nib_shape: [usize; 3],
    ) -> IndexMap {
        // LPS → RAS: x and y negated.
        let mut nib_ras = *nib_lps;
        for row in nib_ras.iter_mut().take(2) {
            for v in row.iter_mut() {
                *v = -*v;
            }
        }
        let m = mul(&invert(ours), &nib_ras);
        let rounded: [[f64; 4]; 4] = std::array::from_fn(|r| m[r].map(f64::round));
        // 1e-3 mm, not 1e-4: brainrecon makes ImageOrientationPatient's direction cosines unit
        // vectors, nibabel takes the text as written. In the DWI mosaic the column direction
        // (0, 0.999986, -0.005236) has length 0.9999997, which moves the first voxel, 384
        // pixels in from the mosaic's corner, by 2.0e-4 mm.
        assert_affine(
            &mul(ours, &rounded),
            &nib_ras,
            1e-3,
            &format!("{what} (world space)"),
        );
        let mut axis = [usize::MAX; 3];
        let mut sign = [0; 3];
        for i in 0..3 {
            for r in 0..3 {
                if rounded[r][i] != 0.0 {
                    assert_eq!(axis[i], usize::MAX, "{what}: not a permutation {m:?}");
                    axis[i] = r;
                    sign[i] = rounded[r][i] as i64;
                }
            }
            assert!(
                sign[i].abs() == 1 && axis[i] < 3,
                "{what}: not a permutation {m:?}"
            );
            assert_eq!(
                our_shape[axis[i]], nib_shape[i],
                "{what}: nibabel's axis {i} is our axis {}",
                axis[i]
            );
        }
        let offset = [0, 1, 2].map(|r| rounded[r][3] as i64);
        let map = IndexMap {
            axis,
            sign,
            offset,
            our_shape,
        };
        // Both grids cover the same voxels: nibabel's corners land inside ours.
        for corner in [[0, 0, 0], nib_shape.map(|n| n - 1)] {
            let o = map.ours(corner);
            assert!(
                (0..3).all(|a| o[a] < our_shape[a]),
                "{what}: nibabel's voxel {corner:?} is outside our grid"
            );
        }
        map
    }

    fn ours(&self, theirs: [usize; 3]) -> [usize; 3] {
        let mut o = [0; 3];
        for i in 0..3 {
            o[self.axis[i]] =
                (self.sign[i] * theirs[i] as i64 + self.offset[self.axis[i]]) as usize;
        }
        o
    }

    fn linear(&self, theirs: [usize; 3]) -> usize {
        let o = self.ours(theirs);
        o[0] + self.our_shape[0] * (o[1] + self.our_shape[1] * o[2])
    }
}

/// nibabel's shape as three axes (a single slice is 2-D there).
fn nib_shape(e: &Value) -> [usize; 3] {
    let s = usizes(&e["shape"]);
    [s[0], s[1], s.get(2).copied().unwrap_or(1)]
}

/// Values and geometry of `volume` against nibabel's reading of `name`, in world space.
fn check_dicom_volume(name: &str, volume: &DicomVolume) {
    let e = expected(name);
    let shape = nib_shape(e);
    let map = IndexMap::new(
        name,
        &volume.affine,
        volume.shape,
        &matrix(&e["affine_lps"]),
        shape,
    );
    for s in e["samples"].as_array().unwrap() {
        let i = usizes(&s["index"]);
        let voxel = [i[0], i[1], i.get(2).copied().unwrap_or(0)];
        assert_eq!(
            volume.values[map.linear(voxel)] as f64,
            s["value"].as_f64().unwrap(),
            "{name}: nibabel's voxel {voxel:?}"
        );
    }
    // Every value, in nibabel's order (its first index fastest), a row at a time: this crate
    // is built unoptimised for tests, and the Philips volume has 11.5 million voxels.
    assert_eq!(
        shape.iter().product::<usize>(),
        volume.values.len(),
        "{name}: voxels"
    );
    let step = (map.linear([1.min(shape[0] - 1), 0, 0]) as isize) - map.linear([0, 0, 0]) as isize;
    let mut crc = flate2::Crc::new();
    let mut sum = 0.0;
    let mut row = Vec::with_capacity(4 * shape[0]);
    for k in 0..shape[2] {
        for j in 0..shape[1] {
            let start = map.linear([0, j, k]) as isize;
            row.clear();
            for i in 0..shape[0] as isize {
                let v = volume.values[(start + i * step) as usize];
                sum += v as f64;
                row.extend_from_slice(&v.to_le_bytes());
            }
            crc.update(&row);
        }
    }
    assert_sum(sum, &e["sum"], name);
    assert_eq!(
        crc.sum() as u64,
        e["crc32_f32"].as_u64().unwrap(),
        "{name}: values"
    );
}

#[test]
fn siemens_dwi_mosaic_matches_nibabel_in_world_space() {
    let dir = tempfile::tempdir().unwrap();
    let name = "siemens_dwi_1000.dcm.gz";
    let volume = dicom::read_volume(&dicom_file(name, dir.path())).unwrap();
    assert_eq!(volume.shape, [128, 128, 48]);
    check_dicom_volume(name, &volume);
}

#[test]
fn philips_enhanced_multiframe_matches_nibabel_in_world_space() {
    let dir = tempfile::tempdir().unwrap();
    let name = "philips_mprage.dcm.gz";
    let volume = dicom::read_volume(&dicom_file(name, dir.path())).unwrap();
    assert_eq!(volume.shape, [256, 256, 176]);
    check_dicom_volume(name, &volume);
}

#[test]
fn a_single_slice_with_a_decimal_rescale_matches_nibabel() {
    let name = "decimal_rescale.dcm";
    let path = fixture(name);
    let slice = match dicom::read_file(&path).unwrap() {
        DicomFile::Slice(slice) => slice,
        DicomFile::Volume(_) => panic!("{name} is one slice"),
    };
    let volume = slices::stack_files(&[(path, slice)]).unwrap();
    check_dicom_volume(name, &volume);
}

#[test]
fn a_jpeg2000_slice_is_refused_naming_the_file() {
    // nibabel decodes it (pydicom with Pillow); the real-time reader takes uncompressed data.
    let path = fixture("slicethickness_empty_string.dcm");
    assert!(expected("slicethickness_empty_string.dcm")["crc32_f32"].is_u64());
    let err = dicom::read_file(&path).expect_err("JPEG 2000 is not read");
    assert_refused_naming(err, &path, &["1.2.840.10008.1.2.4.90"]);
}

#[test]
fn a_mosaic_shrunk_below_its_tiles_is_refused_as_nibabel_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let name = "0.dcm.gz";
    assert!(expected(name)["nibabel_error"].is_string());
    let path = dicom_file(name, dir.path());
    let err = dicom::read_volume(&path).expect_err("256 × 256 pixels hold no 7 × 7 tiles");
    assert_refused_naming(err, &path, &["Rows", "256 × 256"]);
}

#[test]
fn a_mosaic_without_pixel_data_is_refused_and_its_geometry_matches_nibabel() {
    let name = "csa_slice_norm.dcm";
    let path = fixture(name);
    let err = dicom::read_volume(&path).expect_err("no PixelData");
    assert_refused_naming(err, &path, &["PixelData"]);
    // The geometry alone (from the CSA header's slice normal): nibabel's affine and grid.
    let header = MosaicHeader::read(&path, &dicom::open(&path).unwrap()).unwrap();
    let e = expected(name);
    IndexMap::new(
        name,
        &header.affine(),
        [header.columns, header.rows, header.slices],
        &matrix(&e["affine_lps"]),
        nib_shape(e),
    );
}

// ---------------------------------------------------------------- GIFTI

fn pairs(v: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn sorted(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
    v.sort();
    v
}

fn check_gifti(name: &str) {
    let e = expected(name);
    let g = read_gifti(&fixture(name)).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(
        sorted(g.meta.clone()),
        pairs(&e["meta"]),
        "{name}: metadata"
    );
    let labels = e["labels"].as_array().unwrap();
    assert_eq!(g.labels.len(), labels.len(), "{name}: labels");
    for (ours, theirs) in g.labels.iter().zip(labels) {
        assert_eq!(
            ours.key,
            theirs["key"].as_i64().unwrap(),
            "{name}: label key"
        );
        assert_eq!(ours.name, theirs["name"].as_str().unwrap(), "{name}: label");
        for (c, t) in ours.rgba.iter().zip(theirs["rgba"].as_array().unwrap()) {
            if let Some(t) = t.as_f64() {
                assert!((c - t).abs() < 1e-9, "{name}: {} colour", ours.name);
            }
        }
    }
    let arrays = e["arrays"].as_array().unwrap();
    assert_eq!(g.arrays.len(), arrays.len(), "{name}: arrays");
    for (k, (ours, theirs)) in g.arrays.iter().zip(arrays).enumerate() {
        let what = format!("{name}: array {k}");
        assert_eq!(ours.intent, theirs["intent"].as_str().unwrap(), "{what}");
        assert_eq!(
            ours.data_type,
            theirs["data_type"].as_str().unwrap(),
            "{what}"
        );
        assert_eq!(ours.dims, usizes(&theirs["dims"]), "{what}: dims");
        assert_eq!(sorted(ours.meta.clone()), pairs(&theirs["meta"]), "{what}");
        // nibabel gives an array without a CoordinateSystemTransformMatrix the identity.
        let identity: [[f64; 4]; 4] =
            std::array::from_fn(|r| std::array::from_fn(|c| (r == c) as u8 as f64));
        let transform = ours.transform.unwrap_or(identity);
        assert_affine(&transform, &matrix(&theirs["transform"]), 1e-9, &what);
        // Float32 arrays hold float32 values, ASCII ones too, as nibabel reads them.
        let data = ours.data.clone();
        for s in theirs["samples"].as_array().unwrap() {
            let i = s[0].as_u64().unwrap() as usize;
            assert_eq!(data[i], s[1].as_f64().unwrap(), "{what}: value {i}");
        }
        if let Some(values) = theirs["values"].as_array() {
            let values: Vec<f64> = values.iter().map(|v| v.as_f64().unwrap()).collect();
            assert_eq!(data, values, "{what}: values");
        }
        assert_eq!(
            crc32_f64(data.iter().copied()) as u64,
            theirs["crc32_f64"].as_u64().unwrap(),
            "{what}: values"
        );
    }
}

#[test]
fn nibabel_gifti_files_read_as_nibabel_reads_them() {
    // Caret ASCII (nested and flat), AFNI's func time series, FreeSurfer's labels with their
    // table.
    for name in [
        "ascii.gii",
        "ascii_flat_data.gii",
        "task.func.gii",
        "rh.aparc.annot.gii",
    ] {
        check_gifti(name);
    }
}

#[test]
fn gifticlib_spellings_of_encoding_and_endian_read_as_nibabel_reads_them() {
    check_gifti("base64bin.gii");
}

#[test]
fn external_gifti_data_read_as_nibabel_reads_them() {
    assert_eq!(
        expected("external.gii")["arrays"].as_array().unwrap().len(),
        2
    );
    check_gifti("external.gii");
    // Its data file cut short is refused, naming it and the array's offset.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("external.gii"), dir.path().join("external.gii")).unwrap();
    let data = std::fs::read(fixture("external.dat")).unwrap();
    std::fs::write(dir.path().join("external.dat"), &data[..data.len() - 1]).unwrap();
    let path = dir.path().join("external.gii");
    let err = read_gifti(&path).expect_err("a cut data file");
    assert_refused_naming(
        err,
        &dir.path().join("external.dat"),
        &["ExternalFileOffset"],
    );
}
