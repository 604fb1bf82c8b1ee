//! The concatenated, centered design of all bands, and the products every candidate reuses.

use std::ops::Range;

use faer::{Mat, MatRef};

use crate::linalg::{mul, mul_into, syrk_lower_add, Float};
use crate::preprocess::column_means;

/// Rows or columns converted to f64 at a time (bounds the temporary copies).
const BLOCK: usize = 512;

/// All bands side by side, `X = [X_0 … X_{B−1}]` (n×p), centered with the full-data column
/// means when an intercept is fitted.
pub(crate) struct Design {
    /// n×p, f32 (centered in f64, then rounded).
    pub x: Mat<f32>,
    /// Column means removed (p; zeros without intercept).
    pub mean: Vec<f64>,
    /// Width p_b of each band.
    pub widths: Vec<usize>,
}

impl Design {
    /// Concatenates `bands` (each n×p_b, f32; already validated).
    pub fn new(bands: &[MatRef<'_, f32>], fit_intercept: bool) -> Self {
        let n = bands[0].nrows();
        let widths: Vec<usize> = bands.iter().map(|b| b.ncols()).collect();
        let mut mean = Vec::with_capacity(widths.iter().sum());
        for band in bands {
            match fit_intercept {
                true => mean.extend(column_means(*band)),
                false => mean.extend(std::iter::repeat_n(0.0, band.ncols())),
            }
        }
        let p = mean.len();
        let mut x = Mat::<f32>::zeros(n, p);
        let mut start = 0;
        for band in bands {
            for j in 0..band.ncols() {
                let m = mean[start + j];
                let mut column = x.col_mut(start + j);
                for i in 0..n {
                    column[i] = (band[(i, j)] as f64 - m) as f32;
                }
            }
            start += band.ncols();
        }
        Design { x, mean, widths }
    }

    pub fn n(&self) -> usize {
        self.x.nrows()
    }

    pub fn p(&self) -> usize {
        self.x.ncols()
    }

    /// Column range of each band in the concatenated design.
    pub fn band_ranges(&self) -> Vec<Range<usize>> {
        let mut start = 0;
        self.widths
            .iter()
            .map(|&w| {
                start += w;
                start - w..start
            })
            .collect()
    }

    /// `√γ_b` for every column of band `b` (p): the design of candidate γ is `X · diag(scales)`.
    pub fn column_scales(&self, gamma: &[f64]) -> Vec<f64> {
        let mut scales = Vec::with_capacity(self.p());
        for (&w, &g) in self.widths.iter().zip(gamma) {
            scales.extend(std::iter::repeat_n(g.sqrt(), w));
        }
        scales
    }
}

/// Rows `rows` of `m` (f32), as a new matrix.
pub(crate) fn take_rows(m: MatRef<'_, f32>, rows: &[usize]) -> Mat<f32> {
    Mat::from_fn(rows.len(), m.ncols(), |i, j| m[(rows[i], j)])
}

/// `XᵀX` (p×p, f64, both triangles) of the f32 matrix `x` (m×p), over row blocks.
pub(crate) fn gram_of_columns(x: MatRef<'_, f32>) -> Mat<f64> {
    let p = x.ncols();
    let mut g = Mat::<f64>::zeros(p, p);
    for start in (0..x.nrows()).step_by(BLOCK) {
        let rows = BLOCK.min(x.nrows() - start);
        let block = x.subrows(start, rows);
        let block64 = Mat::from_fn(rows, p, |i, j| block[(i, j)] as f64);
        syrk_lower_add(g.as_mut(), block64.transpose());
    }
    symmetrize(&mut g);
    g
}

/// `X Xᵀ` (m×m, f64, both triangles) of the f32 matrix `x` (m×p), over column blocks.
pub(crate) fn gram_of_rows(x: MatRef<'_, f32>) -> Mat<f64> {
    let m = x.nrows();
    let mut k = Mat::<f64>::zeros(m, m);
    for start in (0..x.ncols()).step_by(BLOCK) {
        let cols = BLOCK.min(x.ncols() - start);
        let block = x.subcols(start, cols);
        let block64 = Mat::from_fn(m, cols, |i, j| block[(i, j)] as f64);
        syrk_lower_add(k.as_mut(), block64.as_ref());
    }
    symmetrize(&mut k);
    k
}

/// Copies the lower triangle of the square `m` onto its upper triangle.
pub(crate) fn symmetrize<T: Float>(m: &mut Mat<T>) {
    for j in 0..m.ncols() {
        for i in 0..j {
            m[(i, j)] = m[(j, i)];
        }
    }
}

/// `lhsᵀ · rhs` in f32 (`lhs` m×a, `rhs` m×b → a×b).
pub(crate) fn cross32(lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>) -> Mat<f32> {
    let mut out = Mat::<f32>::zeros(lhs.ncols(), rhs.ncols());
    mul_into(out.as_mut(), lhs.transpose(), rhs);
    out
}

/// `diag(scales) · m · diag(scales)` of a square f64 matrix.
pub(crate) fn scale_both_sides(m: MatRef<'_, f64>, scales: &[f64]) -> Mat<f64> {
    Mat::from_fn(m.nrows(), m.ncols(), |i, j| {
        m[(i, j)] * scales[i] * scales[j]
    })
}

/// `Σ_b weights[b] · kernels[b]` (each n×n).
pub(crate) fn weighted_sum(kernels: &[Mat<f64>], weights: &[f64]) -> Mat<f64> {
    let n = kernels[0].nrows();
    let mut out = Mat::<f64>::zeros(n, n);
    for (k, &w) in kernels.iter().zip(weights) {
        if w == 0.0 {
            continue;
        }
        for j in 0..n {
            let (source, mut target) = (k.col(j), out.col_mut(j));
            for i in 0..n {
                target[i] += w * source[i];
            }
        }
    }
    out
}

/// `a · b` in f64 (a thin wrapper kept for symmetry with [`cross32`]).
pub(crate) fn mul64(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Mat<f64> {
    mul(a, b)
}
