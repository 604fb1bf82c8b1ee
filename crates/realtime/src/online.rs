//! Per-voxel standardisation as volumes arrive, with no look-ahead (OpenNFT's cumulative
//! GLM, reduced to a constant and a linear drift): at volume t each voxel's line a + b·s is
//! fitted to volumes 0..=t by least squares, the residual of volume t is divided by the
//! standard deviation of the residuals so far (Welford's running variance). O(1) per voxel
//! and volume.

/// Running fits of a set of voxels.
#[derive(Debug, Clone)]
pub struct OnlineZscore {
    volumes: usize,
    warmup: usize,
    sum_t: f64,
    sum_tt: f64,
    sum_y: Vec<f64>,
    sum_ty: Vec<f64>,
    /// Welford's count, mean and sum of squared deviations of the residuals.
    residuals: usize,
    residual_mean: Vec<f64>,
    residual_m2: Vec<f64>,
}

impl OnlineZscore {
    /// For `voxels` voxels; z-scores are 0 for the first `warmup` volumes (at least 3: a line
    /// through two points leaves no residual).
    pub fn new(voxels: usize, warmup: usize) -> OnlineZscore {
        OnlineZscore {
            volumes: 0,
            warmup: warmup.max(3),
            sum_t: 0.0,
            sum_tt: 0.0,
            sum_y: vec![0.0; voxels],
            sum_ty: vec![0.0; voxels],
            residuals: 0,
            residual_mean: vec![0.0; voxels],
            residual_m2: vec![0.0; voxels],
        }
    }

    /// Volumes seen.
    pub fn volumes(&self) -> usize {
        self.volumes
    }

    /// Adds volume `values` (one per voxel) and returns its z-scores.
    pub fn push(&mut self, values: &[f32]) -> Vec<f32> {
        assert_eq!(values.len(), self.sum_y.len(), "one value per voxel");
        let t = self.volumes as f64;
        self.volumes += 1;
        self.sum_t += t;
        self.sum_tt += t * t;
        let n = self.volumes as f64;
        let det = n * self.sum_tt - self.sum_t * self.sum_t;
        let warm = self.volumes > 2;
        if warm {
            self.residuals += 1;
        }
        let k = self.residuals as f64;
        let mut z = vec![0.0f32; values.len()];
        for (v, &y) in values.iter().enumerate() {
            let y = y as f64;
            self.sum_y[v] += y;
            self.sum_ty[v] += t * y;
            if !warm {
                continue;
            }
            let slope = (n * self.sum_ty[v] - self.sum_t * self.sum_y[v]) / det;
            let intercept = (self.sum_y[v] - slope * self.sum_t) / n;
            let residual = y - (intercept + slope * t);
            let delta = residual - self.residual_mean[v];
            self.residual_mean[v] += delta / k;
            self.residual_m2[v] += delta * (residual - self.residual_mean[v]);
            if self.volumes > self.warmup && self.residuals > 1 {
                let sd = (self.residual_m2[v] / (k - 1.0)).sqrt();
                if sd > 0.0 {
                    z[v] = (residual / sd) as f32;
                }
            }
        }
        z
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    /// The same quantities recomputed from scratch at each volume.
    fn direct(series: &[f64], warmup: usize) -> Vec<f64> {
        let mut residuals = Vec::new();
        let mut out = Vec::new();
        for t in 0..series.len() {
            let ts: Vec<f64> = (0..=t).map(|s| s as f64).collect();
            let n = ts.len() as f64;
            if t < 2 {
                out.push(0.0);
                continue;
            }
            let (mt, my) = (
                ts.iter().sum::<f64>() / n,
                series[..=t].iter().sum::<f64>() / n,
            );
            let cov: f64 = ts
                .iter()
                .zip(&series[..=t])
                .map(|(a, b)| (a - mt) * (b - my))
                .sum();
            let var: f64 = ts.iter().map(|a| (a - mt).powi(2)).sum();
            let slope = cov / var;
            let residual = series[t] - (my + slope * (t as f64 - mt));
            residuals.push(residual);
            if t < warmup.max(3) || residuals.len() < 2 {
                out.push(0.0);
                continue;
            }
            let m = residuals.iter().sum::<f64>() / residuals.len() as f64;
            let sd = (residuals.iter().map(|r| (r - m).powi(2)).sum::<f64>()
                / (residuals.len() - 1) as f64)
                .sqrt();
            out.push(residual / sd);
        }
        out
    }

    #[test]
    fn matches_a_refit_from_scratch_and_removes_drift() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let noise = Normal::new(0.0, 2.0).unwrap();
        let voxels = 4;
        let series: Vec<Vec<f64>> = (0..voxels)
            .map(|v| {
                (0..200)
                    .map(|t| 1000.0 + v as f64 * 50.0 + 0.8 * t as f64 + noise.sample(&mut rng))
                    .collect()
            })
            .collect();
        let mut online = OnlineZscore::new(voxels, 5);
        let mut z = vec![Vec::new(); voxels];
        for t in 0..200 {
            let volume: Vec<f32> = series.iter().map(|s| s[t] as f32).collect();
            for (v, value) in online.push(&volume).into_iter().enumerate() {
                z[v].push(value as f64);
            }
        }
        for v in 0..voxels {
            let expected = direct(&series[v], 5);
            for t in 0..200 {
                assert!(
                    (z[v][t] - expected[t]).abs() < 1e-3 * (1.0 + expected[t].abs()),
                    "voxel {v} volume {t}: {} vs {}",
                    z[v][t],
                    expected[t]
                );
            }
            // The drift (0.8 a volume, 160 over the run) is gone: late z-scores are unit noise.
            let late = &z[v][100..];
            let mean = late.iter().sum::<f64>() / late.len() as f64;
            let sd =
                (late.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / late.len() as f64).sqrt();
            assert!(
                mean.abs() < 0.3 && (sd - 1.0).abs() < 0.2,
                "voxel {v}: mean {mean}, sd {sd}"
            );
        }
    }
}
