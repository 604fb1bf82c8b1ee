//! EDF, EDF+, BDF and BDF+ recordings, read record by record as a [`Source`].
//!
//! The format itself (header, digital-to-physical decoding, the whole-file reader) is
//! [`brainrecon_formats::edf`]; its types are re-exported here. This module picks the signals
//! to stream and reads them a data record at a time. EDF+/BDF+ annotation signals
//! (`EDF Annotations`, `BDF Annotations`) are skipped. The records of a discontinuous file
//! (`EDF+D`) are read back to back.
//!
//! Signals may have different sample rates (EEG at 256 Hz beside ECG at 512 Hz): each signal's
//! rate is its samples per record over the record duration. As MNE does, the reader gives every
//! chosen signal at the highest rate among them, resampling the others with a band-limited
//! (windowed-sinc) filter; see [`crate::resample`]. Choose signals of one rate to read them
//! unchanged.

pub use brainrecon_formats::edf::{
    decode_record, decode_signal, digital, parse_header, EdfHeader, EdfKind, EdfSignal,
};

use crate::error::{Result, StreamError};
use crate::resample::Resampler;
use crate::source::{read_all, Chunk, Recording, Source};
use brainrecon_formats::edf::{count_records, read_header};
use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

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
        let header = read_header(path, &mut file, len)?;
        let chosen = select_signals(path, &header, selection)?;
        let records = count_records(path, &header, len)?;
        let record_bytes = header.record_bytes();
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
            record: vec![0u8; if records > 0 { record_bytes } else { 0 }],
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
