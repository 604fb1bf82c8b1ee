//! shapes-ldm: a small latent diffusion model in Stable Diffusion 1's architecture, trained by
//! the project on the synthetic scenes, so that a machine without pretrained weights still has
//! a model that draws what it is told. It is written as a diffusers folder and loaded by
//! `brainrecon_diffusion` with the same code as SD 1.4 (the embedded copy lives there).
//!
//! - [`config`]: sizes and training settings ([`PriorConfig::shapes_ldm`]);
//! - [`data`]: the seeded scenes, the held-out tenth and the caption vocabulary;
//! - [`train`]: the three training stages ([`train_prior`]);
//! - [`embedded`]: the shipped weights (compiled into `brainrecon_diffusion`).

pub mod config;
pub mod data;
pub mod embedded;
pub mod train;

/// Which engine differentiates the denoiser's U-Net ([`PriorConfig::engine`]).
pub use brainrecon_nn::tape::TrainEngine;
pub use config::{text_config, unet_config, vae_config, PriorConfig};
pub use data::{caption_words, held_out_scenes, is_held_out, training_scene};
pub use embedded::{shapes_ldm_dir, SHAPES_LDM, SHAPES_LDM_MODEL};
pub use train::{min_snr_weights, train_prior, PriorSummary, Stage, TRAINING_RECORD};
