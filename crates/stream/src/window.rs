//! Sliding windows over a stream of chunks.

use crate::error::{check_rate, Result, StreamError};
use crate::source::Chunk;

/// Window length, hop and channel selection, in seconds and source channel indices.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowSpec {
    /// Window length in seconds (default 1 s).
    pub length_s: f64,
    /// Time between window starts in seconds (default 1/30 s).
    pub hop_s: f64,
    /// Source channels to keep, in this order; `None` keeps all.
    pub channels: Option<Vec<usize>>,
}

impl Default for WindowSpec {
    fn default() -> Self {
        WindowSpec {
            length_s: 1.0,
            hop_s: 1.0 / 30.0,
            channels: None,
        }
    }
}

/// One window: `samples × channels.len()` values, row-major (`data[t * C + k]` is selected
/// channel `k` at the window's frame `t`).
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Index, in the source's frames, of the window's first frame.
    pub start: u64,
    /// Frames in the window.
    pub samples: usize,
    /// Source channel index of each column.
    pub channels: Vec<usize>,
    /// `samples × channels.len()`, row-major.
    pub data: Vec<f32>,
}

impl Window {
    /// A window from row-major `samples × channels.len()` data.
    ///
    /// Fails when `data.len()` is not `samples × channels.len()`.
    pub fn new(start: u64, channels: Vec<usize>, samples: usize, data: Vec<f32>) -> Result<Self> {
        if Some(data.len()) != samples.checked_mul(channels.len()) {
            return Err(StreamError::parameter(
                "window",
                format!(
                    "{samples} samples × {} channels = {} values",
                    channels.len(),
                    samples * channels.len()
                ),
                format!("{} values", data.len()),
            ));
        }
        Ok(Window {
            start,
            samples,
            channels,
            data,
        })
    }

    /// Column `k` (selected channel `k`) as `samples` contiguous values.
    pub fn channel(&self, k: usize) -> Vec<f32> {
        let width = self.channels.len();
        self.data.iter().skip(k).step_by(width).copied().collect()
    }
}

/// `seconds × rate` rounded to whole samples.
pub fn samples_for(seconds: f64, rate: f64) -> f64 {
    (seconds * rate).round()
}

/// Keeps `channels` (source indices) of each frame of `chunk`: `frames × channels.len()`,
/// row-major. Indices must be below `chunk.channels`.
pub fn select_channels(chunk: &Chunk, channels: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(chunk.frames() * channels.len());
    for frame in chunk.data.chunks_exact(chunk.channels) {
        out.extend(channels.iter().map(|&c| frame[c]));
    }
    out
}

/// Parses a channel list such as `0-3,7` or `Fp1,Fp2` (labels, matched exactly) into source
/// indices, in the order given. Fails naming the item that is neither a known label nor an
/// index (or range) below `labels.len()`.
pub fn parse_channels(spec: &str, labels: &[String]) -> Result<Vec<usize>> {
    let bad = |item: &str| {
        StreamError::parameter(
            "channels",
            format!(
                "channel indices below {} (e.g. 0-3,7) or labels ({})",
                labels.len(),
                labels.join(", ")
            ),
            format!("{item:?}"),
        )
    };
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some(i) = labels.iter().position(|l| l == item) {
            out.push(i);
            continue;
        }
        let index = |s: &str| s.trim().parse::<usize>().ok().filter(|&i| i < labels.len());
        match item.split_once('-') {
            Some((a, b)) => match (index(a), index(b)) {
                (Some(a), Some(b)) if a <= b => out.extend(a..=b),
                _ => return Err(bad(item)),
            },
            None => out.push(index(item).ok_or_else(|| bad(item))?),
        }
    }
    if out.is_empty() {
        return Err(bad(spec));
    }
    Ok(out)
}

/// Cuts a stream of chunks into overlapping windows.
///
/// Window `k` starts at frame `round(k × hop_s × rate)`, so the average window rate is exactly
/// `1 / hop_s` even when the hop is not a whole number of samples; each window is
/// `round(length_s × rate)` frames long. A hop longer than the window skips the frames between
/// windows.
#[derive(Debug, Clone)]
pub struct Windower {
    length: usize,
    hop: f64,
    source_channels: usize,
    channels: Vec<usize>,
    /// Selected channels of frames `buffer_start..`, row-major.
    buffer: Vec<f32>,
    buffer_start: u64,
    next_window: u64,
}

impl Windower {
    /// Windows of `spec` over a source of `source_channels` channels at `rate` Hz.
    ///
    /// Fails when the window is shorter than 2 samples, the hop is shorter than one sample,
    /// or a channel index is out of range or repeated.
    pub fn new(spec: &WindowSpec, source_channels: usize, rate: f64) -> Result<Self> {
        check_rate("rate", rate)?;
        let length = samples_for(spec.length_s, rate);
        if !(length.is_finite() && length >= 2.0) {
            return Err(StreamError::parameter(
                "window length",
                format!("at least 2 samples ({} s at {rate} Hz)", 2.0 / rate),
                format!("{} s", spec.length_s),
            ));
        }
        let hop = spec.hop_s * rate;
        if !(hop.is_finite() && hop >= 1.0) {
            return Err(StreamError::parameter(
                "window hop",
                format!("at least one sample ({} s at {rate} Hz)", 1.0 / rate),
                format!("{} s", spec.hop_s),
            ));
        }
        let channels = match &spec.channels {
            None => (0..source_channels).collect(),
            Some(list) => list.clone(),
        };
        if channels.is_empty() {
            return Err(StreamError::parameter(
                "channels",
                "at least one channel",
                "none",
            ));
        }
        for (k, &c) in channels.iter().enumerate() {
            if c >= source_channels {
                return Err(StreamError::parameter(
                    "channels",
                    format!("indices below {source_channels} (the source's channel count)"),
                    c.to_string(),
                ));
            }
            if channels[..k].contains(&c) {
                return Err(StreamError::parameter(
                    "channels",
                    "each channel at most once",
                    format!("channel {c} twice"),
                ));
            }
        }
        Ok(Windower {
            length: length as usize,
            hop,
            source_channels,
            channels,
            buffer: Vec::new(),
            buffer_start: 0,
            next_window: 0,
        })
    }

    /// Frames per window.
    pub fn length(&self) -> usize {
        self.length
    }

    /// Source channel index of each window column.
    pub fn channels(&self) -> &[usize] {
        &self.channels
    }

    /// First frame of window `k`: `round(k × hop)`.
    pub fn window_start(&self, k: u64) -> u64 {
        (k as f64 * self.hop).round() as u64
    }

    /// Appends `chunk` and returns the windows it completes, oldest first.
    ///
    /// Fails when the chunk's channel count is not the source's.
    pub fn push(&mut self, chunk: &Chunk) -> Result<Vec<Window>> {
        if chunk.channels != self.source_channels {
            return Err(StreamError::parameter(
                "chunk",
                format!("{} channels", self.source_channels),
                format!("{} channels", chunk.channels),
            ));
        }
        let width = self.channels.len();
        self.buffer
            .extend_from_slice(&select_channels(chunk, &self.channels));
        let end = self.buffer_start + (self.buffer.len() / width) as u64;
        let mut windows = Vec::new();
        loop {
            let start = self.window_start(self.next_window);
            if start + self.length as u64 > end {
                break;
            }
            let from = (start - self.buffer_start) as usize * width;
            let data = self.buffer[from..from + self.length * width].to_vec();
            windows.push(Window {
                start,
                samples: self.length,
                channels: self.channels.clone(),
                data,
            });
            self.next_window += 1;
        }
        // Frames before the next window's start are no longer needed.
        let keep_from = self.window_start(self.next_window).min(end);
        let drop = (keep_from - self.buffer_start) as usize;
        self.buffer.drain(..drop * width);
        self.buffer_start = keep_from;
        Ok(windows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(frames: usize, channels: usize, first: usize) -> Chunk {
        let data = (first..first + frames)
            .flat_map(|t| (0..channels).map(move |c| (t * 10 + c) as f32))
            .collect();
        Chunk { channels, data }
    }

    #[test]
    fn windows_slide_by_the_hop() {
        let spec = WindowSpec {
            length_s: 0.1,
            hop_s: 0.03,
            channels: Some(vec![2, 0]),
        };
        let mut w = Windower::new(&spec, 3, 100.0).unwrap();
        assert_eq!(w.length(), 10);
        let mut windows = Vec::new();
        let mut at = 0;
        for size in [4, 1, 9, 20, 3] {
            windows.extend(w.push(&ramp(size, 3, at)).unwrap());
            at += size;
        }
        // 37 frames: windows start at 0, 3, 6, ... while start + 10 <= 37.
        let starts: Vec<u64> = windows.iter().map(|w| w.start).collect();
        assert_eq!(starts, vec![0, 3, 6, 9, 12, 15, 18, 21, 24, 27]);
        for win in &windows {
            assert_eq!(win.samples, 10);
            assert_eq!(win.channels, vec![2, 0]);
            let t0 = win.start as f32;
            assert_eq!(win.channel(0)[0], t0 * 10.0 + 2.0);
            assert_eq!(win.channel(1)[9], (t0 + 9.0) * 10.0);
        }
    }

    #[test]
    fn fractional_hops_keep_the_average_rate() {
        // 1/30 s at 250 Hz is 8.33 samples: starts are round(k × 8.333).
        let mut w = Windower::new(&WindowSpec::default(), 1, 250.0).unwrap();
        let windows = w.push(&ramp(250 + 250, 1, 0)).unwrap();
        assert_eq!(windows.len(), 31);
        assert_eq!(windows[1].start, 8);
        assert_eq!(windows[2].start, 17);
        assert_eq!(windows[30].start, 250);
    }

    #[test]
    fn hops_longer_than_the_window_skip_frames() {
        let spec = WindowSpec {
            length_s: 0.02,
            hop_s: 0.05,
            channels: None,
        };
        let mut w = Windower::new(&spec, 1, 100.0).unwrap();
        let mut starts = Vec::new();
        for t in 0..23 {
            starts.extend(w.push(&ramp(1, 1, t)).unwrap().iter().map(|w| w.start));
        }
        assert_eq!(starts, vec![0, 5, 10, 15, 20]);
        assert!(w.buffer.len() <= 3);
    }

    #[test]
    fn bad_specs_are_rejected() {
        let spec = |length_s, hop_s, channels| WindowSpec {
            length_s,
            hop_s,
            channels,
        };
        assert!(Windower::new(&spec(0.001, 0.1, None), 2, 100.0).is_err());
        assert!(Windower::new(&spec(1.0, 0.001, None), 2, 100.0).is_err());
        assert!(Windower::new(&spec(1.0, 0.1, Some(vec![2])), 2, 100.0).is_err());
        assert!(Windower::new(&spec(1.0, 0.1, Some(vec![1, 1])), 2, 100.0).is_err());
        assert!(Windower::new(&spec(1.0, 0.1, Some(vec![])), 2, 100.0).is_err());
        let mut w = Windower::new(&spec(1.0, 0.1, None), 2, 100.0).unwrap();
        assert!(w.push(&ramp(3, 3, 0)).is_err());
    }

    #[test]
    fn channel_lists_parse() {
        let labels: Vec<String> = ["Fp1", "Fp2", "Cz", "O1"].map(String::from).to_vec();
        assert_eq!(parse_channels("0-2", &labels).unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_channels("O1, 0", &labels).unwrap(), vec![3, 0]);
        assert!(parse_channels("4", &labels).is_err());
        assert!(parse_channels("2-1", &labels).is_err());
        let err = parse_channels("Pz", &labels).unwrap_err().to_string();
        assert!(err.contains("Pz") && err.contains("Fp1"), "{err}");
        assert!(parse_channels("", &labels).is_err());
    }
}
