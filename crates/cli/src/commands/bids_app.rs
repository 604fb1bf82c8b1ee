//! `brainrecon bids-app`: the BIDS App entry point (the work is in
//! `brainrecon_routes::bids_app`).

use brainrecon_routes::bids_app::{run as run_app, BidsAppOptions, Level};
use brainrecon_routes::linear::shards::ImageShard;
use std::path::PathBuf;

/// Run as a BIDS App: single-trial betas, encoding maps and a shared space, as a BIDS derivative
///
/// participant: for each participant, single-trial betas by GLMsingle's method from fMRIPrep's
/// runs and the raw dataset's events (as `glm`), the prepared subject (as `glm prepare`), its
/// images' VAE latents (shapes-ldm, the project's own model) and the encoding maps with their
/// permutation test on the cortex (as `encode`), with a report OUTPUT_DIR/sub-<L>.html. The
/// derivative files are OUTPUT_DIR/sub-<L>/func/sub-<L>_task-<T>_space-<S>_desc-<D>_<suffix>
/// (singletrial_betas.nii.gz, one volume per trial; singletrial_events.tsv, the trials; R2 and
/// encoding statmaps; the significant mask), each with a JSON sidecar holding the options and
/// their hash; the routes' own folders are kept under OUTPUT_DIR/brainrecon/ (in .bidsignore).
/// A rerun skips the participants finished with the same settings and refuses those finished
/// with others.
///
/// group: the shared space across the finished participants' prepared subjects (as `group
/// prepare` and `group fit --method shared`), with a report OUTPUT_DIR/group.html.
///
/// Refused with exit status 2, naming the file: BIDS_DIR without dataset_description.json, a
/// participant it does not hold, fMRIPrep derivatives that are not a derivative or lack a raw
/// run of the participant in the space. Nothing is downloaded: the one model is built in.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  \
    brainrecon simulate --kind events --out ds\n  \
    brainrecon bids-app ds ds/derivatives/brainrecon participant --participant-label 01\n  \
    brainrecon slurm submit --shards 2 --time 1:00:00 -- bids-app ds out participant --space T1w\n  \
    brainrecon bids-app ds out group")]
pub struct Args {
    /// The raw BIDS dataset (holding dataset_description.json and sub-<L>/)
    bids_dir: PathBuf,
    /// The derivative dataset to write
    output_dir: PathBuf,
    /// participant (one participant at a time) or group (over the finished participants)
    #[arg(value_enum)]
    level: LevelArg,
    /// Participants to run (01 or sub-01; several after one flag) [default: every sub-*]
    #[arg(long = "participant-label", num_args = 1..)]
    participant_labels: Vec<String>,
    /// Derivatives the app reads, NAME=DIR; fmriprep=DIR is fMRIPrep's output
    /// [default: fmriprep=BIDS_DIR/derivatives/fmriprep]
    #[arg(long = "derivatives", value_name = "NAME=DIR")]
    derivatives: Vec<String>,
    /// Tasks fitted together (repeatable) [default: the dataset's one task]
    #[arg(long = "task")]
    tasks: Vec<String>,
    /// fMRIPrep's output space, LABEL or LABEL:res-N [default: the one fMRIPrep wrote]
    #[arg(long)]
    space: Option<String>,
    /// This task's share of the participants, k/N (0-based; `slurm submit` adds it)
    #[arg(long)]
    shard: Option<String>,
    /// Permutations of the encoding maps' null
    #[arg(long, default_value_t = 1000)]
    permutations: usize,
    /// Dimensions of the group's shared space
    #[arg(long, default_value_t = 32)]
    group_dimensions: usize,
    #[command(flatten)]
    cortex: crate::args::CortexArg,
    #[command(flatten)]
    json: crate::args::JsonArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LevelArg {
    Participant,
    Group,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let level = match args.level {
        LevelArg::Participant => Level::Participant,
        LevelArg::Group => Level::Group,
    };
    let mut opts = BidsAppOptions::new(&args.bids_dir, &args.output_dir, level);
    for given in &args.derivatives {
        let Some(("fmriprep", dir)) = given.split_once('=') else {
            let expected = "fmriprep=DIR (fMRIPrep's output folder)";
            return Err(super::usage(format!(
                "--derivatives: expected {expected}, found '{given}'"
            )));
        };
        opts.fmriprep = Some(dir.into());
    }
    opts.participant_labels = args.participant_labels;
    opts.tasks = args.tasks;
    opts.space = args.space;
    opts.shard = args.shard.as_deref().map(ImageShard::parse).transpose()?;
    opts.permutations = args.permutations;
    opts.group_dimensions = args.group_dimensions;
    opts.cortex = args.cortex.choice()?;
    opts.progress = super::show_progress();
    let report = run_app(&opts)?;
    super::report(args.json.json, &report, |r| r.text())
}
