//! `group fit`'s encoder from row blocks of the distinct images (issue 80, goal 4): on trials
//! that repeat their images, its three paths (primal, dual, and the reduced basis when the
//! basis holds the features' whole row space) give the in-memory ridge's outputs on every
//! trial row — the same GCV α per target, the weights, intercepts and scores to float32's
//! rounding — and the reduced path below the features' rank says how much it kept.

use brainrecon_align::pooled_ridge::{
    fit_pooled_ridge, PooledPath, PooledRidge, PooledRidgeOptions, RepeatedRows,
};
use brainrecon_align::streamed::MatRows;
use brainrecon_ridge::{Cv, RidgeCv, RidgeModel};
use brainrecon_routes::group::fit::map_alphas;
use faer::Mat;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Distinct images (m × p, rounded through f32 as the in-memory fit takes them), their trial
/// counts (1–3, as NSD's repeats) and every trial's target (n × k): a linear response to the
/// features plus trial noise.
struct Trials {
    images: Mat<f64>,
    counts: Vec<usize>,
    image_of: Vec<usize>,
    targets: Mat<f64>,
}

fn trials(m: usize, p: usize, rank: Option<usize>, k: usize, seed: u64) -> Trials {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut normal = || rng.gen::<f64>() * 2.0 - 1.0;
    let images = match rank {
        None => Mat::from_fn(m, p, |_, _| normal()),
        Some(r) => {
            let a = Mat::from_fn(m, r, |_, _| normal());
            let b = Mat::from_fn(r, p, |_, _| normal());
            &a * &b
        }
    };
    let images = Mat::from_fn(m, p, |i, j| (images[(i, j)] + 0.3) as f32 as f64);
    let truth = Mat::from_fn(p, k, |_, _| normal() / (p as f64).sqrt());
    let counts: Vec<usize> = (0..m).map(|i| 1 + (i * 7 + 3) % 3).collect();
    let image_of: Vec<usize> = counts
        .iter()
        .enumerate()
        .flat_map(|(i, &c)| std::iter::repeat_n(i, c))
        .collect();
    let clean = &images * &truth;
    let targets = Mat::from_fn(image_of.len(), k, |t, j| {
        (clean[(image_of[t], j)] + 0.5 * normal() + j as f64) as f32 as f64
    });
    Trials {
        images,
        counts,
        image_of,
        targets,
    }
}

/// The in-memory ridge on every trial row (one row per trial, images repeated), as `group
/// fit` fitted its encoder before it was streamed.
fn in_memory(t: &Trials) -> RidgeModel {
    let x = Mat::<f32>::from_fn(t.image_of.len(), t.images.ncols(), |r, j| {
        t.images[(t.image_of[r], j)] as f32
    });
    let y = Mat::<f32>::from_fn(t.targets.nrows(), t.targets.ncols(), |r, j| {
        t.targets[(r, j)] as f32
    });
    RidgeCv {
        alphas: map_alphas(),
        cv: Cv::Gcv,
        ..RidgeCv::default()
    }
    .fit(x.as_ref(), y.as_ref())
    .unwrap()
}

fn streamed(t: &Trials, max_rank: usize, block_rows: usize) -> PooledRidge {
    let (m, k) = (t.images.nrows(), t.targets.ncols());
    let mut y_mean = Mat::<f64>::zeros(m, k);
    for (r, &i) in t.image_of.iter().enumerate() {
        for j in 0..k {
            y_mean[(i, j)] += t.targets[(r, j)] / t.counts[i] as f64;
        }
    }
    let y_within: Vec<f64> = (0..k)
        .map(|j| {
            t.image_of
                .iter()
                .enumerate()
                .map(|(r, &i)| (t.targets[(r, j)] - y_mean[(i, j)]).powi(2))
                .sum()
        })
        .collect();
    fit_pooled_ridge(
        &RepeatedRows {
            x: &MatRows(t.images.as_ref()),
            counts: &t.counts,
            y_mean: y_mean.as_ref(),
            y_within: &y_within,
        },
        &PooledRidgeOptions {
            alphas: map_alphas(),
            max_rank,
            seed: 3,
            block_rows,
        },
    )
    .unwrap()
}

/// The largest difference relative to the largest magnitude of `want`.
fn relative(got: impl Iterator<Item = f64>, want: impl Iterator<Item = f64>) -> f64 {
    let (mut diff, mut scale) = (0.0f64, 0.0f64);
    for (g, w) in got.zip(want) {
        diff = diff.max((g - w).abs());
        scale = scale.max(w.abs());
    }
    diff / scale
}

fn assert_same(what: &str, got: &PooledRidge, want: &RidgeModel) {
    assert_eq!(got.alphas, want.alphas, "{what}: GCV's alpha per target");
    let (p, k) = (got.weights.nrows(), got.weights.ncols());
    let weights = relative(
        (0..k)
            .flat_map(|j| (0..p).map(move |i| (i, j)))
            .map(|(i, j)| got.weights[(i, j)]),
        (0..k)
            .flat_map(|j| (0..p).map(move |i| (i, j)))
            .map(|(i, j)| want.weights[(i, j)] as f64),
    );
    assert!(weights < 1e-4, "{what}: weights differ by {weights:e}");
    let intercept = relative(
        got.intercept.iter().copied(),
        want.intercept.iter().map(|&v| v as f64),
    );
    assert!(
        intercept < 1e-4,
        "{what}: intercepts differ by {intercept:e}"
    );
    let n_alphas = got.scores.nrows();
    let scores = relative(
        (0..k).flat_map(|j| (0..n_alphas).map(move |g| got_score(got, g, j))),
        (0..k).flat_map(|j| (0..n_alphas).map(move |g| want.cv_scores[(g, j)] as f64)),
    );
    assert!(scores < 1e-4, "{what}: GCV scores differ by {scores:e}");
    assert!(
        (got.captured - 1.0).abs() < 1e-9,
        "{what}: captured {}",
        got.captured
    );
}

fn got_score(fit: &PooledRidge, g: usize, j: usize) -> f64 {
    fit.scores[(g, j)]
}

#[test]
fn every_path_gives_the_in_memory_ridge_on_the_trials() {
    // 40 images × 300 features, ~80 trials, 6 targets: wider than long, as NSD's encoder.
    let t = trials(40, 300, None, 6, 1);
    let want = in_memory(&t);
    let grid = map_alphas();
    assert!(
        want.alphas
            .iter()
            .any(|a| a != &grid[0] && a != &grid[grid.len() - 1]),
        "GCV chose the grid's ends only: {:?}",
        want.alphas
    );
    // p ≤ the basis: the primal normal equations, summed over blocks of 7 images.
    let primal = streamed(&t, 4096, 7);
    assert_eq!(primal.path, PooledPath::Primal);
    assert_same("primal", &primal, &want);
    // m ≤ the basis < p: the dual Gram from pairs of blocks.
    let dual = streamed(&t, 100, 7);
    assert_eq!((dual.path, dual.rank), (PooledPath::Dual, 40));
    assert_same("dual", &dual, &want);

    // Features of rank 12 (60 images × 300): a basis of 20 < m and < p holds the whole row
    // space, so the reduced path is exact.
    let low = trials(60, 300, Some(12), 5, 2);
    let want = in_memory(&low);
    let reduced = streamed(&low, 20, 9);
    assert_eq!((reduced.path, reduced.rank), (PooledPath::Reduced, 20));
    assert_same("reduced, basis above the rank", &reduced, &want);

    // Below the rank it is an approximation, and says how much of the features it held.
    let truncated = streamed(&t, 10, 7);
    assert_eq!(truncated.path, PooledPath::Reduced);
    assert!(
        truncated.captured > 0.2 && truncated.captured < 0.9,
        "captured {}",
        truncated.captured
    );
}
