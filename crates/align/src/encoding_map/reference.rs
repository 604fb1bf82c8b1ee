//! The encoding map as first written: every fit at the full k (eigendecompositions of the
//! k × k TᵀT and precision). Kept for tests: the fast path must reproduce it.

use super::{check, check_penalties, mul, EncodingMap};
use crate::{AlignError, Result};
use faer::{Mat, MatRef, Side};

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
pub(super) fn encoding_map(
    x: MatRef<'_, f64>,
    t: MatRef<'_, f64>,
    lambda: f64,
    mu: f64,
) -> Result<Mat<f64>> {
    check(x, t)?;
    check_penalties(&[lambda], &[mu])?;
    Ok(Design::new(x, t)?.embedding(lambda)?.map(mu))
}

/// Chooses (λ, μ) from the grids by `n_folds`-fold cross-validation over rows (row i in fold
/// i mod n_folds; each training part centred on its own mean): the held-out error
/// ‖(x − x̄) M − t‖² summed over folds, smallest wins, ties to the first pair. Then refits on
/// all rows. One embedding per fold and λ serves every μ.
///
/// * `x`: n × v betas (not necessarily centred: each fold centres its own), `t`: n × k.
pub(super) fn fit_encoding_map(
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
