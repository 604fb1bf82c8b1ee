//! The new subject as the curve sees it at one point: its first N train trials, and the same
//! trials with the align-image rows added for the within-subject baseline, each written as an
//! ordinary prepared subject holding the group ROI's atlas.

use crate::error::{Result, RouteError};
use brainrecon_datasets::prepared::{PreparedSubject, Roi, Split, Writer};
use std::collections::BTreeSet;
use std::path::Path;

/// Rows of one whole atlas (every voxel), float32 row-major, with the stimulus id and session
/// of each row (0 for test rows, which average repeats over sessions).
pub(super) struct AtlasRows {
    pub ids: Vec<usize>,
    pub sessions: Vec<usize>,
    pub voxels: usize,
    pub values: Vec<f32>,
}

impl AtlasRows {
    /// Every row of `split` of `atlas`; train rows carry their session from `trials.tsv`.
    pub fn read(subject: &PreparedSubject, atlas: &str, split: Split) -> Result<Self> {
        let n_voxels = subject
            .meta
            .atlases
            .iter()
            .find(|a| a.name == atlas)
            .map_or(0, |a| a.n_voxels);
        let whole = Roi {
            name: atlas.to_string(),
            atlas: atlas.to_string(),
            columns: None,
            n_voxels,
        };
        let betas = subject.betas(&whole, split)?;
        let ids = subject.row_ids(split)?;
        if ids.len() != betas.rows {
            return Err(RouteError::mismatch(
                &subject.betas_path(atlas, split),
                "rows",
                format!("{} rows, one per stimulus id", ids.len()),
                betas.rows,
            ));
        }
        let sessions = match split {
            Split::Train => {
                let sessions = crate::group::data::train_sessions(subject)?;
                if sessions.len() != ids.len() {
                    return Err(RouteError::mismatch(
                        &subject.path("trials.tsv"),
                        "train rows",
                        format!("{} train rows, as train_stimulus_ids.npy", ids.len()),
                        sessions.len(),
                    ));
                }
                sessions
            }
            _ => vec![0; ids.len()],
        };
        Ok(AtlasRows {
            ids,
            sessions,
            voxels: betas.voxels,
            values: betas.values,
        })
    }

    /// The rows whose (row, id) pass `keep`, in order.
    pub fn select(&self, keep: impl Fn(usize, usize) -> bool) -> Self {
        let picked: Vec<usize> = (0..self.ids.len())
            .filter(|&r| keep(r, self.ids[r]))
            .collect();
        AtlasRows {
            ids: picked.iter().map(|&r| self.ids[r]).collect(),
            sessions: picked.iter().map(|&r| self.sessions[r]).collect(),
            voxels: self.voxels,
            values: picked
                .iter()
                .flat_map(|&r| &self.values[r * self.voxels..(r + 1) * self.voxels])
                .copied()
                .collect(),
        }
    }

    /// Rows of `self` then `other`.
    pub fn stack(&self, other: &AtlasRows) -> Self {
        assert_eq!(self.voxels, other.voxels, "stacked rows' voxels");
        AtlasRows {
            ids: self.ids.iter().chain(&other.ids).copied().collect(),
            sessions: self
                .sessions
                .iter()
                .chain(&other.sessions)
                .copied()
                .collect(),
            voxels: self.voxels,
            values: self.values.iter().chain(&other.values).copied().collect(),
        }
    }
}

/// Writes a prepared subject into `dir` (replaced if there): `like`'s `subject.json` with its
/// one atlas `atlas` (ROI files linked from `like`), `train` as its train trials and `test` as
/// its test images, and the stimuli and features of `stimuli_from` (the subject prepared from
/// all sessions, which holds every image either split names) linked.
pub(super) fn write_subject(
    dir: &Path,
    like: &PreparedSubject,
    atlas: &str,
    (train, test): (&AtlasRows, &AtlasRows),
    stimuli_from: &PreparedSubject,
) -> Result<PreparedSubject> {
    brainrecon_core::fs::remove_dir_atomic(dir)?;
    let mkdir =
        |p: &Path| std::fs::create_dir_all(p).map_err(|e| brainrecon_core::DataError::io(p, e));
    for sub in ["stimuli", "features", "rois"] {
        mkdir(&dir.join(sub))?;
    }
    let out = Writer::new(dir);
    for (split, rows) in [(Split::Train, train), (Split::Test, test)] {
        out.betas(atlas, split, [rows.ids.len(), rows.voxels], &rows.values)?;
        out.row_ids(split, &rows.ids)?;
    }
    let train_images: Vec<usize> = train
        .ids
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    out.row_ids(Split::TrainAveraged, &train_images)?;
    let mut trials = String::from("trial\tsession\tsession_trial\tstimulus\tsplit\n");
    for (t, (&id, &session)) in train.ids.iter().zip(&train.sessions).enumerate() {
        trials.push_str(&format!("{t}\t{session}\t{}\t{id}\ttrain\n", t + 1));
    }
    for (t, &id) in test.ids.iter().enumerate() {
        let n = train.ids.len() + t;
        trials.push_str(&format!("{n}\t0\t{}\t{id}\ttest\n", t + 1));
    }
    out.trials(&trials)?;
    for file in [
        format!("rois/{atlas}.npy"),
        format!("rois/{atlas}_labels.npy"),
    ] {
        link_or_copy(&like.path(&file), &dir.join(&file))?;
    }
    for file in [
        "stimuli/ids.npy",
        "stimuli/images.npy",
        "stimuli/captions.json",
    ] {
        link_or_copy(&stimuli_from.path(file), &dir.join(file))?;
    }
    let features = stimuli_from.path("features");
    if features.is_dir() {
        for entry in std::fs::read_dir(&features)
            .map_err(|e| brainrecon_core::DataError::io(&features, e))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
        {
            link_or_copy(&entry.path(), &dir.join("features").join(entry.file_name()))?;
        }
    }
    let mut meta = like.meta.clone();
    meta.atlases.retain(|a| a.name == atlas);
    meta.n_train_trials = train.ids.len();
    meta.n_train_images = train_images.len();
    meta.n_test_images = test.ids.len();
    meta.train_averaged = false;
    out.meta(&meta)?;
    Ok(PreparedSubject::open(dir)?)
}

/// A hard link where the file system allows one, else a copy; nothing when `from` is absent.
fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if !from.exists() {
        return Ok(());
    }
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).map_err(|e| brainrecon_core::DataError::io(to, e))?;
    }
    Ok(())
}
