//! A scanner's real-time export, simulated: a session of a simulated subject (see
//! `brainrecon_simulate::events::simulate_session`) moved by planted head motion and
//! written volume by volume as Siemens EPI mosaics, named as Siemens' real-time export names
//! them (`001_SSSSSS_VVVVVV.dcm`), at the TR's pace or at once.

use crate::grid::{Grid, Image};
use crate::realign::{reslice, RealignError};
use crate::rigid::{Rigid, RigidParams};
use brainrecon_data::dicom::write::{write_volume, DicomLayout, ScannerVolume};
use brainrecon_data::{DataError, Result};
use brainrecon_simulate::events::ScannerSession;
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
