use crate::commands::prelude::*;
use brainrecon_datasets::prepared::PreparedSubject;

/// Describe a prepared subject: counts, ROIs, test ids, image size.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon info prepared/subj01 --json | jq .rois\n  brainrecon info --limits"
)]
#[command(mut_arg("json", |a| a.help("Print as JSON")))]
pub struct Args {
    /// A prepared subject directory
    #[arg(required_unless_present = "limits")]
    dir: Option<PathBuf>,
    #[command(flatten)]
    json: JsonArg,
    /// Print the limits on sizes read from files (largest array, image, sample rate, volume
    /// count), their values in force and the environment variables that raise them
    #[arg(long)]
    limits: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.limits {
        let rows = brainrecon_core::limits::in_force();
        return super::report(args.json.json, &rows, |rows| {
            brainrecon_core::limits::table(rows)
        });
    }
    let dir = args
        .dir
        .ok_or_else(|| anyhow::anyhow!("give a prepared subject directory, or --limits"))?;
    let subject = PreparedSubject::open(&dir)?;
    let info = subject.info()?;
    super::report(args.json.json, &info, |_| subject.info_text())
}
