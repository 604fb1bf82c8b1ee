//! fMRIPrep's derivatives folder (fMRIPrep 20.2 and later, 23/24 as tested):
//!
//! ```text
//! <dir>/dataset_description.json        GeneratedBy: [{Name: "fMRIPrep", Version}]
//! <dir>/sub-<S>/[ses-<X>/]func/
//!   sub-<S>_[ses-<X>_]task-<T>_[run-<N>_]space-<SPACE>_[res-<R>_]desc-preproc_bold.nii.gz
//!   …_desc-preproc_bold.json             RepetitionTime (else the NIfTI header's pixdim[4])
//!   …_space-<SPACE>_[res-<R>_]desc-brain_mask.nii.gz
//!   sub-<S>_[ses-<X>_]task-<T>_[run-<N>_]desc-confounds_timeseries.tsv (+ .json)
//! ```
//! Older fMRIPrep names the table `desc-confounds_regressors.tsv`; it is read too. fMRIPrep
//! 1.x (as BOLD5000 ships its derivatives) named runs `<run>_bold_space-<S>_preproc.nii.gz`
//! with `_bold_space-<S>_brainmask.nii.gz` and `_bold_confounds.tsv` (columns `X`, `RotX`,
//! `CSF`, `NonSteadyStateOutlier00`, …, read under today's names) and wrote no
//! dataset_description.json; those are read too. CIFTI outputs
//! (`sub-<S>_[ses-<X>_]task-<T>_[run-<N>_]space-fsLR_den-91k_bold.dtseries.nii` + `_bold.json`,
//! `--space fsLR` or `fsLR:den-170k`) are read as grayordinates (surface vertices of each
//! hemisphere, then subcortical voxels: every one of them, there is no brain mask); GIFTI
//! surface outputs (`hemi-L_space-fsaverage_bold.func.gii`) are refused.

pub mod confounds;

use self::confounds::{Cleaner, Strategy};
use crate::bids::{self, Entities};
use crate::error::{DataError, Result};
use brainrecon_formats::events::Events;
use std::path::{Path, PathBuf};

/// `--space`'s default, fMRIPrep's default output space.
pub const DEFAULT_SPACE: &str = "MNI152NLin2009cAsym";
/// `--confounds`' default, nilearn's `load_confounds` default.
pub const DEFAULT_STRATEGY: &str = "motion:full,wm_csf:basic,high_pass";

/// Entities that name the output space and kind rather than the run.
const OUTPUT_ENTITIES: [&str; 5] = ["space", "res", "den", "desc", "cohort"];

/// `--space LABEL[:res-N]`: the volume space of the preprocessed runs; `fsLR[:den-D]`: the
/// CIFTI grayordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct Space {
    /// The `space-` label (`MNI152NLin2009cAsym`, `T1w`, `fsLR`).
    pub label: String,
    /// The `res-` entity (`2`), when asked for; none accepts a run of any resolution.
    pub res: Option<String>,
    /// CIFTI's density (`91k`, `170k`); none for volume spaces.
    pub den: Option<String>,
}

/// The label of fMRIPrep's CIFTI outputs.
pub const CIFTI_SPACE: &str = "fsLR";

impl Space {
    /// Parses `MNI152NLin2009cAsym`, `T1w`, `MNI152NLin2009cAsym:res-2`, `fsLR` (CIFTI at
    /// 91k grayordinates), `fsLR:den-170k`; refuses GIFTI surfaces.
    pub fn parse(text: &str) -> Result<Self> {
        if let Some(den) = cifti_density(text)? {
            return Ok(Space {
                label: CIFTI_SPACE.into(),
                res: None,
                den: Some(den),
            });
        }
        let (label, res) = match text.split_once(':') {
            Some((l, r)) => {
                let res = r
                    .strip_prefix("res-")
                    .filter(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric()));
                let Some(res) = res else {
                    return Err(DataError::Usage(format!("--space: expected LABEL or LABEL:res-N (e.g. MNI152NLin2009cAsym:res-2), found '{text}'")));
                };
                (l, Some(res.to_string()))
            }
            None => (text, None),
        };
        if label.is_empty() || !label.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(DataError::Usage(format!("--space: expected a BIDS space label such as MNI152NLin2009cAsym or T1w, found '{text}'")));
        }
        if label.starts_with("fsaverage") || label == "fsnative" {
            return Err(DataError::Usage(format!(
                "--space {label}: GIFTI surface outputs (*_hemi-L_space-{label}_bold.func.gii) are not read; choose a volume space such as MNI152NLin2009cAsym or T1w, or fsLR for fMRIPrep's CIFTI grayordinates"
            )));
        }
        Ok(Space {
            label: label.to_string(),
            res,
            den: None,
        })
    }

    /// Whether the runs are CIFTI grayordinates (`fsLR`).
    pub fn is_cifti(&self) -> bool {
        self.den.is_some()
    }

    /// [`DEFAULT_SPACE`].
    pub fn default_volume() -> Self {
        Space {
            label: DEFAULT_SPACE.into(),
            res: None,
            den: None,
        }
    }

    /// As file names carry it, after `space-`: `<label>[_res-<R>]`, `fsLR_den-<D>`.
    pub fn entities(&self) -> String {
        match (&self.res, &self.den) {
            (_, Some(d)) => format!("{}_den-{d}", self.label),
            (Some(r), None) => format!("{}_res-{r}", self.label),
            (None, None) => self.label.clone(),
        }
    }

    /// As `--space` takes it: `<label>[:res-<R>]`, `fsLR:den-<D>`.
    pub fn label(&self) -> String {
        match (&self.res, &self.den) {
            (_, Some(d)) => format!("{}:den-{d}", self.label),
            (Some(r), None) => format!("{}:res-{r}", self.label),
            (None, None) => self.label.clone(),
        }
    }

    /// The file names of a run in this space (for messages).
    pub fn run_pattern(&self) -> String {
        match self.is_cifti() {
            true => format!("*_space-{}_bold.dtseries.nii", self.entities()),
            false => format!("*_space-{}_desc-preproc_bold.nii.gz", self.entities()),
        }
    }
}

/// `fsLR` → 91k, `fsLR:den-<D>` → D; none for other labels.
fn cifti_density(text: &str) -> Result<Option<String>> {
    let (label, rest) = text.split_once(':').unwrap_or((text, ""));
    if label != CIFTI_SPACE {
        return Ok(None);
    }
    if rest.is_empty() {
        return Ok(Some("91k".into()));
    }
    match rest.strip_prefix("den-") {
        Some(d) if !d.is_empty() && d.chars().all(|c| c.is_ascii_alphanumeric()) => {
            Ok(Some(d.to_string()))
        }
        _ => Err(DataError::Usage(format!(
            "--space: expected fsLR or fsLR:den-D (e.g. fsLR:den-170k), found '{text}'"
        ))),
    }
}

/// A CIFTI run's name without `.dtseries.nii`.
fn cifti_stem(name: &str) -> Option<&str> {
    name.strip_suffix(".dtseries.nii")
}

/// Whether a run file is a CIFTI dense time series.
pub fn is_cifti_run(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| cifti_stem(&n.to_string_lossy()).is_some())
}

/// What `bids prepare --fmriprep` adds to the common options.
#[derive(Debug, Clone, PartialEq)]
pub struct FmriprepOptions {
    /// The runs' space (`--space`).
    pub space: Space,
    /// The confounds regressed out (`--confounds`).
    pub strategy: Strategy,
    /// The raw BIDS dataset, for events and per-second annotations (optional).
    pub raw_root: Option<PathBuf>,
}

impl Default for FmriprepOptions {
    /// [`DEFAULT_SPACE`], [`DEFAULT_STRATEGY`], no raw dataset.
    fn default() -> Self {
        let strategy = Strategy::parse(
            DEFAULT_STRATEGY,
            confounds::DEFAULT_FD_THRESHOLD,
            confounds::DEFAULT_STD_DVARS_THRESHOLD,
        )
        .unwrap_or_default();
        FmriprepOptions {
            space: Space::default_volume(),
            strategy,
            raw_root: None,
        }
    }
}

impl FmriprepOptions {
    /// The options as `bids prepare`'s flags name them (`None`: the default): `confound_list` as
    /// [`Strategy::parse`] reads it, `space` as [`Space::parse`]. The thresholds apply to
    /// scrubbing only; giving one without `scrub` in `confounds` is refused.
    pub fn from_flags(
        space: Option<&str>,
        confound_list: Option<&str>,
        fd_threshold: Option<f64>,
        std_dvars_threshold: Option<f64>,
        raw_root: Option<PathBuf>,
    ) -> Result<Self> {
        let strategy = Strategy::parse(
            confound_list.unwrap_or(DEFAULT_STRATEGY),
            fd_threshold.unwrap_or(confounds::DEFAULT_FD_THRESHOLD),
            std_dvars_threshold.unwrap_or(confounds::DEFAULT_STD_DVARS_THRESHOLD),
        )?;
        if strategy.scrub.is_none() && (fd_threshold.is_some() || std_dvars_threshold.is_some()) {
            return Err(DataError::Usage(format!(
                "--fd-threshold / --std-dvars-threshold: they apply to scrub, which --confounds ('{}') does not name; add scrub",
                strategy.label()
            )));
        }
        Ok(FmriprepOptions {
            space: Space::parse(space.unwrap_or(DEFAULT_SPACE))?,
            strategy,
            raw_root,
        })
    }
}

/// Checks `dataset_description.json` names fMRIPrep; returns `fMRIPrep <version>`.
pub fn generated_by(root: &Path) -> Result<String> {
    let path = root.join("dataset_description.json");
    if !path.is_file() && legacy_output(root).is_some() {
        return Ok("fMRIPrep 1.x (its file names; no dataset_description.json)".into());
    }
    if !path.is_file() {
        return Err(DataError::Missing {
            path,
            what: "fMRIPrep's dataset_description.json: --fmriprep takes fMRIPrep's output folder (the one holding sub-*/func/*_desc-preproc_bold.nii.gz)".into(),
        });
    }
    let json: serde_json::Value = brainrecon_core::fs::read_json(&path)?;
    let mut names = Vec::new();
    let entries = json
        .get("GeneratedBy")
        .and_then(|g| g.as_array())
        .cloned()
        .unwrap_or_default();
    for entry in entries.iter().chain(json.get("PipelineDescription")) {
        let name = entry.get("Name").and_then(|n| n.as_str()).unwrap_or("");
        let version = entry.get("Version").and_then(|n| n.as_str()).unwrap_or("?");
        if name.eq_ignore_ascii_case("fmriprep") {
            return Ok(format!("fMRIPrep {version}"));
        }
        names.push(name.to_string());
    }
    Err(DataError::invalid(
        path,
        "GeneratedBy",
        "an entry named fMRIPrep",
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        },
    ))
}

/// A run fMRIPrep 1.x named (`sub-*/[ses-*/]func/*_bold_space-<S>_preproc.nii.gz`), if the
/// folder holds those names instead of fMRIPrep 20's.
fn legacy_output(root: &Path) -> Option<PathBuf> {
    let is_legacy = |p: &PathBuf| {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        name.is_some_and(|n| n.contains("_bold_space-") && n.contains("_preproc.nii"))
    };
    let mut subjects: Vec<String> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_prefix("sub-")
                .map(String::from)
        })
        .collect();
    subjects.sort();
    subjects
        .iter()
        .flat_map(|subject| bids::func_dirs(root, subject).unwrap_or_default())
        .find_map(|dir| {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .ok()?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            files.sort();
            files.into_iter().find(is_legacy)
        })
}

/// fMRIPrep 1.x's name of a preprocessed run, `<run>_bold_space-<S>_preproc.nii[.gz]`: the
/// run's entities, the space label and `<run>` (ICA-AROMA's `variant-` outputs are not runs).
fn legacy_run(name: &str) -> Option<(Entities, String, String)> {
    let stem = nifti_stem(name)?.strip_suffix("_preproc")?;
    let (run, space) = stem.split_once("_bold_space-")?;
    if space.is_empty() || !space.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let (entities, suffix) = bids::parse_name(&format!("{run}_bold"))?;
    (suffix == "bold").then(|| (entities, space.to_string(), run.to_string()))
}

pub(super) fn nifti_stem(name: &str) -> Option<&str> {
    name.strip_suffix(".nii.gz")
        .or_else(|| name.strip_suffix(".nii"))
}

/// The run's entities without the output ones (`sub-01_task-movie_run-01`).
pub fn run_entities(entities: &Entities) -> Entities {
    entities
        .iter()
        .filter(|(k, _)| !OUTPUT_ENTITIES.contains(&k.as_str()))
        .cloned()
        .collect()
}

/// The subject's preprocessed BOLD runs in `space`: (file, run entities). A subject with
/// preprocessed runs in other spaces only is an error listing them.
pub fn bold_files(root: &Path, subject: &str, space: &Space) -> Result<Vec<(PathBuf, Entities)>> {
    let mut files = Vec::new();
    let mut other = Vec::new();
    for dir in bids::func_dirs(root, subject)? {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| DataError::io(&dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for path in entries {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let (entities, here) = if let Some((entities, label, _)) = legacy_run(&name) {
                let here = Space {
                    label,
                    res: None,
                    den: None,
                };
                (entities, here)
            } else if let Some(run) = cifti_run(&name) {
                run
            } else {
                let Some((entities, suffix)) = nifti_stem(&name).and_then(bids::parse_name) else {
                    continue;
                };
                if suffix != "bold" || bids::entity(&entities, "desc") != Some("preproc") {
                    continue;
                }
                let here = Space {
                    label: bids::entity(&entities, "space").unwrap_or("").to_string(),
                    res: bids::entity(&entities, "res").map(str::to_string),
                    den: None,
                };
                (entities, here)
            };
            let matches = here.label == space.label
                && here.den == space.den
                && (space.res.is_none() || here.res == space.res);
            if matches && bids::entity(&entities, "sub") == Some(subject) {
                files.push((path, run_entities(&entities)));
            } else {
                other.push(here.label());
            }
        }
    }
    if files.is_empty() && !other.is_empty() {
        other.sort();
        other.dedup();
        return Err(DataError::invalid(
            root.join(format!("sub-{subject}")),
            "space",
            format!("{} runs (--space {})", space.run_pattern(), space.label()),
            format!("runs in space {} only", other.join(", ")),
        ));
    }
    Ok(files)
}

/// A CIFTI run's entities and space (`…_space-fsLR_den-91k_bold.dtseries.nii`).
fn cifti_run(name: &str) -> Option<(Entities, Space)> {
    let (entities, suffix) = bids::parse_name(cifti_stem(name)?)?;
    let den = bids::entity(&entities, "den")?.to_string();
    let space = Space {
        label: bids::entity(&entities, "space")?.to_string(),
        res: None,
        den: Some(den),
    };
    (suffix == "bold").then_some((entities, space))
}

/// Replaces the `_desc-preproc_bold.nii[.gz]` ending of a run's file name.
fn sibling(bold: &Path, ending: &str) -> PathBuf {
    let name = bold
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = nifti_stem(&name).unwrap_or(&name);
    let base = stem.strip_suffix("_desc-preproc_bold").unwrap_or(stem);
    bold.with_file_name(format!("{base}{ending}"))
}

/// fMRIPrep's brain mask of a run (`…_desc-brain_mask.nii.gz`; 1.x:
/// `<run>_bold_space-<S>_brainmask.nii.gz`).
pub fn brain_mask(bold: &Path) -> PathBuf {
    match legacy_of(bold) {
        Some((_, space, run)) => {
            bold.with_file_name(format!("{run}_bold_space-{space}_brainmask.nii.gz"))
        }
        None => sibling(bold, "_desc-brain_mask.nii.gz"),
    }
}

fn legacy_of(bold: &Path) -> Option<(Entities, String, String)> {
    legacy_run(&bold.file_name()?.to_string_lossy())
}

/// The header's TR in seconds: `pixdim[4]` in the unit `xyzt_units` names (seconds when it
/// names none); none when not positive.
fn header_tr(bold: &Path) -> Result<Option<f64>> {
    let h = brainrecon_formats::nifti_io::checked_header(bold)?;
    let scale = match h.xyzt_units & 0x38 {
        16 => 1e-3,
        24 => 1e-6,
        _ => 1.0,
    };
    let tr = h.pixdim[4] as f64 * scale;
    Ok((tr.is_finite() && tr > 0.0).then_some(tr))
}

/// `RepetitionTime` from the run's own sidecar, else the header's `pixdim[4]` (CIFTI: the
/// series step).
pub fn repetition_time(bold: &Path) -> Result<f64> {
    let name = bold
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sidecar = match cifti_stem(&name) {
        Some(stem) => bold.with_file_name(format!("{stem}.json")),
        None => sibling(bold, "_desc-preproc_bold.json"),
    };
    if sidecar.is_file() {
        let json: serde_json::Value = brainrecon_core::fs::read_json(&sidecar)?;
        if let Some(value) = json.get("RepetitionTime") {
            return value
                .as_f64()
                .filter(|t| t.is_finite() && *t > 0.0)
                .ok_or_else(|| {
                    DataError::invalid(
                        &sidecar,
                        "RepetitionTime",
                        "a positive number of seconds",
                        value.to_string(),
                    )
                });
        }
    }
    let from_file = match cifti_stem(&name) {
        Some(_) => brainrecon_formats::cifti::read_layout(bold)?.tr_seconds(),
        None => header_tr(bold)?,
    };
    from_file.ok_or_else(|| {
        DataError::invalid(
            bold,
            "RepetitionTime",
            format!(
                "a RepetitionTime in {} or a TR in the header's pixdim[4]",
                sidecar.display()
            ),
            "neither",
        )
    })
}

/// The run's confounds table: `desc-confounds_timeseries.tsv`, else the older
/// `desc-confounds_regressors.tsv`, beside the run.
pub fn confounds_file(bold: &Path, run: &Entities) -> Result<PathBuf> {
    let stem: Vec<String> = run.iter().map(|(k, v)| format!("{k}-{v}")).collect();
    let stem = stem.join("_");
    let current = bold.with_file_name(format!("{stem}_desc-confounds_timeseries.tsv"));
    let older = bold.with_file_name(format!("{stem}_desc-confounds_regressors.tsv"));
    let first = bold.with_file_name(format!("{stem}_bold_confounds.tsv"));
    if current.is_file() {
        Ok(current)
    } else if older.is_file() {
        Ok(older)
    } else if legacy_of(bold).is_some() && first.is_file() {
        Ok(first)
    } else {
        Err(DataError::Missing {
            path: current,
            what: format!("fMRIPrep's confounds table of {} (its non-steady-state volumes and the --confounds regressors come from it)", bold.display()),
        })
    }
}

/// A run's confounds table with its columns under today's names: fMRIPrep 1.x's
/// `_bold_confounds.tsv` is renamed (`X` → `trans_x`, `RotX` → `rot_x`, `CSF` → `csf`,
/// `aCompCor00` → `a_comp_cor_00`, `NonSteadyStateOutlier00` → `non_steady_state_outlier00`, …).
pub fn read_confounds(file: &Path) -> Result<Events> {
    let table = Events::read(file)?;
    let legacy = file
        .file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with("_bold_confounds.tsv"));
    Ok(if legacy {
        table.renamed(legacy_confound_name)
    } else {
        table
    })
}

/// Today's name of an fMRIPrep 1.x confound column, if it was renamed.
fn legacy_confound_name(name: &str) -> Option<String> {
    let fixed = match name {
        "X" => "trans_x",
        "Y" => "trans_y",
        "Z" => "trans_z",
        "RotX" => "rot_x",
        "RotY" => "rot_y",
        "RotZ" => "rot_z",
        "CSF" => "csf",
        "WhiteMatter" => "white_matter",
        "GlobalSignal" => "global_signal",
        "stdDVARS" => "std_dvars",
        "non-stdDVARS" => "dvars",
        "FramewiseDisplacement" => "framewise_displacement",
        _ => "",
    };
    if !fixed.is_empty() {
        return Some(fixed.to_string());
    }
    let numbered = [
        ("tCompCor", "t_comp_cor_"),
        ("aCompCor", "a_comp_cor_"),
        ("Cosine", "cosine"),
        ("NonSteadyStateOutlier", "non_steady_state_outlier"),
        ("AROMAAggrComp", "aroma_motion_"),
    ];
    numbered.iter().find_map(|(old, new)| {
        let number = name.strip_prefix(old)?;
        (!number.is_empty() && number.chars().all(|c| c.is_ascii_digit()))
            .then(|| format!("{new}{number}"))
    })
}

/// One run's confounds, read and checked: the regressors over all rows and the censored rows.
#[derive(Debug, Clone)]
pub struct RunConfounds {
    /// The confounds table read (`_desc-confounds_timeseries.tsv`, or the older `_regressors.tsv`).
    pub file: PathBuf,
    /// The selected regressors' column names, in `regressors`' order.
    pub names: Vec<String>,
    /// Per regressor, shape (n_total,).
    pub regressors: Vec<Vec<f64>>,
    /// Rows with a non-zero `non_steady_state` column (0-based), censored.
    pub non_steady_state: Vec<usize>,
    /// Scrubbed rows (FD / DVARS and the short segments).
    pub scrubbed: Vec<usize>,
}

impl RunConfounds {
    /// Reads `file` for a run of `n_total` volumes (`bold`).
    pub fn read(file: &Path, bold: &Path, n_total: usize, strategy: &Strategy) -> Result<Self> {
        let table = read_confounds(file)?;
        if table.len() != n_total {
            return Err(DataError::invalid(
                file,
                "rows",
                format!("{n_total} rows, one per volume of {}", bold.display()),
                format!("{} rows", table.len()),
            ));
        }
        let names = strategy.regressor_names(file, table.columns())?;
        let regressors = names
            .iter()
            .map(|n| confounds::regressor(&table, n))
            .collect::<Result<Vec<_>>>()?;
        let scrubbed = match &strategy.scrub {
            Some(s) => confounds::scrubbed_rows(&table, s)?,
            None => Vec::new(),
        };
        Ok(RunConfounds {
            file: file.to_path_buf(),
            names,
            regressors,
            non_steady_state: confounds::non_steady_state_rows(&table)?,
            scrubbed,
        })
    }

    /// Censored rows of the kept part `drop..n_end`, as row indices of that part (sorted).
    pub fn censored(&self, drop: usize, n_end: usize) -> Vec<usize> {
        let mut rows: Vec<usize> = self
            .non_steady_state
            .iter()
            .chain(&self.scrubbed)
            .filter(|&&r| r >= drop && r < n_end)
            .map(|r| r - drop)
            .collect();
        rows.sort_unstable();
        rows.dedup();
        rows
    }

    /// The cleaner of the kept part `drop..n_end`.
    pub fn cleaner(&self, drop: usize, n_end: usize) -> Cleaner {
        let part: Vec<Vec<f64>> = self
            .regressors
            .iter()
            .map(|c| c[drop..n_end].to_vec())
            .collect();
        Cleaner::new(&part, &self.censored(drop, n_end), n_end - drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_take_defaults_and_refuse_thresholds_without_scrub() {
        let defaults = FmriprepOptions::from_flags(None, None, None, None, None).unwrap();
        assert_eq!(defaults, FmriprepOptions::default());
        let err = FmriprepOptions::from_flags(None, Some("motion:basic"), Some(0.3), None, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--fd-threshold / --std-dvars-threshold"),
            "{err}"
        );
        let scrubbing = FmriprepOptions::from_flags(
            Some("T1w"),
            Some("motion:basic,scrub"),
            Some(0.3),
            None,
            None,
        )
        .unwrap();
        assert_eq!(scrubbing.space.label, "T1w");
        assert!(scrubbing.strategy.scrub.is_some());
    }

    #[test]
    fn fmriprep_1x_names_are_read() {
        let (entities, space, run) =
            legacy_run("sub-CSI1_ses-01_task-5000scenes_run-01_bold_space-T1w_preproc.nii.gz")
                .unwrap();
        assert_eq!(space, "T1w");
        assert_eq!(run, "sub-CSI1_ses-01_task-5000scenes_run-01");
        assert_eq!(bids::entity(&entities, "task"), Some("5000scenes"));
        let bold =
            Path::new("/d/sub-CSI1_ses-01_task-5000scenes_run-01_bold_space-T1w_preproc.nii.gz");
        assert_eq!(
            brain_mask(bold),
            Path::new("/d/sub-CSI1_ses-01_task-5000scenes_run-01_bold_space-T1w_brainmask.nii.gz")
        );
        assert!(legacy_run(
            "sub-01_task-a_bold_space-T1w_variant-smoothAROMAnonaggr_preproc.nii.gz"
        )
        .is_none());
        assert!(legacy_run("sub-01_task-a_space-T1w_desc-preproc_bold.nii.gz").is_none());
        for (old, new) in [
            ("X", "trans_x"),
            ("RotZ", "rot_z"),
            ("WhiteMatter", "white_matter"),
            ("non-stdDVARS", "dvars"),
            ("aCompCor05", "a_comp_cor_05"),
            ("Cosine00", "cosine00"),
            ("NonSteadyStateOutlier00", "non_steady_state_outlier00"),
        ] {
            assert_eq!(legacy_confound_name(old).as_deref(), Some(new));
        }
        assert_eq!(legacy_confound_name("vx-wisestdDVARS"), None);
        assert_eq!(legacy_confound_name("aCompCor"), None);
    }

    #[test]
    fn spaces_parse_and_surfaces_are_refused() {
        assert_eq!(Space::parse("T1w").unwrap().label(), "T1w");
        assert_eq!(
            Space::parse("MNI152NLin2009cAsym:res-2")
                .unwrap()
                .res
                .as_deref(),
            Some("2")
        );
        let cifti = Space::parse("fsLR").unwrap();
        assert!(cifti.is_cifti());
        assert_eq!(cifti.entities(), "fsLR_den-91k");
        assert_eq!(
            Space::parse("fsLR:den-170k").unwrap().label(),
            "fsLR:den-170k"
        );
        assert!(Space::parse("fsLR:res-2").is_err());
        assert!(!Space::parse("T1w").unwrap().is_cifti());
        let err = Space::parse("fsaverage5").unwrap_err().to_string();
        assert!(
            err.contains("GIFTI") && err.contains("MNI152NLin2009cAsym"),
            "{err}"
        );
        assert!(Space::parse("MNI:2").is_err());
    }

    #[test]
    fn sibling_files_are_named_as_fmriprep_names_them() {
        let bold =
            Path::new("/d/sub-01/func/sub-01_task-a_run-1_space-T1w_desc-preproc_bold.nii.gz");
        assert_eq!(
            brain_mask(bold),
            Path::new("/d/sub-01/func/sub-01_task-a_run-1_space-T1w_desc-brain_mask.nii.gz")
        );
        let (e, _) =
            bids::parse_name("sub-01_ses-2_task-a_run-1_space-T1w_res-2_desc-preproc_bold")
                .unwrap();
        assert_eq!(bids::run_name(&run_entities(&e)), "ses-2_task-a_run-1");
    }
}
