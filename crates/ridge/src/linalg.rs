//! Thin wrappers over faer: GEMM, precision casts, symmetric eigendecomposition.

use std::sync::atomic::{AtomicUsize, Ordering};

use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, MatMut, MatRef, Par, Side};

use crate::error::{Result, RidgeError};

/// Threads for our own element-wise loops (0 = all available); see [`set_threads`].
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Limits brainrecon-ridge to `threads` threads (faer's GEMMs and eigensolver
/// plus the fused scoring loops). 0 = all cores. Call once, before fitting.
pub fn set_threads(threads: usize) {
    THREADS.store(threads, Ordering::Relaxed);
    faer::set_global_parallelism(Par::rayon(threads));
}

/// Threads for the element-wise loops (≥ 1).
pub(crate) fn threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

fn par() -> Par {
    faer::get_global_parallelism()
}

/// The two working precisions of the heavy linear algebra.
pub(crate) trait Float: faer::traits::RealField + Copy + Send + Sync + 'static {
    fn of(v: f64) -> Self;
    fn f64(self) -> f64;
    fn f32(self) -> f32;
    /// The matrix in f32: itself when it already is (no copy).
    fn into_f32(m: Mat<Self>) -> Mat<f32>;
}

impl Float for f32 {
    fn of(v: f64) -> Self {
        v as f32
    }
    fn f64(self) -> f64 {
        self as f64
    }
    fn f32(self) -> f32 {
        self
    }
    fn into_f32(m: Mat<f32>) -> Mat<f32> {
        m
    }
}

impl Float for f64 {
    fn of(v: f64) -> Self {
        v
    }
    fn f64(self) -> f64 {
        self
    }
    fn f32(self) -> f32 {
        self as f32
    }
    fn into_f32(m: Mat<f64>) -> Mat<f32> {
        to_f32(m.as_ref())
    }
}

/// `lhs (m×k) · rhs (k×n)` → `m×n`, multithreaded.
pub(crate) fn mul<T: Float>(lhs: MatRef<'_, T>, rhs: MatRef<'_, T>) -> Mat<T> {
    assert_eq!(lhs.ncols(), rhs.nrows(), "inner dimensions of a product");
    let mut out = Mat::<T>::zeros(lhs.nrows(), rhs.ncols());
    matmul(out.as_mut(), Accum::Replace, lhs, rhs, T::of(1.0), par());
    out
}

/// `out = lhs · rhs` (in place, no allocation), multithreaded.
pub(crate) fn mul_into<T: Float>(out: MatMut<'_, T>, lhs: MatRef<'_, T>, rhs: MatRef<'_, T>) {
    matmul(out, Accum::Replace, lhs, rhs, T::of(1.0), par());
}

/// `out += scale · lhs · rhs` (in place), multithreaded.
pub(crate) fn mul_add<T: Float>(
    out: MatMut<'_, T>,
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    scale: T,
) {
    matmul(out, Accum::Add, lhs, rhs, scale, par());
}

/// `lower(out) += m · mᵀ`: only the lower triangle is written (half the flops of a GEMM).
pub(crate) fn syrk_lower_add<T: Float>(out: MatMut<'_, T>, m: MatRef<'_, T>) {
    triangular::matmul(
        out,
        BlockStructure::TriangularLower,
        Accum::Add,
        m,
        BlockStructure::Rectangular,
        m.transpose(),
        BlockStructure::Rectangular,
        T::of(1.0),
        par(),
    );
}

/// `lhs (m×k) · rhs (k×n)` → `m×n` in f64, multithreaded.
pub(crate) fn mul64(lhs: MatRef<'_, f64>, rhs: MatRef<'_, f64>) -> Mat<f64> {
    mul(lhs, rhs)
}

/// `lhs (m×k) · rhs (k×n)` → `m×n` in f32, multithreaded.
pub(crate) fn mul32(lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>) -> Mat<f32> {
    mul(lhs, rhs)
}

/// `m` copied into a column-major matrix in 64×64 tiles, each thread on its own columns: a
/// plain copy of a row-major view (a C-order .npy) steps a whole row between reads.
pub(crate) fn to_owned_tiled(m: MatRef<'_, f32>) -> Mat<f32> {
    const TILE: usize = 64;
    let mut out = Mat::<f32>::zeros(m.nrows(), m.ncols());
    par_map_cols_mut(out.as_mut(), |mut part, first| {
        for j0 in (0..part.ncols()).step_by(TILE) {
            let columns = j0..(j0 + TILE).min(part.ncols());
            for i0 in (0..m.nrows()).step_by(TILE) {
                for j in columns.clone() {
                    for i in i0..(i0 + TILE).min(m.nrows()) {
                        part[(i, j)] = m[(i, first + j)];
                    }
                }
            }
        }
    });
    out
}

/// Element-wise cast to f32.
pub(crate) fn to_f32<T: Float>(m: MatRef<'_, T>) -> Mat<f32> {
    Mat::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)].f32())
}

/// Eigendecomposition of a symmetric PSD matrix `g` (r×r); only its lower
/// triangle is read.
///
/// Returns eigenvalues (ascending, negatives from rounding clamped to 0 like
/// himalaya's `negative_eigenvalues="zeros"`) and eigenvectors (r×r, columns).
pub(crate) fn eigh_psd<T: Float>(
    g: MatRef<'_, T>,
    what: &'static str,
) -> Result<(Vec<f64>, Mat<T>)> {
    assert_eq!(g.nrows(), g.ncols(), "eigh needs a square matrix");
    let evd = g
        .self_adjoint_eigen(Side::Lower)
        .map_err(|_| RidgeError::Decomposition(what))?;
    let s = evd.S().column_vector();
    let eigenvalues = (0..s.nrows()).map(|i| s[i].f64().max(0.0)).collect();
    Ok((eigenvalues, evd.U().to_owned()))
}

/// Runs `work(range)` on contiguous pieces of `0..len` in parallel (scoped
/// threads), concatenating the per-piece outputs in order.
pub(crate) fn par_map_ranges<R: Send>(
    len: usize,
    work: impl Fn(std::ops::Range<usize>) -> Vec<R> + Sync,
) -> Vec<R> {
    par_map_ranges_on(threads(), len, work)
}

/// Splits the columns of `m` into one contiguous piece per thread and runs
/// `work(piece, first_column)` on each (in order of the pieces), so that threads may overwrite
/// their own columns.
pub(crate) fn par_map_cols_mut<T: Send, R: Send>(
    m: MatMut<'_, T>,
    work: impl Fn(MatMut<'_, T>, usize) -> R + Sync,
) -> Vec<R> {
    let c = m.ncols();
    let pieces = threads().min(c.max(1));
    if pieces <= 1 {
        return vec![work(m, 0)];
    }
    let step = c.div_ceil(pieces);
    let mut parts = Vec::new();
    let (mut rest, mut at) = (m, 0);
    while rest.ncols() > step {
        let (left, right) = rest.split_at_col_mut(step);
        parts.push((left, at));
        at += step;
        rest = right;
    }
    parts.push((rest, at));
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|(part, at)| {
                let work = &work;
                scope.spawn(move || work(part, at))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker thread panicked"))
            .collect()
    })
}

/// [`par_map_ranges`] on at most `threads` threads; every piece is non-empty.
fn par_map_ranges_on<R: Send>(
    threads: usize,
    len: usize,
    work: impl Fn(std::ops::Range<usize>) -> Vec<R> + Sync,
) -> Vec<R> {
    let pieces = threads.min(len.max(1));
    if pieces <= 1 {
        return work(0..len);
    }
    let step = len.div_ceil(pieces);
    // 40 items on 16 threads: steps of 3 make 14 pieces, not 16
    let pieces = len.div_ceil(step);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..pieces)
            .map(|k| {
                let range = (k * step).min(len)..((k + 1) * step).min(len);
                let work = &work;
                scope.spawn(move || work(range))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker thread panicked"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::par_map_ranges_on;

    #[test]
    fn pieces_cover_the_range_once_and_none_is_empty() {
        for (threads, len) in [(16, 40), (16, 17), (3, 2), (2, 1), (8, 0), (5, 100)] {
            let pieces = par_map_ranges_on(threads, len, |range| vec![range]);
            assert!(
                pieces.iter().all(|r| !r.is_empty() || len == 0),
                "{threads} threads, {len}: {pieces:?}"
            );
            let covered: Vec<usize> = pieces.into_iter().flatten().collect();
            assert_eq!(
                covered,
                (0..len).collect::<Vec<_>>(),
                "{threads} threads, {len}"
            );
        }
    }
}
