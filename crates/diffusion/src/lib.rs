//! Stable Diffusion on candle: our own modules, differentiable end to end, with diffusers'
//! parameter names, seeded noise, per-sample timesteps, and a VAE posterior mean.

#![warn(missing_docs)]

pub mod clip;
pub mod clip_model;
pub mod clip_vision;
pub mod embedded;
#[cfg(test)]
mod hostile_configs;
pub mod motion;
pub mod pipeline;
pub mod prior;
pub mod scheduler;
pub mod tokenizer;
pub mod unet;
pub mod unet_motion;
pub mod unet_tape;
pub mod vae;
pub mod warp;
pub mod weights;
