//! Clip outputs: an animated GIF ([`GifWriter`], also the live stream's GIF output), a folder
//! of PNG frames with the `frames.json` sidecar (readable back with [`super::open`]), and an
//! H.264 MP4 ([`super::write_mp4`]), each written atomically.

use super::frames::{FramesMeta, FRAMES_JSON};
use crate::error::{DataError, Result};
use crate::image::{write_png, RgbImage};
use brainrecon_core::fs::PendingFile;

use std::path::{Path, PathBuf};

/// An animated GIF (looping forever) written to a temporary file beside its final path and
/// renamed there by [`GifWriter::finish`]; dropped unfinished, it removes the temporary file.
pub struct GifWriter {
    path: PathBuf,
    /// The file, until the first frame gives the encoder its size.
    file: Option<PendingFile>,
    encoder: Option<gif::Encoder<PendingFile>>,
    size: Option<(u16, u16)>,
    delay_cs: u16,
    frames: u64,
}

/// A GIF error, with the file it concerns.
fn gif_error(path: &Path, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("{}: GIF: {e}", path.display()))
}

impl GifWriter {
    /// A GIF at `path` whose frames each show for `delay_cs` hundredths of a second (at least 2:
    /// browsers show shorter delays as 10).
    pub fn create(path: &Path, delay_cs: u16) -> std::io::Result<Self> {
        // Created now, so that an unwritable place fails before any frame is made.
        let file = PendingFile::create(path).map_err(std::io::Error::other)?;
        Ok(GifWriter {
            path: path.to_path_buf(),
            file: Some(file),
            encoder: None,
            size: None,
            delay_cs: delay_cs.max(2),
            frames: 0,
        })
    }

    /// Frames added so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Adds a frame (a 256-colour palette quantised from this image; deterministic). Every
    /// frame must have the first frame's size, which must fit in 65535 × 65535.
    pub fn add(&mut self, image: &RgbImage) -> std::io::Result<()> {
        let (w, h) = match (u16::try_from(image.width), u16::try_from(image.height)) {
            (Ok(w), Ok(h)) => (w, h),
            _ => {
                return Err(gif_error(
                    &self.path,
                    format!(
                        "expected frames of at most 65535 × 65535 pixels, found {}×{}",
                        image.width, image.height
                    ),
                ))
            }
        };
        if let Some(size) = self.size {
            if size != (w, h) {
                return Err(gif_error(
                    &self.path,
                    format!(
                        "expected every frame to be {}×{} like the first, found {w}×{h}",
                        size.0, size.1
                    ),
                ));
            }
        }
        if let Some(file) = self.file.take() {
            let mut encoder =
                gif::Encoder::new(file, w, h, &[]).map_err(|e| gif_error(&self.path, e))?;
            encoder
                .set_repeat(gif::Repeat::Infinite)
                .map_err(|e| gif_error(&self.path, e))?;
            self.encoder = Some(encoder);
            self.size = Some((w, h));
        }
        let mut frame = gif::Frame::from_rgb_speed(w, h, &image.pixels, 10);
        frame.delay = self.delay_cs;
        let encoder = self.encoder.as_mut().expect("created above");
        encoder
            .write_frame(&frame)
            .map_err(|e| gif_error(&self.path, e))?;
        self.frames += 1;
        Ok(())
    }

    /// Completes the file and renames it into place. A GIF with no frame is not written (the
    /// temporary file is removed) and `Ok(false)` is returned.
    pub fn finish(mut self) -> std::io::Result<bool> {
        // With no frame, the file is dropped: its temporary file goes with it.
        let Some(encoder) = self.encoder.take() else {
            return Ok(false);
        };
        let file = encoder.into_inner().map_err(|e| gif_error(&self.path, e))?;
        file.commit().map_err(std::io::Error::other)?;
        Ok(true)
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The GIF frame delay for `fps`, in hundredths of a second (GIF's unit; at least 2).
pub fn gif_delay_cs(fps: f64) -> u16 {
    (100.0 / fps).round().clamp(2.0, u16::MAX as f64) as u16
}

/// Writes `frames` as a looping GIF shown at `fps` (rounded to GIF's 1/100-s delays).
pub fn write_gif(path: &Path, frames: &[RgbImage], fps: f64) -> Result<()> {
    if frames.is_empty() {
        return Err(DataError::invalid(
            path,
            "frames",
            "at least one frame",
            "none",
        ));
    }
    let mut gif = GifWriter::create(path, gif_delay_cs(fps)).map_err(|e| DataError::io(path, e))?;
    for frame in frames {
        gif.add(frame).map_err(|e| DataError::io(path, e))?;
    }
    gif.finish().map_err(|e| DataError::io(path, e))?;
    Ok(())
}

/// Writes `frames` into `dir` as `frame_000.png`, … and a `frames.json` sidecar with `fps`
/// (written last: a folder with the sidecar is complete). Frames must share one size.
pub fn write_png_frames(dir: &Path, frames: &[RgbImage], fps: f64) -> Result<()> {
    let first = frames
        .first()
        .ok_or_else(|| DataError::invalid(dir, "frames", "at least one frame", "none"))?;
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let digits = frames.len().saturating_sub(1).to_string().len().max(3);
    for (i, frame) in frames.iter().enumerate() {
        let path = dir.join(format!("frame_{i:0digits$}.png"));
        if (frame.width, frame.height) != (first.width, first.height) {
            return Err(DataError::invalid(
                &path,
                "size",
                format!("{}x{} (the first frame's)", first.width, first.height),
                format!("{}x{}", frame.width, frame.height),
            ));
        }
        write_png(&path, frame)?;
    }
    let meta = FramesMeta {
        fps,
        width: first.width,
        height: first.height,
        n_frames: Some(frames.len()),
    };
    brainrecon_core::fs::write_json_atomic(&dir.join(FRAMES_JSON), &meta)
}

/// The outputs of [`write_clip`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipFormat {
    /// `STEM.gif`
    Gif,
    /// `STEM/frame_000.png`, … with `STEM/frames.json`
    PngFrames,
    /// `STEM.mp4` (H.264 Constrained Baseline from OpenH264's encoder; even sizes only)
    Mp4,
}

/// Writes one clip in each of `formats`, named from `stem` (a path without extension).
pub fn write_clip(
    stem: &Path,
    frames: &[RgbImage],
    fps: f64,
    formats: &[ClipFormat],
) -> Result<()> {
    for format in formats {
        match format {
            ClipFormat::Gif => write_gif(&stem.with_extension("gif"), frames, fps)?,
            ClipFormat::PngFrames => write_png_frames(stem, frames, fps)?,
            ClipFormat::Mp4 => super::write_mp4(&stem.with_extension("mp4"), frames, fps)?,
        }
    }
    Ok(())
}
