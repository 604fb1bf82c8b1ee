//! `brainrecon._native`: the compiled half of the `brainrecon` Python package.
//!
//! Numpy arrays come in as borrowed views (no copy: any strides are passed to the solver as a
//! strided matrix) and every long computation runs with the GIL released. The pure-Python
//! layer in `python/brainrecon` adds scikit-learn's estimator protocol on top.
#![warn(missing_docs)]

mod align;
mod banded;
mod data;
mod eeg;
mod errors;
mod glm;
mod group;
mod metrics;
mod output_folder;
mod ridge;
mod routes;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    ridge::register(m)?;
    banded::register(m)?;
    metrics::register(m)?;
    data::register(m)?;
    glm::register(m)?;
    routes::register(m)?;
    align::register(m)?;
    group::register(m)?;
    eeg::register(m)?;
    output_folder::register(m)?;
    Ok(())
}
