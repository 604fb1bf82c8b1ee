//! NWB (HDF5) ElectricalSeries, read with the pure-Rust `hdf5-reader`.
//!
//! An ElectricalSeries `/acquisition/<name>` holds:
//! - `data`: `(samples, channels)` (or `(samples,)`) integers or floats, with the attributes
//!   `conversion` (default 1) and `offset` (default 0);
//! - optionally `channel_conversion`: one factor per channel;
//! - either `starting_time` with a `rate` attribute (Hz), or `timestamps` (seconds).
//!
//! Values are returned as `data × conversion × channel_conversion[channel] + offset`, the
//! series' unit (volts for an ElectricalSeries). With `timestamps`, the rate is their mean rate,
//! `(n - 1) / (t[n-1] - t[0])`; gaps are not reproduced.

use crate::error::{Result, StreamError};
use crate::source::{read_all, Chunk, Recording, Source};
use hdf5_reader::{Datatype, Hdf5File, SliceInfo, SliceInfoElem};
use std::path::{Path, PathBuf};

/// Names of the ElectricalSeries in `/acquisition`, in file order.
pub fn electrical_series(path: &Path) -> Result<Vec<String>> {
    let file = open_file(path)?;
    electrical_series_in(path, &file)
}

fn open_file(path: &Path) -> Result<Hdf5File> {
    if !path.exists() {
        return Err(StreamError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
        ));
    }
    Hdf5File::open(path)
        .map_err(|e| StreamError::invalid(path, "HDF5", "an HDF5 (NWB) file", e.to_string()))
}

fn electrical_series_in(path: &Path, file: &Hdf5File) -> Result<Vec<String>> {
    let acquisition = file.group("/acquisition").map_err(|_| {
        StreamError::invalid(path, "/acquisition", "an NWB acquisition group", "none")
    })?;
    let (groups, _) = acquisition.member_names().map_err(|e| {
        StreamError::invalid(path, "/acquisition", "a readable group", e.to_string())
    })?;
    Ok(groups
        .into_iter()
        .filter(|name| {
            acquisition
                .group(name)
                .and_then(|g| g.attribute("neurodata_type"))
                .and_then(|a| a.read_string())
                .is_ok_and(|t| t == "ElectricalSeries")
        })
        .collect())
}

/// An NWB ElectricalSeries read in blocks of rows as a [`Source`].
pub struct NwbReader {
    path: PathBuf,
    field: String,
    data: hdf5_reader::Dataset,
    _file: Hdf5File,
    frames: usize,
    channels: usize,
    rate: f64,
    /// `conversion × channel_conversion[c]` for each channel.
    scale: Vec<f64>,
    offset: f64,
    labels: Vec<String>,
    position: usize,
}

impl NwbReader {
    /// Opens `/acquisition/<series>` (`series` may be given as `name` or
    /// `/acquisition/name`), or the file's only ElectricalSeries when `series` is `None`
    /// (an error listing them when there are several).
    pub fn open(path: &Path, series: Option<&str>) -> Result<Self> {
        let file = open_file(path)?;
        let name = match series {
            Some(name) => {
                let name = name.trim_matches('/');
                name.strip_prefix("acquisition/")
                    .unwrap_or(name)
                    .to_string()
            }
            None => {
                let found = electrical_series_in(path, &file)?;
                match found.as_slice() {
                    [one] => one.clone(),
                    [] => {
                        return Err(StreamError::invalid(
                            path,
                            "/acquisition",
                            "an ElectricalSeries",
                            "none",
                        ))
                    }
                    many => {
                        return Err(StreamError::invalid(
                            path,
                            "/acquisition",
                            "one ElectricalSeries, or a series named by the caller",
                            format!("{} ({})", many.len(), many.join(", ")),
                        ))
                    }
                }
            }
        };
        let base = format!("/acquisition/{name}");
        let group = file.group(&base).map_err(|_| {
            let found = electrical_series_in(path, &file)
                .map(|f| f.join(", "))
                .unwrap_or_default();
            StreamError::invalid(
                path,
                &base,
                format!("a series group (ElectricalSeries found: {found})"),
                "none",
            )
        })?;
        let field = format!("{base}/data");
        let data = group
            .dataset("data")
            .map_err(|_| StreamError::invalid(path, &field, "a dataset", "none"))?;
        let (frames, channels) = match data.shape() {
            [n] => (*n as usize, 1),
            [n, c] => (*n as usize, *c as usize),
            other => {
                return Err(StreamError::invalid(
                    path,
                    &field,
                    "shape (samples, channels) or (samples,)",
                    format!("{other:?}"),
                ))
            }
        };
        if channels == 0 {
            return Err(StreamError::invalid(
                path,
                &field,
                "at least 1 channel",
                "0",
            ));
        }
        element_kind(data.dtype()).ok_or_else(|| {
            StreamError::invalid(
                path,
                &field,
                "integer or float samples",
                format!("{:?}", data.dtype()),
            )
        })?;
        let number_attribute = |name: &str, default: f64| -> Result<f64> {
            match data.attribute(name) {
                Err(_) => Ok(default),
                Ok(a) => a
                    .read_as_f64()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| {
                        StreamError::invalid(
                            path,
                            format!("{field} attribute '{name}'"),
                            "a finite number",
                            format!("{:?}", a.datatype),
                        )
                    }),
            }
        };
        let conversion = number_attribute("conversion", 1.0)?;
        let offset = number_attribute("offset", 0.0)?;
        let scale = match group.dataset("channel_conversion") {
            Err(_) => vec![conversion; channels],
            Ok(cc) => {
                let factors = read_all_f64(&cc).map_err(|e| {
                    StreamError::invalid(
                        path,
                        format!("{base}/channel_conversion"),
                        "one number per channel",
                        e,
                    )
                })?;
                if factors.len() != channels {
                    return Err(StreamError::invalid(
                        path,
                        format!("{base}/channel_conversion"),
                        format!("{channels} factors (one per channel)"),
                        factors.len().to_string(),
                    ));
                }
                factors.iter().map(|f| f * conversion).collect()
            }
        };
        let rate = series_rate(path, &group, &base, frames)?;
        let labels = match group.dataset("electrodes").map(|e| read_all_f64(&e)) {
            Ok(Ok(rows)) if rows.len() == channels => rows
                .iter()
                .map(|r| format!("electrode {}", *r as i64))
                .collect(),
            _ => crate::source::default_labels(channels),
        };
        Ok(NwbReader {
            path: path.to_path_buf(),
            field,
            data,
            _file: file,
            frames,
            channels,
            rate,
            scale,
            offset,
            labels,
            position: 0,
        })
    }

    /// Frames in the series.
    pub fn frames(&self) -> usize {
        self.frames
    }
}

/// The rate from `starting_time`'s `rate` attribute, or else from `timestamps`.
fn series_rate(
    path: &Path,
    group: &hdf5_reader::group::Group,
    base: &str,
    frames: usize,
) -> Result<f64> {
    if let Ok(start) = group.dataset("starting_time") {
        let field = format!("{base}/starting_time attribute 'rate'");
        let attribute = start
            .attribute("rate")
            .map_err(|_| StreamError::invalid(path, &field, "a sample rate in Hz", "none"))?;
        let rate = attribute.read_as_f64().map_err(|e| {
            StreamError::invalid(
                path,
                &field,
                "a finite sample rate above 0 Hz",
                e.to_string(),
            )
        })?;
        // The shared bound on rates read from files (finite, above 0, at most the limit).
        return Ok(brainrecon_core::limits::sample_rate(path, &field, rate)?);
    }
    let field = format!("{base}/timestamps");
    let stamps = group
        .dataset("timestamps")
        .map_err(|_| {
            StreamError::invalid(
                path,
                base,
                "a 'starting_time' (with 'rate') or 'timestamps' dataset",
                "neither",
            )
        })
        .and_then(|d| {
            read_all_f64(&d)
                .map_err(|e| StreamError::invalid(path, &field, "timestamps in seconds", e))
        })?;
    if stamps.len() != frames || frames < 2 {
        return Err(StreamError::invalid(
            path,
            &field,
            format!("one timestamp per sample ({frames}, at least 2)"),
            stamps.len().to_string(),
        ));
    }
    let span = stamps[frames - 1] - stamps[0];
    let rate = (frames - 1) as f64 / span;
    if !(rate.is_finite() && rate > 0.0) {
        return Err(StreamError::invalid(
            path,
            &field,
            "increasing timestamps",
            format!("first {}, last {}", stamps[0], stamps[frames - 1]),
        ));
    }
    Ok(brainrecon_core::limits::sample_rate(path, &field, rate)?)
}

#[derive(Clone, Copy)]
enum Kind {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    F32,
    F64,
}

fn element_kind(dtype: &Datatype) -> Option<Kind> {
    Some(match dtype {
        Datatype::FixedPoint { size, signed, .. } => match (size, signed) {
            (1, true) => Kind::I8,
            (1, false) => Kind::U8,
            (2, true) => Kind::I16,
            (2, false) => Kind::U16,
            (4, true) => Kind::I32,
            (4, false) => Kind::U32,
            (8, true) => Kind::I64,
            _ => return None,
        },
        Datatype::FloatingPoint { size: 4, .. } => Kind::F32,
        Datatype::FloatingPoint { size: 8, .. } => Kind::F64,
        _ => return None,
    })
}

/// Reads `selection` of a numeric dataset as f64, in C order.
fn read_f64(
    dataset: &hdf5_reader::Dataset,
    selection: &SliceInfo,
) -> std::result::Result<Vec<f64>, String> {
    macro_rules! read {
        ($ty:ty) => {
            dataset
                .read_slice::<$ty>(selection)
                .map_err(|e| e.to_string())?
                .iter()
                .map(|&v| v as f64)
                .collect()
        };
    }
    Ok(match element_kind(dataset.dtype()) {
        Some(Kind::I8) => read!(i8),
        Some(Kind::U8) => read!(u8),
        Some(Kind::I16) => read!(i16),
        Some(Kind::U16) => read!(u16),
        Some(Kind::I32) => read!(i32),
        Some(Kind::U32) => read!(u32),
        Some(Kind::I64) => read!(i64),
        Some(Kind::F32) => read!(f32),
        Some(Kind::F64) => read!(f64),
        None => return Err(format!("unsupported element type {:?}", dataset.dtype())),
    })
}

fn read_all_f64(dataset: &hdf5_reader::Dataset) -> std::result::Result<Vec<f64>, String> {
    read_f64(dataset, &SliceInfo::all(dataset.ndim()))
}

impl Source for NwbReader {
    fn channels(&self) -> usize {
        self.channels
    }

    fn rate(&self) -> f64 {
        self.rate
    }

    fn labels(&self) -> Vec<String> {
        self.labels.clone()
    }

    fn next_chunk(&mut self, max_frames: usize) -> Result<Option<Chunk>> {
        if self.position >= self.frames {
            return Ok(None);
        }
        let take = (self.frames - self.position).min(max_frames.clamp(1, 65536));
        let mut selections = vec![SliceInfoElem::Slice {
            start: self.position as u64,
            end: (self.position + take) as u64,
            step: 1,
        }];
        if self.data.ndim() == 2 {
            selections.push(SliceInfoElem::Slice {
                start: 0,
                end: u64::MAX,
                step: 1,
            });
        }
        let values = read_f64(&self.data, &SliceInfo { selections }).map_err(|e| {
            StreamError::invalid(
                &self.path,
                &self.field,
                format!(
                    "rows {}..{} (is the file truncated?)",
                    self.position,
                    self.position + take
                ),
                e,
            )
        })?;
        if values.len() != take * self.channels {
            return Err(StreamError::invalid(
                &self.path,
                &self.field,
                format!("{} values for {take} rows", take * self.channels),
                values.len().to_string(),
            ));
        }
        let data = values
            .chunks_exact(self.channels)
            .flat_map(|row| {
                row.iter()
                    .zip(&self.scale)
                    .map(|(v, s)| (v * s + self.offset) as f32)
            })
            .collect();
        self.position += take;
        Ok(Some(Chunk {
            channels: self.channels,
            data,
        }))
    }
}

/// Reads a whole ElectricalSeries (see [`NwbReader::open`]) into memory.
pub fn read_nwb(path: &Path, series: Option<&str>) -> Result<Recording> {
    let mut reader = NwbReader::open(path, series)?;
    read_all(&mut reader, path)
}
