//! Input validation and the centering/scaling applied before the solver.

use faer::{Mat, MatRef};

use crate::error::{Result, RidgeError};
use crate::linalg::Float;

/// Errors on the first NaN/∞ of `m` (in row-major order), naming the array, row and column.
pub(crate) fn check_finite(array: &'static str, m: MatRef<'_, f32>) -> Result<()> {
    // fast scan in memory order; the slow row-major search runs only on failure
    let all_finite = if m.col_stride() == 1 {
        (0..m.nrows()).all(|i| {
            let row = m.row(i);
            (0..m.ncols()).all(|j| row[j].is_finite())
        })
    } else {
        (0..m.ncols()).all(|j| {
            let col = m.col(j);
            (0..m.nrows()).all(|i| col[i].is_finite())
        })
    };
    match all_finite {
        true => Ok(()),
        false => Err(first_non_finite_row_major(array, m).expect("a non-finite value exists")),
    }
}

fn first_non_finite_row_major(array: &'static str, m: MatRef<'_, f32>) -> Option<RidgeError> {
    (0..m.nrows()).find_map(|row| {
        (0..m.ncols()).find_map(|col| {
            let value = m[(row, col)];
            (!value.is_finite()).then_some(RidgeError::NonFinite {
                array,
                row,
                col,
                value,
            })
        })
    })
}

/// Per-column mean (f64), length = ncols.
pub(crate) fn column_means(m: MatRef<'_, f32>) -> Vec<f64> {
    let n = m.nrows().max(1) as f64;
    let mut sums = vec![0.0f64; m.ncols()];
    if m.col_stride() == 1 {
        // row-major input (a C-order .npy): walk it in memory order
        for i in 0..m.nrows() {
            let row = m.row(i);
            for (j, s) in sums.iter_mut().enumerate() {
                *s += row[j] as f64;
            }
        }
    } else {
        for (j, s) in sums.iter_mut().enumerate() {
            let col = m.col(j);
            *s = (0..m.nrows()).map(|i| col[i] as f64).sum();
        }
    }
    sums.into_iter().map(|s| s / n).collect()
}

/// Population standard deviation per column (ddof = 0, like StandardScaler),
/// with near-constant columns given scale 1 so they pass through unchanged.
pub(crate) fn column_scales(m: MatRef<'_, f32>, means: &[f64]) -> Vec<f64> {
    let n = m.nrows().max(1) as f64;
    (0..m.ncols())
        .map(|j| {
            let var = (0..m.nrows())
                .map(|i| (m[(i, j)] as f64 - means[j]).powi(2))
                .sum::<f64>()
                / n;
            let std = var.sqrt();
            // same spirit as sklearn's _handle_zeros_in_scale: constant columns keep scale 1
            if std > 10.0 * f64::EPSILON * means[j].abs().max(1.0) {
                std
            } else {
                1.0
            }
        })
        .collect()
}

/// Column statistics that define the model's input transform `(x - mean) / scale`.
#[derive(Clone)]
pub(crate) struct XTransform {
    /// Centering (p); zeros when no intercept is fitted.
    pub mean: Vec<f64>,
    /// Scaling (p); ones when not standardizing.
    pub scale: Vec<f64>,
}

impl XTransform {
    /// Statistics of `x` (n×p). Centering happens only with an intercept;
    /// `standardize` without intercept scales without centering
    /// (StandardScaler(with_mean=False)).
    pub fn fit(x: MatRef<'_, f32>, fit_intercept: bool, standardize: bool) -> Self {
        let means = column_means(x);
        let scale = if standardize {
            column_scales(x, &means)
        } else {
            vec![1.0; x.ncols()]
        };
        let mean = if fit_intercept {
            means
        } else {
            vec![0.0; x.ncols()]
        };
        Self { mean, scale }
    }

    /// The transformed design `(x - mean) / scale` in f64 (n×p).
    pub fn apply(&self, x: MatRef<'_, f32>) -> Mat<f64> {
        assert_eq!(x.ncols(), self.mean.len(), "feature count");
        Mat::from_fn(x.nrows(), x.ncols(), |i, j| {
            (x[(i, j)] as f64 - self.mean[j]) / self.scale[j]
        })
    }
}

/// Rows `rows` of `m`, minus `offset` per column (f64).
pub(crate) fn take_rows_centered(m: MatRef<'_, f64>, rows: &[usize], offset: &[f64]) -> Mat<f64> {
    assert_eq!(offset.len(), m.ncols(), "offset length");
    Mat::from_fn(rows.len(), m.ncols(), |i, j| m[(rows[i], j)] - offset[j])
}

/// Mean over `rows` of each column of `m` (f64).
pub(crate) fn mean_of_rows(m: MatRef<'_, f64>, rows: &[usize]) -> Vec<f64> {
    let n = rows.len().max(1) as f64;
    (0..m.ncols())
        .map(|j| rows.iter().map(|&i| m[(i, j)]).sum::<f64>() / n)
        .collect()
}

/// Target columns `cols` of `y` (n×t, f32) minus `offset` (len = cols.len()), in precision `T`.
pub(crate) fn target_chunk<T: Float>(
    y: MatRef<'_, f32>,
    cols: std::ops::Range<usize>,
    offset: &[f64],
) -> Mat<T> {
    assert_eq!(offset.len(), cols.len(), "offset per target");
    let sub = y.subcols(cols.start, cols.len());
    let mut out = Mat::<T>::zeros(y.nrows(), cols.len());
    // Row-major Y (a C-order .npy) is read in bands of rows, so each cache
    // line of Y is used for all its columns before it is evicted.
    const BAND: usize = 32;
    for start in (0..sub.nrows()).step_by(BAND) {
        let band = start..(start + BAND).min(sub.nrows());
        for (j, &o) in offset.iter().enumerate() {
            let mut col = out.col_mut(j);
            for i in band.clone() {
                col[i] = T::of(sub[(i, j)] as f64 - o);
            }
        }
    }
    out
}
