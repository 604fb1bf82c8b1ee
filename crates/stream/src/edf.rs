//! EDF, EDF+, BDF and BDF+ recordings, read record by record.
//!
//! The header is a 256-byte main block followed by 256 bytes per signal, all ASCII fields:
//!
//! | main field | bytes | signal field (× ns, one block per field) | bytes |
//! |---|---|---|---|
//! | version (`0` for EDF, `0xFF BIOSEMI` for BDF) | 8 | label | 16 |
//! | patient | 80 | transducer | 80 |
//! | recording | 80 | physical dimension | 8 |
//! | start date, start time | 8 + 8 | physical minimum, maximum | 8 + 8 |
//! | header bytes (`256 × (ns + 1)`) | 8 | digital minimum, maximum | 8 + 8 |
//! | reserved (`EDF+C`, `EDF+D`, `24BIT`, …) | 44 | prefilter | 80 |
//! | data records (`-1` if unknown) | 8 | samples per data record | 8 |
//! | record duration (s) | 8 | reserved | 32 |
//! | ns (signals) | 4 | | |
//!
//! Each data record then holds, signal after signal, `samples per record` little-endian
//! two's-complement integers of 2 bytes (EDF) or 3 bytes (BDF). A digital value `d` becomes
//! the physical value `pmin + (d - dmin) × (pmax - pmin) / (dmax - dmin)`.
//!
//! EDF+/BDF+ annotation signals (`EDF Annotations`, `BDF Annotations`) are skipped. The
//! records of a discontinuous file (`EDF+D`) are read back to back.
//!
//! Signals may have different sample rates (EEG at 256 Hz beside ECG at 512 Hz): each signal's
//! rate is its samples per record over the record duration. As MNE does, the reader gives every
//! chosen signal at the highest rate among them, resampling the others with a band-limited
//! (windowed-sinc) filter; see [`crate::resample`]. Choose signals of one rate to read them
//! unchanged.

use crate::error::{Result, StreamError};
use crate::resample::Resampler;
use crate::source::{read_all, Chunk, Recording, Source};
use brainrecon_core::limits;
use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

/// One signal's header.
#[derive(Debug, Clone, PartialEq)]
pub struct EdfSignal {
    pub label: String,
    pub transducer: String,
    /// Physical dimension (unit), e.g. `uV`.
    pub unit: String,
    pub physical_min: f64,
    pub physical_max: f64,
    pub digital_min: i32,
    pub digital_max: i32,
    pub prefilter: String,
    pub samples_per_record: usize,
}

impl EdfSignal {
    /// Whether this is an EDF+/BDF+ annotation signal (skipped when reading samples).
    pub fn is_annotation(&self) -> bool {
        self.label == "EDF Annotations" || self.label == "BDF Annotations"
    }

    /// Physical units per digital step: `(pmax - pmin) / (dmax - dmin)`.
    pub fn step(&self) -> f64 {
        (self.physical_max - self.physical_min)
            / (self.digital_max as f64 - self.digital_min as f64)
    }

    /// The physical value of digital value `digital`.
    pub fn physical(&self, digital: i32) -> f64 {
        self.physical_min + (digital as f64 - self.digital_min as f64) * self.step()
    }
}

/// The file's variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdfKind {
    /// 16-bit samples (EDF and EDF+).
    Edf,
    /// 24-bit samples (BDF and BDF+).
    Bdf,
}

impl EdfKind {
    /// Bytes per sample.
    pub fn width(self) -> usize {
        match self {
            EdfKind::Edf => 2,
            EdfKind::Bdf => 3,
        }
    }
}

/// A parsed EDF/BDF header.
#[derive(Debug, Clone, PartialEq)]
pub struct EdfHeader {
    pub kind: EdfKind,
    /// The main header's reserved field (`EDF+C`, `EDF+D`, `24BIT`, `BDF+C`, or empty).
    pub reserved: String,
    /// Bytes before the first data record: `256 × (1 + signals.len())`.
    pub header_bytes: usize,
    /// Data records as declared (`-1` while a recording was still running).
    pub declared_records: i64,
    /// Seconds per data record.
    pub record_duration: f64,
    pub signals: Vec<EdfSignal>,
}

impl EdfHeader {
    /// Bytes in one data record: `Σ samples_per_record × width`. `parse_header` bounds it to
    /// 9999 signals × 10^9 samples × 3 bytes, far from overflowing; `EdfReader::open` checks
    /// records × this against the file's length.
    pub fn record_bytes(&self) -> usize {
        self.signals
            .iter()
            .map(|s| s.samples_per_record)
            .sum::<usize>()
            * self.kind.width()
    }

    /// The sample rate of signal `i` in Hz: `samples_per_record / record_duration`.
    pub fn rate(&self, i: usize) -> f64 {
        self.signals[i].samples_per_record as f64 / self.record_duration
    }
}

/// Which signals to read. Chosen signals of different rates are all given at the highest rate
/// among them (the others are resampled).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum SignalSelection {
    /// Every signal except annotations.
    #[default]
    All,
    /// The signals with these labels (trimmed, exact), in this order.
    Labels(Vec<String>),
    /// The signals at these positions among the non-annotation signals (the channel numbers
    /// of [`SignalSelection::All`]), in this order.
    Indices(Vec<usize>),
    /// Every non-annotation signal sampled at this rate (Hz).
    Rate(f64),
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

/// Parses a header from the start of `bytes` (which must hold all of it).
///
/// Fails, naming the file and field, on a truncated header, an unknown version, a header size
/// that does not match the signal count, or a numeric field that is not a number or out of
/// range (checked for non-annotation signals only).
pub fn parse_header(path: &Path, bytes: &[u8]) -> Result<EdfHeader> {
    if bytes.len() < 256 {
        return Err(StreamError::invalid(
            path,
            "header",
            "at least 256 bytes (the EDF/BDF main header)",
            format!("{} bytes (file truncated)", bytes.len()),
        ));
    }
    let kind = if &bytes[0..8] == b"0       " {
        EdfKind::Edf
    } else if bytes[0] == 0xFF && &bytes[1..8] == b"BIOSEMI" {
        EdfKind::Bdf
    } else {
        return Err(StreamError::invalid(
            path,
            "version",
            "'0' (EDF) or 0xFF 'BIOSEMI' (BDF)",
            format!("{:?}", String::from_utf8_lossy(&bytes[0..8])),
        ));
    };
    let number = |field: &str, range: std::ops::Range<usize>| -> Result<f64> {
        let value = text(&bytes[range]);
        value
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| StreamError::invalid(path, field, "a number", format!("{value:?}")))
    };
    let header_bytes = number("header bytes", 184..192)?;
    let reserved = text(&bytes[192..236]);
    let declared_records = number("number of data records", 236..244)?;
    let record_duration = number("data record duration", 244..252)?;
    let ns = number("number of signals", 252..256)?;
    if !(1.0..=9999.0).contains(&ns) || ns.fract() != 0.0 {
        return Err(StreamError::invalid(
            path,
            "number of signals",
            "a whole number in 1..=9999",
            ns.to_string(),
        ));
    }
    let ns = ns as usize;
    let expected_header = 256 * (ns + 1);
    if header_bytes != expected_header as f64 {
        return Err(StreamError::invalid(
            path,
            "header bytes",
            format!("256 × (1 + {ns} signals) = {expected_header}"),
            header_bytes.to_string(),
        ));
    }
    if bytes.len() < expected_header {
        return Err(StreamError::invalid(
            path,
            "header",
            format!("{expected_header} bytes for {ns} signals"),
            format!("{} bytes (file truncated)", bytes.len()),
        ));
    }
    if declared_records.fract() != 0.0 || !(-1.0..=99_999_999.0).contains(&declared_records) {
        return Err(StreamError::invalid(
            path,
            "number of data records",
            "a whole number in 0..=99999999, or -1 (unknown)",
            declared_records.to_string(),
        ));
    }
    if record_duration < 0.0 {
        return Err(StreamError::invalid(
            path,
            "data record duration",
            "a duration of at least 0 seconds",
            record_duration.to_string(),
        ));
    }
    let signal_block = &bytes[256..expected_header];
    // Offsets of each field block within the signal headers, and each field's width.
    let widths = [16usize, 80, 8, 8, 8, 8, 8, 80, 8, 32];
    let mut starts = [0usize; 10];
    for k in 1..widths.len() {
        starts[k] = starts[k - 1] + widths[k - 1] * ns;
    }
    let field = |k: usize, i: usize| -> &[u8] {
        let start = starts[k] + i * widths[k];
        &signal_block[start..start + widths[k]]
    };
    let mut signals = Vec::with_capacity(ns);
    for i in 0..ns {
        let label = text(field(0, i));
        let name = |what: &str| format!("signal {} ({label}) {what}", i + 1);
        let number = |k: usize, what: &str| -> Result<f64> {
            let value = text(field(k, i));
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    StreamError::invalid(path, name(what), "a number", format!("{value:?}"))
                })
        };
        let whole = |k: usize, what: &str, low: f64, high: f64| -> Result<f64> {
            let value = number(k, what)?;
            if value.fract() != 0.0 || value < low || value > high {
                return Err(StreamError::invalid(
                    path,
                    name(what),
                    format!("a whole number in {low}..={high}"),
                    value.to_string(),
                ));
            }
            Ok(value)
        };
        let (dlow, dhigh) = match kind {
            EdfKind::Edf => (-32768.0, 32767.0),
            EdfKind::Bdf => (-8388608.0, 8388607.0),
        };
        let signal = EdfSignal {
            transducer: text(field(1, i)),
            unit: text(field(2, i)),
            physical_min: number(3, "physical minimum")?,
            physical_max: number(4, "physical maximum")?,
            digital_min: whole(5, "digital minimum", dlow, dhigh)? as i32,
            digital_max: whole(6, "digital maximum", dlow, dhigh)? as i32,
            prefilter: text(field(7, i)),
            samples_per_record: whole(8, "samples per data record", 1.0, 1e9)? as usize,
            label: label.clone(),
        };
        if !signal.is_annotation() {
            if signal.digital_max <= signal.digital_min {
                return Err(StreamError::invalid(
                    path,
                    name("digital maximum"),
                    format!("a value above the digital minimum {}", signal.digital_min),
                    signal.digital_max.to_string(),
                ));
            }
            if signal.physical_max == signal.physical_min {
                return Err(StreamError::invalid(
                    path,
                    name("physical maximum"),
                    format!(
                        "a value other than the physical minimum {}",
                        signal.physical_min
                    ),
                    signal.physical_max.to_string(),
                ));
            }
        }
        signals.push(signal);
    }
    let header = EdfHeader {
        kind,
        reserved,
        header_bytes: expected_header,
        declared_records: declared_records as i64,
        record_duration,
        signals,
    };
    check_rates(path, &header)?;
    Ok(header)
}

/// Refuses a signal whose rate (samples per record over the record duration) passes
/// [`limits::SAMPLE_RATE`]: a duration like 1e-300 would size resampling and windows by it.
/// A duration of 0 is left to [`select_signals`] (EDF+ files of annotations only have it).
fn check_rates(path: &Path, header: &EdfHeader) -> Result<()> {
    if header.record_duration <= 0.0 {
        return Ok(());
    }
    for (i, signal) in header.signals.iter().enumerate() {
        if signal.is_annotation() {
            continue;
        }
        let rate = signal.samples_per_record as f64 / header.record_duration;
        let field = format!(
            "signal {} ({}) rate: {} samples per data record of {} s",
            i + 1,
            signal.label,
            signal.samples_per_record,
            header.record_duration
        );
        // `as` saturates: an infinite or huge rate is refused as u64::MAX.
        limits::SAMPLE_RATE.check(path, &field, rate.ceil() as u64)?;
    }
    Ok(())
}

fn rate_text(rate: f64) -> String {
    format!("{} Hz", (rate * 1e6).round() / 1e6)
}

/// Lists `indices` grouped by rate: `128 Hz (Fp1, Fp2), 64 Hz (ECG)`.
fn rate_groups(header: &EdfHeader, indices: &[usize]) -> String {
    let mut groups: Vec<(usize, Vec<&str>)> = Vec::new();
    for &i in indices {
        let spr = header.signals[i].samples_per_record;
        match groups.iter_mut().find(|(s, _)| *s == spr) {
            Some((_, names)) => names.push(&header.signals[i].label),
            None => groups.push((spr, vec![&header.signals[i].label])),
        }
    }
    groups
        .iter()
        .map(|(spr, names)| {
            format!(
                "{} ({})",
                rate_text(*spr as f64 / header.record_duration),
                names.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The indices (into `header.signals`) of the signals `selection` picks; their rates may
/// differ.
///
/// Fails, naming the file and what is there, when a label or an index is not found, when no
/// signal has the rate asked for, or when nothing is left.
pub fn select_signals(
    path: &Path,
    header: &EdfHeader,
    selection: &SignalSelection,
) -> Result<Vec<usize>> {
    let ordinary: Vec<usize> = (0..header.signals.len())
        .filter(|&i| !header.signals[i].is_annotation())
        .collect();
    let labels = || {
        ordinary
            .iter()
            .map(|&i| header.signals[i].label.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if ordinary.is_empty() {
        return Err(StreamError::invalid(
            path,
            "signals",
            "at least one signal besides annotations",
            "annotations only",
        ));
    }
    if header.record_duration <= 0.0 {
        return Err(StreamError::invalid(
            path,
            "data record duration",
            "a duration above 0 seconds (to give the signals a sample rate)",
            header.record_duration.to_string(),
        ));
    }
    let chosen: Vec<usize> = match selection {
        SignalSelection::All => ordinary.clone(),
        SignalSelection::Labels(names) => {
            if names.is_empty() {
                return Err(StreamError::parameter(
                    "signals",
                    "at least one label",
                    "none",
                ));
            }
            names
                .iter()
                .map(|name| {
                    ordinary
                        .iter()
                        .copied()
                        .find(|&i| header.signals[i].label == name.trim())
                        .ok_or_else(|| {
                            StreamError::invalid(
                                path,
                                "signals",
                                format!("a signal labelled {name:?} (one of: {})", labels()),
                                "none",
                            )
                        })
                })
                .collect::<Result<_>>()?
        }
        SignalSelection::Indices(indices) => {
            if indices.is_empty() {
                return Err(StreamError::parameter(
                    "signals",
                    "at least one signal",
                    "none",
                ));
            }
            indices
                .iter()
                .map(|&k| {
                    ordinary.get(k).copied().ok_or_else(|| {
                        StreamError::invalid(
                            path,
                            "signals",
                            format!(
                                "a signal index below {} (signals: {})",
                                ordinary.len(),
                                labels()
                            ),
                            k.to_string(),
                        )
                    })
                })
                .collect::<Result<_>>()?
        }
        SignalSelection::Rate(rate) => {
            let chosen: Vec<usize> = ordinary
                .iter()
                .copied()
                .filter(|&i| (header.rate(i) - rate).abs() <= 1e-9 * rate.abs().max(1.0))
                .collect();
            if chosen.is_empty() {
                return Err(StreamError::invalid(
                    path,
                    "signals",
                    format!("a signal sampled at {}", rate_text(*rate)),
                    format!("only {}", rate_groups(header, &ordinary)),
                ));
            }
            chosen
        }
    };
    Ok(chosen)
}

/// Decodes one little-endian two's-complement sample of 2 (EDF) or 3 (BDF) bytes.
pub fn digital(kind: EdfKind, bytes: &[u8]) -> i32 {
    match kind {
        EdfKind::Edf => i16::from_le_bytes([bytes[0], bytes[1]]) as i32,
        // Shift the 24-bit value into the top of an i32, then back, to extend the sign.
        EdfKind::Bdf => i32::from_le_bytes([0, bytes[0], bytes[1], bytes[2]]) >> 8,
    }
}

/// Byte offset of each signal's samples within a data record.
fn signal_offsets(header: &EdfHeader) -> Vec<usize> {
    let width = header.kind.width();
    let mut offsets = Vec::with_capacity(header.signals.len());
    let mut at = 0;
    for s in &header.signals {
        offsets.push(at);
        at += s.samples_per_record * width;
    }
    offsets
}

/// Physical values of signal `i` in one data record (`record` is one whole data record).
pub fn decode_signal(header: &EdfHeader, i: usize, record: &[u8]) -> Vec<f64> {
    let width = header.kind.width();
    let signal = &header.signals[i];
    let start = signal_offsets(header)[i];
    record[start..start + signal.samples_per_record * width]
        .chunks_exact(width)
        .map(|bytes| signal.physical(digital(header.kind, bytes)))
        .collect()
}

/// Physical values of the `chosen` signals in one data record, as frames:
/// `samples_per_record × chosen.len()`, row-major. All chosen signals share
/// `samples_per_record`; `record` is one whole data record.
pub fn decode_record(header: &EdfHeader, chosen: &[usize], record: &[u8]) -> Vec<f32> {
    let width = header.kind.width();
    let offsets = signal_offsets(header);
    let frames = chosen
        .first()
        .map_or(0, |&i| header.signals[i].samples_per_record);
    let mut out = vec![0f32; frames * chosen.len()];
    for (k, &i) in chosen.iter().enumerate() {
        let signal = &header.signals[i];
        for t in 0..frames {
            let start = offsets[i] + t * width;
            let d = digital(header.kind, &record[start..start + width]);
            out[t * chosen.len() + k] = signal.physical(d) as f32;
        }
    }
    out
}

/// An EDF/BDF file read record by record as a [`Source`]. Chosen signals sampled below the
/// highest rate among them are resampled to it as the records are read.
pub struct EdfReader {
    path: PathBuf,
    file: BufReader<File>,
    header: EdfHeader,
    chosen: Vec<usize>,
    /// Samples per record of the stream: the most among the chosen signals.
    target: usize,
    /// One per chosen signal when their rates differ; empty when they share one.
    resamplers: Vec<Resampler>,
    records: u64,
    records_read: u64,
    /// Decoded frames not yet returned, and how many of them have been.
    frames: Vec<f32>,
    taken: usize,
    record: Vec<u8>,
}

impl EdfReader {
    /// Opens `path` and picks the signals `selection` names.
    ///
    /// The file's size must be the header plus a whole number of data records, and match the
    /// declared record count unless that is `-1`.
    pub fn open(path: &Path, selection: &SignalSelection) -> Result<Self> {
        let file = File::open(path).map_err(|e| StreamError::io(path, e))?;
        let len = file.metadata().map_err(|e| StreamError::io(path, e))?.len();
        let mut file = BufReader::new(file);
        let mut bytes = Vec::new();
        read_up_to(&mut file, &mut bytes, 256).map_err(|e| StreamError::io(path, e))?;
        if bytes.len() == 256 {
            // Read the signal headers too, as far as the declared signal count goes.
            let ns = text(&bytes[252..256]).parse::<usize>().unwrap_or(0);
            let want = ns.saturating_mul(256).min(len.saturating_sub(256) as usize);
            read_up_to(&mut file, &mut bytes, want).map_err(|e| StreamError::io(path, e))?;
        }
        let header = parse_header(path, &bytes)?;
        let chosen = select_signals(path, &header, selection)?;
        let record_bytes = header.record_bytes() as u64;
        let data = len.saturating_sub(header.header_bytes as u64);
        let declared_bytes = u64::try_from(header.declared_records)
            .ok()
            .map(|n| n.checked_mul(record_bytes));
        if data % record_bytes != 0 || declared_bytes.is_some_and(|b| b != Some(data)) {
            let expected = if header.declared_records >= 0 {
                format!(
                    "{} data records × {record_bytes} bytes = {} bytes after the header",
                    header.declared_records,
                    (header.declared_records as u128) * (record_bytes as u128)
                )
            } else {
                format!("a whole number of {record_bytes}-byte data records after the header")
            };
            return Err(StreamError::invalid(
                path,
                "data records",
                expected,
                format!("{data} bytes (file truncated or header wrong)"),
            ));
        }
        let records = data / record_bytes;
        let rates: Vec<usize> = chosen
            .iter()
            .map(|&i| header.signals[i].samples_per_record)
            .collect();
        let target = rates.iter().copied().max().unwrap_or(1);
        let resamplers = if rates.iter().all(|&r| r == target) {
            Vec::new()
        } else {
            rates
                .iter()
                .map(|&r| Resampler::new(target as u64, r as u64))
                .collect()
        };
        Ok(EdfReader {
            path: path.to_path_buf(),
            file,
            target,
            resamplers,
            records,
            records_read: 0,
            frames: Vec::new(),
            taken: 0,
            // At most the data's size: a record is allocated only when there is one.
            record: vec![
                0u8;
                if records > 0 {
                    record_bytes as usize
                } else {
                    0
                }
            ],
            header,
            chosen,
        })
    }

    /// The parsed header.
    pub fn header(&self) -> &EdfHeader {
        &self.header
    }

    /// Indices (into `header().signals`) of the signals read, in channel order.
    pub fn chosen(&self) -> &[usize] {
        &self.chosen
    }

    /// Indices (into `header().signals`) of the chosen signals sampled below the stream's
    /// rate, which are resampled to it.
    pub fn resampled(&self) -> Vec<usize> {
        self.chosen
            .iter()
            .copied()
            .filter(|&i| self.header.signals[i].samples_per_record < self.target)
            .collect()
    }

    /// Data records in the file.
    pub fn records(&self) -> u64 {
        self.records
    }
}

impl EdfReader {
    /// Reads the next data record into `self.record`.
    fn read_record(&mut self) -> Result<()> {
        if let Err(e) = self.file.read_exact(&mut self.record) {
            return Err(if e.kind() == ErrorKind::UnexpectedEof {
                StreamError::invalid(
                    &self.path,
                    "data records",
                    format!("{} whole data records", self.records),
                    format!("{} (file truncated while reading)", self.records_read),
                )
            } else {
                StreamError::io(&self.path, e)
            });
        }
        self.records_read += 1;
        Ok(())
    }

    /// Moves the frames every resampler has ready into `self.frames`, interleaved.
    fn drain_resamplers(&mut self) {
        let ready = self
            .resamplers
            .iter()
            .map(Resampler::available)
            .min()
            .unwrap_or(0);
        let channels = self.chosen.len();
        self.frames = vec![0f32; ready * channels];
        let mut column = Vec::with_capacity(ready);
        for (k, resampler) in self.resamplers.iter_mut().enumerate() {
            column.clear();
            resampler.take(ready, &mut column);
            for (t, v) in column.iter().enumerate() {
                self.frames[t * channels + k] = *v as f32;
            }
        }
    }
}

fn read_up_to(reader: &mut impl Read, out: &mut Vec<u8>, count: usize) -> std::io::Result<()> {
    reader.take(count as u64).read_to_end(out).map(|_| ())
}

impl Source for EdfReader {
    fn channels(&self) -> usize {
        self.chosen.len()
    }

    fn rate(&self) -> f64 {
        self.target as f64 / self.header.record_duration
    }

    fn labels(&self) -> Vec<String> {
        self.chosen
            .iter()
            .map(|&i| self.header.signals[i].label.clone())
            .collect()
    }

    fn next_chunk(&mut self, max_frames: usize) -> Result<Option<Chunk>> {
        let channels = self.chosen.len();
        while self.taken * channels >= self.frames.len() {
            self.taken = 0;
            self.frames.clear();
            if self.records_read >= self.records {
                // The resamplers' last outputs wait for the end of the input; they all give
                // `records × target` samples.
                let left = self.resamplers.iter().map(Resampler::available).min();
                if left.unwrap_or(0) == 0 {
                    return Ok(None);
                }
                self.drain_resamplers();
                continue;
            }
            self.read_record()?;
            if self.resamplers.is_empty() {
                self.frames = decode_record(&self.header, &self.chosen, &self.record);
            } else {
                for (k, &i) in self.chosen.iter().enumerate() {
                    let samples = decode_signal(&self.header, i, &self.record);
                    self.resamplers[k].push(&samples);
                    if self.records_read == self.records {
                        self.resamplers[k].finish();
                    }
                }
                self.drain_resamplers();
            }
        }
        let available = self.frames.len() / channels - self.taken;
        let take = available.min(max_frames.max(1));
        let start = self.taken * channels;
        let data = self.frames[start..start + take * channels].to_vec();
        self.taken += take;
        Ok(Some(Chunk { channels, data }))
    }
}

/// Reads the chosen signals of an EDF/BDF file, in physical units, into memory.
pub fn read_edf(path: &Path, selection: &SignalSelection) -> Result<Recording> {
    let mut reader = EdfReader::open(path, selection)?;
    read_all(&mut reader, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An EDF header of one signal with `spr` samples per record of `duration` seconds.
    fn one_signal_header(duration: &str, spr: &str) -> Vec<u8> {
        let field = |text: &str, width: usize| format!("{text:<width$}").into_bytes();
        let mut out = field("0", 8);
        for (text, width) in [("", 80), ("", 80), ("01.01.01", 8), ("00.00.00", 8)] {
            out.extend(field(text, width));
        }
        out.extend(field("512", 8));
        out.extend(field("", 44));
        out.extend(field("1", 8));
        out.extend(field(duration, 8));
        out.extend(field("1", 4));
        for (text, width) in [("Fz", 16), ("", 80), ("uV", 8), ("-100", 8), ("100", 8)] {
            out.extend(field(text, width));
        }
        for (text, width) in [("-32768", 8), ("32767", 8), ("", 80), (spr, 8), ("", 32)] {
            out.extend(field(text, width));
        }
        out
    }

    #[test]
    fn a_record_duration_giving_a_rate_above_the_limit_is_refused() {
        let path = Path::new("tiny.edf");
        assert!(parse_header(path, &one_signal_header("1", "256")).is_ok());
        for (duration, spr) in [("1e-300", "1"), ("0.001", "100000")] {
            let err = parse_header(path, &one_signal_header(duration, spr))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("tiny.edf") && err.contains("signal 1 (Fz) rate"),
                "{err}"
            );
            assert!(err.contains("BRAINRECON_MAX_SAMPLE_RATE"), "{err}");
        }
        let err = parse_header(path, &one_signal_header("nan", "1"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("data record duration"), "{err}");
    }

    #[test]
    fn bdf_samples_are_sign_extended() {
        assert_eq!(digital(EdfKind::Bdf, &[0xFF, 0xFF, 0xFF]), -1);
        assert_eq!(digital(EdfKind::Bdf, &[0x00, 0x00, 0x80]), -8388608);
        assert_eq!(digital(EdfKind::Bdf, &[0xFF, 0xFF, 0x7F]), 8388607);
        assert_eq!(digital(EdfKind::Edf, &[0x00, 0x80]), -32768);
    }

    #[test]
    fn physical_scaling_maps_ends_to_ends() {
        let s = EdfSignal {
            label: "x".into(),
            transducer: String::new(),
            unit: "uV".into(),
            physical_min: -100.0,
            physical_max: 300.0,
            digital_min: -2048,
            digital_max: 2047,
            prefilter: String::new(),
            samples_per_record: 1,
        };
        assert_eq!(s.physical(-2048), -100.0);
        assert!((s.physical(2047) - 300.0).abs() < 1e-12);
    }
}
