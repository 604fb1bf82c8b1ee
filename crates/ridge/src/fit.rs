//! `RidgeCv`: the estimator configuration and its fitting loops.

use std::ops::Range;

use faer::{Mat, MatRef};
use serde::{Deserialize, Serialize};

use crate::error::{Result, RidgeError};
use crate::linalg::mul32;
use crate::model::{ModelOptions, RidgeModel, TargetRange};
use crate::preprocess::{
    check_finite, column_means, mean_of_rows, take_rows_centered, target_chunk, XTransform,
};
use crate::select::{fold_assignment, score_targets, select_first_best, select_himalaya, Scoring};
use crate::spectral::{
    decompose_fold, decompose_full, hat_diagonal, project_targets, refit_weights,
    residual_shrink_f32, shrink_f32, Spectrum,
};

/// How alphas are validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Cv {
    /// Exact efficient leave-one-out (scikit-learn `RidgeCV(cv=None)`):
    /// residuals `e_i / (1 - h_ii)`, with the unpenalized intercept adding
    /// `1/n` to `h_ii`. Ties → first alpha in grid order.
    Loo,
    /// K-fold CV (himalaya `RidgeCV`/`KernelRidgeCV` with explicit splits):
    /// X and Y re-centered on each training fold, scores averaged over folds
    /// (unweighted), ties → larger alpha. Folds from [`fold_assignment`].
    KFold {
        n_folds: usize,
        /// One label per sample (e.g. stimulus id); `None` = one group per sample.
        groups: Option<Vec<i64>>,
    },
}

/// Serializable summary of the CV scheme, stored in `model.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CvMethod {
    Loo,
    KFold { n_folds: usize, grouped: bool },
}

impl From<&Cv> for CvMethod {
    fn from(cv: &Cv) -> Self {
        match cv {
            Cv::Loo => CvMethod::Loo,
            Cv::KFold { n_folds, groups } => CvMethod::KFold {
                n_folds: *n_folds,
                grouped: groups.is_some(),
            },
        }
    }
}

/// Shard `index` of `count` equal contiguous target ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Target range of this shard among `n_targets` (sizes differ by ≤ 1).
    pub fn target_range(&self, n_targets: usize) -> Result<Range<usize>> {
        if self.count == 0 || self.index >= self.count || self.count > n_targets.max(1) {
            return Err(RidgeError::Options(format!(
                "shard {} of {} is invalid for {} targets",
                self.index, self.count, n_targets
            )));
        }
        let (base, extra) = (n_targets / self.count, n_targets % self.count);
        let start = self.index * base + self.index.min(extra);
        Ok(start..start + base + usize::from(self.index < extra))
    }
}

/// Multi-target ridge regression with one alpha per target chosen from a grid.
///
/// ```no_run
/// # use brainrecon_ridge::{RidgeCv, Cv};
/// # let (x, y) = (faer::Mat::<f32>::zeros(10, 3), faer::Mat::<f32>::zeros(10, 2));
/// let model = RidgeCv { alphas: vec![0.1, 1.0, 10.0], cv: Cv::Loo, ..RidgeCv::default() }
///     .fit(x.as_ref(), y.as_ref())?;
/// let y_hat = model.predict(x.as_ref())?;
/// # Ok::<(), brainrecon_ridge::RidgeError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RidgeCv {
    /// Candidate alphas (> 0, finite); the model keeps them in this order.
    pub alphas: Vec<f64>,
    pub cv: Cv,
    pub scoring: Scoring,
    /// Centre X and Y; `intercept = mean_y - mean_xᵀ W`.
    pub fit_intercept: bool,
    /// Scale X columns to unit population variance (inside the model).
    pub standardize: bool,
    /// Targets processed together; bounds the n×chunk per-alpha buffers.
    pub target_chunk: usize,
}

impl Default for RidgeCv {
    /// `alphas = 10^-2 … 10^6` (9 values), LOO, negative MSE, intercept,
    /// no standardization, chunks of 2048 targets.
    fn default() -> Self {
        Self {
            alphas: (-2..=6).map(|e| 10f64.powi(e)).collect(),
            cv: Cv::Loo,
            scoring: Scoring::NegMse,
            fit_intercept: true,
            standardize: false,
            target_chunk: 2048,
        }
    }
}

/// Outcome of a CV loop: scores (n_alphas×t), chosen grid index per target,
/// refit weights for the transformed X (p×t).
struct CvFit {
    scores: Mat<f64>,
    best: Vec<usize>,
    weights: Mat<f64>,
}

/// Preprocessed training data shared by the fitting loops.
struct Prepared<'a> {
    x_transform: XTransform,
    design: Mat<f64>,
    y: MatRef<'a, f32>,
    targets: Range<usize>,
    y_mean: Vec<f64>,
}

impl RidgeCv {
    /// Fits all targets. `x`: n×p, `y`: n×t.
    pub fn fit(&self, x: MatRef<'_, f32>, y: MatRef<'_, f32>) -> Result<RidgeModel> {
        self.fit_targets(x, y, 0..y.ncols())
    }

    /// Fits from row-major buffers (as read from C-order .npy files).
    /// `x` has `x_shape = (n, p)`, `y` has `y_shape = (n, t)`.
    pub fn fit_row_major(
        &self,
        x: &[f32],
        x_shape: (usize, usize),
        y: &[f32],
        y_shape: (usize, usize),
    ) -> Result<RidgeModel> {
        let x = row_major_view("X", x, x_shape)?;
        let y = row_major_view("Y", y, y_shape)?;
        self.fit(x, y)
    }

    /// Fits only the targets of `shard` (see [`Shard::target_range`]); merge
    /// the shard models with [`RidgeModel::merge`].
    pub fn fit_shard(
        &self,
        x: MatRef<'_, f32>,
        y: MatRef<'_, f32>,
        shard: Shard,
    ) -> Result<RidgeModel> {
        let range = shard.target_range(y.ncols())?;
        self.fit_targets(x, y, range)
    }

    /// Fits the target columns `targets` of `y`.
    pub fn fit_targets(
        &self,
        x: MatRef<'_, f32>,
        y: MatRef<'_, f32>,
        targets: Range<usize>,
    ) -> Result<RidgeModel> {
        self.validate(x, y, &targets)?;
        let x_transform = XTransform::fit(x, self.fit_intercept, self.standardize);
        let y_mean = if self.fit_intercept {
            column_means(y.subcols(targets.start, targets.len()))
        } else {
            vec![0.0; targets.len()]
        };
        let prepared = Prepared {
            design: x_transform.apply(x),
            x_transform,
            y,
            targets,
            y_mean,
        };
        let (solver, spectrum) = decompose_full(prepared.design.as_ref())?;
        let CvFit {
            scores,
            best,
            weights,
        } = match &self.cv {
            Cv::Loo => self.fit_loo(&prepared, &spectrum)?,
            Cv::KFold { n_folds, groups } => {
                let folds = fold_assignment(x.nrows(), *n_folds, groups.as_deref())?;
                self.fit_kfold(&prepared, &spectrum, &folds, *n_folds)?
            }
        };
        Ok(self.assemble(prepared, solver, scores, best, weights))
    }

    fn validate(
        &self,
        x: MatRef<'_, f32>,
        y: MatRef<'_, f32>,
        targets: &Range<usize>,
    ) -> Result<()> {
        if x.nrows() != y.nrows() {
            return Err(RidgeError::Shape(format!(
                "X has {} rows but Y has {}",
                x.nrows(),
                y.nrows()
            )));
        }
        if x.nrows() < 2 || x.ncols() == 0 || y.ncols() == 0 {
            return Err(RidgeError::Shape(format!(
                "need ≥ 2 samples, ≥ 1 feature and ≥ 1 target (X is {}×{}, Y is {}×{})",
                x.nrows(),
                x.ncols(),
                y.nrows(),
                y.ncols()
            )));
        }
        if targets.start >= targets.end || targets.end > y.ncols() {
            return Err(RidgeError::Options(format!(
                "target range {targets:?} outside 0..{}",
                y.ncols()
            )));
        }
        if self.alphas.is_empty() {
            return Err(RidgeError::AlphaGrid("the grid is empty".into()));
        }
        if let Some(bad) = self.alphas.iter().find(|a| !(a.is_finite() && **a > 0.0)) {
            return Err(RidgeError::AlphaGrid(format!(
                "alpha {bad} is not strictly positive and finite"
            )));
        }
        if self.target_chunk == 0 {
            return Err(RidgeError::Options("target_chunk must be ≥ 1".into()));
        }
        check_finite("X", x)?;
        check_finite("Y", y.subcols(targets.start, targets.len()))
    }

    /// Chunks of the fitted target range (local indices).
    fn chunks(&self, n_targets: usize) -> impl Iterator<Item = Range<usize>> + '_ {
        (0..n_targets)
            .step_by(self.target_chunk)
            .map(move |start| start..(start + self.target_chunk).min(n_targets))
    }

    /// LOO scores (n_alphas×t) and refit weights, one pass per chunk.
    fn fit_loo(&self, data: &Prepared<'_>, spectrum: &Spectrum) -> Result<CvFit> {
        let n_targets = data.targets.len();
        let mut scores = Mat::<f64>::zeros(self.alphas.len(), n_targets);
        let mut best = vec![0; n_targets];
        let mut weights = Mat::<f64>::zeros(data.design.ncols(), n_targets);
        let intercept_leverage = if self.fit_intercept {
            1.0 / data.design.nrows() as f64
        } else {
            0.0
        };
        let leverage = spectrum
            .leverage
            .as_ref()
            .expect("full factorization has leverage");
        for chunk in self.chunks(n_targets) {
            let y_c = self.centered_chunk(data, chunk.clone());
            let projected = project_targets(spectrum, y_c.as_ref());
            for (k, &alpha) in self.alphas.iter().enumerate() {
                let (residual, one_minus_hat) =
                    loo_residuals(spectrum, leverage.as_ref(), projected.as_ref(), &y_c, alpha);
                // LOO prediction: y_i - e_i / (1 - h_ii), h_ii including the intercept's 1/n
                let loo_pred = Mat::from_fn(residual.nrows(), residual.ncols(), |i, j| {
                    (y_c[(i, j)] - residual[(i, j)] / (one_minus_hat[i] - intercept_leverage))
                        as f32
                });
                for (j, s) in score_targets(y_c.as_ref(), loo_pred.as_ref(), self.scoring)
                    .into_iter()
                    .enumerate()
                {
                    scores[(k, chunk.start + j)] = s;
                }
            }
            let chunk_best: Vec<usize> = chunk
                .clone()
                .map(|j| select_first_best(&column(&scores, j)))
                .collect();
            self.store_weights(
                spectrum,
                projected.as_ref(),
                &chunk,
                &chunk_best,
                &mut weights,
            );
            best[chunk].copy_from_slice(&chunk_best);
        }
        Ok(CvFit {
            scores,
            best,
            weights,
        })
    }

    /// K-fold scores (n_alphas×t, averaged over folds) and refit weights.
    fn fit_kfold(
        &self,
        data: &Prepared<'_>,
        full: &Spectrum,
        folds: &[usize],
        n_folds: usize,
    ) -> Result<CvFit> {
        let n_targets = data.targets.len();
        let mut scores = Mat::<f64>::zeros(self.alphas.len(), n_targets);
        for fold in 0..n_folds {
            let eval_rows: Vec<usize> = (0..folds.len()).filter(|&i| folds[i] == fold).collect();
            let fit_rows: Vec<usize> = (0..folds.len()).filter(|&i| folds[i] != fold).collect();
            let x_offset = if self.fit_intercept {
                mean_of_rows(data.design.as_ref(), &fit_rows)
            } else {
                vec![0.0; data.design.ncols()]
            };
            let spectrum = decompose_fold(
                take_rows_centered(data.design.as_ref(), &fit_rows, &x_offset).as_ref(),
                take_rows_centered(data.design.as_ref(), &eval_rows, &x_offset).as_ref(),
            )?;
            for chunk in self.chunks(n_targets) {
                let y_c = self.centered_chunk(data, chunk.clone());
                let y_offset = if self.fit_intercept {
                    mean_of_rows(y_c.as_ref(), &fit_rows)
                } else {
                    vec![0.0; chunk.len()]
                };
                let y_fit = take_rows_centered(y_c.as_ref(), &fit_rows, &y_offset);
                let y_eval = take_rows_centered(y_c.as_ref(), &eval_rows, &y_offset);
                let projected = project_targets(&spectrum, y_fit.as_ref());
                for (k, &alpha) in self.alphas.iter().enumerate() {
                    let shrunk = shrink_f32(&spectrum.eigenvalues, projected.as_ref(), alpha);
                    let pred = mul32(spectrum.eval_basis.as_ref(), shrunk.as_ref());
                    for (j, s) in score_targets(y_eval.as_ref(), pred.as_ref(), self.scoring)
                        .into_iter()
                        .enumerate()
                    {
                        scores[(k, chunk.start + j)] += s / n_folds as f64;
                    }
                }
            }
        }
        let best: Vec<usize> = (0..n_targets)
            .map(|j| select_himalaya(&column(&scores, j), &self.alphas))
            .collect();
        let mut weights = Mat::<f64>::zeros(data.design.ncols(), n_targets);
        for chunk in self.chunks(n_targets) {
            let projected =
                project_targets(full, self.centered_chunk(data, chunk.clone()).as_ref());
            self.store_weights(
                full,
                projected.as_ref(),
                &chunk,
                &best[chunk.clone()],
                &mut weights,
            );
        }
        Ok(CvFit {
            scores,
            best,
            weights,
        })
    }

    /// Target chunk (local range) of Y, centered with the full-data mean (f64).
    fn centered_chunk(&self, data: &Prepared<'_>, chunk: Range<usize>) -> Mat<f64> {
        let global = data.targets.start + chunk.start..data.targets.start + chunk.end;
        target_chunk(data.y, global, &data.y_mean[chunk])
    }

    fn store_weights(
        &self,
        full: &Spectrum,
        projected: MatRef<'_, f64>,
        chunk: &Range<usize>,
        best: &[usize],
        out: &mut Mat<f64>,
    ) {
        let chosen: Vec<f64> = best.iter().map(|&k| self.alphas[k]).collect();
        let w = refit_weights(full, projected, &chosen);
        for j in 0..chunk.len() {
            for i in 0..w.nrows() {
                out[(i, chunk.start + j)] = w[(i, j)];
            }
        }
    }

    /// Maps weights to raw-X space and packs the model.
    fn assemble(
        &self,
        data: Prepared<'_>,
        solver: crate::Solver,
        scores: Mat<f64>,
        best: Vec<usize>,
        weights_std: Mat<f64>,
    ) -> RidgeModel {
        let XTransform { mean, scale } = data.x_transform;
        let weights = Mat::from_fn(weights_std.nrows(), weights_std.ncols(), |i, j| {
            weights_std[(i, j)] / scale[i]
        });
        let intercept = (0..weights.ncols())
            .map(|j| {
                (data.y_mean[j]
                    - (0..weights.nrows())
                        .map(|i| mean[i] * weights[(i, j)])
                        .sum::<f64>()) as f32
            })
            .collect();
        RidgeModel {
            weights: Mat::from_fn(weights.nrows(), weights.ncols(), |i, j| {
                weights[(i, j)] as f32
            }),
            intercept,
            x_mean: mean.iter().map(|&v| v as f32).collect(),
            x_scale: scale.iter().map(|&v| v as f32).collect(),
            alphas: best.iter().map(|&k| self.alphas[k]).collect(),
            cv_scores: Mat::from_fn(scores.nrows(), scores.ncols(), |i, j| scores[(i, j)] as f32),
            alpha_grid: self.alphas.clone(),
            options: ModelOptions {
                cv: CvMethod::from(&self.cv),
                scoring: self.scoring,
                fit_intercept: self.fit_intercept,
                standardize: self.standardize,
                solver,
            },
            target_range: TargetRange {
                start: data.targets.start,
                end: data.targets.end,
                total: data.y.ncols(),
            },
            metadata: Default::default(),
        }
    }
}

/// In-sample residuals (n×t) and `1 - h_ii` (n, without the intercept term) at `alpha`.
fn loo_residuals(
    spectrum: &Spectrum,
    leverage: MatRef<'_, f64>,
    projected: MatRef<'_, f64>,
    y_c: &Mat<f64>,
    alpha: f64,
) -> (Mat<f64>, Vec<f64>) {
    let s = &spectrum.eigenvalues;
    if let Some((q, q_squared)) = &spectrum.dual_residual {
        let residual = mul32(
            q.as_ref(),
            residual_shrink_f32(s, projected, alpha).as_ref(),
        );
        let weights: Vec<f64> = s.iter().map(|&e| alpha / (e + alpha)).collect();
        let one_minus_hat = (0..q_squared.nrows())
            .map(|i| {
                (0..weights.len())
                    .map(|j| q_squared[(i, j)] * weights[j])
                    .sum()
            })
            .collect();
        return (
            Mat::from_fn(residual.nrows(), residual.ncols(), |i, j| {
                residual[(i, j)] as f64
            }),
            one_minus_hat,
        );
    }
    let fitted = mul32(
        spectrum.eval_basis.as_ref(),
        shrink_f32(s, projected, alpha).as_ref(),
    );
    let residual = Mat::from_fn(fitted.nrows(), fitted.ncols(), |i, j| {
        y_c[(i, j)] - fitted[(i, j)] as f64
    });
    let one_minus_hat = hat_diagonal(leverage, s, alpha)
        .into_iter()
        .map(|h| 1.0 - h)
        .collect();
    (residual, one_minus_hat)
}

fn column(m: &Mat<f64>, j: usize) -> Vec<f64> {
    (0..m.nrows()).map(|i| m[(i, j)]).collect()
}

/// Row-major buffer as an (n×p) view, checking the length.
pub fn row_major_view<'a>(
    name: &str,
    data: &'a [f32],
    shape: (usize, usize),
) -> Result<MatRef<'a, f32>> {
    let (rows, cols) = shape;
    if rows.checked_mul(cols) != Some(data.len()) {
        return Err(RidgeError::Shape(format!(
            "{name}: buffer of {} values does not hold a {rows}×{cols} array",
            data.len()
        )));
    }
    Ok(MatRef::from_row_major_slice(data, rows, cols))
}
