//! Siemens' mosaic: the slices of one volume tiled row by row in one image of
//! ⌈√n⌉ × ⌈√n⌉ tiles. ImagePositionPatient is the corner of the whole mosaic; the first slice's
//! first voxel lies half the mosaic's extra extent further along the rows and columns (the
//! correction dcm2niix and nibabel apply). Slices follow the CSA SliceNormalVector.
//!
//! Anonymisers on the way out of a hospital archive often strip the private CSA header
//! (group 0029) and keep the Siemens MR header's (0019,xx0A) NumberOfImagesInMosaic. Such a
//! mosaic is read as dcm2niix reads it: the slice count from (0019,xx0A), the slice normal the
//! cross product of ImageOrientationPatient's row and column directions, turned to point
//! towards the head (+z, LPS) when it points away: dcm2niix's default SliceNormalVector is
//! (0, 0, 1), "Siemens image numbering F>>H", and it flips the normal whose sign disagrees.

use super::{csa, element_name, number, numbers, DefaultDicomObject};
use crate::error::{DataError, Result};
use dicom_dictionary_std::tags;
use dicom_object::Tag;
use std::path::Path;

/// What unpacking and placing a mosaic needs.
#[derive(Debug, Clone, PartialEq)]
pub struct MosaicHeader {
    /// Rows of the whole mosaic image (Rows, 0028,0010).
    pub mosaic_rows: usize,
    /// Columns of the whole mosaic image (Columns, 0028,0011).
    pub mosaic_columns: usize,
    /// Tiles per side of the mosaic.
    pub tiles: usize,
    /// Rows of one slice: `mosaic_rows / tiles`.
    pub rows: usize,
    /// Columns of one slice: `mosaic_columns / tiles`.
    pub columns: usize,
    /// Slices in the volume (tiles in use): the CSA NumberOfImagesInMosaic or (0019,xx0A).
    pub slices: usize,
    /// Unit LPS direction of increasing column index (ImageOrientationPatient's first three).
    pub row_direction: [f64; 3],
    /// Unit LPS direction of increasing row index (ImageOrientationPatient's last three).
    pub column_direction: [f64; 3],
    /// Unit LPS direction of increasing slice index (CSA SliceNormalVector, or the row ×
    /// column cross product turned towards the head).
    pub slice_direction: [f64; 3],
    /// Distance between rows, mm (PixelSpacing's first value).
    pub row_spacing: f64,
    /// Distance between columns, mm (PixelSpacing's second value).
    pub column_spacing: f64,
    /// Distance between slices, mm (SpacingBetweenSlices, else SliceThickness).
    pub slice_spacing: f64,
    /// LPS position of the first slice's first voxel.
    pub first_voxel: [f64; 3],
}

/// Slices a mosaic holds at most (64 × 64 tiles).
const MAX_SLICES: usize = 4096;

/// Tiles per side of a mosaic of `slices` slices: ⌈√slices⌉.
pub fn tiles_for(slices: usize) -> usize {
    (1..=64).find(|t| t * t >= slices).unwrap_or(64)
}

impl MosaicHeader {
    /// Reads a mosaic's tiling and geometry from a classic Siemens file, as dcm2niix does (see
    /// the module's notes on a stripped CSA header). Errors name the file and the element: Rows
    /// and Columns not a multiple of the tiles, a missing or zero ImageOrientationPatient,
    /// non-positive PixelSpacing or slice spacing, a broken CSA header.
    #[allow(clippy::manual_is_multiple_of)] // `is_multiple_of` needs Rust 1.87
    pub fn read(path: &Path, object: &DefaultDicomObject) -> Result<MosaicHeader> {
        // No CSA header at all (stripped by an anonymiser) reads as an empty one; a CSA header
        // that is there but broken is refused.
        let csa = csa_image_header(path, object)?.unwrap_or_default();
        let slices = mosaic_slices(path, object, &csa)?;
        let mosaic_rows = number(path, object, tags::ROWS, "Rows")? as usize;
        let mosaic_columns = number(path, object, tags::COLUMNS, "Columns")? as usize;
        let tiles = tiles_for(slices);
        if mosaic_rows == 0
            || mosaic_columns == 0
            || mosaic_rows % tiles != 0
            || mosaic_columns % tiles != 0
        {
            return Err(DataError::invalid(
                path,
                "Rows (0028,0010) and Columns (0028,0011)",
                format!("multiples of {tiles} (a mosaic of {slices} slices has {tiles} × {tiles} tiles)"),
                format!("{mosaic_rows} × {mosaic_columns}"),
            ));
        }
        let orientation = numbers(
            path,
            object,
            tags::IMAGE_ORIENTATION_PATIENT,
            "ImageOrientationPatient",
            6,
        )?;
        let orientation_field = "ImageOrientationPatient (0020,0037)";
        let row_direction = unit(
            path,
            orientation_field,
            [orientation[0], orientation[1], orientation[2]],
        )?;
        let column_direction = unit(
            path,
            orientation_field,
            [orientation[3], orientation[4], orientation[5]],
        )?;
        let spacing = numbers(path, object, tags::PIXEL_SPACING, "PixelSpacing", 2)?;
        let slice_spacing = slice_spacing(path, object)?;
        let slice_direction = match csa.get("SliceNormalVector") {
            Some(v) if v.len() == 3 => unit(path, "CSA SliceNormalVector", parse3(path, v)?)?,
            _ => {
                let normal = unit(
                    path,
                    orientation_field,
                    cross(row_direction, column_direction),
                )?;
                // dcm2niix's default normal (0, 0, 1): the slices go from feet to head.
                if normal[2] < 0.0 {
                    normal.map(|x| -x)
                } else {
                    normal
                }
            }
        };
        let corner = numbers(
            path,
            object,
            tags::IMAGE_POSITION_PATIENT,
            "ImagePositionPatient",
            3,
        )?;
        let (rows, columns) = (mosaic_rows / tiles, mosaic_columns / tiles);
        let (row_spacing, column_spacing) = (spacing[0], spacing[1]);
        if !(row_spacing > 0.0 && column_spacing > 0.0) {
            return Err(DataError::invalid(
                path,
                "PixelSpacing (0028,0030)",
                "two positive spacings (mm)",
                format!("{spacing:?}"),
            ));
        }
        let mut header = MosaicHeader {
            mosaic_rows,
            mosaic_columns,
            tiles,
            rows,
            columns,
            slices,
            row_direction,
            column_direction,
            slice_direction,
            row_spacing,
            column_spacing,
            slice_spacing,
            first_voxel: [0.0; 3],
        };
        let offset = header.corner_to_first_voxel();
        header.first_voxel = std::array::from_fn(|i| corner[i] + offset[i]);
        Ok(header)
    }

    /// From ImagePositionPatient (the whole mosaic's corner) to the first slice's first
    /// voxel (LPS mm): half the mosaic's extra extent along the rows and the columns.
    pub fn corner_to_first_voxel(&self) -> [f64; 3] {
        let along_row = self.column_spacing * (self.mosaic_columns - self.columns) as f64 / 2.0;
        let along_column = self.row_spacing * (self.mosaic_rows - self.rows) as f64 / 2.0;
        std::array::from_fn(|i| {
            self.row_direction[i] * along_row + self.column_direction[i] * along_column
        })
    }

    /// Voxel (column, row, slice) → RAS+ mm, row-major 4 × 4.
    pub fn affine(&self) -> [[f64; 4]; 4] {
        let step = |direction: [f64; 3], spacing: f64| direction.map(|d| d * spacing);
        super::ras_affine(
            [
                step(self.row_direction, self.column_spacing),
                step(self.column_direction, self.row_spacing),
                step(self.slice_direction, self.slice_spacing),
            ],
            self.first_voxel,
        )
    }
}

/// The slices of `mosaic` (mosaic_rows × mosaic_columns, row-major) as one volume, x (the
/// column) fastest, then the row, then the slice.
pub fn unpack(header: &MosaicHeader, mosaic: &[f32]) -> Vec<f32> {
    let (rows, columns) = (header.rows, header.columns);
    let mut out = Vec::with_capacity(rows * columns * header.slices);
    for k in 0..header.slices {
        let (tile_row, tile_column) = (k / header.tiles, k % header.tiles);
        for j in 0..rows {
            let start = (tile_row * rows + j) * header.mosaic_columns + tile_column * columns;
            out.extend_from_slice(&mosaic[start..start + columns]);
        }
    }
    out
}

/// The inverse of [`unpack`]: a volume (x fastest) tiled into a mosaic, empty tiles 0.
pub fn pack<T: Copy + Default>(header: &MosaicHeader, volume: &[T]) -> Vec<T> {
    let (rows, columns) = (header.rows, header.columns);
    let mut mosaic = vec![T::default(); header.mosaic_rows * header.mosaic_columns];
    for (k, slice) in volume
        .chunks_exact(rows * columns)
        .enumerate()
        .take(header.slices)
    {
        let (tile_row, tile_column) = (k / header.tiles, k % header.tiles);
        for (j, line) in slice.chunks_exact(columns).enumerate() {
            let start = (tile_row * rows + j) * header.mosaic_columns + tile_column * columns;
            mosaic[start..start + columns].copy_from_slice(line);
        }
    }
    mosaic
}

/// The element `element` (0x00–0xFF) of the private block whose creator is `creator` in
/// `group` (the creator's block number in the element's high byte, as PS3.5 7.8.1 assigns).
fn private_element<'a>(
    object: &'a DefaultDicomObject,
    group: u16,
    creator: &str,
    element: u16,
) -> Option<(Tag, &'a dicom_object::mem::InMemElement)> {
    let block = (0x10u16..=0xFF).find(|&e| {
        object
            .element_opt(Tag(group, e))
            .ok()
            .flatten()
            .and_then(|v| {
                v.to_str()
                    .ok()
                    .map(|s| s.trim_end_matches('\0').trim() == creator)
            })
            .unwrap_or(false)
    })?;
    let tag = Tag(group, (block << 8) | element);
    object
        .element_opt(tag)
        .ok()
        .flatten()
        .map(|found| (tag, found))
}

/// The parsed CSA Image Header Info, found through its private creator in group 0029; `None`
/// when the file has none (an anonymiser removed group 0029), `Err` when it is there but
/// does not parse.
fn csa_image_header(path: &Path, object: &DefaultDicomObject) -> Result<Option<csa::CsaTags>> {
    let Some((tag, element)) = private_element(object, 0x0029, "SIEMENS CSA HEADER", 0x10) else {
        return Ok(None);
    };
    let bytes = element.to_bytes().map_err(|e| {
        DataError::invalid(
            path,
            element_name(tag, "CSA Image Header Info"),
            "bytes",
            e.to_string(),
        )
    })?;
    csa::parse(&bytes).map(Some).map_err(|e| {
        DataError::invalid(
            path,
            element_name(tag, "CSA Image Header Info"),
            "an SV10 CSA header",
            e.0,
        )
    })
}

/// NumberOfImagesInMosaic of the Siemens MR header, (0019,xx0A) under the creator "SIEMENS MR
/// HEADER" (or (0019,100A) of a Siemens file that lost its creator element), with its tag;
/// `None` when absent, `Err(its text)` when it is there but not a number.
fn mr_header_slices(
    object: &DefaultDicomObject,
) -> Option<(Tag, std::result::Result<f64, String>)> {
    let (tag, element) =
        private_element(object, 0x0019, "SIEMENS MR HEADER", 0x0A).or_else(|| {
            let siemens = object
                .element_opt(tags::MANUFACTURER)
                .ok()
                .flatten()
                .and_then(|e| {
                    e.to_str()
                        .ok()
                        .map(|s| s.to_ascii_uppercase().contains("SIEMENS"))
                })
                .unwrap_or(false);
            let tag = Tag(0x0019, 0x100A);
            siemens
                .then(|| object.element_opt(tag).ok().flatten())
                .flatten()
                .map(|e| (tag, e))
        })?;
    use dicom_core::VR;
    let value = match element.vr() {
        // An implicit-VR file: the dictionary does not know the private tag, so its two
        // (US) or four (UL) bytes come as they are.
        VR::UN | VR::OB | VR::OW => match element.to_bytes().ok().as_deref() {
            Some(&[a, b]) => Ok(u16::from_le_bytes([a, b]) as f64),
            Some(&[a, b, c, d]) => Ok(u32::from_le_bytes([a, b, c, d]) as f64),
            other => Err(format!("{other:?}")),
        },
        _ => element
            .to_float64()
            .map_err(|_| element.to_str().map(|s| s.to_string()).unwrap_or_default()),
    };
    Some((tag, value))
}

/// The mosaic's slice count: the CSA header's NumberOfImagesInMosaic, else the Siemens MR
/// header's (0019,xx0A) (dcm2niix's order).
fn mosaic_slices(path: &Path, object: &DefaultDicomObject, csa: &csa::CsaTags) -> Result<usize> {
    let (field, n, found) =
        match csa.get("NumberOfImagesInMosaic") {
            Some(values) => {
                let n = values
                    .first()
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .unwrap_or(0.0);
                (
                    "CSA NumberOfImagesInMosaic".to_string(),
                    n,
                    format!("{values:?}"),
                )
            }
            None => match mr_header_slices(object) {
                Some((tag, Ok(n))) => (
                    element_name(tag, "NumberOfImagesInMosaic"),
                    n,
                    n.to_string(),
                ),
                Some((tag, Err(text))) => (element_name(tag, "NumberOfImagesInMosaic"), 0.0, text),
                None => return Err(DataError::invalid(
                    path,
                    "CSA NumberOfImagesInMosaic (0029,xx10) or NumberOfImagesInMosaic (0019,xx0A)",
                    "the slice count of a mosaic (ImageType MOSAIC)",
                    "neither is there (no CSA header and no Siemens MR header)",
                )),
            },
        };
    if !(n >= 1.0 && n <= MAX_SLICES as f64 && n.fract() == 0.0) {
        return Err(DataError::invalid(
            path,
            field,
            format!("a whole number of slices from 1 to {MAX_SLICES}"),
            found,
        ));
    }
    Ok(n as usize)
}

fn slice_spacing(path: &Path, object: &DefaultDicomObject) -> Result<f64> {
    let spacing = number(
        path,
        object,
        tags::SPACING_BETWEEN_SLICES,
        "SpacingBetweenSlices",
    )
    .or_else(|_| number(path, object, tags::SLICE_THICKNESS, "SliceThickness"))?;
    if spacing > 0.0 {
        Ok(spacing)
    } else {
        Err(DataError::invalid(
            path,
            "SpacingBetweenSlices (0018,0088)",
            "a positive distance (mm)",
            spacing.to_string(),
        ))
    }
}

fn parse3(path: &Path, values: &[String]) -> Result<[f64; 3]> {
    let mut out = [0.0; 3];
    for (o, v) in out.iter_mut().zip(values) {
        *o = v.trim().parse().map_err(|_| {
            DataError::invalid(
                path,
                "CSA SliceNormalVector",
                "three numbers",
                format!("{values:?}"),
            )
        })?;
    }
    Ok(out)
}

pub(crate) fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// `v` scaled to unit length; refused (naming `field`) when it has none.
pub(crate) fn unit(path: &Path, field: &str, v: [f64; 3]) -> Result<[f64; 3]> {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm.is_nan() || norm <= 1e-6 || !norm.is_finite() {
        return Err(DataError::invalid(
            path,
            field,
            "a direction (non-zero, finite)",
            format!("{v:?}"),
        ));
    }
    Ok(v.map(|x| x / norm))
}

/// Whether a classic file is a Siemens mosaic: ImageType says MOSAIC, or its CSA header gives
/// NumberOfImagesInMosaic (dcm2niix reads either).
pub fn is_mosaic(object: &DefaultDicomObject) -> bool {
    let image_type_says = object
        .element_opt(tags::IMAGE_TYPE)
        .ok()
        .flatten()
        .and_then(|e| e.to_multi_str().ok())
        .is_some_and(|values| values.iter().any(|v| v.trim() == "MOSAIC"));
    image_type_says
        || csa_image_header(Path::new(""), object)
            .is_ok_and(|csa| csa.is_some_and(|csa| csa.contains_key("NumberOfImagesInMosaic")))
}
