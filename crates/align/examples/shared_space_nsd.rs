//! Times adapting a new subject to a shared space at NSD size: X 750 × 15,724 betas,
//! Y 750 × 75,520 targets, P 75,520 × k (default 4,096).
//!
//! `cargo run --release -p brainrecon-align --example shared_space_nsd -- [k] [n] [v] [d] [S]`
//!
//! With S > 0 it then fits a group of S subjects of that size (randomized path) and times it.

use std::time::Instant;

use brainrecon_align::shared_space::{
    fit_shared_space, fit_subject_map, gcv_alpha, SharedSpaceOptions,
};
use faer::Mat;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("sizes are whole numbers"))
        .collect();
    let k = args.first().copied().unwrap_or(4096);
    let n = args.get(1).copied().unwrap_or(750);
    let v = args.get(2).copied().unwrap_or(15_724);
    let d = args.get(3).copied().unwrap_or(75_520);
    let subjects = args.get(4).copied().unwrap_or(0);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut uniform = |r: usize, c: usize| {
        let mut m = Mat::<f64>::zeros(r, c);
        for j in 0..c {
            for i in 0..r {
                m[(i, j)] = rng.gen::<f64>() - 0.5;
            }
        }
        m
    };
    let x = uniform(n, v);
    let y = uniform(n, d);
    // Orthonormal columns with disjoint supports: as dense to a matrix product as any P.
    let mut p = Mat::<f64>::zeros(d, k);
    for i in 0..d {
        let j = i % k;
        let count = (d - j).div_ceil(k) as f64;
        p[(i, j)] = if i % 2 == 0 { 1.0 } else { -1.0 } / count.sqrt();
    }
    println!("n = {n}, v = {v}, d = {d}, k = {k}");

    let t = Instant::now();
    let sub = y.as_ref().subcols(0, d.min(2000));
    let grid: Vec<f64> = (0..9).map(|i| 10f64.powi(i)).collect();
    let alpha = gcv_alpha(x.as_ref(), sub, &grid).expect("gcv");
    println!(
        "gcv_alpha on {} targets: {:.2} s (alpha {alpha})",
        sub.ncols(),
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let m = fit_subject_map(x.as_ref(), y.as_ref(), p.as_ref(), alpha).expect("map");
    println!(
        "fit_subject_map: {:.2} s, map {} × {}",
        t.elapsed().as_secs_f64(),
        m.nrows(),
        m.ncols()
    );

    drop((m, p));

    if subjects > 0 {
        let xs: Vec<Mat<f64>> = (0..subjects).map(|_| uniform(n, v)).collect();
        let ys: Vec<Mat<f64>> = (0..subjects).map(|_| uniform(n, d)).collect();
        let xr: Vec<_> = xs.iter().map(|m| m.as_ref()).collect();
        let yr: Vec<_> = ys.iter().map(|m| m.as_ref()).collect();
        let opts = SharedSpaceOptions {
            k,
            ..Default::default()
        };
        let t = Instant::now();
        let space = fit_shared_space(&xr, &yr, &vec![alpha; subjects], &opts).expect("fit");
        println!(
            "fit_shared_space, {subjects} subjects: {:.2} s, basis {} × {}",
            t.elapsed().as_secs_f64(),
            space.basis.nrows(),
            space.basis.ncols()
        );
    }
}
