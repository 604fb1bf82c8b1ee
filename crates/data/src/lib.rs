//! brainrecon's data layer: NSD as it ships, the prepared-subject format, continuous recordings
//! (BIDS, ds005531) as run sets, the synthetic subjects, and the array, volume and image formats
//! they use.

pub mod atomic;
pub mod audio;
pub mod cc2017;
pub mod cifti;
pub mod dicom;
pub mod error;
pub mod experiment;
pub mod freesurfer;
pub mod image;
pub mod limits;
pub mod mat;
pub mod motion;
pub mod nifti_io;
pub mod npy;
pub mod nsd;
pub mod prepared;
pub mod runs;
pub mod simulate;
pub mod video;

pub use error::{DataError, Result};
