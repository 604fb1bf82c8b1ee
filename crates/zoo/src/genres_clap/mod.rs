//! genres-clap: the project's own small CLAP (architecture and loader in `brainrecon_audio`),
//! trained on the synthetic music generator's clips and captions so that the music route runs
//! offline.
//!
//! - [`config`]: sizes and training settings ([`GenresClapConfig::genres_clap`]);
//! - [`tokenizer`]: the byte-level BPE trained on the training stream's captions;
//! - [`data`]: the training clips (a seeded stream of synthetic clips no subject hears),
//!   their random 10-s windows, and the held-out clips;
//! - [`train`]: the symmetric contrastive loss and the resumable training run;
//! - [`quality`]: retrieval of held-out clips (by genre and by clip);
//! - [`embedded`]: the shipped weights (compiled into `brainrecon_audio`).

pub mod config;
pub mod data;
pub mod quality;
pub mod tokenizer;
pub mod train;

pub use brainrecon_audio::genres_clap::{embedded, LoadedClap, GENRES_CLAP};
pub use config::GenresClapConfig;

use crate::registry::{resolve_kind, Kind};
use brainrecon_nn::Result;
use candle_core::Device;
use std::path::PathBuf;

/// The folder of a CLAP: `genres-clap` (built in, written to the cache on first use), a
/// folder, or a hub id in the Hugging Face cache.
pub fn resolve_clap(model: &str) -> Result<PathBuf> {
    match resolve_kind(model, Kind::Clap)? {
        Some(dir) => Ok(dir),
        None => brainrecon_audio::clap::model::resolve_model(model),
    }
}

/// Loads a CLAP (model, `preprocessor_config.json`, tokenizer) named as [`resolve_clap`]
/// takes it.
pub fn load_clap(model: &str, device: &Device) -> Result<LoadedClap> {
    brainrecon_audio::genres_clap::load_clap_dir(&resolve_clap(model)?, device)
}
