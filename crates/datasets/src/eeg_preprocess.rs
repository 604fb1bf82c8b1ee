//! EEG epochs as THINGS-EEG2's preprocessing code makes them with MNE and scikit-learn (NICE
//! reuses it with other settings): events from a stim channel, epochs with a baseline, FFT
//! resampling, and multivariate noise normalisation (MVNN).
//!
//! - [`find_events`]: `mne.find_events` with its defaults: an event where the stim value
//!   steps up (from 0 or from a lower code), never at the first sample.
//! - [`epoch`]: `mne.Epochs(raw, events, tmin, tmax, baseline=(None, 0))`: samples
//!   round(tmin·sfreq) … round(tmax·sfreq) around the event, inclusive, less each channel's
//!   mean over the samples at or before 0 s; an epoch that leaves the recording is dropped.
//! - [`FftResampler`]: MNE's FFT resampling with `npad='auto'`: the signal padded to a power
//!   of two, by repeating its end values ([`Pad::Edge`], `Epochs.resample`'s default) or by
//!   `reflect_limited` reflection ([`Pad::ReflectLimited`], `mne.filter.resample`'s), its
//!   spectrum cut (or padded) to the new length with a boxcar window, the padding trimmed.
//! - [`shrunk_covariance`]: scikit-learn's `_cov(X, shrinkage='auto')`, which the MVNN step
//!   calls: the features standardised, Ledoit-Wolf's shrinkage, the scale put back.
//! - [`mvnn_in_place`]: Σ^(−1/2) of the covariances averaged over time points (or
//!   repetitions), conditions and the two halves, as `mvnn` in the data set's code.

use std::path::Path;
use std::sync::Arc;

use faer::{Mat, Side};
use rustfft::num_complex::Complex64;
use rustfft::{Fft, FftPlanner};

use crate::limits;
use crate::{DataError, Result};

/// `(sample, code)` of every event of a stim channel (see the module documentation). Codes
/// are read as integers; a negative code counts by its absolute value, as MNE does.
pub fn find_events(stim: &[f64]) -> Vec<(usize, i64)> {
    let code = |v: f64| v.abs() as i64;
    stim.windows(2)
        .enumerate()
        .filter_map(|(i, pair)| {
            let (before, after) = (code(pair[0]), code(pair[1]));
            (after > before).then_some((i + 1, after))
        })
        .collect()
}

/// Sample offsets (first, count) of an epoch from `tmin` to `tmax` seconds at `sfreq`; None
/// when they do not fit (a non-finite product, or a count beyond `usize`).
pub fn checked_epoch_span(tmin: f64, tmax: f64, sfreq: f64) -> Option<(i64, usize)> {
    // Bounded well inside i64 so that the subtraction below cannot overflow.
    const BOUND: f64 = (1u64 << 52) as f64;
    let first = (tmin * sfreq).round();
    let last = (tmax * sfreq).round();
    if !(first.abs() <= BOUND && last.abs() <= BOUND) {
        return None;
    }
    let (first, last) = (first as i64, last as i64);
    let count = usize::try_from((last - first + 1).max(0)).ok()?;
    Some((first, count))
}

/// Sample offsets (first, count) of an epoch from `tmin` to `tmax` seconds at `sfreq`; an
/// epoch that does not fit ([`checked_epoch_span`]) is empty.
pub fn epoch_span(tmin: f64, tmax: f64, sfreq: f64) -> (i64, usize) {
    checked_epoch_span(tmin, tmax, sfreq).unwrap_or((0, 0))
}

/// The epoch [channels.len(), count] of `data` [rows, samples] at `onset`, rows `channels`,
/// baseline-corrected by each row's mean over its first `baseline` samples; None when it
/// leaves the recording.
pub fn epoch(
    data: &[f64],
    samples: usize,
    channels: &[usize],
    onset: usize,
    (first, count): (i64, usize),
    baseline: usize,
) -> Option<Vec<f64>> {
    let start = onset as i64 + first;
    if start < 0 || start as usize + count > samples {
        return None;
    }
    let start = start as usize;
    let mut out = Vec::with_capacity(channels.len() * count);
    for &c in channels {
        let row = &data[c * samples + start..c * samples + start + count];
        let mean = match baseline {
            0 => 0.0,
            n => row[..n].iter().sum::<f64>() / n as f64,
        };
        out.extend(row.iter().map(|v| v - mean));
    }
    Some(out)
}

/// How [`FftResampler`] pads a series before its FFT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pad {
    /// The end values repeated (`Epochs.resample`, which THINGS-EEG2's code calls).
    Edge,
    /// Odd reflection about each end sample (`mne.filter.resample`'s default).
    ReflectLimited,
}

/// Epochs of one recording as `mne.Epochs(..., baseline=(None, 0))` then `Epochs.resample`
/// make them: [`epoch`] and [`FftResampler`] with [`Pad::Edge`] together.
pub struct Epocher {
    span: (i64, usize),
    baseline: usize,
    resampler: Option<FftResampler>,
    /// Seconds of each output sample from the event.
    pub times: Vec<f64>,
}

impl Epocher {
    /// Epochs from `tmin` to `tmax` seconds of a recording at `from` Hz (read from `field` of
    /// `path`), resampled to `to` Hz.
    ///
    /// Errors, naming `path` and `field`, before anything is allocated: `from` not a rate
    /// [`limits::sample_rate`] allows; `to` not finite, not above 0 or above `from`
    /// (resampling only lowers the rate); an epoch of no samples; an epoch, its FFT padding
    /// or its resampled length whose bytes pass [`limits::ARRAY_BYTES`] (sized with checked
    /// arithmetic).
    pub fn checked(
        path: &Path,
        field: &str,
        tmin: f64,
        tmax: f64,
        from: f64,
        to: f64,
    ) -> Result<Self> {
        let from = limits::sample_rate(path, field, from)?;
        if !(to.is_finite() && to > 0.0 && to <= from) {
            return Err(DataError::invalid(
                path,
                field,
                format!("a rate of at least the epochs' {to} Hz (resampling only lowers it)"),
                format!("{from} Hz"),
            ));
        }
        let too_long = || {
            DataError::invalid(
                path,
                field,
                format!("a rate giving epochs of {tmin} to {tmax} s an addressable length"),
                format!("{from} Hz"),
            )
        };
        let (first, count) = checked_epoch_span(tmin, tmax, from).ok_or_else(too_long)?;
        if count == 0 {
            return Err(DataError::invalid(
                path,
                field,
                format!("a rate giving epochs of {tmin} to {tmax} s at least one sample"),
                format!("{from} Hz"),
            ));
        }
        // The epoch's rows as f64, and (resampled) its padded spectrum and output as complex.
        let epoch_field = format!("{field} (samples in one epoch, {tmin} to {tmax} s)");
        limits::array_bytes(path, &epoch_field, &[count as u64], 8)?;
        let plan = match to != from {
            true => {
                let lengths = ResampleLengths::new(count, to / from).ok_or_else(too_long)?;
                let longest = lengths.padded_len.max(lengths.new_len) as u64;
                limits::array_bytes(path, &epoch_field, &[longest], 16)?;
                Some(lengths)
            }
            false => None,
        };
        Ok(Self::build((first, count), plan, from, to))
    }

    /// [`Epocher::checked`] for rates already checked (`to` ≤ `from`, both positive, and the
    /// epoch at least one sample: the caller checks). Never panics: an epoch it cannot build
    /// (a rate beyond [`limits::SAMPLE_RATE`], a length beyond [`limits::ARRAY_BYTES`]) gives
    /// an epocher of no samples ([`Epocher::span_len`] 0, no times, every epoch None), which
    /// the callers refuse as an epoch longer than the recording. Rates read from files go
    /// through [`Epocher::checked`], whose error names the file and field.
    pub fn new(tmin: f64, tmax: f64, from: f64, to: f64) -> Self {
        Self::checked(Path::new("epochs"), "sfreq", tmin, tmax, from, to).unwrap_or(Epocher {
            span: (0, 0),
            baseline: 0,
            resampler: None,
            times: Vec::new(),
        })
    }

    fn build(span: (i64, usize), plan: Option<ResampleLengths>, from: f64, to: f64) -> Self {
        let resampler = plan.map(|lengths| FftResampler::planned(lengths, Pad::Edge));
        let len = resampler.as_ref().map_or(span.1, |r| r.output_len());
        Epocher {
            span,
            // The baseline (None, 0): every sample at or before 0 s.
            baseline: (-span.0 + 1).clamp(0, span.1 as i64) as usize,
            resampler,
            times: (0..len)
                .map(|k| span.0 as f64 / from + k as f64 / to)
                .collect(),
        }
    }

    /// The same epochs without the baseline subtracted (data already baseline-corrected).
    pub fn without_baseline(mut self) -> Self {
        self.baseline = 0;
        self
    }

    /// Samples of an epoch before resampling.
    pub fn span_len(&self) -> usize {
        self.span.1
    }

    /// The epoch [channels.len(), times] of `data` [rows, samples] at `onset`; None when it
    /// leaves the recording (an event at sample 0, such as a BrainVision marker logged before
    /// the first sample, with `tmin` < 0: MNE drops it too).
    pub fn epoch(
        &self,
        data: &[f64],
        samples: usize,
        channels: &[usize],
        onset: usize,
    ) -> Option<Vec<f64>> {
        if self.span.1 == 0 {
            return None;
        }
        let x = epoch(data, samples, channels, onset, self.span, self.baseline)?;
        Some(match &self.resampler {
            Some(r) => x
                .chunks_exact(self.span.1)
                .flat_map(|row| r.apply(row))
                .collect(),
            None => x,
        })
    }
}

/// MVNN of one session in place: Σ^(−1/2) of the covariances averaged over `halves` (each a
/// map from condition to its epochs [channels × times]; empty halves left out), applied to
/// every epoch. False when the covariance is not positive-definite (nothing is changed).
pub fn mvnn_in_place<K>(
    halves: &mut [&mut std::collections::BTreeMap<K, Vec<Vec<f64>>>],
    channels: usize,
    times: usize,
    dim: MvnnDim,
) -> bool {
    let c = channels;
    let used: Vec<usize> = (0..halves.len())
        .filter(|&i| !halves[i].is_empty())
        .collect();
    let mut sigma = vec![0.0; c * c];
    for &i in &used {
        let conditions: Vec<Vec<f64>> = halves[i].values().map(|reps| reps.concat()).collect();
        let cov = condition_covariance(&conditions, c, times, dim);
        sigma
            .iter_mut()
            .zip(&cov)
            .for_each(|(s, v)| *s += v / used.len() as f64);
    }
    let Some(w) = inverse_sqrt(&sigma, c) else {
        return false;
    };
    for half in halves.iter_mut() {
        for x in half.values_mut().flatten() {
            whiten(x, c, times, &w);
        }
    }
    true
}

/// MNE's FFT resampling of series of one length by one ratio (see the module documentation).
pub struct FftResampler {
    pad: Pad,
    pads: [usize; 2],
    padded_len: usize,
    new_len: usize,
    trim: [usize; 2],
    forward: Arc<dyn Fft<f64>>,
    inverse: Arc<dyn Fft<f64>>,
}

/// The lengths of one resampling (see [`FftResampler`]), computed with checked arithmetic.
#[derive(Clone, Copy, Debug)]
struct ResampleLengths {
    pads: [usize; 2],
    padded_len: usize,
    new_len: usize,
    trim: [usize; 2],
}

impl ResampleLengths {
    /// The lengths for `len` samples resampled by `ratio` (to / from); None when `len` is 0,
    /// the ratio not finite and positive, or a length does not fit in `usize`.
    fn new(len: usize, ratio: f64) -> Option<Self> {
        if len == 0 || !(ratio.is_finite() && ratio > 0.0) {
            return None;
        }
        // round(ratio · n), refused past 2^53 (beyond it f64 holds no exact count).
        let scaled = |n: usize| -> Option<usize> {
            let v = (ratio * n as f64).round();
            (v <= (1u64 << 53) as f64).then_some(v as usize)
        };
        let final_len = scaled(len)?.max(1);
        let min_add = (len / 8).min(100) * 2;
        let padded_len = len.checked_add(min_add)?.checked_next_power_of_two()?;
        let total = padded_len - len;
        let pads = [total / 2, total / 2 + total % 2];
        let new_len = scaled(padded_len)?.max(1);
        let front = scaled(pads[0])?;
        let back = new_len.checked_sub(final_len)?.checked_sub(front)?;
        Some(ResampleLengths {
            pads,
            padded_len,
            new_len,
            trim: [front, back],
        })
    }
}

impl FftResampler {
    /// Resampling `len` samples by `to / from` (as `mne.filter.resample(x, to, from,
    /// npad='auto', pad=...)`); the output length is round(len · to / from), at least 1.
    ///
    /// Panics when `len` is 0, a rate is not finite and positive, or the lengths overflow:
    /// rates read from files are checked first ([`Epocher::checked`]).
    pub fn new(len: usize, to: f64, from: f64, pad: Pad) -> Self {
        assert!(len > 0 && to > 0.0 && from > 0.0);
        let lengths = ResampleLengths::new(len, to / from).expect("resampling lengths in range");
        Self::planned(lengths, pad)
    }

    fn planned(lengths: ResampleLengths, pad: Pad) -> Self {
        let ResampleLengths {
            pads,
            padded_len,
            new_len,
            trim,
        } = lengths;
        let mut planner = FftPlanner::new();
        FftResampler {
            pad,
            pads,
            padded_len,
            new_len,
            trim,
            forward: planner.plan_fft_forward(padded_len),
            inverse: planner.plan_fft_inverse(new_len),
        }
    }

    /// The output length.
    pub fn output_len(&self) -> usize {
        self.new_len - self.trim[0] - self.trim[1]
    }

    /// `x` (of the length given to [`FftResampler::new`]) resampled.
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        let n = x.len();
        assert_eq!(n + self.pads[0] + self.pads[1], self.padded_len);
        // reflect_limited: odd reflection about each end sample (zeros beyond a reflection
        // longer than the signal).
        let mut buffer = Vec::with_capacity(self.padded_len);
        let reflect = |k: usize, edge: f64, index: Option<usize>| match (self.pad, index) {
            (Pad::Edge, _) => edge,
            (Pad::ReflectLimited, Some(i)) if k < n => 2.0 * edge - x[i],
            (Pad::ReflectLimited, _) => 0.0,
        };
        for k in (1..=self.pads[0]).rev() {
            buffer.push(Complex64::new(reflect(k, x[0], Some(k)), 0.0));
        }
        buffer.extend(x.iter().map(|&v| Complex64::new(v, 0.0)));
        for k in 1..=self.pads[1] {
            let index = (n - 1).checked_sub(k);
            buffer.push(Complex64::new(reflect(k, x[n - 1], index), 0.0));
        }
        self.forward.process(&mut buffer);
        let (old, new) = (self.padded_len, self.new_len);
        let half = old / 2 + 1; // rfft's bins
        let scale = new as f64 / old as f64;
        let shorter = new < old;
        let used = if shorter { new } else { old };
        let mut spectrum: Vec<Complex64> = buffer[..half].iter().map(|c| c * scale).collect();
        if used % 2 == 0 && used / 2 < half {
            spectrum[used / 2] *= if shorter { 2.0 } else { 0.5 };
        }
        // irfft(spectrum, new): the first new/2 + 1 bins, Hermitian, the imaginary parts of
        // bin 0 and (for an even length) the last ignored.
        let bin = |m: usize| spectrum.get(m).copied().unwrap_or_default();
        let mut full = vec![Complex64::default(); new];
        full[0] = Complex64::new(bin(0).re, 0.0);
        for m in 1..new.div_ceil(2) {
            full[m] = bin(m);
            full[new - m] = bin(m).conj();
        }
        if new % 2 == 0 {
            full[new / 2] = Complex64::new(bin(new / 2).re, 0.0);
        }
        self.inverse.process(&mut full);
        full[self.trim[0]..new - self.trim[1]]
            .iter()
            .map(|c| c.re / new as f64)
            .collect()
    }
}

/// scikit-learn's `_cov(x, shrinkage='auto')` of `x` [n, p] row-major: [p, p].
pub fn shrunk_covariance(x: &[f64], n: usize, p: usize) -> Vec<f64> {
    assert!(n > 0 && x.len() == n * p);
    // StandardScaler: centred, divided by the population s.d. (1 where it is 0).
    let mut mean = vec![0.0; p];
    for row in x.chunks_exact(p) {
        mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut scale = vec![0.0; p];
    for row in x.chunks_exact(p) {
        for j in 0..p {
            scale[j] += (row[j] - mean[j]).powi(2);
        }
    }
    scale.iter_mut().for_each(|s| {
        *s = if *s > 0.0 {
            (*s / n as f64).sqrt()
        } else {
            1.0
        }
    });
    let z: Vec<f64> = x
        .chunks_exact(p)
        .flat_map(|row| {
            (0..p)
                .map(|j| (row[j] - mean[j]) / scale[j])
                .collect::<Vec<_>>()
        })
        .collect();
    // Ledoit-Wolf on the standardised rows (centred again, as LedoitWolf.fit does).
    let mut zmean = vec![0.0; p];
    for row in z.chunks_exact(p) {
        zmean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
    }
    zmean.iter_mut().for_each(|m| *m /= n as f64);
    let zc: Vec<f64> = z
        .chunks_exact(p)
        .flat_map(|row| {
            row.iter()
                .zip(&zmean)
                .map(|(v, m)| v - m)
                .collect::<Vec<_>>()
        })
        .collect();
    let mut emp = vec![0.0; p * p];
    let mut squares = vec![0.0; p * p]; // X2ᵀ X2
    for row in zc.chunks_exact(p) {
        for i in 0..p {
            for j in 0..p {
                emp[i * p + j] += row[i] * row[j];
                squares[i * p + j] += row[i] * row[i] * row[j] * row[j];
            }
        }
    }
    let nf = n as f64;
    let trace_terms: Vec<f64> = (0..p).map(|i| emp[i * p + i] / nf).collect();
    let mu = trace_terms.iter().sum::<f64>() / p as f64;
    let shrinkage = if p == 1 {
        0.0
    } else {
        let beta_sum: f64 = squares.iter().sum();
        let delta_sum = emp.iter().map(|v| v * v).sum::<f64>() / (nf * nf);
        let beta = (beta_sum / nf - delta_sum) / (p as f64 * nf);
        let delta = (delta_sum - 2.0 * mu * trace_terms.iter().sum::<f64>() + p as f64 * mu * mu)
            / p as f64;
        let beta = beta.min(delta);
        if beta == 0.0 {
            0.0
        } else {
            beta / delta
        }
    };
    let mut cov: Vec<f64> = emp.iter().map(|v| (1.0 - shrinkage) * v / nf).collect();
    for i in 0..p {
        cov[i * p + i] += shrinkage * mu;
    }
    for i in 0..p {
        for j in 0..p {
            cov[i * p + j] *= scale[i] * scale[j];
        }
    }
    cov
}

/// Over which dimension MVNN estimates each covariance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MvnnDim {
    /// Across repetitions at each time point, then averaged over time (the data set's
    /// default).
    Time,
    /// Across time points in each repetition, then averaged over repetitions.
    Epochs,
}

/// The mean over conditions of each condition's covariance (by `dim`); each condition
/// [repetitions, channels, times] (its own number of repetitions): [channels, channels].
pub fn condition_covariance(
    conditions: &[Vec<f64>],
    channels: usize,
    times: usize,
    dim: MvnnDim,
) -> Vec<f64> {
    let (c, t) = (channels, times);
    let mut total = vec![0.0; c * c];
    let mut rows = Vec::new();
    for condition in conditions {
        let repetitions = condition.len() / (c * t);
        let mut sum = vec![0.0; c * c];
        let parts = match dim {
            MvnnDim::Time => t,
            MvnnDim::Epochs => repetitions,
        };
        for part in 0..parts {
            rows.clear();
            match dim {
                // X [repetitions, channels] at time `part`.
                MvnnDim::Time => {
                    for r in 0..repetitions {
                        rows.extend((0..c).map(|ch| condition[(r * c + ch) * t + part]));
                    }
                }
                // X [times, channels] of repetition `part`.
                MvnnDim::Epochs => {
                    for time in 0..t {
                        rows.extend((0..c).map(|ch| condition[(part * c + ch) * t + time]));
                    }
                }
            }
            let n = rows.len() / c;
            let cov = shrunk_covariance(&rows, n, c);
            sum.iter_mut().zip(&cov).for_each(|(s, v)| *s += v);
        }
        total
            .iter_mut()
            .zip(&sum)
            .for_each(|(s, v)| *s += v / parts as f64);
    }
    total
        .iter_mut()
        .for_each(|s| *s /= conditions.len().max(1) as f64);
    total
}

/// Σ^(−1/2) of a symmetric positive-definite `sigma` [p, p] (scipy's
/// `fractional_matrix_power(sigma, -0.5)`), or None when it is not positive-definite.
pub fn inverse_sqrt(sigma: &[f64], p: usize) -> Option<Vec<f64>> {
    let m = Mat::<f64>::from_fn(p, p, |i, j| 0.5 * (sigma[i * p + j] + sigma[j * p + i]));
    let evd = m.self_adjoint_eigen(Side::Lower).ok()?;
    let s = evd.S().column_vector();
    let u = evd.U();
    if (0..p).any(|k| s[k].is_nan() || s[k] <= 0.0) {
        return None;
    }
    let mut out = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..p {
            out[i * p + j] = (0..p).map(|k| u[(i, k)] * u[(j, k)] / s[k].sqrt()).sum();
        }
    }
    Some(out)
}

/// Whitens every epoch of `data` [epochs, channels, times] in place by `w` [channels,
/// channels]: x'[j, t] = Σ_i x[i, t] w[i, j].
pub fn whiten(data: &mut [f64], channels: usize, times: usize, w: &[f64]) {
    let mut column = vec![0.0; channels];
    for epoch in data.chunks_exact_mut(channels * times) {
        for t in 0..times {
            for (i, v) in column.iter_mut().enumerate() {
                *v = epoch[i * times + t];
            }
            for j in 0..channels {
                epoch[j * times + t] = (0..channels).map(|i| column[i] * w[i * channels + j]).sum();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_upward_steps_after_the_first_sample() {
        let stim = [3.0, 3.0, 0.0, 5.0, 5.0, 7.0, 0.0, -2.0, 0.0];
        assert_eq!(find_events(&stim), [(3, 5), (5, 7), (7, 2)]);
    }

    #[test]
    fn resampling_keeps_a_slow_sine_and_its_length() {
        let x: Vec<f64> = (0..1001)
            .map(|i| (2.0 * std::f64::consts::PI * 3.0 * i as f64 / 1000.0).sin())
            .collect();
        let r = FftResampler::new(1001, 100.0, 1000.0, Pad::ReflectLimited);
        let y = r.apply(&x);
        assert_eq!((y.len(), r.output_len()), (100, 100));
        // mne.filter.resample(x, 100, 1000, npad='auto') with MNE 1.13.2: the edges ring.
        let mne = [
            -0.06795198,
            0.12375749,
            0.30371146,
            0.48020225,
            0.63253992,
            0.76959203,
        ];
        for (k, want) in mne.iter().enumerate() {
            assert!((y[k] - want).abs() < 1e-8, "{k}: {} vs {want}", y[k]);
        }
        for (k, want) in [(20, -0.53145264), (50, 0.07388421), (99, -0.26760667)] {
            assert!((y[k] - want).abs() < 1e-8, "{k}: {} vs {want}", y[k]);
        }
        // pad='edge', as Epochs.resample pads.
        let y = FftResampler::new(1001, 100.0, 1000.0, Pad::Edge).apply(&x);
        let mne = [
            (0, -0.00278696),
            (1, 0.11513253),
            (5, 0.76650899),
            (50, 0.07549049),
        ];
        for (k, want) in mne.into_iter().chain([(99, -0.27277812)]) {
            assert!((y[k] - want).abs() < 1e-8, "edge {k}: {} vs {want}", y[k]);
        }
        // 1,000 → 250 Hz (an even output length: the Nyquist bin doubled), with a 40 Hz part.
        let x: Vec<f64> = (0..1001)
            .map(|i| {
                let t = i as f64 / 1000.0;
                (2.0 * std::f64::consts::PI * 3.0 * t).sin()
                    + 0.5 * (2.0 * std::f64::consts::PI * 40.0 * t).cos()
            })
            .collect();
        let y = FftResampler::new(1001, 250.0, 1000.0, Pad::ReflectLimited).apply(&x);
        assert_eq!(y.len(), 250);
        for (k, want) in [
            (0, 0.49034642),
            (1, 0.25512645),
            (100, 1.44080706),
            (249, 0.30882713),
        ] {
            assert!((y[k] - want).abs() < 1e-8, "{k}: {} vs {want}", y[k]);
        }
    }

    #[test]
    fn an_event_at_the_first_sample_is_epoched_only_without_a_pre_stimulus_part() {
        // A BrainVision marker logged before the recording lands at sample 0, as MNE's
        // events_from_annotations puts it; MNE drops its epoch when tmin < 0.
        let data: Vec<f64> = (0..200).map(|i| i as f64).collect();
        let with_baseline = Epocher::new(-0.2, 0.8, 100.0, 100.0);
        assert!(with_baseline.epoch(&data, 200, &[0], 0).is_none());
        assert!(with_baseline.epoch(&data, 200, &[0], 20).is_some());
        let from_zero = Epocher::new(0.0, 0.5, 100.0, 100.0);
        assert_eq!(from_zero.epoch(&data, 200, &[0], 0).unwrap().len(), 51);
    }

    #[test]
    fn rates_from_files_are_checked_before_epochs_are_sized() {
        let path = Path::new("run.vhdr");
        for from in [1e306, 1e10, 0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = Epocher::checked(path, "SamplingInterval", -0.2, 0.8, from, 100.0)
                .err()
                .unwrap_or_else(|| panic!("{from} Hz accepted"))
                .to_string();
            assert!(
                err.contains("run.vhdr") && err.contains("SamplingInterval"),
                "{from}: {err}"
            );
            // Unchecked: no panic, no allocation, an epoch of no samples the callers refuse.
            let e = Epocher::new(-0.2, 0.8, from, 100.0);
            assert_eq!((e.span_len(), e.times.len()), (0, 0));
            assert!(e.epoch(&[0.0; 4], 4, &[0], 1).is_none());
        }
        // An epoch whose samples pass the array limit (a rate within the limit, a long epoch).
        let err = Epocher::checked(path, "sfreq", 0.0, 1e12, 1000.0, 100.0)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("sfreq"), "{err}");
        let e = Epocher::checked(path, "sfreq", -0.2, 0.8, 1000.0, 100.0).unwrap();
        assert_eq!((e.span_len(), e.times.len()), (1001, 100));
        assert!(Epocher::checked(path, "sfreq", -0.2, 0.8, 100.0, 250.0).is_err());
    }

    #[test]
    fn the_whitener_of_a_covariance_whitens_it() {
        let sigma = [4.0, 1.0, 1.0, 2.0];
        let w = inverse_sqrt(&sigma, 2).unwrap();
        // wᵀ Σ w = I
        for i in 0..2 {
            for j in 0..2 {
                let v: f64 = (0..2)
                    .flat_map(|a| (0..2).map(move |b| (a, b)))
                    .map(|(a, b)| w[a * 2 + i] * sigma[a * 2 + b] * w[b * 2 + j])
                    .sum();
                assert!((v - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        assert!(inverse_sqrt(&[1.0, 0.0, 0.0, 0.0], 2).is_none());
    }
}
