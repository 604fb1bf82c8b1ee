//! A deterministic synthetic source: seeded sine oscillators plus seeded Gaussian noise.

use crate::error::{check_channels, check_rate, Result, StreamError};
use crate::source::{Chunk, Source};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Parameters of a [`Synthetic`] source.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticSpec {
    /// Number of channels (one oscillator each).
    pub channels: usize,
    /// Frames per second.
    pub rate: f64,
    /// Seed of the ChaCha8 generator that draws the oscillators and the noise.
    pub seed: u64,
    /// Standard deviation of the added Gaussian noise (oscillator amplitudes are 0.5–2).
    pub noise: f64,
    /// Lowest and highest oscillator frequency in Hz; the highest is capped at 0.45 × rate.
    pub min_hz: f64,
    /// See `min_hz`.
    pub max_hz: f64,
    /// Frames before the source ends; `None` never ends.
    pub frames: Option<u64>,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        SyntheticSpec {
            channels: 8,
            rate: 250.0,
            seed: 0,
            noise: 0.5,
            min_hz: 1.0,
            max_hz: 30.0,
            frames: None,
        }
    }
}

/// One channel's oscillator: `amplitude × sin(2π × frequency × t + phase)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Oscillator {
    /// Frequency in Hz.
    pub frequency: f64,
    /// Phase in radians (drawn in `[0, 2π)`).
    pub phase: f64,
    /// Amplitude (drawn in `[0.5, 2)`).
    pub amplitude: f64,
}

/// A uniform draw in [0, 1) from the top 53 bits of one 64-bit output.
fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Draws one oscillator per channel from a ChaCha8 generator seeded with `seed`: frequency
/// uniform in `[min_hz, min(max_hz, 0.45 × rate))`, phase uniform in `[0, 2π)`, amplitude
/// uniform in `[0.5, 2)`, drawn in that order channel by channel.
pub fn oscillators(spec: &SyntheticSpec) -> Vec<Oscillator> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let high = spec.max_hz.min(0.45 * spec.rate);
    let low = spec.min_hz.min(high);
    (0..spec.channels)
        .map(|_| Oscillator {
            frequency: low + (high - low) * uniform(&mut rng),
            phase: std::f64::consts::TAU * uniform(&mut rng),
            amplitude: 0.5 + 1.5 * uniform(&mut rng),
        })
        .collect()
}

/// Seeded oscillators plus Gaussian noise, `channels` wide, sample by sample in frame order;
/// the same spec gives the same samples however the frames are chunked.
pub struct Synthetic {
    spec: SyntheticSpec,
    oscillators: Vec<Oscillator>,
    noise: ChaCha8Rng,
    spare: Option<f64>,
    frame: u64,
}

impl Synthetic {
    /// Checks `spec` (channels ≥ 1, positive rate, non-negative finite noise, frequencies
    /// with 0 ≤ min_hz ≤ max_hz) and draws the oscillators.
    pub fn new(spec: SyntheticSpec) -> Result<Self> {
        check_channels("channels", spec.channels)?;
        check_rate("rate", spec.rate)?;
        if !(spec.noise.is_finite() && spec.noise >= 0.0) {
            return Err(StreamError::parameter(
                "noise",
                "a finite standard deviation of at least 0",
                spec.noise.to_string(),
            ));
        }
        if !(spec.min_hz.is_finite()
            && spec.max_hz.is_finite()
            && 0.0 <= spec.min_hz
            && spec.min_hz <= spec.max_hz)
        {
            return Err(StreamError::parameter(
                "frequencies",
                "0 <= min_hz <= max_hz",
                format!("{}..{}", spec.min_hz, spec.max_hz),
            ));
        }
        let oscillators = oscillators(&spec);
        let mut noise = ChaCha8Rng::seed_from_u64(spec.seed);
        // A separate ChaCha stream of the same seed for the noise.
        noise.set_stream(1);
        Ok(Synthetic {
            spec,
            oscillators,
            noise,
            spare: None,
            frame: 0,
        })
    }

    /// The channels' oscillators.
    pub fn oscillators(&self) -> &[Oscillator] {
        &self.oscillators
    }

    /// A standard normal draw (Box–Muller on two uniforms; the second value is kept for the
    /// next call).
    fn gaussian(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1 = 1.0 - uniform(&mut self.noise); // (0, 1]: ln is finite
        let u2 = uniform(&mut self.noise);
        let r = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        self.spare = Some(r * angle.sin());
        r * angle.cos()
    }
}

impl Source for Synthetic {
    fn channels(&self) -> usize {
        self.spec.channels
    }

    fn rate(&self) -> f64 {
        self.spec.rate
    }

    fn next_chunk(&mut self, max_frames: usize) -> Result<Option<Chunk>> {
        let left = self
            .spec
            .frames
            .map_or(u64::MAX, |n| n.saturating_sub(self.frame));
        if left == 0 {
            return Ok(None);
        }
        let take = (max_frames.clamp(1, 65536) as u64).min(left) as usize;
        let channels = self.spec.channels;
        let mut data = Vec::with_capacity(take * channels);
        for _ in 0..take {
            let t = self.frame as f64 / self.spec.rate;
            for c in 0..channels {
                let o = self.oscillators[c];
                let clean = o.amplitude * (std::f64::consts::TAU * o.frequency * t + o.phase).sin();
                let value = clean + self.spec.noise * self.gaussian();
                data.push(value as f32);
            }
            self.frame += 1;
        }
        Ok(Some(Chunk { channels, data }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SyntheticSpec {
        SyntheticSpec {
            channels: 3,
            rate: 100.0,
            seed: 7,
            frames: Some(250),
            ..SyntheticSpec::default()
        }
    }

    fn collect(mut s: Synthetic, step: usize) -> Vec<f32> {
        let mut all = Vec::new();
        while let Some(chunk) = s.next_chunk(step).unwrap() {
            all.extend(chunk.data);
        }
        all
    }

    #[test]
    fn same_seed_same_samples_whatever_the_chunking() {
        let a = collect(Synthetic::new(spec()).unwrap(), 7);
        let b = collect(Synthetic::new(spec()).unwrap(), 250);
        assert_eq!(a.len(), 750);
        assert_eq!(a, b);
        let other = collect(
            Synthetic::new(SyntheticSpec { seed: 8, ..spec() }).unwrap(),
            250,
        );
        assert_ne!(a, other);
    }

    #[test]
    fn oscillators_stay_below_nyquist() {
        let s = Synthetic::new(SyntheticSpec {
            rate: 20.0,
            max_hz: 100.0,
            ..spec()
        })
        .unwrap();
        for o in s.oscillators() {
            assert!(o.frequency >= 1.0 && o.frequency < 9.0, "{o:?}");
            assert!(o.phase >= 0.0 && o.phase < std::f64::consts::TAU);
        }
    }

    #[test]
    fn noise_is_standard_normal() {
        let mut s = Synthetic::new(spec()).unwrap();
        let draws: Vec<f64> = (0..20000).map(|_| s.gaussian()).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let var = draws.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / draws.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }

    #[test]
    fn bad_spec_is_rejected() {
        assert!(Synthetic::new(SyntheticSpec {
            channels: 0,
            ..spec()
        })
        .is_err());
        assert!(Synthetic::new(SyntheticSpec {
            noise: f64::NAN,
            ..spec()
        })
        .is_err());
        assert!(Synthetic::new(SyntheticSpec {
            rate: -1.0,
            ..spec()
        })
        .is_err());
    }
}
