//! Spectral factorizations that make every alpha of the grid cheap.
//!
//! With eigenvalues `s` (r), a fit-side basis `C` (n_fit×r) and an eval-side
//! basis `B` (n_eval×r):
//!
//! ```text
//! A      = Cᵀ Y_fit                      (r×t, once per target chunk)
//! Ŷ(α)   = B · diag(1/(s+α)) · A         (n_eval×t, per alpha: one GEMM)
//! ```
//!
//! * primal (p ≤ n): `XᵀX = V S Vᵀ`, `C = B = X V` (n×p), weights `V·diag(1/(s+α))·A`.
//! * dual   (p > n): `X Xᵀ = Q S Qᵀ`, `C = Q`; LOO residuals are
//!   `Q·diag(α/(s+α))·A` and the weights `Xᵀ·(Q·diag(1/(s+α))·A)`.
//!
//! The full-data factorization ([`Full`]) is generic over the working
//! precision `T` (f64 by default, f32 on request): it covers the Gram or
//! covariance matrix, its eigendecomposition, the projection `A` and the refit.
//! The per-alpha GEMM, which dominates the cost of the grid (n·r·t per alpha),
//! always runs in f32 on a copy of the basis.
//!
//! X is never copied whole: the Gram/covariance matrix is accumulated from
//! blocks of the centered/scaled design, converted on the fly from the f32 input.

use faer::{Mat, MatMut, MatRef};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::linalg::{
    eigh_psd, mul, mul64, mul_add, mul_into, par_map_cols_mut, syrk_lower_add, to_f32, Float,
};
use crate::preprocess::XTransform;

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

/// Rows or columns of the design converted per block (bounds the f64 copy).
const BLOCK: usize = 512;

/// Transposed block `cols × rows` of the design `(x - mean) / scale` in precision `T`, filled
/// in parallel. Transposed because X comes row-major (a C-order .npy): each design row is then
/// read and written contiguously, and the products take either orientation without a copy.
pub(crate) fn design_block_t<T: Float>(
    x: MatRef<'_, f32>,
    transform: &XTransform,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
) -> Mat<T> {
    let (mean, scale) = (
        &transform.mean[cols.clone()],
        &transform.scale[cols.clone()],
    );
    let sub = x
        .subrows(rows.start, rows.len())
        .subcols(cols.start, cols.len());
    let mut out = Mat::<T>::zeros(sub.ncols(), sub.nrows());
    par_map_cols_mut(out.as_mut(), |mut part, first| {
        for l in 0..part.ncols() {
            let (source, mut target) = (sub.row(first + l), part.as_mut().col_mut(l));
            for j in 0..sub.ncols() {
                target[j] = T::of((source[j] as f64 - mean[j]) / scale[j]);
            }
        }
    });
    out
}

/// Consecutive ranges of `BLOCK` rows or columns (the last one shorter) covering `0..len`.
pub(crate) fn block_ranges(len: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..len)
        .step_by(BLOCK)
        .map(move |s| s..(s + BLOCK).min(len))
}

/// Factorization of all training data (eval = fit), for LOO and the refit.
pub(crate) struct Full<T: Float> {
    pub solver: Solver,
    /// Eigenvalues `s` (r), ascending, clamped to ≥ 0.
    pub eigenvalues: Vec<f64>,
    /// Projection basis: primal `Z = D V` (n×p), dual `Q` (n×n).
    pub basis: Mat<T>,
    /// f32 copy of `basis` for the per-alpha GEMMs.
    pub basis32: Mat<f32>,
    /// Primal only: `V` (p×p), maps spectral coefficients to weights.
    pub v: Option<Mat<T>>,
}

/// Factorizes the design `D = (x - mean) / scale` of `x` (n×p, raw f32).
pub(crate) fn decompose_full<T: Float>(
    x: MatRef<'_, f32>,
    transform: &XTransform,
) -> Result<Full<T>> {
    let (n, p) = (x.nrows(), x.ncols());
    let solver = Solver::for_shape(n, p);
    let full = match solver {
        Solver::Primal => {
            // DᵀD accumulated over row blocks: lower(G) += D_bᵀ D_b
            let mut g = Mat::<T>::zeros(p, p);
            for rows in block_ranges(n) {
                let d_t = design_block_t::<T>(x, transform, rows, 0..p);
                syrk_lower_add(g.as_mut(), d_t.as_ref());
            }
            crate::fit::trace("covariance matrix");
            let (s, v) = eigh_psd(g.as_ref(), "covariance XᵀX")?;
            crate::fit::trace("eigendecomposition");
            drop(g);
            let mut z = Mat::<T>::zeros(n, p);
            for rows in block_ranges(n) {
                let d_t = design_block_t::<T>(x, transform, rows.clone(), 0..p);
                z.as_mut()
                    .subrows_mut(rows.start, rows.len())
                    .copy_from(mul(d_t.transpose(), v.as_ref()));
            }
            Full {
                solver,
                eigenvalues: s,
                basis32: to_f32(z.as_ref()),
                basis: z,
                v: Some(v),
            }
        }
        Solver::Dual => {
            let k = gram_lower::<T>(x, transform);
            crate::fit::trace("Gram matrix");
            let (s, q) = eigh_psd(k.as_ref(), "Gram XXᵀ")?;
            crate::fit::trace("eigendecomposition");
            drop(k);
            Full {
                solver,
                eigenvalues: s,
                basis32: to_f32(q.as_ref()),
                basis: q,
                v: None,
            }
        }
    };
    Ok(full)
}

/// Lower triangle of the Gram matrix `D Dᵀ` (n×n) of the design `D = (x - mean) / scale`,
/// accumulated over feature blocks: `lower(K) += D_b D_bᵀ` (the upper triangle stays zero).
pub(crate) fn gram_lower<T: Float>(x: MatRef<'_, f32>, transform: &XTransform) -> Mat<T> {
    let n = x.nrows();
    let mut k = Mat::<T>::zeros(n, n);
    for cols in block_ranges(x.ncols()) {
        let d_t = design_block_t::<T>(x, transform, 0..n, cols);
        syrk_lower_add(k.as_mut(), d_t.transpose());
    }
    k
}

impl<T: Float> Full<T> {
    /// `A = basisᵀ Y_c` (r×c) for one centered target chunk `y_c` (n×c).
    pub fn project(&self, y_c: MatRef<'_, T>) -> Mat<T> {
        assert_eq!(self.basis.nrows(), y_c.nrows(), "fit rows");
        mul(self.basis.transpose(), y_c)
    }

    /// `1 - h_ii(α)` (n) of the hat matrix of the centered design (no intercept term).
    ///
    /// Primal: `h_ii = Σ_k Z_ik² / (s_k + α)`. Dual: `1 - h_ii = Σ_k Q_ik² α/(s_k+α)`,
    /// a sum of positive terms, so no cancellation when `h_ii → 1` (small α, p > n).
    pub fn one_minus_hat(&self, alpha: f64) -> Vec<f64> {
        let s = &self.eigenvalues;
        let weights: Vec<f64> = match self.solver {
            Solver::Primal => s.iter().map(|&e| 1.0 / (e + alpha)).collect(),
            Solver::Dual => s.iter().map(|&e| alpha / (e + alpha)).collect(),
        };
        let mut acc = vec![0.0f64; self.basis.nrows()];
        for (k, &w) in weights.iter().enumerate() {
            let col = self.basis.col(k);
            for (i, a) in acc.iter_mut().enumerate() {
                let b = col[i].f64();
                *a += b * b * w;
            }
        }
        match self.solver {
            Solver::Primal => acc.into_iter().map(|h| 1.0 - h).collect(),
            Solver::Dual => acc,
        }
    }

    /// Writes the per-alpha product (n×c, f32) of a chunk into `out` (reused
    /// across alphas, so no n×c buffer is allocated per alpha):
    /// primal: fitted values `Z·diag(1/(s+α))·A` (residuals are `Y_c - out`);
    /// dual: residuals `Q·diag(α/(s+α))·A`. See [`Full::product_is_fitted`].
    pub fn grid_product(&self, projected: MatRef<'_, T>, alpha: f64, out: MatMut<'_, f32>) {
        let s = &self.eigenvalues;
        let dual = self.solver == Solver::Dual;
        let shrunk = Mat::from_fn(projected.nrows(), projected.ncols(), |i, j| {
            let gain = if dual { alpha } else { 1.0 };
            (projected[(i, j)].f64() * gain / (s[i] + alpha)) as f32
        });
        mul_into(out, self.basis32.as_ref(), shrunk.as_ref());
    }

    /// Whether [`Full::grid_product`] gives fitted values (primal) rather than residuals (dual).
    pub fn product_is_fitted(&self) -> bool {
        self.solver == Solver::Primal
    }

    /// `diag(1/(s+α_j)) · A` (r×c), one alpha per target column.
    fn shrink_per_target(&self, projected: MatRef<'_, T>, alphas: &[f64]) -> Mat<T> {
        assert_eq!(projected.ncols(), alphas.len(), "one alpha per target");
        let s = &self.eigenvalues;
        Mat::from_fn(projected.nrows(), projected.ncols(), |i, j| {
            T::of(projected[(i, j)].f64() / (s[i] + alphas[j]))
        })
    }
}

/// Refit on all data with the chosen alpha of each target.
///
/// Primal: weights `V·diag(1/(s+α_j))·A` per chunk. Dual: the dual
/// coefficients `Q·diag(1/(s+α_j))·A` (n×t) are collected first, then
/// `Dᵀ·coef` is computed once over feature blocks (p·n·t, instead of forming
/// the p×n matrix `DᵀQ`, which costs p·n² and p·n memory).
pub(crate) struct Refit<T: Float> {
    /// Primal: weights (p×t); dual: dual coefficients (n×t).
    acc: Mat<T>,
}

impl<T: Float> Refit<T> {
    pub fn new(full: &Full<T>, n_features: usize, n_targets: usize) -> Self {
        let rows = match full.solver {
            Solver::Primal => n_features,
            Solver::Dual => full.basis.nrows(),
        };
        Refit {
            acc: Mat::zeros(rows, n_targets),
        }
    }

    /// Adds the chunk starting at target `start` with projection `A` (r×c).
    pub fn add(&mut self, full: &Full<T>, projected: MatRef<'_, T>, start: usize, alphas: &[f64]) {
        let shrunk = full.shrink_per_target(projected, alphas);
        let left = match full.solver {
            Solver::Primal => full.v.as_ref().expect("primal has V").as_ref(),
            Solver::Dual => full.basis.as_ref(),
        };
        self.acc
            .as_mut()
            .subcols_mut(start, alphas.len())
            .copy_from(mul(left, shrunk.as_ref()));
    }

    /// Weights in raw-X units (p×t), see [`raw_units_f32`]; with `keep_dual` (dual solver
    /// only) the dual coefficients (n×t) as they are.
    pub fn finish(
        self,
        solver: Solver,
        x: MatRef<'_, f32>,
        transform: &XTransform,
        keep_dual: bool,
    ) -> Mat<f32> {
        let weights = match solver {
            Solver::Dual if keep_dual => return T::into_f32(self.acc),
            Solver::Primal => self.acc,
            Solver::Dual => {
                let mut w = Mat::<T>::zeros(x.ncols(), self.acc.ncols());
                dual_refit_into(w.as_mut(), x, transform, self.acc.as_ref());
                w
            }
        };
        raw_units_f32(weights, transform)
    }
}

/// `w += Dᵀ · coefficients` (p×c) for the transformed design `D` (n×p), a block of features at
/// a time (no copy of the whole design).
pub(crate) fn dual_refit_into<T: Float>(
    mut w: MatMut<'_, T>,
    x: MatRef<'_, f32>,
    transform: &XTransform,
    coefficients: MatRef<'_, T>,
) {
    let n = x.nrows();
    assert_eq!(coefficients.nrows(), n, "one dual coefficient per row of X");
    for cols in block_ranges(x.ncols()) {
        let d_t = design_block_t::<T>(x, transform, 0..n, cols.clone());
        mul_add(
            w.as_mut().subrows_mut(cols.start, cols.len()),
            d_t.as_ref(),
            coefficients,
            T::of(1.0),
        );
    }
}

/// The transformed design's weights (p×t) in raw-X units: divided by the design's scale in
/// place, then rounded to f32 once (no copy when `T` is f32).
pub(crate) fn raw_units_f32<T: Float>(mut weights: Mat<T>, transform: &XTransform) -> Mat<f32> {
    let scale = &transform.scale;
    for j in 0..weights.ncols() {
        let mut column = weights.col_mut(j);
        for (i, &s) in scale.iter().enumerate() {
            column[i] = T::of(column[i].f64() / s);
        }
    }
    T::into_f32(weights)
}

/// Factorization of one CV fold (f64): fit on one part, predict the other.
pub(crate) struct FoldSpectrum {
    /// Eigenvalues `s` (r), clamped to ≥ 0.
    pub eigenvalues: Vec<f64>,
    /// `C` (n_fit×r).
    pub fit_basis: Mat<f64>,
    /// `B` (n_eval×r), f32 for the per-alpha GEMM.
    pub eval_basis: Mat<f32>,
}

/// Factorizes a CV fold: fit on `x_fit` (n_fit×p), predict `x_eval` (n_eval×p).
/// Both must already be centered with the fit-set mean when an intercept is fitted.
pub(crate) fn decompose_fold(
    x_fit: MatRef<'_, f64>,
    x_eval: MatRef<'_, f64>,
) -> Result<FoldSpectrum> {
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
    Ok(FoldSpectrum {
        eigenvalues: s,
        fit_basis,
        eval_basis,
    })
}

impl FoldSpectrum {
    /// `A = Cᵀ Y_fit` (r×t) for one target chunk `y_fit` (n_fit×t).
    pub fn project(&self, y_fit: MatRef<'_, f64>) -> Mat<f64> {
        assert_eq!(self.fit_basis.nrows(), y_fit.nrows(), "fit rows");
        mul64(self.fit_basis.transpose(), y_fit)
    }
}

/// `diag(1/(s+α)) · A` as f32 (r×t): the per-alpha right-hand side.
pub(crate) fn shrink_f32(eigenvalues: &[f64], projected: MatRef<'_, f64>, alpha: f64) -> Mat<f32> {
    assert_eq!(eigenvalues.len(), projected.nrows(), "spectrum size");
    Mat::from_fn(projected.nrows(), projected.ncols(), |i, j| {
        (projected[(i, j)] / (eigenvalues[i] + alpha)) as f32
    })
}
