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

use brainrecon_core::signal::orthonormalise;
/// The polynomial drift basis lives in the ground crate, shared with the run preparation.
pub use brainrecon_core::signal::{degree_for_seconds, polynomial_basis};

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
    /// Orthonormal columns (each the run's length) spanning the polynomials of degrees 0…d.
    pub poly: Vec<Vec<f64>>,
    /// The extra regressors made orthonormal to `poly` and to each other (dependent ones
    /// dropped).
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
pub(crate) fn any_extra(nuisances: &[Nuisance]) -> bool {
    nuisances.iter().any(|n| !n.extra.is_empty())
}

/// Σ a·b with four running sums, which the compiler can keep in vector registers (one sum
/// is a chain of dependent additions).
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut sums = [0.0; 4];
    let (head_a, tail_a) = a.split_at(n - n % 4);
    let (head_b, tail_b) = b.split_at(n - n % 4);
    for (x, y) in head_a.chunks_exact(4).zip(head_b.chunks_exact(4)) {
        for l in 0..4 {
            sums[l] += x[l] * y[l];
        }
    }
    let tail: f64 = tail_a.iter().zip(tail_b).map(|(x, y)| x * y).sum();
    (sums[0] + sums[1]) + (sums[2] + sums[3]) + tail
}

/// A regressor's nonzero stretch in one run: `values` from volume `start` on.
#[derive(Debug, Clone)]
struct Segment {
    run: usize,
    start: usize,
    values: Vec<f64>,
}

/// The segments of every column of the runs' designs (`designs[p]`: n_p × k, row-major).
/// An HRF-convolved trial is nonzero for the HRF's length only, so products with it cost the
/// HRF's length instead of the run's.
fn sparse_columns(designs: &[Vec<f64>], k: usize) -> Vec<Vec<Segment>> {
    let mut columns = vec![Vec::new(); k];
    for (run, design) in designs.iter().enumerate() {
        let n = design.len() / k.max(1);
        for (j, column) in columns.iter_mut().enumerate() {
            let nonzero = |t: &usize| design[t * k + j] != 0.0;
            let Some(first) = (0..n).find(nonzero) else {
                continue;
            };
            let last = (0..n).rev().find(nonzero).unwrap_or(first);
            column.push(Segment {
                run,
                start: first,
                values: (first..=last).map(|t| design[t * k + j]).collect(),
            });
        }
    }
    columns
}

/// XᵀX of the raw design from the overlapping segments (k × k).
fn raw_gram(columns: &[Vec<Segment>]) -> Mat<f64> {
    let k = columns.len();
    let mut gram = Mat::<f64>::zeros(k, k);
    let mut all: Vec<(usize, &Segment)> = columns
        .iter()
        .enumerate()
        .flat_map(|(j, segments)| segments.iter().map(move |s| (j, s)))
        .collect();
    all.sort_by_key(|(_, s)| (s.run, s.start));
    for (a, &(i, si)) in all.iter().enumerate() {
        let end = si.start + si.values.len();
        let overlapping = all[a..]
            .iter()
            .take_while(|(_, s)| s.run == si.run && s.start < end);
        for (b, &(j, sj)) in overlapping.enumerate() {
            let offset = sj.start - si.start;
            let dot = dot(&si.values[offset..], &sj.values);
            gram[(i, j)] += dot;
            if b > 0 {
                gram[(j, i)] += dot;
            }
        }
    }
    gram
}

/// Per run, the coefficients of every column on the orthonormal `basis` of that run
/// (m × k): qᵀx over each column's segment.
fn basis_coefficients(columns: &[Vec<Segment>], basis: &[Vec<f64>], run: usize) -> Mat<f64> {
    let mut b = Mat::<f64>::zeros(basis.len(), columns.len());
    for (j, segments) in columns.iter().enumerate() {
        for s in segments.iter().filter(|s| s.run == run) {
            for (q, vector) in basis.iter().enumerate() {
                b[(q, j)] += dot(&vector[s.start..s.start + s.values.len()], &s.values);
            }
        }
    }
    b
}

/// `gram` − Σ_runs Bᵀ B, B the columns' coefficients on each run's basis: the Gram matrix of
/// the design with that basis projected out (P X)ᵀ(P X) = XᵀX − (QᵀX)ᵀ(QᵀX).
fn remove_basis(gram: &mut Mat<f64>, columns: &[Vec<Segment>], bases: &[&[Vec<f64>]]) {
    for (run, basis) in bases.iter().enumerate() {
        if basis.is_empty() {
            continue;
        }
        let b = basis_coefficients(columns, basis, run);
        matmul(
            gram.as_mut(),
            Accum::Add,
            b.transpose(),
            b.as_ref(),
            -1.0,
            faer::Par::Seq,
        );
    }
}

/// Σ_runs Xᵀ Y for the sparse columns X and a chunk's runs Y (row-major n_p × c): k × c.
/// Since the projections are symmetric and idempotent, (P X)ᵀ(P Y) = Xᵀ(P Y): the raw design
/// against the projected data. Each regressor's row is a sum of the data's rows it spans,
/// weighted by its values (contiguous over the voxels); regressors are split over threads.
fn sparse_cross(columns: &[Vec<Segment>], runs: &[Vec<f64>], c: usize) -> Mat<f64> {
    let k = columns.len();
    let mut rows = vec![0.0; k * c];
    if c == 0 {
        return Mat::zeros(k, 0);
    }
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let per = k.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (block, out) in rows.chunks_mut(per * c).enumerate() {
            scope.spawn(move || {
                for (r, row) in out.chunks_exact_mut(c).enumerate() {
                    for s in &columns[block * per + r] {
                        for (t, &x) in s.values.iter().enumerate() {
                            let y = &runs[s.run][(s.start + t) * c..(s.start + t + 1) * c];
                            row.iter_mut().zip(y).for_each(|(o, y)| *o += x * y);
                        }
                    }
                }
            });
        }
    });
    Mat::from_fn(k, c, |j, v| rows[j * c + v])
}

/// A design ready for any voxels: its columns' nonzero segments, the Gram matrix of the design
/// with polynomials and extras projected out (`gram_fit`) and, where extras exist, with the
/// polynomials only (`gram_poly`, for R²); the regressors ever on (`live`: GLMsingle gives the
/// others a 0 beta).
pub(crate) struct PreparedDesign {
    columns: Vec<Vec<Segment>>,
    gram_fit: Mat<f64>,
    gram_poly: Option<Mat<f64>>,
    pub live: Vec<usize>,
    pub k: usize,
}

impl PreparedDesign {
    /// `designs[p]`: run p's convolved design (n_p × k, row-major).
    pub fn new(designs: &[Vec<f64>], k: usize, nuisances: &[Nuisance]) -> PreparedDesign {
        let columns = sparse_columns(designs, k);
        let mut gram = raw_gram(&columns);
        let polys: Vec<&[Vec<f64>]> = nuisances.iter().map(|n| n.poly.as_slice()).collect();
        remove_basis(&mut gram, &columns, &polys);
        let base = PreparedDesign {
            columns,
            gram_fit: gram,
            gram_poly: None,
            live: Vec::new(),
            k,
        };
        base.with_extras(nuisances)
    }

    /// The same design with `nuisances`' extras projected out too (their polynomials must be
    /// those this design was made with, and this design must have no extras of its own).
    pub fn with_extras(&self, nuisances: &[Nuisance]) -> PreparedDesign {
        let poly_gram = self.gram_poly.as_ref().unwrap_or(&self.gram_fit);
        let mut gram = poly_gram.clone();
        let extras: Vec<&[Vec<f64>]> = nuisances.iter().map(|n| n.extra.as_slice()).collect();
        remove_basis(&mut gram, &self.columns, &extras);
        // A column the nuisances absorb entirely has (rounding) zero variance left.
        let live = (0..self.k)
            .filter(|&j| {
                let scale = raw_gram_diagonal(&self.columns[j]);
                scale > 0.0 && gram[(j, j)] > 1e-12 * scale
            })
            .collect();
        PreparedDesign {
            columns: self.columns.clone(),
            gram_fit: gram,
            gram_poly: any_extra(nuisances).then(|| poly_gram.clone()),
            live,
            k: self.k,
        }
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
        sparse_cross(&self.columns, chunk.fit_runs(), chunk.voxels())
    }

    /// The R² of each voxel in percent for `betas` (k × c, the data's units), over all runs.
    /// `cross_fit` is [`Self::cross_fit`] of the same chunk.
    pub fn r2(&self, chunk: &ProjectedChunk, betas: &Mat<f64>, cross_fit: &Mat<f64>) -> Vec<f64> {
        let (cross_poly, gram) = match (&self.gram_poly, &chunk.fit) {
            (Some(gram), Some(_)) => (
                sparse_cross(&self.columns, &chunk.poly, chunk.voxels()),
                gram,
            ),
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

/// ‖x‖² of a column over its segments.
fn raw_gram_diagonal(segments: &[Segment]) -> f64 {
    segments
        .iter()
        .map(|s| s.values.iter().map(|v| v * v).sum::<f64>())
        .sum()
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
    /// Eigenvalues, `k`.
    pub values: Vec<f64>,
    /// Eigenvectors as columns, `k × k`, in the order of `values`.
    pub vectors: Mat<f64>,
}

/// A chunk of voxels' recording, per run with the polynomials removed (`poly`, n_p × c) and,
/// where extras exist, with polynomials and extras removed (`fit`); each voxel's sum of
/// squares over all runs of `poly` (R²'s denominator).
pub(crate) struct ProjectedChunk {
    /// Row-major (n_p × c) per run.
    poly: Vec<Vec<f64>>,
    fit: Option<Vec<Vec<f64>>>,
    pub total: Vec<f64>,
}

impl ProjectedChunk {
    fn fit_runs(&self) -> &[Vec<f64>] {
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
    let fit = any_extra(nuisances).then(|| {
        without_poly
            .iter()
            .zip(nuisances)
            .map(|(y, nuisance)| {
                let mut y = y.clone();
                project_out(&nuisance.extra, &mut y, c);
                y
            })
            .collect()
    });
    ProjectedChunk {
        poly: without_poly.to_vec(),
        fit,
        total,
    }
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
    (expand_rows(&solved, live, design.k), cross_fit)
}

/// `m`'s rows (one per live regressor) placed at rows `live` of a k-row matrix of zeros.
pub(crate) fn expand_rows(m: &Mat<f64>, live: &[usize], k: usize) -> Mat<f64> {
    let mut full = Mat::<f64>::zeros(k, m.ncols());
    for v in 0..m.ncols() {
        for (a, &j) in live.iter().enumerate() {
            full[(j, v)] = m[(a, v)];
        }
    }
    full
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
