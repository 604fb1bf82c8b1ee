//! shapes-motion: the motion U-Net trained for shapes-ldm (AnimateDiff's motion modules). Its
//! embedded weights are compiled into `brainrecon_diffusion` (the `--adapter` loader); its
//! training (`video train-motion`) still lives in `brainrecon_routes` (`video::train_motion`),
//! which shares the b2c route's trainable U-Net.

pub use brainrecon_diffusion::embedded::{
    shapes_motion_dir, SHAPES_MOTION, SHAPES_MOTION_FILES, SHAPES_MOTION_MODEL,
};
