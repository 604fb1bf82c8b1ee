//! The least-squares machinery every GLMsingle model shares (its `glm_estimatemodel` with an
//! assumed HRF): per run, nuisance regressors (polynomials, then extra regressors such as
//! confounds or GLMdenoise's noise components) are projected out of data and design; the fit is
//! over all runs together; R² compares the prediction and the data with the polynomials only
//! removed, as GLMsingle does (so R² is not the normal equations' when extras are present).
//!
//! Shapes: a run's data (n_times × voxels) and design (n_times × k), row-major slices; projected
//! runs are faer matrices (n_times × k or n_times × c for a chunk of c voxels).

use faer::linalg::matmul::matmul;
use faer::linalg::solvers::{Llt, Solve};
use faer::{Accum, Mat, Side};

/// Orthonormal columns (each `n` long) spanning the polynomials of degrees 0…`degree` of
/// linspace(−1, 1, n), the span of GLMsingle's `make_polynomial_matrix`.
pub fn polynomial_basis(n: usize, degree: usize) -> Vec<Vec<f64>> {
    let x: Vec<f64> = (0..n)
        .map(|t| {
            if n > 1 {
                2.0 * t as f64 / (n - 1) as f64 - 1.0
            } else {
                0.0
            }
        })
        .collect();
    let powers = (0..=degree.min(n.saturating_sub(1)))
        .map(|d| x.iter().map(|&xi| xi.powi(d as i32)).collect())
        .collect();
    orthonormalise(&[], powers)
}

/// `columns` made orthonormal to `basis` and to each other (Gram–Schmidt, twice for rounding);
/// a column (nearly) in the span of the ones before it is dropped, as a pseudo-inverse would.
fn orthonormalise(basis: &[Vec<f64>], columns: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
    let mut out: Vec<Vec<f64>> = Vec::new();
    for mut v in columns {
        let before = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        for _ in 0..2 {
            for q in basis.iter().chain(&out) {
                let dot: f64 = v.iter().zip(q).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(q).for_each(|(a, b)| *a -= dot * b);
            }
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 1e-10 * before.max(1e-300) && norm > 0.0 {
            v.iter_mut().for_each(|a| *a /= norm);
            out.push(v);
        }
    }
    out
}

/// Removes the span of the orthonormal `basis` from every column of `m` (n × k, row-major).
pub(crate) fn project_out(basis: &[Vec<f64>], m: &mut [f64], k: usize) {
    let n = m.len() / k.max(1);
    let mut dots = vec![0.0; k];
    for q in basis {
        dots.iter_mut().for_each(|d| *d = 0.0);
        for t in 0..n {
            for (j, dot) in dots.iter_mut().enumerate() {
                *dot += q[t] * m[t * k + j];
            }
        }
        for t in 0..n {
            for (j, dot) in dots.iter().enumerate() {
                m[t * k + j] -= q[t] * dot;
            }
        }
    }
}

/// One run's nuisance regressors, orthonormal: its polynomials, and the extra regressors made
/// orthogonal to them (GLMsingle projects both out with one projection matrix).
#[derive(Debug, Clone)]
pub struct Nuisance {
    pub poly: Vec<Vec<f64>>,
    pub extra: Vec<Vec<f64>>,
}

impl Nuisance {
    /// Polynomials of degrees 0…`degree` over `n` volumes and the `extra` columns (each `n`).
    pub fn new(n: usize, degree: usize, extra: Vec<Vec<f64>>) -> Nuisance {
        let poly = polynomial_basis(n, degree);
        let extra = orthonormalise(&poly, extra);
        Nuisance { poly, extra }
    }
}

/// Whether any run has extra regressors: then fit and R² see differently projected data.
fn any_extra(nuisances: &[Nuisance]) -> bool {
    nuisances.iter().any(|n| !n.extra.is_empty())
}

fn to_mat(m: &[f64], n: usize, k: usize) -> Mat<f64> {
    Mat::from_fn(n, k, |t, j| m[t * k + j])
}

/// Σ_runs aᵀ b (a: n × k, b: n × c per run) → k × c.
fn cross(a: &[Mat<f64>], b: &[Mat<f64>]) -> Mat<f64> {
    let (k, c) = (a[0].ncols(), b[0].ncols());
    let mut out = Mat::<f64>::zeros(k, c);
    let par = faer::get_global_parallelism();
    for (x, y) in a.iter().zip(b) {
        matmul(
            out.as_mut(),
            Accum::Add,
            x.transpose(),
            y.as_ref(),
            1.0,
            par,
        );
    }
    out
}

/// A design ready for any voxels: per run the HRF-convolved design with the polynomials removed
/// (`poly`) and, where extras exist, with polynomials and extras removed (`fit`); their Gram
/// matrices; the regressors ever on (`live`: GLMsingle gives the others a 0 beta).
pub(crate) struct PreparedDesign {
    poly: Vec<Mat<f64>>,
    fit: Option<Vec<Mat<f64>>>,
    gram_fit: Mat<f64>,
    gram_poly: Option<Mat<f64>>,
    pub live: Vec<usize>,
    pub k: usize,
}

impl PreparedDesign {
    /// `designs[p]`: run p's convolved design (n_p × k, row-major).
    pub fn new(designs: &[Vec<f64>], k: usize, nuisances: &[Nuisance]) -> PreparedDesign {
        let extras = any_extra(nuisances);
        let mut poly = Vec::with_capacity(designs.len());
        let mut fit = Vec::with_capacity(designs.len());
        for (design, nuisance) in designs.iter().zip(nuisances) {
            let n = design.len() / k;
            let mut x = design.clone();
            project_out(&nuisance.poly, &mut x, k);
            poly.push(to_mat(&x, n, k));
            if extras {
                project_out(&nuisance.extra, &mut x, k);
                fit.push(to_mat(&x, n, k));
            }
        }
        let fit = extras.then_some(fit);
        let gram_fit = cross(
            fit.as_deref().unwrap_or(&poly),
            fit.as_deref().unwrap_or(&poly),
        );
        let gram_poly = extras.then(|| cross(&poly, &poly));
        let live = (0..k).filter(|&j| gram_fit[(j, j)] > 0.0).collect();
        PreparedDesign {
            poly,
            fit,
            gram_fit,
            gram_poly,
            live,
            k,
        }
    }

    fn fit_runs(&self) -> &[Mat<f64>] {
        self.fit.as_deref().unwrap_or(&self.poly)
    }

    fn live_gram(&self) -> Mat<f64> {
        let live = &self.live;
        Mat::from_fn(live.len(), live.len(), |a, b| {
            self.gram_fit[(live[a], live[b])]
        })
    }

    /// The Cholesky factor of the live regressors' Gram matrix; None when singular.
    pub fn cholesky(&self) -> Option<Llt<f64>> {
        self.live_gram().llt(Side::Lower).ok()
    }

    /// Eigenvalues and eigenvectors (columns) of the live regressors' Gram matrix; None when
    /// the decomposition fails.
    pub fn spectrum(&self) -> Option<Spectrum> {
        let evd = self.live_gram().self_adjoint_eigen(Side::Lower).ok()?;
        let s = evd.S().column_vector();
        Some(Spectrum {
            values: (0..s.nrows()).map(|i| s[i].max(0.0)).collect(),
            vectors: evd.U().to_owned(),
        })
    }

    /// Σ_runs (design fitted)ᵀ (chunk fitted): k × c.
    pub fn cross_fit(&self, chunk: &ProjectedChunk) -> Mat<f64> {
        cross(self.fit_runs(), chunk.fit_runs())
    }

    /// The R² of each voxel in percent for `betas` (k × c, the data's units), over all runs.
    /// `cross_fit` is [`Self::cross_fit`] of the same chunk.
    pub fn r2(&self, chunk: &ProjectedChunk, betas: &Mat<f64>, cross_fit: &Mat<f64>) -> Vec<f64> {
        let (cross_poly, gram) = match (&self.gram_poly, &chunk.fit) {
            (Some(gram), Some(_)) => (cross(&self.poly, &chunk.poly), gram),
            _ => (cross_fit.clone(), &self.gram_fit),
        };
        let mut gb = Mat::<f64>::zeros(self.k, betas.ncols());
        let par = faer::get_global_parallelism();
        matmul(
            gb.as_mut(),
            Accum::Replace,
            gram.as_ref(),
            betas.as_ref(),
            1.0,
            par,
        );
        (0..betas.ncols())
            .map(|v| {
                let (mut linear, mut quadratic) = (0.0, 0.0);
                for j in 0..self.k {
                    linear += betas[(j, v)] * cross_poly[(j, v)];
                    quadratic += betas[(j, v)] * gb[(j, v)];
                }
                r2_percent(chunk.total[v], chunk.total[v] - 2.0 * linear + quadratic)
            })
            .collect()
    }
}

/// 100 · (1 − residual / total); NaN for a voxel without variance (GLMsingle's zerodiv).
pub(crate) fn r2_percent(total: f64, residual: f64) -> f64 {
    if total == 0.0 {
        f64::NAN
    } else {
        100.0 * (1.0 - residual / total)
    }
}

/// A Gram matrix's eigenvalues (clamped at 0) and eigenvectors (columns), any order.
pub struct Spectrum {
    pub values: Vec<f64>,
    pub vectors: Mat<f64>,
}

/// A chunk of voxels' recording, per run with the polynomials removed (`poly`, n_p × c) and,
/// where extras exist, with polynomials and extras removed (`fit`); each voxel's sum of
/// squares over all runs of `poly` (R²'s denominator).
pub(crate) struct ProjectedChunk {
    poly: Vec<Mat<f64>>,
    fit: Option<Vec<Mat<f64>>>,
    pub total: Vec<f64>,
}

impl ProjectedChunk {
    fn fit_runs(&self) -> &[Mat<f64>] {
        self.fit.as_deref().unwrap_or(&self.poly)
    }

    pub fn voxels(&self) -> usize {
        self.total.len()
    }
}

/// The voxels `which` of every run (data n_p × `voxels`, row-major) with the polynomials
/// removed, as row-major (n_p × c) per run.
pub(crate) fn gather_without_polynomials(
    data: &[&[f32]],
    nuisances: &[Nuisance],
    voxels: usize,
    which: &[usize],
) -> Vec<Vec<f64>> {
    data.iter()
        .zip(nuisances)
        .map(|(run, nuisance)| {
            let mut y: Vec<f64> = run
                .chunks_exact(voxels)
                .flat_map(|row| which.iter().map(|&v| row[v] as f64))
                .collect();
            project_out(&nuisance.poly, &mut y, which.len());
            y
        })
        .collect()
}

/// A chunk ready for fitting from its polynomial-free runs (see
/// [`gather_without_polynomials`]; the same polynomials as `nuisances`), the extras of
/// `nuisances` removed too.
pub(crate) fn project_chunk(
    without_poly: &[Vec<f64>],
    nuisances: &[Nuisance],
    c: usize,
) -> ProjectedChunk {
    let mut total = vec![0.0; c];
    for y in without_poly {
        for row in y.chunks_exact(c.max(1)) {
            total.iter_mut().zip(row).for_each(|(s, v)| *s += v * v);
        }
    }
    let poly: Vec<Mat<f64>> = without_poly
        .iter()
        .map(|y| to_mat(y, y.len() / c.max(1), c))
        .collect();
    let fit = any_extra(nuisances).then(|| {
        without_poly
            .iter()
            .zip(nuisances)
            .map(|(y, nuisance)| {
                let mut y = y.clone();
                project_out(&nuisance.extra, &mut y, c);
                to_mat(&y, y.len() / c.max(1), c)
            })
            .collect()
    });
    ProjectedChunk { poly, fit, total }
}

/// Ordinary least squares of a chunk on a design: betas (k × c, the data's units; 0 for
/// regressors never on), and the cross products they came from.
pub(crate) fn ols(
    design: &PreparedDesign,
    factor: &Llt<f64>,
    chunk: &ProjectedChunk,
) -> (Mat<f64>, Mat<f64>) {
    let cross_fit = design.cross_fit(chunk);
    let live = &design.live;
    let mut solved = Mat::from_fn(live.len(), chunk.voxels(), |a, v| cross_fit[(live[a], v)]);
    factor.solve_in_place(solved.as_mut());
    let mut betas = Mat::<f64>::zeros(design.k, chunk.voxels());
    for (a, &j) in live.iter().enumerate() {
        for v in 0..chunk.voxels() {
            betas[(j, v)] = solved[(a, v)];
        }
    }
    (betas, cross_fit)
}

/// R² of OLS betas: the normal equations give RSS = ‖y‖² − βᵀXᵀy when no extras are
/// projected out; otherwise the general form.
pub(crate) fn ols_r2(
    design: &PreparedDesign,
    chunk: &ProjectedChunk,
    betas: &Mat<f64>,
    cross_fit: &Mat<f64>,
) -> Vec<f64> {
    if chunk.fit.is_some() {
        return design.r2(chunk, betas, cross_fit);
    }
    (0..chunk.voxels())
        .map(|v| {
            let explained: f64 = (0..design.k)
                .map(|j| betas[(j, v)] * cross_fit[(j, v)])
                .sum();
            r2_percent(chunk.total[v], chunk.total[v] - explained)
        })
        .collect()
}
