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
    pub solver: Solver,
    pub fit_seconds: f64,
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
