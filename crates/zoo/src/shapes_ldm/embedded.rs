//! shapes-ldm's shipped weights: compiled into `brainrecon_diffusion`, whose loader accepts
//! the name (`StableDiffusion::load("shapes-ldm", …)`).

pub use brainrecon_diffusion::embedded::{shapes_ldm_dir, SHAPES_LDM, SHAPES_LDM_MODEL};
