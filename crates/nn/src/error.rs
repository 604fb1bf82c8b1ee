//! The one error of nn and the model crates on it: finding, reading, building and running a
//! model, down to a single layer.

use std::path::{Path, PathBuf};

/// A result whose error is a [`ModelError`] by default.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// Everything that can go wrong while finding, reading, building or running a model.
///
/// The variants from [`MissingWeight`](ModelError::MissingWeight) to
/// [`Tensor`](ModelError::Tensor) are raised while a module is built from a
/// [`VarBuilder`](candle_nn::VarBuilder) or run on an input, where the weight file is not known;
/// [`ModelError::in_file`] names it.
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
    /// A parameter the module needs is absent from the weights.
    #[error("missing tensor `{name}` in the weights")]
    MissingWeight { name: String },
    /// A parameter has a shape other than the one the configuration implies.
    #[error(
        "tensor `{name}` has shape {got:?} in the weights, but the model expects {expected:?}"
    )]
    ShapeMismatch {
        name: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    /// An error while loading weights from a given file.
    #[error("{}: {source}", file.display())]
    InFile {
        file: PathBuf,
        #[source]
        source: Box<ModelError>,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A configuration file could not be parsed.
    #[error("cannot parse config {}: {source}", path.display())]
    ConfigParse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A configuration the modules cannot build (unknown block type, inconsistent lengths...).
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// An input of the wrong shape.
    #[error("invalid input `{name}`: {msg}")]
    InvalidInput { name: &'static str, msg: String },
    /// A tensor the weights could not give (a failed lookup or memory map), as candle words it.
    #[error(transparent)]
    Tensor(candle_core::Error),
    /// A failed tensor operation; `?` on a candle result lands here, in layers as in models.
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// A file written or read through the ground crate (atomic writes).
    #[error(transparent)]
    Data(#[from] brainrecon_core::DataError),
}

impl ModelError {
    /// True for bad input (files, names, shapes, arguments); false for internal failures.
    pub fn is_user_error(&self) -> bool {
        !matches!(self, ModelError::Candle(_) | ModelError::Tensor(_))
    }

    /// Attaches the weight file to an error raised while building a module from it (the
    /// variants from [`MissingWeight`](ModelError::MissingWeight) to
    /// [`Tensor`](ModelError::Tensor)). Other errors, which name their file already or are
    /// failed computations, come back unchanged.
    pub fn in_file(self, file: impl Into<PathBuf>) -> ModelError {
        match self {
            ModelError::MissingWeight { .. }
            | ModelError::ShapeMismatch { .. }
            | ModelError::InFile { .. }
            | ModelError::ReadFile { .. }
            | ModelError::ConfigParse { .. }
            | ModelError::InvalidConfig(_)
            | ModelError::InvalidInput { .. }
            | ModelError::Tensor(_) => ModelError::InFile {
                file: file.into(),
                source: Box::new(self),
            },
            other => other,
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
