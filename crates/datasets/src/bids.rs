//! BIDS as OpenNeuro ships it: BOLD runs found by their file names, sidecar metadata found by
//! the inheritance principle, events beside the runs, per-second annotations under
//! `derivatives/annotation/` (the layout ds005531 uses).

use crate::error::{DataError, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `key-value` pairs of a BIDS file name, in file-name order (`sub`, `ses`, `task`, …).
pub type Entities = Vec<(String, String)>;

/// Splits `sub-01_task-movie_run-01_bold` into entities and the suffix (`bold`). Returns
/// `None` when a part before the suffix is not `key-value`.
pub fn parse_name(stem: &str) -> Option<(Entities, String)> {
    let mut parts: Vec<&str> = stem.split('_').collect();
    let suffix = if parts.last()?.contains('-') {
        String::new()
    } else {
        parts.pop()?.to_string()
    };
    let entities = parts
        .iter()
        .map(|p| {
            let (k, v) = p.split_once('-')?;
            (!k.is_empty() && !v.is_empty()).then(|| (k.to_string(), v.to_string()))
        })
        .collect::<Option<Entities>>()?;
    Some((entities, suffix))
}

/// The value of entity `key` (`sub`, `task`, `run`, …), if the name has it.
pub fn entity<'a>(entities: &'a Entities, key: &str) -> Option<&'a str> {
    entities
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `sub-01`, `sub-S01`, `01` or `S01` → the label (`01`, `S01`).
pub fn subject_label(text: &str) -> Result<String> {
    let label = text.trim().trim_start_matches("sub-");
    if label.is_empty() || !label.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(DataError::Usage(format!(
            "--subject: expected a BIDS subject label such as 01 or sub-01, found '{text}'"
        )));
    }
    Ok(label.to_string())
}

/// The run's name in a run set: its entities without the subject (`ses-1_task-movie_run-01`).
pub fn run_name(entities: &Entities) -> String {
    entities
        .iter()
        .filter(|(k, _)| k != "sub")
        .map(|(k, v)| format!("{k}-{v}"))
        .collect::<Vec<_>>()
        .join("_")
}

/// One BOLD series of the subject.
#[derive(Debug, Clone)]
pub struct BoldFile {
    /// The `_bold.nii[.gz]` file.
    pub path: PathBuf,
    /// Its name's entities (`sub`, `ses`, `task`, `run`, …).
    pub entities: Entities,
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    Ok(entries)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The subject's `func/` folders: `sub-<S>/func` and `sub-<S>/ses-*/func`.
pub fn func_dirs(root: &Path, subject: &str) -> Result<Vec<PathBuf>> {
    let sub = root.join(format!("sub-{subject}"));
    if !sub.is_dir() {
        return Err(DataError::Missing {
            path: sub,
            what: format!("the folder of subject {subject} in the BIDS dataset"),
        });
    }
    let mut dirs = Vec::new();
    if sub.join("func").is_dir() {
        dirs.push(sub.join("func"));
    }
    for entry in list_dir(&sub)? {
        if file_name(&entry).starts_with("ses-") && entry.join("func").is_dir() {
            dirs.push(entry.join("func"));
        }
    }
    Ok(dirs)
}

/// Every `_bold.nii` / `_bold.nii.gz` of the subject, whatever its task.
pub fn bold_files(root: &Path, subject: &str) -> Result<Vec<BoldFile>> {
    let mut files = Vec::new();
    for dir in func_dirs(root, subject)? {
        for path in list_dir(&dir)? {
            let name = file_name(&path);
            let Some(stem) = name
                .strip_suffix(".nii.gz")
                .or_else(|| name.strip_suffix(".nii"))
            else {
                continue;
            };
            let Some((entities, suffix)) = parse_name(stem) else {
                continue;
            };
            if suffix == "bold" && entity(&entities, "sub") == Some(subject) {
                files.push(BoldFile { path, entities });
            }
        }
    }
    Ok(files)
}

/// Files that apply to a data file with `entities` by BIDS inheritance: at the dataset root,
/// the subject and session folders, and `dir` (the data file's own folder), ending in
/// `_<suffix>.<extension>`, whose entities are all among the data file's. Least specific first.
pub fn inherited_files(
    root: &Path,
    entities: &Entities,
    dir: &Path,
    suffix: &str,
    extension: &str,
) -> Result<Vec<PathBuf>> {
    let mut levels = vec![root.to_path_buf()];
    if let Some(sub) = entity(entities, "sub") {
        let sub_dir = root.join(format!("sub-{sub}"));
        levels.push(sub_dir.clone());
        if let Some(ses) = entity(entities, "ses") {
            levels.push(sub_dir.join(format!("ses-{ses}")));
        }
    }
    if !levels.iter().any(|l| l == dir) {
        levels.push(dir.to_path_buf());
    }
    let mut found = Vec::new();
    for level in levels.iter().filter(|l| l.is_dir()) {
        let mut here = Vec::new();
        for path in list_dir(level)? {
            let name = file_name(&path);
            let Some(stem) = name.strip_suffix(extension) else {
                continue;
            };
            let Some((own, own_suffix)) = parse_name(stem) else {
                continue;
            };
            let applies = own_suffix == suffix
                && own
                    .iter()
                    .all(|(k, v)| entity(entities, k) == Some(v.as_str()));
            if applies && path.is_file() {
                here.push((own.len(), path));
            }
        }
        here.sort();
        found.extend(here.into_iter().map(|(_, p)| p));
    }
    Ok(found)
}

/// A sidecar field merged over the inherited `_bold.json` files (the most specific wins),
/// with the file it came from.
pub fn sidecar_field(
    root: &Path,
    entities: &Entities,
    dir: &Path,
    key: &str,
) -> Result<Option<(serde_json::Value, PathBuf)>> {
    let mut value = None;
    for path in inherited_files(root, entities, dir, "bold", ".json")? {
        let json: serde_json::Value = brainrecon_core::fs::read_json(&path)?;
        if let Some(v) = json.get(key) {
            value = Some((v.clone(), path));
        }
    }
    Ok(value)
}

/// `RepetitionTime` (seconds) of a run, from its sidecars.
pub fn repetition_time(root: &Path, entities: &Entities, dir: &Path, run: &Path) -> Result<f64> {
    match sidecar_field(root, entities, dir, "RepetitionTime")? {
        Some((value, path)) => value
            .as_f64()
            .filter(|t| t.is_finite() && *t > 0.0)
            .ok_or_else(|| {
                DataError::invalid(path, "RepetitionTime", "a positive number of seconds", value.to_string())
            }),
        None => Err(DataError::invalid(
            run,
            "RepetitionTime",
            format!(
                "a RepetitionTime in a _bold.json sidecar beside it or inherited (e.g. {}/task-{}_bold.json)",
                root.display(),
                entity(entities, "task").unwrap_or("<task>")
            ),
            "none in any sidecar",
        )),
    }
}

/// The events table of a run: its own `_events.tsv`, else the most specific inherited one.
pub fn events_file(root: &Path, entities: &Entities, dir: &Path) -> Result<Option<PathBuf>> {
    Ok(inherited_files(root, entities, dir, "events", ".tsv")?.pop())
}

/// Per-second annotations of a run, `derivatives/annotation/<task>_run-NN_<kind>_each1sec.txt`
/// as ds005531 names them: kind → file.
pub fn annotation_files(
    root: &Path,
    task: &str,
    run: Option<u32>,
) -> Result<BTreeMap<String, PathBuf>> {
    let dir = root.join("derivatives").join("annotation");
    let mut files = BTreeMap::new();
    let Some(run) = run else {
        return Ok(files);
    };
    if !dir.is_dir() {
        return Ok(files);
    }
    let prefix = format!("{task}_run-");
    for path in list_dir(&dir)? {
        let name = file_name(&path);
        let Some(rest) = name
            .strip_suffix("_each1sec.txt")
            .and_then(|s| s.strip_prefix(&prefix))
        else {
            continue;
        };
        let Some((number, kind)) = rest.split_once('_') else {
            continue;
        };
        if number.parse::<u32>().ok() == Some(run) && !kind.is_empty() {
            files.insert(kind.to_string(), path);
        }
    }
    Ok(files)
}

/// Lines of a per-second annotation file (UTF-8; empty lines are seconds without text; each
/// at most [`brainrecon_core::limits::LINE_BYTES`]).
pub fn read_lines(path: &Path) -> Result<Vec<String>> {
    brainrecon_core::text::read_lines(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_into_entities() {
        let (e, s) = parse_name("sub-001_ses-2_task-Training_acq-mb_run-01_bold").unwrap();
        assert_eq!(s, "bold");
        assert_eq!(entity(&e, "task"), Some("Training"));
        assert_eq!(run_name(&e), "ses-2_task-Training_acq-mb_run-01");
        let (e, s) = parse_name("task-movie_bold").unwrap();
        assert_eq!((e.len(), s.as_str()), (1, "bold"));
        assert!(parse_name("sub_01_bold").is_none());
        assert_eq!(subject_label("sub-S01").unwrap(), "S01");
        assert!(subject_label("sub-").is_err());
    }

    #[test]
    fn sidecars_inherit_and_the_deepest_wins() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let func = root.join("sub-01/ses-1/func");
        std::fs::create_dir_all(&func).unwrap();
        std::fs::write(
            root.join("task-movie_bold.json"),
            r#"{"RepetitionTime": 2.0}"#,
        )
        .unwrap();
        std::fs::write(
            root.join("task-other_bold.json"),
            r#"{"RepetitionTime": 9.0}"#,
        )
        .unwrap();
        let (entities, _) = parse_name("sub-01_ses-1_task-movie_run-01_bold").unwrap();
        let run = func.join("sub-01_ses-1_task-movie_run-01_bold.nii.gz");
        assert_eq!(repetition_time(root, &entities, &func, &run).unwrap(), 2.0);
        std::fs::write(
            func.join("sub-01_ses-1_task-movie_run-01_bold.json"),
            r#"{"RepetitionTime": 1.0}"#,
        )
        .unwrap();
        assert_eq!(repetition_time(root, &entities, &func, &run).unwrap(), 1.0);
        let (other, _) = parse_name("sub-01_ses-1_task-rest_run-01_bold").unwrap();
        let err = repetition_time(root, &other, &func, &run)
            .unwrap_err()
            .to_string();
        assert!(err.contains("RepetitionTime"), "{err}");
    }
}
