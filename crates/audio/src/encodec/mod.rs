//! EnCodec (Défossez et al. 2022) as transformers' `EncodecModel` defines it: a SEANet
//! convolutional encoder (strided convolutions, residual blocks, an LSTM) to frames of
//! `hidden_size` features at `sampling_rate / hop_length` frames per second, a residual vector
//! quantizer turning each frame into `n_q` codebook indices, and the mirror-image decoder.
//!
//! The music route uses the continuous frames ([`EncodecModel::embeddings`], averaged over a
//! window) as the stand-in for SoundStream-avg, and MusicGen decodes its tokens with
//! [`EncodecModel::decode`]. Checkpoints load unchanged from a folder or the Hugging Face cache
//! (`facebook/encodec_32khz`, MusicGen's codec; `facebook/encodec_24khz`), weight-normalised
//! kernels in either stored form. Chunked configs (`chunk_length_s`, encodec_48khz) are refused
//! with an error naming the field. Inference only.
//!
//! [`config`]: `EncodecConfig`; [`modules`]: the encoder and decoder; [`quantizer`]: the
//! residual vector quantizer; [`EncodecModel`] ties them together.

pub mod config;
mod model;
pub mod modules;
pub mod quantizer;

pub use config::{EncodecConfig, NormType, PadMode};
pub use model::{resolve_encodec_dir, EncodecEncoding, EncodecModel};
