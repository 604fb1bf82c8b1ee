//! `brainrecon realtime watch` on a folder that a simulated scanner fills at its pace: Siemens
//! mosaics of a moving head phantom, one of them written in two parts (a copy under way), and a
//! broken file among them. Asserted: every volume is read once complete and only then, the motion
//! trace follows the planted motion, the broken file is reported and the session goes on, and the
//! summary says so. The other export layouts are followed through the library
//! (crates/realtime/tests/follow.rs).
mod common;

use brainrecon_formats::dicom::write::{write_mosaic, ScannerVolume};
use common::{ok, p};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const SHAPE: [usize; 3] = [48, 48, 24];
const VOXEL: [f64; 3] = [3.5, 3.5, 4.0];
const VOLUMES: usize = 8;

fn affine() -> [[f64; 4]; 4] {
    let mut a = [[0.0; 4]; 4];
    for i in 0..3 {
        a[i][i] = VOXEL[i];
        a[i][3] = -(SHAPE[i] as f64 - 1.0) / 2.0 * VOXEL[i];
    }
    a[3][3] = 1.0;
    a
}

/// Smooth structure inside a head-sized ellipsoid (world mm).
fn head(w: [f64; 3]) -> f64 {
    let blobs = [
        ([20.0, -15.0, 10.0], 9.0, 0.8),
        ([-25.0, 10.0, -5.0], 12.0, 0.6),
        ([5.0, 30.0, 15.0], 7.0, 0.9),
        ([-10.0, -35.0, -12.0], 10.0, 0.7),
        ([30.0, 25.0, -18.0], 8.0, 0.5),
    ];
    let r = ((w[0] / 65.0).powi(2) + (w[1] / 78.0).powi(2) + (w[2] / 40.0).powi(2)).sqrt();
    let envelope = 1.0 / (1.0 + ((r - 1.0) / 0.05).exp());
    let inside: f64 = blobs
        .iter()
        .map(|(c, s, a)| {
            a * (-0.5 * (0..3).map(|i| ((w[i] - c[i]) / s).powi(2)).sum::<f64>()).exp()
        })
        .sum();
    100.0 * envelope * (1.0 + inside)
}

/// Planted motion of volume t: translations (mm) and rotations (degrees, R = Rx·Ry·Rz) about
/// the grid's centre (the origin).
fn motion(t: usize) -> ([f64; 3], [f64; 3]) {
    let s = t as f64 / (VOLUMES - 1) as f64;
    ([0.9 * s, -0.6 * s, 0.4 * s], [0.7 * s, -0.4 * s, 0.5 * s])
}

fn rotation(deg: [f64; 3]) -> [[f64; 3]; 3] {
    let [a, b, g] = deg.map(f64::to_radians);
    let (sa, ca, sb, cb, sg, cg) = (a.sin(), a.cos(), b.sin(), b.cos(), g.sin(), g.cos());
    [
        [cb * cg, -cb * sg, sb],
        [sa * sb * cg + ca * sg, -sa * sb * sg + ca * cg, -sa * cb],
        [-ca * sb * cg + sa * sg, ca * sb * sg + sa * cg, ca * cb],
    ]
}

/// Volume t: the head moved by motion(t), sampled at each voxel (the field at the inverse
/// motion of the voxel's position), ×10 as uint16.
fn volume(t: usize) -> Vec<u16> {
    let (translation, degrees) = motion(t);
    let r = rotation(degrees);
    let a = affine();
    let mut values = Vec::with_capacity(SHAPE.iter().product());
    for z in 0..SHAPE[2] {
        for y in 0..SHAPE[1] {
            for x in 0..SHAPE[0] {
                let w: [f64; 3] = std::array::from_fn(|i| a[i][i] * [x, y, z][i] as f64 + a[i][3]);
                let d: [f64; 3] = std::array::from_fn(|i| w[i] - translation[i]);
                // Rᵀ d: the point of the unmoved head now at w.
                let back: [f64; 3] = std::array::from_fn(|i| (0..3).map(|k| r[k][i] * d[k]).sum());
                values.push((head(back) * 10.0).round() as u16);
            }
        }
    }
    values
}

fn write_volume(dir: &Path, t: usize) {
    let values = volume(t);
    write_mosaic(
        &dir.join(format!("001_000005_{:06}.dcm", t + 1)),
        &ScannerVolume {
            shape: SHAPE,
            affine: affine(),
            values: &values,
            uid_root: "1.2.826.0.1.3680043.10.1082",
            series_number: 5,
            volume: t as u32 + 1,
            repetition_time_ms: 1000.0,
        },
    )
    .unwrap();
}

#[test]
fn watch_follows_a_folder_as_the_scanner_fills_it() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    let out = dir.path().join("session");
    std::fs::create_dir(&export).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_brainrecon"))
        .args(["realtime", "watch", "--folder"])
        .arg(&export)
        .arg("--out")
        .arg(&out)
        .args([
            "--volumes",
            &VOLUMES.to_string(),
            "--idle-seconds",
            "30",
            "--settle-ms",
            "300",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let scanner = {
        let export = export.clone();
        std::thread::spawn(move || {
            for t in 0..VOLUMES {
                std::thread::sleep(Duration::from_millis(250));
                if t == 3 {
                    // A copy still under way: half the file, a pause shorter than the settle
                    // time, then the rest. It must be read whole.
                    let staging = export.join("staging");
                    std::fs::create_dir_all(&staging).unwrap();
                    write_volume(&staging, t);
                    let name = format!("001_000005_{:06}.dcm", t + 1);
                    let bytes = std::fs::read(staging.join(&name)).unwrap();
                    let half = bytes.len() / 2;
                    std::fs::write(export.join(&name), &bytes[..half]).unwrap();
                    std::thread::sleep(Duration::from_millis(120));
                    let mut file = std::fs::OpenOptions::new()
                        .append(true)
                        .open(export.join(&name))
                        .unwrap();
                    std::io::Write::write_all(&mut file, &bytes[half..]).unwrap();
                } else {
                    write_volume(&export, t);
                }
                if t == 5 {
                    // A broken file among the volumes.
                    std::fs::write(export.join("001_000005_000006a.dcm"), b"not a dicom file")
                        .unwrap();
                }
            }
        })
    };
    let output = child.wait_with_output().unwrap();
    scanner.join().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}: {stderr}",
        output.status
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    println!("{summary}");
    assert_eq!(summary["volumes"], VOLUMES, "{summary}");
    assert_eq!(summary["ended_by"], "volumes");
    let refused = summary["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{summary}");
    assert_eq!(refused[0]["file"], "001_000005_000006a.dcm");
    assert!(
        stderr.contains("001_000005_000006a.dcm") && stderr.contains("the session goes on"),
        "{stderr}"
    );
    // Latency is a benchmark's figure (release build, quiet machine); here, on a debug build
    // beside other tests, only a bound that a file stuck waiting for the next would break.
    let p95 = summary["latency_ms_p95"].as_f64().unwrap();
    assert!(p95 > 0.0 && p95 < 5000.0, "p95 latency {p95} ms");
    // The motion trace: one row per volume, in order, following the planted motion.
    let tsv = std::fs::read_to_string(out.join("motion.tsv")).unwrap();
    let rows: Vec<Vec<&str>> = tsv
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), VOLUMES);
    for (t, row) in rows.iter().enumerate() {
        assert_eq!(row[1], format!("001_000005_{:06}.dcm", t + 1));
        let (translation, degrees) = motion(t);
        let planted: Vec<f64> = translation.iter().chain(&degrees).copied().collect();
        for (k, want) in planted.iter().enumerate() {
            let got: f64 = row[2 + k].parse().unwrap();
            assert!(
                (got - want).abs() < 0.1,
                "volume {t} parameter {k}: {got} vs planted {want}\n{tsv}"
            );
        }
    }
    // Files are read as soon as their size holds over one poll, not after the settle time
    // (300 ms here): the median wait from a file's last write to its reading is far shorter.
    let mut waits: Vec<f64> = rows.iter().map(|r| r[10].parse().unwrap()).collect();
    waits.sort_by(f64::total_cmp);
    assert!(waits[waits.len() / 2] < 200.0, "waits {waits:?} ms");
    assert!(out.join("session.json").is_file());
}

#[test]
fn a_missing_folder_is_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_brainrecon"))
        .args(["realtime", "watch", "--folder"])
        .arg(dir.path().join("nowhere"))
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("nowhere") && stderr.contains("not a folder"),
        "{stderr}"
    );
    assert!(!dir.path().join("out").exists(), "nothing written");
}

/// `realtime replay` writes a recorded 4-D run as 3-D volumes (paced by its pixdim[4]);
/// `watch` follows them as it follows a scanner.
#[test]
fn replay_turns_a_recorded_run_into_an_export_folder() {
    use brainrecon_formats::nifti4d::{write_series, Storage};
    let dir = tempfile::tempdir().unwrap();
    let (run, export) = (
        dir.path().join("run_bold.nii.gz"),
        dir.path().join("export"),
    );
    let volumes: Vec<Vec<f64>> = (0..4)
        .map(|t| {
            let u16s = volume(t);
            u16s.iter().map(|&v| v as f64).collect()
        })
        .collect();
    write_series(&run, SHAPE, 0.25, &affine(), Storage::Float32, &volumes).unwrap();
    let started = std::time::Instant::now();
    let out = ok(&[
        "realtime",
        "replay",
        "--run",
        p(&run),
        "--export",
        p(&export),
    ]);
    // Paced by pixdim[4]: the fourth volume is due 0.75 s after the first.
    assert!(started.elapsed() >= Duration::from_millis(700), "{out}");
    assert!(out.contains("replayed 4 volumes"), "{out}");
    let third = brainrecon_formats::nifti_io::read_volume(&export.join("vol-000003.nii")).unwrap();
    assert_eq!(third.shape, SHAPE);
    assert!(third
        .values
        .iter()
        .zip(&volumes[2])
        .all(|(a, b)| (a - b).abs() < 1e-3));
    let record = dir.path().join("session");
    let summary = ok(&[
        "realtime",
        "watch",
        "--folder",
        p(&export),
        "--volumes",
        "4",
        "--out",
        p(&record),
        "--json",
    ]);
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["volumes"].as_u64(), Some(4), "{summary}");
    assert!(summary["refused"].as_array().unwrap().is_empty());
}

#[test]
fn a_session_that_reads_nothing_exits_2_naming_the_refused_files() {
    let dir = tempfile::tempdir().unwrap();
    let (broken, empty) = (dir.path().join("broken"), dir.path().join("empty"));
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::create_dir_all(&empty).unwrap();
    let mut not_dicom = vec![0u8; 200];
    not_dicom.extend(b"not a DICOM file");
    std::fs::write(broken.join("garbage.dcm"), not_dicom).unwrap();
    let watch = |folder: &Path, out: &str| {
        Command::new(env!("CARGO_BIN_EXE_brainrecon"))
            .args([
                "realtime",
                "watch",
                "--idle-seconds",
                "0.3",
                "--settle-ms",
                "20",
            ])
            .args(["--json", "--folder"])
            .arg(folder)
            .arg("--out")
            .arg(dir.path().join(out))
            .output()
            .unwrap()
    };
    // Every file refused: exit 2, the file named; the summary is still printed and written.
    let output = watch(&broken, "out-broken");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no volume") || stderr.contains("volumes read"),
        "{stderr}"
    );
    assert!(stderr.contains("garbage.dcm"), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["volumes"], 0);
    assert!(dir.path().join("out-broken/session.json").is_file());
    // Nothing arrived at all: exit 2, saying so.
    let output = watch(&empty, "out-empty");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no file ending in .dcm"), "{stderr}");
}
