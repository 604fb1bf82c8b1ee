//! Continuous recordings (one volume per TR, movies and music) prepared as a **run set**: what
//! `brainrecon bids prepare` writes and the encoding models read.
//!
//! ```text
//! <out>/runset.json              RunSetMeta (below)
//! <out>/runs/<name>.npy          float32 (n_trs, n_voxels), C order: one run, detrended and
//!                                z-scored per voxel; row t is the volume at
//!                                start_seconds + t·tr of the recording's clock
//! <out>/voxels.npy               int32 (n_voxels, 3): voxel indices (i, j, k) in the volume,
//!                                ordered by flat index with i fastest (NIfTI's order)
//! <out>/events/<name>.tsv        the run's BIDS events, copied verbatim (onsets in the
//!                                recording's clock: subtract start_seconds for rows); NSD's
//!                                per-volume designs written as events (onset, duration, 73k_id)
//! <out>/annotations/<name>/<kind>.txt
//!                                per-second annotations, one line per second of the run's
//!                                rows (the dropped seconds are cut), UTF-8, lines verbatim
//! ```
//!
//! `runset.json`:
//! ```text
//! {format: "brainrecon-runs", version: 1, subject, tr, n_voxels, volume_shape: [x, y, z],
//!  affine: 4×4 row-major voxel → world (sform, else qform),
//!  preprocessing: {detrend: "median:120" | "poly:N" | "none", zscore: "run" | "run_sample",
//!                  drop_seconds, mask: how the voxels were chosen, zero_variance_voxels,
//!                  confounds (fMRIPrep only): {strategy, fd_threshold, std_dvars_threshold,
//!                  reference, censored_rows, generated_by, space}},
//!  source: {layout: "bids" | "ds005531" | "fmriprep" | "nsd", root, tasks},
//!  runs: [{name, task, session, run, n_trs, start_seconds, dropped_end_volumes,
//!          data: "runs/<name>.npy",
//!          events: "events/<name>.tsv" | null, annotations: {<kind>: "annotations/<name>/<kind>.txt"},
//!          source_file,
//!          confounds (fMRIPrep only): {file, regressors, rank, censored: [row, …],
//!                                      non_steady_state: [row, …]}}],
//!  grayordinates (CIFTI runs only): {source, models: [{structure, kind, offset, count}]}}
//! ```
//! fMRIPrep runs (`--fmriprep`): rows are still one per TR, so stimulus features align by
//! row; censored rows (non-steady-state and scrubbed volumes, which nilearn drops) are
//! written as zeros (the run's mean after z-scoring, no invented signal) and listed in
//! `runs[].confounds.censored`, for models to leave out of fits and scores.
//! `name` is the run's BIDS entities without the subject (`task-movie_run-01`,
//! `ses-2_task-Training_run-03`). Runs are ordered by `--task` order, then session, run number.
//! [`RunSet::open`] checks all of it; [`RunSet::run_data`] memory-maps a run.

pub mod prepare;
pub mod trials;

use crate::error::{DataError, Result};
use crate::{bids, fmriprep};
use brainrecon_core::fs::read_json;
use brainrecon_formats::events::{self, Events};
use brainrecon_formats::nifti_io;
use brainrecon_formats::npy::{self, MappedF32};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `runset.json`'s format name.
pub const FORMAT: &str = "brainrecon-runs";
/// `runset.json`'s format version.
pub const FORMAT_VERSION: u32 = 1;

/// What was done to the recordings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Preprocessing {
    /// `median:<seconds>`, `poly:<order>` or `none`.
    pub detrend: String,
    /// `run`: each voxel z-scored over each run (population std).
    pub zscore: String,
    /// Seconds cut from the start of every run before anything else.
    pub drop_seconds: f64,
    /// How the voxels were chosen (a file, a threshold, ds005531's tvoxels).
    pub mask: String,
    /// Voxel-runs with zero variance, written as zeros (see `prepare`).
    pub zero_variance_voxels: usize,
    /// fMRIPrep runs: the confound regression applied (none for other layouts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confounds: Option<ConfoundsInfo>,
}

/// How fMRIPrep's confounds were regressed out (see [`fmriprep::confounds`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConfoundsInfo {
    /// `--confounds` in canonical form (`motion:full,wm_csf:basic,high_pass,scrub:5`, `none`).
    pub strategy: String,
    /// The framewise-displacement threshold of `scrub` (mm); none without it.
    pub fd_threshold: Option<f64>,
    /// The standardized-DVARS threshold of `scrub`; none without it.
    pub std_dvars_threshold: Option<f64>,
    /// What it reproduces.
    pub reference: String,
    /// What censored rows hold (`zeros`) and where they are listed.
    pub censored_rows: String,
    /// fMRIPrep's version, from its dataset_description.json.
    pub generated_by: String,
    /// `--space`.
    pub space: String,
}

/// One fMRIPrep run's confounds (rows count from the run set's row 0).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunConfoundsInfo {
    /// fMRIPrep's confounds table.
    pub file: PathBuf,
    /// The regressors projected out.
    pub regressors: Vec<String>,
    /// Their independent directions (the QR's rank).
    pub rank: usize,
    /// Rows left out of the regression and z-scoring and written as zeros: non-steady-state
    /// volumes and scrubbed ones. Leave them out of model fits and scores too.
    pub censored: Vec<usize>,
    /// The non-steady-state rows among them.
    pub non_steady_state: Vec<usize>,
}

/// Where the run set came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceInfo {
    /// `bids` or `ds005531`.
    pub layout: String,
    /// The dataset root.
    pub root: PathBuf,
    /// The tasks included, in `--task` order.
    pub tasks: Vec<String>,
}

/// One run of a run set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunInfo {
    /// The run's BIDS entities without the subject (`task-movie_run-01`).
    pub name: String,
    /// The `task-` label.
    pub task: String,
    /// The `ses-` label, when the name has one.
    pub session: Option<String>,
    /// The `run-` number, when the name has one.
    pub run: Option<u32>,
    /// Rows (volumes) of the run's data.
    pub n_trs: usize,
    /// Time of row 0 in the recording's clock (the dropped seconds).
    pub start_seconds: f64,
    /// Volumes of the source past the stimulus' end, left out (ds005531's dataDT runs on
    /// after the movie; its authors' loaders keep rows up to the movie's duration).
    #[serde(default)]
    pub dropped_end_volumes: usize,
    /// `runs/<name>.npy`, relative to the run set.
    pub data: String,
    /// `events/<name>.tsv`, or none when the dataset has no events for the run.
    pub events: Option<String>,
    /// The events file it was copied from (for messages that name the user's file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_source: Option<PathBuf>,
    /// kind → `annotations/<name>/<kind>.txt`.
    pub annotations: BTreeMap<String, String>,
    /// The file the run was read from.
    pub source_file: PathBuf,
    /// fMRIPrep runs: confounds regressed out and rows censored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confounds: Option<RunConfoundsInfo>,
}

/// `runset.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunSetMeta {
    /// [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// The subject label (`01`).
    pub subject: String,
    /// Seconds per volume.
    pub tr: f64,
    /// Columns of every run's data (voxels or grayordinates).
    pub n_voxels: usize,
    /// (X, Y, Z)
    pub volume_shape: [usize; 3],
    /// Row-major voxel → world affine.
    pub affine: [[f64; 4]; 4],
    /// What was done to the recordings.
    pub preprocessing: Preprocessing,
    /// Where the runs came from.
    pub source: SourceInfo,
    /// The runs, in `--task` order, then session and run number.
    pub runs: Vec<RunInfo>,
    /// CIFTI runs: what the columns are. `voxels.npy` then holds (g, 0, 0) for grayordinate
    /// g, `volume_shape` is [n, 1, 1] and `affine` the identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grayordinates: Option<Grayordinates>,
}

/// The grayordinates of a CIFTI run set, as the first run's brain models name them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Grayordinates {
    /// The CIFTI file they were read from.
    pub source: PathBuf,
    /// The brain models, in column order.
    pub models: Vec<GrayordinateModel>,
}

/// One brain model: columns `offset .. offset + count`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GrayordinateModel {
    /// As CIFTI names it, e.g. `CIFTI_STRUCTURE_CORTEX_LEFT`.
    pub structure: String,
    /// `surface` (mesh vertices) or `voxels`.
    pub kind: String,
    /// First column of the model.
    pub offset: usize,
    /// Columns of the model.
    pub count: usize,
}

impl Grayordinates {
    /// The models of a CIFTI file (`models` as read from `source`).
    pub fn of(source: &Path, models: &[brainrecon_formats::cifti::BrainModel]) -> Self {
        let models = models
            .iter()
            .map(|m| GrayordinateModel {
                structure: m.brain_structure.clone(),
                kind: match m.model_type {
                    brainrecon_formats::cifti::ModelType::Surface => "surface".into(),
                    brainrecon_formats::cifti::ModelType::Voxels => "voxels".into(),
                },
                offset: m.index_offset,
                count: m.index_count,
            })
            .collect();
        Grayordinates {
            source: source.to_path_buf(),
            models,
        }
    }
}

/// An opened, checked run set.
pub struct RunSet {
    root: PathBuf,
    meta: RunSetMeta,
    voxels: Vec<[usize; 3]>,
    /// CIFTI run sets: the source's brain models, read once for every map written.
    source_models: std::sync::OnceLock<SourceModels>,
}

type SourceModels = (
    Vec<brainrecon_formats::cifti::BrainModel>,
    Option<brainrecon_formats::cifti::CiftiVolume>,
);

impl RunSet {
    /// Opens `dir` and checks that every file it names is there with the right shape.
    pub fn open(dir: &Path) -> Result<Self> {
        let meta_path = dir.join("runset.json");
        if !meta_path.exists() {
            return Err(DataError::Missing {
                path: meta_path,
                what: "a run set (made by `brainrecon bids prepare`)".into(),
            });
        }
        let meta: RunSetMeta = read_json(&meta_path)?;
        if meta.format != FORMAT || meta.version != FORMAT_VERSION {
            return Err(DataError::invalid(
                &meta_path,
                "format",
                format!("{FORMAT} version {FORMAT_VERSION}"),
                format!("{} version {}", meta.format, meta.version),
            ));
        }
        check_meta(&meta_path, &meta)?;
        let voxels = read_voxels(&dir.join("voxels.npy"), &meta)?;
        let set = RunSet {
            root: dir.to_path_buf(),
            meta,
            voxels,
            source_models: std::sync::OnceLock::new(),
        };
        for i in 0..set.meta.runs.len() {
            set.mapped_run(i)?;
            let run = &set.meta.runs[i];
            for file in run.events.iter().chain(run.annotations.values()) {
                crate::error::require_file(
                    &set.root.join(file),
                    &format!("a file of run {}", run.name),
                )?;
            }
        }
        Ok(set)
    }

    /// The run set's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Its `runset.json`.
    pub fn meta(&self) -> &RunSetMeta {
        &self.meta
    }

    /// Its runs, in order.
    pub fn runs(&self) -> &[RunInfo] {
        &self.meta.runs
    }

    /// Seconds per volume.
    pub fn tr(&self) -> f64 {
        self.meta.tr
    }

    /// Columns of every run's data.
    pub fn n_voxels(&self) -> usize {
        self.meta.n_voxels
    }

    /// The volume grid (X, Y, Z) the voxels index ([n, 1, 1] for CIFTI runs).
    pub fn volume_shape(&self) -> [usize; 3] {
        self.meta.volume_shape
    }

    /// Row-major voxel → world affine (mm; the identity for CIFTI runs).
    pub fn affine(&self) -> &[[f64; 4]; 4] {
        &self.meta.affine
    }

    /// (i, j, k) of each column of the runs' data.
    pub fn voxel_indices(&self) -> &[[usize; 3]] {
        &self.voxels
    }

    fn run(&self, i: usize) -> Result<&RunInfo> {
        self.meta.runs.get(i).ok_or_else(|| {
            DataError::invalid(
                self.root.join("runset.json"),
                "runs",
                format!("a run index below {}", self.meta.runs.len()),
                i.to_string(),
            )
        })
    }

    /// Run `i`'s data, memory-mapped: (n_trs, n_voxels) float32, C order, every value finite.
    pub fn run_data(&self, i: usize) -> Result<MappedF32> {
        let mapped = self.mapped_run(i)?;
        npy::require_finite(
            mapped.path(),
            mapped.as_slice(),
            self.meta.n_voxels,
            "finite values (a run set holds zeros where TRs are censored)",
        )?;
        Ok(mapped)
    }

    /// Run `i`'s data mapped and its shape checked, its values not read: what `open` checks
    /// of every run (the values are checked where they are used, once).
    fn mapped_run(&self, i: usize) -> Result<MappedF32> {
        let run = self.run(i)?;
        let path = self.root.join(&run.data);
        let mapped = MappedF32::open(&path)?;
        if mapped.shape() != [run.n_trs, self.meta.n_voxels] {
            return Err(DataError::invalid(
                &path,
                "shape",
                format!(
                    "[{}, {}] (n_trs, n_voxels of runset.json)",
                    run.n_trs, self.meta.n_voxels
                ),
                format!("{:?}", mapped.shape()),
            ));
        }
        Ok(mapped)
    }

    /// The annotation kinds run `i` has.
    pub fn annotation_kinds(&self, i: usize) -> Result<Vec<&str>> {
        Ok(self
            .run(i)?
            .annotations
            .keys()
            .map(String::as_str)
            .collect())
    }

    /// Run `i`'s annotation of `kind`: one line per second from its first row.
    pub fn annotations(&self, i: usize, kind: &str) -> Result<Vec<String>> {
        let run = self.run(i)?;
        let file = run.annotations.get(kind).ok_or_else(|| {
            DataError::invalid(
                self.root.join("runset.json"),
                format!("runs[{i}].annotations"),
                format!(
                    "one of the kinds run {} has: {}",
                    run.name,
                    run.annotations
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                format!("'{kind}'"),
            )
        })?;
        let path = self.root.join(file);
        let lines = bids::read_lines(&path)?;
        let expected = seconds(run.n_trs, self.meta.tr);
        if lines.len() != expected {
            return Err(DataError::invalid(
                &path,
                "lines",
                format!(
                    "{expected} (one per second of {} volumes at TR {} s)",
                    run.n_trs, self.meta.tr
                ),
                lines.len().to_string(),
            ));
        }
        Ok(lines)
    }

    /// Run `i`'s events as the dataset ships them, if it has any.
    pub fn events(&self, i: usize) -> Result<Option<Events>> {
        match &self.run(i)?.events {
            Some(file) => Events::read(&self.root.join(file)).map(Some),
            None => Ok(None),
        }
    }

    /// Writes one value per voxel as a float32 NIfTI volume on the subject's grid with the run
    /// set's affine (gzipped when `path` ends in `.gz`); voxels outside the set are NaN.
    ///
    /// CIFTI run sets have no volume: their maps are CIFTI dense scalar files (one map named
    /// after the file) over the runs' grayordinates, beside `path` with `.dscalar.nii` for its
    /// `.nii[.gz]`.
    pub fn write_voxel_map(&self, path: &Path, values: &[f32]) -> Result<()> {
        if values.len() != self.meta.n_voxels {
            return Err(DataError::invalid(
                path,
                "values",
                format!("{} (one per voxel of the run set)", self.meta.n_voxels),
                values.len().to_string(),
            ));
        }
        if let Some(g) = &self.meta.grayordinates {
            return self.write_grayordinate_map(g, path, values);
        }
        let [x, y, z] = self.meta.volume_shape;
        let mut volume = vec![f32::NAN; x * y * z];
        for (&[i, j, k], &v) in self.voxels.iter().zip(values) {
            volume[i + x * (j + y * k)] = v;
        }
        nifti_io::write_f32(path, self.meta.volume_shape, &self.meta.affine, &volume)
    }
}

impl RunSet {
    fn write_grayordinate_map(&self, g: &Grayordinates, path: &Path, values: &[f32]) -> Result<()> {
        let name = path
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let stem = fmriprep::nifti_stem(&name).unwrap_or(&name);
        let (models, volume) = match self.source_models.get() {
            Some(read) => read,
            None => {
                let read = brainrecon_formats::cifti::read_brain_models(&g.source)?;
                self.source_models.get_or_init(|| read)
            }
        };
        let n_gray: usize = models.iter().map(|m| m.index_count).sum();
        let mut full = vec![f32::NAN; n_gray];
        for (&[c, _, _], &v) in self.voxels.iter().zip(values) {
            if let Some(slot) = full.get_mut(c) {
                *slot = v;
            }
        }
        let target = path.with_file_name(format!("{stem}.dscalar.nii"));
        brainrecon_formats::cifti::write_dense_scalars(
            &target,
            &[stem.to_string()],
            models,
            volume.as_ref(),
            &full,
        )
    }
}

/// Seconds covered by `n_trs` volumes, the length a per-second annotation must have.
pub fn seconds(n_trs: usize, tr: f64) -> usize {
    (n_trs as f64 * tr).round() as usize
}

fn check_meta(path: &Path, meta: &RunSetMeta) -> Result<()> {
    // Times become row indices (`as usize`): bounded as events' times are.
    let max = events::MAX_SECONDS;
    if !(meta.tr.is_finite() && meta.tr > 0.0 && meta.tr <= max) {
        return Err(DataError::invalid(
            path,
            "tr",
            format!("a positive number of seconds up to {max}"),
            meta.tr.to_string(),
        ));
    }
    if meta.n_voxels == 0 || meta.volume_shape.contains(&0) {
        return Err(DataError::invalid(
            path,
            "n_voxels",
            "a non-empty voxel set on a non-empty grid",
            format!("{} voxels on {:?}", meta.n_voxels, meta.volume_shape),
        ));
    }
    let mut names: Vec<&str> = meta.runs.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(DataError::invalid(
            path,
            "runs",
            "distinct run names",
            format!("'{}' twice", w[0]),
        ));
    }
    if meta.runs.is_empty() {
        return Err(DataError::invalid(path, "runs", "at least one run", "none"));
    }
    for run in &meta.runs {
        crate::limits::VOLUMES.check(
            path,
            &format!("runs[{}].n_trs", run.name),
            run.n_trs as u64,
        )?;
        let start = run.start_seconds;
        if !(start.is_finite() && (0.0..=max).contains(&start)) {
            return Err(DataError::invalid(
                path,
                format!("runs[{}].start_seconds", run.name),
                format!("seconds from 0 to {max}"),
                start.to_string(),
            ));
        }
        let Some(c) = &run.confounds else { continue };
        if let Some(&row) = c.censored.iter().find(|&&r| r >= run.n_trs) {
            return Err(DataError::invalid(
                path,
                format!("runs[{}].confounds.censored", run.name),
                format!("rows below n_trs ({})", run.n_trs),
                row.to_string(),
            ));
        }
    }
    Ok(())
}

fn read_voxels(path: &Path, meta: &RunSetMeta) -> Result<Vec<[usize; 3]>> {
    let array = npy::read_i64(path)?;
    if array.shape != [meta.n_voxels, 3] {
        return Err(DataError::invalid(
            path,
            "shape",
            format!("[{}, 3] (n_voxels of runset.json)", meta.n_voxels),
            format!("{:?}", array.shape),
        ));
    }
    let shape = meta.volume_shape;
    array
        .data
        .chunks_exact(3)
        .enumerate()
        .map(|(row, c)| {
            let inside = (0..3).all(|a| c[a] >= 0 && (c[a] as usize) < shape[a]);
            if inside {
                Ok([c[0] as usize, c[1] as usize, c[2] as usize])
            } else {
                Err(DataError::invalid(
                    path,
                    format!("row {row}"),
                    format!("indices inside {shape:?}"),
                    format!("{c:?}"),
                ))
            }
        })
        .collect()
}
