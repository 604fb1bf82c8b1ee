//! The field's dataset layouts as they ship, one module per layout (as nilearn's `interfaces`),
//! and the project's own prepared formats. The file formats they are read through are in
//! `brainrecon-formats`; the synthetic subjects in `brainrecon-simulate`.
//!
//! - External layouts: [`nsd`] (NSD as it ships), [`bids`] (BIDS raw data), [`fmriprep`]
//!   (fMRIPrep derivatives and their confounds), [`ds005531`] (the naturalistic movie
//!   dataset), [`ds003720`] (the music dataset's stimulus events), [`cc2017`] (the video
//!   dataset and MinD-Video's arrays), [`experiment`] (an own event-related experiment's betas
//!   and atlases), [`things_eeg2`] (THINGS-EEG2's pickled EEG dicts and image set),
//!   [`things_meg`] (THINGS-MEG's preprocessed MNE epochs, converted to THINGS-EEG2's layout).
//! - The project's formats: [`prepared`] (the prepared subject every image route reads) and
//!   [`runs`] (continuous recordings as a run set, planned from any of the run layouts).
//!
//! Errors are the ground crate's [`brainrecon_core::DataError`].

#![warn(missing_docs)]

use brainrecon_core::{error, limits};

pub use brainrecon_core::{DataError, Result};

pub mod bids;
pub mod bids_eeg;
pub mod cc2017;
pub mod ds003720;
pub mod ds005531;
pub mod eeg_preprocess;
pub mod experiment;
pub mod fmriprep;
pub mod nsd;
pub mod prepared;
pub mod runs;
pub mod simulated;
pub mod things_eeg2;
pub mod things_meg;

/// The report's line when the output already holds a finished preparation with the same
/// settings (every `prepare` command says it alike).
pub fn already_prepared_line(out: &std::path::Path) -> String {
    format!(
        "{} is already prepared with these settings\n",
        out.display()
    )
}
