//! `simulate --kind music` end to end as a user runs it: simulate, `bids prepare` the two
//! tasks, then check that the simulated brain carries what it should: a ridge from the
//! semantic ROIs' voxels to the genre (fit on the training clips, tested on the test clips,
//! each averaged over its 4 presentations) is far above chance (0.1), and the noise voxels
//! are not. Then the command's bad options.

mod common;

use brainrecon_datasets::ds003720::{stimulus_events, GTZAN_GENRES};
use brainrecon_datasets::runs::RunSet;
use brainrecon_formats::npy;
use brainrecon_ridge::RidgeCv;
use common::{ok, p, user_error};
use std::collections::BTreeMap;
use std::path::Path;

/// Per clip presentation (the leading repeat of each run dropped): the mean of its 10 volumes
/// shifted by 3 TRs (4.5 s, about the HRF's peak), over `columns`; with the clip's genre and
/// whether it is a test clip, keyed by (genre, track) for the test clips' averaging.
struct Samples {
    rows: Vec<Vec<f32>>,
    genre: Vec<usize>,
    task: Vec<String>,
    clip: Vec<(String, u32)>,
}

fn clip_samples(runs: &RunSet, columns: &[usize]) -> Samples {
    let mut s = Samples {
        rows: Vec::new(),
        genre: Vec::new(),
        task: Vec::new(),
        clip: Vec::new(),
    };
    for (i, info) in runs.runs().iter().enumerate() {
        let data = runs.run_data(i).unwrap();
        let events = stimulus_events(&runs.events(i).unwrap().unwrap()).unwrap();
        for event in events.iter().skip(1) {
            let first = (event.onset / runs.tr()).round() as usize + 3;
            let trs: Vec<usize> = (first..first + 10).filter(|&t| t < info.n_trs).collect();
            let row: Vec<f32> = columns
                .iter()
                .map(|&c| trs.iter().map(|&t| data.row(t)[c]).sum::<f32>() / trs.len() as f32)
                .collect();
            s.rows.push(row);
            s.genre.push(event.genre_index().unwrap());
            s.task.push(info.task.clone());
            s.clip.push((event.genre.clone(), event.track));
        }
    }
    s
}

/// Test-clip genre accuracy of a ridge from `columns` to the genre one-hot.
fn genre_accuracy(runs: &RunSet, columns: &[usize]) -> (f64, usize) {
    let s = clip_samples(runs, columns);
    let p_dim = columns.len();
    let (mut x, mut y, mut n) = (Vec::new(), Vec::new(), 0);
    for (k, row) in s.rows.iter().enumerate() {
        if s.task[k] == "Training" {
            x.extend_from_slice(row);
            y.extend((0..10).map(|g| (g == s.genre[k]) as u8 as f32));
            n += 1;
        }
    }
    let model = RidgeCv {
        alphas: (0..=6).map(|e| 10f64.powi(e)).collect(),
        ..RidgeCv::default()
    }
    .fit_row_major(&x, (n, p_dim), &y, (n, 10))
    .unwrap();
    // Each test clip: its 4 presentations averaged, as the paper averages test repeats.
    let mut test: BTreeMap<(String, u32), (Vec<f32>, usize, usize)> = BTreeMap::new();
    for (k, row) in s.rows.iter().enumerate() {
        if s.task[k] == "Test" {
            let entry = test
                .entry(s.clip[k].clone())
                .or_insert((vec![0.0; p_dim], 0, s.genre[k]));
            entry.0.iter_mut().zip(row).for_each(|(a, b)| *a += b);
            entry.1 += 1;
        }
    }
    assert!(test.values().all(|(_, count, _)| *count == 4));
    let mut correct = 0;
    for (sum, count, genre) in test.values() {
        let mean: Vec<f32> = sum.iter().map(|v| v / *count as f32).collect();
        let scores = model.predict_row_major(&mean, (1, p_dim)).unwrap();
        let best = (0..10)
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .unwrap();
        correct += (best == *genre) as usize;
    }
    (correct as f64 / test.len() as f64, test.len())
}

#[test]
fn the_simulated_brain_carries_the_genre_where_the_truth_says() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, prepared) = (dir.path().join("sim"), dir.path().join("runs"));
    let summary: serde_json::Value = serde_json::from_str(&ok(&[
        "simulate",
        "--kind",
        "music",
        "--out",
        p(&sim),
        "--seed",
        "2",
        "--json",
    ]))
    .unwrap();
    assert_eq!(summary["n_train_clips"], 40);
    assert_eq!(summary["n_test_clips"], 10);
    assert_eq!(
        summary["genres"].as_array().unwrap().len(),
        GTZAN_GENRES.len()
    );
    let mask = sim.join("derivatives/mask/sub-001_mask.nii.gz");
    ok(&[
        "bids",
        "prepare",
        "--bids-root",
        p(&sim),
        "--subject",
        "001",
        "--task",
        "Training",
        "--task",
        "Test",
        "--mask",
        p(&mask),
        "--out",
        p(&prepared),
    ]);
    let runs = RunSet::open(&prepared).unwrap();
    assert_eq!(runs.tr(), 1.5);
    assert_eq!(runs.runs().len(), 4);
    let groups = npy::read_i64(&sim.join("truth/voxel_group.npy"))
        .unwrap()
        .data;
    assert_eq!(groups.len(), runs.n_voxels());
    let of_group =
        |g: i64| -> Vec<usize> { (0..groups.len()).filter(|&v| groups[v] == g).collect() };
    let (semantic, n_test) = genre_accuracy(&runs, &of_group(1));
    let (noise, _) = genre_accuracy(&runs, &of_group(2));
    eprintln!("genre accuracy on {n_test} test clips: semantic voxels {semantic}, noise voxels {noise} (chance 0.1)");
    assert!(semantic >= 0.7, "semantic voxels: {semantic}");
    assert!(noise <= 0.4, "noise voxels decode the genre: {noise}");
}

#[test]
fn bad_options_exit_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    let err = user_error(&[
        "simulate",
        "--kind",
        "music",
        "--out",
        p(&out),
        "--clips-per-run",
        "6",
    ]);
    assert!(
        err.contains("--clips-per-run") && err.contains("multiple of 4"),
        "{err}"
    );
    let err = user_error(&[
        "simulate",
        "--kind",
        "music",
        "--out",
        p(&out),
        "--track-seconds",
        "12",
    ]);
    assert!(err.contains("--track-seconds"), "{err}");
    let err = user_error(&[
        "simulate",
        "--kind",
        "music",
        "--out",
        p(&out),
        "--size",
        "nsd",
    ]);
    assert!(err.contains("--size nsd"), "{err}");
    let err = user_error(&[
        "simulate",
        "--kind",
        "music",
        "--out",
        p(&out),
        "--runs",
        "3",
    ]);
    assert!(err.contains("--kind movie"), "{err}");
    let err = user_error(&["simulate", "--out", p(&out), "--clips-per-genre", "3"]);
    assert!(err.contains("--kind music"), "{err}");
    let err = user_error(&[
        "simulate",
        "--kind",
        "movie",
        "--out",
        p(&out),
        "--size",
        "paper",
    ]);
    assert!(err.contains("--size paper"), "{err}");
    let err = user_error(&[
        "simulate",
        "--kind",
        "music",
        "--out",
        p(&out),
        "--volume",
        "8,8",
    ]);
    assert!(err.contains("--volume"), "{err}");
    assert!(!Path::new(&out).exists());
}
