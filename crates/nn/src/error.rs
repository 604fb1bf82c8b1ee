//! The error of loading and running models.

use std::path::{Path, PathBuf};

/// A result whose error is a [`ModelError`] by default.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// Everything that can go wrong while finding, reading or running a model.
#[allow(missing_docs)] // the variants read as their messages
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: missing ({what})")]
    MissingFile { path: PathBuf, what: String },
    #[error("{path}: not a valid {what}: {message}")]
    Config {
        path: PathBuf,
        what: String,
        message: String,
    },
    #[error(
        "{path}: pickle checkpoints are never loaded (they can run code); convert it to \
         safetensors (e.g. `diffusers` `save_pretrained(..., safe_serialization=True)`) and \
         put the .safetensors file next to it"
    )]
    Pickle { path: PathBuf },
    #[error("{path}: not a valid safetensors file: {message}")]
    Safetensors { path: PathBuf, message: String },
    #[error("{path}: tensor '{name}' is missing")]
    MissingTensor { path: PathBuf, name: String },
    #[error("{path}: tensor '{name}' has shape {found:?}, expected {expected:?}")]
    Shape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{path}: tensor '{name}' is stored as {dtype}, which is not supported")]
    Dtype {
        path: PathBuf,
        name: String,
        dtype: String,
    },
    #[error("model '{model}': {message}")]
    ModelNotFound { model: String, message: String },
    #[error("tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Module(#[from] crate::layers::Error),
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// A file written or read through the ground crate (atomic writes).
    #[error(transparent)]
    Data(#[from] brainrecon_core::DataError),
}

impl ModelError {
    /// True for bad input (files, names, shapes, arguments); false for internal failures.
    pub fn is_user_error(&self) -> bool {
        match self {
            ModelError::Candle(_) => false,
            ModelError::Module(e) => !matches!(e, crate::layers::Error::Candle(_)),
            _ => true,
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
