//! A simulated session through the per-volume preprocessing: the head of the subject the
//! decoders were fitted on, scanned another day on an oblique grid at another position, moving
//! during the run (a slow drift and a sudden jump), with a BOLD-like signal in one region.
//! Asserted: the registration to the subject finds the day's position, the motion traces
//! follow the planted motion, the region's z-scores follow its signal through the motion, and
//! a volume of another size is refused without ending the session.
mod common;

use brainrecon_realtime::grid::{Grid, Image};
use brainrecon_realtime::rigid::{Rigid, RigidParams};
use brainrecon_realtime::session::{
    SessionOptions, SessionPreprocessor, SubjectSpace, VolumeError,
};
use common::{epi_grid, field_image, Phantom};

const VOLUMES: usize = 40;

fn subject_grid() -> Grid {
    let shape = [72, 84, 56];
    Grid::axis_aligned(
        shape,
        [2.0; 3],
        std::array::from_fn(|i| -(shape[i] as f64 - 1.0)),
    )
}

/// The session's slices: the EPI grid tilted 12° about x and shifted.
fn session_grid() -> Grid {
    let tilt = Rigid::about([0.0; 3], [4.0, -6.0, 9.0], [12f64.to_radians(), 0.0, 0.0]).matrix();
    let epi = epi_grid();
    let affine = std::array::from_fn(|r| {
        std::array::from_fn(|c| (0..4).map(|k| tilt[r][k] * epi.affine[k][c]).sum())
    });
    Grid {
        shape: epi.shape,
        affine,
    }
}

/// Planted motion of volume t relative to the first (about the session grid's centre).
fn motion(t: usize) -> RigidParams {
    let drift = t as f64 / VOLUMES as f64;
    let jump = if t >= 25 { 1.0 } else { 0.0 };
    RigidParams {
        translation_mm: [0.8 * drift, -0.5 * drift + 1.2 * jump, 0.3 * drift],
        rotation_deg: [0.6 * drift + 0.8 * jump, -0.3 * drift, 0.2 * drift],
    }
}

/// The BOLD-like signal: ±2 % in a 12-mm region, a 10-volume cycle.
fn signal(t: usize) -> f64 {
    (2.0 * std::f64::consts::PI * t as f64 / 10.0).sin()
}

const REGION: [f64; 3] = [20.0, -10.0, 5.0];

fn in_region(w: [f64; 3]) -> f64 {
    let d2: f64 = (0..3).map(|i| (w[i] - REGION[i]).powi(2)).sum();
    (-0.5 * d2 / 36.0).exp()
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// The day's head position relative to the subject's reference.
const DAY: RigidParams = RigidParams {
    translation_mm: [3.0, 5.0, -4.0],
    rotation_deg: [-5.0, 3.0, 6.0],
};

/// A session of the phantom's subject whose decoders read every `step`-th in-brain voxel of
/// the subject's grid; the voxels' linear indices.
fn subject_session(phantom: &Phantom, step: usize) -> (SessionPreprocessor, Vec<usize>) {
    let subject = subject_grid();
    let reference = phantom.image(&subject, &Rigid::IDENTITY, 0.0, 1);
    let voxels: Vec<usize> = (0..subject.len())
        .filter(|&i| reference.values[i] > 50.0)
        .step_by(step)
        .collect();
    let session = SessionPreprocessor::new(
        SubjectSpace {
            grid: subject,
            voxels: voxels.clone(),
            reference: Some(reference),
        },
        SessionOptions::default(),
    )
    .unwrap();
    (session, voxels)
}

/// Volume t of the session: the head at the day's position, moved by motion(t).
fn pose(t: usize) -> Rigid {
    Rigid::from_params(&motion(t % VOLUMES), session_grid().centre())
        .compose(&Rigid::from_params(&DAY, subject_grid().centre()))
}

#[test]
fn a_moving_session_on_another_day_is_preprocessed_onto_the_subjects_voxels() {
    let phantom = Phantom::new(31);
    let subject = subject_grid();
    // The decoders' voxels: the subject's in-brain voxels, every 5th.
    let (mut session, voxels) = subject_session(&phantom, 5);
    let region_weight: Vec<f64> = voxels
        .iter()
        .map(|&i| in_region(subject.world_of_index(i)))
        // The region's core, where the signal is at least half its peak.
        .map(|w| if w > 0.5 { w } else { 0.0 })
        .collect();
    let grid = session_grid();
    let mut region_z = Vec::new();
    for t in 0..VOLUMES {
        let volume = field_image(&grid, &pose(t), 1.0, 100 + t as u64, |w| {
            phantom.at(w) * (1.0 + 0.02 * signal(t) * in_region(w))
        });
        if t == 12 {
            // A volume of another size (a localiser sent to the folder): refused, no state change.
            let other = Image::new(epi_grid_with(30), vec![100.0; 64 * 64 * 30]).unwrap();
            assert!(matches!(
                session.push(&other),
                Err(VolumeError::OtherGrid { .. })
            ));
        }
        let processed = session.push(&volume).unwrap();
        assert_eq!(processed.volume, t);
        let planted = motion(t);
        let dt = (0..3)
            .map(|i| (processed.motion.translation_mm[i] - planted.translation_mm[i]).abs())
            .fold(0.0, f64::max);
        let dr = (0..3)
            .map(|i| (processed.motion.rotation_deg[i] - planted.rotation_deg[i]).abs())
            .fold(0.0, f64::max);
        assert!(
            dt < 0.1 && dr < 0.1,
            "volume {t}: motion {:?} vs planted {planted:?}",
            processed.motion
        );
        if t == 25 {
            assert!(
                processed.framewise_displacement_mm > 1.5,
                "the jump shows: FD {}",
                processed.framewise_displacement_mm
            );
        }
        let covered = processed.samples.iter().filter(|v| !v.is_nan()).count();
        assert!(
            covered > voxels.len() * 9 / 10,
            "volume {t}: {covered} of {} voxels covered",
            voxels.len()
        );
        let weighted: f64 = processed
            .zscores
            .iter()
            .zip(&region_weight)
            .map(|(z, w)| *z as f64 * w)
            .sum();
        region_z.push(weighted / region_weight.iter().sum::<f64>());
    }
    let registered = session
        .subject_to_session()
        .unwrap()
        .params(subject.centre());
    let expected = Rigid::from_params(&DAY, subject.centre()).params(subject.centre());
    for i in 0..3 {
        assert!(
            (registered.translation_mm[i] - expected.translation_mm[i]).abs() < 0.1,
            "{registered:?}"
        );
        assert!(
            (registered.rotation_deg[i] - expected.rotation_deg[i]).abs() < 0.1,
            "{registered:?}"
        );
    }
    // After the warm-up the region's z-scores follow its signal, through the jump.
    let warm = SessionOptions::default().warmup + 1;
    let truth: Vec<f64> = (warm..VOLUMES).map(signal).collect();
    let r = correlation(&region_z[warm..], &truth);
    println!("region z-score vs signal: r = {r:.3}");
    assert!(r > 0.9, "r = {r}");
}

fn epi_grid_with(slices: usize) -> Grid {
    let mut g = epi_grid();
    g.shape[2] = slices;
    g
}

/// Per-volume preprocessing time at a real-time size (64 × 64 × 32 EPI volumes, the subject's
/// in-brain voxels on a 2-mm grid, every 2nd): `cargo test --release -p brainrecon-realtime
/// --test session -- --ignored --nocapture`. Prints the median and 95th percentile.
#[test]
#[ignore]
fn preprocessing_latency() {
    let phantom = Phantom::new(31);
    let (mut session, voxels) = subject_session(&phantom, 2);
    let n_voxels = voxels.len();
    let grid = session_grid();
    let volumes: Vec<Image> = (0..60)
        .map(|t| phantom.image(&grid, &pose(t), 1.0, 100 + t as u64))
        .collect();
    let mut times = Vec::new();
    for volume in &volumes {
        let started = std::time::Instant::now();
        session.push(volume).unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let first = format!(
        "the first, with the registration to the subject, took {:.0} ms",
        times.remove(0)
    );
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let p95 = times[(times.len() * 95).div_ceil(100) - 1];
    println!(
        "{n_voxels} voxels, {} volumes ({first}): median {median:.1} ms, p95 {p95:.1} ms",
        times.len()
    );
}
