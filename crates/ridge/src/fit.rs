//! `RidgeCv`: the estimator configuration and its fitting loops.

use std::ops::Range;

use faer::{Mat, MatMut, MatRef};
use serde::{Deserialize, Serialize};

use crate::band::{
    BandCholesky, BandReduction, BlockedBandCholesky, ConstantReflection, BAND_WIDTH,
};
use crate::device::Device;
use crate::error::{Result, RidgeError};
use crate::linalg::{mul32, par_map_cols_mut, par_map_ranges, Float};
use crate::model::{DualForm, ModelOptions, RidgeModel, TargetRange};
use crate::preprocess::{
    check_finite, column_means, mean_of_rows, take_rows_centered, target_chunk, XTransform,
};
use crate::select::{fold_assignment, score_targets, select_first_best, select_himalaya, Scoring};
use crate::spectral::{
    decompose_fold, decompose_full, dual_refit_into, gram_lower, raw_units_f32, shrink_f32, Full,
    Refit, Solver,
};

/// How alphas are validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Cv {
    /// Exact efficient leave-one-out (scikit-learn `RidgeCV(cv=None)`):
    /// residuals `e_i / (1 - h_ii)`, with the unpenalized intercept adding
    /// `1/n` to `h_ii`. Ties → first alpha in grid order.
    Loo,
    /// Generalized cross-validation (Golub, Heath & Wahba 1979): LOO with every
    /// `1 - h_ii` replaced by their mean `tr(I - H)/n`, the intercept counted in
    /// `H`. With p > n it needs no eigendecomposition (see the `band` module),
    /// which makes it up to 3× faster than [`Cv::Loo`] on large wide designs.
    /// Ties → first alpha in grid order.
    Gcv,
    /// K-fold CV (himalaya `RidgeCV`/`KernelRidgeCV` with explicit splits):
    /// X and Y re-centered on each training fold, scores averaged over folds
    /// (unweighted), ties → larger alpha. Folds from [`fold_assignment`].
    KFold {
        /// Number of folds (≥ 2).
        n_folds: usize,
        /// One label per sample (e.g. stimulus id); `None` = one group per sample.
        groups: Option<Vec<i64>>,
    },
}

/// Serializable summary of the CV scheme, stored in `model.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CvMethod {
    /// [`Cv::Loo`].
    Loo,
    /// [`Cv::Gcv`].
    Gcv,
    /// [`Cv::KFold`].
    KFold {
        /// Number of folds.
        n_folds: usize,
        /// Whether folds were built from group labels.
        grouped: bool,
    },
}

impl From<&Cv> for CvMethod {
    fn from(cv: &Cv) -> Self {
        match cv {
            Cv::Loo => CvMethod::Loo,
            Cv::Gcv => CvMethod::Gcv,
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
    /// This shard, 0-based (< `count`).
    pub index: usize,
    /// Number of shards (≥ 1, ≤ the target count).
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
    /// How each alpha is validated (default [`Cv::Loo`]).
    pub cv: Cv,
    /// The validation score maximised per target (default [`Scoring::NegMse`]).
    pub scoring: Scoring,
    /// Centre X and Y; `intercept = mean_y - mean_xᵀ W`.
    pub fit_intercept: bool,
    /// Scale X columns to unit population variance (inside the model).
    pub standardize: bool,
    /// Targets processed together; bounds the n×chunk per-alpha buffers.
    pub target_chunk: usize,
    /// Precision of the Gram/covariance matrix, its eigendecomposition and
    /// the refit (the per-alpha products are always f32 on the CPU; on a GPU
    /// everything runs in this precision).
    pub precision: Precision,
    /// Where the fit runs. A GPU fits GCV and LOO (not K-fold) and chooses its
    /// own target chunk from the free device memory.
    pub device: Device,
    /// Keep the model as dual coefficients and the training X ([`crate::DualForm`]) instead
    /// of refitting p×t weights: for p > n, on the CPU; any CV scheme.
    pub dual: bool,
}

/// Working precision of the decomposition (see [`RidgeCv::precision`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// f64 throughout: matches scikit-learn/himalaya to ~1e-6 even for tiny alphas.
    #[default]
    F64,
    /// f32 Gram matrix and eigendecomposition: about twice as fast and half
    /// the memory; eigenvalues carry an absolute error ~1e-7·‖XᵀX‖, harmless
    /// unless alpha is that small.
    F32,
}

impl Precision {
    /// Every precision, in the order `--help` lists them.
    pub const ALL: [Precision; 2] = [Precision::F64, Precision::F32];

    /// The name `--precision` takes.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F64 => "f64",
            Precision::F32 => "f32",
        }
    }
}

impl Default for RidgeCv {
    /// `alphas = 10^-2 … 10^6` (9 values), LOO, negative MSE, intercept,
    /// no standardization, chunks of 2048 targets, f64 decomposition.
    fn default() -> Self {
        Self {
            alphas: (-2..=6).map(|e| 10f64.powi(e)).collect(),
            cv: Cv::Loo,
            scoring: Scoring::NegMse,
            fit_intercept: true,
            standardize: false,
            target_chunk: 2048,
            precision: Precision::F64,
            device: Device::Cpu,
            dual: false,
        }
    }
}

/// Outcome of a CV loop: scores (n_alphas×t), chosen grid index per target,
/// refit weights in raw-X units (p×t), or with [`RidgeCv::dual`] the dual coefficients (n×t).
struct CvFit {
    scores: Mat<f64>,
    best: Vec<usize>,
    weights: Mat<f32>,
}

/// What [`RidgeCv::fit_gcv_band`] shares across targets: the Gram matrix rotated (with an
/// intercept) and reduced to a band, the band factored at every alpha, and the GCV
/// denominators.
struct BandFactors<T: Float> {
    reflection: Option<ConstantReflection>,
    reduction: BandReduction<T>,
    factors: Vec<BlockedBandCholesky>,
    mean_denominators: Vec<f64>,
}

/// A decomposition of X that every target's fit reuses.
enum Decomposition<T: Float> {
    Band(BandFactors<T>),
    Full(Full<T>),
}

/// One K-fold split: its rows and the decomposition of its training rows.
struct FoldSplit {
    eval_rows: Vec<usize>,
    fit_rows: Vec<usize>,
    spectrum: crate::spectral::FoldSpectrum,
}

/// A fit streamed a block of targets at a time.
struct Stream<'a> {
    x: MatRef<'a, f32>,
    x_transform: &'a XTransform,
    n_targets: usize,
    block: usize,
}

impl<'a> Stream<'a> {
    fn blocks(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        (0..self.n_targets)
            .step_by(self.block)
            .map(move |start| start..(start + self.block).min(self.n_targets))
    }

    /// A block's targets `y` (all of them fitted) as fitting data.
    fn prepared<'b>(&self, y: &'b Mat<f32>, fit_intercept: bool) -> Prepared<'b>
    where
        'a: 'b,
    {
        let y_mean = if fit_intercept {
            column_means(y.as_ref())
        } else {
            vec![0.0; y.ncols()]
        };
        Prepared {
            x_transform: self.x_transform.clone(),
            x: self.x,
            y: y.as_ref(),
            targets: 0..y.ncols(),
            y_mean,
        }
    }

    /// A block's model placed at `range` of all targets.
    fn placed(&self, mut model: RidgeModel, range: Range<usize>) -> RidgeModel {
        model.target_range = TargetRange {
            start: range.start,
            end: range.end,
            total: self.n_targets,
        };
        model
    }
}

/// Training data shared by the fitting loops (X stays the caller's f32 buffer).
#[derive(Clone)]
struct Prepared<'a> {
    x_transform: XTransform,
    x: MatRef<'a, f32>,
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
        trace("start");
        self.validate(x, (y.nrows(), y.ncols()), &targets)?;
        self.check_dual(x)?;
        if let Some(ordinal) = self.device.ordinal() {
            // the GPU checks the values itself, where they already are
            return self.fit_cuda(ordinal, x, y, targets);
        }
        check_finite("X", x)?;
        check_finite("Y", y.subcols(targets.start, targets.len()))?;
        let x_transform = XTransform::fit(x, self.fit_intercept, self.standardize);
        let y_mean = if self.fit_intercept {
            column_means(y.subcols(targets.start, targets.len()))
        } else {
            vec![0.0; targets.len()]
        };
        let data = Prepared {
            x_transform,
            x,
            y,
            targets,
            y_mean,
        };
        match self.precision {
            Precision::F64 => self.fit_prepared::<f64>(data),
            // The float32 Gram matrix carries absolute errors of about eps·p·‖x‖², which can
            // exceed XXᵀ's smallest eigenvalue plus the smallest alpha on large wide designs:
            // the answer in float64 is what was asked for, at twice the cost.
            Precision::F32 => match self.fit_prepared::<f32>(data.clone()) {
                Err(error @ RidgeError::Decomposition(_)) => {
                    warn_refitting_in_f64(&error);
                    self.fit_prepared::<f64>(data)
                }
                fit => fit,
            },
        }
    }

    #[cfg(feature = "cuda")]
    fn fit_cuda(
        &self,
        ordinal: usize,
        x: MatRef<'_, f32>,
        y: MatRef<'_, f32>,
        targets: Range<usize>,
    ) -> Result<RidgeModel> {
        crate::gpu::fit_on_gpu(self, ordinal, x, y, targets)
    }

    #[cfg(not(feature = "cuda"))]
    fn fit_cuda(
        &self,
        ordinal: usize,
        _x: MatRef<'_, f32>,
        _y: MatRef<'_, f32>,
        _targets: Range<usize>,
    ) -> Result<RidgeModel> {
        Err(RidgeError::Gpu(format!(
            "device cuda:{ordinal} needs a build with CUDA support (cargo build --features cuda); \
             this one fits on the CPU only"
        )))
    }

    /// A dual model needs more features than samples and the CPU.
    fn check_dual(&self, x: MatRef<'_, f32>) -> Result<()> {
        if !self.dual {
            return Ok(());
        }
        if self.device.is_cuda() {
            return Err(RidgeError::Options(
                "the dual form is fitted on the CPU only; leave out the device or the dual form"
                    .into(),
            ));
        }
        let (n, p) = (x.nrows(), x.ncols());
        if Solver::for_shape(n, p) == Solver::Primal {
            return Err(RidgeError::Options(format!(
                "the dual form needs more features than samples (X is {n} × {p}): with p ≤ n \
                 the weights (p × targets) are already the smaller model"
            )));
        }
        Ok(())
    }

    fn fit_prepared<T: Float>(&self, data: Prepared<'_>) -> Result<RidgeModel> {
        let decomposition = self.decompose::<T>(data.x, &data.x_transform)?;
        self.fit_decomposed(data, &decomposition)
    }

    /// What every target's fit shares: GCV on a wide design factors the band-reduced Gram
    /// matrix (no eigendecomposition), everything else eigendecomposes the design.
    fn decompose<T: Float>(
        &self,
        x: MatRef<'_, f32>,
        x_transform: &XTransform,
    ) -> Result<Decomposition<T>> {
        let solver = Solver::for_shape(x.nrows(), x.ncols());
        if self.cv == Cv::Gcv && solver == Solver::Dual {
            return Ok(Decomposition::Band(self.band_factors(x, x_transform)?));
        }
        let full = decompose_full::<T>(x, x_transform)?;
        trace("decomposition");
        Ok(Decomposition::Full(full))
    }

    /// The targets of `data` fitted with a decomposition of its X.
    fn fit_decomposed<T: Float>(
        &self,
        data: Prepared<'_>,
        decomposition: &Decomposition<T>,
    ) -> Result<RidgeModel> {
        let (solver, fit) = match decomposition {
            Decomposition::Band(band) => (Solver::Dual, self.fit_gcv_band(&data, band)),
            Decomposition::Full(full) => {
                let fit = match &self.cv {
                    Cv::Loo => self.fit_loo(&data, full, false)?,
                    Cv::Gcv => self.fit_loo(&data, full, true)?,
                    Cv::KFold { n_folds, groups } => {
                        let folds = fold_assignment(data.x.nrows(), *n_folds, groups.as_deref())?;
                        self.fit_kfold(&data, full, &folds, *n_folds)?
                    }
                };
                (full.solver, fit)
            }
        };
        let CvFit {
            scores,
            best,
            weights,
        } = fit;
        let model = self.assemble(data, solver, scores, best, weights);
        trace("model assembled");
        Ok(model)
    }

    /// Fits `n_targets` targets a block at a time, so that neither Y nor the weights are ever
    /// whole in memory: X is decomposed once, `load(range)` gives a block's target columns
    /// (n×len) and `put` takes the block's model (its `target_range` within `0..n_targets`).
    /// Blocks are `block` targets rounded up to a multiple of `target_chunk`, so each block's
    /// model holds what [`RidgeCv::fit`] gives for those targets. CPU only.
    pub fn fit_streamed(
        &self,
        x: MatRef<'_, f32>,
        n_targets: usize,
        block: usize,
        load: &mut dyn FnMut(Range<usize>) -> Result<Mat<f32>>,
        put: &mut dyn FnMut(RidgeModel) -> Result<()>,
    ) -> Result<()> {
        if self.device != Device::Cpu {
            return Err(RidgeError::Options(
                "fits streamed a block of targets at a time run on the CPU".into(),
            ));
        }
        if self.dual {
            return Err(RidgeError::Options(
                "a fit streamed a block of targets at a time writes primal weights, not the \
                 dual form"
                    .into(),
            ));
        }
        if n_targets == 0 || block == 0 {
            return Err(RidgeError::Options(format!(
                "need ≥ 1 target and a block of ≥ 1 (found {n_targets} targets, block {block})"
            )));
        }
        // the blocks of Y come later: X and the options are checked against Y's shape
        self.validate(x, (x.nrows(), n_targets), &(0..n_targets))?;
        check_finite("X", x)?;
        let x_transform = XTransform::fit(x, self.fit_intercept, self.standardize);
        let block = block.div_ceil(self.target_chunk) * self.target_chunk;
        let stream = Stream {
            x,
            x_transform: &x_transform,
            n_targets,
            block,
        };
        match self.precision {
            Precision::F64 => {
                self.fit_blocks(&self.decompose::<f64>(x, &x_transform)?, &stream, load, put)
            }
            // as in `fit_targets`: a float32 decomposition that fails is redone in float64
            // (before any block is fitted)
            Precision::F32 => match self.decompose::<f32>(x, &x_transform) {
                Err(error @ RidgeError::Decomposition(_)) => {
                    warn_refitting_in_f64(&error);
                    let decomposition = self.decompose::<f64>(x, &x_transform)?;
                    self.fit_blocks(&decomposition, &stream, load, put)
                }
                decomposition => self.fit_blocks(&decomposition?, &stream, load, put),
            },
        }
    }

    fn fit_blocks<T: Float>(
        &self,
        decomposition: &Decomposition<T>,
        stream: &Stream<'_>,
        load: &mut dyn FnMut(Range<usize>) -> Result<Mat<f32>>,
        put: &mut dyn FnMut(RidgeModel) -> Result<()>,
    ) -> Result<()> {
        if let (Cv::KFold { n_folds, groups }, Decomposition::Full(full)) =
            (&self.cv, decomposition)
        {
            let folds = fold_assignment(stream.x.nrows(), *n_folds, groups.as_deref())?;
            return self.fit_blocks_kfold(full, stream, (&folds, *n_folds), load, put);
        }
        for range in stream.blocks() {
            let y = self.load_block(stream, range.clone(), load)?;
            let model =
                self.fit_decomposed(stream.prepared(&y, self.fit_intercept), decomposition)?;
            put(stream.placed(model, range))?;
        }
        Ok(())
    }

    /// K-fold a block at a time, fold by fold (one fold's decomposition in memory): every
    /// block is read once per fold for its scores, then once more for its refit.
    fn fit_blocks_kfold<T: Float>(
        &self,
        full: &Full<T>,
        stream: &Stream<'_>,
        (folds, n_folds): (&[usize], usize),
        load: &mut dyn FnMut(Range<usize>) -> Result<Mat<f32>>,
        put: &mut dyn FnMut(RidgeModel) -> Result<()>,
    ) -> Result<()> {
        let mut scores = Mat::<f64>::zeros(self.alphas.len(), stream.n_targets);
        let design = stream.x_transform.apply(stream.x);
        for fold in 0..n_folds {
            let split = self.fold_split(design.as_ref(), folds, fold)?;
            for range in stream.blocks() {
                let y = self.load_block(stream, range.clone(), load)?;
                let data = stream.prepared(&y, self.fit_intercept);
                let block_scores = scores.as_mut().subcols_mut(range.start, range.len());
                self.add_fold_scores(&data, &split, n_folds, block_scores);
            }
        }
        drop(design);
        for range in stream.blocks() {
            let y = self.load_block(stream, range.clone(), load)?;
            let data = stream.prepared(&y, self.fit_intercept);
            let block_scores = scores.as_ref().subcols(range.start, range.len());
            let (best, weights) = self.kfold_refit(&data, full, block_scores);
            let model = self.assemble(data, full.solver, block_scores.to_owned(), best, weights);
            put(stream.placed(model, range))?;
        }
        Ok(())
    }

    /// Block `range` of the targets from `load`, checked.
    fn load_block(
        &self,
        stream: &Stream<'_>,
        range: Range<usize>,
        load: &mut dyn FnMut(Range<usize>) -> Result<Mat<f32>>,
    ) -> Result<Mat<f32>> {
        let n = stream.x.nrows();
        let y = load(range.clone())?;
        if (y.nrows(), y.ncols()) != (n, range.len()) {
            return Err(RidgeError::Shape(format!(
                "targets {range:?}: expected a {n}×{} block, found {}×{}",
                range.len(),
                y.nrows(),
                y.ncols()
            )));
        }
        check_finite("Y", y.as_ref())?;
        Ok(y)
    }

    /// Checks X, Y's shape `(rows, columns)`, the fitted target range and the options.
    fn validate(
        &self,
        x: MatRef<'_, f32>,
        (y_rows, y_cols): (usize, usize),
        targets: &Range<usize>,
    ) -> Result<()> {
        if x.nrows() != y_rows {
            return Err(RidgeError::Shape(format!(
                "X has {} rows but Y has {y_rows}",
                x.nrows()
            )));
        }
        if x.nrows() < 2 || x.ncols() == 0 || y_cols == 0 {
            return Err(RidgeError::Shape(format!(
                "need ≥ 2 samples, ≥ 1 feature and ≥ 1 target (X is {}×{}, Y is \
                 {y_rows}×{y_cols})",
                x.nrows(),
                x.ncols()
            )));
        }
        if targets.start >= targets.end || targets.end > y_cols {
            return Err(RidgeError::Options(format!(
                "target range {targets:?} outside 0..{y_cols}"
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
        Ok(())
    }

    /// Chunks of the fitted target range (local indices).
    fn chunks(&self, n_targets: usize) -> impl Iterator<Item = Range<usize>> + '_ {
        (0..n_targets)
            .step_by(self.target_chunk)
            .map(move |start| start..(start + self.target_chunk).min(n_targets))
    }

    /// LOO scores (n_alphas×t) and refit weights, one pass per chunk; with
    /// `gcv`, the GCV scores (every `1 - h_ii` replaced by their mean).
    ///
    /// Per alpha: one f32 GEMM for the residuals, then one fused pass that
    /// divides by `1 - h_ii` and reduces to a score per target (no n×t
    /// prediction buffers).
    fn fit_loo<T: Float>(&self, data: &Prepared<'_>, full: &Full<T>, gcv: bool) -> Result<CvFit> {
        let n = data.x.nrows();
        let n_targets = data.targets.len();
        let mut scores = Mat::<f64>::zeros(self.alphas.len(), n_targets);
        let mut best = vec![0; n_targets];
        let mut refit = Refit::new(full, data.x.ncols(), n_targets);
        let intercept_leverage = if self.fit_intercept {
            1.0 / n as f64
        } else {
            0.0
        };
        // the hat diagonal depends on alpha only, not on the targets
        let denominators: Vec<Vec<f64>> = self
            .alphas
            .iter()
            .map(|&alpha| {
                let loo: Vec<f64> = full
                    .one_minus_hat(alpha)
                    .into_iter()
                    .map(|d| d - intercept_leverage)
                    .collect();
                if gcv {
                    let mean = loo.iter().sum::<f64>() / n as f64;
                    vec![mean; n]
                } else {
                    loo
                }
            })
            .collect();
        for chunk in self.chunks(n_targets) {
            let y_c = self.centered_chunk::<T>(data, chunk.clone());
            let y32 = crate::linalg::to_f32(y_c.as_ref());
            let sst = if self.scoring == Scoring::R2 {
                column_sst(y32.as_ref())
            } else {
                Vec::new()
            };
            let projected = full.project(y_c.as_ref());
            drop(y_c);
            trace("projection");
            let mut product = Mat::<f32>::zeros(n, chunk.len());
            let truth = full.product_is_fitted().then_some(y32.as_ref());
            for (k, &alpha) in self.alphas.iter().enumerate() {
                full.grid_product(projected.as_ref(), alpha, product.as_mut());
                let sse = loo_sse(product.as_ref(), truth, &denominators[k]);
                for (j, e) in sse.into_iter().enumerate() {
                    scores[(k, chunk.start + j)] = match self.scoring {
                        Scoring::NegMse => -e / n as f64,
                        Scoring::R2 if sst[j] == 0.0 => 0.0,
                        Scoring::R2 => 1.0 - e / sst[j],
                    };
                }
            }
            trace("LOO scores over the grid");
            let chunk_best: Vec<usize> = chunk
                .clone()
                .map(|j| select_first_best(&column(&scores, j)))
                .collect();
            let chosen: Vec<f64> = chunk_best.iter().map(|&k| self.alphas[k]).collect();
            refit.add(full, projected.as_ref(), chunk.start, &chosen);
            best[chunk].copy_from_slice(&chunk_best);
        }
        let weights = refit.finish(full.solver, data.x, &data.x_transform, self.dual);
        trace("refit");
        Ok(CvFit {
            scores,
            best,
            weights,
        })
    }

    /// GCV on a wide design (p > n) from a band reduction of the Gram matrix (see the `band`
    /// module): no eigendecomposition, and per alpha only band work. Scores as in
    /// [`RidgeCv::fit_loo`] with `gcv`; dual coefficients `Q₁ (B + α_j I)⁻¹ Q₁ᵀ y_j`.
    fn band_factors<T: Float>(
        &self,
        x: MatRef<'_, f32>,
        x_transform: &XTransform,
    ) -> Result<BandFactors<T>> {
        let n = x.nrows();
        let mut gram = gram_lower::<T>(x, x_transform);
        trace("Gram matrix");
        // with an intercept, the constant direction (a null vector of the centered Gram
        // matrix) is rotated out first: see ConstantReflection
        let reflection = self.fit_intercept.then(|| ConstantReflection::new(n));
        if let Some(reflection) = &reflection {
            gram = reflection.deflate(gram);
        }
        let m = gram.nrows();
        // small problems get a narrower band, so that they too are reduced panel by panel
        let width = (m / 4).clamp(1, BAND_WIDTH);
        let reduction = BandReduction::new(gram, width);
        trace("band reduction");
        let band = reduction.band();
        let factors = self
            .alphas
            .iter()
            .map(|&alpha| {
                BandCholesky::factor(&band, alpha).ok_or(RidgeError::Decomposition(
                    "Gram XXᵀ + αI (not positive definite at this precision: \
                     use float64 or larger alphas)",
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        // tr(I - H)/n per alpha, the mean of the LOO denominators 1 - h_ii (the intercept's
        // leverage and the dropped constant direction's α/(0+α) = 1 cancel)
        let mean_denominators: Vec<f64> = factors
            .iter()
            .zip(&self.alphas)
            .map(|(factor, &alpha)| alpha * factor.inverse_trace() / n as f64)
            .collect();
        let blocked: Vec<BlockedBandCholesky> =
            factors.iter().map(BlockedBandCholesky::new).collect();
        drop(factors);
        trace("band factorizations");
        Ok(BandFactors {
            reflection,
            reduction,
            factors: blocked,
            mean_denominators,
        })
    }

    /// GCV scores, dual coefficients and weights of `data`'s targets from [`band_factors`].
    fn fit_gcv_band<T: Float>(&self, data: &Prepared<'_>, band: &BandFactors<T>) -> CvFit {
        let n = data.x.nrows();
        let n_targets = data.targets.len();
        let BandFactors {
            reflection,
            reduction,
            factors,
            mean_denominators,
        } = band;
        let m = reduction.n();
        let mut scores = Mat::<f64>::zeros(self.alphas.len(), n_targets);
        let mut best = vec![0; n_targets];
        // each chunk is finished (dual coefficients, refit) before the next: no n×t buffer
        // (unless the dual coefficients are the model)
        let rows = if self.dual { n } else { data.x.ncols() };
        let mut weights = Mat::<T>::zeros(rows, n_targets);
        let grid = BandGrid {
            factors,
            alphas: &self.alphas,
            mean_denominators,
            scoring: self.scoring,
            n,
        };
        let mut phases = Phases::new(["Q₁ᵀY", "banded solves", "Q₁·", "refit"]);
        for chunk in self.chunks(n_targets) {
            // the chunk's buffer holds the targets, then (in place) its dual coefficients
            let mut y_c = self.centered_chunk::<T>(data, chunk.clone());
            let sst = if self.scoring == Scoring::R2 {
                column_sst(crate::linalg::to_f32(y_c.as_ref()).as_ref())
            } else {
                vec![0.0; chunk.len()]
            };
            // the centered targets have no constant part: after the reflection row 0 is
            // rounding only, and the reduced problem lives in rows 1..n
            if let Some(reflection) = &reflection {
                reflection.apply(y_c.as_mut());
            }
            let skip = n - m;
            phases.start();
            reduction.apply_qt(y_c.as_mut().subrows_mut(skip, m));
            phases.end(0);
            // each thread scores its columns over the grid and overwrites them with their
            // solves at the best alpha
            let pieces = par_map_cols_mut(y_c.as_mut().subrows_mut(skip, m), |columns, at| {
                let width = columns.ncols();
                grid.solve_columns(columns, &sst[at..at + width])
            });
            phases.end(1);
            let mut at = chunk.start;
            for piece in pieces {
                for (local, column_scores) in piece.scores.iter().enumerate() {
                    for (k, &score) in column_scores.iter().enumerate() {
                        scores[(k, at + local)] = score;
                    }
                }
                best[at..at + piece.best.len()].copy_from_slice(&piece.best);
                at += piece.best.len();
            }
            // dual coefficients Q₁ (B + αI)⁻¹ Q₁ᵀ y, then the weights Dᵀ · coefficients
            reduction.apply_q(y_c.as_mut().subrows_mut(skip, m));
            phases.end(2);
            if let Some(reflection) = &reflection {
                y_c.as_mut().row_mut(0).fill(T::of(0.0));
                reflection.apply(y_c.as_mut());
            }
            let mut chunk_weights = weights.as_mut().subcols_mut(chunk.start, chunk.len());
            if self.dual {
                chunk_weights.copy_from(y_c.as_ref());
            } else {
                dual_refit_into(chunk_weights, data.x, &data.x_transform, y_c.as_ref());
            }
            phases.end(3);
        }
        phases.trace();
        trace("GCV scores, dual coefficients and refit, a chunk of targets at a time");
        let weights = if self.dual {
            T::into_f32(weights)
        } else {
            raw_units_f32(weights, &data.x_transform)
        };
        CvFit {
            scores,
            best,
            weights,
        }
    }

    /// K-fold scores (n_alphas×t, averaged over folds) and refit weights.
    fn fit_kfold<T: Float>(
        &self,
        data: &Prepared<'_>,
        full: &Full<T>,
        folds: &[usize],
        n_folds: usize,
    ) -> Result<CvFit> {
        let n_targets = data.targets.len();
        let mut scores = Mat::<f64>::zeros(self.alphas.len(), n_targets);
        let design = data.x_transform.apply(data.x);
        for fold in 0..n_folds {
            let split = self.fold_split(design.as_ref(), folds, fold)?;
            self.add_fold_scores(data, &split, n_folds, scores.as_mut());
        }
        drop(design);
        let (best, weights) = self.kfold_refit(data, full, scores.as_ref());
        Ok(CvFit {
            scores,
            best,
            weights,
        })
    }

    /// Fold `fold`'s rows and the eigendecomposition of its training part.
    fn fold_split(
        &self,
        design: MatRef<'_, f64>,
        folds: &[usize],
        fold: usize,
    ) -> Result<FoldSplit> {
        let eval_rows: Vec<usize> = (0..folds.len()).filter(|&i| folds[i] == fold).collect();
        let fit_rows: Vec<usize> = (0..folds.len()).filter(|&i| folds[i] != fold).collect();
        let x_offset = if self.fit_intercept {
            mean_of_rows(design, &fit_rows)
        } else {
            vec![0.0; design.ncols()]
        };
        let spectrum = decompose_fold(
            take_rows_centered(design, &fit_rows, &x_offset).as_ref(),
            take_rows_centered(design, &eval_rows, &x_offset).as_ref(),
        )?;
        Ok(FoldSplit {
            eval_rows,
            fit_rows,
            spectrum,
        })
    }

    /// Adds one fold's scores (over the grid, divided by `n_folds`) of `data`'s targets to
    /// `scores` (n_alphas × targets).
    fn add_fold_scores(
        &self,
        data: &Prepared<'_>,
        split: &FoldSplit,
        n_folds: usize,
        mut scores: MatMut<'_, f64>,
    ) {
        for chunk in self.chunks(data.targets.len()) {
            let y_c = self.centered_chunk::<f64>(data, chunk.clone());
            let y_offset = if self.fit_intercept {
                mean_of_rows(y_c.as_ref(), &split.fit_rows)
            } else {
                vec![0.0; chunk.len()]
            };
            let y_fit = take_rows_centered(y_c.as_ref(), &split.fit_rows, &y_offset);
            let y_eval = take_rows_centered(y_c.as_ref(), &split.eval_rows, &y_offset);
            let spectrum = &split.spectrum;
            let projected = spectrum.project(y_fit.as_ref());
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

    /// The best alpha of each of `data`'s targets from its K-fold `scores`, and the weights
    /// refitted on all rows at those alphas.
    fn kfold_refit<T: Float>(
        &self,
        data: &Prepared<'_>,
        full: &Full<T>,
        scores: MatRef<'_, f64>,
    ) -> (Vec<usize>, Mat<f32>) {
        let n_targets = data.targets.len();
        let best: Vec<usize> = (0..n_targets)
            .map(|j| {
                let column: Vec<f64> = (0..scores.nrows()).map(|k| scores[(k, j)]).collect();
                select_himalaya(&column, &self.alphas)
            })
            .collect();
        let mut refit = Refit::new(full, data.x.ncols(), n_targets);
        for chunk in self.chunks(n_targets) {
            let projected = full.project(self.centered_chunk::<T>(data, chunk.clone()).as_ref());
            let chosen: Vec<f64> = best[chunk.clone()]
                .iter()
                .map(|&k| self.alphas[k])
                .collect();
            refit.add(full, projected.as_ref(), chunk.start, &chosen);
        }
        let weights = refit.finish(full.solver, data.x, &data.x_transform, self.dual);
        (best, weights)
    }

    /// Target chunk (local range) of Y, centered with the full-data mean.
    fn centered_chunk<T: Float>(&self, data: &Prepared<'_>, chunk: Range<usize>) -> Mat<T> {
        let global = data.targets.start + chunk.start..data.targets.start + chunk.end;
        target_chunk(data.y, global, &data.y_mean[chunk])
    }

    /// Packs the model; `weights` are in raw-X units (see [`Refit::finish`]).
    fn assemble(
        &self,
        data: Prepared<'_>,
        solver: crate::Solver,
        scores: Mat<f64>,
        best: Vec<usize>,
        weights: Mat<f32>,
    ) -> RidgeModel {
        let XTransform { mean, scale } = data.x_transform;
        let (weights, intercept, dual) = if self.dual {
            let train_x = crate::linalg::to_owned_tiled(data.x);
            let intercept = data.y_mean.iter().map(|&m| m as f32).collect();
            let dual = DualForm {
                coefficients: weights,
                train_x,
            };
            (Mat::zeros(data.x.ncols(), 0), intercept, Some(dual))
        } else {
            let intercept = primal_intercepts(&weights, &mean, &data.y_mean);
            (weights, intercept, None)
        };
        RidgeModel {
            weights,
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
            dual,
        }
    }
}

/// Says that a float32 fit failed with `error` and is redone in float64.
fn warn_refitting_in_f64(error: &RidgeError) {
    eprintln!(
        "warning: ridge in float32: {error} (its rounding errors exceed the smallest alphas): \
         refitting in float64, at about twice the time"
    );
}

/// `mean_y − x_meanᵀ W` per target of the raw-X weights `weights` (p×t).
pub(crate) fn primal_intercepts(weights: &Mat<f32>, x_mean: &[f64], y_mean: &[f64]) -> Vec<f32> {
    (0..weights.ncols())
        .map(|j| {
            let column = weights.col(j);
            let centre: f64 = (0..weights.nrows())
                .map(|i| x_mean[i] * column[i] as f64)
                .sum();
            (y_mean[j] - centre) as f32
        })
        .collect()
}

/// With `BRAINRECON_RIDGE_TRACE` set, prints the seconds since the previous
/// step to stderr (profiling aid; off by default).
pub(crate) fn trace(step: &str) {
    use std::sync::Mutex;
    use std::time::Instant;
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    if std::env::var_os("BRAINRECON_RIDGE_TRACE").is_none() {
        return;
    }
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    if let Some(previous) = *last {
        // resident and peak memory, where the system reports them (Linux)
        let memory = std::fs::read_to_string("/proc/self/status")
            .map(|status| {
                status
                    .lines()
                    .filter(|line| line.starts_with("VmRSS") || line.starts_with("VmHWM"))
                    .map(|line| {
                        line.split_whitespace()
                            .take(2)
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        eprintln!(
            "ridge: {step}: {:.2} s ({memory} kB)",
            (now - previous).as_secs_f64()
        );
    }
    *last = Some(now);
}

/// Seconds spent in each named step of a loop, printed with [`trace`]'s switch.
struct Phases<const N: usize> {
    names: [&'static str; N],
    seconds: [f64; N],
    since: std::time::Instant,
}

impl<const N: usize> Phases<N> {
    fn new(names: [&'static str; N]) -> Self {
        Self {
            names,
            seconds: [0.0; N],
            since: std::time::Instant::now(),
        }
    }

    fn start(&mut self) {
        self.since = std::time::Instant::now();
    }

    /// Adds the time since the last `start` or `end` to step `k`.
    fn end(&mut self, k: usize) {
        let now = std::time::Instant::now();
        self.seconds[k] += (now - self.since).as_secs_f64();
        self.since = now;
    }

    fn trace(&self) {
        if std::env::var_os("BRAINRECON_RIDGE_TRACE").is_some() {
            let steps: Vec<String> = (self.names.iter().zip(&self.seconds))
                .map(|(name, seconds)| format!("{name} {seconds:.2} s"))
                .collect();
            eprintln!("ridge: of which {}", steps.join(", "));
        }
    }
}

/// Per-target `Σ_i (e_i / d_i)²` with LOO denominators `d = 1 - h_ii` (n), in
/// f64, split over threads by target. The residuals `e` (n×c) are `product`,
/// or `truth - product` when `product` holds fitted values (fused: no
/// residual buffer).
fn loo_sse(
    product: MatRef<'_, f32>,
    truth: Option<MatRef<'_, f32>>,
    denominators: &[f64],
) -> Vec<f64> {
    assert_eq!(
        product.nrows(),
        denominators.len(),
        "one denominator per row"
    );
    let inverse: Vec<f64> = denominators.iter().map(|d| 1.0 / d).collect();
    par_map_ranges(product.ncols(), |cols| {
        cols.map(|j| {
            let col = product.col(j);
            let sq = |i: usize, e: f64| (e * inverse[i]).powi(2);
            match truth {
                Some(y) => {
                    let y = y.col(j);
                    (0..col.nrows())
                        .map(|i| sq(i, y[i] as f64 - col[i] as f64))
                        .sum()
                }
                None => (0..col.nrows()).map(|i| sq(i, col[i] as f64)).sum(),
            }
        })
        .collect()
    })
}

/// The GCV band path's per-alpha factors and how a residual norm becomes a score.
struct BandGrid<'a> {
    factors: &'a [BlockedBandCholesky],
    alphas: &'a [f64],
    /// `tr(I − H(α))/n` per alpha.
    mean_denominators: &'a [f64],
    scoring: Scoring,
    n: usize,
}

/// One thread's columns: scores over the grid and the chosen index.
struct BandColumns {
    /// Per column, its score at each alpha of the grid.
    scores: Vec<Vec<f64>>,
    best: Vec<usize>,
}

impl BandGrid<'_> {
    /// GCV score of a target whose solve `(B + αI)⁻¹ y` has squared norm `squared_norm`.
    fn score(&self, k: usize, squared_norm: f64, sst: f64) -> f64 {
        let (alpha, denominator) = (self.alphas[k], self.mean_denominators[k]);
        // residual r = α (K + αI)⁻¹ y, and ‖Q₁ s‖ = ‖s‖
        let sse = alpha * alpha * squared_norm;
        let corrected = if denominator > 0.0 {
            sse / (denominator * denominator)
        } else {
            f64::INFINITY
        };
        match self.scoring {
            Scoring::NegMse => -corrected / self.n as f64,
            Scoring::R2 if sst == 0.0 => 0.0,
            Scoring::R2 => 1.0 - corrected / sst,
        }
    }

    /// Scores the columns of `y` (m×c, rotated targets; `sst` per column) over the grid, then
    /// overwrites each with its solve `(B + α_best I)⁻¹ y`. Single-threaded, with one f64 work
    /// matrix reused for every alpha and for the final solves.
    fn solve_columns<T: Float>(&self, mut y: MatMut<'_, T>, sst: &[f64]) -> BandColumns {
        let (m, c) = (y.nrows(), y.ncols());
        let mut work = Mat::<f64>::zeros(m, c);
        let mut scores = vec![vec![0.0; self.alphas.len()]; c];
        for (k, factor) in self.factors.iter().enumerate() {
            copy_columns_f64(y.as_ref(), 0..c, work.as_mut());
            factor.solve(work.as_mut());
            for j in 0..c {
                let squared_norm = work.col(j).iter().map(|v| v * v).sum();
                scores[j][k] = self.score(k, squared_norm, sst[j]);
            }
        }
        let best: Vec<usize> = scores
            .iter()
            .map(|column| select_first_best(column))
            .collect();
        for (k, factor) in self.factors.iter().enumerate() {
            let chosen: Vec<usize> = (0..c).filter(|&j| best[j] == k).collect();
            if chosen.is_empty() {
                continue;
            }
            let mut solved = work.as_mut().subcols_mut(0, chosen.len());
            for (l, &j) in chosen.iter().enumerate() {
                let (source, mut target) = (y.as_ref().col(j), solved.as_mut().col_mut(l));
                for i in 0..m {
                    target[i] = source[i].f64();
                }
            }
            factor.solve(solved.as_mut());
            for (l, &j) in chosen.iter().enumerate() {
                let (source, mut target) = (solved.as_ref().col(l), y.as_mut().col_mut(j));
                for i in 0..m {
                    target[i] = T::of(source[i]);
                }
            }
        }
        BandColumns { scores, best }
    }
}

/// `out[:, l] = y[:, columns[l]]` in f64 (out: m×len(columns)).
fn copy_columns_f64<T: Float>(y: MatRef<'_, T>, columns: Range<usize>, mut out: MatMut<'_, f64>) {
    for (l, j) in columns.enumerate() {
        let (source, mut target) = (y.col(j), out.as_mut().col_mut(l));
        for i in 0..y.nrows() {
            target[i] = source[i].f64();
        }
    }
}

/// Per-column sum of squares around the column mean (f64).
fn column_sst(y: MatRef<'_, f32>) -> Vec<f64> {
    let n = y.nrows().max(1) as f64;
    (0..y.ncols())
        .map(|j| {
            let col = y.col(j);
            let mean = (0..y.nrows()).map(|i| col[i] as f64).sum::<f64>() / n;
            (0..y.nrows()).map(|i| (col[i] as f64 - mean).powi(2)).sum()
        })
        .collect()
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
