//! Audio networks of the music route, as transformers defines them and names their parameters.
//!
//! [`clap`]: LAION's CLAP (the mel front end of `ClapFeatureExtractor`, the HTSAT audio tower,
//! the RoBERTa text tower, the 512-d joint space), the public stand-in for MuLan.
//! [`encodec`]: EnCodec (convolutional encoder/decoder, residual vector quantiser), whose frame
//! features stand in for SoundStream's. [`musicgen`]: MusicGen's decoder over EnCodec tokens
//! (delay pattern, classifier-free guidance, top-k sampling, key/value cache).
//! [`genres_clap`]: the project's own small CLAP, trained on the synthetic music generator's
//! clips and captions and compiled into the binary (`genres-clap`).

#![warn(missing_docs)]

pub mod clap;
pub mod encodec;
pub mod genres_clap;
pub mod musicgen;
