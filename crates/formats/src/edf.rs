//! EDF, EDF+, BDF and BDF+ recordings: the header, the samples' decoding, and a whole-file
//! reader. The stream's record-by-record reader (`brainrecon_stream::EdfReader`) and the BIDS
//! EEG runs (`brainrecon_datasets::bids_eeg`) are built on it.
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
//! EDF+/BDF+ annotation signals (`EDF Annotations`, `BDF Annotations`) are not decoded. The
//! records of a discontinuous file (`EDF+D`) are read back to back. The file's size must be the
//! header plus a whole number of data records, and match the declared record count unless that
//! is `-1`.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::limits;

/// One signal's header.
#[derive(Debug, Clone, PartialEq)]
pub struct EdfSignal {
    /// Signal label (e.g. `Fp1`, `EDF Annotations`), trimmed.
    pub label: String,
    /// Transducer type (e.g. `AgAgCl electrode`), trimmed.
    pub transducer: String,
    /// Physical dimension (unit), e.g. `uV`.
    pub unit: String,
    /// Physical value of `digital_min`, in `unit`.
    pub physical_min: f64,
    /// Physical value of `digital_max`, in `unit`.
    pub physical_max: f64,
    /// Smallest stored integer.
    pub digital_min: i32,
    /// Largest stored integer.
    pub digital_max: i32,
    /// Filtering already applied (e.g. `HP:0.1Hz LP:75Hz`), trimmed.
    pub prefilter: String,
    /// Samples of this signal in each data record.
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
    /// EDF (16-bit samples) or BDF (24-bit).
    pub kind: EdfKind,
    /// The main header's reserved field (`EDF+C`, `EDF+D`, `24BIT`, `BDF+C`, or empty).
    pub reserved: String,
    /// Bytes before the first data record: `256 × (1 + signals.len())`.
    pub header_bytes: usize,
    /// Data records as declared (`-1` while a recording was still running).
    pub declared_records: i64,
    /// Seconds per data record.
    pub record_duration: f64,
    /// One header per signal, in file order (annotation signals included).
    pub signals: Vec<EdfSignal>,
}

impl EdfHeader {
    /// Bytes in one data record: `Σ samples_per_record × width`. `parse_header` bounds it to
    /// 9999 signals × 10^9 samples × 3 bytes, far from overflowing; [`count_records`] checks
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

    /// Byte offset of each signal's samples within a data record.
    pub fn signal_offsets(&self) -> Vec<usize> {
        let width = self.kind.width();
        let mut offsets = Vec::with_capacity(self.signals.len());
        let mut at = 0;
        for s in &self.signals {
            offsets.push(at);
            at += s.samples_per_record * width;
        }
        offsets
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

/// A field that should be ASCII as UTF-8, else as Latin-1 (as MNE reads physical dimensions:
/// `0xB5 V` is `µV`).
fn latin1_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.trim().to_string(),
        Err(_) => bytes
            .iter()
            .map(|&b| b as char)
            .collect::<String>()
            .trim()
            .to_string(),
    }
}

/// Parses a header from the start of `bytes` (which must hold all of it).
///
/// Fails, naming the file and field, on a truncated header, an unknown version, a header size
/// that does not match the signal count, or a numeric field that is not a number or out of
/// range (checked for non-annotation signals only).
pub fn parse_header(path: &Path, bytes: &[u8]) -> Result<EdfHeader> {
    if bytes.len() < 256 {
        return Err(DataError::invalid(
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
        return Err(DataError::invalid(
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
            .ok_or_else(|| DataError::invalid(path, field, "a number", format!("{value:?}")))
    };
    let header_bytes = number("header bytes", 184..192)?;
    let reserved = text(&bytes[192..236]);
    let declared_records = number("number of data records", 236..244)?;
    let record_duration = number("data record duration", 244..252)?;
    let ns = number("number of signals", 252..256)?;
    if !(1.0..=9999.0).contains(&ns) || ns.fract() != 0.0 {
        return Err(DataError::invalid(
            path,
            "number of signals",
            "a whole number in 1..=9999",
            ns.to_string(),
        ));
    }
    let ns = ns as usize;
    let expected_header = 256 * (ns + 1);
    if header_bytes != expected_header as f64 {
        return Err(DataError::invalid(
            path,
            "header bytes",
            format!("256 × (1 + {ns} signals) = {expected_header}"),
            header_bytes.to_string(),
        ));
    }
    if bytes.len() < expected_header {
        return Err(DataError::invalid(
            path,
            "header",
            format!("{expected_header} bytes for {ns} signals"),
            format!("{} bytes (file truncated)", bytes.len()),
        ));
    }
    if declared_records.fract() != 0.0 || !(-1.0..=99_999_999.0).contains(&declared_records) {
        return Err(DataError::invalid(
            path,
            "number of data records",
            "a whole number in 0..=99999999, or -1 (unknown)",
            declared_records.to_string(),
        ));
    }
    if record_duration < 0.0 {
        return Err(DataError::invalid(
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
                    DataError::invalid(path, name(what), "a number", format!("{value:?}"))
                })
        };
        let whole = |k: usize, what: &str, low: f64, high: f64| -> Result<f64> {
            let value = number(k, what)?;
            if value.fract() != 0.0 || value < low || value > high {
                return Err(DataError::invalid(
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
            unit: latin1_text(field(2, i)),
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
                return Err(DataError::invalid(
                    path,
                    name("digital maximum"),
                    format!("a value above the digital minimum {}", signal.digital_min),
                    signal.digital_max.to_string(),
                ));
            }
            if signal.physical_max == signal.physical_min {
                return Err(DataError::invalid(
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

/// Refuses a signal whose rate (samples per record over the record duration) is not one
/// [`limits::sample_rate`] allows: a duration like 1e-300 would size resampling and windows
/// by it.
/// A duration of 0 is left to the readers, which need a rate (EDF+ files of annotations only
/// have it).
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
        limits::sample_rate(path, &field, rate)?;
    }
    Ok(())
}

/// Decodes one little-endian two's-complement sample of 2 (EDF) or 3 (BDF) bytes.
pub fn digital(kind: EdfKind, bytes: &[u8]) -> i32 {
    match kind {
        EdfKind::Edf => i16::from_le_bytes([bytes[0], bytes[1]]) as i32,
        // Shift the 24-bit value into the top of an i32, then back, to extend the sign.
        EdfKind::Bdf => i32::from_le_bytes([0, bytes[0], bytes[1], bytes[2]]) >> 8,
    }
}

/// Appends the physical values of signal `i`, whose samples start `offset` bytes into
/// `record` (one whole data record), to `out`.
fn decode_signal_into(
    header: &EdfHeader,
    i: usize,
    offset: usize,
    record: &[u8],
    out: &mut Vec<f64>,
) {
    let width = header.kind.width();
    let signal = &header.signals[i];
    out.extend(
        record[offset..offset + signal.samples_per_record * width]
            .chunks_exact(width)
            .map(|bytes| signal.physical(digital(header.kind, bytes))),
    );
}

/// Physical values of signal `i` in one data record (`record` is one whole data record).
pub fn decode_signal(header: &EdfHeader, i: usize, record: &[u8]) -> Vec<f64> {
    let offset = header.signals[..i]
        .iter()
        .map(|s| s.samples_per_record * header.kind.width())
        .sum();
    let mut out = Vec::with_capacity(header.signals[i].samples_per_record);
    decode_signal_into(header, i, offset, record, &mut out);
    out
}

/// Physical values of the `chosen` signals in one data record, as frames:
/// `samples_per_record × chosen.len()`, row-major. All chosen signals share
/// `samples_per_record`; `record` is one whole data record.
pub fn decode_record(header: &EdfHeader, chosen: &[usize], record: &[u8]) -> Vec<f32> {
    let width = header.kind.width();
    let offsets = header.signal_offsets();
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

/// Reads the header from the start of `reader`, a file of `len` bytes at `path`: the main
/// header, then the signal headers as far as the declared signal count and the file go.
/// Fails as [`parse_header`] does.
pub fn read_header(path: &Path, reader: &mut impl Read, len: u64) -> Result<EdfHeader> {
    let mut bytes = Vec::new();
    read_up_to(reader, &mut bytes, 256).map_err(|e| DataError::io(path, e))?;
    if bytes.len() == 256 {
        let ns = text(&bytes[252..256]).parse::<usize>().unwrap_or(0);
        let want = ns.saturating_mul(256).min(len.saturating_sub(256) as usize);
        read_up_to(reader, &mut bytes, want).map_err(|e| DataError::io(path, e))?;
    }
    parse_header(path, &bytes)
}

fn read_up_to(reader: &mut impl Read, out: &mut Vec<u8>, count: usize) -> std::io::Result<()> {
    reader.take(count as u64).read_to_end(out).map(|_| ())
}

/// The data records of a file of `len` bytes with this header. Fails, naming the file and the
/// records expected, unless the bytes after the header are a whole number of data records and
/// as many as declared (any number when the header declares `-1`).
pub fn count_records(path: &Path, header: &EdfHeader, len: u64) -> Result<u64> {
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
        return Err(DataError::invalid(
            path,
            "data records",
            expected,
            format!("{data} bytes (file truncated or header wrong)"),
        ));
    }
    Ok(data / record_bytes)
}

/// A whole EDF/BDF file in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Edf {
    /// The file read.
    pub path: PathBuf,
    /// Its parsed header.
    pub header: EdfHeader,
    /// Data records read.
    pub records: u64,
    /// Each signal's physical values in its physical dimension (`records × samples_per_record`
    /// of them), in the header's order; empty for annotation signals.
    pub signals: Vec<Vec<f64>>,
}

impl Edf {
    /// Indices (into `header.signals`) of the signals that are not annotations.
    pub fn data_signals(&self) -> Vec<usize> {
        (0..self.header.signals.len())
            .filter(|&i| !self.header.signals[i].is_annotation())
            .collect()
    }
}

impl EdfSignal {
    /// Volts per unit of this signal's physical dimension when it is a voltage; `None` for
    /// other units. MNE's microvolts are recognised (`uV`, `µV`, `μV`, and Shift-JIS's mu read
    /// as Latin-1), and `mV` and `V`; `nV` too, which MNE leaves unscaled.
    pub fn volts_per_unit(&self) -> Option<f64> {
        match self.unit.as_str() {
            "V" => Some(1.0),
            "mV" => Some(1e-3),
            "uV" | "\u{b5}V" | "\u{3bc}V" | "\u{83}\u{ca}V" => Some(1e-6),
            "nV" => Some(1e-9),
            _ => None,
        }
    }
}

/// Reads every signal of the EDF/BDF file at `path` except the annotations, in physical units.
///
/// Fails, naming the file and the field, as [`parse_header`] and [`count_records`] do, and when
/// the decoded values would pass [`limits::ARRAY_BYTES`].
pub fn read(path: &Path) -> Result<Edf> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    let mut file = BufReader::new(file);
    let header = read_header(path, &mut file, len)?;
    let records = count_records(path, &header, len)?;
    let data_samples: u64 = header
        .signals
        .iter()
        .filter(|s| !s.is_annotation())
        .map(|s| s.samples_per_record as u64)
        .sum();
    limits::array_bytes(path, "data records", &[records, data_samples], 8)?;
    let record_bytes = header.record_bytes();
    let offsets = header.signal_offsets();
    let mut signals: Vec<Vec<f64>> = header
        .signals
        .iter()
        .map(|s| match s.is_annotation() {
            true => Vec::new(),
            false => Vec::with_capacity(records as usize * s.samples_per_record),
        })
        .collect();
    // A record is allocated only when there is one: its size is then at most the file's.
    let mut record = vec![0u8; if records > 0 { record_bytes } else { 0 }];
    for _ in 0..records {
        file.read_exact(&mut record)
            .map_err(|e| DataError::io(path, e))?;
        for (i, out) in signals.iter_mut().enumerate() {
            if !header.signals[i].is_annotation() {
                decode_signal_into(&header, i, offsets[i], &record, out);
            }
        }
    }
    Ok(Edf {
        path: path.to_path_buf(),
        header,
        records,
        signals,
    })
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

    /// An EDF+ header of `signals` (label, samples per record), each with physical range
    /// -100..100 uV over the whole 16-bit digital range, and `records` 1-s data records.
    fn header(signals: &[(&str, usize)], records: &str) -> Vec<u8> {
        let field = |text: &str, width: usize| format!("{text:<width$}").into_bytes();
        let mut out = field("0", 8);
        for (text, width) in [("", 80), ("", 80), ("01.01.01", 8), ("00.00.00", 8)] {
            out.extend(field(text, width));
        }
        out.extend(field(&(256 * (signals.len() + 1)).to_string(), 8));
        out.extend(field("EDF+C", 44));
        out.extend(field(records, 8));
        out.extend(field("1", 8));
        out.extend(field(&signals.len().to_string(), 4));
        let blocks: [(usize, &dyn Fn(&str, usize) -> String); 10] = [
            (16, &|label, _| label.to_string()),
            (80, &|_, _| String::new()),
            (8, &|_, _| "uV".into()),
            (8, &|_, _| "-100".into()),
            (8, &|_, _| "100".into()),
            (8, &|_, _| "-32768".into()),
            (8, &|_, _| "32767".into()),
            (80, &|_, _| String::new()),
            (8, &|_, spr| spr.to_string()),
            (32, &|_, _| String::new()),
        ];
        for (width, value) in blocks {
            for &(label, spr) in signals {
                out.extend(field(&value(label, spr), width));
            }
        }
        out
    }

    #[test]
    fn a_whole_file_is_read_per_signal_without_its_annotations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run_eeg.edf");
        let mut bytes = header(&[("Fz", 4), ("EDF Annotations", 3), ("Cz", 2)], "2");
        for record in 0..2i16 {
            for d in [-32768i16, 32767, 0, record] {
                bytes.extend(d.to_le_bytes());
            }
            bytes.extend(b"+0\x14\x14\x00\x00");
            for d in [100 * record, -100] {
                bytes.extend(d.to_le_bytes());
            }
        }
        std::fs::write(&path, &bytes).unwrap();
        let edf = read(&path).unwrap();
        assert_eq!(edf.records, 2);
        assert_eq!(edf.data_signals(), vec![0, 2]);
        assert!(edf.signals[1].is_empty());
        let step = 200.0 / 65535.0;
        let value = |d: f64| -100.0 + (d + 32768.0) * step;
        let fz: Vec<f64> = [-32768.0, 32767.0, 0.0, 0.0, -32768.0, 32767.0, 0.0, 1.0]
            .map(value)
            .to_vec();
        assert_eq!(edf.signals[0], fz);
        assert_eq!(
            edf.signals[2],
            [0.0, -100.0, 100.0, -100.0].map(value).to_vec()
        );
        assert_eq!(edf.header.signals[0].volts_per_unit(), Some(1e-6));
        // A Latin-1 micro sign in the physical dimension (signal 1's, at 256 + 3 × 96).
        let mut latin1 = bytes.clone();
        latin1[544..546].copy_from_slice(&[0xB5, b'V']);
        let parsed = parse_header(&path, &latin1).unwrap();
        assert_eq!(parsed.signals[0].unit, "\u{b5}V");
        assert_eq!(parsed.signals[0].volts_per_unit(), Some(1e-6));
        assert_eq!(
            decode_signal(&edf.header, 2, &bytes[1024..1024 + 18]),
            edf.signals[2][..2].to_vec()
        );

        // Cut short: the error names the file, the field and the size expected.
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(
            err.contains("run_eeg.edf")
                && err.contains("data records")
                && err.contains("2 data records × 18 bytes"),
            "{err}"
        );
        // No data records, and signal headers claiming 10^9 samples per 10^6-s record: nothing
        // is allocated for them.
        let mut empty = header(&[("Fz", 4), ("Cz", 2)], "0");
        empty[256 + 2 * 216..256 + 2 * 224].copy_from_slice(b"1e9     1e9     ");
        empty[244..252].copy_from_slice(b"1e6     ");
        std::fs::write(&path, &empty).unwrap();
        let edf = read(&path).unwrap();
        assert_eq!((edf.records, edf.signals[0].len()), (0, 0));
        std::fs::write(&path, &bytes[..700]).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(
            err.contains("run_eeg.edf") && err.contains("1024 bytes for 3 signals"),
            "{err}"
        );
    }
}
