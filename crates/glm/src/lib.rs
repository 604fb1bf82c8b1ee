//! Single-trial GLMs of fMRI time series, following GLMsingle (Prince et al. 2022, eLife;
//! cvnlab/GLMsingle): its four models and the pieces they are built from.
//!
//! - [`pchip`]: the piecewise cubic Hermite interpolator GLMsingle resamples HRFs with
//!   (scipy's `PchipInterpolator`).
//! - [`hrf`]: GLMsingle's canonical HRF and its library of 20 HRFs for a stimulus duration and
//!   TR (`getcanonicalhrf`, `getcanonicalhrflibrary`), from the tables it ships.
//! - [`design`]: a design matrix from event onsets in seconds, each onset's HRF interpolated at
//!   the TRs, as GLMsingle's onset-time `convolve_design` does for onsets between TRs.
//! - [`engine`]: the shared least squares (nuisance projection, fits over all runs, R²).
//! - [`fit`]: TYPEA (on/off: `onoffR2`, `meanvol`, `betasmd`) and TYPEB (single-trial betas
//!   with the best of the library's 20 HRFs per voxel: `HRFindex`, `R2`, `betasmd`).
//! - [`tail`]: the two-Gaussian tail threshold of the on/off R² (`findtailthreshold`).
//! - [`denoise`]: GLMdenoise's noise pool, components and their cross-validated number.
//! - [`xval`]: cross-validation of single-trial betas across runs (`calcbadness`).
//! - [`fracridge`]: fractional ridge as the fracridge package interpolates it.
//! - [`glmsingle`]: all four models in GLMsingle's order, with TYPEC (GLMdenoise) and TYPED
//!   (plus fractional ridge per voxel: `FRACvalue`, `scaleoffset`).
//! - [`stages`]: TYPEA, TYPEB and GLMdenoise kept as they finish, so an interrupted fit resumes.
#![warn(missing_docs)]

pub mod denoise;
pub mod design;
pub mod engine;
pub mod fit;
pub mod fracridge;
pub mod glmsingle;
pub mod hrf;
pub mod pchip;
pub mod stages;
pub mod tail;
pub mod xval;
