//! Error type of the crate: every user-facing failure is a variant, never a panic.

use std::path::PathBuf;

/// Errors raised while validating inputs, fitting, merging, saving or loading.
#[derive(Debug, thiserror::Error)]
pub enum RidgeError {
    /// Array shapes disagree (or a row-major buffer has the wrong length).
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// NaN or infinity in user data.
    #[error("{array} contains a non-finite value ({value}) at row {row}, column {col}")]
    NonFinite {
        /// The array, as the message names it (`X`, `Y`, …).
        array: &'static str,
        /// Row of the first non-finite value (0-based).
        row: usize,
        /// Column of that value (0-based).
        col: usize,
        /// The value itself (NaN or ±∞).
        value: f32,
    },
    /// Empty grid, or an alpha that is not strictly positive and finite.
    #[error("invalid alpha grid: {0}")]
    AlphaGrid(String),
    /// Inconsistent cross-validation setup (folds, groups).
    #[error("invalid cross-validation setup: {0}")]
    Cv(String),
    /// Other invalid options (chunk size, shard index).
    #[error("invalid option: {0}")]
    Options(String),
    /// The symmetric eigensolver did not converge.
    #[error("eigendecomposition of the {0} matrix did not converge")]
    Decomposition(&'static str),
    /// The GPU could not be used, or failed; names the step.
    #[error("GPU: {0}")]
    Gpu(String),
    /// Shard models cannot be merged.
    #[error("cannot merge shard models: {0}")]
    Merge(String),
    /// Filesystem error, with the path involved.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A saved model file is malformed; names the file and the field.
    #[error("invalid model file {file}: field `{field}`: {message}")]
    Format {
        /// The file.
        file: PathBuf,
        /// The field (a JSON key or a tensor name; `*` for the file as a whole).
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Crate result alias.
pub type Result<T, E = RidgeError> = std::result::Result<T, E>;

/// Errors of the shared file writers (atomic writes) as this crate's: I/O stays I/O with its
/// path, a malformed file stays a format error naming the file.
impl From<brainrecon_core::DataError> for RidgeError {
    fn from(e: brainrecon_core::DataError) -> Self {
        use brainrecon_core::DataError;
        match e {
            DataError::Io { path, source } => RidgeError::Io { path, source },
            DataError::Missing { path, .. } => RidgeError::Io {
                path,
                source: std::io::ErrorKind::NotFound.into(),
            },
            DataError::Format {
                path,
                format,
                detail,
            } => RidgeError::Format {
                file: path,
                field: format,
                message: detail,
            },
            DataError::Invalid {
                path,
                field,
                expected,
                found,
            } => RidgeError::Format {
                file: path,
                field,
                message: format!("expected {expected}, found {found}"),
            },
            DataError::Usage(message) => RidgeError::Options(message),
        }
    }
}
