//! A folder of frames as a video: PNG or JPEG files sorted by name (zero-padded numbers), with
//! an optional `frames.json` sidecar `{"fps": f, "width": w, "height": h}` (what the project's
//! video simulator writes); without it the frame rate comes from the caller.

use super::VideoInfo;
use crate::error::{DataError, Result};
use crate::image::{read_png, RgbImage};
use std::path::{Path, PathBuf};

/// The sidecar beside the frames.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FramesMeta {
    /// Frames per second.
    pub fps: f64,
    /// Frame width in pixels.
    pub width: usize,
    /// Frame height in pixels.
    pub height: usize,
    /// The number of frame files, where the writer recorded it (the simulator does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_frames: Option<usize>,
}

/// The sidecar's file name.
pub const FRAMES_JSON: &str = "frames.json";

/// An opened frame folder.
pub struct FrameFolder {
    dir: PathBuf,
    files: Vec<PathBuf>,
    info: VideoInfo,
}

fn is_frame_file(path: &Path) -> bool {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    matches!(ext.as_str(), "png" | "jpg" | "jpeg")
}

impl FrameFolder {
    /// Opens `dir`. The frame rate is the sidecar's, else `fps`; with neither it is an error.
    /// A `fps` that disagrees with the sidecar is an error too. The first frame is read to
    /// check the size.
    pub fn open(dir: &Path, fps: Option<f64>) -> Result<Self> {
        let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| DataError::io(dir, e))?.path();
            if path.is_file() && is_frame_file(&path) {
                files.push(path);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(DataError::invalid(
                dir,
                "frames",
                "PNG or JPEG frame files",
                "none",
            ));
        }
        let sidecar = dir.join(FRAMES_JSON);
        let meta: Option<FramesMeta> = if sidecar.exists() {
            Some(brainrecon_core::fs::read_json(&sidecar)?)
        } else {
            None
        };
        let fps = match (&meta, fps) {
            (Some(m), Some(f)) if (m.fps - f).abs() > 1e-9 * f.abs().max(1.0) => {
                return Err(DataError::invalid(
                    &sidecar,
                    "fps",
                    format!("{f} (the --fps given)"),
                    m.fps.to_string(),
                ))
            }
            (Some(m), _) => m.fps,
            (None, Some(f)) => f,
            (None, None) => {
                return Err(DataError::invalid(
                    dir,
                    "fps",
                    format!("a frame rate: a {FRAMES_JSON} sidecar or an fps flag"),
                    "neither",
                ))
            }
        };
        if !(fps.is_finite() && fps > 0.0) {
            return Err(DataError::invalid(
                dir,
                "fps",
                "a positive frame rate",
                fps.to_string(),
            ));
        }
        if let Some(n) = meta.as_ref().and_then(|m| m.n_frames) {
            if n != files.len() {
                return Err(DataError::invalid(
                    &sidecar,
                    "n_frames",
                    format!("{} (the PNG/JPEG files in the folder)", files.len()),
                    n.to_string(),
                ));
            }
        }
        let first = read_frame(&files[0])?;
        if let Some(m) = &meta {
            if (m.width, m.height) != (first.width, first.height) {
                return Err(DataError::invalid(
                    &files[0],
                    "size",
                    format!("{}x{} (from {FRAMES_JSON})", m.width, m.height),
                    format!("{}x{}", first.width, first.height),
                ));
            }
        }
        let info = VideoInfo {
            frames: files.len(),
            fps,
            width: first.width,
            height: first.height,
        };
        Ok(FrameFolder {
            dir: dir.to_path_buf(),
            files,
            info,
        })
    }

    /// Frame count, rate and size (of the first frame).
    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// The folder opened.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The file of frame `index`.
    pub fn file(&self, index: usize) -> &Path {
        &self.files[index]
    }

    /// Frames `indices`, in the order asked; every frame must have the first frame's size.
    pub fn frames(&self, indices: &[usize]) -> Result<Vec<RgbImage>> {
        super::check_indices(&self.dir, &self.info, indices)?;
        indices
            .iter()
            .map(|&i| {
                let image = read_frame(&self.files[i])?;
                if (image.width, image.height) != (self.info.width, self.info.height) {
                    return Err(DataError::invalid(
                        &self.files[i],
                        "size",
                        format!(
                            "{}x{} (the first frame's)",
                            self.info.width, self.info.height
                        ),
                        format!("{}x{}", image.width, image.height),
                    ));
                }
                Ok(image)
            })
            .collect()
    }
}

/// Reads a PNG or a JPEG (baseline or progressive, grey or colour) as RGB.
pub fn read_frame(path: &Path) -> Result<RgbImage> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if ext != "jpg" && ext != "jpeg" {
        return read_png(path);
    }
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut decoder = jpeg_decoder::Decoder::new(std::io::BufReader::new(file));
    // The decoder sizes its planes from the frame header: check it before decoding.
    decoder
        .read_info()
        .map_err(|e| DataError::format(path, "JPEG", e))?;
    if let Some(info) = decoder.info() {
        crate::limits::image_pixels(
            path,
            "SOF width × height",
            info.width as u64,
            info.height as u64,
        )?;
    }
    let data = decoder
        .decode()
        .map_err(|e| DataError::format(path, "JPEG", e))?;
    let info = decoder
        .info()
        .ok_or_else(|| DataError::format(path, "JPEG", "no image header"))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let pixels = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => data,
        jpeg_decoder::PixelFormat::L8 => data.iter().flat_map(|&g| [g, g, g]).collect(),
        other => {
            return Err(DataError::invalid(
                path,
                "pixel format",
                "RGB or grey",
                format!("{other:?}"),
            ))
        }
    };
    Ok(RgbImage::new(h, w, pixels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jpeg_frame_header_above_the_pixel_limit_is_refused_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("frame_000000.jpg");
        // SOI, then SOF0: 8 bits, 65000 × 65000, one component.
        let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 0x08];
        bytes.extend_from_slice(&65_000u16.to_be_bytes());
        bytes.extend_from_slice(&65_000u16.to_be_bytes());
        bytes.extend_from_slice(&[0x01, 0x01, 0x11, 0x00]);
        std::fs::write(&path, bytes).unwrap();
        let err = read_frame(&path).unwrap_err().to_string();
        assert!(
            err.contains("frame_000000.jpg") && err.contains("SOF"),
            "{err}"
        );
    }
}
