//! `brainrecon realtime simulate`: a simulated subject's next session, written as a scanner's
//! real-time export.

use crate::commands::prelude::*;
use brainrecon_formats::dicom::write::DicomLayout;
use brainrecon_simulate::scanner_export::{export_session, replay as replay_run};
use brainrecon_simulate::scanner_export::{ExportOptions, ReplayOptions};

/// Write a simulated subject's next session as a scanner's real-time export.
///
/// The subject is the one `simulate --kind events` made (--experiment: its folder), the one
/// whose prepared data the decoders were fit on: same brain, voxels' response shapes and
/// tuning; new noise and drifts. After --rest-seconds of rest, the session shows its test
/// images (the first --images, each --repeats times, in shuffled order, a 3-s image every
/// 4 s, one blank in four) at --tr; the
/// head lies a few mm and degrees away from where it lay in the subject's reference and moves
/// (a slow drift and one sudden 0.8 mm / 0.6° movement at 60% of the session), and
/// every volume is written into --export (OUT/export by default) as a Siemens EPI mosaic
/// named as Siemens' real-time export names them (or in another --layout), one every TR with
/// --pace real (as a scanner would) or all at once.
///
/// OUT/events.tsv holds the session's events (BIDS: onset, duration, trial_type, stim_file),
/// OUT/truth.json the trials and the planted motion of every volume.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  \
    brainrecon simulate --kind events --out exp\n  \
    brainrecon realtime simulate --experiment exp --out rt-sim --tr 1.0 --pace real &\n  \
    brainrecon realtime run --folder rt-sim/export --subject sub-01 --decoders decoders --tr 1.0")]
pub struct SimulateArgs {
    /// The folder `simulate --kind events` wrote
    #[arg(long)]
    experiment: PathBuf,
    /// Where events.tsv, truth.json (and export/) go
    #[arg(long, default_value = "realtime-simulated")]
    out: PathBuf,
    /// The folder the volumes are written to [default: OUT/export]
    #[arg(long)]
    export: Option<PathBuf>,
    /// Repetition time in seconds
    #[arg(long, default_value_t = 1.6)]
    tr: f64,
    /// real: one volume every TR; none: all at once
    #[arg(long, value_enum, default_value = "none")]
    pace: Pace,
    /// How the export lays volumes out: a Siemens mosaic or an enhanced multi-frame file per
    /// volume, or a classic file per slice
    #[arg(long, default_value = "mosaic", value_parser = choice(&DicomLayout::ALL, DicomLayout::name))]
    layout: DicomLayout,
    /// Show only the first N test images
    #[arg(long)]
    images: Option<usize>,
    /// Times each image is shown
    #[arg(long, default_value_t = 1)]
    repeats: usize,
    /// Seconds of rest before the first image (a baseline block, in which the running
    /// statistics of `realtime run` settle)
    #[arg(long, default_value_t = 30.0)]
    rest_seconds: f64,
    /// Scale of the planted head motion (0: none)
    #[arg(long, default_value_t = 1.0)]
    motion: f64,
    /// Seed of the session's noise, order and motion
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    json: JsonArg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Pace {
    Real,
    None,
}

pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let exported = export_session(&ExportOptions {
        experiment: args.experiment.clone(),
        out: args.out.clone(),
        export: args.export.clone(),
        tr: args.tr,
        real_pace: args.pace == Pace::Real,
        layout: args.layout,
        images: args.images,
        repeats: args.repeats,
        rest_seconds: args.rest_seconds,
        motion: args.motion,
        seed: args.seed,
    })?;
    args.json.print(&exported.json(), |_| exported.text())
}

/// Replay a recorded run as a scanner's export, one 3-D NIfTI volume per TR (a rehearsal).
///
/// Any 4-D NIfTI series (a BIDS run, fMRIPrep's preprocessed BOLD, an NSD time series) is
/// written volume by volume into --export as vol-NNNNNN.nii (float32, each through a hidden
/// temporary file and a rename), one every --tr seconds (default: the file's pixdim[4]) with
/// --pace real, or all at once; `realtime run` or `watch` on that folder then rehearses a
/// session on real data.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  \
    brainrecon realtime replay --run sub-01/func/sub-01_task-images_run-01_bold.nii.gz --export rt-export --tr 1.6 --pace real &\n  \
    brainrecon realtime watch --folder rt-export --out rt-session")]
pub struct ReplayArgs {
    /// The 4-D NIfTI series to replay
    #[arg(long)]
    run: PathBuf,
    /// The folder the volumes are written to (created)
    #[arg(long)]
    export: PathBuf,
    /// Seconds between volumes (default: the file's pixdim[4])
    #[arg(long)]
    tr: Option<f64>,
    /// real: one volume every TR; none: all at once
    #[arg(long, value_enum, default_value = "real")]
    pace: Pace,
    /// Replay only the first N volumes
    #[arg(long)]
    volumes: Option<usize>,
}

pub fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let (written, tr) = replay_run(&ReplayOptions {
        run: args.run.clone(),
        export: args.export.clone(),
        tr: args.tr,
        real_pace: args.pace == Pace::Real,
        volumes: args.volumes,
    })?;
    let (run, export) = (args.run.display(), args.export.display());
    outln!("replayed {written} volumes of {run} at TR {tr} s into {export}")
}
