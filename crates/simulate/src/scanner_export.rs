//! A scanner's real-time export, simulated: a session of a simulated subject (see
//! [`crate::events::simulate_session`]) moved by planted head motion and written volume by
//! volume as Siemens EPI mosaics (or another DICOM layout), named as Siemens' real-time export
//! names them (`001_SSSSSS_VVVVVV.dcm`), at the TR's pace or at once; and a recorded 4-D run
//! replayed as an export of 3-D NIfTI volumes.

use crate::events::{simulate_session, EventsTruth, ScannerSession, SessionOptions, SessionTrial};
use brainrecon_core::fs::{read_json, write_bytes_atomic, write_json_atomic};
use brainrecon_core::{DataError, Result};
use brainrecon_formats::dicom::write::{write_volume, DicomLayout, ScannerVolume};
use brainrecon_realtime::grid::{Grid, Image};
use brainrecon_realtime::realign::{reslice, RealignError};
use brainrecon_realtime::rigid::{Rigid, RigidParams};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The series number in the written files' names and headers.
pub const SERIES: u32 = 7;

/// Head motion of a cooperative subject: a slow random walk (0.02 mm and 0.02° a volume at
/// `scale` 1) and, at 60% of the session, one sudden movement of 0.8 mm and 0.6°.
/// Volume 0 is still (it is the realignment reference).
pub fn planted_motion(volumes: usize, seed: u64, scale: f64) -> Vec<RigidParams> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x4EAD_0000_0000_0001);
    let normal = Normal::new(0.0, 1.0).expect("unit normal");
    let jump_at = volumes * 3 / 5;
    let mut current = [0.0f64; 6];
    (0..volumes)
        .map(|t| {
            if t > 0 {
                current
                    .iter_mut()
                    .for_each(|p| *p += 0.02 * scale * normal.sample(&mut rng));
            }
            if t == jump_at && t > 0 {
                current[1] += 0.8 * scale;
                current[3] += 0.6 * scale;
            }
            RigidParams {
                translation_mm: [current[0], current[1], current[2]],
                rotation_deg: [current[3], current[4], current[5]],
            }
        })
        .collect()
}

/// Where the head lies in the scanner on the session's day relative to where it lay on the
/// day the subject's reference was acquired: 1.5 mm, 2 mm and 1 mm off and turned 2°, 1° and
/// 1.5°, at `scale` 1.
pub fn session_offset(scale: f64) -> RigidParams {
    RigidParams {
        translation_mm: [1.5 * scale, -2.0 * scale, 1.0 * scale],
        rotation_deg: [2.0 * scale, -scale, 1.5 * scale],
    }
}

/// The head's pose at each volume (subject's world → scanner world): the session's offset,
/// then the volume's motion (both about the grid's `centre`). The first volume's motion is
/// the identity, so realignment to it recovers `motion` and registration of it to the
/// subject's reference recovers `offset`.
pub fn head_poses(offset: &RigidParams, motion: &[RigidParams], centre: [f64; 3]) -> Vec<Rigid> {
    let offset = Rigid::from_params(offset, centre);
    motion
        .iter()
        .map(|m| Rigid::from_params(m, centre).compose(&offset))
        .collect()
}

/// The file stem of 1-based volume `volume`, as Siemens' real-time export names it
/// (session, series, volume).
pub fn file_stem(volume: usize) -> String {
    format!("001_{SERIES:06}_{volume:06}")
}

/// `values` on `grid` as the scanner sees them with the head at `pose` (subject's world →
/// scanner world); outside the original field of view is 0.
pub fn moved(
    grid: &Grid,
    values: &[f32],
    pose: &Rigid,
) -> std::result::Result<Vec<f32>, RealignError> {
    let image = Image::new(grid.clone(), values.to_vec())?;
    Ok(reslice(&image, &pose.inverse(), grid)?.0.values)
}

/// Writes every volume of `session`, its head at `poses[t]`, into `folder` (created) in
/// `layout`: volume t at `start + t·pace` when `pace` is given, else at once. `on_written` is
/// told each volume's last file.
pub fn write_export(
    session: &ScannerSession,
    poses: &[Rigid],
    folder: &Path,
    layout: DicomLayout,
    pace: Option<Duration>,
    mut on_written: impl FnMut(usize, &Path),
) -> Result<Vec<PathBuf>> {
    assert_eq!(poses.len(), session.volumes.len(), "one pose per volume");
    std::fs::create_dir_all(folder).map_err(|e| DataError::io(folder, e))?;
    let grid = Grid {
        shape: session.shape,
        affine: session.affine,
    };
    let start = Instant::now();
    let mut written = Vec::with_capacity(session.volumes.len());
    for (t, (values, pose)) in session.volumes.iter().zip(poses).enumerate() {
        let seen = moved(&grid, values, pose).map_err(|e| {
            DataError::Usage(format!("the session's grid cannot be resampled: {e}"))
        })?;
        let stored: Vec<u16> = seen
            .iter()
            .map(|v| v.round().clamp(0.0, 65535.0) as u16)
            .collect();
        if let Some(pace) = pace {
            let due = start + pace.mul_f64(t as f64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let files = write_volume(
            folder,
            &file_stem(t + 1),
            &ScannerVolume {
                shape: session.shape,
                affine: session.affine,
                values: &stored,
                uid_root: "1.2.826.0.1.3680043.10.1096",
                series_number: SERIES,
                volume: (t + 1) as u32,
                repetition_time_ms: session.tr * 1000.0,
            },
            layout,
        )?;
        if let Some(last) = files.last() {
            on_written(t, last);
        }
        written.extend(files);
    }
    Ok(written)
}

/// What [`export_session`] writes: a simulated subject's next session as a scanner's export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The folder `simulate --kind events` wrote (its `truth/events_truth.json` is read).
    pub experiment: PathBuf,
    /// Where events.tsv and truth.json go.
    pub out: PathBuf,
    /// The folder the volumes are written to (`out/export` when `None`).
    pub export: Option<PathBuf>,
    /// Repetition time, seconds.
    pub tr: f64,
    /// One volume every TR (as a scanner writes them) instead of all at once.
    pub real_pace: bool,
    /// How the volumes are stored: mosaics, enhanced multi-frame files or slices.
    pub layout: DicomLayout,
    /// Show only the first this many test images.
    pub images: Option<usize>,
    /// Times each image is shown.
    pub repeats: usize,
    /// Seconds of rest before the first image.
    pub rest_seconds: f64,
    /// Scale of the planted head motion (0: none).
    pub motion: f64,
    /// Seeds the session's noise, order and motion.
    pub seed: u64,
}

/// OUT/truth.json: the session's trials and its planted head positions.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ExportTruth {
    /// The experiment folder the session's subject comes from.
    pub experiment: PathBuf,
    /// Repetition time, seconds.
    pub tr: f64,
    /// Volumes exported.
    pub volumes: usize,
    /// The images shown, in order.
    pub trials: Vec<SessionTrial>,
    /// The head's pose at the first volume relative to the subject's reference (the
    /// registration's answer), about the grid's centre.
    pub offset: RigidParams,
    /// Head motion of every volume relative to the first, about the grid's centre.
    pub motion: Vec<RigidParams>,
    /// The folder holding the volumes.
    pub export: PathBuf,
}

/// What [`export_session`] wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    /// What OUT/truth.json holds.
    pub truth: ExportTruth,
    /// The folder holding the volumes.
    pub export: PathBuf,
    /// OUT/events.tsv.
    pub events: PathBuf,
}

impl Exported {
    /// The summary `realtime simulate --json` prints: export, volumes, trials, tr, events.
    pub fn json(&self) -> serde_json::Value {
        let record = &self.truth;
        serde_json::json!({
            "export": self.export, "volumes": record.volumes, "trials": record.trials.len(),
            "tr": record.tr, "events": self.events,
        })
    }

    /// The line `realtime simulate` prints.
    pub fn text(&self) -> String {
        format!(
            "wrote {} volumes ({} trials, TR {} s) to {}; events in {}",
            self.truth.volumes,
            self.truth.trials.len(),
            self.truth.tr,
            self.export.display(),
            self.events.display()
        )
    }
}

/// Waits for OUT/truth.json of a session that [`export_session`] is writing into `out` (it is
/// written before the first volume) and returns the session's volume count; `None` when
/// `ended()` says the exporter stopped first, or after `timeout`.
pub fn wait_for_volume_count(
    out: &Path,
    timeout: Duration,
    ended: impl Fn() -> bool,
) -> Result<Option<usize>> {
    let truth = out.join("truth.json");
    let started = Instant::now();
    while !truth.is_file() {
        if ended() || started.elapsed() > timeout {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let value: serde_json::Value = read_json(&truth)?;
    Ok(value["volumes"].as_u64().map(|n| n as usize))
}

/// Simulates the next session of the experiment's subject (same brain, voxels' response
/// shapes and tuning; new noise, drifts and head motion) and writes it as a scanner's export:
/// OUT/events.tsv and OUT/truth.json first (so a follower can read the volume count before
/// the first volume), then the volumes, paced by the TR when `real_pace`.
pub fn export_session(options: &ExportOptions) -> Result<Exported> {
    if !options.motion.is_finite() || options.motion < 0.0 {
        return Err(DataError::Usage(
            "--motion: expected a finite scale ≥ 0".into(),
        ));
    }
    let truth: EventsTruth = read_json(&options.experiment.join("truth/events_truth.json"))?;
    let session = simulate_session(
        &truth,
        &SessionOptions {
            seed: options.seed,
            tr: options.tr,
            images: options.images,
            repeats: options.repeats,
            rest_seconds: options.rest_seconds,
        },
    )?;
    let motion = planted_motion(session.volumes.len(), options.seed, options.motion);
    let offset = session_offset(options.motion);
    let centre = Grid {
        shape: session.shape,
        affine: session.affine,
    }
    .centre();
    let poses = head_poses(&offset, &motion, centre);
    let out = &options.out;
    let export = options.export.clone().unwrap_or_else(|| out.join("export"));
    std::fs::create_dir_all(out).map_err(|e| DataError::io(out, e))?;
    let events = out.join("events.tsv");
    write_bytes_atomic(&events, session.events_tsv.as_bytes())?;
    let record = ExportTruth {
        experiment: options.experiment.clone(),
        tr: session.tr,
        volumes: session.volumes.len(),
        trials: session.trials.clone(),
        offset,
        motion,
        export: export.clone(),
    };
    write_json_atomic(&out.join("truth.json"), &record)?;
    let pace = options
        .real_pace
        .then(|| Duration::from_secs_f64(options.tr));
    write_export(&session, &poses, &export, options.layout, pace, |_, _| {})?;
    Ok(Exported {
        truth: record,
        export,
        events,
    })
}

/// What [`replay`] writes: a recorded 4-D run as a scanner's export.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Any 4-D NIfTI series.
    pub run: PathBuf,
    /// The folder the volumes are written to (created).
    pub export: PathBuf,
    /// Seconds between volumes (the file's `pixdim[4]` when `None`).
    pub tr: Option<f64>,
    /// One volume every TR instead of all at once.
    pub real_pace: bool,
    /// Only the first this many volumes.
    pub volumes: Option<usize>,
}

/// Writes a recorded run volume by volume into the export folder as `vol-NNNNNN.nii`
/// (float32); returns the volumes written and the TR used. Writing none is a usage error.
pub fn replay(options: &ReplayOptions) -> Result<(usize, f64)> {
    use brainrecon_formats::nifti4d;
    let header = nifti4d::read_header(&options.run)?;
    let tr = options.tr.unwrap_or(header.pixdim_t);
    if !(tr.is_finite() && tr > 0.0) {
        return Err(DataError::Usage(format!(
            "--tr: {} has no repetition time in pixdim[4] ({}); give --tr in seconds",
            options.run.display(),
            header.pixdim_t
        )));
    }
    let export = &options.export;
    std::fs::create_dir_all(export).map_err(|e| DataError::io(export, e))?;
    let limit = options.volumes.unwrap_or(usize::MAX);
    let started = Instant::now();
    let mut written = 0;
    nifti4d::for_each_volume(&options.run, |t, values| {
        if t >= limit {
            return Ok(());
        }
        if options.real_pace {
            let due = Duration::from_secs_f64(tr * t as f64);
            std::thread::sleep(due.saturating_sub(started.elapsed()));
        }
        let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        let path = export.join(format!("vol-{:06}.nii", t + 1));
        brainrecon_formats::nifti_io::write_f32(&path, header.shape, &header.affine, &values)?;
        written += 1;
        Ok(())
    })?;
    if written == 0 {
        // A replay that wrote nothing is no success (--volumes 0, or a run without volumes).
        return Err(DataError::Usage(format!(
            "--volumes {}: no volume of {} was replayed",
            options.volumes.map_or("-".to_string(), |n| n.to_string()),
            options.run.display()
        )));
    }
    Ok((written, tr))
}
