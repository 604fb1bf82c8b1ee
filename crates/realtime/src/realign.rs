//! Rigid-body realignment by Gauss-Newton on intensity differences.
//!
//! The reference is smoothed once and its world-space gradients give each of its voxels a
//! row of the Jacobian J (N × 6: three translations, three rotations about its centre). For a
//! source volume and the current transform T (reference world → source world), each
//! iteration samples the smoothed source at T(w), solves (JᵀJ) q = Jᵀ (s·S∘T − R) for a small
//! motion q of the reference and updates T ← T ∘ D(q)⁻¹: the inverse compositional update
//! (Baker & Matthews 2004), which needs the reference's gradients only, as SPM's and AFNI's
//! realignment. A global intensity scale s (mean reference over mean source on the voxels
//! both cover) absorbs scanner drift and another session's gain.

use crate::grid::{GridError, Image, WorldToVoxel};
use crate::rigid::{Rigid, RigidParams};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a volume cannot be realigned.
#[derive(Debug, Error, PartialEq)]
pub enum RealignError {
    /// A volume's grid is unusable.
    #[error(transparent)]
    Grid(#[from] GridError),
    /// The reference gives the Jacobian no row.
    #[error("the reference has no voxel with an intensity gradient inside its edges (flat or smaller than 3 voxels along an axis)")]
    FlatReference,
    /// Too few reference voxels land in the source.
    #[error("only {used} voxels of the reference fall inside the source volume after the transform (at least {needed} are needed): the volumes do not overlap")]
    NoOverlap {
        /// Reference voxels inside the source.
        used: usize,
        /// The least the estimate needs.
        needed: usize,
    },
    /// JᵀJ cannot be inverted reliably.
    #[error("the motion estimate is ill-conditioned (the volume constrains some of the 6 parameters too little)")]
    IllConditioned,
}

/// Settings of [`Reference::estimate`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RealignOptions {
    /// Gaussian smoothing of both volumes before estimation (SPM's default is 5 mm).
    pub smoothing_fwhm_mm: f64,
    /// Gauss-Newton iterations at most.
    pub max_iterations: usize,
    /// Converged when an update moves no point within the reference's extent by more than
    /// this (mm).
    pub tolerance_mm: f64,
    /// Voxels whose smoothed reference intensity is below this fraction of the mean
    /// (background) are left out, as SPM's realignment weights them out.
    pub background_fraction: f64,
}

impl Default for RealignOptions {
    fn default() -> Self {
        RealignOptions {
            smoothing_fwhm_mm: 5.0,
            max_iterations: 50,
            tolerance_mm: 1e-4,
            background_fraction: 0.1,
        }
    }
}

/// The result of one realignment.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Reference world → source world (mm): where each reference point is found in the source.
    pub transform: Rigid,
    /// `transform` as motion parameters about the reference's centre.
    pub params: RigidParams,
    /// Gauss-Newton iterations run.
    pub iterations: usize,
    /// Whether the last update fell below [`RealignOptions::tolerance_mm`] before
    /// [`RealignOptions::max_iterations`].
    pub converged: bool,
    /// Root mean square of the last residuals (scaled source − reference), smoothed units.
    pub rms: f64,
    /// Reference voxels the last iteration used.
    pub voxels_used: usize,
}

/// One reference voxel: its world position, smoothed value and Jacobian row.
#[derive(Debug, Clone, Copy)]
struct Sample {
    world: [f64; 3],
    value: f64,
    jacobian: [f64; 6],
}

/// A reference volume prepared for realigning others to it.
#[derive(Debug, Clone)]
pub struct Reference {
    samples: Vec<Sample>,
    centre: [f64; 3],
    /// Half the diagonal of the reference's extent (mm): the lever arm of rotations.
    radius_mm: f64,
    options: RealignOptions,
}

impl Reference {
    /// Smooths `image` and computes its Jacobian rows.
    pub fn new(image: &Image, options: &RealignOptions) -> Result<Reference, RealignError> {
        let smooth = image.smoothed(options.smoothing_fwhm_mm);
        let centre = image.grid.centre();
        let samples = jacobian_samples(&smooth, centre, options.background_fraction)?;
        let corner = image.grid.world([0.0; 3]);
        let radius_mm = (0..3)
            .map(|i| (corner[i] - centre[i]).powi(2))
            .sum::<f64>()
            .sqrt();
        Ok(Reference {
            samples,
            centre,
            radius_mm: radius_mm.max(1.0),
            options: options.clone(),
        })
    }

    /// The reference's centre (world mm): the point rotations are reported about.
    pub fn centre(&self) -> [f64; 3] {
        self.centre
    }

    /// Realigns `source` (any grid that overlaps the reference's) starting from `start`
    /// (the identity, or the previous volume's estimate).
    pub fn estimate(&self, source: &Image, start: &Rigid) -> Result<Estimate, RealignError> {
        let smooth = source.smoothed(self.options.smoothing_fwhm_mm);
        let to_voxel = smooth.grid.world_to_voxel()?;
        let mut transform = *start;
        let mut last = Step::default();
        let mut converged = false;
        let mut iterations = 0;
        while iterations < self.options.max_iterations {
            iterations += 1;
            last = self.normal_equations(&smooth, &to_voxel, &transform)?;
            let q = solve6(&last.hessian, &last.gradient).ok_or(RealignError::IllConditioned)?;
            let update = Rigid::about(self.centre, [q[0], q[1], q[2]], [q[3], q[4], q[5]]);
            transform = transform.compose(&update.inverse());
            if update.displacement_bound(self.centre, self.radius_mm) < self.options.tolerance_mm {
                converged = true;
                break;
            }
        }
        Ok(Estimate {
            params: transform.params(self.centre),
            transform,
            iterations,
            converged,
            rms: (last.sum_squares / last.used.max(1) as f64).sqrt(),
            voxels_used: last.used,
        })
    }

    /// JᵀJ and Jᵀe over the reference voxels whose transformed position lies in `source`.
    fn normal_equations(
        &self,
        source: &Image,
        to_voxel: &WorldToVoxel,
        transform: &Rigid,
    ) -> Result<Step, RealignError> {
        let sampled: Vec<Option<f64>> = self
            .samples
            .iter()
            .map(|s| source.sample(to_voxel.voxel(transform.apply(s.world))))
            .collect();
        let (mut sum_source, mut sum_reference, mut used) = (0.0, 0.0, 0usize);
        for (s, v) in self.samples.iter().zip(&sampled) {
            if let Some(v) = v {
                sum_source += v;
                sum_reference += s.value;
                used += 1;
            }
        }
        let needed = 64.max(self.samples.len() / 20);
        if used < needed || sum_source <= 0.0 {
            return Err(RealignError::NoOverlap { used, needed });
        }
        let scale = sum_reference / sum_source;
        let mut step = Step {
            used,
            ..Step::default()
        };
        for (s, v) in self.samples.iter().zip(&sampled) {
            let Some(v) = v else { continue };
            let e = scale * v - s.value;
            step.sum_squares += e * e;
            for r in 0..6 {
                step.gradient[r] += s.jacobian[r] * e;
                for c in r..6 {
                    step.hessian[r][c] += s.jacobian[r] * s.jacobian[c];
                }
            }
        }
        for r in 0..6 {
            for c in 0..r {
                step.hessian[r][c] = step.hessian[c][r];
            }
        }
        Ok(step)
    }
}

#[derive(Debug, Clone, Default)]
struct Step {
    hessian: [[f64; 6]; 6],
    gradient: [f64; 6],
    sum_squares: f64,
    used: usize,
}

/// Jacobian rows of the interior voxels of `smooth` above the background threshold:
/// translations take the world gradient ∇R, rotations (w − c) × ∇R.
fn jacobian_samples(
    smooth: &Image,
    centre: [f64; 3],
    background_fraction: f64,
) -> Result<Vec<Sample>, RealignError> {
    let grid = &smooth.grid;
    let [nx, ny, nz] = grid.shape;
    if nx < 3 || ny < 3 || nz < 3 {
        return Err(RealignError::FlatReference);
    }
    let inverse = grid.world_to_voxel()?.inverse;
    let mean = smooth.values.iter().map(|&v| v as f64).sum::<f64>() / smooth.values.len() as f64;
    let threshold = background_fraction * mean;
    let stride = [1, nx, nx * ny];
    let mut samples = Vec::new();
    for z in 1..nz - 1 {
        for y in 1..ny - 1 {
            for x in 1..nx - 1 {
                let i = grid.index(x, y, z);
                let value = smooth.values[i] as f64;
                if value < threshold {
                    continue;
                }
                let g_voxel: [f64; 3] = std::array::from_fn(|a| {
                    (smooth.values[i + stride[a]] as f64 - smooth.values[i - stride[a]] as f64)
                        / 2.0
                });
                // ∂R/∂w = (L⁻¹)ᵀ ∂R/∂x for the affine's linear part L.
                let g: [f64; 3] =
                    std::array::from_fn(|j| (0..3).map(|a| inverse[a][j] * g_voxel[a]).sum());
                if g.iter().all(|v| *v == 0.0) {
                    continue;
                }
                let world = grid.world([x as f64, y as f64, z as f64]);
                let r = [
                    world[0] - centre[0],
                    world[1] - centre[1],
                    world[2] - centre[2],
                ];
                let rot = [
                    r[1] * g[2] - r[2] * g[1],
                    r[2] * g[0] - r[0] * g[2],
                    r[0] * g[1] - r[1] * g[0],
                ];
                samples.push(Sample {
                    world,
                    value,
                    jacobian: [g[0], g[1], g[2], rot[0], rot[1], rot[2]],
                });
            }
        }
    }
    if samples.is_empty() {
        return Err(RealignError::FlatReference);
    }
    Ok(samples)
}

/// Solves the symmetric positive definite 6×6 system by Cholesky; `None` when it is not
/// (numerically) positive definite.
fn solve6(a: &[[f64; 6]; 6], b: &[f64; 6]) -> Option<[f64; 6]> {
    let mut l = [[0.0f64; 6]; 6];
    let largest = (0..6).map(|i| a[i][i]).fold(0.0, f64::max);
    for j in 0..6 {
        let d = a[j][j] - (0..j).map(|k| l[j][k] * l[j][k]).sum::<f64>();
        // NaN fails this test too.
        if d.is_nan() || d <= 1e-12 * largest {
            return None;
        }
        l[j][j] = d.sqrt();
        for i in j + 1..6 {
            l[i][j] = (a[i][j] - (0..j).map(|k| l[i][k] * l[j][k]).sum::<f64>()) / l[j][j];
        }
    }
    let mut y = [0.0; 6];
    for i in 0..6 {
        y[i] = (b[i] - (0..i).map(|k| l[i][k] * y[k]).sum::<f64>()) / l[i][i];
    }
    let mut x = [0.0; 6];
    for i in (0..6).rev() {
        x[i] = (y[i] - (i + 1..6).map(|k| l[k][i] * x[k]).sum::<f64>()) / l[i][i];
    }
    Some(x)
}

/// `source` resampled (trilinear) onto `onto`'s grid through `transform` (reference world →
/// source world, as [`Estimate::transform`]); voxels that fall outside the source are 0 and
/// false in the returned coverage.
pub fn reslice(
    source: &Image,
    transform: &Rigid,
    onto: &crate::grid::Grid,
) -> Result<(Image, Vec<bool>), RealignError> {
    let to_voxel = source.grid.world_to_voxel()?;
    let [nx, ny, nz] = onto.shape;
    let mut values = vec![0.0f32; onto.len()];
    let mut covered = vec![false; onto.len()];
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let w = onto.world([x as f64, y as f64, z as f64]);
                if let Some(v) = source.sample(to_voxel.voxel(transform.apply(w))) {
                    let i = onto.index(x, y, z);
                    values[i] = v as f32;
                    covered[i] = true;
                }
            }
        }
    }
    Ok((Image::new(onto.clone(), values)?, covered))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_a_known_system() {
        let mut a: [[f64; 6]; 6] = std::array::from_fn(|i| {
            std::array::from_fn(|j| {
                1.0 / (1.0 + (i as f64 - j as f64).abs()) + if i == j { 2.0 } else { 0.0 }
            })
        });
        let x_true = [1.0, -2.0, 0.5, 3.0, -1.0, 0.25];
        let b: [f64; 6] = std::array::from_fn(|i| (0..6).map(|j| a[i][j] * x_true[j]).sum());
        let x = solve6(&a, &b).unwrap();
        for i in 0..6 {
            assert!((x[i] - x_true[i]).abs() < 1e-12);
        }
        a[5][5] = -1.0;
        assert!(solve6(&a, &b).is_none());
    }
}
