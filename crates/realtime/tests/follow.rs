//! The follower on a simulated scanner's export, through the library: a moving head phantom
//! written in each DICOM layout scanners export (mosaics, enhanced multi-frame files, a file
//! per slice), with a broken file among the volumes and a volume with a slice missing.
//! Asserted: every good volume arrives once, in order, with the planted motion; the bad ones
//! are refused by name and the session goes on; motion.tsv and the summary say so.
mod common;

use brainrecon_formats::dicom::write::{write_volume, DicomLayout, ScannerVolume};
use brainrecon_realtime::follow::{Event, FollowOptions, Follower};
use brainrecon_realtime::grid::Grid;
use brainrecon_realtime::rigid::{Rigid, RigidParams};
use brainrecon_realtime::session::{SessionPreprocessor, SubjectSpace};
use common::Phantom;
use std::path::Path;
use std::sync::atomic::AtomicBool;

const VOLUMES: usize = 6;

fn grid() -> Grid {
    let shape = [48, 48, 24];
    let voxel = [3.5, 3.5, 4.0];
    Grid::axis_aligned(
        shape,
        voxel,
        std::array::from_fn(|i| -(shape[i] as f64 - 1.0) / 2.0 * voxel[i]),
    )
}

/// Planted motion of volume t relative to the first, about the grid's centre.
fn motion(t: usize) -> RigidParams {
    let s = t as f64 / (VOLUMES - 1) as f64;
    RigidParams {
        translation_mm: [0.9 * s, -0.6 * s, 0.4 * s],
        rotation_deg: [0.7 * s, -0.4 * s, 0.5 * s],
    }
}

/// Writes every volume into `export` in `layout`, leaving out the files named in `skip`.
fn write_export(export: &Path, layout: DicomLayout, skip: &[&str]) {
    std::fs::create_dir_all(export).unwrap();
    let phantom = Phantom::new(7);
    let grid = grid();
    for t in 0..VOLUMES {
        let image = phantom.image(
            &grid,
            &Rigid::from_params(&motion(t), grid.centre()),
            0.0,
            t as u64,
        );
        let values: Vec<u16> = image
            .values
            .iter()
            .map(|v| (v * 10.0).round() as u16)
            .collect();
        let volume = ScannerVolume {
            shape: grid.shape,
            affine: grid.affine,
            values: &values,
            uid_root: "1.2.826.0.1.3680043.10.1082",
            series_number: 6,
            volume: t as u32 + 1,
            repetition_time_ms: 1000.0,
        };
        let stem = format!("001_000006_{:06}", t + 1);
        for file in write_volume(export, &stem, &volume, layout).unwrap() {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            if skip.contains(&name.as_str()) {
                std::fs::remove_file(&file).unwrap();
            }
        }
    }
}

/// Follows `export` until it has been idle for `idle_seconds`: the volumes' rows (volume,
/// file, motion) and the refused files' (name, error).
fn follow(
    export: &Path,
    out: &Path,
    slices: Option<usize>,
    idle_seconds: f64,
) -> (
    Vec<(usize, String, [f64; 6])>,
    Vec<(String, String)>,
    Follower,
) {
    let options = FollowOptions {
        idle_seconds,
        settle_ms: 100,
        slices,
        ..FollowOptions::new(export.to_path_buf())
    };
    options.check().unwrap();
    let preprocessor =
        SessionPreprocessor::new(SubjectSpace::motion_only(), options.session_options()).unwrap();
    let mut follower = Follower::new(options, preprocessor, out).unwrap();
    let stop = AtomicBool::new(false);
    let (mut volumes, mut refused) = (Vec::new(), Vec::new());
    let mut last_of_poll = false;
    for event in follower.events(&stop) {
        match event.unwrap() {
            Event::Volume(arrived) => {
                let row = &arrived.row;
                volumes.push((row.volume, row.file.clone(), row.motion));
                last_of_poll = arrived.last_of_poll;
            }
            Event::Refused(r) => refused.push((r.file, r.error)),
            Event::Waiting(_) => {}
        }
    }
    assert!(last_of_poll, "the newest volume closes its poll");
    (volumes, refused, follower)
}

fn assert_planted(volumes: &[(usize, String, [f64; 6])], planted: &[usize]) {
    assert_eq!(volumes.len(), planted.len());
    for ((volume, _, got), &t) in volumes.iter().zip(planted) {
        assert_eq!(
            *volume, t,
            "volumes are numbered by their headers: a refused one leaves a gap"
        );
        let want = motion(t);
        let want: Vec<f64> = want
            .translation_mm
            .iter()
            .chain(&want.rotation_deg)
            .copied()
            .collect();
        for i in 0..6 {
            assert!(
                (got[i] - want[i]).abs() < 0.1,
                "volume {t} parameter {i}: {} vs planted {}",
                got[i],
                want[i]
            );
        }
    }
}

#[test]
fn a_mosaic_export_with_a_broken_file_is_followed_volume_by_volume() {
    let dir = tempfile::tempdir().unwrap();
    let (export, out) = (dir.path().join("export"), dir.path().join("session"));
    write_export(&export, DicomLayout::Mosaic, &[]);
    std::fs::write(export.join("001_000006_000003a.dcm"), b"not a dicom file").unwrap();
    let (volumes, refused, follower) = follow(&export, &out, None, 1.0);
    let all: Vec<usize> = (0..VOLUMES).collect();
    assert_planted(&volumes, &all);
    assert_eq!(volumes[0].1, "001_000006_000001.dcm");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, "001_000006_000003a.dcm");
    let record = follower.record();
    assert_eq!(record.volumes, VOLUMES);
    assert!(
        record.ended_by.starts_with("no new file"),
        "{}",
        record.ended_by
    );
    assert!(record.registration_to_subject.is_none());
    let tsv = std::fs::read_to_string(out.join("motion.tsv")).unwrap();
    assert_eq!(tsv.lines().count(), VOLUMES + 1, "{tsv}");
    assert!(tsv.starts_with("volume\tfile\ttrans_x_mm"));
}

#[test]
fn enhanced_and_single_frame_exports_are_followed() {
    let all: Vec<usize> = (0..VOLUMES).collect();
    for layout in [DicomLayout::Enhanced, DicomLayout::Slices] {
        let dir = tempfile::tempdir().unwrap();
        let export = dir.path().join("export");
        write_export(&export, layout, &[]);
        let (volumes, refused, _) = follow(&export, &dir.path().join("session"), None, 1.0);
        assert!(refused.is_empty(), "{layout:?}: {refused:?}");
        assert_planted(&volumes, &all);
        if layout == DicomLayout::Slices {
            // Named by its last slice; the count learnt from the first volume.
            assert_eq!(volumes[0].1, "001_000006_000001_0024.dcm");
        }
    }
    // Volume 3 with a slice missing: refused, naming its files; the others read.
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    write_export(
        &export,
        DicomLayout::Slices,
        &["001_000006_000003_0007.dcm"],
    );
    let (volumes, refused, _) = follow(&export, &dir.path().join("session"), Some(24), 1.0);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].1.contains("001_000006_000003_0001.dcm") && refused[0].1.contains("23 slices"),
        "{}",
        refused[0].1
    );
    let kept: Vec<usize> = all.iter().copied().filter(|&t| t != 2).collect();
    assert_planted(&volumes, &kept);
}

#[test]
fn the_stop_flag_ends_the_session_and_a_missing_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let options = FollowOptions::new(dir.path().join("nowhere"));
    let error = options.check().unwrap_err().to_string();
    assert!(
        error.contains("nowhere") && error.contains("not a folder"),
        "{error}"
    );
    let options = FollowOptions::new(dir.path().to_path_buf());
    let preprocessor =
        SessionPreprocessor::new(SubjectSpace::motion_only(), options.session_options()).unwrap();
    let mut follower = Follower::new(options, preprocessor, &dir.path().join("out")).unwrap();
    let stop = AtomicBool::new(true);
    assert!(follower.next_event(&stop).unwrap().is_none());
    assert_eq!(follower.ended_by(), Some("signal"));
    assert!(dir.path().join("out/motion.tsv").is_file());
}

/// Follows `export` while tools/realtime/export_writer.py (an export tool's way of writing,
/// independent of the project's writers) copies `source` into it; the writer's arguments
/// after the two folders are `writer_args`.
fn follow_while_written(
    source: &Path,
    export: &Path,
    out: &Path,
    writer_args: &[&str],
) -> (
    Vec<(usize, String, [f64; 6])>,
    Vec<(String, String)>,
    Follower,
) {
    std::fs::create_dir_all(export).unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/realtime/export_writer.py");
    let mut writer = std::process::Command::new("python3")
        .arg(script)
        .arg(source)
        .arg(export)
        .args(writer_args)
        .spawn()
        .expect("python3 runs the export writer");
    // The writer sleeps up to a TR pair (1.2 s) between files, longer on a loaded machine: the
    // session ends only after a quiet spell well beyond that.
    let followed = follow(export, out, None, 4.0);
    assert!(writer.wait().unwrap().success());
    followed
}

#[test]
fn an_export_tool_writing_random_names_in_chunks_is_followed_without_refusals() {
    // Mosaics under random UID names, each written in two chunks 0.3 s apart (longer than the
    // 0.1 s settle time): read once whole, numbered by their headers, none refused.
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("finished");
    write_export(&source, DicomLayout::Mosaic, &[]);
    let (volumes, refused, _) = follow_while_written(
        &source,
        &dir.path().join("export"),
        &dir.path().join("session"),
        &[
            "--tr",
            "0.5",
            "--chunks",
            "2",
            "--chunk-pause",
            "0.3",
            "--seed",
            "3",
        ],
    );
    assert!(refused.is_empty(), "{refused:?}");
    let all: Vec<usize> = (0..VOLUMES).collect();
    assert_planted(&volumes, &all);
    assert!(volumes
        .iter()
        .all(|(_, file, _)| file.starts_with("1.3.12.2.1107.5.2.")));
}

#[test]
fn interleaved_single_frame_volumes_are_each_assembled_whole() {
    // Slices of volumes t and t+1 alternate (an export catching up after a stall), under
    // random names, each slice file in two chunks.
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("finished");
    write_export(&source, DicomLayout::Slices, &[]);
    let (volumes, refused, _) = follow_while_written(
        &source,
        &dir.path().join("export"),
        &dir.path().join("session"),
        &[
            "--per-volume",
            "24",
            "--interleave",
            "--tr",
            "0.6",
            "--chunks",
            "2",
            "--chunk-pause",
            "0.004",
            "--seed",
            "4",
        ],
    );
    assert!(refused.is_empty(), "{refused:?}");
    let all: Vec<usize> = (0..VOLUMES).collect();
    assert_planted(&volumes, &all);
}

#[test]
fn a_reading_slower_than_the_idle_time_does_not_end_the_session() {
    // Volumes 4-6 arrive while 1-3 are being read, and the idle time (10 ms) is shorter than
    // that reading: the folder is looked at again before the session is judged idle.
    let dir = tempfile::tempdir().unwrap();
    let (source, export) = (dir.path().join("finished"), dir.path().join("export"));
    write_export(&source, DicomLayout::Mosaic, &[]);
    std::fs::create_dir_all(&export).unwrap();
    let name = |t: usize| format!("001_000006_{:06}.dcm", t + 1);
    for t in 0..3 {
        std::fs::rename(source.join(name(t)), export.join(name(t))).unwrap();
    }
    let out = dir.path().join("session");
    let options = FollowOptions {
        idle_seconds: 0.01,
        settle_ms: 100,
        ..FollowOptions::new(export.clone())
    };
    let preprocessor =
        SessionPreprocessor::new(SubjectSpace::motion_only(), options.session_options()).unwrap();
    let mut follower = Follower::new(options, preprocessor, &out).unwrap();
    let late = std::thread::spawn({
        let tsv = out.join("motion.tsv");
        move || {
            // Once volume 1 is done (its row written), the rest of the export lands.
            let started = std::time::Instant::now();
            while std::fs::read_to_string(&tsv).map_or(0, |t| t.lines().count()) < 2 {
                assert!(started.elapsed().as_secs() < 60, "volume 1 was never read");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            for t in 3..VOLUMES {
                std::fs::rename(source.join(name(t)), export.join(name(t))).unwrap();
            }
        }
    });
    let stop = AtomicBool::new(false);
    let mut numbers = Vec::new();
    for event in follower.events(&stop) {
        if let Event::Volume(arrived) = event.unwrap() {
            numbers.push(arrived.row.volume);
        }
    }
    late.join().unwrap();
    assert_eq!(numbers, (0..VOLUMES).collect::<Vec<_>>());
    assert!(follower.ended_by().unwrap().starts_with("no new file"));
}

#[test]
fn slice_files_written_in_two_chunks_are_all_read_and_none_refused() {
    // An export writer that writes every slice file in two chunks 150 ms apart, all first
    // chunks of a volume before its second chunks, closing the file between them; cut inside
    // an element header, at an element boundary (before the pixel data) and inside the pixel
    // data. The settle time (100 ms) is shorter than the pause: files judged by their size
    // alone were refused ("an element header … runs past …") and stayed on the record after
    // they had been read whole.
    let dir = tempfile::tempdir().unwrap();
    let (source, export) = (dir.path().join("finished"), dir.path().join("export"));
    write_export(&source, DicomLayout::Slices, &[]);
    std::fs::create_dir_all(&export).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&source)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        for t in 0..VOLUMES {
            let prefix = format!("001_000006_{:06}_", t + 1);
            let files: Vec<(String, Vec<u8>, usize)> = names
                .iter()
                .filter(|n| n.starts_with(&prefix))
                .enumerate()
                .map(|(k, name)| {
                    let bytes = std::fs::read(source.join(name)).unwrap();
                    let pixels = bytes
                        .windows(4)
                        .rposition(|w| w == [0xE0, 0x7F, 0x10, 0x00])
                        .expect("a PixelData element");
                    let cut = match k % 3 {
                        0 => pixels + 3,
                        1 => pixels,
                        _ => pixels + (bytes.len() - pixels) / 2,
                    };
                    (name.clone(), bytes, cut)
                })
                .collect();
            assert!(!files.is_empty());
            for (name, bytes, cut) in &files {
                std::fs::write(export.join(name), &bytes[..*cut]).unwrap();
            }
            std::thread::sleep(std::time::Duration::from_millis(150));
            for (name, bytes, cut) in &files {
                let mut file = std::fs::OpenOptions::new()
                    .append(true)
                    .open(export.join(name))
                    .unwrap();
                file.write_all(&bytes[*cut..]).unwrap();
            }
        }
    });
    let (volumes, refused, follower) = follow(
        &dir.path().join("export"),
        &dir.path().join("session"),
        None,
        1.5,
    );
    writer.join().unwrap();
    assert!(
        refused.is_empty(),
        "{} refused, the first: {:?}",
        refused.len(),
        refused.first()
    );
    assert!(follower.refused().is_empty(), "{:?}", follower.refused());
    let all: Vec<usize> = (0..VOLUMES).collect();
    assert_planted(&volumes, &all);
}
