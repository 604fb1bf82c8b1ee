//! The real-time route on the experiment's subject and decoders.
//!
//! 1. A rehearsal, `demo --route realtime --pace none`: the subject's next session (its 30
//!    test images, new noise, the head a few mm and degrees away from the reference day and
//!    moving) is exported at once and every volume drawn. Asserted: the registration to the
//!    subject and the realignment recover the planted head positions, the reconstructions of
//!    the shown images identify them above chance, and the live analysis stays close to the
//!    same volumes analysed after the session.
//! 2. A live session at TR 1 s: a short session exported at the scanner's pace into a watched
//!    folder, with a file written in two parts, a broken file, a volume with a missing slice,
//!    a volume in another orientation and a 4-s pause. Asserted: every good volume is read,
//!    realigned, decoded and drawn within the TR; each bad file is refused by name and the
//!    session goes on; the pause is reported; the live page serves the state and the image.

use super::{json, shared_demo};
use crate::common::p as s;
use brainrecon_formats::dicom::write::{write_mosaic, ScannerVolume};
use serde_json::Value;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn brainrecon(cache: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_brainrecon"));
    command.env("BRAINRECON_CACHE", cache);
    command
}

fn cache_of(out: &Path) -> PathBuf {
    out.parent().unwrap().join("cache")
}

#[test]
fn the_realtime_route_reconstructs_a_session_volume_by_volume() {
    let (out, _) = shared_demo();
    rehearsal(out);
    live_session(out);
}

/// Largest |estimate − truth| of translations (mm) and rotations (degrees).
fn pose_error(estimate: &Value, truth: &Value) -> (f64, f64) {
    let part = |key: &str| -> f64 {
        (0..3)
            .map(|i| (estimate[key][i].as_f64().unwrap() - truth[key][i].as_f64().unwrap()).abs())
            .fold(0.0, f64::max)
    };
    (part("translation_mm"), part("rotation_deg"))
}

fn rehearsal(out: &Path) {
    let run = brainrecon(&cache_of(out))
        .args([
            "demo",
            "--route",
            "realtime",
            "--out",
            s(out),
            "--images",
            "180",
            "--samples",
            "1",
            "--steps",
            "12",
            "--tr",
            "2",
            "--pace",
            "none",
            "--json",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "demo --route realtime failed:\n{stderr}"
    );
    assert!(
        stderr.contains("brainrecon realtime run --folder"),
        "{stderr}"
    );
    let summary: Value = serde_json::from_slice(&run.stdout).unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&summary).unwrap());
    let session = &summary["realtime"];
    let truth = json(&out.join("realtime-sim/truth.json"));
    // A 30-s rest (the default), then 30 images and 7 blanks, 4 s apart, a 4-s lead and a
    // 16-s tail, at TR 2 s.
    assert_eq!(session["volumes"].as_u64(), Some(99));
    assert_eq!(session["refused"].as_array().unwrap().len(), 0);
    assert_eq!(session["drawn"], session["decoded"]);
    // The head's place on the session's day, recovered from the first volume.
    let (mm, deg) = pose_error(&session["registration_to_subject"], &truth["offset"]);
    assert!(
        mm < 0.2 && deg < 0.25,
        "registration off by {mm:.3} mm, {deg:.3}°"
    );
    // The motion trace against the planted motion, volume by volume.
    let motion = std::fs::read_to_string(out.join("realtime-session/motion.tsv")).unwrap();
    let planted = truth["motion"].as_array().unwrap();
    let mut worst = (0.0f64, 0.0f64);
    // Rows are matched by their volume number (from the files' headers): a volume read late
    // (its file still being written when a later one was complete) is written when it is read.
    for row in motion.lines().skip(1) {
        let fields: Vec<&str> = row.split('\t').collect();
        let planted = &planted[fields[0].parse::<usize>().unwrap()];
        let cells: Vec<f64> = fields[2..8].iter().map(|c| c.parse().unwrap()).collect();
        let estimate =
            serde_json::json!({"translation_mm": cells[..3], "rotation_deg": cells[3..]});
        let (mm, deg) = pose_error(&estimate, planted);
        worst = (worst.0.max(mm), worst.1.max(deg));
    }
    assert!(
        worst.0 < 0.2 && worst.1 < 0.25,
        "realignment off by up to {worst:?}"
    );
    // Every shown image is scored (the running statistics are warm after the rest).
    assert_eq!(summary["n_test"].as_u64(), Some(30), "{summary}");
    let colour = summary["reconstruction"]["colour"].as_f64().unwrap();
    assert!(colour > 0.4, "colour right for {colour:.3} (chance 1/6)");
    let live_c = summary["two_way_latent_c"].as_f64().unwrap();
    let offline_c = summary["offline"]["two_way_latent_c"].as_f64().unwrap();
    assert!(
        live_c > 0.75,
        "two-way identification of decoded c: {live_c:.3}"
    );
    // After a rest, the live decoded context identifies its images as well as the same
    // volumes analysed afterwards (README: 0.975 against 0.980).
    assert!(
        live_c > offline_c - 0.04,
        "live {live_c:.3} vs the same volumes analysed afterwards {offline_c:.3}"
    );
    for file in [
        "pairs-realtime.png",
        "realtime-session/recons/eval/report.html",
    ] {
        assert!(out.join(file).is_file(), "{file}");
    }
}

/// GET `path` from `base` (http://HOST:PORT/); the body.
fn get(base: &str, path: &str) -> String {
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{path}: {}",
        &text[..text.len().min(200)]
    );
    text
}

/// A valid mosaic on another grid: `slices` slices, `turned` about z by 90°.
fn odd_volume(path: &Path, slices: usize, turned: bool) {
    let shape = [24, 30, slices];
    let mut affine = [
        [3.0, 0.0, 0.0, -36.0],
        [0.0, 3.0, 0.0, -45.0],
        [0.0, 0.0, 3.0, -30.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    if turned {
        affine[0] = [0.0, -3.0, 0.0, 45.0];
        affine[1] = [3.0, 0.0, 0.0, -36.0];
    }
    let values = vec![500u16; 24 * 30 * slices];
    let volume = ScannerVolume {
        shape,
        affine,
        values: &values,
        uid_root: "1.2.826.0.1.3680043.10.1096",
        series_number: 7,
        volume: 99,
        repetition_time_ms: 1000.0,
    };
    // Written aside and moved in, as an export would.
    let aside = path.with_extension("tmp");
    write_mosaic(&aside, &volume).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

fn live_session(out: &Path) {
    let cache = cache_of(out);
    let root = out.parent().unwrap().join("live");
    let _ = std::fs::remove_dir_all(&root);
    let (sim, watched, record) = (root.join("sim"), root.join("export"), root.join("session"));
    std::fs::create_dir_all(&watched).unwrap();
    let made = brainrecon(&cache)
        .args([
            "realtime",
            "simulate",
            "--experiment",
            s(&out.join("events")),
            "--out",
            s(&sim),
            "--tr",
            "1",
            "--images",
            "3",
            "--rest-seconds",
            "0",
            "--seed",
            "2",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let mut staged: Vec<PathBuf> = std::fs::read_dir(sim.join("export"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    staged.sort();
    // 3 images, 4 s apart after a 4-s lead, and a 16-s tail; the session is followed until
    // the last image's window (onset 12 s + 4 s + 4 volumes) is drawn.
    assert_eq!(staged.len(), 32);
    staged.truncate(24);
    let boldref = out.join(
        "events/derivatives/fmriprep/sub-01/func/sub-01_task-images_run-01_space-T1w_boldref.nii.gz",
    );
    let volumes = staged.len().to_string();
    let mut child = brainrecon(&cache)
        .args([
            "realtime",
            "run",
            "--folder",
            s(&watched),
            "--subject",
            s(&out.join("sub-01")),
            "--decoders",
            s(&out.join("decoders")),
            "--subject-reference",
            s(&boldref),
            "--tr",
            "1",
            "--events",
            s(&sim.join("events.tsv")),
            "--serve",
            "127.0.0.1:0",
            "--volumes",
            &volumes,
            "--idle-seconds",
            "20",
            "--out",
            s(&record),
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The log, line by line; the page's address from its first line.
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let first = lines_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the page's address");
    let url = first
        .strip_prefix("live page: ")
        .unwrap_or_else(|| panic!("first log line: {first}"))
        .to_string();

    // The scanner: one volume a second; volume 12 arrives in two parts, a broken file after
    // 15, a volume missing a slice after 17, one turned 90° after 18, a 4-s pause before 22.
    let started = Instant::now();
    let mut due = Duration::ZERO;
    let mut page_seen = None;
    for (t, file) in staged.iter().enumerate() {
        due += Duration::from_secs(if t == 22 { 5 } else { 1 });
        std::thread::sleep(due.saturating_sub(started.elapsed()));
        let target = watched.join(file.file_name().unwrap());
        let bytes = std::fs::read(file).unwrap();
        if t == 12 {
            let mut part = std::fs::File::create(&target).unwrap();
            part.write_all(&bytes[..bytes.len() / 2]).unwrap();
            part.flush().unwrap();
            // Within --settle-ms (200 ms): a copy under way, not a broken file.
            std::thread::sleep(Duration::from_millis(100));
            part.write_all(&bytes[bytes.len() / 2..]).unwrap();
        } else {
            let aside = watched.join(format!(".{}.partial", t));
            std::fs::write(&aside, &bytes).unwrap();
            std::fs::rename(&aside, &target).unwrap();
        }
        match t {
            15 => std::fs::write(watched.join("001_000007_000016_broken.dcm"), b"DICM?").unwrap(),
            17 => odd_volume(
                &watched.join("001_000007_000018_slice_missing.dcm"),
                19,
                false,
            ),
            18 => odd_volume(&watched.join("001_000007_000019_turned.dcm"), 20, true),
            20 => {
                let state: Value = serde_json::from_str(
                    get(&url, "/state.json").split("\r\n\r\n").nth(1).unwrap(),
                )
                .unwrap();
                page_seen = Some(state);
            }
            _ => {}
        }
    }
    let page = get(&url, "/");
    assert!(
        page.contains("previous") && page.contains("/ws"),
        "the page"
    );
    let status = child.wait_with_output().unwrap();
    let log = log.join().unwrap();
    assert!(status.status.success(), "realtime run failed:\n{log}");
    let summary: Value = serde_json::from_slice(&status.stdout).unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&summary).unwrap());

    // The page during the session: frames drawn, its title, motion traces and the ROI signal.
    let state = page_seen.unwrap();
    assert!(state["frames"].as_u64().unwrap() > 0, "{state}");
    assert_eq!(state["title"].as_str(), Some("brainrecon realtime"));
    assert_eq!(state["labels"].as_array().unwrap().len(), 7);
    // Every good volume read and processed, each bad file refused by name and why.
    assert_eq!(summary["volumes"].as_u64(), Some(24));
    let refused = summary["refused"].as_array().unwrap();
    let reason = |name: &str| -> String {
        refused
            .iter()
            .find(|r| r["file"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("{name} refused: {refused:?}"))["error"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(
        reason("001_000007_000018_slice_missing.dcm").contains("19"),
        "{refused:?}"
    );
    assert!(
        reason("001_000007_000019_turned.dcm").contains("orientation"),
        "{refused:?}"
    );
    assert!(!reason("001_000007_000016_broken.dcm").is_empty());
    assert!(
        log.contains("001_000007_000016_broken.dcm: refused"),
        "{log}"
    );
    // The pause, told in the log and recorded.
    assert!(log.contains("no new volume for"), "{log}");
    let pauses = summary["pauses"].as_array().unwrap();
    assert_eq!(pauses.len(), 1, "{pauses:?}");
    assert!(pauses[0][1].as_f64().unwrap() >= 3.0, "{pauses:?}");
    // Decoded after the warm-up (10 volumes) and the first 4-s window; all drawn, in time.
    assert_eq!(summary["decoded"].as_u64(), Some(24 - 10 - 3));
    assert_eq!(summary["not_drawn"].as_u64(), Some(0), "{summary}");
    let p95 = summary["image_latency_ms_p95"].as_f64().unwrap();
    assert!(
        p95 < 1500.0,
        "a file to its image: p95 {p95:.0} ms at TR 1 s"
    );
    let motion = std::fs::read_to_string(record.join("motion.tsv")).unwrap();
    assert_eq!(motion.lines().count(), 25);
    // The shown images after the warm-up (onsets 8 and 12 s; the first, at 4 s, is answered
    // by volume 11, before the first pattern at 13) are scored from the live images.
    let manifest = super::json(&record.join("recons/manifest.json"));
    assert_eq!(manifest["ids"].as_array().unwrap().len(), 2, "{manifest}");
}
