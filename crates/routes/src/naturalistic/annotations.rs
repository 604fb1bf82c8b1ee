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
pub(crate) fn kind_of(stem: &str) -> &str {
    let base = stem.strip_suffix("_each1sec").unwrap_or(stem);
    match base.split_once("_run-") {
        Some((_, rest)) => rest.split_once('_').map_or(rest, |(_, kind)| kind),
        None => base,
    }
}

/// True when `line` starts with a `[HH:MM:SS]` stamp (ds005531's lines; digits and colons
/// inside the brackets).
pub(crate) fn has_stamp(line: &str) -> bool {
    let Some(rest) = line.trim_start().strip_prefix('[') else {
        return false;
    };
    rest.split_once(']').is_some_and(|(stamp, _)| {
        stamp.contains(':')
            && stamp
                .chars()
                .all(|c| c.is_ascii_digit() || c == ':' || c == '.')
    })
}

/// How records name a markup: `ds005531` or `plain`, as `--markup` spells it.
pub(crate) fn markup_name(markup: Markup) -> &'static str {
    match markup {
        Markup::Ds005531 => "ds005531",
        Markup::Plain => "plain",
    }
}

/// `--markup`: `auto` (None: decided per file), `ds005531` or `plain`.
pub fn parse_markup(name: &str) -> Result<Option<Markup>> {
    match name {
        "auto" => Ok(None),
        "ds005531" => Ok(Some(Markup::Ds005531)),
        "plain" => Ok(Some(Markup::Plain)),
        other => Err(RouteError::Usage(format!(
            "--markup: expected auto, ds005531 or plain, found {other}"
        ))),
    }
}

/// ds005531's markup when any line carries its `[HH:MM:SS]` stamp, else plain text. The
/// authors' reader treats every line of such a file alike (a line without a stamp keeps all its
/// text and is split on `/`), so one unstamped first line no longer turns a file into plain
/// text.
fn detect_markup(lines: &[String]) -> Markup {
    if lines.iter().any(|l| has_stamp(l)) {
        Markup::Ds005531
    } else {
        Markup::Plain
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
        let files = files
            .iter()
            .map(|file| write_file_features(featurizer, markup, file, dir))
            .collect::<Result<_>>()?;
        let record = FeatureRecord {
            model: featurizer.name().to_string(),
            files,
        };
        brainrecon_core::fs::write_json_atomic(&dir.join(RECORD_FILE), &record)?;
        Ok(())
    })
}

/// What `features text` records beside its `.npy` files, so that `encode-runs --bands KIND=DIR`
/// can check the vocabulary as it does for bands it featurises itself.
pub const RECORD_FILE: &str = "features.json";

/// `features.json`: the model and, per written file stem, what it made of the text.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FeatureRecord {
    /// The featuriser's name (word2vec vectors or a language model).
    pub model: String,
    /// Per file stem written, what was made of its text.
    pub files: std::collections::BTreeMap<String, FileRecord>,
}

/// One annotation file's counts.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FileRecord {
    /// The annotation file read.
    pub source: String,
    /// `ds005531` or `plain`.
    pub markup: String,
    /// Lines read: the rows of its `.npy`.
    pub lines: usize,
    /// Words seen (word2vec; 0 for language models).
    pub words: usize,
    /// Words out of the vocabulary (word2vec), or lines truncated (language models).
    pub skipped: usize,
}

/// `dir/features.json` when `features text` wrote one (None for other feature folders).
pub fn read_feature_record(dir: &Path) -> Result<Option<FeatureRecord>> {
    let path = dir.join(RECORD_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let text = brainrecon_core::text::read_text(&path)?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| DataError::format(&path, "features text's record (model, files)", e).into())
}

/// Features of one annotation file's lines, written as `<stem>.npy` (`<stem>.<layer>.npy` for
/// several layers) into `dir`; the warnings about words out of the vocabulary on stderr.
fn write_file_features(
    featurizer: &TextFeaturizer,
    markup: Option<Markup>,
    file: &Path,
    dir: &Path,
) -> Result<(String, FileRecord)> {
    let lines = brainrecon_core::text::read_lines(file)?;
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
    let record = FileRecord {
        source: file.display().to_string(),
        markup: markup_name(markup).into(),
        lines: lines.len(),
        words: features.words,
        skipped: features.skipped,
    };
    Ok((stem.into_owned(), record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_found_from_any_stamped_line() {
        let lines = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let stamped = "[00:00:01]男性が座る/女性が話す";
        assert_eq!(
            detect_markup(&lines(&["opening credits", stamped])),
            Markup::Ds005531
        );
        assert_eq!(detect_markup(&lines(&["", stamped])), Markup::Ds005531);
        assert_eq!(
            detect_markup(&lines(&["[Music] a line", "[laughs] b"])),
            Markup::Plain
        );
        assert_eq!(detect_markup(&lines(&["a/b", ""])), Markup::Plain);
        assert!(has_stamp(" [01:02:03.5] x") && !has_stamp("[] x") && !has_stamp("[12] x"));
    }
}
