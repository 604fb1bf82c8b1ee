//! One error type for the routes, so the CLI can tell bad input (exit 2) from failures.

use std::path::{Path, PathBuf};

pub type Result<T, E = RouteError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error(transparent)]
    Data(#[from] brainrecon_core::DataError),
    #[error(transparent)]
    Ridge(#[from] brainrecon_ridge::RidgeError),
    #[error(transparent)]
    Diffusion(#[from] brainrecon_diffusion::weights::DiffusionError),
    #[error(transparent)]
    Metrics(#[from] brainrecon_metrics::MetricsError),
    /// Alignment inputs that do not fit (sizes, too few samples).
    #[error(transparent)]
    Align(#[from] brainrecon_align::AlignError),
    /// A file that does not fit the others: names the file, the field and what was expected.
    #[error("{path}: {field}: expected {expected}, found {found}")]
    Mismatch {
        path: PathBuf,
        field: String,
        expected: String,
        found: String,
    },
    /// Something the user must do first.
    #[error("{path}: missing ({what})")]
    Missing { path: PathBuf, what: String },
    #[error(transparent)]
    Report(#[from] crate::score::report::ReportError),
    #[error("{0}")]
    Usage(String),
    /// Every problem found with a command's inputs before it started its work, one a line.
    #[error("{}", problem_lines(.0))]
    Inputs(Vec<String>),
    /// Stopped by a signal between images; what was written stays and a rerun resumes.
    #[error("stopped by a signal with {done} of {total} test images finished; run the same command again to resume")]
    Interrupted { done: usize, total: usize },
}

fn problem_lines(problems: &[String]) -> String {
    let mut text = format!(
        "{} problem{} with the inputs (nothing was computed):",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        text.push_str("\n  ");
        text.push_str(p);
    }
    text
}

impl From<brainrecon_diffusion::pipeline::CandleError> for RouteError {
    fn from(e: brainrecon_diffusion::pipeline::CandleError) -> Self {
        RouteError::Diffusion(e.into())
    }
}

impl RouteError {
    pub fn mismatch(
        path: &Path,
        field: impl Into<String>,
        expected: impl ToString,
        found: impl ToString,
    ) -> Self {
        RouteError::Mismatch {
            path: path.to_path_buf(),
            field: field.into(),
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }

    /// True for bad input (files, shapes, arguments); false for internal failures.
    pub fn is_user_error(&self) -> bool {
        match self {
            RouteError::Diffusion(e) => e.is_user_error(),
            RouteError::Report(_) => false,
            // Ridge and metrics errors come from the shapes and values users hand in.
            _ => true,
        }
    }
}
