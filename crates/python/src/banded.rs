//! Banded (multiple linear kernel) ridge on numpy arrays: brainrecon-ridge's
//! `BandedRidgeCv` underneath, himalaya's random search semantics.

use brainrecon_ridge::{BandedCv, BandedModel, BandedRidgeCv, Candidates};
use faer::MatRef;
use ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::errors;
use crate::ridge::{mat_view, parse_scoring};

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(banded_fit, m)?)?;
    Ok(())
}

/// Fits `y` (n, t) from the feature bands `bands[b]` (n, p_b) with the GIL released.
///
/// Candidates: `gammas` (rows of band weights summing to 1, himalaya's `n_iter=array`), or
/// `n_iter` Dirichlet draws with `concentrations` from a generator seeded with `seed`.
/// Folds: `folds = k` (contiguous K-fold) or `fold_labels` (n,) (one fold per label).
#[pyfunction]
#[pyo3(signature = (bands, y, alphas, gammas=None, n_iter=100, concentrations=vec![0.1, 1.0],
    seed=0, folds=None, fold_labels=None, fit_intercept=true,
    scoring="neg_mean_squared_error", target_chunk=2048))]
#[allow(clippy::too_many_arguments)]
fn banded_fit<'py>(
    py: Python<'py>,
    bands: Vec<PyReadonlyArray2<'py, f32>>,
    y: PyReadonlyArray2<'py, f32>,
    alphas: Vec<f64>,
    gammas: Option<Vec<Vec<f64>>>,
    n_iter: usize,
    concentrations: Vec<f64>,
    seed: u64,
    folds: Option<usize>,
    fold_labels: Option<Vec<i64>>,
    fit_intercept: bool,
    scoring: &str,
    target_chunk: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let cv = match (folds, fold_labels) {
        (Some(k), None) => BandedCv::KFold(k),
        (None, Some(labels)) => BandedCv::Groups(labels),
        _ => {
            return Err(errors::value(
                "cv: give either a fold count or one fold label per sample",
            ))
        }
    };
    let candidates = match gammas {
        Some(rows) => Candidates::Explicit(rows),
        None => Candidates::Dirichlet {
            n_iter,
            concentrations,
            seed,
        },
    };
    let estimator = BandedRidgeCv {
        alphas,
        candidates,
        cv,
        scoring: parse_scoring(scoring)?,
        fit_intercept,
        target_chunk,
    };
    let views: Vec<MatRef<'_, f32>> = bands.iter().map(mat_view).collect();
    let y_view = mat_view(&y);
    let model = py
        .detach(|| estimator.fit(&views, y_view))
        .map_err(errors::ridge)?;
    model_dict(py, &model)
}

/// numpy copy of a faer matrix (rows, cols).
fn to_numpy<'py, T: Copy + numpy::Element>(
    py: Python<'py>,
    m: MatRef<'_, T>,
) -> Bound<'py, numpy::PyArray2<T>> {
    Array2::from_shape_fn((m.nrows(), m.ncols()), |(i, j)| m[(i, j)]).into_pyarray(py)
}

/// The model's arrays: `dual` (n, t), `primal` [(p_b, t)], `intercept`, `alphas` (t,),
/// `best_candidate` (t,), `candidates` (n_iter, B), `cv_scores` (n_iter, t), `x_mean` [(p_b,)],
/// `y_mean` (t,).
fn model_dict<'py>(py: Python<'py>, model: &BandedModel) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("dual", to_numpy(py, model.dual.as_ref()))?;
    let primal = PyList::empty(py);
    for weights in &model.primal {
        primal.append(to_numpy(py, weights.as_ref()))?;
    }
    out.set_item("primal", primal)?;
    let x_mean = PyList::empty(py);
    for mean in &model.x_mean {
        x_mean.append(PyArray1::from_slice(py, mean))?;
    }
    out.set_item("x_mean", x_mean)?;
    out.set_item("intercept", PyArray1::from_slice(py, &model.intercept))?;
    out.set_item("y_mean", PyArray1::from_slice(py, &model.y_mean))?;
    out.set_item("alphas", PyArray1::from_slice(py, &model.alphas))?;
    let best: Vec<i64> = model.best_candidate.iter().map(|&c| c as i64).collect();
    out.set_item("best_candidate", PyArray1::from_vec(py, best))?;
    let n_bands = model.widths.len();
    let candidates = Array2::from_shape_fn((model.candidates.len(), n_bands), |(g, b)| {
        model.candidates[g][b]
    });
    out.set_item("candidates", candidates.into_pyarray(py))?;
    out.set_item("cv_scores", to_numpy(py, model.cv_scores.as_ref()))?;
    Ok(out)
}
