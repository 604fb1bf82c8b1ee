//! Reconstruction routes built on the data layer, the ridge engine, the diffusion engine and
//! the metrics: per-stimulus features, decoders, the linear route (Takagi & Nishimoto 2023),
//! Brain-to-Context (B2C), the evaluation report and the field's metric suite.

pub mod arrays;
pub mod b2c;
pub mod bench;
pub mod caption;
pub mod clip;
pub mod decoder_stream;
pub mod decoders;
pub mod demo;
pub mod demo_eeg;
pub mod demo_new_subject;
pub mod eeg;
pub mod encoding;
pub mod error;
pub mod evaluate;
pub mod features;
pub mod folder_eval;
pub mod generate;
pub mod glm;
pub mod group;
pub mod linear;
pub mod music;
pub mod naturalistic;
pub mod options;
pub mod progress;
pub mod realtime;
pub mod reconstruct;
pub mod report;
pub mod shards;
pub mod stream;
pub mod suite;
pub mod video;

/// Maps on the cortex (the reports call it; `brainrecon cortex draw` draws NIfTI maps).
pub use brainrecon_cortex::report as cortex;
pub use brainrecon_cortex::report::CortexChoice;
pub use error::{Result, RouteError};
