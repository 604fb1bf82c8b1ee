//! MATLAB v5 `.mat` files: numeric matrices in (NSD's experiment design), and a small writer.

use crate::error::{DataError, Result};
use std::path::Path;

/// A real numeric matrix, column-major as MATLAB stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Column-major values.
    pub values: Vec<f64>,
}

impl Matrix {
    /// The value at (`row`, `col`), 0-based. Panics when out of range.
    pub fn get(&self, row: usize, col: usize) -> f64 {
        self.values[row + self.rows * col]
    }

    /// The values of a 1×n or n×1 matrix.
    pub fn as_vector(&self, path: &Path, name: &str) -> Result<&[f64]> {
        if self.rows == 1 || self.cols == 1 {
            Ok(&self.values)
        } else {
            Err(DataError::invalid(
                path,
                name,
                "a vector (1×n or n×1)",
                format!("{}×{}", self.rows, self.cols),
            ))
        }
    }
}

/// Reads the named variables of a MATLAB v5 file as real matrices.
pub fn read_matrices(path: &Path, names: &[&str]) -> Result<Vec<Matrix>> {
    crate::error::require_file(path, "a MATLAB v5 .mat file")?;
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    check_elements(path, &bytes)?;
    let mat = crate::error::guard_foreign_parser(path, "MATLAB v5 (.mat)", || {
        matfile::MatFile::parse(bytes.as_slice()).map_err(|e| {
            DataError::format(
                path,
                "MATLAB v5 (.mat)",
                format!("{e:?} (v7.3 files are HDF5: re-save with -v7)"),
            )
        })
    })?;
    names
        .iter()
        .map(|name| {
            let array = mat.find_by_name(name).ok_or_else(|| {
                DataError::invalid(path, *name, "a variable of that name", "none")
            })?;
            let size = array.size();
            let dims: Vec<u64> = size.iter().map(|&d| d as u64).collect();
            crate::limits::array_bytes(path, name, &dims, 8)?;
            if size.len() != 2 {
                return Err(DataError::invalid(
                    path,
                    *name,
                    "a 2-D matrix",
                    format!("{size:?}"),
                ));
            }
            let values = numeric_as_f64(array.data()).ok_or_else(|| {
                DataError::invalid(
                    path,
                    *name,
                    "a real numeric matrix",
                    "complex or non-numeric data",
                )
            })?;
            if size[0].checked_mul(size[1]) != Some(values.len()) {
                return Err(DataError::invalid(
                    path,
                    *name,
                    format!("{}×{} values", size[0], size[1]),
                    format!("{} values", values.len()),
                ));
            }
            Ok(Matrix {
                rows: size[0],
                cols: size[1],
                values,
            })
        })
        .collect()
}

/// Refuses a top-level data element whose tag claims more bytes than follow it, before the
/// parser sizes a buffer by it. A v7.3 file (HDF5) has no such elements: the parser refuses it.
fn check_elements(path: &Path, bytes: &[u8]) -> Result<()> {
    let big_endian = bytes.get(126..128) == Some(b"MI");
    let word = |at: usize| -> Option<u32> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let mut at = 128usize;
    while let (Some(kind), Some(size)) = (word(at), word(at + 4)) {
        if kind >> 16 != 0 {
            at += 8; // small element: tag and data in 8 bytes
            continue;
        }
        let left = bytes.len() - at - 8;
        if size as usize > left {
            return Err(DataError::invalid(
                path,
                format!("data element at byte {at}"),
                format!("at most the {left} bytes that follow its tag"),
                format!("{size} bytes"),
            ));
        }
        // Compressed elements (type 15) are not padded to 8 bytes.
        let padded = if kind == 15 {
            size as usize
        } else {
            (size as usize).div_ceil(8) * 8
        };
        at += 8 + padded;
    }
    Ok(())
}

fn numeric_as_f64(data: &matfile::NumericData) -> Option<Vec<f64>> {
    use matfile::NumericData as N;
    fn cast<T: Copy + Into<f64>>(v: &[T]) -> Vec<f64> {
        v.iter().map(|&x| x.into()).collect()
    }
    Some(match data {
        N::Double { real, imag: None } => real.clone(),
        N::Single { real, imag: None } => cast(real),
        N::Int8 { real, imag: None } => cast(real),
        N::UInt8 { real, imag: None } => cast(real),
        N::Int16 { real, imag: None } => cast(real),
        N::UInt16 { real, imag: None } => cast(real),
        N::Int32 { real, imag: None } => cast(real),
        N::UInt32 { real, imag: None } => cast(real),
        N::Int64 { real, imag: None } => real.iter().map(|&x| x as f64).collect(),
        N::UInt64 { real, imag: None } => real.iter().map(|&x| x as f64).collect(),
        _ => return None,
    })
}

fn push_tag(out: &mut Vec<u8>, data_type: u32, bytes: u32) {
    out.extend_from_slice(&data_type.to_le_bytes());
    out.extend_from_slice(&bytes.to_le_bytes());
}

fn pad8(out: &mut Vec<u8>) {
    while out.len() % 8 != 0 {
        out.push(0);
    }
}

/// Encodes double matrices as an uncompressed MATLAB v5 file.
pub fn encode_doubles(variables: &[(&str, &Matrix)]) -> Vec<u8> {
    const MI_INT8: u32 = 1;
    const MI_INT32: u32 = 5;
    const MI_UINT32: u32 = 6;
    const MI_DOUBLE: u32 = 9;
    const MI_MATRIX: u32 = 14;
    const MX_DOUBLE_CLASS: u32 = 6;

    let mut out = Vec::new();
    let mut text = b"MATLAB 5.0 MAT-file, written by brainrecon".to_vec();
    text.resize(116, b' ');
    out.extend_from_slice(&text);
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&0x0100u16.to_le_bytes());
    out.extend_from_slice(b"IM");
    for (name, matrix) in variables {
        let mut body = Vec::new();
        push_tag(&mut body, MI_UINT32, 8);
        body.extend_from_slice(&MX_DOUBLE_CLASS.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        push_tag(&mut body, MI_INT32, 8);
        body.extend_from_slice(&(matrix.rows as i32).to_le_bytes());
        body.extend_from_slice(&(matrix.cols as i32).to_le_bytes());
        push_tag(&mut body, MI_INT8, name.len() as u32);
        body.extend_from_slice(name.as_bytes());
        pad8(&mut body);
        push_tag(&mut body, MI_DOUBLE, (matrix.values.len() * 8) as u32);
        for v in &matrix.values {
            body.extend_from_slice(&v.to_le_bytes());
        }
        pad8(&mut body);
        push_tag(&mut out, MI_MATRIX, body.len() as u32);
        out.extend_from_slice(&body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_file_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("design.mat");
        let a = Matrix {
            rows: 2,
            cols: 3,
            values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        };
        let b = Matrix {
            rows: 1,
            cols: 4,
            values: vec![7.0, 8.0, 9.0, 10.0],
        };
        std::fs::write(
            &path,
            encode_doubles(&[("subjectim", &a), ("sharedix", &b)]),
        )
        .unwrap();
        let read = read_matrices(&path, &["sharedix", "subjectim"]).unwrap();
        assert_eq!(read[0], b);
        assert_eq!(read[1].get(1, 2), 6.0);
        let err = read_matrices(&path, &["masterordering"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("masterordering"), "{err}");
    }

    #[test]
    fn an_element_claiming_more_bytes_than_the_file_holds_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("expdesign.mat");
        let a = Matrix {
            rows: 1,
            cols: 2,
            values: vec![1.0, 2.0],
        };
        let mut bytes = encode_doubles(&[("sharedix", &a)]);
        // The first element's size: 4 GB.
        bytes[132..136].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let err = read_matrices(&path, &["sharedix"]).unwrap_err().to_string();
        assert!(
            err.contains("expdesign.mat") && err.contains("data element at byte 128"),
            "{err}"
        );
    }
}
