//! The linear baseline of the EEG papers: ridge regression from an epoch's channels × time
//! samples (a window of them) to the embedding of the image seen.
//!
//! Training rows are the image conditions with their repetitions averaged (or each trial, with
//! `average_repetitions` off); columns are standardised inside the model. The penalty is chosen
//! per embedding dimension by K-fold cross-validation with the folds grouped by concept, so that
//! it is chosen for concepts the fit has not seen, as the zero-shot test asks. Test conditions
//! are decoded from their repetitions' average, as the papers score them.

use std::ops::Range;

use crate::error::{Result, RouteError};
use brainrecon_datasets::things_eeg2::PreprocessedEeg;
use brainrecon_ridge::{row_major_view, Cv, RidgeCv, RidgeModel, Scoring};

/// How the decoder is fitted.
#[derive(Clone, Debug)]
pub struct RidgeDecoderOptions {
    /// Time samples of the epoch used (default: all).
    pub window: Option<Range<usize>>,
    /// Fit on each condition's mean over its repetitions (default) or on every trial.
    pub average_repetitions: bool,
    /// The ridge penalty grid (default 10⁻¹ … 10⁶, one per decade).
    pub alphas: Vec<f64>,
    /// Folds of the grouped cross-validation.
    pub folds: usize,
}

impl Default for RidgeDecoderOptions {
    fn default() -> Self {
        RidgeDecoderOptions {
            window: None,
            average_repetitions: true,
            alphas: (-1..=6).map(|e| 10f64.powi(e)).collect(),
            folds: 5,
        }
    }
}

/// The time samples `--window` names, `START:END` (END excluded, START below END).
///
/// # Errors
/// [`RouteError::Usage`] naming the flag and the text for anything else.
pub fn parse_window(text: &str) -> Result<Range<usize>> {
    let bad = || {
        RouteError::Usage(format!(
            "--window: expected START:END samples, found '{text}'"
        ))
    };
    let (start, end) = text.split_once(':').ok_or_else(bad)?;
    let start: usize = start.trim().parse().map_err(|_| bad())?;
    let end: usize = end.trim().parse().map_err(|_| bad())?;
    if start >= end {
        return Err(bad());
    }
    Ok(start..end)
}

/// A fitted decoder.
pub struct RidgeDecoder {
    /// Ridge from `[channels × window]` EEG features to the embedding.
    pub model: RidgeModel,
    /// The time samples of the epoch it reads.
    pub window: Range<usize>,
    /// EEG channels per epoch.
    pub channels: usize,
    /// Time samples per epoch.
    pub times: usize,
}

/// The features of `eeg`: per condition its repetitions' mean (`average`) or per trial,
/// [rows, channels × window] row-major; returns them with the condition of each row.
pub fn epoch_features(
    eeg: &PreprocessedEeg,
    window: &Range<usize>,
    average: bool,
) -> (Vec<f32>, Vec<usize>) {
    let (channels, times) = (eeg.channels(), eeg.times.len());
    let width = channels * window.len();
    let rows = if average {
        eeg.conditions
    } else {
        eeg.conditions * eeg.repetitions
    };
    let mut x = Vec::with_capacity(rows * width);
    let mut condition_of = Vec::with_capacity(rows);
    let take = |epoch: &[f32], out: &mut Vec<f32>| {
        for c in 0..channels {
            out.extend_from_slice(&epoch[c * times + window.start..c * times + window.end]);
        }
    };
    for c in 0..eeg.conditions {
        if average {
            take(&eeg.condition_mean(c), &mut x);
            condition_of.push(c);
        } else {
            for r in 0..eeg.repetitions {
                take(eeg.epoch(c, r), &mut x);
                condition_of.push(c);
            }
        }
    }
    (x, condition_of)
}

impl RidgeDecoder {
    /// Fits `train` to `embeddings` `[conditions, d]` (row i the image of condition i); `concepts`
    /// `[conditions]` groups the folds.
    pub fn fit(
        train: &PreprocessedEeg,
        embeddings: &[f32],
        d: usize,
        concepts: &[i64],
        options: &RidgeDecoderOptions,
    ) -> Result<Self> {
        let times = train.times.len();
        let window = options.window.clone().unwrap_or(0..times);
        if window.is_empty() || window.end > times {
            return Err(RouteError::Usage(format!(
                "--window: expected samples within 0..{times}, found {window:?}"
            )));
        }
        if d == 0 || embeddings.len() != train.conditions * d || concepts.len() != train.conditions
        {
            return Err(RouteError::Usage(format!(
                "EEG ridge: {} conditions need as many embeddings of width {d} and concepts, \
                 found {} values and {} concepts",
                train.conditions,
                embeddings.len(),
                concepts.len()
            )));
        }
        let (x, condition_of) = epoch_features(train, &window, options.average_repetitions);
        let rows = condition_of.len();
        let width = train.channels() * window.len();
        let y: Vec<f32> = condition_of
            .iter()
            .flat_map(|&c| embeddings[c * d..(c + 1) * d].iter().copied())
            .collect();
        let groups: Vec<i64> = condition_of.iter().map(|&c| concepts[c]).collect();
        let cv = RidgeCv {
            alphas: options.alphas.clone(),
            cv: Cv::KFold {
                n_folds: options.folds,
                groups: Some(groups),
            },
            scoring: Scoring::R2,
            standardize: true,
            ..RidgeCv::default()
        };
        let model = cv.fit(
            row_major_view("EEG features", &x, (rows, width))?,
            row_major_view("image embeddings", &y, (rows, d))?,
        )?;
        Ok(RidgeDecoder {
            model,
            window,
            channels: train.channels(),
            times,
        })
    }

    /// Decoded embeddings [conditions, d] of `eeg`, each condition from its repetitions'
    /// average.
    pub fn predict(&self, eeg: &PreprocessedEeg) -> Result<Vec<f32>> {
        if (eeg.channels(), eeg.times.len()) != (self.channels, self.times) {
            return Err(RouteError::Usage(format!(
                "EEG ridge: fitted on {} channels × {} samples, given {} × {}",
                self.channels,
                self.times,
                eeg.channels(),
                eeg.times.len()
            )));
        }
        let (x, rows) = epoch_features(eeg, &self.window, true);
        let width = self.channels * self.window.len();
        Ok(self.model.predict_row_major(&x, (rows.len(), width))?)
    }
}
