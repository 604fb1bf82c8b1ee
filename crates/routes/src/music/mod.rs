//! Music from brain activity (Brain2Music: Denk, Takagi et al. 2023) on ds003720's layout:
//! music embeddings of 10-s windows of the heard clips (CLAP for MuLan, EnCodec for
//! SoundStream), decoded from the mean fMRI of the scans inside each window by one ridge model
//! per cortical ROI with the best ROIs' predictions averaged, scored by identification
//! accuracy, then used to retrieve music from a library or to choose the caption MusicGen
//! generates from.

pub mod decode;
pub mod embed;
pub mod fit;
pub mod generate;
mod inputs;
pub mod page;
pub mod retrieve;
pub mod windows;

pub use embed::{Embedder, EmbeddingKind};
pub use fit::{fit_music, MusicFitOptions, MusicFitSummary};
pub use retrieve::{retrieve, RetrievalSummary, RetrieveOptions};
pub use windows::WindowSpec;
