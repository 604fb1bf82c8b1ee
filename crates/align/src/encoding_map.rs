//! A new subject's map into a space through per-voxel encoding models, inverted by generalised
//! least squares: the linear form of Brain-IT's per-voxel embeddings.
//!
//! Each voxel j gets an embedding e_j ∈ ℝᵏ from the subject's own trials, `x_j ≈ T e_j`
//! (ridge, penalty λ: k parameters per voxel, well posed from a few dozen trials). A response
//! x (1 × v) is then mapped to the space by
//! `s = argmin_s Σ_j (x_j − s·e_j)² / σ²_j + μ‖s‖²`, with σ²_j the voxel's residual variance:
//! `s = x Λ⁻¹ Eᵀ (E Λ⁻¹ Eᵀ + μ I)⁻¹`, a linear map M = Λ⁻¹ Eᵀ (E Λ⁻¹ Eᵀ + μ I)⁻¹ (v × k).
//! Noisy voxels weigh less, and the space's k dimensions are estimated from all voxels at once,
//! which is what a decoder fitted directly from few trials cannot do.

use crate::{AlignError, Result};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Side};

fn mul(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Mat<f64> {
    let mut out = Mat::<f64>::zeros(a.nrows(), b.ncols());
    matmul(
        out.as_mut(),
        Accum::Replace,
        a,
        b,
        1.0,
        faer::get_global_parallelism(),
    );
    out
}

/// What every λ shares for one (x, t): TᵀT = V diag(g) Vᵀ and the rotated cross products
/// C = Vᵀ Tᵀ X (k × v). In V's coordinates each λ's embeddings are a diagonal scaling of C
/// and each voxel's residual needs only C, g and ‖x_j‖², so a λ costs one k × k × v product
/// (the precision), not three.
struct Design {
    v: Mat<f64>,
    g: Vec<f64>,
    c: Mat<f64>,
    xx: Vec<f64>,
    n: usize,
    lambda_unit: f64,
}

impl Design {
    /// `x` n × v centred, `t` n × k.
    fn new(x: MatRef<'_, f64>, t: MatRef<'_, f64>) -> Result<Self> {
        let gram = mul(t.transpose(), t);
        let k = gram.nrows();
        let lambda_unit =
            ((0..k).map(|i| gram[(i, i)]).sum::<f64>() / k as f64).max(f64::MIN_POSITIVE);
        let evd = gram
            .self_adjoint_eigen(Side::Lower)
            .map_err(|_| AlignError::Input("eigendecomposition of TᵀT failed".into()))?;
        let v = evd.U().to_owned();
        let g: Vec<f64> = (0..k).map(|i| evd.S()[i].max(0.0)).collect();
        let c = mul(v.transpose(), mul(t.transpose(), x).as_ref());
        let xx = (0..x.ncols())
            .map(|j| (0..x.nrows()).map(|i| x[(i, j)].powi(2)).sum())
            .collect();
        Ok(Design {
            v,
            g,
            c,
            xx,
            n: x.nrows(),
            lambda_unit,
        })
    }

    /// The embeddings for one λ (relative to tr(TᵀT)/k), in V's coordinates.
    fn embedding(&self, lambda: f64) -> Result<Embedding<'_>> {
        let (k, voxels) = (self.c.nrows(), self.c.ncols());
        let shift = lambda * self.lambda_unit;
        let e = Mat::from_fn(k, voxels, |i, j| self.c[(i, j)] / (self.g[i] + shift));
        // ‖x_j − T e_j‖² = ‖x_j‖² − 2 c_j·e_j + Σ_i g_i e_ij²  (in V's coordinates).
        let mut inv_var: Vec<f64> = (0..voxels)
            .map(|j| {
                let cross: f64 = (0..k).map(|i| self.c[(i, j)] * e[(i, j)]).sum();
                let fitted: f64 = (0..k).map(|i| self.g[i] * e[(i, j)].powi(2)).sum();
                ((self.xx[j] - 2.0 * cross + fitted) / self.n as f64).max(0.0)
            })
            .collect();
        // A floor at 1e-6 of the mean keeps a perfectly fitted voxel from taking all the weight.
        let floor = 1e-6 * (inv_var.iter().sum::<f64>() / voxels as f64).max(f64::MIN_POSITIVE);
        for w in &mut inv_var {
            *w = 1.0 / w.max(floor);
        }
        let weighted = Mat::from_fn(k, voxels, |i, j| e[(i, j)] * inv_var[j]);
        let precision = mul(weighted.as_ref(), e.transpose());
        let evd = precision
            .self_adjoint_eigen(Side::Lower)
            .map_err(|_| AlignError::Input("eigendecomposition of the precision failed".into()))?;
        let d: Vec<f64> = (0..k).map(|i| evd.S()[i].max(0.0)).collect();
        Ok(Embedding {
            design: self,
            weighted,
            q: evd.U().to_owned(),
            d,
        })
    }
}

/// One λ's embeddings in V's coordinates: `weighted` = E Λ⁻¹ (k × v) and the precision
/// E Λ⁻¹ Eᵀ = Q diag(d) Qᵀ; what every μ shares.
struct Embedding<'a> {
    design: &'a Design,
    weighted: Mat<f64>,
    q: Mat<f64>,
    d: Vec<f64>,
}

impl Embedding<'_> {
    /// tr(precision)/k: the unit of μ.
    fn mu_unit(&self) -> f64 {
        (self.d.iter().sum::<f64>() / self.d.len() as f64).max(f64::MIN_POSITIVE)
    }

    /// `x Wᵀ Q` (rows × k): the part of a prediction before μ.
    fn project(&self, x: MatRef<'_, f64>) -> Mat<f64> {
        mul(mul(x, self.weighted.transpose()).as_ref(), self.q.as_ref())
    }

    /// Finishes [`Embedding::project`]'s rows for one μ, in V's coordinates:
    /// `· diag(1/(d+μ)) Qᵀ`.
    fn finish(&self, projected: &Mat<f64>, mu: f64) -> Mat<f64> {
        let mu = mu * self.mu_unit();
        let scaled = Mat::from_fn(projected.nrows(), projected.ncols(), |i, j| {
            projected[(i, j)] / (self.d[j] + mu)
        });
        mul(scaled.as_ref(), self.q.transpose())
    }

    /// M = Wᵀ Q diag(1/(d+μ)) Qᵀ Vᵀ (v × k), in the space's own coordinates.
    fn map(&self, mu: f64) -> Mat<f64> {
        let wq = mul(self.weighted.transpose(), self.q.as_ref());
        mul(self.finish(&wq, mu).as_ref(), self.design.v.transpose())
    }
}

/// The map M (v × k) for given penalties.
///
/// * `x`: the subject's betas, n × v, columns centred;
/// * `t`: the space's coordinates of the same rows, n × k;
/// * `lambda` > 0: ridge penalty of the per-voxel embeddings, in units of tr(TᵀT)/k;
/// * `mu` > 0: the prior on s, in units of tr(E Λ⁻¹ Eᵀ)/k. Both units make the penalties free
///   of the data's scale.
pub fn encoding_map(
    x: MatRef<'_, f64>,
    t: MatRef<'_, f64>,
    lambda: f64,
    mu: f64,
) -> Result<Mat<f64>> {
    check(x, t)?;
    check_penalties(&[lambda], &[mu])?;
    Ok(Design::new(x, t)?.embedding(lambda)?.map(mu))
}

fn check_penalties(lambdas: &[f64], mus: &[f64]) -> Result<()> {
    if lambdas.is_empty() || mus.is_empty() {
        return Err(AlignError::Input("the penalty grids are empty".into()));
    }
    for (name, value) in lambdas
        .iter()
        .map(|&l| ("lambda", l))
        .chain(mus.iter().map(|&m| ("mu", m)))
    {
        if !(value > 0.0 && value.is_finite()) {
            return Err(AlignError::Input(format!(
                "{name}: expected a positive finite penalty, found {value}"
            )));
        }
    }
    Ok(())
}

/// Relative penalties tried by [`fit_encoding_map`] by default.
pub const DEFAULT_LAMBDAS: [f64; 5] = [0.01, 0.1, 1.0, 10.0, 100.0];
/// See [`DEFAULT_LAMBDAS`].
pub const DEFAULT_MUS: [f64; 5] = [0.001, 0.01, 0.1, 1.0, 10.0];

/// An [`encoding_map`] with its penalties chosen by K-fold cross-validation.
pub struct EncodingMap {
    /// M, v × k.
    pub map: Mat<f64>,
    /// The chosen penalties (relative units, see [`encoding_map`]).
    pub lambda: f64,
    /// See `lambda`.
    pub mu: f64,
    /// Held-out squared error of the chosen pair, relative to ‖T‖².
    pub cv_error: f64,
}

/// Chooses (λ, μ) from the grids by `n_folds`-fold cross-validation over rows (row i in fold
/// i mod n_folds; each training part centred on its own mean): the held-out error
/// ‖(x − x̄) M − t‖² summed over folds, smallest wins, ties to the first pair. Then refits on
/// all rows. One embedding per fold and λ serves every μ.
///
/// * `x`: n × v betas (not necessarily centred: each fold centres its own), `t`: n × k.
pub fn fit_encoding_map(
    x: MatRef<'_, f64>,
    t: MatRef<'_, f64>,
    lambdas: &[f64],
    mus: &[f64],
    n_folds: usize,
) -> Result<EncodingMap> {
    check(x, t)?;
    check_penalties(lambdas, mus)?;
    let n = x.nrows();
    if n_folds < 2 || n < 2 * n_folds {
        return Err(AlignError::Input(format!(
            "{n_folds}-fold cross-validation needs at least {} rows, found {n}",
            2 * n_folds.max(2)
        )));
    }
    let mean_of = |rows: &[usize]| -> Vec<f64> {
        (0..x.ncols())
            .map(|j| rows.iter().map(|&i| x[(i, j)]).sum::<f64>() / rows.len() as f64)
            .collect()
    };
    let centred_rows = |rows: &[usize], mean: &[f64]| {
        Mat::from_fn(rows.len(), x.ncols(), |i, j| x[(rows[i], j)] - mean[j])
    };
    let t_rows = |rows: &[usize]| Mat::from_fn(rows.len(), t.ncols(), |i, j| t[(rows[i], j)]);
    let mut errors = vec![0.0; lambdas.len() * mus.len()];
    for f in 0..n_folds {
        let train: Vec<usize> = (0..n).filter(|i| i % n_folds != f).collect();
        let test: Vec<usize> = (0..n).filter(|i| i % n_folds == f).collect();
        let mean = mean_of(&train);
        let (x_train, x_test) = (centred_rows(&train, &mean), centred_rows(&test, &mean));
        let (t_train, t_test) = (t_rows(&train), t_rows(&test));
        let design = Design::new(x_train.as_ref(), t_train.as_ref())?;
        // Held-out coordinates in V's coordinates, where the predictions come out.
        let t_test = mul(t_test.as_ref(), design.v.as_ref());
        for (a, &lambda) in lambdas.iter().enumerate() {
            let embedding = design.embedding(lambda)?;
            let projected = embedding.project(x_test.as_ref());
            for (b, &mu) in mus.iter().enumerate() {
                let predicted = embedding.finish(&projected, mu);
                let mut error = 0.0;
                for i in 0..predicted.nrows() {
                    for j in 0..predicted.ncols() {
                        error += (predicted[(i, j)] - t_test[(i, j)]).powi(2);
                    }
                }
                errors[a * mus.len() + b] += error;
            }
        }
    }
    let best = (0..errors.len()).fold(0, |best, i| if errors[i] < errors[best] { i } else { best });
    let (lambda, mu) = (lambdas[best / mus.len()], mus[best % mus.len()]);
    let total: f64 = (0..n)
        .flat_map(|i| (0..t.ncols()).map(move |j| (i, j)))
        .map(|(i, j)| t[(i, j)].powi(2))
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    let all: Vec<usize> = (0..n).collect();
    let centred = centred_rows(&all, &mean_of(&all));
    Ok(EncodingMap {
        map: encoding_map(centred.as_ref(), t, lambda, mu)?,
        lambda,
        mu,
        cv_error: errors[best] / total,
    })
}

fn check(x: MatRef<'_, f64>, t: MatRef<'_, f64>) -> Result<()> {
    if x.nrows() != t.nrows() {
        return Err(AlignError::Shape(format!(
            "betas have {} rows but the space's coordinates {}",
            x.nrows(),
            t.nrows()
        )));
    }
    if x.nrows() == 0 || x.ncols() == 0 || t.ncols() == 0 {
        return Err(AlignError::Shape(format!(
            "empty input: betas {} × {}, coordinates {} × {}",
            x.nrows(),
            x.ncols(),
            t.nrows(),
            t.ncols()
        )));
    }
    for (name, m) in [("betas", x), ("coordinates", t)] {
        for j in 0..m.ncols() {
            for i in 0..m.nrows() {
                if !m[(i, j)].is_finite() {
                    return Err(AlignError::Input(format!(
                        "{name}: row {i}, column {j} is {}",
                        m[(i, j)]
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

    /// Planted coordinates come back; a prior far above the data's precision shrinks them.
    #[test]
    fn map_solves_the_normal_equations_and_recovers_planted_coordinates() {
        let (n, v, k) = (60, 40, 3);
        let t = Mat::from_fn(n, k, |i, j| ((i * 7 + j * 3) as f64 * 0.37).sin());
        let e = Mat::from_fn(k, v, |i, j| ((i * 11 + j * 5) as f64 * 0.21).cos());
        let noise = Mat::from_fn(n, v, |i, j| 0.05 * ((i * 13 + j * 17) as f64 * 1.3).sin());
        let x = &mul(t.as_ref(), e.as_ref()) + &noise;
        let m = encoding_map(x.as_ref(), t.as_ref(), 1e-4, 1e-6).unwrap();
        let s = mul(x.as_ref(), m.as_ref());
        let err: f64 = (0..n)
            .flat_map(|i| (0..k).map(move |j| (i, j)))
            .map(|(i, j)| (s[(i, j)] - t[(i, j)]).powi(2))
            .sum::<f64>();
        let norm: f64 = (0..n)
            .flat_map(|i| (0..k).map(move |j| (i, j)))
            .map(|(i, j)| t[(i, j)].powi(2))
            .sum();
        assert!(
            err / norm < 1e-2,
            "planted coordinates recovered: {}",
            err / norm
        );
        // μ in units of the precision's mean eigenvalue: 10 times it shrinks by about 10.
        let shrunk = encoding_map(x.as_ref(), t.as_ref(), 1e-4, 10.0).unwrap();
        let s2 = mul(x.as_ref(), shrunk.as_ref());
        let norm2: f64 = (0..n)
            .flat_map(|i| (0..k).map(move |j| (i, j)))
            .map(|(i, j)| s2[(i, j)].powi(2))
            .sum();
        assert!(norm2 < 0.1 * norm, "μ shrinks: {norm2} vs {norm}");
    }

    /// The fast path (V's coordinates, residuals from C and g) equals the formula computed
    /// directly: E = (TᵀT + λI)⁻¹ TᵀX, σ²_j from the explicit residuals, M = Λ⁻¹Eᵀ(EΛ⁻¹Eᵀ + μI)⁻¹.
    #[test]
    fn equals_the_direct_formula() {
        use faer::linalg::solvers::Solve;
        let (n, v, k) = (30, 25, 4);
        let t = Mat::from_fn(n, k, |i, j| ((i * 3 + j * 11) as f64 * 0.29).sin());
        let x = Mat::from_fn(n, v, |i, j| {
            ((i * 7 + j * 5) as f64 * 0.13).cos() + 0.3 * t[(i, j % k)]
        });
        let (lambda, mu) = (0.5, 0.2);
        let gram = mul(t.transpose(), t.as_ref());
        let unit = (0..k).map(|i| gram[(i, i)]).sum::<f64>() / k as f64;
        let mut a = gram.clone();
        for i in 0..k {
            a[(i, i)] += lambda * unit;
        }
        let mut e = mul(t.transpose(), x.as_ref());
        a.llt(Side::Lower).unwrap().solve_in_place(e.as_mut());
        let fitted = mul(t.as_ref(), e.as_ref());
        let var: Vec<f64> = (0..v)
            .map(|j| {
                (0..n)
                    .map(|i| (x[(i, j)] - fitted[(i, j)]).powi(2))
                    .sum::<f64>()
                    / n as f64
            })
            .collect();
        let w = Mat::from_fn(k, v, |i, j| e[(i, j)] / var[j]);
        let mut p = mul(w.as_ref(), e.transpose());
        let p_unit = (0..k).map(|i| p[(i, i)]).sum::<f64>() / k as f64;
        for i in 0..k {
            p[(i, i)] += mu * p_unit;
        }
        let mut mt = w.clone();
        p.llt(Side::Lower).unwrap().solve_in_place(mt.as_mut());
        let fast = encoding_map(x.as_ref(), t.as_ref(), lambda, mu).unwrap();
        let scale = (0..v)
            .flat_map(|i| (0..k).map(move |j| (i, j)))
            .map(|(i, j)| mt[(j, i)].abs())
            .fold(0.0, f64::max);
        for i in 0..v {
            for j in 0..k {
                assert!(
                    (fast[(i, j)] - mt[(j, i)]).abs() <= 1e-9 * scale,
                    "M[{i},{j}]: {} vs {}",
                    fast[(i, j)],
                    mt[(j, i)]
                );
            }
        }
    }

    #[test]
    fn cross_validation_prefers_small_penalties_on_clean_data_and_rejects_bad_input() {
        let (n, v, k) = (50, 30, 2);
        let t = Mat::from_fn(n, k, |i, j| ((i * 5 + j * 9) as f64 * 0.41).sin());
        let e = Mat::from_fn(k, v, |i, j| ((i * 3 + j * 7) as f64 * 0.33).cos());
        let x = mul(t.as_ref(), e.as_ref());
        let fit = fit_encoding_map(x.as_ref(), t.as_ref(), &[1e-4, 1e2], &[1e-6, 1e2], 5).unwrap();
        assert_eq!((fit.lambda, fit.mu), (1e-4, 1e-6));
        assert!(fit.cv_error < 0.05, "{}", fit.cv_error);
        assert!(fit_encoding_map(x.as_ref(), t.as_ref(), &[], &[1.0], 5).is_err());
        assert!(encoding_map(x.as_ref(), t.as_ref(), 0.0, 1.0).is_err());
        let short = Mat::<f64>::zeros(n - 1, k);
        assert!(encoding_map(x.as_ref(), short.as_ref(), 1.0, 1.0).is_err());
    }
}
