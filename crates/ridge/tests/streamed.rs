//! A fit streamed a block of targets at a time (`RidgeCv::fit_streamed`), written block by
//! block (`ModelWriter`), is the model `RidgeCv::fit` gives on the whole Y: for GCV on a wide
//! design (the band path), LOO and GCV on a tall one, and grouped K-fold.

use brainrecon_ridge::{Cv, ModelWriter, Precision, RidgeCv, RidgeModel, Scoring};
use faer::Mat;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// X (n×p) and Y = X·B + noise (n×t), with flat (constant) targets among them.
fn data(n: usize, p: usize, t: usize, seed: u64) -> (Mat<f32>, Mat<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = Mat::from_fn(n, p, |_, _| rng.gen_range(-1.0f32..1.0));
    let b = Mat::from_fn(p, t, |_, _| rng.gen_range(-0.3f32..0.3));
    let mut y = &x * &b;
    for j in 0..t {
        for i in 0..n {
            y[(i, j)] = if j % 7 == 3 {
                2.5
            } else {
                y[(i, j)] + rng.gen_range(-1.0f32..1.0)
            };
        }
    }
    (x, y)
}

fn streamed(estimator: &RidgeCv, x: &Mat<f32>, y: &Mat<f32>, block: usize) -> RidgeModel {
    let dir = tempfile::tempdir().unwrap();
    let mut writer =
        ModelWriter::create(dir.path(), x.ncols(), y.ncols(), estimator.alphas.len()).unwrap();
    let mut loads = Vec::new();
    estimator
        .fit_streamed(
            x.as_ref(),
            y.ncols(),
            block,
            &mut |range| {
                loads.push(range.clone());
                Ok(y.as_ref().subcols(range.start, range.len()).to_owned())
            },
            &mut |model| writer.put(&model),
        )
        .unwrap();
    writer.finish(Default::default()).unwrap();
    assert!(loads.len() > 1, "{loads:?}");
    RidgeModel::load(dir.path()).unwrap()
}

fn assert_same(a: &RidgeModel, b: &RidgeModel, what: &str) {
    assert_eq!(a.alphas, b.alphas, "{what}: alphas");
    assert_eq!(a.target_range, b.target_range, "{what}: range");
    for (m, n, name) in [
        (&a.weights, &b.weights, "weights"),
        (&a.cv_scores, &b.cv_scores, "scores"),
    ] {
        assert_eq!(
            (m.nrows(), m.ncols()),
            (n.nrows(), n.ncols()),
            "{what}: {name} shape"
        );
        for j in 0..m.ncols() {
            for i in 0..m.nrows() {
                let (u, v) = (m[(i, j)], n[(i, j)]);
                assert!(
                    (u - v).abs() <= 1e-6 * (1.0 + u.abs()),
                    "{what}: {name}[{i},{j}] {u} vs {v}"
                );
            }
        }
    }
    for (u, v) in a.intercept.iter().zip(&b.intercept) {
        assert!(
            (u - v).abs() <= 1e-5 * (1.0 + u.abs()),
            "{what}: intercept {u} vs {v}"
        );
    }
}

#[test]
fn a_streamed_fit_is_the_whole_fit() {
    let (wide_x, wide_y) = data(40, 90, 23, 1);
    let (tall_x, tall_y) = data(120, 30, 23, 2);
    let groups: Vec<i64> = (0..120).map(|i| i / 4).collect();
    let cases = [
        ("gcv wide (band)", Cv::Gcv, &wide_x, &wide_y, Precision::F32),
        ("gcv wide f64", Cv::Gcv, &wide_x, &wide_y, Precision::F64),
        ("loo wide", Cv::Loo, &wide_x, &wide_y, Precision::F64),
        ("gcv tall", Cv::Gcv, &tall_x, &tall_y, Precision::F32),
        ("loo tall", Cv::Loo, &tall_x, &tall_y, Precision::F64),
        (
            "grouped 3-fold",
            Cv::KFold {
                n_folds: 3,
                groups: Some(groups),
            },
            &tall_x,
            &tall_y,
            Precision::F64,
        ),
    ];
    for (what, cv, x, y, precision) in cases {
        let estimator = RidgeCv {
            alphas: vec![0.1, 1.0, 10.0, 100.0],
            cv,
            scoring: Scoring::R2,
            target_chunk: 4,
            precision,
            ..RidgeCv::default()
        };
        let whole = estimator.fit(x.as_ref(), y.as_ref()).unwrap();
        // blocks of 5 are rounded up to 8 (two chunks): 3 blocks, the last partial
        assert_same(&whole, &streamed(&estimator, x, y, 5), what);
    }
}

#[test]
fn blocks_out_of_order_or_missing_are_refused() {
    let (x, y) = data(30, 50, 10, 3);
    let estimator = RidgeCv {
        alphas: vec![1.0, 10.0],
        cv: Cv::Gcv,
        target_chunk: 4,
        ..RidgeCv::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut blocks = Vec::new();
    estimator
        .fit_streamed(
            x.as_ref(),
            10,
            4,
            &mut |r| Ok(y.as_ref().subcols(r.start, r.len()).to_owned()),
            &mut |m| {
                blocks.push(m);
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(blocks.len(), 3);
    let mut writer = ModelWriter::create(dir.path(), 50, 10, 2).unwrap();
    assert!(
        writer.put(&blocks[1]).is_err(),
        "a block that does not continue"
    );
    writer.put(&blocks[0]).unwrap();
    let error = writer.finish(Default::default()).unwrap_err().to_string();
    assert!(error.contains("4 of 10 targets"), "{error}");
    // nothing left behind: no model, no temporary file
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // a block of the wrong size from the loader is an error, not a panic
    let error = estimator
        .fit_streamed(
            x.as_ref(),
            10,
            4,
            &mut |_| Ok(Mat::zeros(30, 1)),
            &mut |_| Ok(()),
        )
        .unwrap_err()
        .to_string();
    assert!(error.contains("30×4"), "{error}");
}
