//! Confound regression of fMRIPrep runs, as nilearn 0.14 does it.
//!
//! **Selection** follows `nilearn.interfaces.fmriprep.load_confounds`:
//! * `motion:<model>` uses `trans_x, trans_y, trans_z, rot_x, rot_y, rot_z`, `wm_csf:<model>`
//!   `csf, white_matter`, `global_signal:<model>` `global_signal`; the model adds, per
//!   regressor, `_derivative1` (`derivatives`), `_power2` (`power2`) or all three of
//!   `_derivative1`, `_power2`, `_derivative1_power2` (`full`); `basic` adds nothing.
//! * `high_pass`: every column whose name contains `cosine` (fMRIPrep's `cosineNN`).
//! * `scrub[:N]` (N = 5 by default): volumes whose `framewise_displacement` exceeds the FD
//!   threshold (default 0.5 mm) or whose `std_dvars` exceeds the DVARS threshold (default
//!   1.5) are censored; with N > 0, so are the volumes before the first such volume when
//!   fewer than N, those after the last when fewer than N, and every stretch of fewer than N
//!   volumes between two of them (Power et al. 2014's segment rule, nilearn's
//!   `optimize_scrub`). `n/a` never exceeds a threshold.
//! * Always: a volume with a non-zero value in a column whose name contains
//!   `non_steady_state` is censored (nilearn's sample mask).
//! * `n/a` in the first row of a selected regressor is replaced by the second row's value
//!   (nilearn fills the first row's NaNs this way; fMRIPrep leaves derivatives `n/a` there).
//!   `n/a` anywhere else in a selected column is an error.
//!
//! **Cleaning** follows `nilearn.signal.clean(signals, confounds, sample_mask, detrend=False,
//! standardize="zscore_sample", standardize_confounds=True)` without filtering:
//!
//! 1. the censored volumes are removed from signals and confounds;
//! 2. each confound is centred and divided by its sample standard deviation (ddof 1; a
//!    deviation below f64's epsilon counts as 1) over the kept volumes;
//! 3. an orthonormal basis of the confounds is built by QR with column pivoting, keeping the
//!    directions whose `|R_ii|` exceeds 100·ε (as nilearn's `scipy.linalg.qr(...,
//!    pivoting=True)`), and each signal's projection on it is removed;
//! 4. each signal is centred and divided by its sample standard deviation over the kept
//!    volumes.

use crate::error::{DataError, Result};
use brainrecon_formats::events::Events;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Default `fd_threshold` (mm) of nilearn ≥ 0.13.
pub const DEFAULT_FD_THRESHOLD: f64 = 0.5;
/// Default `std_dvars_threshold` of nilearn ≥ 0.13.
pub const DEFAULT_STD_DVARS_THRESHOLD: f64 = 1.5;
/// Default minimal segment length of `scrub`.
pub const DEFAULT_SCRUB: usize = 5;

/// Which expansions of a regressor are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    /// The regressors as they are (`basic`).
    Basic,
    /// And their squares, `_power2` (`power2`).
    Power2,
    /// And their temporal derivatives, `_derivative1` (`derivatives`).
    Derivatives,
    /// And derivatives, squares and squared derivatives (`full`).
    Full,
}

impl Model {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "basic" => Model::Basic,
            "power2" => Model::Power2,
            "derivatives" => Model::Derivatives,
            "full" => Model::Full,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Model::Basic => "basic",
            Model::Power2 => "power2",
            Model::Derivatives => "derivatives",
            Model::Full => "full",
        }
    }

    fn suffixes(self) -> &'static [&'static str] {
        match self {
            Model::Basic => &[],
            Model::Power2 => &["power2"],
            Model::Derivatives => &["derivative1"],
            Model::Full => &["derivative1", "power2", "derivative1_power2"],
        }
    }
}

/// Scrubbing settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scrub {
    /// Stretches of kept volumes shorter than this are censored too (0: none).
    pub min_segment: usize,
    /// Framewise displacement above which a volume is censored, mm.
    pub fd_threshold: f64,
    /// Standardised DVARS above which a volume is censored.
    pub std_dvars_threshold: f64,
}

/// A confound strategy (see the module documentation).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Strategy {
    /// `motion:<model>`: the six rigid-body parameters.
    pub motion: Option<Model>,
    /// `wm_csf:<model>`: mean white-matter and CSF signals.
    pub wm_csf: Option<Model>,
    /// `global_signal:<model>`: the mean brain signal.
    pub global_signal: Option<Model>,
    /// `high_pass`: fMRIPrep's discrete cosine drift regressors (`cosineNN`).
    pub high_pass: bool,
    /// `scrub[:N]`: censor high-motion volumes.
    pub scrub: Option<Scrub>,
}

fn usage(text: &str, detail: String) -> DataError {
    DataError::Usage(format!(
        "--confounds: {detail} in '{text}' (expected a comma-separated list of motion:M, wm_csf:M, global_signal:M with M one of basic, power2, derivatives, full; high_pass; scrub or scrub:N; or none; e.g. motion:full,wm_csf:basic,high_pass,scrub)"
    ))
}

impl Strategy {
    /// Parses `motion:full,wm_csf:basic,global_signal:basic,high_pass,scrub[:N]` or `none`.
    /// The thresholds apply when `scrub` is named.
    pub fn parse(text: &str, fd_threshold: f64, std_dvars_threshold: f64) -> Result<Self> {
        let mut s = Strategy::default();
        if text.trim() == "none" {
            return Ok(s);
        }
        for item in text.split(',').map(str::trim) {
            let (key, value) = match item.split_once(':') {
                Some((k, v)) => (k, Some(v)),
                None => (item, None),
            };
            let model = |v: Option<&str>| {
                let v = v.ok_or_else(|| {
                    usage(text, format!("'{key}' needs a model (e.g. {key}:basic)"))
                })?;
                Model::parse(v).ok_or_else(|| usage(text, format!("unknown model '{v}' for {key}")))
            };
            let seen = match key {
                "motion" => s.motion.replace(model(value)?).is_some(),
                "wm_csf" => s.wm_csf.replace(model(value)?).is_some(),
                "global_signal" => s.global_signal.replace(model(value)?).is_some(),
                "high_pass" if value.is_none() => std::mem::replace(&mut s.high_pass, true),
                "scrub" => {
                    let min_segment = match value {
                        None => DEFAULT_SCRUB,
                        Some(v) => v.parse().map_err(|_| {
                            usage(text, format!("scrub:{v} is not a whole number of volumes"))
                        })?,
                    };
                    let scrub = Scrub {
                        min_segment,
                        fd_threshold,
                        std_dvars_threshold,
                    };
                    s.scrub.replace(scrub).is_some()
                }
                _ => return Err(usage(text, format!("unknown item '{item}'"))),
            };
            if seen {
                return Err(usage(text, format!("'{key}' given twice")));
            }
        }
        for (name, v) in [
            ("--fd-threshold", fd_threshold),
            ("--std-dvars-threshold", std_dvars_threshold),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(DataError::Usage(format!(
                    "{name}: expected a positive number, found {v}"
                )));
            }
        }
        Ok(s)
    }

    /// The strategy as `--confounds` text, canonical order (`none` when empty).
    pub fn label(&self) -> String {
        let mut items = Vec::new();
        for (key, model) in [
            ("motion", self.motion),
            ("wm_csf", self.wm_csf),
            ("global_signal", self.global_signal),
        ] {
            if let Some(m) = model {
                items.push(format!("{key}:{}", m.name()));
            }
        }
        if self.high_pass {
            items.push("high_pass".into());
        }
        if let Some(s) = self.scrub {
            items.push(format!("scrub:{}", s.min_segment));
        }
        if items.is_empty() {
            "none".into()
        } else {
            items.join(",")
        }
    }

    /// The regressor columns, named ones first (in nilearn's order), then `cosineNN` columns
    /// found in `columns`. Fails naming the first named column `columns` lacks.
    pub fn regressor_names(&self, path: &Path, columns: &[String]) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let groups = [
            (
                self.motion,
                "motion",
                &["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"][..],
            ),
            (self.wm_csf, "wm_csf", &["csf", "white_matter"][..]),
            (self.global_signal, "global_signal", &["global_signal"][..]),
        ];
        for (model, key, base) in groups {
            let Some(m) = model else { continue };
            let mut group: Vec<String> = base.iter().map(|b| b.to_string()).collect();
            for b in base {
                group.extend(m.suffixes().iter().map(|s| format!("{b}_{s}")));
            }
            if let Some(missing) = group.iter().find(|g| !columns.contains(g)) {
                return Err(DataError::invalid(
                    path,
                    format!("column {missing}"),
                    format!("the column {key}:{} needs (fMRIPrep writes it)", m.name()),
                    format!("no such column among the table's {}", columns.len()),
                ));
            }
            names.extend(group);
        }
        if self.high_pass {
            names.extend(columns.iter().filter(|c| c.contains("cosine")).cloned());
        }
        Ok(names)
    }
}

/// One regressor column: `n/a` in the first row takes the second row's value; `n/a`
/// elsewhere, or a non-finite value, is an error naming the file, row and column.
/// Shape: (n_rows,).
pub fn regressor(table: &Events, name: &str) -> Result<Vec<f64>> {
    let cells = table.numbers(name)?;
    let mut values: Vec<f64> = cells.iter().map(|c| c.unwrap_or(f64::NAN)).collect();
    if values.len() > 1 && values[0].is_nan() {
        values[0] = values[1];
    }
    if let Some(row) = values.iter().position(|v| !v.is_finite()) {
        return Err(DataError::invalid(
            table.path(),
            format!("row {} column {name}", row + 1),
            "a number (n/a only in the first row, as fMRIPrep writes derivatives)",
            if cells[row].is_none() {
                "n/a".to_string()
            } else {
                values[row].to_string()
            },
        ));
    }
    Ok(values)
}

/// Rows flagged in any `non_steady_state*` column (a non-zero value), sorted.
pub fn non_steady_state_rows(table: &Events) -> Result<Vec<usize>> {
    let mut rows = Vec::new();
    for name in table
        .columns()
        .iter()
        .filter(|c| c.contains("non_steady_state"))
    {
        for (i, v) in table.numbers(name)?.iter().enumerate() {
            if v.is_some_and(|v| v != 0.0) {
                rows.push(i);
            }
        }
    }
    rows.sort_unstable();
    rows.dedup();
    Ok(rows)
}

/// Rows over a threshold of `column` (`n/a` in the first row never is; elsewhere an error).
fn over(table: &Events, column: &str, threshold: f64) -> Result<Vec<usize>> {
    let cells = table.numbers(column)?;
    let mut rows = Vec::new();
    for (i, v) in cells.iter().enumerate() {
        match v.filter(|v| !v.is_nan()) {
            Some(v) if v > threshold => rows.push(i),
            Some(_) => {}
            None if i == 0 => {}
            None => {
                return Err(DataError::invalid(
                    table.path(),
                    format!("row {} column {column}", i + 1),
                    "a number (n/a only in the first row)",
                    "n/a",
                ))
            }
        }
    }
    Ok(rows)
}

/// Scrubbed rows: FD or std DVARS over threshold, then the short segments (sorted).
pub fn scrubbed_rows(table: &Events, scrub: &Scrub) -> Result<Vec<usize>> {
    let mut rows = over(table, "framewise_displacement", scrub.fd_threshold)?;
    rows.extend(over(table, "std_dvars", scrub.std_dvars_threshold)?);
    rows.sort_unstable();
    rows.dedup();
    Ok(short_segments(&rows, table.len(), scrub.min_segment))
}

/// Adds to the sorted `outliers` the volumes of stretches shorter than `min_segment` between
/// them and the run's ends (nilearn's `optimize_scrub`). Returns the sorted union.
pub fn short_segments(outliers: &[usize], n: usize, min_segment: usize) -> Vec<usize> {
    let (Some(&first), Some(&last)) = (outliers.first(), outliers.last()) else {
        return Vec::new();
    };
    if min_segment == 0 {
        return outliers.to_vec();
    }
    let mut all = outliers.to_vec();
    if first < min_segment {
        all.extend(0..first);
    }
    if n - (last + 1) < min_segment {
        all.extend(last..n);
    }
    for w in outliers.windows(2) {
        let gap = w[1] - w[0];
        if gap > 1 && gap < min_segment + 1 {
            all.extend(w[0] + 1..w[1]);
        }
    }
    all.sort_unstable();
    all.dedup();
    all
}

/// Orthonormal basis (columns over the kept volumes) of the standardized confounds: QR with
/// column pivoting by modified Gram–Schmidt, stopping when the largest remaining column norm
/// (|R_ii|) is at most 100·ε. Input: confound columns over the kept volumes.
/// Shape: `out[k]` has the length of the kept volumes.
pub fn confound_basis(columns: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let mut rest: Vec<Vec<f64>> = columns.iter().map(|c| standardized(c)).collect();
    let mut basis: Vec<Vec<f64>> = Vec::new();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    while !rest.is_empty() {
        let (best, size) = rest
            .iter()
            .enumerate()
            .map(|(i, c)| (i, norm(c)))
            .fold((0, -1.0), |a, b| if b.1 > a.1 { b } else { a });
        if size <= 100.0 * f64::EPSILON {
            break;
        }
        let q: Vec<f64> = rest.swap_remove(best).iter().map(|x| x / size).collect();
        for c in rest.iter_mut() {
            remove_projection(c, &q);
            remove_projection(c, &q);
        }
        basis.push(q);
    }
    basis
}

fn remove_projection(x: &mut [f64], q: &[f64]) {
    let dot: f64 = x.iter().zip(q).map(|(a, b)| a * b).sum();
    x.iter_mut().zip(q).for_each(|(a, b)| *a -= dot * b);
}

/// Mean and sample standard deviation (ddof 1).
fn mean_std(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

/// nilearn's `zscore_sample` of one column: a deviation below ε counts as 1.
fn standardized(x: &[f64]) -> Vec<f64> {
    let (mean, std) = mean_std(x);
    let std = if std < f64::EPSILON { 1.0 } else { std };
    x.iter().map(|v| (v - mean) / std).collect()
}

/// A run's cleaning: which rows are kept and the confounds' basis over them.
#[derive(Debug, Clone)]
pub struct Cleaner {
    /// Kept rows (sorted), indices into the run.
    pub kept: Vec<usize>,
    basis: Vec<Vec<f64>>,
}

impl Cleaner {
    /// `regressors`: confound columns over all `n` rows; `censored`: sorted rows to leave out.
    pub fn new(regressors: &[Vec<f64>], censored: &[usize], n: usize) -> Self {
        let kept: Vec<usize> = (0..n)
            .filter(|r| censored.binary_search(r).is_err())
            .collect();
        let columns: Vec<Vec<f64>> = regressors
            .iter()
            .map(|c| kept.iter().map(|&r| c[r]).collect())
            .collect();
        Cleaner {
            basis: confound_basis(&columns),
            kept,
        }
    }

    /// Independent confound directions kept by the QR.
    pub fn rank(&self) -> usize {
        self.basis.len()
    }

    /// Cleans one signal in place (shape (n,)): confounds projected out and z-scored over the
    /// kept rows, censored rows set to 0. Returns false (all zeros) when its spread after
    /// cleaning is at most 1e-6 of its root mean square before (a flat voxel).
    pub fn clean(&self, x: &mut [f64]) -> bool {
        let mut y: Vec<f64> = self.kept.iter().map(|&r| x[r]).collect();
        let scale = brainrecon_core::signal::detrend::rms(&y);
        for q in &self.basis {
            remove_projection(&mut y, q);
        }
        let (mean, std) = mean_std(&y);
        x.fill(0.0);
        if y.len() < 2 || !std.is_finite() || std <= 1e-6 * scale || std == 0.0 {
            return false;
        }
        for (&r, v) in self.kept.iter().zip(&y) {
            x[r] = (v - mean) / std;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_parse_and_print() {
        let s = Strategy::parse(
            "motion:full,wm_csf:basic,global_signal:basic,high_pass,scrub",
            0.5,
            1.5,
        )
        .unwrap();
        assert_eq!(
            s.label(),
            "motion:full,wm_csf:basic,global_signal:basic,high_pass,scrub:5"
        );
        assert_eq!(
            Strategy::parse("none", 0.5, 1.5).unwrap(),
            Strategy::default()
        );
        assert_eq!(
            Strategy::parse("scrub:0", 0.2, 3.0)
                .unwrap()
                .scrub
                .unwrap()
                .min_segment,
            0
        );
        for bad in [
            "motion",
            "motion:all",
            "motion:basic,motion:full",
            "aroma",
            "scrub:x",
            "high_pass:1",
        ] {
            let err = Strategy::parse(bad, 0.5, 1.5).unwrap_err().to_string();
            assert!(
                err.contains("--confounds") && err.contains("e.g."),
                "{bad}: {err}"
            );
        }
        assert!(Strategy::parse("scrub", -1.0, 1.5).is_err());
    }

    #[test]
    fn segments_follow_nilearn() {
        // first outlier 3 < 5: 0..3 go; 30→36 leaves 5 volumes (kept); 50, 52 leave 1 (gone).
        assert_eq!(
            short_segments(&[3, 30, 36, 50, 52], 64, 5),
            [0, 1, 2, 3, 30, 36, 50, 51, 52]
        );
        // the last outlier leaves 3 volumes: they go with it.
        assert_eq!(
            short_segments(&[20, 24, 45, 60], 64, 5),
            [20, 21, 22, 23, 24, 45, 60, 61, 62, 63]
        );
        assert_eq!(short_segments(&[2, 4], 10, 0), [2, 4]);
        assert!(short_segments(&[], 10, 5).is_empty());
    }

    #[test]
    fn dependent_confounds_count_once() {
        let a: Vec<f64> = (0..20).map(|i| (i as f64 * 0.7).sin()).collect();
        let b: Vec<f64> = a.iter().map(|v| 3.0 * v + 2.0).collect();
        let flat = vec![1.0; 20];
        let cleaner = Cleaner::new(&[a.clone(), b, flat], &[], 20);
        assert_eq!(cleaner.rank(), 1);
        let mut x: Vec<f64> = a
            .iter()
            .enumerate()
            .map(|(i, v)| 5.0 * v + (i % 3) as f64)
            .collect();
        assert!(cleaner.clean(&mut x));
        let mut pure = a.clone();
        assert!(!cleaner.clean(&mut pure));
        assert!(pure.iter().all(|v| *v == 0.0));
    }
}
