//! RGB images: PNG in and out, and area resampling.

use crate::atomic::write_atomic;
use crate::error::{DataError, Result};
use std::path::Path;

/// An 8-bit RGB image, row-major (h, w, 3).
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    pub height: usize,
    pub width: usize,
    pub pixels: Vec<u8>,
}

impl RgbImage {
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

/// Reads an 8-bit PNG (grey, grey+alpha, RGB or RGBA) as RGB.
pub fn read_png(path: &Path) -> Result<RgbImage> {
    crate::error::require_file(path, "a PNG image")?;
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
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
}
