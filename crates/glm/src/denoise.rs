//! GLMdenoise as GLMsingle runs it (Kay et al. 2013): a noise pool of voxels (bright, with an
//! on/off R² below the tail threshold), the principal components of its time series per run,
//! and the number of them to project out, chosen by leave-one-run-out cross-validation of the
//! single-trial betas over the voxels with a high on/off R².

use crate::engine::{gather_without_polynomials, ols, project_chunk, Nuisance, PreparedDesign};
use crate::fit::{convolved_single_trial, run_data, GlmError, Run};
use crate::tail::percentile;
use crate::xval::{median, select_noise_regressors, CrossValidation};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Side};

/// GLMdenoise's outputs under GLMsingle's names.
#[derive(Debug, Clone, PartialEq)]
pub struct GlmDenoise {
    /// Per voxel: in the noise pool.
    pub noisepool: Vec<bool>,
    /// Per run (n_times × (n_pcs + 1)), row-major: the candidate components, each with standard
    /// deviation 1 (sign arbitrary, as any singular vector's).
    pub pcregressors: Vec<Vec<f64>>,
    /// (voxels × (n_pcs + 1)), row-major: cross-validation badness per number of components
    /// (empty when the number was given).
    pub glmbadness: Vec<f64>,
    /// Per voxel: among those summarising the cross-validation.
    pub pcvoxels: Vec<bool>,
    /// −median badness over `pcvoxels` per number of components (empty when given).
    pub xvaltrend: Vec<f64>,
    /// The number of components used by TYPEC and TYPED.
    pub pcnum: usize,
}

/// The noise pool: voxels brighter than `fraction` × the `percentile`-th percentile of the mean
/// volume, with an on/off R² below `r2_threshold` (GLMsingle's `brainthresh`, `brainR2`).
pub fn noise_pool(
    meanvol: &[f64],
    onoff_r2: &[f64],
    (pct, fraction): (f64, f64),
    r2_threshold: f64,
) -> Vec<bool> {
    let mut sorted = meanvol.to_vec();
    sorted.sort_by(f64::total_cmp);
    let bright = percentile(&sorted, pct) * fraction;
    meanvol
        .iter()
        .zip(onoff_r2)
        .map(|(&m, &r2)| m > bright && r2 < r2_threshold)
        .collect()
}

/// Per run, the first `count` principal components of the noise pool's time series with the
/// polynomials removed and each voxel scaled to unit length: the leading eigenvectors of
/// A Aᵀ (n × n), each scaled to standard deviation 1 (n − 1). Row-major (n × count).
pub fn noise_components(
    runs: &[Run],
    voxels: usize,
    polynomials: &[Nuisance],
    pool: &[usize],
    count: usize,
) -> Vec<Vec<f64>> {
    let data = run_data(runs);
    let projected = gather_without_polynomials(&data, polynomials, voxels, pool);
    projected
        .iter()
        .zip(runs)
        .map(|(a, run)| {
            let n = run.n_times;
            let c = pool.len();
            let mut a = Mat::from_fn(n, c, |t, v| a[t * c + v]);
            for v in 0..c {
                let norm = (0..n).map(|t| a[(t, v)].powi(2)).sum::<f64>().sqrt();
                if norm > 0.0 {
                    (0..n).for_each(|t| a[(t, v)] /= norm);
                }
            }
            let mut m = Mat::<f64>::zeros(n, n);
            let par = faer::get_global_parallelism();
            matmul(
                m.as_mut(),
                Accum::Replace,
                a.as_ref(),
                a.transpose(),
                1.0,
                par,
            );
            leading_components(&m, count)
        })
        .collect()
}

/// The `count` eigenvectors of the symmetric `m` (n × n) with the largest eigenvalues, each
/// scaled to standard deviation 1; row-major (n × count).
fn leading_components(m: &Mat<f64>, count: usize) -> Vec<f64> {
    let n = m.nrows();
    let count = count.min(n);
    let evd = m
        .self_adjoint_eigen(Side::Lower)
        .expect("the eigendecomposition of a symmetric matrix");
    let s = evd.S().column_vector();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
    let u = evd.U();
    let mut out = vec![0.0; n * count];
    for (j, &col) in order.iter().take(count).enumerate() {
        let mean = (0..n).map(|t| u[(t, col)]).sum::<f64>() / n as f64;
        let var = (0..n).map(|t| (u[(t, col)] - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0);
        let sd = var.sqrt();
        for t in 0..n {
            out[t * count + j] = if sd > 0.0 { u[(t, col)] / sd } else { 0.0 };
        }
    }
    out
}

/// The first `used` columns of each run's components (n × total, row-major), as columns; with
/// the runs' own extra regressors before them when any components are used (GLMsingle leaves
/// the extra regressors out of every 0-component fit).
pub(crate) fn denoising_nuisances(
    runs: &[Run],
    degrees: &[usize],
    components: &[Vec<f64>],
    used: usize,
) -> Vec<Nuisance> {
    runs.iter()
        .zip(degrees)
        .enumerate()
        .map(|(p, (run, &degree))| {
            let mut extra = Vec::new();
            if used > 0 {
                let pcs = &components[p];
                extra = run.extra_columns();
                let total = pcs.len() / run.n_times;
                extra.extend(
                    (0..used.min(total))
                        .map(|j| (0..run.n_times).map(|t| pcs[t * total + j]).collect()),
                );
            }
            Nuisance::new(run.n_times, degree, extra)
        })
        .collect()
}

/// What choosing the number of components needs beyond the runs.
pub(crate) struct ComponentChoice<'a> {
    pub degrees: &'a [usize],
    pub library: &'a [Vec<f64>],
    pub hrf_index: &'a [usize],
    pub single: &'a [Vec<f64>],
    pub trials: usize,
    pub xval: &'a CrossValidation,
    pub chunk: usize,
}

/// Cross-validation badness (voxels × (max + 1), row-major) of single-trial betas fitted with
/// 0…`max` components projected out, each voxel with its TYPEB HRF.
pub(crate) fn component_badness(
    runs: &[Run],
    voxels: usize,
    components: &[Vec<f64>],
    max: usize,
    choice: &ComponentChoice,
) -> Result<Vec<f64>, GlmError> {
    let levels = max + 1;
    let mut badness = vec![0.0; voxels * levels];
    let data = run_data(runs);
    let polynomials = denoising_nuisances(runs, choice.degrees, components, 0);
    for (h, hrf) in choice.library.iter().enumerate() {
        let which: Vec<usize> = (0..voxels).filter(|&v| choice.hrf_index[v] == h).collect();
        if which.is_empty() {
            continue;
        }
        let designs = convolved_single_trial(choice.single, choice.trials, hrf);
        let base = PreparedDesign::new(&designs, choice.trials, &polynomials);
        let fits = (0..levels)
            .map(|used| {
                let nuisances = denoising_nuisances(runs, choice.degrees, components, used);
                let design = base.with_extras(&nuisances);
                let factor = design
                    .cholesky()
                    .ok_or(GlmError::SingularDesign { hrf: h })?;
                Ok((nuisances, design, factor))
            })
            .collect::<Result<Vec<_>, GlmError>>()?;
        for part in which.chunks(choice.chunk.max(1)) {
            let without_poly = gather_without_polynomials(&data, &polynomials, voxels, part);
            let betas: Vec<Mat<f64>> = fits
                .iter()
                .map(|(nuisances, design, factor)| {
                    ols(
                        design,
                        factor,
                        &project_chunk(&without_poly, nuisances, part.len()),
                    )
                    .0
                })
                .collect();
            let part_badness = choice.xval.badness(&betas);
            for (c, &v) in part.iter().enumerate() {
                badness[v * levels..(v + 1) * levels]
                    .copy_from_slice(&part_badness[c * levels..(c + 1) * levels]);
            }
        }
    }
    Ok(badness)
}

/// The voxels summarising the cross-validation: on/off R² above `cutoff` (and in `mask`), or
/// when none, the 100 of highest on/off R²; then xvaltrend = −median badness over them.
pub(crate) fn summarise_badness(
    badness: &[f64],
    levels: usize,
    onoff_r2: &[f64],
    cutoff: f64,
    mask: Option<&[bool]>,
) -> (Vec<bool>, Vec<f64>) {
    let voxels = onoff_r2.len();
    let allowed = |v: usize| mask.is_none_or(|m| m[v]);
    let mut pcvoxels: Vec<bool> = (0..voxels)
        .map(|v| allowed(v) && onoff_r2[v] > cutoff)
        .collect();
    if !pcvoxels.iter().any(|&b| b) {
        let mut order: Vec<usize> = (0..voxels).filter(|&v| allowed(v)).collect();
        order.sort_by(|&a, &b| onoff_r2[b].total_cmp(&onoff_r2[a]));
        for &v in order.iter().take(100) {
            pcvoxels[v] = true;
        }
    }
    let xvaltrend = (0..levels)
        .map(|l| {
            let mut column: Vec<f64> = (0..voxels)
                .filter(|&v| pcvoxels[v])
                .map(|v| badness[v * levels + l])
                .collect();
            -median(&mut column)
        })
        .collect();
    (pcvoxels, xvaltrend)
}

/// The number of components: `pcstop` ≤ 0 gives −pcstop without cross-validation, otherwise
/// GLMsingle's rule on the cross-validation curve.
pub(crate) fn choose_pcnum(xvaltrend: &[f64], pcstop: f64) -> usize {
    if pcstop <= 0.0 {
        (-pcstop) as usize
    } else {
        select_noise_regressors(xvaltrend, pcstop)
    }
}
