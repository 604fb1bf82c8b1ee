//! Ridge on plain .npy arrays (`brainrecon_routes::decode::arrays`, the work of `brainrecon ridge`):
//! fits checked against the committed scikit-learn/himalaya fixtures of crates/ridge, shards
//! merged, and the scores.

use brainrecon_formats::npy;
use brainrecon_ridge::{RidgeCv, RidgeModel};
use brainrecon_routes::decode::arrays::{fit, predict, score, FitOptions};
use brainrecon_testkit::{max_rel_err, ArrayFixture};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Writes a ridge fixture's array `key` to `dir/key.npy` as float32 (how the inputs are stored).
fn write_f32(fixture: &ArrayFixture, key: &str, dir: &Path) -> PathBuf {
    let path = dir.join(format!("{key}.npy"));
    npy::write(&path, &fixture.shape(key), &fixture.f32_values(key)).unwrap();
    path
}

/// A fit of `x` → `y` with `alphas` and `cv`, the other settings as `brainrecon ridge fit`'s
/// defaults unless `set` changes them.
fn fit_with(
    x: &Path,
    y: &Path,
    alphas: Vec<f64>,
    cv: &str,
    out: &Path,
    set: impl FnOnce(&mut FitOptions),
) {
    let mut opts = FitOptions {
        x: x.to_path_buf(),
        y: y.to_path_buf(),
        groups: None,
        cv: cv.into(),
        shard: None,
        estimator: RidgeCv {
            alphas,
            ..RidgeCv::default()
        },
        out: out.to_path_buf(),
    };
    opts.estimator.target_chunk = 2048;
    set(&mut opts);
    fit(opts).unwrap();
}

/// Fit + predict on a fixture; checks alphas and predictions against the Python reference
/// with the tolerance of crates/ridge/tests/reference.rs.
fn check_against_reference(name: &str, cv: &str, set: impl FnOnce(&mut FitOptions)) {
    let fixture = ArrayFixture::ridge(name);
    let dir = tempfile::tempdir().unwrap();
    let x = write_f32(&fixture, "x", dir.path());
    let y = write_f32(&fixture, "y", dir.path());
    let x_test = write_f32(&fixture, "x_test", dir.path());
    let model = dir.path().join("model");
    let pred = dir.path().join("pred.npy");
    let mut dual = false;
    fit_with(&x, &y, fixture.values("alphas"), cv, &model, |o| {
        set(o);
        dual = o.estimator.dual;
    });
    predict(&model, &x_test, &pred).unwrap();

    let fitted = RidgeModel::load(&model).unwrap();
    assert_eq!(fitted.dual.is_some(), dual, "{name}: form");
    // the fixtures' grids come from np.logspace: compare alphas to 1e-9 relative
    let expected = fixture.values("best_alphas");
    assert_eq!(fitted.alphas.len(), expected.len());
    for (a, e) in fitted.alphas.iter().zip(&expected) {
        assert!(
            ((a - e) / e).abs() < 1e-9,
            "{name}: chose alpha {a}, reference {e}"
        );
    }
    let predicted = npy::read_f32(&pred).unwrap();
    assert_eq!(predicted.shape, fixture.shape("predictions"));
    let predicted: Vec<f64> = predicted.data.iter().map(|&v| v as f64).collect();
    let err = max_rel_err(&predicted, &fixture.values("predictions"));
    assert!(err < 1e-5, "{name}: predictions off by {err:e}");
}

#[test]
fn gcv_wide_with_intercept_matches_the_definition() {
    check_against_reference("gcv_wide_intercept", "gcv", |_| {});
}

#[test]
fn dual_form_matches_the_same_references() {
    // the model kept as dual coefficients predicts what the references predict
    check_against_reference("gcv_wide_intercept", "gcv", |o| o.estimator.dual = true);
    check_against_reference("loo_wide_intercept_standardize", "loo", |o| {
        o.estimator.standardize = true;
        o.estimator.dual = true;
    });
}

#[test]
fn loo_wide_without_intercept_matches_sklearn() {
    check_against_reference("loo_wide_plain", "loo", |o| {
        o.estimator.fit_intercept = false
    });
}

#[test]
fn loo_wide_standardized_matches_sklearn() {
    check_against_reference("loo_wide_intercept_standardize", "loo", |o| {
        o.estimator.standardize = true
    });
}

#[test]
fn grouped_kfold_matches_himalaya() {
    let fixture = ArrayFixture::ridge("kfold_tall_intercept_negmse");
    let dir = tempfile::tempdir().unwrap();
    let groups: Vec<i64> = fixture.values("groups").iter().map(|&g| g as i64).collect();
    let groups_path = dir.path().join("groups.npy");
    npy::write(&groups_path, &[groups.len()], &groups).unwrap();
    let folds = fixture.json["n_folds"].as_u64().unwrap().to_string();
    check_against_reference("kfold_tall_intercept_negmse", &folds, |o| {
        o.groups = Some(groups_path.clone())
    });
}

/// A small deterministic problem: X (n×p), Y (n×t) row-major.
fn write_problem(dir: &Path, n: usize, p: usize, t: usize) -> (PathBuf, PathBuf) {
    let x: Vec<f32> = (0..n * p)
        .map(|k| ((k * 7919 % 1013) as f32 / 1013.0 - 0.5) + (k as f32 * 0.37).sin())
        .collect();
    let y: Vec<f32> = (0..n * t)
        .map(|k| {
            let (i, j) = (k / t, k % t);
            (0..p)
                .map(|c| x[i * p + c] * ((c + j) % 4) as f32)
                .sum::<f32>()
                + ((i * 31 + j) % 13) as f32 * 0.2
        })
        .collect();
    let (xp, yp) = (dir.join("x.npy"), dir.join("y.npy"));
    npy::write(&xp, &[n, p], &x).unwrap();
    npy::write(&yp, &[n, t], &y).unwrap();
    (xp, yp)
}

/// The model's CV scores (n_alphas×t), row-major.
fn all_scores(model: &RidgeModel) -> Vec<f64> {
    let m = &model.cv_scores;
    (0..m.nrows())
        .flat_map(|i| (0..m.ncols()).map(move |j| m[(i, j)] as f64))
        .collect()
}

#[test]
fn shards_merged_equal_the_unsharded_fit() {
    for (n, p, cv) in [(40, 9, "loo"), (20, 30, "loo"), (40, 9, "4")] {
        let dir = tempfile::tempdir().unwrap();
        let (x, y) = write_problem(dir.path(), n, p, 7);
        let full = dir.path().join("full");
        let fit = |out: &Path, shard: Option<String>| {
            fit_with(&x, &y, vec![0.1, 1.0, 10.0, 100.0], cv, out, |o| {
                o.estimator.standardize = true;
                o.estimator.target_chunk = 2;
                o.shard = shard;
            })
        };
        fit(&full, None);
        let shard_dirs: Vec<PathBuf> = (0..3).map(|k| dir.path().join(format!("s{k}"))).collect();
        for (k, d) in shard_dirs.iter().enumerate() {
            fit(d, Some(format!("{k}/3")));
        }
        let merged = dir.path().join("merged");
        // any order
        let reversed: Vec<PathBuf> = shard_dirs.iter().rev().cloned().collect();
        brainrecon_ridge::merge_saved(&reversed, &merged).unwrap();
        let (a, b) = (
            RidgeModel::load(&full).unwrap(),
            RidgeModel::load(&merged).unwrap(),
        );
        assert_eq!(a.weights, b.weights, "{cv} {n}x{p}: weights");
        assert_eq!(a.intercept, b.intercept);
        assert_eq!(a.alphas, b.alphas);
        // CV scores come from f32 GEMMs over chunks of different widths: equal to rounding
        let err = max_rel_err(&all_scores(&b), &all_scores(&a));
        assert!(err < 1e-6, "{cv} {n}x{p}: CV scores off by {err:e}");
        assert_eq!(a.target_range, b.target_range);
    }
}

#[test]
fn score_reports_mean_and_median_and_writes_arrays() {
    let dir = tempfile::tempdir().unwrap();
    let truth: Vec<f32> = vec![1.0, 2.0, 2.0, 0.0, 3.0, 5.0, 4.0, 1.0];
    let pred: Vec<f32> = vec![1.5, 2.0, 2.5, 1.0, 2.5, 4.0, 4.5, 0.0];
    let (yp, pp) = (dir.path().join("y.npy"), dir.path().join("p.npy"));
    npy::write(&yp, &[4, 2], &truth).unwrap();
    npy::write(&pp, &[4, 2], &pred).unwrap();
    let prefix = dir.path().join("out/test");
    let summary = score(&pp, &yp, Some(&prefix)).unwrap();
    let json: Value = serde_json::to_value(&summary).unwrap();
    let text = json.to_string();
    // independent computation of Pearson r and R² per column
    let column =
        |v: &[f32], j: usize| -> Vec<f64> { (0..4).map(|i| v[i * 2 + j] as f64).collect() };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (mut r, mut r2) = (vec![], vec![]);
    for j in 0..2 {
        let (t, p) = (column(&truth, j), column(&pred, j));
        let (mt, mp) = (mean(&t), mean(&p));
        let cov: f64 = t.iter().zip(&p).map(|(a, b)| (a - mt) * (b - mp)).sum();
        let vt: f64 = t.iter().map(|a| (a - mt).powi(2)).sum();
        let vp: f64 = p.iter().map(|b| (b - mp).powi(2)).sum();
        let sse: f64 = t.iter().zip(&p).map(|(a, b)| (a - b).powi(2)).sum();
        r.push(cov / (vt * vp).sqrt());
        r2.push(1.0 - sse / vt);
    }
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert!(
        close(json["pearson_r"]["mean"].as_f64().unwrap(), mean(&r)),
        "{text}"
    );
    assert!(
        close(json["r2"]["mean"].as_f64().unwrap(), mean(&r2)),
        "{text}"
    );
    assert!(
        close(json["r2"]["median"].as_f64().unwrap(), mean(&r2)),
        "median of 2 = mean"
    );
    let written = npy::read_f32(&dir.path().join("out/test_r.npy")).unwrap();
    assert_eq!(written.shape, vec![2]);
    assert!(close(written.data[1] as f64, r[1] as f32 as f64));
    assert!(dir.path().join("out/test_r2.npy").exists());
}
