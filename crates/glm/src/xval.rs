//! GLMsingle's cross-validation of single-trial betas across runs (`calcbadness`), used to
//! choose the number of GLMdenoise components and each voxel's ridge fraction, and its rule for
//! the number of components (`select_noise_regressors`).
//!
//! For each left-out run and each of its trials, the betas of the same condition's trials in
//! the other runs (at each setting being compared) are compared with the left-out trial's
//! beta at the first, unregularised setting: the sum of squared differences, in z-scores whose
//! mean and standard deviation per session come from the first setting.

use crate::fit::Trials;
use faer::Mat;

/// The comparisons of a leave-one-run-out cross-validation: pairs (left-out trial, trial of the
/// same condition in another run), and the trials of each session (z-scoring groups).
#[derive(Debug, Clone)]
pub struct CrossValidation {
    pairs: Vec<(usize, usize)>,
    sessions: Vec<Vec<usize>>,
}

impl CrossValidation {
    /// Leave-one-run-out over `trials`; `session_of_run[p]` groups runs into sessions (GLMsingle's
    /// `sessionindicator`; all equal for one session).
    pub fn leave_one_run_out(trials: &Trials, session_of_run: &[usize]) -> CrossValidation {
        let n = trials.condition.len();
        let mut pairs = Vec::new();
        let runs = trials.run.iter().copied().max().map_or(0, |m| m + 1);
        for test_run in 0..runs {
            for test in (0..n).filter(|&i| trials.run[i] == test_run) {
                for train in (0..n).filter(|&i| trials.run[i] != test_run) {
                    if trials.condition[train] == trials.condition[test] {
                        pairs.push((test, train));
                    }
                }
            }
        }
        let mut labels: Vec<usize> = session_of_run.to_vec();
        labels.sort_unstable();
        labels.dedup();
        let sessions = labels
            .iter()
            .map(|&s| {
                (0..n)
                    .filter(|&i| session_of_run.get(trials.run[i]) == Some(&s))
                    .collect()
            })
            .collect();
        CrossValidation { pairs, sessions }
    }

    /// Whether any condition repeats across runs (without, nothing can be cross-validated).
    pub fn has_repeats(&self) -> bool {
        !self.pairs.is_empty()
    }

    /// The badness of each setting for each voxel: `levels[l]` holds the betas at setting l
    /// (trials × c voxels), `levels[0]` the unregularised ones. Returns (c × levels), row-major.
    pub fn badness(&self, levels: &[Mat<f64>]) -> Vec<f64> {
        let (trials, c) = (levels[0].nrows(), levels[0].ncols());
        let count = levels.len();
        let mut badness = vec![0.0; c * count];
        let mut z = vec![vec![0.0; trials]; count];
        for v in 0..c {
            for session in &self.sessions {
                let (mean, sd) = mean_and_sd(session.iter().map(|&i| levels[0][(i, v)]));
                for (l, level) in levels.iter().enumerate() {
                    for &i in session {
                        z[l][i] = if sd == 0.0 {
                            0.0
                        } else {
                            (level[(i, v)] - mean) / sd
                        };
                    }
                }
            }
            for (l, zl) in z.iter().enumerate() {
                badness[v * count + l] = self
                    .pairs
                    .iter()
                    .map(|&(test, train)| (zl[train] - z[0][test]).powi(2))
                    .sum();
            }
        }
        badness
    }
}

/// Mean and standard deviation (n − 1) of the values.
fn mean_and_sd(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = values.clone().count() as f64;
    let mean = values.clone().sum::<f64>() / n;
    let ss: f64 = values.map(|x| (x - mean).powi(2)).sum();
    (mean, (ss / (n - 1.0)).sqrt())
}

/// GLMsingle's `select_noise_regressors`: along `curve` (performance with 0, 1, … components),
/// the first number of components that is the best so far and within a factor `pcstop` of the
/// curve's maximum improvement over 0 components.
pub fn select_noise_regressors(curve: &[f64], pcstop: f64) -> usize {
    let gains: Vec<f64> = curve.iter().map(|v| v - curve[0]).collect();
    let max = gains.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut best = f64::NEG_INFINITY;
    let mut chosen = 0;
    for (p, &gain) in gains.iter().enumerate() {
        if gain > best {
            chosen = p;
            best = gain;
            if best * pcstop >= max {
                break;
            }
        }
    }
    chosen
}

/// `numpy.median` of the values (the mean of the middle two for an even count).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_setting_within_pcstop_of_the_best_is_chosen() {
        assert_eq!(
            select_noise_regressors(&[0.0, 1.0, 2.0, 2.05, 1.0], 1.05),
            2
        );
        assert_eq!(select_noise_regressors(&[0.0, 1.0, 2.0, 3.0], 1.0), 3);
        assert_eq!(select_noise_regressors(&[0.0, -1.0, -2.0], 1.05), 0);
        assert_eq!(median(&mut [3.0, 1.0, 2.0, 10.0]), 2.5);
    }

    #[test]
    fn betas_that_repeat_across_runs_are_less_bad_than_noise() {
        // Two runs, two conditions each once per run; voxel 0 repeats, voxel 1 does not.
        let trials = Trials {
            condition: vec![0, 1, 0, 1],
            run: vec![0, 0, 1, 1],
            volume: vec![1, 5, 1, 5],
        };
        let xval = CrossValidation::leave_one_run_out(&trials, &[1, 1]);
        assert!(xval.has_repeats());
        let betas = Mat::from_fn(4, 2, |i, v| match v {
            0 => [1.0, -1.0, 1.1, -0.9][i],
            _ => [1.0, -1.0, -1.0, 1.0][i],
        });
        let badness = xval.badness(&[betas.clone(), betas]);
        assert!(badness[0] < 0.1 && badness[2] > 5.0, "{badness:?}");
        assert_eq!(badness[0], badness[1]);
    }
}
