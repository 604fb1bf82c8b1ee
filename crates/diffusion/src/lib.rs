//! Stable Diffusion on candle: our own modules, differentiable end to end, with diffusers'
//! parameter names, seeded noise, per-sample timesteps, and a VAE posterior mean.

pub mod channel;
pub mod clip;
pub mod clip_vision;
pub mod conv;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod embedded;
pub mod nn;
pub mod pipeline;
pub mod prior;
pub mod rng;
pub mod scheduler;
pub mod tokenizer;
pub mod train;
pub mod unet;
pub mod vae;
pub mod weights;
