//! `group fit --method shared` reads its subjects in row blocks (issue 80, goal 4). On a small
//! simulated group, the streamed fit equals the in-memory fit it replaced (the same bits in one
//! block, when every subject has more voxels than rows; rounding in many blocks), and a fit
//! over its memory budget is refused before anything is read or written. Its encoder, fitted
//! from blocks of the distinct images, equals the in-memory ridge on every pooled row.

mod common;

use brainrecon_align::shared_space::{fit_shared_space, gcv_alpha, SharedSpaceOptions};
use brainrecon_datasets::prepared::{PreparedSubject, Split};
use brainrecon_ridge::{Cv, RidgeCv, RidgeModel};
use brainrecon_routes::group::data::{
    column_means, feature_rows, feature_widths, read_mat, read_vec, scale_targets, split_rows,
    target_scaling,
};
use brainrecon_routes::group::fit::{
    alpha_columns, fit_group_within, map_alphas, FitLimits, GroupFitRequest,
};
use brainrecon_routes::group::{GroupMeta, SpaceMeta, SHARED_ATLAS};
use brainrecon_routes::RouteError;
use brainrecon_simulate::request;
use faer::Mat;
use std::path::{Path, PathBuf};

/// Three simulated subjects, prepared with z and c features, grouped.
fn small_group(dir: &Path) -> PathBuf {
    let simulate = request::Request {
        images: Some(120),
        seed: 4,
        sessions: Some(2),
        subjects: Some(3),
        shared_images: Some(40),
        ..request::Request::new(dir.join("sim"), request::Kind::Image)
    };
    common::simulated_group(dir, simulate, 0).group
}

fn request(group: &Path, name: &str) -> GroupFitRequest {
    GroupFitRequest {
        group: group.to_path_buf(),
        method: "shared".into(),
        name: Some(name.into()),
        k: 8,
        n_iter: 10,
        seed: 5,
        targets: vec![],
        cv: "5".into(),
    }
}

/// The shared space as `group fit` computed it before it streamed: every subject's fitting
/// rows and targets in memory, stacked, then `gcv_alpha` and `fit_shared_space`. Returns the
/// maps, the basis, the alphas and each subject's (rows, voxels).
type InMemory = (Vec<Mat<f64>>, Mat<f64>, Vec<f64>, Vec<(usize, usize)>);

fn in_memory(group: &Path, k: usize, seed: u64) -> InMemory {
    let meta = GroupMeta::read(group).unwrap();
    let mut xs = Vec::new();
    let mut raw = Vec::new();
    for s in &meta.subjects {
        let subject = PreparedSubject::open(&s.path).unwrap();
        let roi = subject.roi(&meta.roi).unwrap();
        let train = split_rows(&subject, &roi, Split::Train).unwrap();
        let tested = split_rows(&subject, &roi, Split::Test).unwrap();
        let align = tested.select(|_, id| meta.align_ids.binary_search(&id).is_ok());
        let fitting = train.stack(&align);
        raw.push(feature_rows(&subject, &meta.kinds, &fitting.ids).unwrap());
        xs.push(fitting.x);
    }
    let first = PreparedSubject::open(&meta.subjects[0].path).unwrap();
    let widths = feature_widths(&first, &meta.kinds).unwrap();
    let stacked = {
        let n: usize = raw.iter().map(|y| y.nrows()).sum();
        let mut out = Mat::<f64>::zeros(n, raw[0].ncols());
        let mut at = 0;
        for y in &raw {
            out.as_mut().subrows_mut(at, y.nrows()).copy_from(y);
            at += y.nrows();
        }
        out
    };
    let (mean, blocks) = target_scaling(&stacked, &meta.kinds, &widths);
    let ys: Vec<Mat<f64>> = raw
        .iter()
        .map(|y| scale_targets(y, &mean, &blocks))
        .collect();
    let centred: Vec<Mat<f64>> = xs
        .iter()
        .map(|x| {
            let m = column_means(x);
            Mat::from_fn(x.nrows(), x.ncols(), |i, j| x[(i, j)] - m[j])
        })
        .collect();
    let alphas: Vec<f64> = centred
        .iter()
        .zip(&ys)
        .map(|(x, y)| gcv_alpha(x.as_ref(), alpha_columns(y).as_ref(), &map_alphas()).unwrap())
        .collect();
    let space = fit_shared_space(
        &centred.iter().map(|x| x.as_ref()).collect::<Vec<_>>(),
        &ys.iter().map(|y| y.as_ref()).collect::<Vec<_>>(),
        &alphas,
        &SharedSpaceOptions {
            k,
            seed,
            ..SharedSpaceOptions::default()
        },
    )
    .unwrap();
    let sizes = xs.iter().map(|x| (x.nrows(), x.ncols())).collect();
    (space.maps, space.basis, alphas, sizes)
}

/// The largest difference between the written float32 matrix and `want` rounded to float32,
/// over want's largest entry.
fn relative_difference(path: &Path, want: &Mat<f64>) -> f64 {
    let got = read_mat(path).unwrap();
    assert_eq!((got.nrows(), got.ncols()), (want.nrows(), want.ncols()));
    let (mut diff, mut scale) = (0.0f64, 0.0f64);
    for j in 0..got.ncols() {
        for i in 0..got.nrows() {
            diff = diff.max((got[(i, j)] - want[(i, j)] as f32 as f64).abs());
            scale = scale.max(want[(i, j)].abs());
        }
    }
    diff / scale
}

fn alphas_written(group: &Path, name: &str) -> Vec<f64> {
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(group.join(format!("spaces/{name}/space.json"))).unwrap(),
    )
    .unwrap();
    meta["alphas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_f64().unwrap())
        .collect()
}

#[test]
fn the_streamed_fit_equals_the_in_memory_fit_and_a_budget_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let group = small_group(tmp.path());

    // Over budget: refused before anything is written, naming the sizes.
    let refused = fit_group_within(
        &request(&group, "tight"),
        &FitLimits {
            memory_bytes: Some(1_000_000),
            ..FitLimits::default()
        },
        &mut |_| {},
    );
    let message = match refused {
        Err(e @ RouteError::Usage(_)) => e.to_string(),
        other => panic!("expected a usage error, got {:?}", other.map(|r| r.space)),
    };
    for part in [
        "--memory-gb 0.0",
        "3 subjects",
        "targets at k = 8",
        "needs about",
    ] {
        assert!(message.contains(part), "{part} missing from: {message}");
    }
    assert!(!group.join("spaces/tight").exists());

    // Default blocks (every subject in one block here) and blocks of 7 rows (and the encoder
    // in a basis of at most 1,000 dimensions).
    for (name, block_rows) in [("blocks", None), ("small-blocks", Some(7))] {
        fit_group_within(
            &request(&group, name),
            &FitLimits {
                memory_bytes: Some(4_000_000_000),
                block_rows,
                encoder_rank: block_rows.map(|_| 1000),
            },
            &mut |_| {},
        )
        .unwrap();
    }
    let (maps, basis, alphas, sizes) = in_memory(&group, 8, 5);
    // More voxels than rows everywhere: the dual path, whose one-block fit is the same calls.
    assert!(sizes.iter().all(|&(n, v)| v >= n), "sizes {sizes:?}");
    for name in ["blocks", "small-blocks"] {
        assert_eq!(alphas_written(&group, name), alphas, "{name}: GCV's alphas");
        let space = group.join("spaces").join(name);
        let mut worst = relative_difference(&space.join("basis.npy"), &basis);
        for (i, map) in maps.iter().enumerate() {
            worst = worst.max(relative_difference(
                &space.join(format!("maps/{i}.npy")),
                map,
            ));
        }
        if name == "blocks" {
            // One block, dual subjects: every product is the same call on the same matrices.
            assert_eq!(worst, 0.0, "{name}: sizes {sizes:?}");
        } else {
            // Blocks summed in turn: within float32's rounding of the written values.
            assert!(
                worst < 1e-6,
                "{name}: relative difference {worst:e}, sizes {sizes:?}"
            );
        }
    }
    // The target means written are the stacked rows' means, in the same order of sums.
    assert_eq!(
        std::fs::read(group.join("spaces/blocks/target_mean.npy")).unwrap(),
        std::fs::read(group.join("spaces/small-blocks/target_mean.npy")).unwrap()
    );
    let mean = read_vec(&group.join("spaces/blocks/target_mean.npy")).unwrap();
    assert!(mean.iter().all(|m| m.is_finite()));

    // The encoder, fitted from blocks of the distinct images, is the in-memory ridge on every
    // pooled row that `group fit` ran before (the features of each row stacked, the rows'
    // coordinates as float32, GCV per dimension): the same α, weights within float32's
    // rounding, on both exact paths.
    for name in ["blocks", "small-blocks"] {
        let space = group.join("spaces").join(name);
        let got = RidgeModel::load(space.join("encoder")).unwrap();
        // 1,424 feature columns, 260 distinct images: the primal path by default, the dual
        // one under a basis of 1,000.
        let path = if name == "blocks" { "primal" } else { "dual" };
        assert_eq!(got.metadata["encoder_path"], path, "{name}");
        assert_eq!(
            got.metadata["encoder_captured"]
                .as_f64()
                .map(|c| (c - 1.0).abs() < 1e-9),
            Some(true)
        );
        let (want, x) = in_memory_encoder(&group, name);
        assert_eq!(got.alphas, want.alphas, "{name}: the encoder's GCV alphas");
        for (what, g, w) in [
            ("weights", got.weights.as_ref(), want.weights.as_ref()),
            ("scores", got.cv_scores.as_ref(), want.cv_scores.as_ref()),
        ] {
            let (mut diff, mut scale) = (0.0f32, 0.0f32);
            for j in 0..w.ncols() {
                for i in 0..w.nrows() {
                    diff = diff.max((g[(i, j)] - w[(i, j)]).abs());
                    scale = scale.max(w[(i, j)].abs());
                }
            }
            assert!(
                diff / scale < 1e-4,
                "{name}: {what} differ by {:e}",
                diff / scale
            );
        }
        // Intercepts near zero (centred features and rows): compared through the predictions.
        let (g, w) = (
            got.predict(x.as_ref()).unwrap(),
            want.predict(x.as_ref()).unwrap(),
        );
        let (mut diff, mut scale) = (0.0f32, 0.0f32);
        for j in 0..w.ncols() {
            for i in 0..w.nrows() {
                diff = diff.max((g[(i, j)] - w[(i, j)]).abs());
                scale = scale.max(w[(i, j)].abs());
            }
        }
        assert!(
            diff / scale < 1e-4,
            "{name}: predictions differ by {:e}",
            diff / scale
        );
    }
}

/// The encoder as `group fit` fitted it in memory before it streamed: `RidgeCv` (GCV over the
/// maps' grid) from the scaled features of every pooled row, stacked, to the pooled rows'
/// coordinates as float32 (as written in the pooled subject); with those features.
fn in_memory_encoder(group: &Path, name: &str) -> (RidgeModel, Mat<f32>) {
    let meta = GroupMeta::read(group).unwrap();
    let space = SpaceMeta::read(group, name).unwrap();
    let dir = group.join("spaces").join(name);
    let pooled = PreparedSubject::open(&dir.join("pooled")).unwrap();
    let roi = pooled.roi(SHARED_ATLAS).unwrap();
    let rows = split_rows(&pooled, &roi, Split::Train).unwrap();
    let mean = read_vec(&dir.join("target_mean.npy")).unwrap();
    let features = scale_targets(
        &feature_rows(&pooled, &meta.kinds, &rows.ids).unwrap(),
        &mean,
        &space.blocks,
    );
    let to_f32 = |m: &Mat<f64>| Mat::<f32>::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)] as f32);
    let x = to_f32(&features);
    let model = RidgeCv {
        alphas: map_alphas(),
        cv: Cv::Gcv,
        ..RidgeCv::default()
    }
    .fit(x.as_ref(), to_f32(&rows.x).as_ref())
    .unwrap();
    (model, x)
}

/// NSD's full size as the docs give it (7 subjects × 27,000 trials + 500 align images, 15,724
/// voxels, 1,000 test rows each, 75,520 targets, k = 1,024; 7 × 9,000 + 1,000 distinct images
/// of which 7 × 9,000 + 500 among the fitting rows): the estimated peak of the one-process fit
/// (the merge's parts) and of one statistics task stay within 24 GB, as the docs say.
#[test]
fn nsd_full_size_is_estimated_within_24_gb() {
    use brainrecon_routes::group::fit::{
        default_block_rows, FitMemory, FitSubjectSize, ENCODER_RANK,
    };
    use brainrecon_routes::group::SpaceMethod;
    let subjects = vec![
        FitSubjectSize {
            rows: 27_000 + 500,
            voxels: 15_724,
            test_rows: 1_000,
        };
        7
    ];
    let memory = FitMemory::estimate(
        SpaceMethod::Shared,
        &subjects,
        75_520,
        7 * 9_000 + 1_000,
        7 * 9_000 + 500,
        &SharedSpaceOptions {
            k: 1024,
            ..SharedSpaceOptions::default()
        },
        default_block_rows(75_520),
        ENCODER_RANK,
    );
    assert!(memory.peak <= 24_000_000_000, "{}", memory.text());
    assert!(memory.stats_task <= 24_000_000_000, "{}", memory.text());
}
