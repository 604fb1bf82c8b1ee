//! One error type for the routes, so the CLI can tell bad input (exit 2) from failures.

use std::path::{Path, PathBuf};

/// The routes' result: [`RouteError`] unless another error is named.
pub type Result<T, E = RouteError> = std::result::Result<T, E>;

/// Why a route failed: bad input (see [`RouteError::is_user_error`]; the binary exits with 2),
/// an internal failure, or a stop by a signal.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// Files and values the data layer read or refused (named in the message).
    #[error(transparent)]
    Data(#[from] brainrecon_core::DataError),
    /// The ridge engine's: shapes, non-finite values, the alpha grid, the device, its files.
    #[error(transparent)]
    Ridge(#[from] brainrecon_ridge::RidgeError),
    /// A model's (diffusion, captioner, encoders): loading its weights or running it.
    #[error(transparent)]
    Diffusion(#[from] brainrecon_nn::ModelError),
    /// The metrics': shapes, empty inputs, images below the SSIM window, non-finite values.
    #[error(transparent)]
    Metrics(#[from] brainrecon_metrics::MetricsError),
    /// Alignment inputs that do not fit (sizes, too few samples).
    #[error(transparent)]
    Align(#[from] brainrecon_align::AlignError),
    /// A file that does not fit the others: names the file, the field and what was expected.
    #[error("{path}: {field}: expected {expected}, found {found}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The field, or what of the file does not fit.
        field: String,
        /// What was expected there.
        expected: String,
        /// What was found.
        found: String,
    },
    /// Something the user must do first.
    #[error("{path}: missing ({what})")]
    Missing {
        /// The file or folder that is not there.
        path: PathBuf,
        /// What it should hold, and how to make it.
        what: String,
    },
    /// Writing the HTML report failed.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// A bad argument or setting: the message names the flag and what was expected.
    #[error("{0}")]
    Usage(String),
    /// Every problem found with a command's inputs before it started its work, one a line.
    #[error("{}", problem_lines(.0))]
    Inputs(Vec<String>),
    /// Stopped by a signal between images; what was written stays and a rerun resumes.
    #[error("stopped by a signal with {done} of {total} test images finished; run the same command again to resume")]
    Interrupted {
        /// Test images finished.
        done: usize,
        /// Test images of the run.
        total: usize,
    },
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
    /// A [`RouteError::Mismatch`]: `path`'s `field` holds `found` where `expected` was due.
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

/// Why the HTML report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Writing or removing a page failed; the message names the file.
    #[error(transparent)]
    Data(#[from] brainrecon_core::DataError),

    /// A report whose parts do not fit (a grid row without one image per column, an empty
    /// image, a metric row of another width), or a path without a file name.
    #[error("{path}: {what}")]
    Invalid {
        /// The report's path.
        path: PathBuf,
        /// What does not fit.
        what: String,
    },

    /// Drawing a plot or encoding an image failed.
    #[error("{path}: cannot render {what}: {detail}")]
    Render {
        /// The page that was to be written.
        path: PathBuf,
        /// What was being drawn.
        what: String,
        /// The renderer's message.
        detail: String,
    },
}

/// Whether `cause`, one link of an error's chain, is bad input (the data, files, names, shapes
/// and arguments a user hands in; the binary exits with 2) rather than a failure: an error of
/// the ground, ridge, metrics, GLM or real-time crates (a watched session's too), or a route's
/// or model's bad-input case.
pub fn is_user_error(cause: &(dyn std::error::Error + 'static)) -> bool {
    cause.is::<brainrecon_core::DataError>()
        || cause.is::<brainrecon_ridge::RidgeError>()
        || cause.is::<brainrecon_metrics::MetricsError>()
        || cause.is::<brainrecon_glm::fit::GlmError>()
        || cause.is::<brainrecon_realtime::session::VolumeError>()
        || cause.is::<brainrecon_realtime::follow::WatchError>()
        || cause
            .downcast_ref::<RouteError>()
            .is_some_and(RouteError::is_user_error)
        || cause
            .downcast_ref::<brainrecon_nn::ModelError>()
            .is_some_and(brainrecon_nn::ModelError::is_user_error)
}

/// Whether `cause`, one link of an error's chain, is a run stopped by a signal
/// ([`RouteError::Interrupted`]; the binary exits with 143).
pub fn is_interrupted(cause: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        cause.downcast_ref::<RouteError>(),
        Some(RouteError::Interrupted { .. })
    )
}
