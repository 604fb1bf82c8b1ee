//! `brainrecon glm`: an event-related experiment preprocessed by fMRIPrep → single-trial betas
//! by GLMsingle's method (TYPEA–TYPED), written under GLMsingle's names.

use crate::commands::prelude::*;
use brainrecon_routes::glm::{fit_folder, GlmOptions, Source};

mod compare;
mod prepare;

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
    #[command(flatten)]
    json: JsonArg,
    #[command(flatten)]
    cortex: crate::args::CortexArg,
}

#[derive(clap::Subcommand)]
enum GlmCommand {
    Prepare(prepare::Args),
    Compare(compare::Args),
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Some(GlmCommand::Prepare(prepare_args)) => return prepare::run(prepare_args),
        Some(GlmCommand::Compare(compare_args)) => return compare::run(compare_args),
        None => {}
    }
    let (Some(subject), Some(out)) = (args.subject, args.out) else {
        return Err(super::usage("--subject and --out are required"));
    };
    let source = Source::from_flags(
        args.nsd,
        args.fmriprep,
        args.bids_root,
        !args.tasks.is_empty(),
    )?;
    let outcome = fit_folder(&GlmOptions {
        source,
        subject,
        tasks: args.tasks,
        sessions: args.sessions,
        space: args.space,
        mask: args.mask,
        confounds: args.confounds,
        condition_column: args.condition_column,
        stimdur: args.stimdur,
        out: out.clone(),
        cortex: args.cortex.choice()?,
        progress: super::show_progress(),
    })?;
    for note in outcome.notes() {
        eprintln!("{note}");
    }
    super::report(args.json.json, &outcome.meta, |_| outcome.text(&out))
}
