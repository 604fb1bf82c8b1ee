//! shapes-blip: the project's own small captioner in BLIP's architecture (architecture and
//! loader in `brainrecon_language`), trained on the synthetic scenes and their captions so
//! that the caption route runs offline. `brainrecon train shapes-blip` retrains it.
//!
//! - [`config`]: sizes and training settings ([`CaptionerConfig::shapes_blip`]);
//! - [`data`]: the training scenes, the vocabulary and the first stage's batches;
//! - [`attribute_tokens`]: image tokens as ridge decodes them (the second stage's inputs);
//! - [`train`]: the two training stages ([`train_captioner`]);
//! - [`quality`]: how the captions name the held-out scenes ([`SceneNaming`]);
//! - [`embedded`]: the shipped weights.

pub mod attribute_tokens;
pub mod config;
pub mod data;
pub mod embedded;
pub mod quality;
pub mod train;

pub use config::CaptionerConfig;
pub use embedded::{SHAPES_BLIP, SHAPES_BLIP_MODEL};
pub use quality::SceneNaming;
pub use train::{train_captioner, CaptionerProgress, CaptionerSummary, TRAINING_RECORD};
