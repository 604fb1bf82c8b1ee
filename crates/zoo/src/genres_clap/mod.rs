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

pub mod chart;
pub mod config;
pub mod data;
pub mod quality;
pub mod tokenizer;
pub mod train;

pub use brainrecon_audio::genres_clap::{embedded, load_clap, LoadedClap, GENRES_CLAP};
pub use config::GenresClapConfig;
