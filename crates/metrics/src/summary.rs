//! Summary of low-level image metrics over a set of (truth, reconstruction)
//! pairs, ready for a CLI to print as a table or as JSON.

use std::fmt;

use serde::Serialize;

use crate::error::{check_len, shape_len, MetricsError, Result};
use crate::{identification, image};

/// Means over all pairs of one evaluation set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsTable {
    /// Number of image pairs.
    pub n_pairs: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Mean PixCorr (Pearson over flattened RGB values). Higher is better.
    pub pixcorr: f64,
    /// Mean SSIM of grayscale conversions (skimage settings). Higher is better.
    pub ssim: f64,
    /// Mean per-image MSE over RGB values in [0, 1]. Lower is better.
    pub mse: f64,
    /// Two-way identification using raw pixels as features (chance 0.5);
    /// `None` with fewer than two pairs.
    pub two_way_pixels: Option<f64>,
}

impl MetricsTable {
    /// Computes the table for RGB pairs. Shapes: every image in `truths` and
    /// `recons` is `(height, width, 3)` in [0, 1]; both lists have the same
    /// length `n >= 1`; `height, width >= 11` (SSIM window).
    pub fn from_rgb_pairs<T, R>(
        truths: &[T],
        recons: &[R],
        height: usize,
        width: usize,
    ) -> Result<Self>
    where
        T: AsRef<[f32]>,
        R: AsRef<[f32]>,
    {
        if truths.is_empty() {
            return Err(MetricsError::Empty {
                what: "image pair list",
                need: "at least one pair is required",
            });
        }
        check_len(
            "reconstructions (one per truth)",
            truths.len(),
            recons.len(),
        )?;
        let image_len = shape_len("RGB image", &[height, width, 3])?;

        let n = truths.len();
        let (mut pixcorr, mut ssim, mut mse) = (0.0f64, 0.0f64, 0.0f64);
        let mut truth_rows = Vec::with_capacity(n * image_len);
        let mut recon_rows = Vec::with_capacity(n * image_len);
        for (truth, recon) in truths.iter().zip(recons) {
            let (truth, recon) = (truth.as_ref(), recon.as_ref());
            check_len("truth image (h*w*3)", image_len, truth.len())?;
            check_len("reconstruction image (h*w*3)", image_len, recon.len())?;
            pixcorr += image::pixcorr(truth, recon)?;
            ssim += image::ssim_rgb(truth, recon, height, width)?;
            mse += image::mse(truth, recon)?;
            truth_rows.extend_from_slice(truth);
            recon_rows.extend_from_slice(recon);
        }
        let two_way_pixels = if n >= 2 {
            Some(identification::two_way_identification(
                &recon_rows,
                &truth_rows,
                n,
                image_len,
            )?)
        } else {
            None
        };
        Ok(Self {
            n_pairs: n,
            height,
            width,
            pixcorr: pixcorr / n as f64,
            ssim: ssim / n as f64,
            mse: mse / n as f64,
            two_way_pixels,
        })
    }
}

impl fmt::Display for MetricsTable {
    /// A plain two-column table, one metric per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} image pairs, {}x{} (h x w)",
            self.n_pairs, self.height, self.width
        )?;
        writeln!(f, "{:<24} {:>10}", "metric", "value")?;
        writeln!(
            f,
            "{:<24} {:>10.4}",
            "PixCorr (higher better)", self.pixcorr
        )?;
        writeln!(f, "{:<24} {:>10.4}", "SSIM (higher better)", self.ssim)?;
        writeln!(f, "{:<24} {:>10.6}", "MSE (lower better)", self.mse)?;
        match self.two_way_pixels {
            Some(v) => writeln!(f, "{:<24} {:>10.4}", "2-way ident. (pixels)", v),
            None => writeln!(f, "{:<24} {:>10}", "2-way ident. (pixels)", "n/a"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(h: usize, w: usize, phase: f32) -> Vec<f32> {
        (0..h * w * 3)
            .map(|k| ((k as f32) * 0.013 + phase).sin() * 0.5 + 0.5)
            .collect()
    }

    #[test]
    fn perfect_reconstructions() {
        let (h, w) = (12, 14);
        let truths: Vec<Vec<f32>> = (0..3).map(|i| image(h, w, i as f32 * 1.7)).collect();
        let t = MetricsTable::from_rgb_pairs(&truths, &truths, h, w).unwrap();
        assert_eq!(t.n_pairs, 3);
        assert!((t.pixcorr - 1.0).abs() < 1e-12);
        assert!((t.ssim - 1.0).abs() < 1e-12);
        assert_eq!(t.mse, 0.0);
        assert_eq!(t.two_way_pixels, Some(1.0));
        let printed = t.to_string();
        assert!(printed.contains("SSIM"), "{printed}");
    }

    #[test]
    fn single_pair_has_no_identification() {
        let (h, w) = (11, 11);
        let a = image(h, w, 0.0);
        let t = MetricsTable::from_rgb_pairs(&[&a[..]], &[&a[..]], h, w).unwrap();
        assert_eq!(t.two_way_pixels, None);
        assert!(t.to_string().contains("n/a"));
    }

    #[test]
    fn shape_errors() {
        let (h, w) = (11, 11);
        let a = image(h, w, 0.0);
        let short = &a[..a.len() - 3];
        assert!(MetricsTable::from_rgb_pairs(&[&a[..]], &[short], h, w).is_err());
        assert!(MetricsTable::from_rgb_pairs(&[&a[..], &a[..]], &[&a[..]], h, w).is_err());
        let none: [&[f32]; 0] = [];
        assert!(MetricsTable::from_rgb_pairs(&none, &none, h, w).is_err());
    }
}
