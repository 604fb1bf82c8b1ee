//! The live decoders: the linear route's ridge decoders at the subject's voxels, and the
//! window of volumes a pattern is the mean of, standardised by running statistics.

use crate::decode::decoders::Decoder;
use crate::error::{Result, RouteError};
use brainrecon_datasets::prepared::PreparedSubject;
use brainrecon_formats::npy;
use std::collections::VecDeque;
use std::path::Path;

/// The fitted z and c decoders with the subject voxels they read.
pub struct LiveDecoders {
    /// The VAE latent z decoder (`decoders/z`).
    pub z: Decoder,
    /// The CLIP text context c decoder (`decoders/c`).
    pub c: Decoder,
    /// Flat indices (x fastest) into the subject's volume: the z decoder's voxels, then the
    /// c decoder's.
    pub voxels: Vec<usize>,
    /// Where the c decoder's voxels start in `voxels`.
    split: usize,
}

impl LiveDecoders {
    /// Loads `decoders/z` and `decoders/c` and resolves their ROIs to voxels of `subject`.
    pub fn load(subject: &PreparedSubject, decoders: &Path) -> Result<LiveDecoders> {
        let z = Decoder::load(&decoders.join("z"))?;
        let c = Decoder::load(&decoders.join("c"))?;
        let mut voxels = roi_voxels(subject, &z)?;
        let split = voxels.len();
        voxels.extend(roi_voxels(subject, &c)?);
        Ok(LiveDecoders {
            z,
            c,
            voxels,
            split,
        })
    }

    /// How many of `voxels` are the z decoder's (they come first).
    pub fn z_voxels(&self) -> usize {
        self.split
    }

    /// Decoded (z, c) of one standardised pattern over `voxels`.
    pub fn decode(&self, pattern: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
        assert_eq!(pattern.len(), self.voxels.len(), "one value per voxel");
        let (for_z, for_c) = pattern.split_at(self.split);
        let z = self.z.model.predict_row_major(for_z, (1, for_z.len()))?;
        let c = self.c.model.predict_row_major(for_c, (1, for_c.len()))?;
        Ok((z, c))
    }
}

/// The flat indices of `decoder`'s ROI voxels in `subject`'s volume, in the decoder's column
/// order (the atlas' voxel coordinates, `rois/<atlas>.npy`).
fn roi_voxels(subject: &PreparedSubject, decoder: &Decoder) -> Result<Vec<usize>> {
    let roi = decoder.roi_of(subject)?;
    let path = subject.path(&format!("rois/{}.npy", roi.atlas));
    let coords = npy::read_i64(&path)?;
    let [nx, ny, nz] = subject.meta.volume_shape;
    let rows = coords.data.len() / 3;
    let flat = |row: usize| -> Result<usize> {
        let c = &coords.data[3 * row..3 * row + 3];
        let inside = (0..3).all(|i| c[i] >= 0 && (c[i] as usize) < [nx, ny, nz][i]);
        if coords.shape.get(1) != Some(&3) || !inside {
            return Err(RouteError::mismatch(
                &path,
                "voxel coordinates",
                format!("(n, 3) voxel indices inside the volume {:?}", [nx, ny, nz]),
                format!("shape {:?}, row {row}: {c:?}", coords.shape),
            ));
        }
        Ok(c[0] as usize + nx * (c[1] as usize + ny * c[2] as usize))
    };
    match roi.columns {
        Some(columns) => columns.into_iter().map(flat).collect(),
        None => (0..rows).map(flat).collect(),
    }
}

/// The mean of the last `k` volumes' z-scores, standardised per voxel by the running mean
/// and variance (Welford) of every pattern so far, the current one included.
pub struct PatternWindow {
    k: usize,
    recent: VecDeque<Vec<f32>>,
    count: u64,
    mean: Vec<f64>,
    m2: Vec<f64>,
}

impl PatternWindow {
    /// `k` ≥ 1 volumes over `voxels` voxels.
    pub fn new(voxels: usize, k: usize) -> PatternWindow {
        assert!(k >= 1, "a window of at least one volume");
        PatternWindow {
            k,
            recent: VecDeque::with_capacity(k),
            count: 0,
            mean: vec![0.0; voxels],
            m2: vec![0.0; voxels],
        }
    }

    /// Adds a volume's z-scores; returns the standardised pattern once `k` volumes are in,
    /// and the number of patterns its statistics rest on.
    pub fn push(&mut self, zscores: &[f32]) -> Option<(Vec<f32>, u64)> {
        assert_eq!(zscores.len(), self.mean.len(), "one value per voxel");
        if self.recent.len() == self.k {
            self.recent.pop_front();
        }
        self.recent.push_back(zscores.to_vec());
        if self.recent.len() < self.k {
            return None;
        }
        let k = self.k as f64;
        let pattern: Vec<f64> = (0..self.mean.len())
            .map(|v| self.recent.iter().map(|z| z[v] as f64).sum::<f64>() / k)
            .collect();
        self.count += 1;
        let n = self.count as f64;
        let standardised = pattern
            .iter()
            .enumerate()
            .map(|(v, &x)| {
                let delta = x - self.mean[v];
                self.mean[v] += delta / n;
                self.m2[v] += delta * (x - self.mean[v]);
                let sd = (self.m2[v] / n).sqrt();
                if sd > 1e-9 {
                    ((x - self.mean[v]) / sd) as f32
                } else {
                    0.0
                }
            })
            .collect();
        Some((standardised, self.count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_is_the_window_mean_standardised_by_running_statistics() {
        let mut window = PatternWindow::new(2, 2);
        assert!(window.push(&[1.0, 5.0]).is_none());
        // Mean of [1, 3] and [5, 5]: one pattern, no spread yet: 0.
        let (first, n) = window.push(&[3.0, 5.0]).unwrap();
        assert_eq!((first, n), (vec![0.0, 0.0], 1));
        // Next mean [4, 6]: patterns 2 and 4 (mean 3, sd 1) → +1; 5 and 6 → +1.
        let (second, n) = window.push(&[5.0, 7.0]).unwrap();
        assert_eq!(n, 2);
        assert!((second[0] - 1.0).abs() < 1e-6 && (second[1] - 1.0).abs() < 1e-6);
    }
}
