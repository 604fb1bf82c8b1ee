//! A lab's own event-related experiment: the folder `brainrecon glm` writes (GLMsingle's
//! models over an fMRIPrep run set) and the prepared subject made from it.
//!
//! ```text
//! glm.json                         GlmMeta: trials in betasmd's column order, conditions, choices
//! timeseries/                      the masked runs (a run set) and voxels.npy
//! TYPEA_ONOFF/ TYPEB_FITHRF/ TYPEC_FITHRF_GLMDENOISE/ TYPED_FITHRF_GLMDENOISE_RR/
//!   betasmd.npy                    float32 (voxels, trials), percent signal change
//! ```

pub mod atlas;
pub mod prepare;

use crate::error::{DataError, Result};
use crate::runs::trials::Trial;
use crate::runs::RunSet;
use brainrecon_core::fs::read_json;
use brainrecon_formats::npy;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `glm.json`'s format name.
pub const GLM_FORMAT: &str = "brainrecon-glm";
/// `glm.json`'s format version.
pub const GLM_VERSION: u32 = 1;

/// GLMsingle's four models, by the folder names it writes.
pub const MODELS: [&str; 4] = [
    "TYPEA_ONOFF",
    "TYPEB_FITHRF",
    "TYPEC_FITHRF_GLMDENOISE",
    "TYPED_FITHRF_GLMDENOISE_RR",
];

/// `glm.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GlmMeta {
    /// [`GLM_FORMAT`].
    pub format: String,
    /// [`GLM_VERSION`].
    pub version: u32,
    /// The subject label (`01`).
    pub subject: String,
    /// Seconds per volume.
    pub tr: f64,
    /// Seconds each stimulus lasts (GLMsingle's `stimdur`).
    pub stimdur: f64,
    /// Voxels: rows of every `betasmd.npy`.
    pub n_voxels: usize,
    /// The masked runs (a run set in the recordings' units) and their voxels.
    pub timeseries: String,
    /// The runs fitted, by run-set name, in order.
    pub runs: Vec<String>,
    /// The events column the conditions were read from.
    pub condition_column: String,
    /// Distinct conditions, in order of first appearance.
    pub conditions: Vec<String>,
    /// In GLMsingle's order (run, then onset): the order of betasmd's columns.
    pub trials: Vec<Trial>,
    /// The largest distance between an onset and its volume's time, seconds.
    pub largest_onset_rounding_seconds: f64,
    /// Drift polynomial degree per run (GLMsingle's `maxpolydeg`).
    pub polynomial_degrees: Vec<usize>,
    /// Extra regressors per run projected out with the polynomials (fMRIPrep's confounds), by name.
    pub extra_regressors: Vec<String>,
    /// Per run, the leading volumes fMRIPrep flags as non-steady-state, left out of the fit
    /// (a trial's `volume` still counts from the run's first volume).
    pub dropped_volumes: Vec<usize>,
    /// Threshold of the on/off R² for the noise pool (GLMsingle's `brainR2`; NaN when its
    /// distribution has no two modes).
    pub r2_threshold: f64,
    /// Noise components used by TYPEC and TYPED; none without GLMdenoise.
    pub pcnum: Option<usize>,
    /// The model folders written (of [`MODELS`]).
    pub models: Vec<String>,
    /// What was skipped and why, as GLMsingle's warnings.
    pub notes: Vec<String>,
    /// What the fit reproduces (GLMsingle's version).
    pub reference: String,
    /// The command's settings (fmriprep, bids_root, subject, tasks, space, ...).
    pub settings: serde_json::Value,
}

impl GlmMeta {
    /// A path the settings name (`fmriprep`, `bids_root`), if any.
    pub fn setting_path(&self, key: &str) -> Option<PathBuf> {
        self.settings[key].as_str().map(PathBuf::from)
    }

    /// The fMRIPrep output space the runs were read in (`T1w`, `MNI152NLin2009cAsym:res-2`).
    pub fn space(&self) -> Option<&str> {
        self.settings["space"].as_str()
    }
}

/// A finished `glm` folder, checked.
pub struct GlmFolder {
    /// The folder.
    pub root: PathBuf,
    /// Its `glm.json`.
    pub meta: GlmMeta,
    /// The masked runs the GLM was fitted to.
    pub timeseries: RunSet,
}

impl GlmFolder {
    /// Opens and checks a `brainrecon glm` folder. Errors: no `glm.json`, another format or
    /// version, a run set whose voxel count differs, a trial naming a run or condition that is not
    /// there; each naming the file.
    pub fn open(root: &Path) -> Result<Self> {
        let path = root.join("glm.json");
        if !path.is_file() {
            return Err(DataError::Missing {
                path,
                what: "a finished `brainrecon glm` folder (glm.json)".into(),
            });
        }
        let meta: GlmMeta = read_json(&path)?;
        if meta.format != GLM_FORMAT || meta.version != GLM_VERSION {
            return Err(DataError::invalid(
                &path,
                "format",
                format!("{GLM_FORMAT} version {GLM_VERSION}"),
                format!("{} version {}", meta.format, meta.version),
            ));
        }
        let timeseries = RunSet::open(&root.join(&meta.timeseries))?;
        if timeseries.n_voxels() != meta.n_voxels {
            return Err(DataError::invalid(
                &path,
                "n_voxels",
                format!(
                    "{} (the voxels of {})",
                    timeseries.n_voxels(),
                    meta.timeseries
                ),
                meta.n_voxels.to_string(),
            ));
        }
        let n_runs = timeseries.runs().len();
        let n_conditions = meta.conditions.len();
        if let Some((i, t)) = meta
            .trials
            .iter()
            .enumerate()
            .find(|(_, t)| t.run >= n_runs || t.condition >= n_conditions)
        {
            return Err(DataError::invalid(
                &path,
                format!("trials[{i}]"),
                format!("a run below {n_runs} and a condition below {n_conditions}"),
                format!("run {}, condition {}", t.run, t.condition),
            ));
        }
        Ok(GlmFolder {
            root: root.to_path_buf(),
            meta,
            timeseries,
        })
    }

    /// A model's single-trial betas, mapped: (voxels, trials) float32.
    pub fn betas(&self, model: &str) -> Result<npy::MappedF32> {
        let path = self.root.join(model).join("betasmd.npy");
        if !MODELS.contains(&model) || !path.is_file() {
            return Err(DataError::Missing {
                path,
                what: format!(
                    "the betas of GLMsingle's {model} (this fit made {})",
                    self.meta.models.join(", ")
                ),
            });
        }
        let betas = npy::MappedF32::open(&path)?;
        let expected = [self.meta.n_voxels, self.meta.trials.len()];
        if betas.shape() != expected {
            return Err(DataError::invalid(
                &path,
                "shape",
                format!("{expected:?} (voxels, trials of glm.json)"),
                format!("{:?}", betas.shape()),
            ));
        }
        Ok(betas)
    }

    /// Each trial's session (see [`run_sessions`]).
    pub fn trial_sessions(&self) -> Vec<usize> {
        let run_session = run_sessions(&self.timeseries);
        self.meta
            .trials
            .iter()
            .map(|t| run_session[t.run])
            .collect()
    }
}

/// Each run's session, numbered from 1 in order of first appearance (GLMsingle's
/// sessionindicator; runs without a session label are one session).
pub fn run_sessions(set: &RunSet) -> Vec<usize> {
    let mut seen: Vec<Option<&str>> = Vec::new();
    set.runs()
        .iter()
        .map(|r| {
            let s = r.session.as_deref();
            match seen.iter().position(|x| *x == s) {
                Some(i) => i + 1,
                None => {
                    seen.push(s);
                    seen.len()
                }
            }
        })
        .collect()
}
