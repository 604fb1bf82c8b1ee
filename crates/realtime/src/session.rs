//! One real-time session's preprocessing, volume by volume: the first volume becomes the
//! session's realignment reference and is registered (rigid, same subject, another day) to
//! the reference volume of the subject the decoders were fitted on; every volume is realigned
//! to it (starting from the previous volume's estimate), sampled at the subject's voxels
//! through both transforms in one interpolation, and standardised with running statistics.

use crate::grid::{Grid, GridError, Image};
use crate::online::OnlineZscore;
use crate::realign::{Estimate, RealignError, RealignOptions, Reference};
use crate::rigid::{Rigid, RigidParams};
use serde::{Deserialize, Serialize};

/// Settings of a session's preprocessing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionOptions {
    /// Realignment of every volume to the first, and of the first to the subject's reference.
    pub realign: RealignOptions,
    /// Volumes whose z-scores are 0 while the running statistics settle.
    pub warmup: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            realign: RealignOptions::default(),
            warmup: 10,
        }
    }
}

/// The subject the decoders were fitted on: its grid, the voxels they read (linear indices
/// into the grid) and, when the session is another day's, a reference volume on that grid.
#[derive(Debug, Clone)]
pub struct SubjectSpace {
    /// The subject's functional grid.
    pub grid: Grid,
    /// The decoders' voxels, linear indices into `grid` (X fastest), in the order
    /// [`Processed::samples`] gives them.
    pub voxels: Vec<usize>,
    /// A mean functional volume on `grid`; `None` when the session's first volume is taken
    /// to lie on the subject's grid already (the decoders were fitted on this session).
    pub reference: Option<Image>,
}

impl SubjectSpace {
    /// No decoder voxels and no subject reference: the session's motion only (the grid is
    /// not read).
    pub fn motion_only() -> SubjectSpace {
        SubjectSpace {
            grid: Grid::axis_aligned([1, 1, 1], [1.0; 3], [0.0; 3]),
            voxels: Vec::new(),
            reference: None,
        }
    }
}

/// What one volume gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Processed {
    /// 0-based volume number in the session.
    pub volume: usize,
    /// Head motion relative to the session's first volume.
    pub motion: RigidParams,
    /// Power et al.'s framewise displacement from the previous volume (rotations as arcs on
    /// a 50 mm sphere), mm.
    pub framewise_displacement_mm: f64,
    /// Gauss-Newton iterations of this volume's realignment (0 for the first volume).
    pub realign_iterations: usize,
    /// The subject's voxels sampled from this volume (NaN where the volume does not cover
    /// them) and their running z-scores (0 there).
    pub samples: Vec<f32>,
    /// Running z-scores of `samples`, one per voxel.
    pub zscores: Vec<f32>,
}

/// Why a volume could not be used; the session goes on with the next.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The volume's extent is not the first volume's.
    #[error("the volume's grid {found:?} differs from the session's {expected:?}")]
    OtherGrid {
        /// The first volume's extent (X, Y, Z).
        expected: [usize; 3],
        /// This volume's extent.
        found: [usize; 3],
    },
    /// The volume's affine is not the first volume's (see [`Grid::same_placement`]).
    #[error("the volume's orientation or position differs from the session's (affine)")]
    OtherOrientation,
    /// The realignment failed.
    #[error(transparent)]
    Realign(#[from] RealignError),
    /// The volume's grid is unusable.
    #[error(transparent)]
    Grid(#[from] GridError),
}

/// Session state between volumes.
#[derive(Debug)]
pub struct SessionPreprocessor {
    subject_world: Vec<[f64; 3]>,
    /// The centre of the subject reference's grid, about which the registration is told.
    subject_centre: Option<[f64; 3]>,
    options: SessionOptions,
    /// The subject's reference prepared (smoothed, Jacobian) before the first volume arrives.
    subject_reference: Option<Reference>,
    first: Option<FirstVolume>,
    /// The previous volume's transform (first volume's world → its world).
    previous: Rigid,
    zscore: OnlineZscore,
}

#[derive(Debug)]
struct FirstVolume {
    grid: Grid,
    reference: Reference,
    /// Subject world → the session's first volume's world.
    subject_to_session: Rigid,
}

impl SessionPreprocessor {
    /// Prepares the subject's reference volume (when given) now, so the first volume only
    /// waits for its own registration.
    pub fn new(
        subject: SubjectSpace,
        options: SessionOptions,
    ) -> Result<SessionPreprocessor, VolumeError> {
        let subject_world = subject
            .voxels
            .iter()
            .map(|&i| subject.grid.world_of_index(i))
            .collect();
        let zscore = OnlineZscore::new(subject.voxels.len(), options.warmup);
        let subject_reference = match &subject.reference {
            Some(image) => Some(Reference::new(image, &options.realign)?),
            None => None,
        };
        Ok(SessionPreprocessor {
            subject_world,
            subject_centre: subject.reference.as_ref().map(|r| r.grid.centre()),
            options,
            subject_reference,
            first: None,
            previous: Rigid::IDENTITY,
            zscore,
        })
    }

    /// The registration of the session to the subject (subject world → session world), once
    /// the first volume has arrived.
    pub fn subject_to_session(&self) -> Option<Rigid> {
        self.first.as_ref().map(|f| f.subject_to_session)
    }

    /// The session's registration to the subject as motion parameters about the subject
    /// reference's grid centre (None before the first volume, or without a subject reference).
    pub fn registration(&self) -> Option<RigidParams> {
        self.subject_to_session()
            .zip(self.subject_centre)
            .map(|(t, centre)| t.params(centre))
    }

    /// Preprocesses the next volume. A volume refused here (another grid, no overlap) leaves
    /// the session's state as it was.
    pub fn push(&mut self, volume: &Image) -> Result<Processed, VolumeError> {
        let estimate = match &self.first {
            None => {
                let first = self.start(volume)?;
                self.first = Some(first);
                None
            }
            Some(first) => {
                same_grid(&first.grid, &volume.grid)?;
                Some(first.reference.estimate(volume, &self.previous)?)
            }
        };
        let first = self.first.as_ref().expect("set above");
        let (motion_to_volume, iterations) = match &estimate {
            Some(Estimate {
                transform,
                iterations,
                ..
            }) => (*transform, *iterations),
            None => (Rigid::IDENTITY, 0),
        };
        let centre = first.reference.centre();
        let motion = motion_to_volume.params(centre);
        let previous_motion = self.previous.params(centre);
        let samples = self.sample(volume, &motion_to_volume.compose(&first.subject_to_session))?;
        let covered: Vec<f32> = samples
            .iter()
            .map(|v| if v.is_nan() { 0.0 } else { *v })
            .collect();
        let volume_number = self.zscore.volumes();
        let zscores = self.zscore.push(&covered);
        let processed = Processed {
            volume: volume_number,
            framewise_displacement_mm: framewise_displacement(&previous_motion, &motion),
            motion,
            realign_iterations: iterations,
            zscores: zscores
                .iter()
                .zip(&samples)
                .map(|(z, s)| if s.is_nan() { 0.0 } else { *z })
                .collect(),
            samples,
        };
        self.previous = motion_to_volume;
        Ok(processed)
    }

    fn start(&self, volume: &Image) -> Result<FirstVolume, VolumeError> {
        let reference = Reference::new(volume, &self.options.realign)?;
        let subject_to_session = match &self.subject_reference {
            Some(subject_reference) => {
                subject_reference
                    .estimate(volume, &Rigid::IDENTITY)?
                    .transform
            }
            None => Rigid::IDENTITY,
        };
        Ok(FirstVolume {
            grid: volume.grid.clone(),
            reference,
            subject_to_session,
        })
    }

    /// The volume's values at the subject's voxels through `subject_to_volume`.
    fn sample(&self, volume: &Image, subject_to_volume: &Rigid) -> Result<Vec<f32>, VolumeError> {
        let to_voxel = volume.grid.world_to_voxel()?;
        Ok(self
            .subject_world
            .iter()
            .map(|&w| {
                volume
                    .sample(to_voxel.voxel(subject_to_volume.apply(w)))
                    .map_or(f32::NAN, |v| v as f32)
            })
            .collect())
    }
}

fn same_grid(expected: &Grid, found: &Grid) -> Result<(), VolumeError> {
    if expected.shape != found.shape {
        return Err(VolumeError::OtherGrid {
            expected: expected.shape,
            found: found.shape,
        });
    }
    if !expected.same_placement(found) {
        return Err(VolumeError::OtherOrientation);
    }
    Ok(())
}

/// Power et al. (2012): the sum of the absolute changes of the 6 parameters, rotations as
/// arc lengths on a 50 mm sphere.
pub fn framewise_displacement(previous: &RigidParams, current: &RigidParams) -> f64 {
    let t: f64 = (0..3)
        .map(|i| (current.translation_mm[i] - previous.translation_mm[i]).abs())
        .sum();
    let r: f64 = (0..3)
        .map(|i| {
            (current.rotation_deg[i] - previous.rotation_deg[i])
                .to_radians()
                .abs()
                * 50.0
        })
        .sum();
    t + r
}
