//! `video fit --context words`: the caption decoded word by word. Each word of the training
//! captions is a binary target (in the caption or not); its decoder screens the fMRI features
//! by an ANOVA F test on the training windows (nilearn's `Decoder` screening, scikit-learn's
//! `f_classif`) and fits ridge on the kept ones (a ridge classifier). A test window's caption
//! is then composed from its decoded word scores: the training caption whose words correlate
//! best with them, edited one word at a time among the words seen at that position in training
//! captions of the same length while the correlation rises. The clip's context is the text
//! encoder's context of that caption.
//!
//! Why: in the text encoder's space neighbouring colour words lie close together, so ridge to
//! the context puts decoding noise onto the neighbouring colour; a per-word decoder weighs every
//! word alike. The screening share and the penalty are chosen by K-fold CV grouped by segment on
//! the composed captions' word accuracy.

use crate::error::{Result, RouteError};
use brainrecon_ridge::fold_assignment;
use faer::{Mat, Side};
use indicatif::ProgressBar;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Shares of the features kept by the screening (percent) that CV chooses among; nilearn's
/// `Decoder` keeps 20.
pub const SCREENING_PERCENTS: [f64; 5] = [5.0, 10.0, 20.0, 50.0, 100.0];

/// What `video fit --context words` reports (in `video_fit.json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WordDecoderSummary {
    /// Words decoded: those of some training captions but not of all.
    pub words: Vec<String>,
    /// Share of the features the ANOVA screening keeps (percent), chosen by CV.
    pub screening_percent: f64,
    /// The ridge penalty, chosen by CV.
    pub alpha: f64,
    /// Share of caption words right, position by position, of the captions composed for the
    /// held-out segments (grouped K-fold, at the chosen screening and alpha).
    pub cv_word_accuracy: f64,
    /// The same share for the test windows, against their captions.
    pub test_word_accuracy: f64,
    /// Test captions composed that no training caption has.
    pub novel_captions: usize,
}

/// The word vocabulary of a set of captions and what composition may choose from.
#[derive(Debug, Clone)]
pub struct CaptionWords {
    /// Every word, sorted.
    words: Vec<String>,
    /// Indices of the words in some captions but not all (the decoded ones).
    varying: Vec<usize>,
    /// Word indices seen at (caption length, position).
    slots: BTreeMap<(usize, usize), Vec<usize>>,
    /// The distinct captions as word indices.
    bank: Vec<Vec<usize>>,
}

/// A caption's words split on white space.
fn tokens(caption: &str) -> Vec<&str> {
    caption.split_whitespace().collect()
}

/// Index of `token` in the sorted `words`.
fn word_index(words: &[String], token: &str) -> Option<usize> {
    words.binary_search_by(|w| w.as_str().cmp(token)).ok()
}

impl CaptionWords {
    /// The vocabulary of `captions`; at least one caption must have a word.
    pub fn new(captions: &[String]) -> Self {
        let words: Vec<String> = captions
            .iter()
            .flat_map(|c| tokens(c))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(str::to_string)
            .collect();
        let ids = |caption: &str| -> Vec<usize> {
            tokens(caption)
                .into_iter()
                .filter_map(|t| word_index(&words, t))
                .collect()
        };
        let bank: Vec<Vec<usize>> = captions
            .iter()
            .map(|c| ids(c))
            .filter(|c| !c.is_empty())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut slots: BTreeMap<(usize, usize), BTreeSet<usize>> = BTreeMap::new();
        for caption in &bank {
            for (position, &w) in caption.iter().enumerate() {
                slots
                    .entry((caption.len(), position))
                    .or_default()
                    .insert(w);
            }
        }
        // how many captions hold each word
        let mut counts = vec![0; words.len()];
        for caption in captions {
            for w in ids(caption).into_iter().collect::<BTreeSet<_>>() {
                counts[w] += 1;
            }
        }
        let varying = (0..words.len())
            .filter(|&w| counts[w] > 0 && counts[w] < captions.len())
            .collect();
        CaptionWords {
            words,
            varying,
            slots: slots
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().collect()))
                .collect(),
            bank,
        }
    }

    /// Words of the training captions (decoded or not).
    pub fn n_words(&self) -> usize {
        self.words.len()
    }

    /// The decoded words' indices.
    pub fn varying(&self) -> &[usize] {
        &self.varying
    }

    /// Word `w`.
    pub fn word(&self, w: usize) -> &str {
        &self.words[w]
    }

    /// 1 where `caption` has the word, else 0: (captions, words) row-major.
    pub fn indicators(&self, captions: &[String]) -> Vec<f64> {
        let mut out = vec![0.0; captions.len() * self.words.len()];
        for (row, caption) in captions.iter().enumerate() {
            for w in tokens(caption)
                .into_iter()
                .filter_map(|t| word_index(&self.words, t))
            {
                out[row * self.words.len() + w] = 1.0;
            }
        }
        out
    }

    /// Pearson correlation, over the decoded words, between `caption`'s indicators and the
    /// decoded scores (one per word of the vocabulary); −∞ when either is constant there.
    pub fn score(&self, caption: &[usize], decoded: &[f64]) -> f64 {
        assert_eq!(decoded.len(), self.words.len(), "one score per word");
        let has = |w: usize| caption.contains(&w) as u8 as f64;
        let n = self.varying.len() as f64;
        let (mean_i, mean_d) = self.varying.iter().fold((0.0, 0.0), |(a, b), &w| {
            (a + has(w) / n, b + decoded[w] / n)
        });
        let (mut cross, mut var_i, mut var_d) = (0.0, 0.0, 0.0);
        for &w in &self.varying {
            let (i, d) = (has(w) - mean_i, decoded[w] - mean_d);
            cross += i * d;
            var_i += i * i;
            var_d += d * d;
        }
        match var_i > 0.0 && var_d > 0.0 {
            true => cross / (var_i * var_d).sqrt(),
            false => f64::NEG_INFINITY,
        }
    }

    /// The caption composed from decoded word scores: the best-scoring bank caption, then
    /// single-word edits among each position's seen words while the score rises strictly.
    pub fn compose(&self, decoded: &[f64]) -> String {
        let (mut score, mut best) = self
            .bank
            .iter()
            .map(|c| (self.score(c, decoded), c))
            .fold(None::<(f64, &Vec<usize>)>, |acc, (s, c)| match acc {
                Some((b, _)) if b >= s => acc,
                _ => Some((s, c)),
            })
            .map_or((f64::NEG_INFINITY, Vec::new()), |(s, c)| (s, c.clone()));
        // each accepted edit raises the score, so no caption repeats; the bound is a guard
        for _ in 0..self.words.len().max(1) * best.len().max(1) {
            let Some((s, edited)) = self.best_edit(&best, decoded) else {
                break;
            };
            if s <= score {
                break;
            }
            (score, best) = (s, edited);
        }
        best.iter()
            .map(|&w| self.words[w].as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The best-scoring caption one word away from `caption` (first wins ties).
    fn best_edit(&self, caption: &[usize], decoded: &[f64]) -> Option<(f64, Vec<usize>)> {
        let mut best: Option<(f64, Vec<usize>)> = None;
        for position in 0..caption.len() {
            let seen = self.slots.get(&(caption.len(), position));
            for &w in seen.into_iter().flatten() {
                if w == caption[position] {
                    continue;
                }
                let mut edited = caption.to_vec();
                edited[position] = w;
                let s = self.score(&edited, decoded);
                if best.as_ref().is_none_or(|(b, _)| s > *b) {
                    best = Some((s, edited));
                }
            }
        }
        best
    }
}

/// Share of `truth`'s words matched position by position by `composed` (over the longer).
pub fn word_accuracy(composed: &str, truth: &str) -> f64 {
    let (a, b) = (tokens(composed), tokens(truth));
    let longest = a.len().max(b.len());
    if longest == 0 {
        return 1.0;
    }
    a.iter().zip(&b).filter(|(x, y)| x == y).count() as f64 / longest as f64
}

/// ANOVA F statistic of each column of `x` (rows × features, f64) between the rows where
/// `labels` holds and the others: scikit-learn's `f_classif` with two classes. A column
/// constant within both groups gets +∞ when the groups differ, NaN when it is constant.
pub fn f_two_groups(x: &Mat<f64>, labels: &[bool]) -> Vec<f64> {
    assert_eq!(x.nrows(), labels.len(), "one label per row");
    let n = labels.len();
    let n1 = labels.iter().filter(|&&l| l).count();
    let n0 = n - n1;
    (0..x.ncols())
        .map(|c| {
            let (mut s0, mut s1) = (0.0, 0.0);
            for (r, &l) in labels.iter().enumerate() {
                *(if l { &mut s1 } else { &mut s0 }) += x[(r, c)];
            }
            let (m0, m1) = (s0 / n0 as f64, s1 / n1 as f64);
            let mean = (s0 + s1) / n as f64;
            let within: f64 = labels
                .iter()
                .enumerate()
                .map(|(r, &l)| (x[(r, c)] - if l { m1 } else { m0 }).powi(2))
                .sum();
            let between = n0 as f64 * (m0 - mean).powi(2) + n1 as f64 * (m1 - mean).powi(2);
            between / (within / (n as f64 - 2.0))
        })
        .collect()
}

/// The `percent` share (at least one) of columns with the largest F, in column order; NaN
/// ranks last, ties by column.
pub fn screened(f: &[f64], percent: f64) -> Vec<usize> {
    let keep = ((f.len() as f64 * percent / 100.0).ceil() as usize)
        .max(1)
        .min(f.len());
    let key = |v: f64| if v.is_nan() { f64::NEG_INFINITY } else { v };
    let mut order: Vec<usize> = (0..f.len()).collect();
    order.sort_by(|&a, &b| key(f[b]).total_cmp(&key(f[a])).then(a.cmp(&b)));
    order.truncate(keep);
    order.sort_unstable();
    order
}

/// Ridge (with intercept) from `x[fit_rows, columns]` to `y[fit_rows]`, predicting
/// `x[eval_rows, columns]` at every alpha: (alphas, eval rows) row-major. Solved in the dual
/// from one eigendecomposition of the centred Gram matrix.
pub fn ridge_path(
    x: &Mat<f64>,
    [fit_rows, eval_rows]: [&[usize]; 2],
    columns: &[usize],
    y: &[f64],
    alphas: &[f64],
) -> Result<Vec<f64>> {
    assert_eq!(x.nrows(), y.len(), "one target per row");
    let mean_x: Vec<f64> = columns
        .iter()
        .map(|&c| fit_rows.iter().map(|&r| x[(r, c)]).sum::<f64>() / fit_rows.len() as f64)
        .collect();
    let centred = |rows: &[usize]| {
        Mat::from_fn(rows.len(), columns.len(), |i, j| {
            x[(rows[i], columns[j])] - mean_x[j]
        })
    };
    let (xf, xe) = (centred(fit_rows), centred(eval_rows));
    let mean_y = fit_rows.iter().map(|&r| y[r]).sum::<f64>() / fit_rows.len() as f64;
    let yc = Mat::from_fn(fit_rows.len(), 1, |i, _| y[fit_rows[i]] - mean_y);
    let gram = &xf * xf.transpose();
    let eigen = gram
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| RouteError::Usage(format!("word decoder: Gram eigendecomposition: {e:?}")))?;
    let (u, s) = (eigen.U(), eigen.S().column_vector());
    let projected = u.transpose() * &yc;
    let cross = &xe * xf.transpose();
    let mut out = Vec::with_capacity(alphas.len() * eval_rows.len());
    for &alpha in alphas {
        let scaled = Mat::from_fn(u.ncols(), 1, |i, _| {
            projected[(i, 0)] / (s[i].max(0.0) + alpha)
        });
        let predicted = &cross * (u * &scaled);
        out.extend((0..eval_rows.len()).map(|i| predicted[(i, 0)] + mean_y));
    }
    Ok(out)
}

/// Decoded word scores of `eval_rows` for every (screening percent, alpha):
/// [percent][alpha] → (eval rows, words) row-major, 0 for words not decoded.
fn word_scores(
    x: &Mat<f64>,
    rows: [&[usize]; 2],
    vocabulary: &CaptionWords,
    indicators: &[f64],
    [percents, alphas]: [&[f64]; 2],
    bar: &ProgressBar,
) -> Result<Vec<Vec<Vec<f64>>>> {
    let (n_eval, n_words) = (rows[1].len(), vocabulary.n_words());
    bar.inc_length(vocabulary.varying().len() as u64);
    let mut scores = vec![vec![vec![0.0; n_eval * n_words]; alphas.len()]; percents.len()];
    let fit = Mat::from_fn(rows[0].len(), x.ncols(), |i, c| x[(rows[0][i], c)]);
    for &w in vocabulary.varying() {
        let y: Vec<f64> = (0..x.nrows())
            .map(|r| indicators[r * n_words + w])
            .collect();
        let labels: Vec<bool> = rows[0].iter().map(|&r| y[r] > 0.5).collect();
        let f = f_two_groups(&fit, &labels);
        for (p, &percent) in percents.iter().enumerate() {
            let path = ridge_path(x, rows, &screened(&f, percent), &y, alphas)?;
            for (a, predicted) in path.chunks_exact(n_eval).enumerate() {
                for (i, &v) in predicted.iter().enumerate() {
                    scores[p][a][i * n_words + w] = v;
                }
            }
        }
        bar.inc(1);
    }
    Ok(scores)
}

/// The decoded captions of the test windows and what was chosen.
#[derive(Debug, Clone)]
pub struct DecodedCaptions {
    /// One composed caption per test window.
    pub test_captions: Vec<String>,
    /// The choices made and the word accuracies.
    pub summary: WordDecoderSummary,
}

/// Chooses the screening and alpha by grouped K-fold CV, refits on every training window and
/// composes each test window's caption. `x_*`: (windows, features); `captions_path`: the
/// captions' file, named by errors; `groups`: segment of each training window; `progress`: a
/// bar over the word decoders fitted.
pub fn decode_captions(
    [x_train, x_test]: [&Mat<f32>; 2],
    [train_captions, test_captions]: [&[String]; 2],
    captions_path: &Path,
    groups: &[i64],
    (alphas, folds): (&[f64], usize),
    progress: bool,
) -> Result<DecodedCaptions> {
    let n = x_train.nrows();
    let vocabulary = CaptionWords::new(train_captions);
    if vocabulary.varying().is_empty() {
        return Err(RouteError::mismatch(
            captions_path,
            "training captions",
            "captions that differ in their words (--context words decodes each word)",
            "every training caption with the same words",
        ));
    }
    let x = Mat::from_fn(n + x_test.nrows(), x_train.ncols(), |r, c| match r < n {
        true => x_train[(r, c)] as f64,
        false => x_test[(r - n, c)] as f64,
    });
    let n_groups = groups.iter().collect::<BTreeSet<_>>().len();
    let fold_of = fold_assignment(n, folds.min(n_groups).max(2), Some(groups))?;
    let grid = [&SCREENING_PERCENTS[..], alphas];
    let bar = crate::progress::bar(0, "word decoders", progress);
    let accuracy = cv_word_accuracy(&x, train_captions, &fold_of, grid, &bar)?;
    let (p, a) = best_cell(&accuracy);
    let train_rows: Vec<usize> = (0..n).collect();
    let test_rows: Vec<usize> = (n..x.nrows()).collect();
    // the test rows' targets are never read: zeros
    let mut indicators = vocabulary.indicators(train_captions);
    indicators.resize(x.nrows() * vocabulary.n_words(), 0.0);
    let chosen = [&SCREENING_PERCENTS[p..=p], &alphas[a..=a]];
    let scores = word_scores(
        &x,
        [&train_rows, &test_rows],
        &vocabulary,
        &indicators,
        chosen,
        &bar,
    )?;
    bar.finish_and_clear();
    let composed: Vec<String> = scores[0][0]
        .chunks_exact(vocabulary.n_words())
        .map(|decoded| vocabulary.compose(decoded))
        .collect();
    let known: BTreeSet<&str> = train_captions.iter().map(|c| c.trim()).collect();
    let summary = WordDecoderSummary {
        words: vocabulary
            .varying()
            .iter()
            .map(|&w| vocabulary.word(w).to_string())
            .collect(),
        screening_percent: SCREENING_PERCENTS[p],
        alpha: alphas[a],
        cv_word_accuracy: accuracy[p][a],
        test_word_accuracy: mean_word_accuracy(&composed, test_captions),
        novel_captions: composed
            .iter()
            .filter(|c| !known.contains(c.as_str()))
            .count(),
    };
    Ok(DecodedCaptions {
        test_captions: composed,
        summary,
    })
}

/// Mean [`word_accuracy`] of composed captions against the true ones.
fn mean_word_accuracy(composed: &[String], truth: &[String]) -> f64 {
    let total: f64 = composed
        .iter()
        .zip(truth)
        .map(|(c, t)| word_accuracy(c, t))
        .sum();
    total / composed.len().max(1) as f64
}

/// CV word accuracy of the composed captions per (screening percent, alpha), each fold's
/// vocabulary and decoders from its training windows only.
fn cv_word_accuracy(
    x: &Mat<f64>,
    captions: &[String],
    fold_of: &[usize],
    grid: [&[f64]; 2],
    bar: &ProgressBar,
) -> Result<Vec<Vec<f64>>> {
    let mut total = vec![vec![0.0; grid[1].len()]; grid[0].len()];
    for fold in 0..=fold_of.iter().copied().max().unwrap_or(0) {
        let (eval, fit): (Vec<usize>, Vec<usize>) =
            (0..captions.len()).partition(|&r| fold_of[r] == fold);
        let fit_captions: Vec<String> = fit.iter().map(|&r| captions[r].clone()).collect();
        let vocabulary = CaptionWords::new(&fit_captions);
        if eval.is_empty() || vocabulary.varying().is_empty() {
            continue;
        }
        let mut indicators = vec![0.0; x.nrows() * vocabulary.n_words()];
        let fit_indicators = vocabulary.indicators(&fit_captions);
        for (i, &r) in fit.iter().enumerate() {
            let width = vocabulary.n_words();
            indicators[r * width..(r + 1) * width]
                .copy_from_slice(&fit_indicators[i * width..(i + 1) * width]);
        }
        let scores = word_scores(x, [&fit, &eval], &vocabulary, &indicators, grid, bar)?;
        for (p, per_alpha) in scores.iter().enumerate() {
            for (a, decoded) in per_alpha.iter().enumerate() {
                total[p][a] += decoded
                    .chunks_exact(vocabulary.n_words())
                    .zip(&eval)
                    .map(|(d, &r)| word_accuracy(&vocabulary.compose(d), &captions[r]))
                    .sum::<f64>();
            }
        }
    }
    let n = captions.len().max(1) as f64;
    Ok(total
        .into_iter()
        .map(|row| row.into_iter().map(|t| t / n).collect())
        .collect())
}

/// The (percent, alpha) cell with the highest accuracy; the first on ties.
fn best_cell(accuracy: &[Vec<f64>]) -> (usize, usize) {
    let mut best = (0, 0);
    for (p, row) in accuracy.iter().enumerate() {
        for (a, &value) in row.iter().enumerate() {
            if value > accuracy[best.0][best.1] {
                best = (p, a);
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn composition_builds_a_caption_no_training_caption_has() {
        let words = CaptionWords::new(&strings(&[
            "a red circle moving left",
            "a blue square moving up",
            "a green circle standing still",
        ]));
        // decoded: blue, circle, moving, left
        let mut decoded = vec![0.0; words.n_words()];
        for w in ["blue", "circle", "moving", "left"] {
            decoded[words.words.iter().position(|x| x == w).unwrap()] = 1.0;
        }
        assert_eq!(words.compose(&decoded), "a blue circle moving left");
        // "a" is in every caption: not decoded
        assert!(!words.varying().iter().any(|&w| words.word(w) == "a"));
    }

    #[test]
    fn screening_keeps_the_largest_f_in_column_order() {
        let f = [1.0, f64::NAN, 5.0, 3.0, f64::INFINITY];
        assert_eq!(screened(&f, 40.0), vec![2, 4]);
        assert_eq!(screened(&f, 1.0), vec![4]);
        assert_eq!(screened(&f, 100.0), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn word_accuracy_counts_positions() {
        assert_eq!(word_accuracy("a red circle", "a blue circle"), 2.0 / 3.0);
        assert_eq!(word_accuracy("a red", "a red circle"), 2.0 / 3.0);
    }
}
