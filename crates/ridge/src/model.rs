//! The fitted model: prediction and merging of target shards.

use std::collections::BTreeMap;

use faer::{Mat, MatRef};
use serde::{Deserialize, Serialize};

use crate::error::{Result, RidgeError};
use crate::fit::{primal_intercepts, row_major_view, CvMethod};
use crate::linalg::{mul32, mul_add};
use crate::preprocess::{check_finite, XTransform};
use crate::select::Scoring;
use crate::spectral::{block_ranges, design_block_t, dual_refit_into, raw_units_f32, Solver};

/// Fit options recorded in the model (and in `model.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelOptions {
    /// How alphas were validated.
    pub cv: CvMethod,
    /// The validation score in `cv_scores`.
    pub scoring: Scoring,
    /// Whether X and Y were centred.
    pub fit_intercept: bool,
    /// Whether X columns were scaled to unit variance.
    pub standardize: bool,
    /// Which normal equations were decomposed.
    pub solver: Solver,
}

/// Which targets of the full problem this model holds: `start..end` of `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRange {
    /// First target held (0-based).
    pub start: usize,
    /// One past the last target held.
    pub end: usize,
    /// Targets of the full problem.
    pub total: usize,
}

/// Fitted multi-target ridge model; `predict(x) = x · weights + intercept`
/// on raw (unscaled, uncentered) X, or from its [`DualForm`].
#[derive(Debug, Clone, PartialEq)]
pub struct RidgeModel {
    /// p×t weights in raw-X space (standardization folded in); p×0 in a dual model.
    pub weights: Mat<f32>,
    /// t intercepts (`mean_y - x_meanᵀ weights`; 0 without intercept). A dual model's
    /// intercepts are the target means, as its design is centred.
    pub intercept: Vec<f32>,
    /// p column means used for centering (zeros without intercept).
    pub x_mean: Vec<f32>,
    /// p column scales (population std with `standardize`, else ones).
    pub x_scale: Vec<f32>,
    /// t chosen alphas.
    pub alphas: Vec<f64>,
    /// n_alphas×t CV scores (see [`Scoring`]; higher is better).
    pub cv_scores: Mat<f32>,
    /// The alpha grid, in the order given.
    pub alpha_grid: Vec<f64>,
    /// The fit's options.
    pub options: ModelOptions,
    /// The targets this model holds (all of them unless fitted or merged as shards).
    pub target_range: TargetRange,
    /// Free-form annotations (ROI, feature names, subject...) saved in model.json.
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// The model kept as dual coefficients and its training X (see [`crate::RidgeCv::dual`]).
    pub dual: Option<DualForm>,
}

/// A model kept in its dual (kernel) form, as himalaya's `KernelRidge` keeps it: with
/// `D = (X − x_mean) / x_scale`, `predict(x) = D(x) · D(train_x)ᵀ · coefficients + intercept`.
/// For p > n it skips the refit of p×t weights (2·p·n·t operations) and is smaller when t is
/// large; [`RidgeModel::to_primal`] does that refit when the weights are wanted.
#[derive(Debug, Clone, PartialEq)]
pub struct DualForm {
    /// n×t dual coefficients of the transformed design.
    pub coefficients: Mat<f32>,
    /// n×p training predictors, raw.
    pub train_x: Mat<f32>,
}

impl RidgeModel {
    /// Number of features p.
    pub fn n_features(&self) -> usize {
        self.weights.nrows()
    }

    /// Number of targets t held by this model.
    pub fn n_targets(&self) -> usize {
        self.intercept.len()
    }

    /// The same model with primal weights: itself, or a dual model's weights
    /// `D(train_x)ᵀ · coefficients` in raw-X units with intercepts `mean_y − x_meanᵀ W`.
    pub fn to_primal(&self) -> RidgeModel {
        let Some(dual) = &self.dual else {
            return self.clone();
        };
        let transform = self.x_transform();
        let (p, t) = (self.n_features(), self.n_targets());
        let mut weights = Mat::<f32>::zeros(p, t);
        dual_refit_into(
            weights.as_mut(),
            dual.train_x.as_ref(),
            &transform,
            dual.coefficients.as_ref(),
        );
        let weights = raw_units_f32(weights, &transform);
        let y_mean: Vec<f64> = self.intercept.iter().map(|&b| b as f64).collect();
        let intercept = primal_intercepts(&weights, &transform.mean, &y_mean);
        RidgeModel {
            weights,
            intercept,
            dual: None,
            ..self.clone_without_dual()
        }
    }

    /// The model's fields other than its weights, intercepts and dual form.
    fn clone_without_dual(&self) -> RidgeModel {
        RidgeModel {
            weights: Mat::zeros(0, 0),
            intercept: Vec::new(),
            x_mean: self.x_mean.clone(),
            x_scale: self.x_scale.clone(),
            alphas: self.alphas.clone(),
            cv_scores: self.cv_scores.clone(),
            alpha_grid: self.alpha_grid.clone(),
            options: self.options.clone(),
            target_range: self.target_range,
            metadata: self.metadata.clone(),
            dual: None,
        }
    }

    /// The model's centring and scaling of X.
    fn x_transform(&self) -> XTransform {
        XTransform {
            mean: self.x_mean.iter().map(|&v| v as f64).collect(),
            scale: self.x_scale.iter().map(|&v| v as f64).collect(),
        }
    }

    /// A dual model's predictions without intercepts: `D(x) · D(train_x)ᵀ · C` (m×t), the
    /// kernel `D(x) · D(train_x)ᵀ` (m×n) accumulated over feature blocks.
    fn predict_dual(&self, dual: &DualForm, x: MatRef<'_, f32>) -> Mat<f32> {
        let transform = self.x_transform();
        let kernel = cross_kernel(x, dual.train_x.as_ref(), &transform);
        mul32(kernel.as_ref(), dual.coefficients.as_ref())
    }

    /// Predictions (n×t) for raw `x` (n×p).
    pub fn predict(&self, x: MatRef<'_, f32>) -> Result<Mat<f32>> {
        if x.ncols() != self.n_features() {
            return Err(RidgeError::Shape(format!(
                "X has {} features, the model expects {}",
                x.ncols(),
                self.n_features()
            )));
        }
        check_finite("X", x)?;
        let mut y = match &self.dual {
            Some(dual) => self.predict_dual(dual, x),
            None => mul32(x, self.weights.as_ref()),
        };
        for (j, &b) in self.intercept.iter().enumerate() {
            for i in 0..y.nrows() {
                y[(i, j)] += b;
            }
        }
        Ok(y)
    }

    /// Predictions as a row-major (n×t) buffer from a row-major (n×p) buffer.
    pub fn predict_row_major(&self, x: &[f32], x_shape: (usize, usize)) -> Result<Vec<f32>> {
        let y = self.predict(row_major_view("X", x, x_shape)?)?;
        Ok((0..y.nrows())
            .flat_map(|i| (0..y.ncols()).map(move |j| (i, j)))
            .map(|(i, j)| y[(i, j)])
            .collect())
    }

    /// CV score of the chosen alpha, per target (t).
    pub fn best_cv_scores(&self) -> Vec<f32> {
        (0..self.n_targets())
            .map(|j| {
                let k = self
                    .alpha_grid
                    .iter()
                    .position(|&a| a == self.alphas[j])
                    .unwrap_or(0);
                self.cv_scores[(k, j)]
            })
            .collect()
    }

    /// Weights for standardized X (`weights · x_scale`, p×t), for interpretation (a dual
    /// model's after [`RidgeModel::to_primal`]).
    pub fn weights_standardized(&self) -> Mat<f32> {
        let primal;
        let weights = if self.dual.is_some() {
            primal = self.to_primal();
            &primal.weights
        } else {
            &self.weights
        };
        Mat::from_fn(self.n_features(), self.n_targets(), |i, j| {
            weights[(i, j)] * self.x_scale[i]
        })
    }

    /// Concatenates shard models (any order) into one covering their targets.
    ///
    /// Shards must share features, preprocessing (x_mean/x_scale bit-exact),
    /// alpha grid and options, and their target ranges must tile `0..total`
    /// without gap or overlap. Metadata maps are unioned (first wins).
    pub fn merge(shards: Vec<RidgeModel>) -> Result<RidgeModel> {
        let mut shards = shards;
        shards.sort_by_key(|m| m.target_range.start);
        let summaries: Vec<ShardSummary> = shards
            .iter()
            .enumerate()
            .map(|(k, m)| ShardSummary::of(m, format!("shard {k}")))
            .collect();
        check_shards(&summaries)?;
        let first = &shards[0];
        let total = first.target_range.total;
        for (k, shard) in shards.iter().enumerate() {
            check_same_x(first, shard, &format!("shard {k}"))?;
        }
        let concat = |get: &dyn Fn(&RidgeModel) -> MatRef<'_, f32>| {
            let rows = get(first).nrows();
            let mut out = Mat::<f32>::zeros(rows, total);
            for shard in &shards {
                let part = get(shard);
                for j in 0..part.ncols() {
                    for i in 0..rows {
                        out[(i, shard.target_range.start + j)] = part[(i, j)];
                    }
                }
            }
            out
        };
        let weights = concat(&|m| m.weights.as_ref());
        let cv_scores = concat(&|m| m.cv_scores.as_ref());
        let metadata = merged_metadata(shards.iter().map(|m| &m.metadata));
        Ok(RidgeModel {
            weights,
            cv_scores,
            intercept: shards
                .iter()
                .flat_map(|m| m.intercept.iter().copied())
                .collect(),
            alphas: shards
                .iter()
                .flat_map(|m| m.alphas.iter().copied())
                .collect(),
            x_mean: first.x_mean.clone(),
            x_scale: first.x_scale.clone(),
            alpha_grid: first.alpha_grid.clone(),
            options: first.options.clone(),
            target_range: TargetRange {
                start: 0,
                end: total,
                total,
            },
            metadata,
            dual: None,
        })
    }
}

/// The metadata of a model merged from `shards` (in target order): their keys, the first
/// shard's value winning, except `shard` (which names one shard, `index/count`): the merged
/// model records `merged_shards`, how many it was made of, instead.
pub(crate) fn merged_metadata<'a>(
    shards: impl DoubleEndedIterator<Item = &'a BTreeMap<String, serde_json::Value>>,
) -> BTreeMap<String, serde_json::Value> {
    let mut metadata = BTreeMap::new();
    let mut count = 0usize;
    for shard in shards.rev() {
        metadata.extend(shard.clone());
        count += 1;
    }
    if metadata.remove("shard").is_some() {
        metadata.insert("merged_shards".into(), serde_json::json!(count));
    }
    metadata
}

/// `D(a) · D(b)ᵀ` (m×n) for raw `a` (m×p) and `b` (n×p) under one transform, a block of
/// features at a time.
fn cross_kernel(a: MatRef<'_, f32>, b: MatRef<'_, f32>, transform: &XTransform) -> Mat<f32> {
    let mut kernel = Mat::<f32>::zeros(a.nrows(), b.nrows());
    for cols in block_ranges(a.ncols()) {
        let a_t = design_block_t::<f32>(a, transform, 0..a.nrows(), cols.clone());
        let b_t = design_block_t::<f32>(b, transform, 0..b.nrows(), cols);
        mul_add(kernel.as_mut(), a_t.transpose(), b_t.as_ref(), 1.0);
    }
    kernel
}

/// What a shard says about itself, for the merge's checks: one set of rules whether the
/// shards are in memory ([`RidgeModel::merge`]) or saved ([`crate::io::merge_saved`]).
pub(crate) struct ShardSummary<'a> {
    /// How a refusal names the shard (`shard 2`, or its `model.json`).
    pub name: String,
    pub n_features: usize,
    pub alpha_grid: &'a [f64],
    pub options: &'a ModelOptions,
    pub dual: bool,
    pub range: TargetRange,
}

/// Refuses `shard` where its features, alpha grid or options differ from `first`'s, or it is a
/// dual model; the message names both.
fn check_same_fields(first: &ShardSummary, shard: &ShardSummary) -> Result<()> {
    let differs = |field: &str, expected: String, found: String| {
        Err(RidgeError::Merge(format!(
            "{}: {field}: expected {expected} as in {}, found {found}",
            shard.name, first.name
        )))
    };
    if shard.n_features != first.n_features {
        return differs(
            "n_features",
            first.n_features.to_string(),
            shard.n_features.to_string(),
        );
    }
    if shard.alpha_grid != first.alpha_grid {
        return differs(
            "alpha_grid",
            format!("{:?}", first.alpha_grid),
            format!("{:?}", shard.alpha_grid),
        );
    }
    if shard.options != first.options {
        return differs(
            "options",
            format!("{:?}", first.options),
            format!("{:?}", shard.options),
        );
    }
    if shard.dual {
        return Err(RidgeError::Merge(format!(
            "{}: form: a dual model (fit shards with primal weights, or convert each with to_primal)",
            shard.name
        )));
    }
    Ok(())
}

/// The merge's rules for a block of targets from `start` against the first block written:
/// [`check_shards`]' fields, and the same X preprocessing.
pub(crate) fn check_compatible(
    reference: &RidgeModel,
    block: &RidgeModel,
    start: usize,
) -> Result<()> {
    check_same_fields(
        &ShardSummary::of(reference, "the first block".into()),
        &ShardSummary::of(block, format!("the block from target {start}")),
    )?;
    check_same_x(reference, block, &format!("the block from target {start}"))
}

/// Refuses `block` (named `name`) where its X preprocessing is not `reference`'s, bit for bit.
fn check_same_x(reference: &RidgeModel, block: &RidgeModel, name: &str) -> Result<()> {
    if block.x_mean != reference.x_mean || block.x_scale != reference.x_scale {
        return Err(RidgeError::Merge(format!(
            "{name}: X preprocessing (x_mean / x_scale) differs from the first's: shards must be fitted on the same X"
        )));
    }
    Ok(())
}

impl<'a> ShardSummary<'a> {
    fn of(model: &'a RidgeModel, name: String) -> Self {
        ShardSummary {
            name,
            n_features: model.n_features(),
            alpha_grid: &model.alpha_grid,
            options: &model.options,
            dual: model.dual.is_some(),
            range: model.target_range,
        }
    }
}

/// Checks that `shards`, sorted by first target, can be merged: the first shard's features,
/// alpha grid and options in every shard, primal weights, and target ranges that tile
/// `0..total`. Each refusal names the shard and, for a difference, the first shard.
pub(crate) fn check_shards(shards: &[ShardSummary]) -> Result<()> {
    let Some(first) = shards.first() else {
        return Err(RidgeError::Merge("no shard given".into()));
    };
    let mut expected_start = 0;
    for shard in shards {
        check_same_fields(first, shard)?;
        let range = shard.range;
        if range.total != first.range.total || range.start != expected_start {
            return Err(RidgeError::Merge(format!(
                "{}: target_range: covers targets {}..{} of {}, expected to start at {expected_start} of {} (a shard missing or given twice?)",
                shard.name, range.start, range.end, range.total, first.range.total
            )));
        }
        expected_start = range.end;
    }
    if expected_start != first.range.total {
        return Err(RidgeError::Merge(format!(
            "the shards ({} … {}) cover targets 0..{expected_start} of {}: the shards after {expected_start} are missing",
            first.name,
            shards[shards.len() - 1].name,
            first.range.total
        )));
    }
    Ok(())
}
