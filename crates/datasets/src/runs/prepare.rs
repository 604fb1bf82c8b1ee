//! `bids prepare`: BOLD runs (generic BIDS, ds005531's preprocessed derivatives, or fMRIPrep's
//! output) → a run set.
//!
//! Per run: the first `--drop-seconds` are cut, each voxel is detrended (see [`detrend`]) and
//! z-scored over the run. fMRIPrep runs (see [`fmriprep`]) are not detrended: fMRIPrep's
//! confounds are regressed out and the voxels z-scored as nilearn does (see
//! [`fmriprep::confounds`]), censored rows written as zeros and listed per run.
//!
//! * **fMRIPrep's scrubbing and non-steady-state volumes** are read from the whole run's
//!   table; `--drop-seconds` (default 0) then cuts the first volumes as for other layouts.
//! * **fMRIPrep's mask**: the intersection of the runs' `desc-brain_mask` files unless
//!   `--mask` or `--mask-threshold` is given.
//!
//! * **Mask.** `--mask FILE.nii[.gz]`: voxels whose value is > 0 (same grid as the runs).
//!   `--mask-threshold F`: voxels whose mean intensity, over the kept volumes of all selected
//!   runs, exceeds F × the robust maximum of that mean image, its 98th percentile (the value at
//!   rank ⌊0.98·(n−1)⌋ of the sorted finite values; `numpy.percentile(..., 98,
//!   method="lower")`). Default: `--mask-threshold 0.2` for BIDS; ds005531's own
//!   `vset_100.mat` `tvoxels` for that layout.
//! * **Zero variance.** A voxel whose time course is flat in a run (spread ≤ 1e-6 of its root
//!   mean square) cannot be z-scored. Up to 1% of the voxels per run are written as zeros and
//!   counted in `preprocessing.zero_variance_voxels` (a warning); more is an error naming them,
//!   since it means the mask reaches outside the brain or the data are broken.
//! * **Bad input** fails before anything is written where it can be seen from headers (shapes,
//!   TRs, annotation lengths, masks); NaN voxels and too many flat voxels, found while reading,
//!   remove the partial output.
//! * **Reruns.** Work happens in `<out>.partial/`, each run's array landing there atomically;
//!   a rerun with the same settings resumes, skipping finished runs. `<out>` appears only when
//!   complete; rerunning over it with the same settings does nothing, with other settings is
//!   refused.

use super::{
    seconds, ConfoundsInfo, Grayordinates, Preprocessing, RunConfoundsInfo, RunInfo, RunSetMeta,
    SourceInfo, FORMAT, FORMAT_VERSION,
};
use crate::bids::{self, Entities};
use crate::ds005531::{self, DataDt};
use crate::error::{DataError, Result};
use crate::fmriprep::confounds::Cleaner;
use crate::fmriprep::{self, FmriprepOptions, RunConfounds};
use crate::nsd::{self, timeseries as nsd_timeseries};
use brainrecon_core::fs::{
    read_json, write_bytes_atomic, write_json_atomic, OutputDir, Refusals, Resume,
};
use brainrecon_core::geometry::{check_same_grid, Grid};
use brainrecon_core::progress::bar_aligned;
use brainrecon_core::signal::detrend::{self, Detrend, PolyBasis};
use brainrecon_formats::cifti::CiftiSeries;
use brainrecon_formats::nifti4d;
use brainrecon_formats::{nifti_io, npy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The default `--mask-threshold` of the BIDS layout.
pub const DEFAULT_MASK_THRESHOLD: f64 = 0.2;
/// Flat voxels a run may have, as a fraction of the voxels, before it is an error.
pub const MAX_ZERO_VARIANCE_FRACTION: f64 = 0.01;

/// The dataset layout the runs are read from (`bids prepare`'s `--layout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `sub-<S>/[ses-*/]func/*_bold.nii[.gz]` with sidecars and events.
    Bids,
    /// ds005531's `derivatives/preprocessed_data` (see [`ds005531`]).
    Ds005531,
    /// fMRIPrep's output folder (see [`fmriprep`]); run through [`prepare_fmriprep`].
    Fmriprep,
    /// NSD's `nsddata_timeseries` (see [`nsd_timeseries`]): 1.8-mm runs at 4/3 s, per-volume
    /// designs (their trials written as events), NSD's brain mask by default.
    Nsd,
}

/// How the voxels are chosen (`--mask`, `--mask-threshold`).
#[derive(Debug, Clone, PartialEq)]
pub enum MaskChoice {
    /// The layout's default (see the module documentation).
    Auto,
    /// `--mask FILE.nii[.gz]`: voxels whose value is > 0.
    File(PathBuf),
    /// `--mask-threshold F`: voxels whose mean exceeds F × the mean image's 98th percentile.
    Threshold(f64),
}

/// What `bids prepare` reads and writes and how it processes the runs.
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// The dataset root (or fMRIPrep's output folder).
    pub root: PathBuf,
    /// BIDS label (`01`, `S01`; a `sub-` prefix is accepted).
    pub subject: String,
    /// Task labels to include (`--task`), in the order the runs are written.
    pub tasks: Vec<String>,
    /// BIDS session labels to keep (empty: every session); a label ending in `*` keeps every
    /// session it begins (`perceptionNaturalImage*`).
    pub sessions: Vec<String>,
    /// The output folder (the run set).
    pub out: PathBuf,
    /// The dataset's layout.
    pub layout: Layout,
    /// How the voxels are chosen.
    pub mask: MaskChoice,
    /// `None`: `median:120` for BIDS, `none` for ds005531 (already detrended).
    pub detrend: Option<Detrend>,
    /// `None`: 0 for BIDS, 20 for ds005531 (its dummy scans).
    pub drop_seconds: Option<f64>,
    /// Whether to draw a progress bar.
    pub progress: bool,
    /// Keep the recordings in their units: no detrending, confound regression or z-scoring
    /// (what single-trial GLMs such as GLMsingle fit: they model drifts and confounds
    /// themselves and report betas in percent of each voxel's mean).
    pub keep_units: bool,
}

/// What [`prepare`] (or [`prepare_fmriprep`]) did.
#[derive(Debug, Clone, Serialize)]
pub struct PrepareReport {
    /// The run set's folder.
    pub out: PathBuf,
    /// Whether the folder already held this preparation (nothing was written).
    pub already_prepared: bool,
    /// Runs read and written by this call.
    pub runs_processed: usize,
    /// Runs already finished by an interrupted call, skipped.
    pub runs_resumed: usize,
    /// Flat voxel-runs written as zeros.
    pub zero_variance_voxels: usize,
    /// The run set's `runset.json`.
    pub meta: RunSetMeta,
}

impl MaskChoice {
    /// The mask `bids prepare`'s flags choose: a file, else a threshold, else the layout's.
    pub fn from_flags(file: Option<PathBuf>, threshold: Option<f64>) -> Self {
        match (file, threshold) {
            (Some(path), _) => MaskChoice::File(path),
            (None, Some(f)) => MaskChoice::Threshold(f),
            (None, None) => MaskChoice::Auto,
        }
    }
}

impl PrepareReport {
    /// The warning for standard error when flat voxel-runs were written as zeros.
    pub fn warning(&self) -> Option<String> {
        (self.zero_variance_voxels > 0).then(|| {
            format!(
                "warning: {} voxel-runs had zero variance after detrending and were written as zeros",
                self.zero_variance_voxels
            )
        })
    }

    /// The report as `bids prepare` prints it, one line each (the zero-variance warning
    /// aside, which goes to standard error).
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let (report, m) = (self, &self.meta);
        let mut text = String::new();
        if report.already_prepared {
            text.push_str(&crate::already_prepared_line(&report.out));
        } else {
            let trs: usize = m.runs.iter().map(|r| r.n_trs).sum();
            let _ = writeln!(
                text,
                "prepared sub-{} at {}: {} runs, {trs} volumes at TR {} s, {} voxels; {} runs read, {} resumed",
                m.subject,
                report.out.display(),
                m.runs.len(),
                m.tr,
                m.n_voxels,
                report.runs_processed,
                report.runs_resumed
            );
        }
        for run in m.runs.iter().filter(|r| r.dropped_end_volumes > 0) {
            let _ = writeln!(
                text,
                "  {}: {} volumes after the stimulus' end left out (rows up to its duration kept, as the dataset's loaders do)",
                run.name, run.dropped_end_volumes
            );
        }
        for run in m.runs.iter() {
            if let Some(c) = run.confounds.as_ref().filter(|c| !c.censored.is_empty()) {
                let _ = writeln!(
                    text,
                    "  {}: {} of {} rows censored (written as zeros, listed in runset.json)",
                    run.name,
                    c.censored.len(),
                    run.n_trs
                );
            }
        }
        text
    }
}

/// What a rerun must match to resume or to count as done.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Settings {
    layout: Layout,
    root: PathBuf,
    subject: String,
    tasks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sessions: Vec<String>,
    mask: String,
    detrend: Detrend,
    drop_seconds: f64,
    /// fMRIPrep: space, strategy, thresholds and raw dataset, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fmriprep: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    keep_units: bool,
}

struct RunPlan {
    path: PathBuf,
    name: String,
    task: String,
    session: Option<String>,
    run: Option<u32>,
    n_total: usize,
    /// Volumes `drop..n_end` are kept (`n_end` < `n_total` when the recording outlasts the
    /// stimulus, as ds005531's dataDT does).
    n_end: usize,
    annotations: BTreeMap<String, PathBuf>,
    events: Option<PathBuf>,
    /// fMRIPrep runs: their confounds table, read and checked.
    confounds: Option<RunConfounds>,
}

enum Voxels {
    /// Flat (x-fastest) indices, sorted.
    Fixed(Vec<usize>),
    Threshold(f64),
}

struct Plan {
    settings: Settings,
    runs: Vec<RunPlan>,
    tr: f64,
    shape: [usize; 3],
    affine: [[f64; 4]; 4],
    drop: usize,
    voxels: Voxels,
    /// fMRIPrep runs: the options and fMRIPrep's version.
    fmriprep: Option<(FmriprepOptions, String)>,
    /// CIFTI runs: the first run's grayordinates (every run must have the same).
    grayordinates: Option<Grayordinates>,
}

fn candidates(
    opts: &PrepareOptions,
    fm: Option<&FmriprepOptions>,
    subject: &str,
) -> Result<Vec<(PathBuf, Entities)>> {
    Ok(match opts.layout {
        Layout::Fmriprep => {
            let space = fm
                .map(|f| f.space.clone())
                .unwrap_or_else(fmriprep::Space::default_volume);
            fmriprep::bold_files(&opts.root, subject, &space)?
        }
        Layout::Bids => bids::bold_files(&opts.root, subject)?
            .into_iter()
            .map(|b| (b.path, b.entities))
            .collect(),
        Layout::Ds005531 => ds005531::mat_runs(&opts.root, subject)?
            .into_iter()
            .map(|r| (r.path, r.entities))
            .collect(),
        Layout::Nsd => nsd_timeseries::runs(&nsd_layout(opts, subject)?)?,
    })
}

fn nsd_layout(opts: &PrepareOptions, subject: &str) -> Result<nsd::Layout> {
    Ok(nsd::Layout::new(&opts.root, nsd::parse_subject(subject)?))
}

/// Whether a run of session `label` (None: no session) is kept by `sessions` (empty: all).
pub fn session_chosen(sessions: &[String], label: Option<&str>) -> bool {
    sessions.is_empty()
        || label.is_some_and(|label| {
            sessions.iter().any(|s| match s.strip_suffix('*') {
                Some(prefix) => label.starts_with(prefix),
                None => label == s,
            })
        })
}

/// The subject's runs of the chosen tasks (and sessions), in `--task` order, then session
/// and run.
fn select_runs(
    opts: &PrepareOptions,
    fm: Option<&FmriprepOptions>,
    subject: &str,
) -> Result<Vec<(PathBuf, Entities)>> {
    let all = candidates(opts, fm, subject)?;
    let task_of = |e: &Entities| bids::entity(e, "task").unwrap_or("").to_string();
    let mut chosen: Vec<(usize, (PathBuf, Entities))> = all
        .iter()
        .filter_map(|(p, e)| {
            let t = opts.tasks.iter().position(|t| *t == task_of(e))?;
            session_chosen(&opts.sessions, bids::entity(e, "ses"))
                .then(|| (t, (p.clone(), e.clone())))
        })
        .collect();
    if chosen.is_empty() && !opts.sessions.is_empty() {
        let mut found: Vec<String> = all
            .iter()
            .filter_map(|(_, e)| bids::entity(e, "ses").map(String::from))
            .collect();
        found.sort();
        found.dedup();
        return Err(DataError::invalid(
            opts.root.join(format!("sub-{subject}")),
            "ses",
            format!(
                "runs of task {} in session {}",
                opts.tasks.join(", "),
                opts.sessions.join(", ")
            ),
            format!("sessions {}", found.join(", ")),
        ));
    }
    if chosen.is_empty() {
        let mut found: Vec<String> = all.iter().map(|(_, e)| task_of(e)).collect();
        found.sort();
        found.dedup();
        let place = match opts.layout {
            Layout::Bids | Layout::Fmriprep => opts.root.join(format!("sub-{subject}")),
            Layout::Ds005531 => ds005531::preprocessed_dir(&opts.root, subject),
            Layout::Nsd => nsd_layout(opts, subject)?.timeseries_dir(),
        };
        return Err(DataError::invalid(
            place,
            "task",
            format!("runs of task {}", opts.tasks.join(", ")),
            if found.is_empty() {
                "no runs at all".to_string()
            } else {
                format!("runs of task {} only", found.join(", "))
            },
        ));
    }
    let run_number = |e: &Entities| bids::entity(e, "run").and_then(|r| r.parse::<u32>().ok());
    chosen.sort_by(|(ta, (pa, ea)), (tb, (pb, eb))| {
        (ta, bids::entity(ea, "ses"), run_number(ea), pa).cmp(&(
            tb,
            bids::entity(eb, "ses"),
            run_number(eb),
            pb,
        ))
    });
    let runs: Vec<(PathBuf, Entities)> = chosen.into_iter().map(|(_, r)| r).collect();
    for (i, (path, e)) in runs.iter().enumerate() {
        if let Some((other, _)) = runs[..i]
            .iter()
            .find(|(_, o)| bids::run_name(o) == bids::run_name(e))
        {
            return Err(DataError::invalid(
                path,
                "run",
                match opts.layout {
                    Layout::Fmriprep => "one file per run (fMRIPrep writes one per resolution: choose one with --space LABEL:res-N)",
                    _ => "one file per run",
                },
                format!("the same run as {}", other.display()),
            ));
        }
    }
    Ok(runs)
}

/// Length, grid and TR of one run, from headers only.
struct RunHeader {
    n_total: usize,
    /// Grid and affine from the BOLD header (BIDS); none for ds005531, whose files carry neither.
    shape: Option<([usize; 3], [[f64; 4]; 4])>,
    /// Voxels per volume.
    n_voxels: usize,
    tr: f64,
    /// CIFTI runs: their brain models.
    grayordinates: Option<Grayordinates>,
}

fn run_header(
    opts: &PrepareOptions,
    subject: &str,
    path: &Path,
    entities: &Entities,
) -> Result<RunHeader> {
    let func_dir = |raw: Option<&Path>| {
        raw.and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| opts.root.join(format!("sub-{subject}")).join("func"))
    };
    match opts.layout {
        Layout::Fmriprep if fmriprep::is_cifti_run(path) => cifti_header(path),
        Layout::Fmriprep => {
            let h = nifti4d::read_header(path)?;
            Ok(RunHeader {
                n_total: h.n_volumes,
                n_voxels: h.shape.iter().product(),
                shape: Some((h.shape, h.affine)),
                tr: fmriprep::repetition_time(path)?,
                grayordinates: None,
            })
        }
        Layout::Bids => {
            let h = nifti4d::read_header(path)?;
            let tr = bids::repetition_time(&opts.root, entities, &func_dir(Some(path)), path)?;
            Ok(RunHeader {
                n_total: h.n_volumes,
                n_voxels: h.shape.iter().product(),
                shape: Some((h.shape, h.affine)),
                tr,
                grayordinates: None,
            })
        }
        Layout::Nsd => {
            let h = nifti4d::read_header(path)?;
            Ok(RunHeader {
                n_total: h.n_volumes,
                n_voxels: h.shape.iter().product(),
                shape: Some((h.shape, h.affine)),
                tr: nsd_timeseries::TR_1PT8MM,
                grayordinates: None,
            })
        }
        Layout::Ds005531 => {
            let data = DataDt::open(path)?;
            let raw = ds005531::raw_bold(&opts.root, subject, entities)?;
            let tr = bids::repetition_time(&opts.root, entities, &func_dir(raw.as_deref()), path)?;
            Ok(RunHeader {
                n_total: data.n_times,
                n_voxels: data.n_voxels,
                shape: None,
                tr,
                grayordinates: None,
            })
        }
    }
}

/// A CIFTI run: its grayordinates as a [n, 1, 1] grid with the identity affine (from its header
/// and XML; the data is read once, by `extract`).
fn cifti_header(path: &Path) -> Result<RunHeader> {
    let layout = brainrecon_formats::cifti::read_layout(path)?;
    let Some(series) = &layout.series else {
        return Err(DataError::invalid(
            path,
            "CIFTI XML MatrixIndicesMap",
            "a dense time series (CIFTI_INDEX_TYPE_SERIES)",
            "a label or scalar file",
        ));
    };
    let n = layout.n_grayordinates;
    let identity = std::array::from_fn(|r| std::array::from_fn(|c| f64::from(u8::from(r == c))));
    Ok(RunHeader {
        n_total: series.count,
        n_voxels: n,
        shape: Some(([n, 1, 1], identity)),
        tr: fmriprep::repetition_time(path)?,
        grayordinates: Some(Grayordinates::of(path, &layout.models)),
    })
}

fn check_annotations(path: &Path, lines: usize, n_total: usize, tr: f64, run: &Path) -> Result<()> {
    let expected = seconds(n_total, tr);
    if lines == expected {
        return Ok(());
    }
    let (by, what) = if lines > expected {
        (lines - expected, "longer")
    } else {
        (expected - lines, "shorter")
    };
    Err(DataError::invalid(
        path,
        "lines",
        format!(
            "{expected} lines, one per second of {} ({n_total} volumes at TR {tr} s)",
            run.display()
        ),
        format!("{lines} lines: {by} seconds {what} than the run"),
    ))
}

/// ds005531: the volumes up to the movie's end, whose length is the annotations' line count
/// (one line per second, dummy seconds included). As the authors' loaders do (rows 21 ..
/// duration of `dataInfo.mat`'s `samples`; drama2brain cuts `dataDT[:duration]`), rows past
/// the movie are left out; a dataDT shorter than the movie is refused.
fn movie_end(
    annotations: &BTreeMap<String, PathBuf>,
    h: &RunHeader,
    run: &Path,
    drop: usize,
) -> Result<usize> {
    let mut duration: Option<(usize, &PathBuf)> = None;
    for file in annotations.values() {
        let lines = bids::read_lines(file)?.len();
        match duration {
            Some((seconds, first)) if seconds != lines => {
                return Err(DataError::invalid(
                    file,
                    "lines",
                    format!(
                        "{seconds} lines (one per second of the movie), as {}",
                        first.display()
                    ),
                    lines.to_string(),
                ))
            }
            _ => duration = Some((lines, file)),
        }
    }
    let Some((seconds, file)) = duration else {
        return Ok(h.n_total);
    };
    let volumes = (seconds as f64 / h.tr).floor() as usize;
    if volumes > h.n_total {
        return Err(DataError::invalid(
            run,
            "dataDT",
            format!(
                "at least {volumes} rows, one per TR of the movie ({seconds} s: the lines of {})",
                file.display()
            ),
            format!("{} rows", h.n_total),
        ));
    }
    if volumes < drop + 2 {
        return Err(DataError::invalid(
            file,
            "lines",
            format!("more than the {drop} dropped seconds plus one"),
            seconds.to_string(),
        ));
    }
    Ok(volumes)
}

fn grid_of_ds005531(
    opts: &PrepareOptions,
    subject: &str,
    first: &(PathBuf, Entities),
    n_voxels: usize,
) -> Result<([usize; 3], [[f64; 4]; 4])> {
    let source = match &opts.mask {
        MaskChoice::File(p) => p.clone(),
        _ => ds005531::raw_bold(&opts.root, subject, &first.1)?.ok_or_else(|| DataError::Missing {
            path: opts.root.join(format!("sub-{subject}/func/sub-{subject}_{}_bold.nii.gz", bids::run_name(&first.1))),
            what: "the raw BOLD run (its header gives the grid and affine of the preprocessed data), or pass --mask FILE.nii.gz on that grid".into(),
        })?,
    };
    let h = nifti4d::read_header(&source)?;
    let grid: usize = h.shape.iter().product();
    if grid != n_voxels {
        return Err(DataError::invalid(
            &first.0,
            "dataDT",
            format!(
                "{grid} voxels per volume, the {:?} grid of {}",
                h.shape,
                source.display()
            ),
            format!("{n_voxels} voxels"),
        ));
    }
    Ok((h.shape, h.affine))
}

/// The voxels of a label or mask volume on the grid `shape` whose value is > 0 (flat,
/// x-fastest indices, sorted); another grid is an error naming the file.
pub fn mask_from_file(path: &Path, runs: Grid) -> Result<Vec<usize>> {
    let volume = nifti_io::read_volume(path)?;
    check_same_grid(
        Grid {
            path,
            shape: volume.shape,
            affine: &volume.affine,
        },
        runs,
    )?;
    let flat: Vec<usize> = (0..volume.values.len())
        .filter(|&i| volume.values[i].is_finite() && volume.values[i] > 0.0)
        .collect();
    if flat.is_empty() {
        return Err(DataError::invalid(
            path,
            "values",
            "at least one voxel > 0",
            "none",
        ));
    }
    Ok(flat)
}

/// Runs must agree on TR, grid and voxel count.
fn check_consistent(selected: &[(PathBuf, Entities)], headers: &[RunHeader]) -> Result<()> {
    let (first_path, first) = (&selected[0].0, &headers[0]);
    for ((path, _), h) in selected.iter().zip(headers).skip(1) {
        if (h.tr - first.tr).abs() > 1e-6 * first.tr {
            return Err(DataError::invalid(
                path,
                "RepetitionTime",
                format!("{} s, as {}", first.tr, first_path.display()),
                format!("{} s", h.tr),
            ));
        }
        if let (Some((a, a_affine)), Some((b, b_affine))) = (&first.shape, &h.shape) {
            check_same_grid(
                Grid {
                    path,
                    shape: *b,
                    affine: b_affine,
                },
                Grid {
                    path: first_path,
                    shape: *a,
                    affine: a_affine,
                },
            )?;
        }
        if let (Some(a), Some(b)) = (&first.grayordinates, &h.grayordinates) {
            if a.models != b.models {
                return Err(DataError::invalid(
                    path,
                    "BrainModel",
                    format!("the brain models of {}", first_path.display()),
                    "other structures or counts",
                ));
            }
        }
        if h.n_voxels != first.n_voxels {
            return Err(DataError::invalid(
                path,
                "voxels",
                format!(
                    "{} voxels per volume, as {}",
                    first.n_voxels,
                    first_path.display()
                ),
                h.n_voxels.to_string(),
            ));
        }
    }
    Ok(())
}

/// `--drop-seconds` as whole volumes.
fn dropped_volumes(seconds: f64, tr: f64) -> Result<usize> {
    let volumes = (seconds / tr).round();
    if seconds.is_nan() || seconds < 0.0 || (volumes * tr - seconds).abs() > 1e-6 {
        return Err(DataError::Usage(format!(
            "--drop-seconds: expected a multiple of the TR ({tr} s) ≥ 0, found {seconds}"
        )));
    }
    Ok(volumes as usize)
}

/// The dataset a run's events and annotations come from: the BIDS root, or for fMRIPrep the
/// raw dataset (`--bids-root`), if given.
fn side_root<'a>(opts: &'a PrepareOptions, fm: Option<&'a FmriprepOptions>) -> Option<&'a Path> {
    match opts.layout {
        Layout::Fmriprep => fm.and_then(|f| f.raw_root.as_deref()),
        Layout::Nsd => None,
        _ => Some(&opts.root),
    }
}

/// A run's events: beside the run (BIDS), beside its raw run (ds005531), or in the raw
/// dataset's `func/` folder (fMRIPrep).
fn run_events(
    opts: &PrepareOptions,
    fm: Option<&FmriprepOptions>,
    subject: &str,
    path: &Path,
    entities: &Entities,
) -> Result<Option<PathBuf>> {
    match opts.layout {
        Layout::Bids => bids::events_file(
            &opts.root,
            entities,
            path.parent().unwrap_or(Path::new(".")),
        ),
        Layout::Ds005531 => match ds005531::raw_bold(&opts.root, subject, entities)? {
            Some(raw) => {
                bids::events_file(&opts.root, entities, raw.parent().unwrap_or(Path::new(".")))
            }
            None => Ok(None),
        },
        Layout::Fmriprep => match side_root(opts, fm) {
            Some(raw) => {
                let mut dir = raw.join(format!("sub-{subject}"));
                if let Some(ses) = bids::entity(entities, "ses") {
                    dir = dir.join(format!("ses-{ses}"));
                }
                bids::events_file(raw, entities, &dir.join("func"))
            }
            None => Ok(None),
        },
        Layout::Nsd => {
            let part = |key| bids::entity(entities, key).unwrap_or_default();
            Ok(Some(
                nsd_layout(opts, subject)?.design(part("ses"), part("run")),
            ))
        }
    }
}

/// One run's plan: its length checked against the dropped volumes and its annotations.
fn run_plan(
    opts: &PrepareOptions,
    fm: Option<&FmriprepOptions>,
    subject: &str,
    (path, entities): &(PathBuf, Entities),
    h: &RunHeader,
    drop_seconds: f64,
    drop: usize,
) -> Result<RunPlan> {
    if h.n_total < drop + 2 {
        return Err(DataError::invalid(
            path,
            "volumes",
            format!("more than the {drop} dropped volumes plus one"),
            h.n_total.to_string(),
        ));
    }
    let task = bids::entity(entities, "task")
        .unwrap_or_default()
        .to_string();
    let run = bids::entity(entities, "run").and_then(|r| r.parse::<u32>().ok());
    let annotations = match side_root(opts, fm) {
        Some(root) => bids::annotation_files(root, &task, run)?,
        None => BTreeMap::new(),
    };
    if !annotations.is_empty() && drop_seconds.fract() != 0.0 {
        return Err(DataError::Usage(format!("--drop-seconds: annotations are per second, so whole seconds only (found {drop_seconds})")));
    }
    let n_end = match opts.layout {
        Layout::Bids | Layout::Fmriprep => {
            for file in annotations.values() {
                check_annotations(file, bids::read_lines(file)?.len(), h.n_total, h.tr, path)?;
            }
            h.n_total
        }
        Layout::Ds005531 if annotations.is_empty() => {
            // Without them the movie's end is unknown: the volumes after it would be kept and
            // a band's rows would not match (the failure then named only a row count).
            let root = side_root(opts, fm).unwrap_or(&opts.root);
            return Err(DataError::Missing {
                path: root.join("derivatives/annotation").join(format!(
                    "{task}_run-{:02}_<kind>_each1sec.txt",
                    run.unwrap_or(1)
                )),
                what: format!(
                    "the annotations of {} (their lines give the movie's length, and so which volumes to keep; download derivatives/annotation, or prepare with --layout bids to keep every volume)",
                    path.display()
                ),
            });
        }
        Layout::Ds005531 => movie_end(&annotations, h, path, drop)?,
        Layout::Nsd => h.n_total,
    };
    let confounds = match (opts.layout, fm) {
        (Layout::Fmriprep, Some(f)) => {
            let file = fmriprep::confounds_file(path, entities)?;
            Some(RunConfounds::read(&file, path, h.n_total, &f.strategy)?)
        }
        _ => None,
    };
    let events = run_events(opts, fm, subject, path, entities)?;
    if let (Layout::Nsd, Some(design)) = (opts.layout, &events) {
        nsd_timeseries::read_design(design, h.n_total)?;
    }
    Ok(RunPlan {
        path: path.clone(),
        name: bids::run_name(entities),
        task,
        session: bids::entity(entities, "ses").map(str::to_string),
        run,
        n_total: h.n_total,
        n_end,
        annotations,
        events,
        confounds,
    })
}

fn canonical(path: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(path).map_err(|e| DataError::io(path, e))
}

/// Voxels inside every run's fMRIPrep brain mask (flat indices, sorted).
fn brain_mask_intersection(selected: &[(PathBuf, Entities)], runs: Grid) -> Result<Vec<usize>> {
    let mut common: Option<Vec<usize>> = None;
    for (bold, _) in selected {
        let file = fmriprep::brain_mask(bold);
        if !file.is_file() {
            return Err(DataError::Missing {
                path: file,
                what: format!("fMRIPrep's brain mask of {} (the default mask), or pass --mask / --mask-threshold", bold.display()),
            });
        }
        let flat = mask_from_file(&file, runs)?;
        common = Some(match common {
            None => flat,
            Some(c) => c
                .into_iter()
                .filter(|v| flat.binary_search(v).is_ok())
                .collect(),
        });
    }
    let common = common.unwrap_or_default();
    if common.is_empty() {
        return Err(DataError::invalid(
            fmriprep::brain_mask(&selected[0].0),
            "values",
            "brain masks that overlap across the runs",
            "no voxel inside all of them: pass --mask",
        ));
    }
    Ok(common)
}

/// The voxel set and how `runset.json` describes it.
fn choose_voxels(
    opts: &PrepareOptions,
    subject: &str,
    selected: &[(PathBuf, Entities)],
    runs: Grid,
    n_voxels: usize,
) -> Result<(Voxels, String)> {
    let threshold = |f: f64| {
        if f.is_nan() || f <= 0.0 || f >= 1.0 {
            return Err(DataError::Usage(format!(
                "--mask-threshold: expected a fraction between 0 and 1, found {f}"
            )));
        }
        Ok((Voxels::Threshold(f), format!("threshold {f}: mean intensity over the kept volumes > {f} × the 98th percentile of the mean image")))
    };
    match (&opts.mask, opts.layout) {
        (MaskChoice::File(p), _) => Ok((
            Voxels::Fixed(mask_from_file(p, runs)?),
            format!("file {} (voxels > 0)", canonical(p)?.display()),
        )),
        (MaskChoice::Threshold(f), _) => threshold(*f),
        (MaskChoice::Auto, Layout::Bids) => threshold(DEFAULT_MASK_THRESHOLD),
        (MaskChoice::Auto, Layout::Fmriprep) if fmriprep::is_cifti_run(&selected[0].0) => Ok((
            Voxels::Fixed((0..n_voxels).collect()),
            "every grayordinate of the CIFTI runs (fMRIPrep writes no mask for them)".into(),
        )),
        (MaskChoice::Auto, Layout::Fmriprep) => Ok((
            Voxels::Fixed(brain_mask_intersection(selected, runs)?),
            format!(
                "intersection of fMRIPrep's brain masks (desc-brain_mask, voxels > 0) of the {} runs",
                selected.len()
            ),
        )),
        (MaskChoice::Auto, Layout::Nsd) => {
            let file = nsd_layout(opts, subject)?.brain_mask();
            Ok((
                Voxels::Fixed(mask_from_file(&file, runs)?),
                format!("NSD's brain mask {} (voxels > 0)", canonical(&file)?.display()),
            ))
        }
        (MaskChoice::Auto, Layout::Ds005531) => {
            let vset = ds005531::preprocessed_dir(&opts.root, subject).join("vset_100.mat");
            Ok((
                Voxels::Fixed(ds005531::read_tvoxels(&vset, n_voxels)?),
                format!("tvoxels of {}", canonical(&vset)?.display()),
            ))
        }
    }
}

/// Option combinations refused before anything is read; for fMRIPrep, its version.
fn check_options(opts: &PrepareOptions, fm: Option<&FmriprepOptions>) -> Result<Option<String>> {
    if opts.tasks.is_empty() {
        return Err(DataError::Usage("--task: name at least one task".into()));
    }
    if !opts.root.is_dir() {
        return Err(DataError::Missing {
            path: opts.root.clone(),
            what: "the dataset's root folder".into(),
        });
    }
    if let (Layout::Ds005531, MaskChoice::Threshold(_)) = (opts.layout, &opts.mask) {
        return Err(DataError::Usage("--mask-threshold: ds005531's runs are preprocessed (no intensities to threshold); use its tvoxels (the default) or --mask".into()));
    }
    if opts.layout != Layout::Fmriprep {
        return Ok(None);
    }
    if fm.is_some_and(|f| f.space.is_cifti()) && opts.mask != MaskChoice::Auto {
        return Err(DataError::Usage("--mask / --mask-threshold: CIFTI runs (--space fsLR) are grayordinates, not a volume: every grayordinate is kept".into()));
    }
    if opts.detrend.is_some_and(|d| d != Detrend::None) {
        return Err(DataError::Usage("--detrend: fMRIPrep runs are cleaned as nilearn does, without detrending; remove slow drifts with high_pass in --confounds (fMRIPrep's cosine regressors)".into()));
    }
    if let Some(raw) = fm.and_then(|f| f.raw_root.as_ref()) {
        if !raw.is_dir() {
            return Err(DataError::Missing {
                path: raw.clone(),
                what: "the raw BIDS dataset's root folder (--bids-root, for events)".into(),
            });
        }
    }
    fmriprep::generated_by(&opts.root).map(Some)
}

/// What `runset.json` and the resume check record of the fMRIPrep options.
fn fmriprep_label(fm: &FmriprepOptions) -> Result<String> {
    let raw = match &fm.raw_root {
        Some(r) => canonical(r)?.display().to_string(),
        None => "none".into(),
    };
    let scrub = fm.strategy.scrub.map_or(String::new(), |s| {
        format!(" fd>{} std_dvars>{}", s.fd_threshold, s.std_dvars_threshold)
    });
    Ok(format!(
        "space {} confounds {}{scrub} raw {raw}",
        fm.space.label(),
        fm.strategy.label()
    ))
}

fn plan(opts: &PrepareOptions, fm: Option<&FmriprepOptions>) -> Result<Plan> {
    let subject = bids::subject_label(&opts.subject)?;
    let generated_by = check_options(opts, fm)?;
    let selected = select_runs(opts, fm, &subject)?;
    let headers = selected
        .iter()
        .map(|(p, e)| run_header(opts, &subject, p, e))
        .collect::<Result<Vec<_>>>()?;
    check_consistent(&selected, &headers)?;
    let first = &headers[0];
    let drop_seconds = opts.drop_seconds.unwrap_or(match opts.layout {
        Layout::Bids | Layout::Fmriprep | Layout::Nsd => 0.0,
        Layout::Ds005531 => ds005531::DUMMY_SECONDS,
    });
    let drop = dropped_volumes(drop_seconds, first.tr)?;
    let runs = selected
        .iter()
        .zip(&headers)
        .map(|(r, h)| run_plan(opts, fm, &subject, r, h, drop_seconds, drop))
        .collect::<Result<Vec<_>>>()?;
    let (shape, affine) = match first.shape {
        Some(grid) => grid,
        None => grid_of_ds005531(opts, &subject, &selected[0], first.n_voxels)?,
    };
    let runs_grid = Grid {
        path: &selected[0].0,
        shape,
        affine: &affine,
    };
    let (voxels, mask) = choose_voxels(opts, &subject, &selected, runs_grid, first.n_voxels)?;
    let fmriprep = match (fm, generated_by) {
        (Some(f), Some(g)) => Some((f.clone(), g)),
        _ => None,
    };
    let settings = Settings {
        layout: opts.layout,
        root: canonical(&opts.root)?,
        subject,
        tasks: opts.tasks.clone(),
        sessions: opts.sessions.clone(),
        mask,
        detrend: opts.detrend.unwrap_or(match opts.layout {
            Layout::Bids => Detrend::Median { seconds: 120.0 },
            Layout::Ds005531 | Layout::Fmriprep | Layout::Nsd => Detrend::None,
        }),
        drop_seconds,
        fmriprep: fmriprep
            .as_ref()
            .map(|(f, _)| fmriprep_label(f))
            .transpose()?,
        keep_units: opts.keep_units,
    };
    Ok(Plan {
        settings,
        runs,
        tr: first.tr,
        shape,
        affine,
        drop,
        voxels,
        fmriprep,
        grayordinates: first.grayordinates.clone(),
    })
}

fn coords(flat: usize, shape: [usize; 3]) -> [usize; 3] {
    [
        flat % shape[0],
        (flat / shape[0]) % shape[1],
        flat / (shape[0] * shape[1]),
    ]
}

/// The threshold mask: mean over the kept volumes of every run, compared with F × its
/// 98th percentile.
fn threshold_mask(plan: &Plan, fraction: f64, progress: bool) -> Result<(Vec<usize>, f64)> {
    let len: usize = plan.shape.iter().product();
    let mut sum = vec![0f64; len];
    let mut count = 0usize;
    let bar = bar_aligned(plan.runs.len() as u64, "mask (mean image)", progress, 24);
    for run in &plan.runs {
        nifti4d::for_each_volume(&run.path, |t, volume| {
            if t >= plan.drop {
                sum.iter_mut().zip(volume).for_each(|(s, v)| *s += v);
                count += 1;
            }
            Ok(())
        })?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mean: Vec<f64> = sum.iter().map(|s| s / count as f64).collect();
    let mut finite: Vec<f64> = mean.iter().copied().filter(|v| v.is_finite()).collect();
    finite.sort_by(f64::total_cmp);
    let robust_max = finite
        .get(((finite.len().max(1) - 1) as f64 * 0.98).floor() as usize)
        .copied()
        .unwrap_or(f64::NAN);
    let flat: Vec<usize> = (0..len)
        .filter(|&i| mean[i].is_finite() && mean[i] > fraction * robust_max)
        .collect();
    if flat.is_empty() {
        return Err(DataError::invalid(
            &plan.runs[0].path,
            "mask",
            format!("voxels whose mean intensity exceeds {fraction} × {robust_max} (the 98th percentile)"),
            "none: lower --mask-threshold or pass --mask",
        ));
    }
    Ok((flat, robust_max))
}

/// Voxel-major (n_voxels × n_kept) time courses of one run's mask voxels.
fn extract(plan: &Plan, run: &RunPlan, flat: &[usize]) -> Result<Vec<f64>> {
    let n = run.n_end - plan.drop;
    let mut m = vec![0f64; flat.len() * n];
    match plan.settings.layout {
        Layout::Fmriprep if plan.grayordinates.is_some() => {
            let series = CiftiSeries::read(&run.path)?;
            let (n_gray, data) = (series.n_grayordinates(), series.data());
            for t in plan.drop..run.n_end {
                let row = &data[t * n_gray..(t + 1) * n_gray];
                for (v, &f) in flat.iter().enumerate() {
                    m[v * n + t - plan.drop] = f64::from(row[f]);
                }
            }
        }
        Layout::Bids | Layout::Fmriprep | Layout::Nsd => {
            nifti4d::for_each_volume(&run.path, |t, volume| {
                if t >= plan.drop && t < run.n_end {
                    for (v, &f) in flat.iter().enumerate() {
                        m[v * n + t - plan.drop] = volume[f];
                    }
                }
                Ok(())
            })?;
        }
        Layout::Ds005531 => {
            let data = DataDt::open(&run.path)?;
            let block = (1usize << 23).div_ceil(data.n_voxels).max(1);
            let mut t = plan.drop;
            while t < run.n_end {
                let count = block.min(run.n_end - t);
                let rows = data.rows(t, count)?;
                for r in 0..count {
                    let row = &rows[r * data.n_voxels..(r + 1) * data.n_voxels];
                    for (v, &f) in flat.iter().enumerate() {
                        m[v * n + t + r - plan.drop] = row[f];
                    }
                }
                t += count;
            }
        }
    }
    if let Some(bad) = m.iter().position(|v| !v.is_finite()) {
        let [i, j, k] = coords(flat[bad / n], plan.shape);
        return Err(DataError::invalid(
            &run.path,
            format!("voxel ({i}, {j}, {k}) at volume {}", bad % n + plan.drop),
            "finite values in every voxel of the mask",
            format!("{}", m[bad]),
        ));
    }
    Ok(m)
}

/// Applies `f` to every voxel (rows of `m`, `n` long) in place, on all cores. Returns the
/// voxels for which it returned false (flat: left as zeros).
fn each_voxel<F>(m: &mut [f64], n: usize, f: F) -> Vec<usize>
where
    F: Fn(&mut [f64]) -> bool + Sync,
{
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let n_voxels = m.len() / n;
    let per_thread = n_voxels.div_ceil(threads).max(1);
    let mut flat = Vec::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = m
            .chunks_mut(per_thread * n)
            .enumerate()
            .map(|(c, chunk)| {
                let f = &f;
                scope.spawn(move || {
                    let mut flat = Vec::new();
                    for (v, x) in chunk.chunks_exact_mut(n).enumerate() {
                        if !f(x) {
                            x.fill(0.0);
                            flat.push(c * per_thread + v);
                        }
                    }
                    flat
                })
            })
            .collect();
        for h in handles {
            flat.extend(h.join().expect("voxel worker panicked"));
        }
    });
    flat
}

/// Whether a voxel's series is constant (no variance to model).
fn is_flat(x: &[f64]) -> bool {
    x.iter().all(|&v| v == x[0])
}

/// Detrends and z-scores every voxel (rows of `m`, `n` long) in place, on all cores.
/// Returns the voxels that were flat (left as zeros).
fn detrend_and_zscore(m: &mut [f64], n: usize, method: Detrend, tr: f64) -> Vec<usize> {
    let basis = match method {
        Detrend::Poly { order } => Some(PolyBasis::new(n, order)),
        _ => None,
    };
    each_voxel(m, n, |x| {
        let scale = detrend::rms(x);
        detrend::detrend(x, method, tr, basis.as_ref());
        detrend::zscore(x, scale)
    })
}

/// The cleaner of an fMRIPrep run's kept rows (none for other layouts).
fn run_cleaner(plan: &Plan, run: &RunPlan) -> Option<Cleaner> {
    run.confounds
        .as_ref()
        .map(|c| c.cleaner(plan.drop, run.n_end))
}

fn write_run_array(path: &Path, m: &[f64], n: usize, n_voxels: usize) -> Result<()> {
    let mut writer = npy::Writer::<f32>::create(path, &[n, n_voxels])?;
    let mut row = vec![0f32; n_voxels];
    for t in 0..n {
        for (v, r) in row.iter_mut().enumerate() {
            *r = m[v * n + t] as f32;
        }
        writer.write(&row)?;
    }
    writer.finish()
}

fn censored_all(run: &RunPlan, cleaner: &Cleaner) -> DataError {
    let file = run
        .confounds
        .as_ref()
        .map_or(run.path.clone(), |c| c.file.clone());
    DataError::invalid(
        file,
        "censored volumes",
        "at least 2 volumes left after non-steady-state volumes and scrubbing",
        format!(
            "{} kept of the run's {}: raise --fd-threshold / --std-dvars-threshold or drop scrub",
            cleaner.kept.len(),
            run.n_end
        ),
    )
}

#[derive(Serialize, Deserialize)]
struct RunDone {
    zero_variance: usize,
}

/// Processes one run into `staging`, unless a finished copy is there. Returns (resumed, flat voxels).
fn process_run(
    plan: &Plan,
    run: &RunPlan,
    flat: &[usize],
    staging: &Path,
) -> Result<(bool, usize)> {
    let n = run.n_end - plan.drop;
    let data = staging.join(format!("runs/{}.npy", run.name));
    let done = staging.join(format!(".done/{}.json", run.name));
    if let (Ok(mapped), Ok(record)) = (npy::MappedF32::open(&data), read_json::<RunDone>(&done)) {
        if mapped.shape() == [n, flat.len()] {
            return Ok((true, record.zero_variance));
        }
    }
    let mut m = extract(plan, run, flat)?;
    let zero = match run_cleaner(plan, run).filter(|_| !plan.settings.keep_units) {
        Some(cleaner) => {
            if cleaner.kept.len() < 2 {
                return Err(censored_all(run, &cleaner));
            }
            each_voxel(&mut m, n, |x| cleaner.clean(x))
        }
        None if plan.settings.keep_units => each_voxel(&mut m, n, |x| !is_flat(x)),
        None => detrend_and_zscore(&mut m, n, plan.settings.detrend, plan.tr),
    };
    let allowed = (flat.len() as f64 * MAX_ZERO_VARIANCE_FRACTION).floor() as usize;
    if zero.len() > allowed {
        let named: Vec<String> = zero
            .iter()
            .take(10)
            .map(|&v| format!("{:?}", coords(flat[v], plan.shape)))
            .collect();
        return Err(DataError::invalid(
            &run.path,
            "voxels",
            format!("at most {allowed} voxels (1%) with zero variance after detrending"),
            format!(
                "{} flat voxels, e.g. {}: check the mask",
                zero.len(),
                named.join(", ")
            ),
        ));
    }
    write_run_array(&data, &m, n, flat.len())?;
    write_json_atomic(
        &done,
        &RunDone {
            zero_variance: zero.len(),
        },
    )?;
    Ok((false, zero.len()))
}

/// Copies a run's events verbatim and its annotations without the dropped seconds.
fn copy_side_files(plan: &Plan, run: &RunPlan, staging: &Path) -> Result<RunInfo> {
    let events = match &run.events {
        Some(path) => {
            let bytes = match plan.settings.layout {
                Layout::Nsd => {
                    let ids = nsd_timeseries::read_design(path, run.n_total)?;
                    nsd_timeseries::design_events(&ids, plan.tr).into_bytes()
                }
                _ => std::fs::read(path).map_err(|e| DataError::io(path, e))?,
            };
            let relative = format!("events/{}.tsv", run.name);
            write_bytes_atomic(&staging.join(&relative), &bytes)?;
            Some(relative)
        }
        None => None,
    };
    let drop_seconds = plan.settings.drop_seconds as usize;
    let mut annotations = BTreeMap::new();
    for (kind, path) in &run.annotations {
        let lines = bids::read_lines(path)?;
        let mut text = lines[drop_seconds.min(lines.len())..].join("\n");
        text.push('\n');
        let relative = format!("annotations/{}/{kind}.txt", run.name);
        write_bytes_atomic(&staging.join(&relative), text.as_bytes())?;
        annotations.insert(kind.clone(), relative);
    }
    Ok(RunInfo {
        name: run.name.clone(),
        task: run.task.clone(),
        session: run.session.clone(),
        run: run.run,
        n_trs: run.n_end - plan.drop,
        start_seconds: plan.settings.drop_seconds,
        dropped_end_volumes: run.n_total - run.n_end,
        data: format!("runs/{}.npy", run.name),
        events,
        events_source: run.events.clone(),
        annotations,
        source_file: run.path.clone(),
        confounds: run_confounds_info(plan, run),
    })
}

/// What `runset.json` lists of an fMRIPrep run's confounds.
fn run_confounds_info(plan: &Plan, run: &RunPlan) -> Option<RunConfoundsInfo> {
    let c = run.confounds.as_ref()?;
    let rank = run_cleaner(plan, run).map_or(0, |k| k.rank());
    let shift = |rows: &[usize]| -> Vec<usize> {
        rows.iter()
            .filter(|&&r| r >= plan.drop && r < run.n_end)
            .map(|r| r - plan.drop)
            .collect()
    };
    Some(RunConfoundsInfo {
        file: c.file.clone(),
        regressors: c.names.clone(),
        rank,
        censored: c.censored(plan.drop, run.n_end),
        non_steady_state: shift(&c.non_steady_state),
    })
}

#[derive(Serialize, Deserialize)]
struct MaskDone {
    robust_max: Option<f64>,
}

/// The mask's voxels (and the threshold's robust maximum): staged ones on resume, else
/// computed and staged.
fn staged_voxels(plan: &Plan, staging: &Path, progress: bool) -> Result<(Vec<usize>, Option<f64>)> {
    let path = staging.join("voxels.npy");
    let record = staging.join(".done/mask.json");
    if let (Ok(array), Ok(done)) = (npy::read_i64(&path), read_json::<MaskDone>(&record)) {
        let [x, y, _] = plan.shape;
        let flat: Vec<usize> = array
            .data
            .chunks_exact(3)
            .map(|c| c[0] as usize + x * (c[1] as usize + y * c[2] as usize))
            .collect();
        if array.shape.len() == 2 && array.shape[1] == 3 && !flat.is_empty() {
            return Ok((flat, done.robust_max));
        }
    }
    let (flat, robust_max) = match &plan.voxels {
        Voxels::Fixed(flat) => (flat.clone(), None),
        Voxels::Threshold(f) => {
            threshold_mask(plan, *f, progress).map(|(flat, m)| (flat, Some(m)))?
        }
    };
    let ijk: Vec<i32> = flat
        .iter()
        .flat_map(|&f| coords(f, plan.shape))
        .map(|c| c as i32)
        .collect();
    npy::write(&path, &[flat.len(), 3], &ijk)?;
    write_json_atomic(&record, &MaskDone { robust_max })?;
    Ok((flat, robust_max))
}

fn run_all(
    plan: &Plan,
    staging: &Path,
    progress: bool,
) -> Result<(usize, usize, usize, RunSetMeta)> {
    let (flat, robust_max) = staged_voxels(plan, staging, progress)?;
    let (mut processed, mut resumed, mut zero_total) = (0, 0, 0);
    let mut infos = Vec::new();
    let bar = bar_aligned(plan.runs.len() as u64, "runs", progress, 24);
    for run in &plan.runs {
        bar.set_message(run.name.clone());
        let (was_resumed, zero) = process_run(plan, run, &flat, staging)?;
        if was_resumed {
            resumed += 1;
        } else {
            processed += 1;
        }
        zero_total += zero;
        infos.push(copy_side_files(plan, run, staging)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let s = &plan.settings;
    let meta = RunSetMeta {
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        subject: s.subject.clone(),
        tr: plan.tr,
        n_voxels: flat.len(),
        volume_shape: plan.shape,
        affine: plan.affine,
        preprocessing: Preprocessing {
            detrend: s.detrend.label(),
            zscore: match (&plan.fmriprep, s.keep_units) {
                (_, true) => "none".into(),
                (Some(_), false) => "run_sample".into(),
                (None, false) => "run".into(),
            },
            drop_seconds: s.drop_seconds,
            mask: match robust_max {
                Some(m) => format!("{} (here {m})", s.mask),
                None => s.mask.clone(),
            },
            zero_variance_voxels: zero_total,
            confounds: plan.fmriprep.as_ref().map(confounds_info),
        },
        source: SourceInfo {
            layout: match s.layout {
                Layout::Bids => "bids".into(),
                Layout::Ds005531 => "ds005531".into(),
                Layout::Fmriprep => "fmriprep".into(),
                Layout::Nsd => "nsd".into(),
            },
            root: s.root.clone(),
            tasks: s.tasks.clone(),
        },
        runs: infos,
        grayordinates: plan.grayordinates.clone(),
    };
    write_json_atomic(&staging.join("runset.json"), &meta)?;
    Ok((processed, resumed, zero_total, meta))
}

fn confounds_info((fm, generated_by): &(FmriprepOptions, String)) -> ConfoundsInfo {
    let scrub = fm.strategy.scrub;
    ConfoundsInfo {
        strategy: fm.strategy.label(),
        fd_threshold: scrub.map(|s| s.fd_threshold),
        std_dvars_threshold: scrub.map(|s| s.std_dvars_threshold),
        reference: "nilearn 0.14 interfaces.fmriprep.load_confounds (non-steady-state volumes always censored) then signal.clean(detrend=False, standardize='zscore_sample', standardize_confounds=True): censor, standardize confounds, project them out by pivoted QR, z-score with the sample std, over the kept rows".into(),
        censored_rows: "zeros; listed per run in runs[].confounds.censored (leave them out of fits and scores)".into(),
        generated_by: generated_by.clone(),
        space: fm.space.label(),
    }
}

/// Runs `bids prepare` (see the module documentation). `Layout::Fmriprep` runs with
/// [`FmriprepOptions::default`].
pub fn prepare(opts: &PrepareOptions) -> Result<PrepareReport> {
    match opts.layout {
        Layout::Fmriprep => prepare_fmriprep(opts, &FmriprepOptions::default()),
        _ => prepare_plan(opts, plan(opts, None)?),
    }
}

/// Runs `bids prepare --fmriprep`: `opts.root` is fMRIPrep's output folder (the layout is
/// taken as [`Layout::Fmriprep`] whatever `opts.layout` says).
pub fn prepare_fmriprep(
    opts: &PrepareOptions,
    fmriprep: &FmriprepOptions,
) -> Result<PrepareReport> {
    let opts = PrepareOptions {
        layout: Layout::Fmriprep,
        ..opts.clone()
    };
    let plan = plan(&opts, Some(fmriprep))?;
    prepare_plan(&opts, plan)
}

fn prepare_plan(opts: &PrepareOptions, plan: Plan) -> Result<PrepareReport> {
    let refusals = Refusals {
        other_settings: [
            "a new directory, or a run set prepared with the same settings",
            "a run set prepared with other settings: choose another --out or remove it",
        ],
        not_empty: [
            "a new or empty directory",
            "a non-empty directory that is not a run set",
        ],
    };
    let staged = match OutputDir::resume_with(
        &opts.out,
        ".prepare-settings.json",
        "runset.json",
        &plan.settings,
        &refusals,
    )? {
        Resume::Finished(out) => {
            let meta: RunSetMeta = read_json(&out.join("runset.json"))?;
            return Ok(PrepareReport {
                out,
                already_prepared: true,
                runs_processed: 0,
                runs_resumed: 0,
                zero_variance_voxels: meta.preprocessing.zero_variance_voxels,
                meta,
            });
        }
        Resume::Resumed(staged) | Resume::Fresh(staged) => staged,
    };
    let (processed, resumed, zero, meta) = staged.run(|staging| {
        let done = run_all(&plan, staging, opts.progress)?;
        let _ = std::fs::remove_dir_all(staging.join(".done"));
        Ok::<_, DataError>(done)
    })?;
    Ok(PrepareReport {
        out: opts.out.clone(),
        already_prepared: false,
        runs_processed: processed,
        runs_resumed: resumed,
        zero_variance_voxels: zero,
        meta,
    })
}

#[cfg(test)]
mod tests {
    use super::session_chosen;

    #[test]
    fn sessions_are_chosen_by_label_or_prefix() {
        let chosen = |sessions: &[&str], label: Option<&str>| {
            let sessions: Vec<String> = sessions.iter().map(|s| s.to_string()).collect();
            session_chosen(&sessions, label)
        };
        assert!(chosen(&[], Some("perceptionArtificialImage01")));
        assert!(chosen(&[], None));
        let natural = ["perceptionNaturalImage*"];
        assert!(chosen(&natural, Some("perceptionNaturalImageTest01")));
        assert!(!chosen(&natural, Some("perceptionArtificialImage01")));
        assert!(
            !chosen(&natural, None),
            "a run without a session is left out"
        );
        assert!(chosen(&["02", "04"], Some("04")));
        assert!(!chosen(&["02"], Some("020")), "a label is matched whole");
    }
}
