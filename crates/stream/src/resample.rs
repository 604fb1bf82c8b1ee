//! Band-limited resampling of one signal by a rational factor `up / down`, for signals of a
//! recording sampled more slowly than the others (EDF/BDF files with mixed rates).
//!
//! Output sample `m` sits at input position `t = m × down / up` (the first samples of both
//! coincide). Its value is the input convolved with a Kaiser-windowed sinc whose cutoff is the
//! lower of the two Nyquist frequencies, reaching [`HALF_WIDTH`] input samples to each side of
//! `t` (scaled when downsampling); the taps of each position are normalised to sum to 1, so a
//! constant stays constant (to rounding). Only the `up` distinct fractional positions occur,
//! so their taps are computed once (polyphase), unless `up` is very large. This is the
//! polyphase method of `scipy.signal.resample_poly` with a longer, sharper filter; MNE's
//! default (FFT resampling) agrees with it to about 1e-5 of the amplitude away from the edges.
//!
//! Past either end the signal is continued by odd (point) reflection about the end sample,
//! `x[-k] = 2·x[0] − x[k]`, which keeps the value and slope there: smooth signals stay smooth
//! up to the edges, with no zero-padding dip.

/// Half-width of the interpolating kernel, in input samples (upsampling).
pub const HALF_WIDTH: usize = 24;
/// Kaiser window shape: about 1e-6 relative error in the passband up to 0.8 of the input's
/// Nyquist frequency with [`HALF_WIDTH`] 24.
const BETA: f64 = 10.0;
/// Above this many phases the taps are computed per output sample instead of tabulated.
const MAX_TABLE_PHASES: u64 = 4096;

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The zeroth-order modified Bessel function of the first kind, by its power series (which
/// converges fast for the arguments a Kaiser window of `BETA` needs).
fn bessel_i0(x: f64) -> f64 {
    let quarter = x * x / 4.0;
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for k in 1..200 {
        term *= quarter / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// The filter's shape, in units of input samples.
#[derive(Debug, Clone, Copy)]
struct Shape {
    /// Taps on each side of the output position.
    half: usize,
    /// Cutoff relative to the input's Nyquist frequency (1 when upsampling).
    cutoff: f64,
}

impl Shape {
    fn new(up: u64, down: u64) -> Self {
        let cutoff = (up as f64 / down as f64).min(1.0);
        Shape {
            half: (HALF_WIDTH as f64 / cutoff).ceil() as usize,
            cutoff,
        }
    }

    /// The `2 × half` taps for an output at fraction `frac` ∈ [0, 1) past input sample `c`:
    /// tap `k` weighs input sample `c + k + 1 − half`. Normalised to sum to 1.
    fn taps(&self, frac: f64, out: &mut [f64]) {
        let half = self.half as f64;
        let norm = bessel_i0(BETA);
        for (k, tap) in out.iter_mut().enumerate() {
            // Distance from the output position to the input sample.
            let x = frac + half - 1.0 - k as f64;
            let r = x / half;
            let window = if r.abs() < 1.0 {
                bessel_i0(BETA * (1.0 - r * r).sqrt()) / norm
            } else {
                0.0
            };
            let arg = std::f64::consts::PI * self.cutoff * x;
            let sinc = if arg == 0.0 { 1.0 } else { arg.sin() / arg };
            *tap = self.cutoff * sinc * window;
        }
        let sum: f64 = out.iter().sum();
        out.iter_mut().for_each(|t| *t /= sum);
    }
}

/// A resampler fed a signal piece by piece: [`push`](Self::push) input, read what is
/// [`available`](Self::available) with [`take`](Self::take), and [`finish`](Self::finish) at
/// the end to release the last outputs. The outputs are those of [`resample`] on the whole
/// signal, whatever the pieces.
///
/// An output needs the input up to [`HALF_WIDTH`] samples past its position, so outputs lag
/// the input by that much until `finish`.
#[derive(Debug, Clone)]
pub struct Resampler {
    up: u64,
    down: u64,
    shape: Shape,
    /// `up × 2·half` taps, phase after phase; `None` when `up` is too large to tabulate.
    table: Option<Vec<f64>>,
    scratch: Vec<f64>,
    /// Input samples from global index `start` on.
    input: Vec<f64>,
    start: u64,
    received: u64,
    produced: u64,
    ended: bool,
}

impl Resampler {
    /// A resampler by `up / down` (reduced by their greatest common divisor). Both must be
    /// positive.
    pub fn new(up: u64, down: u64) -> Self {
        assert!(up > 0 && down > 0, "resampling factors must be positive");
        let g = gcd(up, down);
        let (up, down) = (up / g, down / g);
        let shape = Shape::new(up, down);
        let width = 2 * shape.half;
        let table = (up > 1 && up <= MAX_TABLE_PHASES).then(|| {
            let mut table = vec![0.0; up as usize * width];
            for (phase, taps) in table.chunks_exact_mut(width).enumerate() {
                shape.taps(phase as f64 / up as f64, taps);
            }
            table
        });
        Resampler {
            up,
            down,
            shape,
            table,
            scratch: vec![0.0; width],
            input: Vec::new(),
            start: 0,
            received: 0,
            produced: 0,
            ended: false,
        }
    }

    /// Whether this resampler passes samples through unchanged (`up == down`).
    pub fn is_identity(&self) -> bool {
        self.up == self.down
    }

    /// Appends input samples. Ignored after [`finish`](Self::finish).
    pub fn push(&mut self, samples: &[f64]) {
        if !self.ended {
            self.input.extend_from_slice(samples);
            self.received += samples.len() as u64;
        }
    }

    /// Marks the end of the input: every remaining output becomes available.
    pub fn finish(&mut self) {
        self.ended = true;
    }

    /// Outputs of the whole input so far: `ceil(inputs × up / down)` once finished.
    fn total(&self) -> u64 {
        if self.is_identity() {
            return self.received;
        }
        let ready = if self.ended {
            self.received as u128
        } else {
            // Output m needs input floor(m·down/up) + half: m·down < (received − half)·up.
            (self.received as u128).saturating_sub(self.shape.half as u128)
        };
        (ready * self.up as u128).div_ceil(self.down as u128) as u64
    }

    /// Outputs that can be taken now.
    pub fn available(&self) -> usize {
        (self.total() - self.produced) as usize
    }

    /// Input sample `j` (global index, may lie past either end), by odd reflection outside.
    fn sample(&self, j: i64) -> f64 {
        let n = self.received as i64;
        let at = |i: i64| self.input[(i - self.start as i64) as usize];
        if j < 0 {
            let k = (-j).min(n - 1);
            2.0 * at(0) - at(k)
        } else if j >= n {
            let k = (j - (n - 1)).min(n - 1);
            2.0 * at(n - 1) - at(n - 1 - k)
        } else {
            at(j)
        }
    }

    /// Appends the next `count` outputs (at most [`available`](Self::available)) to `out`.
    pub fn take(&mut self, count: usize, out: &mut Vec<f64>) {
        let count = count.min(self.available());
        let width = 2 * self.shape.half;
        for _ in 0..count {
            let m = self.produced;
            if self.is_identity() {
                out.push(self.input[(m - self.start) as usize]);
                self.produced += 1;
                continue;
            }
            let position = m as u128 * self.down as u128;
            let c = (position / self.up as u128) as i64;
            let phase = (position % self.up as u128) as u64;
            let mut taps = std::mem::take(&mut self.scratch);
            let weights: &[f64] = match &self.table {
                Some(table) => &table[phase as usize * width..(phase as usize + 1) * width],
                None => {
                    self.shape.taps(phase as f64 / self.up as f64, &mut taps);
                    &taps
                }
            };
            let first = c + 1 - self.shape.half as i64;
            let value = weights
                .iter()
                .enumerate()
                .map(|(k, w)| w * self.sample(first + k as i64))
                .sum();
            self.scratch = taps;
            out.push(value);
            self.produced += 1;
        }
        self.trim();
    }

    /// Drops input no later output can reach (reflections at the end reach one sample
    /// further back than the kernel).
    fn trim(&mut self) {
        let next = (self.produced as u128 * self.down as u128 / self.up as u128) as u64;
        let keep_from = next.saturating_sub(self.shape.half as u64 + 1);
        let drop = keep_from.saturating_sub(self.start) as usize;
        // Drain in large steps only, so that trimming stays linear overall.
        if drop > 4096 && drop * 2 > self.input.len() {
            self.input.drain(..drop);
            self.start += drop as u64;
        }
    }
}

/// Resamples `x` by `up / down` with a band-limited (Kaiser-windowed sinc) kernel:
/// `ceil(x.len() × up / down)` samples, output `m` at input position `m × down / up`.
/// See the [module](self) documentation for the kernel and the edges. An empty `x` gives an
/// empty output; `up == down` returns `x`.
///
/// Panics when `up` or `down` is 0 (callers check rates first).
pub fn resample(x: &[f64], up: u64, down: u64) -> Vec<f64> {
    let mut resampler = Resampler::new(up, down);
    resampler.push(x);
    resampler.finish();
    let mut out = Vec::with_capacity(resampler.available());
    resampler.take(usize::MAX, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::TAU;

    fn sine(n: usize, rate: f64, freq: f64, phase: f64, offset: f64) -> Vec<f64> {
        (0..n)
            .map(|i| offset + (TAU * freq * i as f64 / rate + phase).sin())
            .collect()
    }

    /// Largest |a − b| over `a[skip..len − skip]`.
    fn max_error(a: &[f64], b: &[f64], skip: usize) -> f64 {
        assert_eq!(a.len(), b.len());
        a[skip..a.len() - skip]
            .iter()
            .zip(&b[skip..b.len() - skip])
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn bessel_i0_matches_known_values() {
        // scipy.special.i0(1.0) and i0(10.0).
        assert!((bessel_i0(0.0) - 1.0).abs() < 1e-15);
        assert!((bessel_i0(1.0) - 1.266_065_877_752_008_4).abs() < 1e-13);
        assert!((bessel_i0(10.0) / 2_815.716_628_466_254 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn upsampling_a_sine_matches_the_sine() {
        // 256 → 512 Hz and 200 → 256 Hz (32/25), sines from 0.05 to 0.8 of the input Nyquist.
        for (from, to) in [(256u64, 512u64), (200, 256), (250, 1000)] {
            for share in [0.05, 0.3, 0.8] {
                let freq = share * from as f64 / 2.0;
                let x = sine(2 * from as usize, from as f64, freq, 0.3, 0.5);
                let y = resample(&x, to, from);
                assert_eq!(y.len(), 2 * to as usize);
                let want = sine(y.len(), to as f64, freq, 0.3, 0.5);
                let skip = (HALF_WIDTH as u64 * to).div_ceil(from) as usize;
                let err = max_error(&y, &want, skip);
                assert!(err < 2e-5, "{from} → {to} Hz, {freq} Hz: error {err:e}");
            }
        }
    }

    #[test]
    fn edges_of_a_slow_sine_stay_close() {
        // Odd reflection continues a slow signal smoothly: no dip at either end.
        let x = sine(512, 256.0, 3.0, 0.3, 20.0);
        let y = resample(&x, 2, 1);
        let want = sine(1024, 512.0, 3.0, 0.3, 20.0);
        assert!(
            max_error(&y, &want, 0) < 2e-3,
            "{}",
            max_error(&y, &want, 0)
        );
    }

    #[test]
    fn a_constant_stays_constant() {
        let x = vec![-37.25; 300];
        for (up, down) in [(2, 1), (32, 25), (7, 3), (1, 3)] {
            let y = resample(&x, up, down);
            assert_eq!(y.len(), (300 * up as usize).div_ceil(down as usize));
            assert!(
                y.iter().all(|v| (v + 37.25).abs() < 1e-12),
                "{up}/{down}: {y:?}"
            );
        }
    }

    #[test]
    fn input_samples_are_kept_where_positions_coincide() {
        let x = sine(300, 100.0, 7.0, 1.0, 0.0);
        let y = resample(&x, 3, 1);
        for (i, v) in x.iter().enumerate() {
            assert!((y[3 * i] - v).abs() < 1e-12, "sample {i}");
        }
        assert_eq!(resample(&x, 5, 5), x);
        assert!(resample(&[], 2, 1).is_empty());
        // One or two samples: reflection clamps to what there is.
        let one = resample(&[4.0], 3, 1);
        assert!(
            one.len() == 3 && one.iter().all(|v| (v - 4.0).abs() < 1e-12),
            "{one:?}"
        );
        assert!(resample(&[1.0, 2.0], 2, 1).iter().all(|v| v.is_finite()));
    }

    #[test]
    fn downsampling_removes_what_the_new_rate_cannot_hold() {
        // 400 Hz → 100 Hz: a 10 Hz sine passes, a 150 Hz one (above the new Nyquist) is gone.
        let slow = sine(800, 400.0, 10.0, 0.2, 0.0);
        let fast = sine(800, 400.0, 150.0, 0.0, 0.0);
        let mixed: Vec<f64> = slow.iter().zip(&fast).map(|(a, b)| a + b).collect();
        let y = resample(&mixed, 1, 4);
        let want = sine(200, 100.0, 10.0, 0.2, 0.0);
        let err = max_error(&y, &want, HALF_WIDTH);
        assert!(err < 1e-3, "error {err:e}");
    }

    #[test]
    fn pieces_give_the_same_output_as_the_whole() {
        let x = sine(1000, 200.0, 13.0, 0.5, 2.0);
        for (up, down) in [(32u64, 25u64), (2, 1), (1, 1), (5000, 4999)] {
            let whole = resample(&x, up, down);
            let mut r = Resampler::new(up, down);
            let mut out = Vec::new();
            let mut at = 0;
            for (k, size) in [1usize, 7, 100, 3, 250].iter().cycle().enumerate() {
                if at >= x.len() {
                    break;
                }
                let end = (at + size).min(x.len());
                r.push(&x[at..end]);
                at = end;
                // Take only some of what is there, now and then.
                let n = if k % 3 == 0 {
                    r.available() / 2
                } else {
                    r.available()
                };
                r.take(n, &mut out);
            }
            r.finish();
            r.take(usize::MAX, &mut out);
            assert_eq!(out.len(), whole.len(), "{up}/{down}");
            for (i, (a, b)) in out.iter().zip(&whole).enumerate() {
                assert!((a - b).abs() < 1e-12, "{up}/{down}, sample {i}: {a} vs {b}");
            }
        }
    }
}
