//! RGB images: PNG in and out, and area resampling.
//!
//! [`RgbImage::resize_with`] also resamples as Pillow's `Image.resize` does for 8-bit RGB
//! (bicubic, Lanczos), and [`RgbImage::center_crop`] crops as transformers' image processors do,
//! so that CLIP-style preprocessing sees the pixels the reference implementations see.

use crate::error::{DataError, Result};
use brainrecon_core::fs::write_atomic;
use std::path::Path;

/// An 8-bit RGB image, row-major (h, w, 3).
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    /// Rows (pixels).
    pub height: usize,
    /// Columns (pixels).
    pub width: usize,
    /// `height × width × 3` bytes, row-major, RGB interleaved.
    pub pixels: Vec<u8>,
}

impl RgbImage {
    /// An image of `pixels` (h, w, 3) row-major. Panics when the length is not
    /// `height × width × 3`.
    pub fn new(height: usize, width: usize, pixels: Vec<u8>) -> Self {
        assert_eq!(pixels.len(), height * width * 3, "RGB buffer length");
        RgbImage {
            height,
            width,
            pixels,
        }
    }

    /// Values scaled to [0, 1], (h, w, 3).
    pub fn to_unit_f32(&self) -> Vec<f32> {
        self.pixels.iter().map(|&p| p as f32 / 255.0).collect()
    }

    /// From values in [0, 1] (clamped), (h, w, 3).
    pub fn from_unit_f32(height: usize, width: usize, values: &[f32]) -> Self {
        let pixels = values
            .iter()
            .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect();
        RgbImage::new(height, width, pixels)
    }

    /// Area-averaged resampling: each output pixel is the mean of the source area it covers.
    pub fn resize(&self, height: usize, width: usize) -> RgbImage {
        if height == self.height && width == self.width {
            return self.clone();
        }
        let spans = |n_out: usize, n_in: usize| -> Vec<Vec<(usize, f32)>> {
            let scale = n_in as f64 / n_out as f64;
            (0..n_out)
                .map(|o| {
                    let (start, end) = (o as f64 * scale, (o + 1) as f64 * scale);
                    let mut weights = Vec::new();
                    let mut i = start.floor() as usize;
                    while (i as f64) < end && i < n_in {
                        let cover = (end.min(i as f64 + 1.0) - start.max(i as f64)).max(0.0);
                        if cover > 0.0 {
                            weights.push((i, (cover / scale) as f32));
                        }
                        i += 1;
                    }
                    weights
                })
                .collect()
        };
        let (rows, cols) = (spans(height, self.height), spans(width, self.width));
        let mut pixels = Vec::with_capacity(height * width * 3);
        for row in &rows {
            for col in &cols {
                let mut sum = [0f32; 3];
                for &(y, wy) in row {
                    for &(x, wx) in col {
                        let at = (y * self.width + x) * 3;
                        for c in 0..3 {
                            sum[c] += wy * wx * self.pixels[at + c] as f32;
                        }
                    }
                }
                pixels.extend(sum.iter().map(|s| s.round().clamp(0.0, 255.0) as u8));
            }
        }
        RgbImage::new(height, width, pixels)
    }
}

/// Resampling filters for [`RgbImage::resize_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Area averaging ([`RgbImage::resize`]).
    Area,
    /// Pillow's `Image.BILINEAR` (triangle kernel, widened when downsampling).
    Bilinear,
    /// Pillow's `Image.BICUBIC` (Keys cubic convolution, a = -0.5).
    Bicubic,
    /// Pillow's `Image.LANCZOS` (Lanczos, a = 3).
    Lanczos,
}

impl Filter {
    /// Half-width of the kernel in source pixels at scale 1.
    fn support(self) -> f64 {
        match self {
            Filter::Area => 0.5,
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    fn kernel(self, x: f64) -> f64 {
        match self {
            Filter::Area => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bilinear => (1.0 - x.abs()).max(0.0),
            Filter::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            // Pillow's window is half-open, [-3, 3).
            Filter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

/// Pillow accumulates 8-bit resampling in fixed point with this many fractional bits; matching
/// its integer rounding (not just the real-valued weights) is what makes outputs bit-identical.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// The source taps of one output pixel along one axis: first index and fixed-point weights.
struct Taps {
    start: usize,
    weights: Vec<i32>,
}

/// Pillow's separable kernel for resizing `n_in` samples to `n_out`: centres at
/// `(i + 0.5) * scale`, support widened by the scale when downsampling (antialiasing),
/// weights normalised to sum 1, then rounded to fixed point.
fn pillow_taps(n_in: usize, n_out: usize, filter: Filter) -> Vec<Taps> {
    let scale = n_in as f64 / n_out as f64;
    let filter_scale = scale.max(1.0);
    let support = filter.support() * filter_scale;
    let inv = 1.0 / filter_scale;
    (0..n_out)
        .map(|o| {
            let center = (o as f64 + 0.5) * scale;
            // `as` truncates like C's (int) cast; negatives clamp to 0 either way.
            let lo = ((center - support + 0.5) as i64).max(0) as usize;
            let hi = ((center + support + 0.5) as i64)
                .min(n_in as i64)
                .max(lo as i64) as usize;
            let raw: Vec<f64> = (lo..hi)
                .map(|i| filter.kernel((i as f64 - center + 0.5) * inv))
                .collect();
            let total: f64 = raw.iter().sum();
            let one = (1u32 << PRECISION_BITS) as f64;
            let weights = raw
                .iter()
                .map(|&w| {
                    let w = if total != 0.0 { w / total } else { w };
                    // Round half away from zero, then truncate, as Pillow does.
                    if w < 0.0 {
                        (-0.5 + w * one) as i32
                    } else {
                        (0.5 + w * one) as i32
                    }
                })
                .collect();
            Taps { start: lo, weights }
        })
        .collect()
}

/// A fixed-point sum back to 8 bits: Pillow starts the sum at one half (rounding) and clips.
fn clip8(sum: i64) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

const HALF: i64 = 1 << (PRECISION_BITS - 1);

impl RgbImage {
    /// Resamples to `height` × `width` with `filter`. `Bilinear`, `Bicubic` and `Lanczos` reproduce Pillow's
    /// (13.0) `Image.resize((width, height), filter)` for 8-bit RGB: two separable passes, each
    /// rounded and clipped to 8 bits; an axis whose size does not change is left as is.
    pub fn resize_with(&self, height: usize, width: usize, filter: Filter) -> RgbImage {
        if filter == Filter::Area {
            return self.resize(height, width);
        }
        assert!(height > 0 && width > 0, "resize to an empty image");
        // Pillow runs the vertical pass first when the height shrinks by more than twice as
        // many pixels as the width does; the 8-bit rounding between passes makes the order
        // visible in the output.
        let dy = self.height as i64 - height as i64;
        let dx = self.width as i64 - width as i64;
        if dy > 0 && dy > dx * 2 {
            self.resize_vertical(height, filter)
                .resize_horizontal(width, filter)
        } else {
            self.resize_horizontal(width, filter)
                .resize_vertical(height, filter)
        }
    }

    fn resize_horizontal(&self, width: usize, filter: Filter) -> RgbImage {
        if width == self.width {
            return self.clone();
        }
        let taps = pillow_taps(self.width, width, filter);
        let mut pixels = Vec::with_capacity(self.height * width * 3);
        for row in self.pixels.chunks_exact(self.width * 3) {
            for t in &taps {
                let mut sum = [HALF; 3];
                for (k, &w) in t.weights.iter().enumerate() {
                    let at = (t.start + k) * 3;
                    for (c, s) in sum.iter_mut().enumerate() {
                        *s += row[at + c] as i64 * w as i64;
                    }
                }
                pixels.extend(sum.map(clip8));
            }
        }
        RgbImage::new(self.height, width, pixels)
    }

    fn resize_vertical(&self, height: usize, filter: Filter) -> RgbImage {
        if height == self.height {
            return self.clone();
        }
        let taps = pillow_taps(self.height, height, filter);
        let stride = self.width * 3;
        let mut pixels = Vec::with_capacity(height * stride);
        let mut sum = vec![0i64; stride];
        for t in &taps {
            sum.fill(HALF);
            for (k, &w) in t.weights.iter().enumerate() {
                let row = &self.pixels[(t.start + k) * stride..(t.start + k + 1) * stride];
                for (s, &p) in sum.iter_mut().zip(row) {
                    *s += p as i64 * w as i64;
                }
            }
            pixels.extend(sum.iter().map(|&s| clip8(s)));
        }
        RgbImage::new(height, self.width, pixels)
    }

    /// The central `size` × `size` window, as transformers' `center_crop` (image_transforms.py)
    /// takes it: see [`RgbImage::center_crop_to`].
    pub fn center_crop(&self, size: usize) -> RgbImage {
        self.center_crop_to(size, size)
    }

    /// The central `height` × `width` window, as transformers' `center_crop`
    /// (image_transforms.py) takes it: offset `(h - height) // 2` (floor division), and where
    /// the image is smaller than the crop it is centred on black, the odd extra row or column
    /// going before it.
    pub fn center_crop_to(&self, height: usize, width: usize) -> RgbImage {
        // Python's floor division, so that a negative offset (padding) rounds down.
        let offset = |n: usize, crop: usize| (n as i64 - crop as i64).div_euclid(2);
        let (top, left) = (offset(self.height, height), offset(self.width, width));
        let mut pixels = vec![0u8; height * width * 3];
        for r in 0..height {
            let y = r as i64 + top;
            if y < 0 || y >= self.height as i64 {
                continue;
            }
            // The source columns that land inside the crop, copied as one run.
            let c0 = (-left).max(0) as usize;
            let c1 = ((self.width as i64 - left).min(width as i64)).max(c0 as i64) as usize;
            if c0 >= c1 {
                continue;
            }
            let src = (y as usize * self.width + (c0 as i64 + left) as usize) * 3;
            let dst = (r * width + c0) * 3;
            let n = (c1 - c0) * 3;
            pixels[dst..dst + n].copy_from_slice(&self.pixels[src..src + n]);
        }
        RgbImage::new(height, width, pixels)
    }
}

/// Writes `image` as an 8-bit RGB PNG, atomically (a temporary file moved into place).
/// Errors: the file cannot be written.
pub fn write_png(path: &Path, image: &RgbImage) -> Result<()> {
    write_atomic(path, |w| {
        let mut encoder = png::Encoder::new(w, image.width as u32, image.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
        writer
            .write_image_data(&image.pixels)
            .map_err(std::io::Error::other)
    })
}

/// Refuses a PNG whose IHDR claims more pixels than [`crate::limits::IMAGE_PIXELS`], read
/// from the file's first 24 bytes: the decoder sizes its buffers from IHDR. Rewinds the file.
fn check_png_size(path: &Path, file: &mut std::fs::File) -> Result<()> {
    use std::io::{Read, Seek};
    let mut head = Vec::with_capacity(24);
    file.by_ref()
        .take(24)
        .read_to_end(&mut head)
        .map_err(|e| DataError::io(path, e))?;
    file.rewind().map_err(|e| DataError::io(path, e))?;
    // Signature (8), chunk length (4), "IHDR" (4), width (4), height (4), big-endian.
    if head.len() == 24 && &head[12..16] == b"IHDR" {
        let word =
            |at: usize| u32::from_be_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
        crate::limits::image_pixels(
            path,
            "IHDR width × height",
            word(16) as u64,
            word(20) as u64,
        )?;
    }
    // Anything else is left to the decoder, which refuses it before allocating.
    Ok(())
}

/// Reads an 8-bit PNG (grey, grey+alpha, RGB or RGBA) as RGB.
pub fn read_png(path: &Path) -> Result<RgbImage> {
    crate::error::require_file(path, "a PNG image")?;
    let mut file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    check_png_size(path, &mut file)?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .map_err(|e| DataError::format(path, "PNG", e))?;
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut buffer)
        .map_err(|e| DataError::format(path, "PNG", e))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let data = &buffer[..info.buffer_size()];
    let pixels: Vec<u8> = match info.color_type {
        png::ColorType::Rgb => data.to_vec(),
        png::ColorType::Rgba => data
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        png::ColorType::Grayscale => data.iter().flat_map(|&g| [g, g, g]).collect(),
        png::ColorType::GrayscaleAlpha => data
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0]])
            .collect(),
        other => {
            return Err(DataError::invalid(
                path,
                "colour type",
                "grey or RGB",
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
    fn png_round_trip_and_area_resize() {
        let dir = tempfile::tempdir().unwrap();
        let pixels: Vec<u8> = (0..4 * 6 * 3).map(|i| (i * 7 % 256) as u8).collect();
        let image = RgbImage::new(4, 6, pixels);
        let path = dir.path().join("a.png");
        write_png(&path, &image).unwrap();
        assert_eq!(read_png(&path).unwrap(), image);
        // Halving averages 2×2 blocks exactly.
        let half = image.resize(2, 3);
        let block = [0usize, 1, 6, 7].map(|p| image.pixels[p * 3] as f32);
        assert_eq!(
            half.pixels[0],
            (block.iter().sum::<f32>() / 4.0).round() as u8
        );
    }

    /// CRC-32 (ISO-HDLC) of a PNG chunk's type and data.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn a_huge_ihdr_is_refused_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.png");
        write_png(&path, &RgbImage::new(2, 2, vec![7; 12])).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        // 100,000 × 100,000 with a valid CRC, so only the size check can refuse it.
        bytes[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let err = read_png(&path).unwrap_err().to_string();
        assert!(err.contains("huge.png") && err.contains("IHDR"), "{err}");
        assert!(err.contains("BRAINRECON_MAX_IMAGE_PIXELS"), "{err}");
    }
}
