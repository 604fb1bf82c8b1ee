use crate::commands::prelude::*;
use brainrecon_datasets::nsd::prepare::{prepare, PrepareOptions, ZScore};
use brainrecon_datasets::nsd::{parse_sessions, parse_subject};

/// Read the Natural Scenes Dataset as it is downloaded and prepare a subject from it
#[derive(clap::Subcommand)]
pub enum NsdCommand {
    Prepare(PrepareArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ZScoreArg {
    /// Z-score each voxel over the trials of each session
    Session,
    /// Keep percent signal change
    None,
}

impl From<ZScoreArg> for ZScore {
    fn from(arg: ZScoreArg) -> Self {
        match arg {
            ZScoreArg::Session => ZScore::Session,
            ZScoreArg::None => ZScore::None,
        }
    }
}

/// Read a subject from NSD exactly as NSD ships it and write a prepared subject.
///
/// Reads nsd_expdesign.mat, nsd_stim_info_merged.csv, responses.tsv, the func1pt8mm ROI masks
/// and their colour tables, the betas_fithrf_GLMdenoise_RR session files, the images the subject
/// saw from nsd_stimuli.hdf5, and COCO captions. Test = the shared images the subject saw,
/// averaged over repeats; train = the rest, as single trials. A rerun resumes an interrupted one.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon nsd prepare --nsd-root /data/NSD --subject subj01 --out prepared/subj01 --sessions 1-37"
)]
#[command(mut_arg("json", |a| a.help("Print the report as JSON")))]
pub struct PrepareArgs {
    /// NSD root holding nsddata/, nsddata_betas/ and nsddata_stimuli/
    #[arg(long)]
    nsd_root: PathBuf,
    /// subj01 … subj08
    #[arg(long)]
    subject: String,
    /// Output directory for the prepared subject
    #[arg(long)]
    out: PathBuf,
    /// Sessions to use, 1-based (e.g. 1-37 or 1,3,5-7); default: all in responses.tsv
    #[arg(long)]
    sessions: Option<String>,
    /// ROI atlases under func1pt8mm/roi/, comma-separated
    #[arg(
        long,
        default_value = "nsdgeneral,streams,prf-visualrois",
        value_delimiter = ','
    )]
    rois: Vec<String>,
    #[arg(long, value_enum, default_value_t = ZScoreArg::Session)]
    zscore: ZScoreArg,
    /// Also write train betas averaged over repeats
    #[arg(long)]
    average_train: bool,
    /// Resize stimuli to this square size (default: keep NSD's 425)
    #[arg(long)]
    image_size: Option<usize>,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(command: NsdCommand) -> anyhow::Result<()> {
    let NsdCommand::Prepare(args) = command;
    let sessions = args.sessions.as_deref().map(parse_sessions).transpose()?;
    if args.image_size == Some(0) {
        return Err(super::usage("--image-size: expected a positive size"));
    }
    let report = prepare(&PrepareOptions {
        nsd_root: args.nsd_root,
        subject: parse_subject(&args.subject)?,
        out: args.out,
        sessions,
        atlases: args.rois,
        zscore: args.zscore.into(),
        average_train: args.average_train,
        image_size: args.image_size,
        progress: super::show_progress(),
    })?;
    super::report(args.json.json, &report, |r| r.text())?;
    if let Some(note) = report.note().filter(|_| !args.json.json) {
        eprintln!("{note}");
    }
    Ok(())
}
