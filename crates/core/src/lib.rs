//! The ground crate: what every brainrecon crate that reads, writes or computes needs, written once.
//!
//! - [`device`]: [`Device`], where a fit or a model runs (`cpu`, `cuda`, `cuda:N`);
//! - [`error`]: [`DataError`], the error about user data that names the file, the field and what
//!   was expected (the binary exits with 2 on it);
//! - [`fs`]: atomic file writes and [`fs::OutputDir`], the one protocol for output folders
//!   (create, resume when the settings match, stage, commit, abort);
//! - [`geometry`]: 3×3 and affine inverses under one singularity rule, and whether two
//!   affines place one grid;
//! - [`stats`]: median, quantiles, Pearson correlation and z-scores;
//! - [`signal`]: GLMsingle's polynomial drift basis;
//! - `launch` (unix): whether the CPU build hands a `--device cuda` command to the GPU build;
//! - [`limits`]: bounds on sizes read out of files, checked before any allocation;
//! - [`offline`]: the offline setting (`BRAINRECON_OFFLINE=1`) and its check before a socket;
//! - [`progress`]: progress bars drawn only when a person is watching;
//! - [`text`]: base64 and escaped markup, for pages and XML files.
//!
//! It depends on no numerical or model crate (no candle, no faer), so every crate can use it.
#![warn(missing_docs)]

pub mod device;
pub mod error;
pub mod fs;
pub mod geometry;
#[cfg(unix)]
pub mod launch;
pub mod limits;
pub mod offline;
pub mod progress;
pub mod signal;
pub mod stats;
pub mod text;

pub use device::Device;
pub use error::{DataError, Result};
