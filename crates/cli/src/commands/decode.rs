use crate::args::JsonArg;
use brainrecon_datasets::prepared::PreparedSubject;
use brainrecon_formats::image::{write_png, RgbImage};
use brainrecon_formats::npy;
use brainrecon_routes::decode::decoders::{Decoder, Target};
use std::path::PathBuf;

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
    let subject = PreparedSubject::open(&args.subject)?;
    let decoder = Decoder::load(&args.model)?;
    let (ids, predictions) = decoder.predict_test(&subject)?;
    let width = decoder.model.n_targets();
    npy::write(
        &args.out.join("predictions.npy"),
        &[ids.len(), width],
        &predictions,
    )?;
    npy::write(
        &args.out.join("ids.npy"),
        &[ids.len()],
        &ids.iter().map(|&i| i as i64).collect::<Vec<_>>(),
    )?;
    let mut images = 0;
    if let Ok(Target::Pixels(size)) = Target::parse(&decoder.target) {
        for (row, &id) in ids.iter().enumerate() {
            let image =
                RgbImage::from_unit_f32(size, size, &predictions[row * width..(row + 1) * width]);
            write_png(&args.out.join(format!("{id}.png")), &image)?;
            images += 1;
        }
    }
    let summary = serde_json::json!({"out": args.out, "n_test": ids.len(), "n_targets": width, "images_written": images});
    if args.json.json {
        return super::print_json(&summary);
    }
    outln!(
        "decoded {} test images of {} from {} into {}",
        ids.len(),
        subject.meta.subject,
        decoder.roi,
        args.out.display()
    )?;
    Ok(())
}
