//! The refit on all data at each target's chosen (γ, α): primal weights per band and
//! himalaya's dual coefficients.
//!
//! With `c = (K_γ + αI)⁻¹ y` (K_γ = Σ_b γ_b X_b X_bᵀ, centered data), himalaya stores the
//! dual coefficients `α c` and the primal weights of band b are `γ_b X_bᵀ c`. Since
//! `y − K_γ c = α c`, the dual coefficients are the residuals of the refit, which is how the
//! primal view (p ≤ n) obtains them.

use faer::{Mat, MatMut};

use super::design::{mul64, scale_both_sides, weighted_sum};
use super::search::{Search, Selection, Shared};
use crate::error::Result;
use crate::linalg::{eigh_psd, mul_add, mul_into};
use crate::spectral::Solver;

/// Refit weights of all targets.
pub(crate) struct Weights {
    /// Bands' primal weights stacked (p×t).
    pub primal: Mat<f32>,
    /// himalaya's `dual_coef_` (n×t).
    pub dual: Mat<f32>,
}

/// Refits every target with its selected candidate and alpha.
pub(crate) fn refit(
    search: &Search<'_>,
    shared: &Shared,
    selection: &Selection,
) -> Result<Weights> {
    let (n, p, t) = (search.design.n(), search.design.p(), search.y.ncols());
    let mut weights = Weights {
        primal: Mat::zeros(p, t),
        dual: Mat::zeros(n, t),
    };
    for (g, gamma) in search.candidates.iter().enumerate() {
        let targets: Vec<usize> = (0..t).filter(|&j| selection.candidate[j] == g).collect();
        if targets.is_empty() {
            continue;
        }
        let eigen = match search.solver {
            Solver::Primal => {
                let scales = search.design.column_scales(gamma);
                let (s, v) = eigh_psd(
                    scale_both_sides(shared.gram.as_ref(), &scales).as_ref(),
                    "covariance XᵀX (banded refit)",
                )?;
                (s, Mat::from_fn(p, v.ncols(), |i, j| v[(i, j)] * scales[i]))
            }
            Solver::Dual => eigh_psd(
                weighted_sum(&shared.kernels, gamma).as_ref(),
                "Gram XXᵀ (banded refit)",
            )?,
        };
        for piece in targets.chunks(search.chunk) {
            let alphas: Vec<f64> = piece.iter().map(|&j| selection.alpha[j]).collect();
            match search.solver {
                Solver::Primal => {
                    primal_piece(search, shared, &eigen, piece, &alphas, &mut weights)
                }
                Solver::Dual => dual_piece(search, gamma, &eigen, piece, &alphas, &mut weights),
            }
        }
    }
    Ok(weights)
}

/// Targets `piece` (their columns of Y minus the mean), n×c.
fn gather_centered(search: &Search<'_>, piece: &[usize]) -> Mat<f32> {
    let n = search.y.nrows();
    let mut out = Mat::<f32>::zeros(n, piece.len());
    // bands of rows, so that a row-major Y is read a few cache lines at a time
    for start in (0..n).step_by(32) {
        let rows = start..(start + 32).min(n);
        for (local, &column) in piece.iter().enumerate() {
            let mean = search.y_mean[column];
            for i in rows.clone() {
                out[(i, local)] = (search.y[(i, column)] as f64 - mean) as f32;
            }
        }
    }
    out
}

/// `m ← diag(1/(s + α_j)) m`, one alpha per column.
fn shrink(m: &mut Mat<f64>, eigenvalues: &[f64], alphas: &[f64]) {
    for (j, &alpha) in alphas.iter().enumerate() {
        let mut column = m.col_mut(j);
        for (i, &s) in eigenvalues.iter().enumerate() {
            column[i] /= s + alpha;
        }
    }
}

/// Primal view: `W = DV diag(1/(s+α)) (DV)ᵀ XᵀY_c` (`eigen.1` = DV, p×r), dual = `Y_c − X W`.
fn primal_piece(
    search: &Search<'_>,
    shared: &Shared,
    eigen: &(Vec<f64>, Mat<f64>),
    piece: &[usize],
    alphas: &[f64],
    out: &mut Weights,
) {
    let (s, dv) = eigen;
    let cross = Mat::from_fn(dv.nrows(), piece.len(), |i, j| {
        shared.cross[(i, piece[j])] as f64
    });
    let mut projected = mul64(dv.transpose(), cross.as_ref());
    shrink(&mut projected, s, alphas);
    let w = mul64(dv.as_ref(), projected.as_ref());
    let w32 = Mat::from_fn(w.nrows(), w.ncols(), |i, j| w[(i, j)] as f32);
    let mut residual = gather_centered(search, piece);
    mul_add(
        residual.as_mut(),
        search.design.x.as_ref(),
        w32.as_ref(),
        -1.0,
    );
    for (local, &target) in piece.iter().enumerate() {
        write_column(out.primal.as_mut(), target, w32.col(local).iter().copied());
        write_column(
            out.dual.as_mut(),
            target,
            residual.col(local).iter().copied(),
        );
    }
}

/// Dual view: `c = Q diag(1/(s+α)) Qᵀ Y_c` (`eigen.1` = Q, n×n), dual = `α c`, band b's primal
/// weights `γ_b X_bᵀ c`.
fn dual_piece(
    search: &Search<'_>,
    gamma: &[f64],
    eigen: &(Vec<f64>, Mat<f64>),
    piece: &[usize],
    alphas: &[f64],
    out: &mut Weights,
) {
    let (s, q) = eigen;
    let y = gather_centered(search, piece);
    let y64 = Mat::from_fn(y.nrows(), y.ncols(), |i, j| y[(i, j)] as f64);
    let mut projected = mul64(q.transpose(), y64.as_ref());
    shrink(&mut projected, s, alphas);
    let c = mul64(q.as_ref(), projected.as_ref());
    let c32 = Mat::from_fn(c.nrows(), c.ncols(), |i, j| c[(i, j)] as f32);
    let x = search.design.x.as_ref();
    for (range, &g) in search.design.band_ranges().into_iter().zip(gamma) {
        let mut band_weights = Mat::<f32>::zeros(range.len(), piece.len());
        if g != 0.0 {
            mul_into(
                band_weights.as_mut(),
                x.subcols(range.start, range.len()).transpose(),
                c32.as_ref(),
            );
        }
        for (local, &target) in piece.iter().enumerate() {
            let column = band_weights.col(local);
            for i in 0..range.len() {
                out.primal[(range.start + i, target)] = column[i] * g as f32;
            }
        }
    }
    for (local, &target) in piece.iter().enumerate() {
        let alpha = alphas[local];
        write_column(
            out.dual.as_mut(),
            target,
            c.col(local).iter().map(|v| (v * alpha) as f32),
        );
    }
}

/// Writes `values` into column `j` of `m`.
fn write_column(mut m: MatMut<'_, f32>, j: usize, values: impl Iterator<Item = f32>) {
    let mut column = m.as_mut().col_mut(j);
    for (i, v) in values.enumerate() {
        column[i] = v;
    }
}
