//! brainrecon's file formats: readers and writers of the files recordings, stimuli and arrays
//! come in, each refusing bad input with an error naming the file and the field. The dataset
//! layouts built on them are in `brainrecon-datasets`.
//!
//! - Always built: [`npy`] (NumPy arrays, memory-mapped), [`image`] (PNG/JPEG/PPM, resampling),
//!   [`events`] (BIDS-style tab-separated tables), [`motion`] (a clip's global motion from its
//!   frames), [`brainvision`] and [`edf`] (EEG recordings: BrainVision; EDF, EDF+, BDF, BDF+),
//!   [`fif`] (MNE's epochs in FIF, split parts followed: THINGS-MEG's MEG epochs),
//!   [`fs_surface`] (FreeSurfer's triangle surfaces, curv files and flat patches).
//! - Behind features, so a model crate that wants an [`image::RgbImage`] compiles no codec:
//!   `nifti` ([`nifti_io`], [`nifti4d`], [`cifti`], [`freesurfer`] label tables, [`mgh`]
//!   FreeSurfer's MGH/MGZ volumes and surface maps, [`gifti`] surfaces and surface data), `dicom`
//!   ([`dicom`]: mosaics, slices, enhanced multi-frame, and a writer), `hdf5` ([`mat`], MATLAB
//!   v5 and v7.3; [`itk_transform`], ITK's HDF5 transforms), `audio` ([`audio`]: WAV, FLAC,
//!   MP3, OGG through symphonia, resampling, acoustic features), `video` ([`video`]: MP4/H.264
//!   through OpenH264's bundled source, GIF, frame folders). The default builds all of them.
//!
//! Errors and the limits on sizes read from files are the ground crate's
//! ([`brainrecon_core::DataError`], [`brainrecon_core::limits`]).

#![warn(missing_docs)]

use brainrecon_core::{error, limits};

pub use brainrecon_core::{DataError, Result};

#[cfg(feature = "audio")]
pub mod audio;
pub mod brainvision;
#[cfg(feature = "nifti")]
pub mod cifti;
#[cfg(feature = "dicom")]
pub mod dicom;
pub mod edf;
pub mod events;
pub mod fif;
#[cfg(feature = "nifti")]
pub mod freesurfer;
pub mod fs_surface;
#[cfg(feature = "nifti")]
pub mod gifti;
pub mod image;
#[cfg(feature = "hdf5")]
pub mod itk_transform;
#[cfg(feature = "hdf5")]
pub mod mat;
#[cfg(feature = "nifti")]
pub mod mgh;
pub mod motion;
#[cfg(feature = "nifti")]
pub mod nifti4d;
#[cfg(feature = "nifti")]
pub mod nifti_io;
pub mod npy;
pub mod pickle;
#[cfg(feature = "video")]
pub mod video;
