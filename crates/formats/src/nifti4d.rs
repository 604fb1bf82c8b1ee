//! 4-D NIfTI-1 series (one 3-D volume per TR): the header's grid and affine, volumes streamed
//! one at a time with `scl_slope`/`scl_inter` applied, and a writer for scaled int16 and float32
//! series (the `nifti` crate's writer always stores slope 1).

use crate::error::{DataError, Result};
use flate2::write::GzEncoder;
use nifti::{NiftiHeader, NiftiType};
use std::io::Write;
use std::path::Path;

/// What the header of a series says about its grid.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesHeader {
    /// (X, Y, Z)
    pub shape: [usize; 3],
    /// Volumes (1 for a 3-D file).
    pub n_volumes: usize,
    /// Row-major voxel → world affine, as [`crate::nifti_io::header_affine`] chooses it.
    pub affine: [[f64; 4]; 4],
    /// `pixdim[4]` (the TR some converters store; BIDS takes it from the sidecar instead).
    pub pixdim_t: f64,
}

fn series_header(path: &Path, h: &NiftiHeader) -> Result<SeriesHeader> {
    let ndim = h.dim[0] as usize;
    let dims = &h.dim[1..=ndim.clamp(1, 7)];
    let extra_ok = ndim <= 4 || dims[4..].iter().all(|&d| d == 1);
    if !(3..=7).contains(&ndim) || !extra_ok || dims[..3].contains(&0) {
        return Err(DataError::invalid(
            path,
            "dim",
            "a 4-D series (X, Y, Z, time)",
            format!("{dims:?}"),
        ));
    }
    let n_volumes = if ndim >= 4 { h.dim[4] as usize } else { 1 };
    Ok(SeriesHeader {
        shape: [h.dim[1] as usize, h.dim[2] as usize, h.dim[3] as usize],
        n_volumes,
        affine: crate::nifti_io::header_affine(path, h)?,
        pixdim_t: h.pixdim[4] as f64,
    })
}

/// Reads the header of a `.nii` / `.nii.gz` file (no data).
pub fn read_header(path: &Path) -> Result<SeriesHeader> {
    let header = crate::nifti_io::checked_header(path)?;
    series_header(path, &header)
}

/// Calls `visit(t, volume)` for each 3-D volume of a series, in order. `volume` holds
/// X·Y·Z values, x fastest (a NIfTI file's own order), scaled as
/// [`crate::nifti_io::effective_scaling`] decides. A `.nii.gz` is inflated and checked once
/// before the first volume is handed out. Errors: the header's checks
/// ([`crate::nifti_io::checked_header`]), the affine's, damaged or truncated data, and
/// whatever `visit` returns.
pub fn for_each_volume<F>(path: &Path, mut visit: F) -> Result<SeriesHeader>
where
    F: FnMut(usize, &[f64]) -> Result<()>,
{
    let raw = crate::nifti_io::checked_header(path)?;
    let header = series_header(path, &raw)?;
    let mut data = crate::nifti_io::DataReader::open(path, &raw)?;
    let volume_len: usize = header.shape.iter().product();
    let mut values = Vec::new();
    for t in 0..header.n_volumes {
        data.read_into(volume_len, &mut values)?;
        visit(t, &values)?;
    }
    Ok(header)
}

/// How a written series stores its values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Storage {
    /// int16 with `value = stored · slope + inter` (scanners' converters write BOLD this way).
    Int16 {
        /// `scl_slope`.
        slope: f32,
        /// `scl_inter`.
        inter: f32,
    },
    /// float32 values as they are.
    Float32,
}

fn put<const N: usize>(header: &mut [u8], at: usize, bytes: [u8; N]) {
    header[at..at + N].copy_from_slice(&bytes);
}

/// The 348-byte NIfTI-1 header (+ 4 empty extension bytes) of a series.
fn encode_header(
    shape: [usize; 3],
    n: usize,
    tr: f64,
    affine: &[[f64; 4]; 4],
    storage: Storage,
) -> Vec<u8> {
    let mut h = vec![0u8; 352];
    put(&mut h, 0, 348i32.to_le_bytes());
    h[38] = b'r';
    let dims = [4, shape[0], shape[1], shape[2], n, 1, 1, 1];
    for (i, d) in dims.iter().enumerate() {
        put(&mut h, 40 + 2 * i, (*d as i16).to_le_bytes());
    }
    let (datatype, bitpix, slope, inter) = match storage {
        Storage::Int16 { slope, inter } => (NiftiType::Int16 as i16, 16i16, slope, inter),
        Storage::Float32 => (NiftiType::Float32 as i16, 32, 1.0, 0.0),
    };
    put(&mut h, 70, datatype.to_le_bytes());
    put(&mut h, 72, bitpix.to_le_bytes());
    let voxel = |axis: usize| (0..3).map(|r| affine[r][axis].powi(2)).sum::<f64>().sqrt();
    let pixdim = [1.0, voxel(0), voxel(1), voxel(2), tr, 0.0, 0.0, 0.0];
    for (i, p) in pixdim.iter().enumerate() {
        put(&mut h, 76 + 4 * i, (*p as f32).to_le_bytes());
    }
    put(&mut h, 108, 352f32.to_le_bytes());
    put(&mut h, 112, slope.to_le_bytes());
    put(&mut h, 116, inter.to_le_bytes());
    h[123] = 2 | 8; // millimetres, seconds
    put(&mut h, 254, 1i16.to_le_bytes()); // sform_code: scanner
    for (row, at) in [(0, 280), (1, 296), (2, 312)] {
        for (j, v) in affine[row].iter().enumerate() {
            put(&mut h, at + 4 * j, (*v as f32).to_le_bytes());
        }
    }
    h[344..348].copy_from_slice(b"n+1\0");
    h
}

/// Writes a 4-D series. `volumes[t]` holds X·Y·Z values, x fastest. Values that int16 cannot
/// hold after scaling are an error (not clipped). Gzipped when `path` ends in `.gz`.
pub fn write_series(
    path: &Path,
    shape: [usize; 3],
    tr: f64,
    affine: &[[f64; 4]; 4],
    storage: Storage,
    volumes: &[Vec<f64>],
) -> Result<()> {
    let len: usize = shape.iter().product();
    let mut bytes = encode_header(shape, volumes.len(), tr, affine, storage);
    for (t, volume) in volumes.iter().enumerate() {
        if volume.len() != len {
            return Err(DataError::invalid(
                path,
                format!("volume {t}"),
                format!("{len} values for {shape:?}"),
                volume.len().to_string(),
            ));
        }
        for &v in volume {
            match storage {
                Storage::Int16 { slope, inter } => {
                    let stored = ((v - inter as f64) / slope as f64).round();
                    if !(-32768.0..=32767.0).contains(&stored) {
                        return Err(DataError::invalid(
                            path,
                            format!("volume {t}"),
                            "values int16 can hold at this scl_slope",
                            format!("{v}"),
                        ));
                    }
                    bytes.extend_from_slice(&(stored as i16).to_le_bytes());
                }
                Storage::Float32 => bytes.extend_from_slice(&(v as f32).to_le_bytes()),
            }
        }
    }
    let gz = path.to_string_lossy().ends_with(".gz");
    brainrecon_core::fs::write_atomic(path, |w| {
        if gz {
            let mut encoder = GzEncoder::new(w, flate2::Compression::fast());
            encoder.write_all(&bytes)?;
            encoder.finish()?;
            Ok(())
        } else {
            w.write_all(&bytes)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_int16_series_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bold.nii.gz");
        let affine = [
            [2.0, 0.0, 0.0, -10.0],
            [0.0, 2.0, 0.0, 4.0],
            [0.0, 0.0, 3.0, 1.5],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let volumes: Vec<Vec<f64>> = (0..3)
            .map(|t| {
                (0..24)
                    .map(|i| 1000.0 + i as f64 * 0.5 - t as f64)
                    .collect()
            })
            .collect();
        let storage = Storage::Int16 {
            slope: 0.5,
            inter: 100.0,
        };
        write_series(&path, [4, 3, 2], 1.5, &affine, storage, &volumes).unwrap();
        let mut back = Vec::new();
        let header = for_each_volume(&path, |_, v| {
            back.push(v.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(header.shape, [4, 3, 2]);
        assert_eq!(header.n_volumes, 3);
        assert_eq!(header.affine, affine);
        assert_eq!(header.pixdim_t, 1.5);
        assert_eq!(back, volumes);
        let over = vec![vec![1e9; 24]];
        assert!(write_series(&path, [4, 3, 2], 1.0, &affine, storage, &over).is_err());
    }

    #[test]
    fn a_series_whose_gzip_check_fails_is_refused_before_any_volume() {
        // Only the trailer's CRC-32 is wrong: every voxel inflates, so only the check tells.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bold.nii.gz");
        let eye = [
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let volumes: Vec<Vec<f64>> = (0..4).map(|t| vec![t as f64; 60]).collect();
        write_series(&path, [5, 4, 3], 2.0, &eye, Storage::Float32, &volumes).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let crc = bytes.len() - 8;
        bytes[crc] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let mut visited = 0;
        let text = for_each_volume(&path, |_, _| {
            visited += 1;
            Ok(())
        })
        .unwrap_err()
        .to_string();
        assert!(
            text.contains("bold.nii.gz") && text.contains("damaged"),
            "{text}"
        );
        assert_eq!(visited, 0, "a volume was used before the check");
    }
}
