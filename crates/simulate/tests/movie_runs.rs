//! The simulated movie subject (`simulate_movie`) through the continuous-fMRI data layer: it
//! prepares as a BIDS dataset, and its planted signals survive preparation.

use brainrecon_core::signal::detrend::Detrend;
use brainrecon_datasets::runs::prepare::{prepare, Layout, MaskChoice, PrepareOptions};
use brainrecon_datasets::runs::RunSet;
use brainrecon_formats::npy;
use std::path::{Path, PathBuf};

fn options(sim: &Path, out: &Path) -> PrepareOptions {
    PrepareOptions {
        root: sim.to_path_buf(),
        subject: "01".into(),
        tasks: vec!["movie".into()],
        sessions: Vec::new(),
        out: out.to_path_buf(),
        layout: Layout::Bids,
        mask: MaskChoice::Auto,
        detrend: None,
        drop_seconds: None,
        progress: false,
        keep_units: false,
    }
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// Mean over voxels of each group of the correlation between prepared data and the planted
/// noise-free signal.
fn group_correlations(set: &RunSet, sim: &Path, n_groups: usize) -> Vec<f64> {
    let groups = npy::read_i64(&sim.join("truth/voxel_group.npy"))
        .unwrap()
        .data;
    let n = set.n_voxels();
    let mut sums = vec![0.0; n_groups];
    let mut counts = vec![0usize; n_groups];
    for (i, run) in set.runs().iter().enumerate() {
        let data = set.run_data(i).unwrap();
        let signal =
            npy::read_f32(&sim.join(format!("truth/signal/run-{:02}.npy", run.run.unwrap())))
                .unwrap();
        let offset = (run.start_seconds / set.tr()) as usize;
        for v in 0..n {
            let ours: Vec<f64> = (0..run.n_trs).map(|t| data.row(t)[v] as f64).collect();
            let truth: Vec<f64> = (0..run.n_trs)
                .map(|t| signal.data[(t + offset) * n + v] as f64)
                .collect();
            sums[groups[v] as usize] += correlation(&ours, &truth);
            counts[groups[v] as usize] += 1;
        }
    }
    sums.iter()
        .zip(&counts)
        .map(|(s, &c)| s / c as f64)
        .collect()
}

/// A two-run simulated movie subject in DIR/sim and its truth.
fn simulated_movie(dir: &Path) -> (PathBuf, brainrecon_simulate::movie::MovieTruth) {
    use brainrecon_simulate::movie::{simulate_movie, MovieOptions};
    let sim = dir.join("sim");
    let mut o = MovieOptions::new(&sim);
    (o.runs, o.run_seconds, o.seed) = (2, 240, 7);
    let truth = simulate_movie(&o).unwrap().truth;
    (sim, truth)
}

fn movie_options(dir: &Path, sim: &Path, out: &str) -> PrepareOptions {
    let mut opts = options(sim, &dir.join(out));
    opts.mask = MaskChoice::File(sim.join("derivatives/mask/sub-01_mask.nii.gz"));
    opts.drop_seconds = Some(10.0);
    opts
}

#[test]
fn the_simulated_movie_subject_prepares_as_bids() {
    use brainrecon_simulate::movie::KINDS;
    let dir = tempfile::tempdir().unwrap();
    let (sim, truth) = simulated_movie(dir.path());
    assert_eq!(truth.groups.len(), 7);
    assert!(
        (1200..2000).contains(&truth.n_brain_voxels),
        "{}",
        truth.n_brain_voxels
    );
    let opts = movie_options(dir.path(), &sim, "runs");
    prepare(&opts).unwrap();
    let set = RunSet::open(&opts.out).unwrap();
    let voxels = npy::read_i64(&sim.join("truth/voxels.npy")).unwrap().data;
    let ours: Vec<i64> = set
        .voxel_indices()
        .iter()
        .flatten()
        .map(|&c| c as i64)
        .collect();
    assert_eq!(ours, voxels);
    assert_eq!(set.tr(), 1.0);
    let mut kinds = KINDS.to_vec();
    kinds.sort();
    assert_eq!(set.annotation_kinds(1).unwrap(), kinds);
    let speech = set.annotations(1, "speech").unwrap();
    assert_eq!(speech.len(), 230);
    let shipped = std::fs::read_to_string(
        sim.join("derivatives/annotation/movie_run-02_speech_each1sec.txt"),
    )
    .unwrap();
    assert_eq!(speech, shipped.lines().skip(10).collect::<Vec<_>>());
    let events = set.events(0).unwrap().unwrap();
    assert_eq!(events.columns(), ["onset", "duration", "title"]);
    assert_eq!(
        events
            .durations()
            .unwrap()
            .iter()
            .map(|d| d.unwrap())
            .sum::<f64>(),
        240.0
    );

    // The default threshold mask finds the brain.
    let mut threshold = opts.clone();
    threshold.mask = MaskChoice::Auto;
    threshold.out = dir.path().join("threshold");
    prepare(&threshold).unwrap();
    let found: std::collections::BTreeSet<[usize; 3]> = RunSet::open(&threshold.out)
        .unwrap()
        .voxel_indices()
        .iter()
        .copied()
        .collect();
    let brain: std::collections::BTreeSet<[usize; 3]> =
        set.voxel_indices().iter().copied().collect();
    assert_eq!(found, brain);
}

#[test]
fn the_simulated_signals_survive_preparation() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, truth) = simulated_movie(dir.path());
    let mut opts = movie_options(dir.path(), &sim, "runs");
    prepare(&opts).unwrap();
    let set = RunSet::open(&opts.out).unwrap();
    // The planted signals survive preparation, the noise group has none, drift matters, and a
    // 120 s running median eats much of the summaries' minute-long signal (240 s keeps more).
    let detrended = group_correlations(&set, &sim, 7);
    let names: Vec<&str> = truth.groups.iter().map(|g| g.name.as_str()).collect();
    for (g, name) in names.iter().enumerate() {
        let floor = match *name {
            "noise" => continue,
            "summary" => 0.15,
            "speech+summary" => 0.25,
            "timeplace" => 0.35,
            _ => 0.5,
        };
        assert!(detrended[g] > floor, "{name}: {}", detrended[g]);
    }
    // The noise group has no planted signal, and its data follow no other group's.
    let noise = names.iter().position(|n| *n == "noise").unwrap() as i64;
    let groups = npy::read_i64(&sim.join("truth/voxel_group.npy"))
        .unwrap()
        .data;
    let signal = npy::read_f32(&sim.join("truth/signal/run-01.npy")).unwrap();
    let n = set.n_voxels();
    let of_group = |g: i64| -> Vec<usize> { (0..n).filter(|&v| groups[v] == g).collect() };
    assert!(of_group(noise)
        .into_iter()
        .all(|v| (0..240).all(|s| signal.data[s * n + v] == 0.0)));
    let speech_voxels = of_group(0);
    let speech: Vec<f64> = (10..240)
        .map(|s| {
            speech_voxels
                .iter()
                .map(|&v| signal.data[s * n + v] as f64)
                .sum::<f64>()
        })
        .collect();
    let data = set.run_data(0).unwrap();
    let leak: Vec<f64> = of_group(noise)
        .into_iter()
        .map(|v| {
            let x: Vec<f64> = (0..230).map(|t| data.row(t)[v] as f64).collect();
            correlation(&x, &speech).abs()
        })
        .collect();
    let mean_leak = leak.iter().sum::<f64>() / leak.len() as f64;
    assert!(
        mean_leak < 0.12 && !leak.is_empty(),
        "noise voxels follow speech: mean |r| {mean_leak}"
    );
    let fast = |c: &[f64]| {
        c.iter()
            .zip(&names)
            .filter(|(_, n)| ["speech", "objects", "story"].contains(*n))
            .map(|(c, _)| c)
            .sum::<f64>()
            / 3.0
    };
    for (detrend, out) in [
        (Detrend::None, "raw"),
        (Detrend::Median { seconds: 240.0 }, "median240"),
    ] {
        opts.detrend = Some(detrend);
        opts.out = dir.path().join(out);
        prepare(&opts).unwrap();
        let other = group_correlations(&RunSet::open(&opts.out).unwrap(), &sim, 7);
        match detrend {
            Detrend::None => assert!(
                fast(&other) < fast(&detrended) - 0.1,
                "without detrending {other:?}, with {detrended:?}"
            ),
            _ => {
                let summary = names.iter().position(|n| *n == "summary").unwrap();
                assert!(
                    other[summary] > detrended[summary] + 0.05,
                    "240 s {other:?}, 120 s {detrended:?}"
                );
            }
        }
    }
}
