//! MinD-Video's preprocessed CC2017 arrays (its `create_Wen_dataset` reads them from
//! `Wen/preprocessed/`):
//!
//! - `fmri_train_subjectN.npy` (18, 240, V) and `fmri_test_subjectN.npy` (5, 240, V), float:
//!   one volume per segment and TR;
//! - `video_train_256_3hz.npy` (18, 240, 6, 256, 256, 3) and `video_test_256_3hz.npy`
//!   (5, 240, 6, 256, 256, 3), uint8: the 6 frames (3 Hz) shown during each TR at 256².
//!
//! Both are memory-mapped: the training video array is about 17 GB, and a clip is read by
//! touching only its own 1.2 MB.

use crate::error::{DataError, Result};
use brainrecon_formats::image::RgbImage;
use brainrecon_formats::npy::{self, MappedU8};
use std::path::{Path, PathBuf};

/// Which of MinD-Video's splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// `train`: the 18 training segments.
    Train,
    /// `test`: the 5 test segments.
    Test,
}

impl Split {
    fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// `DIR/fmri_{train,test}_subjectN.npy`.
pub fn fmri_path(dir: &Path, split: Split, subject: usize) -> PathBuf {
    dir.join(format!("fmri_{}_subject{subject}.npy", split.name()))
}

/// `DIR/video_{train,test}_256_{fps}hz.npy`.
pub fn video_path(dir: &Path, split: Split, fps: usize) -> PathBuf {
    dir.join(format!("video_{}_256_{fps}hz.npy", split.name()))
}

/// A clip array (segments, trs, frames, h, w, 3) uint8.
pub struct MindVideoFrames {
    array: MappedU8,
}

impl MindVideoFrames {
    /// Maps a video array. Errors: the file missing, not a uint8 `.npy`, or not of shape
    /// (segments, trs, frames, h, w, 3), naming the file.
    pub fn open(path: &Path) -> Result<Self> {
        crate::error::require_file(
            path,
            "MinD-Video's video array (segments, trs, frames, h, w, 3) uint8",
        )?;
        let array = MappedU8::open(path)?;
        let shape = array.shape();
        if shape.len() != 6 || shape[5] != 3 {
            return Err(DataError::invalid(
                path,
                "shape",
                "(segments, trs, frames, height, width, 3)",
                format!("{shape:?}"),
            ));
        }
        Ok(MindVideoFrames { array })
    }

    /// (segments, trs, frames per TR, height, width).
    pub fn dims(&self) -> (usize, usize, usize, usize, usize) {
        let s = self.array.shape();
        (s[0], s[1], s[2], s[3], s[4])
    }

    /// The file mapped.
    pub fn path(&self) -> &Path {
        self.array.path()
    }

    /// The frames of segment `segment`, volume `tr` (both 0-based).
    pub fn clip(&self, segment: usize, tr: usize) -> Result<Vec<RgbImage>> {
        let (_, _, frames, h, w) = self.dims();
        let bytes = self.array.sub(&[segment, tr])?;
        Ok(bytes
            .chunks_exact(h * w * 3)
            .take(frames)
            .map(|f| RgbImage::new(h, w, f.to_vec()))
            .collect())
    }
}

/// An fMRI array (segments, trs, voxels), float32 or float64 on disk.
pub struct MindVideoFmri {
    path: PathBuf,
    shape: [usize; 3],
}

impl MindVideoFmri {
    /// Reads an fMRI array's header (the data are read per volume). Errors: the file missing,
    /// not a 3-D float32/float64 `.npy`, naming the file.
    pub fn open(path: &Path) -> Result<Self> {
        crate::error::require_file(path, "MinD-Video's fMRI array (segments, trs, voxels)")?;
        let header = npy::read_header(path)?;
        let shape: [usize; 3] = header.shape.as_slice().try_into().map_err(|_| {
            DataError::invalid(
                path,
                "shape",
                "(segments, trs, voxels)",
                format!("{:?}", header.shape),
            )
        })?;
        if header.descr != "<f4" && header.descr != "<f8" {
            return Err(DataError::invalid(
                path,
                "dtype",
                "float32 or float64",
                header.descr,
            ));
        }
        Ok(MindVideoFmri {
            path: path.to_path_buf(),
            shape,
        })
    }

    /// (segments, trs, voxels).
    pub fn dims(&self) -> (usize, usize, usize) {
        (self.shape[0], self.shape[1], self.shape[2])
    }

    /// The file opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One volume: segment `segment`, TR `tr` (voxels).
    pub fn volume(&self, segment: usize, tr: usize) -> Result<Vec<f32>> {
        Ok(npy::read_f32_sub(&self.path, &[segment, tr])?.data)
    }

    /// One segment, (trs, voxels) row-major.
    pub fn segment(&self, segment: usize) -> Result<Vec<f32>> {
        Ok(npy::read_f32_sub(&self.path, &[segment])?.data)
    }
}
