//! NSD's preprocessed time series and per-volume designs, as `nsddata_timeseries` ships them:
//! what its GLMs (`betas_fithrf_GLMdenoise_RR`) were fitted on.
//!
//! ```text
//! nsddata_timeseries/ppdata/subjAA/func1pt8mm/timeseries/timeseries_sessionBB_runCC.nii.gz
//! nsddata_timeseries/ppdata/subjAA/func1pt8mm/design/design_sessionBB_runCC.tsv
//! nsddata/ppdata/subjAA/func1pt8mm/brainmask.nii.gz
//! ```
//! The 1.8-mm time series were resampled to 4/3 s per volume (the 1-mm ones to 1 s), their
//! first volume at the first RF pulse; nothing else (no high-pass, no units conversion).
//! A design file holds one integer per volume: 0, or the 73k ID (1-based) of the image whose
//! 3-s presentation starts at that volume. NSD's trials start every 4 s, three volumes apart.
//! Sessions with resting-state runs hold 14 runs, the first and last without trials.

use super::Layout;
use crate::bids::Entities;
use crate::error::{DataError, Result};
use std::path::{Path, PathBuf};

/// Seconds per volume of the 1.8-mm preparation.
pub const TR_1PT8MM: f64 = 4.0 / 3.0;
/// Seconds each NSD image is shown.
pub const STIMULUS_SECONDS: f64 = 3.0;
/// The task of NSD's core runs, as its raw BIDS names them.
pub const TASK: &str = "nsdcore";
/// The events column the designs become (the image's 73k ID, 1-based).
pub const ID_COLUMN: &str = "73k_id";

impl Layout {
    fn timeseries_root(&self) -> PathBuf {
        self.root.join(format!(
            "nsddata_timeseries/ppdata/{}/func1pt8mm",
            self.subject_name()
        ))
    }
    /// The folder of the 1.8-mm time series.
    pub fn timeseries_dir(&self) -> PathBuf {
        self.timeseries_root().join("timeseries")
    }
    /// The design of session `session` (1-based), run `run`.
    pub fn design(&self, session: &str, run: &str) -> PathBuf {
        self.timeseries_root()
            .join("design")
            .join(format!("design_session{session}_run{run}.tsv"))
    }
    /// The liberal brain mask the time series were masked with.
    pub fn brain_mask(&self) -> PathBuf {
        self.root.join(format!(
            "nsddata/ppdata/{}/func1pt8mm/brainmask.nii.gz",
            self.subject_name()
        ))
    }
}

/// `timeseries_session01_run03.nii.gz` → ("01", "03"); other names (`timeseries_prffloc_…`) none.
fn session_and_run(name: &str) -> Option<(String, String)> {
    let stem = name
        .strip_prefix("timeseries_session")?
        .strip_suffix(".nii.gz")
        .or_else(|| {
            name.strip_prefix("timeseries_session")?
                .strip_suffix(".nii")
        })?;
    let (session, run) = stem.split_once("_run")?;
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    (digits(session) && digits(run)).then(|| (session.to_string(), run.to_string()))
}

/// The core sessions' runs of a subject, with BIDS-style entities (`ses-01_task-nsdcore_run-03`).
pub fn runs(layout: &Layout) -> Result<Vec<(PathBuf, Entities)>> {
    let dir = layout.timeseries_dir();
    let entries = std::fs::read_dir(&dir).map_err(|_| DataError::Missing {
        path: dir.clone(),
        what: "NSD's time series folder (nsddata_timeseries/ppdata/subjAA/func1pt8mm/timeseries)"
            .into(),
    })?;
    let mut runs = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| DataError::io(&dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some((session, run)) = session_and_run(name) {
            let entities = vec![
                ("sub".to_string(), format!("{:02}", layout.subject)),
                ("ses".to_string(), session),
                ("task".to_string(), TASK.to_string()),
                ("run".to_string(), run),
            ];
            runs.push((path, entities));
        }
    }
    runs.sort();
    Ok(runs)
}

/// A design file: one non-negative integer per volume, `n_volumes` of them.
pub fn read_design(path: &Path, n_volumes: usize) -> Result<Vec<u32>> {
    let text = std::fs::read_to_string(path).map_err(|_| DataError::Missing {
        path: path.to_path_buf(),
        what: "the run's NSD design (design_sessionBB_runCC.tsv, one 73k ID or 0 per volume)"
            .into(),
    })?;
    let text = brainrecon_core::text::without_bom(&text);
    let mut ids = Vec::with_capacity(n_volumes.min(100_000));
    for (i, line) in text.lines().map(str::trim).enumerate() {
        if line.is_empty() {
            continue;
        }
        let id = line
            .parse::<f64>()
            .ok()
            .filter(|v| v.fract() == 0.0 && (0.0..=1e9).contains(v));
        match id {
            Some(v) => ids.push(v as u32),
            None => {
                return Err(DataError::invalid(
                    path,
                    format!("line {}", i + 1),
                    "0 or a 73k ID (a whole number ≥ 1)",
                    format!("'{line}'"),
                ))
            }
        }
    }
    if ids.len() != n_volumes {
        return Err(DataError::invalid(
            path,
            "rows",
            format!("one per volume of its time series ({n_volumes})"),
            ids.len().to_string(),
        ));
    }
    Ok(ids)
}

/// A design as a BIDS events table (`onset`, `duration`, `73k_id`): a row per nonzero volume,
/// its onset that volume's time.
pub fn design_events(ids: &[u32], tr: f64) -> String {
    let mut text = format!("onset\tduration\t{ID_COLUMN}\n");
    for (volume, &id) in ids.iter().enumerate() {
        if id > 0 {
            text.push_str(&format!(
                "{}\t{STIMULUS_SECONDS}\t{id}\n",
                volume as f64 * tr
            ));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_names_are_parsed_and_others_skipped() {
        assert_eq!(
            session_and_run("timeseries_session01_run03.nii.gz"),
            Some(("01".into(), "03".into()))
        );
        assert_eq!(session_and_run("timeseries_prffloc_run01.nii.gz"), None);
        assert_eq!(session_and_run("timeseries_session01_run03.json"), None);
        assert_eq!(session_and_run("timeseries_sessionx_run03.nii.gz"), None);
    }

    #[test]
    fn designs_become_events_at_their_volumes() {
        let text = design_events(&[0, 0, 46003, 0, 0, 61883], 1.5);
        assert_eq!(
            text,
            "onset\tduration\t73k_id\n3\t3\t46003\n7.5\t3\t61883\n"
        );
    }
}
