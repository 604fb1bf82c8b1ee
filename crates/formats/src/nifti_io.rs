//! NIfTI-1 volumes: ROI label masks in, per-voxel maps out, and what every NIfTI-1 reader of
//! the crate shares: the header check ([`checked_header`]), the datatypes read
//! ([`DATATYPES`]), the scaling ([`effective_scaling`]), the affine ([`header_affine`]) and the
//! decoding of voxels ([`DataReader`]). The `nifti` crate parses headers and writes files; it
//! never decodes data here, so a header it would misread cannot reach it.

use crate::error::{DataError, Result};
use ndarray::{Array3, ShapeBuilder};
use nifti::writer::WriterOptions;
use nifti::{Endianness, NiftiHeader, NiftiType};
use std::io::{Read, Seek};
use std::path::Path;

/// A 3-D volume in (X, Y, Z) order with its voxel-to-world affine.
#[derive(Debug, Clone)]
pub struct Volume {
    /// (X, Y, Z)
    pub shape: [usize; 3],
    /// Row-major 4×4 voxel → scanner (mm) affine ([`header_affine`]).
    pub affine: [[f64; 4]; 4],
    /// Values indexed by [`Volume::index`], scaled ([`effective_scaling`]).
    pub values: Vec<f64>,
}

impl Volume {
    /// Linear index of voxel (x, y, z): x varies fastest, as in a NIfTI file.
    pub fn index(&self, x: usize, y: usize, z: usize) -> usize {
        x + self.shape[0] * (y + self.shape[1] * z)
    }

    /// The scaled value at voxel (x, y, z). Panics when out of range.
    pub fn get(&self, x: usize, y: usize, z: usize) -> f64 {
        self.values[self.index(x, y, z)]
    }
}

/// A NIfTI datatype the readers decode: real scalars, as nibabel's `get_fdata` reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datatype {
    /// The header's `datatype` code.
    pub code: i16,
    /// NIfTI's name of it (`uint8`, `float32`, ...).
    pub name: &'static str,
    /// Bytes per value (`bitpix` / 8).
    pub bytes: usize,
}

/// Every datatype the NIfTI readers (NIfTI-1 and CIFTI's NIfTI-2) read. The others NIfTI
/// lists (binary 1, complex 32/1792/2048, RGB 128, RGBA 2304, float128 1536) are refused.
pub const DATATYPES: [Datatype; 10] = [
    Datatype {
        code: 2,
        name: "uint8",
        bytes: 1,
    },
    Datatype {
        code: 4,
        name: "int16",
        bytes: 2,
    },
    Datatype {
        code: 8,
        name: "int32",
        bytes: 4,
    },
    Datatype {
        code: 16,
        name: "float32",
        bytes: 4,
    },
    Datatype {
        code: 64,
        name: "float64",
        bytes: 8,
    },
    Datatype {
        code: 256,
        name: "int8",
        bytes: 1,
    },
    Datatype {
        code: 512,
        name: "uint16",
        bytes: 2,
    },
    Datatype {
        code: 768,
        name: "uint32",
        bytes: 4,
    },
    Datatype {
        code: 1024,
        name: "int64",
        bytes: 8,
    },
    Datatype {
        code: 1280,
        name: "uint64",
        bytes: 8,
    },
];

impl Datatype {
    /// The datatype of `code`, or an error naming `path`'s `datatype` field and the codes read.
    pub fn of(path: &Path, code: i16) -> Result<Datatype> {
        DATATYPES
            .iter()
            .find(|d| d.code == code)
            .copied()
            .ok_or_else(|| {
                let known: Vec<String> = DATATYPES
                    .iter()
                    .map(|d| format!("{} {}", d.code, d.name))
                    .collect();
                let found = match code {
                    1 => "1 (binary)".to_string(),
                    32 | 1792 | 2048 => format!("{code} (complex)"),
                    128 => "128 (RGB24)".to_string(),
                    2304 => "2304 (RGBA32)".to_string(),
                    1536 => "1536 (float128)".to_string(),
                    _ => format!("{code} (not a datatype brainrecon reads)"),
                };
                DataError::invalid(
                    path,
                    "datatype",
                    format!("a real scalar datatype: {}", known.join(", ")),
                    found,
                )
            })
    }

    /// Appends the values stored in `raw` (whole values, in the file's byte order; `big` for
    /// big-endian) to `out`, as `stored · slope + inter` when `scaling` is not (1, 0).
    pub fn decode_into(&self, raw: &[u8], big: bool, scaling: (f64, f64), out: &mut Vec<f64>) {
        let (slope, inter) = scaling;
        let unscaled = slope == 1.0 && inter == 0.0;
        macro_rules! decode {
            ($t:ty, $n:literal) => {
                out.extend(raw.chunks_exact($n).map(|c| {
                    let b: [u8; $n] = c.try_into().expect("chunks_exact");
                    let v = if big {
                        <$t>::from_be_bytes(b)
                    } else {
                        <$t>::from_le_bytes(b)
                    } as f64;
                    if unscaled {
                        v
                    } else {
                        v * slope + inter
                    }
                }))
            };
        }
        match self.code {
            2 => decode!(u8, 1),
            4 => decode!(i16, 2),
            8 => decode!(i32, 4),
            16 => decode!(f32, 4),
            64 => decode!(f64, 8),
            256 => decode!(i8, 1),
            512 => decode!(u16, 2),
            768 => decode!(u32, 4),
            1024 => decode!(i64, 8),
            _ => decode!(u64, 8),
        }
    }
}

/// The `(slope, inter)` a reader applies (`value = stored · slope + inter`), decided as nibabel
/// and the NIfTI standard do: a `scl_slope` of 0, NaN or ±∞ means no scaling, (1, 0), whatever
/// `scl_inter` holds (fMRIPrep 20.2.x wrote masks with both NaN). Errors: a finite non-zero
/// slope with a non-finite intercept (nibabel refuses it too), naming `scl_inter` of `path`.
/// Shared by the NIfTI-1 readers and CIFTI's NIfTI-2 reader (hence f64 arguments).
pub fn effective_scaling(path: &Path, slope: f64, inter: f64) -> Result<(f64, f64)> {
    if slope == 0.0 || !slope.is_finite() {
        return Ok((1.0, 0.0));
    }
    if !inter.is_finite() {
        return Err(DataError::invalid(
            path,
            "scl_inter",
            format!("a finite intercept (scl_slope is {slope})"),
            inter.to_string(),
        ));
    }
    Ok((slope, inter))
}

/// The voxel → world affine (row-major 4×4, mm) of a NIfTI-1 header, chosen as nibabel's
/// `get_best_affine`: the sform (`srow_*`) when `sform_code` ≠ 0, else the qform (quaternion,
/// `qoffset_*`, `pixdim`) when `qform_code` ≠ 0, else nibabel's base affine: voxel sizes on
/// the diagonal, x negated, and the grid's centre voxel at the origin. `pixdim[1..=3]` are
/// fixed as nibabel does on load (0 → 1, negative → absolute), `qfac` is −1 only when
/// `pixdim[0]` is −1. Errors name the fields used: a non-unit quaternion, or a non-finite
/// entry (the affine is copied into outputs, where NaN would not read back).
pub fn header_affine(path: &Path, h: &NiftiHeader) -> Result<[[f64; 4]; 4]> {
    let zooms = [1, 2, 3].map(|i| match h.pixdim[i] as f64 {
        0.0 => 1.0,
        z => z.abs(),
    });
    let (affine, field) = if h.sform_code != 0 {
        let row = |r: [f32; 4]| r.map(f64::from);
        let rows = [row(h.srow_x), row(h.srow_y), row(h.srow_z)];
        let field = format!("srow_x, srow_y, srow_z (sform_code {})", h.sform_code);
        (with_last_row(rows), field)
    } else if h.qform_code != 0 {
        let field = format!(
            "quatern_b/c/d, qoffset_x/y/z, pixdim (qform_code {}, sform_code 0)",
            h.qform_code
        );
        let (b, c, d) = (h.quatern_b as f64, h.quatern_c as f64, h.quatern_d as f64);
        let w2 = 1.0 - (b * b + c * c + d * d);
        // nibabel's tolerance for rounding of the stored float32 quaternion
        if w2 < -3.0 * f32::EPSILON as f64 {
            return Err(DataError::invalid(
                path,
                field,
                "a unit quaternion (quatern_b² + quatern_c² + quatern_d² ≤ 1)",
                format!("[{b}, {c}, {d}]"),
            ));
        }
        let a = w2.max(0.0).sqrt();
        let r = [
            [
                a * a + b * b - c * c - d * d,
                2.0 * (b * c - a * d),
                2.0 * (b * d + a * c),
            ],
            [
                2.0 * (b * c + a * d),
                a * a + c * c - b * b - d * d,
                2.0 * (c * d - a * b),
            ],
            [
                2.0 * (b * d - a * c),
                2.0 * (c * d + a * b),
                a * a + d * d - b * b - c * c,
            ],
        ];
        let qfac = if h.pixdim[0] == -1.0 { -1.0 } else { 1.0 };
        let scale = [zooms[0], zooms[1], qfac * zooms[2]];
        let offset = [h.quatern_x, h.quatern_y, h.quatern_z].map(f64::from);
        let rows = [0, 1, 2].map(|i| {
            [
                r[i][0] * scale[0],
                r[i][1] * scale[1],
                r[i][2] * scale[2],
                offset[i],
            ]
        });
        (with_last_row(rows), field)
    } else {
        let field = "pixdim (sform_code and qform_code 0)".to_string();
        let ndim = (h.dim[0] as usize).clamp(1, 7);
        let mut rows = [[0.0; 4]; 3];
        for (i, row) in rows.iter_mut().enumerate() {
            // axes past the rank count as one voxel of 1 mm, as in nibabel
            let (n, zoom) = if i < ndim {
                (h.dim[i + 1] as f64, zooms[i])
            } else {
                (1.0, 1.0)
            };
            let zoom = if i == 0 { -zoom } else { zoom };
            row[i] = zoom;
            row[3] = -(n - 1.0) / 2.0 * zoom;
        }
        (with_last_row(rows), field)
    };
    if affine.iter().flatten().all(|v| v.is_finite()) {
        return Ok(affine);
    }
    Err(DataError::invalid(
        path,
        field,
        "finite numbers",
        format!("{:?}", &affine[..3]),
    ))
}

fn with_last_row(rows: [[f64; 4]; 3]) -> [[f64; 4]; 4] {
    [rows[0], rows[1], rows[2], [0.0, 0.0, 0.0, 1.0]]
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

/// Decompresses the whole gzip file `path` once, checking its CRC-32 and length, and returns
/// the decompressed length: the data is read afterwards, and a damaged stream that still
/// inflates would otherwise be read as voxels of garbage.
pub(crate) fn verify_gzip(path: &Path) -> Result<u64> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut stream = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
    std::io::copy(&mut stream, &mut std::io::sink())
        .map_err(|e| DataError::format(path, "NIfTI (gzip)", io_words(&e)))
}

/// A format error about the NIfTI file `path`, in words ([`nifti_words`]).
pub fn nifti_error(path: &Path, format: &str, e: &nifti::NiftiError) -> DataError {
    DataError::format(path, format, nifti_words(e))
}

fn is_gzip(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// The header of a NIfTI-1 file, checked before any data is read: every reader of volumes
/// goes through here. Refused, each naming the field: a pair header (`magic` "ni1"), a rank
/// outside 1–7 or an extent below 1 (`dim`), a datatype the readers cannot decode
/// (`datatype`, see [`DATATYPES`]) or whose `bitpix` disagrees with it, a size that overflows
/// or passes [`crate::limits::ARRAY_BYTES`], a `vox_offset` before the header's end, and
/// (uncompressed files) data that would reach past the end of the file.
pub fn checked_header(path: &Path) -> Result<NiftiHeader> {
    crate::error::require_file(path, "a NIfTI-1 file (.nii or .nii.gz)")?;
    let header = NiftiHeader::from_file(path).map_err(|e| nifti_error(path, "NIfTI-1", &e))?;
    if &header.magic != nifti::header::MAGIC_CODE_NIP1 {
        return Err(DataError::invalid(
            path,
            "magic",
            "\"n+1\" (a single-file .nii)",
            format!("{:?}", String::from_utf8_lossy(&header.magic)),
        ));
    }
    let ndim = header.dim[0] as usize;
    let dims = &header.dim[1..=ndim.clamp(1, 7)];
    // dim is int16 in the file: the crate's u16 above 32767 is a negative extent
    if !(1..=7).contains(&ndim) || dims.iter().any(|&d| d < 1 || d > i16::MAX as u16) {
        let as_stored: Vec<i16> = header.dim.iter().map(|&d| d as i16).collect();
        return Err(DataError::invalid(
            path,
            "dim",
            "a rank of 1 to 7 and extents ≥ 1",
            format!("{as_stored:?}"),
        ));
    }
    let datatype = Datatype::of(path, header.datatype)?;
    if header.bitpix as i64 != 8 * datatype.bytes as i64 {
        return Err(DataError::invalid(
            path,
            "bitpix",
            format!(
                "{} (datatype {} {})",
                8 * datatype.bytes,
                datatype.code,
                datatype.name
            ),
            header.bitpix.to_string(),
        ));
    }
    // For .nii.gz the file's length bounds nothing, so the limit is what keeps a header from
    // sizing the decompressed buffer.
    let extents: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
    let bytes = crate::limits::array_bytes(path, "dim", &extents, datatype.bytes as u64)?;
    let offset = header.vox_offset;
    if !(offset.is_finite() && offset >= 348.0) {
        return Err(DataError::invalid(
            path,
            "vox_offset",
            "at least 348 (the header's end)",
            offset.to_string(),
        ));
    }
    let file_len = std::fs::metadata(path)
        .map_err(|e| DataError::io(path, e))?
        .len();
    if !is_gzip(path) {
        data_fits(path, &header, bytes, file_len)?;
    }
    Ok(header)
}

/// Refuses data of `bytes` from `vox_offset` that would reach past `len` bytes (the file's,
/// or for `.nii.gz` the decompressed stream's).
fn data_fits(path: &Path, header: &NiftiHeader, bytes: u64, len: u64) -> Result<()> {
    let offset = header.vox_offset as u64;
    if offset > len {
        return Err(DataError::invalid(
            path,
            "vox_offset",
            format!("at most the data's {len} bytes"),
            header.vox_offset.to_string(),
        ));
    }
    if offset.saturating_add(bytes) > len {
        let dims = &header.dim[1..=header.dim[0] as usize];
        return Err(DataError::invalid(
            path,
            "data",
            format!("{bytes} bytes from vox_offset {offset} for dim {dims:?}"),
            format!("{len} bytes (truncated?)"),
        ));
    }
    Ok(())
}

/// The voxels of a NIfTI-1 file whose header passed [`checked_header`], read in file order
/// and decoded as f64 with [`effective_scaling`] applied. A `.nii.gz` is inflated once first
/// (`verify_gzip`), so a damaged or short stream is refused before any value is handed out.
pub struct DataReader {
    path: std::path::PathBuf,
    stream: Box<dyn Read>,
    datatype: Datatype,
    big: bool,
    scaling: (f64, f64),
    /// Bytes of data left, as the header claims and the file was checked to hold.
    left: u64,
    chunk: Vec<u8>,
}

impl DataReader {
    /// Opens the data of `path` (`header` from [`checked_header`]). Errors: the scaling
    /// ([`effective_scaling`]), data past the end of a decompressed stream, I/O.
    pub fn open(path: &Path, header: &NiftiHeader) -> Result<DataReader> {
        let datatype = Datatype::of(path, header.datatype)?;
        let scaling = effective_scaling(path, header.scl_slope as f64, header.scl_inter as f64)?;
        let dims: Vec<u64> = header.dim[1..=(header.dim[0] as usize).clamp(1, 7)]
            .iter()
            .map(|&d| d as u64)
            .collect();
        let bytes = crate::limits::array_bytes(path, "dim", &dims, datatype.bytes as u64)?;
        let offset = header.vox_offset as u64;
        let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
        let stream: Box<dyn Read> = if is_gzip(path) {
            let inflated = verify_gzip(path)?;
            data_fits(path, header, bytes, inflated)?;
            let mut stream = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
            std::io::copy(&mut (&mut stream).take(offset), &mut std::io::sink())
                .map_err(|e| DataError::format(path, "NIfTI (gzip)", io_words(&e)))?;
            Box::new(stream)
        } else {
            let mut file = std::io::BufReader::new(file);
            file.seek(std::io::SeekFrom::Start(offset))
                .map_err(|e| DataError::io(path, e))?;
            Box::new(file)
        };
        Ok(DataReader {
            path: path.to_path_buf(),
            stream,
            datatype,
            big: header.endianness == Endianness::Big,
            scaling,
            left: bytes,
            chunk: vec![0; 1 << 16],
        })
    }

    /// Replaces `out` with the next `n` values. `n` must be within what the header claims
    /// (an error names `data`), and `n` f64 values within [`crate::limits::ARRAY_BYTES`] (an
    /// error names `dim`): `out` never grows past a checked size.
    pub fn read_into(&mut self, n: usize, out: &mut Vec<f64>) -> Result<()> {
        crate::limits::array_bytes(&self.path, "dim", &[n as u64], 8)?;
        let width = self.datatype.bytes;
        let mut want = (n as u64).saturating_mul(width as u64);
        if want > self.left {
            return Err(DataError::invalid(
                &self.path,
                "data",
                format!("{} more bytes (dim)", self.left),
                format!("a read of {want}"),
            ));
        }
        self.left -= want;
        out.clear();
        out.reserve_exact(n);
        while want > 0 {
            // whole values per chunk: 65536 is a multiple of every width
            let take = want.min(self.chunk.len() as u64) as usize;
            let chunk = &mut self.chunk[..take];
            self.stream
                .read_exact(chunk)
                .map_err(|e| DataError::format(&self.path, "NIfTI-1", io_words(&e)))?;
            self.datatype
                .decode_into(chunk, self.big, self.scaling, out);
            want -= take as u64;
        }
        Ok(())
    }
}

/// Reads a 3-D NIfTI volume (a trailing singleton 4th dimension is allowed), values scaled
/// ([`effective_scaling`]), affine from [`header_affine`]. Errors: every check of
/// [`checked_header`], a rank other than 3, a non-finite affine, truncated or damaged data.
pub fn read_volume(path: &Path) -> Result<Volume> {
    let header = checked_header(path)?;
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
    // Read as f64: 8 bytes a voxel in memory, whatever the file's datatype.
    let extents = shape.map(|d| d as u64);
    crate::limits::array_bytes(path, "dim", &extents, 8)?;
    let affine = header_affine(path, &header)?;
    let mut values = Vec::new();
    DataReader::open(path, &header)?.read_into(shape.iter().product(), &mut values)?;
    Ok(Volume {
        shape,
        affine,
        values,
    })
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
