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

/// Reads an `.mgh` or `.mgz` file (gzip is recognised by its magic bytes). Memory grows only
/// with what is actually read: the header's size (dims × bytes per value, and × 8 for the f64
/// values) is checked against [`limits::ARRAY_BYTES`] first, an uncompressed file against its
/// length, and a gzipped one is decoded as it inflates and refused when it inflates past the
/// data and a `MAX_FOOTER`-byte footer (a gzip bomb). Errors name the file and the field.
pub fn read_mgh(path: &Path) -> Result<Mgh> {
    let mut file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let file_len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    let mut magic = [0u8; 2];
    let got = read_full(&mut file, &mut magic).map_err(|e| DataError::io(path, e))?;
    let gzipped = magic[..got] == [0x1F, 0x8B];
    // the magic bytes were taken from the file: `chain` puts them back in front
    let mut file = Read::chain(&magic[..got], std::io::BufReader::new(file));
    if gzipped {
        let mut decoder = flate2::read::MultiGzDecoder::new(file);
        let mgh = read_stream(path, &mut decoder, None)?;
        // the rest (scan parameters, tags) is not used, but a cut or corrupt stream is refused
        // (the gzip trailer's checksum and length are read at its end), and so is a stream
        // that inflates far past it
        let tail = std::io::copy(
            &mut (&mut decoder).take(MAX_FOOTER + 1),
            &mut std::io::sink(),
        )
        .map_err(|e| {
            DataError::format(path, "MGZ (gzipped MGH)", format!("after the data: {e}"))
        })?;
        if tail > MAX_FOOTER {
            return Err(DataError::invalid(
                path,
                "data",
                format!(
                    "a gzip stream ending within {MAX_FOOTER} bytes after the data of dims {:?}",
                    mgh.dims
                ),
                "a stream that inflates further (damaged, or a gzip bomb)",
            ));
        }
        return Ok(mgh);
    }
    read_stream(path, &mut file, Some(file_len))
}

/// An MGH read from `stream` (uncompressed bytes from the start of the header); `len` is the
/// stream's length when known (an uncompressed file's), checked before any data is read.
fn read_stream(path: &Path, stream: &mut dyn Read, len: Option<u64>) -> Result<Mgh> {
    let what = if len.is_some() {
        "MGH"
    } else {
        "MGZ (gzipped MGH)"
    };
    let mut header = [0u8; DATA_OFFSET];
    let got = read_full(stream, &mut header).map_err(|e| DataError::format(path, what, e))?;
    if got < DATA_OFFSET {
        return Err(DataError::invalid(
            path,
            "header",
            format!("{DATA_OFFSET} bytes"),
            format!("{got} (the file is cut short)"),
        ));
    }
    let (dims, type_code) = header_fields(path, &header)?;
    let size = data_size(path, dims, type_code)?;
    let too_short = |have: u64| {
        DataError::invalid(
            path,
            "data",
            format!("{size} bytes for dims {dims:?}"),
            format!("{have} (the file is cut short)"),
        )
    };
    if let Some(len) = len {
        let have = len.saturating_sub(DATA_OFFSET as u64);
        if have < size as u64 {
            return Err(too_short(have));
        }
    }
    let element = element_bytes(type_code).unwrap_or(1);
    let mut data = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let mut left = size;
    while left > 0 {
        // whole values per chunk: 65536 is a multiple of every element size
        let want = left.min(chunk.len());
        let got =
            read_full(stream, &mut chunk[..want]).map_err(|e| DataError::format(path, what, e))?;
        decode(type_code, &chunk[..got - got % element], &mut data);
        if got < want {
            return Err(too_short((size - left + got) as u64));
        }
        left -= want;
    }
    Ok(Mgh {
        dims,
        type_code,
        data,
        affine: affine(&header, dims),
    })
}

/// Fills `buf` from `stream` as far as it goes; the bytes read (fewer at its end).
fn read_full(stream: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut at = 0;
    while at < buf.len() {
        match stream.read(&mut buf[at..]) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(at)
}

/// Appends the big-endian values of `type_code` in `raw` to `out`.
fn decode(type_code: i32, raw: &[u8], out: &mut Vec<f64>) {
    match type_code {
        0 => out.extend(raw.iter().map(|&b| f64::from(b))),
        1 => out.extend(
            raw.chunks_exact(4)
                .map(|b| f64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))),
        ),
        3 => out.extend(
            raw.chunks_exact(4)
                .map(|b| f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]]))),
        ),
        4 => out.extend(
            raw.chunks_exact(2)
                .map(|b| f64::from(i16::from_be_bytes([b[0], b[1]]))),
        ),
        _ => out.extend(
            raw.chunks_exact(2)
                .map(|b| f64::from(u16::from_be_bytes([b[0], b[1]]))),
        ),
    }
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
    // the values are held as f64
    limits::array_bytes(path, "dims", &dims64, 8)?;
    usize::try_from(bytes)
        .map_err(|_| DataError::invalid(path, "dims", "an addressable size", bytes.to_string()))
}

/// [`read_mgh`] of an uncompressed file's bytes; `path` names them in errors.
pub fn parse_mgh(path: &Path, bytes: &[u8]) -> Result<Mgh> {
    read_stream(path, &mut &bytes[..], Some(bytes.len() as u64))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A 284-byte MGH header of `dims` and `type_code` (RAS flag unset).
    fn header(dims: [i32; 4], type_code: i32) -> Vec<u8> {
        let mut h = vec![0u8; DATA_OFFSET];
        h[0..4].copy_from_slice(&1i32.to_be_bytes());
        for (d, dim) in dims.iter().enumerate() {
            h[4 + 4 * d..8 + 4 * d].copy_from_slice(&dim.to_be_bytes());
        }
        h[20..24].copy_from_slice(&type_code.to_be_bytes());
        h
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn a_tiny_file_claiming_a_huge_size_is_refused_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        // 10⁹ float32 values: within the limit as stored (4 GB) and as f64 (8 GB)
        let claim = header([1000, 1000, 1000, 1], 3);
        for (name, bytes) in [("tiny.mgz", gzip(&claim)), ("tiny.mgh", claim.clone())] {
            let path = dir.path().join(name);
            std::fs::write(&path, &bytes).unwrap();
            assert!(bytes.len() < 300, "{}", bytes.len());
            let text = read_mgh(&path).unwrap_err().to_string();
            assert!(
                text.contains(name) && text.contains("data") && text.contains("cut short"),
                "{text}"
            );
        }
        // past the limit: refused from the header alone. 3·10¹⁰ uint8 values are 30 GB as
        // stored (what the reader once reserved up front) and 240 GB as f64
        for dims in [[30_000, 1000, 1000, 1], [1 << 20, 1 << 20, 1 << 10, 1]] {
            let path = dir.path().join("huge.mgz");
            std::fs::write(&path, gzip(&header(dims, 0))).unwrap();
            let text = read_mgh(&path).unwrap_err().to_string();
            assert!(
                text.contains("huge.mgz")
                    && text.contains("dims")
                    && text.contains("BRAINRECON_MAX_ARRAY_BYTES"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_gzip_bomb_is_refused_after_the_data_and_a_bounded_footer() {
        let dir = tempfile::tempdir().unwrap();
        // a 16-value uint8 map, then gzip members of 1 MiB of zeros each (MultiGzDecoder
        // reads concatenated members): 17 MiB past the data, from a few kB of file
        let mut first = header([16, 1, 1, 1], 0);
        first.extend(1..=16u8);
        let mut bytes = gzip(&first);
        let zeros = gzip(&vec![0u8; 1 << 20]);
        let members = (MAX_FOOTER >> 20) as usize + 1;
        for _ in 0..members {
            bytes.extend_from_slice(&zeros);
        }
        assert!(bytes.len() < 64 << 10, "{}", bytes.len());
        let path = dir.path().join("bomb.mgz");
        std::fs::write(&path, &bytes).unwrap();
        let text = read_mgh(&path).unwrap_err().to_string();
        assert!(
            text.contains("bomb.mgz") && text.contains("gzip bomb"),
            "{text}"
        );
        // the same with a footer within the bound reads
        let mut fine = gzip(&first);
        fine.extend_from_slice(&zeros);
        std::fs::write(&path, &fine).unwrap();
        let mgh = read_mgh(&path).unwrap();
        assert_eq!(mgh.data, (1..=16).map(f64::from).collect::<Vec<_>>());
    }
}
