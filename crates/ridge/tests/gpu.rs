//! The GPU fit (`--features cuda`, run where a CUDA device is present) against the CPU fit,
//! which the reference tests check against scikit-learn and himalaya: the same alphas, and
//! weights, intercepts and scores equal to the precision's rounding.
#![cfg(feature = "cuda")]

use brainrecon_ridge::{generate, Cv, Device, Precision, RidgeCv, RidgeModel, Scoring, Workload};
use faer::{Mat, MatRef};

/// Seeded data with a planted signal; X gets a constant column and a repeated row (a flat
/// column for the scale rule, a rank deficit for the eigensolver).
fn data(n: usize, p: usize, t: usize) -> (Mat<f32>, Mat<f32>) {
    let w = Workload {
        name: "gpu",
        n_train: n,
        n_test: 1,
        p,
        t,
    };
    let d = generate(&w, 7);
    let mut x = Mat::from_fn(n, p, |i, j| d.x_train[i * p + j]);
    let y = Mat::from_fn(n, t, |i, j| d.y_train[i * t + j]);
    for i in 0..n {
        x[(i, 1)] = 2.5;
    }
    for j in 0..p {
        x[(n - 1, j)] = x[(0, j)];
    }
    (x, y)
}

fn estimator(cv: Cv, precision: Precision) -> RidgeCv {
    RidgeCv {
        alphas: (0..8).map(|k| 10f64.powf(-1.0 + 0.8 * k as f64)).collect(),
        cv,
        precision,
        ..RidgeCv::default()
    }
}

fn max_abs(m: MatRef<'_, f32>) -> f64 {
    let mut worst = 0f64;
    for j in 0..m.ncols() {
        for i in 0..m.nrows() {
            worst = worst.max((m[(i, j)] as f64).abs());
        }
    }
    worst
}

/// Largest |a − b| over the largest |b|.
fn relative(a: MatRef<'_, f32>, b: MatRef<'_, f32>) -> f64 {
    assert_eq!((a.nrows(), a.ncols()), (b.nrows(), b.ncols()));
    let diff = Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[(i, j)] - b[(i, j)]);
    max_abs(diff.as_ref()) / max_abs(b).max(f64::MIN_POSITIVE)
}

/// Compares the GPU model with the CPU model; `tolerance` bounds the weights' relative error
/// over the targets whose alpha agrees, of which at least `agree` (share) must.
fn compare(
    estimator: &RidgeCv,
    x: &Mat<f32>,
    y: &Mat<f32>,
    tolerance: f64,
    agree: f64,
) -> (RidgeModel, RidgeModel) {
    let cpu = estimator.fit(x.as_ref(), y.as_ref()).unwrap();
    let gpu = RidgeCv {
        device: Device::cuda(0),
        ..estimator.clone()
    }
    .fit(x.as_ref(), y.as_ref())
    .unwrap();
    let label = format!(
        "{:?} {:?} intercept {} standardize {} {:?} {}×{}",
        estimator.cv,
        estimator.precision,
        estimator.fit_intercept,
        estimator.standardize,
        estimator.scoring,
        x.nrows(),
        x.ncols()
    );
    assert_eq!(gpu.options, cpu.options, "{label}");
    for (g, c) in [(&gpu.x_mean, &cpu.x_mean), (&gpu.x_scale, &cpu.x_scale)] {
        let r = |v: &[f32]| Mat::from_fn(1, v.len(), |_, j| v[j]);
        assert!(
            relative(r(g).as_ref(), r(c).as_ref()) < 1e-6,
            "{label}: column statistics differ"
        );
    }
    let same: Vec<usize> = (0..cpu.alphas.len())
        .filter(|&j| cpu.alphas[j] == gpu.alphas[j])
        .collect();
    let share = same.len() as f64 / cpu.alphas.len() as f64;
    assert!(
        share >= agree,
        "{label}: alphas agree for {share:.3} of the targets"
    );
    let pick = |m: &Mat<f32>| Mat::from_fn(m.nrows(), same.len(), |i, k| m[(i, same[k])]);
    let (wg, wc) = (pick(&gpu.weights), pick(&cpu.weights));
    let error = relative(wg.as_ref(), wc.as_ref());
    assert!(
        error < tolerance,
        "{label}: weights differ by {error:e} (relative)"
    );
    let row = |v: &[f32]| Mat::from_fn(1, same.len(), |_, k| v[same[k]]);
    let intercept = relative(row(&gpu.intercept).as_ref(), row(&cpu.intercept).as_ref());
    assert!(
        intercept < tolerance * 10.0,
        "{label}: intercepts differ by {intercept:e}"
    );
    let scores = relative(pick(&gpu.cv_scores).as_ref(), pick(&cpu.cv_scores).as_ref());
    assert!(
        scores < tolerance * 10.0,
        "{label}: CV scores differ by {scores:e}"
    );
    (cpu, gpu)
}

#[test]
fn float64_gpu_fits_equal_the_cpu_fits() {
    for (n, p, t) in [(120, 300, 13), (200, 40, 11)] {
        let (x, y) = data(n, p, t);
        for cv in [Cv::Gcv, Cv::Loo] {
            for (fit_intercept, standardize) in [(true, false), (true, true), (false, false)] {
                for scoring in [Scoring::NegMse, Scoring::R2] {
                    let e = RidgeCv {
                        fit_intercept,
                        standardize,
                        scoring,
                        ..estimator(cv.clone(), Precision::F64)
                    };
                    compare(&e, &x, &y, 1e-6, 1.0);
                }
            }
        }
    }
}

#[test]
fn float32_gpu_fits_agree_with_the_cpu_fits() {
    for (n, p, t) in [(300, 900, 40), (500, 60, 40)] {
        let (x, y) = data(n, p, t);
        for cv in [Cv::Gcv, Cv::Loo] {
            compare(&estimator(cv, Precision::F32), &x, &y, 2e-3, 0.9);
        }
    }
}

#[test]
fn target_chunks_do_not_change_the_gpu_model() {
    let (x, y) = data(80, 150, 29);
    for cv in [Cv::Gcv, Cv::Loo] {
        let e = RidgeCv {
            device: Device::cuda(0),
            ..estimator(cv, Precision::F64)
        };
        let whole = e.fit(x.as_ref(), y.as_ref()).unwrap();
        std::env::set_var("BRAINRECON_GPU_TARGET_CHUNK", "6");
        let chunked = e.fit(x.as_ref(), y.as_ref());
        std::env::remove_var("BRAINRECON_GPU_TARGET_CHUNK");
        assert_eq!(chunked.unwrap(), whole);
    }
}

#[test]
fn gpu_fit_of_a_target_range_matches_the_cpu() {
    let (x, y) = data(90, 200, 12);
    let e = estimator(Cv::Gcv, Precision::F64);
    let cpu = e.fit_targets(x.as_ref(), y.as_ref(), 3..9).unwrap();
    let gpu = RidgeCv {
        device: Device::cuda(0),
        ..e
    }
    .fit_targets(x.as_ref(), y.as_ref(), 3..9)
    .unwrap();
    assert_eq!(gpu.target_range, cpu.target_range);
    assert_eq!(gpu.alphas, cpu.alphas);
    assert!(relative(gpu.weights.as_ref(), cpu.weights.as_ref()) < 1e-6);
}

#[test]
fn kfold_and_missing_devices_are_clear_errors() {
    let (x, y) = data(40, 30, 3);
    let kfold = RidgeCv {
        device: Device::cuda(0),
        ..estimator(
            Cv::KFold {
                n_folds: 3,
                groups: None,
            },
            Precision::F64,
        )
    };
    let message = kfold.fit(x.as_ref(), y.as_ref()).unwrap_err().to_string();
    assert!(
        message.contains("K-fold") && message.contains("--device cpu"),
        "{message}"
    );
    let absent = RidgeCv {
        device: Device::cuda(97),
        ..estimator(Cv::Gcv, Precision::F64)
    };
    let message = absent.fit(x.as_ref(), y.as_ref()).unwrap_err().to_string();
    assert!(message.contains("cuda:97 does not exist"), "{message}");
}
