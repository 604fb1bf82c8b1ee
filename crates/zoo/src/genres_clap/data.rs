//! genres-clap's data: clips of the synthetic music generator
//! ([`brainrecon_simulate::music::StreamClip`]), in streams that no simulated subject
//! hears, keyed by the training seed (training) or by a fixed tag (held out).
//!
//! Every clip is 15 s (ds003720's clip length), rendered at 22050 Hz and rounded to 16 bits as
//! the subject's WAV files store it. The training clips are rendered once per run into a
//! [`ClipBank`] that keeps each clip's log-mel spectrogram (the front end's Slaney filters);
//! a training window is 10 s (MuLan's window) at a random offset, cut from that spectrogram at
//! a whole number of hops. Of a window's frames only the first and the last differ from what
//! the front end computes on the cut audio alone: they see the neighbouring audio where the
//! front end would reflect the window's own edge. Held-out clips go through the front end
//! exactly as at inference, on their middle 10 s.

use brainrecon_formats::audio::wav;
use brainrecon_nn::rng::fnv1a64;
use brainrecon_nn::{ModelError, Result};
use brainrecon_simulate::music::StreamClip;
use candle_core::{Device, Tensor};

use brainrecon_audio::clap::{ClapFeatureExtractor, GivenChoices};

/// The seed of the training stream for a training seed (a tag keeps it apart from the
/// held-out stream, whatever the seed).
pub fn training_stream(seed: u64) -> u64 {
    let mut bytes = b"genres-clap train ".to_vec();
    bytes.extend_from_slice(&seed.to_le_bytes());
    fnv1a64(&bytes)
}

/// The seed of the held-out stream.
pub fn held_out_stream() -> u64 {
    fnv1a64(b"genres-clap held out")
}

/// A clip's audio as the subject's 16-bit WAV files hold it.
pub fn clip_audio(clip: &StreamClip) -> Vec<f32> {
    clip.render()
        .into_iter()
        .map(|v| wav::quantize(v) as f32 / 32768.0)
        .collect()
}

/// `f(i)` for `i` in `0..n`, on up to `threads` threads, in index order.
fn parallel_map<T: Send>(n: usize, threads: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = threads.clamp(1, n.max(1));
    let mut parts: Vec<Vec<(usize, T)>> = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let f = &f;
                s.spawn(move || (t..n).step_by(threads).map(|i| (i, f(i))).collect())
            })
            .collect();
        parts = handles
            .into_iter()
            .map(|h| h.join().expect("a clip worker panicked"))
            .collect();
    });
    let mut all: Vec<(usize, T)> = parts.into_iter().flatten().collect();
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, v)| v).collect()
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The training clips: captions, genres and whole-clip log-mel spectrograms.
#[derive(Clone, Debug)]
pub struct ClipBank {
    /// The caption of each clip.
    pub captions: Vec<String>,
    /// Index into GTZAN's genres.
    pub genres: Vec<usize>,
    /// Per clip [frames, mels], row-major.
    mels: Vec<Vec<f32>>,
    /// Mel frames of each whole clip.
    pub frames: usize,
    /// F: mel bins per frame.
    pub mel_bins: usize,
    /// Frames of one window (the front end's `max_frames`).
    pub window_frames: usize,
}

impl ClipBank {
    /// Renders clips `0..n` of the training stream of `seed`.
    pub fn render(seed: u64, n: usize, fe: &ClapFeatureExtractor) -> Result<Self> {
        let stream = training_stream(seed);
        let clips: Vec<(StreamClip, Vec<f32>)> = parallel_map(n, threads(), |i| {
            let clip = StreamClip::new(stream, i as u64);
            let mel = fe.log_mel(&clip_audio(&clip), &fe.mel_filters_slaney);
            (clip, mel)
        });
        let mel_bins = fe.config.feature_size;
        let frames = clips.first().map_or(0, |(_, m)| m.len() / mel_bins);
        let window_frames = fe.config.max_frames();
        if frames < window_frames {
            return Err(ModelError::Invalid(format!(
                "a clip has {frames} mel frames, fewer than a {} s window's {window_frames}",
                fe.config.max_length_s
            )));
        }
        let (meta, mels): (Vec<StreamClip>, Vec<Vec<f32>>) = clips.into_iter().unzip();
        Ok(ClipBank {
            captions: meta.iter().map(|c| c.caption.clone()).collect(),
            genres: meta.iter().map(|c| c.genre).collect(),
            mels,
            frames,
            mel_bins,
            window_frames,
        })
    }

    /// Clips in the bank.
    pub fn len(&self) -> usize {
        self.mels.len()
    }

    /// Whether the bank has no clips.
    pub fn is_empty(&self) -> bool {
        self.mels.is_empty()
    }

    /// Window offsets a clip allows (in frames): `0..offsets()`.
    pub fn offsets(&self) -> usize {
        self.frames - self.window_frames + 1
    }

    /// Input features [B, 1, window_frames, mels] of (clip, offset) pairs.
    pub fn windows(&self, picks: &[(usize, usize)], device: &Device) -> Result<Tensor> {
        let (t, f) = (self.window_frames, self.mel_bins);
        let mut data = Vec::with_capacity(picks.len() * t * f);
        for &(clip, offset) in picks {
            data.extend_from_slice(&self.mels[clip][offset * f..(offset + t) * f]);
        }
        Ok(Tensor::from_vec(data, (picks.len(), 1, t, f), device)?)
    }

    /// Per mel bin, the mean and the (biased) variance of the log-mel values over every frame
    /// of every clip: the running statistics of the audio tower's batch norm.
    pub fn mel_statistics(&self) -> (Vec<f32>, Vec<f32>) {
        let f = self.mel_bins;
        let (mut sum, mut sum_sq) = (vec![0f64; f], vec![0f64; f]);
        let mut count = 0usize;
        for mel in &self.mels {
            for row in mel.chunks_exact(f) {
                for (m, &v) in row.iter().enumerate() {
                    sum[m] += v as f64;
                    sum_sq[m] += (v as f64).powi(2);
                }
                count += 1;
            }
        }
        let n = count.max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let var = sum_sq
            .iter()
            .zip(&mean)
            .map(|(s, m)| ((s / n - m * m).max(0.0)) as f32)
            .collect();
        (mean.into_iter().map(|m| m as f32).collect(), var)
    }
}

/// Held-out clips through the front end: the middle 10 s of each.
#[derive(Clone, Debug)]
pub struct HeldOut {
    /// [N, 1, T, F].
    pub features: Tensor,
    /// The caption of each clip.
    pub captions: Vec<String>,
    /// The genre of each clip, an index into GTZAN's genres.
    pub genres: Vec<usize>,
}

impl HeldOut {
    /// Clips `0..n` of the held-out stream (genres in turn: `n / 10` of each when 10
    /// divides `n`).
    pub fn new(n: usize, fe: &ClapFeatureExtractor, device: &Device) -> Result<Self> {
        let stream = held_out_stream();
        let window = fe.config.max_samples();
        let clips: Vec<(StreamClip, Vec<f32>)> = parallel_map(n, threads(), |i| {
            let clip = StreamClip::new(stream, i as u64);
            let audio = clip_audio(&clip);
            let start = audio.len().saturating_sub(window) / 2;
            let end = (start + window).min(audio.len());
            (clip, audio[start..end].to_vec())
        });
        let waves: Vec<&[f32]> = clips.iter().map(|(_, w)| w.as_slice()).collect();
        // a window of exactly max_length_s asks for no random choice
        let features = fe.extract(
            &waves,
            fe.config.sampling_rate,
            &mut GivenChoices::default(),
            device,
        )?;
        Ok(HeldOut {
            features: features.input_features,
            captions: clips.iter().map(|(c, _)| c.caption.clone()).collect(),
            genres: clips.iter().map(|(c, _)| c.genre).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genres_clap::GenresClapConfig;

    #[test]
    fn bank_windows_match_the_front_end_inside_the_window() {
        let config = GenresClapConfig::tiny(1);
        let fe = config.feature_extractor();
        let bank = ClipBank::render(5, 2, &fe).unwrap();
        assert_eq!((bank.frames, bank.window_frames), (376, 251));
        assert_eq!(bank.offsets(), 126);
        assert_eq!(bank.genres, [0, 1]);
        // clip 1, a window 40 hops in, against the front end on the cut audio
        let audio = clip_audio(&StreamClip::new(training_stream(5), 1));
        let start = 40 * config.hop_length;
        let cut = &audio[start..start + fe.config.max_samples()];
        let exact = fe.log_mel(cut, &fe.mel_filters_slaney);
        let ours: Vec<f32> = bank
            .windows(&[(1, 40)], &Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let f = config.mel_bins;
        assert_eq!(ours.len(), exact.len());
        // every frame but the first and the last is the front end's, bit for bit
        assert_eq!(ours[f..ours.len() - f], exact[f..exact.len() - f]);
        let (mean, var) = bank.mel_statistics();
        assert_eq!(mean.len(), f);
        assert!(var.iter().all(|v| *v > 0.0 && v.is_finite()), "{var:?}");
    }

    #[test]
    fn the_streams_differ() {
        assert_ne!(training_stream(0), training_stream(1));
        assert_ne!(training_stream(0), held_out_stream());
        assert_ne!(
            StreamClip::new(training_stream(0), 3).caption,
            StreamClip::new(held_out_stream(), 3).caption
        );
    }
}
