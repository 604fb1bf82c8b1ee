//! Single-trial GLMs of fMRI time series, following GLMsingle (Prince et al. 2022, eLife;
//! cvnlab/GLMsingle): the pieces its design is built from.
//!
//! - [`pchip`]: the piecewise cubic Hermite interpolator GLMsingle resamples HRFs with
//!   (scipy's `PchipInterpolator`).
//! - [`hrf`]: GLMsingle's canonical HRF and its library of 20 HRFs for a stimulus duration and
//!   TR (`getcanonicalhrf`, `getcanonicalhrflibrary`), from the tables it ships.
//! - [`design`]: a design matrix from event onsets in seconds, each onset's HRF interpolated at
//!   the TRs, as GLMsingle's onset-time `convolve_design` does for onsets between TRs.
//! - [`fit`]: GLMsingle's assumed-HRF fit and the models built on it: TYPEA (on/off: `onoffR2`,
//!   `meanvol`, `betasmd`) and TYPEB (single-trial betas with the best of the library's 20
//!   HRFs per voxel: `HRFindex`, `R2`, `betasmd`). TYPEC (GLMdenoise) and TYPED (fractional
//!   ridge) are not built yet.
//!
//! Drift polynomials use GLMsingle's degree for a run's duration:
//! `brainrecon_data::runs::detrend::degree_for_duration`.

pub mod design;
pub mod fit;
pub mod hrf;
pub mod pchip;
