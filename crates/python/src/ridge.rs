//! Ridge fitting, saving and loading on numpy arrays (brainrecon-ridge underneath).

use std::collections::BTreeMap;

use brainrecon_ridge::{
    Cv, ModelOptions, Precision, RidgeCv, RidgeModel, Scoring, Shard, TargetRange,
};
use faer::{Mat, MatRef};
use ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(ridge_fit, m)?)?;
    m.add_function(wrap_pyfunction!(ridge_save, m)?)?;
    m.add_function(wrap_pyfunction!(ridge_load, m)?)?;
    m.add_function(wrap_pyfunction!(ridge_merge, m)?)?;
    m.add_function(wrap_pyfunction!(pearson_per_target, m)?)?;
    m.add_function(wrap_pyfunction!(r2_per_target, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    Ok(())
}

/// A numpy float32 view as a strided faer matrix: C order, Fortran order or any other strides,
/// without a copy.
pub fn mat_view<'a>(array: &'a PyReadonlyArray2<'_, f32>) -> MatRef<'a, f32> {
    let view = array.as_array();
    let strides = view.strides();
    // SAFETY: pointer, shape and element strides come from one live numpy array whose read
    // borrow `array` holds for 'a; faer accepts any (also negative) strides.
    unsafe {
        MatRef::from_raw_parts(
            view.as_ptr(),
            view.nrows(),
            view.ncols(),
            strides[0],
            strides[1],
        )
    }
}

fn parse_precision(text: &str) -> PyResult<Precision> {
    match text {
        "float64" | "f64" => Ok(Precision::F64),
        "float32" | "f32" => Ok(Precision::F32),
        other => Err(errors::value(format!(
            "precision: expected 'float64' or 'float32', found '{other}'"
        ))),
    }
}

pub fn parse_scoring(text: &str) -> PyResult<Scoring> {
    match text {
        "neg_mean_squared_error" => Ok(Scoring::NegMse),
        "r2" => Ok(Scoring::R2),
        other => Err(errors::value(format!(
            "scoring: expected None, 'neg_mean_squared_error' or 'r2', found '{other}'"
        ))),
    }
}

/// Fits `x` (n, p) → `y` (n, t), one alpha per target, with the GIL released.
///
/// `folds = None` is efficient leave-one-out (or GCV with `gcv`); `folds = k` is contiguous
/// K-fold, with `groups` (n,) keeping each group inside one fold. `shard = (k, N)` fits only the
/// k-th of N equal target ranges, as `ridge fit --shard k/N`. Returns a dict of the fitted
/// arrays (see `model_dict`).
#[pyfunction]
#[pyo3(signature = (x, y, alphas, folds=None, groups=None, gcv=false, fit_intercept=true,
    standardize=false, precision="float64", target_chunk=2048, scoring="neg_mean_squared_error",
    shard=None))]
#[allow(clippy::too_many_arguments)]
fn ridge_fit<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f32>,
    y: PyReadonlyArray2<'py, f32>,
    alphas: Vec<f64>,
    folds: Option<usize>,
    groups: Option<PyReadonlyArray1<'py, i64>>,
    gcv: bool,
    fit_intercept: bool,
    standardize: bool,
    precision: &str,
    target_chunk: usize,
    scoring: &str,
    shard: Option<(usize, usize)>,
) -> PyResult<Bound<'py, PyDict>> {
    let cv = match (folds, gcv) {
        (Some(_), true) => return Err(errors::value("gcv=True needs cv=None (no folds)")),
        (None, _) if groups.is_some() => {
            return Err(errors::value(
                "groups need K-fold cross-validation (cv=int or a splitter), not leave-one-out",
            ))
        }
        (None, true) => Cv::Gcv,
        (None, false) => Cv::Loo,
        (Some(n_folds), false) => Cv::KFold {
            n_folds,
            groups: groups.map(|g| g.as_array().to_vec()),
        },
    };
    let estimator = RidgeCv {
        alphas,
        cv,
        scoring: parse_scoring(scoring)?,
        fit_intercept,
        standardize,
        target_chunk,
        precision: parse_precision(precision)?,
        ..RidgeCv::default()
    };
    let (x_view, y_view) = (mat_view(&x), mat_view(&y));
    let shard = shard.map(|(index, count)| Shard { index, count });
    if let Some(shard) = shard {
        shard.target_range(y_view.ncols()).map_err(|_| {
            errors::value(format!(
                "shard: expected (k, N) with 0 <= k < N <= n_targets = {}, found ({}, {})",
                y_view.ncols(),
                shard.index,
                shard.count
            ))
        })?;
    }
    let model = py
        .detach(|| match shard {
            Some(shard) => estimator.fit_shard(x_view, y_view, shard),
            None => estimator.fit(x_view, y_view),
        })
        .map_err(errors::ridge)?;
    model_dict(py, &model)
}

/// The model's arrays in scikit-learn's orientation: `coef` (t, p), `intercept` (t,), `alphas`
/// (t,), `cv_scores` (n_alphas, t), `alpha_grid`, `x_mean`, `x_scale` (p,), `options` (JSON).
fn model_dict<'py>(py: Python<'py>, model: &RidgeModel) -> PyResult<Bound<'py, PyDict>> {
    // a dual model (`brainrecon ridge fit --dual`) gives its weights as scikit-learn keeps them
    let primal;
    let model = if model.dual.is_some() {
        primal = model.to_primal();
        &primal
    } else {
        model
    };
    let (p, t) = (model.n_features(), model.n_targets());
    // faer's column-major p×t weights, read column by column, are the row-major (t, p) coef_
    let coef = Array2::from_shape_fn((t, p), |(j, i)| model.weights[(i, j)]);
    let k = model.alpha_grid.len();
    let scores = Array2::from_shape_fn((k, t), |(a, j)| model.cv_scores[(a, j)]);
    let out = PyDict::new(py);
    out.set_item("coef", coef.into_pyarray(py))?;
    out.set_item("intercept", PyArray1::from_slice(py, &model.intercept))?;
    out.set_item("alphas", PyArray1::from_slice(py, &model.alphas))?;
    out.set_item("cv_scores", scores.into_pyarray(py))?;
    out.set_item("alpha_grid", PyArray1::from_slice(py, &model.alpha_grid))?;
    out.set_item("x_mean", PyArray1::from_slice(py, &model.x_mean))?;
    out.set_item("x_scale", PyArray1::from_slice(py, &model.x_scale))?;
    let options = serde_json::to_string(&model.options)
        .map_err(|e| errors::value(format!("model options: {e}")))?;
    out.set_item("options", options)?;
    let metadata = serde_json::to_string(&model.metadata)
        .map_err(|e| errors::value(format!("model metadata: {e}")))?;
    out.set_item("metadata", metadata)?;
    let range = model.target_range;
    out.set_item("target_range", (range.start, range.end, range.total))?;
    Ok(out)
}

/// Writes a model directory (`weights.safetensors` + `model.json`) that `brainrecon ridge
/// predict` reads, from the arrays [`ridge_fit`] returned.
#[pyfunction]
#[pyo3(signature = (directory, coef, intercept, alphas, cv_scores, alpha_grid, x_mean, x_scale,
    options, metadata="{}", target_range=None))]
#[allow(clippy::too_many_arguments)]
fn ridge_save(
    py: Python<'_>,
    directory: std::path::PathBuf,
    coef: PyReadonlyArray2<'_, f32>,
    intercept: Vec<f32>,
    alphas: Vec<f64>,
    cv_scores: PyReadonlyArray2<'_, f32>,
    alpha_grid: Vec<f64>,
    x_mean: Vec<f32>,
    x_scale: Vec<f32>,
    options: &str,
    metadata: &str,
    target_range: Option<(usize, usize, usize)>,
) -> PyResult<()> {
    let coef = mat_view(&coef);
    let (t, p) = (coef.nrows(), coef.ncols());
    let (start, end, total) = target_range.unwrap_or((0, t, t));
    if end < start || end - start != t || end > total {
        return Err(errors::value(format!(
            "target_range: ({start}, {end}, {total}) does not hold the {t} targets of coef_"
        )));
    }
    let scores = mat_view(&cv_scores);
    let lengths = [
        ("intercept_", intercept.len(), t),
        ("alpha_", alphas.len(), t),
        ("x_mean", x_mean.len(), p),
        ("x_scale", x_scale.len(), p),
        ("cv_scores_ columns", scores.ncols(), t),
        ("cv_scores_ rows", scores.nrows(), alpha_grid.len()),
    ];
    if let Some((name, found, expected)) = lengths.iter().find(|(_, a, b)| a != b) {
        return Err(errors::value(format!(
            "{name}: expected {expected} values for a ({t}, {p}) coef_, found {found}"
        )));
    }
    let options: ModelOptions =
        serde_json::from_str(options).map_err(|e| errors::value(format!("options: {e}")))?;
    let metadata: BTreeMap<String, serde_json::Value> = serde_json::from_str(metadata)
        .map_err(|e| errors::value(format!("metadata: expected a JSON object: {e}")))?;
    let model = RidgeModel {
        weights: Mat::from_fn(p, t, |i, j| coef[(j, i)]),
        intercept,
        x_mean,
        x_scale,
        alphas,
        cv_scores: scores.to_owned(),
        alpha_grid,
        options,
        target_range: TargetRange { start, end, total },
        metadata,
        dual: None,
    };
    py.detach(|| model.save(&directory)).map_err(errors::ridge)
}

/// Reads a model directory written by `brainrecon ridge fit` (or [`ridge_save`]); a shard
/// keeps its `target_range`.
#[pyfunction]
fn ridge_load(py: Python<'_>, directory: std::path::PathBuf) -> PyResult<Bound<'_, PyDict>> {
    let model = py
        .detach(|| RidgeModel::load(&directory))
        .map_err(errors::ridge)?;
    model_dict(py, &model)
}

/// Joins the shard model directories `shards` (any order) into one model written to `out`, as
/// `brainrecon ridge merge`.
#[pyfunction]
fn ridge_merge(
    py: Python<'_>,
    shards: Vec<std::path::PathBuf>,
    out: std::path::PathBuf,
) -> PyResult<()> {
    py.detach(|| {
        let models = shards
            .iter()
            .map(RidgeModel::load)
            .collect::<brainrecon_ridge::Result<Vec<_>>>()?;
        RidgeModel::merge(models)?.save(&out)
    })
    .map_err(errors::ridge)
}

fn per_target<'py>(
    py: Python<'py>,
    y_true: PyReadonlyArray2<'py, f32>,
    y_pred: PyReadonlyArray2<'py, f32>,
    metric: fn(MatRef<'_, f32>, MatRef<'_, f32>) -> brainrecon_ridge::Result<Vec<f64>>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    if y_true.shape() != y_pred.shape() {
        return Err(errors::value(format!(
            "y_true has shape {:?} but y_pred has shape {:?}",
            y_true.shape(),
            y_pred.shape()
        )));
    }
    let (a, b) = (mat_view(&y_true), mat_view(&y_pred));
    let values = py.detach(|| metric(a, b)).map_err(errors::ridge)?;
    Ok(PyArray1::from_vec(py, values))
}

/// Pearson r of each column (target) of `y_pred` with the same column of `y_true`.
#[pyfunction]
fn pearson_per_target<'py>(
    py: Python<'py>,
    y_true: PyReadonlyArray2<'py, f32>,
    y_pred: PyReadonlyArray2<'py, f32>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    per_target(
        py,
        y_true,
        y_pred,
        brainrecon_ridge::metrics::pearson_per_target,
    )
}

/// R² of each column (target), as `brainrecon ridge score`.
#[pyfunction]
fn r2_per_target<'py>(
    py: Python<'py>,
    y_true: PyReadonlyArray2<'py, f32>,
    y_pred: PyReadonlyArray2<'py, f32>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    per_target(py, y_true, y_pred, brainrecon_ridge::metrics::r2_per_target)
}

/// Threads of the ridge solver (0 = all cores), as the CLI's `--threads`.
#[pyfunction]
fn set_num_threads(threads: usize) {
    brainrecon_ridge::set_threads(threads);
}
