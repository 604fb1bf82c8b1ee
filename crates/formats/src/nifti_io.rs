//! NIfTI-1 volumes: ROI label masks in, per-voxel maps out.

use crate::error::{DataError, Result};
use ndarray::{Array3, ShapeBuilder};
use nifti::writer::WriterOptions;
use nifti::{IntoNdArray, NiftiHeader, NiftiObject, NiftiType, ReaderOptions};
use std::path::Path;

/// A 3-D volume in (X, Y, Z) order with its voxel-to-world affine.
#[derive(Debug, Clone)]
pub struct Volume {
    /// (X, Y, Z)
    pub shape: [usize; 3],
    /// Row-major 4×4 voxel → scanner (mm) affine.
    pub affine: [[f64; 4]; 4],
    /// Values indexed by [`Volume::index`].
    pub values: Vec<f64>,
}

impl Volume {
    /// Linear index of voxel (x, y, z): x varies fastest, as in a NIfTI file.
    pub fn index(&self, x: usize, y: usize, z: usize) -> usize {
        x + self.shape[0] * (y + self.shape[1] * z)
    }

    pub fn get(&self, x: usize, y: usize, z: usize) -> f64 {
        self.values[self.index(x, y, z)]
    }
}

fn header_affine(header: &NiftiHeader) -> [[f64; 4]; 4] {
    if header.sform_code > 0 {
        let row = |r: [f32; 4]| r.map(|v| v as f64);
        [
            row(header.srow_x),
            row(header.srow_y),
            row(header.srow_z),
            [0.0, 0.0, 0.0, 1.0],
        ]
    } else {
        let p = header.pixdim;
        [
            [p[1] as f64, 0.0, 0.0, 0.0],
            [0.0, p[2] as f64, 0.0, 0.0],
            [0.0, 0.0, p[3] as f64, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    }
}

/// What the NIfTI reader's error means, in words: its I/O errors print as debug text
/// (`Io(Custom { kind: UnexpectedEof, … })`), which names neither the problem nor a fix.
pub fn nifti_words(e: &nifti::NiftiError) -> String {
    match e {
        nifti::NiftiError::Io(io) => io_words(io),
        other => other.to_string(),
    }
}

/// An I/O error met while reading a (possibly gzipped) file, in words.
fn io_words(io: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match io.kind() {
        ErrorKind::UnexpectedEof => {
            "the file ends early: it is truncated (an interrupted download or copy) or still being written".into()
        }
        ErrorKind::InvalidData | ErrorKind::InvalidInput => format!(
            "its compressed data is damaged ({io}); a .nii.gz must be one whole gzip stream"
        ),
        _ => format!("reading it failed: {io}"),
    }
}

/// Decompresses the whole gzip file `path` once, checking its CRC-32 and length: the NIfTI
/// reader stops at the last voxel and never reaches the gzip trailer, so a damaged stream
/// that still inflates would be read as voxels of garbage.
pub(crate) fn verify_gzip(path: &Path) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut stream = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
    std::io::copy(&mut stream, &mut std::io::sink())
        .map(drop)
        .map_err(|e| DataError::format(path, "NIfTI (gzip)", io_words(&e)))
}

/// A format error about the NIfTI file `path`, in words ([`nifti_words`]).
pub fn nifti_error(path: &Path, format: &str, e: &nifti::NiftiError) -> DataError {
    DataError::format(path, format, nifti_words(e))
}

/// The header of a NIfTI-1 file, checked before any data is read: every reader of volumes
/// goes through here. Refused: a rank outside 1–7 or a zero extent, a datatype this reader
/// does not know or whose `bitpix` disagrees with it, an element count that overflows, a
/// `vox_offset` before the header's end, and (uncompressed files) data that would reach past
/// the end of the file.
pub fn checked_header(path: &Path) -> Result<NiftiHeader> {
    crate::error::require_file(path, "a NIfTI-1 file (.nii or .nii.gz)")?;
    let header = NiftiHeader::from_file(path).map_err(|e| nifti_error(path, "NIfTI-1", &e))?;
    let ndim = header.dim[0] as usize;
    let dims = &header.dim[1..=ndim.clamp(1, 7)];
    if !(1..=7).contains(&ndim) || dims.iter().any(|&d| d < 1) {
        return Err(DataError::invalid(
            path,
            "dim",
            "a rank of 1 to 7 and extents ≥ 1",
            format!("{:?}", header.dim),
        ));
    }
    let datatype = header.data_type().map_err(|_| {
        DataError::invalid(
            path,
            "datatype",
            "a NIfTI-1 numeric datatype",
            header.datatype.to_string(),
        )
    })?;
    let element = datatype.size_of();
    if header.bitpix as i64 != 8 * element as i64 {
        return Err(DataError::invalid(
            path,
            "bitpix",
            format!("{} (datatype {datatype:?})", 8 * element),
            header.bitpix.to_string(),
        ));
    }
    // Negative extents were refused above; for .nii.gz the file's length bounds nothing, so
    // the limit is what keeps a header from sizing the decompressed buffer.
    let extents: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
    let bytes = crate::limits::array_bytes(path, "dim", &extents, element as u64)?;
    let offset = header.vox_offset;
    if !(offset.is_finite() && offset >= 348.0) {
        return Err(DataError::invalid(
            path,
            "vox_offset",
            "at least 348 (the header's end)",
            offset.to_string(),
        ));
    }
    let gzipped = path.extension().is_some_and(|e| e == "gz");
    let file_len = std::fs::metadata(path)
        .map_err(|e| DataError::io(path, e))?
        .len();
    if !gzipped && offset as u64 > file_len {
        return Err(DataError::invalid(
            path,
            "vox_offset",
            format!("at most the file's {file_len} bytes"),
            offset.to_string(),
        ));
    }
    if !gzipped && (offset as u64).saturating_add(bytes) > file_len {
        return Err(DataError::invalid(
            path,
            "data",
            format!("{bytes} bytes from vox_offset {offset} for dim {dims:?}"),
            format!("a file of {file_len} bytes (truncated?)"),
        ));
    }
    Ok(header)
}

/// Reads a 3-D NIfTI volume (a trailing singleton 4th dimension is allowed).
pub fn read_volume(path: &Path) -> Result<Volume> {
    let checked = checked_header(path)?;
    // Read as f64: 8 bytes a voxel in memory, whatever the file's datatype.
    let voxels: Vec<u64> = checked.dim[1..=checked.dim[0] as usize]
        .iter()
        .map(|&d| d as u64)
        .collect();
    crate::limits::array_bytes(path, "dim", &voxels, 8)?;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
    {
        verify_gzip(path)?;
    }
    let object = ReaderOptions::new()
        .read_file(path)
        .map_err(|e| nifti_error(path, "NIfTI", &e))?;
    let header = object.header().clone();
    let dims = header.dim;
    let ndim = dims[0] as usize;
    if !(3..=4).contains(&ndim) || (ndim == 4 && dims[4] != 1) {
        return Err(DataError::invalid(
            path,
            "dim",
            "a 3-D volume (X, Y, Z)",
            format!("{:?}", &dims[1..=ndim.min(7)]),
        ));
    }
    let shape = [dims[1] as usize, dims[2] as usize, dims[3] as usize];
    let array = object
        .into_volume()
        .into_ndarray::<f64>()
        .map_err(|e| nifti_error(path, "NIfTI", &e))?;
    let mut values = vec![0.0; shape.iter().product()];
    for z in 0..shape[2] {
        for y in 0..shape[1] {
            for x in 0..shape[0] {
                let v = if ndim == 4 {
                    array[[x, y, z, 0]]
                } else {
                    array[[x, y, z]]
                };
                values[x + shape[0] * (y + shape[1] * z)] = v;
            }
        }
    }
    Ok(Volume {
        shape,
        affine: finite_affine(path, &header)?,
        values,
    })
}

/// The voxel-to-world affine, refused when it holds NaN or infinity: it is copied into
/// outputs (subject.json would hold `null` and could not be read back).
fn finite_affine(path: &Path, header: &NiftiHeader) -> Result<[[f64; 4]; 4]> {
    let affine = header_affine(header);
    if affine.iter().flatten().all(|v| v.is_finite()) {
        return Ok(affine);
    }
    let field = if header.sform_code > 0 {
        "srow_x, srow_y, srow_z (the sform affine)"
    } else {
        "pixdim (no sform affine)"
    };
    Err(DataError::invalid(
        path,
        field,
        "finite numbers",
        format!("{:?}", &affine[..3]),
    ))
}

fn header_with_affine(affine: &[[f64; 4]; 4]) -> NiftiHeader {
    let mut header = NiftiHeader::default();
    let row = |r: [f64; 4]| r.map(|v| v as f32);
    header.srow_x = row(affine[0]);
    header.srow_y = row(affine[1]);
    header.srow_z = row(affine[2]);
    header.sform_code = 1;
    header.qform_code = 0;
    for axis in 0..3 {
        let column_norm = (0..3).map(|r| affine[r][axis].powi(2)).sum::<f64>().sqrt();
        header.pixdim[axis + 1] = column_norm as f32;
    }
    header
}

fn to_fortran<T: Copy>(shape: [usize; 3], values: &[T]) -> Array3<T> {
    Array3::from_shape_vec(shape.f(), values.to_vec()).expect("volume length matches shape")
}

fn write_typed<T: bytemuck::Pod>(
    path: &Path,
    shape: [usize; 3],
    affine: &[[f64; 4]; 4],
    values: &[T],
    datatype: NiftiType,
) -> Result<()> {
    assert_eq!(
        values.len(),
        shape.iter().product::<usize>(),
        "volume length"
    );
    let header = header_with_affine(affine);
    let array = to_fortran(shape, values);
    brainrecon_core::fs::write_atomic_via_path(path, "NIfTI (writing)", |tmp| {
        WriterOptions::new(tmp)
            .reference_header(&header)
            .write_nifti_with_type(&array, datatype)
    })
}

/// Writes a float32 map; `values` are indexed x-fastest as [`Volume::index`].
pub fn write_f32(
    path: &Path,
    shape: [usize; 3],
    affine: &[[f64; 4]; 4],
    values: &[f32],
) -> Result<()> {
    write_typed(path, shape, affine, values, NiftiType::Float32)
}

/// Writes an int16 label volume (as NSD ships its ROI masks).
pub fn write_i16(
    path: &Path,
    shape: [usize; 3],
    affine: &[[f64; 4]; 4],
    values: &[i16],
) -> Result<()> {
    write_typed(path, shape, affine, values, NiftiType::Int16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_or_damaged_gzip_is_named_in_words() {
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("whole.nii.gz");
        let eye = [
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let values: Vec<f32> = (0..4096).map(|i| (i as f32 * 0.37).sin()).collect();
        write_f32(&whole, [16, 16, 16], &eye, &values).unwrap();
        let bytes = std::fs::read(&whole).unwrap();
        let cut = dir.path().join("cut.nii.gz");
        let damaged = dir.path().join("damaged.nii.gz");
        let mut flipped = bytes.clone();
        let middle = bytes.len() / 2;
        flipped[middle..middle + 64]
            .iter_mut()
            .for_each(|b| *b ^= 0x5a);
        for (path, content, words) in [
            (&cut, &bytes[..bytes.len() / 2], "truncated"),
            (&cut, &bytes[..200], "truncated"),
            (&damaged, &flipped[..], "damaged"),
        ] {
            std::fs::write(path, content).unwrap();
            let text = read_volume(path).unwrap_err().to_string();
            let name = path.file_name().unwrap().to_str().unwrap();
            assert!(text.contains(name) && text.contains(words), "{text}");
            assert!(
                !text.contains("Custom {") && !text.contains("kind:"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_gzipped_header_claiming_more_than_the_array_limit_is_refused() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("betas.nii");
        let eye = [
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        write_f32(&plain, [2, 2, 2], &eye, &[0.0; 8]).unwrap();
        let mut bytes = std::fs::read(&plain).unwrap();
        // dim[1..=3] (little-endian u16 from byte 42): 30000³ float32 = 108 TB.
        for axis in 0..3 {
            bytes[42 + 2 * axis..44 + 2 * axis].copy_from_slice(&30_000u16.to_le_bytes());
        }
        let path = dir.path().join("betas.nii.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&bytes).unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        for err in [
            checked_header(&path).unwrap_err(),
            read_volume(&path).unwrap_err(),
        ] {
            let text = err.to_string();
            assert!(
                text.contains("betas.nii.gz") && text.contains("dim"),
                "{text}"
            );
            assert!(text.contains("BRAINRECON_MAX_ARRAY_BYTES"), "{text}");
        }
    }

    #[test]
    fn a_nan_affine_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mask.nii.gz");
        let mut affine = [[0.0; 4]; 4];
        (0..4).for_each(|i| affine[i][i] = 1.0);
        affine[1][3] = f64::NAN;
        write_i16(&path, [2, 2, 2], &affine, &[1; 8]).unwrap();
        let err = read_volume(&path).unwrap_err().to_string();
        assert!(err.contains("mask.nii.gz") && err.contains("srow"), "{err}");
    }

    #[test]
    fn label_volume_round_trips_with_affine() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mask.nii.gz");
        let shape = [4, 3, 2];
        let values: Vec<i16> = (0..24).map(|i| (i % 5) as i16 - 1).collect();
        let affine = [
            [1.8, 0.0, 0.0, -10.0],
            [0.0, 1.8, 0.0, -20.0],
            [0.0, 0.0, 1.8, 5.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        write_i16(&path, shape, &affine, &values).unwrap();
        let volume = read_volume(&path).unwrap();
        assert_eq!(volume.shape, shape);
        assert_eq!(volume.get(3, 2, 1), values[3 + 4 * (2 + 3)] as f64);
        assert!((volume.affine[0][3] + 10.0).abs() < 1e-6);
        assert!((volume.affine[2][2] - 1.8).abs() < 1e-6);
    }
}
