//! Siemens' mosaic: the slices of one volume tiled row by row in one image of
//! ⌈√n⌉ × ⌈√n⌉ tiles. ImagePositionPatient is the corner of the whole mosaic; the first slice's
//! first voxel lies half the mosaic's extra extent further along the rows and columns (the
//! correction dcm2niix and nibabel apply). Slices follow the CSA SliceNormalVector.

use super::{csa, element_name, number, numbers, DefaultDicomObject};
use crate::error::{DataError, Result};
use dicom_dictionary_std::tags;
use dicom_object::Tag;
use std::path::Path;

/// What unpacking and placing a mosaic needs.
#[derive(Debug, Clone, PartialEq)]
pub struct MosaicHeader {
    pub mosaic_rows: usize,
    pub mosaic_columns: usize,
    /// Tiles per side of the mosaic.
    pub tiles: usize,
    /// One slice's rows and columns, and the number of slices.
    pub rows: usize,
    pub columns: usize,
    pub slices: usize,
    /// Unit direction (LPS) of increasing column index, of increasing row index, and of the
    /// slices.
    pub row_direction: [f64; 3],
    pub column_direction: [f64; 3],
    pub slice_direction: [f64; 3],
    /// Distance between rows, between columns and between slices (mm).
    pub row_spacing: f64,
    pub column_spacing: f64,
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
    #[allow(clippy::manual_is_multiple_of)] // `is_multiple_of` needs Rust 1.87
    pub fn read(path: &Path, object: &DefaultDicomObject) -> Result<MosaicHeader> {
        let csa = csa_image_header(path, object)?;
        let slices = mosaic_slices(path, &csa)?;
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
            _ => unit(
                path,
                orientation_field,
                cross(row_direction, column_direction),
            )?,
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

/// The parsed CSA Image Header Info, found through its private creator in group 0029.
fn csa_image_header(path: &Path, object: &DefaultDicomObject) -> Result<csa::CsaTags> {
    let not_mosaic = || {
        DataError::invalid(
            path,
            "CSA Image Header Info (0029,xx10)",
            "a Siemens mosaic with its CSA header",
            "no Siemens CSA header",
        )
    };
    let block = (0x10u16..=0xFF)
        .find(|&e| {
            object
                .element_opt(Tag(0x0029, e))
                .ok()
                .flatten()
                .and_then(|v| {
                    v.to_str()
                        .ok()
                        .map(|s| s.trim_end_matches('\0').trim() == "SIEMENS CSA HEADER")
                })
                .unwrap_or(false)
        })
        .ok_or_else(not_mosaic)?;
    let tag = Tag(0x0029, (block << 8) | 0x10);
    let bytes = object
        .element_opt(tag)
        .ok()
        .flatten()
        .ok_or_else(not_mosaic)?
        .to_bytes()
        .map_err(|e| {
            DataError::invalid(
                path,
                element_name(tag, "CSA Image Header Info"),
                "bytes",
                e.to_string(),
            )
        })?;
    csa::parse(&bytes).map_err(|e| {
        DataError::invalid(
            path,
            element_name(tag, "CSA Image Header Info"),
            "an SV10 CSA header",
            e.0,
        )
    })
}

fn mosaic_slices(path: &Path, csa: &csa::CsaTags) -> Result<usize> {
    let field = "CSA NumberOfImagesInMosaic";
    let values = csa.get("NumberOfImagesInMosaic").ok_or_else(|| {
        DataError::invalid(
            path,
            field,
            "the slice count of a mosaic (ImageType MOSAIC)",
            "missing: not a mosaic",
        )
    })?;
    let n = values
        .first()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    if !(n >= 1.0 && n <= MAX_SLICES as f64 && n.fract() == 0.0) {
        return Err(DataError::invalid(
            path,
            field,
            format!("a whole number of slices from 1 to {MAX_SLICES}"),
            format!("{values:?}"),
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
            .is_ok_and(|csa| csa.contains_key("NumberOfImagesInMosaic"))
}
