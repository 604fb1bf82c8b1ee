//! Errors about user data. Every message names the file, the field and what was expected.
#![allow(missing_docs)]

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

thread_local! {
    static IN_FOREIGN_PARSER: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Runs a parser from another crate on a user's file; a panic in it (an assertion or an
/// overflow on malformed data) becomes a format error naming the file, and its message is not
/// printed. Our own readers check sizes before use; this is the fence around the others'.
pub fn guard_foreign_parser<T>(
    path: &Path,
    format: &str,
    parse: impl FnOnce() -> Result<T>,
) -> Result<T> {
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_FOREIGN_PARSER.with(|depth| depth.get()) == 0 {
                previous(info);
            }
        }));
    });
    IN_FOREIGN_PARSER.with(|depth| depth.set(depth.get() + 1));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(parse));
    IN_FOREIGN_PARSER.with(|depth| depth.set(depth.get() - 1));
    outcome.unwrap_or_else(|_| {
        Err(DataError::format(
            path,
            format,
            "malformed data: a size or type field is out of range",
        ))
    })
}
