//! The project's own models, trained beside their architectures rather than inside them (as
//! candle keeps training in its examples): one module per shipped checkpoint, each with its
//! named config, its training data from the simulators, its training run and its quality
//! checks. The architectures and loaders stay in `brainrecon_diffusion`, `brainrecon_audio`
//! and `brainrecon_language`.
//!
//! - [`shapes_ldm`]: the small latent diffusion model of the synthetic scenes;
//! - [`genres_clap`]: the small CLAP of the music route;
//! - [`shapes_blip`]: the small captioner of the synthetic scenes;
//! - [`shapes_motion`]: the motion U-Net of the video route;
//! - [`word2vec_movie`]: the skip-gram vectors of the naturalistic route.
//!
//! [`resolve`] finds a shipped model's folder by name; [`chart`] draws the loss curves of the
//! training runs (and of the B2C route's).

pub mod chart;
pub mod genres_clap;
pub mod registry;
pub mod shapes_blip;
pub mod shapes_ldm;
pub mod shapes_motion;
pub mod word2vec_movie;

pub use registry::{resolve, resolve_kind, Kind, MODELS};
