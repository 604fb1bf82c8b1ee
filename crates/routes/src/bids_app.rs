//! A BIDS App (Gorgolewski et al. 2017): `brainrecon bids-app BIDS_DIR OUTPUT_DIR
//! {participant,group}` over a raw BIDS dataset and its fMRIPrep derivatives, written as a BIDS
//! derivative dataset.
//!
//! It stands above the routes, as [`crate::reconstruct`] does: the participant level runs the
//! [`crate::glm`] route (GLMsingle's single-trial betas), prepares the subject from them and
//! the raw dataset's events, computes its stimulus features ([`crate::decode::features`]) and
//! fits the [`crate::encoding`] route's maps on the cortex; the group level fits the
//! [`crate::group`] route's shared space over the participants' prepared subjects.
//!
//! ```text
//! OUTPUT_DIR/dataset_description.json   DatasetType derivative, GeneratedBy brainrecon
//! OUTPUT_DIR/.bidsignore                 the reports and brainrecon/ (not BIDS files)
//! OUTPUT_DIR/sub-<L>.html                the participant's report
//! OUTPUT_DIR/sub-<L>/func/sub-<L>[_task-<T>]_space-<S>_desc-singletrial_betas.nii.gz (+ .json)
//!     float32 (X, Y, Z, trials): TYPED betas in percent signal change, 0 outside the mask;
//!     the sidecar holds the options and their hash (a rerun skips a participant whose hash
//!     matches)
//! OUTPUT_DIR/sub-<L>/func/sub-<L>[_task-<T>]_desc-singletrial_events.tsv (+ .json)
//!     the trials in the betas' volume order: onset, duration, run, volume, trial_type
//! OUTPUT_DIR/sub-<L>/func/sub-<L>[_task-<T>]_space-<S>_desc-R2_statmap.nii.gz (+ .json)
//! OUTPUT_DIR/sub-<L>/func/sub-<L>[_task-<T>]_space-<S>_desc-encodingr_statmap.nii.gz (+ .json)
//! OUTPUT_DIR/sub-<L>/func/sub-<L>[_task-<T>]_space-<S>_desc-encodingneglog10p_statmap.nii.gz
//! OUTPUT_DIR/sub-<L>/func/sub-<L>[_task-<T>]_space-<S>_desc-encodingsignificant_mask.nii.gz
//! OUTPUT_DIR/brainrecon/sub-<L>/{glm,prepared,encoding}/   the routes' own folders
//! OUTPUT_DIR/brainrecon/shards/<k>-of-<N>.json             a Slurm task's participants, done
//! OUTPUT_DIR/brainrecon/group/ (+ group-settings.json)     the group and its shared space
//! OUTPUT_DIR/group.html                                    the group report
//! ```
//!
//! The task entity is left out when several tasks are fitted together.

use crate::decode::features::{features_request, FeaturesRequest};
use crate::encoding::job::{encode, parse_feature_sets, EncodeOptions, FitRequest};
use crate::error::{Result, RouteError};
use crate::glm::{fit_folder, model_folder, GlmOptions, Source};
use crate::group::fit::{fit_group, GroupFitRequest};
use crate::group::prepare::{prepare_group, GroupPrepareRequest};
use crate::linear::shards::ImageShard;
use brainrecon_core::fs::{read_json, write_bytes_atomic, write_json_atomic, OutputDir};
use brainrecon_core::DataError;
use brainrecon_cortex::report::CortexChoice;
use brainrecon_datasets::experiment::prepare::{prepare_experiment, ExperimentOptions, TestSet};
use brainrecon_datasets::experiment::GlmFolder;
use brainrecon_datasets::nsd::prepare::ZScore;
use brainrecon_formats::{nifti4d, npy};
use serde::Serialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The model whose betas the derivative holds (GLMsingle's final one).
const BETAS_MODEL: &str = "typed";
/// The feature kind the encoding maps and the shared space use (the VAE latents of
/// shapes-ldm, the project's own model: nothing is downloaded).
const FEATURES: &str = "vae";
/// The same features as `encode --features` names them.
const ENCODE_FEATURES: &str = "z";
/// The folder of the routes' own outputs inside OUTPUT_DIR (listed in `.bidsignore`).
const WORK: &str = "brainrecon";

/// Which level of the BIDS App.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// One participant at a time (one Slurm array task each).
    Participant,
    /// Over the participants' finished outputs.
    Group,
}

/// What `bids-app` is asked.
#[derive(Debug, Clone)]
pub struct BidsAppOptions {
    /// The raw BIDS dataset (with `dataset_description.json`).
    pub bids_dir: PathBuf,
    /// The derivative dataset to write.
    pub output_dir: PathBuf,
    /// Participant or group.
    pub level: Level,
    /// Participants (`01` or `sub-01`); empty for every `sub-*` folder of the dataset (group
    /// level: of OUTPUT_DIR).
    pub participant_labels: Vec<String>,
    /// fMRIPrep's output of the dataset; None for `BIDS_DIR/derivatives/fmriprep`.
    pub fmriprep: Option<PathBuf>,
    /// Tasks to fit together; empty for the dataset's one task (several found: an error).
    pub tasks: Vec<String>,
    /// fMRIPrep's output space (`LABEL[:res-N]`); None for the one space fMRIPrep wrote.
    pub space: Option<String>,
    /// This Slurm task's share of the participants (participant level only).
    pub shard: Option<ImageShard>,
    /// Permutations of the encoding maps' null.
    pub permutations: usize,
    /// Dimensions of the group's shared space.
    pub group_dimensions: usize,
    /// Where the maps are drawn on the cortex (`auto`: a simulation's on fsaverage5).
    pub cortex: CortexChoice,
    /// Progress bars on standard error.
    pub progress: bool,
}

impl BidsAppOptions {
    /// The defaults: every participant, fMRIPrep in `BIDS_DIR/derivatives/fmriprep`, 1000
    /// permutations, a 32-dimensional shared space, maps on the cortex where known.
    pub fn new(bids_dir: &Path, output_dir: &Path, level: Level) -> Self {
        BidsAppOptions {
            bids_dir: bids_dir.to_path_buf(),
            output_dir: output_dir.to_path_buf(),
            level,
            participant_labels: Vec::new(),
            fmriprep: None,
            tasks: Vec::new(),
            space: None,
            shard: None,
            permutations: 1000,
            group_dimensions: 32,
            cortex: CortexChoice::Auto,
            progress: false,
        }
    }
}

/// One participant's run.
#[derive(Debug, Clone, Serialize)]
pub struct ParticipantOutcome {
    /// The label, without `sub-`.
    pub label: String,
    /// Already finished with the same settings: nothing was done.
    pub skipped: bool,
    /// The derivative files, relative to OUTPUT_DIR.
    pub files: Vec<PathBuf>,
    /// Seconds it took.
    pub seconds: f64,
}

/// The group level's run.
#[derive(Debug, Clone, Serialize)]
pub struct GroupOutcome {
    /// The participants in the group.
    pub participants: Vec<String>,
    /// Already finished with the same participants and settings: nothing was done.
    pub skipped: bool,
    /// The shared space's folder.
    pub space: PathBuf,
    /// The group report.
    pub report: PathBuf,
}

/// What [`run`] did.
#[derive(Debug, Clone, Serialize)]
pub struct BidsAppReport {
    /// The level run.
    pub level: Level,
    /// The derivative dataset.
    pub output_dir: PathBuf,
    /// Participant level: each participant of this run (of this shard).
    pub participants: Vec<ParticipantOutcome>,
    /// Group level: the group.
    pub group: Option<GroupOutcome>,
}

impl BidsAppReport {
    /// The lines `bids-app` prints.
    pub fn text(&self) -> String {
        let mut text = String::new();
        for p in &self.participants {
            text.push_str(&if p.skipped {
                format!("sub-{}: already finished with these settings\n", p.label)
            } else {
                format!(
                    "sub-{}: {} derivative files in {:.1} s\n",
                    p.label,
                    p.files.len(),
                    p.seconds
                )
            });
        }
        if self.level == Level::Participant && self.participants.is_empty() {
            text.push_str("no participant in this shard\n");
        }
        if let Some(g) = &self.group {
            text.push_str(&format!(
                "group of {} ({}): {}; report {}\n",
                g.participants.len(),
                g.participants.join(", "),
                if g.skipped {
                    "already finished with these settings".into()
                } else {
                    format!("shared space in {}", g.space.display())
                },
                g.report.display()
            ));
        }
        text.push_str(&format!("wrote {}\n", self.output_dir.display()));
        text
    }
}

/// Runs the chosen level. Refused before anything is written, each error naming the file: a
/// dataset without `dataset_description.json`, a participant it does not hold, derivatives
/// that are no fMRIPrep derivative of it (no description, `DatasetType` not `derivative`, a
/// raw run of the participant's tasks without its preprocessed run in the space), and at the
/// group level a participant whose participant level has not finished.
pub fn run(opts: &BidsAppOptions) -> Result<BidsAppReport> {
    check_dataset(&opts.bids_dir)?;
    match opts.level {
        Level::Participant => participant_level(opts),
        Level::Group => {
            if opts.shard.is_some() {
                return Err(RouteError::Usage(
                    "--shard: the group level runs once, over every participant".into(),
                ));
            }
            group_level(opts)
        }
    }
}

/// Whether the Slurm task `index` of `count` finished its participants.
pub fn shard_done(output_dir: &Path, index: usize, count: usize) -> bool {
    shard_marker(output_dir, ImageShard { index, count }).is_file()
}

/// Whether the group level finished.
pub fn group_done(output_dir: &Path) -> bool {
    output_dir.join(WORK).join("group-settings.json").is_file()
        && output_dir.join("group.html").is_file()
}

fn shard_marker(output_dir: &Path, shard: ImageShard) -> PathBuf {
    output_dir
        .join(WORK)
        .join("shards")
        .join(format!("{}-of-{}.json", shard.index, shard.count))
}

fn check_dataset(bids: &Path) -> Result<Value> {
    let path = bids.join("dataset_description.json");
    if !path.is_file() {
        return Err(DataError::Missing {
            path,
            what: "a BIDS dataset's dataset_description.json: BIDS_DIR is the raw dataset's root"
                .into(),
        }
        .into());
    }
    Ok(read_json(&path)?)
}

/// A label as given (`01`, `sub-01`) without `sub-`; BIDS labels are alphanumeric.
fn bare_label(label: &str) -> Result<String> {
    let bare = label.strip_prefix("sub-").unwrap_or(label);
    if bare.is_empty() || !bare.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(RouteError::Usage(format!(
            "--participant-label: expected a BIDS label (letters and digits, e.g. 01 or sub-01), found '{label}'"
        )));
    }
    Ok(bare.to_string())
}

/// The `sub-*` folders under `root`, labels sorted.
fn subject_folders(root: &Path) -> Vec<String> {
    let mut labels: Vec<String> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            // a label is letters and digits: not `sub-01.partial`, a folder being written
            name.strip_prefix("sub-")
                .filter(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric()))
                .map(str::to_string)
        })
        .collect();
    labels.sort();
    labels
}

/// The participants asked for, each checked to be a folder of `root`.
fn participants(root: &Path, requested: &[String], what: &str) -> Result<Vec<String>> {
    let present = subject_folders(root);
    if requested.is_empty() {
        if present.is_empty() {
            return Err(DataError::Missing {
                path: root.join("sub-*"),
                what: format!("{what}: no sub-<label> folder"),
            }
            .into());
        }
        return Ok(present);
    }
    let mut labels = Vec::new();
    for given in requested {
        let label = bare_label(given)?;
        if !present.contains(&label) {
            return Err(DataError::Missing {
                path: root.join(format!("sub-{label}")),
                what: format!(
                    "participant {label} (--participant-label) in {what}, which holds {}",
                    if present.is_empty() {
                        "none".to_string()
                    } else {
                        present.join(", ")
                    }
                ),
            }
            .into());
        }
        if !labels.contains(&label) {
            labels.push(label);
        }
    }
    Ok(labels)
}

/// A raw BOLD run: its folder relative to the dataset, its name up to `_bold`, its task.
struct RawRun {
    dir: PathBuf,
    stem: String,
    task: String,
}

/// The raw BOLD runs of participant `label` (`sub-L/[ses-*/]func/*_bold.nii[.gz]`).
fn raw_runs(bids: &Path, label: &str) -> Vec<RawRun> {
    let subject = PathBuf::from(format!("sub-{label}"));
    let mut dirs = vec![subject.join("func")];
    for ses in std::fs::read_dir(bids.join(&subject))
        .into_iter()
        .flatten()
        .flatten()
    {
        if ses.file_name().to_string_lossy().starts_with("ses-") {
            dirs.push(subject.join(ses.file_name()).join("func"));
        }
    }
    let mut runs = Vec::new();
    for dir in dirs {
        for entry in std::fs::read_dir(bids.join(&dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name
                .strip_suffix("_bold.nii.gz")
                .or_else(|| name.strip_suffix("_bold.nii"))
            else {
                continue;
            };
            let task = stem
                .split('_')
                .find_map(|e| e.strip_prefix("task-"))
                .unwrap_or("")
                .to_string();
            runs.push(RawRun {
                dir: dir.clone(),
                stem: stem.to_string(),
                task,
            });
        }
    }
    runs.sort_by(|a, b| (&a.dir, &a.stem).cmp(&(&b.dir, &b.stem)));
    runs
}

/// The tasks to fit: those asked for, else the one task of the participants' runs.
fn tasks(bids: &Path, labels: &[String], requested: &[String]) -> Result<Vec<String>> {
    if !requested.is_empty() {
        return Ok(requested
            .iter()
            .map(|t| t.strip_prefix("task-").unwrap_or(t).to_string())
            .collect());
    }
    let mut found: Vec<String> = labels
        .iter()
        .flat_map(|l| raw_runs(bids, l))
        .map(|r| r.task)
        .filter(|t| !t.is_empty())
        .collect();
    found.sort();
    found.dedup();
    match found.len() {
        1 => Ok(found),
        0 => Err(DataError::Missing {
            path: bids.join(format!("sub-{}", labels[0])).join("func"),
            what: "raw BOLD runs (*_task-<T>_bold.nii.gz)".into(),
        }
        .into()),
        _ => Err(RouteError::Usage(format!(
            "--task: the dataset holds tasks {}; name the ones to fit together",
            found.join(", ")
        ))),
    }
}

/// `LABEL[:res-N]` as the entities of fMRIPrep's file names: `space-LABEL[_res-N]`.
fn space_entities(space: &str) -> String {
    match space.split_once(':') {
        Some((label, res)) => format!("space-{label}_{res}"),
        None => format!("space-{space}"),
    }
}

/// The spaces fMRIPrep wrote a run in (`<stem>_space-<S>[_res-N]_desc-preproc_bold.nii.gz`).
fn spaces_of(fmriprep: &Path, run: &RawRun) -> Vec<String> {
    let prefix = format!("{}_space-", run.stem);
    let mut spaces: Vec<String> = std::fs::read_dir(fmriprep.join(&run.dir))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix(&prefix)?;
            let entities = rest.strip_suffix("_desc-preproc_bold.nii.gz")?;
            let mut parts = entities.split('_');
            let label = parts.next()?.to_string();
            Some(match parts.next().filter(|p| p.starts_with("res-")) {
                Some(res) => format!("{label}:{res}"),
                None => label,
            })
        })
        .collect();
    spaces.sort();
    spaces.dedup();
    spaces
}

/// Checks that `fmriprep` is fMRIPrep's derivative of the raw dataset for these participants,
/// tasks and space, and returns the space (the one fMRIPrep wrote, when none is asked for).
fn check_derivatives(
    bids: &Path,
    fmriprep: &Path,
    labels: &[String],
    tasks: &[String],
    space: Option<&str>,
) -> Result<String> {
    let description = fmriprep.join("dataset_description.json");
    if !description.is_file() {
        return Err(DataError::Missing {
            path: description,
            what: "fMRIPrep's dataset_description.json: --derivatives fmriprep=DIR names \
                   fMRIPrep's output folder of BIDS_DIR"
                .into(),
        }
        .into());
    }
    let json: Value = read_json(&description)?;
    let kind = json["DatasetType"].as_str().unwrap_or("none");
    if kind != "derivative" {
        return Err(DataError::invalid(
            &description,
            "DatasetType",
            "derivative (fMRIPrep's output of BIDS_DIR)",
            kind,
        )
        .into());
    }
    brainrecon_datasets::fmriprep::generated_by(fmriprep)?;
    let mut chosen = space.map(str::to_string);
    for label in labels {
        let runs: Vec<RawRun> = raw_runs(bids, label)
            .into_iter()
            .filter(|r| tasks.contains(&r.task))
            .collect();
        if runs.is_empty() {
            return Err(DataError::Missing {
                path: bids.join(format!("sub-{label}")).join("func"),
                what: format!(
                    "raw BOLD runs of task {} for participant {label}",
                    tasks.join(", ")
                ),
            }
            .into());
        }
        if fmriprep.join(format!("sub-{label}")).is_dir() && chosen.is_none() {
            let spaces = spaces_of(fmriprep, &runs[0]);
            if spaces.len() > 1 {
                return Err(RouteError::Usage(format!(
                    "--space: fMRIPrep wrote {} in spaces {}; name one",
                    runs[0].stem,
                    spaces.join(", ")
                )));
            }
            chosen = spaces.into_iter().next();
        }
        let space = chosen
            .clone()
            .unwrap_or_else(|| "MNI152NLin2009cAsym".into());
        for run in &runs {
            let expected = fmriprep.join(&run.dir).join(format!(
                "{}_{}_desc-preproc_bold.nii.gz",
                run.stem,
                space_entities(&space)
            ));
            if !expected.is_file() {
                return Err(DataError::Missing {
                    path: expected,
                    what: format!(
                        "fMRIPrep's preprocessed run of {} in space {space}: the derivatives \
                         do not match the raw data",
                        bids.join(&run.dir)
                            .join(format!("{}_bold.nii.gz", run.stem))
                            .display()
                    ),
                }
                .into());
            }
        }
    }
    chosen.ok_or_else(|| {
        RouteError::Usage("--space: fMRIPrep wrote no preprocessed run; name the space".into())
    })
}

/// FNV-1a, 64 bits, as 16 hex digits: the settings' fingerprint in the sidecars.
fn settings_hash(settings: &Value) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in settings.to_string().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

fn absolute(path: &Path) -> Result<PathBuf> {
    Ok(std::path::absolute(path).map_err(|e| DataError::io(path, e))?)
}

/// The folder's one spelling: symbolic links, `.`, `..` and trailing slashes resolved, so that
/// `ds`, `ds/` and `./ds` are the same settings. A folder that does not exist yet is resolved
/// through its nearest existing ancestor.
fn canonical(path: &Path) -> Result<PathBuf> {
    let path = absolute(path)?;
    let mut rest = Vec::new();
    let mut base = path.as_path();
    loop {
        match std::fs::canonicalize(base) {
            Ok(found) => return Ok(rest.iter().rev().fold(found, |p, name| p.join(name))),
            Err(_) => match (base.parent(), base.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_owned());
                    base = parent;
                }
                _ => return Ok(path),
            },
        }
    }
}

/// Refuses an OUTPUT_DIR that would write into the data it reads: BIDS_DIR itself, a folder of
/// it other than `derivatives/<pipeline>/…`, or fMRIPrep's folder (or one inside it). Checked
/// before anything is written, so a wrong command leaves both datasets as they were.
fn check_output_dir(opts: &BidsAppOptions, fmriprep: &Path) -> Result<()> {
    let out = canonical(&opts.output_dir)?;
    let bids = canonical(&opts.bids_dir)?;
    let fmriprep = canonical(fmriprep)?;
    let refuse = |why: &str| {
        Err(RouteError::Usage(format!(
            "OUTPUT_DIR {}: {why}; expected a folder of its own, such as {}",
            opts.output_dir.display(),
            bids.join("derivatives").join("brainrecon").display()
        )))
    };
    if out.starts_with(&fmriprep) {
        return refuse(&format!(
            "is fMRIPrep's derivatives ({}) or inside them, which it reads",
            fmriprep.display()
        ));
    }
    if let Ok(inside) = out.strip_prefix(&bids) {
        let mut parts = inside.components();
        let in_derivatives = parts.next().is_some_and(|c| c.as_os_str() == "derivatives");
        if !in_derivatives || parts.next().is_none() {
            return refuse(&format!(
                "is BIDS_DIR ({}) or a folder of it outside derivatives/<pipeline>/",
                bids.display()
            ));
        }
    }
    Ok(())
}

/// `GeneratedBy`'s entry: brainrecon, its version, and the container it runs in when the
/// container says so (Apptainer/Singularity's environment, or `BRAINRECON_CONTAINER`, which the
/// project's image sets to its tag).
fn generated_by() -> Value {
    let mut entry = json!({
        "Name": "brainrecon",
        "Version": env!("CARGO_PKG_VERSION"),
        "Description": "brainrecon bids-app: single-trial betas by GLMsingle's method, \
                        encoding maps and a shared space across participants",
    });
    if let Some(url) = option_env!("CARGO_PKG_REPOSITORY").filter(|u| !u.is_empty()) {
        entry["CodeURL"] = json!(url);
    }
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(tag) = var("BRAINRECON_CONTAINER") {
        entry["Container"] = json!({"Type": "oci", "Tag": tag});
    } else if let Some(uri) = var("APPTAINER_CONTAINER").or_else(|| var("SINGULARITY_CONTAINER")) {
        entry["Container"] = json!({"Type": "apptainer", "URI": uri});
    }
    entry
}

/// OUTPUT_DIR's `dataset_description.json` and `.bidsignore` (the same bytes from every task).
fn write_description(opts: &BidsAppOptions, raw: &Value, fmriprep: &Path) -> Result<()> {
    let name = raw["Name"].as_str().unwrap_or("a BIDS dataset");
    let description = json!({
        "Name": format!("brainrecon: single-trial betas and encoding maps of {name}"),
        "BIDSVersion": raw["BIDSVersion"].as_str().unwrap_or("1.9.0"),
        "DatasetType": "derivative",
        "GeneratedBy": [generated_by()],
        "SourceDatasets": [
            {"URL": format!("file://{}", canonical(&opts.bids_dir)?.display())},
            {"URL": format!("file://{}", canonical(fmriprep)?.display())},
        ],
    });
    std::fs::create_dir_all(&opts.output_dir).map_err(|e| DataError::io(&opts.output_dir, e))?;
    let path = opts.output_dir.join("dataset_description.json");
    if read_json::<Value>(&path).ok().as_ref() != Some(&description) {
        write_json_atomic(&path, &description)?;
    }
    let ignore = opts.output_dir.join(".bidsignore");
    if !ignore.is_file() {
        write_bytes_atomic(&ignore, format!("{WORK}/\n*.html\n").as_bytes())?;
    }
    Ok(())
}

/// The names of one participant's derivative files.
struct Names {
    label: String,
    /// `sub-L[_task-T]`.
    base: String,
    /// `space-S[_res-N]`.
    space: String,
}

impl Names {
    fn new(label: &str, tasks: &[String], space: &str) -> Self {
        let task = match tasks {
            [one] => format!("_task-{one}"),
            _ => String::new(),
        };
        Names {
            label: label.to_string(),
            base: format!("sub-{label}{task}"),
            space: space_entities(space),
        }
    }

    /// `func/<base>_<space>_desc-<desc>_<suffix>.<ext>` (or without the space).
    fn file(&self, spaced: bool, desc: &str, suffix_ext: &str) -> PathBuf {
        let space = if spaced {
            format!("_{}", self.space)
        } else {
            String::new()
        };
        PathBuf::from("func").join(format!("{}{space}_desc-{desc}_{suffix_ext}", self.base))
    }

    fn betas_sidecar(&self) -> PathBuf {
        self.file(true, "singletrial", "betas.json")
    }
}

fn participant_level(opts: &BidsAppOptions) -> Result<BidsAppReport> {
    let raw = check_dataset(&opts.bids_dir)?;
    let all = participants(&opts.bids_dir, &opts.participant_labels, "BIDS_DIR")?;
    let labels: Vec<String> = match opts.shard {
        Some(shard) => all[shard.rows(all.len())].to_vec(),
        None => all.clone(),
    };
    let fmriprep = opts
        .fmriprep
        .clone()
        .unwrap_or_else(|| opts.bids_dir.join("derivatives").join("fmriprep"));
    if opts.space.as_deref().is_some_and(|s| s.starts_with("fsLR")) {
        return Err(RouteError::Usage(
            "--space fsLR: bids-app writes volumes; run `brainrecon glm --space fsLR` for CIFTI"
                .into(),
        ));
    }
    let tasks = tasks(&opts.bids_dir, &all, &opts.tasks)?;
    // Every participant of the run is checked before any is fitted.
    let space = check_derivatives(
        &opts.bids_dir,
        &fmriprep,
        &all,
        &tasks,
        opts.space.as_deref(),
    )?;
    check_output_dir(opts, &fmriprep)?;
    write_description(opts, &raw, &fmriprep)?;
    let settings = json!({
        "bids_dir": canonical(&opts.bids_dir)?,
        "fmriprep": canonical(&fmriprep)?,
        "tasks": tasks,
        "space": space,
        "betas": BETAS_MODEL,
        "features": FEATURES,
        "permutations": opts.permutations,
        "version": env!("CARGO_PKG_VERSION"),
    });
    let mut outcomes = Vec::new();
    for label in &labels {
        let names = Names::new(label, &tasks, &space);
        outcomes.push(participant(opts, &fmriprep, &names, &tasks, &settings)?);
    }
    if let Some(shard) = opts.shard {
        write_json_atomic(
            &shard_marker(&opts.output_dir, shard),
            &json!({"participants": labels}),
        )?;
    }
    Ok(BidsAppReport {
        level: Level::Participant,
        output_dir: opts.output_dir.clone(),
        participants: outcomes,
        group: None,
    })
}

fn participant(
    opts: &BidsAppOptions,
    fmriprep: &Path,
    names: &Names,
    tasks: &[String],
    settings: &Value,
) -> Result<ParticipantOutcome> {
    let started = Instant::now();
    let label = &names.label;
    let hash = settings_hash(settings);
    let subject_dir = opts.output_dir.join(format!("sub-{label}"));
    let sidecar = subject_dir.join(names.betas_sidecar());
    if sidecar.is_file() {
        let previous: Value = read_json(&sidecar)?;
        if previous["SettingsHash"].as_str() == Some(hash.as_str()) {
            return Ok(ParticipantOutcome {
                label: label.clone(),
                skipped: true,
                files: Vec::new(),
                seconds: 0.0,
            });
        }
        return Err(DataError::invalid(
            &sidecar,
            "SettingsHash",
            format!("{hash} (this run's settings)"),
            format!(
                "{}: written with other settings; remove {} or choose another OUTPUT_DIR",
                previous["SettingsHash"].as_str().unwrap_or("none"),
                subject_dir.display()
            ),
        )
        .into());
    }
    if subject_dir.exists() {
        return Err(DataError::invalid(
            &subject_dir,
            "OUTPUT_DIR",
            format!("no sub-{label} folder, or one this app finished"),
            format!("a folder without {}", names.betas_sidecar().display()),
        )
        .into());
    }
    let work = opts.output_dir.join(WORK).join(format!("sub-{label}"));
    let (glm, prepared, encoding) = (
        work.join("glm"),
        work.join("prepared"),
        work.join("encoding"),
    );
    let fitted = fit_folder(&GlmOptions {
        source: Source::Fmriprep {
            fmriprep: fmriprep.to_path_buf(),
            bids_root: opts.bids_dir.clone(),
        },
        subject: label.clone(),
        tasks: tasks.to_vec(),
        sessions: Vec::new(),
        space: settings["space"].as_str().map(str::to_string),
        mask: None,
        confounds: "none".into(),
        condition_column: None,
        stimdur: None,
        out: glm.clone(),
        cortex: opts.cortex.clone(),
        progress: opts.progress,
    })?;
    let captions = opts.bids_dir.join("stimuli").join("captions.json");
    let prepared_report = prepare_experiment(&ExperimentOptions {
        glm: glm.clone(),
        out: prepared.clone(),
        model: model_folder(BETAS_MODEL)?.to_string(),
        stimuli: None,
        captions: captions.is_file().then_some(captions),
        atlas: None,
        atlas_transform: None,
        atlas_labels: None,
        rois: vec!["visual".into(), "streams".into()],
        test: TestSet::MinRepeats(3),
        zscore: ZScore::Session,
        average_train: false,
        image_size: None,
        leave_out_missing: false,
    })?;
    features_request(
        &FeaturesRequest {
            subject: prepared.clone(),
            kind: FEATURES.into(),
            model: None,
            layer: "last".into(),
            normalize: false,
            out: None,
            size: None,
            sample: false,
            seed: 0,
            batch: 8,
            device: brainrecon_core::Device::Cpu,
            dtype: brainrecon_diffusion::pipeline::DType::F32,
            progress: opts.progress,
        },
        |_, _| Ok::<(), RouteError>(()),
    )?;
    // An encoding folder of an unfinished participant is redone whole (seconds).
    if encoding.exists() {
        std::fs::remove_dir_all(&encoding).map_err(|e| DataError::io(&encoding, e))?;
    }
    let encode_options = EncodeOptions {
        subject_dir: prepared.clone(),
        targets: parse_feature_sets(&[ENCODE_FEATURES.to_string()])?,
        roi: "nsdgeneral".into(),
        out: encoding.clone(),
        unique: false,
        standardize: true,
        fit: FitRequest {
            features_dir: None,
            pca: None,
            permutations: opts.permutations,
            block_size: 1,
            seed: 0,
            alphas: None,
            cv: "5".into(),
            device: brainrecon_ridge::Device::Cpu,
        },
        cortex: opts.cortex.clone(),
    };
    encode_options.fit.check()?;
    let encode_started = Instant::now();
    let encoded = encode(&encode_options)?;
    let encode_text = encoded.text(&encode_options, encode_started.elapsed().as_secs_f64());

    let staged = OutputDir::create(&subject_dir)?;
    let root = staged.path().to_path_buf();
    std::fs::create_dir_all(root.join("func")).map_err(|e| DataError::io(&root, e))?;
    let mut files = Vec::new();
    let options = json!({"Settings": settings, "SettingsHash": hash});
    let glm_folder = GlmFolder::open(&glm)?;
    // Trials first, the betas' sidecar (the mark of a finished participant) last.
    let events = names.file(false, "singletrial", "events.tsv");
    write_trials(&glm_folder, &root.join(&events))?;
    let columns = json!({
        "Description": "The trials of the single-trial betas, in their volume order",
        "onset": {"Description": "Onset from the run's first volume", "Units": "s"},
        "duration": {"Description": "GLMsingle's stimdur", "Units": "s"},
        "run": {"Description": "The run (fMRIPrep's file name up to _space)"},
        "volume": {"Description": "The run's volume the onset went to (0-based)"},
        "trial_type": {"Description": "The condition (the events' stimulus)"},
    });
    write_json_atomic(&root.join(sidecar_of(&events)), &columns)?;
    files.extend([events.clone(), sidecar_of(&events)]);
    let model = model_folder(BETAS_MODEL)?;
    let maps = [
        (
            glm.join(model).join("R2.nii.gz"),
            "R2",
            "statmap",
            "GLMsingle's R² of the final model, percent",
        ),
        (
            encoding.join("r.nii.gz"),
            "encodingr",
            "statmap",
            "Encoding model's Pearson r on the test images (VAE latents → voxels, ridge)",
        ),
        (
            encoding.join("neglog10p.nii.gz"),
            "encodingneglog10p",
            "statmap",
            "-log10 of the encoding r's permutation p-value",
        ),
        (
            encoding.join("significant.nii.gz"),
            "encodingsignificant",
            "mask",
            "Voxels significant at Benjamini–Hochberg q ≤ 0.05",
        ),
    ];
    for (from, desc, suffix, what) in maps {
        let to = names.file(true, desc, &format!("{suffix}.nii.gz"));
        let bytes = std::fs::read(&from).map_err(|e| DataError::io(&from, e))?;
        write_bytes_atomic(&root.join(&to), &bytes)?;
        let mut sidecar = options.clone();
        sidecar["Description"] = json!(what);
        write_json_atomic(&root.join(sidecar_of(&to)), &sidecar)?;
        files.extend([sidecar_of(&to), to]);
    }
    let betas = names.file(true, "singletrial", "betas.nii.gz");
    write_betas(&glm_folder, model, &root.join(&betas))?;
    files.push(betas.clone());
    let steps = [
        ("Single-trial betas (GLMsingle's method)", fitted.text(&glm)),
        ("Prepared subject", prepared_report.text()),
        ("Encoding maps", encode_text),
    ];
    write_report(opts, names, &steps, &files)?;
    let mut sidecar = options;
    sidecar["Description"] = json!(
        "Single-trial betas by GLMsingle's method (TYPED: library HRF, GLMdenoise, fractional ridge), percent signal change, one volume per trial"
    );
    sidecar["Units"] = json!("percent signal change");
    sidecar["Model"] = json!(model);
    sidecar["TrialsFile"] = json!(events_name(names));
    sidecar["Sources"] = json!(glm_folder.meta.runs);
    write_json_atomic(&root.join(names.betas_sidecar()), &sidecar)?;
    files.push(names.betas_sidecar());
    for f in &mut files {
        *f = PathBuf::from(format!("sub-{label}")).join(&*f);
    }
    files.push(PathBuf::from(format!("sub-{label}.html")));
    staged.commit()?;
    Ok(ParticipantOutcome {
        label: label.clone(),
        skipped: false,
        files,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn events_name(names: &Names) -> String {
    names
        .file(false, "singletrial", "events.tsv")
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `x.nii.gz` → `x.json`.
fn sidecar_of(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.split('.').next().unwrap_or(&name);
    path.with_file_name(format!("{stem}.json"))
}

/// The trials table: onset, duration, run, volume, trial_type; one row per betas volume.
fn write_trials(glm: &GlmFolder, path: &Path) -> Result<()> {
    let mut tsv = String::from("onset\tduration\trun\tvolume\ttrial_type\n");
    for t in &glm.meta.trials {
        let run = glm.meta.runs.get(t.run).map_or("n/a", String::as_str);
        let condition = glm
            .meta
            .conditions
            .get(t.condition)
            .map_or("n/a", String::as_str);
        tsv.push_str(&format!(
            "{}\t{}\t{run}\t{}\t{condition}\n",
            t.onset, glm.meta.stimdur, t.volume
        ));
    }
    Ok(write_bytes_atomic(path, tsv.as_bytes())?)
}

/// The betas as a float32 4-D NIfTI on the runs' grid, one volume per trial, 0 outside the
/// mask. Memory: trials × X·Y·Z × 8 bytes while it is written.
fn write_betas(glm: &GlmFolder, model: &str, path: &Path) -> Result<()> {
    let betas = glm.betas(model)?;
    let meta = glm.timeseries.meta();
    let voxels_path = glm.timeseries.root().join("voxels.npy");
    let voxels = npy::read_i64(&voxels_path)?;
    let [x, y, _] = meta.volume_shape;
    let len: usize = meta.volume_shape.iter().product();
    let trials = glm.meta.trials.len();
    let values = betas.as_slice();
    let mut volumes = vec![vec![0.0f64; len]; trials];
    for (v, c) in voxels.data.chunks_exact(3).enumerate() {
        let at = c[0] as usize + x * (c[1] as usize + y * c[2] as usize);
        for (t, volume) in volumes.iter_mut().enumerate() {
            volume[at] = f64::from(values[v * trials + t]);
        }
    }
    Ok(nifti4d::write_series(
        path,
        meta.volume_shape,
        meta.tr,
        &meta.affine,
        nifti4d::Storage::Float32,
        &volumes,
    )?)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The pictures (`.png`) under `dir`, relative to `base`.
fn pictures(dir: &Path, base: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .filter_map(|p| p.strip_prefix(base).ok().map(|r| r.display().to_string()))
        .collect();
    found.sort();
    found
}

/// `OUTPUT_DIR/sub-<L>.html`: what each step did, the files, the maps on the cortex.
fn write_report(
    opts: &BidsAppOptions,
    names: &Names,
    steps: &[(&str, String)],
    files: &[PathBuf],
) -> Result<()> {
    let label = &names.label;
    let work = PathBuf::from(WORK).join(format!("sub-{label}"));
    let mut html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>sub-{label}: brainrecon</title></head><body>\n<h1>sub-{label}</h1>\n"
    );
    for (title, text) in steps {
        html.push_str(&format!("<h2>{title}</h2>\n<pre>{}</pre>\n", escape(text)));
    }
    html.push_str("<h2>Derivative files</h2>\n<ul>\n");
    for f in files {
        let path = format!("sub-{label}/{}", f.display());
        html.push_str(&format!("<li><a href=\"{path}\">{path}</a></li>\n"));
    }
    html.push_str("</ul>\n<h2>On the cortex</h2>\n");
    for dir in ["encoding/cortex", "glm/cortex"] {
        for picture in pictures(&opts.output_dir.join(&work).join(dir), &opts.output_dir) {
            html.push_str(&format!(
                "<p><img src=\"{picture}\" alt=\"{picture}\" style=\"max-width:100%\"></p>\n"
            ));
        }
    }
    html.push_str("</body></html>\n");
    Ok(write_bytes_atomic(
        &opts.output_dir.join(format!("sub-{label}.html")),
        html.as_bytes(),
    )?)
}

fn group_level(opts: &BidsAppOptions) -> Result<BidsAppReport> {
    let labels = participants(
        &opts.output_dir,
        &opts.participant_labels,
        "OUTPUT_DIR (the participant level's output)",
    )?;
    let mut prepared = Vec::new();
    let mut hashes = Vec::new();
    for label in &labels {
        let func = opts.output_dir.join(format!("sub-{label}")).join("func");
        let sidecar = std::fs::read_dir(&func)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name().is_some_and(|n| {
                    n.to_string_lossy()
                        .ends_with("_desc-singletrial_betas.json")
                })
            })
            .ok_or_else(|| DataError::Missing {
                path: func.join(format!("sub-{label}_*_desc-singletrial_betas.json")),
                what: format!("participant {label}'s finished participant level: run it first"),
            })?;
        let meta: Value = read_json(&sidecar)?;
        hashes.push(json!({"participant": label, "hash": meta["SettingsHash"]}));
        prepared.push(
            opts.output_dir
                .join(WORK)
                .join(format!("sub-{label}"))
                .join("prepared"),
        );
    }
    if labels.len() < 2 {
        return Err(RouteError::Usage(format!(
            "group: a shared space needs at least 2 finished participants, found {}",
            labels.len()
        )));
    }
    let work = opts.output_dir.join(WORK);
    let group = work.join("group");
    let settings_path = work.join("group-settings.json");
    let report = opts.output_dir.join("group.html");
    let settings = json!({
        "participants": hashes,
        "dimensions": opts.group_dimensions,
        "features": FEATURES,
        "version": env!("CARGO_PKG_VERSION"),
    });
    let space = group.join("spaces").join("shared");
    let outcome = |skipped| GroupOutcome {
        participants: labels.clone(),
        skipped,
        space: space.clone(),
        report: report.clone(),
    };
    if group_done(&opts.output_dir)
        && read_json::<Value>(&settings_path).ok() == Some(settings.clone())
    {
        return Ok(BidsAppReport {
            level: Level::Group,
            output_dir: opts.output_dir.clone(),
            participants: Vec::new(),
            group: Some(outcome(true)),
        });
    }
    // Another group (other participants or settings) is made again from the start.
    let _ = std::fs::remove_file(&settings_path);
    if group.exists() {
        std::fs::remove_dir_all(&group).map_err(|e| DataError::io(&group, e))?;
    }
    let prepared_report = prepare_group(&GroupPrepareRequest {
        subjects: prepared,
        out: group.clone(),
        roi: "nsdgeneral".into(),
        kinds: vec![FEATURES.into()],
        align_share: 0.5,
        seed: 0,
    })?;
    let fitted = fit_group(
        &GroupFitRequest {
            group: group.clone(),
            method: "shared".into(),
            name: None,
            k: opts.group_dimensions,
            n_iter: 10,
            seed: 0,
            targets: vec!["z".into()],
            cv: "5".into(),
        },
        &mut |_| {},
    )?;
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>brainrecon: group</title></head><body>\n<h1>Group of {}</h1>\n<h2>Participants</h2>\n<pre>{}</pre>\n<h2>Shared space</h2>\n<pre>{}</pre>\n<p>The space, its maps, pooled subject and decoders: <a href=\"{WORK}/group/spaces/shared\">{WORK}/group/spaces/shared</a></p>\n</body></html>\n",
        labels.len(),
        escape(&prepared_report.text()),
        escape(&fitted.text()),
    );
    write_bytes_atomic(&report, html.as_bytes())?;
    write_json_atomic(&settings_path, &settings)?;
    Ok(BidsAppReport {
        level: Level::Group,
        output_dir: opts.output_dir.clone(),
        participants: Vec::new(),
        group: Some(outcome(false)),
    })
}
