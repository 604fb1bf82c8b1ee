//! `brainrecon bids prepare`: continuous recordings (movies, music) → a run set.

use brainrecon_data::runs::detrend::Detrend;
use brainrecon_data::runs::prepare::{prepare, Layout, MaskChoice, PrepareOptions};
use std::path::PathBuf;

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
/// given, takes the grid from the raw run's header, drops its 20 dummy seconds and does not
/// detrend (its data are detrended) unless asked.
///
/// Detrend: median:S subtracts a running median over S seconds (scipy.ndimage's reflected
/// edges), poly:N a least-squares polynomial, none nothing (default median:120). Voxels that
/// are flat in a run are written as zeros when they are at most 1% of the voxels, else refused.
/// A rerun resumes an interrupted one; over a finished run set it does nothing when the
/// settings match and is refused otherwise.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon simulate --kind movie --out sim-movie --seed 1\n  \
    brainrecon bids prepare --bids-root sim-movie --subject 01 --task movie --out runs-sub01\n  \
    brainrecon bids prepare --bids-root ds003720 --subject 001 --task Training --task Test --detrend median:240 --drop-seconds 15 --out runs-music\n  \
    brainrecon bids prepare --layout ds005531 --bids-root ds005531 --subject S01 --task breakingbad --out runs-S01"
)]
pub struct PrepareArgs {
    /// Root of the dataset (holding dataset_description.json and sub-*/)
    #[arg(long)]
    bids_root: PathBuf,
    /// Subject label: 01, sub-01, S01
    #[arg(long)]
    subject: String,
    /// Task to read (repeat for several; runs are ordered by task in this order)
    #[arg(long = "task", required = true)]
    tasks: Vec<String>,
    /// Output directory for the run set
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value_t = LayoutArg::Bids)]
    layout: LayoutArg,
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
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(command: BidsCommand) -> anyhow::Result<()> {
    let BidsCommand::Prepare(args) = command;
    let mask = match (args.mask, args.mask_threshold) {
        (Some(path), _) => MaskChoice::File(path),
        (None, Some(f)) => MaskChoice::Threshold(f),
        (None, None) => MaskChoice::Auto,
    };
    let report = prepare(&PrepareOptions {
        root: args.bids_root,
        subject: args.subject,
        tasks: args.tasks,
        out: args.out,
        layout: match args.layout {
            LayoutArg::Bids => Layout::Bids,
            LayoutArg::Ds005531 => Layout::Ds005531,
        },
        mask,
        detrend: args.detrend.as_deref().map(Detrend::parse).transpose()?,
        drop_seconds: args.drop_seconds,
        progress: super::show_progress(),
    })?;
    if args.json {
        return super::print_json(&report);
    }
    let m = &report.meta;
    if report.already_prepared {
        println!(
            "{} is already prepared with these settings",
            report.out.display()
        );
    } else {
        let trs: usize = m.runs.iter().map(|r| r.n_trs).sum();
        println!(
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
    if report.zero_variance_voxels > 0 {
        eprintln!(
            "warning: {} voxel-runs had zero variance after detrending and were written as zeros",
            report.zero_variance_voxels
        );
    }
    Ok(())
}
