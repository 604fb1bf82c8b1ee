//! shapes-motion's shipped weights: compiled into `brainrecon_diffusion`, whose `--adapter`
//! loader accepts the name.

pub use brainrecon_diffusion::embedded::{
    shapes_motion_dir, SHAPES_MOTION, SHAPES_MOTION_FILES, SHAPES_MOTION_MODEL,
};
