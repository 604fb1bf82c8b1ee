//! The crates' errors as Python exceptions, with the CLI's messages (their `Display` text).
//!
//! Missing files become `FileNotFoundError`, other I/O failures `OSError`, failures of the
//! numerics `RuntimeError`, and everything about bad input (shapes, NaN, options, malformed
//! files) `ValueError`.

use brainrecon_core::DataError;
use brainrecon_metrics::MetricsError;
use brainrecon_ridge::RidgeError;
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::PyErr;

fn io_error(kind: std::io::ErrorKind, message: String) -> PyErr {
    if kind == std::io::ErrorKind::NotFound {
        PyFileNotFoundError::new_err(message)
    } else {
        PyOSError::new_err(message)
    }
}

pub fn ridge(error: RidgeError) -> PyErr {
    let message = error.to_string();
    match &error {
        RidgeError::Io { source, .. } => io_error(source.kind(), message),
        RidgeError::Decomposition(_) | RidgeError::Gpu(_) => PyRuntimeError::new_err(message),
        _ => PyValueError::new_err(message),
    }
}

pub fn data(error: DataError) -> PyErr {
    let message = error.to_string();
    match &error {
        DataError::Missing { .. } => PyFileNotFoundError::new_err(message),
        DataError::Io { source, .. } => io_error(source.kind(), message),
        _ => PyValueError::new_err(message),
    }
}

pub fn metrics(error: MetricsError) -> PyErr {
    PyValueError::new_err(error.to_string())
}

pub fn value(message: impl Into<String>) -> PyErr {
    PyValueError::new_err(message.into())
}
