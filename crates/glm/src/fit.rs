//! GLMsingle's fits with an assumed HRF (its `glm_estimatemodel(..., 'assume', ...)`), and the
//! two models built from them:
//!
//! - **TYPEA** (on/off): every trial one condition, the canonical HRF; per voxel the on/off
//!   beta, its R² (`onoffR2`) and the mean volume (`meanvol`).
//! - **TYPEB** (FITHRF): one column per trial (in run, then time order), fitted with each HRF of
//!   a library; per voxel the HRF whose R² over all runs is largest (`HRFindex`), its R² and its
//!   single-trial betas (`betasmd`).
//!
//! The fit, as GLMsingle: per run, polynomials of degrees 0…d (d from the run's duration) are
//! projected out of the data and of the HRF-convolved design; ordinary least squares over the
//! runs together; R² = 100 · (1 − Σ‖P⊥(Xβ) − P⊥y‖² / Σ‖P⊥y‖²) over all runs; betas in percent of
//! the voxel's mean over all volumes.
//!
//! Shapes: a run's data is (n_times × voxels) row-major; its design (n_times × conditions),
//! 1 at the TR of each onset, as GLMsingle's matrix designs.

use faer::linalg::matmul::matmul;
use faer::linalg::solvers::{Llt, Solve};
use faer::{Accum, Mat, Par, Side};

/// One run: the recording and its design.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    /// (n_times × voxels), row-major.
    pub data: &'a [f32],
    /// (n_times × conditions), row-major: 1 at each trial's onset TR.
    pub design: &'a [f64],
    pub n_times: usize,
}

/// TYPEA's outputs under GLMsingle's names.
#[derive(Debug, Clone, PartialEq)]
pub struct OnOff {
    pub onoff_r2: Vec<f64>,
    pub meanvol: Vec<f64>,
    /// The on/off beta per voxel, percent signal change.
    pub betasmd: Vec<f64>,
}

/// TYPEB's outputs under GLMsingle's names.
#[derive(Debug, Clone, PartialEq)]
pub struct FitHrf {
    /// Per voxel, 0-based into the library.
    pub hrf_index: Vec<usize>,
    pub r2: Vec<f64>,
    /// (voxels × trials), row-major, percent signal change.
    pub betasmd: Vec<f64>,
    /// The condition of each trial, in trial order.
    pub stim_order: Vec<usize>,
}

/// Orthonormal columns (each `n` long) spanning the polynomials of degrees 0…`degree` of
/// linspace(−1, 1, n), the span of GLMsingle's `make_polynomial_matrix`.
pub fn polynomial_basis(n: usize, degree: usize) -> Vec<Vec<f64>> {
    let x: Vec<f64> = (0..n)
        .map(|t| {
            if n > 1 {
                2.0 * t as f64 / (n - 1) as f64 - 1.0
            } else {
                0.0
            }
        })
        .collect();
    let mut basis: Vec<Vec<f64>> = Vec::new();
    for d in 0..=degree.min(n.saturating_sub(1)) {
        let mut v: Vec<f64> = x.iter().map(|&xi| xi.powi(d as i32)).collect();
        // Gram–Schmidt twice: the second pass removes the first one's rounding.
        for _ in 0..2 {
            for q in &basis {
                let dot: f64 = v.iter().zip(q).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(q).for_each(|(a, b)| *a -= dot * b);
            }
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 1e-10 {
            v.iter_mut().for_each(|a| *a /= norm);
            basis.push(v);
        }
    }
    basis
}

/// Removes the span of `basis` from every column of `m` (n × k, row-major).
fn project_out(basis: &[Vec<f64>], m: &mut [f64], k: usize) {
    let n = m.len() / k.max(1);
    for q in basis {
        let mut dots = vec![0.0; k];
        for t in 0..n {
            for (j, dot) in dots.iter_mut().enumerate() {
                *dot += q[t] * m[t * k + j];
            }
        }
        for t in 0..n {
            for (j, dot) in dots.iter().enumerate() {
                m[t * k + j] -= q[t] * dot;
            }
        }
    }
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
    SingularDesign { hrf: usize },
}

impl std::fmt::Display for GlmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GlmError::SingularDesign { hrf } => write!(
                f,
                "the design convolved with HRF {hrf} has linearly dependent regressors \
                 (trials whose onsets coincide, or more trials than volumes)"
            ),
        }
    }
}

impl std::error::Error for GlmError {}

/// A design ready for any voxels: each run's convolved design with the run's polynomials
/// removed (n_p × k), the regressors that are ever on (GLMsingle gives the others 0) and the
/// Cholesky factor of their Gram matrix.
struct PreparedDesign {
    runs: Vec<Mat<f64>>,
    live: Vec<usize>,
    factor: Llt<f64>,
    k: usize,
}

fn prepare_design(
    designs: &[Vec<f64>],
    k: usize,
    bases: &[Vec<Vec<f64>>],
    hrf: usize,
) -> Result<PreparedDesign, GlmError> {
    let mut gram = Mat::<f64>::zeros(k, k);
    let mut runs = Vec::with_capacity(designs.len());
    for (design, basis) in designs.iter().zip(bases) {
        let mut x = design.clone();
        project_out(basis, &mut x, k);
        let n = x.len() / k;
        let x = Mat::from_fn(n, k, |t, j| x[t * k + j]);
        matmul(
            gram.as_mut(),
            Accum::Add,
            x.transpose(),
            x.as_ref(),
            1.0,
            Par::Seq,
        );
        runs.push(x);
    }
    let live: Vec<usize> = (0..k).filter(|&j| gram[(j, j)] > 0.0).collect();
    let reduced = Mat::from_fn(live.len(), live.len(), |a, b| gram[(live[a], live[b])]);
    let factor = reduced
        .llt(Side::Lower)
        .map_err(|_| GlmError::SingularDesign { hrf })?;
    Ok(PreparedDesign {
        runs,
        live,
        factor,
        k,
    })
}

/// A chunk of voxels' recording with each run's polynomials removed (n_p × c per run), and
/// each voxel's sum of squares over all runs.
struct ProjectedChunk {
    runs: Vec<Mat<f64>>,
    total: Vec<f64>,
}

fn project_chunk(
    runs: &[Run],
    bases: &[Vec<Vec<f64>>],
    voxels: usize,
    chunk: std::ops::Range<usize>,
) -> ProjectedChunk {
    let c = chunk.len();
    let mut total = vec![0.0; c];
    let projected = runs
        .iter()
        .zip(bases)
        .map(|(run, basis)| {
            let mut y: Vec<f64> = run
                .data
                .chunks_exact(voxels)
                .flat_map(|row| row[chunk.clone()].iter().map(|&v| v as f64))
                .collect();
            project_out(basis, &mut y, c);
            for row in y.chunks_exact(c) {
                total.iter_mut().zip(row).for_each(|(s, v)| *s += v * v);
            }
            Mat::from_fn(run.n_times, c, |t, v| y[t * c + v])
        })
        .collect();
    ProjectedChunk {
        runs: projected,
        total,
    }
}

/// Least squares of a chunk's voxels on a prepared design: betas (k × c, the data's units;
/// 0 for regressors never on) and R² in percent over all runs, from
/// RSS = ‖P⊥y‖² − βᵀ(P⊥X)ᵀP⊥y (the normal equations make the two forms equal).
fn fit_chunk(design: &PreparedDesign, chunk: &ProjectedChunk) -> (Mat<f64>, Vec<f64>) {
    let c = chunk.total.len();
    let mut cross = Mat::<f64>::zeros(design.k, c);
    let par = faer::get_global_parallelism();
    for (x, y) in design.runs.iter().zip(&chunk.runs) {
        matmul(
            cross.as_mut(),
            Accum::Add,
            x.transpose(),
            y.as_ref(),
            1.0,
            par,
        );
    }
    let live = &design.live;
    let mut solved = Mat::from_fn(live.len(), c, |a, v| cross[(live[a], v)]);
    design.factor.solve_in_place(solved.as_mut());
    let mut betas = Mat::<f64>::zeros(design.k, c);
    let r2 = (0..c)
        .map(|v| {
            let mut explained = 0.0;
            for (a, &j) in live.iter().enumerate() {
                betas[(j, v)] = solved[(a, v)];
                explained += solved[(a, v)] * cross[(j, v)];
            }
            let total = chunk.total[v];
            if total == 0.0 {
                f64::NAN
            } else {
                100.0 * (1.0 - (total - explained) / total)
            }
        })
        .collect();
    (betas, r2)
}

/// `beta` in percent of the voxel's mean, as GLMsingle's `wantpercentbold`.
fn percent(beta: f64, mean: f64) -> f64 {
    beta / mean.abs() * 100.0
}

fn check_runs(runs: &[Run], voxels: usize, conditions: usize) {
    assert!(
        !runs.is_empty() && voxels > 0 && conditions > 0,
        "GLM: runs, voxels and conditions"
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
    }
}

/// TYPEA: all trials as one condition, fitted with `hrf` (peak 1; GLMsingle's canonical HRF
/// for the stimulus duration), polynomials of `degrees[p]` per run.
pub fn fit_on_off(
    runs: &[Run],
    voxels: usize,
    conditions: usize,
    hrf: &[f64],
    degrees: &[usize],
) -> Result<OnOff, GlmError> {
    check_runs(runs, voxels, conditions);
    let bases = run_bases(runs, degrees);
    let designs: Vec<Vec<f64>> = runs
        .iter()
        .map(|r| {
            let collapsed: Vec<f64> = r
                .design
                .chunks_exact(conditions)
                .map(|row| row.iter().sum())
                .collect();
            convolve_columns(&collapsed, 1, hrf)
        })
        .collect();
    let design = prepare_design(&designs, 1, &bases, 0)?;
    let meanvol = mean_volume(runs, voxels);
    let (mut onoff_r2, mut betasmd) = (Vec::with_capacity(voxels), Vec::with_capacity(voxels));
    for start in (0..voxels).step_by(VOXEL_CHUNK) {
        let chunk = start..(start + VOXEL_CHUNK).min(voxels);
        let (betas, r2) = fit_chunk(&design, &project_chunk(runs, &bases, voxels, chunk.clone()));
        betasmd.extend(chunk.map(|v| percent(betas[(0, v - start)], meanvol[v])));
        onoff_r2.extend(r2);
    }
    Ok(OnOff {
        onoff_r2,
        meanvol,
        betasmd,
    })
}

fn run_bases(runs: &[Run], degrees: &[usize]) -> Vec<Vec<Vec<f64>>> {
    assert_eq!(
        runs.len(),
        degrees.len(),
        "GLM: a polynomial degree per run"
    );
    runs.iter()
        .zip(degrees)
        .map(|(r, &d)| polynomial_basis(r.n_times, d))
        .collect()
}

/// GLMsingle's single-trial design: per run (n_times × trials over all runs), a column per
/// onset in run-then-time order; and the condition of each trial.
pub fn single_trial_designs(runs: &[Run], conditions: usize) -> (Vec<Vec<f64>>, Vec<usize>) {
    let mut order = Vec::new();
    let mut at = Vec::new();
    for (p, run) in runs.iter().enumerate() {
        for (t, row) in run.design.chunks_exact(conditions).enumerate() {
            let on: Vec<usize> = (0..conditions).filter(|&c| row[c] != 0.0).collect();
            assert!(
                on.len() <= 1,
                "GLM: two conditions with the same onset (run {p}, TR {t})"
            );
            if let Some(&c) = on.first() {
                order.push(c);
                at.push((p, t));
            }
        }
    }
    let trials = order.len();
    let designs = runs
        .iter()
        .enumerate()
        .map(|(p, run)| {
            let mut d = vec![0.0; run.n_times * trials];
            for (i, _) in at.iter().enumerate().filter(|(_, &(q, _))| q == p) {
                d[at[i].1 * trials + i] = 1.0;
            }
            d
        })
        .collect();
    (designs, order)
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
    check_runs(runs, voxels, conditions);
    let bases = run_bases(runs, degrees);
    let (single, stim_order) = single_trial_designs(runs, conditions);
    let trials = stim_order.len();
    let prepared = library
        .iter()
        .enumerate()
        .map(|(h, hrf)| {
            let peak = hrf.iter().copied().fold(f64::MIN, f64::max);
            let hrf: Vec<f64> = hrf.iter().map(|v| v / peak).collect();
            let designs: Vec<Vec<f64>> = single
                .iter()
                .map(|d| convolve_columns(d, trials, &hrf))
                .collect();
            prepare_design(&designs, trials, &bases, h)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let meanvol = mean_volume(runs, voxels);
    let mut fit = FitHrf {
        hrf_index: vec![0; voxels],
        r2: vec![f64::NAN; voxels],
        betasmd: vec![0.0; voxels * trials],
        stim_order,
    };
    for start in (0..voxels).step_by(chunk_size) {
        let chunk = start..(start + chunk_size).min(voxels);
        let projected = project_chunk(runs, &bases, voxels, chunk.clone());
        let mut best = vec![f64::NEG_INFINITY; chunk.len()];
        for (h, design) in prepared.iter().enumerate() {
            let (betas, r2) = fit_chunk(design, &projected);
            for (c, v) in chunk.clone().enumerate() {
                // A voxel without variance (NaN R²) keeps the first HRF, as argmax does.
                let better = r2[c].partial_cmp(&best[c]) == Some(std::cmp::Ordering::Greater);
                if h > 0 && !better {
                    continue;
                }
                best[c] = r2[c];
                fit.hrf_index[v] = h;
                fit.r2[v] = r2[c];
                for i in 0..trials {
                    fit.betasmd[v * trials + i] = percent(betas[(i, c)], meanvol[v]);
                }
            }
        }
    }
    Ok(fit)
}

#[cfg(test)]
mod tests {
    use super::*;

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
