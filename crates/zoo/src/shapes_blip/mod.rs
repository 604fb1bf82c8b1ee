//! shapes-blip: the project's own small BLIP captioner of the synthetic scenes. Its embedded
//! weights live here; its training (`train-captioner`) still lives in `brainrecon_routes`
//! (`caption::train`), which it shares the captioner's preprocessing and vocabulary with.

pub mod embedded;

pub use embedded::{SHAPES_BLIP, SHAPES_BLIP_MODEL};
