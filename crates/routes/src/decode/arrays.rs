//! Ridge regression on plain .npy arrays, without a prepared subject: the work of
//! `brainrecon ridge fit|predict|score` (and of the ridge benchmark's measured fit).
//!
//! Every argument and file is checked before any work or output; a problem is a
//! [`RouteError::Usage`] or a [`DataError`] naming the file and the field.

use crate::error::{Result, RouteError};
use brainrecon_core::error::require_file;
use brainrecon_core::DataError;
use brainrecon_formats::npy;
use brainrecon_metrics::identification::two_way_identification_per_prediction;
use brainrecon_ridge::metrics::{pearson_per_target, r2_per_target, summarize};
use brainrecon_ridge::{row_major_view, Cv, RidgeCv, RidgeModel, Shard};
use faer::Mat;
use serde::Serialize;
use std::path::{Path, PathBuf};

fn usage(message: impl Into<String>) -> RouteError {
    RouteError::Usage(message.into())
}

/// A float .npy read as an (n, m) row-major matrix, checked finite.
pub struct Matrix {
    /// n
    pub rows: usize,
    /// m
    pub cols: usize,
    /// n·m values, row-major.
    pub data: Vec<f32>,
}

/// Reads a float32 or float64 .npy as a non-empty (n, m) matrix of finite values; `what` names
/// it in errors ("X (n, p)").
pub fn read_matrix(path: &Path, what: &str) -> Result<Matrix> {
    require_file(path, &format!("{what} as a .npy file"))?;
    let array = npy::read_f32(path)?;
    let (rows, cols) = array.as_matrix(path)?;
    if rows == 0 || cols == 0 {
        return Err(DataError::invalid(
            path,
            "shape",
            format!("a non-empty {what}"),
            format!("{:?}", array.shape),
        )
        .into());
    }
    if let Some(at) = array.data.iter().position(|v| !v.is_finite()) {
        return Err(DataError::invalid(
            path,
            format!("row {}, column {}", at / cols, at % cols),
            "finite values (no NaN or infinity)",
            array.data[at].to_string(),
        )
        .into());
    }
    Ok(Matrix {
        rows,
        cols,
        data: array.data,
    })
}

/// One integer group label per row of X, from an .npy.
pub fn read_groups(path: &Path, n_rows: usize, x_path: &Path) -> Result<Vec<i64>> {
    require_file(path, "group labels as an integer .npy file")?;
    let groups = npy::read_i64(path)?;
    if groups.shape.len() != 1 || groups.data.len() != n_rows {
        return Err(DataError::invalid(
            path,
            "shape",
            format!("({n_rows},): one label per row of {}", x_path.display()),
            format!("{:?}", groups.shape),
        )
        .into());
    }
    Ok(groups.data)
}

/// `--cv` text (`loo`, `gcv` or a number of folds) → the cross-validation; groups need K-fold.
pub fn parse_cv(text: &str, groups: Option<Vec<i64>>) -> Result<Cv> {
    if text == "loo" || text == "gcv" {
        if groups.is_some() {
            return Err(usage(format!(
                "--groups needs K-fold cross-validation (e.g. --cv 5), not --cv {text}"
            )));
        }
        return Ok(if text == "loo" { Cv::Loo } else { Cv::Gcv });
    }
    let n_folds: usize = text.parse().map_err(|_| {
        usage(format!(
            "--cv: expected loo, gcv or a number of folds ≥ 2, found '{text}'"
        ))
    })?;
    if n_folds < 2 {
        return Err(usage(format!(
            "--cv: need at least 2 folds, found {n_folds}"
        )));
    }
    Ok(Cv::KFold { n_folds, groups })
}

/// `k/N` → shard, 0-based, checked against the target count.
pub fn parse_shard(text: &str, n_targets: usize) -> Result<Shard> {
    let bad = || {
        usage(format!(
            "--shard: expected k/N with 0 ≤ k < N (0-based), found '{text}'"
        ))
    };
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let index: usize = k.trim().parse().map_err(|_| bad())?;
    let count: usize = n.trim().parse().map_err(|_| bad())?;
    if count == 0 || index >= count {
        return Err(usage(format!(
            "--shard {text}: k must be between 0 and {} (shards are 0-based)",
            count.saturating_sub(1)
        )));
    }
    if count > n_targets {
        return Err(usage(format!(
            "--shard {text}: {count} shards but Y has only {n_targets} targets"
        )));
    }
    Ok(Shard { index, count })
}

/// A ridge fit from two .npy files to a model folder.
pub struct FitOptions {
    /// Predictors, (n, p).
    pub x: PathBuf,
    /// Targets, (n, t) or (n,).
    pub y: PathBuf,
    /// One group label per row (K-fold only).
    pub groups: Option<PathBuf>,
    /// `loo`, `gcv` or a number of folds.
    pub cv: String,
    /// `k/N`: fit only that target shard.
    pub shard: Option<String>,
    /// The estimator's settings; its `cv` is replaced by the one `cv` names.
    pub estimator: RidgeCv,
    /// The model folder to write.
    pub out: PathBuf,
}

/// What [`fit`] did (its fields are in alphabetical order, the JSON's key order).
#[derive(Debug, Serialize)]
pub struct FitSummary {
    /// The cross-validation the model records.
    pub cv: serde_json::Value,
    /// Where the fit ran.
    pub device: String,
    /// `primal` (weights) or `dual` (dual coefficients and the training X).
    pub form: &'static str,
    /// The median of the alphas chosen per target.
    pub median_alpha: f64,
    /// The model folder.
    pub model: PathBuf,
    /// p
    pub n_features: usize,
    /// n
    pub n_samples: usize,
    /// t (all of Y's targets, also for a shard)
    pub n_targets: usize,
    /// Seconds the fit took.
    pub seconds: f64,
    /// The solver chosen by shape.
    pub solver: serde_json::Value,
    /// The targets this model holds, `[start, end)`.
    pub target_range: [usize; 2],
    /// The solver, as `Debug` prints it (for the human line).
    #[serde(skip)]
    pub solver_name: String,
}

/// `dual` needs more columns than rows, the CPU and no shards.
fn check_dual(opts: &FitOptions, n: usize, p: usize) -> Result<()> {
    if !opts.estimator.dual {
        return Ok(());
    }
    if p <= n {
        return Err(usage(format!(
            "--dual: {} has {n} rows and {p} columns; the dual form is for more columns than \
             rows (otherwise the weights are the smaller model): leave out --dual",
            opts.x.display()
        )));
    }
    if opts.shard.is_some() {
        return Err(usage(
            "--dual with --shard: shards are merged as weights; fit the dual form whole",
        ));
    }
    if opts.estimator.device.is_cuda() {
        return Err(usage(format!(
            "--dual with --device {}: the dual form is fitted on the CPU",
            opts.estimator.device
        )));
    }
    Ok(())
}

/// Fits ridge X → Y with cross-validated alphas per target and saves the model to `out`.
pub fn fit(opts: FitOptions) -> Result<FitSummary> {
    let x = read_matrix(&opts.x, "X (n, p)")?;
    let y = read_matrix(&opts.y, "Y (n, t)")?;
    if y.rows != x.rows {
        return Err(DataError::invalid(
            &opts.y,
            "rows",
            format!("{} rows, one per row of {}", x.rows, opts.x.display()),
            y.rows.to_string(),
        )
        .into());
    }
    if x.rows < 2 {
        return Err(
            DataError::invalid(&opts.x, "rows", "at least 2 rows", x.rows.to_string()).into(),
        );
    }
    let groups = match &opts.groups {
        Some(path) => Some(read_groups(path, x.rows, &opts.x)?),
        None => None,
    };
    let cv = parse_cv(&opts.cv, groups)?;
    let shard = match &opts.shard {
        Some(text) => Some(parse_shard(text, y.cols)?),
        None => None,
    };
    let estimator = RidgeCv {
        cv,
        ..opts.estimator.clone()
    };
    check_dual(&opts, x.rows, x.cols)?;
    let device = estimator.device;
    if device != brainrecon_ridge::Device::Cpu && matches!(estimator.cv, Cv::KFold { .. }) {
        return Err(usage(format!(
            "--device {device}: K-fold cross-validation runs on the CPU only; use --cv gcv or --cv \
             loo on a GPU"
        )));
    }
    let x_view = row_major_view("X", &x.data, (x.rows, x.cols))?;
    let y_view = row_major_view("Y", &y.data, (y.rows, y.cols))?;
    let started = std::time::Instant::now();
    let mut model = match shard {
        Some(shard) => estimator.fit_shard(x_view, y_view, shard)?,
        None => estimator.fit(x_view, y_view)?,
    };
    let seconds = started.elapsed().as_secs_f64();
    for (key, value) in [
        ("x", serde_json::json!(opts.x)),
        ("y", serde_json::json!(opts.y)),
        ("shard", serde_json::json!(opts.shard)),
        ("groups", serde_json::json!(opts.groups)),
    ] {
        model.metadata.insert(key.into(), value);
    }
    model.save(&opts.out)?;
    let mut chosen = model.alphas.clone();
    chosen.sort_by(f64::total_cmp);
    let range = model.target_range;
    Ok(FitSummary {
        cv: serde_json::json!(model.options.cv),
        device: device.resolved().to_string(),
        form: if model.dual.is_some() {
            "dual"
        } else {
            "primal"
        },
        median_alpha: chosen[chosen.len() / 2],
        model: opts.out,
        n_features: x.cols,
        n_samples: x.rows,
        n_targets: y.cols,
        seconds,
        solver: serde_json::json!(model.options.solver),
        target_range: [range.start, range.end],
        solver_name: format!("{:?}", model.options.solver),
    })
}

/// Predicts Y from the (n, p) X in `x` with the model in `model`, writes it as a float32
/// (n, t) .npy to `out`, and returns (n, t).
pub fn predict(model: &Path, x: &Path, out: &Path) -> Result<(usize, usize)> {
    let fitted = RidgeModel::load(model)?;
    let xm = read_matrix(x, "X (n, p)")?;
    if xm.cols != fitted.n_features() {
        return Err(DataError::invalid(
            x,
            "columns",
            format!(
                "{} columns, the feature count of the model {}",
                fitted.n_features(),
                model.display()
            ),
            xm.cols.to_string(),
        )
        .into());
    }
    let pred = fitted.predict_row_major(&xm.data, (xm.rows, xm.cols))?;
    npy::write(out, &[xm.rows, fitted.n_targets()], &pred)?;
    Ok((xm.rows, fitted.n_targets()))
}

/// Mean and median over targets.
#[derive(Debug, Serialize)]
pub struct MeanMedian {
    /// Mean over targets.
    pub mean: f64,
    /// Median over targets.
    pub median: f64,
}

/// What [`score`] found (fields in alphabetical order, the JSON's key order).
#[derive(Debug, Serialize)]
pub struct ScoreSummary {
    /// n
    pub n_samples: usize,
    /// t
    pub n_targets: usize,
    /// Pearson r per target, summarised (constant columns skipped).
    pub pearson_r: MeanMedian,
    /// R² per target (scikit-learn `r2_score`), summarised.
    pub r2: MeanMedian,
    /// Targets whose r is undefined (a constant column).
    pub undefined_r: usize,
}

/// Scores predictions against the truth per target (Pearson r and R²); with `out_prefix`,
/// writes the per-target values to `<prefix>_r.npy` and `<prefix>_r2.npy` (float64, (t,)).
pub fn score(pred: &Path, y: &Path, out_prefix: Option<&Path>) -> Result<ScoreSummary> {
    let pm = read_matrix(pred, "predictions (n, t)")?;
    let truth = read_matrix(y, "Y (n, t)")?;
    if (pm.rows, pm.cols) != (truth.rows, truth.cols) {
        return Err(DataError::invalid(
            pred,
            "shape",
            format!(
                "({}, {}), the shape of {}",
                truth.rows,
                truth.cols,
                y.display()
            ),
            format!("({}, {})", pm.rows, pm.cols),
        )
        .into());
    }
    let p = row_major_view("predictions", &pm.data, (pm.rows, pm.cols))?;
    let yv = row_major_view("Y", &truth.data, (truth.rows, truth.cols))?;
    let r = pearson_per_target(yv, p)?;
    let r2 = r2_per_target(yv, p)?;
    if let Some(prefix) = out_prefix {
        let with_suffix = |suffix: &str| {
            let mut name = prefix.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        npy::write(&with_suffix("_r.npy"), &[r.len()], &r)?;
        npy::write(&with_suffix("_r2.npy"), &[r2.len()], &r2)?;
    }
    let (r_sum, r2_sum) = (summarize(&r), summarize(&r2));
    Ok(ScoreSummary {
        n_samples: truth.rows,
        n_targets: truth.cols,
        pearson_r: MeanMedian {
            mean: r_sum.mean,
            median: r_sum.median,
        },
        r2: MeanMedian {
            mean: r2_sum.mean,
            median: r2_sum.median,
        },
        undefined_r: r.iter().filter(|v| !v.is_finite()).count(),
    })
}

impl FitSummary {
    /// The line `ridge fit` prints.
    pub fn text(&self) -> String {
        format!(
            "fitted {} × {} → targets {}..{} of {} ({} solver) in {:.2} s (median alpha {:.3e}); saved {}",
            self.n_samples,
            self.n_features,
            self.target_range[0],
            self.target_range[1],
            self.n_targets,
            self.solver_name,
            self.seconds,
            self.median_alpha,
            self.model.display()
        )
    }
}

impl ScoreSummary {
    /// The line `ridge score` prints.
    pub fn text(&self) -> String {
        format!(
            "{} targets over {} samples: Pearson r mean {:.4} median {:.4}; R² mean {:.4} median {:.4}",
            self.n_targets,
            self.n_samples,
            self.pearson_r.mean,
            self.pearson_r.median,
            self.r2.mean,
            self.r2.median
        )
    }
}

/// The estimator of `ridge fit` as the command line describes it.
#[derive(Debug, Clone)]
pub struct EstimatorRequest {
    /// The alpha grid, comma-separated (default: [`crate::decode::decoders::standard_alphas`]).
    pub alphas: Option<String>,
    /// Fit an unpenalised intercept.
    pub intercept: bool,
    /// Scale each column of X to unit variance.
    pub standardize: bool,
    /// Targets processed together (≥ 1).
    pub target_chunk: usize,
    /// Precision of the Gram matrix and its decomposition.
    pub precision: brainrecon_ridge::Precision,
    /// Where the fit runs.
    pub device: brainrecon_ridge::Device,
    /// Keep dual coefficients and the training X.
    pub dual: bool,
    /// Threads of the linear algebra (default: all cores), set at once.
    pub threads: Option<usize>,
}

impl EstimatorRequest {
    /// Sets the threads, then checks the settings (before any file is read) into an estimator.
    pub fn estimator(&self) -> Result<RidgeCv> {
        if let Some(threads) = self.threads {
            brainrecon_ridge::set_threads(threads);
        }
        let alphas = match &self.alphas {
            Some(text) => crate::decode::options::parse_alphas(text)?,
            None => crate::decode::decoders::standard_alphas(),
        };
        if self.target_chunk == 0 {
            return Err(usage("--target-chunk must be ≥ 1"));
        }
        Ok(RidgeCv {
            alphas,
            fit_intercept: self.intercept,
            standardize: self.standardize,
            target_chunk: self.target_chunk,
            precision: self.precision,
            device: crate::decode::options::check_ridge_device(self.device)?,
            dual: self.dual,
            ..RidgeCv::default()
        })
    }
}

/// Row-major (n, width) as a matrix.
pub fn matrix(data: &[f32], width: usize) -> Mat<f32> {
    let n = data.len() / width.max(1);
    Mat::from_fn(n, width, |r, c| data[r * width + c])
}

/// A matrix as row-major values.
pub fn row_major(m: &Mat<f32>) -> Vec<f32> {
    (0..m.nrows())
        .flat_map(|r| (0..m.ncols()).map(move |c| m[(r, c)]))
        .collect()
}

/// Identification accuracy (Brain2Music's): for each item i, the share of the other items j
/// whose true embedding correlates less with i's prediction than i's own,
/// `#{j ≠ i : r(pred_i, true_j) < r(pred_i, true_i)} / (n − 1)` (MindEye's two-way
/// identification per prediction); its mean over items and the per-item values. Chance is 0.5.
/// `pred`, `truth`: (n, d), n ≥ 2.
pub fn identification(pred: &Mat<f32>, truth: &Mat<f32>) -> Result<(f64, Vec<f64>)> {
    let (n, d) = (pred.nrows(), pred.ncols());
    let per_item =
        two_way_identification_per_prediction(&row_major(pred), &row_major(truth), n, d)?;
    Ok((per_item.iter().sum::<f64>() / n as f64, per_item))
}
