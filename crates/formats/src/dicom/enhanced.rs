//! Enhanced multi-frame MR files (Enhanced MR Image Storage), one volume per file as Siemens
//! XA's real-time export writes them: a frame per slice, the geometry in functional groups,
//! each looked up in the frame's own item first and then in the shared one (the standard's
//! rule): PixelMeasures (PixelSpacing, SpacingBetweenSlices), PlaneOrientation, PlanePosition
//! and PixelValueTransformation (the rescale). Frames may come in any slice order.

use super::slices::{nominal_spacing, position, stack, PlacedSlice, Plane};
use super::{element_name, optional_number, series_position, stored_pixels, DicomVolume, Rescale};
use crate::error::{DataError, Result};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject, Tag};
use std::path::Path;

const ENHANCED_MR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.4.1";

/// Whether a file is multi-frame: the Enhanced MR SOP class, or NumberOfFrames above 1.
pub fn is_enhanced(object: &DefaultDicomObject) -> bool {
    let class = object
        .element_opt(tags::SOP_CLASS_UID)
        .ok()
        .flatten()
        .and_then(|e| {
            e.to_str()
                .ok()
                .map(|s| s.trim_end_matches('\0').trim().to_string())
        });
    class.as_deref() == Some(ENHANCED_MR_IMAGE_STORAGE)
        || optional_number(object, tags::NUMBER_OF_FRAMES).is_some_and(|n| n > 1.0)
}

/// Reads the one volume an enhanced file holds.
pub fn read(path: &Path, object: &DefaultDicomObject) -> Result<DicomVolume> {
    let frames = frame_count(path, object)?;
    let shared = items(object, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE)
        .and_then(|i| i.first())
        .cloned()
        .unwrap_or_else(InMemDicomObject::new_empty);
    let per_frame = items(object, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).unwrap_or(&[]);
    if per_frame.len() != frames {
        return Err(DataError::invalid(
            path,
            element_name(
                tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
                "PerFrameFunctionalGroupsSequence",
            ),
            format!("one item per frame ({frames})"),
            format!("{} items", per_frame.len()),
        ));
    }
    let group = |frame: &InMemDicomObject, tag: Tag, name: &str| -> Result<InMemDicomObject> {
        macro_item(frame, tag)
            .or_else(|| macro_item(&shared, tag))
            .cloned()
            .ok_or_else(|| {
                DataError::invalid(
                    path,
                    element_name(tag, name),
                    "an item in the frame's or the shared functional groups",
                    "missing",
                )
            })
    };
    let first = &per_frame[0];
    let measures = group(
        first,
        tags::PIXEL_MEASURES_SEQUENCE,
        "PixelMeasuresSequence",
    )?;
    let orientation = group(
        first,
        tags::PLANE_ORIENTATION_SEQUENCE,
        "PlaneOrientationSequence",
    )?;
    let plane = Plane::read(path, object, &orientation, &measures)?;
    let count = plane.pixels().and_then(|p| p.checked_mul(frames));
    let stored = stored_pixels(path, object, count, "Rows × Columns × NumberOfFrames")?;
    let pixels = plane.rows * plane.columns;
    let mut slices = Vec::with_capacity(frames);
    for (index, frame) in per_frame.iter().enumerate() {
        let frame_orientation = group(
            frame,
            tags::PLANE_ORIENTATION_SEQUENCE,
            "PlaneOrientationSequence",
        )?;
        let frame_plane = Plane::read(path, object, &frame_orientation, &measures)?;
        if !frame_plane.matches(&plane) {
            return Err(DataError::invalid(
                path,
                format!("ImageOrientationPatient of frame {}", index + 1),
                "the first frame's (one volume per file)",
                format!("{:?}", frame_plane.row_direction),
            ));
        }
        let placed = group(
            frame,
            tags::PLANE_POSITION_SEQUENCE,
            "PlanePositionSequence",
        )?;
        let rescale = match macro_item(frame, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE)
            .or_else(|| macro_item(&shared, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE))
        {
            Some(item) => Rescale::read(path, item)?,
            None => Rescale::read(path, object)?,
        };
        slices.push(PlacedSlice {
            position: position(path, &placed)?,
            values: rescale.apply(&stored[index * pixels..(index + 1) * pixels]),
        });
    }
    let volume = stack(path, &plane, slices, nominal_spacing(&measures))?;
    Ok(DicomVolume {
        series: series_position(object),
        ..volume
    })
}

fn frame_count(path: &Path, object: &InMemDicomObject) -> Result<usize> {
    let n = optional_number(object, tags::NUMBER_OF_FRAMES).unwrap_or(1.0);
    if (1.0..=super::slices::MAX_SLICES as f64).contains(&n) && n.fract() == 0.0 {
        Ok(n as usize)
    } else {
        Err(DataError::invalid(
            path,
            "NumberOfFrames (0028,0008)",
            format!(
                "1 to {} frames (one volume per file)",
                super::slices::MAX_SLICES
            ),
            n.to_string(),
        ))
    }
}

fn items(object: &InMemDicomObject, tag: Tag) -> Option<&[InMemDicomObject]> {
    object.element_opt(tag).ok().flatten()?.items()
}

/// The first item of a functional group macro's sequence.
fn macro_item(group: &InMemDicomObject, tag: Tag) -> Option<&InMemDicomObject> {
    items(group, tag)?.first()
}
