//! Neural-network building blocks on candle, shared by brainrecon's model families (diffusion,
//! vision, ...). No model lives here: each family has its own crate on top.
//!
//! - [`layers`]: differentiable layers with checkpoint names (linear, convolution, norms,
//!   attention, activations) and the [`VarBuilder`](candle_nn::VarBuilder) helpers that load
//!   them;
//! - [`conv`] and [`channel`]: the project's own convolution and per-channel ops;
//! - [`init`]: seeded initialisation of any module's parameters, as PyTorch's defaults;
//! - [`params`]: named trainable variables and their safetensors files;
//! - [`optim`]: AdamW, gradient clipping and the learning-rate schedule;
//! - [`loss`]: losses; [`checkpoint`]: resumable checkpoints and [`checkpoint::ResumableRun`];
//! - [`rng`]: seeded noise, hashes and mini-batch order;
//! - [`tape`]: the project's own reverse-mode tape for its training graphs, beside candle;
//! - [`weights`] and [`embedded`]: safetensors and Hugging Face cache loading;
//! - [`config_bounds`] and [`vision_tower`]: checked settings from `config.json` files;
//! - with the `cuda` feature, fused inference kernels for NVIDIA GPUs (`cuda`).
//!
//! Layers sit on private CPU kernels (one-pass f32 ops on the widest vector unit the CPU has),
//! which import nothing above them.

#![warn(missing_docs)]

pub mod channel;
pub mod checkpoint;
pub mod config_bounds;
pub mod conv;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod embedded;
pub mod error;
pub mod init;
mod kernels;
pub mod layers;
pub mod loss;
pub mod optim;
pub mod params;
pub mod rng;
pub mod tape;
pub mod vision_tower;
pub mod weights;
mod winograd;

/// The one error of nn and the model crates on it, also reachable as [`Error`].
pub use error::ModelError;
/// [`ModelError`] under the short name.
pub use error::ModelError as Error;
pub use error::Result;
