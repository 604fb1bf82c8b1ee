//! Statistics of an encoding model's test accuracy: per-column Pearson r, a permutation null
//! that never refits, permutation p-values and Benjamini–Hochberg FDR.
//!
//! The null permutes the rows of the predictions (n_test rows) and correlates them with the
//! true test rows, per target. Columns are standardised once ([`Standardized`]), so each
//! permutation costs one gather and one dot product per target.
//!
//! p-values are one-sided (an encoding model is only interesting when it predicts better than
//! chance): `p = (1 + #{null r ≥ observed r}) / (1 + n_permutations)`, which is never 0 and is
//! a valid p-value when the permutations are drawn uniformly (Phipson & Smyth 2010). Null
//! values within [`TIE_TOLERANCE`] below the observed r count as ties (≥), as
//! `scipy.stats.permutation_test` does, so the identity permutation always counts.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Result, RidgeError};

/// A null r at least `observed - TIE_TOLERANCE` counts as ≥ the observed r (float ties).
pub const TIE_TOLERANCE: f64 = 1e-12;

/// Targets correlated together: their standardised values are interleaved so that one
/// permutation index feeds `LANES` products, which the compiler vectorises.
const LANES: usize = 8;

/// The columns of an (n, t) matrix, each centred and scaled to unit Euclidean norm, so that
/// the Pearson r of two columns is their dot product.
///
/// Stored in blocks of `LANES` columns, row by row inside a block (block, n, LANES); the
/// last block is padded with zero columns. A column with zero variance (or n < 2) is all
/// NaN: its correlation is undefined.
#[derive(Debug, Clone, PartialEq)]
pub struct Standardized {
    n: usize,
    t: usize,
    /// (ceil(t / LANES), n, LANES)
    values: Vec<f64>,
}

impl Standardized {
    /// Standardises the columns of the row-major (n, t) matrix `x`; statistics in f64.
    pub fn from_row_major(x: &[f32], n: usize, t: usize) -> Result<Self> {
        if x.len() != n * t {
            return Err(RidgeError::Shape(format!(
                "a row-major {n}×{t} matrix has {} values, found {}",
                n * t,
                x.len()
            )));
        }
        let n_blocks = t.div_ceil(LANES);
        let mut values = vec![0.0f64; n_blocks * n * LANES];
        let mut column = vec![0.0f64; n];
        for j in 0..t {
            for (i, v) in column.iter_mut().enumerate() {
                *v = x[i * t + j] as f64;
            }
            standardize_in_place(&mut column);
            let (block, lane) = (j / LANES, j % LANES);
            for (i, &v) in column.iter().enumerate() {
                values[(block * n + i) * LANES + lane] = v;
            }
        }
        Ok(Standardized { n, t, values })
    }

    /// Rows (observations).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Columns (targets).
    pub fn t(&self) -> usize {
        self.t
    }

    /// Standardised value of row `i`, column `j`.
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.values[((j / LANES) * self.n + i) * LANES + j % LANES]
    }

    fn n_blocks(&self) -> usize {
        self.t.div_ceil(LANES)
    }

    /// Block `b`: (n, LANES) row-major.
    fn block(&self, b: usize) -> &[f64] {
        &self.values[b * self.n * LANES..(b + 1) * self.n * LANES]
    }

    /// Columns of block `b` that are real targets (the rest is padding).
    fn block_columns(&self, b: usize) -> Range<usize> {
        b * LANES..((b + 1) * LANES).min(self.t)
    }
}

/// Centres `column` and scales it to unit norm; NaN everywhere when it has no variance.
fn standardize_in_place(column: &mut [f64]) {
    let n = column.len();
    let mean = column.iter().sum::<f64>() / n as f64;
    column.iter_mut().for_each(|v| *v -= mean);
    let norm = column.iter().map(|v| v * v).sum::<f64>().sqrt();
    // n < 2 or a constant column: r is undefined, as in scipy.stats.pearsonr.
    let scale = if n < 2 || norm == 0.0 || !norm.is_finite() {
        f64::NAN
    } else {
        1.0 / norm
    };
    column.iter_mut().for_each(|v| *v *= scale);
}

/// For the LANES columns of one block (both (n, LANES) row-major, unit-norm columns):
/// r[l] = Σ_i a[order(i), l] · b[i, l], clamped to [-1, 1].
///
/// The observed r uses this same routine with the identity order, so the identity
/// permutation reproduces it bit for bit (ties are then exact).
#[inline]
fn correlate_block(a: &[f64], order: impl Fn(usize) -> usize, b: &[f64]) -> [f64; LANES] {
    let mut acc = [0.0f64; LANES];
    for (i, b_row) in b.chunks_exact(LANES).enumerate() {
        let src = order(i) * LANES;
        let a_row = &a[src..src + LANES];
        for l in 0..LANES {
            acc[l] += a_row[l] * b_row[l];
        }
    }
    acc.map(|r| r.clamp(-1.0, 1.0))
}

fn check_pair(pred: &Standardized, truth: &Standardized) -> Result<()> {
    if (pred.n, pred.t) != (truth.n, truth.t) {
        return Err(RidgeError::Shape(format!(
            "predictions are {}×{} but truths are {}×{}",
            pred.n, pred.t, truth.n, truth.t
        )));
    }
    Ok(())
}

/// Pearson r of each column pair of two standardised (n, t) matrices; NaN where a column
/// is constant. Returns (t,).
pub fn correlate_columns(pred: &Standardized, truth: &Standardized) -> Result<Vec<f64>> {
    check_pair(pred, truth)?;
    let mut r = Vec::with_capacity(pred.n_blocks() * LANES);
    for b in 0..pred.n_blocks() {
        r.extend(correlate_block(pred.block(b), |i| i, truth.block(b)));
    }
    r.truncate(pred.t);
    Ok(r)
}

/// Pearson r of each column of the row-major (n, t) matrices `a` and `b` (as
/// `scipy.stats.pearsonr` per column); NaN where a column is constant. Returns (t,).
pub fn pearson_columns(a: &[f32], b: &[f32], n: usize, t: usize) -> Result<Vec<f64>> {
    correlate_columns(
        &Standardized::from_row_major(a, n, t)?,
        &Standardized::from_row_major(b, n, t)?,
    )
}

/// A permutation of 0..n that moves contiguous blocks of `block` rows as units (the last
/// block is shorter when `block` does not divide n). `block = 1` is a plain permutation.
/// Blocks keep the autocorrelation of neighbouring rows (e.g. trials of one run) in the null.
///
/// `perm[i]` is the source row placed at row i.
pub fn block_permutation<R: Rng + ?Sized>(n: usize, block: usize, rng: &mut R) -> Vec<usize> {
    assert!(block >= 1, "block size must be at least 1");
    let mut starts: Vec<usize> = (0..n).step_by(block).collect();
    starts.shuffle(rng);
    starts
        .into_iter()
        .flat_map(|start| start..(start + block).min(n))
        .collect()
}

/// `count` block permutations of 0..n from a ChaCha8 generator seeded with `seed`: the same
/// seed gives the same null on every machine and thread count. Returns (count,) × (n,).
pub fn seeded_block_permutations(
    n: usize,
    block: usize,
    count: usize,
    seed: u64,
) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|_| block_permutation(n, block, &mut rng))
        .collect()
}

/// Checks that every permutation is a permutation of 0..n.
fn check_permutations(perms: &[Vec<usize>], n: usize) -> Result<()> {
    let mut seen = vec![false; n];
    for (k, perm) in perms.iter().enumerate() {
        seen.iter_mut().for_each(|s| *s = false);
        let valid = perm.len() == n
            && perm
                .iter()
                .all(|&i| i < n && !std::mem::replace(&mut seen[i], true));
        if !valid {
            return Err(RidgeError::Shape(format!(
                "permutation {k} is not a permutation of 0..{n}"
            )));
        }
    }
    Ok(())
}

/// Runs `work(b)` for every block of [`LANES`] targets, spread over the available threads.
fn for_each_block<F>(n_blocks: usize, work: F)
where
    F: Fn(usize) + Sync,
{
    let threads = std::thread::available_parallelism()
        .map_or(1, |c| c.get())
        .min(n_blocks);
    let next = AtomicUsize::new(0);
    let run = || loop {
        let b = next.fetch_add(1, Ordering::Relaxed);
        if b >= n_blocks {
            break;
        }
        work(b);
    };
    if threads <= 1 {
        run();
        return;
    }
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(run);
        }
        run();
    });
}

/// The full null: r of the permuted predictions against the truths, for every permutation
/// and target. `perms`: n_perm permutations of 0..n (row i of a permuted prediction is row
/// `perm[i]`). Returns row-major (n_perm, t). Use [`permutation_test`] to stream instead.
pub fn permutation_null(
    pred: &Standardized,
    truth: &Standardized,
    perms: &[Vec<usize>],
) -> Result<Vec<f64>> {
    check_pair(pred, truth)?;
    check_permutations(perms, pred.n)?;
    let t = pred.t;
    // (n_perm, LANES) per block, copied into place once done.
    let blocks = std::sync::Mutex::new(Vec::new());
    for_each_block(pred.n_blocks(), |b| {
        let local: Vec<[f64; LANES]> = perms
            .iter()
            .map(|perm| correlate_block(pred.block(b), |i| perm[i], truth.block(b)))
            .collect();
        blocks.lock().expect("no panics").push((b, local));
    });
    let mut null = vec![0.0; perms.len() * t];
    for (b, local) in blocks.into_inner().expect("no panics") {
        let columns = pred.block_columns(b);
        for (k, r) in local.iter().enumerate() {
            null[k * t + columns.start..k * t + columns.end].copy_from_slice(&r[..columns.len()]);
        }
    }
    Ok(null)
}

/// One-sided permutation p-values from a full null (row-major (n_perm, t)):
/// `(1 + #{null ≥ observed − TIE_TOLERANCE}) / (1 + n_perm)`; 1 where observed is NaN.
/// Returns (t,).
pub fn permutation_p_values(observed: &[f64], null: &[f64]) -> Result<Vec<f64>> {
    let t = observed.len();
    let n_perm = null.len() / t.max(1);
    if t == 0 || n_perm * t != null.len() {
        return Err(RidgeError::Shape(format!(
            "a null of {} values is not (n_perm, {t})",
            null.len()
        )));
    }
    let mut exceed = vec![0usize; t];
    for row in null.chunks_exact(t) {
        for ((count, &r), &obs) in exceed.iter_mut().zip(row).zip(observed) {
            *count += usize::from(r >= obs - TIE_TOLERANCE);
        }
    }
    Ok(p_from_counts(observed, &exceed, n_perm))
}

fn p_from_counts(observed: &[f64], exceed: &[usize], n_perm: usize) -> Vec<f64> {
    observed
        .iter()
        .zip(exceed)
        .map(|(obs, &count)| {
            if obs.is_nan() {
                // An undefined correlation is no evidence of encoding.
                1.0
            } else {
                (1 + count) as f64 / (1 + n_perm) as f64
            }
        })
        .collect()
}

/// The observed r (t,) and the one-sided permutation p-values (t,), without storing the
/// null: per target, counts of permutations whose r reaches the observed r. Identical to
/// [`correlate_columns`] + [`permutation_null`] + [`permutation_p_values`].
pub fn permutation_test(
    pred: &Standardized,
    truth: &Standardized,
    perms: &[Vec<usize>],
) -> Result<(Vec<f64>, Vec<f64>)> {
    if perms.is_empty() {
        return Err(RidgeError::Options(
            "at least one permutation is needed".into(),
        ));
    }
    let observed = correlate_columns(pred, truth)?;
    check_permutations(perms, pred.n)?;
    let counts: Vec<AtomicUsize> = (0..pred.t).map(|_| AtomicUsize::new(0)).collect();
    for_each_block(pred.n_blocks(), |b| {
        let columns = pred.block_columns(b);
        let observed = &observed[columns.clone()];
        let mut local = [0usize; LANES];
        for perm in perms {
            let r = correlate_block(pred.block(b), |i| perm[i], truth.block(b));
            for (l, obs) in observed.iter().enumerate() {
                local[l] += usize::from(r[l] >= obs - TIE_TOLERANCE);
            }
        }
        for (l, j) in columns.enumerate() {
            counts[j].store(local[l], Ordering::Relaxed);
        }
    });
    let exceed: Vec<usize> = counts.into_iter().map(AtomicUsize::into_inner).collect();
    let p = p_from_counts(&observed, &exceed, perms.len());
    Ok((observed, p))
}

/// Benjamini–Hochberg FDR at level `alpha`, as statsmodels
/// `fdrcorrection(p, alpha, method="indep")`: returns the adjusted p-values (q, monotone in
/// p and capped at 1) and the rejection mask, both (m,) in the input order.
///
/// With p sorted ascending and rank k = 1…m: reject the hypotheses up to the largest k with
/// `p_(k) ≤ (k/m)·alpha`; `q_(k) = min_{j ≥ k} p_(j) / (j/m)`.
pub fn bh_fdr(p: &[f64], alpha: f64) -> Result<(Vec<f64>, Vec<bool>)> {
    if let Some(i) = p.iter().position(|v| v.is_nan()) {
        return Err(RidgeError::Options(format!(
            "p-value {i} is NaN; BH needs every p-value"
        )));
    }
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    // Same float operations as statsmodels: ecdf = k / m, compare p ≤ ecdf·alpha, raw = p / ecdf.
    let ecdf = |rank: usize| (rank + 1) as f64 / m as f64;
    let last_rejected = order
        .iter()
        .enumerate()
        .rev()
        .find(|&(rank, &i)| p[i] <= ecdf(rank) * alpha)
        .map(|(rank, _)| rank);
    let mut q = vec![0.0; m];
    let mut reject = vec![false; m];
    let mut running_min = f64::INFINITY;
    for (rank, &i) in order.iter().enumerate().rev() {
        running_min = running_min.min(p[i] / ecdf(rank));
        q[i] = running_min.min(1.0);
        reject[i] = last_rejected.is_some_and(|last| rank <= last);
    }
    Ok((q, reject))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_permutation_moves_whole_blocks() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let perm = block_permutation(11, 3, &mut rng);
        let mut sorted = perm.clone();
        sorted.sort();
        assert_eq!(sorted, (0..11).collect::<Vec<_>>());
        // Every block start is followed by the rest of its block.
        for (i, &v) in perm.iter().enumerate() {
            if v % 3 != 0 {
                assert_eq!(perm[i - 1], v - 1);
            }
        }
    }

    #[test]
    fn identity_permutation_reproduces_observed_r() {
        let (n, t) = (7, 3);
        let a: Vec<f32> = (0..n * t).map(|i| ((i * 37 % 11) as f32).sin()).collect();
        let b: Vec<f32> = (0..n * t).map(|i| ((i * 13 % 7) as f32).cos()).collect();
        let (pa, pb) = (
            Standardized::from_row_major(&a, n, t).unwrap(),
            Standardized::from_row_major(&b, n, t).unwrap(),
        );
        let observed = correlate_columns(&pa, &pb).unwrap();
        let null = permutation_null(&pa, &pb, &[(0..n).collect()]).unwrap();
        assert_eq!(null, observed);
    }

    #[test]
    fn rejects_bad_permutations_and_nan_p() {
        let s = Standardized::from_row_major(&[1.0, 2.0, 4.0], 3, 1).unwrap();
        assert!(permutation_null(&s, &s, &[vec![0, 0, 1]]).is_err());
        assert!(permutation_null(&s, &s, &[vec![0, 1]]).is_err());
        assert!(bh_fdr(&[0.1, f64::NAN], 0.05).is_err());
    }
}
