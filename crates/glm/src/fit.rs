//! GLMsingle's fits with an assumed HRF (its `glm_estimatemodel(..., 'assume', ...)`), and the
//! two models built from them:
//!
//! - **TYPEA** (on/off): every trial one condition, the canonical HRF; per voxel the on/off
//!   beta, its R² (`onoffR2`) and the mean volume (`meanvol`).
//! - **TYPEB** (FITHRF): one column per trial (in run, then time order), fitted with each HRF of
//!   a library; per voxel the HRF whose R² over all runs is largest (`HRFindex`), its R² and its
//!   single-trial betas (`betasmd`).
//!
//! The fit, as GLMsingle: per run, polynomials of degrees 0…d (d from the run's duration) and
//! the run's extra regressors are projected out of the data and of the HRF-convolved design;
//! ordinary least squares over the runs together; R² = 100 · (1 − Σ‖Q⊥(Xβ) − Q⊥y‖² / Σ‖Q⊥y‖²)
//! over all runs with Q the polynomials only; betas in percent of the voxel's mean over all
//! volumes. The machinery is in [`crate::engine`].
//!
//! Shapes: a run's data is (n_times × voxels) row-major; its design (n_times × conditions),
//! 1 at the TR of each onset, as GLMsingle's matrix designs.

pub use crate::engine::polynomial_basis;
use crate::engine::{
    any_extra, expand_rows, gather_without_polynomials, ols, ols_r2, project_chunk, r2_percent,
    Nuisance, PreparedDesign, ProjectedChunk,
};
use faer::linalg::solvers::Llt;
use faer::linalg::triangular_solve::{
    solve_lower_triangular_in_place, solve_upper_triangular_in_place,
};
use faer::Mat;

/// One run: the recording, its design and its extra regressors.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    /// (n_times × voxels), row-major.
    pub data: &'a [f32],
    /// (n_times × conditions), row-major: 1 at each trial's onset TR.
    pub design: &'a [f64],
    /// Volumes in the run.
    pub n_times: usize,
    /// (n_times × e), row-major: regressors projected out with the polynomials (GLMsingle's
    /// `extra_regressors`, e.g. fMRIPrep's motion confounds); empty for none.
    pub extra: &'a [f64],
}

impl Run<'_> {
    /// The extra regressors as columns.
    pub fn extra_columns(&self) -> Vec<Vec<f64>> {
        if self.extra.is_empty() || self.n_times == 0 {
            return Vec::new();
        }
        let e = self.extra.len() / self.n_times;
        (0..e)
            .map(|j| (0..self.n_times).map(|t| self.extra[t * e + j]).collect())
            .collect()
    }
}

/// TYPEA's outputs under GLMsingle's names.
#[derive(Debug, Clone, PartialEq)]
pub struct OnOff {
    /// R² of the on/off model per voxel, in percent (NaN for a voxel without variance).
    pub onoff_r2: Vec<f64>,
    /// Each voxel's mean over all volumes of all runs.
    pub meanvol: Vec<f64>,
    /// The on/off beta per voxel, percent signal change.
    pub betasmd: Vec<f64>,
}

/// TYPEB's outputs under GLMsingle's names.
#[derive(Debug, Clone, PartialEq)]
pub struct FitHrf {
    /// Per voxel, 0-based into the library.
    pub hrf_index: Vec<usize>,
    /// R² of that HRF's fit per voxel, in percent.
    pub r2: Vec<f64>,
    /// (voxels × trials), row-major, percent signal change.
    pub betasmd: Vec<f64>,
    /// The condition of each trial, in trial order.
    pub stim_order: Vec<usize>,
}

/// Each of the k columns of `design` (n × k) convolved with `hrf`, cut to n samples.
pub fn convolve_columns(design: &[f64], k: usize, hrf: &[f64]) -> Vec<f64> {
    let n = design.len() / k.max(1);
    let mut out = vec![0.0; n * k];
    for t in 0..n {
        for (lag, &h) in hrf.iter().enumerate().take(t + 1) {
            let row = &design[(t - lag) * k..(t - lag + 1) * k];
            for (o, &d) in out[t * k..(t + 1) * k].iter_mut().zip(row) {
                *o += h * d;
            }
        }
    }
    out
}

/// `hrf` scaled to peak 1, as GLMsingle's `normalisemax` before every fit.
pub fn peak_normalised(hrf: &[f64]) -> Vec<f64> {
    let peak = hrf.iter().copied().fold(f64::MIN, f64::max);
    hrf.iter().map(|v| v / peak).collect()
}

/// The mean of every voxel over all volumes of all runs.
pub fn mean_volume(runs: &[Run], voxels: usize) -> Vec<f64> {
    let mut sum = vec![0.0; voxels];
    let mut count = 0usize;
    for run in runs {
        for row in run.data.chunks_exact(voxels) {
            sum.iter_mut().zip(row).for_each(|(s, &v)| *s += v as f64);
        }
        count += run.n_times;
    }
    sum.iter().map(|s| s / count.max(1) as f64).collect()
}

/// Voxels fitted together: a chunk's recording is held as (all TRs × CHUNK) f64.
pub const VOXEL_CHUNK: usize = 4096;

/// Why a fit cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlmError {
    /// The regressors of the library's HRF `hrf` (0-based; 0 for TYPEA) are linearly dependent.
    SingularDesign {
        /// The HRF's index in the library.
        hrf: usize,
    },
    /// No voxel qualifies for GLMdenoise's noise pool (bright and with a low on/off R²).
    EmptyNoisePool,
}

impl std::fmt::Display for GlmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GlmError::SingularDesign { hrf } => write!(
                f,
                "the design convolved with HRF {hrf} has linearly dependent regressors \
                 (trials whose onsets coincide, or more trials than volumes)"
            ),
            GlmError::EmptyNoisePool => write!(
                f,
                "no voxel is bright enough and has an on/off R² low enough for GLMdenoise's \
                 noise pool (give a brain-wide mask, or skip GLMdenoise)"
            ),
        }
    }
}

impl std::error::Error for GlmError {}

/// `beta` in percent of the voxel's mean, as GLMsingle's `wantpercentbold`.
pub(crate) fn percent(beta: f64, mean: f64) -> f64 {
    beta / mean.abs() * 100.0
}

pub(crate) fn check_runs(runs: &[Run], voxels: usize, conditions: usize, degrees: &[usize]) {
    assert!(
        !runs.is_empty() && voxels > 0 && conditions > 0,
        "GLM: runs, voxels and conditions"
    );
    assert_eq!(
        runs.len(),
        degrees.len(),
        "GLM: a polynomial degree per run"
    );
    for run in runs {
        assert_eq!(
            run.data.len(),
            run.n_times * voxels,
            "GLM: a run's data is n_times × voxels"
        );
        assert_eq!(
            run.design.len(),
            run.n_times * conditions,
            "GLM: a run's design is n_times × conditions"
        );
        assert!(
            run.n_times > 0 && run.extra.len() % run.n_times == 0,
            "GLM: a run's extra regressors are n_times × e"
        );
    }
}

/// Per run: polynomials of `degrees[p]` and the run's own extra regressors.
pub(crate) fn run_nuisances(runs: &[Run], degrees: &[usize]) -> Vec<Nuisance> {
    runs.iter()
        .zip(degrees)
        .map(|(r, &d)| Nuisance::new(r.n_times, d, r.extra_columns()))
        .collect()
}

pub(crate) fn run_data<'a>(runs: &[Run<'a>]) -> Vec<&'a [f32]> {
    runs.iter().map(|r| r.data).collect()
}

/// TYPEA: all trials as one condition, fitted with `hrf` (peak 1; GLMsingle's canonical HRF
/// for the stimulus duration), polynomials of `degrees[p]` and the runs' extra regressors.
pub fn fit_on_off(
    runs: &[Run],
    voxels: usize,
    conditions: usize,
    hrf: &[f64],
    degrees: &[usize],
) -> Result<OnOff, GlmError> {
    check_runs(runs, voxels, conditions, degrees);
    let nuisances = run_nuisances(runs, degrees);
    let hrf = peak_normalised(hrf);
    let designs: Vec<Vec<f64>> = runs
        .iter()
        .map(|r| {
            let collapsed: Vec<f64> = r
                .design
                .chunks_exact(conditions)
                .map(|row| row.iter().sum())
                .collect();
            convolve_columns(&collapsed, 1, &hrf)
        })
        .collect();
    let design = PreparedDesign::new(&designs, 1, &nuisances);
    let factor = design
        .cholesky()
        .ok_or(GlmError::SingularDesign { hrf: 0 })?;
    let meanvol = mean_volume(runs, voxels);
    let data = run_data(runs);
    let all: Vec<usize> = (0..voxels).collect();
    let (mut onoff_r2, mut betasmd) = (Vec::with_capacity(voxels), Vec::with_capacity(voxels));
    for which in all.chunks(VOXEL_CHUNK) {
        let without_poly = gather_without_polynomials(&data, &nuisances, voxels, which);
        let chunk = project_chunk(&without_poly, &nuisances, which.len());
        let (betas, cross) = ols(&design, &factor, &chunk);
        onoff_r2.extend(ols_r2(&design, &chunk, &betas, &cross));
        betasmd.extend(
            which
                .iter()
                .enumerate()
                .map(|(c, &v)| percent(betas[(0, c)], meanvol[v])),
        );
    }
    Ok(OnOff {
        onoff_r2,
        meanvol,
        betasmd,
    })
}

/// GLMsingle's single-trial design: per run (n_times × trials over all runs), a column per
/// onset in run-then-time order; and the condition of each trial.
pub fn single_trial_designs(runs: &[Run], conditions: usize) -> (Vec<Vec<f64>>, Vec<usize>) {
    let trials = Trials::of(runs, conditions);
    let n = trials.condition.len();
    let designs = runs
        .iter()
        .enumerate()
        .map(|(p, run)| {
            let mut d = vec![0.0; run.n_times * n];
            for i in (0..n).filter(|&i| trials.run[i] == p) {
                d[trials.volume[i] * n + i] = 1.0;
            }
            d
        })
        .collect();
    (designs, trials.condition)
}

/// Every trial of the experiment in GLMsingle's order (run, then onset): its condition, run
/// and onset volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trials {
    /// Condition of each trial (0-based column of the designs).
    pub condition: Vec<usize>,
    /// Run of each trial (0-based).
    pub run: Vec<usize>,
    /// Onset volume of each trial within its run (0-based).
    pub volume: Vec<usize>,
}

impl Trials {
    /// The trials of `runs`, whose designs have `conditions` columns.
    ///
    /// Panics if two conditions have an onset at the same volume of a run.
    pub fn of(runs: &[Run], conditions: usize) -> Trials {
        let mut trials = Trials {
            condition: Vec::new(),
            run: Vec::new(),
            volume: Vec::new(),
        };
        for (p, run) in runs.iter().enumerate() {
            for (t, row) in run.design.chunks_exact(conditions).enumerate() {
                let on: Vec<usize> = (0..conditions).filter(|&c| row[c] != 0.0).collect();
                assert!(
                    on.len() <= 1,
                    "GLM: two conditions with the same onset (run {p}, TR {t})"
                );
                if let Some(&c) = on.first() {
                    trials.condition.push(c);
                    trials.run.push(p);
                    trials.volume.push(t);
                }
            }
        }
        trials
    }
}

/// The single-trial designs convolved with `hrf` (scaled to peak 1).
pub(crate) fn convolved_single_trial(
    single: &[Vec<f64>],
    trials: usize,
    hrf: &[f64],
) -> Vec<Vec<f64>> {
    let hrf = peak_normalised(hrf);
    single
        .iter()
        .map(|d| convolve_columns(d, trials, &hrf))
        .collect()
}

/// TYPEB: single-trial betas with each HRF of `library` (each scaled to peak 1, as GLMsingle
/// fits them), per voxel the HRF of largest R². Voxels are fitted VOXEL_CHUNK at a time.
pub fn fit_hrf_library(
    runs: &[Run],
    voxels: usize,
    conditions: usize,
    library: &[Vec<f64>],
    degrees: &[usize],
) -> Result<FitHrf, GlmError> {
    fit_hrf_library_in_chunks(runs, (voxels, conditions), library, degrees, VOXEL_CHUNK)
}

fn fit_hrf_library_in_chunks(
    runs: &[Run],
    (voxels, conditions): (usize, usize),
    library: &[Vec<f64>],
    degrees: &[usize],
    chunk_size: usize,
) -> Result<FitHrf, GlmError> {
    check_runs(runs, voxels, conditions, degrees);
    let nuisances = run_nuisances(runs, degrees);
    let (single, stim_order) = single_trial_designs(runs, conditions);
    let trials = stim_order.len();
    let prepared = library
        .iter()
        .enumerate()
        .map(|(h, hrf)| {
            let designs = convolved_single_trial(&single, trials, hrf);
            let design = PreparedDesign::new(&designs, trials, &nuisances);
            let factor = design
                .cholesky()
                .ok_or(GlmError::SingularDesign { hrf: h })?;
            Ok((design, factor))
        })
        .collect::<Result<Vec<_>, GlmError>>()?;
    let meanvol = mean_volume(runs, voxels);
    let mut fit = FitHrf {
        hrf_index: vec![0; voxels],
        r2: vec![f64::NAN; voxels],
        betasmd: vec![0.0; voxels * trials],
        stim_order,
    };
    let data = run_data(runs);
    let all: Vec<usize> = (0..voxels).collect();
    for which in all.chunks(chunk_size.max(1)) {
        let without_poly = gather_without_polynomials(&data, &nuisances, voxels, which);
        let chunk = project_chunk(&without_poly, &nuisances, which.len());
        let (index, r2, betas) = if any_extra(&nuisances) {
            best_hrf_general(&prepared, &chunk)
        } else {
            best_hrf(&prepared, &chunk)
        };
        for (c, &v) in which.iter().enumerate() {
            fit.hrf_index[v] = index[c];
            fit.r2[v] = r2[c];
            for i in 0..trials {
                fit.betasmd[v * trials + i] = percent(betas[(i, c)], meanvol[v]);
            }
        }
    }
    Ok(fit)
}

/// Per voxel of a chunk: whether R² `r2` beats the best so far (the first HRF always does;
/// a voxel without variance, NaN R², keeps it, as argmax does).
fn beats(h: usize, r2: f64, best: f64) -> bool {
    h == 0 || r2.partial_cmp(&best) == Some(std::cmp::Ordering::Greater)
}

/// The HRF of largest R² per voxel, its R² and betas (k × c), when no extras are projected
/// out: with G = LLᵀ, R² needs only w = L⁻¹Xᵀy (explained = ‖w‖²), and the betas L⁻ᵀw only for
/// the HRF chosen, which halves the triangular solves.
fn best_hrf(
    prepared: &[(PreparedDesign, Llt<f64>)],
    chunk: &ProjectedChunk,
) -> (Vec<usize>, Vec<f64>, Mat<f64>) {
    let (c, k) = (chunk.voxels(), prepared[0].0.k);
    let par = faer::get_global_parallelism();
    let mut index = vec![0; c];
    let mut best = vec![f64::NEG_INFINITY; c];
    let mut best_w = Mat::<f64>::zeros(k, c);
    for (h, (design, factor)) in prepared.iter().enumerate() {
        let cross = design.cross_fit(chunk);
        let live = &design.live;
        let mut w = Mat::from_fn(live.len(), c, |a, v| cross[(live[a], v)]);
        solve_lower_triangular_in_place(factor.L(), w.as_mut(), par);
        for v in 0..c {
            let explained: f64 = (0..live.len()).map(|a| w[(a, v)].powi(2)).sum();
            let r2 = r2_percent(chunk.total[v], chunk.total[v] - explained);
            if beats(h, r2, best[v]) {
                (best[v], index[v]) = (r2, h);
                for a in 0..live.len() {
                    best_w[(a, v)] = w[(a, v)];
                }
            }
        }
    }
    let mut betas = Mat::<f64>::zeros(k, c);
    for (h, (design, factor)) in prepared.iter().enumerate() {
        let group: Vec<usize> = (0..c).filter(|&v| index[v] == h).collect();
        if group.is_empty() {
            continue;
        }
        let live = &design.live;
        let mut w = Mat::from_fn(live.len(), group.len(), |a, g| best_w[(a, group[g])]);
        solve_upper_triangular_in_place(factor.L().transpose(), w.as_mut(), par);
        let full = expand_rows(&w, live, k);
        for (g, &v) in group.iter().enumerate() {
            for j in 0..k {
                betas[(j, v)] = full[(j, g)];
            }
        }
    }
    (index, best, betas)
}

/// [`best_hrf`] with extra regressors: R² compares the prediction with the polynomial-free
/// data, so every HRF's betas are solved in full.
fn best_hrf_general(
    prepared: &[(PreparedDesign, Llt<f64>)],
    chunk: &ProjectedChunk,
) -> (Vec<usize>, Vec<f64>, Mat<f64>) {
    let (c, k) = (chunk.voxels(), prepared[0].0.k);
    let mut index = vec![0; c];
    let mut best = vec![f64::NEG_INFINITY; c];
    let mut best_betas = Mat::<f64>::zeros(k, c);
    for (h, (design, factor)) in prepared.iter().enumerate() {
        let (betas, cross) = ols(design, factor, chunk);
        let r2 = ols_r2(design, chunk, &betas, &cross);
        for v in 0..c {
            if beats(h, r2[v], best[v]) {
                (best[v], index[v]) = (r2[v], h);
                for j in 0..k {
                    best_betas[(j, v)] = betas[(j, v)];
                }
            }
        }
    }
    (index, best, best_betas)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::project_out;

    /// Runs of pseudo-random data (a fixed linear congruential sequence) with a trial every
    /// 4 TRs of 3 conditions.
    fn experiment(voxels: usize) -> (Vec<Vec<f32>>, Vec<Vec<f64>>) {
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as f32 / (1u64 << 31) as f32
        };
        let (n, conditions) = (40, 3);
        let data = (0..2)
            .map(|_| (0..n * voxels).map(|_| 100.0 + next()).collect())
            .collect();
        let designs = (0..2)
            .map(|_| {
                let mut d = vec![0.0; n * conditions];
                for (i, t) in (2..n - 6).step_by(4).enumerate() {
                    d[t * conditions + i % conditions] = 1.0;
                }
                d
            })
            .collect();
        (data, designs)
    }

    #[test]
    fn chunks_of_voxels_give_the_same_fit() {
        let voxels = 23;
        let (data, designs) = experiment(voxels);
        let runs: Vec<Run> = data
            .iter()
            .zip(&designs)
            .map(|(data, design)| Run {
                data,
                design,
                n_times: 40,
                extra: &[],
            })
            .collect();
        let library = crate::hrf::hrf_library(1.0, 2.0);
        let whole = fit_hrf_library_in_chunks(&runs, (voxels, 3), &library, &[1, 1], 64).unwrap();
        let chunked = fit_hrf_library_in_chunks(&runs, (voxels, 3), &library, &[1, 1], 5).unwrap();
        assert_eq!(whole.hrf_index, chunked.hrf_index);
        let close = |a: &[f64], b: &[f64]| {
            a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-9 * x.abs().max(1.0))
        };
        assert!(close(&whole.r2, &chunked.r2) && close(&whole.betasmd, &chunked.betasmd));
        assert_eq!(whole.stim_order.len(), 2 * 8);
        assert!(whole.r2.iter().all(|r| r.is_finite()));
    }

    #[test]
    fn the_polynomial_basis_is_orthonormal_and_removes_drifts() {
        let basis = polynomial_basis(30, 2);
        for (i, a) in basis.iter().enumerate() {
            for (j, b) in basis.iter().enumerate() {
                let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                assert!((dot - f64::from(u8::from(i == j))).abs() < 1e-12);
            }
        }
        let mut quadratic: Vec<f64> = (0..30)
            .map(|t| 3.0 + 0.5 * t as f64 - 0.01 * (t * t) as f64)
            .collect();
        project_out(&basis, &mut quadratic, 1);
        assert!(quadratic.iter().all(|v| v.abs() < 1e-9));
    }
}
