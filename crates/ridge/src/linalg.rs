//! Thin wrappers over faer: GEMM, precision casts, symmetric eigendecomposition.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par, Side};

use crate::error::{Result, RidgeError};

/// `lhs (m×k) · rhs (k×n)` → `m×n` in f64, multithreaded.
pub(crate) fn mul64(lhs: MatRef<'_, f64>, rhs: MatRef<'_, f64>) -> Mat<f64> {
    assert_eq!(lhs.ncols(), rhs.nrows(), "inner dimensions of a product");
    let mut out = Mat::<f64>::zeros(lhs.nrows(), rhs.ncols());
    matmul(out.as_mut(), Accum::Replace, lhs, rhs, 1.0, Par::rayon(0));
    out
}

/// `lhs (m×k) · rhs (k×n)` → `m×n` in f32, multithreaded.
pub(crate) fn mul32(lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>) -> Mat<f32> {
    assert_eq!(lhs.ncols(), rhs.nrows(), "inner dimensions of a product");
    let mut out = Mat::<f32>::zeros(lhs.nrows(), rhs.ncols());
    matmul(out.as_mut(), Accum::Replace, lhs, rhs, 1.0, Par::rayon(0));
    out
}

/// Element-wise cast f64 → f32.
pub(crate) fn to_f32(m: MatRef<'_, f64>) -> Mat<f32> {
    Mat::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)] as f32)
}

/// Eigendecomposition of a symmetric PSD matrix `g` (r×r).
///
/// Returns eigenvalues (ascending, negatives from rounding clamped to 0 like
/// himalaya's `negative_eigenvalues="zeros"`) and eigenvectors (r×r, columns).
pub(crate) fn eigh_psd(g: MatRef<'_, f64>, what: &'static str) -> Result<(Vec<f64>, Mat<f64>)> {
    assert_eq!(g.nrows(), g.ncols(), "eigh needs a square matrix");
    let evd = g
        .self_adjoint_eigen(Side::Lower)
        .map_err(|_| RidgeError::Decomposition(what))?;
    let s = evd.S().column_vector();
    let eigenvalues = (0..s.nrows()).map(|i| s[i].max(0.0)).collect();
    Ok((eigenvalues, evd.U().to_owned()))
}
