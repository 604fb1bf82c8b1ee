//! Writes a volume as a scanner's real-time export holds it, in the three layouts
//! [`super::read_file`] reads: a Siemens EPI mosaic (one classic MR Image Storage file in
//! implicit VR little endian, the slices tiled ⌈√n⌉ × ⌈√n⌉, the CSA image header giving their
//! count and normal, ImagePositionPatient at the mosaic's corner), an enhanced multi-frame
//! file (explicit VR, a frame per slice, geometry in functional groups) or a single-frame
//! series (a classic file per slice). The simulated scanner of the real-time route.

use super::csa;
use super::mosaic::{pack, tiles_for, MosaicHeader};
use crate::error::{DataError, Result};
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use std::path::{Path, PathBuf};

const MR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.4";
const ENHANCED_MR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.4.1";
const IMPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2";
const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";

/// How a scanner's export lays a volume out in files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DicomLayout {
    /// One Siemens mosaic file per volume.
    Mosaic,
    /// One enhanced multi-frame file per volume.
    Enhanced,
    /// One classic file per slice.
    Slices,
}

impl DicomLayout {
    /// Every layout, in the order `--layout` lists them.
    pub const ALL: [DicomLayout; 3] = [
        DicomLayout::Mosaic,
        DicomLayout::Enhanced,
        DicomLayout::Slices,
    ];

    /// The name `--layout` takes.
    pub fn name(self) -> &'static str {
        match self {
            DicomLayout::Mosaic => "mosaic",
            DicomLayout::Enhanced => "enhanced",
            DicomLayout::Slices => "slices",
        }
    }
}

/// One volume to write and its place in a series.
#[derive(Debug, Clone)]
pub struct ScannerVolume<'a> {
    /// (columns, rows, slices).
    pub shape: [usize; 3],
    /// Voxel (column, row, slice) → RAS+ mm; its columns must be orthogonal.
    pub affine: [[f64; 4]; 4],
    /// Stored values, x fastest.
    pub values: &'a [u16],
    /// A UID prefix the series' UIDs are made from (digits and dots).
    pub uid_root: &'a str,
    /// SeriesNumber (0020,0011).
    pub series_number: u32,
    /// 1-based volume number (AcquisitionNumber; InstanceNumber of a volume file).
    pub volume: u32,
    /// RepetitionTime (0018,0080), in ms.
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

/// Writes `volume` into `folder` in `layout`, named `{stem}.dcm` (a file per volume) or
/// `{stem}_{slice:04}.dcm` (a file per slice), each file through a hidden temporary file and
/// a rename so a watcher never sees it half-written. Returns the files in writing order.
pub fn write_volume(
    folder: &Path,
    stem: &str,
    volume: &ScannerVolume,
    layout: DicomLayout,
) -> Result<Vec<PathBuf>> {
    match layout {
        DicomLayout::Mosaic => {
            let path = folder.join(format!("{stem}.dcm"));
            write_mosaic(&path, volume)?;
            Ok(vec![path])
        }
        DicomLayout::Enhanced => {
            let path = folder.join(format!("{stem}.dcm"));
            write_enhanced(&path, volume)?;
            Ok(vec![path])
        }
        DicomLayout::Slices => write_slices(folder, stem, volume),
    }
}

/// Writes `volume` to `path` as a Siemens mosaic.
pub fn write_mosaic(path: &Path, volume: &ScannerVolume) -> Result<()> {
    let header = checked_header(volume)?;
    let (mosaic_rows, mosaic_columns) = (header.mosaic_rows, header.mosaic_columns);
    if mosaic_rows > u16::MAX as usize || mosaic_columns > u16::MAX as usize {
        return Err(DataError::Usage(format!(
            "a mosaic of {mosaic_rows} × {mosaic_columns} pixels does not fit DICOM's Rows/Columns"
        )));
    }
    let offset = header.corner_to_first_voxel();
    let corner: [f64; 3] = std::array::from_fn(|i| header.first_voxel[i] - offset[i]);
    let csa = csa::write(&[
        (
            "NumberOfImagesInMosaic",
            "US",
            vec![header.slices.to_string()],
        ),
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
    let instance_uid = format!("{}.{}", series_uid(volume), volume.volume);
    let mut object = series_elements(volume, &header, MR_IMAGE_STORAGE, &instance_uid);
    put_plane(&mut object, corner, [mosaic_rows, mosaic_columns], &header);
    let mut put = |tag: Tag, vr: VR, value: PrimitiveValue| {
        object.put(DataElement::new(tag, vr, value));
    };
    put(
        tags::IMAGE_TYPE,
        VR::CS,
        strings(&["ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"]),
    );
    put(
        tags::INSTANCE_NUMBER,
        VR::IS,
        text(volume.volume.to_string()),
    );
    put(Tag(0x0029, 0x0010), VR::LO, text("SIEMENS CSA HEADER"));
    put(
        Tag(0x0029, 0x1010),
        VR::OB,
        PrimitiveValue::U8(csa.into_iter().collect()),
    );
    let pixels = pack(&header, volume.values);
    put(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(pixels.into_iter().collect()),
    );
    save(
        path,
        object,
        MR_IMAGE_STORAGE,
        IMPLICIT_VR_LITTLE_ENDIAN,
        instance_uid,
    )
}

/// Writes `volume` to `path` as an enhanced multi-frame file: a frame per slice, the
/// orientation and spacing shared, each frame's position its own.
pub fn write_enhanced(path: &Path, volume: &ScannerVolume) -> Result<()> {
    let header = checked_plane(volume)?;
    let instance_uid = format!("{}.{}", series_uid(volume), volume.volume);
    let mut object = series_elements(volume, &header, ENHANCED_MR_IMAGE_STORAGE, &instance_uid);
    let spacing = decimals(&[header.slice_spacing], 4);
    let mut measures = InMemDicomObject::new_empty();
    measures.put(DataElement::new(
        tags::PIXEL_SPACING,
        VR::DS,
        pixel_spacing(&header),
    ));
    measures.put(DataElement::new(
        tags::SLICE_THICKNESS,
        VR::DS,
        spacing.clone(),
    ));
    measures.put(DataElement::new(
        tags::SPACING_BETWEEN_SLICES,
        VR::DS,
        spacing,
    ));
    let mut shared = InMemDicomObject::new_empty();
    put_sequence(&mut shared, tags::PIXEL_MEASURES_SEQUENCE, vec![measures]);
    put_sequence(
        &mut shared,
        tags::PLANE_ORIENTATION_SEQUENCE,
        vec![one_element(
            tags::IMAGE_ORIENTATION_PATIENT,
            orientation(&header),
        )],
    );
    let frames: Vec<InMemDicomObject> = (0..header.slices)
        .map(|k| {
            let mut frame = InMemDicomObject::new_empty();
            let position = decimals(&slice_position(&header, k), 5);
            put_sequence(
                &mut frame,
                tags::PLANE_POSITION_SEQUENCE,
                vec![one_element(tags::IMAGE_POSITION_PATIENT, position)],
            );
            frame
        })
        .collect();
    let mut put = |tag: Tag, vr: VR, value: PrimitiveValue| {
        object.put(DataElement::new(tag, vr, value));
    };
    put(
        tags::IMAGE_TYPE,
        VR::CS,
        strings(&["ORIGINAL", "PRIMARY", "M", "NONE"]),
    );
    put(
        tags::INSTANCE_NUMBER,
        VR::IS,
        text(volume.volume.to_string()),
    );
    put(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        text(header.slices.to_string()),
    );
    put(tags::ROWS, VR::US, PrimitiveValue::from(header.rows as u16));
    put(
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(header.columns as u16),
    );
    put(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(volume.values.iter().copied().collect()),
    );
    put_sequence(
        &mut object,
        tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
        vec![shared],
    );
    put_sequence(
        &mut object,
        tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
        frames,
    );
    save(
        path,
        object,
        ENHANCED_MR_IMAGE_STORAGE,
        EXPLICIT_VR_LITTLE_ENDIAN,
        instance_uid,
    )
}

/// A classic image's placement: its first voxel's position, orientation, pixel spacing and
/// [rows, columns] (checked to fit 16 bits by the caller).
fn put_plane(
    object: &mut InMemDicomObject,
    position: [f64; 3],
    [rows, columns]: [usize; 2],
    header: &MosaicHeader,
) {
    let mut put = |tag: Tag, vr: VR, value: PrimitiveValue| {
        object.put(DataElement::new(tag, vr, value));
    };
    put(tags::IMAGE_POSITION_PATIENT, VR::DS, decimals(&position, 5));
    put(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, orientation(header));
    put(tags::PIXEL_SPACING, VR::DS, pixel_spacing(header));
    put(tags::ROWS, VR::US, PrimitiveValue::from(rows as u16));
    put(tags::COLUMNS, VR::US, PrimitiveValue::from(columns as u16));
}

/// A sequence element of `items` put into `object`.
fn put_sequence(object: &mut InMemDicomObject, tag: Tag, items: Vec<InMemDicomObject>) {
    object.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
}

/// A functional group macro's item holding one decimal-string element.
fn one_element(tag: Tag, value: PrimitiveValue) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    item.put(DataElement::new(tag, VR::DS, value));
    item
}

/// Writes `volume` as a single-frame series: `{stem}_{slice:04}.dcm` per slice, instance
/// numbers running on through the series, the volume number as AcquisitionNumber and
/// TemporalPositionIdentifier.
pub fn write_slices(folder: &Path, stem: &str, volume: &ScannerVolume) -> Result<Vec<PathBuf>> {
    let header = checked_plane(volume)?;
    let pixels = header.rows * header.columns;
    let mut written = Vec::with_capacity(header.slices);
    for k in 0..header.slices {
        let instance = (volume.volume.saturating_sub(1) as usize) * header.slices + k + 1;
        let instance_uid = format!("{}.{instance}", series_uid(volume));
        let mut object = series_elements(volume, &header, MR_IMAGE_STORAGE, &instance_uid);
        let position = slice_position(&header, k);
        put_plane(
            &mut object,
            position,
            [header.rows, header.columns],
            &header,
        );
        let mut put = |tag: Tag, vr: VR, value: PrimitiveValue| {
            object.put(DataElement::new(tag, vr, value));
        };
        put(
            tags::IMAGE_TYPE,
            VR::CS,
            strings(&["ORIGINAL", "PRIMARY", "M", "ND"]),
        );
        put(tags::INSTANCE_NUMBER, VR::IS, text(instance.to_string()));
        put(
            tags::TEMPORAL_POSITION_IDENTIFIER,
            VR::IS,
            text(volume.volume.to_string()),
        );
        let slice = &volume.values[k * pixels..(k + 1) * pixels];
        put(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(slice.iter().copied().collect()),
        );
        let path = folder.join(format!("{stem}_{:04}.dcm", k + 1));
        save(
            &path,
            object,
            MR_IMAGE_STORAGE,
            IMPLICIT_VR_LITTLE_ENDIAN,
            instance_uid,
        )?;
        written.push(path);
    }
    Ok(written)
}

/// The volume's geometry, its values counted.
fn checked_header(volume: &ScannerVolume) -> Result<MosaicHeader> {
    let [columns, rows, slices] = volume.shape;
    let expected = columns
        .checked_mul(rows)
        .and_then(|n| n.checked_mul(slices));
    if expected != Some(volume.values.len()) || slices == 0 {
        return Err(DataError::Usage(format!(
            "a volume of {columns} × {rows} × {slices} voxels needs that many values, got {}",
            volume.values.len()
        )));
    }
    Ok(mosaic_header(volume.shape, &volume.affine))
}

/// As [`checked_header`], for layouts whose images are one slice (Rows, Columns ≤ 65535).
fn checked_plane(volume: &ScannerVolume) -> Result<MosaicHeader> {
    let header = checked_header(volume)?;
    if header.rows > u16::MAX as usize || header.columns > u16::MAX as usize {
        return Err(DataError::Usage(format!(
            "slices of {} × {} pixels do not fit DICOM's Rows/Columns",
            header.rows, header.columns
        )));
    }
    Ok(header)
}

/// LPS position of slice `k`'s first voxel.
fn slice_position(header: &MosaicHeader, k: usize) -> [f64; 3] {
    std::array::from_fn(|i| {
        header.first_voxel[i] + header.slice_direction[i] * header.slice_spacing * k as f64
    })
}

fn orientation(header: &MosaicHeader) -> PrimitiveValue {
    let v: Vec<f64> = header
        .row_direction
        .iter()
        .chain(&header.column_direction)
        .copied()
        .collect();
    decimals(&v, 8)
}

fn pixel_spacing(header: &MosaicHeader) -> PrimitiveValue {
    decimals(&[header.row_spacing, header.column_spacing], 5)
}

fn strings(values: &[&str]) -> PrimitiveValue {
    PrimitiveValue::Strs(values.iter().map(|v| v.to_string()).collect())
}

fn series_uid(volume: &ScannerVolume) -> String {
    format!("{}.2.{}", volume.uid_root, volume.series_number)
}

/// The elements every layout's files share: identity, series, timing, pixel format.
fn series_elements(
    volume: &ScannerVolume,
    header: &MosaicHeader,
    sop_class: &str,
    instance_uid: &str,
) -> InMemDicomObject {
    let time = volume.repetition_time_ms / 1000.0 * (volume.volume.saturating_sub(1)) as f64;
    let mut object = InMemDicomObject::new_empty();
    let mut put = |tag: Tag, vr: VR, value: PrimitiveValue| {
        object.put(DataElement::new(tag, vr, value));
    };
    put(tags::SOP_CLASS_UID, VR::UI, text(sop_class));
    put(tags::SOP_INSTANCE_UID, VR::UI, text(instance_uid));
    put(tags::MODALITY, VR::CS, text("MR"));
    put(tags::MANUFACTURER, VR::LO, text("SIEMENS"));
    put(
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        text(format!("{}.1", volume.uid_root)),
    );
    put(tags::SERIES_INSTANCE_UID, VR::UI, text(series_uid(volume)));
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
    if sop_class == MR_IMAGE_STORAGE {
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
    }
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
    object
}

/// Writes `object` with its file meta to `path` through a hidden temporary file.
fn save(
    path: &Path,
    object: InMemDicomObject,
    sop_class: &str,
    transfer_syntax: &str,
    instance_uid: String,
) -> Result<()> {
    let file = object
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(transfer_syntax)
                .media_storage_sop_class_uid(sop_class)
                .media_storage_sop_instance_uid(instance_uid),
        )
        .map_err(|e| DataError::format(path, "DICOM", e))?;
    // The DICOM writer's own error type is large; it only lives until it becomes a DataError.
    #[allow(clippy::result_large_err)]
    let write = |tmp: &Path| file.write_to_file(tmp);
    brainrecon_core::fs::write_atomic_via_path(path, "DICOM", write)
}
