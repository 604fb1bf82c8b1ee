//! Text features of annotation files (one line of text per second, as ds005531's
//! `*_each1sec.txt`), one row per line: the work of `brainrecon features text`.

use super::TextFeaturizer;
use crate::error::{Result, RouteError};
use brainrecon_core::DataError;
use brainrecon_datasets::ds005531::{annotation_segments, Markup};
use brainrecon_formats::npy;
use std::path::{Path, PathBuf};

/// The annotation file `path`, or the `*.txt` files of the folder `path`, sorted.
pub fn annotation_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| DataError::io(path, e))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(RouteError::Usage(format!(
            "{}: no annotation files (*.txt)",
            path.display()
        )));
    }
    Ok(files)
}

/// The annotation kind of `<title>_run-NN_<kind>_each1sec` (else the whole stem).
fn kind_of(stem: &str) -> &str {
    let base = stem.strip_suffix("_each1sec").unwrap_or(stem);
    match base.split_once("_run-") {
        Some((_, rest)) => rest.split_once('_').map_or(rest, |(_, kind)| kind),
        None => base,
    }
}

/// ds005531's markup when the first line with text starts with a `[…]` stamp.
fn detect_markup(lines: &[String]) -> Markup {
    match lines.iter().find(|l| !l.trim().is_empty()) {
        Some(line) if line.trim_start().starts_with('[') && line.contains(']') => Markup::Ds005531,
        _ => Markup::Plain,
    }
}

/// Writes the features of every file in `files` into `out` (replaced whole when every file
/// succeeds, left as it was otherwise); `markup` None detects it per file.
pub fn write_annotation_features(
    featurizer: &TextFeaturizer,
    markup: Option<Markup>,
    files: &[PathBuf],
    out: &Path,
) -> Result<()> {
    brainrecon_core::fs::write_folder_atomic(out, |dir| {
        files
            .iter()
            .try_for_each(|file| write_file_features(featurizer, markup, file, dir))
    })
}

/// Features of one annotation file's lines, written as `<stem>.npy` (`<stem>.<layer>.npy` for
/// several layers) into `dir`; the warnings about words out of the vocabulary on stderr.
fn write_file_features(
    featurizer: &TextFeaturizer,
    markup: Option<Markup>,
    file: &Path,
    dir: &Path,
) -> Result<()> {
    let text = std::fs::read_to_string(file).map_err(|e| DataError::io(file, e))?;
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let stem = file.file_stem().unwrap_or_default().to_string_lossy();
    let kind = kind_of(&stem);
    let markup = markup.unwrap_or_else(|| detect_markup(&lines));
    let segments: Vec<Vec<String>> = lines
        .iter()
        .map(|line| annotation_segments(markup, kind, line))
        .collect();
    let features = featurizer.segment_features(&segments)?;
    if features.all_zero() {
        eprintln!(
            "warning: {}: every row is zero ({} of {} words out of the vocabulary of {})",
            file.display(),
            features.skipped,
            features.words,
            featurizer.name()
        );
    }
    let several = features.layers.len() > 1;
    for (layer, values) in &features.layers {
        let name = if several {
            format!("{stem}.{layer}.npy")
        } else {
            format!("{stem}.npy")
        };
        npy::write(&dir.join(name), &[lines.len(), features.dim], values)?;
    }
    if features.skipped > 0 {
        let share = features
            .out_of_vocabulary()
            .map(|f| format!(" ({:.0}% of {} words)", 100.0 * f, features.words))
            .unwrap_or_default();
        eprintln!(
            "{}: {} words or lines not fully used (out of vocabulary or truncated){share}",
            file.display(),
            features.skipped
        );
    }
    Ok(())
}
