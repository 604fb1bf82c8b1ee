//! Fractional ridge regression as the `fracridge` package computes it (Rokem & Kay 2020), which
//! GLMsingle's TYPED uses: for each voxel, the ridge penalty whose solution's length is a given
//! fraction of the least-squares solution's. As fracridge, the penalty is interpolated on a
//! log grid of candidate penalties (linear in log(1 + α) against the length fraction), not
//! solved exactly: the exact solve moves the betas measurably.
//!
//! With the Gram matrix XᵀX = V diag(λ) Vᵀ and the rotated least-squares solution
//! c = diag(1/λ) Vᵀ Xᵀy, the ridge solution for α is V diag(λ / (λ + α)) c.

use crate::engine::Spectrum;
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat};

/// fracridge's grid bounds: 10⁴ × the largest and 10⁻² × the smallest eigenvalue.
const BIG_BIAS: f64 = 10e3;
const SMALL_BIAS: f64 = 10e-3;
const BIAS_STEP: f64 = 0.2;
/// Singular values below this are treated as 0 (their components get no weight).
const TOLERANCE: f64 = 1e-10;

/// The candidate penalties: 0, then 10^(a + 0.2 i) for i < ⌈(b − a) / 0.2⌉, with
/// a = ⌊log10(0.01 λ_min)⌋ and b = ⌈log10(10⁴ λ_max)⌉ over the eigenvalues kept.
pub fn alpha_grid(kept: &[f64]) -> Vec<f64> {
    let max = kept.iter().copied().fold(f64::MIN, f64::max);
    let min = kept.iter().copied().fold(f64::MAX, f64::min);
    let start = (SMALL_BIAS * min).log10().floor();
    let stop = (BIG_BIAS * max).log10().ceil();
    let count = ((stop - start) / BIAS_STEP).ceil().max(0.0) as usize;
    std::iter::once(0.0)
        .chain((0..count).map(|i| 10f64.powf(start + i as f64 * BIAS_STEP)))
        .collect()
}

/// `numpy.interp(x, xp, fp)` for ascending `xp`.
fn interp(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
    let last = xp.len() - 1;
    if x < xp[0] {
        return fp[0];
    }
    if x >= xp[last] {
        return fp[last];
    }
    let j = xp.partition_point(|&v| v <= x) - 1;
    fp[j] + (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]) * (x - xp[j])
}

/// The penalty giving `fraction` of the least-squares length for the rotated solution `c`
/// (eigenvalues `values`), interpolated on `grid` as fracridge does.
pub fn alpha_for_fraction(values: &[f64], c: &[f64], grid: &[f64], fraction: f64) -> f64 {
    alphas_for_fractions(values, c, grid, &[fraction])[0]
}

/// [`alpha_for_fraction`] for each of `fractions`, the lengths along the grid computed once.
pub fn alphas_for_fractions(
    values: &[f64],
    c: &[f64],
    grid: &[f64],
    fractions: &[f64],
) -> Vec<f64> {
    let lengths: Vec<f64> = grid
        .iter()
        .map(|&alpha| {
            values
                .iter()
                .zip(c)
                .map(|(&l, &ci)| {
                    let scale = if l > 0.0 { l / (l + alpha) } else { 0.0 };
                    (scale * ci).powi(2)
                })
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    alphas_from_lengths(&lengths, grid, fractions)
}

/// The penalties for `fractions` from the solution's length at each penalty of `grid`.
fn alphas_from_lengths(lengths: &[f64], grid: &[f64], fractions: &[f64]) -> Vec<f64> {
    if lengths[0] == 0.0 {
        return vec![0.0; fractions.len()];
    }
    // Ascending lengths (the grid reversed) against log(1 + α).
    let xp: Vec<f64> = lengths.iter().rev().map(|l| l / lengths[0]).collect();
    let fp: Vec<f64> = grid.iter().rev().map(|a| a.ln_1p()).collect();
    fractions
        .iter()
        .map(|&fraction| interp(fraction, &xp, &fp).exp_m1())
        .collect()
}

/// Ridge solutions of a chunk at each of `fractions`: `cross` holds Xᵀy of the live
/// regressors (k_live × c). Returns, per fraction, the betas (k_live × c) and the penalty of
/// each voxel.
pub fn solve(
    spectrum: &Spectrum,
    cross: &Mat<f64>,
    fractions: &[f64],
) -> Vec<(Mat<f64>, Vec<f64>)> {
    let (k, c) = (cross.nrows(), cross.ncols());
    assert_eq!(
        spectrum.values.len(),
        k,
        "fracridge: eigenvalues per regressor"
    );
    let kept: Vec<f64> = spectrum
        .values
        .iter()
        .map(|&l| if l.sqrt() < TOLERANCE { 0.0 } else { l })
        .collect();
    let positive: Vec<f64> = kept.iter().copied().filter(|&l| l > 0.0).collect();
    let grid = alpha_grid(&positive);
    let mut rotated = Mat::<f64>::zeros(k, c);
    let par = faer::get_global_parallelism();
    matmul(
        rotated.as_mut(),
        Accum::Replace,
        spectrum.vectors.transpose(),
        cross.as_ref(),
        1.0,
        par,
    );
    for v in 0..c {
        for (i, &l) in kept.iter().enumerate() {
            rotated[(i, v)] = if l > 0.0 { rotated[(i, v)] / l } else { 0.0 };
        }
    }
    // The solution's squared length at every penalty of the grid, for all voxels at once:
    // (λ/(λ+α))² (grid × k) times the squared rotated solutions (k × c).
    let shrink = Mat::from_fn(grid.len(), k, |g, i| {
        let l = kept[i];
        if l > 0.0 {
            (l / (l + grid[g])).powi(2)
        } else {
            0.0
        }
    });
    let squared = Mat::from_fn(k, c, |i, v| rotated[(i, v)].powi(2));
    let mut lengths = Mat::<f64>::zeros(grid.len(), c);
    matmul(
        lengths.as_mut(),
        Accum::Replace,
        shrink.as_ref(),
        squared.as_ref(),
        1.0,
        par,
    );
    // (voxels × fractions): each voxel's penalties.
    let alphas: Vec<Vec<f64>> = (0..c)
        .map(|v| {
            let column: Vec<f64> = (0..grid.len())
                .map(|g| lengths[(g, v)].max(0.0).sqrt())
                .collect();
            alphas_from_lengths(&column, &grid, fractions)
        })
        .collect();
    (0..fractions.len())
        .map(|f| {
            let scaled = Mat::from_fn(k, c, |i, v| {
                let l = kept[i];
                if l > 0.0 {
                    l / (l + alphas[v][f]) * rotated[(i, v)]
                } else {
                    0.0
                }
            });
            let mut betas = Mat::<f64>::zeros(k, c);
            matmul(
                betas.as_mut(),
                Accum::Replace,
                spectrum.vectors.as_ref(),
                scaled.as_ref(),
                1.0,
                par,
            );
            (betas, alphas.iter().map(|a| a[f]).collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_spans_the_eigenvalues_as_fracridges() {
        // λ in [0.5, 20]: a = ⌊log10(0.005)⌋ = −3, b = ⌈log10(2e5)⌉ = 6, 45 steps.
        let grid = alpha_grid(&[20.0, 0.5]);
        assert_eq!(grid.len(), 46);
        assert_eq!(grid[0], 0.0);
        assert!((grid[1] - 1e-3).abs() < 1e-15);
        assert!((grid[45] / 10f64.powf(5.8) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn fraction_one_is_least_squares_and_smaller_fractions_shrink() {
        let values = [4.0, 1.0, 0.25];
        let c = [1.0, -2.0, 0.5];
        let grid = alpha_grid(&values);
        assert_eq!(alpha_for_fraction(&values, &c, &grid, 1.0), 0.0);
        let length = |alpha: f64| {
            values
                .iter()
                .zip(&c)
                .map(|(l, ci)| (l / (l + alpha) * ci).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        let full = length(0.0);
        for fraction in [0.9, 0.5, 0.1] {
            let alpha = alpha_for_fraction(&values, &c, &grid, fraction);
            // Interpolated on a log grid: close to the fraction, not exact.
            let got = length(alpha) / full;
            assert!((got - fraction).abs() < 0.02, "{fraction}: {got}");
        }
    }
}
