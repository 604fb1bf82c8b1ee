use brainrecon_data::simulate::{simulate, OutputLayout, SimulateOptions};
use std::path::PathBuf;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Layout {
    /// NSD's own directory tree and file formats (an NSD root for `nsd prepare`)
    Nsd,
    /// A prepared subject, ready for `fit`
    Prepared,
}

/// Make a synthetic subject with known ground truth.
///
/// Stimuli are procedural scenes (shape, colour, background, position, size) with 5 captions
/// each. Early visual voxels have receptive fields over luminance and contrast; higher visual
/// voxels are tuned to the scene's attributes. Each image is shown 3 times, with NSD-like noise.
/// The truth is written to `truth/` beside the data.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon simulate --out sim-nsd --images 300 --seed 1\n  brainrecon nsd prepare --nsd-root sim-nsd --subject subj01 --out subj01"
)]
pub struct Args {
    /// Output directory (new or empty)
    #[arg(long)]
    out: PathBuf,
    /// Number of distinct images (10% of them are the shared test images)
    #[arg(long, default_value_t = 300)]
    images: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, value_enum, default_value_t = Layout::Nsd)]
    layout: Layout,
    /// Subject to simulate (subj01 … subj08)
    #[arg(long, default_value = "subj01")]
    subject: String,
    /// Side of the square stimulus images, in pixels
    #[arg(long, default_value_t = 64)]
    image_size: usize,
    /// Number of scanning sessions the trials are split into
    #[arg(long, default_value_t = 3)]
    sessions: usize,
    /// Print the truth summary as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut opts = SimulateOptions::new(&args.out);
    opts.n_images = args.images;
    opts.seed = args.seed;
    opts.layout = match args.layout {
        Layout::Nsd => OutputLayout::Nsd,
        Layout::Prepared => OutputLayout::Prepared,
    };
    opts.subject = brainrecon_data::nsd::parse_subject(&args.subject)?;
    opts.image_size = args.image_size;
    opts.sessions = args.sessions;
    opts.progress = super::show_progress();
    let simulated = simulate(&opts)?;
    let t = &simulated.truth;
    if args.json {
        let mut summary = serde_json::to_value(t)?;
        summary.as_object_mut().map(|o| o.remove("scenes"));
        summary["out"] = serde_json::json!(simulated.out);
        return super::print_json(&summary);
    }
    println!(
        "simulated {} at {}: {} images, {} sessions, {} train trials, {} test images, {} nsdgeneral voxels",
        t.subject,
        simulated.out.display(),
        t.n_images,
        t.sessions.len(),
        t.n_train_trials,
        t.n_test_images,
        t.rois.get("nsdgeneral").copied().unwrap_or(0)
    );
    Ok(())
}
