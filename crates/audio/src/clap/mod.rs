//! LAION's CLAP as transformers defines it (`ClapModel`, `ClapFeatureExtractor`), the public
//! stand-in for MuLan: audio and text in one 512-d space.
//!
//! - [`feature_extractor`]: the mel front end (STFT, HTK/Slaney mel filters, dB; repeat-padding,
//!   random crops and the four-channel "fusion" input), with seeded or given random choices;
//! - [`htsat`] and [`patch_embed`]: the HTSAT audio tower (Swin stages over the folded
//!   spectrogram; the attentional fusion of local crops in the fused checkpoints);
//! - the text tower is RoBERTa ([`brainrecon_language::roberta`]);
//! - [`projection`]: the heads into the joint space; [`model`]: `ClapModel` with
//!   `get_audio_features`, `get_text_features` and the logits;
//! - [`config`] reads `config.json`.
//!
//! Checkpoints load unchanged from a folder or the Hugging Face cache
//! (`laion/clap-htsat-unfused`, `laion/clap-htsat-fused`, `laion/larger_clap_music`). Every
//! module is built from differentiable ops, so a CLAP-architecture model can be trained (batch
//! norms use their running statistics).

pub mod config;
pub mod feature_extractor;
pub mod htsat;
pub mod model;
pub mod patch_embed;
pub mod projection;

pub use config::{ClapAudioConfig, ClapConfig};
pub use feature_extractor::{
    ClapFeatureExtractor, ClapFeatureExtractorConfig, ClapFeatures, CropChoices, GivenChoices,
    Padding, SeededChoices, Truncation,
};
pub use model::{ClapModel, ClapOutput};
