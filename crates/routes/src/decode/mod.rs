//! The decoding floor of the spine: per-stimulus features, the decoders fitted from brain
//! activity to them, their streamed form, the array files they read and write, the options
//! shared by every route, and the CLIP text encoder.

pub mod arrays;
pub mod blip;
pub mod clip;
pub mod decoder_stream;
pub mod decoders;
pub mod features;
pub mod options;
