//! `brainrecon glm`: an event-related experiment preprocessed by fMRIPrep → single-trial betas
//! by GLMsingle's method (TYPEA–TYPED), written under GLMsingle's names.

use brainrecon_data::atomic::{read_json, write_json_atomic};
use brainrecon_data::experiment::{run_sessions, GlmMeta, GLM_FORMAT, GLM_VERSION};
use brainrecon_data::npy;
use brainrecon_data::nsd::{self, timeseries as nsd_timeseries};
use brainrecon_data::runs::confounds::{
    Strategy, DEFAULT_FD_THRESHOLD, DEFAULT_STD_DVARS_THRESHOLD,
};
use brainrecon_data::runs::fmriprep::{FmriprepOptions, Space, DEFAULT_SPACE};
use brainrecon_data::runs::prepare::{
    prepare, prepare_fmriprep, Layout, MaskChoice, PrepareOptions,
};
use brainrecon_data::runs::trials::{
    check_event_files, confound_regressors, leading_non_steady_state, read_trials, TrialOptions,
    Trials,
};
use brainrecon_data::runs::RunSet;
use brainrecon_data::DataError;
use brainrecon_glm::fit::Run;
use brainrecon_glm::glmsingle::{glm_single_resumable, Denoised, GlmSingle, Params};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

mod compare;
mod prepare;
mod stages;

/// Single-trial betas of an fMRIPrep-preprocessed event-related experiment, by GLMsingle's method
///
/// GLMsingle (Prince et al. 2022): TYPEA on/off, TYPEB the best of its 20 library HRFs per
/// voxel, TYPEC plus GLMdenoise, TYPED plus fractional ridge per voxel.
///
/// Reads fMRIPrep's sub-<S>/[ses-*/]func/*_task-<T>_[run-<N>_]space-<SPACE>_desc-preproc_bold.nii.gz
/// (in their units: no detrending or z-scoring; GLMsingle models drifts with per-run
/// polynomials of degree round(minutes / 2)), or with --space fsLR its CIFTI runs
/// (*_space-fsLR_den-91k_bold.dtseries.nii: every grayordinate, maps as .dscalar.nii), the runs'
/// brain masks (intersected; or --mask),
/// RepetitionTime, and the events of the raw BIDS dataset (--bids-root): each row whose
/// condition column (--condition-column; default stim_file when every run has it, else
/// trial_type) is not n/a is a trial; a stimulus shown several times is one condition; each
/// onset goes to its nearest volume (the largest distance is reported). --confounds names
/// fMRIPrep confounds projected out with the polynomials (GLMsingle's extra_regressors;
/// default none, as GLMsingle's own default). The volumes fMRIPrep flags as non-steady-state at
/// a run's start are left out (a trial among them is an error); any later ones get a spike
/// regressor.
///
/// Writes <out>/glm.json (trials, conditions, the choices made), <out>/timeseries/ (the masked
/// runs as a run set, voxels.npy) and per model <out>/TYPEA_ONOFF/, TYPEB_FITHRF/,
/// TYPEC_FITHRF_GLMDENOISE/, TYPED_FITHRF_GLMDENOISE_RR/ with GLMsingle's outputs as .npy
/// (betasmd: float32 (voxels, trials) in percent signal change, trials in glm.json's order;
/// HRFindex 0-based, R2, FRACvalue, noisepool, pcvoxels, xvaltrend, glmbadness, rrbadness,
/// scaleoffset) and R2/HRFindex/FRACvalue maps as NIfTI. GLMsingle's mixture for the noise
/// pool's R² threshold is unseeded; here it starts from fixed quantiles (the same threshold
/// every run). A rerun over a finished folder with the same settings does nothing; an
/// interrupted one resumes from its time series and the last stage the fit finished (TYPEA,
/// TYPEB, GLMdenoise: kept in <out>/.stages/ until glm.json is written).
///
/// --nsd fits NSD's own time series instead (nsddata_timeseries/ppdata/subjAA/func1pt8mm:
/// timeseries_sessionBB_runCC.nii.gz at 4/3 s and design_sessionBB_runCC.tsv, whose 73k IDs
/// become the conditions, 3-s stimuli), in NSD's brain mask unless --mask; `glm compare` then
/// compares the betas with NSD's released betas_fithrf_GLMdenoise_RR.
#[derive(clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Example:\n  \
    brainrecon simulate --kind events --out sim-events\n  \
    brainrecon glm --fmriprep sim-events/derivatives/fmriprep --bids-root sim-events --subject 01 --task images --space T1w --out glm-sub01\n  \
    brainrecon glm prepare --glm glm-sub01 --captions sim-events/stimuli/captions.json --out prepared/sub01\n  \
    brainrecon glm --fmriprep ds/derivatives/fmriprep --bids-root ds --subject 01 --task things --space T1w --confounds motion:basic --out glm-01\n  \
    brainrecon glm --nsd NSD --subject 1 --session 1 --mask NSD/nsddata/ppdata/subj01/func1pt8mm/roi/nsdgeneral.nii.gz --out glm-nsd-s01"
)]
pub struct Args {
    #[command(subcommand)]
    command: Option<GlmCommand>,
    /// fMRIPrep's output folder (dataset_description.json GeneratedBy fMRIPrep, sub-*/func/)
    #[arg(long, required_unless_present = "nsd")]
    fmriprep: Option<PathBuf>,
    /// The raw BIDS dataset the events come from
    #[arg(long, required_unless_present = "nsd")]
    bids_root: Option<PathBuf>,
    /// NSD's root folder: fit its time series and designs (nsddata_timeseries, 1.8 mm)
    #[arg(long, conflicts_with_all = ["fmriprep", "bids_root", "tasks", "space", "confounds", "condition_column", "stimdur"])]
    nsd: Option<PathBuf>,
    /// Subject label: 01, sub-01 (NSD: 1, subj01)
    #[arg(long, required = true)]
    subject: Option<String>,
    /// Task to read (repeat for several)
    #[arg(long = "task", required_unless_present = "nsd")]
    tasks: Vec<String>,
    /// Session to read (repeat for several; a trailing * matches every session it begins,
    /// e.g. 'perceptionNaturalImage*'; NSD: 1, 01); default: every session
    #[arg(long = "session")]
    sessions: Vec<String>,
    /// fMRIPrep output space, LABEL or LABEL:res-N, or fsLR[:den-D] for its CIFTI
    /// grayordinates (*_space-fsLR_den-91k_bold.dtseries.nii) [default: MNI152NLin2009cAsym]
    #[arg(long)]
    space: Option<String>,
    /// Brain mask on the runs' grid (.nii or .nii.gz; voxels > 0) [default: fMRIPrep's masks]
    #[arg(long)]
    mask: Option<PathBuf>,
    /// fMRIPrep confounds projected out with the drift polynomials, as `bids prepare`
    /// --confounds names them (e.g. motion:basic) [default: none]
    #[arg(long, default_value = "none")]
    confounds: String,
    /// The events column naming each trial's condition [default: stim_file, else trial_type]
    #[arg(long)]
    condition_column: Option<String>,
    /// Seconds each stimulus lasts [default: the median of the trials' durations]
    #[arg(long)]
    stimdur: Option<f64>,
    /// Output folder
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum GlmCommand {
    Prepare(prepare::Args),
    Compare(compare::Args),
}

/// Where the runs and their events come from.
enum Source {
    Fmriprep {
        fmriprep: PathBuf,
        bids_root: PathBuf,
    },
    Nsd(PathBuf),
}

/// The flat command's arguments, all given.
struct FitArgs {
    source: Source,
    subject: String,
    tasks: Vec<String>,
    sessions: Vec<String>,
    space: Option<String>,
    mask: Option<PathBuf>,
    confounds: String,
    condition_column: Option<String>,
    stimdur: Option<f64>,
    out: PathBuf,
    json: bool,
}

impl FitArgs {
    fn of(args: Args) -> anyhow::Result<Self> {
        let (Some(subject), Some(out)) = (args.subject, args.out) else {
            return Err(super::usage("--subject and --out are required"));
        };
        let source = match (args.nsd, args.fmriprep, args.bids_root) {
            (Some(nsd), _, _) => Source::Nsd(nsd),
            (None, Some(fmriprep), Some(bids_root)) if !args.tasks.is_empty() => Source::Fmriprep {
                fmriprep,
                bids_root,
            },
            _ => {
                return Err(super::usage(
                    "--fmriprep, --bids-root and --task are required (or --nsd)",
                ))
            }
        };
        let mut fit = FitArgs {
            source,
            subject,
            tasks: args.tasks,
            sessions: args.sessions,
            space: args.space,
            mask: args.mask,
            confounds: args.confounds,
            condition_column: args.condition_column,
            stimdur: args.stimdur,
            out,
            json: args.json,
        };
        if let Source::Nsd(_) = fit.source {
            // NSD's task, condition column and stimulus duration are fixed by its layout.
            fit.tasks = vec![nsd_timeseries::TASK.into()];
            fit.condition_column = Some(nsd_timeseries::ID_COLUMN.into());
            fit.stimdur = Some(nsd_timeseries::STIMULUS_SECONDS);
            fit.sessions = nsd_sessions(&fit.sessions)?;
            fit.subject = format!("{:02}", nsd::parse_subject(&fit.subject)?);
        }
        Ok(fit)
    }
}

/// NSD's session numbers as its file names write them (`1` → `01`).
fn nsd_sessions(sessions: &[String]) -> anyhow::Result<Vec<String>> {
    sessions
        .iter()
        .map(|s| {
            let digits = s.trim().trim_start_matches("session");
            match digits.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(format!("{n:02}")),
                _ => Err(super::usage(format!(
                    "--session: expected an NSD session number such as 1 or 01, found '{s}'"
                ))),
            }
        })
        .collect()
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

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Some(GlmCommand::Prepare(prepare_args)) => return prepare::run(prepare_args),
        Some(GlmCommand::Compare(compare_args)) => return compare::run(compare_args),
        None => {}
    }
    let args = FitArgs::of(args)?;
    let settings = settings(&args)?;
    let meta_path = args.out.join("glm.json");
    if meta_path.is_file() {
        let meta: GlmMeta = read_json(&meta_path)?;
        if meta.settings == serde_json::to_value(&settings)? {
            return report(&args, &meta, true);
        }
        return Err(DataError::invalid(
            &args.out,
            "--out",
            "a new folder, or one fitted with the same settings",
            "a folder fitted with other settings: choose another --out or remove it",
        )
        .into());
    }
    let created = !args.out.exists();
    if !created && !resumable(&args.out) {
        return Err(DataError::invalid(
            &args.out,
            "--out",
            "a new or empty folder, or one an interrupted `glm` left (holding timeseries/)",
            "a folder with other contents",
        )
        .into());
    }
    let result = fit_into(&args, settings);
    if result.is_err() && created {
        // Nothing half-written: a failed run leaves no folder it made.
        let _ = std::fs::remove_dir_all(&args.out);
    }
    result
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
fn fit_into(args: &FitArgs, settings: Settings) -> anyhow::Result<()> {
    if let Source::Fmriprep { bids_root, .. } = &args.source {
        check_event_files(
            bids_root,
            &settings.subject,
            &args.tasks,
            &args.sessions,
            args.condition_column.as_deref(),
        )?;
    }
    let set = time_series(args, &settings)?;
    let trials = read_trials(
        &set,
        &TrialOptions {
            condition_column: args.condition_column.clone(),
            stimdur: args.stimdur,
        },
    )?;
    let identity = serde_json::json!({
        "settings": &settings,
        "voxels": set.n_voxels(),
        "trials": trials.trials.len(),
    });
    let mut kept = stages::DirStages::open(&args.out, &identity)?;
    let fitted = fit(&set, &trials, &mut kept)?;
    write_models(&set, &args.out, &fitted.fit)?;
    let meta = glm_meta(&set, &trials, &fitted, settings);
    write_json_atomic(&args.out.join("glm.json"), &meta)?;
    kept.finish()?;
    report(args, &meta, false)
}

fn settings(args: &FitArgs) -> anyhow::Result<Settings> {
    let (fmriprep, bids_root, nsd) = match &args.source {
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
        subject: args.subject.trim_start_matches("sub-").to_string(),
        tasks: args.tasks.clone(),
        sessions: args.sessions.clone(),
        space: Space::parse(args.space.as_deref().unwrap_or(DEFAULT_SPACE))?.label(),
        mask: args.mask.as_deref().map(canonical).transpose()?,
        confounds: args.confounds.clone(),
        condition_column: args.condition_column.clone(),
        stimdur: args.stimdur,
    })
}

fn canonical(path: &Path) -> anyhow::Result<PathBuf> {
    std::fs::canonicalize(path).map_err(|_| {
        DataError::Missing {
            path: path.to_path_buf(),
            what: "a folder or file named on the command line".into(),
        }
        .into()
    })
}

/// The masked runs in their units, as a run set under `<out>/timeseries` (resumable).
fn time_series(args: &FitArgs, settings: &Settings) -> anyhow::Result<RunSet> {
    let strategy = Strategy::parse(
        &args.confounds,
        DEFAULT_FD_THRESHOLD,
        DEFAULT_STD_DVARS_THRESHOLD,
    )?;
    if strategy.scrub.is_some() {
        return Err(super::usage(
            "--confounds: scrub censors volumes, which a GLM over whole runs cannot leave out; drop scrub (non-steady-state volumes get spike regressors)",
        ));
    }
    let out = args.out.join("timeseries");
    let (root, layout, fmriprep) = match &args.source {
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
    let opts = PrepareOptions {
        root: root.clone(),
        subject: args.subject.clone(),
        tasks: args.tasks.clone(),
        sessions: args.sessions.clone(),
        out: out.clone(),
        layout,
        mask: args.mask.clone().map_or(MaskChoice::Auto, MaskChoice::File),
        detrend: None,
        drop_seconds: None,
        progress: super::show_progress(),
        keep_units: true,
    };
    std::fs::create_dir_all(&args.out).map_err(|e| DataError::io(&args.out, e))?;
    match &fmriprep {
        Some(fmriprep) => prepare_fmriprep(&opts, fmriprep)?,
        None => prepare(&opts)?,
    };
    Ok(RunSet::open(&out)?)
}

/// GLMsingle's four models on the run set's trials, each run from its first steady-state
/// volume.
/// What the fit made and chose.
struct Fitted {
    fit: GlmSingle,
    params: Params,
    extra_regressors: Vec<String>,
    /// Per run, the leading non-steady-state volumes left out.
    dropped: Vec<usize>,
}

fn fit(set: &RunSet, trials: &Trials, kept: &mut stages::DirStages) -> anyhow::Result<Fitted> {
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
        .collect::<Result<Vec<_>, _>>()?;
    let designs = (0..n_runs)
        .map(|i| {
            let run = &set.runs()[i];
            let events = set.root().join(run.events.as_deref().unwrap_or_default());
            trials.design(i, first[i], run.n_trs, &events)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let extras = (0..n_runs)
        .map(|i| confound_regressors(set, i, first[i]))
        .collect::<Result<Vec<_>, _>>()?;
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
    if super::show_progress() {
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
    )?;
    if !kept.resumed.is_empty() {
        eprintln!("resumed the interrupted fit's {}", kept.resumed.join(", "));
    }
    if let Some(failed) = &kept.failed {
        eprintln!("warning: a finished stage could not be kept for resuming ({failed})");
    }
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

/// One model's folder, written beside its final place and renamed into it.
struct ModelWriter<'a> {
    set: &'a RunSet,
    staging: PathBuf,
    voxels: usize,
}

impl ModelWriter<'_> {
    fn values(&self, name: &str, values: &[f64], per_voxel: usize) -> anyhow::Result<()> {
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
    fn map(&self, name: &str, values: &[f64]) -> anyhow::Result<()> {
        self.values(name, values, 1)?;
        self.set
            .write_voxel_map(&self.staging.join(format!("{name}.nii.gz")), &f32s(values))?;
        Ok(())
    }

    fn flags(&self, name: &str, values: &[bool]) -> anyhow::Result<()> {
        let bytes: Vec<u8> = values.iter().map(|&b| u8::from(b)).collect();
        npy::write(
            &self.staging.join(format!("{name}.npy")),
            &[self.voxels],
            &bytes,
        )?;
        Ok(())
    }

    fn hrf_index(&self, index: &[usize]) -> anyhow::Result<()> {
        let values: Vec<f64> = index.iter().map(|&i| i as f64).collect();
        self.map("HRFindex", &values)
    }
}

fn write_models(set: &RunSet, out: &Path, fit: &GlmSingle) -> anyhow::Result<()> {
    let trials = fit.typeb.stim_order.len();
    let model =
        |name: &str, write: &dyn Fn(&ModelWriter) -> anyhow::Result<()>| -> anyhow::Result<()> {
            let staging = out.join(format!(".{name}.partial"));
            let _ = std::fs::remove_dir_all(&staging);
            std::fs::create_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
            write(&ModelWriter {
                set,
                staging: staging.clone(),
                voxels: set.n_voxels(),
            })?;
            let target = out.join(name);
            let _ = std::fs::remove_dir_all(&target);
            std::fs::rename(&staging, &target).map_err(|e| DataError::io(&target, e))?;
            Ok(())
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
    let denoised = |w: &ModelWriter, d: &Denoised| -> anyhow::Result<()> {
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

fn glm_meta(set: &RunSet, trials: &Trials, fitted: &Fitted, settings: Settings) -> GlmMeta {
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
        settings: serde_json::to_value(&settings).expect("settings serialise"),
    }
}

fn report(args: &FitArgs, meta: &GlmMeta, already: bool) -> anyhow::Result<()> {
    if args.json {
        return super::print_json(meta);
    }
    if already {
        outln!(
            "{} is already fitted with these settings",
            args.out.display()
        )?;
        return Ok(());
    }
    outln!(
        "fitted sub-{} into {}: {} runs, {} trials of {} conditions ({} column), {} voxels, stimulus {} s",
        meta.subject,
        args.out.display(),
        meta.runs.len(),
        meta.trials.len(),
        meta.conditions.len(),
        meta.condition_column,
        meta.n_voxels,
        meta.stimdur
    )?;
    outln!(
        "models: {}; GLMdenoise components: {}; on/off R² threshold {:.2}; onsets moved to their volume by at most {:.3} s",
        meta.models.join(", "),
        meta.pcnum.map_or("none".into(), |p| p.to_string()),
        meta.r2_threshold,
        meta.largest_onset_rounding_seconds
    )?;
    for note in &meta.notes {
        outln!("note: {note}")?;
    }
    Ok(())
}
