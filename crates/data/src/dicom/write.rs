//! Writes a volume as the Siemens EPI mosaic a scanner's real-time export holds: one classic
//! MR Image Storage file in implicit VR little endian, the slices tiled ⌈√n⌉ × ⌈√n⌉, the CSA
//! image header giving their count and normal, ImagePositionPatient at the mosaic's corner.
//! The inverse of [`super::read_volume`]; the simulated scanner of the real-time route.

use super::csa;
use super::mosaic::{pack, tiles_for, MosaicHeader};
use crate::error::{DataError, Result};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use std::path::Path;

const MR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.4";
const IMPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2";

/// One volume to write and its place in a series.
#[derive(Debug, Clone)]
pub struct MosaicVolume<'a> {
    /// (columns, rows, slices).
    pub shape: [usize; 3],
    /// Voxel (column, row, slice) → RAS+ mm; its columns must be orthogonal.
    pub affine: [[f64; 4]; 4],
    /// Stored values, x fastest.
    pub values: &'a [u16],
    /// A UID prefix the series' UIDs are made from (digits and dots).
    pub uid_root: &'a str,
    pub series_number: u32,
    /// 1-based volume number (AcquisitionNumber, InstanceNumber).
    pub volume: u32,
    pub repetition_time_ms: f64,
}

/// The mosaic that holds a volume of `shape` (columns, rows, slices) placed by the RAS
/// `affine`: its tiling and LPS geometry, as [`MosaicHeader::read`] would find them.
fn mosaic_header(shape: [usize; 3], affine: &[[f64; 4]; 4]) -> MosaicHeader {
    let [columns, rows, slices] = shape;
    let lps = |r: usize, v: f64| if r < 2 { -v } else { v };
    let mut directions = [[0.0; 3]; 3];
    let mut spacings = [0.0; 3];
    for c in 0..3 {
        let column: [f64; 3] = std::array::from_fn(|r| lps(r, affine[r][c]));
        spacings[c] = column.iter().map(|v| v * v).sum::<f64>().sqrt();
        directions[c] = column.map(|v| v / spacings[c]);
    }
    let tiles = tiles_for(slices);
    MosaicHeader {
        mosaic_rows: rows * tiles,
        mosaic_columns: columns * tiles,
        tiles,
        rows,
        columns,
        slices,
        row_direction: directions[0],
        column_direction: directions[1],
        slice_direction: directions[2],
        row_spacing: spacings[1],
        column_spacing: spacings[0],
        slice_spacing: spacings[2],
        first_voxel: std::array::from_fn(|r| lps(r, affine[r][3])),
    }
}

fn decimals(values: &[f64], places: usize) -> PrimitiveValue {
    PrimitiveValue::Strs(values.iter().map(|v| format!("{v:.places$}")).collect())
}

fn text(value: impl Into<String>) -> PrimitiveValue {
    PrimitiveValue::from(value.into())
}

/// Writes `volume` to `path` (through a hidden temporary file and a rename, so a watcher
/// never sees it half-written).
pub fn write_mosaic(path: &Path, volume: &MosaicVolume) -> Result<()> {
    let [columns, rows, slices] = volume.shape;
    let expected = columns
        .checked_mul(rows)
        .and_then(|n| n.checked_mul(slices));
    if expected != Some(volume.values.len()) || slices == 0 {
        return Err(DataError::Usage(format!(
            "a mosaic of {columns} × {rows} × {slices} voxels needs that many values, got {}",
            volume.values.len()
        )));
    }
    let header = mosaic_header(volume.shape, &volume.affine);
    let (mosaic_rows, mosaic_columns) = (header.mosaic_rows, header.mosaic_columns);
    if mosaic_rows > u16::MAX as usize || mosaic_columns > u16::MAX as usize {
        return Err(DataError::Usage(format!(
            "a mosaic of {mosaic_rows} × {mosaic_columns} pixels does not fit DICOM's Rows/Columns"
        )));
    }
    let offset = header.corner_to_first_voxel();
    let corner: [f64; 3] = std::array::from_fn(|i| header.first_voxel[i] - offset[i]);
    let pixels = pack(&header, volume.values);
    let csa = csa::write(&[
        ("NumberOfImagesInMosaic", "US", vec![slices.to_string()]),
        (
            "SliceNormalVector",
            "FD",
            header
                .slice_direction
                .iter()
                .map(|v| format!("{v:.8}"))
                .collect(),
        ),
    ]);
    let series_uid = format!("{}.2.{}", volume.uid_root, volume.series_number);
    let instance_uid = format!("{series_uid}.{}", volume.volume);
    let time = volume.repetition_time_ms / 1000.0 * (volume.volume.saturating_sub(1)) as f64;
    let mut object = InMemDicomObject::new_empty();
    let mut put = |tag: Tag, vr: VR, value: PrimitiveValue| {
        object.put(DataElement::new(tag, vr, value));
    };
    put(tags::SOP_CLASS_UID, VR::UI, text(MR_IMAGE_STORAGE));
    put(tags::SOP_INSTANCE_UID, VR::UI, text(instance_uid.clone()));
    put(
        tags::IMAGE_TYPE,
        VR::CS,
        PrimitiveValue::Strs(
            ["ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"]
                .map(String::from)
                .into_iter()
                .collect(),
        ),
    );
    put(tags::MODALITY, VR::CS, text("MR"));
    put(tags::MANUFACTURER, VR::LO, text("SIEMENS"));
    put(
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        text(format!("{}.1", volume.uid_root)),
    );
    put(tags::SERIES_INSTANCE_UID, VR::UI, text(series_uid));
    put(
        tags::SERIES_NUMBER,
        VR::IS,
        text(volume.series_number.to_string()),
    );
    put(
        tags::ACQUISITION_NUMBER,
        VR::IS,
        text(volume.volume.to_string()),
    );
    put(
        tags::INSTANCE_NUMBER,
        VR::IS,
        text(volume.volume.to_string()),
    );
    put(
        tags::ACQUISITION_TIME,
        VR::TM,
        text(format!(
            "{:06}.{:06}",
            100000 + time as u64,
            ((time.fract()) * 1e6) as u64
        )),
    );
    put(
        tags::REPETITION_TIME,
        VR::DS,
        decimals(&[volume.repetition_time_ms], 1),
    );
    put(
        tags::SLICE_THICKNESS,
        VR::DS,
        decimals(&[header.slice_spacing], 4),
    );
    put(
        tags::SPACING_BETWEEN_SLICES,
        VR::DS,
        decimals(&[header.slice_spacing], 4),
    );
    put(tags::IMAGE_POSITION_PATIENT, VR::DS, decimals(&corner, 5));
    let orientation: Vec<f64> = header
        .row_direction
        .iter()
        .chain(&header.column_direction)
        .copied()
        .collect();
    put(
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        decimals(&orientation, 8),
    );
    put(
        tags::PIXEL_SPACING,
        VR::DS,
        decimals(&[header.row_spacing, header.column_spacing], 5),
    );
    put(tags::ROWS, VR::US, PrimitiveValue::from(mosaic_rows as u16));
    put(
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(mosaic_columns as u16),
    );
    put(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16));
    put(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        text("MONOCHROME2"),
    );
    put(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16));
    put(tags::BITS_STORED, VR::US, PrimitiveValue::from(16u16));
    put(tags::HIGH_BIT, VR::US, PrimitiveValue::from(15u16));
    put(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0u16),
    );
    put(Tag(0x0029, 0x0010), VR::LO, text("SIEMENS CSA HEADER"));
    put(
        Tag(0x0029, 0x1010),
        VR::OB,
        PrimitiveValue::U8(csa.into_iter().collect()),
    );
    put(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(pixels.into_iter().collect()),
    );
    let file = object
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(IMPLICIT_VR_LITTLE_ENDIAN)
                .media_storage_sop_class_uid(MR_IMAGE_STORAGE)
                .media_storage_sop_instance_uid(instance_uid),
        )
        .map_err(|e| DataError::format(path, "DICOM", e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = path.with_file_name(format!(".{name}.partial"));
    file.write_to_file(&partial)
        .map_err(|e| DataError::format(&partial, "DICOM", e))?;
    std::fs::rename(&partial, path).map_err(|e| DataError::io(path, e))
}
