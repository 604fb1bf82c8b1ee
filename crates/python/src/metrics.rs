//! Reconstruction metrics on batches of numpy arrays (brainrecon-metrics underneath).
//!
//! The Python layer flattens each item to one C-contiguous float32 row, so every function here
//! takes `(n, m)` matrices whose rows are the items.

use brainrecon_metrics::{identification, image};
use numpy::{PyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::errors;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(two_way_identification, m)?)?;
    m.add_function(wrap_pyfunction!(pixcorr, m)?)?;
    m.add_function(wrap_pyfunction!(ssim, m)?)?;
    Ok(())
}

/// The rows of a C-contiguous `(n, m)` array as one slice, with `(n, m)`.
fn rows<'a>(
    name: &str,
    array: &'a PyReadonlyArray2<'_, f32>,
) -> PyResult<(&'a [f32], usize, usize)> {
    let [n, m] = [array.shape()[0], array.shape()[1]];
    let slice = array
        .as_slice()
        .map_err(|_| errors::value(format!("{name}: expected a C-contiguous array")))?;
    Ok((slice, n, m))
}

fn same_shape(
    a: &PyReadonlyArray2<'_, f32>,
    b: &PyReadonlyArray2<'_, f32>,
    names: (&str, &str),
) -> PyResult<()> {
    if a.shape() != b.shape() {
        return Err(errors::value(format!(
            "{} has shape {:?} but {} has shape {:?}",
            names.0,
            a.shape(),
            names.1,
            b.shape()
        )));
    }
    Ok(())
}

/// MindEye's two-way identification of `preds` (n, d) against `truths` (n, d): per prediction,
/// the share of other truths less correlated with it than its own. Returns (n,).
#[pyfunction]
fn two_way_identification<'py>(
    py: Python<'py>,
    preds: PyReadonlyArray2<'py, f32>,
    truths: PyReadonlyArray2<'py, f32>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    same_shape(&preds, &truths, ("preds", "truths"))?;
    let (p, n, d) = rows("preds", &preds)?;
    let (t, _, _) = rows("truths", &truths)?;
    let per = py
        .detach(|| identification::two_way_identification_per_prediction(p, t, n, d))
        .map_err(errors::metrics)?;
    Ok(PyArray1::from_vec(py, per))
}

/// PixCorr of each pair of rows (images flattened), (n,).
#[pyfunction]
fn pixcorr<'py>(
    py: Python<'py>,
    a: PyReadonlyArray2<'py, f32>,
    b: PyReadonlyArray2<'py, f32>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    same_shape(&a, &b, ("a", "b"))?;
    let (a, n, m) = rows("a", &a)?;
    let (b, _, _) = rows("b", &b)?;
    let values = py
        .detach(|| {
            (0..n)
                .map(|i| image::pixcorr(&a[i * m..(i + 1) * m], &b[i * m..(i + 1) * m]))
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(errors::metrics)?;
    Ok(PyArray1::from_vec(py, values))
}

/// SSIM (scikit-image's Gaussian setting) of each pair of rows, each an (h, w, 3) RGB image
/// (compared through `rgb2gray`, as MindEye) when `rgb`, else an (h, w) grayscale one. (n,).
#[pyfunction]
fn ssim<'py>(
    py: Python<'py>,
    a: PyReadonlyArray2<'py, f32>,
    b: PyReadonlyArray2<'py, f32>,
    height: usize,
    width: usize,
    rgb: bool,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    same_shape(&a, &b, ("a", "b"))?;
    let (a, n, m) = rows("a", &a)?;
    let (b, _, _) = rows("b", &b)?;
    let one = |x: &[f32], y: &[f32]| {
        if rgb {
            image::ssim_rgb(x, y, height, width)
        } else {
            image::ssim(x, y, height, width)
        }
    };
    let values = py
        .detach(|| {
            (0..n)
                .map(|i| one(&a[i * m..(i + 1) * m], &b[i * m..(i + 1) * m]))
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(errors::metrics)?;
    Ok(PyArray1::from_vec(py, values))
}
