//! A source named the way the command line names it: a file path, `synthetic`, `stdin` (or
//! `-`) or `tcp://HOST:PORT`, with the format, rate, channel count and signal choice the
//! caller gives. Messages name the command's flags (`--format`, `--select`, …).

use crate::edf::{EdfReader, SignalSelection};
use crate::open::{open, Format, OpenOptions};
use crate::raw::{RawFormat, RawReader};
use crate::source::Source;
use crate::synthetic::{Synthetic, SyntheticSpec};
use crate::window::parse_channels;
use crate::StreamError;
use brainrecon_core::DataError;
use std::path::Path;

/// Why a named source could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum NamedSourceError {
    /// A parameter that does not fit the source (the message names the flag).
    #[error("{0}")]
    Usage(String),
    /// The source's data or parameters.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The file is missing or unreadable.
    #[error(transparent)]
    Data(#[from] DataError),
}

type Result<T> = std::result::Result<T, NamedSourceError>;

/// What the caller gives beside the source's name.
#[derive(Debug, Clone, Default)]
pub struct NamedSourceOptions {
    /// Channel count (raw, stdin and TCP sources; synthetic: default 8).
    pub channels: Option<usize>,
    /// Sample rate in Hz (raw, .npy, CSV, stdin and TCP sources; synthetic: default 250).
    pub rate: Option<f64>,
    /// Sample format: i16 or f32 (for files also npy, csv, edf, nwb; default: from the
    /// extension).
    pub format: Option<String>,
    /// Channels to read: indices, ranges and labels (applied in opening EDF/BDF only).
    pub select: Option<String>,
    /// Seed of the synthetic source.
    pub seed: u64,
}

/// An opened source: its name for messages, whether it is live (stdin and TCP: never paced),
/// whether the selection was applied in opening it (EDF/BDF), and notes for the user.
pub struct NamedSource {
    /// The source itself.
    pub source: Box<dyn Source + Send>,
    /// Its name in messages (a path, `synthetic (8 channels, 250 Hz)`, …).
    pub name: String,
    /// Stdin or TCP: data arrives at its own pace, never replayed by a pacer.
    pub live: bool,
    /// Whether the channel selection was already applied in opening (EDF/BDF).
    pub selected: bool,
    /// Things the user should know (signals resampled), one line each.
    pub notes: Vec<String>,
}

impl NamedSource {
    fn new(source: Box<dyn Source + Send>, name: impl Into<String>, live: bool) -> Self {
        NamedSource {
            source,
            name: name.into(),
            live,
            selected: false,
            notes: Vec::new(),
        }
    }
}

fn usage(message: String) -> NamedSourceError {
    NamedSourceError::Usage(message)
}

fn raw_format(name: Option<&str>, what: &str) -> Result<RawFormat> {
    match name {
        Some(name) => Ok(RawFormat::parse(name)?),
        None => Err(usage(format!(
            "--format: {what} needs the sample format (i16 or f32)"
        ))),
    }
}

fn need<T>(value: Option<T>, flag: &str, what: &str) -> Result<T> {
    value.ok_or_else(|| usage(format!("{flag}: {what} needs {flag}")))
}

/// An EDF/BDF file: the signals `select` names (else all), at the highest rate among them;
/// notes which signals are resampled.
fn open_edf(path: &Path, select: Option<&str>) -> Result<NamedSource> {
    let all = EdfReader::open(path, &SignalSelection::All)?;
    let reader = match select {
        None => all,
        Some(spec) => {
            let indices = parse_channels(spec, &all.labels())?;
            if let Some(k) = (1..indices.len()).find(|&k| indices[..k].contains(&indices[k])) {
                return Err(usage(format!(
                    "--select: channel {} ({}) chosen twice",
                    indices[k],
                    all.labels()[indices[k]]
                )));
            }
            EdfReader::open(path, &SignalSelection::Indices(indices))?
        }
    };
    let mut notes = Vec::new();
    let resampled = reader.resampled();
    if !resampled.is_empty() {
        let header = reader.header();
        let names: Vec<String> = resampled
            .iter()
            .map(|&i| format!("{} ({} Hz)", header.signals[i].label, header.rate(i)))
            .collect();
        notes.push(format!(
            "note: {}: {} resampled to {} Hz, the highest rate of the signals read (--select \
             signals of one rate to read them unchanged)",
            path.display(),
            names.join(", "),
            reader.rate()
        ));
    }
    Ok(NamedSource {
        source: Box::new(reader),
        name: path.display().to_string(),
        live: false,
        selected: select.is_some(),
        notes,
    })
}

/// Opens the source `source` names: a recording's path, `synthetic`, `stdin` (or `-`) or
/// `tcp://HOST:PORT` (raw interleaved little-endian frames).
pub fn open_named(source: &str, options: &NamedSourceOptions) -> Result<NamedSource> {
    if source == "synthetic" {
        let spec = SyntheticSpec {
            channels: options.channels.unwrap_or(8),
            rate: options.rate.unwrap_or(250.0),
            seed: options.seed,
            ..SyntheticSpec::default()
        };
        let name = format!("synthetic ({} channels, {} Hz)", spec.channels, spec.rate);
        let source = Synthetic::new(spec)?;
        return Ok(NamedSource::new(Box::new(source), name, false));
    }
    if source == "stdin" || source == "-" {
        let what = "reading raw frames from stdin";
        let format = raw_format(options.format.as_deref(), what)?;
        let channels = need(options.channels, "--channels", what)?;
        let rate = need(options.rate, "--rate", what)?;
        let reader = RawReader::new(std::io::stdin(), "<stdin>", format, channels, rate)?;
        return Ok(NamedSource::new(Box::new(reader), "<stdin>", true));
    }
    if let Some(address) = source.strip_prefix("tcp://") {
        let what = "reading raw frames from a TCP stream";
        let format = raw_format(options.format.as_deref(), what)?;
        let channels = need(options.channels, "--channels", what)?;
        let rate = need(options.rate, "--rate", what)?;
        brainrecon_core::offline::check_network(&format!("--source {source}"), address)?;
        let stream = std::net::TcpStream::connect(address)
            .map_err(|e| usage(format!("--source {source}: cannot connect: {e}")))?;
        let reader = RawReader::new(stream, source, format, channels, rate)?;
        return Ok(NamedSource::new(Box::new(reader), source, true));
    }
    let path = Path::new(source);
    if !path.exists() {
        return Err(DataError::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such file (--source takes a recording, synthetic, stdin or tcp://HOST:PORT)",
            ),
        )
        .into());
    }
    let format = match options.format.as_deref() {
        None => None,
        Some("npy") => Some(Format::Npy),
        Some("csv") => Some(Format::Csv),
        Some("edf") | Some("bdf") => Some(Format::Edf),
        Some("nwb") => Some(Format::Nwb),
        Some(raw) => Some(Format::Raw(RawFormat::parse(raw).map_err(|_| {
            usage(format!(
                "--format: expected i16, f32, npy, csv, edf or nwb, found '{raw}'"
            ))
        })?)),
    };
    if format.or_else(|| Format::from_path(path)) == Some(Format::Edf) {
        return open_edf(path, options.select.as_deref());
    }
    let open_options = OpenOptions {
        format,
        rate: options.rate,
        channels: options.channels,
        ..OpenOptions::default()
    };
    let opened = open(path, &open_options)?;
    Ok(NamedSource::new(opened, path.display().to_string(), false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_open_the_sources_they_name() {
        let options = NamedSourceOptions {
            channels: Some(3),
            ..NamedSourceOptions::default()
        };
        let opened = open_named("synthetic", &options).unwrap();
        assert_eq!(opened.name, "synthetic (3 channels, 250 Hz)");
        assert!(!opened.live && !opened.selected && opened.notes.is_empty());
        match open_named("stdin", &NamedSourceOptions::default()) {
            Err(NamedSourceError::Usage(m)) => assert!(m.starts_with("--format: "), "{m}"),
            _ => panic!("stdin without --format must be a usage error"),
        }
        match open_named("no/such/recording.npy", &NamedSourceOptions::default()) {
            Err(NamedSourceError::Data(e)) => assert!(e.to_string().contains("recording.npy")),
            _ => panic!("a missing file must be a data error"),
        }
    }
}
