//! The shared response model, as BrainIAK 0.12 computes it (`brainiak.funcalign.srm`).
//!
//! Each subject i gives `X_i` (v_i voxels × T samples; voxel counts may differ, the samples are
//! the same stimuli in the same order), factored as `X_i ≈ W_i S` with `W_i` (v_i × k) having
//! orthonormal columns and `S` (k × T) shared:
//! * [`fit_srm`]: the probabilistic SRM (Chen et al. 2015), fitted by EM with Anderson et al.'s
//!   (2016) updates: BrainIAK's `SRM`;
//! * [`fit_det_srm`]: the deterministic SRM, fitted by block coordinate descent: BrainIAK's
//!   `DetSRM`;
//! * [`transform_subject`]: a new subject's `W` from its responses to the same samples.
//!
//! BrainIAK's details are kept so that fits equal its own: the random orthonormal start from
//! numpy's `RandomState` ([`brainiak_init_w`]), 0.001 added to the first k diagonal entries of
//! `X_i Sᵀ` before each Procrustes step, the noise variance computed from the *uncentred* data's
//! squared norm, and `transform` not subtracting the voxel means.

use faer::linalg::matmul::matmul;
use faer::linalg::solvers::Solve;
use faer::{Accum, Mat, MatMut, MatRef, Par, Side};

use crate::mt19937::Mt19937;
use crate::{AlignError, Result};

/// What BrainIAK adds to the diagonal of `X_i Sᵀ` before each Procrustes step of a fit.
const PERTURBATION: f64 = 0.001;

/// Settings of a shared response model fit (BrainIAK's defaults: 50 features, 10 iterations,
/// seed 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrmOptions {
    /// k, the dimension of the shared space.
    pub features: usize,
    /// Iterations of EM ([`fit_srm`]) or block coordinate descent ([`fit_det_srm`]).
    pub n_iter: usize,
    /// Seed of numpy's `RandomState` that draws the initial transforms (below 2³², as numpy
    /// requires).
    pub seed: u64,
}

impl Default for SrmOptions {
    fn default() -> SrmOptions {
        SrmOptions {
            features: 50,
            n_iter: 10,
            seed: 0,
        }
    }
}

/// A fitted probabilistic shared response model (BrainIAK's `SRM` attributes).
#[derive(Clone, Debug)]
pub struct Srm {
    /// `w_`: per subject, v_i × k with orthonormal columns.
    pub w: Vec<Mat<f64>>,
    /// `s_`: the shared response, k × T (the posterior mean of the last E-step).
    pub s: Mat<f64>,
    /// `sigma_s_`: the shared response's covariance, k × k.
    pub sigma_s: Mat<f64>,
    /// `rho2_`: each subject's noise variance.
    pub rho2: Vec<f64>,
    /// `mu_`: each subject's voxel means over the samples (length v_i).
    pub mu: Vec<Vec<f64>>,
}

/// A fitted deterministic shared response model (BrainIAK's `DetSRM` attributes).
#[derive(Clone, Debug)]
pub struct DetSrm {
    /// `w_`: per subject, v_i × k with orthonormal columns.
    pub w: Vec<Mat<f64>>,
    /// `s_`: the shared response, k × T (the mean of `W_iᵀ X_i`).
    pub s: Mat<f64>,
}

/// BrainIAK's `_init_w_transforms` as its fits draw it: `RandomState(seed)` draws one
/// `randint(2**32)` per subject, that subject's own `RandomState` fills a v_i × k matrix
/// with `random_sample` (row by row) and numpy's reduced QR (Householder, LAPACK's signs)
/// orthonormalises it. Returns one v_i × min(v_i, k) matrix per subject.
///
/// # Panics
/// When `seed` ≥ 2³², which numpy's `RandomState` refuses too ([`fit_srm`] returns an error
/// instead).
pub fn brainiak_init_w(voxels: &[usize], features: usize, seed: u64) -> Vec<Mat<f64>> {
    let seed = u32::try_from(seed).expect("numpy's RandomState takes seeds below 2^32");
    let mut root = Mt19937::new(seed);
    let seeds: Vec<u32> = voxels.iter().map(|_| root.randint_u32_range()).collect();
    voxels
        .iter()
        .zip(seeds)
        .map(|(&v, s)| {
            let mut rng = Mt19937::new(s);
            let mut sample = Mat::<f64>::zeros(v, features);
            for r in 0..v {
                for c in 0..features {
                    sample[(r, c)] = rng.random_sample();
                }
            }
            householder_q(sample)
        })
        .collect()
}

/// The Q of a reduced Householder QR, m × min(m, n), as LAPACK's `dgeqr2` + `dorg2r` build it
/// (so R's diagonal entries have the opposite sign of the pivot they replace).
fn householder_q(mut a: Mat<f64>) -> Mat<f64> {
    let (m, n) = (a.nrows(), a.ncols());
    let kk = m.min(n);
    let mut tau = vec![0.0; kk];
    // reflector j is v = [1, a[j+1.., j]], kept below the diagonal as LAPACK keeps it
    for j in 0..kk {
        // dlarfg on a[j.., j]: the reflector that maps it onto beta·e_0
        let col = a.col_as_slice_mut(j);
        let alpha = col[j];
        let xnorm = col[j + 1..].iter().map(|x| x * x).sum::<f64>().sqrt();
        if xnorm == 0.0 {
            continue;
        }
        let norm = alpha.hypot(xnorm);
        let beta = if alpha >= 0.0 { -norm } else { norm };
        tau[j] = (beta - alpha) / beta;
        let scale = 1.0 / (alpha - beta);
        col[j + 1..].iter_mut().for_each(|x| *x *= scale);
        col[j] = beta;
        let u = reflector(&col[j + 1..]);
        reflect(
            &u,
            tau[j],
            a.as_mut().submatrix_mut(j, j + 1, m - j, n - j - 1),
        );
    }
    // Q = H_0 ⋯ H_{kk-1} [I; 0], built from the last reflector back
    let mut q = Mat::<f64>::zeros(m, kk);
    for i in (0..kk).rev() {
        let v = &a.col_as_slice(i)[i + 1..];
        reflect(
            &reflector(v),
            tau[i],
            q.as_mut().submatrix_mut(i, i + 1, m - i, kk - i - 1),
        );
        let qi = q.col_as_slice_mut(i);
        qi[i] = 1.0 - tau[i];
        for (q, v) in qi[i + 1..].iter_mut().zip(v) {
            *q = -tau[i] * v;
        }
    }
    q
}

/// The column `u = [1, v]` of a stored reflector.
fn reflector(v: &[f64]) -> Mat<f64> {
    Mat::from_fn(v.len() + 1, 1, |r, _| if r == 0 { 1.0 } else { v[r - 1] })
}

/// `y ← (I − tau·u·uᵀ) y`, as LAPACK's `dlarf` does it: `w = yᵀu`, then `y −= tau·u·wᵀ`.
fn reflect(u: &Mat<f64>, tau: f64, mut y: MatMut<f64>) {
    if y.ncols() == 0 || tau == 0.0 {
        return;
    }
    let mut w = Mat::<f64>::zeros(y.ncols(), 1);
    matmul(
        &mut w,
        Accum::Replace,
        y.as_ref().transpose(),
        u,
        1.0,
        Par::Seq,
    );
    matmul(&mut y, Accum::Add, u, w.transpose(), -tau, Par::Seq);
}

/// Checks the subjects' data for a fit with k = `features`; returns T.
fn check_data(data: &[MatRef<f64>], features: usize) -> Result<usize> {
    if data.len() < 2 {
        return Err(AlignError::Input(format!(
            "the shared response model needs at least 2 subjects, got {}",
            data.len()
        )));
    }
    if features == 0 {
        return Err(AlignError::Input(
            "the shared response model needs at least 1 feature".into(),
        ));
    }
    let samples = data[0].ncols();
    for (i, x) in data.iter().enumerate() {
        if x.ncols() != samples {
            return Err(AlignError::Shape(format!(
                "subject {i} has {} samples but subject 0 has {samples}: every subject must \
                 respond to the same samples",
                x.ncols()
            )));
        }
    }
    if samples < features {
        return Err(AlignError::Input(format!(
            "{features} features need at least {features} samples, the subjects have {samples}"
        )));
    }
    for (i, x) in data.iter().enumerate() {
        if x.nrows() < features {
            return Err(AlignError::Shape(format!(
                "subject {i} has {} voxels, fewer than the {features} features",
                x.nrows()
            )));
        }
        check_finite(*x, &format!("subject {i}"))?;
    }
    Ok(samples)
}

fn check_finite(x: MatRef<f64>, what: &str) -> Result<()> {
    for c in 0..x.ncols() {
        for r in 0..x.nrows() {
            if !x[(r, c)].is_finite() {
                return Err(AlignError::Input(format!(
                    "{what} has a non-finite value ({}) at voxel {r}, sample {c}",
                    x[(r, c)]
                )));
            }
        }
    }
    Ok(())
}

/// Checks given starting transforms against the data; returns k.
fn check_init(data: &[MatRef<f64>], init_w: &[Mat<f64>]) -> Result<usize> {
    if init_w.len() != data.len() {
        return Err(AlignError::Shape(format!(
            "{} starting transforms for {} subjects",
            init_w.len(),
            data.len()
        )));
    }
    let features = init_w.first().map_or(0, |w| w.ncols());
    for (i, (w, x)) in init_w.iter().zip(data).enumerate() {
        if w.nrows() != x.nrows() || w.ncols() != features {
            return Err(AlignError::Shape(format!(
                "subject {i}'s starting transform is {} × {}, expected {} voxels × {features} \
                 features",
                w.nrows(),
                w.ncols(),
                x.nrows()
            )));
        }
        check_finite(w.as_ref(), &format!("subject {i}'s starting transform"))?;
    }
    Ok(features)
}

fn seed_u32(seed: u64) -> Result<u64> {
    if seed > u64::from(u32::MAX) {
        return Err(AlignError::Input(format!(
            "the seed {seed} is not below 2^32, as numpy's RandomState requires"
        )));
    }
    Ok(seed)
}

/// `U Vᵀ` of the thin SVD `U Σ Vᵀ = a` (the orthogonal Procrustes solution), the same shape
/// as `a`.
fn polar(a: MatRef<f64>) -> Result<Mat<f64>> {
    let svd = a.thin_svd().map_err(|e| {
        AlignError::Input(format!(
            "the SVD of a {} × {} matrix did not converge ({e:?})",
            a.nrows(),
            a.ncols()
        ))
    })?;
    Ok(svd.U() * svd.V().transpose())
}

/// The Procrustes step of a fit: `polar(a + 0.001·I)`, the identity on the first k rows.
fn polar_perturbed(a: &Mat<f64>) -> Result<Mat<f64>> {
    let mut p = a.clone();
    for d in 0..p.nrows().min(p.ncols()) {
        p[(d, d)] += PERTURBATION;
    }
    polar(p.as_ref())
}

/// The inverse of a symmetric positive definite matrix through its Cholesky factor, as
/// scipy's `cho_solve(cho_factor(m), I)`.
fn spd_inverse(m: &Mat<f64>, what: &str) -> Result<Mat<f64>> {
    let llt = m.llt(Side::Lower).map_err(|e| {
        AlignError::Input(format!(
            "{what} is not positive definite ({e:?}); the data may be degenerate"
        ))
    })?;
    Ok(llt.solve(Mat::<f64>::identity(m.nrows(), m.ncols())))
}

/// BrainIAK's probabilistic SRM: `SRM(n_iter, features, rand_seed=seed).fit(data)`.
///
/// `data[i]` is v_i × T (the same T for all, ≥ k; v_i ≥ k); at least 2 subjects, all values
/// finite. The start is [`brainiak_init_w`].
pub fn fit_srm(data: &[MatRef<f64>], options: &SrmOptions) -> Result<Srm> {
    check_data(data, options.features)?;
    let seed = seed_u32(options.seed)?;
    let voxels: Vec<usize> = data.iter().map(|x| x.nrows()).collect();
    let init = brainiak_init_w(&voxels, options.features, seed);
    fit_srm_from(data, init, options.n_iter)
}

/// The probabilistic SRM from given starting transforms `init_w[i]` (v_i × k): BrainIAK's EM
/// loop run `n_iter` times.
///
/// The data are centred per voxel for the updates, but the noise variance uses the squared
/// norm of the raw data, as BrainIAK does. With `n_iter` = 0, `s` is zero and `w` the start.
pub fn fit_srm_from(data: &[MatRef<f64>], init_w: Vec<Mat<f64>>, n_iter: usize) -> Result<Srm> {
    let features = check_init(data, &init_w)?;
    let samples = check_data(data, features)?;
    let t = samples as f64;
    let k = features;
    let mut w = init_w;

    let mut mu = Vec::with_capacity(data.len());
    let mut centred = Vec::with_capacity(data.len());
    let mut trace_xtx = Vec::with_capacity(data.len());
    for x in data {
        let m: Vec<f64> = (0..x.nrows())
            .map(|r| (0..x.ncols()).map(|c| x[(r, c)]).sum::<f64>() / t)
            .collect();
        // the uncentred squared norm: BrainIAK's quirk, kept
        let mut sq = 0.0;
        for c in 0..x.ncols() {
            for r in 0..x.nrows() {
                sq += x[(r, c)] * x[(r, c)];
            }
        }
        trace_xtx.push(sq);
        centred.push(Mat::from_fn(x.nrows(), x.ncols(), |r, c| x[(r, c)] - m[r]));
        mu.push(m);
    }

    let mut rho2 = vec![1.0; data.len()];
    let mut sigma_s = Mat::<f64>::identity(k, k);
    let mut shared = Mat::<f64>::zeros(k, samples);
    let identity = Mat::<f64>::identity(k, k);

    for _ in 0..n_iter {
        // E-step
        let rho0: f64 = rho2.iter().map(|r| 1.0 / r).sum();
        let inv_sigma_s = spd_inverse(&sigma_s, "the shared response covariance")?;
        let sigma_s_rhos = Mat::from_fn(k, k, |r, c| inv_sigma_s[(r, c)] + identity[(r, c)] * rho0);
        let inv_sigma_s_rhos = spd_inverse(&sigma_s_rhos, "Σ_s⁻¹ + ρ₀·I")?;
        let mut wt_invpsi_x = Mat::<f64>::zeros(k, samples);
        for ((wi, xi), r) in w.iter().zip(&centred).zip(&rho2) {
            let p = wi.transpose() * xi;
            wt_invpsi_x = Mat::from_fn(k, samples, |a, b| wt_invpsi_x[(a, b)] + p[(a, b)] / r);
        }
        let gain = Mat::from_fn(k, k, |r, c| {
            identity[(r, c)] - rho0 * inv_sigma_s_rhos[(r, c)]
        });
        shared = (&sigma_s * &gain) * &wt_invpsi_x;

        // M-step
        let sst = &shared * shared.transpose();
        sigma_s = Mat::from_fn(k, k, |r, c| inv_sigma_s_rhos[(r, c)] + sst[(r, c)] / t);
        let trace_sigma_s = t * (0..k).map(|d| sigma_s[(d, d)]).sum::<f64>();
        for (i, xi) in centred.iter().enumerate() {
            let a = xi * shared.transpose();
            w[i] = polar_perturbed(&a)?;
            let mut fit = 0.0;
            for c in 0..k {
                for r in 0..a.nrows() {
                    fit += w[i][(r, c)] * a[(r, c)];
                }
            }
            rho2[i] = (trace_xtx[i] - 2.0 * fit + trace_sigma_s) / (t * xi.nrows() as f64);
        }
    }
    Ok(Srm {
        w,
        s: shared,
        sigma_s,
        rho2,
        mu,
    })
}

/// BrainIAK's deterministic SRM: `DetSRM(n_iter, features, rand_seed=seed).fit(data)`, with
/// the same checks and start as [`fit_srm`].
pub fn fit_det_srm(data: &[MatRef<f64>], options: &SrmOptions) -> Result<DetSrm> {
    check_data(data, options.features)?;
    let seed = seed_u32(options.seed)?;
    let voxels: Vec<usize> = data.iter().map(|x| x.nrows()).collect();
    let init = brainiak_init_w(&voxels, options.features, seed);
    fit_det_srm_from(data, init, options.n_iter)
}

/// The deterministic SRM from given starting transforms `init_w[i]` (v_i × k): `n_iter`
/// rounds of BrainIAK's block coordinate descent on ½/T·Σ‖X_i − W_i S‖² (no centring).
pub fn fit_det_srm_from(
    data: &[MatRef<f64>],
    init_w: Vec<Mat<f64>>,
    n_iter: usize,
) -> Result<DetSrm> {
    let features = check_init(data, &init_w)?;
    check_data(data, features)?;
    let mut w = init_w;
    let mut shared = mean_transform(data, &w);
    for _ in 0..n_iter {
        for (wi, xi) in w.iter_mut().zip(data) {
            let a = *xi * shared.transpose();
            *wi = polar_perturbed(&a)?;
        }
        shared = mean_transform(data, &w);
    }
    Ok(DetSrm { w, s: shared })
}

/// `S = (Σ_i W_iᵀ X_i) / n`, k × T.
fn mean_transform(data: &[MatRef<f64>], w: &[Mat<f64>]) -> Mat<f64> {
    let (k, samples) = (w[0].ncols(), data[0].ncols());
    let mut sum = Mat::<f64>::zeros(k, samples);
    for (wi, xi) in w.iter().zip(data) {
        let p = wi.transpose() * *xi;
        sum = Mat::from_fn(k, samples, |a, b| sum[(a, b)] + p[(a, b)]);
    }
    let n = w.len() as f64;
    Mat::from_fn(k, samples, |a, b| sum[(a, b)] / n)
}

/// `[W_iᵀ X_i]` (each k × T_i; T_i may differ from the fit's): BrainIAK's `transform`, which
/// does not subtract the voxel means.
fn transform_all(w: &[Mat<f64>], data: &[MatRef<f64>]) -> Result<Vec<Mat<f64>>> {
    if data.len() != w.len() {
        return Err(AlignError::Shape(format!(
            "{} subjects given to a model fitted on {}",
            data.len(),
            w.len()
        )));
    }
    w.iter()
        .zip(data)
        .enumerate()
        .map(|(i, (wi, xi))| {
            if xi.nrows() != wi.nrows() {
                return Err(AlignError::Shape(format!(
                    "subject {i} has {} voxels, the model's transform has {}",
                    xi.nrows(),
                    wi.nrows()
                )));
            }
            Ok(wi.transpose() * *xi)
        })
        .collect()
}

/// A new subject's transform from its responses `x` (v × T) to the samples of a fitted
/// shared response `s` (k × T, the same samples in the same order): `U Vᵀ` of the thin SVD
/// of `x sᵀ`, v × k, with neither perturbation nor centring (BrainIAK's `transform_subject`).
///
/// When `x sᵀ` has rank below min(v, k) the result is not unique.
pub fn transform_subject(x: MatRef<f64>, s: MatRef<f64>) -> Result<Mat<f64>> {
    if x.ncols() != s.ncols() {
        return Err(AlignError::Shape(format!(
            "the new subject has {} samples, the shared response has {}",
            x.ncols(),
            s.ncols()
        )));
    }
    check_finite(x, "the new subject")?;
    polar((x * s.transpose()).as_ref())
}

impl Srm {
    /// `[W_iᵀ X_i]`, each k × T_i, for data laid out as in the fit (no demeaning).
    pub fn transform(&self, data: &[MatRef<f64>]) -> Result<Vec<Mat<f64>>> {
        transform_all(&self.w, data)
    }

    /// A new subject's v × k transform from its responses `x` (v × T) to the fit's samples:
    /// [`transform_subject`] against `self.s`.
    pub fn transform_subject(&self, x: MatRef<f64>) -> Result<Mat<f64>> {
        transform_subject(x, self.s.as_ref())
    }
}

impl DetSrm {
    /// `[W_iᵀ X_i]`, each k × T_i, for data laid out as in the fit.
    pub fn transform(&self, data: &[MatRef<f64>]) -> Result<Vec<Mat<f64>>> {
        transform_all(&self.w, data)
    }

    /// A new subject's v × k transform from its responses `x` (v × T) to the fit's samples:
    /// [`transform_subject`] against `self.s`.
    pub fn transform_subject(&self, x: MatRef<f64>) -> Result<Mat<f64>> {
        transform_subject(x, self.s.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Vec<Mat<f64>> {
        let mut rng = Mt19937::new(3);
        [12usize, 9, 15]
            .iter()
            .map(|&v| Mat::from_fn(v, 8, |_, _| rng.random_sample() - 0.5))
            .collect()
    }

    fn refs(d: &[Mat<f64>]) -> Vec<MatRef<'_, f64>> {
        d.iter().map(|m| m.as_ref()).collect()
    }

    #[test]
    fn householder_q_is_orthonormal_and_spans_the_input() {
        let mut rng = Mt19937::new(9);
        let a = Mat::from_fn(7, 3, |_, _| rng.random_sample());
        let q = householder_q(a.clone());
        let qtq = q.transpose() * &q;
        for r in 0..3 {
            for c in 0..3 {
                let expected = if r == c { 1.0 } else { 0.0 };
                assert!((qtq[(r, c)] - expected).abs() < 1e-14);
            }
        }
        // a = Q R with R upper triangular; LAPACK's sign makes R_00 negative for a positive pivot
        let r = q.transpose() * &a;
        assert!(r[(1, 0)].abs() < 1e-14 && r[(2, 0)].abs() < 1e-14 && r[(2, 1)].abs() < 1e-14);
        assert!(r[(0, 0)] < 0.0);
        let back = &q * &r;
        for i in 0..7 {
            for j in 0..3 {
                assert!((back[(i, j)] - a[(i, j)]).abs() < 1e-14);
            }
        }
    }

    #[test]
    fn bad_input_is_refused_with_the_sizes() {
        let d = data();
        let opts = SrmOptions {
            features: 3,
            n_iter: 2,
            seed: 0,
        };
        let one = fit_srm(&refs(&d[..1]), &opts).unwrap_err().to_string();
        assert!(one.contains("at least 2 subjects, got 1"), "{one}");
        let mut short = d.clone();
        short[1] = Mat::zeros(9, 7);
        let e = fit_srm(&refs(&short), &opts).unwrap_err().to_string();
        assert!(
            e.contains("subject 1 has 7 samples but subject 0 has 8"),
            "{e}"
        );
        let many = SrmOptions {
            features: 10,
            ..opts.clone()
        };
        let e = fit_det_srm(&refs(&d), &many).unwrap_err().to_string();
        assert!(e.contains("10 features need at least 10 samples"), "{e}");
        let mut narrow = d.clone();
        narrow[2] = Mat::zeros(2, 8);
        let e = fit_srm(&refs(&narrow), &opts).unwrap_err().to_string();
        assert!(
            e.contains("subject 2 has 2 voxels, fewer than the 3 features"),
            "{e}"
        );
        let mut nan = d.clone();
        nan[1][(4, 5)] = f64::NAN;
        let e = fit_det_srm(&refs(&nan), &opts).unwrap_err().to_string();
        assert!(
            e.contains("subject 1 has a non-finite value (NaN) at voxel 4, sample 5"),
            "{e}"
        );
        let big = SrmOptions {
            seed: 1 << 32,
            ..opts.clone()
        };
        let e = fit_srm(&refs(&d), &big).unwrap_err().to_string();
        assert!(e.contains("not below 2^32"), "{e}");
        let srm = fit_srm(&refs(&d), &opts).unwrap();
        let e = srm.transform(&refs(&d[..2])).unwrap_err().to_string();
        assert!(e.contains("2 subjects given to a model fitted on 3"), "{e}");
        let e = srm
            .transform_subject(Mat::zeros(5, 6).as_ref())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the new subject has 6 samples, the shared response has 8"),
            "{e}"
        );
        let e = fit_srm_from(&refs(&d), vec![Mat::zeros(12, 3)], 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("1 starting transforms for 3 subjects"), "{e}");
    }

    #[test]
    fn transforms_stay_orthonormal() {
        let d = data();
        let opts = SrmOptions {
            features: 4,
            n_iter: 5,
            seed: 11,
        };
        let srm = fit_srm(&refs(&d), &opts).unwrap();
        let det = fit_det_srm(&refs(&d), &opts).unwrap();
        for w in srm.w.iter().chain(&det.w) {
            let wtw = w.transpose() * w;
            for r in 0..4 {
                for c in 0..4 {
                    let expected = if r == c { 1.0 } else { 0.0 };
                    assert!((wtw[(r, c)] - expected).abs() < 1e-12);
                }
            }
        }
        assert!(srm.rho2.iter().all(|r| *r > 0.0));
    }
}
