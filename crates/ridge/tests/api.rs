//! Behaviour of the public API: sharding, chunking, errors, persistence.

use brainrecon_ridge::metrics::{pearson_per_target, r2_per_target, summarize};
use brainrecon_ridge::{Cv, RidgeCv, RidgeError, RidgeModel, Shard};
use faer::Mat;

/// Deterministic small problem: X (n×p), Y (n×t) with a linear signal.
fn problem(n: usize, p: usize, t: usize) -> (Mat<f32>, Mat<f32>) {
    let x = Mat::from_fn(n, p, |i, j| {
        (((i * 7 + j * 13) % 17) as f32 - 8.0) / 4.0 + (i as f32 * 0.1 + j as f32).sin()
    });
    let y = Mat::from_fn(n, t, |i, j| {
        (0..p)
            .map(|k| x[(i, k)] * ((k + j) % 3) as f32)
            .sum::<f32>()
            + ((i * 31 + j) % 11) as f32 * 0.3
    });
    (x, y)
}

fn estimator(cv: Cv) -> RidgeCv {
    RidgeCv {
        alphas: vec![0.1, 1.0, 10.0, 100.0],
        cv,
        standardize: true,
        ..RidgeCv::default()
    }
}

#[test]
fn shards_merge_to_the_full_fit() {
    let (x, y) = problem(30, 8, 7);
    let est = estimator(Cv::KFold {
        n_folds: 3,
        groups: None,
    });
    let full = est.fit(x.as_ref(), y.as_ref()).unwrap();
    let shards: Vec<RidgeModel> = (0..3)
        .rev()
        .map(|index| {
            est.fit_shard(x.as_ref(), y.as_ref(), Shard { index, count: 3 })
                .unwrap()
        })
        .collect();
    assert_eq!(shards[0].target_range.start, 5);
    let merged = RidgeModel::merge(shards).unwrap();
    assert_eq!(merged, full);
}

#[test]
fn merging_saved_shards_writes_the_bytes_of_merge_and_save() {
    let (x, y) = problem(30, 8, 7);
    let est = estimator(Cv::Loo);
    let dir = tempfile::tempdir().unwrap();
    let mut dirs = Vec::new();
    let mut shards = Vec::new();
    for index in [2, 0, 1] {
        let mut shard = est
            .fit_shard(x.as_ref(), y.as_ref(), Shard { index, count: 3 })
            .unwrap();
        shard
            .metadata
            .insert("shard".into(), serde_json::json!(format!("{index}/3")));
        let path = dir.path().join(format!("shard-{index}"));
        shard.save(&path).unwrap();
        dirs.push(path);
        shards.push(shard);
    }
    let (whole, streamed) = (dir.path().join("whole"), dir.path().join("streamed"));
    RidgeModel::merge(shards).unwrap().save(&whole).unwrap();
    assert_eq!(
        brainrecon_ridge::merge_saved(&dirs, &streamed).unwrap(),
        (8, 7)
    );
    for file in ["weights.safetensors", "model.json"] {
        assert_eq!(
            std::fs::read(whole.join(file)).unwrap(),
            std::fs::read(streamed.join(file)).unwrap(),
            "{file}"
        );
    }
    let gap = brainrecon_ridge::merge_saved(&dirs[..2], dir.path().join("gap"));
    assert!(matches!(gap, Err(RidgeError::Merge(_))), "{gap:?}");
}

#[test]
fn merge_rejects_gaps_and_mismatched_grids() {
    let (x, y) = problem(30, 8, 6);
    let est = estimator(Cv::Loo);
    let a = est
        .fit_shard(x.as_ref(), y.as_ref(), Shard { index: 0, count: 3 })
        .unwrap();
    let c = est
        .fit_shard(x.as_ref(), y.as_ref(), Shard { index: 2, count: 3 })
        .unwrap();
    assert!(matches!(
        RidgeModel::merge(vec![a.clone(), c]),
        Err(RidgeError::Merge(_))
    ));
    let other_grid = RidgeCv {
        alphas: vec![1.0, 2.0],
        ..est.clone()
    };
    let b = other_grid
        .fit_shard(x.as_ref(), y.as_ref(), Shard { index: 1, count: 3 })
        .unwrap();
    assert!(matches!(
        RidgeModel::merge(vec![a, b]),
        Err(RidgeError::Merge(_))
    ));
}

#[test]
fn chunk_size_does_not_change_the_model() {
    let (x, y) = problem(12, 20, 5); // p > n: dual solver
    let one = RidgeCv {
        target_chunk: 1,
        ..estimator(Cv::Loo)
    }
    .fit(x.as_ref(), y.as_ref())
    .unwrap();
    let all = RidgeCv {
        target_chunk: 64,
        ..estimator(Cv::Loo)
    }
    .fit(x.as_ref(), y.as_ref())
    .unwrap();
    assert_eq!(one.alphas, all.alphas);
    let diff = (0..20)
        .flat_map(|i| (0..5).map(move |j| (i, j)))
        .map(|(i, j)| (one.weights[(i, j)] - all.weights[(i, j)]).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1e-5, "weights differ by {diff}");
}

#[test]
fn row_major_entry_point_matches_matref() {
    let (x, y) = problem(20, 4, 3);
    let to_rows = |m: &Mat<f32>| {
        (0..m.nrows())
            .flat_map(|i| (0..m.ncols()).map(move |j| m[(i, j)]))
            .collect::<Vec<_>>()
    };
    let est = estimator(Cv::Loo);
    let from_slices = est
        .fit_row_major(&to_rows(&x), (20, 4), &to_rows(&y), (20, 3))
        .unwrap();
    assert_eq!(from_slices, est.fit(x.as_ref(), y.as_ref()).unwrap());
    let pred = from_slices
        .predict_row_major(&to_rows(&x), (20, 4))
        .unwrap();
    assert_eq!(pred, to_rows(&from_slices.predict(x.as_ref()).unwrap()));
    assert!(matches!(
        est.fit_row_major(&to_rows(&x), (20, 5), &to_rows(&y), (20, 3)),
        Err(RidgeError::Shape(_))
    ));
}

#[test]
fn nan_is_reported_with_array_and_row() {
    let (x, mut y) = problem(10, 3, 2);
    y[(6, 1)] = f32::NAN;
    match estimator(Cv::Loo).fit(x.as_ref(), y.as_ref()) {
        Err(RidgeError::NonFinite {
            array, row, col, ..
        }) => assert_eq!((array, row, col), ("Y", 6, 1)),
        other => panic!("expected NonFinite, got {other:?}"),
    }
}

#[test]
fn invalid_inputs_are_errors_not_panics() {
    let (x, y) = problem(10, 3, 2);
    let est = estimator(Cv::Loo);
    assert!(matches!(
        est.fit(x.as_ref(), y.subrows(0, 9)),
        Err(RidgeError::Shape(_))
    ));
    assert!(matches!(
        RidgeCv {
            alphas: vec![0.0],
            ..est.clone()
        }
        .fit(x.as_ref(), y.as_ref()),
        Err(RidgeError::AlphaGrid(_))
    ));
    assert!(matches!(
        RidgeCv {
            alphas: vec![],
            ..est.clone()
        }
        .fit(x.as_ref(), y.as_ref()),
        Err(RidgeError::AlphaGrid(_))
    ));
    let bad_groups = Cv::KFold {
        n_folds: 3,
        groups: Some(vec![1; 10]),
    };
    assert!(matches!(
        estimator(bad_groups).fit(x.as_ref(), y.as_ref()),
        Err(RidgeError::Cv(_))
    ));
    assert!(matches!(
        est.fit_shard(x.as_ref(), y.as_ref(), Shard { index: 2, count: 2 }),
        Err(RidgeError::Options(_))
    ));
    let model = est.fit(x.as_ref(), y.as_ref()).unwrap();
    assert!(matches!(
        model.predict(y.as_ref()),
        Err(RidgeError::Shape(_))
    ));
}

/// The weights are streamed to disk 64 rows at a time: 130 features make two whole blocks and
/// a partial one, and the file must still be a plain safetensors file in row-major order.
#[test]
fn a_saved_model_loads_back_identical() {
    let (x, y) = problem(40, 130, 5);
    let model = estimator(Cv::Gcv).fit(x.as_ref(), y.as_ref()).unwrap();
    let dir = std::env::temp_dir().join(format!("brainrecon-ridge-save-{}", std::process::id()));
    model.save(&dir).unwrap();
    let bytes = std::fs::read(dir.join("weights.safetensors")).unwrap();
    let loaded = RidgeModel::load(&dir).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(loaded, model);
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let weights = file.tensor("weights").unwrap();
    assert_eq!(weights.shape(), [130, 5]);
    // row 129, column 3, read from the raw row-major bytes
    let at = (129 * 5 + 3) * 4;
    let value = f32::from_le_bytes(weights.data()[at..at + 4].try_into().unwrap());
    assert_eq!(value, model.weights[(129, 3)]);
}

#[test]
fn load_errors_name_the_file_and_field() {
    let (x, y) = problem(10, 3, 2);
    let mut model = estimator(Cv::Loo).fit(x.as_ref(), y.as_ref()).unwrap();
    model.metadata.insert("roi".into(), serde_json::json!("V1"));
    let dir = std::env::temp_dir().join(format!("brainrecon-ridge-api-{}", std::process::id()));
    model.save(&dir).unwrap();
    assert_eq!(RidgeModel::load(&dir).unwrap().metadata["roi"], "V1");
    // model.json claiming 4 features no longer matches the tensors
    let json_path = dir.join("model.json");
    let text = std::fs::read_to_string(&json_path)
        .unwrap()
        .replace("\"n_features\": 3", "\"n_features\": 4");
    std::fs::write(&json_path, text).unwrap();
    let err = RidgeModel::load(&dir).unwrap_err();
    std::fs::remove_dir_all(&dir).ok();
    match &err {
        RidgeError::Format { file, field, .. } => {
            assert!(file.ends_with("weights.safetensors"), "{err}");
            assert_eq!(field, "weights");
        }
        other => panic!("expected Format error, got {other:?}"),
    }
}

#[test]
fn scoring_helpers_follow_sklearn_conventions() {
    let truth = Mat::from_fn(4, 3, |i, j| {
        if j == 2 {
            1.0
        } else {
            i as f32 * (j + 1) as f32
        }
    });
    let pred = Mat::from_fn(4, 3, |i, j| {
        if j == 2 {
            1.0
        } else {
            i as f32 * (j + 1) as f32 + 0.5 * (i % 2) as f32
        }
    });
    let r2 = r2_per_target(truth.as_ref(), pred.as_ref()).unwrap();
    assert!((r2[0] - (1.0 - 1.0 / 2.0 / 5.0)).abs() < 1e-12, "{r2:?}"); // sse 0.5, sst 5
    assert_eq!(r2[2], 1.0); // constant and predicted exactly
    let r = pearson_per_target(truth.as_ref(), pred.as_ref()).unwrap();
    assert!(r[2].is_nan() && r[0] > 0.9);
    let summary = summarize(&r);
    assert!((summary.mean - (r[0] + r[1]) / 2.0).abs() < 1e-12);
}
