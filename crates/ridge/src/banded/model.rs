//! The fitted banded ridge model: weights per band, chosen hyperparameters, predictions.

use faer::{Mat, MatRef};

use super::check_bands;
use crate::error::{Result, RidgeError};
use crate::linalg::mul_add;
use crate::select::Scoring;

/// A banded ridge model fitted by [`super::BandedRidgeCv`].
///
/// `predict(X_0, …, X_{B−1}) = Σ_b X_b · primal[b] + intercept` on raw (uncentered) bands.
#[derive(Debug, Clone, PartialEq)]
pub struct BandedModel {
    /// Feature count p_b of each band.
    pub widths: Vec<usize>,
    /// The candidates searched (n_iter rows of B band weights).
    pub candidates: Vec<Vec<f64>>,
    /// Index of each target's chosen candidate (t).
    pub best_candidate: Vec<usize>,
    /// Each target's chosen alpha (t).
    pub alphas: Vec<f64>,
    /// Mean CV score over folds at the best alpha of each candidate (n_iter×t; himalaya's
    /// `cv_scores_`, without its 1e-10·ln α tie-breaking tilt).
    pub cv_scores: Mat<f32>,
    /// himalaya's `dual_coef_` (n×t): `α (K_γ + αI)⁻¹ y` on the centered training data,
    /// which equals the refit's training residuals.
    pub dual: Mat<f32>,
    /// Primal weights of each band (p_b×t): `γ_b X_bᵀ (K_γ + αI)⁻¹ y`.
    pub primal: Vec<Mat<f32>>,
    /// Per target: `y_mean − Σ_b x_mean_bᵀ primal_b` (zeros without intercept).
    pub intercept: Vec<f32>,
    /// Training column means of each band (zeros without intercept).
    pub x_mean: Vec<Vec<f32>>,
    /// Training target means (zeros without intercept).
    pub y_mean: Vec<f32>,
    /// Whether bands and targets were centred ([`super::BandedRidgeCv::fit_intercept`]).
    pub fit_intercept: bool,
    /// The validation score `cv_scores` holds.
    pub scoring: Scoring,
}

impl BandedModel {
    /// Number of targets t.
    pub fn n_targets(&self) -> usize {
        self.alphas.len()
    }

    /// The chosen band weights γ (B×t).
    pub fn best_gammas(&self) -> Mat<f64> {
        Mat::from_fn(self.widths.len(), self.n_targets(), |b, j| {
            self.candidates[self.best_candidate[j]][b]
        })
    }

    /// himalaya's `deltas_` (B×t): `ln(γ_b / α)`; −∞ where a band's weight is 0.
    pub fn deltas(&self) -> Mat<f64> {
        let gammas = self.best_gammas();
        Mat::from_fn(gammas.nrows(), gammas.ncols(), |b, j| {
            (gammas[(b, j)] / self.alphas[j]).ln()
        })
    }

    /// Each target's CV score at its chosen (γ, α) (t).
    pub fn best_scores(&self) -> Vec<f32> {
        (0..self.n_targets())
            .map(|j| self.cv_scores[(self.best_candidate[j], j)])
            .collect()
    }

    /// Predictions (n×t) for raw bands `bands[b]` (n×p_b each).
    pub fn predict(&self, bands: &[MatRef<'_, f32>]) -> Result<Mat<f32>> {
        let n = self.check_prediction_input(bands)?;
        let mut y = Mat::<f32>::zeros(n, self.n_targets());
        for (band, weights) in bands.iter().zip(&self.primal) {
            mul_add(y.as_mut(), *band, weights.as_ref(), 1.0);
        }
        for (j, &b) in self.intercept.iter().enumerate() {
            let mut column = y.col_mut(j);
            for i in 0..n {
                column[i] += b;
            }
        }
        Ok(y)
    }

    /// The prediction of each band's part (B matrices n×t): `(X_b − x_mean_b) · primal_b`.
    ///
    /// `Σ_b parts[b] + y_mean = predict(bands)`; without intercept the parts are himalaya's
    /// `predict(X, split=True)`. These are the inputs of [`crate::r2_score_split`] (with
    /// targets centered by `y_mean`).
    pub fn predict_split(&self, bands: &[MatRef<'_, f32>]) -> Result<Vec<Mat<f32>>> {
        let n = self.check_prediction_input(bands)?;
        let mut parts = Vec::with_capacity(bands.len());
        for ((band, weights), mean) in bands.iter().zip(&self.primal).zip(&self.x_mean) {
            let centered = Mat::from_fn(n, band.ncols(), |i, j| band[(i, j)] - mean[j]);
            let mut part = Mat::<f32>::zeros(n, self.n_targets());
            mul_add(part.as_mut(), centered.as_ref(), weights.as_ref(), 1.0);
            parts.push(part);
        }
        Ok(parts)
    }

    /// Checks band count, widths, rows and values; returns the row count.
    fn check_prediction_input(&self, bands: &[MatRef<'_, f32>]) -> Result<usize> {
        if bands.len() != self.widths.len() {
            return Err(RidgeError::Shape(format!(
                "{} feature bands given, the model has {}",
                bands.len(),
                self.widths.len()
            )));
        }
        for (b, (band, &width)) in bands.iter().zip(&self.widths).enumerate() {
            if band.ncols() != width {
                return Err(RidgeError::Shape(format!(
                    "band {b} has {} features, the model expects {width}",
                    band.ncols()
                )));
            }
        }
        check_bands(bands, bands[0].nrows(), 1)?;
        Ok(bands[0].nrows())
    }
}
