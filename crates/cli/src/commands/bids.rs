//! `brainrecon bids prepare`: continuous recordings (movies, music) → a run set.

use crate::commands::prelude::*;
use brainrecon_core::signal::detrend::Detrend;
use brainrecon_core::DataError;
use brainrecon_datasets::fmriprep::FmriprepOptions;
use brainrecon_datasets::runs::prepare::{
    prepare, prepare_fmriprep, Layout, MaskChoice, PrepareOptions,
};

/// Read continuous fMRI (one volume per TR) from a BIDS dataset and prepare a run set
#[derive(clap::Subcommand)]
pub enum BidsCommand {
    Prepare(PrepareArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LayoutArg {
    /// sub-<S>/[ses-*/]func/*_task-<T>_[acq-*_]run-<N>_bold.nii[.gz], sidecars, events
    Bids,
    /// OpenNeuro ds005531's derivatives/preprocessed_data (MATLAB v7.3 dataDT, vset_100.mat)
    Ds005531,
}

/// Read BOLD runs as a BIDS dataset ships them and write a run set: per run, the first
/// --drop-seconds cut, each voxel detrended and z-scored.
///
/// BIDS: runs are sub-<S>/[ses-*/]func/sub-<S>_[ses-*_]task-<T>_[acq-*_]run-<N>_bold.nii[.gz]
/// (any datatype; scl_slope/scl_inter applied); RepetitionTime comes from the _bold.json
/// sidecars, inherited from the dataset root down; events from _events.tsv; per-second
/// annotations from derivatives/annotation/<T>_run-NN_<kind>_each1sec.txt.
///
/// Mask: --mask FILE (voxels > 0 on the runs' grid), or --mask-threshold F: voxels whose mean
/// intensity over the kept volumes exceeds F × the 98th percentile of that mean image
/// (default 0.2). --layout ds005531 uses the dataset's vset_100.mat tvoxels unless --mask is
/// given, takes the grid from the raw run's header, drops its 20 dummy seconds, keeps dataDT's
/// rows up to the movie's duration (its annotations' line count; later rows are left out and
/// counted in runset.json, as the authors' loaders do) and does not detrend (its data are
/// detrended) unless asked.
///
/// Detrend: median:S subtracts a running median over S seconds (scipy.ndimage's reflected
/// edges), poly:N a least-squares polynomial, none nothing (default median:120). Voxels that
/// are flat in a run are written as zeros when they are at most 1% of the voxels, else refused.
/// A rerun resumes an interrupted one; over a finished run set it does nothing when the
/// settings match and is refused otherwise.
///
/// fMRIPrep (--fmriprep DIR, fMRIPrep's output folder): reads
/// sub-<S>/[ses-*/]func/*_task-<T>_[run-<N>_]space-<SPACE>_desc-preproc_bold.nii.gz, its
/// _desc-brain_mask (the default mask: the runs' masks intersected), its .json sidecar's
/// RepetitionTime and the run's _desc-confounds_timeseries.tsv; events and annotations come
/// from the raw dataset given as --bids-root, if any. Confounds are regressed out as nilearn's
/// load_confounds + signal.clean(detrend=False, standardize="zscore_sample",
/// standardize_confounds=True) do, no detrending. --confounds is a comma-separated list:
/// motion:M (6 motion parameters), wm_csf:M (csf, white_matter), global_signal:M, with M one of
/// basic, power2 (+ squares), derivatives (+ derivatives), full (all four); high_pass
/// (fMRIPrep's cosineNN columns); scrub[:N] (censor volumes with framewise_displacement >
/// --fd-threshold or std_dvars > --std-dvars-threshold, and stretches shorter than N volumes
/// between them, N = 5); or none. Non-steady-state volumes are always censored. Censored
/// volumes are left out of the regression and z-scoring, written as zero rows (rows stay one
/// per TR so stimulus features align) and listed per run in runset.json
/// (runs[].confounds.censored): leave them out of model fits. --space fsLR reads fMRIPrep's
/// CIFTI runs (*_space-fsLR_den-91k_bold.dtseries.nii: every grayordinate, no mask; maps as
/// .dscalar.nii); GIFTI surface outputs are refused.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon simulate --kind movie --out sim-movie --seed 1\n  \
    brainrecon bids prepare --bids-root sim-movie --subject 01 --task movie --out runs-sub01\n  \
    brainrecon bids prepare --bids-root ds003720 --subject 001 --task Training --task Test --detrend median:240 --drop-seconds 15 --out runs-music\n  \
    brainrecon bids prepare --layout ds005531 --bids-root ds005531 --subject S01 --task breakingbad --out runs-S01\n  \
    brainrecon bids prepare --fmriprep ds/derivatives/fmriprep --bids-root ds --subject 01 --task movie --confounds motion:full,wm_csf:basic,global_signal:basic,high_pass,scrub --out runs-clean"
)]
#[command(mut_arg("json", |a| a.help("Print the report as JSON")))]
pub struct PrepareArgs {
    /// Root of the dataset (holding dataset_description.json and sub-*/); with --fmriprep, the
    /// raw dataset the events and annotations come from (optional)
    #[arg(long, required_unless_present = "fmriprep")]
    bids_root: Option<PathBuf>,
    /// fMRIPrep's output folder (dataset_description.json GeneratedBy fMRIPrep, sub-*/func/)
    #[arg(long, conflicts_with = "layout")]
    fmriprep: Option<PathBuf>,
    /// fMRIPrep output space: a volume space, LABEL or LABEL:res-N (e.g. T1w,
    /// MNI152NLin2009cAsym:res-2), or fsLR[:den-D] for its CIFTI grayordinates
    /// [default: MNI152NLin2009cAsym]
    #[arg(long, requires = "fmriprep")]
    space: Option<String>,
    /// fMRIPrep confounds to regress out, e.g. motion:full,wm_csf:basic,global_signal:basic,high_pass,scrub
    /// (see above) [default: motion:full,wm_csf:basic,high_pass]
    #[arg(long, requires = "fmriprep")]
    confounds: Option<String>,
    /// scrub: framewise displacement threshold in mm [default: 0.5]
    #[arg(long, requires = "fmriprep")]
    fd_threshold: Option<f64>,
    /// scrub: standardized DVARS threshold [default: 1.5]
    #[arg(long, requires = "fmriprep")]
    std_dvars_threshold: Option<f64>,
    /// Subject label: 01, sub-01, S01
    #[arg(long)]
    subject: String,
    /// Task to read (repeat for several; runs are ordered by task in this order)
    #[arg(long = "task", required = true)]
    tasks: Vec<String>,
    /// Session to read (repeat for several; a trailing * matches every session it begins);
    /// default: every session
    #[arg(long = "session")]
    sessions: Vec<String>,
    /// Output directory for the run set
    #[arg(long)]
    out: PathBuf,
    /// Dataset layout (default bids; not with --fmriprep)
    #[arg(long, value_enum)]
    layout: Option<LayoutArg>,
    /// Brain mask on the runs' grid (.nii or .nii.gz; voxels > 0)
    #[arg(long, conflicts_with = "mask_threshold")]
    mask: Option<PathBuf>,
    /// Keep voxels whose mean intensity exceeds this fraction of the robust maximum
    #[arg(long)]
    mask_threshold: Option<f64>,
    /// median:<seconds>, poly:<order> or none (default: median:120; ds005531: none)
    #[arg(long)]
    detrend: Option<String>,
    /// Seconds cut from the start of every run, a multiple of the TR (default 0; ds005531: 20)
    #[arg(long)]
    drop_seconds: Option<f64>,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(command: BidsCommand) -> anyhow::Result<()> {
    let BidsCommand::Prepare(args) = command;
    let fmriprep = match &args.fmriprep {
        Some(_) => Some(FmriprepOptions::from_flags(
            args.space.as_deref(),
            args.confounds.as_deref(),
            args.fd_threshold,
            args.std_dvars_threshold,
            args.bids_root.clone(),
        )?),
        None => None,
    };
    let Some(root) = args.fmriprep.clone().or(args.bids_root.clone()) else {
        return Err(DataError::Usage("--bids-root: required (or --fmriprep)".into()).into());
    };
    let opts = PrepareOptions {
        root,
        subject: args.subject,
        tasks: args.tasks,
        sessions: args.sessions,
        out: args.out,
        layout: match (args.layout, &fmriprep) {
            (_, Some(_)) => Layout::Fmriprep,
            (Some(LayoutArg::Ds005531), None) => Layout::Ds005531,
            _ => Layout::Bids,
        },
        mask: MaskChoice::from_flags(args.mask, args.mask_threshold),
        detrend: args.detrend.as_deref().map(Detrend::parse).transpose()?,
        drop_seconds: args.drop_seconds,
        progress: super::show_progress(),
        keep_units: false,
    };
    let report = match &fmriprep {
        Some(f) => prepare_fmriprep(&opts, f)?,
        None => prepare(&opts)?,
    };
    super::report(args.json.json, &report, |r| r.text())?;
    if let Some(warning) = report.warning().filter(|_| !args.json.json) {
        eprintln!("{warning}");
    }
    Ok(())
}
