//! Reconstruction routes built on the data layer, the ridge engine, the diffusion engine and
//! the metrics.
//!
//! # The house rule
//! The crate has a spine and routes on it:
//! - the spine: [`decode`] (features, decoders, arrays, options), [`linear`] (the sampler of
//!   Takagi & Nishimoto's linear route, which every image route conditions, with its shards and
//!   the caption generator) and [`score`] (evaluation, the metric suite, the report), on the
//!   shared [`error`] and [`progress`];
//! - the routes: [`b2c`], [`caption`], [`eeg`], [`encoding`], [`glm`], [`group`], [`music`],
//!   [`naturalistic`], [`realtime`], [`stream`] and [`video`];
//! - on top, the entries that use several routes: [`reconstruct`], which dispatches an image
//!   reconstruction to its route, and [`bids_app`], the BIDS App that runs the GLM, encoding
//!   and group routes over a BIDS dataset.
//!
//! A route uses the spine only; the spine uses no route; routes never import each other. The
//! spine has floors, each using only its own and those below: [`error`] and [`progress`], then
//! [`decode`], then [`linear`], then [`score`]. What one route needs from another moves down
//! into the spine, and what the spine needs from a route comes up through a trait the route
//! implements (the evaluation's [`score::evaluate::EvalExtras`]). `tests/house_rule.rs` reads
//! every `crate::` path in this crate and fails when one breaks the rule.
//! Demos and benchmarks live above, in `brainrecon-showcase`.

#![warn(missing_docs)]

// The spine.
pub mod decode;
pub mod error;
pub mod linear;
pub mod progress;
pub mod score;

// The routes.
pub mod b2c;
pub mod caption;
pub mod eeg;
pub mod encoding;
pub mod glm;
pub mod group;
pub mod music;
pub mod naturalistic;
pub mod realtime;
pub mod stream;
pub mod video;

// The entries on top.
pub mod bids_app;
pub mod reconstruct;

/// Maps on the cortex (the reports call it; `brainrecon cortex draw` draws NIfTI maps).
pub use brainrecon_cortex::report as cortex;
pub use brainrecon_cortex::report::CortexChoice;
pub use error::{Result, RouteError};
