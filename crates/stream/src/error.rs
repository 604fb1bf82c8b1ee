//! Errors about user data and parameters. Every message names the file (or stream), the field
//! and what was expected.

use brainrecon_core::DataError;
use std::path::{Path, PathBuf};

/// Everything that can go wrong between a recording and a latent.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// An operating-system error on a file or stream.
    #[error("{}: {error}", .path.display())]
    Io {
        /// The file or stream.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        error: std::io::Error,
    },

    /// One cell of a text table could not be read.
    #[error("{}: line {line}, column {column}: expected {expected}, found {found:?}", .path.display())]
    Cell {
        /// The file.
        path: PathBuf,
        /// 1-based line number in the file.
        line: usize,
        /// 1-based column number.
        column: usize,
        /// What the cell should hold.
        expected: String,
        /// What it holds.
        found: String,
    },

    /// A parameter given by the caller (not read from a file) is out of range.
    #[error("{name}: expected {expected}, found {found}")]
    Parameter {
        /// The parameter, as the caller names it.
        name: String,
        /// Its valid range.
        expected: String,
        /// The value given.
        found: String,
    },

    /// A window had no channel left to build a latent from.
    #[error("window at sample {start}: no usable channel ({reason})")]
    NoUsableChannel {
        /// First frame of the window.
        start: u64,
        /// Why no channel is usable.
        reason: String,
    },

    /// An error from the shared data layer (the `.npy` header parser), and a field of a file or
    /// stream that held something other than what was expected ([`StreamError::invalid`]).
    #[error(transparent)]
    Data(#[from] DataError),
}

/// Result with [`StreamError`].
pub type Result<T> = std::result::Result<T, StreamError>;

impl StreamError {
    /// A field of `path` held `found` where `expected` was expected: the data layer's
    /// [`DataError::invalid`], so the two word it alike.
    pub fn invalid(
        path: impl AsRef<Path>,
        field: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        StreamError::Data(DataError::invalid(path, field, expected, found))
    }

    /// An operating-system error on `path`.
    pub fn io(path: impl AsRef<Path>, error: std::io::Error) -> Self {
        StreamError::Io {
            path: path.as_ref().to_path_buf(),
            error,
        }
    }

    /// A caller's parameter `name` is `found`, where `expected` was expected.
    pub fn parameter(
        name: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        StreamError::Parameter {
            name: name.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }
}

/// Checks that a sample rate is finite and positive.
pub fn check_rate(name: &str, rate: f64) -> Result<f64> {
    if rate.is_finite() && rate > 0.0 {
        Ok(rate)
    } else {
        Err(StreamError::parameter(
            name,
            "a finite sample rate above 0 Hz",
            format!("{rate}"),
        ))
    }
}

/// Checks that a channel count is at least 1.
pub fn check_channels(name: &str, channels: usize) -> Result<usize> {
    if channels >= 1 {
        Ok(channels)
    } else {
        Err(StreamError::parameter(name, "at least 1 channel", "0"))
    }
}
