//! Synthetic workload for timing (no assertions; used by benchmarks/CLI).

use std::time::Instant;

use faer::Mat;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::Result;
use crate::fit::{Cv, RidgeCv};
use crate::metrics::{pearson_per_target, summarize};
use crate::spectral::Solver;

/// Timings of one [`bench_workload`] run.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// The solver the fit chose (primal or dual).
    pub solver: Solver,
    /// Wall-clock seconds of the fit.
    pub fit_seconds: f64,
    /// Wall-clock seconds of the prediction on the test rows.
    pub predict_seconds: f64,
    /// Mean test Pearson r over targets (sanity check that signal is recovered).
    pub mean_test_r: f64,
}

/// Fits LOO ridge on a planted rank-8 problem (X: n_train×p, Y: n_train×t)
/// with `n_alphas` log-spaced alphas, then predicts n_test rows.
pub fn bench_workload(
    n_train: usize,
    n_test: usize,
    p: usize,
    t: usize,
    n_alphas: usize,
    seed: u64,
) -> Result<BenchReport> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rank = 8;
    let mut normal = |rows: usize, cols: usize| {
        Mat::<f32>::from_fn(rows, cols, |_, _| rng.gen::<f32>() * 2.0 - 1.0)
    };
    let (mix_x, mix_y) = (normal(rank, p), normal(rank, t));
    let (latent_train, latent_test) = (normal(n_train, rank), normal(n_test, rank));
    let (noise_x, noise_y, noise_test) =
        (normal(n_train, p), normal(n_train, t), normal(n_test, p));
    let x = &latent_train * &mix_x + &noise_x;
    let y = &latent_train * &mix_y + &noise_y;
    let x_test = &latent_test * &mix_x + &noise_test;
    let y_test = &latent_test * &mix_y;
    let alphas = (0..n_alphas)
        .map(|k| 10f64.powf(-1.0 + 6.0 * k as f64 / (n_alphas.max(2) - 1) as f64))
        .collect();
    let estimator = RidgeCv {
        alphas,
        cv: Cv::Loo,
        ..RidgeCv::default()
    };
    let start = Instant::now();
    let model = estimator.fit(x.as_ref(), y.as_ref())?;
    let fit_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let pred = model.predict(x_test.as_ref())?;
    let predict_seconds = start.elapsed().as_secs_f64();
    Ok(BenchReport {
        solver: model.options.solver,
        fit_seconds,
        predict_seconds,
        mean_test_r: summarize(&pearson_per_target(y_test.as_ref(), pred.as_ref())?).mean,
    })
}

/// One benchmark shape: `x_train` n_train×p → `y_train` n_train×t, tested on n_test rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// Short label (`A`, `B`, `C`, `A16k`).
    pub name: &'static str,
    /// Training samples.
    pub n_train: usize,
    /// Test samples.
    pub n_test: usize,
    /// Features.
    pub p: usize,
    /// Targets.
    pub t: usize,
}

/// The benchmark's workloads: A decoding (voxels → features), B encoding
/// (features → voxels), C small, A16k decoding the full SD latent (4×64×64) from A's voxels.
pub const WORKLOADS: [Workload; 4] = [
    Workload {
        name: "A",
        n_train: 8859,
        n_test: 982,
        p: 15724,
        t: 768,
    },
    Workload {
        name: "B",
        n_train: 8859,
        n_test: 982,
        p: 768,
        t: 15724,
    },
    Workload {
        name: "C",
        n_train: 2000,
        n_test: 500,
        p: 4000,
        t: 1000,
    },
    Workload {
        name: "A16k",
        n_train: 8859,
        n_test: 982,
        p: 15724,
        t: 16384,
    },
];

/// The benchmark's alpha grid: 10 values log-spaced over 10^1 … 10^6.
pub fn bench_alphas() -> Vec<f64> {
    (0..10)
        .map(|k| 10f64.powf(1.0 + 5.0 * k as f64 / 9.0))
        .collect()
}

/// Row-major f32 arrays of one generated workload.
pub struct BenchData {
    /// n_train×p
    pub x_train: Vec<f32>,
    /// n_train×t
    pub y_train: Vec<f32>,
    /// n_test×p
    pub x_test: Vec<f32>,
    /// n_test×t
    pub y_test: Vec<f32>,
}

/// Rank of the planted signal shared by X and Y.
const SIGNAL_RANK: usize = 16;

/// Generates `w` from `seed` (ChaCha8, so the data are identical on every machine).
///
/// A latent `L` (n×16) drives both sides: `X = L·Mx + Ex`, `Y = L·My + Ey`,
/// with unit-variance uniform noise, signal variance 0.1 per column of X
/// (fMRI-like SNR) and 1.0 per column of Y. Test rows use fresh `L` and noise.
pub fn generate(w: &Workload, seed: u64) -> BenchData {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x_gain = (0.1 / SIGNAL_RANK as f32).sqrt();
    let y_gain = (1.0 / SIGNAL_RANK as f32).sqrt();
    let mix_x = uniform(&mut rng, SIGNAL_RANK * w.p, x_gain);
    let mix_y = uniform(&mut rng, SIGNAL_RANK * w.t, y_gain);
    let latent_train = uniform(&mut rng, w.n_train * SIGNAL_RANK, 1.0);
    let latent_test = uniform(&mut rng, w.n_test * SIGNAL_RANK, 1.0);
    BenchData {
        x_train: planted(&mut rng, &latent_train, &mix_x, w.p),
        y_train: planted(&mut rng, &latent_train, &mix_y, w.t),
        x_test: planted(&mut rng, &latent_test, &mix_x, w.p),
        y_test: planted(&mut rng, &latent_test, &mix_y, w.t),
    }
}

/// `len` uniform values with variance `gain²` (uniform on ±√3·gain).
fn uniform(rng: &mut ChaCha8Rng, len: usize, gain: f32) -> Vec<f32> {
    let half_width = 3f32.sqrt() * gain;
    (0..len)
        .map(|_| (rng.gen::<f32>() * 2.0 - 1.0) * half_width)
        .collect()
}

/// Row-major `latent (n×k) · mix (k×cols) + noise`, noise of unit variance.
fn planted(rng: &mut ChaCha8Rng, latent: &[f32], mix: &[f32], cols: usize) -> Vec<f32> {
    let mut out = uniform(rng, latent.len() / SIGNAL_RANK * cols, 1.0);
    for (row, factors) in out
        .chunks_exact_mut(cols)
        .zip(latent.chunks_exact(SIGNAL_RANK))
    {
        for (&f, weights) in factors.iter().zip(mix.chunks_exact(cols)) {
            for (o, &m) in row.iter_mut().zip(weights) {
                *o += f * m;
            }
        }
    }
    out
}
