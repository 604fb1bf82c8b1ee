use brainrecon_data::prepared::PreparedSubject;
use std::path::PathBuf;

/// Describe a prepared subject: counts, ROIs, test ids, image size.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  brainrecon info prepared/subj01 --json | jq .rois")]
pub struct Args {
    /// A prepared subject directory
    dir: PathBuf,
    /// Print as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let subject = PreparedSubject::open(&args.dir)?;
    let info = subject.info()?;
    if args.json {
        return super::print_json(&info);
    }
    let m = &subject.meta;
    outln!("subject        {}", m.subject)?;
    outln!(
        "sessions       {}",
        brainrecon_data::nsd::prepare::compact_ranges(&m.sessions)
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
