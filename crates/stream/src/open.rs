//! Opening a recording file of any supported format as a [`Source`].

use crate::edf::{EdfReader, SignalSelection};
use crate::error::{Result, StreamError};
use crate::nwb::NwbReader;
use crate::raw::{open_raw, RawFormat};
use crate::source::Source;
use std::path::Path;

/// A recording file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Interleaved little-endian samples; needs a channel count and a rate.
    Raw(RawFormat),
    /// NumPy `(samples, channels)`; needs a rate.
    Npy,
    /// One row per sample; needs a rate.
    Csv,
    /// EDF, EDF+, BDF or BDF+.
    Edf,
    /// NWB ElectricalSeries.
    Nwb,
}

impl Format {
    /// The format a file name implies: `.edf`/`.bdf`, `.npy`, `.csv`, `.nwb`, `.i16`, `.f32`
    /// (case-insensitive). `None` for anything else (`.raw`, `.bin`, …: name the format).
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "edf" | "bdf" => Format::Edf,
            "npy" => Format::Npy,
            "csv" => Format::Csv,
            "nwb" => Format::Nwb,
            "i16" => Format::Raw(RawFormat::I16),
            "f32" => Format::Raw(RawFormat::F32),
            _ => return None,
        })
    }

    /// The format `name` names: `i16`, `f32`, `npy`, `csv`, `edf` or `nwb` (exactly these
    /// words, as `--format` takes them); `None` for any other name.
    pub fn from_name(name: &str) -> Option<Format> {
        Some(match name {
            "i16" => Format::Raw(RawFormat::I16),
            "f32" => Format::Raw(RawFormat::F32),
            "npy" => Format::Npy,
            "csv" => Format::Csv,
            "edf" => Format::Edf,
            "nwb" => Format::Nwb,
            _ => return None,
        })
    }
}

/// What [`open`] needs beyond the path; fields a format does not use are ignored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpenOptions {
    /// The format; `None` infers it from the extension ([`Format::from_path`]).
    pub format: Option<Format>,
    /// Sample rate in Hz: required for raw, `.npy` and CSV (EDF and NWB store theirs).
    pub rate: Option<f64>,
    /// Channel count: required for raw.
    pub channels: Option<usize>,
    /// EDF/BDF signals to read.
    pub signals: SignalSelection,
    /// NWB series name under `/acquisition` (`None`: the only ElectricalSeries).
    pub series: Option<String>,
}

/// Opens `path` as a source. EDF and NWB files are read as they are consumed; raw files too;
/// `.npy` and CSV files are read whole.
pub fn open(path: &Path, options: &OpenOptions) -> Result<Box<dyn Source + Send>> {
    let format = options
        .format
        .or_else(|| Format::from_path(path))
        .ok_or_else(|| {
            StreamError::parameter(
                "format",
                format!(
                    "a format for {} (the extension is none of edf, bdf, npy, csv, nwb, i16, f32)",
                    path.display()
                ),
                "none",
            )
        })?;
    let rate = |what: &str| {
        options.rate.ok_or_else(|| {
            StreamError::parameter("rate", format!("a sample rate for a {what} file"), "none")
        })
    };
    Ok(match format {
        Format::Raw(raw) => {
            let channels = options.channels.ok_or_else(|| {
                StreamError::parameter("channels", "a channel count for a raw file", "none")
            })?;
            Box::new(open_raw(path, raw, channels, rate("raw")?)?)
        }
        Format::Npy => Box::new(crate::npy::read_npy(path, rate(".npy")?)?),
        Format::Csv => Box::new(crate::csv::read_csv(path, rate("CSV")?)?),
        Format::Edf => Box::new(EdfReader::open(path, &options.signals)?),
        Format::Nwb => Box::new(NwbReader::open(path, options.series.as_deref())?),
    })
}
