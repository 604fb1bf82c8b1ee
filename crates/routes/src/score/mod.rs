//! The scoring floor of the spine: evaluation of reconstructions against their stimuli, the
//! field's metric suite, evaluation of a folder of images, and the HTML report.

pub mod evaluate;
pub mod folder_eval;
pub mod report;
pub mod suite;

/// FDR level of the significance maps and counts.
pub const FDR_ALPHA: f64 = 0.05;
