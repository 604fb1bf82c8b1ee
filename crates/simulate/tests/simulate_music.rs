//! The synthetic music subject: determinism for a seed, ds003720's layout, events read back
//! through the BIDS reader, and clips cut from the written tracks.

use brainrecon_core::DataError;
use brainrecon_datasets::bids;
use brainrecon_datasets::ds003720::{event_clip, read_stimulus_events, StimulusEvent};
use brainrecon_formats::audio::features::acoustic_features;
use brainrecon_formats::audio::read_audio;
use brainrecon_formats::nifti4d;
use brainrecon_formats::npy;
use brainrecon_simulate::music::{simulate_music, MusicOptions, MusicTruth, RATE, TR};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn files_under(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), bytes);
            }
        }
    }
    out
}

fn simulate(dir: &Path, name: &str, seed: u64) -> (PathBuf, MusicTruth) {
    let out = dir.join(name);
    let mut opts = MusicOptions::new(&out);
    opts.seed = seed;
    let simulated = simulate_music(&opts).unwrap();
    (out, simulated.truth)
}

#[test]
fn a_seed_makes_the_same_subject_and_another_seed_another() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = simulate(dir.path(), "a", 3);
    let (b, _) = simulate(dir.path(), "b", 3);
    let (c, _) = simulate(dir.path(), "c", 4);
    let (fa, fb, fc) = (files_under(&a), files_under(&b), files_under(&c));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (path, bytes) in &fa {
        // The description names the seed only; nothing else may differ.
        assert!(
            fb[path] == *bytes,
            "{} differs between two runs of seed 3",
            path.display()
        );
    }
    let events = Path::new("sub-001/func/sub-001_task-Training_run-01_events.tsv");
    assert_ne!(fa[events], fc[events]);
    assert_ne!(
        fa[Path::new("truth/clips.json")],
        fc[Path::new("truth/clips.json")]
    );
}

#[test]
fn layout_events_and_clips_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let (root, truth) = simulate(dir.path(), "music", 0);
    assert_eq!((truth.n_train_clips, truth.n_test_clips), (40, 10));
    for file in [
        "dataset_description.json",
        "participants.tsv",
        "derivatives/mask/sub-001_mask.nii.gz",
        "derivatives/atlas/sub-001_atlas-Destrieux_dseg.nii.gz",
        "derivatives/atlas/sub-001_atlas-Destrieux_dseg.tsv",
        "truth/truth.json",
        "truth/clips.json",
        "truth/acoustic.npy",
        "truth/semantic.npy",
        "truth/voxel_group.npy",
    ] {
        assert!(root.join(file).is_file(), "{file}");
    }
    let wavs = std::fs::read_dir(root.join("stimuli/genres/jazz"))
        .unwrap()
        .count();
    assert_eq!(wavs, 5);

    // The BIDS reader finds the runs of both tasks, their TR and their events.
    let runs = bids::bold_files(&root, "001").unwrap();
    let names: Vec<String> = runs.iter().map(|r| bids::run_name(&r.entities)).collect();
    assert_eq!(
        names,
        [
            "task-Test_run-01",
            "task-Test_run-02",
            "task-Training_run-01",
            "task-Training_run-02"
        ]
    );
    let clips: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(root.join("truth/clips.json")).unwrap()).unwrap();
    let acoustic = npy::read_f32(&root.join("truth/acoustic.npy")).unwrap();
    assert_eq!(acoustic.shape, [50, 10, 10]);
    let mut checked_clip = false;
    for bold in &runs {
        let dir = bold.path.parent().unwrap();
        let tr = bids::repetition_time(&root, &bold.entities, dir, &bold.path).unwrap();
        assert_eq!(tr, TR);
        let events_path = bids::events_file(&root, &bold.entities, dir)
            .unwrap()
            .unwrap();
        let events = read_stimulus_events(&events_path).unwrap();
        let task = bids::entity(&bold.entities, "task").unwrap();
        let number: usize = bids::entity(&bold.entities, "run")
            .unwrap()
            .parse()
            .unwrap();
        let run = truth
            .runs
            .iter()
            .find(|r| r.task == task && r.run == number)
            .unwrap();
        assert_eq!(events.len(), run.clips.len());
        assert_eq!(events.len(), 21);
        let header = nifti4d::read_header(&bold.path).unwrap();
        assert_eq!(header.n_volumes, events.len() * 10);
        for (k, (event, &clip)) in events.iter().zip(&run.clips).enumerate() {
            assert_eq!(event.onset, k as f64 * 15.0);
            assert_eq!(event.duration, 15.0);
            assert_eq!(event.genre, clips[clip]["genre"].as_str().unwrap());
            assert_eq!(event.track as u64, clips[clip]["track"].as_u64().unwrap());
            assert_eq!(event.start, clips[clip]["start"].as_f64().unwrap());
        }
        // A clip cut from its written track gives back the features that drove the brain.
        if !checked_clip {
            let (event, clip) = (&events[3], run.clips[3]);
            let audio = event_clip(&root.join("stimuli"), event, &events_path, RATE).unwrap();
            assert_eq!(audio.samples.len(), 15 * RATE as usize);
            let rows = acoustic_features(&audio.samples, RATE, TR);
            let want = &acoustic.data[clip * 100..(clip + 1) * 100];
            for (got, want) in rows.iter().flatten().zip(want) {
                assert!(
                    (*got as f32 - want).abs() < 1e-4 * want.abs().max(1.0),
                    "{got} vs {want}"
                );
            }
            let at_48k = event_clip(&root.join("stimuli"), event, &events_path, 48_000).unwrap();
            assert_eq!(at_48k.samples.len(), 15 * 48_000);
            checked_clip = true;
        }
    }

    // An event pointing past the end of its (18-s) track names the track and the row.
    let track = read_audio(&root.join(clips[0]["audio"].as_str().unwrap())).unwrap();
    assert_eq!((track.rate, track.channels_in_file), (RATE, 1));
    assert!((track.duration() - 18.0).abs() < 1e-9);
    let late = StimulusEvent {
        row: 7,
        onset: 90.0,
        duration: 15.0,
        genre: clips[0]["genre"].as_str().unwrap().to_string(),
        track: clips[0]["track"].as_u64().unwrap() as u32,
        start: 10.0,
    };
    let err = event_clip(
        &root.join("stimuli"),
        &late,
        Path::new("late_events.tsv"),
        RATE,
    )
    .unwrap_err();
    assert!(matches!(err, DataError::Invalid { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(".wav")
            && text.contains("late_events.tsv row 7")
            && text.contains("past the end"),
        "{text}"
    );

    // The atlas table names Destrieux ROIs; every brain voxel is in one.
    let table =
        std::fs::read_to_string(root.join("derivatives/atlas/sub-001_atlas-Destrieux_dseg.tsv"))
            .unwrap();
    assert!(
        table.starts_with("index\tname\n") && table.contains("11133\tctx_lh_G_temp_sup-G_T_transv")
    );
    assert_eq!(table.lines().count(), 25);
    let rois = npy::read_i64(&root.join("truth/voxel_roi.npy"))
        .unwrap()
        .data;
    assert_eq!(rois.len(), truth.n_brain_voxels);
    assert!(rois
        .iter()
        .all(|&r| (11100..11176).contains(&r) || (12100..12176).contains(&r)));
    assert_eq!(
        truth.group_voxels.iter().sum::<usize>(),
        truth.n_brain_voxels
    );
    assert!(
        truth.group_voxels.iter().all(|&n| n > 100),
        "{:?}",
        truth.group_voxels
    );
}

#[test]
fn bad_options_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x");
    let mut opts = MusicOptions::new(&out);
    opts.clips_per_run = 6;
    let err = simulate_music(&opts).unwrap_err().to_string();
    assert!(
        err.contains("--clips-per-run") && err.contains("multiple of 4"),
        "{err}"
    );
    let mut opts = MusicOptions::new(&out);
    opts.track_seconds = 10.0;
    assert!(simulate_music(&opts)
        .unwrap_err()
        .to_string()
        .contains("--track-seconds"));
    let mut opts = MusicOptions::new(&out);
    opts.clips_per_genre = 101;
    assert!(simulate_music(&opts)
        .unwrap_err()
        .to_string()
        .contains("--clips-per-genre"));
    assert!(!out.exists());
    std::fs::create_dir_all(out.join("something")).unwrap();
    let err = simulate_music(&MusicOptions::new(&out))
        .unwrap_err()
        .to_string();
    assert!(err.contains("non-empty"), "{err}");
}

#[test]
fn captions_and_a_library_nobody_heard_are_written_beside_the_tracks() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    let mut opts = MusicOptions::new(&out);
    opts.clips_per_genre = 2;
    opts.clips_per_run = 4;
    opts.library_per_genre = 2;
    opts.volume_shape = [8, 8, 8];
    let simulated = simulate_music(&opts).unwrap();
    let captions = std::fs::read_to_string(out.join("stimuli/captions.tsv")).unwrap();
    let rows: Vec<&str> = captions.lines().collect();
    assert_eq!(rows[0], "track\tstart\tcaption");
    let clips: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("truth/clips.json")).unwrap())
            .unwrap();
    assert_eq!(rows.len(), 1 + clips.len());
    for (row, clip) in rows[1..].iter().zip(&clips) {
        let cells: Vec<&str> = row.split('\t').collect();
        let track = format!(
            "{}.{:05}",
            clip["genre"].as_str().unwrap(),
            clip["track"].as_u64().unwrap()
        );
        assert_eq!(
            (cells[0], cells[2]),
            (track.as_str(), clip["caption"].as_str().unwrap())
        );
    }
    for genre in &simulated.truth.genres {
        for n in 0..2 {
            let path = out.join(format!("library/{genre}/{genre}.{n:05}.wav"));
            let audio = brainrecon_formats::audio::read_audio(&path).unwrap();
            assert_eq!(
                (audio.rate, audio.samples.len()),
                (RATE, 15 * RATE as usize)
            );
            // Nobody heard it: no stimulus track has the same audio.
            let heard = out.join(format!("stimuli/genres/{genre}/{genre}.{n:05}.wav"));
            if heard.is_file() {
                assert_ne!(
                    std::fs::read(&heard).unwrap(),
                    std::fs::read(&path).unwrap()
                );
            }
        }
    }
}
