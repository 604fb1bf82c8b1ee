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
//!
//! Everything is solved in T's row space, of dimension r = rank T ≤ min(n, k): with the thin
//! SVD T = U S Wᵀ, every e_j lies in W's span, E Λ⁻¹ Eᵀ = W A Wᵀ with A r × r, and
//! M = Λ⁻¹ Eᵀ W (A + μI)⁻¹ Wᵀ exactly (see `Embedding::map`). At NSD's size (n = 600–750
//! trials, k = 4,096) no k × k matrix is formed.

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

#[cfg(test)]
mod reference;

/// What every λ shares for one (x, t), in T's row space. With the thin SVD T = U S Wᵀ kept to
/// T's numerical rank r ≤ min(n, k) (W: k × r, orthonormal columns), TᵀT = W diag(g) Wᵀ with
/// g = s², and the rotated cross products are C = Wᵀ Tᵀ X = diag(s) Uᵀ X (r × v). The ridge
/// embeddings `E = (TᵀT + λI)⁻¹ Tᵀ X` lie in W's span: E = W diag(1/(g + λ)) C, so each λ's
/// embeddings are a diagonal scaling of C, and each voxel's residual is its part outside U's
/// span (λ-free) plus a diagonal scaling of C. Nothing k × k is formed; at NSD size
/// r = 600–750 against k = 4,096.
struct Design {
    w: Mat<f64>,
    s: Vec<f64>,
    g: Vec<f64>,
    c: Mat<f64>,
    /// ‖x_j − U Uᵀ x_j‖² per voxel: zero when r = n (every x lies in U's span).
    outside: Vec<f64>,
    n: usize,
    k: usize,
    lambda_unit: f64,
}

impl Design {
    /// `x` n × v centred, `t` n × k.
    fn new(x: MatRef<'_, f64>, t: MatRef<'_, f64>) -> Result<Self> {
        let (n, k) = t.shape();
        // tr(TᵀT) = ‖T‖²_F.
        let lambda_unit = ((0..k)
            .map(|j| (0..n).map(|i| t[(i, j)].powi(2)).sum::<f64>())
            .sum::<f64>()
            / k as f64)
            .max(f64::MIN_POSITIVE);
        let svd = t
            .thin_svd()
            .map_err(|_| AlignError::Input("singular value decomposition of T failed".into()))?;
        // Directions below the numerical rank carry only rounding: drop them (sorted, largest
        // first).
        let s_max = if n.min(k) > 0 { svd.S()[0] } else { 0.0 };
        let tolerance = s_max * n.max(k) as f64 * f64::EPSILON;
        let r = (0..n.min(k))
            .take_while(|&i| svd.S()[i] > tolerance)
            .count();
        let s: Vec<f64> = (0..r).map(|i| svd.S()[i]).collect();
        let w = svd.V().subcols(0, r).to_owned();
        let u = svd.U().subcols(0, r);
        let ux = mul(u.transpose(), x);
        let mut outside = vec![0.0; x.ncols()];
        if r < n {
            // Explicitly, in blocks of voxels: ‖x‖² − ‖Uᵀx‖² would cancel for a well-fitted x.
            const BLOCK: usize = 256;
            for start in (0..x.ncols()).step_by(BLOCK) {
                let width = BLOCK.min(x.ncols() - start);
                let fitted = mul(u, ux.subcols(start, width));
                for (j, o) in outside[start..start + width].iter_mut().enumerate() {
                    *o = (0..n)
                        .map(|i| (x[(i, start + j)] - fitted[(i, j)]).powi(2))
                        .sum();
                }
            }
        }
        let c = Mat::from_fn(r, x.ncols(), |i, j| s[i] * ux[(i, j)]);
        drop(ux);
        Ok(Design {
            w,
            g: s.iter().map(|s| s * s).collect(),
            s,
            c,
            outside,
            n,
            k,
            lambda_unit,
        })
    }

    /// The embeddings for one λ (relative to tr(TᵀT)/k), in W's coordinates.
    fn embedding(&self, lambda: f64) -> Result<Embedding<'_>> {
        let (r, voxels) = (self.c.nrows(), self.c.ncols());
        let shift = lambda * self.lambda_unit;
        let e = Mat::from_fn(r, voxels, |i, j| self.c[(i, j)] / (self.g[i] + shift));
        // x_j − T e_j = (x_j − U Uᵀx_j) + U (Uᵀx_j − S e_j), and Uᵀx_j − S e_j is
        // Uᵀx_j · shift/(g + shift) with Uᵀx_j = c_j/s: a sum of squares, no cancellation.
        let mut inv_var: Vec<f64> = (0..voxels)
            .map(|j| {
                let inside: f64 = (0..r)
                    .map(|i| (self.c[(i, j)] / self.s[i] * shift / (self.g[i] + shift)).powi(2))
                    .sum();
                (self.outside[j] + inside) / self.n as f64
            })
            .collect();
        // A floor at 1e-6 of the mean keeps a perfectly fitted voxel from taking all the weight.
        let floor = 1e-6 * (inv_var.iter().sum::<f64>() / voxels as f64).max(f64::MIN_POSITIVE);
        for w in &mut inv_var {
            *w = 1.0 / w.max(floor);
        }
        let weighted = Mat::from_fn(r, voxels, |i, j| e[(i, j)] * inv_var[j]);
        // E Λ⁻¹ Eᵀ = W (e Λ⁻¹ eᵀ) Wᵀ: only the r × r core is formed.
        let precision = mul(weighted.as_ref(), e.transpose());
        drop(e);
        let (q, d) = if r == 0 {
            (Mat::zeros(0, 0), Vec::new())
        } else {
            let evd = precision.self_adjoint_eigen(Side::Lower).map_err(|_| {
                AlignError::Input("eigendecomposition of the precision failed".into())
            })?;
            let d = (0..r).map(|i| evd.S()[i].max(0.0)).collect();
            (evd.U().to_owned(), d)
        };
        Ok(Embedding {
            design: self,
            weighted,
            q,
            d,
        })
    }
}

/// One λ's embeddings in W's coordinates: `weighted` = E Λ⁻¹ (r × v) and the precision's core
/// Wᵀ (E Λ⁻¹ Eᵀ) W = Q diag(d) Qᵀ (r × r); what every μ shares.
struct Embedding<'a> {
    design: &'a Design,
    weighted: Mat<f64>,
    q: Mat<f64>,
    d: Vec<f64>,
}

impl Embedding<'_> {
    /// tr(E Λ⁻¹ Eᵀ)/k: the unit of μ. The trace lives in the core, but the mean is over all k
    /// dimensions, as the penalty's definition says.
    fn mu_unit(&self) -> f64 {
        (self.d.iter().sum::<f64>() / self.design.k as f64).max(f64::MIN_POSITIVE)
    }

    /// `x Λ⁻¹ Eᵀ W Q` (rows × r): the part of a prediction before μ.
    fn project(&self, x: MatRef<'_, f64>) -> Mat<f64> {
        mul(mul(x, self.weighted.transpose()).as_ref(), self.q.as_ref())
    }

    /// Finishes [`Embedding::project`]'s rows for one μ, in W's coordinates:
    /// `· diag(1/(d+μ)) Qᵀ`.
    fn finish(&self, projected: &Mat<f64>, mu: f64) -> Mat<f64> {
        let mu = mu * self.mu_unit();
        let scaled = Mat::from_fn(projected.nrows(), projected.ncols(), |i, j| {
            projected[(i, j)] / (self.d[j] + mu)
        });
        mul(scaled.as_ref(), self.q.transpose())
    }

    /// M = Λ⁻¹ Eᵀ (E Λ⁻¹ Eᵀ + μI)⁻¹ (v × k), in the space's own coordinates. With E Λ⁻¹ Eᵀ =
    /// W A Wᵀ (A = Q diag(d) Qᵀ, r × r), `(W A Wᵀ + μI)⁻¹ = W (A + μI)⁻¹ Wᵀ + (I − W Wᵀ)/μ`;
    /// Λ⁻¹ Eᵀ = weightedᵀ Wᵀ and Wᵀ W = I, so the second term vanishes:
    /// `M = weightedᵀ · [Q diag(1/(d+μ)) Qᵀ Wᵀ]`, the bracket r × k. The one v × k matrix
    /// formed is the result.
    fn map(&self, mu: f64) -> Mat<f64> {
        let mu = mu * self.mu_unit();
        let r = self.d.len();
        let scaled_q = Mat::from_fn(r, r, |i, j| self.q[(i, j)] / (self.d[j] + mu));
        let core = mul(scaled_q.as_ref(), self.q.transpose());
        let right = mul(core.as_ref(), self.design.w.transpose());
        mul(self.weighted.transpose(), right.as_ref())
    }
}

/// The map M (v × k) for given penalties.
///
/// * `x`: the subject's betas, n × v, columns centred;
/// * `t`: the space's coordinates of the same rows, n × k;
/// * `lambda` > 0: ridge penalty of the per-voxel embeddings, in units of tr(TᵀT)/k;
/// * `mu` > 0: the prior on s, in units of tr(E Λ⁻¹ Eᵀ)/k. Both units make the penalties free
///   of the data's scale.
///
/// Work: one thin SVD of T (O(n·k·min(n, k))), O(n·r·v + r²·v) for the embeddings and
/// their precision, and v·r·k multiply-adds for M, with r = rank T ≤ min(n, k). Memory
/// besides the inputs: at most about 8·(v·k + 2·r·v + 2·r·k + r²) bytes, the result M
/// (8·v·k) the only v × k matrix; the SVD's own factors and workspace, about
/// 8·(n + k)·min(n, k) bytes, are freed before. At n = r = 750, k = 4,096, v = 15,724:
/// about 760 MB, 515 MB of it M.
///
/// # Errors
/// [`AlignError::Shape`] when the row counts differ or an input is empty;
/// [`AlignError::Input`] for a non-finite entry, a penalty that is not positive and finite,
/// or a failed decomposition.
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
/// all rows. One SVD of the fold's T serves every λ, and one embedding per fold and λ serves
/// every μ; the folds' work is in T's row space (r ≤ the fold's rows), and only the refit
/// forms a v × k matrix. Memory: [`encoding_map`]'s, plus a centred copy of x (8·n·v bytes).
///
/// * `x`: n × v betas (not necessarily centred: each fold centres its own), `t`: n × k.
///
/// # Errors
/// As [`encoding_map`], and [`AlignError::Input`] for empty grids or fewer than
/// 2·`n_folds` rows.
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
        // Held-out coordinates in W's coordinates, where the predictions come out. Outside W's
        // span every prediction is zero, so that part of t is an error every pair shares.
        let t_test_w = mul(t_test.as_ref(), design.w.as_ref());
        let inside = mul(t_test_w.as_ref(), design.w.transpose());
        let outside_error: f64 = (0..t_test.nrows())
            .flat_map(|i| (0..t_test.ncols()).map(move |j| (i, j)))
            .map(|(i, j)| (t_test[(i, j)] - inside[(i, j)]).powi(2))
            .sum();
        drop(inside);
        let t_test = t_test_w;
        for (a, &lambda) in lambdas.iter().enumerate() {
            let embedding = design.embedding(lambda)?;
            let projected = embedding.project(x_test.as_ref());
            for (b, &mu) in mus.iter().enumerate() {
                let predicted = embedding.finish(&projected, mu);
                let mut error = outside_error;
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

    /// Uniform in [−0.5, 0.5) from a 64-bit LCG: reproducible without a dependency.
    fn random(rows: usize, cols: usize, seed: u64) -> Mat<f64> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Mat::from_fn(rows, cols, |_, _| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        })
    }

    fn max_abs(m: &Mat<f64>) -> f64 {
        (0..m.nrows())
            .flat_map(|i| (0..m.ncols()).map(move |j| (i, j)))
            .map(|(i, j)| m[(i, j)].abs())
            .fold(0.0, f64::max)
    }

    /// Largest entry of |a − b| relative to b's largest entry.
    fn relative_difference(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
        assert_eq!(a.shape(), b.shape());
        (a - b).norm_max() / max_abs(b).max(f64::MIN_POSITIVE)
    }

    /// Betas that follow T through random embeddings, plus noise of different size per voxel.
    fn case(n: usize, k: usize, v: usize, rank: Option<usize>, seed: u64) -> (Mat<f64>, Mat<f64>) {
        let t = match rank {
            None => random(n, k, seed),
            Some(r) => mul(random(n, r, seed).as_ref(), random(r, k, seed + 1).as_ref()),
        };
        let e = random(k, v, seed + 2);
        let noise = random(n, v, seed + 3);
        let x = Mat::from_fn(n, v, |i, j| {
            let signal: f64 = (0..k).map(|l| t[(i, l)] * e[(l, j)]).sum();
            signal + (0.2 + (j % 5) as f64) * noise[(i, j)]
        });
        (x, t)
    }

    /// M from its definition, at the full k: E = (TᵀT + λI)⁻¹ TᵀX by Cholesky, σ²_j from the
    /// explicit residuals x_j − T e_j, M = Λ⁻¹Eᵀ(EΛ⁻¹Eᵀ + μI)⁻¹ by Cholesky.
    fn direct_map(x: MatRef<'_, f64>, t: MatRef<'_, f64>, lambda: f64, mu: f64) -> Mat<f64> {
        use faer::linalg::solvers::Solve;
        let (n, v, k) = (x.nrows(), x.ncols(), t.ncols());
        let mut a = mul(t.transpose(), t);
        let unit = (0..k).map(|i| a[(i, i)]).sum::<f64>() / k as f64;
        for i in 0..k {
            a[(i, i)] += lambda * unit;
        }
        let mut e = mul(t.transpose(), x);
        a.llt(Side::Lower).unwrap().solve_in_place(e.as_mut());
        let fitted = mul(t, e.as_ref());
        let var: Vec<f64> = (0..v)
            .map(|j| {
                (0..n)
                    .map(|i| (x[(i, j)] - fitted[(i, j)]).powi(2))
                    .sum::<f64>()
                    / n as f64
            })
            .collect();
        let floor = 1e-6 * var.iter().sum::<f64>() / v as f64;
        let weighted = Mat::from_fn(k, v, |i, j| e[(i, j)] / var[j].max(floor));
        let mut p = mul(weighted.as_ref(), e.transpose());
        let p_unit = (0..k).map(|i| p[(i, i)]).sum::<f64>() / k as f64;
        for i in 0..k {
            p[(i, i)] += mu * p_unit;
        }
        let mut mt = weighted;
        p.llt(Side::Lower).unwrap().solve_in_place(mt.as_mut());
        mt.transpose().to_owned()
    }

    /// The row-space path equals the map from its definition and the map as first written
    /// (`reference`, every product at the full k): wide (n < k, as at NSD), tall (n > k),
    /// rank-deficient T, and the penalties' extremes.
    ///
    /// Full-k computations carry rounding (≈ ε‖TᵀX‖/λ) along T's null directions, which the
    /// inverse amplifies by 1/μ; the exact map has none there (its rows lie in T's row space),
    /// so the full-k maps are compared on T's row space, and whole only where T has no null
    /// directions beyond n < k's. The reference also took each residual as
    /// ‖x‖² − 2c·e + g·e², which cancels when a small λ fits x almost exactly (n < k): there it
    /// is itself off by up to ~1e-9, so at λ = 1e-3 it is held to 1e-8.
    #[test]
    fn row_space_path_equals_the_full_k_reference() {
        let cases = [
            ("n < k", 30, 70, 40, None),
            ("n > k", 80, 9, 35, None),
            ("rank 4 of n < k", 30, 50, 25, Some(4)),
            ("rank 3 of n > k", 60, 12, 20, Some(3)),
        ];
        for (seed, &(name, n, k, v, rank)) in cases.iter().enumerate() {
            let (x, t) = case(n, k, v, rank, 10 * seed as u64);
            let mean: Vec<f64> = (0..v)
                .map(|j| (0..n).map(|i| x[(i, j)]).sum::<f64>() / n as f64)
                .collect();
            let xc = Mat::from_fn(n, v, |i, j| x[(i, j)] - mean[j]);
            // T's row space, from the path under test's own design.
            let w = Design::new(xc.as_ref(), t.as_ref()).unwrap().w;
            assert_eq!(
                w.ncols(),
                rank.unwrap_or(n.min(k)),
                "{name}: numerical rank"
            );
            let on_row_space =
                |m: &Mat<f64>| mul(mul(m.as_ref(), w.as_ref()).as_ref(), w.transpose());
            for &lambda in &[1e-3, 1.0, 1e3] {
                for &mu in &[1e-5, 1.0, 1e3] {
                    let fast = encoding_map(xc.as_ref(), t.as_ref(), lambda, mu).unwrap();
                    let old = reference::encoding_map(xc.as_ref(), t.as_ref(), lambda, mu).unwrap();
                    let direct = direct_map(xc.as_ref(), t.as_ref(), lambda, mu);
                    let what = format!("{name}, λ {lambda}, μ {mu}");
                    let d_direct = relative_difference(&fast, &on_row_space(&direct));
                    let d_old = relative_difference(&fast, &on_row_space(&old));
                    let d_whole = relative_difference(&fast, &old);
                    let outside = relative_difference(&fast, &on_row_space(&fast));
                    assert!(
                        d_direct < 1e-9,
                        "{what}: against the definition {d_direct:e}"
                    );
                    assert!(outside < 1e-9, "{what}: outside T's row space {outside:e}");
                    let old_tolerance = if lambda >= 1.0 { 1e-9 } else { 1e-8 };
                    assert!(
                        d_old < old_tolerance,
                        "{what}: against the reference {d_old:e}"
                    );
                    if rank.is_none() && (n > k || (lambda >= 1.0 && mu >= 1.0)) {
                        assert!(d_whole < 1e-9, "{what}: whole maps {d_whole:e}");
                    }
                }
            }
            let grid = (&[1e-3, 0.1, 10.0, 1e3][..], &[1e-5, 1e-2, 1.0, 1e3][..]);
            let fast = fit_encoding_map(x.as_ref(), t.as_ref(), grid.0, grid.1, 5).unwrap();
            let old =
                reference::fit_encoding_map(x.as_ref(), t.as_ref(), grid.0, grid.1, 5).unwrap();
            assert_eq!(
                (fast.lambda, fast.mu),
                (old.lambda, old.mu),
                "{name}: chosen pair"
            );
            let cv = (fast.cv_error - old.cv_error).abs() / old.cv_error;
            assert!(
                cv < 1e-9,
                "{name}: CV error {} vs {}",
                fast.cv_error,
                old.cv_error
            );
            let refit = relative_difference(&fast.map, &on_row_space(&old.map));
            assert!(refit < 1e-9, "{name}: refit {refit:e}");
        }
        // T of rank 0: no direction to embed in, the map is zero (as the reference's).
        let (x, _) = case(20, 6, 10, None, 99);
        let zero = Mat::<f64>::zeros(20, 6);
        let m = encoding_map(x.as_ref(), zero.as_ref(), 1.0, 1.0).unwrap();
        assert_eq!(m.shape(), (10, 6));
        assert_eq!(max_abs(&m), 0.0);
    }

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
