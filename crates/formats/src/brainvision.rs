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
//!   `points/sfreq`, description `<type>/<description>`.
//!
//! The number of samples comes from the data file's size, which must hold whole samples of all
//! channels. Text that is not UTF-8 (`Codepage=ANSI`) is read as Latin-1.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// One channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Channel {
    pub name: String,
    pub reference: String,
    /// Stored value × resolution = value in `unit`.
    pub resolution: f64,
    pub unit: String,
}

/// One marker.
#[derive(Clone, Debug, PartialEq)]
pub struct Marker {
    /// `Stimulus`, `Response`, `Comment`, `New Segment` …
    pub kind: String,
    pub description: String,
    /// 0-based sample.
    pub sample: usize,
    /// Length in samples (at least 1 as stored; 0 is kept).
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
    pub header: PathBuf,
    pub channels: Vec<Channel>,
    pub sfreq: f64,
    pub samples: usize,
    /// [channels, samples] row-major, in volts for voltage units.
    pub data: Vec<f64>,
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
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(e) => Ok(e.into_bytes().iter().map(|&b| b as char).collect()),
    }
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
        Some(name) => read_markers(&companion(vhdr, "MarkerFile", name)?)?,
        None => Vec::new(),
    };
    Ok(BrainVision {
        header: vhdr.to_path_buf(),
        channels,
        sfreq: 1e6 / interval,
        samples,
        data,
        markers,
    })
}

/// Reads a `.vmrk` marker file.
pub fn read_markers(vmrk: &Path) -> Result<Vec<Marker>> {
    let text = read_text(vmrk)?;
    let s = sections(&text);
    let Some(entries) = s.get("Marker Infos") else {
        return Ok(Vec::new());
    };
    let mut markers: Vec<(usize, Marker)> = Vec::new();
    for (key, entry) in entries {
        let Some(number) = key.strip_prefix("Mk").and_then(|k| k.parse::<usize>().ok()) else {
            continue;
        };
        let fields: Vec<&str> = entry.split(',').collect();
        // A field left empty or out takes `default`; one that is there must be a number.
        let number_at = |i: usize, what: &str, default: Option<usize>| -> Result<usize> {
            let field = fields.get(i).map(|f| f.trim()).unwrap_or("");
            match (field.parse::<usize>(), default) {
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
        if position == 0 {
            return Err(DataError::invalid(
                vmrk,
                format!("{key} position"),
                "a 1-based sample",
                "0",
            ));
        }
        markers.push((
            number,
            Marker {
                kind: unescape(fields[0]),
                description: fields.get(1).map(|f| unescape(f)).unwrap_or_default(),
                sample: position - 1,
                points: number_at(3, "points", Some(1))?,
                channel: number_at(4, "channel", Some(0))?,
            },
        ));
    }
    markers.sort_by_key(|(number, _)| *number);
    Ok(markers.into_iter().map(|(_, m)| m).collect())
}
