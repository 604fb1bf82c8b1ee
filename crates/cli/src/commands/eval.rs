use super::usage;
use brainrecon_data::image::{read_png, write_png, RgbImage};
use brainrecon_data::prepared::PreparedSubject;
use brainrecon_metrics::MetricsTable;
use std::path::{Path, PathBuf};

/// Compare reconstructions with the images that were seen.
///
/// Reconstructions are PNGs named by 0-based 73k id (`<id>.png`). The stimuli are a prepared
/// subject or a directory of PNGs named the same way; they are resampled to the
/// reconstructions' size. Reports PixCorr, SSIM (grayscale, Gaussian window, as scikit-image),
/// pixel MSE and two-way identification on pixels (as MindEye computes it).
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon eval --stimuli prepared/subj01 --recons recons/pixels --json"
)]
pub struct Args {
    /// A prepared subject, or a directory of <id>.png stimuli
    #[arg(long)]
    stimuli: PathBuf,
    /// A directory of <id>.png reconstructions
    #[arg(long)]
    recons: PathBuf,
    /// Also write a contact sheet PNG: stimuli on top, reconstructions below, 10 per row
    #[arg(long)]
    sheet: Option<PathBuf>,
    /// Print the table as JSON
    #[arg(long)]
    json: bool,
}

/// Pairs of (truth, reconstruction) tiled in rows of `per_row`: truth above its reconstruction.
fn contact_sheet(truths: &[RgbImage], recons: &[RgbImage], per_row: usize) -> RgbImage {
    let (h, w) = (recons[0].height, recons[0].width);
    let gap = 2;
    let rows = truths.len().div_ceil(per_row);
    let (sheet_h, sheet_w) = (rows * (2 * h + 3 * gap), per_row * (w + gap) + gap);
    let mut pixels = vec![255u8; sheet_h * sheet_w * 3];
    for (k, (truth, recon)) in truths.iter().zip(recons).enumerate() {
        let (top, left) = (
            (k / per_row) * (2 * h + 3 * gap) + gap,
            (k % per_row) * (w + gap) + gap,
        );
        for (offset, image) in [(0, truth), (h + gap, recon)] {
            for y in 0..h {
                let src = &image.pixels[y * w * 3..(y + 1) * w * 3];
                let at = ((top + offset + y) * sheet_w + left) * 3;
                pixels[at..at + w * 3].copy_from_slice(src);
            }
        }
    }
    RgbImage::new(sheet_h, sheet_w, pixels)
}

fn reconstructions(dir: &Path) -> anyhow::Result<Vec<(usize, PathBuf)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| brainrecon_data::DataError::io(dir, e))?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "png") {
            if let Some(id) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok())
            {
                found.push((id, path));
            }
        }
    }
    found.sort();
    if found.is_empty() {
        return Err(usage(format!(
            "{}: expected reconstructions named <id>.png, found none",
            dir.display()
        )));
    }
    Ok(found)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let recon_files = reconstructions(&args.recons)?;
    let subject = if args.stimuli.join("subject.json").exists() {
        Some(PreparedSubject::open(&args.stimuli)?)
    } else {
        None
    };
    let store = subject.as_ref().map(|s| s.images()).transpose()?;
    let (mut truths, mut recons) = (Vec::new(), Vec::new());
    let (mut truth_images, mut recon_images) = (Vec::new(), Vec::new());
    let mut size = None;
    for (id, path) in &recon_files {
        let recon = read_png(path)?;
        let expected = *size.get_or_insert((recon.height, recon.width));
        if (recon.height, recon.width) != expected {
            return Err(usage(format!(
                "{}: expected {}×{} like the other reconstructions, found {}×{}",
                path.display(),
                expected.0,
                expected.1,
                recon.height,
                recon.width
            )));
        }
        let truth: RgbImage = match &store {
            Some(store) => store.get(*id).ok_or_else(|| {
                usage(format!(
                    "{}: image {id} is not among the subject's stimuli",
                    args.stimuli.display()
                ))
            })?,
            None => read_png(&args.stimuli.join(format!("{id}.png")))?,
        };
        let truth = truth.resize(recon.height, recon.width);
        truths.push(truth.to_unit_f32());
        recons.push(recon.to_unit_f32());
        truth_images.push(truth);
        recon_images.push(recon);
    }
    let (h, w) = size.expect("at least one reconstruction");
    let table = MetricsTable::from_rgb_pairs(&truths, &recons, h, w)?;
    if let Some(path) = &args.sheet {
        write_png(path, &contact_sheet(&truth_images, &recon_images, 10))?;
    }
    if args.json {
        return super::print_json(&table);
    }
    print!("{table}");
    Ok(())
}
