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
    println!("subject        {}", m.subject);
    println!(
        "sessions       {}",
        brainrecon_data::nsd::prepare::compact_ranges(&m.sessions)
    );
    println!("betas          z-score: {}", m.zscore);
    println!(
        "train          {} trials, {} images",
        m.n_train_trials, m.n_train_images
    );
    println!(
        "test           {} images ({} trials averaged)",
        m.n_test_images, m.n_test_trials
    );
    println!(
        "images         {}×{} px, {} captions each",
        m.image_size[0], m.image_size[1], m.captions_per_image
    );
    println!("volume         {:?} (X, Y, Z)", m.volume_shape);
    println!("rois");
    for (name, count) in subject.roi_counts() {
        println!("  {name:<28} {count:>7} voxels");
    }
    Ok(())
}
