//! Errors about user data. Every message names the file, the field and what was expected.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: file not found (expected {what})")]
    Missing { path: PathBuf, what: String },

    #[error("{path}: {field}: expected {expected}, found {found}")]
    Invalid {
        path: PathBuf,
        field: String,
        expected: String,
        found: String,
    },

    #[error("{path}: cannot read {format}: {detail}")]
    Format {
        path: PathBuf,
        format: String,
        detail: String,
    },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{0}")]
    Usage(String),
}

pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    pub fn invalid(
        path: impl AsRef<Path>,
        field: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        DataError::Invalid {
            path: path.as_ref().to_path_buf(),
            field: field.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    pub fn format(path: impl AsRef<Path>, format: &str, detail: impl ToString) -> Self {
        DataError::Format {
            path: path.as_ref().to_path_buf(),
            format: format.to_string(),
            detail: detail.to_string(),
        }
    }

    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        let path = path.as_ref().to_path_buf();
        if source.kind() == std::io::ErrorKind::NotFound {
            return DataError::Missing {
                path,
                what: "an existing file".into(),
            };
        }
        DataError::Io { path, source }
    }
}

/// Fails with [`DataError::Missing`] unless `path` exists.
pub fn require_file(path: &Path, what: &str) -> Result<()> {
    if path.exists() {
        Ok(())
    } else {
        Err(DataError::Missing {
            path: path.to_path_buf(),
            what: what.to_string(),
        })
    }
}
