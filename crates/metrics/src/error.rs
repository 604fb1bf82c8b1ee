//! The one error type of this crate: inputs come from user files, so bad
//! shapes are reported, never panicked on.

use thiserror::Error;

/// Why a metric could not be computed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum MetricsError {
    /// A buffer does not have the length its stated shape implies, or two
    /// inputs that must match do not.
    #[error("shape mismatch for {what}: expected {expected} values, got {actual}")]
    ShapeMismatch {
        /// The input, as the message names it.
        what: &'static str,
        /// Values its shape implies.
        expected: usize,
        /// Values it holds.
        actual: usize,
    },
    /// An input has no elements where at least one (or more) is needed.
    #[error("{what} is empty; {need}")]
    Empty {
        /// The empty input.
        what: &'static str,
        /// What the metric needs, as a sentence.
        need: &'static str,
    },
    /// The image is smaller than the SSIM window.
    #[error("image of {h}x{w} is smaller than the {win}x{win} SSIM window")]
    ImageTooSmall {
        /// Image height in pixels.
        h: usize,
        /// Image width in pixels.
        w: usize,
        /// Side of the square window in pixels.
        win: usize,
    },
    /// A parameter is outside its valid range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A score's input holds NaN or an infinity: a broken decoder, refused rather than scored
    /// (see [`crate::rank`]). `what` names where the values came from (a file, a model).
    #[error(
        "{what}: expected finite values, found {value} at row {row}, column {column} \
         (a decoder that outputs non-finite values is refused, not scored)"
    )]
    NonFinite {
        /// Where the values came from.
        what: String,
        /// Row of the first non-finite value (0-based).
        row: usize,
        /// Column of the first non-finite value (0-based).
        column: usize,
        /// The value itself (NaN or ±∞).
        value: f64,
    },
    /// A resource file (for instance METEOR's jar) is missing or not what
    /// was expected.
    #[error("{path}: {what}")]
    Resource {
        /// The file.
        path: String,
        /// What is wrong with it.
        what: String,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, MetricsError>;

/// Checks that `actual` equals `expected`, naming the offending input.
pub(crate) fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(MetricsError::ShapeMismatch {
            what,
            expected,
            actual,
        })
    }
}

/// `h * w * c` without silent overflow on absurd user-provided shapes.
pub(crate) fn shape_len(what: &'static str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| MetricsError::InvalidArgument(format!("{what}: shape {dims:?} overflows")))
}
