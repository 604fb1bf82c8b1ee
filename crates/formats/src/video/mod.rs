//! Stimulus videos: H.264 MP4 files (decoded with the OpenH264 source bundled by the `openh264`
//! crate, no system library) or folders of PNG/JPEG frames, read as RGB frames in presentation
//! order; frame choice by time (CC2017's 30-fps stimuli → 6 frames per 2-s TR at 3 Hz);
//! MinD-Video's preprocessed arrays; and clip outputs (animated GIF, PNG frames, H.264 MP4).

mod decode;
pub mod frames;
pub mod h264;
pub mod mp4;
pub mod mp4_writer;
pub mod writers;

pub use decode::Mp4Video;
pub use frames::{FrameFolder, FramesMeta};
pub use h264::YuvFrame;
pub use mp4_writer::write_mp4;
pub use writers::{write_clip, write_gif, write_png_frames, ClipFormat, GifWriter};

use crate::error::{DataError, Result};
use crate::image::{Filter, RgbImage};
use std::path::Path;

/// What a video holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoInfo {
    /// Number of frames.
    pub frames: usize,
    /// Frames per second.
    pub fps: f64,
    /// Frame width in pixels (of the first decoded frame).
    pub width: usize,
    /// Frame height in pixels (of the first decoded frame).
    pub height: usize,
}

impl VideoInfo {
    /// Length in seconds (frames / fps).
    pub fn duration_s(&self) -> f64 {
        self.frames as f64 / self.fps
    }
}

/// A video: an MP4 file or a frame folder, with one API.
pub enum Video {
    /// An H.264 MP4 file.
    Mp4(Mp4Video),
    /// A folder of PNG/JPEG frames.
    Folder(FrameFolder),
}

/// Opens a video: a folder is a frame folder (its `frames.json` gives the rate), a file is an
/// H.264 MP4.
pub fn open(path: &Path) -> Result<Video> {
    open_with_fps(path, None)
}

/// As [`open`], with the frame rate of a frame folder that has no `frames.json` (ignored for
/// MP4 files, whose rate is in the file).
pub fn open_with_fps(path: &Path, fps: Option<f64>) -> Result<Video> {
    if path.is_dir() {
        return Ok(Video::Folder(FrameFolder::open(path, fps)?));
    }
    crate::error::require_file(path, "an H.264 MP4 video or a folder of frames")?;
    Ok(Video::Mp4(Mp4Video::open(path)?))
}

impl Video {
    /// Frame count, rate and size.
    pub fn info(&self) -> &VideoInfo {
        match self {
            Video::Mp4(v) => v.info(),
            Video::Folder(f) => f.info(),
        }
    }

    /// The file or folder opened.
    pub fn path(&self) -> &Path {
        match self {
            Video::Mp4(v) => v.path(),
            Video::Folder(f) => f.path(),
        }
    }

    /// RGB frames `indices` (presentation order), in the order asked.
    pub fn frames(&self, indices: &[usize]) -> Result<Vec<RgbImage>> {
        match self {
            Video::Mp4(v) => Ok(v
                .yuv_frames(indices)?
                .iter()
                .map(YuvFrame::to_rgb)
                .collect()),
            Video::Folder(f) => f.frames(indices),
        }
    }

    /// Calls `visit(index, frame)` for each distinct frame of `indices` in ascending order,
    /// holding one frame at a time (for scanning long videos).
    pub fn visit_frames(
        &self,
        indices: &[usize],
        mut visit: impl FnMut(usize, RgbImage) -> Result<()>,
    ) -> Result<()> {
        match self {
            Video::Mp4(v) => v.visit_yuv(indices, |i, picture| visit(i, picture.to_rgb())),
            Video::Folder(f) => {
                let mut sorted = indices.to_vec();
                sorted.sort_unstable();
                sorted.dedup();
                for i in sorted {
                    visit(i, f.frames(&[i])?.remove(0))?;
                }
                Ok(())
            }
        }
    }

    /// Frame `index`.
    pub fn frame(&self, index: usize) -> Result<RgbImage> {
        Ok(self.frames(&[index])?.remove(0))
    }

    /// The frames shown at `times_s` (see [`index_at_time`]). A time at or past the end is an
    /// error naming the file, the time asked and the video's length.
    pub fn frames_at_times(&self, times_s: &[f64]) -> Result<Vec<RgbImage>> {
        let indices = indices_at_times(self.path(), self.info(), times_s)?;
        self.frames(&indices)
    }

    /// The whole video resampled to `target_fps` (see [`resample_indices`]).
    pub fn resampled(&self, target_fps: f64) -> Result<Vec<RgbImage>> {
        self.frames(&resample_indices(self.info(), target_fps))
    }
}

/// The frame shown at time `t` (s): the last frame whose start is at or before `t`, i.e.
/// ⌊t·fps⌋ (with a tolerance of 1e-6 frame so that t = k/fps computed in floating point lands
/// on frame k). At 30 fps and 3 Hz this picks every 10th frame: 0, 10, 20, …
pub fn index_at_time(t: f64, fps: f64) -> usize {
    (t * fps + 1e-6).floor().max(0.0) as usize
}

/// Frame indices for times `times_s`, checked against the video's length.
pub fn indices_at_times(path: &Path, info: &VideoInfo, times_s: &[f64]) -> Result<Vec<usize>> {
    times_s
        .iter()
        .map(|&t| {
            let i = index_at_time(t, info.fps);
            if !(t.is_finite() && t >= 0.0) || i >= info.frames {
                return Err(short_video(path, info, t));
            }
            Ok(i)
        })
        .collect()
}

fn short_video(path: &Path, info: &VideoInfo, t: f64) -> DataError {
    DataError::invalid(
        path,
        "length",
        format!("a frame at {t:.3} s (a video longer than that)"),
        format!(
            "{:.3} s ({} frames at {} fps)",
            info.duration_s(),
            info.frames,
            info.fps
        ),
    )
}

/// Indices resampling the video to `target_fps`: the frames shown at k/target_fps for every k
/// with k/target_fps before the end.
pub fn resample_indices(info: &VideoInfo, target_fps: f64) -> Vec<usize> {
    assert!(target_fps > 0.0, "target frame rate must be positive");
    let count = (info.duration_s() * target_fps + 1e-6).floor() as usize;
    (0..count)
        .map(|k| index_at_time(k as f64 / target_fps, info.fps).min(info.frames - 1))
        .collect()
}

/// The frames of volume `tr` (0-based) as MinD-Video's arrays lay them out: `per_tr` frames at
/// times tr·tr_s + j·tr_s/per_tr (CC2017: tr_s 2, per_tr 6 → frames 60·tr + 10·j at 30 fps).
/// MinD-Video's repository ships its arrays' shapes but not the script that made them; this is
/// 3-Hz sampling aligned to the TR onsets, the reading of its "6 frames per 2-s TR".
pub fn tr_clip_times(tr: usize, tr_s: f64, per_tr: usize) -> Vec<f64> {
    (0..per_tr)
        .map(|j| tr as f64 * tr_s + j as f64 * tr_s / per_tr as f64)
        .collect()
}

/// Each frame resized to `size`×`size` (MinD-Video's arrays are 256², the aspect ratio not
/// kept). `Filter::Bilinear` etc. resample as Pillow does.
pub fn resize_square(frames: &[RgbImage], size: usize, filter: Filter) -> Vec<RgbImage> {
    frames
        .iter()
        .map(|f| f.resize_with(size, size, filter))
        .collect()
}

pub(crate) fn check_indices(path: &Path, info: &VideoInfo, indices: &[usize]) -> Result<()> {
    if let Some(&bad) = indices.iter().find(|&&i| i >= info.frames) {
        return Err(DataError::invalid(
            path,
            "frame index",
            format!(
                "below {} (the video has {} frames, {:.3} s at {} fps)",
                info.frames,
                info.frames,
                info.duration_s(),
                info.fps
            ),
            bad.to_string(),
        ));
    }
    Ok(())
}
