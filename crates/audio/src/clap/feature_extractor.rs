//! CLAP's mel front end as transformers' `ClapFeatureExtractor` computes it (with
//! `audio_utils.spectrogram` and `mel_filter_bank`): a centred, reflect-padded STFT with a
//! periodic Hann window of `fft_window_size` (no zero padding), the power spectrum, a triangular
//! mel filter bank (HTK scale without normalisation for `"fusion"`, Slaney scale and area
//! normalisation for `"rand_trunc"`), floored at 1e-10 and turned to dB (`10·log10`, no
//! `top_db` clipping: transformers never passes it). The arithmetic is numpy's: f64
//! throughout, the complex spectrum rounded to complex64 as transformers stores it, the dB
//! values rounded to f32.
//!
//! Clips longer than `max_length_s` are cropped at random (`"rand_trunc"`) or, with
//! `"fusion"`, turned into four channels: the whole mel spectrogram shrunk bilinearly to the
//! crop length, then one random crop from each third of the possible offsets. Shorter clips are
//! padded (`"repeatpad"`: tiled whole, then zeros; `"repeat"`: tiled and cut; `"pad"`: zeros)
//! and, with `"fusion"`, repeated to four identical channels. A fusion batch without a longer
//! clip gets one clip flagged as longer at random. Every random choice comes from a
//! [`CropChoices`]: a seeded ChaCha8 stream ([`SeededChoices`]) or given indices
//! ([`GivenChoices`], to reproduce a reference run).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use brainrecon_language::checkpoint::ConfigFields;
use brainrecon_nn::weights::read_json;
use brainrecon_nn::{ModelError, Result};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use serde_json::Value;

const WHAT: &str = "CLAP feature extractor config (preprocessor_config.json)";

/// How clips longer than the maximum length are handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truncation {
    /// Four channels: the shrunk whole and three random crops (HTK mel filters).
    Fusion,
    /// One random crop of the waveform (Slaney mel filters).
    RandTrunc,
}

/// How clips shorter than the maximum length are padded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// Tiled a whole number of times, then zero padded.
    RepeatPad,
    /// Tiled and cut to the maximum length.
    Repeat,
    /// Zero padded.
    Pad,
}

/// `preprocessor_config.json` of a CLAP checkpoint (`ClapFeatureExtractor`'s arguments).
#[derive(Clone, Debug, PartialEq)]
pub struct ClapFeatureExtractorConfig {
    /// Mel bins (`feature_size`).
    pub feature_size: usize,
    /// Sample rate the extractor expects, Hz (48,000).
    pub sampling_rate: u32,
    /// STFT hop, in samples (480: 10 ms at 48 kHz).
    pub hop_length: usize,
    /// Clip length the model sees, seconds (10); longer clips are cropped, shorter padded.
    pub max_length_s: usize,
    /// STFT frame and window length.
    pub fft_window_size: usize,
    /// Lowest mel filter edge, Hz.
    pub frequency_min: f64,
    /// Highest mel filter edge, Hz.
    pub frequency_max: f64,
    /// How clips longer than `max_length_s` are cut.
    pub truncation: Truncation,
    /// How clips shorter than `max_length_s` are padded.
    pub padding: Padding,
}

impl Default for ClapFeatureExtractorConfig {
    /// transformers' `ClapFeatureExtractor()` defaults.
    fn default() -> Self {
        ClapFeatureExtractorConfig {
            feature_size: 64,
            sampling_rate: 48_000,
            hop_length: 480,
            max_length_s: 10,
            fft_window_size: 1024,
            frequency_min: 0.0,
            frequency_max: 14_000.0,
            truncation: Truncation::Fusion,
            padding: Padding::RepeatPad,
        }
    }
}

impl ClapFeatureExtractorConfig {
    /// Reads `preprocessor_config.json` ([`ClapFeatureExtractorConfig::from_value`]).
    /// Errors: the file unreadable or not JSON, a field of the wrong type or out of range, each
    /// naming the file and field.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_value(
            &read_json::<Value>(path, "CLAP feature extractor config")?,
            path,
        )
    }

    /// Parses `preprocessor_config.json`; `path` names it in errors. Absent fields take
    /// transformers' defaults.
    pub fn from_value(value: &Value, path: &Path) -> Result<Self> {
        let f = ConfigFields::new(value, path, WHAT)?;
        let d = Self::default();
        let size = |key: &'static str, default: usize| -> Result<usize> {
            match f.opt_usize(&[key])? {
                None => Ok(default),
                Some(0) => Err(f.error(format!("field `{key}` is 0, expected a positive number"))),
                Some(n) => Ok(n),
            }
        };
        let truncation = match f.string_or(&["truncation"], "fusion")?.as_str() {
            "fusion" => Truncation::Fusion,
            "rand_trunc" => Truncation::RandTrunc,
            other => {
                return Err(f.error(format!(
                    "field `truncation` is \"{other}\", expected \"fusion\" or \"rand_trunc\""
                )))
            }
        };
        let padding = match f.string_or(&["padding"], "repeatpad")?.as_str() {
            "repeatpad" => Padding::RepeatPad,
            "repeat" => Padding::Repeat,
            "pad" => Padding::Pad,
            other => {
                return Err(f.error(format!(
                    "field `padding` is \"{other}\", expected \"repeatpad\", \"repeat\" or \
                     \"pad\""
                )))
            }
        };
        let c = ClapFeatureExtractorConfig {
            feature_size: size("feature_size", d.feature_size)?,
            sampling_rate: size("sampling_rate", d.sampling_rate as usize)? as u32,
            hop_length: size("hop_length", d.hop_length)?,
            max_length_s: size("max_length_s", d.max_length_s)?,
            fft_window_size: size("fft_window_size", d.fft_window_size)?,
            frequency_min: f.f64_or(&["frequency_min"], d.frequency_min)?,
            frequency_max: f.f64_or(&["frequency_max"], d.frequency_max)?,
            truncation,
            padding,
        };
        if !(0.0 <= c.frequency_min && c.frequency_min <= c.frequency_max) {
            return Err(f.error(format!(
                "fields `frequency_min` {} and `frequency_max` {}: expected 0 ≤ min ≤ max",
                c.frequency_min, c.frequency_max
            )));
        }
        if c.fft_window_size < 2 {
            return Err(f.error("field `fft_window_size` must be at least 2".into()));
        }
        c.check_sizes().map_err(|m| f.error(m))?;
        Ok(c)
    }

    /// Bounds the sizes (hostile files): clips are padded to `max_samples`, and the mel filter
    /// bank is `(fft_window_size / 2 + 1) × feature_size` floats.
    fn check_sizes(&self) -> std::result::Result<(), String> {
        use brainrecon_nn::config_bounds::{finite_in, positive};
        positive("feature_size", self.feature_size, 4096)?;
        positive("sampling_rate", self.sampling_rate as usize, 768_000)?;
        positive("fft_window_size", self.fft_window_size, 65_536)?;
        positive(
            "hop_length",
            self.hop_length,
            self.fft_window_size.max(1 << 16),
        )?;
        positive("max_length_s", self.max_length_s, 3600)?;
        finite_in("frequency_min", self.frequency_min, 0.0, 1e6)?;
        finite_in("frequency_max", self.frequency_max, 0.0, 1e6)?;
        // At most 2^28 samples (1 GiB of f32) per clip.
        if self.max_samples() > 1 << 28 {
            return Err(format!(
                "max_length_s: expected at most {} s at sampling_rate {}, found {}",
                (1usize << 28) / self.sampling_rate as usize,
                self.sampling_rate,
                self.max_length_s
            ));
        }
        Ok(())
    }

    /// `max_length_s · sampling_rate` samples.
    pub fn max_samples(&self) -> usize {
        self.max_length_s * self.sampling_rate as usize
    }

    /// Mel frames of a clip of the maximum length (`max_samples / hop + 1`).
    pub fn max_frames(&self) -> usize {
        self.max_samples() / self.hop_length + 1
    }
}

/// The mel frequency scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MelScale {
    /// HTK's: `2595 · log10(1 + f / 700)`.
    Htk,
    /// Slaney's (librosa's default): linear below 1 kHz, logarithmic above.
    Slaney,
}

/// transformers' `hertz_to_mel`.
pub fn hertz_to_mel(freq: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 2595.0 * (1.0 + freq / 700.0).log10(),
        MelScale::Slaney => {
            let logstep = 27.0 / 6.4f64.ln();
            if freq >= 1000.0 {
                15.0 + (freq / 1000.0).ln() * logstep
            } else {
                3.0 * freq / 200.0
            }
        }
    }
}

/// transformers' `mel_to_hertz`.
pub fn mel_to_hertz(mel: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 700.0 * (10f64.powf(mel / 2595.0) - 1.0),
        MelScale::Slaney => {
            let logstep = 6.4f64.ln() / 27.0;
            if mel >= 15.0 {
                1000.0 * (logstep * (mel - 15.0)).exp()
            } else {
                200.0 * mel / 3.0
            }
        }
    }
}

/// numpy's `linspace(start, stop, n)`.
fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![start];
    }
    let step = (stop - start) / (n - 1) as f64;
    let mut v: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
    v[n - 1] = stop;
    v
}

/// transformers' `mel_filter_bank` (triangles in Hz): `[bins][mels]` row-major, f64.
/// `slaney_norm` divides each triangle by its width (`norm="slaney"`).
pub fn mel_filter_bank(
    num_frequency_bins: usize,
    num_mel_filters: usize,
    min_frequency: f64,
    max_frequency: f64,
    sampling_rate: u32,
    slaney_norm: bool,
    scale: MelScale,
) -> Vec<f64> {
    let mel_min = hertz_to_mel(min_frequency, scale);
    let mel_max = hertz_to_mel(max_frequency, scale);
    let filter_freqs: Vec<f64> = linspace(mel_min, mel_max, num_mel_filters + 2)
        .into_iter()
        .map(|m| mel_to_hertz(m, scale))
        .collect();
    // numpy: linspace(0, sampling_rate // 2, bins)
    let fft_freqs = linspace(0.0, (sampling_rate / 2) as f64, num_frequency_bins);
    let diff: Vec<f64> = filter_freqs.windows(2).map(|w| w[1] - w[0]).collect();
    let mut bank = vec![0f64; num_frequency_bins * num_mel_filters];
    for (k, &f) in fft_freqs.iter().enumerate() {
        for m in 0..num_mel_filters {
            let down = -(filter_freqs[m] - f) / diff[m];
            let up = (filter_freqs[m + 2] - f) / diff[m + 1];
            let mut v = 0f64.max(down.min(up));
            if slaney_norm {
                v *= 2.0 / (filter_freqs[m + 2] - filter_freqs[m]);
            }
            bank[k * num_mel_filters + m] = v;
        }
    }
    bank
}

/// numpy's `hanning(n + 1)[:-1]`: the periodic Hann window.
fn periodic_hann(n: usize) -> Vec<f64> {
    let m = n as f64;
    (0..n)
        .map(|k| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * k as f64 / m).cos())
        .collect()
}

/// numpy's `pad(mode="reflect")` index: the mirror image (edge not repeated), periodic for
/// pads longer than the signal.
fn reflect_index(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    if m >= n as isize {
        (period - m) as usize
    } else {
        m as usize
    }
}

/// Where random choices come from.
pub trait CropChoices {
    /// An index in `0..n` (`n` ≥ 1); `what` says what is chosen, for errors.
    fn choose(&mut self, n: usize, what: &str) -> Result<usize>;
}

/// Choices from a seeded ChaCha8 stream.
#[derive(Clone, Debug)]
pub struct SeededChoices(ChaCha8Rng);

impl SeededChoices {
    /// A stream seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SeededChoices(ChaCha8Rng::seed_from_u64(seed))
    }
}

impl CropChoices for SeededChoices {
    fn choose(&mut self, n: usize, _what: &str) -> Result<usize> {
        Ok(self.0.gen_range(0..n.max(1)))
    }
}

/// Choices given in advance, in the order the extractor asks (per clip: the crop offset of
/// `"rand_trunc"`, or the three crop indices of `"fusion"`; then, for a fusion batch without
/// a longer clip, the clip flagged as longer).
#[derive(Clone, Debug, Default)]
pub struct GivenChoices(VecDeque<usize>);

impl GivenChoices {
    /// Choices to hand out in order.
    pub fn new(choices: impl IntoIterator<Item = usize>) -> Self {
        GivenChoices(choices.into_iter().collect())
    }

    /// Choices not asked for.
    pub fn remaining(&self) -> usize {
        self.0.len()
    }
}

impl CropChoices for GivenChoices {
    fn choose(&mut self, n: usize, what: &str) -> Result<usize> {
        let c = self.0.pop_front().ok_or_else(|| {
            ModelError::Invalid(format!("no given choice left for {what} (0..{n})"))
        })?;
        if c >= n {
            return Err(ModelError::Invalid(format!(
                "the given choice {c} for {what} is outside 0..{n}"
            )));
        }
        Ok(c)
    }
}

/// One clip's features: `channels` mel spectrograms [T, F], row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipFeatures {
    /// [channels, T, F] values.
    pub mel: Vec<f32>,
    /// Spectrograms: 4 with `"fusion"` (the shrunk whole clip and three crops), 1 with
    /// `"rand_trunc"`.
    pub channels: usize,
    /// Time frames per spectrogram (`T`).
    pub frames: usize,
    /// Mel bins per frame (`F`).
    pub mels: usize,
    /// Longer than the maximum length (fusion crops were taken).
    pub longer: bool,
}

/// A batch ready for the audio tower.
#[derive(Clone, Debug)]
pub struct ClapFeatures {
    /// [B, C, T, F] (C = 4 with `"fusion"`, 1 with `"rand_trunc"`), f32.
    pub input_features: Tensor,
    /// Per clip: fuse its crops (the fused model's `is_longer`).
    pub is_longer: Vec<bool>,
}

/// transformers' `ClapFeatureExtractor`.
#[derive(Clone)]
pub struct ClapFeatureExtractor {
    /// The settings the extractor was built with.
    pub config: ClapFeatureExtractorConfig,
    /// HTK filters, no normalisation ("fusion"): `[bins][mels]`.
    pub mel_filters: Vec<f64>,
    /// Slaney filters and normalisation ("rand_trunc"): `[bins][mels]`.
    pub mel_filters_slaney: Vec<f64>,
    window: Vec<f64>,
    fft: Arc<dyn Fft<f64>>,
}

impl std::fmt::Debug for ClapFeatureExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClapFeatureExtractor")
            .field("config", &self.config)
            .finish()
    }
}

impl ClapFeatureExtractor {
    /// Builds the mel filter banks and the STFT window for `config`.
    pub fn new(config: ClapFeatureExtractorConfig) -> Self {
        let bins = config.fft_window_size / 2 + 1;
        let bank = |slaney: bool, scale| {
            mel_filter_bank(
                bins,
                config.feature_size,
                config.frequency_min,
                config.frequency_max,
                config.sampling_rate,
                slaney,
                scale,
            )
        };
        ClapFeatureExtractor {
            mel_filters: bank(false, MelScale::Htk),
            mel_filters_slaney: bank(true, MelScale::Slaney),
            window: periodic_hann(config.fft_window_size),
            fft: FftPlanner::new().plan_fft_forward(config.fft_window_size),
            config,
        }
    }

    /// Loads `preprocessor_config.json` from a model folder.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Ok(Self::new(ClapFeatureExtractorConfig::from_file(
            &dir.join("preprocessor_config.json"),
        )?))
    }

    /// The log-mel spectrogram of a waveform with the given filters: [frames, mels] row-major
    /// (`_np_extract_fbank_features`).
    pub fn log_mel(&self, waveform: &[f32], filters: &[f64]) -> Vec<f32> {
        let n = self.config.fft_window_size;
        let hop = self.config.hop_length;
        let mels = self.config.feature_size;
        let bins = n / 2 + 1;
        let half = (n / 2) as isize;
        let len = waveform.len();
        let padded_len = len + n; // centred: n/2 on each side
        let frames = if padded_len >= n {
            1 + (padded_len - n) / hop
        } else {
            0
        };
        let mut out = Vec::with_capacity(frames * mels);
        let mut buffer = vec![Complex::new(0f64, 0f64); n];
        let mut power = vec![0f64; bins];
        // Each triangular filter is zero outside a few bins; skipping those adds only +0.0
        // terms less (powers and weights are ≥ 0), so the sums are bit-identical.
        let support: Vec<std::ops::Range<usize>> = (0..mels)
            .map(|m| {
                let nonzero = |k: &usize| filters[k * mels + m] != 0.0;
                let first = (0..bins).find(nonzero).unwrap_or(0);
                let last = (0..bins).rev().find(nonzero).map_or(0, |k| k + 1);
                first..last.max(first)
            })
            .collect();
        for t in 0..frames {
            let start = (t * hop) as isize - half;
            for (i, b) in buffer.iter_mut().enumerate() {
                let x = waveform[reflect_index(start + i as isize, len)] as f64;
                *b = Complex::new(x * self.window[i], 0.0);
            }
            self.fft.process(&mut buffer);
            for (p, c) in power.iter_mut().zip(&buffer) {
                // transformers stores the spectrum as complex64
                let (re, im) = (c.re as f32 as f64, c.im as f32 as f64);
                *p = re * re + im * im;
            }
            for (m, range) in support.iter().enumerate() {
                let mut acc = 0f64;
                for k in range.clone() {
                    acc += filters[k * mels + m] * power[k];
                }
                out.push((10.0 * acc.max(1e-10).log10()) as f32);
            }
        }
        out
    }

    /// One clip through `_get_input_mel` with the config's truncation and padding.
    pub fn extract_clip(
        &self,
        waveform: &[f32],
        choices: &mut dyn CropChoices,
    ) -> Result<ClipFeatures> {
        let max = self.config.max_samples();
        let mels = self.config.feature_size;
        let fusion = self.config.truncation == Truncation::Fusion;
        if waveform.len() > max {
            if !fusion {
                let offset = choices.choose(waveform.len() - max + 1, "the crop offset")?;
                let mel = self.log_mel(&waveform[offset..offset + max], &self.mel_filters_slaney);
                return Ok(clip(mel, 1, mels, true));
            }
            return self.fusion_crops(waveform, choices);
        }
        let padded = self.pad(waveform);
        if fusion {
            let mel = self.log_mel(&padded, &self.mel_filters);
            let frames = mel.len() / mels;
            let mut four = Vec::with_capacity(4 * mel.len());
            for _ in 0..4 {
                four.extend_from_slice(&mel);
            }
            return Ok(ClipFeatures {
                mel: four,
                channels: 4,
                frames,
                mels,
                longer: false,
            });
        }
        let mel = self.log_mel(&padded, &self.mel_filters_slaney);
        Ok(clip(mel, 1, mels, false))
    }

    /// A clip of at most the maximum length padded to it.
    fn pad(&self, waveform: &[f32]) -> Vec<f32> {
        let max = self.config.max_samples();
        let len = waveform.len();
        let mut out: Vec<f32> = match self.config.padding {
            _ if len == max => waveform.to_vec(),
            Padding::Pad => waveform.to_vec(),
            Padding::RepeatPad => waveform.repeat(max / len),
            Padding::Repeat => {
                let mut v = waveform.repeat(max / len + 1);
                v.truncate(max);
                v
            }
        };
        out.resize(max, 0.0);
        out
    }

    /// `"fusion"` of a longer clip: the whole mel shrunk to the crop length, then a crop from
    /// each third of the offsets (`_random_mel_fusion`).
    fn fusion_crops(
        &self,
        waveform: &[f32],
        choices: &mut dyn CropChoices,
    ) -> Result<ClipFeatures> {
        let mels = self.config.feature_size;
        let mel = self.log_mel(waveform, &self.mel_filters);
        let total = mel.len() / mels;
        let chunk = self.config.max_frames();
        if chunk >= total {
            // longer than max_length by less than a hop: the whole mel, four times
            let mut four = Vec::with_capacity(4 * mel.len());
            for _ in 0..4 {
                four.extend_from_slice(&mel);
            }
            return Ok(ClipFeatures {
                mel: four,
                channels: 4,
                frames: total,
                mels,
                longer: false,
            });
        }
        if mels != 64 {
            return Err(ModelError::Invalid(format!(
                "fusion of a clip longer than max_length_s needs 64 mel bins \
                 (transformers resizes the whole spectrogram to 64 bins), but feature_size is \
                 {mels}"
            )));
        }
        let mut out = shrink_time(&mel, total, mels, chunk);
        for (k, (start, len)) in thirds(total - chunk + 1).into_iter().enumerate() {
            let what = ["the front crop", "the middle crop", "the back crop"][k];
            let offset = start + choices.choose(len, what)?;
            out.extend_from_slice(&mel[offset * mels..(offset + chunk) * mels]);
        }
        Ok(ClipFeatures {
            mel: out,
            channels: 4,
            frames: chunk,
            mels,
            longer: true,
        })
    }

    /// `feature_extractor(waveforms, sampling_rate=...)`: every clip with the config's
    /// truncation and padding, stacked [B, C, T, F]; with `"fusion"` and no longer clip, one
    /// clip chosen at random is flagged as longer.
    pub fn extract(
        &self,
        waveforms: &[&[f32]],
        sampling_rate: u32,
        choices: &mut dyn CropChoices,
        device: &Device,
    ) -> Result<ClapFeatures> {
        if sampling_rate != self.config.sampling_rate {
            return Err(ModelError::Invalid(format!(
                "audio at {sampling_rate} Hz given to a CLAP feature extractor for {} Hz; \
                 resample it first",
                self.config.sampling_rate
            )));
        }
        if waveforms.is_empty() {
            return Err(ModelError::Invalid("no audio clips to extract".into()));
        }
        let mut clips = Vec::with_capacity(waveforms.len());
        for (i, w) in waveforms.iter().enumerate() {
            if w.is_empty() {
                return Err(ModelError::Invalid(format!(
                    "audio clip {i} has no samples"
                )));
            }
            if let Some(j) = w.iter().position(|v| !v.is_finite()) {
                return Err(ModelError::Invalid(format!(
                    "audio clip {i} has a non-finite sample at {j}"
                )));
            }
            clips.push(self.extract_clip(w, choices)?);
        }
        let mut is_longer: Vec<bool> = clips.iter().map(|c| c.longer).collect();
        if self.config.truncation == Truncation::Fusion && !is_longer.contains(&true) {
            let i = choices.choose(clips.len(), "the clip flagged as longer")?;
            is_longer[i] = true;
        }
        let (c, t, f) = (clips[0].channels, clips[0].frames, clips[0].mels);
        let data: Vec<f32> = clips.into_iter().flat_map(|c| c.mel).collect();
        Ok(ClapFeatures {
            input_features: Tensor::from_vec(data, (waveforms.len(), c, t, f), device)?,
            is_longer,
        })
    }
}

fn clip(mel: Vec<f32>, channels: usize, mels: usize, longer: bool) -> ClipFeatures {
    let frames = mel.len() / (channels * mels);
    ClipFeatures {
        mel,
        channels,
        frames,
        mels,
        longer,
    }
}

/// numpy's `array_split(range(n), 3)` as (start, length), with an empty second or third part
/// replaced by `[0]` as transformers does.
fn thirds(n: usize) -> [(usize, usize); 3] {
    let (q, r) = (n / 3, n % 3);
    let lens = [q + usize::from(r > 0), q + usize::from(r > 1), q];
    let starts = [0, lens[0], lens[0] + lens[1]];
    let mut out = [(0, 0); 3];
    for k in 0..3 {
        out[k] = if lens[k] == 0 {
            (0, 1)
        } else {
            (starts[k], lens[k])
        };
    }
    out
}

/// PyTorch's bilinear `interpolate(align_corners=False)` of a [T, F] f32 image to [out, F]
/// (the width is unchanged, so only the time axis is interpolated), in f32 as PyTorch does:
/// its source index is one fused multiply-add, whose single rounding matters here (the weight
/// is the index's fraction, and an index near 60 in f32 is only good to 4e-6).
fn shrink_time(mel: &[f32], frames: usize, mels: usize, out: usize) -> Vec<f32> {
    let scale = frames as f32 / out as f32;
    let mut v = Vec::with_capacity(out * mels);
    for t in 0..out {
        let src = scale.mul_add(t as f32 + 0.5, -0.5).max(0.0);
        let i0 = src as usize;
        let i1 = if i0 < frames - 1 { i0 + 1 } else { i0 };
        let l1 = src - i0 as f32;
        let l0 = 1.0 - l1;
        let (r0, r1) = (&mel[i0 * mels..][..mels], &mel[i1 * mels..][..mels]);
        v.extend(r0.iter().zip(r1).map(|(&a, &b)| l0 * a + l1 * b));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_padding_is_numpys() {
        // np.pad([0, 1, 2, 3], 5, mode="reflect") = [1 2 3 2 1 | 0 1 2 3 | 2 1 0 1 2]
        let got: Vec<usize> = (-5..9).map(|i| reflect_index(i, 4)).collect();
        assert_eq!(got, [1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2]);
    }

    #[test]
    fn thirds_split_like_numpy() {
        // np.array_split(range(7), 3) = [0 1 2], [3 4], [5 6]
        assert_eq!(thirds(7), [(0, 3), (3, 2), (5, 2)]);
        // np.array_split(range(2), 3) = [0], [1], [] -> [0]
        assert_eq!(thirds(2), [(0, 1), (1, 1), (0, 1)]);
    }

    #[test]
    fn given_choices_are_checked() {
        let mut g = GivenChoices::new([3]);
        assert!(g.choose(3, "x").is_err());
        assert!(g
            .choose(3, "x")
            .unwrap_err()
            .to_string()
            .contains("no given choice"));
        let mut s = SeededChoices::new(1);
        assert!((0..100).all(|_| s.choose(5, "x").unwrap() < 5));
    }

    #[test]
    fn bad_configs_are_named() {
        let p = Path::new("m/preprocessor_config.json");
        let e =
            ClapFeatureExtractorConfig::from_value(&serde_json::json!({"truncation": "cut"}), p)
                .unwrap_err()
                .to_string();
        assert!(
            e.contains("truncation") && e.contains("preprocessor_config.json"),
            "{e}"
        );
        let e = ClapFeatureExtractorConfig::from_value(&serde_json::json!({"hop_length": 0}), p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("hop_length"), "{e}");
        let c = ClapFeatureExtractorConfig::from_value(&serde_json::json!({}), p).unwrap();
        assert_eq!(c, ClapFeatureExtractorConfig::default());
        assert_eq!(c.max_frames(), 1001);
    }

    #[test]
    fn bad_audio_is_refused() {
        let fe = ClapFeatureExtractor::new(ClapFeatureExtractorConfig {
            sampling_rate: 8000,
            max_length_s: 1,
            fft_window_size: 256,
            hop_length: 160,
            ..Default::default()
        });
        let dev = Device::Cpu;
        let mut c = SeededChoices::new(0);
        let ok = vec![0.1f32; 100];
        assert!(fe.extract(&[&ok], 16000, &mut c, &dev).is_err());
        assert!(fe.extract(&[&[]], 8000, &mut c, &dev).is_err());
        let nan = vec![f32::NAN; 10];
        let e = fe.extract(&[&nan], 8000, &mut c, &dev).unwrap_err();
        assert!(e.to_string().contains("non-finite"), "{e}");
        let f = fe.extract(&[&ok], 8000, &mut c, &dev).unwrap();
        assert_eq!(f.input_features.dims(), [1, 4, 51, 64]);
        assert_eq!(f.is_longer, [true]);
    }
}

#[cfg(test)]
mod hostile_tests {
    use super::*;
    use brainrecon_nn::config_bounds::hostile::problems;

    /// Every number of the shipped genres-clap processor config set to 0, -1, huge or the
    /// wrong type: no panic; huge values and wrong types refused, naming the field.
    #[test]
    fn every_numeric_field_of_the_shipped_config_is_bounded() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/genres-clap/preprocessor_config.json");
        let config: Value = read_json(&path, WHAT).unwrap();
        let load = |v: &Value| {
            ClapFeatureExtractorConfig::from_value(v, &path)
                .map(drop)
                .map_err(|e| e.to_string())
        };
        // transformers' derived or unused keys: never read here.
        let unread = ["nb_frequency_bins", "nb_max_samples", "padding_value"];
        let found = problems(&config, &unread, &load);
        assert!(found.is_empty(), "{}", found.join("\n"));
    }
}
