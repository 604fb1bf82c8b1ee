//! Networks that read brain activity.
//!
//! [`b2c`]: the Brain-to-Context encoder (Ishizaki & Kobayashi): fMRI betas, optionally cut
//! into anatomical voxel groups ("ROI patches"), become the token sequence a Stable Diffusion
//! U-Net attends to in place of the CLIP text context.
//!
//! [`b2c_tape`]: the B2C encoder's forward on the project's training tape.
//!
//! [`window`]: the video route's fMRI window encoder (after MinD-Video): K consecutive fMRI
//! frames, with spatial and temporal attention, become the context of a motion U-Net.
//!
//! [`nice`]: NICE's EEG encoder (temporal and spatial convolutions, a projection), trained
//! contrastively against image embeddings.
//!
//! [`atm`]: ATM's EEG encoder, NICE's behind a channel-attention Transformer with a subject
//! token.

#![warn(missing_docs)]

pub mod atm;
pub mod b2c;
pub mod b2c_tape;
pub mod nice;
mod tape_bound;
pub mod window;

pub use atm::{atm_loss, AtmConfig, AtmEegEncoder};
pub use b2c::{allocate_tokens, BrainToContextConfig, BrainToContextEncoder, VoxelGroup};
pub use nice::{nice_loss, NiceConfig, NiceEegEncoder};
pub use window::{contrastive_loss, encoder_loss, FmriWindowEncoder, WindowEncoderConfig};
