//! One k-dimensional space for a group of subjects, fitted by multi-subject reduced-rank ridge
//! onto stimulus features (the linear form of MindEye2's shared space; Mukherjee & Zhu 2011).
//!
//! Subject s has betas `X_s` (n_s × v_s) and targets `Y_s` (n_s × d), the features of the images
//! it saw; both are centred by the caller. The space is the solution of
//!
//! ```text
//! min over M_s (v_s × k), P (d × k, PᵀP = I) of  Σ_s ‖Y_s − X_s M_s Pᵀ‖² + α_s ‖M_s‖²
//! ```
//!
//! For fixed α_s it has a closed form: `P` holds the top-k eigenvectors of `Σ_s Y_sᵀ H_s Y_s`,
//! `H_s = K_s (K_s + α_s I)⁻¹`, `K_s = X_s X_sᵀ`, and `M_s = ridge(X_s → Y_s P)`. With
//! `K_s = U_s Λ_s U_sᵀ` that matrix is `ZᵀZ` for `Z = stack_s diag(√(λ/(λ+α))) U_sᵀ Y_s`, so `P`
//! holds the top right singular vectors of `Z`. The d × d matrix is formed only when d is small;
//! otherwise a randomized SVD touches `Y_s` through products with d × (k + oversample) blocks.

use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::linalg::solvers::Solve;
use faer::{Accum, Mat, MatMut, MatRef, Par, Side};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{AlignError, Result};

/// Settings of [`fit_shared_space`].
#[derive(Debug, Clone, PartialEq)]
pub struct SharedSpaceOptions {
    /// Dimension k of the shared space (1 ≤ k ≤ d, k ≤ Σ n_s).
    pub k: usize,
    /// Extra random probes of the randomized SVD beyond k (default 10).
    pub oversample: usize,
    /// Power iterations of the randomized SVD, each re-orthonormalised (default 2).
    pub power_iters: usize,
    /// Seed of the Gaussian probes (ChaCha8).
    pub seed: u64,
    /// Target counts d up to this use the exact d × d eigendecomposition; larger d use the
    /// randomized SVD (default 3000; 0 forces the randomized path).
    pub exact_below: usize,
}

impl Default for SharedSpaceOptions {
    fn default() -> Self {
        Self {
            k: 1024,
            oversample: 10,
            power_iters: 2,
            seed: 0,
            exact_below: 3000,
        }
    }
}

/// A fitted shared space.
#[derive(Debug, Clone)]
pub struct SharedSpace {
    /// P (d × k): orthonormal columns spanning the space in target coordinates, ordered by
    /// decreasing singular value; each column's largest-magnitude entry is positive.
    pub basis: Mat<f64>,
    /// M_s (v_s × k), one per subject: betas → shared space (`X_s M_s ≈ Y_s P`).
    pub maps: Vec<Mat<f64>>,
    /// The ridge penalty α_s of each subject, as given.
    pub alphas: Vec<f64>,
    /// The top k singular values of Z (their squares are the eigenvalues of `Σ_s Y_sᵀ H_s Y_s`).
    pub singular_values: Vec<f64>,
}

pub(crate) fn par() -> Par {
    faer::get_global_parallelism()
}

/// `a · b`.
pub(crate) fn mul(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Mat<f64> {
    let mut out = Mat::<f64>::zeros(a.nrows(), b.ncols());
    matmul(out.as_mut(), Accum::Replace, a, b, 1.0, par());
    out
}

/// Lower triangle of `m mᵀ` (the upper triangle is left at zero).
pub(crate) fn gram_lower(m: MatRef<'_, f64>) -> Mat<f64> {
    let mut out = Mat::<f64>::zeros(m.nrows(), m.nrows());
    gram_lower_into(out.as_mut(), m, Accum::Replace);
    out
}

/// The lower triangle of `m mᵀ` written into `out` (`Accum::Replace`) or added to it
/// (`Accum::Add`): `out` is m.nrows() × m.nrows(); its upper triangle is left as it was.
pub(crate) fn gram_lower_into(out: MatMut<'_, f64>, m: MatRef<'_, f64>, accum: Accum) {
    triangular::matmul(
        out,
        BlockStructure::TriangularLower,
        accum,
        m,
        BlockStructure::Rectangular,
        m.transpose(),
        BlockStructure::Rectangular,
        1.0,
        par(),
    );
}

fn check_finite(m: MatRef<'_, f64>, what: &str) -> Result<()> {
    for j in 0..m.ncols() {
        for i in 0..m.nrows() {
            if !m[(i, j)].is_finite() {
                return Err(AlignError::Input(format!(
                    "{what} holds a non-finite value at row {i}, column {j}"
                )));
            }
        }
    }
    Ok(())
}

pub(crate) fn check_alpha(alpha: f64, what: &str) -> Result<()> {
    if !(alpha.is_finite() && alpha > 0.0) {
        return Err(AlignError::Input(format!(
            "{what} must be a positive finite number, got {alpha}"
        )));
    }
    Ok(())
}

/// One subject's betas, decomposed once on their smaller side.
///
/// Dual (v ≥ n): `X Xᵀ = U Λ Uᵀ`, `left` = U (n × n). Primal (v < n): `XᵀX = V Λ Vᵀ`,
/// `left` = X V (n × v), `right` = V (v × v). In both cases the ridge hat matrix is
/// `H = left · diag(h) · leftᵀ` with h = 1/(λ+α)·λ (dual) or 1/(λ+α) (primal).
struct Spectrum {
    left: Mat<f64>,
    right: Option<Mat<f64>>,
    lambda: Vec<f64>,
}

impl Spectrum {
    fn new(x: MatRef<'_, f64>) -> Result<Self> {
        let dual = x.ncols() >= x.nrows();
        let gram = if dual {
            gram_lower(x)
        } else {
            gram_lower(x.transpose())
        };
        let (lambda, vecs) = psd_eigen(gram, "X Xᵀ")?;
        Ok(if dual {
            Self {
                left: vecs,
                right: None,
                lambda,
            }
        } else {
            Self {
                left: mul(x, vecs.as_ref()),
                right: Some(vecs),
                lambda,
            }
        })
    }

    /// Row weights w with `Z_s = diag(w) leftᵀ Y_s`.
    fn z_weights(&self, alpha: f64) -> Vec<f64> {
        self.lambda
            .iter()
            .map(|&l| match self.right {
                None => (l / (l + alpha)).sqrt(),
                Some(_) => 1.0 / (l + alpha).sqrt(),
            })
            .collect()
    }

    /// Ridge coefficients (v × k) of the targets `t` (n × k): `Xᵀ (XXᵀ + αI)⁻¹ t`.
    fn ridge(&self, x: MatRef<'_, f64>, t: MatRef<'_, f64>, alpha: f64) -> Mat<f64> {
        let mut c = mul(self.left.transpose(), t);
        for (i, &l) in self.lambda.iter().enumerate() {
            let w = 1.0 / (l + alpha);
            for j in 0..c.ncols() {
                c[(i, j)] *= w;
            }
        }
        match &self.right {
            None => {
                let uc = mul(self.left.as_ref(), c.as_ref());
                mul(x.transpose(), uc.as_ref())
            }
            Some(v) => mul(v.as_ref(), c.as_ref()),
        }
    }
}

/// `diag(w) · m` in place.
pub(crate) fn scale_rows(m: &mut Mat<f64>, w: &[f64]) {
    for j in 0..m.ncols() {
        for (i, &wi) in w.iter().enumerate() {
            m[(i, j)] *= wi;
        }
    }
}

/// A standard normal draw (Box–Muller, one value per pair of uniforms).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]: ln stays finite
    let u2: f64 = rng.gen::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Gaussian `rows × cols`, filled column by column.
pub(crate) fn gaussian(rng: &mut ChaCha8Rng, rows: usize, cols: usize) -> Mat<f64> {
    let mut m = Mat::<f64>::zeros(rows, cols);
    for j in 0..cols {
        for i in 0..rows {
            m[(i, j)] = normal(rng);
        }
    }
    m
}

/// Orthonormal basis (thin Q) of the columns of `m` (rows ≥ cols). Takes `m` so that it is
/// freed before Q is formed: at most two d × l matrices are alive.
pub(crate) fn orthonormalise(m: Mat<f64>) -> Mat<f64> {
    let qr = m.qr();
    drop(m);
    qr.compute_thin_Q()
}

/// The eigenvalues (ascending, clamped at 0: rounding can leave tiny negative eigenvalues of a
/// PSD matrix) and eigenvectors of the symmetric PSD `gram` (lower triangle read); `gram` is
/// freed before the eigenvectors are copied out. Errors name `what` when faer fails.
pub(crate) fn psd_eigen(gram: Mat<f64>, what: &str) -> Result<(Vec<f64>, Mat<f64>)> {
    let evd = gram
        .self_adjoint_eigen(Side::Lower)
        .map_err(|_| AlignError::Input(format!("eigendecomposition of {what} failed")))?;
    drop(gram);
    let s = evd.S().column_vector();
    let lambda = (0..s.nrows()).map(|i| s[i].max(0.0)).collect();
    Ok((lambda, evd.U().to_owned()))
}

/// The eigenvectors of the top `k` eigenvalues of the symmetric `gram` (lower triangle read),
/// largest first, with the square roots of those eigenvalues.
pub(crate) fn top_eigen(gram: &Mat<f64>, k: usize) -> Result<(Mat<f64>, Vec<f64>)> {
    let evd = gram.self_adjoint_eigen(Side::Lower).map_err(|_| {
        AlignError::Input("eigendecomposition of the shared-space Gram failed".into())
    })?;
    let (u, s) = (evd.U(), evd.S().column_vector());
    let m = u.nrows();
    // faer returns eigenvalues in nondecreasing order.
    let top = Mat::from_fn(m, k, |i, j| u[(i, m - 1 - j)]);
    let sv = (0..k).map(|j| s[m - 1 - j].max(0.0).sqrt()).collect();
    Ok((top, sv))
}

/// Flips columns so each column of `p` has its largest-magnitude entry positive (a
/// deterministic sign), applying the same flips to `w`'s columns.
pub(crate) fn fix_signs(p: &mut Mat<f64>, w: Option<&mut Mat<f64>>) {
    let mut flips = vec![false; p.ncols()];
    for j in 0..p.ncols() {
        let mut best = 0.0f64;
        let mut sign = 1.0;
        for i in 0..p.nrows() {
            let a = p[(i, j)];
            if a.abs() > best {
                best = a.abs();
                sign = a.signum();
            }
        }
        flips[j] = sign < 0.0;
    }
    for (j, &f) in flips.iter().enumerate() {
        if f {
            for i in 0..p.nrows() {
                p[(i, j)] = -p[(i, j)];
            }
        }
    }
    if let Some(w) = w {
        for (j, &f) in flips.iter().enumerate() {
            if f {
                for i in 0..w.nrows() {
                    w[(i, j)] = -w[(i, j)];
                }
            }
        }
    }
}

/// Fits the shared space of a group.
///
/// * `x[s]`: betas of subject s, n_s × v_s, columns centred;
/// * `y[s]`: targets of subject s, n_s × d (the same d for all), centred and block-scaled;
/// * `alphas[s]`: ridge penalty α_s > 0 of subject s (see [`gcv_alpha`]).
///
/// Returns P (d × k), the maps M_s (v_s × k) and the top k singular values of Z. Each subject
/// is decomposed on its smaller side (n_s × n_s when v_s ≥ n_s, else v_s × v_s). When
/// d ≤ `opts.exact_below` the d × d matrix `ZᵀZ` is formed and decomposed exactly; otherwise a
/// randomized SVD with k + `oversample` Gaussian probes and `power_iters` power iterations.
///
/// Errors: different subject counts in `x`, `y`, `alphas`; a subject whose X and Y row counts
/// differ or that has no rows; d differing across subjects; k = 0, k > d or k > Σ n_s;
/// a non-positive or non-finite α; non-finite values in X or Y.
pub fn fit_shared_space(
    x: &[MatRef<'_, f64>],
    y: &[MatRef<'_, f64>],
    alphas: &[f64],
    opts: &SharedSpaceOptions,
) -> Result<SharedSpace> {
    if x.is_empty() {
        return Err(AlignError::Input(
            "no subjects to fit a shared space".into(),
        ));
    }
    if y.len() != x.len() || alphas.len() != x.len() {
        return Err(AlignError::Shape(format!(
            "{} beta matrices, {} target matrices and {} alphas: one of each per subject",
            x.len(),
            y.len(),
            alphas.len()
        )));
    }
    let d = y[0].ncols();
    let mut total_rows = 0;
    for (s, (xs, ys)) in x.iter().zip(y).enumerate() {
        if xs.nrows() != ys.nrows() {
            return Err(AlignError::Shape(format!(
                "subject {s}: X has {} rows, Y has {}",
                xs.nrows(),
                ys.nrows()
            )));
        }
        if xs.nrows() == 0 {
            return Err(AlignError::Shape(format!("subject {s} has no rows")));
        }
        if ys.ncols() != d {
            return Err(AlignError::Shape(format!(
                "subject {s} has {} targets, subject 0 has {d}",
                ys.ncols()
            )));
        }
        check_alpha(alphas[s], &format!("alpha of subject {s}"))?;
        total_rows += xs.nrows();
    }
    let k = opts.k;
    if k == 0 {
        return Err(AlignError::Input("k must be at least 1".into()));
    }
    if k > d {
        return Err(AlignError::Shape(format!(
            "k = {k} is more than the {d} targets"
        )));
    }
    if k > total_rows {
        return Err(AlignError::Shape(format!(
            "k = {k} is more than the {total_rows} rows of all subjects"
        )));
    }
    for (s, (xs, ys)) in x.iter().zip(y).enumerate() {
        check_finite(*xs, &format!("X of subject {s}"))?;
        check_finite(*ys, &format!("Y of subject {s}"))?;
    }

    let spectra = x
        .iter()
        .map(|xs| Spectrum::new(*xs))
        .collect::<Result<Vec<_>>>()?;
    let weights: Vec<Vec<f64>> = spectra
        .iter()
        .zip(alphas)
        .map(|(sp, &a)| sp.z_weights(a))
        .collect();

    // Y_s P for every subject, from which the maps follow.
    let (basis, targets, singular_values) = if d <= opts.exact_below {
        exact(y, &spectra, &weights, k)?
    } else {
        randomized(y, &spectra, &weights, k, opts)?
    };
    let maps = spectra
        .iter()
        .zip(x)
        .zip(&targets)
        .zip(alphas)
        .map(|(((sp, xs), t), &a)| sp.ridge(*xs, t.as_ref(), a))
        .collect();
    Ok(SharedSpace {
        basis,
        maps,
        alphas: alphas.to_vec(),
        singular_values,
    })
}

/// Exact path: `ZᵀZ` (d × d) formed and decomposed. Returns P, the `Y_s P` and the singular
/// values.
fn exact(
    y: &[MatRef<'_, f64>],
    spectra: &[Spectrum],
    weights: &[Vec<f64>],
    k: usize,
) -> Result<(Mat<f64>, Vec<Mat<f64>>, Vec<f64>)> {
    let d = y[0].ncols();
    let mut gram = Mat::<f64>::zeros(d, d);
    for ((ys, sp), w) in y.iter().zip(spectra).zip(weights) {
        let mut z = mul(sp.left.transpose(), *ys);
        scale_rows(&mut z, w);
        gram_lower_into(gram.as_mut(), z.transpose(), Accum::Add);
    }
    let (mut p, sv) = top_eigen(&gram, k)?;
    fix_signs(&mut p, None);
    let targets = y.iter().map(|ys| mul(*ys, p.as_ref())).collect();
    Ok((p, targets, sv))
}

/// Randomized path (Halko, Martinsson & Tropp 2011, algorithms 4.4 and 5.1 on Zᵀ): a
/// d × l orthonormal Q spanning `(ZᵀZ)^q Zᵀ G`, then the exact SVD of Z Q.
fn randomized(
    y: &[MatRef<'_, f64>],
    spectra: &[Spectrum],
    weights: &[Vec<f64>],
    k: usize,
    opts: &SharedSpaceOptions,
) -> Result<(Mat<f64>, Vec<Mat<f64>>, Vec<f64>)> {
    let d = y[0].ncols();
    let l = (k + opts.oversample).min(d);
    let ranks: Vec<usize> = weights.iter().map(Vec::len).collect();
    let total: usize = ranks.iter().sum();
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);

    // Zᵀ B = Σ_s Y_sᵀ left_s diag(w_s) B_s, with B (Σ r_s × l) split by subject.
    let z_t_times = |b: &Mat<f64>| -> Mat<f64> {
        let mut out = Mat::<f64>::zeros(d, l);
        let mut at = 0;
        for ((ys, sp), w) in y.iter().zip(spectra).zip(weights) {
            let mut bs = b.as_ref().subrows(at, w.len()).to_owned();
            at += w.len();
            scale_rows(&mut bs, w);
            let lb = mul(sp.left.as_ref(), bs.as_ref());
            matmul(
                out.as_mut(),
                Accum::Add,
                ys.transpose(),
                lb.as_ref(),
                1.0,
                par(),
            );
        }
        out
    };
    // Z Q (Σ r_s × l), also returning each Y_s Q.
    let z_times = |q: &Mat<f64>| -> (Mat<f64>, Vec<Mat<f64>>) {
        let mut out = Mat::<f64>::zeros(total, l);
        let mut yq_all = Vec::with_capacity(y.len());
        let mut at = 0;
        for ((ys, sp), w) in y.iter().zip(spectra).zip(weights) {
            let yq = mul(*ys, q.as_ref());
            let mut zs = mul(sp.left.transpose(), yq.as_ref());
            scale_rows(&mut zs, w);
            out.as_mut().subrows_mut(at, w.len()).copy_from(&zs);
            at += w.len();
            yq_all.push(yq);
        }
        (out, yq_all)
    };

    let probes = gaussian(&mut rng, total, l);
    let mut q = orthonormalise(z_t_times(&probes));
    for _ in 0..opts.power_iters {
        let (mut b, _) = z_times(&q);
        drop(q);
        if total >= l {
            b = orthonormalise(b);
        }
        q = orthonormalise(z_t_times(&b));
    }
    let (b, yq) = z_times(&q);
    let (mut w, sv) = top_eigen(&gram_lower(b.transpose()), k)?;
    let mut p = mul(q.as_ref(), w.as_ref());
    fix_signs(&mut p, Some(&mut w));
    // Y_s P = (Y_s Q) W: no further pass over Y.
    let targets = yq.iter().map(|t| mul(t.as_ref(), w.as_ref())).collect();
    Ok((p, targets, sv))
}

/// The map of a new subject into a fitted space: `M = ridge(X → Y P)`, v × k.
///
/// * `x`: the subject's betas, n × v, columns centred;
/// * `y`: targets of the images it saw, n × d, centred and scaled as for the group;
/// * `basis`: P (d × k) of a [`SharedSpace`]; its columns must be orthonormal;
/// * `alpha`: ridge penalty > 0.
///
/// Because PᵀP = I, `‖Y − X M Pᵀ‖² = ‖Y P − X M‖² + const`, so the result minimises exactly
/// this subject's term `‖Y − X M Pᵀ‖² + α‖M‖²` of the group objective. Solved by Cholesky on
/// `X Xᵀ + αI` (n × n) when v > n, else on `XᵀX + αI` (v × v).
///
/// Errors: row counts of X and Y differ; Y's columns differ from P's rows; non-finite values;
/// a non-positive α.
pub fn fit_subject_map(
    x: MatRef<'_, f64>,
    y: MatRef<'_, f64>,
    basis: MatRef<'_, f64>,
    alpha: f64,
) -> Result<Mat<f64>> {
    if x.nrows() != y.nrows() {
        return Err(AlignError::Shape(format!(
            "X has {} rows, Y has {}",
            x.nrows(),
            y.nrows()
        )));
    }
    if y.ncols() != basis.nrows() {
        return Err(AlignError::Shape(format!(
            "Y has {} targets, the basis has {} rows",
            y.ncols(),
            basis.nrows()
        )));
    }
    check_alpha(alpha, "alpha")?;
    check_finite(x, "X")?;
    check_finite(y, "Y")?;
    check_finite(basis, "the basis")?;

    let t = mul(y, basis); // n × k
    let dual = x.ncols() > x.nrows();
    let mut a = if dual {
        gram_lower(x)
    } else {
        gram_lower(x.transpose())
    };
    for i in 0..a.nrows() {
        a[(i, i)] += alpha;
    }
    let llt = a
        .llt(Side::Lower)
        .map_err(|_| AlignError::Input("Cholesky of the ridge system failed".into()))?;
    Ok(if dual {
        let mut c = t;
        llt.solve_in_place(c.as_mut());
        mul(x.transpose(), c.as_ref())
    } else {
        let mut c = mul(x.transpose(), t.as_ref());
        llt.solve_in_place(c.as_mut());
        c
    })
}

/// The ridge penalty from `grid` that minimises generalised cross-validation, averaged over
/// the targets (one α for all targets, as the closed form of [`fit_shared_space`] needs).
///
/// * `x`: betas, n × v, columns centred; `y`: targets, n × d (or a subsample of its columns);
/// * `grid`: candidate α > 0.
///
/// With the hat matrix `H = X (XᵀX + αI)⁻¹ Xᵀ`,
/// `GCV(α) = (1/(n d)) ‖(I − H) Y‖²_F / (1 − (1 + tr H)/n)²`, evaluated for every α from one
/// eigendecomposition of X on its smaller side. The 1 is the mean that centring removed,
/// counted as a fitted intercept (as `RidgeCv` does): without it, a centred X with v ≥ n
/// (rank n − 1) would interpolate at α → 0 and the score would fall to 0 there. Ties go to
/// the first grid value.
///
/// Errors: row counts differ; fewer than two rows or no targets; an empty grid or a
/// non-positive or non-finite grid value; non-finite values in X or Y.
pub fn gcv_alpha(x: MatRef<'_, f64>, y: MatRef<'_, f64>, grid: &[f64]) -> Result<f64> {
    if x.nrows() != y.nrows() {
        return Err(AlignError::Shape(format!(
            "X has {} rows, Y has {}",
            x.nrows(),
            y.nrows()
        )));
    }
    if x.nrows() < 2 || y.ncols() == 0 {
        return Err(AlignError::Shape(
            "generalised cross-validation needs at least two rows and one target".into(),
        ));
    }
    if grid.is_empty() {
        return Err(AlignError::Input("the alpha grid is empty".into()));
    }
    for &a in grid {
        check_alpha(a, "every alpha of the grid")?;
    }
    check_finite(x, "X")?;
    check_finite(y, "Y")?;

    let sp = Spectrum::new(x)?;
    let proj = mul(sp.left.transpose(), y);
    let c: Vec<f64> = (0..proj.nrows())
        .map(|i| (0..proj.ncols()).map(|j| proj[(i, j)].powi(2)).sum())
        .collect();
    let n = x.nrows() as f64;
    let d = y.ncols() as f64;
    let total = if sp.right.is_some() {
        (0..y.ncols())
            .map(|j| (0..y.nrows()).map(|i| y[(i, j)].powi(2)).sum::<f64>())
            .sum()
    } else {
        0.0
    };

    gcv_choose(&sp.lambda, &c, sp.right.is_none(), n, d, total, grid)
}

/// The GCV choice of [`gcv_alpha`] from a spectrum: `lambda` (eigenvalues of X on its smaller
/// side), `c` (squared norms of the rows of leftᵀY), `dual` (U complete: v ≥ n), n rows, d
/// targets and, in the primal case, `total` = ‖Y‖²_F. Ties go to the first grid value.
pub(crate) fn gcv_choose(
    lambda: &[f64],
    c: &[f64],
    dual: bool,
    n: f64,
    d: f64,
    total: f64,
    grid: &[f64],
) -> Result<f64> {
    let mut best: Option<(f64, f64)> = None;
    for &alpha in grid {
        let (rss, resid_dof) = if dual {
            // Dual: U is complete, I − H = U diag(α/(λ+α)) Uᵀ.
            lambda.iter().zip(c).fold((0.0, 0.0), |(r, t), (&l, &ci)| {
                let s = alpha / (l + alpha);
                (r + s * s * ci, t + s)
            })
        } else {
            // Primal: rows of (XV)ᵀY are √λ times the projections on X's left singular
            // vectors; ‖(I−H)Y‖² = ‖Y‖² − Σ (λ+2α)/(λ+α)² ‖c_i‖².
            let (fit, tr) = lambda.iter().zip(c).fold((0.0, 0.0), |(f, t), (&l, &ci)| {
                (
                    f + (l + 2.0 * alpha) / (l + alpha).powi(2) * ci,
                    t + l / (l + alpha),
                )
            });
            ((total - fit).max(0.0), n - tr)
        };
        // The intercept's leverage (1/n per row) leaves the residual of centred Y unchanged.
        let score = (rss / (n * d)) / ((resid_dof - 1.0) / n).powi(2);
        if score.is_nan() {
            continue;
        }
        if best.is_none_or(|(s, _)| score < s) {
            best = Some((score, alpha));
        }
    }
    best.map(|(_, a)| a).ok_or_else(|| {
        AlignError::Input("generalised cross-validation is undefined for every alpha".into())
    })
}
