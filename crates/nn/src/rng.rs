//! Seeded randomness: Gaussian noise, and the seeded streams behind parameter initialisation
//! ([`crate::init`]) and mini-batch order ([`shuffled_batches`]).
//!
//! candle's CPU random number generator cannot be seeded, so every random draw of the engine
//! (initial latents, img2img noise, ancestral and DDIM eta noise, VAE posterior samples) comes
//! from here: a ChaCha8 stream seeded by the caller, turned into standard normal values by
//! `rand_distr`, and copied into a tensor. The same seed gives the same bits on every platform.
//!
//! A [`NoiseSource`] is either such a seeded stream or a queue of tensors the caller already
//! holds (noise saved by diffusers for a golden test, or an x_T handed over by another route).

use candle_core::{DType, Device, Tensor};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::collections::VecDeque;

use crate::error::{ModelError, Result};

/// Where Gaussian noise comes from.
pub trait NoiseSource {
    /// A tensor of independent N(0, 1) values with this shape, on `device`, in `dtype`.
    fn gaussian(&mut self, shape: &[usize], device: &Device, dtype: DType) -> Result<Tensor>;
}

/// A reproducible stream of standard normal values: ChaCha8 seeded by the caller.
#[derive(Clone, Debug)]
pub struct SeededNoise {
    rng: ChaCha8Rng,
}

impl SeededNoise {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Self {
        SeededNoise {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// `n` standard normal values, in stream order.
    pub fn normal_vec(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| StandardNormal.sample(&mut self.rng))
            .collect()
    }
}

impl NoiseSource for SeededNoise {
    fn gaussian(&mut self, shape: &[usize], device: &Device, dtype: DType) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let values = self.normal_vec(n);
        Ok(Tensor::from_vec(values, shape, device)?.to_dtype(dtype)?)
    }
}

/// One seeded stream per row of a batch: a draw of shape `[B, ...]` takes row `b` from stream
/// `b`, so that a batch of samples gets exactly the noise each sample gets on its own (a draw of
/// `[1, ...]` from its stream). Lets one U-Net call serve several reconstructions.
#[derive(Clone, Debug)]
pub struct PerRowNoise {
    streams: Vec<SeededNoise>,
}

impl PerRowNoise {
    /// One stream per row, in order.
    pub fn new(streams: Vec<SeededNoise>) -> Self {
        PerRowNoise { streams }
    }

    /// The number of rows (streams).
    pub fn rows(&self) -> usize {
        self.streams.len()
    }
}

impl NoiseSource for PerRowNoise {
    fn gaussian(&mut self, shape: &[usize], device: &Device, dtype: DType) -> Result<Tensor> {
        if shape.first() != Some(&self.streams.len()) {
            return Err(ModelError::Invalid(format!(
                "per-row noise: a draw of shape {shape:?} for {} streams (the first dimension \
                 must be the number of streams)",
                self.streams.len()
            )));
        }
        let row: usize = shape[1..].iter().product();
        let mut values = Vec::with_capacity(row * self.streams.len());
        for stream in &mut self.streams {
            values.extend(stream.normal_vec(row));
        }
        Ok(Tensor::from_vec(values, shape, device)?.to_dtype(dtype)?)
    }
}

/// Noise the caller already has, handed out in order. Asking for more tensors than were given,
/// or for a different shape than the next one, is an error naming both shapes.
#[derive(Debug, Default)]
pub struct QueuedNoise {
    queue: VecDeque<Tensor>,
    served: usize,
}

impl QueuedNoise {
    /// Serves `tensors` in order.
    pub fn new(tensors: impl IntoIterator<Item = Tensor>) -> Self {
        QueuedNoise {
            queue: tensors.into_iter().collect(),
            served: 0,
        }
    }

    /// Tensors not yet handed out.
    pub fn remaining(&self) -> usize {
        self.queue.len()
    }
}

impl NoiseSource for QueuedNoise {
    fn gaussian(&mut self, shape: &[usize], device: &Device, dtype: DType) -> Result<Tensor> {
        let index = self.served;
        let next = self.queue.pop_front().ok_or_else(|| {
            ModelError::Invalid(format!(
                "noise queue: draw {index} of shape {shape:?} was asked for, but only {index} \
                 tensors were given"
            ))
        })?;
        if next.dims() != shape {
            return Err(ModelError::Invalid(format!(
                "noise queue: draw {index} must have shape {shape:?}, the given tensor has {:?}",
                next.dims()
            )));
        }
        self.served += 1;
        Ok(next.to_device(device)?.to_dtype(dtype)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_values_different_seed_different_values() {
        let a = SeededNoise::new(7).normal_vec(1000);
        let b = SeededNoise::new(7).normal_vec(1000);
        let c = SeededNoise::new(8).normal_vec(1000);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mean = a.iter().sum::<f32>() / 1000.0;
        let var = a.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / 999.0;
        assert!(mean.abs() < 0.1, "mean {mean}");
        assert!((var - 1.0).abs() < 0.15, "variance {var}");
    }

    #[test]
    fn per_row_noise_gives_each_row_its_own_stream() {
        let mut batch = PerRowNoise::new(vec![SeededNoise::new(3), SeededNoise::new(4)]);
        let drawn = batch
            .gaussian(&[2, 3, 2], &Device::Cpu, DType::F32)
            .unwrap();
        let again = batch.gaussian(&[2, 1], &Device::Cpu, DType::F32).unwrap();
        let (mut a, mut b) = (SeededNoise::new(3), SeededNoise::new(4));
        let expected: Vec<f32> = [a.normal_vec(6), b.normal_vec(6)].concat();
        assert_eq!(
            drawn.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            expected
        );
        let expected: Vec<f32> = [a.normal_vec(1), b.normal_vec(1)].concat();
        assert_eq!(
            again.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            expected
        );
        let err = batch
            .gaussian(&[3, 1], &Device::Cpu, DType::F32)
            .unwrap_err();
        assert!(err.to_string().contains("2 streams"), "{err}");
    }

    #[test]
    fn queued_noise_checks_shape_and_count() {
        let t = Tensor::zeros((1, 4), DType::F32, &Device::Cpu).unwrap();
        let mut q = QueuedNoise::new([t]);
        let err = q.gaussian(&[1, 5], &Device::Cpu, DType::F32).unwrap_err();
        assert!(err.to_string().contains("[1, 5]"), "{err}");
        let mut q = QueuedNoise::new([Tensor::zeros((1, 4), DType::F32, &Device::Cpu).unwrap()]);
        assert!(q.gaussian(&[1, 4], &Device::Cpu, DType::F32).is_ok());
        assert!(q.gaussian(&[1, 4], &Device::Cpu, DType::F32).is_err());
    }
}

/// Inverted dropout with a seeded mask: each element is kept with probability `1 − p` and
/// scaled by `1 / (1 − p)`, as `torch.nn.functional.dropout` in training mode. The mask comes
/// from `rng` (one uniform draw per element, in row-major order), so a training step's masks
/// depend only on its seed. `p == 0` returns `x` unchanged. Differentiable in `x`.
///
/// # Panics
/// When `p` is outside [0, 1).
pub fn dropout(x: &Tensor, p: f64, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    assert!((0.0..1.0).contains(&p), "dropout: p must be in [0, 1)");
    if p == 0.0 {
        return Ok(x.clone());
    }
    use rand::Rng;
    let scale = (1.0 / (1.0 - p)) as f32;
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| if rng.gen::<f64>() >= p { scale } else { 0.0 })
        .collect();
    let mask = Tensor::from_vec(mask, x.dims(), x.device())?.to_dtype(x.dtype())?;
    Ok(x.mul(&mask)?)
}

/// A ChaCha8 stream for one training step's dropout masks: seed and step select it, so a
/// resumed run draws the masks an uninterrupted one drew.
pub fn dropout_stream(seed: u64, step: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xD5_0000_0000_0000);
    rng.set_stream(step);
    rng
}

#[cfg(test)]
mod dropout_tests {
    use super::*;

    #[test]
    fn dropout_keeps_the_expected_share_and_scales_it() {
        let x = Tensor::ones(10_000, DType::F32, &Device::Cpu).unwrap();
        let y = dropout(&x, 0.25, &mut dropout_stream(1, 0)).unwrap();
        let v = y.to_vec1::<f32>().unwrap();
        let kept = v.iter().filter(|&&e| e != 0.0).count() as f64 / v.len() as f64;
        assert!((kept - 0.75).abs() < 0.02, "kept {kept}");
        assert!(v.iter().all(|&e| e == 0.0 || (e - 4.0 / 3.0).abs() < 1e-6));
        // the same step draws the same mask, another step another one
        let again = dropout(&x, 0.25, &mut dropout_stream(1, 0)).unwrap();
        assert_eq!(again.to_vec1::<f32>().unwrap(), v);
        let other = dropout(&x, 0.25, &mut dropout_stream(1, 1)).unwrap();
        assert_ne!(other.to_vec1::<f32>().unwrap(), v);
        assert_eq!(
            dropout(&x, 0.0, &mut dropout_stream(1, 0))
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            vec![1.0; 10_000]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Seeded streams for initialisation and mini-batch order
// ---------------------------------------------------------------------------------------------

/// 64-bit FNV-1a of `bytes`: a stable hash (the same on every platform and Rust version).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A ChaCha8 stream: key = `seed` (little endian) followed by an 8-byte domain tag (so that
/// the same seed gives unrelated streams for initialisation and shuffling), stream number
/// `stream`.
pub(crate) fn chacha(seed: u64, domain: &[u8; 8], stream: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(domain);
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(stream);
    rng
}

pub(crate) const INIT_DOMAIN: &[u8; 8] = b"br-init\0";
const SHUFFLE_DOMAIN: &[u8; 8] = b"br-shuf\0";

/// A uniform f64 in [0, 1) from the top 53 bits of one draw.
pub(crate) fn unit_f64(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A uniform integer in `0..n` (`n > 0`), without modulo bias (rejection sampling).
fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    debug_assert!(n > 0);
    // 2^64 mod n values at the top of the range are rejected.
    let reject = (u64::MAX % n + 1) % n;
    let limit = u64::MAX - reject;
    loop {
        let x = rng.next_u64();
        if x <= limit {
            return x % n;
        }
    }
}

/// The indices `0..n` in a seeded random order (Fisher–Yates on a ChaCha8 stream chosen by
/// `seed` and `epoch`), cut into consecutive batches of `batch`; the last batch holds the
/// remainder (it is shorter when `batch` does not divide `n`). The same arguments always give
/// the same batches; every epoch has its own order.
///
/// # Panics
/// When `batch` is 0.
pub fn shuffled_batches(n: usize, batch: usize, seed: u64, epoch: u64) -> Vec<Vec<usize>> {
    assert!(
        batch > 0,
        "shuffled_batches: the batch size must be at least 1"
    );
    let mut rng = chacha(seed, SHUFFLE_DOMAIN, epoch);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = below(&mut rng, i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order.chunks(batch).map(|c| c.to_vec()).collect()
}

#[cfg(test)]
mod stream_tests {
    use super::*;

    #[test]
    fn fnv1a_known_values() {
        // Reference values of the 64-bit FNV-1a specification.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn bounded_draws_are_uniform_and_in_range() {
        let mut rng = chacha(3, SHUFFLE_DOMAIN, 0);
        let mut counts = [0usize; 5];
        for _ in 0..50_000 {
            counts[below(&mut rng, 5) as usize] += 1;
        }
        for c in counts {
            assert!((c as f64 - 10_000.0).abs() < 400.0, "{counts:?}");
        }
        assert_eq!(below(&mut rng, 1), 0);
    }

    #[test]
    fn shuffled_batches_are_seeded_permutations() {
        let b = shuffled_batches(10, 3, 42, 0);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3, 3, 1]);
        let mut all: Vec<usize> = b.concat();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(b, shuffled_batches(10, 3, 42, 0));
        assert_ne!(b, shuffled_batches(10, 3, 42, 1));
        assert_ne!(b, shuffled_batches(10, 3, 43, 0));
        assert!(shuffled_batches(0, 4, 1, 0).is_empty());
        assert_eq!(shuffled_batches(1, 4, 1, 0), vec![vec![0]]);
        // Every position is reached by every index over many epochs (an unbiased shuffle).
        let mut first = [0usize; 4];
        for epoch in 0..4000 {
            first[shuffled_batches(4, 4, 9, epoch)[0][0]] += 1;
        }
        for c in first {
            assert!((c as f64 - 1000.0).abs() < 150.0, "{first:?}");
        }
    }
}
