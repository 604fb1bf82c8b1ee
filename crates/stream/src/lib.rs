//! The signal side of the live signal-to-image stream: a multichannel time series is cut into
//! sliding windows, and each window becomes the initial noise of a diffusion sampler
//! (Yamashiro et al. 2024).
//!
//! - Sources ([`Source`]): raw interleaved int16/float32 from a file or any reader
//!   ([`RawReader`]), `.npy`, CSV, EDF/EDF+/BDF ([`EdfReader`]; signals of lower rates are
//!   resampled to the highest, see [`resample`]), NWB ElectricalSeries ([`NwbReader`]), and a
//!   seeded synthetic source ([`Synthetic`]); [`open`](fn@open) picks by format.
//! - [`Pacer`] replays a source at real speed or as fast as possible.
//! - [`Windower`] cuts chunks into windows (`samples × channels`).
//! - [`LatentMapper`] turns a window into a standardised latent `[c, h, w]`; [`Smoother`]
//!   blends successive latents. See [`latent`] for the exact method.
//! - [`LatentStream`] chains a source, a windower, a mapper and an optional smoother.
//! - [`run_live`] turns latents into frames with any [`FrameGenerator`] (denoise on one
//!   thread, decode on another), dropping windows when generation is slower than the hop, and
//!   writes a PNG sequence ([`PngSequence`]), an animated GIF ([`GifWriter`]) and a live web
//!   page ([`serve`]).
//!
//! Nothing here panics on user data: bad files and parameters are [`StreamError`]s that name
//! the file, the field and what was expected.
#![warn(missing_docs)]

pub mod csv;
pub mod edf;
pub mod error;
pub mod frames;
pub mod latent;
pub mod live;
pub mod named;
pub mod npy;
pub mod nwb;
pub mod open;
pub mod pacer;
pub mod raw;
pub mod resample;
pub mod server;
pub mod source;
pub mod synthetic;
pub mod window;

mod pipeline;

pub use csv::read_csv;
pub use edf::{read_edf, EdfHeader, EdfKind, EdfReader, EdfSignal, SignalSelection};
pub use error::{Result, StreamError};
pub use frames::{frame_hash, FrameGenerator, GenError, GifWriter, PngSequence};
pub use latent::{ChannelWarning, Latent, LatentMapper, SkipReason, Smoother};
pub use live::{run_live, EndReason, LiveError, LiveOptions, Summary};
pub use npy::read_npy;
pub use nwb::{read_nwb, NwbReader};
pub use open::{open, Format, OpenOptions};
pub use pacer::{Pace, Pacer};
pub use pipeline::LatentStream;
pub use raw::{open_raw, RawFormat, RawReader};
pub use server::{serve, serve_page, FrameState, Hub, Server, DEFAULT_SERVE};
pub use source::{Chunk, Recording, Source};
pub use synthetic::{Synthetic, SyntheticSpec};
pub use window::{Window, WindowSpec, Windower};
