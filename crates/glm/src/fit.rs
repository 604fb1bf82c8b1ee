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

/// One run: the recording and its design.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    /// (n_times × voxels), row-major.
    pub data: &'a [f32],
    /// (n_times × conditions), row-major: 1 at each trial's onset TR.
    pub design: &'a [f64],
    pub n_times: usize,
}

/// An assumed-HRF fit of every voxel.
#[derive(Debug, Clone, PartialEq)]
pub struct AssumedFit {
    /// (columns × voxels), row-major, in percent of `meanvol`.
    pub betas: Vec<f64>,
    /// Per voxel, percent.
    pub r2: Vec<f64>,
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

/// Solves G·X = B in place for symmetric positive definite G (k × k) and B (k × m), by
/// Cholesky. A column of G that is all zero (a regressor never on) gets a zero row of X.
fn solve_spd(g: &[f64], b: &mut [f64], k: usize) {
    let m = b.len() / k.max(1);
    let mut l = vec![0.0; k * k];
    let mut live = vec![true; k];
    for j in 0..k {
        let d = g[j * k + j] - (0..j).map(|p| l[j * k + p] * l[j * k + p]).sum::<f64>();
        if g[j * k + j] == 0.0 || d <= 0.0 {
            live[j] = false;
            continue;
        }
        let root = d.sqrt();
        l[j * k + j] = root;
        for i in j + 1..k {
            let s = g[i * k + j] - (0..j).map(|p| l[i * k + p] * l[j * k + p]).sum::<f64>();
            l[i * k + j] = s / root;
        }
    }
    for c in 0..m {
        let mut y = vec![0.0; k];
        for i in 0..k {
            if live[i] {
                let s = b[i * m + c] - (0..i).map(|p| l[i * k + p] * y[p]).sum::<f64>();
                y[i] = s / l[i * k + i];
            }
        }
        for i in (0..k).rev() {
            if live[i] {
                let s = y[i] - (i + 1..k).map(|p| l[p * k + i] * b[p * m + c]).sum::<f64>();
                b[i * m + c] = s / l[i * k + i];
            } else {
                b[i * m + c] = 0.0;
            }
        }
    }
}

/// Least squares of every voxel on the k columns of each run's convolved design (both with
/// the run's polynomials removed), with R² over all runs. `designs[p]`: (n_times × k).
fn fit_assumed(
    runs: &[Run],
    designs: &[Vec<f64>],
    k: usize,
    bases: &[Vec<Vec<f64>>],
    voxels: usize,
    meanvol: &[f64],
) -> AssumedFit {
    let (mut gram, mut cross) = (vec![0.0; k * k], vec![0.0; k * voxels]);
    let mut projected = Vec::with_capacity(runs.len());
    for ((run, design), basis) in runs.iter().zip(designs).zip(bases) {
        let mut x = design.clone();
        project_out(basis, &mut x, k);
        let mut y: Vec<f64> = run.data.iter().map(|&v| v as f64).collect();
        project_out(basis, &mut y, voxels);
        for t in 0..run.n_times {
            let (xt, yt) = (&x[t * k..(t + 1) * k], &y[t * voxels..(t + 1) * voxels]);
            for (i, &xi) in xt.iter().enumerate().filter(|(_, &v)| v != 0.0) {
                gram[i * k..(i + 1) * k]
                    .iter_mut()
                    .zip(xt)
                    .for_each(|(g, &xj)| *g += xi * xj);
                cross[i * voxels..(i + 1) * voxels]
                    .iter_mut()
                    .zip(yt)
                    .for_each(|(c, &yv)| *c += xi * yv);
            }
        }
        projected.push((x, y));
    }
    let mut betas = cross;
    solve_spd(&gram, &mut betas, k);
    let (mut residual, mut total) = (vec![0.0; voxels], vec![0.0; voxels]);
    for (x, y) in &projected {
        for (xt, yt) in x.chunks_exact(k).zip(y.chunks_exact(voxels)) {
            for v in 0..voxels {
                let fit: f64 = xt
                    .iter()
                    .enumerate()
                    .map(|(i, &xi)| xi * betas[i * voxels + v])
                    .sum();
                residual[v] += (fit - yt[v]).powi(2);
                total[v] += yt[v] * yt[v];
            }
        }
    }
    let r2 = residual
        .iter()
        .zip(&total)
        .map(|(r, t)| {
            if *t == 0.0 {
                f64::NAN
            } else {
                100.0 * (1.0 - r / t)
            }
        })
        .collect();
    for row in betas.chunks_exact_mut(voxels) {
        row.iter_mut()
            .zip(meanvol)
            .for_each(|(b, m)| *b = *b / m.abs() * 100.0);
    }
    AssumedFit { betas, r2 }
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
) -> OnOff {
    check_runs(runs, voxels, conditions);
    let bases: Vec<_> = runs
        .iter()
        .zip(degrees)
        .map(|(r, &d)| polynomial_basis(r.n_times, d))
        .collect();
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
    let meanvol = mean_volume(runs, voxels);
    let fit = fit_assumed(runs, &designs, 1, &bases, voxels, &meanvol);
    OnOff {
        onoff_r2: fit.r2,
        meanvol,
        betasmd: fit.betas,
    }
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
/// fits them), per voxel the HRF of largest R².
pub fn fit_hrf_library(
    runs: &[Run],
    voxels: usize,
    conditions: usize,
    library: &[Vec<f64>],
    degrees: &[usize],
) -> FitHrf {
    check_runs(runs, voxels, conditions);
    let bases: Vec<_> = runs
        .iter()
        .zip(degrees)
        .map(|(r, &d)| polynomial_basis(r.n_times, d))
        .collect();
    let (single, stim_order) = single_trial_designs(runs, conditions);
    let trials = stim_order.len();
    let meanvol = mean_volume(runs, voxels);
    let (mut best, mut hrf_index) = (vec![f64::NEG_INFINITY; voxels], vec![0usize; voxels]);
    let mut betasmd = vec![0.0; voxels * trials];
    for (h, hrf) in library.iter().enumerate() {
        let peak = hrf.iter().copied().fold(f64::MIN, f64::max);
        let hrf: Vec<f64> = hrf.iter().map(|v| v / peak).collect();
        let designs: Vec<Vec<f64>> = single
            .iter()
            .map(|d| convolve_columns(d, trials, &hrf))
            .collect();
        let fit = fit_assumed(runs, &designs, trials, &bases, voxels, &meanvol);
        for v in 0..voxels {
            // A voxel without variance (NaN R²) keeps the first HRF, as argmax does.
            let better = fit.r2[v].partial_cmp(&best[v]) == Some(std::cmp::Ordering::Greater);
            if h > 0 && !better {
                continue;
            }
            best[v] = fit.r2[v];
            hrf_index[v] = h;
            for i in 0..trials {
                betasmd[v * trials + i] = fit.betas[i * voxels + v];
            }
        }
    }
    FitHrf {
        hrf_index,
        r2: best,
        betasmd,
        stim_order,
    }
}
