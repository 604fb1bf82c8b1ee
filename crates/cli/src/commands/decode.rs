use crate::commands::prelude::*;
use brainrecon_routes::decode::decoders::{decode_test, DecodedTest};

/// Decode the test betas of a prepared subject with a fitted model.
///
/// Writes `predictions.npy` (n_test, d) and `ids.npy` (n_test,) in the output directory; a
/// pixel model also writes one PNG per test image, named by its 0-based 73k id.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon decode --subject prepared/subj01 --model models/pixels --out recons/pixels\n  brainrecon eval --stimuli prepared/subj01 --recons recons/pixels"
)]
#[command(mut_arg("json", |a| a.help("Print a summary as JSON")))]
pub struct Args {
    /// A prepared subject directory
    #[arg(long)]
    subject: PathBuf,
    /// A model directory written by `brainrecon fit`
    #[arg(long)]
    model: PathBuf,
    /// Output directory
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let decoded = decode_test(&args.subject, &args.model, &args.out)?;
    args.json.print(&decoded, DecodedTest::text)
}
