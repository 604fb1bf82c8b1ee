//! Functional alignment on numpy arrays (brainrecon-align underneath), for `brainrecon.align`:
//! Procrustes and ridge alignment as fmralign computes them, BrainIAK's shared response model,
//! the shared space of a group and the encoding map of a new subject. Everything in f64, with
//! the GIL released; the Python layer picks the reference libraries' names and orientation.

use brainrecon_align::encoding_map::{fit_encoding_map, DEFAULT_LAMBDAS, DEFAULT_MUS};
use brainrecon_align::procrustes::fit_procrustes;
use brainrecon_align::ridge_align::fit_ridge_alignment;
use brainrecon_align::shared_space::{fit_shared_space, gcv_alpha, SharedSpaceOptions};
use brainrecon_align::srm::{fit_det_srm, fit_srm, transform_subject, SrmOptions};
use brainrecon_align::AlignError;
use brainrecon_routes::group::fit::map_alphas;
use faer::{Mat, MatRef};
use ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::errors;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(align_procrustes, m)?)?;
    m.add_function(wrap_pyfunction!(align_ridge, m)?)?;
    m.add_function(wrap_pyfunction!(align_srm, m)?)?;
    m.add_function(wrap_pyfunction!(align_transform_subject, m)?)?;
    m.add_function(wrap_pyfunction!(align_shared_space, m)?)?;
    m.add_function(wrap_pyfunction!(align_encoding_map, m)?)?;
    Ok(())
}

/// Every alignment error is about the arrays handed in: ValueError with the crate's message.
fn align_error(error: AlignError) -> PyErr {
    errors::value(error.to_string())
}

/// A numpy float64 view as a strided faer matrix, without a copy.
fn view<'a>(array: &'a PyReadonlyArray2<'_, f64>) -> MatRef<'a, f64> {
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

fn views<'a>(arrays: &'a [PyReadonlyArray2<'_, f64>]) -> Vec<MatRef<'a, f64>> {
    arrays.iter().map(view).collect()
}

/// numpy copy of a faer matrix (rows, cols).
fn to_numpy<'py>(py: Python<'py>, m: MatRef<'_, f64>) -> Bound<'py, PyArray2<f64>> {
    Array2::from_shape_fn((m.nrows(), m.ncols()), |(i, j)| m[(i, j)]).into_pyarray(py)
}

fn to_list<'py>(py: Python<'py>, ms: &[Mat<f64>]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for m in ms {
        list.append(to_numpy(py, m.as_ref()))?;
    }
    Ok(list)
}

/// fmralign's `scaled_procrustes(x, y, scaling)`: x (n × p) onto y (n × q); returns the
/// rotation R (p × q) and the scale.
#[pyfunction]
#[pyo3(signature = (x, y, scaling=false))]
fn align_procrustes<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    scaling: bool,
) -> PyResult<(Bound<'py, PyArray2<f64>>, f64)> {
    let (xv, yv) = (view(&x), view(&y));
    let fit = py
        .detach(|| fit_procrustes(xv, yv, scaling))
        .map_err(align_error)?;
    Ok((to_numpy(py, fit.rotation.as_ref()), fit.scale))
}

/// fmralign's `RidgeAlignment(alphas, cv)`: x (n × p) onto y (n × q). Returns a dict: `coef`
/// (p × q), `intercept` (q,), `alpha`, `cv_scores` (one mean R² per alpha).
#[pyfunction]
#[pyo3(signature = (x, y, alphas, cv))]
fn align_ridge<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    alphas: Vec<f64>,
    cv: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let (xv, yv) = (view(&x), view(&y));
    let fit = py
        .detach(|| fit_ridge_alignment(xv, yv, &alphas, cv))
        .map_err(align_error)?;
    let out = PyDict::new(py);
    out.set_item("coef", to_numpy(py, fit.coef.as_ref()))?;
    out.set_item("intercept", PyArray1::from_slice(py, &fit.intercept))?;
    out.set_item("alpha", fit.alpha)?;
    out.set_item("cv_scores", PyArray1::from_slice(py, &fit.cv_scores))?;
    Ok(out)
}

/// BrainIAK's `SRM` (or, with `det`, `DetSRM`) fitted on `data[i]` (v_i × T). Returns a dict:
/// `w` [v_i × k], `s` (k × T) and, for the probabilistic model, `sigma_s` (k × k), `rho2`
/// (subjects,), `mu` [(v_i,)].
#[pyfunction]
#[pyo3(signature = (data, features, n_iter, rand_seed, det))]
fn align_srm<'py>(
    py: Python<'py>,
    data: Vec<PyReadonlyArray2<'py, f64>>,
    features: usize,
    n_iter: usize,
    rand_seed: u64,
    det: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let options = SrmOptions {
        features,
        n_iter,
        seed: rand_seed,
    };
    let data = views(&data);
    let out = PyDict::new(py);
    if det {
        let fit = py
            .detach(|| fit_det_srm(&data, &options))
            .map_err(align_error)?;
        out.set_item("w", to_list(py, &fit.w)?)?;
        out.set_item("s", to_numpy(py, fit.s.as_ref()))?;
    } else {
        let fit = py
            .detach(|| fit_srm(&data, &options))
            .map_err(align_error)?;
        out.set_item("w", to_list(py, &fit.w)?)?;
        out.set_item("s", to_numpy(py, fit.s.as_ref()))?;
        out.set_item("sigma_s", to_numpy(py, fit.sigma_s.as_ref()))?;
        out.set_item("rho2", PyArray1::from_slice(py, &fit.rho2))?;
        let mu = PyList::empty(py);
        for m in &fit.mu {
            mu.append(PyArray1::from_slice(py, m))?;
        }
        out.set_item("mu", mu)?;
    }
    Ok(out)
}

/// BrainIAK's `transform_subject`: a new subject's W (v × k) from its responses x (v × T) to
/// the samples of the shared response s (k × T).
#[pyfunction]
fn align_transform_subject<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    s: PyReadonlyArray2<'py, f64>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let (xv, sv) = (view(&x), view(&s));
    let w = py
        .detach(|| transform_subject(xv, sv))
        .map_err(align_error)?;
    Ok(to_numpy(py, w.as_ref()))
}

/// The shared space of a group: x[s] (n_s × v_s) and y[s] (n_s × d), both centred. `alphas`
/// None chooses each subject's α by generalised cross-validation on `grid` (default: the
/// group route's grid, 10⁻¹ … 10⁷). Returns a dict: `basis` (d × k), `maps` [v_s × k],
/// `alphas` (subjects,), `singular_values` (k,).
#[pyfunction]
#[pyo3(signature = (x, y, k, alphas=None, grid=None, seed=0))]
fn align_shared_space<'py>(
    py: Python<'py>,
    x: Vec<PyReadonlyArray2<'py, f64>>,
    y: Vec<PyReadonlyArray2<'py, f64>>,
    k: usize,
    alphas: Option<Vec<f64>>,
    grid: Option<Vec<f64>>,
    seed: u64,
) -> PyResult<Bound<'py, PyDict>> {
    let (xs, ys) = (views(&x), views(&y));
    let options = SharedSpaceOptions {
        k,
        seed,
        ..SharedSpaceOptions::default()
    };
    let space = py
        .detach(|| {
            let alphas = match alphas {
                Some(a) => a,
                None => {
                    if xs.len() != ys.len() {
                        return Err(AlignError::Shape(format!(
                            "{} beta matrices and {} target matrices: one of each per subject",
                            xs.len(),
                            ys.len()
                        )));
                    }
                    let grid = grid.unwrap_or_else(map_alphas);
                    xs.iter()
                        .zip(&ys)
                        .map(|(x, y)| gcv_alpha(*x, *y, &grid))
                        .collect::<Result<Vec<f64>, AlignError>>()?
                }
            };
            fit_shared_space(&xs, &ys, &alphas, &options)
        })
        .map_err(align_error)?;
    let out = PyDict::new(py);
    out.set_item("basis", to_numpy(py, space.basis.as_ref()))?;
    out.set_item("maps", to_list(py, &space.maps)?)?;
    out.set_item("alphas", PyArray1::from_slice(py, &space.alphas))?;
    out.set_item(
        "singular_values",
        PyArray1::from_slice(py, &space.singular_values),
    )?;
    Ok(out)
}

/// A new subject's encoding map: x (n × v) betas, t (n × k) the space's coordinates of the
/// same rows; (λ, μ) chosen from the grids (None: the crate's defaults, as `group adapt`) by
/// `folds`-fold cross-validation. Returns a dict: `map` (v × k), `lambda_`, `mu`, `cv_error`.
#[pyfunction]
#[pyo3(signature = (x, t, lambdas=None, mus=None, folds=5))]
fn align_encoding_map<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    t: PyReadonlyArray2<'py, f64>,
    lambdas: Option<Vec<f64>>,
    mus: Option<Vec<f64>>,
    folds: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let (xv, tv) = (view(&x), view(&t));
    let lambdas = lambdas.unwrap_or_else(|| DEFAULT_LAMBDAS.to_vec());
    let mus = mus.unwrap_or_else(|| DEFAULT_MUS.to_vec());
    let fit = py
        .detach(|| fit_encoding_map(xv, tv, &lambdas, &mus, folds))
        .map_err(align_error)?;
    let out = PyDict::new(py);
    out.set_item("map", to_numpy(py, fit.map.as_ref()))?;
    out.set_item("lambda_", fit.lambda)?;
    out.set_item("mu", fit.mu)?;
    out.set_item("cv_error", fit.cv_error)?;
    Ok(out)
}
