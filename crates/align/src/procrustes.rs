//! Scaled orthogonal Procrustes, as fmralign 0.0.6 computes it (`scaled_procrustes` and
//! `Procrustes`).
//!
//! Given a source `X` (n×p) and a target `Y` (n×q) with the same samples in rows, find
//! `R` (p×q, the polar factor of `XᵀY`: orthonormal columns or rows, or of rank n on the
//! dual path when n < p, q) and a scalar `sc` minimising `‖sc·X·R − Y‖_F`.
//! There is no centering.

use faer::{Mat, MatRef};

use crate::{AlignError, Result};

/// A fitted Procrustes map from a source space (p columns) to a target space (q columns).
#[derive(Debug, Clone)]
pub struct Procrustes {
    /// The rotation R, p×q (fmralign's `Procrustes.R`, the transpose of the polar factor of
    /// `Yᵀ X`).
    pub rotation: Mat<f64>,
    /// The scale sc: `Σ singular values / ‖X‖_F²` when fitted with scaling, else 1.
    pub scale: f64,
}

impl Procrustes {
    /// Maps source rows into the target space: `x · R · sc`, x n×p → n×q.
    ///
    /// # Panics
    /// When x does not have p columns.
    pub fn transform(&self, x: MatRef<f64>) -> Mat<f64> {
        assert_eq!(
            x.ncols(),
            self.rotation.nrows(),
            "Procrustes transform: the input has {} columns, the fitted source had {}",
            x.ncols(),
            self.rotation.nrows()
        );
        let mut out = x * &self.rotation;
        if self.scale != 1.0 {
            out *= faer::Scale(self.scale);
        }
        out
    }
}

/// Fits the scaled orthogonal Procrustes map from `x` (n×p source) to `y` (n×q target),
/// with fmralign's `scaled_procrustes(x, y, scaling)` semantics:
/// * if ‖x‖ or ‖y‖ is 0, R is the identity and sc = 1 (fmralign returns the p×p
///   identity; here it is the p×q one, the same when p = q);
/// * n ≥ p (primal): thin SVD `Yᵀ X = U S Vᵀ` (plus 1e-18·I when it is square), R = V Uᵀ;
/// * p > n (dual): thin SVDs of Y and X, then of the small `Sy Uyᵀ Ux Sx`, mapped back
///   through both right factors. Where fmralign's dual path fails to multiply its
///   factors (q < n < p), the thin SVD used here gives the same polar factor as the
///   primal path;
/// * sc = Σ singular values / ‖x‖_F² with `scaling`, else 1.
///
/// Errors on different row counts, empty matrices, non-finite values or an SVD that does not
/// converge.
pub fn fit_procrustes(x: MatRef<f64>, y: MatRef<f64>, scaling: bool) -> Result<Procrustes> {
    check_pair("Procrustes", x, y)?;
    let (n, p, q) = (x.nrows(), x.ncols(), y.ncols());
    let x_norm2 = x.squared_norm_l2();
    if x_norm2 == 0.0 || y.squared_norm_l2() == 0.0 {
        return Ok(Procrustes {
            rotation: Mat::identity(p, q),
            scale: 1.0,
        });
    }
    let (rotation, sum_s) = if n >= p {
        let mut a = y.transpose() * x; // q×p
        if q == p {
            for i in 0..p {
                a[(i, i)] += 1.0e-18;
            }
        }
        let svd = thin_svd(a.as_ref())?;
        let r = svd.V() * svd.U().transpose(); // p×q
        (r, svd.S().column_vector().sum())
    } else {
        let sy = thin_svd(y)?;
        let sx = thin_svd(x)?;
        let dy = sy.S().column_vector();
        let dx = sx.S().column_vector();
        let cross = sy.U().transpose() * sx.U();
        let a = Mat::from_fn(cross.nrows(), cross.ncols(), |i, j| {
            dy[i] * cross[(i, j)] * dx[j]
        });
        let svd = thin_svd(a.as_ref())?;
        // Yᵀ X = (Vy U) S (Vx V)ᵀ, so R = Vx V Uᵀ Vyᵀ (p×q).
        let left = sx.V() * svd.V(); // p×k
        let right = sy.V() * svd.U(); // q×k
        (left * right.transpose(), svd.S().column_vector().sum())
    };
    let scale = if scaling { sum_s / x_norm2 } else { 1.0 };
    Ok(Procrustes { rotation, scale })
}

fn thin_svd(a: MatRef<f64>) -> Result<faer::linalg::solvers::Svd<f64>> {
    a.thin_svd().map_err(|e| {
        AlignError::Input(format!(
            "the SVD of a {}×{} matrix did not converge ({e:?})",
            a.nrows(),
            a.ncols()
        ))
    })
}

/// Checks that a source (n×p) and a target (n×q) share a non-zero row count, have columns,
/// and hold only finite values; `what` names the method in the message.
pub(crate) fn check_pair(what: &str, x: MatRef<f64>, y: MatRef<f64>) -> Result<()> {
    if x.nrows() != y.nrows() {
        return Err(AlignError::Shape(format!(
            "{what}: the source has {} rows (samples) and the target {}; they must be the same",
            x.nrows(),
            y.nrows()
        )));
    }
    if x.nrows() == 0 || x.ncols() == 0 || y.ncols() == 0 {
        return Err(AlignError::Shape(format!(
            "{what}: empty input (source {}×{}, target {}×{})",
            x.nrows(),
            x.ncols(),
            y.nrows(),
            y.ncols()
        )));
    }
    for (name, m) in [("source", x), ("target", y)] {
        for j in 0..m.ncols() {
            for i in 0..m.nrows() {
                if !m[(i, j)].is_finite() {
                    return Err(AlignError::Input(format!(
                        "{what}: the {name} ({}×{}) holds a non-finite value at row {i}, column {j}",
                        m.nrows(),
                        m.ncols()
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(n: usize, p: usize, seed: u64) -> Mat<f64> {
        let mut s = seed;
        Mat::from_fn(n, p, |_, _| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        })
    }

    #[test]
    fn recovers_a_scaled_rotation() {
        let x = lcg(30, 6, 1);
        let q = fit_procrustes(lcg(6, 6, 2).as_ref(), lcg(6, 6, 3).as_ref(), false)
            .unwrap()
            .rotation;
        let y = &x * &q * faer::Scale(2.5);
        let fit = fit_procrustes(x.as_ref(), y.as_ref(), true).unwrap();
        assert!((fit.scale - 2.5).abs() < 1e-12, "{}", fit.scale);
        assert!((&fit.rotation - &q).norm_max() < 1e-12);
    }

    #[test]
    fn rejects_bad_input() {
        let x = lcg(5, 3, 1);
        let err = fit_procrustes(x.as_ref(), lcg(4, 3, 2).as_ref(), true).unwrap_err();
        assert!(err.to_string().contains("5 rows") && err.to_string().contains("4"));
        let mut bad = lcg(5, 3, 2);
        bad[(2, 1)] = f64::NAN;
        let err = fit_procrustes(x.as_ref(), bad.as_ref(), true).unwrap_err();
        assert!(err.to_string().contains("row 2, column 1"), "{err}");
        let empty = Mat::<f64>::zeros(0, 3);
        assert!(fit_procrustes(empty.as_ref(), empty.as_ref(), true).is_err());
    }

    #[test]
    fn zero_input_is_the_identity() {
        let fit = fit_procrustes(Mat::zeros(4, 3).as_ref(), lcg(4, 2, 1).as_ref(), true).unwrap();
        assert_eq!(fit.scale, 1.0);
        assert_eq!(fit.rotation, Mat::<f64>::identity(3, 2));
    }
}
