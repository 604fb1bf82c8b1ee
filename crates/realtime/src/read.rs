//! Volumes out of a scanner's export files: Siemens mosaics and enhanced multi-frame DICOM
//! files (a volume per file), single-frame DICOM series (a slice per file, stacked by
//! [`SliceAssembler`]) and 3-D NIfTI volumes.

use crate::assemble::{Assembled, SliceAssembler};
use crate::grid::{Grid, Image};
use brainrecon_core::{DataError, Result};
use brainrecon_formats::{dicom, nifti_io};
use std::path::{Path, PathBuf};

/// The suffixes of the files an export folder is followed for.
pub const SUFFIXES: [&str; 4] = [".dcm", ".ima", ".nii", ".nii.gz"];

/// A volume completed by a file, or why it cannot be used (the message names its files).
pub type VolumeRead = std::result::Result<Image, String>;

/// A DICOM volume (a mosaic or an enhanced multi-frame file) or a 3-D NIfTI volume as an
/// image.
pub fn read_image(path: &Path) -> Result<Image> {
    if is_nifti(path) {
        let v = nifti_io::read_volume(path)?;
        let values = v.values.iter().map(|&x| x as f32).collect();
        grid_image(path, v.shape, v.affine, values)
    } else {
        dicom_image(path, dicom::read_volume(path)?)
    }
}

/// A volume one file completed: the file, the scanner's number of the volume (1-based, from
/// its header: AcquisitionNumber, else InstanceNumber, for a volume file; the slices'
/// TemporalPositionIdentifier or AcquisitionNumber for a single-frame series; None for NIfTI
/// and unnumbered series), and the volume or why it cannot be used.
#[derive(Debug)]
pub struct FileVolume {
    /// The file that completed the volume.
    pub path: PathBuf,
    /// The scanner's number of the volume (1-based), when its header has one.
    pub number: Option<i64>,
    /// The volume, or why it cannot be used.
    pub image: VolumeRead,
}

/// The volumes one file completes, each with the file that completed it: one for a volume
/// file, none or more for a slice of a single-frame series (a volume that cannot be stacked
/// is an `Err` image). `Err` when the file does not read.
pub fn read_volumes(path: &Path, assembler: &mut SliceAssembler) -> Result<Vec<FileVolume>> {
    if is_nifti(path) {
        return Ok(vec![FileVolume {
            path: path.to_path_buf(),
            number: None,
            image: Ok(read_image(path)?),
        }]);
    }
    let assembled = match dicom::read_file(path)? {
        dicom::DicomFile::Volume(volume) => {
            let number = volume
                .series
                .acquisition_number
                .or(volume.series.instance_number);
            let image = dicom_image(path, volume).map_err(|e| error_chain(&e));
            return Ok(vec![FileVolume {
                path: path.to_path_buf(),
                number,
                image,
            }]);
        }
        dicom::DicomFile::Slice(slice) => assembler.push(path.to_path_buf(), slice),
    };
    Ok(assembled
        .into_iter()
        .map(|a| {
            let last = a.last_file().cloned().unwrap_or_else(|| path.to_path_buf());
            let mut number = None;
            let image = match a {
                Assembled::Volume {
                    volume, number: n, ..
                } => {
                    number = n;
                    dicom_image(&last, *volume).map_err(|e| error_chain(&e))
                }
                Assembled::Refused { files, error } => Err(format!(
                    "the volume of {} single-frame files ({} to {}): {error}",
                    files.len(),
                    files.first().map(|f| file_name(f)).unwrap_or_default(),
                    file_name(&last)
                )),
            };
            FileVolume {
                path: last,
                number,
                image,
            }
        })
        .collect())
}

fn is_nifti(path: &Path) -> bool {
    let name = path.to_string_lossy().to_ascii_lowercase();
    name.ends_with(".nii") || name.ends_with(".nii.gz")
}

fn dicom_image(path: &Path, volume: dicom::DicomVolume) -> Result<Image> {
    grid_image(path, volume.shape, volume.affine, volume.values)
}

fn grid_image(
    path: &Path,
    shape: [usize; 3],
    affine: [[f64; 4]; 4],
    values: Vec<f32>,
) -> Result<Image> {
    Image::new(Grid { shape, affine }, values).map_err(|e| {
        DataError::invalid(
            path,
            "volume grid",
            "a 3-D grid with an invertible affine",
            e.to_string(),
        )
    })
}

/// The file's name without its folder.
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// An error and its causes on one line, `outer: cause: cause`, as a refused file is reported.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
