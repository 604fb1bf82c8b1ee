//! shapes-blip, the project's own small captioner, compiled into the binary: the embedded
//! folder lives in the model zoo; its old path here keeps working.

pub use brainrecon_zoo::shapes_blip::embedded::{SHAPES_BLIP, SHAPES_BLIP_MODEL};
