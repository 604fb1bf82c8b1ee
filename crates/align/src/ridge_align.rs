//! Ridge alignment, as fmralign 0.0.6's `RidgeAlignment` computes it: scikit-learn's
//! `RidgeCV(alphas, fit_intercept=True, scoring="r2", cv=K)`.
//!
//! One alpha for all targets, chosen by the mean over K unshuffled contiguous folds of the
//! R² averaged uniformly over targets; then a refit on all samples.

use faer::linalg::solvers::Solve;
use faer::{Mat, MatRef, Side};

use crate::procrustes::check_pair;
use crate::{AlignError, Result};

/// fmralign's default alpha grid.
pub const DEFAULT_ALPHAS: [f64; 5] = [0.1, 1.0, 10.0, 100.0, 1000.0];

/// fmralign's default number of folds.
pub const DEFAULT_FOLDS: usize = 4;

/// A fitted ridge map from a source space (p columns) to a target space (q columns).
#[derive(Debug, Clone)]
pub struct RidgeAlignment {
    /// The coefficients, p×q (scikit-learn's `coef_` transposed).
    pub coef: Mat<f64>,
    /// The intercept, one per target (q).
    pub intercept: Vec<f64>,
    /// The chosen alpha.
    pub alpha: f64,
    /// The mean cross-validated R² of each alpha, in grid order.
    pub cv_scores: Vec<f64>,
}

impl RidgeAlignment {
    /// Maps source rows into the target space: `x · coef + intercept`, x n×p → n×q.
    ///
    /// # Panics
    /// When x does not have p columns.
    pub fn transform(&self, x: MatRef<f64>) -> Mat<f64> {
        assert_eq!(
            x.ncols(),
            self.coef.nrows(),
            "ridge alignment transform: the input has {} columns, the fitted source had {}",
            x.ncols(),
            self.coef.nrows()
        );
        let mut out = x * &self.coef;
        for j in 0..out.ncols() {
            for i in 0..out.nrows() {
                out[(i, j)] += self.intercept[j];
            }
        }
        out
    }
}

/// Fits the ridge map from `x` (n×p source) to `y` (n×q target) with one alpha from
/// `alphas` (all > 0; fmralign's default is [`DEFAULT_ALPHAS`]) chosen by `n_folds`-fold
/// cross-validation (fmralign's default is [`DEFAULT_FOLDS`]):
/// * folds are contiguous and unshuffled, the first `n % K` one sample larger;
/// * each fold's score is R² averaged over targets (a target constant in the test fold
///   scores 1 if predicted exactly, else 0); an alpha's score is the mean over folds;
/// * the first alpha with the highest score wins;
/// * both the fold fits and the refit centre x and y on their rows and solve
///   `(XᵀX + αI) W = XᵀY` (or its kernel form `W = Xᵀ (XXᵀ + αI)⁻¹ Y` when p exceeds the
///   rows), by Cholesky.
///
/// Errors on different row counts, empty or non-finite input, an empty or non-positive alpha
/// grid, fewer than 2 folds, or fewer than 2 samples in a test fold (where scikit-learn
/// scores NaN and silently keeps the first alpha).
pub fn fit_ridge_alignment(
    x: MatRef<f64>,
    y: MatRef<f64>,
    alphas: &[f64],
    n_folds: usize,
) -> Result<RidgeAlignment> {
    check_pair("ridge alignment", x, y)?;
    if alphas.is_empty() {
        return Err(AlignError::Input(
            "ridge alignment: the alpha grid is empty (fmralign's default is 0.1, 1, 10, 100, 1000)"
                .into(),
        ));
    }
    if let Some(a) = alphas.iter().find(|a| !(a.is_finite() && **a > 0.0)) {
        return Err(AlignError::Input(format!(
            "ridge alignment: every alpha must be finite and > 0, got {a}"
        )));
    }
    let n = x.nrows();
    if n_folds < 2 {
        return Err(AlignError::Input(format!(
            "ridge alignment: cross-validation needs at least 2 folds, got {n_folds}"
        )));
    }
    if n < 2 * n_folds {
        return Err(AlignError::Shape(format!(
            "ridge alignment: {n} samples cannot make {n_folds} folds of at least 2 samples each \
             (R² needs 2); use at least {} samples or fewer folds",
            2 * n_folds
        )));
    }

    let mut totals = vec![0.0; alphas.len()];
    let mut start = 0;
    for fold in 0..n_folds {
        let size = n / n_folds + usize::from(fold < n % n_folds);
        let test: Vec<usize> = (start..start + size).collect();
        let train: Vec<usize> = (0..start).chain(start + size..n).collect();
        start += size;
        let xtr = rows(x, &train);
        let ytr = rows(y, &train);
        let xte = rows(x, &test);
        let yte = rows(y, &test);
        let fit = Centred::new(xtr.as_ref(), ytr.as_ref());
        for (total, &alpha) in totals.iter_mut().zip(alphas) {
            let pred = fit.predict(xte.as_ref(), alpha)?;
            *total += r2_uniform(yte.as_ref(), pred.as_ref());
        }
    }
    let cv_scores: Vec<f64> = totals.iter().map(|t| t / n_folds as f64).collect();
    let mut best = 0;
    for (i, s) in cv_scores.iter().enumerate() {
        if *s > cv_scores[best] {
            best = i;
        }
    }
    let alpha = alphas[best];
    let fit = Centred::new(x, y);
    let coef = fit.coef(alpha)?;
    let intercept = (0..y.ncols())
        .map(|j| {
            fit.y_mean[j]
                - (0..x.ncols())
                    .map(|i| fit.x_mean[i] * coef[(i, j)])
                    .sum::<f64>()
        })
        .collect();
    Ok(RidgeAlignment {
        coef,
        intercept,
        alpha,
        cv_scores,
    })
}

/// The selected rows of m, in order.
fn rows(m: MatRef<f64>, idx: &[usize]) -> Mat<f64> {
    Mat::from_fn(idx.len(), m.ncols(), |i, j| m[(idx[i], j)])
}

/// Column means of m (length: columns).
fn col_means(m: MatRef<f64>) -> Vec<f64> {
    (0..m.ncols())
        .map(|j| (0..m.nrows()).map(|i| m[(i, j)]).sum::<f64>() / m.nrows() as f64)
        .collect()
}

fn centred(m: MatRef<f64>, mean: &[f64]) -> Mat<f64> {
    Mat::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)] - mean[j])
}

/// Training data centred on its own means, ready to solve for any alpha.
struct Centred {
    x_mean: Vec<f64>,
    y_mean: Vec<f64>,
    /// x centred, n×p.
    xc: Mat<f64>,
    /// y centred, n×q.
    yc: Mat<f64>,
    /// The Gram matrix: XᵀX (p×p) when p ≤ n, else the kernel XXᵀ (n×n).
    gram: Mat<f64>,
    kernel: bool,
}

impl Centred {
    fn new(x: MatRef<f64>, y: MatRef<f64>) -> Centred {
        let x_mean = col_means(x);
        let y_mean = col_means(y);
        let xc = centred(x, &x_mean);
        let yc = centred(y, &y_mean);
        let kernel = x.ncols() > x.nrows();
        let gram = if kernel {
            &xc * xc.transpose()
        } else {
            xc.transpose() * &xc
        };
        Centred {
            x_mean,
            y_mean,
            xc,
            yc,
            gram,
            kernel,
        }
    }

    /// Solves `(gram + αI) Z = rhs` by Cholesky.
    fn solve(&self, alpha: f64, rhs: MatRef<f64>) -> Result<Mat<f64>> {
        let mut a = self.gram.clone();
        for i in 0..a.nrows() {
            a[(i, i)] += alpha;
        }
        let llt = a.llt(Side::Lower).map_err(|e| {
            AlignError::Input(format!(
                "ridge alignment: the {}×{} system at alpha {alpha} is not positive definite ({e:?})",
                a.nrows(),
                a.ncols()
            ))
        })?;
        Ok(llt.solve(rhs))
    }

    /// The coefficients at alpha, p×q.
    fn coef(&self, alpha: f64) -> Result<Mat<f64>> {
        if self.kernel {
            let dual = self.solve(alpha, self.yc.as_ref())?;
            Ok(self.xc.transpose() * dual)
        } else {
            let xty = self.xc.transpose() * &self.yc;
            self.solve(alpha, xty.as_ref())
        }
    }

    /// Predictions for new rows at alpha (n_new×q), without forming p×q coefficients in
    /// the kernel case.
    fn predict(&self, x: MatRef<f64>, alpha: f64) -> Result<Mat<f64>> {
        let xn = centred(x, &self.x_mean);
        let mut pred = if self.kernel {
            let dual = self.solve(alpha, self.yc.as_ref())?;
            (&xn * self.xc.transpose()) * dual
        } else {
            &xn * self.coef(alpha)?
        };
        for j in 0..pred.ncols() {
            for i in 0..pred.nrows() {
                pred[(i, j)] += self.y_mean[j];
            }
        }
        Ok(pred)
    }
}

/// R² of pred against truth (n×q), averaged uniformly over targets, with scikit-learn's
/// finite rule: a zero residual scores 1, a non-zero residual on a constant target 0.
fn r2_uniform(truth: MatRef<f64>, pred: MatRef<f64>) -> f64 {
    let mean = col_means(truth);
    let q = truth.ncols();
    let mut total = 0.0;
    for j in 0..q {
        let mut num = 0.0;
        let mut den = 0.0;
        for i in 0..truth.nrows() {
            num += (truth[(i, j)] - pred[(i, j)]).powi(2);
            den += (truth[(i, j)] - mean[j]).powi(2);
        }
        total += if num == 0.0 {
            1.0
        } else if den == 0.0 {
            0.0
        } else {
            1.0 - num / den
        };
    }
    total / q as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_grids_and_folds() {
        let x = Mat::from_fn(9, 2, |i, j| (i * 3 + j) as f64);
        let y = Mat::from_fn(9, 1, |i, _| i as f64);
        let fit = |alphas: &[f64], k| fit_ridge_alignment(x.as_ref(), y.as_ref(), alphas, k);
        assert!(fit(&[], 4).unwrap_err().to_string().contains("empty"));
        assert!(fit(&[1.0, 0.0], 4).unwrap_err().to_string().contains("> 0"));
        assert!(fit(&[1.0], 1).unwrap_err().to_string().contains("2 folds"));
        let err = fit(&[1.0], 5).unwrap_err().to_string();
        assert!(
            err.contains("9 samples") && err.contains("5 folds"),
            "{err}"
        );
        assert!(fit(&[1.0], 4).is_ok());
        let y3 = Mat::<f64>::zeros(8, 1);
        let err = fit_ridge_alignment(x.as_ref(), y3.as_ref(), &[1.0], 2).unwrap_err();
        assert!(err.to_string().contains("9 rows"), "{err}");
    }

    #[test]
    fn r2_finite_rule() {
        let t = Mat::from_fn(3, 2, |i, j| if j == 0 { 2.0 } else { i as f64 });
        assert_eq!(r2_uniform(t.as_ref(), t.as_ref()), 1.0);
        let p = Mat::from_fn(3, 2, |i, _| i as f64);
        // Constant column mispredicted scores 0, exact column 1.
        assert_eq!(r2_uniform(t.as_ref(), p.as_ref()), 0.5);
    }
}
