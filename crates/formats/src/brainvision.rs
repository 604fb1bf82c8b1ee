//! BrainVision Core Data Format 1.0 (Brain Products; BIDS's EEG format): a text header
//! (`.vhdr`), a marker file (`.vmrk`) and the binary samples (`.eeg`).
//!
//! - **Header:** INI sections. `[Common Infos]` names the data and marker files (relative to
//!   the header), `DataFormat=BINARY`, `DataOrientation` (`MULTIPLEXED`: channel values of a
//!   sample together; `VECTORIZED`: a channel's samples together), `NumberOfChannels` and
//!   `SamplingInterval` in µs. `[Binary Infos]` gives `BinaryFormat` (`INT_16`, `UINT_16`,
//!   `INT_32`, `IEEE_FLOAT_32`), little-endian. `[Channel Infos]` lists
//!   `Ch<n>=<name>,<reference>,<resolution>,<unit>`, a comma in a name written `\1`; the
//!   resolution defaults to 1 and the unit to µV.
//! - **Values** are `stored × resolution` in the channel's unit; this reader returns volts for
//!   voltage units (nV, µV/uV, mV, V), as MNE does, and other units as they are.
//! - **Markers:** `Mk<n>=<type>,<description>,<position>,<points>,<channel>[,<date>]`, the
//!   position 1-based. An MNE annotation is onset `(position − 1)/sfreq`, duration
//!   `points/sfreq`, description `<type>/<description>`, clipped to the recording: a marker at
//!   position 0 (logged before the first sample) is kept at sample 0 ([`read_markers`]). MNE
//!   also leaves out a first `New Segment` marker (it only dates the recording); it is kept
//!   here.
//! - **The sample rate** `1e6 / SamplingInterval` is bounded by
//!   [`brainrecon_core::limits::sample_rate`].
//!
//! The number of samples comes from the data file's size, which must hold whole samples of all
//! channels. Text that is not UTF-8 (`Codepage=ANSI`) is read as Latin-1.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::limits;

/// One channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Channel {
    /// Channel name (e.g. `Fp1`), `\1` decoded to a comma.
    pub name: String,
    /// Reference channel name; empty when the header gives none.
    pub reference: String,
    /// Stored value × resolution = value in `unit`.
    pub resolution: f64,
    /// Unit of the stored values × `resolution` (`µV` when the header gives none).
    pub unit: String,
}

/// One marker, as MNE reads it into an annotation (see [`read_markers`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Marker {
    /// `Stimulus`, `Response`, `Comment`, `New Segment` …
    pub kind: String,
    /// Marker description (e.g. `S  1`).
    pub description: String,
    /// The 1-based position as stored; 0 (or less) lies before the first sample.
    pub position: i64,
    /// 0-based first sample inside the recording: `position − 1`, or 0 for a marker that
    /// starts before the recording (MNE's annotation onset × sfreq).
    pub sample: usize,
    /// Length in samples inside the recording (MNE's annotation duration × sfreq; 0 is kept).
    pub points: usize,
    /// 0 = every channel.
    pub channel: usize,
}

impl Marker {
    /// MNE's annotation description: `<type>/<description>`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.kind, self.description)
    }
}

/// A recording.
#[derive(Clone, Debug)]
pub struct BrainVision {
    /// The `.vhdr` file read.
    pub header: PathBuf,
    /// One per channel, in header order.
    pub channels: Vec<Channel>,
    /// Sample rate in Hz (`1e6 / SamplingInterval`).
    pub sfreq: f64,
    /// Samples per channel.
    pub samples: usize,
    /// [channels, samples] row-major, in volts for voltage units.
    pub data: Vec<f64>,
    /// The `.vmrk` file's markers, in file order.
    pub markers: Vec<Marker>,
}

/// Channels a header may declare.
const MAX_CHANNELS: usize = 4096;

/// The sections of an INI-style file: section → key → value, in the file's text.
fn sections(text: &str) -> HashMap<String, Vec<(String, String)>> {
    let mut out: HashMap<String, Vec<(String, String)>> = HashMap::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim().to_string();
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.entry(current.clone())
                .or_default()
                .push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// The text of a header or marker file: UTF-8, or Latin-1 (`Codepage=ANSI`) when it is not
/// valid UTF-8.
fn read_text(path: &Path) -> Result<String> {
    brainrecon_core::text::read_text_utf8_or_latin1(path)
}

fn value<'a>(
    sections: &'a HashMap<String, Vec<(String, String)>>,
    section: &str,
    key: &str,
) -> Option<&'a str> {
    sections
        .get(section)?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// Volts per unit, for voltage units.
fn volts_per(unit: &str) -> Option<f64> {
    match unit {
        "V" => Some(1.0),
        "mV" => Some(1e-3),
        "µV" | "μV" | "uV" => Some(1e-6),
        "nV" => Some(1e-9),
        _ => None,
    }
}

fn unescape(field: &str) -> String {
    field.replace("\\1", ",")
}

/// The file a header names under `key`, beside the header; an error naming the header and the
/// field when it is not there.
fn companion(vhdr: &Path, key: &str, name: &str) -> Result<PathBuf> {
    let dir = vhdr.parent().unwrap_or(Path::new("."));
    let path = dir.join(name);
    let plain = !name.is_empty() && !name.contains(['\0', '/', '\\']);
    match plain && path.is_file() {
        true => Ok(path),
        false => Err(DataError::invalid(
            vhdr,
            key,
            "the name of a file beside the header",
            format!("'{name}'"),
        )),
    }
}

/// Reads a recording from its header.
pub fn read(vhdr: &Path) -> Result<BrainVision> {
    let text = read_text(vhdr)?;
    if !text.starts_with("Brain Vision Data Exchange Header File")
        && !text.starts_with("BrainVision Data Exchange Header File")
    {
        let first = text
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(60)
            .collect::<String>();
        return Err(DataError::invalid(
            vhdr,
            "first line",
            "Brain Vision Data Exchange Header File Version 1.0",
            format!("'{first}'"),
        ));
    }
    let s = sections(&text);
    let common = "Common Infos";
    let need = |key: &str| -> Result<&str> {
        value(&s, common, key).ok_or_else(|| {
            DataError::invalid(vhdr, format!("[{common}] {key}"), "present", "absent")
        })
    };
    let format = need("DataFormat")?;
    if !format.eq_ignore_ascii_case("BINARY") {
        return Err(DataError::invalid(vhdr, "DataFormat", "BINARY", format));
    }
    let multiplexed = match value(&s, common, "DataOrientation").unwrap_or("MULTIPLEXED") {
        o if o.eq_ignore_ascii_case("MULTIPLEXED") => true,
        o if o.eq_ignore_ascii_case("VECTORIZED") => false,
        other => {
            return Err(DataError::invalid(
                vhdr,
                "DataOrientation",
                "MULTIPLEXED or VECTORIZED",
                other,
            ))
        }
    };
    let n: usize = need("NumberOfChannels")?
        .parse()
        .ok()
        .filter(|n| (1..=MAX_CHANNELS).contains(n))
        .ok_or_else(|| {
            DataError::invalid(
                vhdr,
                "NumberOfChannels",
                format!("1 to {MAX_CHANNELS}"),
                need("NumberOfChannels").unwrap_or(""),
            )
        })?;
    let interval: f64 = need("SamplingInterval")?
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .ok_or_else(|| {
            DataError::invalid(
                vhdr,
                "SamplingInterval",
                "a positive number of µs",
                need("SamplingInterval").unwrap_or(""),
            )
        })?;
    // The shared bound on rates read from files: an interval of 1e-300 µs is a rate of 1e306.
    let sfreq = limits::sample_rate(
        vhdr,
        "SamplingInterval (as a rate, 1e6 / µs)",
        1e6 / interval,
    )?;
    let binary = value(&s, "Binary Infos", "BinaryFormat").unwrap_or("INT_16");
    let bytes_per = match binary {
        "INT_16" | "UINT_16" => 2,
        "INT_32" | "IEEE_FLOAT_32" => 4,
        other => {
            return Err(DataError::invalid(
                vhdr,
                "BinaryFormat",
                "INT_16, UINT_16, INT_32 or IEEE_FLOAT_32",
                other,
            ))
        }
    };
    let mut channels = Vec::with_capacity(n);
    for i in 1..=n {
        let key = format!("Ch{i}");
        let Some(entry) = value(&s, "Channel Infos", &key) else {
            return Err(DataError::invalid(
                vhdr,
                format!("[Channel Infos] {key}"),
                "present",
                "absent",
            ));
        };
        let fields: Vec<&str> = entry.split(',').collect();
        let resolution = match fields.get(2).map(|f| f.trim()).filter(|f| !f.is_empty()) {
            None => 1.0,
            Some(f) => f
                .parse::<f64>()
                .ok()
                .filter(|r| r.is_finite())
                .ok_or_else(|| {
                    DataError::invalid(vhdr, format!("{key} resolution"), "a number", f)
                })?,
        };
        channels.push(Channel {
            name: unescape(fields[0]),
            reference: fields.get(1).map(|f| unescape(f)).unwrap_or_default(),
            resolution,
            unit: fields
                .get(3)
                .map(|f| f.trim())
                .filter(|f| !f.is_empty())
                .unwrap_or("µV")
                .to_string(),
        });
    }
    let data_path = companion(vhdr, "DataFile", need("DataFile")?)?;
    let raw = std::fs::read(&data_path).map_err(|e| DataError::io(&data_path, e))?;
    let frame = n * bytes_per;
    if raw.len() % frame != 0 {
        return Err(DataError::invalid(
            &data_path,
            "size",
            format!("whole samples of {n} channels × {bytes_per} bytes"),
            format!("{} bytes", raw.len()),
        ));
    }
    let samples = raw.len() / frame;
    // Values become f64: up to 4 times the file's bytes.
    limits::array_bytes(&data_path, "size", &[n as u64, samples as u64], 8)?;
    let decode = |chunk: &[u8]| -> f64 {
        match binary {
            "INT_16" => i16::from_le_bytes([chunk[0], chunk[1]]) as f64,
            "UINT_16" => u16::from_le_bytes([chunk[0], chunk[1]]) as f64,
            "INT_32" => i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as f64,
            _ => f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as f64,
        }
    };
    let scales: Vec<f64> = channels
        .iter()
        .map(|c| c.resolution * volts_per(&c.unit).unwrap_or(1.0))
        .collect();
    let mut data = vec![0f64; n * samples];
    for (i, chunk) in raw.chunks_exact(bytes_per).enumerate() {
        let (channel, sample) = match multiplexed {
            true => (i % n, i / n),
            false => (i / samples, i % samples),
        };
        data[channel * samples + sample] = decode(chunk) * scales[channel];
    }
    let markers = match value(&s, common, "MarkerFile") {
        Some(name) => read_markers(&companion(vhdr, "MarkerFile", name)?, samples)?,
        None => Vec::new(),
    };
    Ok(BrainVision {
        header: vhdr.to_path_buf(),
        channels,
        sfreq,
        samples,
        data,
        markers,
    })
}

/// Reads a `.vmrk` marker file of a recording of `samples` samples, as MNE 1.13 reads it.
///
/// A marker spans 0-based samples `position − 1` to `position − 1 + points` (an empty points
/// field is 0, as MNE reads it). MNE clips each such span to the recording (0 …
/// `samples`): a marker at position 0 (amplifier software logs events before the first
/// sample, an impedance check for one) starts at sample 0, one point shorter; a span that
/// ends before sample 0 or starts after `samples` is left out. The markers are in MNE's
/// order of annotations: by position, then points as stored, then marker number.
///
/// Errors: a position or points field that is not a whole number, naming the file and `Mk<n>`.
pub fn read_markers(vmrk: &Path, samples: usize) -> Result<Vec<Marker>> {
    let text = read_text(vmrk)?;
    let s = sections(&text);
    let Some(entries) = s.get("Marker Infos") else {
        return Ok(Vec::new());
    };
    // (position, points as stored, number): MNE's order, onset then duration.
    let mut markers: Vec<((i64, i64, usize), Marker)> = Vec::new();
    for (key, entry) in entries {
        let Some(number) = key.strip_prefix("Mk").and_then(|k| k.parse::<usize>().ok()) else {
            continue;
        };
        let fields: Vec<&str> = entry.split(',').collect();
        // A field left empty or out takes `default`; one that is there must be a number.
        let number_at = |i: usize, what: &str, default: Option<i64>| -> Result<i64> {
            let field = fields.get(i).map(|f| f.trim()).unwrap_or("");
            match (field.parse::<i64>(), default) {
                (Ok(v), _) => Ok(v),
                (Err(_), Some(d)) if field.is_empty() => Ok(d),
                _ => Err(DataError::invalid(
                    vmrk,
                    format!("{key} {what}"),
                    "a whole number",
                    format!("'{field}'"),
                )),
            }
        };
        let position = number_at(2, "position", None)?;
        // MNE reads points that are not digits (empty, or negative) as 0.
        let points = number_at(3, "points", Some(0))?.max(0);
        let channel = number_at(4, "channel", Some(0))?;
        let channel = usize::try_from(channel).map_err(|_| {
            DataError::invalid(
                vmrk,
                format!("{key} channel"),
                "0 (every channel) or a channel number",
                channel.to_string(),
            )
        })?;
        // The span in 0-based samples, clipped to the recording as MNE's annotations are.
        let start = position.saturating_sub(1);
        let end = start.saturating_add(points);
        let last = i64::try_from(samples).unwrap_or(i64::MAX);
        if end < 0 || start > last {
            continue;
        }
        let (first, end) = (start.max(0), end.min(last));
        markers.push((
            (position, points, number),
            Marker {
                kind: unescape(fields[0]),
                description: fields.get(1).map(|f| unescape(f)).unwrap_or_default(),
                position,
                sample: first as usize,
                points: (end - first) as usize,
                channel,
            },
        ));
    }
    markers.sort_by_key(|(order, _)| *order);
    Ok(markers.into_iter().map(|(_, m)| m).collect())
}
