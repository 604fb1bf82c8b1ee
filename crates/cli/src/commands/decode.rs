use super::usage;
use brainrecon_data::image::{write_png, RgbImage};
use brainrecon_data::npy;
use brainrecon_data::prepared::{PreparedSubject, Split};
use brainrecon_ridge::RidgeModel;
use brainrecon_routes::decoders::Target;
use std::path::PathBuf;

/// Decode the test betas of a prepared subject with a fitted model.
///
/// Writes `predictions.npy` (n_test, d) and `ids.npy` (n_test,) in the output directory; a
/// pixel model also writes one PNG per test image, named by its 0-based 73k id.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon decode --subject prepared/subj01 --model models/pixels --out recons/pixels\n  brainrecon eval --stimuli prepared/subj01 --recons recons/pixels"
)]
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
    /// Print a summary as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let subject = PreparedSubject::open(&args.subject)?;
    let model = RidgeModel::load(&args.model)?;
    let meta_text = |key: &str| {
        model
            .metadata
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let roi_name = meta_text("roi").ok_or_else(|| {
        usage(format!(
            "{}: model.json has no 'roi': fit it with `brainrecon fit`",
            args.model.display()
        ))
    })?;
    let roi = subject.roi(&roi_name)?;
    if roi.n_voxels != model.n_features() {
        return Err(usage(format!(
            "{}: the model expects {} voxels of {roi_name}, but {} has {}",
            args.model.display(),
            model.n_features(),
            args.subject.display(),
            roi.n_voxels
        )));
    }
    let betas = subject.betas(&roi, Split::Test)?;
    let ids = subject.test_stimulus_ids()?;
    let predictions = model.predict_row_major(&betas.values, (betas.rows, betas.voxels))?;
    let width = model.n_targets();
    npy::write(
        &args.out.join("predictions.npy"),
        &[betas.rows, width],
        &predictions,
    )?;
    npy::write(
        &args.out.join("ids.npy"),
        &[ids.len()],
        &ids.iter().map(|&i| i as i64).collect::<Vec<_>>(),
    )?;
    let mut images = 0;
    if let Some(Ok(Target::Pixels(size))) = meta_text("target").map(|t| Target::parse(&t)) {
        for (row, &id) in ids.iter().enumerate() {
            let image =
                RgbImage::from_unit_f32(size, size, &predictions[row * width..(row + 1) * width]);
            write_png(&args.out.join(format!("{id}.png")), &image)?;
            images += 1;
        }
    }
    let summary = serde_json::json!({"out": args.out, "n_test": ids.len(), "n_targets": width, "images_written": images});
    if args.json {
        return super::print_json(&summary);
    }
    println!(
        "decoded {} test images of {} from {roi_name} into {}",
        ids.len(),
        subject.meta.subject,
        args.out.display()
    );
    Ok(())
}
