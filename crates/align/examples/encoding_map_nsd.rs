//! Times a new subject's encoding map at NSD size: X 750 × 15,724 betas, T 750 × k coordinates
//! in the space (default k = 1,024), the penalties chosen over the default 5 × 5 grid by 5-fold
//! cross-validation, then the refit. Prints seconds and the process's peak memory.
//!
//! `cargo run --release -p brainrecon-align --example encoding_map_nsd -- [k] [n] [v]`

use brainrecon_align::encoding_map::{fit_encoding_map, DEFAULT_LAMBDAS, DEFAULT_MUS};
use faer::Mat;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

fn peak_gb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0 / 1024.0)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("sizes are whole numbers"))
        .collect();
    let k = args.first().copied().unwrap_or(1024);
    let n = args.get(1).copied().unwrap_or(750);
    let v = args.get(2).copied().unwrap_or(15_724);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut uniform = |r: usize, c: usize| Mat::<f64>::from_fn(r, c, |_, _| rng.gen::<f64>() - 0.5);
    // Voxels that follow the space through random embeddings, plus as much noise.
    let t = uniform(n, k);
    let e = uniform(k, v);
    let noise = uniform(n, v);
    let x = &(&t * &e) * (1.0 / (k as f64).sqrt()) + &noise;
    let started = Instant::now();
    let fitted = fit_encoding_map(x.as_ref(), t.as_ref(), &DEFAULT_LAMBDAS, &DEFAULT_MUS, 5)
        .expect("valid sizes");
    println!(
        "{{\"n\": {n}, \"voxels\": {v}, \"k\": {k}, \"seconds\": {:.2}, \"peak_gb\": {:.2}, \"lambda\": {}, \"mu\": {}, \"cv_error\": {:.4}}}",
        started.elapsed().as_secs_f64(),
        peak_gb(),
        fitted.lambda,
        fitted.mu,
        fitted.cv_error
    );
}
