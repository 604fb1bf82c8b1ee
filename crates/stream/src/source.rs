//! The [`Source`] trait, the [`Chunk`] it yields, and [`Recording`], a whole recording held in
//! memory (what the file readers return).

use crate::error::{check_rate, Result, StreamError};
use std::path::{Path, PathBuf};

/// A block of consecutive frames: `frames × channels` f32 samples in physical units, row-major
/// (interleaved: `data[t * channels + c]` is channel `c` at frame `t`).
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// Number of channels; `data.len()` is a multiple of it.
    pub channels: usize,
    /// `frames × channels` samples, row-major.
    pub data: Vec<f32>,
}

impl Chunk {
    /// A chunk of `data.len() / channels` frames.
    ///
    /// Fails when `channels` is 0 or `data.len()` is not a multiple of it.
    pub fn new(channels: usize, data: Vec<f32>) -> Result<Self> {
        if channels == 0 || data.len() % channels != 0 {
            return Err(StreamError::parameter(
                "chunk",
                "a positive channel count dividing the sample count",
                format!("{} samples for {channels} channels", data.len()),
            ));
        }
        Ok(Chunk { channels, data })
    }

    /// Number of frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.data.len().checked_div(self.channels).unwrap_or(0)
    }

    /// Frame `t`: one sample per channel.
    pub fn frame(&self, t: usize) -> &[f32] {
        &self.data[t * self.channels..(t + 1) * self.channels]
    }
}

/// A multichannel time series read in chunks.
///
/// `next_chunk` returns `Ok(None)` once the source has ended (end of file, closed socket);
/// a source that has ended keeps returning `Ok(None)`. Errors name the file or stream.
pub trait Source {
    /// Channels per frame; every chunk has this many.
    fn channels(&self) -> usize;

    /// Frames per second.
    fn rate(&self) -> f64;

    /// One label per channel; `ch0`, `ch1`, … unless the format stores names.
    fn labels(&self) -> Vec<String> {
        default_labels(self.channels())
    }

    /// The next `1..=max_frames` frames (`max_frames` of 0 is taken as 1), or `None` at the
    /// end of the stream.
    fn next_chunk(&mut self, max_frames: usize) -> Result<Option<Chunk>>;
}

impl<S: Source + ?Sized> Source for Box<S> {
    fn channels(&self) -> usize {
        (**self).channels()
    }
    fn rate(&self) -> f64 {
        (**self).rate()
    }
    fn labels(&self) -> Vec<String> {
        (**self).labels()
    }
    fn next_chunk(&mut self, max_frames: usize) -> Result<Option<Chunk>> {
        (**self).next_chunk(max_frames)
    }
}

/// `ch0`, `ch1`, … `ch{channels - 1}`.
pub fn default_labels(channels: usize) -> Vec<String> {
    (0..channels).map(|c| format!("ch{c}")).collect()
}

/// Reads a source to its end and returns every frame as one [`Recording`].
pub fn read_all(source: &mut dyn Source, name: &Path) -> Result<Recording> {
    let channels = source.channels();
    let mut data = Vec::new();
    while let Some(chunk) = source.next_chunk(4096)? {
        data.extend_from_slice(&chunk.data);
    }
    Recording::new(name, source.rate(), source.labels(), data)?.with_channels_checked(channels)
}

/// A whole recording in memory, replayed as a [`Source`] from its first frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    path: PathBuf,
    rate: f64,
    labels: Vec<String>,
    /// `frames × channels`, row-major.
    data: Vec<f32>,
    position: usize,
}

impl Recording {
    /// A recording of `data.len() / labels.len()` frames (`data` row-major, frames × channels)
    /// read from `path` (used in messages only).
    ///
    /// Fails when there are no labels, the rate is not positive, or `data.len()` is not a
    /// multiple of the channel count.
    pub fn new(
        path: impl AsRef<Path>,
        rate: f64,
        labels: Vec<String>,
        data: Vec<f32>,
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        check_rate("rate", rate)?;
        let channels = labels.len();
        if channels == 0 {
            return Err(StreamError::invalid(
                &path,
                "channels",
                "at least 1 channel",
                "0",
            ));
        }
        if data.len() % channels != 0 {
            return Err(StreamError::invalid(
                &path,
                "samples",
                format!("a multiple of {channels} (one per channel per frame)"),
                data.len().to_string(),
            ));
        }
        Ok(Recording {
            path,
            rate,
            labels,
            data,
            position: 0,
        })
    }

    fn with_channels_checked(self, channels: usize) -> Result<Self> {
        if self.labels.len() == channels {
            Ok(self)
        } else {
            Err(StreamError::invalid(
                &self.path,
                "labels",
                format!("{channels} labels"),
                self.labels.len().to_string(),
            ))
        }
    }

    /// The file this recording was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of frames.
    pub fn frames(&self) -> usize {
        self.data.len() / self.labels.len()
    }

    /// All samples, `frames × channels`, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Channel `c` as a contiguous series of `frames` samples.
    pub fn channel(&self, c: usize) -> Vec<f32> {
        let channels = self.labels.len();
        self.data
            .iter()
            .skip(c)
            .step_by(channels)
            .copied()
            .collect()
    }

    /// Starts the replay again from the first frame.
    pub fn rewind(&mut self) {
        self.position = 0;
    }
}

impl Source for Recording {
    fn channels(&self) -> usize {
        self.labels.len()
    }

    fn rate(&self) -> f64 {
        self.rate
    }

    fn labels(&self) -> Vec<String> {
        self.labels.clone()
    }

    fn next_chunk(&mut self, max_frames: usize) -> Result<Option<Chunk>> {
        let channels = self.labels.len();
        let left = self.frames() - self.position;
        if left == 0 {
            return Ok(None);
        }
        let take = left.min(max_frames.max(1));
        let start = self.position * channels;
        let data = self.data[start..start + take * channels].to_vec();
        self.position += take;
        Ok(Some(Chunk { channels, data }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_replays_in_chunks() {
        let mut r = Recording::new(
            "mem",
            10.0,
            default_labels(2),
            (0..10).map(|v| v as f32).collect(),
        )
        .unwrap();
        assert_eq!(r.frames(), 5);
        assert_eq!(r.channel(1), vec![1.0, 3.0, 5.0, 7.0, 9.0]);
        let a = r.next_chunk(2).unwrap().unwrap();
        assert_eq!(a.frames(), 2);
        assert_eq!(a.frame(1), &[2.0, 3.0]);
        let b = r.next_chunk(10).unwrap().unwrap();
        assert_eq!(b.frames(), 3);
        assert!(r.next_chunk(10).unwrap().is_none());
        assert!(r.next_chunk(10).unwrap().is_none());
        r.rewind();
        assert_eq!(r.next_chunk(0).unwrap().unwrap().frames(), 1);
    }

    #[test]
    fn recording_rejects_ragged_data() {
        let err = Recording::new("x.csv", 10.0, default_labels(3), vec![0.0; 4]).unwrap_err();
        assert!(err.to_string().contains("x.csv"), "{err}");
        assert!(Recording::new("x", 0.0, default_labels(1), vec![]).is_err());
        assert!(Recording::new("x", 1.0, vec![], vec![]).is_err());
    }
}
