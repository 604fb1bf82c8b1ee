//! shapes-motion: the motion U-Net trained for shapes-ldm (AnimateDiff's motion modules in
//! the image U-Net, diffusers' `UNetMotionModel`; architecture and loader in
//! `brainrecon_diffusion`), so that the video route runs offline. `brainrecon train
//! shapes-motion` (also `video train-motion`) retrains it.
//!
//! - [`config`]: the training settings ([`MotionTrainConfig::shapes_motion`]) and the
//!   adapter's layout;
//! - [`data`]: the seeded clips of moving shapes and their latents;
//! - [`train`]: the resumable training run ([`train_motion`]);
//! - [`embedded`]: the shipped weights (compiled into `brainrecon_diffusion`).
//!
//! Its quality test (crates/routes/tests/shapes_motion.rs) reads clips back with the video
//! route's direction reader, so it stays with the route.

pub mod config;
pub mod data;
pub mod embedded;
pub mod train;

pub use config::{adapter_config, MotionTrainConfig};
pub use data::{clip_latents, shifted_timestep, training_clips};
pub use embedded::{shapes_motion_dir, SHAPES_MOTION, SHAPES_MOTION_FILES, SHAPES_MOTION_MODEL};
pub use train::{train_motion, MotionTrainSummary, TRAINING_RECORD};
