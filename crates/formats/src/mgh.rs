//! FreeSurfer's MGH volumes and per-vertex maps (`.mgh`, and `.mgz`: the same gzipped), as
//! nibabel's `MGHImage` reads them: NSD's surface labels (`lh.nsdgeneral.mgz`, `lh.streams.mgz`,
//! `lh.prf-visualrois.mgz`) and surface data (`lh.curvature.mgz`, betas on fsaverage).
//!
//! ```text
//! offset 0    version: i32 (1)         4   dims: 4 × i32 (width, height, depth, frames)
//!        20   type: i32                24  dof: i32
//!        28   good RAS flag: i16       30  voxel sizes: 3 × f32
//!        42   direction cosines: 9 × f32 (x_ras, y_ras, z_ras)
//!        78   centre RAS: 3 × f32
//!        284  data, first index fastest (Fortran order), then an optional footer
//! ```
//! Big-endian throughout. Types: 0 uint8, 1 int32, 3 float32, 4 int16, 10 uint16 (the ones
//! nibabel reads). A surface map is stored as [vertices, 1, 1, frames]. The data's size is
//! checked against the file and the limits before it is allocated; a gzipped file is
//! decompressed no further than that size.

use std::io::Read;
use std::path::Path;

use crate::error::{DataError, Result};
use crate::limits;

const DATA_OFFSET: usize = 284;
/// Bytes after the data read to reach a gzipped file's end (FreeSurfer's footer and tags are
/// far smaller).
const MAX_FOOTER: u64 = 16 << 20;

/// An MGH file's array.
#[derive(Clone, Debug, PartialEq)]
pub struct Mgh {
    /// width, height, depth, frames.
    pub dims: [usize; 4],
    /// The stored type code (0, 1, 3, 4 or 10).
    pub type_code: i32,
    /// The values, first index fastest: value (i, j, k, t) at
    /// `i + w·(j + h·(k + d·t))`. Integers are exact (every type nibabel reads fits in f64).
    pub data: Vec<f64>,
    /// The voxel-to-RAS affine (row-major 4 × 4), from the header when its RAS flag is set,
    /// else nibabel's default (coronal, 1 mm).
    pub affine: [[f64; 4]; 4],
}

fn element_bytes(type_code: i32) -> Option<usize> {
    match type_code {
        0 => Some(1),
        1 | 3 => Some(4),
        4 | 10 => Some(2),
        _ => None,
    }
}

/// Reads an `.mgh` or `.mgz` file (gzip is recognised by its magic bytes).
pub fn read_mgh(path: &Path) -> Result<Mgh> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if raw.starts_with(&[0x1F, 0x8B]) {
        let mut header = vec![0u8; DATA_OFFSET];
        let mut decoder = flate2::read::GzDecoder::new(&raw[..]);
        decoder.read_exact(&mut header).map_err(|e| {
            DataError::format(path, "MGZ (gzipped MGH)", format!("the header: {e}"))
        })?;
        let (dims, type_code) = header_fields(path, &header)?;
        let data_bytes = data_size(path, dims, type_code)?;
        let mut bytes = header;
        bytes.reserve(data_bytes);
        (&mut decoder)
            .take(data_bytes as u64)
            .read_to_end(&mut bytes)
            .map_err(|e| DataError::format(path, "MGZ (gzipped MGH)", e))?;
        // the rest (scan parameters, tags) is not used, but a cut or corrupt stream is refused:
        // the gzip trailer's checksum and length are read at its end
        std::io::copy(&mut (&mut decoder).take(MAX_FOOTER), &mut std::io::sink()).map_err(|e| {
            DataError::format(path, "MGZ (gzipped MGH)", format!("after the data: {e}"))
        })?;
        return parse_mgh(path, &bytes);
    }
    parse_mgh(path, &raw)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_f32(b: &[u8], at: usize) -> f32 {
    f32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The dims and type of a header of at least [`DATA_OFFSET`] bytes.
fn header_fields(path: &Path, header: &[u8]) -> Result<([usize; 4], i32)> {
    let version = be_i32(header, 0);
    if version != 1 {
        return Err(DataError::invalid(
            path,
            "version",
            "1 (an MGH file)",
            version.to_string(),
        ));
    }
    let mut dims = [0usize; 4];
    for (d, dim) in dims.iter_mut().enumerate() {
        let value = be_i32(header, 4 + 4 * d);
        *dim = usize::try_from(value)
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| {
                DataError::invalid(
                    path,
                    format!("dims[{d}]"),
                    "a positive size",
                    value.to_string(),
                )
            })?;
    }
    let type_code = be_i32(header, 20);
    if element_bytes(type_code).is_none() {
        return Err(DataError::invalid(
            path,
            "type",
            "0 (uint8), 1 (int32), 3 (float32), 4 (int16) or 10 (uint16)",
            type_code.to_string(),
        ));
    }
    Ok((dims, type_code))
}

fn data_size(path: &Path, dims: [usize; 4], type_code: i32) -> Result<usize> {
    let element = element_bytes(type_code).unwrap_or(1) as u64;
    let dims64: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
    let bytes = limits::array_bytes(path, "dims", &dims64, element)?;
    usize::try_from(bytes)
        .map_err(|_| DataError::invalid(path, "dims", "an addressable size", bytes.to_string()))
}

/// [`read_mgh`] of an uncompressed file's bytes; `path` names them in errors.
pub fn parse_mgh(path: &Path, bytes: &[u8]) -> Result<Mgh> {
    if bytes.len() < DATA_OFFSET {
        return Err(DataError::invalid(
            path,
            "header",
            format!("{DATA_OFFSET} bytes"),
            format!("{} (the file is cut short)", bytes.len()),
        ));
    }
    let (dims, type_code) = header_fields(path, bytes)?;
    let size = data_size(path, dims, type_code)?;
    let data = bytes.get(DATA_OFFSET..DATA_OFFSET + size).ok_or_else(|| {
        DataError::invalid(
            path,
            "data",
            format!("{size} bytes for dims {dims:?}"),
            format!("{} (the file is cut short)", bytes.len() - DATA_OFFSET),
        )
    })?;
    let data: Vec<f64> = match type_code {
        0 => data.iter().map(|&b| f64::from(b)).collect(),
        1 => data
            .chunks_exact(4)
            .map(|b| f64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])))
            .collect(),
        3 => data
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]])))
            .collect(),
        4 => data
            .chunks_exact(2)
            .map(|b| f64::from(i16::from_be_bytes([b[0], b[1]])))
            .collect(),
        _ => data
            .chunks_exact(2)
            .map(|b| f64::from(u16::from_be_bytes([b[0], b[1]])))
            .collect(),
    };
    Ok(Mgh {
        dims,
        type_code,
        data,
        affine: affine(bytes, dims),
    })
}

/// nibabel's `MGHHeader.get_affine`: columns of the direction cosines scaled by the voxel
/// sizes, and the translation putting the centre voxel at the centre RAS.
fn affine(header: &[u8], dims: [usize; 4]) -> [[f64; 4]; 4] {
    let good_ras = i16::from_be_bytes([header[28], header[29]]) != 0;
    let (delta, mdc, centre) = if good_ras {
        let delta = [0, 1, 2].map(|i| f64::from(be_f32(header, 30 + 4 * i)));
        // stored row by row: x_ras, y_ras, z_ras, each the cosines of one voxel axis
        let mdc = [0, 1, 2]
            .map(|axis| [0, 1, 2].map(|r| f64::from(be_f32(header, 42 + 12 * axis + 4 * r))));
        let centre = [0, 1, 2].map(|i| f64::from(be_f32(header, 78 + 4 * i)));
        (delta, mdc, centre)
    } else {
        (
            [1.0; 3],
            [[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]],
            [0.0; 3],
        )
    };
    let mut a = [[0.0; 4]; 4];
    for row in 0..3 {
        let mut shift = 0.0;
        for col in 0..3 {
            // column `col` is voxel axis `col`'s cosines times its size
            a[row][col] = mdc[col][row] * delta[col];
            shift += a[row][col] * dims[col] as f64 / 2.0;
        }
        a[row][3] = centre[row] - shift;
    }
    a[3][3] = 1.0;
    a
}

impl Mgh {
    /// The values of a per-vertex map: dims [vertices, 1, 1, 1] (`path` names the file in
    /// the error).
    pub fn per_vertex(&self, path: &Path) -> Result<&[f64]> {
        match self.dims {
            [_, 1, 1, 1] => Ok(&self.data),
            dims => Err(DataError::invalid(
                path,
                "dims",
                "[vertices, 1, 1, 1] (one value per vertex)",
                format!("{dims:?}"),
            )),
        }
    }
}
