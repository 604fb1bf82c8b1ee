//! Online fMRI preprocessing for real-time reconstruction, one volume at a time.
//!
//! - [`grid`]: a volume's voxel grid (shape, voxel → world affine) and values; trilinear
//!   sampling, Gaussian smoothing in millimetres.
//! - [`rigid`]: 6-parameter rigid-body transforms (translations in mm, rotations in degrees
//!   about a centre, SPM's order of rotations) and their 4×4 matrices.
//! - [`realign`]: Gauss-Newton realignment of a volume to a reference (least squares of
//!   intensities, the reference's gradients computed once, as SPM's `spm_realign` and AFNI's
//!   `3dvolreg` linearise), and reslicing onto the reference's grid.
//! - [`watch`]: the export folder a scanner fills, each file handed over once complete.
//! - [`assemble`]: volumes from a single-frame export (a file per slice).
//! - [`read`]: volumes out of export files (DICOM layouts, NIfTI).
//! - [`follow`]: a session followed as the scanner writes it, volume by volume, as events
//!   (a volume preprocessed, a file refused, a wait), its motion written to motion.tsv.
//! - [`online`]: per-voxel detrending and z-scoring with running statistics, no look-ahead.
//! - [`session`]: a session volume by volume: realignment to its first volume, registration
//!   of that volume to the subject's reference, the subject's voxels sampled through both in
//!   one interpolation, running z-scores, motion traces and framewise displacement.
#![warn(missing_docs)]

pub mod assemble;
pub mod follow;
pub mod grid;
pub mod online;
pub mod read;
pub mod realign;
pub mod rigid;
pub mod session;
pub mod watch;
