//! brainrecon's data layer: the file formats, and the dataset layouts built on them. The
//! synthetic subjects are in `brainrecon-simulate`.
//!
//! - File formats: [`npy`], [`nifti_io`], [`cifti`], [`dicom`], [`mat`], [`image`], [`audio`],
//!   [`video`], [`freesurfer`] (label tables), [`itk_transform`] (ITK's HDF5 transforms);
//!   [`motion`], a clip's global motion read from its frames. Errors, atomic writes and limits
//!   on sizes read from files are the ground crate's (`brainrecon_core`); [`error`] and
//!   [`limits`] are its modules, re-exported because every reader here returns their types.
//! - Dataset layouts: [`nsd`] (NSD as it ships), [`prepared`] (the prepared subject every image
//!   route reads), [`runs`] (continuous recordings: BIDS, fMRIPrep derivatives, ds005531, as
//!   run sets), [`experiment`] (an own event-related experiment's betas → a prepared subject),
//!   [`cc2017`] (the video dataset).

pub mod audio;
pub mod cc2017;
pub mod cifti;
pub mod dicom;
pub use brainrecon_core::error;
pub mod experiment;
pub mod freesurfer;
pub mod image;
pub mod itk_transform;
pub use brainrecon_core::limits;
pub mod mat;
pub mod motion;
pub mod nifti_io;
pub mod npy;
pub mod nsd;
pub mod prepared;
pub mod runs;
pub mod video;

pub use error::{DataError, Result};
