//! The shared space of [`crate::shared_space`] fitted from row blocks, so that a group at NSD's
//! full size (7 subjects × ~27,000 trials × 15,724 voxels → 75,520 targets) fits in a bounded
//! memory: each subject's betas and targets are read block by block (from disk, f32 → f64) on
//! every pass, never held whole.
//!
//! Per subject, one pass over the betas forms the Gram matrix on the smaller side (`X Xᵀ`,
//! n × n, when v ≥ n; else `XᵀX`, v × v) and one eigendecomposition gives a [`BlockSpectrum`];
//! that one spectrum serves the GCV choice of α over the whole grid ([`gcv_alpha_blocks`]) and
//! the fit ([`fit_shared_space_blocks`]) for every target block. What is held between passes:
//! the spectra (Σ_s min(n_s, v_s)² numbers), the d × l probes of the randomized SVD and the
//! n_s × l products; [`peak_bytes`] adds them up from the sizes alone.
//!
//! The result equals [`crate::shared_space::fit_shared_space`] on the same data up to rounding:
//! the Gram sums its row blocks one after another, and in the primal case (n > v) the fit
//! multiplies `X (V B)` where the in-memory path multiplies `(X V) B`, so the summation order
//! differs. In the dual case with the whole subject in one block every product is the same
//! call on the same matrices, and the result is the same to the bit.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::shared_space::{
    check_alpha, fix_signs, gaussian, gcv_choose, gram_lower, gram_lower_into, mul, orthonormalise,
    par, psd_eigen, scale_rows, top_eigen, SharedSpace, SharedSpaceOptions,
};
use crate::AlignError;

/// A matrix handed out in blocks of rows, as a fit reads a subject's betas or targets from
/// disk.
pub trait RowBlocks {
    /// What reading a block can fail with (a file missing or malformed); an [`AlignError`]
    /// of the fit converts into it.
    type Error: From<AlignError>;
    /// Rows of the whole matrix.
    fn rows(&self) -> usize;
    /// Columns of the whole matrix.
    fn cols(&self) -> usize;
    /// Rows `start .. start + len` as a `len × cols` matrix, as the fit takes them (betas
    /// centred; targets centred and scaled). The same range gives the same values every time.
    fn block(&self, start: usize, len: usize) -> Result<Mat<f64>, Self::Error>;
}

/// A matrix in memory as [`RowBlocks`] (tests, benchmarks, small groups).
pub struct MatRows<'a>(pub MatRef<'a, f64>);

impl RowBlocks for MatRows<'_> {
    type Error = AlignError;
    fn rows(&self) -> usize {
        self.0.nrows()
    }
    fn cols(&self) -> usize {
        self.0.ncols()
    }
    fn block(&self, start: usize, len: usize) -> Result<Mat<f64>, AlignError> {
        Ok(self.0.subrows(start, len).to_owned())
    }
}

/// `(start, len)` of the row blocks of `rows` rows, `block_rows` at a time.
fn ranges(rows: usize, block_rows: usize) -> impl Iterator<Item = (usize, usize)> {
    let step = block_rows.max(1);
    (0..rows)
        .step_by(step)
        .map(move |s| (s, step.min(rows - s)))
}

fn check_block<E: From<AlignError>>(m: &Mat<f64>, start: usize, what: &str) -> Result<(), E> {
    for j in 0..m.ncols() {
        for i in 0..m.nrows() {
            if !m[(i, j)].is_finite() {
                return Err(AlignError::Input(format!(
                    "{what} holds a non-finite value at row {}, column {j}",
                    start + i
                ))
                .into());
            }
        }
    }
    Ok(())
}

fn read<R: RowBlocks + ?Sized>(
    r: &R,
    start: usize,
    len: usize,
    what: &str,
) -> Result<Mat<f64>, R::Error> {
    let m = r.block(start, len)?;
    if m.nrows() != len || m.ncols() != r.cols() {
        return Err(AlignError::Shape(format!(
            "{what}: a block of rows {start}..{} came back {} × {}, expected {len} × {}",
            start + len,
            m.nrows(),
            m.ncols(),
            r.cols()
        ))
        .into());
    }
    check_block(&m, start, what)?;
    Ok(m)
}

/// `out (+)= a · b`: replaces on the first block, adds after.
fn mul_into(out: &mut Mat<f64>, first: bool, a: MatRef<'_, f64>, b: MatRef<'_, f64>) {
    let accum = if first { Accum::Replace } else { Accum::Add };
    matmul(out.as_mut(), accum, a, b, 1.0, par());
}

/// One subject's betas decomposed once on their smaller side, from row blocks.
///
/// Dual (v ≥ n): `X Xᵀ = U Λ Uᵀ`, `vectors` = U (n × n), `left` = U. Primal (v < n):
/// `XᵀX = V Λ Vᵀ`, `vectors` = V (v × v), `left` = X V, which is never formed: products with
/// it go through X's blocks. Memory: min(n, v)² f64.
pub struct BlockSpectrum {
    vectors: Mat<f64>,
    lambda: Vec<f64>,
    dual: bool,
    rows: usize,
    cols: usize,
}

impl BlockSpectrum {
    /// Reads `x` (n × v, columns centred) in blocks of `block_rows` rows and decomposes it.
    /// The dual Gram reads block J once for every block I ≥ J.
    ///
    /// Errors: no rows; a block of the wrong shape or with a non-finite value; a failed
    /// eigendecomposition; and whatever reading a block gives.
    pub fn from_blocks<R: RowBlocks + ?Sized>(x: &R, block_rows: usize) -> Result<Self, R::Error> {
        let (n, v) = (x.rows(), x.cols());
        if n == 0 || v == 0 {
            return Err(AlignError::Shape(format!("betas of {n} rows × {v} voxels")).into());
        }
        let dual = v >= n;
        let gram = if dual {
            let mut gram = Mat::<f64>::zeros(n, n);
            for (i0, il) in ranges(n, block_rows) {
                let xi = read(x, i0, il, "X")?;
                if il == n {
                    // One block: the same call as the in-memory path.
                    gram = gram_lower(xi.as_ref());
                    break;
                }
                for (j0, jl) in ranges(n, block_rows).take_while(|&(j0, _)| j0 <= i0) {
                    if j0 == i0 {
                        let diag = gram_lower(xi.as_ref());
                        gram.as_mut().submatrix_mut(i0, i0, il, il).copy_from(&diag);
                    } else {
                        let xj = read(x, j0, jl, "X")?;
                        let off = mul(xi.as_ref(), xj.transpose());
                        gram.as_mut().submatrix_mut(i0, j0, il, jl).copy_from(&off);
                    }
                }
            }
            gram
        } else {
            let mut gram = Mat::<f64>::zeros(v, v);
            for (index, (i0, il)) in ranges(n, block_rows).enumerate() {
                let xi = read(x, i0, il, "X")?;
                let accum = if index == 0 {
                    Accum::Replace
                } else {
                    Accum::Add
                };
                gram_lower_into(gram.as_mut(), xi.transpose(), accum);
            }
            gram
        };
        let (lambda, vectors) = psd_eigen(gram, "X Xᵀ")?;
        Ok(Self {
            vectors,
            lambda,
            dual,
            rows: n,
            cols: v,
        })
    }

    /// A spectrum from its parts, as [`BlockSpectrum::eigenvectors`],
    /// [`BlockSpectrum::eigenvalues`] and [`BlockSpectrum::shape`] gave them (a statistics file
    /// written by one process and read by another): the same parts give the same fit, to the
    /// bit. The side is the one `from_blocks` takes: dual when `cols ≥ rows`.
    ///
    /// Errors ([`AlignError::Shape`]): no rows or columns, `vectors` not r × r or `eigenvalues`
    /// not r long with r = min(rows, cols); ([`AlignError::Input`]) a non-finite value or a
    /// negative eigenvalue.
    pub fn from_parts(
        vectors: Mat<f64>,
        eigenvalues: Vec<f64>,
        rows: usize,
        cols: usize,
    ) -> Result<Self, AlignError> {
        let r = rows.min(cols);
        if r == 0 {
            return Err(AlignError::Shape(format!(
                "a spectrum of {rows} rows × {cols} columns"
            )));
        }
        if vectors.nrows() != r || vectors.ncols() != r || eigenvalues.len() != r {
            return Err(AlignError::Shape(format!(
                "the spectrum of {rows} × {cols} betas has {r} × {r} eigenvectors and {r} \
                 eigenvalues; found {} × {} and {}",
                vectors.nrows(),
                vectors.ncols(),
                eigenvalues.len()
            )));
        }
        if eigenvalues.iter().any(|l| !(l.is_finite() && *l >= 0.0)) {
            return Err(AlignError::Input(
                "eigenvalues: expected finite and non-negative".into(),
            ));
        }
        check_block::<AlignError>(&vectors, 0, "eigenvectors")?;
        Ok(Self {
            vectors,
            lambda: eigenvalues,
            dual: cols >= rows,
            rows,
            cols,
        })
    }

    /// The eigenvectors, r × r with r = min(n, v), one per column in the order of
    /// [`BlockSpectrum::eigenvalues`]: U of `X Xᵀ` (dual) or V of `XᵀX` (primal).
    pub fn eigenvectors(&self) -> MatRef<'_, f64> {
        self.vectors.as_ref()
    }

    /// (rows n, columns v) of the betas it was taken of.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Whether the decomposition is on the rows' side (v ≥ n).
    pub fn is_dual(&self) -> bool {
        self.dual
    }

    /// The eigenvalues λ (ascending, clipped at 0): min(n, v) of them.
    pub fn eigenvalues(&self) -> &[f64] {
        &self.lambda
    }

    fn check_x<R: RowBlocks + ?Sized>(&self, x: &R) -> Result<(), R::Error> {
        if x.rows() != self.rows || x.cols() != self.cols {
            return Err(AlignError::Shape(format!(
                "X is {} × {}, its spectrum was taken of {} × {}",
                x.rows(),
                x.cols(),
                self.rows,
                self.cols
            ))
            .into());
        }
        Ok(())
    }

    /// `leftᵀ T` (r × c) for T (n × c) handed out by `t`: dual `Uᵀ T`; primal `Vᵀ (Xᵀ T)`,
    /// reading X's blocks beside T's.
    fn left_t_times<R, T>(
        &self,
        x: &R,
        t: &mut T,
        cols: usize,
        block_rows: usize,
    ) -> Result<Mat<f64>, R::Error>
    where
        R: RowBlocks + ?Sized,
        T: FnMut(usize, usize) -> Result<Mat<f64>, R::Error>,
    {
        let n = self.rows;
        if self.dual {
            let mut out = Mat::<f64>::zeros(n, cols);
            for (index, (i0, il)) in ranges(n, block_rows).enumerate() {
                let ti = t(i0, il)?;
                mul_into(
                    &mut out,
                    index == 0,
                    self.vectors.as_ref().subrows(i0, il).transpose(),
                    ti.as_ref(),
                );
            }
            Ok(out)
        } else {
            let mut xt = Mat::<f64>::zeros(self.cols, cols);
            for (index, (i0, il)) in ranges(n, block_rows).enumerate() {
                let ti = t(i0, il)?;
                let xi = read(x, i0, il, "X")?;
                mul_into(&mut xt, index == 0, xi.transpose(), ti.as_ref());
            }
            Ok(mul(self.vectors.transpose(), xt.as_ref()))
        }
    }

    /// Calls `each(start, len, left_rows · b)` for every row block: dual `U[rows] b`,
    /// primal `X[rows] (V b)`.
    fn left_times<R, F>(
        &self,
        x: &R,
        b: MatRef<'_, f64>,
        block_rows: usize,
        mut each: F,
    ) -> Result<(), R::Error>
    where
        R: RowBlocks + ?Sized,
        F: FnMut(usize, usize, Mat<f64>) -> Result<(), R::Error>,
    {
        if self.dual {
            for (i0, il) in ranges(self.rows, block_rows) {
                each(i0, il, mul(self.vectors.as_ref().subrows(i0, il), b))?;
            }
        } else {
            let vb = mul(self.vectors.as_ref(), b);
            for (i0, il) in ranges(self.rows, block_rows) {
                let xi = read(x, i0, il, "X")?;
                each(i0, il, mul(xi.as_ref(), vb.as_ref()))?;
            }
        }
        Ok(())
    }

    /// Row weights w with `Z_s = diag(w) leftᵀ Y_s` (as the in-memory fit).
    fn z_weights(&self, alpha: f64) -> Vec<f64> {
        self.lambda
            .iter()
            .map(|&l| {
                if self.dual {
                    (l / (l + alpha)).sqrt()
                } else {
                    1.0 / (l + alpha).sqrt()
                }
            })
            .collect()
    }

    /// Ridge coefficients (v × k) of the targets `t` (n × k): `Xᵀ (XXᵀ + αI)⁻¹ t`.
    fn ridge<R: RowBlocks + ?Sized>(
        &self,
        x: &R,
        t: &Mat<f64>,
        alpha: f64,
        block_rows: usize,
    ) -> Result<Mat<f64>, R::Error> {
        let mut c = self.left_t_times(
            x,
            &mut |s, l| Ok(t.as_ref().subrows(s, l).to_owned()),
            t.ncols(),
            if self.dual { self.rows } else { block_rows },
        )?;
        for (i, &l) in self.lambda.iter().enumerate() {
            let w = 1.0 / (l + alpha);
            for j in 0..c.ncols() {
                c[(i, j)] *= w;
            }
        }
        if self.dual {
            let uc = mul(self.vectors.as_ref(), c.as_ref());
            let mut out = Mat::<f64>::zeros(self.cols, c.ncols());
            for (index, (i0, il)) in ranges(self.rows, block_rows).enumerate() {
                let xi = read(x, i0, il, "X")?;
                mul_into(
                    &mut out,
                    index == 0,
                    xi.transpose(),
                    uc.as_ref().subrows(i0, il),
                );
            }
            Ok(out)
        } else {
            Ok(mul(self.vectors.as_ref(), c.as_ref()))
        }
    }
}

/// [`crate::shared_space::gcv_alpha`] from a subject's spectrum: the α of `grid` that minimises
/// generalised cross-validation for the targets `y` (n × c, centred; a subsample of the
/// columns is enough), reading `y` (and, primal, `x`) in blocks of `block_rows`.
///
/// Errors: fewer than two rows, no targets, shapes that differ from the spectrum's, an empty
/// grid or a non-positive α, non-finite values, and whatever reading a block gives.
pub fn gcv_alpha_blocks<R, Y>(
    spectrum: &BlockSpectrum,
    x: &R,
    y: &Y,
    grid: &[f64],
    block_rows: usize,
) -> Result<f64, R::Error>
where
    R: RowBlocks + ?Sized,
    Y: RowBlocks<Error = R::Error> + ?Sized,
{
    spectrum.check_x(x)?;
    let n = spectrum.rows;
    if y.rows() != n {
        return Err(AlignError::Shape(format!("X has {n} rows, Y has {}", y.rows())).into());
    }
    if n < 2 || y.cols() == 0 {
        return Err(AlignError::Shape(
            "generalised cross-validation needs at least two rows and one target".into(),
        )
        .into());
    }
    if grid.is_empty() {
        return Err(AlignError::Input("the alpha grid is empty".into()).into());
    }
    for &a in grid {
        check_alpha(a, "every alpha of the grid")?;
    }
    // ‖Y‖² column by column in row order, as the in-memory path sums it.
    let mut column_sums = vec![0.0f64; y.cols()];
    let proj = spectrum.left_t_times(
        x,
        &mut |s, l| {
            let b = read(y, s, l, "Y")?;
            for (j, sum) in column_sums.iter_mut().enumerate() {
                for i in 0..b.nrows() {
                    *sum += b[(i, j)].powi(2);
                }
            }
            Ok(b)
        },
        y.cols(),
        block_rows,
    )?;
    let c: Vec<f64> = (0..proj.nrows())
        .map(|i| (0..proj.ncols()).map(|j| proj[(i, j)].powi(2)).sum())
        .collect();
    let total = if spectrum.dual {
        0.0
    } else {
        column_sums.iter().sum()
    };
    Ok(gcv_choose(
        &spectrum.lambda,
        &c,
        spectrum.dual,
        n as f64,
        y.cols() as f64,
        total,
        grid,
    )?)
}

/// One subject of a streamed fit: its betas, its targets and its spectrum.
pub struct BlockSubject<'a, E> {
    /// Betas, n × v, columns centred.
    pub x: &'a dyn RowBlocks<Error = E>,
    /// Targets, n × d, centred and block-scaled.
    pub y: &'a dyn RowBlocks<Error = E>,
    /// The spectrum of `x` ([`BlockSpectrum::from_blocks`]).
    pub spectrum: &'a BlockSpectrum,
}

/// [`crate::shared_space::fit_shared_space`] from row blocks: the same objective, the same
/// exact or randomized path, the same probes for a seed; blocks of `block_rows` rows.
///
/// Errors: as `fit_shared_space` (counts, shapes, k, α, non-finite values), and whatever
/// reading a block gives.
pub fn fit_shared_space_blocks<E: From<AlignError>>(
    subjects: &[BlockSubject<'_, E>],
    alphas: &[f64],
    opts: &SharedSpaceOptions,
    block_rows: usize,
) -> Result<SharedSpace, E> {
    if subjects.is_empty() {
        return Err(AlignError::Input("no subjects to fit a shared space".into()).into());
    }
    if alphas.len() != subjects.len() {
        return Err(AlignError::Shape(format!(
            "{} subjects and {} alphas: one alpha per subject",
            subjects.len(),
            alphas.len()
        ))
        .into());
    }
    let d = subjects[0].y.cols();
    let mut total_rows = 0;
    for (s, (sub, &alpha)) in subjects.iter().zip(alphas).enumerate() {
        sub.spectrum.check_x(sub.x)?;
        if sub.x.rows() != sub.y.rows() {
            return Err(AlignError::Shape(format!(
                "subject {s}: X has {} rows, Y has {}",
                sub.x.rows(),
                sub.y.rows()
            ))
            .into());
        }
        if sub.y.cols() != d {
            return Err(AlignError::Shape(format!(
                "subject {s} has {} targets, subject 0 has {d}",
                sub.y.cols()
            ))
            .into());
        }
        check_alpha(alpha, &format!("alpha of subject {s}"))?;
        total_rows += sub.x.rows();
    }
    let k = opts.k;
    if k == 0 {
        return Err(AlignError::Input("k must be at least 1".into()).into());
    }
    if k > d {
        return Err(AlignError::Shape(format!("k = {k} is more than the {d} targets")).into());
    }
    if k > total_rows {
        return Err(AlignError::Shape(format!(
            "k = {k} is more than the {total_rows} rows of all subjects"
        ))
        .into());
    }
    let weights: Vec<Vec<f64>> = subjects
        .iter()
        .zip(alphas)
        .map(|(s, &a)| s.spectrum.z_weights(a))
        .collect();
    let (basis, targets, singular_values) = if d <= opts.exact_below {
        exact(subjects, &weights, k, block_rows)?
    } else {
        randomized(subjects, &weights, k, opts, block_rows)?
    };
    let maps = subjects
        .iter()
        .zip(&targets)
        .zip(alphas)
        .map(|((s, t), &a)| s.spectrum.ridge(s.x, t, a, block_rows))
        .collect::<Result<Vec<_>, E>>()?;
    Ok(SharedSpace {
        basis,
        maps,
        alphas: alphas.to_vec(),
        singular_values,
    })
}

/// `Y_s · m` (n × m.cols), read in blocks.
fn y_times<E: From<AlignError>>(
    y: &dyn RowBlocks<Error = E>,
    m: MatRef<'_, f64>,
    block_rows: usize,
) -> Result<Mat<f64>, E> {
    let mut out = Mat::<f64>::zeros(y.rows(), m.ncols());
    for (i0, il) in ranges(y.rows(), block_rows) {
        let yi = read(y, i0, il, "Y")?;
        let part = mul(yi.as_ref(), m);
        out.as_mut().subrows_mut(i0, il).copy_from(&part);
    }
    Ok(out)
}

type Fitted = (Mat<f64>, Vec<Mat<f64>>, Vec<f64>);

/// Exact path: `ZᵀZ` (d × d) summed subject by subject from `leftᵀ Y_s`.
fn exact<E: From<AlignError>>(
    subjects: &[BlockSubject<'_, E>],
    weights: &[Vec<f64>],
    k: usize,
    block_rows: usize,
) -> Result<Fitted, E> {
    let d = subjects[0].y.cols();
    let mut gram = Mat::<f64>::zeros(d, d);
    for (sub, w) in subjects.iter().zip(weights) {
        let mut z =
            sub.spectrum
                .left_t_times(sub.x, &mut |s, l| read(sub.y, s, l, "Y"), d, block_rows)?;
        scale_rows(&mut z, w);
        gram_lower_into(gram.as_mut(), z.transpose(), Accum::Add);
    }
    let (mut p, sv) = top_eigen(&gram, k)?;
    drop(gram);
    fix_signs(&mut p, None);
    let targets = subjects
        .iter()
        .map(|sub| y_times(sub.y, p.as_ref(), block_rows))
        .collect::<Result<Vec<_>, E>>()?;
    Ok((p, targets, sv))
}

/// Randomized path, as the in-memory one (Halko, Martinsson & Tropp 2011 on Zᵀ), each product
/// with Z or Zᵀ one pass over every subject's blocks.
fn randomized<E: From<AlignError>>(
    subjects: &[BlockSubject<'_, E>],
    weights: &[Vec<f64>],
    k: usize,
    opts: &SharedSpaceOptions,
    block_rows: usize,
) -> Result<Fitted, E> {
    let d = subjects[0].y.cols();
    let l = (k + opts.oversample).min(d);
    let total: usize = weights.iter().map(Vec::len).sum();
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);

    // Zᵀ B = Σ_s Y_sᵀ left_s diag(w_s) B_s.
    let z_t_times = |b: &Mat<f64>| -> Result<Mat<f64>, E> {
        let mut out = Mat::<f64>::zeros(d, l);
        let mut at = 0;
        for (sub, w) in subjects.iter().zip(weights) {
            let mut bs = b.as_ref().subrows(at, w.len()).to_owned();
            at += w.len();
            scale_rows(&mut bs, w);
            // Dual: one block of U's rows, as the in-memory path (U is held whole anyway).
            let left_rows = if sub.spectrum.dual {
                sub.spectrum.rows
            } else {
                block_rows
            };
            sub.spectrum
                .left_times(sub.x, bs.as_ref(), left_rows, |i0, il, lb| {
                    for (j0, jl) in ranges(il, block_rows) {
                        let yi = read(sub.y, i0 + j0, jl, "Y")?;
                        matmul(
                            out.as_mut(),
                            Accum::Add,
                            yi.transpose(),
                            lb.as_ref().subrows(j0, jl),
                            1.0,
                            par(),
                        );
                    }
                    Ok(())
                })?;
        }
        Ok(out)
    };
    // Z Q (Σ r_s × l), and each Y_s Q when `keep` (the last pass).
    let z_times = |q: &Mat<f64>, keep: bool| -> Result<(Mat<f64>, Vec<Mat<f64>>), E> {
        let mut out = Mat::<f64>::zeros(total, l);
        let mut yq_all = Vec::new();
        let mut at = 0;
        for (sub, w) in subjects.iter().zip(weights) {
            let yq = y_times(sub.y, q.as_ref(), block_rows)?;
            let rows = if sub.spectrum.dual {
                sub.spectrum.rows
            } else {
                block_rows
            };
            let mut zs = sub.spectrum.left_t_times(
                sub.x,
                &mut |s, len| Ok(yq.as_ref().subrows(s, len).to_owned()),
                l,
                rows,
            )?;
            scale_rows(&mut zs, w);
            out.as_mut().subrows_mut(at, w.len()).copy_from(&zs);
            at += w.len();
            if keep {
                yq_all.push(yq);
            }
        }
        Ok((out, yq_all))
    };

    let probes = gaussian(&mut rng, total, l);
    let mut q = orthonormalise(z_t_times(&probes)?);
    drop(probes);
    for _ in 0..opts.power_iters {
        let (mut b, _) = z_times(&q, false)?;
        drop(q);
        if total >= l {
            b = orthonormalise(b);
        }
        q = orthonormalise(z_t_times(&b)?);
    }
    let (b, yq) = z_times(&q, true)?;
    let (mut w, sv) = top_eigen(&gram_lower(b.transpose()), k)?;
    let mut p = mul(q.as_ref(), w.as_ref());
    fix_signs(&mut p, Some(&mut w));
    let targets = yq.iter().map(|t| mul(t.as_ref(), w.as_ref())).collect();
    Ok((p, targets, sv))
}

/// Sizes of one subject of a streamed fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubjectSize {
    /// Rows n (trials and align images).
    pub rows: usize,
    /// Voxels v.
    pub voxels: usize,
}

/// Peak bytes of [`BlockSpectrum::from_blocks`] for every subject, [`gcv_alpha_blocks`] on
/// `gcv_columns` targets and [`fit_shared_space_blocks`], from the sizes alone, f64 throughout:
/// the spectra held (Σ min(n, v)²), the largest subject's Gram with its eigendecomposition
/// (about 3 r² while it runs), the randomized SVD's d × l probes (three alive at once), the
/// Z products (Σ r × l, two alive), every Y_s Q and Y_s P (Σ n × l, Σ n × k), the maps
/// (Σ v × k), and one block of X and Y with their products. An upper bound of what the fit
/// allocates, not of what the caller holds besides.
pub fn peak_bytes(
    subjects: &[SubjectSize],
    d: usize,
    gcv_columns: usize,
    opts: &SharedSpaceOptions,
    block_rows: usize,
) -> u64 {
    let f = 8u64;
    let r = |s: &SubjectSize| s.rows.min(s.voxels) as u64;
    let held: u64 = subjects.iter().map(|s| r(s) * r(s)).sum();
    let largest = subjects.iter().map(r).max().unwrap_or(0);
    let largest_v = subjects.iter().map(|s| s.voxels).max().unwrap_or(0) as u64;
    let b = block_rows as u64;
    let (d, k) = (d as u64, opts.k as u64);
    let l = (k + opts.oversample as u64).min(d);
    let sum_r: u64 = subjects.iter().map(r).sum();
    let sum_n: u64 = subjects.iter().map(|s| s.rows as u64).sum();
    let sum_v: u64 = subjects.iter().map(|s| s.voxels as u64).sum();
    let max_n = subjects.iter().map(|s| s.rows).max().unwrap_or(0) as u64;
    // Dual subjects read two X blocks at once; every pass holds one Y block and its product.
    let blocks = 2 * b * largest_v + b * d + b * l.max(gcv_columns as u64) + largest * l;
    let spectra = held + 3 * largest * largest + blocks;
    let gcv = held + largest_v * gcv_columns as u64 + largest * gcv_columns as u64 + blocks;
    let path = if d as usize <= opts.exact_below {
        d * d + largest * d + sum_n * k
    } else {
        3 * d * l + 2 * sum_r * l + sum_n * l + max_n * l + sum_n * k
    };
    let fit = held + path + sum_v * k + largest_v * l + blocks;
    f * spectra.max(gcv).max(fit)
}
