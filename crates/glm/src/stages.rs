//! Finished stages of a GLMsingle fit, kept so that an interrupted fit resumes: TYPEA, TYPEB and
//! GLMdenoise's components and their number, each as a list of f64 arrays (exact: indices and
//! flags are small whole numbers). The caller decides where they live ([`StageStore`]).

use crate::denoise::GlmDenoise;
use crate::fit::{FitHrf, OnOff};

/// The stages of [`crate::glmsingle::glm_single_resumable`] that can be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// TYPEA's on/off fit.
    OnOff,
    /// TYPEB's library-HRF fit.
    FitHrf,
    /// GLMdenoise's noise pool, components and their number.
    Denoise,
}

impl Step {
    /// The stage's name as GLMsingle's outputs call it (`typea`, `typeb`, `glmdenoise`),
    /// which a store may use as a file name.
    pub fn name(self) -> &'static str {
        match self {
            Step::OnOff => "typea",
            Step::FitHrf => "typeb",
            Step::Denoise => "glmdenoise",
        }
    }
}

/// Where finished stages are kept and found.
pub trait StageStore {
    /// A stage kept earlier, as [`save`](StageStore::save) was given it.
    fn load(&mut self, step: Step) -> Option<Vec<Vec<f64>>>;
    /// Keeps a finished stage (a failure to keep it only costs the resume).
    fn save(&mut self, step: Step, arrays: &[&[f64]]);
}

/// A store that keeps nothing: every stage is fitted.
pub struct NoStages;

impl StageStore for NoStages {
    fn load(&mut self, _: Step) -> Option<Vec<Vec<f64>>> {
        None
    }
    fn save(&mut self, _: Step, _: &[&[f64]]) {}
}

fn whole(values: &[f64]) -> Option<Vec<usize>> {
    values
        .iter()
        .map(|&v| (v >= 0.0 && v.fract() == 0.0).then_some(v as usize))
        .collect()
}

fn as_f64(values: &[usize]) -> Vec<f64> {
    values.iter().map(|&v| v as f64).collect()
}

fn flags(values: &[bool]) -> Vec<f64> {
    values.iter().map(|&b| f64::from(u8::from(b))).collect()
}

/// TYPEA as arrays: onoff_r2, meanvol, betasmd.
pub fn on_off_arrays(fit: &OnOff) -> Vec<Vec<f64>> {
    vec![
        fit.onoff_r2.clone(),
        fit.meanvol.clone(),
        fit.betasmd.clone(),
    ]
}

/// TYPEA from arrays, if they have its shape for `voxels`.
pub fn on_off_from(arrays: Vec<Vec<f64>>, voxels: usize) -> Option<OnOff> {
    let [onoff_r2, meanvol, betasmd]: [Vec<f64>; 3] = arrays.try_into().ok()?;
    (onoff_r2.len() == voxels && meanvol.len() == voxels && betasmd.len() == voxels).then_some(
        OnOff {
            onoff_r2,
            meanvol,
            betasmd,
        },
    )
}

/// TYPEB as arrays: hrf_index, r2, betasmd, stim_order.
pub fn fit_hrf_arrays(fit: &FitHrf) -> Vec<Vec<f64>> {
    vec![
        as_f64(&fit.hrf_index),
        fit.r2.clone(),
        fit.betasmd.clone(),
        as_f64(&fit.stim_order),
    ]
}

/// TYPEB from arrays, if they have its shape for `voxels` and `trials`.
pub fn fit_hrf_from(arrays: Vec<Vec<f64>>, voxels: usize, trials: usize) -> Option<FitHrf> {
    let [hrf_index, r2, betasmd, stim_order]: [Vec<f64>; 4] = arrays.try_into().ok()?;
    let fit = FitHrf {
        hrf_index: whole(&hrf_index)?,
        r2,
        betasmd,
        stim_order: whole(&stim_order)?,
    };
    let ok = fit.hrf_index.len() == voxels
        && fit.r2.len() == voxels
        && voxels.checked_mul(trials) == Some(fit.betasmd.len())
        && fit.stim_order.len() == trials;
    ok.then_some(fit)
}

/// GLMdenoise as arrays: noisepool, pcvoxels, glmbadness, xvaltrend, `[pcnum]`, then each run's
/// components.
pub fn denoise_arrays(d: &GlmDenoise) -> Vec<Vec<f64>> {
    let mut arrays = vec![
        flags(&d.noisepool),
        flags(&d.pcvoxels),
        d.glmbadness.clone(),
        d.xvaltrend.clone(),
        vec![d.pcnum as f64],
    ];
    arrays.extend(d.pcregressors.iter().cloned());
    arrays
}

/// GLMdenoise from arrays, if they have its shape for `voxels` and runs of `n_times`.
pub fn denoise_from(
    mut arrays: Vec<Vec<f64>>,
    voxels: usize,
    n_times: &[usize],
) -> Option<GlmDenoise> {
    if arrays.len() != 5 + n_times.len() {
        return None;
    }
    let pcregressors = arrays.split_off(5);
    let [noisepool, pcvoxels, glmbadness, xvaltrend, pcnum]: [Vec<f64>; 5] =
        arrays.try_into().ok()?;
    let as_flags =
        |v: &[f64]| -> Option<Vec<bool>> { Some(whole(v)?.iter().map(|&x| x == 1).collect()) };
    let components = pcregressors
        .first()
        .map_or(0, |r| r.len() / n_times[0].max(1));
    let runs_ok = pcregressors
        .iter()
        .zip(n_times)
        .all(|(r, &n)| n.checked_mul(components) == Some(r.len()));
    let d = GlmDenoise {
        noisepool: as_flags(&noisepool)?,
        pcvoxels: as_flags(&pcvoxels)?,
        glmbadness,
        xvaltrend,
        pcnum: *whole(&pcnum)?.first()?,
        pcregressors,
    };
    (runs_ok && d.noisepool.len() == voxels && d.pcvoxels.len() == voxels && pcnum.len() == 1)
        .then_some(d)
}
