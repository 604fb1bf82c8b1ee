//! Event-related trials of a run set: each run's BIDS `_events.tsv` turned into the trials a
//! single-trial GLM fits (GLMsingle's designs), and its fMRIPrep confounds into the extra
//! regressors projected out with the drift polynomials.
//!
//! - A trial is an events row whose condition column (`--condition-column`; by default
//!   `stim_file` when every run's table has it, else `trial_type`) is not `n/a`. Rows without
//!   a condition (fixation, rest) are left out.
//! - Conditions are the distinct values of that column in order of first appearance; a
//!   stimulus shown several times is one condition.
//! - Each onset (seconds in the recording's clock, less the run set's dropped seconds) goes to
//!   the nearest volume, as GLMsingle's designs (a 1 at the onset's TR) hold it; the largest
//!   distance is reported.
//! - The stimulus duration is one for the experiment, as GLMsingle takes it: given, or the
//!   median of the trials' `duration` values.

use super::RunSet;
use crate::error::{DataError, Result};
use crate::fmriprep::confounds;
use brainrecon_formats::events::Events;
use std::path::Path;

/// What turns events into trials.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrialOptions {
    /// The events column naming each trial's condition (None: `stim_file`, else `trial_type`).
    pub condition_column: Option<String>,
    /// Seconds each stimulus lasts (None: the median of the trials' durations).
    pub stimdur: Option<f64>,
}

/// One trial.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Trial {
    /// Index into the run set's runs.
    pub run: usize,
    /// Seconds from the run's first row.
    pub onset: f64,
    /// The volume its onset goes to.
    pub volume: usize,
    /// Index into [`Trials::conditions`].
    pub condition: usize,
}

/// All trials of a run set in GLMsingle's order (run, then onset).
#[derive(Debug, Clone, PartialEq)]
pub struct Trials {
    /// The events column the conditions were read from.
    pub column: String,
    /// Distinct conditions, in order of first appearance.
    pub conditions: Vec<String>,
    /// Every trial, by run, then onset.
    pub trials: Vec<Trial>,
    /// Seconds each stimulus lasts (given, or the trials' median duration).
    pub stimdur: f64,
    /// The largest distance between an onset and its volume's time, seconds.
    pub largest_rounding: f64,
}

impl Trials {
    /// Run `run`'s design over its volumes `first..n_trs`: ((n_trs − first) × conditions),
    /// row-major, 1 at each trial's onset volume. A trial before `first` is an error naming
    /// the events file (`events`).
    pub fn design(
        &self,
        run: usize,
        first: usize,
        n_trs: usize,
        events: &Path,
    ) -> Result<Vec<f64>> {
        let k = self.conditions.len();
        let mut design = vec![0.0; n_trs.saturating_sub(first) * k];
        for trial in self.trials.iter().filter(|t| t.run == run) {
            if trial.volume < first {
                return Err(DataError::invalid(
                    events,
                    "onset",
                    format!("trials after the run's first {first} volumes, which fMRIPrep flags as non-steady-state and the GLM leaves out"),
                    format!("a trial at {} s", trial.onset),
                ));
            }
            design[(trial.volume - first) * k + trial.condition] = 1.0;
        }
        Ok(design)
    }
}

/// How many of run `run`'s first volumes fMRIPrep flags as non-steady-state (0 without
/// confounds): left out of the GLM, as GLMsingle's users drop dummy scans.
pub fn leading_non_steady_state(set: &RunSet, run: usize) -> usize {
    let Some(c) = &set.runs()[run].confounds else {
        return 0;
    };
    (0..).take_while(|r| c.non_steady_state.contains(r)).count()
}

/// The condition column: the one asked for, else `stim_file` when every table has it, else
/// `trial_type`; every table must have it.
fn condition_column(tables: &[Events], asked: Option<&str>) -> Result<String> {
    let column = match asked {
        Some(c) => c.to_string(),
        None if tables
            .iter()
            .all(|t| t.columns().iter().any(|c| c == "stim_file")) =>
        {
            "stim_file".into()
        }
        None => "trial_type".into(),
    };
    for table in tables {
        if !table.columns().iter().any(|c| c == &column) {
            return Err(DataError::invalid(
                table.path(),
                "columns",
                format!(
                    "a '{column}' column naming each trial's condition{}",
                    if asked.is_none() {
                        " (or stim_file; name another with --condition-column)"
                    } else {
                        ""
                    }
                ),
                table.columns().join(", "),
            ));
        }
    }
    Ok(column)
}

/// Every run's events table, its messages naming the file it was copied from; a run without
/// one is an error.
fn event_tables(set: &RunSet) -> Result<Vec<Events>> {
    set.runs()
        .iter()
        .map(|run| {
            let Some(copy) = &run.events else {
                return Err(DataError::invalid(
                    &run.source_file,
                    "events",
                    "an _events.tsv for the run in the raw BIDS dataset (--bids-root)",
                    "none found",
                ));
            };
            let copy = set.root().join(copy);
            let text = brainrecon_core::text::read_text(&copy)?;
            Events::parse(run.events_source.as_deref().unwrap_or(&copy), &text)
        })
        .collect()
}

/// The raw dataset's events files of `subject`'s runs of `tasks` (in `sessions`, all when
/// empty), checked for the condition column before anything is written; none found is an
/// error.
pub fn check_event_files(
    raw_root: &Path,
    subject: &str,
    tasks: &[String],
    sessions: &[String],
    asked: Option<&str>,
) -> Result<()> {
    let mut tables = Vec::new();
    for dir in crate::bids::func_dirs(raw_root, subject)? {
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| DataError::io(&dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        for file in files {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Some((entities, suffix)) =
                name.strip_suffix(".tsv").and_then(crate::bids::parse_name)
            else {
                continue;
            };
            let task = crate::bids::entity(&entities, "task").unwrap_or_default();
            let session = crate::bids::entity(&entities, "ses");
            if suffix == "events"
                && tasks.iter().any(|t| t == task)
                && super::prepare::session_chosen(sessions, session)
            {
                tables.push(Events::read(&file)?);
            }
        }
    }
    if tables.is_empty() {
        return Err(DataError::Missing {
            path: raw_root.join(format!("sub-{subject}")),
            what: format!(
                "the runs' _events.tsv files (task {}) in the raw BIDS dataset",
                tasks.join(", ")
            ),
        });
    }
    condition_column(&tables, asked).map(|_| ())
}

/// The events of every run as trials (see the module documentation).
pub fn read_trials(set: &RunSet, opts: &TrialOptions) -> Result<Trials> {
    let tables = event_tables(set)?;
    let column = condition_column(&tables, opts.condition_column.as_deref())?;
    let tr = set.tr();
    if !TR_RANGE.contains(&tr) {
        return Err(DataError::invalid(
            &set.runs()[0].source_file,
            "RepetitionTime",
            format!("{} to {} s", TR_RANGE.start(), TR_RANGE.end()),
            format!("{tr} s"),
        ));
    }
    let mut conditions: Vec<String> = Vec::new();
    let mut trials = Vec::new();
    let mut durations = Vec::new();
    let mut largest_rounding: f64 = 0.0;
    for (run, table) in tables.iter().enumerate() {
        let info = &set.runs()[run];
        let labels = table.text(&column)?;
        let onsets = table.onsets()?;
        let lengths = table.durations()?;
        let mut taken: Vec<(usize, usize)> = Vec::new();
        for (row, label) in labels.iter().enumerate() {
            let Some(label) = label else { continue };
            let onset = onsets[row] - info.start_seconds;
            let volume = (onset / tr).round();
            if !(onset >= -0.5 * tr && volume < info.n_trs as f64) {
                return Err(DataError::invalid(
                    table.path(),
                    format!("row {} onset", row + 2),
                    format!(
                        "an onset within the run's {} volumes at TR {tr} s (0 to {:.3} s after its first kept volume)",
                        info.n_trs,
                        (info.n_trs as f64 - 0.5) * tr
                    ),
                    format!("{} s", onsets[row]),
                ));
            }
            let volume = volume.max(0.0) as usize;
            if let Some((_, other)) = taken.iter().find(|(v, _)| *v == volume) {
                return Err(two_onsets(table.path(), *other, row, volume, tr));
            }
            taken.push((volume, row));
            largest_rounding = largest_rounding.max((onset - volume as f64 * tr).abs());
            let condition = match conditions.iter().position(|c| c == label) {
                Some(c) => c,
                None => {
                    conditions.push(label.to_string());
                    conditions.len() - 1
                }
            };
            if let Some(d) = lengths[row] {
                durations.push(d);
            }
            trials.push(Trial {
                run,
                onset,
                volume,
                condition,
            });
        }
    }
    if trials.is_empty() {
        return Err(DataError::invalid(
            tables[0].path(),
            column,
            "trials: rows whose condition column is not n/a",
            "none in any run",
        ));
    }
    trials.sort_by_key(|t| (t.run, t.volume));
    let stimdur = stimulus_duration(opts.stimdur, &mut durations, &tables[0])?;
    Ok(Trials {
        column,
        conditions,
        trials,
        stimdur,
        largest_rounding,
    })
}

fn two_onsets(path: &Path, first: usize, second: usize, volume: usize, tr: f64) -> DataError {
    DataError::invalid(
        path,
        format!("rows {} and {} onset", first + 2, second + 2),
        format!(
            "trials at least one TR ({tr} s) apart: GLMsingle's design holds one trial per volume"
        ),
        format!("both at volume {volume}"),
    )
}

/// The longest stimulus a single-trial GLM takes, seconds: GLMsingle's designs are event
/// related (its HRFs are built by convolving with the stimulus' boxcar).
pub const MAX_STIMULUS_SECONDS: f64 = 60.0;
/// The TRs a GLM takes, seconds (the HRFs are sampled at the TR).
pub const TR_RANGE: std::ops::RangeInclusive<f64> = 0.05..=20.0;

/// The given duration, or the median of the trials' durations.
fn stimulus_duration(given: Option<f64>, durations: &mut [f64], table: &Events) -> Result<f64> {
    if let Some(d) = given {
        if !(d.is_finite() && (0.0..=MAX_STIMULUS_SECONDS).contains(&d)) {
            return Err(DataError::Usage(format!(
                "--stimdur: expected 0 to {MAX_STIMULUS_SECONDS} seconds, found {d}"
            )));
        }
        return Ok(d);
    }
    if durations.is_empty() {
        return Err(DataError::invalid(
            table.path(),
            "duration",
            "the trials' durations (or give --stimdur)",
            "n/a for every trial",
        ));
    }
    let median = brainrecon_core::stats::median(durations);
    if median > MAX_STIMULUS_SECONDS {
        return Err(DataError::invalid(
            table.path(),
            "duration",
            format!("event-related trials of at most {MAX_STIMULUS_SECONDS} s (or give --stimdur)"),
            format!("a median duration of {median} s"),
        ));
    }
    Ok(median)
}

/// Run `run`'s extra regressors over its volumes `first..n_trs` ((n_trs − first) × e,
/// row-major) from its fMRIPrep confounds: the regressors the run set names, then one spike
/// per non-steady-state volume from `first` on (which a regression then leaves out, as nilearn
/// censors them). Empty for runs without confounds.
pub fn confound_regressors(
    set: &RunSet,
    run: usize,
    first: usize,
) -> Result<(Vec<String>, Vec<f64>)> {
    let info = &set.runs()[run];
    let Some(c) = &info.confounds else {
        return Ok((Vec::new(), Vec::new()));
    };
    let n = info.n_trs;
    let drop = (info.start_seconds / set.tr()).round() as usize;
    let table = crate::fmriprep::read_confounds(&c.file)?;
    if table.len() < drop + n {
        return Err(DataError::invalid(
            &c.file,
            "rows",
            format!("at least {} (the run's volumes)", drop + n),
            table.len().to_string(),
        ));
    }
    let mut names = c.regressors.clone();
    let mut columns = c
        .regressors
        .iter()
        .map(|name| confounds::regressor(&table, name).map(|v| v[drop + first..drop + n].to_vec()))
        .collect::<Result<Vec<_>>>()?;
    let kept = n.saturating_sub(first);
    for &row in c.non_steady_state.iter().filter(|&&r| r >= first && r < n) {
        let mut spike = vec![0.0; kept];
        spike[row - first] = 1.0;
        columns.push(spike);
        names.push(format!("non_steady_state_{row}"));
    }
    let e = columns.len();
    let mut out = vec![0.0; kept * e];
    for (j, column) in columns.iter().enumerate() {
        for t in 0..kept {
            out[t * e + j] = column[t];
        }
    }
    Ok((names, out))
}
