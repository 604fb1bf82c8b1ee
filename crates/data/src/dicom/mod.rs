//! DICOM volumes as MR scanners export them for real-time processing: Siemens' classic EPI
//! mosaic (one file per volume, the slices tiled in one image, their count and normal in the
//! CSA header). Read with the Rust DICOM project's `dicom-object`; geometry as dcm2niix
//! computes it (checked against its conversion in `tests/dicom.rs`).
//!
//! Single-frame series (one slice per file) and enhanced multi-frame files are refused with
//! a message saying so.

pub mod csa;
pub mod lengths;
pub mod mosaic;
pub mod write;

use crate::error::{guard_foreign_parser, DataError, Result};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, OpenFileOptions, Tag};
use std::path::Path;

/// The uncompressed little-endian transfer syntaxes (implicit and explicit VR).
const UNCOMPRESSED: [&str; 2] = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"];

/// One volume read from one DICOM file.
#[derive(Debug, Clone)]
pub struct DicomVolume {
    /// (columns, rows, slices): x is the column index, as dcm2niix's NIfTI before its row flip.
    pub shape: [usize; 3],
    /// Row-major voxel → world (RAS+ mm, NIfTI's convention) affine.
    pub affine: [[f64; 4]; 4],
    /// Rescaled values, x fastest.
    pub values: Vec<f32>,
    pub series: SeriesPosition,
}

/// Where a file sits in its series: what a folder watcher orders and groups volumes by.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPosition {
    pub series_uid: String,
    pub series_number: Option<i64>,
    pub acquisition_number: Option<i64>,
    pub instance_number: Option<i64>,
    /// AcquisitionTime as written (HHMMSS.FFFFFF).
    pub acquisition_time: Option<String>,
}

/// Reads one DICOM file holding a whole volume (a Siemens mosaic).
pub fn read_volume(path: &Path) -> Result<DicomVolume> {
    let object = open(path)?;
    let header = mosaic::MosaicHeader::read(path, &object)?;
    let pixels = pixel_values(path, &object, header.mosaic_rows, header.mosaic_columns)?;
    let values = mosaic::unpack(&header, &pixels);
    Ok(DicomVolume {
        shape: [header.columns, header.rows, header.slices],
        affine: header.affine(),
        values,
        series: series_position(&object),
    })
}

/// Opens a DICOM file (Part 10, with its preamble), after bounding its size: the parser reads
/// the whole file into memory.
pub fn open(path: &Path) -> Result<DefaultDicomObject> {
    crate::error::require_file(path, "a DICOM file")?;
    let bytes = std::fs::metadata(path)
        .map_err(|e| DataError::io(path, e))?
        .len();
    crate::limits::array_bytes(path, "file size", &[bytes], 1)?;
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    lengths::check(&raw).map_err(|e| DataError::format(path, "DICOM", e))?;
    let object = guard_foreign_parser(path, "DICOM", || {
        OpenFileOptions::new()
            .from_reader(std::io::Cursor::new(&raw[128..]))
            .map_err(|e| DataError::format(path, "DICOM", e))
    })?;
    let syntax = object
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .trim()
        .to_string();
    if !UNCOMPRESSED.contains(&syntax.as_str()) {
        return Err(DataError::invalid(
            path,
            "TransferSyntaxUID (0002,0010)",
            "uncompressed little endian (1.2.840.10008.1.2 or 1.2.840.10008.1.2.1), as scanners' real-time exports write",
            syntax,
        ));
    }
    Ok(object)
}

/// A required element's numbers (decimal or integer strings, or binary).
pub(crate) fn numbers(
    path: &Path,
    object: &DefaultDicomObject,
    tag: Tag,
    name: &str,
    count: usize,
) -> Result<Vec<f64>> {
    let field = element_name(tag, name);
    let element =
        object.element_opt(tag).ok().flatten().ok_or_else(|| {
            DataError::invalid(path, &field, format!("{count} number(s)"), "missing")
        })?;
    let values = element.to_multi_float64().map_err(|e| {
        DataError::invalid(path, &field, format!("{count} number(s)"), e.to_string())
    })?;
    if values.len() != count || values.iter().any(|v| !v.is_finite()) {
        return Err(DataError::invalid(
            path,
            &field,
            format!("{count} finite number(s)"),
            format!("{values:?}"),
        ));
    }
    Ok(values)
}

/// A required element's single number.
pub(crate) fn number(
    path: &Path,
    object: &DefaultDicomObject,
    tag: Tag,
    name: &str,
) -> Result<f64> {
    numbers(path, object, tag, name, 1).map(|v| v[0])
}

fn optional_number(object: &DefaultDicomObject, tag: Tag) -> Option<f64> {
    object
        .element_opt(tag)
        .ok()
        .flatten()?
        .to_float64()
        .ok()
        .filter(|v| v.is_finite())
}

pub(crate) fn element_name(tag: Tag, name: &str) -> String {
    format!("{name} ({:04X},{:04X})", tag.0, tag.1)
}

fn series_position(object: &DefaultDicomObject) -> SeriesPosition {
    let text = |tag| {
        let v = object.element_opt(tag).ok().flatten()?.to_str().ok()?;
        Some(v.trim_end_matches('\0').trim().to_string())
    };
    let int = |tag| optional_number(object, tag).map(|v| v as i64);
    SeriesPosition {
        series_uid: text(tags::SERIES_INSTANCE_UID).unwrap_or_default(),
        series_number: int(tags::SERIES_NUMBER),
        acquisition_number: int(tags::ACQUISITION_NUMBER),
        instance_number: int(tags::INSTANCE_NUMBER),
        acquisition_time: text(tags::ACQUISITION_TIME),
    }
}

/// The stored pixels of a rows × columns 16-bit image, rescaled by RescaleSlope and
/// RescaleIntercept when present.
fn pixel_values(
    path: &Path,
    object: &DefaultDicomObject,
    rows: usize,
    columns: usize,
) -> Result<Vec<f32>> {
    let bits = number(path, object, tags::BITS_ALLOCATED, "BitsAllocated")?;
    let samples = optional_number(object, tags::SAMPLES_PER_PIXEL).unwrap_or(1.0);
    if bits != 16.0 || samples != 1.0 {
        return Err(DataError::invalid(
            path,
            "BitsAllocated (0028,0100) and SamplesPerPixel (0028,0002)",
            "16 bits, 1 sample per pixel (MR magnitude images)",
            format!("{bits} bits, {samples} samples"),
        ));
    }
    let signed = optional_number(object, tags::PIXEL_REPRESENTATION).unwrap_or(0.0) == 1.0;
    let slope = optional_number(object, tags::RESCALE_SLOPE).unwrap_or(1.0);
    let intercept = optional_number(object, tags::RESCALE_INTERCEPT).unwrap_or(0.0);
    let field = element_name(tags::PIXEL_DATA, "PixelData");
    let element = object
        .element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        .ok_or_else(|| DataError::invalid(path, &field, "pixel data", "missing"))?;
    let bytes = element
        .to_bytes()
        .map_err(|e| DataError::invalid(path, &field, "uncompressed pixel data", e.to_string()))?;
    let needed = rows
        .checked_mul(columns)
        .and_then(|n| n.checked_mul(2))
        .ok_or_else(|| {
            DataError::invalid(
                path,
                "Rows × Columns",
                "a size that fits in memory",
                format!("{rows} × {columns}"),
            )
        })?;
    if bytes.len() < needed {
        return Err(DataError::invalid(
            path,
            &field,
            format!("{needed} bytes ({rows} rows × {columns} columns × 2): is the file still being written?"),
            format!("{} bytes", bytes.len()),
        ));
    }
    Ok(bytes[..needed]
        .chunks_exact(2)
        .map(|b| {
            let raw = if signed {
                i16::from_le_bytes([b[0], b[1]]) as f64
            } else {
                u16::from_le_bytes([b[0], b[1]]) as f64
            };
            (raw * slope + intercept) as f32
        })
        .collect())
}
