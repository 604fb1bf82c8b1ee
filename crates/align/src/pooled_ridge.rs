//! A multi-target ridge with one GCV α per target, fitted on trials that repeat their inputs,
//! from row blocks of the distinct inputs: `group fit`'s encoder (scaled stimulus features →
//! the shared space) at NSD's full size, where the trials' design (n × p, 189,000 × 75,520)
//! does not fit in memory.
//!
//! # Exact reduction to the distinct inputs
//! Trials t = 1..n show images i(t) with features x_i (p); image i is shown c_i times and its
//! trials' targets average to ȳ_i (k). With `W` the weights, the trials' sum of squares is
//! `Σ_t ‖y_t − x_{i(t)} W‖² = Σ_t ‖y_t − ȳ_{i(t)}‖² + Σ_i c_i ‖ȳ_i − x_i W‖²`, so the ridge on
//! the trials is the ridge on the m distinct rows weighted by c_i: `X̃ = diag(√c)(X − 1μᵀ)`,
//! `Ỹ = diag(√c)(Ȳ − 1νᵀ)` with μ, ν the trials' means. The same rows give the trials' GCV
//! exactly: the hat matrix's trace is that of the weighted problem (plus one for the
//! intercept), and the trials' residual is the within-image part (held as one number per
//! target) plus the weighted residual. Nothing here is approximate so far.
//!
//! # The basis the ridge is solved in
//! With `s_l`, the eigenvalues of the weighted design's Gram, and `a_lj`, target j's
//! coordinate on the l-th left singular vector, every α of the grid costs only sums over l:
//! `RSS_j(α) = within_j + (‖Ỹ_j‖² − Σ_l a_lj²) + Σ_l a_lj² (α / (s_l + α))²` and
//! `df(α) = 1 + Σ_l s_l / (s_l + α)`; the score is RidgeCv's GCV,
//! `−(RSS_j / n) / (1 − df/n)²`, and the first best α of the grid is kept (as
//! `brainrecon_ridge::RidgeCv` with `Cv::Gcv` chooses). The decomposition is one of:
//! - **primal** (p ≤ `max_rank`): `X̃ᵀX̃` (p × p) summed over row blocks. Exact.
//! - **dual** (m ≤ `max_rank`): `X̃X̃ᵀ` (m × m) from pairs of row blocks; the weights
//!   `X̃ᵀ C` in one more pass. Exact.
//! - **reduced** (otherwise): a randomized range finder of the row space, `T = X̃ᵀX̃Ω` with
//!   Ω Gaussian (p × r, r = `max_rank`), summed over row blocks in one pass; Q = orth(T); then
//!   the primal ridge on `Z = X̃Q` (r × r), weights `Q β`. It is the ridge restricted to the
//!   inputs' projection on span(Q). When rank(X̃) ≤ r, span(Q) is the whole row space (with
//!   probability one for Gaussian probes) and the result is exact; otherwise the fit reports
//!   [`PooledRidge::captured`], the share of the weighted, centred inputs' sum of squares that
//!   the basis holds, and the trials' predictions differ from the full ridge's only through
//!   the directions outside it.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::shared_space::{check_alpha, gaussian, gram_lower_into, orthonormalise, par, psd_eigen};
use crate::streamed::RowBlocks;
use crate::AlignError;

/// The trials as their distinct inputs: what [`fit_pooled_ridge`] reads.
pub struct RepeatedRows<'a, R: ?Sized> {
    /// The m distinct inputs (m × p, raw: neither centred nor weighted), read in row blocks.
    pub x: &'a R,
    /// How many trials show each distinct input (m, each ≥ 1).
    pub counts: &'a [usize],
    /// The mean target of each distinct input's trials (m × k).
    pub y_mean: MatRef<'a, f64>,
    /// Per target (k): `Σ_t (y_tj − ȳ_{i(t)j})²`, the trials' spread about their input's mean.
    pub y_within: &'a [f64],
}

/// How [`fit_pooled_ridge`] fits.
#[derive(Debug, Clone, PartialEq)]
pub struct PooledRidgeOptions {
    /// The α grid (each > 0, finite), scored in this order.
    pub alphas: Vec<f64>,
    /// The largest basis solved in: primal when p ≤ this, dual when m ≤ this, else the reduced
    /// path with r = this.
    pub max_rank: usize,
    /// Seed of the range finder's probes.
    pub seed: u64,
    /// Rows per block read from the inputs.
    pub block_rows: usize,
}

/// Which decomposition a fit used (see the module's docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PooledPath {
    /// `X̃ᵀX̃`, p × p: exact.
    Primal,
    /// `X̃X̃ᵀ`, m × m: exact.
    Dual,
    /// The ridge in an r-dimensional range-finder basis of the row space.
    Reduced,
}

/// A fitted [`fit_pooled_ridge`]: `predict(x) = x · weights + intercept` on raw inputs.
#[derive(Debug, Clone)]
pub struct PooledRidge {
    /// p × k weights.
    pub weights: Mat<f64>,
    /// k intercepts, `ν − μᵀ weights`.
    pub intercept: Vec<f64>,
    /// p input means over the trials (μ).
    pub x_mean: Vec<f64>,
    /// The chosen α of each target (k).
    pub alphas: Vec<f64>,
    /// GCV scores, grid × k, as `RidgeCv` reports them (negative mean squared error; higher
    /// is better).
    pub scores: Mat<f64>,
    /// The decomposition used.
    pub path: PooledPath,
    /// Dimensions of the basis solved in (p, m or r).
    pub rank: usize,
    /// The share of `‖X̃‖²_F` inside the basis: 1 (to rounding) on the exact paths; on the
    /// reduced path, 1 exactly when the basis holds the whole row space.
    pub captured: f64,
}

/// Peak bytes of [`fit_pooled_ridge`] on m distinct inputs × p features → k targets with a
/// grid of `n_alphas`, f64 throughout, from the sizes alone: the held `Ȳ`, `Ỹ` (2 m k), the
/// means and sums (p + k), the scores (n_alphas k), one block of the inputs and its weighted
/// copy (2 b p), and the path's own: primal `3 p² + 2 p k`; dual two blocks more, `3 m²`, the
/// coefficients m k and the weights p k with their block product; reduced the probes, their
/// image and the orthonormalisation (3 p r), the block's products (2 b r), `3 r² + 2 r k` and
/// the weights p k. Here b = min(block_rows, m) and r = min(max_rank, p, m).
pub fn pooled_ridge_peak_bytes(
    m: usize,
    p: usize,
    k: usize,
    n_alphas: usize,
    max_rank: usize,
    block_rows: usize,
) -> u64 {
    let (m, p, k) = (m as u64, p as u64, k as u64);
    let b = (block_rows as u64).min(m).max(1);
    let held = 2 * m * k + p + k + n_alphas as u64 * k + 2 * b * p;
    let path = if p <= max_rank as u64 {
        3 * p * p + 2 * p * k
    } else if m <= max_rank as u64 {
        2 * b * p + 3 * m * m + m * k + p * k + b * k
    } else {
        let r = (max_rank as u64).min(p).min(m);
        3 * p * r + 2 * b * r + 3 * r * r + 2 * r * k + p * k
    };
    8 * (held + path)
}

/// `(start, len)` of the row blocks of `rows` rows.
fn ranges(rows: usize, block_rows: usize) -> Vec<(usize, usize)> {
    let step = block_rows.max(1);
    (0..rows)
        .step_by(step)
        .map(|s| (s, step.min(rows - s)))
        .collect()
}

/// Block `start .. start + len` of the inputs, checked, centred by `mean` and weighted by √c.
fn weighted_block<R: RowBlocks + ?Sized>(
    x: &R,
    counts: &[usize],
    mean: &[f64],
    start: usize,
    len: usize,
) -> Result<Mat<f64>, R::Error> {
    let mut b = raw_block(x, start, len)?;
    for j in 0..b.ncols() {
        for i in 0..len {
            b[(i, j)] = (b[(i, j)] - mean[j]) * (counts[start + i] as f64).sqrt();
        }
    }
    Ok(b)
}

fn raw_block<R: RowBlocks + ?Sized>(x: &R, start: usize, len: usize) -> Result<Mat<f64>, R::Error> {
    let b = x.block(start, len)?;
    if b.nrows() != len || b.ncols() != x.cols() {
        return Err(AlignError::Shape(format!(
            "inputs: a block of rows {start}..{} came back {} × {}, expected {len} × {}",
            start + len,
            b.nrows(),
            b.ncols(),
            x.cols()
        ))
        .into());
    }
    for j in 0..b.ncols() {
        for i in 0..len {
            if !b[(i, j)].is_finite() {
                return Err(AlignError::Input(format!(
                    "inputs hold a non-finite value at row {}, column {j}",
                    start + i
                ))
                .into());
            }
        }
    }
    Ok(b)
}

fn mul_acc(out: &mut Mat<f64>, accum: Accum, a: MatRef<'_, f64>, b: MatRef<'_, f64>) {
    matmul(out.as_mut(), accum, a, b, 1.0, par());
}

/// Fits the ridge of the module's docs. Errors: no inputs or targets; counts, `y_mean` or
/// `y_within` of other lengths than the inputs' rows and the targets; a count of 0; an empty
/// grid or an α not positive and finite; `max_rank` or `block_rows` of 0; fewer than two
/// trials; non-finite inputs; a failed eigendecomposition; and whatever reading a block gives.
pub fn fit_pooled_ridge<R: RowBlocks + ?Sized>(
    data: &RepeatedRows<'_, R>,
    opts: &PooledRidgeOptions,
) -> Result<PooledRidge, R::Error> {
    let (m, p, k) = (data.x.rows(), data.x.cols(), data.y_mean.ncols());
    if m == 0 || p == 0 || k == 0 {
        return Err(AlignError::Shape(format!(
            "encoder of {m} inputs × {p} features → {k} targets"
        ))
        .into());
    }
    if data.counts.len() != m || data.y_mean.nrows() != m || data.y_within.len() != k {
        return Err(AlignError::Shape(format!(
            "{m} distinct inputs, but {} counts, {} mean targets and {} within sums for {k} targets",
            data.counts.len(),
            data.y_mean.nrows(),
            data.y_within.len()
        ))
        .into());
    }
    if data.counts.contains(&0) {
        return Err(
            AlignError::Input("every distinct input needs at least one trial".into()).into(),
        );
    }
    if opts.alphas.is_empty() || opts.max_rank == 0 || opts.block_rows == 0 {
        return Err(AlignError::Input(
            "the encoder needs an alpha grid, a basis of at least 1 and blocks of at least 1 row"
                .into(),
        )
        .into());
    }
    for &a in &opts.alphas {
        check_alpha(a, "every alpha of the grid")?;
    }
    let n: usize = data.counts.iter().sum();
    if n < 2 {
        return Err(AlignError::Input("the encoder needs at least two trials".into()).into());
    }
    let nf = n as f64;
    let blocks = ranges(m, opts.block_rows);

    // μ over the trials: Σ c_i x_i / n, block by block.
    let mut x_mean = vec![0.0f64; p];
    for &(start, len) in &blocks {
        let b = raw_block(data.x, start, len)?;
        for (j, mu) in x_mean.iter_mut().enumerate() {
            for i in 0..len {
                *mu += data.counts[start + i] as f64 * b[(i, j)];
            }
        }
    }
    x_mean.iter_mut().for_each(|v| *v /= nf);
    let y_mean_all: Vec<f64> = (0..k)
        .map(|j| {
            (0..m)
                .map(|i| data.counts[i] as f64 * data.y_mean[(i, j)])
                .sum::<f64>()
                / nf
        })
        .collect();
    let yw = Mat::from_fn(m, k, |i, j| {
        (data.y_mean[(i, j)] - y_mean_all[j]) * (data.counts[i] as f64).sqrt()
    });
    let y_norms: Vec<f64> = (0..k)
        .map(|j| (0..m).map(|i| yw[(i, j)].powi(2)).sum())
        .collect();

    let (path, rank) = if p <= opts.max_rank {
        (PooledPath::Primal, p)
    } else if m <= opts.max_rank {
        (PooledPath::Dual, m)
    } else {
        (PooledPath::Reduced, opts.max_rank.min(p).min(m))
    };

    // lambda: eigenvalues; coords: a_lj (left singular coordinates of Ỹ); and what turns the
    // per-target shrunken coordinates into weights.
    let mut total_ss = 0.0f64;
    let (lambda, coords, basis) = match path {
        PooledPath::Dual => {
            let mut gram = Mat::<f64>::zeros(m, m);
            for (bi, &(i0, il)) in blocks.iter().enumerate() {
                let xi = weighted_block(data.x, data.counts, &x_mean, i0, il)?;
                for &(j0, jl) in &blocks[..bi] {
                    let xj = weighted_block(data.x, data.counts, &x_mean, j0, jl)?;
                    let mut part = gram.as_mut().submatrix_mut(i0, j0, il, jl);
                    matmul(
                        part.as_mut(),
                        Accum::Replace,
                        xi.as_ref(),
                        xj.transpose(),
                        1.0,
                        par(),
                    );
                }
                gram_lower_into(
                    gram.as_mut().submatrix_mut(i0, i0, il, il),
                    xi.as_ref(),
                    Accum::Replace,
                );
                total_ss += (0..il).map(|i| xi.row(i).squared_norm_l2()).sum::<f64>();
            }
            let (lambda, u) = psd_eigen(gram, "the encoder's Gram")?;
            let mut coords = Mat::<f64>::zeros(m, k);
            mul_acc(&mut coords, Accum::Replace, u.transpose(), yw.as_ref());
            (lambda, coords, Basis::Dual(u))
        }
        PooledPath::Primal | PooledPath::Reduced => {
            let q = if path == PooledPath::Reduced {
                let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
                let omega = gaussian(&mut rng, p, rank);
                let mut t = Mat::<f64>::zeros(p, rank);
                let mut xo = Mat::<f64>::zeros(opts.block_rows.min(m), rank);
                for (bi, &(start, len)) in blocks.iter().enumerate() {
                    let b = weighted_block(data.x, data.counts, &x_mean, start, len)?;
                    let mut xo_b = xo.as_mut().subrows_mut(0, len);
                    matmul(
                        xo_b.as_mut(),
                        Accum::Replace,
                        b.as_ref(),
                        omega.as_ref(),
                        1.0,
                        par(),
                    );
                    let accum = if bi == 0 { Accum::Replace } else { Accum::Add };
                    matmul(
                        t.as_mut(),
                        accum,
                        b.transpose(),
                        xo.as_ref().subrows(0, len),
                        1.0,
                        par(),
                    );
                }
                drop(omega);
                drop(xo);
                Some(orthonormalise(t))
            } else {
                None
            };
            let width = q.as_ref().map_or(p, |q| q.ncols());
            let mut gram = Mat::<f64>::zeros(width, width);
            let mut cross = Mat::<f64>::zeros(width, k);
            for (bi, &(start, len)) in blocks.iter().enumerate() {
                let b = weighted_block(data.x, data.counts, &x_mean, start, len)?;
                total_ss += (0..len).map(|i| b.row(i).squared_norm_l2()).sum::<f64>();
                let z = match &q {
                    Some(q) => {
                        let mut z = Mat::<f64>::zeros(len, width);
                        mul_acc(&mut z, Accum::Replace, b.as_ref(), q.as_ref());
                        z
                    }
                    None => b,
                };
                let accum = if bi == 0 { Accum::Replace } else { Accum::Add };
                gram_lower_into(gram.as_mut(), z.transpose(), accum);
                mul_acc(
                    &mut cross,
                    accum,
                    z.transpose(),
                    yw.as_ref().subrows(start, len),
                );
            }
            let (lambda, v) = psd_eigen(gram, "the encoder's Gram")?;
            // Vᵀ Z̃ᵀ Ỹ = S^{1/2} Uᵀ Ỹ: divide by √s for the left coordinates; directions with
            // no inputs' energy hold none of Ỹ.
            let mut coords = Mat::<f64>::zeros(width, k);
            mul_acc(&mut coords, Accum::Replace, v.transpose(), cross.as_ref());
            let top = lambda.iter().cloned().fold(0.0f64, f64::max);
            for (l, &s) in lambda.iter().enumerate() {
                let keep = s > top * 1e-13 && s > 0.0;
                for j in 0..k {
                    coords[(l, j)] = if keep { coords[(l, j)] / s.sqrt() } else { 0.0 };
                }
            }
            (lambda, coords, Basis::Primal { v, q })
        }
    };

    // GCV over the grid from the spectrum alone.
    let n_alphas = opts.alphas.len();
    let mut scores = Mat::<f64>::zeros(n_alphas, k);
    let sq: Vec<f64> = (0..k)
        .map(|j| (0..lambda.len()).map(|l| coords[(l, j)].powi(2)).sum())
        .collect();
    for (g, &alpha) in opts.alphas.iter().enumerate() {
        let df = 1.0 + lambda.iter().map(|&s| s / (s + alpha)).sum::<f64>();
        let denominator = (1.0 - df / nf).powi(2);
        for j in 0..k {
            let shrunk: f64 = lambda
                .iter()
                .enumerate()
                .map(|(l, &s)| (coords[(l, j)] * alpha / (s + alpha)).powi(2))
                .sum();
            let rss = data.y_within[j] + (y_norms[j] - sq[j]).max(0.0) + shrunk;
            scores[(g, j)] = -(rss / nf) / denominator;
        }
    }
    let best: Vec<usize> = (0..k)
        .map(|j| {
            let mut best = 0;
            for g in 1..n_alphas {
                if scores[(g, j)] > scores[(best, j)] {
                    best = g;
                }
            }
            best
        })
        .collect();
    let alphas: Vec<f64> = best.iter().map(|&g| opts.alphas[g]).collect();

    // Per target: the coordinates shrunk at its α, then into weights.
    let mut shrunk = Mat::<f64>::zeros(lambda.len(), k);
    for j in 0..k {
        for (l, &s) in lambda.iter().enumerate() {
            shrunk[(l, j)] = coords[(l, j)] * s.sqrt() / (s + alphas[j]);
        }
    }
    let weights = match basis {
        Basis::Dual(u) => {
            // C = U diag(1/(s+α)) a; W = X̃ᵀ C over row blocks (√s/(s+α)·a·/√s folded below).
            for j in 0..k {
                for (l, &s) in lambda.iter().enumerate() {
                    shrunk[(l, j)] = coords[(l, j)] / (s + alphas[j]);
                }
            }
            let mut c = Mat::<f64>::zeros(m, k);
            mul_acc(&mut c, Accum::Replace, u.as_ref(), shrunk.as_ref());
            drop(u);
            let mut w = Mat::<f64>::zeros(p, k);
            for (bi, &(start, len)) in blocks.iter().enumerate() {
                let b = weighted_block(data.x, data.counts, &x_mean, start, len)?;
                let accum = if bi == 0 { Accum::Replace } else { Accum::Add };
                mul_acc(&mut w, accum, b.transpose(), c.as_ref().subrows(start, len));
            }
            w
        }
        Basis::Primal { v, q } => {
            // β = V diag(√s/(s+α)) a in the basis; W = Q β (or β itself, primal).
            let mut beta = Mat::<f64>::zeros(v.nrows(), k);
            mul_acc(&mut beta, Accum::Replace, v.as_ref(), shrunk.as_ref());
            match q {
                Some(q) => {
                    let mut w = Mat::<f64>::zeros(p, k);
                    mul_acc(&mut w, Accum::Replace, q.as_ref(), beta.as_ref());
                    w
                }
                None => beta,
            }
        }
    };
    let intercept: Vec<f64> = (0..k)
        .map(|j| y_mean_all[j] - (0..p).map(|i| x_mean[i] * weights[(i, j)]).sum::<f64>())
        .collect();
    let captured = if total_ss > 0.0 {
        lambda.iter().sum::<f64>() / total_ss
    } else {
        1.0
    };
    Ok(PooledRidge {
        weights,
        intercept,
        x_mean,
        alphas,
        scores,
        path,
        rank,
        captured,
    })
}

/// What turns shrunken coordinates into weights.
enum Basis {
    /// U (m × m): the weights are `X̃ᵀ U diag(1/(s+α)) a`.
    Dual(Mat<f64>),
    /// V (width × width) and, on the reduced path, Q (p × r).
    Primal { v: Mat<f64>, q: Option<Mat<f64>> },
}
