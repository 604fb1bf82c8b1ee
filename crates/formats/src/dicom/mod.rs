//! DICOM volumes as MR scanners export them for real-time processing, in the three layouts
//! they use: Siemens' classic EPI mosaic (one file per volume, the slices tiled in one image,
//! their count and normal in the CSA header), enhanced multi-frame files (one file per
//! volume, a frame per slice, geometry in functional groups: Siemens XA) and single-frame
//! series (one file per slice: GE, Philips, Siemens XA's interoperability mode), whose slices
//! [`slices::stack`] puts together. Read with the Rust DICOM project's `dicom-object`;
//! geometry as dcm2niix computes it (checked against its conversions in `tests/dicom.rs`).

pub mod csa;
pub mod enhanced;
pub mod lengths;
pub mod mosaic;
pub mod slices;
pub mod write;

use crate::error::{guard_foreign_parser, DataError, Result};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions, Tag};
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
    /// Where the file sits in its series.
    pub series: SeriesPosition,
}

/// Where a file sits in its series: what a folder watcher orders and groups volumes by.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesPosition {
    /// SeriesInstanceUID (0020,000E); empty when absent.
    pub series_uid: String,
    /// SeriesNumber (0020,0011).
    pub series_number: Option<i64>,
    /// AcquisitionNumber (0020,0012).
    pub acquisition_number: Option<i64>,
    /// InstanceNumber (0020,0013).
    pub instance_number: Option<i64>,
    /// AcquisitionTime as written (HHMMSS.FFFFFF).
    pub acquisition_time: Option<String>,
}

/// What one DICOM file of an export holds: a whole volume (a mosaic or an enhanced
/// multi-frame file) or one slice of a single-frame series.
#[derive(Debug, Clone)]
pub enum DicomFile {
    /// A whole volume: a mosaic or an enhanced multi-frame file.
    Volume(DicomVolume),
    /// One slice of a single-frame series.
    Slice(slices::DicomSlice),
}

/// Reads one DICOM file of a real-time export, whichever of the three layouts it has.
pub fn read_file(path: &Path) -> Result<DicomFile> {
    let object = open(path)?;
    if enhanced::is_enhanced(&object) {
        enhanced::read(path, &object).map(DicomFile::Volume)
    } else if mosaic::is_mosaic(&object) {
        read_mosaic(path, &object).map(DicomFile::Volume)
    } else {
        slices::read(path, &object).map(DicomFile::Slice)
    }
}

/// Reads one DICOM file holding a whole volume (a Siemens mosaic or an enhanced multi-frame
/// file); a single slice is refused, naming the function that stacks a series.
pub fn read_volume(path: &Path) -> Result<DicomVolume> {
    match read_file(path)? {
        DicomFile::Volume(volume) => Ok(volume),
        DicomFile::Slice(_) => Err(DataError::invalid(
            path,
            "ImageType (0008,0008) and NumberOfFrames (0028,0008)",
            "a whole volume in one file (a Siemens MOSAIC or an enhanced multi-frame file)",
            "one slice of a single-frame series (its files are stacked into volumes by `realtime watch`/`run`)",
        )),
    }
}

fn read_mosaic(path: &Path, object: &DefaultDicomObject) -> Result<DicomVolume> {
    let header = mosaic::MosaicHeader::read(path, object)?;
    let count = header.mosaic_rows.checked_mul(header.mosaic_columns);
    let stored = stored_pixels(path, object, count, "Rows × Columns")?;
    let rescale = Rescale::read(path, object)?;
    let values = mosaic::unpack(&header, &rescale.apply(&stored));
    Ok(DicomVolume {
        shape: [header.columns, header.rows, header.slices],
        affine: header.affine(),
        values,
        series: series_position(object),
    })
}

/// Row-major RAS+ affine from the LPS steps of one voxel along each axis and the LPS
/// position of the first voxel (DICOM's patient coordinates → NIfTI's: x and y negated).
pub(crate) fn ras_affine(steps: [[f64; 3]; 3], first_voxel: [f64; 3]) -> [[f64; 4]; 4] {
    let mut affine = [[0.0; 4]; 4];
    for (axis, sign) in [-1.0, -1.0, 1.0].into_iter().enumerate() {
        affine[axis] = [
            sign * steps[0][axis],
            sign * steps[1][axis],
            sign * steps[2][axis],
            sign * first_voxel[axis],
        ];
    }
    affine[3][3] = 1.0;
    affine
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
    object: &InMemDicomObject,
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
pub(crate) fn number(path: &Path, object: &InMemDicomObject, tag: Tag, name: &str) -> Result<f64> {
    numbers(path, object, tag, name, 1).map(|v| v[0])
}

pub(crate) fn optional_number(object: &InMemDicomObject, tag: Tag) -> Option<f64> {
    object
        .element_opt(tag)
        .ok()
        .flatten()?
        .to_float64()
        .ok()
        .filter(|v| v.is_finite())
}

/// The number at `tag` when the element is there (None when absent); one that is there but
/// not a finite number is refused, never taken for absent (a NaN RescaleSlope was read as 1).
pub(crate) fn present_number(
    path: &Path,
    object: &InMemDicomObject,
    tag: Tag,
    name: &str,
) -> Result<Option<f64>> {
    let Some(element) = object.element_opt(tag).ok().flatten() else {
        return Ok(None);
    };
    // An element with an empty value is as good as absent (type 3 attributes are sent so).
    if element.to_str().is_ok_and(|s| s.trim().is_empty()) {
        return Ok(None);
    }
    match element.to_float64() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        Ok(v) => Err(DataError::invalid(
            path,
            element_name(tag, name),
            "a finite number",
            v.to_string(),
        )),
        Err(_) => Err(DataError::invalid(
            path,
            element_name(tag, name),
            "a number",
            element.to_str().map(|s| s.to_string()).unwrap_or_default(),
        )),
    }
}

pub(crate) fn element_name(tag: Tag, name: &str) -> String {
    format!("{name} ({:04X},{:04X})", tag.0, tag.1)
}

pub(crate) fn series_position(object: &InMemDicomObject) -> SeriesPosition {
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

/// RescaleSlope and RescaleIntercept: stored pixel → value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rescale {
    pub slope: f64,
    pub intercept: f64,
}

impl Rescale {
    /// The rescale of `object` (a data set or a functional group's item); identity if absent.
    pub fn read(path: &Path, object: &InMemDicomObject) -> Result<Rescale> {
        let slope = present_number(path, object, tags::RESCALE_SLOPE, "RescaleSlope")?;
        let intercept = present_number(path, object, tags::RESCALE_INTERCEPT, "RescaleIntercept")?;
        let (slope, intercept) = (slope.unwrap_or(1.0), intercept.unwrap_or(0.0));
        if slope == 0.0 {
            return Err(DataError::invalid(
                path,
                "RescaleSlope (0028,1053)",
                "a finite, non-zero slope",
                "0",
            ));
        }
        Ok(Rescale { slope, intercept })
    }

    pub fn apply(&self, stored: &[f32]) -> Vec<f32> {
        stored
            .iter()
            .map(|&raw| (raw as f64 * self.slope + self.intercept) as f32)
            .collect()
    }
}

/// The first `count` stored 16-bit pixels (MR magnitude images), not rescaled. `count` is
/// `None` when the header's sizes overflow; `sizes` names those fields.
pub(crate) fn stored_pixels(
    path: &Path,
    object: &InMemDicomObject,
    count: Option<usize>,
    sizes: &str,
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
    let field = element_name(tags::PIXEL_DATA, "PixelData");
    let element = object
        .element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        // Pixel data comes last: a file without it was most likely cut at an element boundary.
        .ok_or_else(|| {
            DataError::invalid(
                path,
                &field,
                "pixel data",
                format!("none: {}", lengths::ENDS_EARLY),
            )
        })?;
    let bytes = element
        .to_bytes()
        .map_err(|e| DataError::invalid(path, &field, "uncompressed pixel data", e.to_string()))?;
    let needed = count.and_then(|n| n.checked_mul(2)).ok_or_else(|| {
        DataError::invalid(path, sizes, "a size that fits in memory", "too large")
    })?;
    if bytes.len() < needed {
        return Err(DataError::invalid(
            path,
            &field,
            format!("{needed} bytes ({sizes}, 2 bytes each): is the file still being written?"),
            format!("{} bytes", bytes.len()),
        ));
    }
    Ok(bytes[..needed]
        .chunks_exact(2)
        .map(|b| {
            if signed {
                i16::from_le_bytes([b[0], b[1]]) as f32
            } else {
                u16::from_le_bytes([b[0], b[1]]) as f32
            }
        })
        .collect())
}
