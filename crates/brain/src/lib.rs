//! Networks that read brain activity.
//!
//! [`b2c`]: the Brain-to-Context encoder (Ishizaki & Kobayashi): fMRI betas, optionally cut
//! into anatomical voxel groups ("ROI patches"), become the token sequence a Stable Diffusion
//! U-Net attends to in place of the CLIP text context.

pub mod b2c;

pub use b2c::{allocate_tokens, BrainToContextConfig, BrainToContextEncoder, VoxelGroup};
