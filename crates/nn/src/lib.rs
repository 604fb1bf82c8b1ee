//! Neural-network building blocks on candle, shared by brainrecon's model families (diffusion,
//! vision, ...): differentiable layers with checkpoint names ([`layers`]), the project's own
//! convolution ([`conv`]) and per-channel ops ([`channel`]), seeded noise ([`rng`]), seeded
//! initialisation, AdamW and resumable checkpoints ([`train`]), safetensors and Hugging Face
//! cache loading ([`weights`]), and, with the `cuda` feature, fused inference kernels for NVIDIA
//! GPUs ([`cuda`]). No model lives here: each family has its own crate on top.

mod attention_cpu;
pub mod channel;
pub mod config_bounds;
pub mod conv;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod embedded;
pub mod error;
pub mod layers;
mod norm_cpu;
pub mod rng;
mod simd;
pub mod train;
pub mod weights;
mod winograd;

pub use error::{ModelError, Result};
