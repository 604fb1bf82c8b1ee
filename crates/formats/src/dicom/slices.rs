//! Slices placed one by one (ImagePositionPatient each) stacked into a volume: the files of a
//! single-frame series, and the frames of an enhanced multi-frame file. Slices are sorted by
//! their position along the normal of their shared orientation (not by file name or
//! instance number: interleaved acquisitions write them out of order), must be evenly spaced
//! along one direction, and the affine's third column is the step between them, as dcm2niix
//! computes it.

use super::mosaic::{cross, unit};
use super::{
    element_name, numbers, optional_number, ras_affine, series_position, stored_pixels,
    DicomVolume, Rescale, SeriesPosition,
};
use crate::error::{DataError, Result};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use std::path::{Path, PathBuf};

/// Slices a volume may have at most.
pub const MAX_SLICES: usize = 4096;

/// The in-plane geometry every slice of a stack shares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plane {
    /// Rows of a slice (Rows, 0028,0010).
    pub rows: usize,
    /// Columns of a slice (Columns, 0028,0011).
    pub columns: usize,
    /// Unit LPS direction of increasing column index (ImageOrientationPatient's first three).
    pub row_direction: [f64; 3],
    /// Unit LPS direction of increasing row index (ImageOrientationPatient's last three).
    pub column_direction: [f64; 3],
    /// Distance between rows, mm (PixelSpacing's first value).
    pub row_spacing: f64,
    /// Distance between columns, mm (PixelSpacing's second value).
    pub column_spacing: f64,
}

impl Plane {
    /// Reads Rows, Columns, ImageOrientationPatient and PixelSpacing from `orientation`'s
    /// and `measures`' items (the same data set for a classic file).
    pub fn read(
        path: &Path,
        sizes: &InMemDicomObject,
        orientation: &InMemDicomObject,
        measures: &InMemDicomObject,
    ) -> Result<Plane> {
        let size = |tag, name| -> Result<usize> {
            let v = super::number(path, sizes, tag, name)?;
            if (1.0..=65535.0).contains(&v) && v.fract() == 0.0 {
                Ok(v as usize)
            } else {
                Err(DataError::invalid(
                    path,
                    element_name(tag, name),
                    "a whole number from 1 to 65535",
                    v.to_string(),
                ))
            }
        };
        let iop = numbers(
            path,
            orientation,
            tags::IMAGE_ORIENTATION_PATIENT,
            "ImageOrientationPatient",
            6,
        )?;
        let field = "ImageOrientationPatient (0020,0037)";
        let spacing = numbers(path, measures, tags::PIXEL_SPACING, "PixelSpacing", 2)?;
        if !(spacing[0] > 0.0 && spacing[1] > 0.0) {
            return Err(DataError::invalid(
                path,
                "PixelSpacing (0028,0030)",
                "two positive spacings (mm)",
                format!("{spacing:?}"),
            ));
        }
        Ok(Plane {
            rows: size(tags::ROWS, "Rows")?,
            columns: size(tags::COLUMNS, "Columns")?,
            row_direction: unit(path, field, [iop[0], iop[1], iop[2]])?,
            column_direction: unit(path, field, [iop[3], iop[4], iop[5]])?,
            row_spacing: spacing[0],
            column_spacing: spacing[1],
        })
    }

    /// The unit normal (row direction × column direction).
    pub fn normal(&self) -> [f64; 3] {
        let n = cross(self.row_direction, self.column_direction);
        let norm = n.iter().map(|v| v * v).sum::<f64>().sqrt();
        n.map(|v| v / norm)
    }

    /// Same shape, orientation and spacing within what scanners round to.
    pub fn matches(&self, other: &Plane) -> bool {
        let close = |a: &[f64], b: &[f64], tolerance: f64| {
            a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tolerance)
        };
        self.rows == other.rows
            && self.columns == other.columns
            && close(&self.row_direction, &other.row_direction, 1e-4)
            && close(&self.column_direction, &other.column_direction, 1e-4)
            && close(
                &[self.row_spacing, self.column_spacing],
                &[other.row_spacing, other.column_spacing],
                1e-4,
            )
    }

    /// Pixels in one slice, checked.
    pub fn pixels(&self) -> Option<usize> {
        self.rows.checked_mul(self.columns)
    }
}

/// One slice placed in space, with its rescaled values (columns fastest).
#[derive(Debug, Clone)]
pub struct PlacedSlice {
    /// LPS position of its first voxel.
    pub position: [f64; 3],
    /// Rescaled values (RescaleSlope, RescaleIntercept), columns fastest.
    pub values: Vec<f32>,
}

/// One file of a single-frame series.
#[derive(Debug, Clone)]
pub struct DicomSlice {
    /// The slice's in-plane geometry.
    pub plane: Plane,
    /// Its position and values.
    pub slice: PlacedSlice,
    /// SpacingBetweenSlices or SliceThickness: the stack's spacing when it has one slice.
    pub nominal_spacing: Option<f64>,
    /// Where the file sits in its series.
    pub series: SeriesPosition,
    /// TemporalPositionIdentifier (0020,0100): which volume of the run the slice belongs to,
    /// where the scanner writes it.
    pub temporal_position: Option<i64>,
}

impl DicomSlice {
    /// Which volume of its series the slice belongs to, by what the scanner wrote: the
    /// temporal position, else the acquisition number (`None` when neither is written).
    pub fn volume_key(&self) -> Option<i64> {
        self.temporal_position.or(self.series.acquisition_number)
    }
}

/// Reads a classic single-slice file.
pub fn read(path: &Path, object: &DefaultDicomObject) -> Result<DicomSlice> {
    let plane = Plane::read(path, object, object, object)?;
    let position = position(path, object)?;
    let stored = stored_pixels(path, object, plane.pixels(), "Rows × Columns")?;
    let values = Rescale::read(path, object)?.apply(&stored);
    Ok(DicomSlice {
        plane,
        slice: PlacedSlice { position, values },
        nominal_spacing: nominal_spacing(object),
        series: series_position(object),
        temporal_position: optional_number(object, tags::TEMPORAL_POSITION_IDENTIFIER)
            .map(|v| v as i64),
    })
}

/// ImagePositionPatient of a data set or a PlanePositionSequence item.
pub(crate) fn position(path: &Path, object: &InMemDicomObject) -> Result<[f64; 3]> {
    let p = numbers(
        path,
        object,
        tags::IMAGE_POSITION_PATIENT,
        "ImagePositionPatient",
        3,
    )?;
    Ok([p[0], p[1], p[2]])
}

/// SpacingBetweenSlices, else SliceThickness, if positive.
pub(crate) fn nominal_spacing(object: &InMemDicomObject) -> Option<f64> {
    optional_number(object, tags::SPACING_BETWEEN_SLICES)
        .or_else(|| optional_number(object, tags::SLICE_THICKNESS))
        .filter(|v| *v > 0.0)
}

/// The files of one volume of a single-frame series stacked (any order). The files must
/// share their plane; `Err` names the first that does not.
pub fn stack_files(files: &[(PathBuf, DicomSlice)]) -> Result<DicomVolume> {
    let (first_path, first) = files
        .first()
        .ok_or_else(|| DataError::invalid(Path::new(""), "slices", "at least one slice", "none"))?;
    for (path, slice) in files {
        if !slice.plane.matches(&first.plane) {
            return Err(DataError::invalid(
                path,
                "Rows, Columns, ImageOrientationPatient, PixelSpacing",
                format!(
                    "those of {} (one volume's slices share them)",
                    first_path.display()
                ),
                format!("{:?}", slice.plane),
            ));
        }
    }
    let slices = files.iter().map(|(_, s)| s.slice.clone()).collect();
    let volume = stack(first_path, &first.plane, slices, first.nominal_spacing)?;
    Ok(DicomVolume {
        series: first.series.clone(),
        ..volume
    })
}

/// The volume (shape, RAS affine, values x fastest; no series position) of slices sharing
/// `plane`, sorted along its normal. Uneven or tilted spacing is refused, naming `path`.
pub fn stack(
    path: &Path,
    plane: &Plane,
    mut slices: Vec<PlacedSlice>,
    nominal_spacing: Option<f64>,
) -> Result<DicomVolume> {
    let n = slices.len();
    if n == 0 || n > MAX_SLICES {
        return Err(DataError::invalid(
            path,
            "slices",
            format!("1 to {MAX_SLICES} slices in a volume"),
            n.to_string(),
        ));
    }
    let normal = plane.normal();
    let along = |p: &[f64; 3]| (0..3).map(|i| p[i] * normal[i]).sum::<f64>();
    slices.sort_by(|a, b| along(&a.position).total_cmp(&along(&b.position)));
    let step = slice_step(path, &slices, normal, nominal_spacing)?;
    let steps = [
        plane.row_direction.map(|d| d * plane.column_spacing),
        plane.column_direction.map(|d| d * plane.row_spacing),
        step,
    ];
    let affine = ras_affine(steps, slices[0].position);
    let mut values = Vec::with_capacity(plane.pixels().unwrap_or(0).saturating_mul(n));
    for slice in &slices {
        values.extend_from_slice(&slice.values);
    }
    Ok(DicomVolume {
        shape: [plane.columns, plane.rows, n],
        affine,
        values,
        series: SeriesPosition::default(),
    })
}

/// The LPS step from one sorted slice to the next: their mean, each within 1% (and 0.01 mm)
/// of it; two slices at one position are refused (a repeated slice, or two volumes mixed).
fn slice_step(
    path: &Path,
    slices: &[PlacedSlice],
    normal: [f64; 3],
    nominal_spacing: Option<f64>,
) -> Result<[f64; 3]> {
    let n = slices.len();
    if n == 1 {
        let spacing = nominal_spacing.unwrap_or(1.0);
        return Ok(normal.map(|v| v * spacing));
    }
    let (first, last) = (slices[0].position, slices[n - 1].position);
    let mean: [f64; 3] = std::array::from_fn(|i| (last[i] - first[i]) / (n - 1) as f64);
    let length = mean.iter().map(|v| v * v).sum::<f64>().sqrt();
    let tolerance = (0.01 * length).max(0.01);
    for pair in slices.windows(2) {
        let step: [f64; 3] = std::array::from_fn(|i| pair[1].position[i] - pair[0].position[i]);
        let off = (0..3)
            .map(|i| (step[i] - mean[i]).powi(2))
            .sum::<f64>()
            .sqrt();
        if length < 1e-3 || off > tolerance {
            return Err(DataError::invalid(
                path,
                "ImagePositionPatient (0020,0032) of the volume's slices",
                format!(
                    "{n} slices evenly spaced along one direction (mean step {:.3} mm)",
                    length
                ),
                format!(
                    "a step of {:.3} mm between slices at {:?} and {:?} (a slice missing or repeated?)",
                    step.iter().map(|v| v * v).sum::<f64>().sqrt(),
                    pair[0].position,
                    pair[1].position
                ),
            ));
        }
    }
    Ok(mean)
}
