//! Low-level acoustic features per TR: what the synthetic subject's auditory voxels respond to,
//! and a cheap description of any clip.
//!
//! The audio goes through seven one-octave band-pass filters (centres 125 Hz … 8 kHz;
//! second-order, the RBJ "constant 0 dB peak" band-pass with Q = √2), whose power is taken in
//! 20-ms frames. Per TR-long bin of the clip (bin `k` holds the frames that start in
//! `[k·TR, (k+1)·TR)`):
//!
//! ```text
//! band_<f>hz       ln(mean band power + 1e-10)                       ×7
//! centroid_log2hz  log2 of the power-weighted mean band centre (spectral centroid; silence → plain mean)
//! onset_strength   mean over frames of Σ_bands max(0, Δ ln(band power + 1e-8)) (spectral flux)
//! log_power        ln(mean squared sample + 1e-10)
//! ```
//!
//! Bands whose centre lies above 0.45 × the sample rate are left out of the filter bank (their
//! features read as silence).

/// Centres of the octave bands, Hz.
pub const BAND_CENTRES: [f64; 7] = [125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0];
/// Features per TR (see the module documentation).
pub const N_FEATURES: usize = BAND_CENTRES.len() + 3;
const FRAME_SECONDS: f64 = 0.02;
const POWER_FLOOR: f64 = 1e-10;
const FLUX_FLOOR: f64 = 1e-8;

/// Feature names, in column order.
pub fn feature_names() -> Vec<String> {
    let mut names: Vec<String> = BAND_CENTRES
        .iter()
        .map(|f| format!("band_{}hz", *f as u32))
        .collect();
    names.extend(["centroid_log2hz", "onset_strength", "log_power"].map(String::from));
    names
}

/// A second-order section (transposed direct form II), coefficients normalised by a0.
#[derive(Debug, Clone, Copy)]
pub struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
    z: [f64; 2],
}

impl Biquad {
    /// RBJ band-pass with 0 dB gain at `centre` Hz.
    pub fn bandpass(centre: f64, q: f64, rate: f64) -> Self {
        let w0 = std::f64::consts::TAU * centre / rate;
        let alpha = w0.sin() / (2.0 * q);
        let a0 = 1.0 + alpha;
        Biquad {
            b: [alpha / a0, 0.0, -alpha / a0],
            a: [-2.0 * w0.cos() / a0, (1.0 - alpha) / a0],
            z: [0.0; 2],
        }
    }

    /// Filters one sample, returning the output sample.
    pub fn step(&mut self, x: f64) -> f64 {
        let y = self.b[0] * x + self.z[0];
        self.z[0] = self.b[1] * x - self.a[0] * y + self.z[1];
        self.z[1] = self.b[2] * x - self.a[1] * y;
        y
    }
}

/// Band power per 20-ms frame: (frames, bands); bands above 0.45 × rate stay 0.
fn band_frames(samples: &[f32], rate: u32) -> (Vec<[f64; 7]>, usize) {
    let hop = ((FRAME_SECONDS * rate as f64).round() as usize).max(1);
    let mut filters: Vec<Option<Biquad>> = BAND_CENTRES
        .iter()
        .map(|&f| {
            (f < 0.45 * rate as f64)
                .then(|| Biquad::bandpass(f, std::f64::consts::SQRT_2, rate as f64))
        })
        .collect();
    let frames = samples
        .chunks(hop)
        .map(|chunk| {
            let mut power = [0.0f64; 7];
            for (b, filter) in filters.iter_mut().enumerate() {
                if let Some(filter) = filter {
                    let sum: f64 = chunk.iter().map(|&x| filter.step(x as f64).powi(2)).sum();
                    power[b] = sum / chunk.len() as f64;
                }
            }
            power
        })
        .collect();
    (frames, hop)
}

/// (bins, [`N_FEATURES`]) features of `samples` in bins of `tr` seconds; a last partial bin
/// shorter than half a TR is dropped.
pub fn acoustic_features(samples: &[f32], rate: u32, tr: f64) -> Vec<[f64; N_FEATURES]> {
    let bin_len = ((tr * rate as f64).round() as usize).max(1);
    let n_bins = (samples.len() + bin_len / 2) / bin_len;
    let (frames, hop) = band_frames(samples, rate);
    let mut out = vec![[0.0f64; N_FEATURES]; n_bins];
    let mut counts = vec![0usize; n_bins];
    let mut power_sum = vec![[0.0f64; 7]; n_bins];
    for (t, power) in frames.iter().enumerate() {
        let bin = (t * hop) / bin_len;
        if bin >= n_bins {
            break;
        }
        counts[bin] += 1;
        for b in 0..7 {
            power_sum[bin][b] += power[b];
        }
        if t > 0 {
            let flux: f64 = (0..7)
                .map(|b| {
                    ((power[b] + FLUX_FLOOR).ln() - (frames[t - 1][b] + FLUX_FLOOR).ln()).max(0.0)
                })
                .sum();
            out[bin][8] += flux;
        }
    }
    for (k, row) in out.iter_mut().enumerate() {
        let n = counts[k].max(1) as f64;
        let mean: Vec<f64> = power_sum[k].iter().map(|p| p / n).collect();
        for b in 0..7 {
            row[b] = (mean[b] + POWER_FLOOR).ln();
        }
        let weights: Vec<f64> = mean.iter().map(|p| p + POWER_FLOOR).collect();
        let total: f64 = weights.iter().sum();
        let centroid: f64 = weights
            .iter()
            .zip(BAND_CENTRES)
            .map(|(w, f)| w * f)
            .sum::<f64>()
            / total;
        row[7] = centroid.log2();
        row[8] /= n;
        let end = ((k + 1) * bin_len).min(samples.len());
        let chunk = &samples[k * bin_len..end];
        let power =
            chunk.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / chunk.len().max(1) as f64;
        row[9] = (power + POWER_FLOOR).ln();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, seconds: f64, rate: u32, amplitude: f64) -> Vec<f32> {
        (0..(seconds * rate as f64) as usize)
            .map(|i| {
                (amplitude * (std::f64::consts::TAU * freq * i as f64 / rate as f64).sin()) as f32
            })
            .collect()
    }

    #[test]
    fn a_tone_lights_its_own_band_and_moves_the_centroid() {
        let rate = 22_050;
        let low = acoustic_features(&sine(250.0, 3.0, rate, 0.5), rate, 1.5);
        let high = acoustic_features(&sine(4000.0, 3.0, rate, 0.5), rate, 1.5);
        assert_eq!(low.len(), 2);
        let loudest =
            |row: &[f64; N_FEATURES]| (0..7).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
        assert_eq!(loudest(&low[1]), 1);
        assert_eq!(loudest(&high[1]), 5);
        assert!(
            high[1][7] > low[1][7] + 3.0,
            "{} vs {}",
            high[1][7],
            low[1][7]
        );
        // A steady tone has little flux after its start; clicks have a lot.
        let mut clicks = vec![0.0f32; 3 * rate as usize];
        for k in 0..12 {
            clicks[k * rate as usize / 4] = 0.9;
        }
        let clicky = acoustic_features(&clicks, rate, 1.5);
        assert!(
            clicky[1][8] > 10.0 * low[1][8] + 0.1,
            "{} vs {}",
            clicky[1][8],
            low[1][8]
        );
        assert_eq!(feature_names().len(), N_FEATURES);
    }

    #[test]
    fn silence_is_finite() {
        let rows = acoustic_features(&vec![0.0; 22_050 * 3], 22_050, 1.5);
        assert!(rows.iter().flatten().all(|v| v.is_finite()));
        let mean_centre = BAND_CENTRES.iter().sum::<f64>() / 7.0;
        assert!((rows[0][7] - mean_centre.log2()).abs() < 1e-9);
    }
}
