//! A synthetic NSD tree goes through `nsd prepare`; everything is checked against the simulator's truth.

use brainrecon_datasets::nsd::prepare::{prepare, PrepareOptions, ZScore};
use brainrecon_datasets::prepared::{PreparedSubject, Split};
use brainrecon_formats::npy;
use brainrecon_simulate::{simulate, OutputLayout, SimulateOptions, Truth};
use std::collections::BTreeMap;
use std::path::Path;

fn small_subject(root: &Path, seed: u64) -> Truth {
    let mut opts = SimulateOptions::new(root);
    opts.n_images = 40;
    opts.image_size = 24;
    opts.sessions = 3;
    opts.volume_shape = [14, 18, 12];
    opts.seed = seed;
    simulate(&opts).unwrap().truth
}

fn options(root: &Path, out: &Path) -> PrepareOptions {
    PrepareOptions {
        nsd_root: root.to_path_buf(),
        subject: 1,
        out: out.to_path_buf(),
        sessions: None,
        atlases: vec![
            "nsdgeneral".into(),
            "streams".into(),
            "prf-visualrois".into(),
        ],
        zscore: ZScore::Session,
        average_train: true,
        image_size: None,
        progress: false,
    }
}

/// Independent per-session z-score of the truth's int16/300 betas (population std), f64.
fn expected_zscored(truth_dir: &Path) -> (Vec<Vec<f64>>, Vec<usize>, Vec<usize>) {
    let psc = npy::read_f32(&truth_dir.join("betas_psc.npy")).unwrap();
    let sessions = npy::read_i64(&truth_dir.join("trial_session.npy"))
        .unwrap()
        .data;
    let stimuli = npy::read_i64(&truth_dir.join("trial_stimulus.npy"))
        .unwrap()
        .data;
    let (n, v) = (psc.shape[0], psc.shape[1]);
    let mut z = vec![vec![0f64; v]; n];
    for s in sessions
        .iter()
        .copied()
        .collect::<std::collections::BTreeSet<_>>()
    {
        let rows: Vec<usize> = (0..n).filter(|&r| sessions[r] == s).collect();
        for c in 0..v {
            let xs: Vec<f64> = rows.iter().map(|&r| psc.data[r * v + c] as f64).collect();
            let mean = xs.iter().sum::<f64>() / xs.len() as f64;
            let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64).sqrt();
            for (k, &r) in rows.iter().enumerate() {
                z[r][c] = (xs[k] - mean) / sd;
            }
        }
    }
    (
        z,
        stimuli.iter().map(|&x| x as usize).collect(),
        sessions.iter().map(|&x| x as usize).collect(),
    )
}

#[test]
fn nsd_tree_round_trips_through_prepare() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nsd");
    let truth = small_subject(&root, 3);
    let out = dir.path().join("subj01");
    let report = prepare(&options(&root, &out)).unwrap();
    assert!(!report.already_prepared);
    assert_eq!(report.sessions_processed, 3);

    let subject = PreparedSubject::open(&out).unwrap();
    let meta = &subject.meta;
    assert_eq!(meta.n_train_trials, truth.n_train_trials);
    assert_eq!(meta.n_train_images, truth.n_train_images);
    assert_eq!(meta.n_test_images, truth.n_test_images);
    assert_eq!(meta.n_test_trials, truth.n_test_trials);
    assert_eq!(meta.volume_shape, truth.volume_shape);
    assert_eq!(meta.captions_per_image, 5);
    assert_eq!(subject.test_stimulus_ids().unwrap(), truth.shared_ids);
    assert_eq!(subject.roi_counts(), truth.rois);

    // Split and ids against the truth's trial list.
    let truth_dir = root.join("truth");
    let (z, stimuli, _) = expected_zscored(&truth_dir);
    let shared: std::collections::BTreeSet<usize> = truth.shared_ids.iter().copied().collect();
    let train_trials: Vec<usize> = (0..stimuli.len())
        .filter(|&t| !shared.contains(&stimuli[t]))
        .collect();
    let train_ids = subject.train_stimulus_ids().unwrap();
    assert_eq!(
        train_ids,
        train_trials.iter().map(|&t| stimuli[t]).collect::<Vec<_>>()
    );

    // Betas: ÷300, z-scored per session, train single trials, test averaged over repeats.
    let roi = subject.roi("nsdgeneral").unwrap();
    let coords = npy::read_i64(&out.join("rois/nsdgeneral.npy")).unwrap();
    assert_eq!(
        coords.data,
        npy::read_i64(&truth_dir.join("voxel_coords.npy"))
            .unwrap()
            .data
    );
    let train = subject.betas(&roi, Split::Train).unwrap();
    assert_eq!(
        (train.rows, train.voxels),
        (truth.n_train_trials, z[0].len())
    );
    let mut worst = 0f64;
    for (row, &t) in train_trials.iter().enumerate() {
        for c in 0..train.voxels {
            worst = worst.max((train.values[row * train.voxels + c] as f64 - z[t][c]).abs());
        }
    }
    assert!(worst < 1e-4, "train betas differ from truth by {worst}");
    let test = subject.betas(&roi, Split::Test).unwrap();
    for (row, &id) in truth.shared_ids.iter().enumerate() {
        let reps: Vec<usize> = (0..stimuli.len()).filter(|&t| stimuli[t] == id).collect();
        assert_eq!(reps.len(), 3);
        for c in 0..test.voxels {
            let mean = reps.iter().map(|&t| z[t][c]).sum::<f64>() / 3.0;
            assert!((test.values[row * test.voxels + c] as f64 - mean).abs() < 1e-4);
        }
    }
    let averaged = subject.betas(&roi, Split::TrainAveraged).unwrap();
    assert_eq!(averaged.rows, truth.n_train_images);

    // A label ROI selects the right columns of its atlas.
    let v1v = subject.roi("prf-visualrois/V1v").unwrap();
    assert_eq!(v1v.n_voxels, truth.rois["prf-visualrois/V1v"]);
    assert_eq!(subject.roi("V1v").unwrap(), v1v);
    assert!(subject.roi("V9").is_err());
    // A union of one atlas' labels: their columns, sorted, no label twice.
    let v1 = subject.roi("prf-visualrois/V1v+V1d").unwrap();
    let v1d = subject.roi("prf-visualrois/V1d").unwrap();
    assert_eq!(v1.n_voxels, v1v.n_voxels + v1d.n_voxels);
    let mut expected = [v1v.columns.clone().unwrap(), v1d.columns.clone().unwrap()].concat();
    expected.sort_unstable();
    assert_eq!(v1.columns.unwrap(), expected);
    assert!(subject.roi("prf-visualrois/V1v+V1v").is_err());
    assert!(subject.roi("prf-visualrois/V1v+V9").is_err());
    assert!(subject.roi("V1v+V1d").is_err());

    // Stimuli are the rendered scenes; captions describe them.
    let stimuli_store = subject.images().unwrap();
    let captions = subject.captions().unwrap();
    for &id in &truth.shared_ids {
        assert_eq!(stimuli_store.get(id).unwrap(), truth.scenes[id].render(24));
        let colour = brainrecon_simulate::scene::COLOURS[truth.scenes[id].colour].0;
        assert_eq!(captions[&id].len(), 5);
        assert!(captions[&id].iter().all(|c| c.contains(colour)));
    }

    // Info reports exactly what NSD's files imply.
    let info = subject.info().unwrap();
    assert_eq!(info["n_train_trials"], truth.n_train_trials);
    assert_eq!(
        info["test_stimulus_ids"],
        serde_json::json!(truth.shared_ids)
    );
    assert_eq!(info["image_size"], serde_json::json!([24, 24]));

    // A rerun finds the work done.
    assert!(prepare(&options(&root, &out)).unwrap().already_prepared);
}

#[test]
fn interrupted_prepare_resumes_and_session_subset_counts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nsd");
    let truth = small_subject(&root, 5);
    let out = dir.path().join("subj01");
    // Leave a finished session in the staging area, as an interrupted run would.
    let mut opts = options(&root, &out);
    opts.sessions = Some(vec![1, 2]);
    opts.zscore = ZScore::None;
    let first = prepare(&opts).unwrap();
    assert_eq!(first.sessions_processed, 2);
    let staging = dir.path().join("subj01b.partial/sessions");
    std::fs::create_dir_all(&staging).unwrap();
    let mut second = opts.clone();
    second.out = dir.path().join("subj01b");
    std::fs::write(
        dir.path().join("subj01b.partial/.prepare-settings.json"),
        b"{}",
    )
    .unwrap();
    let err = prepare(&second).unwrap_err().to_string();
    assert!(err.contains("different settings"), "{err}");
    std::fs::remove_dir_all(dir.path().join("subj01b.partial")).unwrap();

    // Counts for sessions 1-2 only, betas in percent signal change.
    let stimuli = npy::read_i64(&root.join("truth/trial_stimulus.npy"))
        .unwrap()
        .data;
    let sessions = npy::read_i64(&root.join("truth/trial_session.npy"))
        .unwrap()
        .data;
    let shared: std::collections::BTreeSet<i64> =
        truth.shared_ids.iter().map(|&i| i as i64).collect();
    let used: Vec<usize> = (0..stimuli.len()).filter(|&t| sessions[t] <= 2).collect();
    let n_train = used
        .iter()
        .filter(|&&t| !shared.contains(&stimuli[t]))
        .count();
    let subject = PreparedSubject::open(&out).unwrap();
    assert_eq!(subject.meta.n_train_trials, n_train);
    let psc = npy::read_f32(&root.join("truth/betas_psc.npy")).unwrap();
    let roi = subject.roi("nsdgeneral").unwrap();
    let train = subject.betas(&roi, Split::Train).unwrap();
    let first_train = used
        .iter()
        .copied()
        .find(|&t| !shared.contains(&stimuli[t]))
        .unwrap();
    assert_eq!(
        &train.values[..train.voxels],
        &psc.data[first_train * train.voxels..(first_train + 1) * train.voxels]
    );
    let mut seen = BTreeMap::new();
    for &t in &used {
        *seen.entry(stimuli[t]).or_insert(0) += 1;
    }
    assert_eq!(
        subject.meta.n_test_images,
        seen.keys().filter(|k| shared.contains(k)).count()
    );
}

#[test]
fn prepared_layout_carries_truth() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("subj01");
    let mut opts = SimulateOptions::new(&out);
    opts.n_images = 30;
    opts.image_size = 16;
    opts.volume_shape = [12, 14, 10];
    opts.layout = OutputLayout::Prepared;
    let sim = simulate(&opts).unwrap();
    let subject = PreparedSubject::open(&out).unwrap();
    assert_eq!(subject.meta.n_test_images, sim.truth.n_test_images);
    assert!(out.join("truth/truth.json").exists());
    assert!(!dir.path().join("subj01.nsd-source").exists());
}

#[test]
fn same_seed_same_subject() {
    let dir = tempfile::tempdir().unwrap();
    let a = small_subject(&dir.path().join("a"), 9);
    let b = small_subject(&dir.path().join("b"), 9);
    assert_eq!(a, b);
    let read = |p: &str| std::fs::read(dir.path().join(p)).unwrap();
    assert_eq!(read("a/truth/betas_psc.npy"), read("b/truth/betas_psc.npy"));
}
