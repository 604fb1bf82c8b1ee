//! Banded ridge regression (multiple-kernel ridge with linear kernels) by random search over
//! the band weights, with himalaya's semantics (`MultipleKernelRidgeCV` /
//! `BandedRidgeCV`, solver `"random_search"`).
//!
//! Each feature band `X_b` (n×p_b) gets its own regularization: the model is ridge on the
//! scaled design `[√γ_0 X_0, …, √γ_{B−1} X_{B−1}]` with penalty α, i.e. kernel ridge with
//! `K = Σ_b γ_b X_b X_bᵀ`. For every candidate γ (rows summing to 1), every alpha of the
//! grid is scored by cross-validation; each target keeps the (γ, α) with the best mean score
//! (himalaya's `deltas_ = ln(γ/α)`), then all targets are refit on all data.
//!
//! Cost: per candidate and fold, one eigendecomposition (p×p when p is at most the training
//! rows, else the n_train×n_train kernel), then one f32 GEMM per alpha and chunk of targets
//! (see the `search` module).
//!
//! Memory: besides the model (dual n×t, primal p×t), the primal view keeps `XᵀY` and one
//! fold's `X_trᵀY_tr` (p×t each) and held-out targets (n_te×t), all f32; the dual view the
//! band kernels (B·n²) and one fold's training targets (n_tr×t).

mod design;
mod gammas;
mod model;
mod refit;
mod search;

use faer::MatRef;

pub use gammas::{dirichlet_candidates, Candidates};
pub use model::BandedModel;

use crate::error::{Result, RidgeError};
use crate::fit::{row_major_view, trace};
use crate::preprocess::{check_finite, column_means};
use crate::select::{fold_assignment, Scoring};
use crate::spectral::Solver;
use design::Design;
use search::Search;

/// How the samples are split for cross-validation.
#[derive(Debug, Clone, PartialEq)]
pub enum BandedCv {
    /// scikit-learn `KFold(n_splits)` without shuffling: contiguous blocks of samples.
    KFold(usize),
    /// One fold per distinct label (e.g. run index: leave-one-run-out; scikit-learn
    /// `LeaveOneGroupOut`).
    Groups(Vec<i64>),
}

/// Banded ridge with a random search over band weights, per-target selection.
///
/// ```no_run
/// # use brainrecon_ridge::{BandedRidgeCv, BandedCv, Candidates};
/// # let (a, b, y) = (faer::Mat::<f32>::zeros(20, 3), faer::Mat::<f32>::zeros(20, 5), faer::Mat::<f32>::zeros(20, 2));
/// let model = BandedRidgeCv {
///     candidates: Candidates::Explicit(vec![vec![0.5, 0.5], vec![0.9, 0.1], vec![0.1, 0.9]]),
///     cv: BandedCv::KFold(5),
///     ..BandedRidgeCv::default()
/// }
/// .fit(&[a.as_ref(), b.as_ref()], y.as_ref())?;
/// let parts = model.predict_split(&[a.as_ref(), b.as_ref()])?;
/// # Ok::<(), brainrecon_ridge::RidgeError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BandedRidgeCv {
    /// Candidate alphas (> 0, finite).
    pub alphas: Vec<f64>,
    /// The band weights searched.
    pub candidates: Candidates,
    /// How the samples are split for the search.
    pub cv: BandedCv,
    /// Validation score (mean over folds; higher is better).
    pub scoring: Scoring,
    /// Centre the bands and targets (per training fold during the search, like himalaya's
    /// `fit_intercept=True`).
    pub fit_intercept: bool,
    /// Targets processed together (bounds the per-alpha buffers).
    pub target_chunk: usize,
}

impl Default for BandedRidgeCv {
    /// himalaya's random-search defaults (100 candidates, concentrations [0.1, 1], 5 folds)
    /// with alphas 10^-2 … 10^6, an intercept and chunks of 2048 targets; but R² scoring
    /// (himalaya scores with negative MSE, `Scoring::NegMse`), which compares across voxels.
    fn default() -> Self {
        BandedRidgeCv {
            alphas: (-2..=6).map(|e| 10f64.powi(e)).collect(),
            candidates: Candidates::default(),
            cv: BandedCv::KFold(5),
            scoring: Scoring::R2,
            fit_intercept: true,
            target_chunk: 2048,
        }
    }
}

impl BandedRidgeCv {
    /// Fits `y` (n×t) from the bands `bands[b]` (n×p_b each, at least one).
    pub fn fit(&self, bands: &[MatRef<'_, f32>], y: MatRef<'_, f32>) -> Result<BandedModel> {
        trace("banded: start");
        check_bands(bands, y.nrows(), 2)?;
        if y.ncols() == 0 {
            return Err(RidgeError::Shape("Y has no target column".into()));
        }
        check_finite("Y", y)?;
        self.check_options()?;
        let candidates = self.candidates.resolve(bands.len())?;
        let (folds, n_folds) = self.folds(y.nrows())?;
        let design = Design::new(bands, self.fit_intercept);
        let y_mean = match self.fit_intercept {
            true => column_means(y),
            false => vec![0.0; y.ncols()],
        };
        let smallest_train = (0..n_folds)
            .map(|f| folds.iter().filter(|&&g| g != f).count())
            .min()
            .unwrap_or(0);
        let search = Search {
            design: &design,
            y,
            y_mean: &y_mean,
            fit_intercept: self.fit_intercept,
            folds: &folds,
            n_folds,
            candidates: &candidates,
            alphas: &self.alphas,
            scoring: self.scoring,
            chunk: self.target_chunk,
            solver: Solver::for_shape(smallest_train, design.p()),
        };
        let shared = search.shared();
        trace("banded: shared products");
        let scores = search.scores(&shared)?;
        let selection = search::select(&scores, &self.alphas);
        let weights = refit::refit(&search, &shared, &selection)?;
        trace("banded: refit");
        Ok(assemble(
            &design, &y_mean, self, candidates, selection, weights,
        ))
    }

    /// [`BandedRidgeCv::fit`] from row-major buffers (C-order .npy): `bands[b]` with shape
    /// `(n, p_b)`, `y` with shape `(n, t)`.
    pub fn fit_row_major(
        &self,
        bands: &[(&[f32], (usize, usize))],
        y: &[f32],
        y_shape: (usize, usize),
    ) -> Result<BandedModel> {
        let views = bands
            .iter()
            .map(|(data, shape)| row_major_view("feature band", data, *shape))
            .collect::<Result<Vec<_>>>()?;
        self.fit(&views, row_major_view("Y", y, y_shape)?)
    }

    fn check_options(&self) -> Result<()> {
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
        Ok(())
    }

    /// Fold id per sample and the fold count.
    fn folds(&self, n: usize) -> Result<(Vec<usize>, usize)> {
        match &self.cv {
            BandedCv::KFold(k) => {
                if *k < 2 || *k > n {
                    return Err(RidgeError::Cv(format!(
                        "KFold({k}) needs 2 ≤ folds ≤ samples ({n})"
                    )));
                }
                Ok((fold_assignment(n, *k, None)?, *k))
            }
            BandedCv::Groups(labels) => {
                if labels.len() != n {
                    return Err(RidgeError::Cv(format!(
                        "{} fold labels for {n} samples",
                        labels.len()
                    )));
                }
                let distinct = labels
                    .iter()
                    .collect::<std::collections::HashSet<_>>()
                    .len();
                if distinct < 2 {
                    return Err(RidgeError::Cv(
                        "fold labels: need at least 2 distinct labels (one fold each)".into(),
                    ));
                }
                Ok((fold_assignment(n, distinct, Some(labels))?, distinct))
            }
        }
    }
}

/// Names of the first bands for error messages (errors name arrays statically).
const BAND_NAMES: [&str; 16] = [
    "feature band 0",
    "feature band 1",
    "feature band 2",
    "feature band 3",
    "feature band 4",
    "feature band 5",
    "feature band 6",
    "feature band 7",
    "feature band 8",
    "feature band 9",
    "feature band 10",
    "feature band 11",
    "feature band 12",
    "feature band 13",
    "feature band 14",
    "feature band 15",
];

/// Errors unless there is ≥ 1 band, each with ≥ 1 column, `rows` (≥ `min_rows`) rows and
/// finite values.
pub(crate) fn check_bands(bands: &[MatRef<'_, f32>], rows: usize, min_rows: usize) -> Result<()> {
    if bands.is_empty() {
        return Err(RidgeError::Shape("no feature band given".into()));
    }
    if rows < min_rows {
        return Err(RidgeError::Shape(format!(
            "need ≥ {min_rows} samples, found {rows}"
        )));
    }
    for (b, band) in bands.iter().enumerate() {
        if band.ncols() == 0 {
            return Err(RidgeError::Shape(format!("feature band {b} has no column")));
        }
        if band.nrows() != rows {
            return Err(RidgeError::Shape(format!(
                "feature band {b} has {} rows, expected {rows} (the rows of Y / band 0)",
                band.nrows()
            )));
        }
        let name = BAND_NAMES
            .get(b)
            .copied()
            .unwrap_or("a feature band past the 16th");
        check_finite(name, *band)?;
    }
    Ok(())
}

/// Packs the model: per-band weights, intercept, and the search's outcome.
fn assemble(
    design: &Design,
    y_mean: &[f64],
    options: &BandedRidgeCv,
    candidates: Vec<Vec<f64>>,
    selection: search::Selection,
    weights: refit::Weights,
) -> BandedModel {
    let t = y_mean.len();
    let ranges = design.band_ranges();
    let intercept = (0..t)
        .map(|j| {
            let offset: f64 = (0..design.p())
                .map(|i| design.mean[i] * weights.primal[(i, j)] as f64)
                .sum();
            (y_mean[j] - offset) as f32
        })
        .collect();
    let scores = &selection.candidate_scores;
    BandedModel {
        widths: design.widths.clone(),
        candidates,
        best_candidate: selection.candidate,
        alphas: selection.alpha,
        cv_scores: faer::Mat::from_fn(scores.nrows(), t, |g, j| scores[(g, j)] as f32),
        dual: weights.dual,
        primal: ranges
            .iter()
            .map(|r| weights.primal.subrows(r.start, r.len()).to_owned())
            .collect(),
        intercept,
        x_mean: ranges
            .iter()
            .map(|r| design.mean[r.clone()].iter().map(|&m| m as f32).collect())
            .collect(),
        y_mean: y_mean.iter().map(|&m| m as f32).collect(),
        fit_intercept: options.fit_intercept,
        scoring: options.scoring,
    }
}
