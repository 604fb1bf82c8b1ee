//! Scores a folder of reconstructions named `<id>.png` against the images that were seen
//! (a prepared subject's stimuli, or a folder of `<id>.png`): the pixel metrics table, the
//! metric suite when there are two images or more, and an optional contact sheet. This is
//! `brainrecon eval` on anything that is not a `brainrecon reconstruct` result.

use crate::error::{Result, RouteError};
use crate::evaluate::SuiteTable;
use crate::suite::{self, Networks};
use brainrecon_data::image::{read_png, write_png, RgbImage};
use brainrecon_data::prepared::PreparedSubject;
use brainrecon_data::DataError;
use brainrecon_metrics::MetricsTable;
use std::path::{Path, PathBuf};

fn usage(message: impl Into<String>) -> RouteError {
    RouteError::Usage(message.into())
}

/// The scores of one folder.
pub struct FolderScores {
    /// The pixel metrics per image and their means.
    pub table: MetricsTable,
    /// The metric suite (two images or more).
    pub suite: Option<SuiteTable>,
}

/// Pairs of (truth, reconstruction) tiled in rows of `per_row`: truth above its reconstruction.
pub fn contact_sheet(truths: &[RgbImage], recons: &[RgbImage], per_row: usize) -> RgbImage {
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

/// The `<id>.png` files of `dir`, by id; none is an error naming the folder.
pub fn reconstructions(dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
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

/// Scores the reconstructions in `recons` against `stimuli` (a prepared subject, or a folder
/// of `<id>.png`); each truth is resized to the reconstructions' size. `networks` loads the
/// metric suite's networks, called only when there are two images or more; `sheet` writes the
/// contact sheet there.
pub fn score_folder<E: From<RouteError>>(
    recons: &Path,
    stimuli: &Path,
    sheet: Option<&Path>,
    networks: impl FnOnce() -> std::result::Result<Networks, E>,
) -> std::result::Result<FolderScores, E> {
    let recon_files = reconstructions(recons)?;
    let subject = if stimuli.join("subject.json").exists() {
        Some(PreparedSubject::open(stimuli).map_err(RouteError::from)?)
    } else {
        None
    };
    let store = subject
        .as_ref()
        .map(|s| s.images())
        .transpose()
        .map_err(RouteError::from)?;
    let (mut truths, mut recon_units) = (Vec::new(), Vec::new());
    let (mut truth_images, mut recon_images) = (Vec::new(), Vec::new());
    let mut truth_native = Vec::new();
    let mut size = None;
    for (id, path) in &recon_files {
        let recon = read_png(path).map_err(RouteError::from)?;
        let expected = *size.get_or_insert((recon.height, recon.width));
        if (recon.height, recon.width) != expected {
            return Err(usage(format!(
                "{}: expected {}×{} like the other reconstructions, found {}×{}",
                path.display(),
                expected.0,
                expected.1,
                recon.height,
                recon.width
            ))
            .into());
        }
        let truth: RgbImage = match &store {
            Some(store) => store.get(*id).ok_or_else(|| {
                usage(format!(
                    "{}: image {id} is not among the subject's stimuli",
                    stimuli.display()
                ))
            })?,
            None => read_png(&stimuli.join(format!("{id}.png"))).map_err(RouteError::from)?,
        };
        truth_native.push(truth.clone());
        let truth = truth.resize(recon.height, recon.width);
        truths.push(truth.to_unit_f32());
        recon_units.push(recon.to_unit_f32());
        truth_images.push(truth);
        recon_images.push(recon);
    }
    let (h, w) = size.expect("at least one reconstruction");
    let table =
        MetricsTable::from_rgb_pairs(&truths, &recon_units, h, w).map_err(RouteError::from)?;
    if let Some(path) = sheet {
        write_png(path, &contact_sheet(&truth_images, &recon_images, 10))
            .map_err(RouteError::from)?;
    }
    let suite = if truth_native.len() >= 2 {
        Some(suite_table(&networks()?, &truth_native, &recon_images)?)
    } else {
        None
    };
    Ok(FolderScores { table, suite })
}

/// The metric suite's row of the pairs.
fn suite_table(
    networks: &Networks,
    truths: &[RgbImage],
    recons: &[RgbImage],
) -> Result<SuiteTable> {
    let truth = suite::prepare(truths, networks.protocol);
    let recon = suite::prepare(recons, networks.protocol);
    let row = suite::score(
        "reconstructions",
        &truth,
        &networks.features(&truth, &|_| {})?,
        &recon,
        &networks.features(&recon, &|_| {})?,
        networks.protocol,
    )?;
    Ok(SuiteTable {
        protocol: networks.protocol,
        columns: suite::column_headers(),
        rows: vec![row],
        absent: networks.absent.clone(),
        per_image: Vec::new(),
    })
}
