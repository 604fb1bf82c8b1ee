//! The synthetic video subject (`simulate --kind video`) and its preparation (`data::cc2017`):
//! CC2017's layout read back through the CIFTI reader, repetitions that differ only by noise,
//! motion voxels that follow the true direction, and the prepared windows checked against a
//! computation done here from the CIFTI files.

use brainrecon_core::signal::detrend::{self, PolyBasis};
use brainrecon_datasets::cc2017::{prepare, read_meta, Cc2017Options};
use brainrecon_formats::cifti::cc2017::{run_path, runs_in, Split};
use brainrecon_formats::cifti::{
    write_dense_series, BrainModel, CiftiSeries, CiftiVolume, ModelType, SeriesMap, CORTEX,
};
use brainrecon_formats::npy;
use brainrecon_simulate::movie::canonical_hrf;
use brainrecon_simulate::video::{simulate_video, VideoOptions, VideoTruth, GROUPS};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One simulated dataset (the small default, seed 3) shared by the tests of this file.
fn dataset() -> &'static (tempfile::TempDir, PathBuf, VideoTruth) {
    static DATA: OnceLock<(tempfile::TempDir, PathBuf, VideoTruth)> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sim-video");
        let mut opts = VideoOptions::new(&out);
        opts.seed = 3;
        let truth = simulate_video(&opts).unwrap().truth;
        (dir, out, truth)
    })
}

/// The drift degree `video prepare` uses by default on the subject's 40 TRs of 2 s:
/// GLMdenoise's round(80 s / 120 s).
const DRIFT_DEGREE: usize = 1;

/// (time × columns) of the cortex of a run, voxel-major, each column detrended (DRIFT_DEGREE)
/// and, if asked, z-scored: the preparation done by hand.
fn cleaned_cortex(path: &Path, zscore: bool) -> (usize, Vec<Vec<f64>>) {
    let cifti = CiftiSeries::read(path).unwrap();
    let sel = cifti.cortex().unwrap();
    let (n, s) = (sel.n_time, sel.columns.len());
    let basis = PolyBasis::new(n, DRIFT_DEGREE);
    let columns = (0..s)
        .map(|v| {
            let mut x: Vec<f64> = (0..n).map(|t| sel.data[t * s + v] as f64).collect();
            let scale = detrend::rms(&x);
            basis.remove_fit(&mut x);
            if zscore {
                assert!(detrend::zscore(&mut x, scale));
            }
            x
        })
        .collect();
    (n, columns)
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

fn groups(root: &Path) -> (Vec<i64>, Vec<i64>) {
    let group = npy::read_i64(&root.join("truth/voxel_group.npy"))
        .unwrap()
        .data;
    let tuning = npy::read_i64(&root.join("truth/voxel_tuning.npy"))
        .unwrap()
        .data;
    (group, tuning)
}

#[test]
fn the_layout_is_cc2017_and_reads_back() {
    let (_, root, truth) = dataset();
    let d = &truth.design;
    assert_eq!(
        (
            d.train_segments,
            d.train_repetitions,
            d.test_segments,
            d.test_repetitions
        ),
        (4, 2, 2, 4)
    );
    let train = runs_in(root, 1, Split::Train, d.train_segments, d.train_repetitions).unwrap();
    let test = runs_in(root, 1, Split::Test, d.test_segments, d.test_repetitions).unwrap();
    assert_eq!(train.len() + test.len(), 16);
    assert!(root
        .join("subject1/fmri/seg1/cifti/seg1_2_Atlas.dtseries.nii")
        .is_file());
    assert!(root
        .join("subject1/fmri/test2/cifti/test2_4_Atlas.dtseries.nii")
        .is_file());
    for run in train.iter().chain(&test) {
        let cifti = CiftiSeries::read(&run.path).unwrap();
        assert_eq!((cifti.n_time(), cifti.n_grayordinates()), (40, 2000));
        assert_eq!(cifti.tr_seconds(), Some(2.0));
        assert_eq!(cifti.header.intent_code, 3002);
        assert_eq!(
            cifti.cortex().unwrap().columns,
            (0..1800).collect::<Vec<_>>()
        );
        assert!(cifti.data().iter().all(|v| v.is_finite() && *v > 1000.0));
    }
    let frames = root.join("stimuli/test1");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(frames.join("frames.json")).unwrap()).unwrap();
    assert_eq!(meta["fps"], 3.0);
    assert_eq!(
        (meta["width"].as_u64(), meta["n_frames"].as_u64()),
        (Some(64), Some(240))
    );
    let last = brainrecon_formats::image::read_png(&frames.join("frame_000239.png")).unwrap();
    assert_eq!((last.width, last.height), (64, 64));
    assert!(!frames.join("frame_000240.png").exists());
    let segment: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("truth/segments/seg2.json")).unwrap())
            .unwrap();
    let trs = segment["trs"].as_array().unwrap();
    assert_eq!(trs.len(), 40);
    let caption = trs[0]["caption"].as_str().unwrap();
    assert!(
        caption.starts_with("a ") && (caption.contains("moving") || caption.contains("still")),
        "{caption}"
    );
    let clips = segment["clips"].as_array().unwrap();
    assert!(clips
        .iter()
        .all(|c| (1..=3).contains(&c["n_trs"].as_u64().unwrap())));
    assert_eq!(
        truth
            .groups
            .iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>(),
        GROUPS
    );
}

/// After detrending, two presentations of a segment agree where there is signal, not where
/// there is only noise, and their difference carries none of the true signal.
#[test]
fn repetitions_differ_only_by_noise() {
    let (_, root, _) = dataset();
    let (group, _) = groups(root);
    let signal = npy::read_f32(&root.join("truth/signal/seg1.npy")).unwrap();
    let n_gray = signal.shape[1];
    let (n, a) = cleaned_cortex(&run_path(root, 1, Split::Train, 1, 1), false);
    let (_, b) = cleaned_cortex(&run_path(root, 1, Split::Train, 1, 2), false);
    let (mut agree_signal, mut agree_noise, mut diff_signal) = (Vec::new(), Vec::new(), Vec::new());
    for v in 0..a.len() {
        let truth: Vec<f64> = (0..n).map(|t| signal.data[t * n_gray + v] as f64).collect();
        assert_ne!(a[v], b[v]);
        let r = pearson(&a[v], &b[v]);
        if group[v] == 3 {
            agree_noise.push(r);
        } else {
            agree_signal.push(r);
            let diff: Vec<f64> = a[v].iter().zip(&b[v]).map(|(x, y)| x - y).collect();
            diff_signal.push(pearson(&diff, &truth));
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    eprintln!(
        "rep 1 vs 2: signal voxels r {:.3}, noise voxels r {:.3}; difference vs signal r {:.3}",
        mean(&agree_signal),
        mean(&agree_noise),
        mean(&diff_signal)
    );
    assert!(
        mean(&agree_signal) > 0.3,
        "signal voxels agree by {}",
        mean(&agree_signal)
    );
    assert!(
        mean(&agree_noise).abs() < 0.05,
        "noise voxels agree by {}",
        mean(&agree_noise)
    );
    assert!(
        mean(&diff_signal).abs() < 0.05,
        "the difference follows the signal by {}",
        mean(&diff_signal)
    );
}

/// Motion voxels follow the HRF-convolved indicator of their preferred direction more than
/// that of the other directions.
#[test]
fn motion_voxels_follow_the_true_direction() {
    let (_, root, truth) = dataset();
    let (group, tuning) = groups(root);
    let hrf = canonical_hrf(2.0);
    let (mut own, mut other) = (Vec::new(), Vec::new());
    for k in 1..=truth.design.train_segments {
        let directions = npy::read_i64(&root.join(format!("truth/segments/seg{k}_direction.npy")))
            .unwrap()
            .data;
        let predictor = |d: i64| -> Vec<f64> {
            (0..directions.len())
                .map(|t| {
                    (0..=t.min(hrf.len() - 1))
                        .map(|l| hrf[l] * (directions[t - l] == d) as u8 as f64)
                        .sum()
                })
                .collect()
        };
        let predictors: Vec<Vec<f64>> = (0..4).map(predictor).collect();
        let (_, a) = cleaned_cortex(&run_path(root, 1, Split::Train, k, 1), true);
        let (_, b) = cleaned_cortex(&run_path(root, 1, Split::Train, k, 2), true);
        for v in (0..a.len()).filter(|&v| group[v] == 1) {
            let mean: Vec<f64> = a[v].iter().zip(&b[v]).map(|(x, y)| (x + y) / 2.0).collect();
            for (d, p) in predictors.iter().enumerate() {
                if p.iter().all(|&x| x == 0.0) {
                    continue;
                }
                let r = pearson(&mean, p);
                if d as i64 == tuning[v] {
                    own.push(r)
                } else {
                    other.push(r)
                }
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    eprintln!(
        "motion voxels: r with own direction {:.3}, with others {:.3}",
        mean(&own),
        mean(&other)
    );
    assert!(
        mean(&own) > 0.3 && mean(&own) > mean(&other) + 0.3,
        "own {} other {}",
        mean(&own),
        mean(&other)
    );
}

#[test]
fn the_cifti_writer_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.dtseries.nii");
    let surface = |name: &str, offset, vertices: Vec<usize>| BrainModel {
        index_offset: offset,
        index_count: vertices.len(),
        model_type: ModelType::Surface,
        brain_structure: name.into(),
        surface_number_of_vertices: Some(50),
        vertex_indices: vertices,
        voxel_indices_ijk: Vec::new(),
    };
    let models = vec![
        surface(CORTEX[0], 0, vec![0, 3, 7, 49]),
        surface(CORTEX[1], 4, vec![1, 2]),
        BrainModel {
            index_offset: 6,
            index_count: 3,
            model_type: ModelType::Voxels,
            brain_structure: "CIFTI_STRUCTURE_ACCUMBENS_LEFT".into(),
            surface_number_of_vertices: None,
            vertex_indices: Vec::new(),
            voxel_indices_ijk: vec![[1, 2, 3], [4, 5, 6], [0, 0, 9]],
        },
    ];
    let volume = CiftiVolume {
        dimensions: [5, 6, 10],
        ijk_to_xyz: [
            [-2.0, 0.0, 0.0, 90.5],
            [0.0, 2.0, 0.0, -126.0],
            [0.0, 0.0, 2.0, -72.25],
            [0.0, 0.0, 0.0, 1.0],
        ],
        meter_exponent: -3,
    };
    let series = SeriesMap {
        count: 7,
        start: 1.5,
        step: 0.72,
        exponent: 0,
        unit: "SECOND".into(),
    };
    // Flat stretches, extremes and subnormals as well as ordinary values.
    let data: Vec<f32> = (0..7 * 9)
        .map(|i| match i % 5 {
            0 => 0.0,
            1 => f32::MAX / (i as f32),
            2 => f32::MIN_POSITIVE / 3.0,
            _ => (i as f32).sin() * 1e4,
        })
        .collect();
    write_dense_series(&path, &series, &models, Some(&volume), &data).unwrap();
    let back = CiftiSeries::read(&path).unwrap();
    assert_eq!(back.series, series);
    assert_eq!(back.series_dimension, 0);
    assert_eq!(back.brain_models, models);
    assert_eq!(back.volume.as_ref(), Some(&volume));
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(back.data()), bits(&data));
    // Models that do not tile the data are refused and nothing is written.
    let bad = dir.path().join("bad.dtseries.nii");
    let err = write_dense_series(&bad, &series, &models[..2], Some(&volume), &data).unwrap_err();
    assert!(err.to_string().contains("63 values"), "{err}");
    assert!(!bad.exists());
}

/// The prepared subject against a preparation done here from the CIFTI files: repetition
/// averages, z-scores, windows, index; reliable voxels are signal voxels.
#[test]
fn prepare_matches_a_computation_by_hand() {
    let (dir, root, truth) = dataset();
    let out = dir.path().join("prepared");
    let mut opts = Cc2017Options::new(root, 1, &out);
    opts.window = 2;
    opts.lag = 1;
    let report = prepare(&opts).unwrap();
    let meta = read_meta(&out).unwrap();
    assert_eq!(meta, report.meta);
    assert_eq!(meta.settings.detrend, format!("poly:{DRIFT_DEGREE}"));
    let (v, n) = (meta.n_voxels, 40);
    let per_segment = n - 2 - 1 + 1;
    let x = npy::read_f32(&out.join("X_train.npy")).unwrap();
    assert_eq!(x.shape, [4 * per_segment, 2 * v]);
    assert_eq!(
        npy::read_f32(&out.join("X_test.npy")).unwrap().shape,
        [2 * per_segment, 2 * v]
    );
    let index = npy::read_i64(&out.join("train_index.npy")).unwrap();
    assert_eq!(index.shape, [4 * per_segment, 2]);
    assert_eq!(&index.data[..4], &[1, 0, 1, 1]);
    let gray = npy::read_i64(&out.join("grayordinates.npy")).unwrap().data;
    let fmri = npy::read_f32(&out.join("fmri_test.npy")).unwrap();
    assert_eq!(fmri.shape, [2, n, v]);
    // Test segment 2: the mean of its 4 z-scored repetitions.
    let reps: Vec<Vec<Vec<f64>>> = (1..=4)
        .map(|r| cleaned_cortex(&run_path(root, 1, Split::Test, 2, r), true).1)
        .collect();
    let mut worst = 0f64;
    for (j, &g) in gray.iter().enumerate() {
        for t in 0..n {
            let mean = reps.iter().map(|r| r[g as usize][t]).sum::<f64>() / 4.0;
            worst = worst.max((fmri.data[(n + t) * v + j] as f64 - mean).abs());
        }
    }
    assert!(worst < 1e-5, "averages differ by {worst}");
    // A sample is its window of the averages: row (segment 1, TR 5) holds TRs 6 and 7.
    let train = npy::read_f32(&out.join("fmri_train.npy")).unwrap();
    let row = &x.data[5 * 2 * v..6 * 2 * v];
    assert_eq!(row, &train.data[6 * v..8 * v]);
    // Kept voxels are signal voxels, and most signal voxels are kept.
    let (group, _) = groups(root);
    let kept_signal = gray.iter().filter(|&&g| group[g as usize] != 3).count();
    let signal_total = group[..1800].iter().filter(|&&g| g != 3).count();
    eprintln!(
        "kept {v} voxels, {kept_signal} of them signal, of {signal_total} signal voxels; mean r kept {:.3}, all {:.3}",
        meta.mean_reliability_kept,
        meta.mean_reliability_all
    );
    assert!(
        kept_signal as f64 > 0.95 * v as f64,
        "{kept_signal} of {v} kept are signal"
    );
    assert!(
        v as f64 > 0.8 * signal_total as f64,
        "kept {v} of {signal_total} signal voxels"
    );
    assert_eq!(truth.n_cortex, 1800);
    // The same settings again: nothing to do; other settings: refused.
    assert!(prepare(&opts).unwrap().already_prepared);
    opts.lag = 0;
    assert!(prepare(&opts).is_err());
}

#[test]
fn a_seed_makes_the_same_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str, seed| {
        let mut opts = VideoOptions::new(&dir.path().join(name));
        opts.seed = seed;
        opts.train_segments = 1;
        opts.test_segments = 1;
        opts.test_repetitions = 1;
        opts.n_tr = 12;
        simulate_video(&opts).unwrap();
        let run = run_path(&dir.path().join(name), 1, Split::Train, 1, 2);
        (
            std::fs::read(run).unwrap(),
            std::fs::read(dir.path().join(name).join("stimuli/seg1/frame_000010.png")).unwrap(),
        )
    };
    let (a, b, c) = (make("a", 1), make("b", 1), make("c", 2));
    assert_eq!(a, b);
    assert_ne!(a.0, c.0);
}
