//! Per-target scores of predictions, with NaN-ignoring summaries.

use faer::MatRef;

use crate::error::{Result, RidgeError};

/// Mean and median of the finite entries (NaN when none are finite).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Mean of the finite entries.
    pub mean: f64,
    /// Median of the finite entries.
    pub median: f64,
}

/// Summary over finite values, like `np.nanmean` / `np.nanmedian`.
pub fn summarize(values: &[f64]) -> Summary {
    let mut finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return Summary {
            mean: f64::NAN,
            median: f64::NAN,
        };
    }
    finite.sort_by(f64::total_cmp);
    let m = finite.len();
    let median = if m % 2 == 1 {
        finite[m / 2]
    } else {
        0.5 * (finite[m / 2 - 1] + finite[m / 2])
    };
    Summary {
        mean: finite.iter().sum::<f64>() / m as f64,
        median,
    }
}

fn check_same_shape(y_true: MatRef<'_, f32>, y_pred: MatRef<'_, f32>) -> Result<()> {
    if (y_true.nrows(), y_true.ncols()) != (y_pred.nrows(), y_pred.ncols()) {
        return Err(RidgeError::Shape(format!(
            "y_true is {}×{} but y_pred is {}×{}",
            y_true.nrows(),
            y_true.ncols(),
            y_pred.nrows(),
            y_pred.ncols()
        )));
    }
    Ok(())
}

/// Pearson correlation per target column (t). A constant column gives NaN
/// (as `np.corrcoef`); [`summarize`] skips it.
pub fn pearson_per_target(y_true: MatRef<'_, f32>, y_pred: MatRef<'_, f32>) -> Result<Vec<f64>> {
    check_same_shape(y_true, y_pred)?;
    let n = y_true.nrows() as f64;
    Ok((0..y_true.ncols())
        .map(|j| {
            let mean_t = (0..y_true.nrows())
                .map(|i| y_true[(i, j)] as f64)
                .sum::<f64>()
                / n;
            let mean_p = (0..y_true.nrows())
                .map(|i| y_pred[(i, j)] as f64)
                .sum::<f64>()
                / n;
            let (mut cov, mut var_t, mut var_p) = (0.0, 0.0, 0.0);
            for i in 0..y_true.nrows() {
                let (dt, dp) = (
                    y_true[(i, j)] as f64 - mean_t,
                    y_pred[(i, j)] as f64 - mean_p,
                );
                cov += dt * dp;
                var_t += dt * dt;
                var_p += dp * dp;
            }
            if var_t == 0.0 || var_p == 0.0 {
                f64::NAN
            } else {
                cov / (var_t * var_p).sqrt()
            }
        })
        .collect())
}

/// R² per target, as scikit-learn `r2_score(multioutput="raw_values")`:
/// a constant true column scores 1.0 if predicted exactly, else 0.0.
pub fn r2_per_target(y_true: MatRef<'_, f32>, y_pred: MatRef<'_, f32>) -> Result<Vec<f64>> {
    check_same_shape(y_true, y_pred)?;
    let n = y_true.nrows() as f64;
    Ok((0..y_true.ncols())
        .map(|j| {
            let mean = (0..y_true.nrows())
                .map(|i| y_true[(i, j)] as f64)
                .sum::<f64>()
                / n;
            let sse: f64 = (0..y_true.nrows())
                .map(|i| (y_true[(i, j)] as f64 - y_pred[(i, j)] as f64).powi(2))
                .sum();
            let sst: f64 = (0..y_true.nrows())
                .map(|i| (y_true[(i, j)] as f64 - mean).powi(2))
                .sum();
            match (sst == 0.0, sse == 0.0) {
                (false, _) => 1.0 - sse / sst,
                (true, true) => 1.0,
                (true, false) => 0.0,
            }
        })
        .collect())
}
