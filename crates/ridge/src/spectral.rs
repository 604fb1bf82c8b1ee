//! Spectral factorizations that make every alpha of the grid cheap.
//!
//! Both solvers are written in one form. With eigenvalues `s` (r), a fit-side
//! basis `C` (n_fit×r) and an eval-side basis `B` (n_eval×r):
//!
//! ```text
//! A      = Cᵀ Y_fit                      (r×t, once per target chunk)
//! Ŷ(α)   = B · diag(1/(s+α)) · A         (n_eval×t, per alpha: one GEMM)
//! W(α)   = P · diag(1/(s+α)) · A         (p×t, refit on all data)
//! ```
//!
//! * primal (p ≤ n): `XᵀX = V S Vᵀ`, `C = X V`, `B = X_eval V`, `P = V`.
//! * dual   (p > n): `X Xᵀ = Q S Qᵀ`, `C = Q`, `B = K_eval Q`, `P = Xᵀ Q`.
//!
//! Precision: the Gram/covariance matrix and its eigendecomposition are f64
//! (an r×r f64 matrix is 2 GiB at r = 16k, acceptable on the 24 GiB machines
//! this runs on, and f32 Gram matrices lose the small eigenvalues that decide
//! weakly-regularized fits). `C` and `P` stay f64 because they are applied
//! once per chunk; only `B`, used in the per-alpha GEMM that dominates the
//! cost (n·r·t per alpha), is stored in f32.

use faer::{Mat, MatRef};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::linalg::{eigh_psd, mul64, to_f32};

/// Which normal equations were decomposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Solver {
    /// p×p eigendecomposition of XᵀX (used when p ≤ n).
    Primal,
    /// n×n eigendecomposition of XXᵀ (used when p > n).
    Dual,
}

impl Solver {
    /// Primal when the feature count does not exceed the sample count.
    pub fn for_shape(n_samples: usize, n_features: usize) -> Self {
        if n_features <= n_samples {
            Solver::Primal
        } else {
            Solver::Dual
        }
    }
}

/// Factorization of one training set (all data, or one CV fold).
pub(crate) struct Spectrum {
    /// Eigenvalues `s` (r), clamped to ≥ 0.
    pub eigenvalues: Vec<f64>,
    /// `C` (n_fit×r).
    pub fit_basis: Mat<f64>,
    /// `B` (n_eval×r), f32 for the per-alpha GEMM.
    pub eval_basis: Mat<f32>,
    /// `B ∘ C` (n×r) when eval = fit: hat diagonal `h(α) = (B∘C) · 1/(s+α)`.
    pub leverage: Option<Mat<f64>>,
    /// `P` (p×r) for the refit weights (full-data factorization only).
    pub weight_basis: Option<Mat<f64>>,
    /// Dual full-data only: `Q` (n×n, f32) and `Q∘Q` (f64). Since Q is square
    /// orthogonal, LOO residuals are `Q·diag(α/(s+α))·A` and `1 - h_ii =
    /// Σ_j Q_ij² α/(s_j+α)`: no cancellation when h_ii → 1 (small alpha, p > n).
    pub dual_residual: Option<(Mat<f32>, Mat<f64>)>,
}

/// Factorizes all training data `x` (n×p, already centered/scaled): eval = fit,
/// with the leverage needed for LOO and the weight basis for the refit.
pub(crate) fn decompose_full(x: MatRef<'_, f64>) -> Result<(Solver, Spectrum)> {
    let solver = Solver::for_shape(x.nrows(), x.ncols());
    let spectrum = match solver {
        Solver::Primal => {
            let (s, v) = eigh_psd(mul64(x.transpose(), x).as_ref(), "covariance XᵀX")?;
            let z = mul64(x, v.as_ref());
            let leverage = Mat::from_fn(z.nrows(), z.ncols(), |i, j| z[(i, j)] * z[(i, j)]);
            Spectrum {
                eigenvalues: s,
                eval_basis: to_f32(z.as_ref()),
                fit_basis: z,
                leverage: Some(leverage),
                weight_basis: Some(v),
                dual_residual: None,
            }
        }
        Solver::Dual => {
            let (s, q) = eigh_psd(mul64(x, x.transpose()).as_ref(), "Gram XXᵀ")?;
            let leverage = Mat::from_fn(q.nrows(), q.ncols(), |i, j| q[(i, j)] * q[(i, j)] * s[j]);
            let eval_basis = Mat::from_fn(q.nrows(), q.ncols(), |i, j| (q[(i, j)] * s[j]) as f32);
            let weight_basis = mul64(x.transpose(), q.as_ref());
            let squared = Mat::from_fn(q.nrows(), q.ncols(), |i, j| q[(i, j)] * q[(i, j)]);
            let dual_residual = Some((to_f32(q.as_ref()), squared));
            Spectrum {
                dual_residual,
                eigenvalues: s,
                fit_basis: q,
                eval_basis,
                leverage: Some(leverage),
                weight_basis: Some(weight_basis),
            }
        }
    };
    Ok((solver, spectrum))
}

/// Factorizes a CV fold: fit on `x_fit` (n_fit×p), predict `x_eval` (n_eval×p).
/// Both must already be centered with the fit-set mean when an intercept is fitted.
pub(crate) fn decompose_fold(x_fit: MatRef<'_, f64>, x_eval: MatRef<'_, f64>) -> Result<Spectrum> {
    assert_eq!(x_fit.ncols(), x_eval.ncols(), "fold feature counts");
    let (s, fit_basis, eval_basis) = match Solver::for_shape(x_fit.nrows(), x_fit.ncols()) {
        Solver::Primal => {
            let (s, v) = eigh_psd(
                mul64(x_fit.transpose(), x_fit).as_ref(),
                "fold covariance XᵀX",
            )?;
            let eval = mul64(x_eval, v.as_ref());
            (s, mul64(x_fit, v.as_ref()), to_f32(eval.as_ref()))
        }
        Solver::Dual => {
            let (s, q) = eigh_psd(mul64(x_fit, x_fit.transpose()).as_ref(), "fold Gram XXᵀ")?;
            let cross_kernel = mul64(x_eval, x_fit.transpose());
            let eval = mul64(cross_kernel.as_ref(), q.as_ref());
            (s, q, to_f32(eval.as_ref()))
        }
    };
    Ok(Spectrum {
        eigenvalues: s,
        fit_basis,
        eval_basis,
        leverage: None,
        weight_basis: None,
        dual_residual: None,
    })
}

/// `A = Cᵀ Y_fit` (r×t) for one target chunk `y_fit` (n_fit×t).
pub(crate) fn project_targets(spectrum: &Spectrum, y_fit: MatRef<'_, f64>) -> Mat<f64> {
    assert_eq!(spectrum.fit_basis.nrows(), y_fit.nrows(), "fit rows");
    mul64(spectrum.fit_basis.transpose(), y_fit)
}

/// `diag(1/(s+α)) · A` as f32 (r×t): the per-alpha right-hand side.
pub(crate) fn shrink_f32(eigenvalues: &[f64], projected: MatRef<'_, f64>, alpha: f64) -> Mat<f32> {
    assert_eq!(eigenvalues.len(), projected.nrows(), "spectrum size");
    Mat::from_fn(projected.nrows(), projected.ncols(), |i, j| {
        (projected[(i, j)] / (eigenvalues[i] + alpha)) as f32
    })
}

/// `diag(α/(s+α)) · A` as f32 (r×t): the dual LOO residual right-hand side.
pub(crate) fn residual_shrink_f32(
    eigenvalues: &[f64],
    projected: MatRef<'_, f64>,
    alpha: f64,
) -> Mat<f32> {
    assert_eq!(eigenvalues.len(), projected.nrows(), "spectrum size");
    Mat::from_fn(projected.nrows(), projected.ncols(), |i, j| {
        (projected[(i, j)] * alpha / (eigenvalues[i] + alpha)) as f32
    })
}

/// Hat-matrix diagonal `h_ii(α)` (n) from the leverage matrix (n×r).
pub(crate) fn hat_diagonal(leverage: MatRef<'_, f64>, eigenvalues: &[f64], alpha: f64) -> Vec<f64> {
    assert_eq!(leverage.ncols(), eigenvalues.len(), "spectrum size");
    let mut h = vec![0.0; leverage.nrows()];
    for (j, &s) in eigenvalues.iter().enumerate() {
        let inv = 1.0 / (s + alpha);
        for (i, h_i) in h.iter_mut().enumerate() {
            *h_i += leverage[(i, j)] * inv;
        }
    }
    h
}

/// Refit weights `P · diag(1/(s+α_t)) · A` (p×t), one alpha per target column.
pub(crate) fn refit_weights(
    spectrum: &Spectrum,
    projected: MatRef<'_, f64>,
    alphas: &[f64],
) -> Mat<f64> {
    assert_eq!(projected.ncols(), alphas.len(), "one alpha per target");
    let basis = spectrum
        .weight_basis
        .as_ref()
        .expect("full-data factorization has a weight basis");
    let s = &spectrum.eigenvalues;
    let shrunk = Mat::from_fn(projected.nrows(), projected.ncols(), |i, j| {
        projected[(i, j)] / (s[i] + alphas[j])
    });
    mul64(basis.as_ref(), shrunk.as_ref())
}
