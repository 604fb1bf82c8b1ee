//! The GLM folder: an event-related experiment (fMRIPrep's runs and BIDS events, or NSD's time
//! series and designs) → `glm.json`, `timeseries/` and GLMsingle's four model folders.
//!
//! ```text
//! <out>/glm.json                      GlmMeta: trials in betasmd's column order, the choices made
//! <out>/timeseries/                   the masked runs in their units, as a run set
//! <out>/TYPEA_ONOFF/                  onoffR2, meanvol (.npy + map), betasmd (voxels,)
//! <out>/TYPEB_FITHRF/                 HRFindex, R2 (.npy + map), betasmd (voxels, trials)
//! <out>/TYPEC_FITHRF_GLMDENOISE/      + noisepool, pcvoxels, glmbadness, xvaltrend
//! <out>/TYPED_FITHRF_GLMDENOISE_RR/   + FRACvalue (.npy + map), scaleoffset, rrbadness
//! ```
//!
//! The folder itself is the unit of resumption: an interrupted fit leaves `timeseries/` and
//! `.stages/` (TYPEA, TYPEB, GLMdenoise as they finish) inside it, and a rerun with the same
//! settings continues from them; `glm.json`, written last, marks the folder finished. Each
//! model folder is written whole beside its place (`<name>.partial`) and renamed into it.

use super::stages::DirStages;
use crate::{Result, RouteError};
use brainrecon_core::fs::{read_json, write_folder_atomic, write_json_atomic};
use brainrecon_core::DataError;
use brainrecon_datasets::experiment::{run_sessions, GlmMeta, GLM_FORMAT, GLM_VERSION};
use brainrecon_datasets::fmriprep::confounds::{
    Strategy, DEFAULT_FD_THRESHOLD, DEFAULT_STD_DVARS_THRESHOLD,
};
use brainrecon_datasets::fmriprep::{FmriprepOptions, Space, DEFAULT_SPACE};
use brainrecon_datasets::nsd::{self, timeseries as nsd_timeseries};
use brainrecon_datasets::runs::prepare::{
    prepare, prepare_fmriprep, Layout, MaskChoice, PrepareOptions,
};
use brainrecon_datasets::runs::trials::{
    check_event_files, confound_regressors, leading_non_steady_state, read_trials, TrialOptions,
    Trials,
};
use brainrecon_datasets::runs::RunSet;
use brainrecon_formats::npy;
use brainrecon_glm::fit::Run;
use brainrecon_glm::glmsingle::{glm_single_resumable, Denoised, GlmSingle, Params};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where the runs and their events come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// fMRIPrep's output folder and the raw BIDS dataset holding the events.
    Fmriprep {
        /// fMRIPrep's output folder (preprocessed BOLD, masks, confounds).
        fmriprep: PathBuf,
        /// The raw BIDS dataset, for the runs' events.
        bids_root: PathBuf,
    },
    /// NSD's root folder: its time series and designs (nsddata_timeseries, 1.8 mm).
    Nsd(PathBuf),
}

impl Source {
    /// The source `glm`'s flags name: NSD's root, else fMRIPrep's output with the raw
    /// dataset and at least one task.
    pub fn from_flags(
        nsd: Option<PathBuf>,
        fmriprep: Option<PathBuf>,
        bids_root: Option<PathBuf>,
        has_tasks: bool,
    ) -> Result<Source> {
        match (nsd, fmriprep, bids_root) {
            (Some(nsd), _, _) => Ok(Source::Nsd(nsd)),
            (None, Some(fmriprep), Some(bids_root)) if has_tasks => Ok(Source::Fmriprep {
                fmriprep,
                bids_root,
            }),
            _ => Err(usage(
                "--fmriprep, --bids-root and --task are required (or --nsd)",
            )),
        }
    }
}

/// What to fit into which folder, as `brainrecon glm` takes it.
#[derive(Debug, Clone)]
pub struct GlmOptions {
    /// Where the runs and events come from.
    pub source: Source,
    /// `01` or `sub-01` (NSD: `1` or `subj01`).
    pub subject: String,
    /// Tasks to read (NSD: ignored, its task is fixed).
    pub tasks: Vec<String>,
    /// Sessions to read, a trailing `*` matching every session it begins (NSD: numbers);
    /// empty for all.
    pub sessions: Vec<String>,
    /// fMRIPrep's output space (`LABEL[:res-N]` or `fsLR[:den-D]`); None for the default.
    pub space: Option<String>,
    /// A brain mask on the runs' grid instead of fMRIPrep's (or NSD's) masks.
    pub mask: Option<PathBuf>,
    /// fMRIPrep confounds projected out with the drift polynomials (`none` for none).
    pub confounds: String,
    /// The events column naming each trial's condition; None for stim_file, else trial_type.
    pub condition_column: Option<String>,
    /// Seconds each stimulus lasts; None for the median of the trials' durations.
    pub stimdur: Option<f64>,
    /// The GLM folder to write (GLMsingle's models, `glm.json`, the time series).
    pub out: PathBuf,
    /// Where the final model's R² and HRF index are drawn on the cortex (OUT/cortex/;
    /// `auto`: a simulation's on fsaverage5).
    pub cortex: brainrecon_cortex::report::CortexChoice,
    /// Progress bars and stage lines on standard error.
    pub progress: bool,
}

/// What [`fit_folder`] did.
#[derive(Debug, Clone)]
pub struct GlmOutcome {
    /// The folder's `glm.json`.
    pub meta: GlmMeta,
    /// The folder was already fitted with the same settings: nothing was done.
    pub already: bool,
    /// The stages taken from an interrupted fit (`typea`, `typeb`, `glmdenoise`).
    pub resumed: Vec<&'static str>,
    /// A finished stage that could not be kept for resuming, and why.
    pub stage_not_kept: Option<String>,
}

impl GlmOutcome {
    /// What standard error hears before the summary: the stages resumed from an interrupted
    /// fit, and a warning when a finished stage could not be kept for resuming.
    pub fn notes(&self) -> Vec<String> {
        let resumed = (!self.resumed.is_empty())
            .then(|| format!("resumed the interrupted fit's {}", self.resumed.join(", ")));
        let not_kept = self.stage_not_kept.as_ref().map(|failed| {
            format!("warning: a finished stage could not be kept for resuming ({failed})")
        });
        resumed.into_iter().chain(not_kept).collect()
    }

    /// The summary as `glm` prints it, one line each; `out` is the fit's folder.
    pub fn text(&self, out: &Path) -> String {
        use std::fmt::Write;
        let meta = &self.meta;
        let mut text = String::new();
        if self.already {
            let _ = writeln!(
                text,
                "{} is already fitted with these settings",
                out.display()
            );
            return text;
        }
        let _ = writeln!(
            text,
            "fitted sub-{} into {}: {} runs, {} trials of {} conditions ({} column), {} voxels, stimulus {} s",
            meta.subject,
            out.display(),
            meta.runs.len(),
            meta.trials.len(),
            meta.conditions.len(),
            meta.condition_column,
            meta.n_voxels,
            meta.stimdur
        );
        let _ = writeln!(
            text,
            "models: {}; GLMdenoise components: {}; on/off R² threshold {:.2}; onsets moved to their volume by at most {:.3} s",
            meta.models.join(", "),
            meta.pcnum.map_or("none".into(), |p| p.to_string()),
            meta.r2_threshold,
            meta.largest_onset_rounding_seconds
        );
        for note in &meta.notes {
            let _ = writeln!(text, "note: {note}");
        }
        text
    }
}

/// What a rerun must match to count as done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fmriprep: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bids_root: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nsd: Option<PathBuf>,
    subject: String,
    tasks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sessions: Vec<String>,
    space: String,
    mask: Option<PathBuf>,
    confounds: String,
    condition_column: Option<String>,
    stimdur: Option<f64>,
}

const REFERENCE: &str = "GLMsingle (cvnlab/GLMsingle 1ab54a6) GLM_single.fit with its defaults: checked against it in crates/glm/tests";

fn usage(message: impl Into<String>) -> RouteError {
    RouteError::Usage(message.into())
}

/// GLMsingle's four models of an experiment, written into `opts.out` (see the module's doc):
/// a new or empty folder is fitted, one an interrupted fit left is resumed, one finished with
/// the same settings is left as it is. A failed fit removes a folder it created.
pub fn fit_folder(opts: &GlmOptions) -> Result<GlmOutcome> {
    let opts = normalised(opts)?;
    let settings = settings(&opts)?;
    let meta_path = opts.out.join("glm.json");
    if meta_path.is_file() {
        let meta: GlmMeta = read_json(&meta_path)?;
        if meta.settings == settings_value(&settings) {
            return Ok(GlmOutcome {
                meta,
                already: true,
                resumed: Vec::new(),
                stage_not_kept: None,
            });
        }
        return Err(DataError::invalid(
            &opts.out,
            "--out",
            "a new folder, or one fitted with the same settings",
            "a folder fitted with other settings: choose another --out or remove it",
        )
        .into());
    }
    let created = !opts.out.exists();
    if !created && !resumable(&opts.out) {
        return Err(DataError::invalid(
            &opts.out,
            "--out",
            "a new or empty folder, or one an interrupted `glm` left (holding timeseries/)",
            "a folder with other contents",
        )
        .into());
    }
    let result = fit_into(&opts, settings);
    if result.is_err() && created {
        // Nothing half-written: a failed run leaves no folder it made.
        let _ = std::fs::remove_dir_all(&opts.out);
    }
    result
}

/// NSD's task, condition column and stimulus duration are fixed by its layout; its sessions and
/// subject are written as its file names write them.
fn normalised(opts: &GlmOptions) -> Result<GlmOptions> {
    let mut opts = opts.clone();
    if let Source::Nsd(_) = opts.source {
        opts.tasks = vec![nsd_timeseries::TASK.into()];
        opts.condition_column = Some(nsd_timeseries::ID_COLUMN.into());
        opts.stimdur = Some(nsd_timeseries::STIMULUS_SECONDS);
        opts.sessions = nsd_sessions(&opts.sessions)?;
        opts.subject = format!("{:02}", nsd::parse_subject(&opts.subject)?);
    }
    Ok(opts)
}

/// NSD's session numbers as its file names write them (`1` → `01`).
fn nsd_sessions(sessions: &[String]) -> Result<Vec<String>> {
    sessions
        .iter()
        .map(|s| {
            let digits = s.trim().trim_start_matches("session");
            match digits.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(format!("{n:02}")),
                _ => Err(usage(format!(
                    "--session: expected an NSD session number such as 1 or 01, found '{s}'"
                ))),
            }
        })
        .collect()
}

fn settings_value(settings: &Settings) -> serde_json::Value {
    serde_json::to_value(settings).expect("settings serialise")
}

/// An empty folder, or one holding the time series of an interrupted run.
fn resumable(out: &Path) -> bool {
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            entries.next().is_none()
                || out.join("timeseries").is_dir()
                || out.join("timeseries.partial").is_dir()
        }
        Err(_) => false,
    }
}

/// The fit of a folder that is new or resumed: time series, trials, models, `glm.json`.
fn fit_into(opts: &GlmOptions, settings: Settings) -> Result<GlmOutcome> {
    if let Source::Fmriprep { bids_root, .. } = &opts.source {
        check_event_files(
            bids_root,
            &settings.subject,
            &opts.tasks,
            &opts.sessions,
            opts.condition_column.as_deref(),
        )?;
    }
    let set = time_series(opts, &settings)?;
    let trials = read_trials(
        &set,
        &TrialOptions {
            condition_column: opts.condition_column.clone(),
            stimdur: opts.stimdur,
        },
    )?;
    let identity = serde_json::json!({
        "settings": &settings,
        "voxels": set.n_voxels(),
        "trials": trials.trials.len(),
    });
    let mut kept = DirStages::open(&opts.out, &identity)?;
    let fitted = fit(&set, &trials, &mut kept, opts.progress)?;
    write_models(&set, &opts.out, &fitted.fit)?;
    write_cortex(&set, opts, &fitted.fit)?;
    let meta = glm_meta(&set, &trials, &fitted, &settings);
    write_json_atomic(&opts.out.join("glm.json"), &meta)?;
    let (resumed, stage_not_kept) = (kept.resumed.clone(), kept.failed.clone());
    kept.finish()?;
    Ok(GlmOutcome {
        meta,
        already: false,
        resumed,
        stage_not_kept,
    })
}

fn settings(opts: &GlmOptions) -> Result<Settings> {
    let (fmriprep, bids_root, nsd) = match &opts.source {
        Source::Fmriprep {
            fmriprep,
            bids_root,
        } => (
            Some(canonical(fmriprep)?),
            Some(canonical(bids_root)?),
            None,
        ),
        Source::Nsd(root) => (None, None, Some(canonical(root)?)),
    };
    Ok(Settings {
        fmriprep,
        bids_root,
        nsd,
        subject: opts.subject.trim_start_matches("sub-").to_string(),
        tasks: opts.tasks.clone(),
        sessions: opts.sessions.clone(),
        space: Space::parse(opts.space.as_deref().unwrap_or(DEFAULT_SPACE))?.label(),
        mask: opts.mask.as_deref().map(canonical).transpose()?,
        confounds: opts.confounds.clone(),
        condition_column: opts.condition_column.clone(),
        stimdur: opts.stimdur,
    })
}

fn canonical(path: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(path).map_err(|_| {
        DataError::Missing {
            path: path.to_path_buf(),
            what: "a folder or file named on the command line".into(),
        }
        .into()
    })
}

/// The masked runs in their units, as a run set under `<out>/timeseries` (resumable).
fn time_series(opts: &GlmOptions, settings: &Settings) -> Result<RunSet> {
    let strategy = Strategy::parse(
        &opts.confounds,
        DEFAULT_FD_THRESHOLD,
        DEFAULT_STD_DVARS_THRESHOLD,
    )?;
    if strategy.scrub.is_some() {
        return Err(usage(
            "--confounds: scrub censors volumes, which a GLM over whole runs cannot leave out; drop scrub (non-steady-state volumes get spike regressors)",
        ));
    }
    let out = opts.out.join("timeseries");
    let (root, layout, fmriprep) = match &opts.source {
        Source::Fmriprep {
            fmriprep,
            bids_root,
        } => (
            fmriprep,
            Layout::Fmriprep,
            Some(FmriprepOptions {
                space: Space::parse(&settings.space)?,
                strategy,
                raw_root: Some(bids_root.clone()),
            }),
        ),
        Source::Nsd(root) => (root, Layout::Nsd, None),
    };
    let prepare_opts = PrepareOptions {
        root: root.clone(),
        subject: opts.subject.clone(),
        tasks: opts.tasks.clone(),
        sessions: opts.sessions.clone(),
        out: out.clone(),
        layout,
        mask: opts.mask.clone().map_or(MaskChoice::Auto, MaskChoice::File),
        detrend: None,
        drop_seconds: None,
        progress: opts.progress,
        keep_units: true,
    };
    std::fs::create_dir_all(&opts.out).map_err(|e| DataError::io(&opts.out, e))?;
    match &fmriprep {
        Some(fmriprep) => prepare_fmriprep(&prepare_opts, fmriprep)?,
        None => prepare(&prepare_opts)?,
    };
    Ok(RunSet::open(&out)?)
}

/// What the fit made and chose.
struct Fitted {
    fit: GlmSingle,
    params: Params,
    extra_regressors: Vec<String>,
    /// Per run, the leading non-steady-state volumes left out.
    dropped: Vec<usize>,
}

/// GLMsingle's four models on the run set's trials, each run from its first steady-state
/// volume.
fn fit(set: &RunSet, trials: &Trials, kept: &mut DirStages, progress: bool) -> Result<Fitted> {
    let n_runs = set.runs().len();
    let first: Vec<usize> = (0..n_runs)
        .map(|i| leading_non_steady_state(set, i))
        .collect();
    for (run, &drop) in set.runs().iter().zip(&first) {
        if run.n_trs < drop + 2 {
            return Err(DataError::invalid(
                run.confounds.as_ref().map_or(&run.source_file, |c| &c.file),
                "non_steady_state_outlier",
                "a run with at least two steady-state volumes after the flagged ones",
                format!("{drop} of its {} volumes flagged", run.n_trs),
            )
            .into());
        }
    }
    let data = (0..n_runs)
        .map(|i| set.run_data(i))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let designs = (0..n_runs)
        .map(|i| {
            let run = &set.runs()[i];
            let events = set.root().join(run.events.as_deref().unwrap_or_default());
            trials.design(i, first[i], run.n_trs, &events)
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let extras = (0..n_runs)
        .map(|i| confound_regressors(set, i, first[i]))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let voxels = set.n_voxels();
    let runs: Vec<Run> = (0..n_runs)
        .map(|i| Run {
            data: &data[i].as_slice()[first[i] * voxels..],
            design: &designs[i],
            n_times: set.runs()[i].n_trs - first[i],
            extra: &extras[i].1,
        })
        .collect();
    let n_times: Vec<usize> = runs.iter().map(|r| r.n_times).collect();
    let mut params = Params::new(trials.stimdur, set.tr(), &n_times);
    params.session_of_run = run_sessions(set);
    if progress {
        eprintln!(
            "fitting GLMsingle's models: {} voxels, {} runs, {} trials of {} conditions",
            set.n_voxels(),
            n_runs,
            trials.trials.len(),
            trials.conditions.len()
        );
    }
    let fit = glm_single_resumable(
        &runs,
        set.n_voxels(),
        trials.conditions.len(),
        &params,
        kept,
    )
    .map_err(|e| usage(e.to_string()))?;
    Ok(Fitted {
        fit,
        params,
        extra_regressors: extras.first().map(|e| e.0.clone()).unwrap_or_default(),
        dropped: first,
    })
}

fn f32s(values: &[f64]) -> Vec<f32> {
    values.iter().map(|&v| v as f32).collect()
}

/// One model's folder being written (its staging folder).
struct ModelWriter<'a> {
    set: &'a RunSet,
    staging: &'a Path,
    voxels: usize,
}

impl ModelWriter<'_> {
    fn values(&self, name: &str, values: &[f64], per_voxel: usize) -> Result<()> {
        let shape: Vec<usize> = match per_voxel {
            1 => vec![self.voxels],
            k => vec![self.voxels, k],
        };
        npy::write(
            &self.staging.join(format!("{name}.npy")),
            &shape,
            &f32s(values),
        )?;
        Ok(())
    }

    /// The `.npy`, and the map as NIfTI (CIFTI runs: `.dscalar.nii`).
    fn map(&self, name: &str, values: &[f64]) -> Result<()> {
        self.values(name, values, 1)?;
        self.set
            .write_voxel_map(&self.staging.join(format!("{name}.nii.gz")), &f32s(values))?;
        Ok(())
    }

    fn flags(&self, name: &str, values: &[bool]) -> Result<()> {
        let bytes: Vec<u8> = values.iter().map(|&b| u8::from(b)).collect();
        npy::write(
            &self.staging.join(format!("{name}.npy")),
            &[self.voxels],
            &bytes,
        )?;
        Ok(())
    }

    fn hrf_index(&self, index: &[usize]) -> Result<()> {
        let values: Vec<f64> = index.iter().map(|&i| i as f64).collect();
        self.map("HRFindex", &values)
    }
}

/// The final model's R² and HRF index on the cortex, written whole into OUT/cortex/ (no
/// cortex applies: nothing). CIFTI run sets are left to Workbench: their grayordinates already
/// lie on a surface the `.dscalar.nii` maps name.
fn write_cortex(set: &RunSet, opts: &GlmOptions, fit: &GlmSingle) -> Result<()> {
    use brainrecon_cortex::report::{resolve, write_cortex_maps, MapKind, VoxelMapSpec};
    if set.meta().grayordinates.is_some() {
        return Ok(());
    }
    let simulated = match &opts.source {
        Source::Fmriprep { bids_root, .. } => {
            brainrecon_datasets::simulated::is_simulated(bids_root)
        }
        Source::Nsd(root) => brainrecon_datasets::simulated::is_simulated(root),
    };
    let grid = brainrecon_cortex::place::VoxelGrid {
        shape: set.volume_shape(),
        affine: set.affine(),
        voxels: set.voxel_indices(),
    };
    let Some(placed) = resolve(&opts.cortex, &grid, simulated)? else {
        return Ok(());
    };
    let (model, r2, hrf) = match (&fit.typed, &fit.typec) {
        (Some(d), _) => ("TYPED_FITHRF_GLMDENOISE_RR", &d.r2, &d.hrf_index),
        (None, Some(c)) => ("TYPEC_FITHRF_GLMDENOISE", &c.r2, &c.hrf_index),
        (None, None) => ("TYPEB_FITHRF", &fit.typeb.r2, &fit.typeb.hrf_index),
    };
    let hrf: Vec<f64> = hrf.iter().map(|&i| i as f64).collect();
    let maps = [
        VoxelMapSpec {
            name: format!("R² (%), {model}"),
            values: r2,
            kind: MapKind::Positive { threshold: None },
        },
        VoxelMapSpec {
            name: format!("HRF index, {model}"),
            values: &hrf,
            kind: MapKind::Positive { threshold: None },
        },
    ];
    write_folder_atomic(&opts.out.join("cortex"), |staging| {
        write_cortex_maps(staging, &placed, &maps, None).map(|_| ())
    })?;
    Ok(())
}

/// GLMsingle's model folders of `fit` under `out`, each written whole and renamed into place.
fn write_models(set: &RunSet, out: &Path, fit: &GlmSingle) -> Result<()> {
    let trials = fit.typeb.stim_order.len();
    let model = |name: &str, write: &dyn Fn(&ModelWriter) -> Result<()>| -> Result<()> {
        write_folder_atomic(&out.join(name), |staging| {
            write(&ModelWriter {
                set,
                staging,
                voxels: set.n_voxels(),
            })
        })
    };
    model("TYPEA_ONOFF", &|w| {
        w.map("onoffR2", &fit.typea.onoff_r2)?;
        w.map("meanvol", &fit.typea.meanvol)?;
        w.values("betasmd", &fit.typea.betasmd, 1)
    })?;
    model("TYPEB_FITHRF", &|w| {
        w.hrf_index(&fit.typeb.hrf_index)?;
        w.map("R2", &fit.typeb.r2)?;
        w.values("betasmd", &fit.typeb.betasmd, trials)
    })?;
    let denoised = |w: &ModelWriter, d: &Denoised| -> Result<()> {
        w.hrf_index(&d.hrf_index)?;
        w.map("R2", &d.r2)?;
        w.values("betasmd", &d.betasmd, trials)?;
        if let Some(g) = &fit.denoise {
            w.flags("noisepool", &g.noisepool)?;
            w.flags("pcvoxels", &g.pcvoxels)?;
            if !g.glmbadness.is_empty() {
                w.values("glmbadness", &g.glmbadness, g.xvaltrend.len())?;
                npy::write(
                    &w.staging.join("xvaltrend.npy"),
                    &[g.xvaltrend.len()],
                    &f32s(&g.xvaltrend),
                )?;
            }
        }
        Ok(())
    };
    if let Some(c) = &fit.typec {
        model("TYPEC_FITHRF_GLMDENOISE", &|w| denoised(w, c))?;
    }
    if let Some(d) = &fit.typed {
        model("TYPED_FITHRF_GLMDENOISE_RR", &|w| {
            denoised(w, d)?;
            w.map("FRACvalue", &d.frac_value)?;
            if !d.scaleoffset.is_empty() {
                w.values("scaleoffset", &d.scaleoffset, 2)?;
            }
            if !d.rrbadness.is_empty() {
                w.values("rrbadness", &d.rrbadness, d.rrbadness.len() / w.voxels)?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

fn glm_meta(set: &RunSet, trials: &Trials, fitted: &Fitted, settings: &Settings) -> GlmMeta {
    let fit = &fitted.fit;
    let mut models = vec!["TYPEA_ONOFF".to_string(), "TYPEB_FITHRF".into()];
    if fit.typec.is_some() {
        models.push("TYPEC_FITHRF_GLMDENOISE".into());
    }
    if fit.typed.is_some() {
        models.push("TYPED_FITHRF_GLMDENOISE_RR".into());
    }
    GlmMeta {
        format: GLM_FORMAT.into(),
        version: GLM_VERSION,
        subject: set.meta().subject.clone(),
        tr: set.tr(),
        stimdur: trials.stimdur,
        n_voxels: set.n_voxels(),
        timeseries: "timeseries".into(),
        runs: set.runs().iter().map(|r| r.name.clone()).collect(),
        condition_column: trials.column.clone(),
        conditions: trials.conditions.clone(),
        trials: trials.trials.clone(),
        largest_onset_rounding_seconds: trials.largest_rounding,
        polynomial_degrees: fitted.params.degrees.clone(),
        extra_regressors: fitted.extra_regressors.clone(),
        dropped_volumes: fitted.dropped.clone(),
        r2_threshold: fit.r2_threshold,
        pcnum: fit.denoise.as_ref().map(|d| d.pcnum),
        models,
        notes: fit.notes.clone(),
        reference: REFERENCE.into(),
        settings: settings_value(settings),
    }
}

/// The model folder of GLMsingle's type named `typea`, `typeb`, `typec` or `typed` (any case).
pub fn model_folder(name: &str) -> Result<&'static str> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "typea" => "TYPEA_ONOFF",
        "typeb" => "TYPEB_FITHRF",
        "typec" => "TYPEC_FITHRF_GLMDENOISE",
        "typed" => "TYPED_FITHRF_GLMDENOISE_RR",
        _ => {
            return Err(usage(format!(
                "--betas: expected typea, typeb, typec or typed, found '{name}'"
            )))
        }
    })
}
