//! A model kept in its dual form (`RidgeCv::dual`: dual coefficients and the training X) is
//! the model fitted with weights: same alphas and scores, the same predictions, and the same
//! weights once refitted (`to_primal`); it saves, loads and refuses what it cannot do.

use brainrecon_ridge::{Cv, ModelWriter, RidgeCv, RidgeError, RidgeModel};
use faer::{Mat, MatRef};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A wide X (n×p, p > n) with column offsets and spreads, and Y = X·B + noise (n×t) with one
/// flat target.
fn data(n: usize, p: usize, t: usize, seed: u64) -> (Mat<f32>, Mat<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let offsets: Vec<f32> = (0..p).map(|_| rng.gen_range(-3.0..3.0)).collect();
    let spreads: Vec<f32> = (0..p).map(|_| rng.gen_range(0.2..2.0)).collect();
    let x = Mat::from_fn(n, p, |_, j| {
        offsets[j] + spreads[j] * rng.gen_range(-1.0f32..1.0)
    });
    let b = Mat::from_fn(p, t, |_, _| rng.gen_range(-0.3f32..0.3));
    let mut y = &x * &b;
    for j in 0..t {
        for i in 0..n {
            y[(i, j)] = if j == 2 {
                -1.5
            } else {
                y[(i, j)] + rng.gen_range(-1.0f32..1.0)
            };
        }
    }
    (x, y)
}

fn max_relative(a: MatRef<'_, f32>, b: MatRef<'_, f32>) -> f32 {
    assert_eq!((a.nrows(), a.ncols()), (b.nrows(), b.ncols()), "shapes");
    let (mut diff, mut scale) = (0f32, 0f32);
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            diff = diff.max((a[(i, j)] - b[(i, j)]).abs());
            scale = scale.max(b[(i, j)].abs());
        }
    }
    diff / scale.max(1e-30)
}

fn estimators() -> Vec<(&'static str, RidgeCv)> {
    let base = RidgeCv {
        alphas: vec![0.1, 1.0, 10.0, 100.0, 1e3],
        target_chunk: 4,
        ..RidgeCv::default()
    };
    vec![
        (
            "gcv (band)",
            RidgeCv {
                cv: Cv::Gcv,
                ..base.clone()
            },
        ),
        ("loo", base.clone()),
        (
            "3-fold, standardized",
            RidgeCv {
                cv: Cv::KFold {
                    n_folds: 3,
                    groups: None,
                },
                standardize: true,
                ..base.clone()
            },
        ),
        (
            "gcv, no intercept",
            RidgeCv {
                cv: Cv::Gcv,
                fit_intercept: false,
                ..base
            },
        ),
    ]
}

#[test]
fn the_dual_form_is_the_fitted_model() {
    let (x, y) = data(30, 70, 9, 1);
    let (x_new, _) = data(12, 70, 1, 2);
    for (what, estimator) in estimators() {
        let primal = estimator.fit(x.as_ref(), y.as_ref()).unwrap();
        let dual = RidgeCv {
            dual: true,
            ..estimator.clone()
        }
        .fit(x.as_ref(), y.as_ref())
        .unwrap();
        let form = dual.dual.as_ref().expect("a dual model");
        assert_eq!(
            (form.coefficients.nrows(), form.coefficients.ncols()),
            (30, 9)
        );
        assert_eq!(dual.n_targets(), 9, "{what}");
        assert_eq!(dual.n_features(), 70, "{what}");
        // the scores and choices come before the refit: identical
        assert_eq!(dual.alphas, primal.alphas, "{what}: alphas");
        assert_eq!(dual.cv_scores, primal.cv_scores, "{what}: scores");
        let expected = primal.predict(x_new.as_ref()).unwrap();
        let found = dual.predict(x_new.as_ref()).unwrap();
        let err = max_relative(found.as_ref(), expected.as_ref());
        assert!(err < 2e-5, "{what}: predictions differ by {err:e}");
        let refitted = dual.to_primal();
        assert!(refitted.dual.is_none());
        let err = max_relative(refitted.weights.as_ref(), primal.weights.as_ref());
        assert!(err < 2e-5, "{what}: weights differ by {err:e}");
        let (a, b) = (
            Mat::from_fn(1, 9, |_, j| refitted.intercept[j]),
            Mat::from_fn(1, 9, |_, j| primal.intercept[j]),
        );
        let err = max_relative(a.as_ref(), b.as_ref());
        assert!(err < 2e-5, "{what}: intercepts differ by {err:e}");
        let err = max_relative(
            dual.weights_standardized().as_ref(),
            primal.weights_standardized().as_ref(),
        );
        assert!(err < 2e-5, "{what}: standardized weights differ by {err:e}");
    }
}

#[test]
fn a_dual_model_saves_and_loads() {
    let (x, y) = data(25, 60, 5, 3);
    let model = RidgeCv {
        cv: Cv::Gcv,
        dual: true,
        ..RidgeCv::default()
    }
    .fit(x.as_ref(), y.as_ref())
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let json = std::fs::read_to_string(dir.path().join("model.json")).unwrap();
    assert!(json.contains("\"form\": \"dual\""), "{json}");
    let loaded = RidgeModel::load(dir.path()).unwrap();
    assert_eq!(loaded, model);
    // a dual model.json without its training row count is refused, naming the field
    let broken = json.replace("\"n_samples\": 25", "\"n_samples_gone\": 25");
    std::fs::write(dir.path().join("model.json"), broken).unwrap();
    let error = RidgeModel::load(dir.path()).unwrap_err().to_string();
    assert!(
        error.contains("model.json") && error.contains("n_samples"),
        "{error}"
    );
}

#[test]
fn what_the_dual_form_cannot_do_is_refused() {
    let dual = RidgeCv {
        cv: Cv::Gcv,
        dual: true,
        ..RidgeCv::default()
    };
    // more rows than columns: the weights are the smaller model
    let (tall_x, tall_y) = data(40, 10, 3, 4);
    let error = dual.fit(tall_x.as_ref(), tall_y.as_ref()).unwrap_err();
    assert!(
        matches!(&error, RidgeError::Options(m) if m.contains("more features than samples")),
        "{error}"
    );
    let (x, y) = data(20, 50, 4, 5);
    let model = dual.fit(x.as_ref(), y.as_ref()).unwrap();
    let error = RidgeModel::merge(vec![model.clone()]).unwrap_err();
    assert!(matches!(error, RidgeError::Merge(_)), "{error}");
    let dir = tempfile::tempdir().unwrap();
    let mut writer = ModelWriter::create(dir.path(), 50, 4, dual.alphas.len()).unwrap();
    assert!(writer.put(&model).is_err());
    let error = dual
        .fit_streamed(
            x.as_ref(),
            4,
            2,
            &mut |range| Ok(y.as_ref().subcols(range.start, range.len()).to_owned()),
            &mut |_| Ok(()),
        )
        .unwrap_err();
    assert!(matches!(error, RidgeError::Options(_)), "{error}");
}
