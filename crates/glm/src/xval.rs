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
    /// Per trial as a training trial, the left-out trials it is compared with: those of
    /// `partners[partner_start[i]..partner_start[i + 1]]`.
    partner_start: Vec<usize>,
    partners: Vec<usize>,
    /// Per trial as the left-out one, how many training trials it is compared with.
    test_count: Vec<f64>,
    sessions: Vec<Vec<usize>>,
}

impl CrossValidation {
    /// Leave-one-run-out over `trials`; `session_of_run[p]` groups runs into sessions (GLMsingle's
    /// `sessionindicator`; all equal for one session).
    pub fn leave_one_run_out(trials: &Trials, session_of_run: &[usize]) -> CrossValidation {
        let n = trials.condition.len();
        let conditions = trials.condition.iter().copied().max().map_or(0, |m| m + 1);
        let mut of_condition = vec![Vec::new(); conditions];
        for (i, &c) in trials.condition.iter().enumerate() {
            of_condition[c].push(i);
        }
        let mut pairs = Vec::new();
        for test in 0..n {
            for &train in &of_condition[trials.condition[test]] {
                if trials.run[train] != trials.run[test] {
                    pairs.push((test, train));
                }
            }
        }
        let mut by_train: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut test_count = vec![0.0; n];
        for &(test, train) in &pairs {
            by_train[train].push(test);
            test_count[test] += 1.0;
        }
        let mut partner_start = Vec::with_capacity(n + 1);
        let mut partners = Vec::with_capacity(pairs.len());
        for list in &by_train {
            partner_start.push(partners.len());
            partners.extend(list);
        }
        partner_start.push(partners.len());
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
        CrossValidation {
            pairs,
            partner_start,
            partners,
            test_count,
            sessions,
        }
    }

    /// Whether any condition repeats across runs (without, nothing can be cross-validated).
    pub fn has_repeats(&self) -> bool {
        !self.pairs.is_empty()
    }

    /// The badness of each setting for each voxel: `levels[l]` holds the betas at setting l
    /// (trials × c voxels), `levels[0]` the unregularised ones. Returns (c × levels), row-major.
    pub fn badness(&self, levels: &[Mat<f64>]) -> Vec<f64> {
        let c = levels[0].ncols();
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
        let per = c.div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..c)
                .step_by(per)
                .map(|first| {
                    scope.spawn(move || self.badness_of(levels, first..(first + per).min(c)))
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("cross-validation worker"))
                .collect()
        })
    }

    /// [`Self::badness`] of the voxels `voxels`.
    fn badness_of(&self, levels: &[Mat<f64>], voxels: std::ops::Range<usize>) -> Vec<f64> {
        let (trials, count) = (levels[0].nrows(), levels.len());
        let mut badness = Vec::with_capacity(voxels.len() * count);
        let mut z = vec![vec![0.0; trials]; count];
        for v in voxels {
            let columns: Vec<&[f64]> = levels
                .iter()
                .map(|m| {
                    m.col(v)
                        .try_as_col_major()
                        .expect("column-major")
                        .as_slice()
                })
                .collect();
            for session in &self.sessions {
                let (mean, sd) = mean_and_sd(session.iter().map(|&i| columns[0][i]));
                for (zl, column) in z.iter_mut().zip(&columns) {
                    for &i in session {
                        zl[i] = if sd == 0.0 {
                            0.0
                        } else {
                            (column[i] - mean) / sd
                        };
                    }
                }
            }
            // Σ_pairs (z_l[train] − z_0[test])² = Σ_i m_i z_l[i]² − 2 Σ_i z_l[i] S_i + Σ_t n_t z_0[t]²,
            // with m_i the left-out trials compared with trial i, S_i the sum of their z_0
            // and n_t the trials compared with left-out trial t: O(trials) per setting.
            let reference = &z[0];
            let partner_sum: Vec<f64> = (0..trials)
                .map(|i| {
                    self.partners[self.partner_start[i]..self.partner_start[i + 1]]
                        .iter()
                        .map(|&t| reference[t])
                        .sum()
                })
                .collect();
            let constant: f64 = (0..trials)
                .map(|t| self.test_count[t] * reference[t] * reference[t])
                .sum();
            for zl in &z {
                let mut sum = constant;
                for i in 0..trials {
                    let m = (self.partner_start[i + 1] - self.partner_start[i]) as f64;
                    sum += zl[i] * (m * zl[i] - 2.0 * partner_sum[i]);
                }
                badness.push(sum.max(0.0));
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
pub use brainrecon_core::stats::median;

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
