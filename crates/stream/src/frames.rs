//! Frames: what turns a latent into an image ([`FrameGenerator`]), and where the images go
//! (a PNG sequence, an animated GIF), each file written atomically.

use crate::latent::Latent;
use brainrecon_formats::image::RgbImage;
use std::path::{Path, PathBuf};

/// An error of a frame generator (a model's own error type, boxed).
pub type GenError = Box<dyn std::error::Error + Send + Sync>;

/// Makes images from latents in two stages, so that one batch's decode can run while the next
/// batch denoises: [`crate::live::run_live`] calls `denoise` on one thread and `decode` on
/// another. A batch is one or more latents (`LiveOptions::batch`), generated together.
///
/// Both stages must be deterministic: the same latents give the same images.
pub trait FrameGenerator: Sync {
    /// What `denoise` hands to `decode` (e.g. a batch of denoised latents).
    type Denoised: Send;

    /// The latent shape `[c, h, w]` this generator takes (the model's initial-noise shape).
    fn latent_shape(&self) -> [usize; 3];

    /// The first stage: the sampler run from each latent as initial noise (`latents` is not
    /// empty).
    fn denoise(&self, latents: &[Latent]) -> Result<Self::Denoised, GenError>;

    /// The second stage: one RGB image per latent of the batch, in order.
    fn decode(&self, denoised: Self::Denoised) -> Result<Vec<RgbImage>, GenError>;
}

/// FNV-1a (64-bit) of an image's size and pixels, as 16 hex digits: the frame hash shown on the
/// page and in reports.
pub fn frame_hash(image: &RgbImage) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let size = [image.height as u64, image.width as u64];
    let bytes = size
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .chain(image.pixels.iter().copied());
    for b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// An 8-bit RGB PNG of `image`, in memory (the same bytes for the same image).
pub fn encode_png(image: &RgbImage) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, image.width as u32, image.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
        writer
            .write_image_data(&image.pixels)
            .map_err(std::io::Error::other)?;
        writer.finish().map_err(std::io::Error::other)?;
    }
    Ok(bytes)
}

/// A numbered PNG sequence in a folder: `frame-000000.png`, `frame-000001.png`, …
pub struct PngSequence {
    dir: PathBuf,
    written: u64,
}

impl PngSequence {
    /// Creates `dir` (and its parents) if needed.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(PngSequence {
            dir: dir.to_path_buf(),
            written: 0,
        })
    }

    /// The path of frame `index`.
    pub fn path(&self, index: u64) -> PathBuf {
        self.dir.join(format!("frame-{index:06}.png"))
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Frames written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes frame `index` atomically (from already encoded PNG bytes).
    pub fn write(&mut self, index: u64, png: &[u8]) -> std::io::Result<PathBuf> {
        let path = self.path(index);
        brainrecon_core::fs::write_bytes_atomic(&path, png).map_err(std::io::Error::other)?;
        self.written += 1;
        Ok(path)
    }
}

/// The animated GIF writer lives in the data layer, shared with the video clip outputs.
pub use brainrecon_formats::video::GifWriter;

#[cfg(test)]
mod tests {
    use super::*;

    fn image(v: u8) -> RgbImage {
        RgbImage::new(4, 6, (0..72).map(|i| (i as u8).wrapping_mul(v)).collect())
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn png_sequence_is_numbered_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut seq = PngSequence::create(&dir.path().join("frames")).unwrap();
        for i in 0..3 {
            seq.write(i, &encode_png(&image(i as u8 + 1)).unwrap())
                .unwrap();
        }
        assert_eq!(
            entries(seq.dir()),
            ["frame-000000.png", "frame-000001.png", "frame-000002.png"]
        );
        let back = brainrecon_formats::image::read_png(&seq.path(1)).unwrap();
        assert_eq!(back, image(2));
    }

    #[test]
    fn gif_is_renamed_at_the_end_and_removed_when_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.gif");
        let mut gif = GifWriter::create(&path, 3).unwrap();
        gif.add(&image(1)).unwrap();
        gif.add(&image(2)).unwrap();
        assert!(!path.exists());
        assert!(gif.add(&RgbImage::new(1, 1, vec![0; 3])).is_err());
        assert!(gif.finish().unwrap());
        assert_eq!(entries(dir.path()), ["out.gif"]);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..6], b"GIF89a");

        let other = dir.path().join("abandoned.gif");
        let mut gif = GifWriter::create(&other, 3).unwrap();
        gif.add(&image(1)).unwrap();
        drop(gif);
        assert_eq!(entries(dir.path()), ["out.gif"]);
        // No frame: nothing written.
        assert!(!GifWriter::create(&other, 3).unwrap().finish().unwrap());
        assert_eq!(entries(dir.path()), ["out.gif"]);
    }

    #[test]
    fn hashes_and_pngs_are_deterministic() {
        assert_eq!(frame_hash(&image(3)), frame_hash(&image(3)));
        assert_ne!(frame_hash(&image(3)), frame_hash(&image(5)));
        assert_eq!(
            encode_png(&image(3)).unwrap(),
            encode_png(&image(3)).unwrap()
        );
    }
}
