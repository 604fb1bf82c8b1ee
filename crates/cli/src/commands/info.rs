use crate::args::JsonArg;
use brainrecon_datasets::prepared::PreparedSubject;
use std::path::PathBuf;

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

fn print_limits(json: bool) -> anyhow::Result<()> {
    let rows = brainrecon_core::limits::in_force();
    if json {
        return super::print_json(&rows);
    }
    out!("{}", brainrecon_core::limits::table(&rows))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.limits {
        return print_limits(args.json.json);
    }
    let dir = args
        .dir
        .ok_or_else(|| anyhow::anyhow!("give a prepared subject directory, or --limits"))?;
    let subject = PreparedSubject::open(&dir)?;
    let info = subject.info()?;
    if args.json.json {
        return super::print_json(&info);
    }
    let m = &subject.meta;
    outln!("subject        {}", m.subject)?;
    outln!(
        "sessions       {}",
        brainrecon_datasets::nsd::prepare::compact_ranges(&m.sessions)
    )?;
    outln!("betas          z-score: {}", m.zscore)?;
    outln!(
        "train          {} trials, {} images",
        m.n_train_trials,
        m.n_train_images
    )?;
    outln!(
        "test           {} images ({} trials averaged)",
        m.n_test_images,
        m.n_test_trials
    )?;
    outln!(
        "images         {}×{} px, {} captions each",
        m.image_size[0],
        m.image_size[1],
        m.captions_per_image
    )?;
    outln!("volume         {:?} (X, Y, Z)", m.volume_shape)?;
    outln!("rois")?;
    for (name, count) in subject.roi_counts() {
        outln!("  {name:<28} {count:>7} voxels")?;
    }
    Ok(())
}
