//! The curve's x axis (trials of the new subject, with NSD's minutes of scanning) and what
//! varies with the seed (the validation/test split of the held-out images), with the mean and
//! s.d. over seeds.

use crate::error::{Result, RouteError};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

/// `--trials`' default: 100, 250, 500, 750 (NSD's one session), 1,500 and all trials.
pub const DEFAULT_TRIALS: [&str; 6] = ["100", "250", "500", "750", "1500", "all"];

/// Seconds NSD spends on one trial: the image shown 3 s, then 1 s of gap.
pub const NSD_SECONDS_PER_TRIAL: f64 = 4.0;

/// Minutes of scanning `trials` trials take at NSD's pace (trials × 4 s / 60).
pub fn nsd_minutes(trials: usize) -> f64 {
    trials as f64 * NSD_SECONDS_PER_TRIAL / 60.0
}

/// A point's column heading: `100 trials (6.7 min)`, or `all 600 trials (40 min)`.
pub fn trials_label(trials: usize, all: bool) -> String {
    format!(
        "{}{trials} trial{} ({} min)",
        if all { "all " } else { "" },
        if trials == 1 { "" } else { "s" },
        minutes_text(nsd_minutes(trials))
    )
}

/// Minutes with one decimal, without a trailing `.0`.
fn minutes_text(minutes: f64) -> String {
    let text = format!("{minutes:.1}");
    text.strip_suffix(".0").map(str::to_string).unwrap_or(text)
}

/// The trial counts `--trials` lists: each a count of at least 1 (`Some`), or `all` (`None`).
///
/// # Errors
/// [`RouteError::Usage`] naming the first entry that is neither, or an empty list.
pub fn parse_trial_counts(entries: &[String]) -> Result<Vec<Option<usize>>> {
    if entries.is_empty() {
        return Err(RouteError::Usage(
            "--trials: expected at least one trial count".into(),
        ));
    }
    entries
        .iter()
        .map(|entry| parse_trial_count(entry))
        .collect()
}

/// One `--trials` entry: a count ≥ 1, or `all` (`None`); anything else is a usage error.
pub fn parse_trial_count(entry: &str) -> Result<Option<usize>> {
    match entry.trim() {
        "all" => Some(None),
        n => n.parse::<usize>().ok().filter(|&n| n > 0).map(Some),
    }
    .ok_or_else(|| {
        RouteError::Usage(format!(
            "--trials: expected counts ≥ 1 or all, found '{entry}'"
        ))
    })
}

/// The points of the curve for a subject with `n_all` train trials: `(trials, all)` sorted,
/// counts at or above `n_all` merged into the all-trials point, which is always there (it is
/// the ceiling).
pub fn trial_points(asked: &[Option<usize>], n_all: usize) -> Vec<(usize, bool)> {
    let mut points: Vec<(usize, bool)> = asked
        .iter()
        .map(|n| match n {
            Some(n) if *n < n_all => (*n, false),
            _ => (n_all, true),
        })
        .collect();
    points.push((n_all, true));
    points.sort_unstable();
    points.dedup();
    points
}

/// One seed's split of the held-out images (the new subject's test images outside the group's
/// align set) into validation images, which choose the group method, and test images, which
/// only score.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeedSplit {
    /// The seed of the shuffle.
    pub seed: u64,
    /// Images that choose (sorted 73k ids).
    pub validation_ids: Vec<usize>,
    /// Images that score (sorted 73k ids); disjoint from `validation_ids`.
    pub test_ids: Vec<usize>,
}

/// `seeds` splits of `held_out` (seeds 0, 1, …): each a ChaCha8 shuffle by its seed, the first
/// half (rounded down) for validation, the rest for testing.
///
/// # Errors
/// [`RouteError::Usage`] when `seeds` is 0 or `held_out` has fewer than 4 images (2 to
/// validate, 2 to test).
pub fn seed_splits(held_out: &[usize], seeds: usize) -> Result<Vec<SeedSplit>> {
    if seeds == 0 {
        return Err(RouteError::Usage(
            "--seeds: expected at least 1 seed".into(),
        ));
    }
    if held_out.len() < 4 {
        return Err(RouteError::Usage(format!(
            "the new subject has {} test images outside the group's align set; the curve needs \
             at least 4 (2 to validate, 2 to test)",
            held_out.len()
        )));
    }
    Ok((0..seeds as u64)
        .map(|seed| {
            let mut order = held_out.to_vec();
            order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
            let (validation, test) = order.split_at(held_out.len() / 2);
            let (mut validation_ids, mut test_ids) = (validation.to_vec(), test.to_vec());
            validation_ids.sort_unstable();
            test_ids.sort_unstable();
            SeedSplit {
                seed,
                validation_ids,
                test_ids,
            }
        })
        .collect())
}

/// Mean and sample standard deviation (n − 1; 0 for one value) of `values`; NaN for none.
pub fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, var.sqrt())
}
