//! Audio for the music route: files decoded to mono `f32` at the rate a model wants, clips cut
//! by time, ds003720's stimulus events, and the small tools the synthetic music subject is
//! made with.
//!
//! - [`decode`]: WAV (PCM 8–32-bit, float), FLAC, MP3 and OGG Vorbis through symphonia (pure
//!   Rust), every channel as `f32` in [-1, 1].
//! - [`mod@resample`]: a polyphase Kaiser-windowed-sinc resampler (scipy's `resample_poly` design;
//!   the anti-aliasing filter is documented there).
//! - [`features`]: low-level acoustic features per TR (band energies, spectral centroid, onset
//!   strength).
//! - [`wav`]: a 16-bit PCM WAV writer.
//!
//! ```no_run
//! use brainrecon_formats::audio::read_audio;
//! let audio = read_audio("blues.00000.wav".as_ref())?.to_mono_at(48_000)?;
//! let clip = audio.clip(10.0, 15.0)?; // 15 s from 10 s on
//! # Ok::<(), brainrecon_formats::DataError>(())
//! ```

pub mod decode;
pub mod features;
pub mod resample;
pub mod wav;

use crate::error::{DataError, Result};
use std::path::{Path, PathBuf};

pub use decode::{read_channels, read_header, AudioHeader, Decoded};
pub use resample::{resample, Resampler};

/// Mono audio: the file's channels averaged.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Samples in [-1, 1] (decoded files; resampling may overshoot slightly).
    pub samples: Vec<f32>,
    /// Samples per second.
    pub rate: u32,
    /// Channels the file had before they were averaged.
    pub channels_in_file: usize,
    /// The file it came from (named in errors about it).
    pub source: PathBuf,
}

/// Reads an audio file as mono (channels averaged) at its own rate. Errors name the file: one
/// that does not decode ([`DataError::Format`]), one without a single frame of audio
/// ([`DataError::Invalid`], field `samples`).
pub fn read_audio(path: &Path) -> Result<Audio> {
    let decoded = read_channels(path)?;
    Ok(Audio {
        samples: decoded.mono(),
        rate: decoded.rate,
        channels_in_file: decoded.channels.len(),
        source: path.to_path_buf(),
    })
}

impl Audio {
    /// Seconds of audio.
    pub fn duration(&self) -> f64 {
        self.samples.len() as f64 / self.rate as f64
    }

    /// The same audio at `rate` samples per second ([`resample()`]; a copy when the rate is
    /// already `rate`).
    pub fn to_mono_at(&self, rate: u32) -> Result<Audio> {
        if rate == 0 {
            return Err(DataError::Usage(
                "sample rate: expected a positive number of samples per second, found 0".into(),
            ));
        }
        // The output is sized before it is made: a rate pair can multiply the length.
        let out_len = (self.samples.len() as u64)
            .saturating_mul(rate as u64)
            .div_ceil(self.rate.max(1) as u64);
        crate::limits::array_bytes(
            &self.source,
            &format!("samples at {rate} Hz"),
            &[out_len],
            4,
        )?;
        Ok(Audio {
            samples: resample(&self.samples, self.rate, rate),
            rate,
            channels_in_file: self.channels_in_file,
            source: self.source.clone(),
        })
    }

    /// The `duration_s` seconds from `start_s` on: samples `round(start_s · rate)` and the
    /// `round(duration_s · rate)` after it. A clip that does not lie inside the audio is an
    /// error naming the file, the clip and the audio's length (a clip may end at most half a
    /// sample past the end, which rounding cannot tell from the end itself).
    pub fn clip(&self, start_s: f64, duration_s: f64) -> Result<Audio> {
        self.clip_padded(start_s, duration_s, 0.0)
    }

    /// [`Audio::clip`], except that a clip ending at most `max_pad_s` seconds past the end of
    /// the audio is cut too, its missing tail filled with silence (zeros: what a player gives
    /// after the end of a file). Past that it is the same error, which names the tolerance.
    pub fn clip_padded(&self, start_s: f64, duration_s: f64, max_pad_s: f64) -> Result<Audio> {
        let rate = self.rate as f64;
        let what = || format!("{start_s} s + {duration_s} s");
        if !(start_s.is_finite() && start_s >= 0.0 && duration_s.is_finite() && duration_s > 0.0) {
            return Err(DataError::invalid(
                &self.source,
                "clip",
                "a start ≥ 0 s and a duration > 0 s",
                what(),
            ));
        }
        let first = (start_s * rate).round() as usize;
        let len = (duration_s * rate).round() as usize;
        let missing = samples_past_end(self.samples.len(), self.rate, start_s, duration_s);
        if missing > pad_allowance(self.rate, max_pad_s) {
            let tolerance = if max_pad_s > 0.0 {
                format!(", or ending at most {max_pad_s} s past its end")
            } else {
                String::new()
            };
            return Err(DataError::invalid(
                &self.source,
                "clip",
                format!(
                    "a clip inside the audio's {:.3} s ({} samples at {} Hz){tolerance}",
                    self.duration(),
                    self.samples.len(),
                    self.rate
                ),
                format!(
                    "{} (ends at {:.3} s, {:.3} s past the end)",
                    what(),
                    start_s + duration_s,
                    start_s + duration_s - self.duration()
                ),
            ));
        }
        let from = first.min(self.samples.len());
        let to = (first + len).min(self.samples.len());
        let mut samples = Vec::with_capacity(len);
        samples.extend_from_slice(&self.samples[from..to]);
        samples.resize(len, 0.0);
        Ok(Audio {
            samples,
            rate: self.rate,
            channels_in_file: self.channels_in_file,
            source: self.source.clone(),
        })
    }
}

/// Samples that the clip of `duration_s` seconds from `start_s` needs past the end of
/// `frames` samples at `rate` Hz (0 when it lies inside), rounded as [`Audio::clip`] cuts.
/// Taking a length, it also tells from a file's header alone whether a clip fits.
pub fn samples_past_end(frames: usize, rate: u32, start_s: f64, duration_s: f64) -> usize {
    let rate = rate as f64;
    let first = (start_s * rate).round() as usize;
    let len = (duration_s * rate).round() as usize;
    (first + len).saturating_sub(frames)
}

/// Whole samples that `max_pad_s` seconds allow at `rate` Hz (0 for none).
pub fn pad_allowance(rate: u32, max_pad_s: f64) -> usize {
    if max_pad_s > 0.0 {
        (max_pad_s * rate as f64).round() as usize
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize, rate: u32) -> Audio {
        Audio {
            samples: (0..n).map(|i| i as f32).collect(),
            rate,
            channels_in_file: 2,
            source: PathBuf::from("ramp.wav"),
        }
    }

    #[test]
    fn clips_cut_by_time_and_refuse_the_outside() {
        let audio = ramp(1000, 100); // 10 s
        let clip = audio.clip(2.5, 1.5).unwrap();
        assert_eq!(clip.samples.len(), 150);
        assert_eq!(clip.samples[0], 250.0);
        assert_eq!(audio.clip(0.0, 10.0).unwrap().samples.len(), 1000);
        let err = audio.clip(9.0, 1.5).unwrap_err().to_string();
        assert!(
            err.contains("ramp.wav") && err.contains("clip") && err.contains("past the end"),
            "{err}"
        );
        assert!(err.contains("10.000 s"), "{err}");
        assert!(audio.clip(-1.0, 1.0).is_err());
        assert!(audio.clip(1.0, 0.0).is_err());
        assert!(audio.clip(f64::NAN, 1.0).is_err());
    }

    #[test]
    fn resampling_keeps_the_source_and_refuses_rate_zero() {
        let audio = ramp(441, 44_100);
        let half = audio.to_mono_at(22_050).unwrap();
        assert_eq!((half.rate, half.samples.len()), (22_050, 221));
        assert_eq!(half.source, audio.source);
        assert_eq!(audio.to_mono_at(44_100).unwrap(), audio);
        assert!(audio.to_mono_at(0).is_err());
    }
}
