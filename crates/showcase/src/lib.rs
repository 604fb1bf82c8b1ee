//! brainrecon's demos and benchmarks, above the routes (as candle keeps its examples beside its
//! models): each demo runs a route end to end on simulated data and the project's own models,
//! and each benchmark times an engine on inputs its Python anchor also reads.
//!
//! - [`demo`]: `brainrecon demo` — the linear route, and the [`demo_eeg`] and
//!   [`demo_new_subject`] routes; [`realtime_demo`]: the real-time route's live session;
//! - [`music_demo`] and [`video_demo`]: the music and video demos as command plans;
//! - [`bench`](mod@bench): the measuring half of `brainrecon bench`.
#![warn(missing_docs)]

pub mod bench;
pub mod demo;
pub mod demo_eeg;
pub mod demo_new_subject;
pub mod music_demo;
pub mod realtime_demo;
pub mod video_demo;
