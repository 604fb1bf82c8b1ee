//! GLMsingle's four models in its order (`GLM_single.fit`): TYPEA (on/off), the tail threshold
//! of its R², TYPEB (library HRF per voxel), GLMdenoise's components and their number, TYPEC
//! (single-trial betas with them projected out) and TYPED (plus fractional ridge per voxel,
//! the fraction chosen by cross-validation across runs, then scaled and offset to match the
//! unregularised betas).

use crate::denoise::{
    choose_pcnum, component_badness, denoising_nuisances, noise_components, noise_pool,
    summarise_badness, ComponentChoice, GlmDenoise,
};
use crate::engine::{expand_rows, gather_without_polynomials, project_chunk, PreparedDesign};
use crate::fit::{
    check_runs, convolved_single_trial, fit_hrf_library, fit_on_off, percent, run_data,
    single_trial_designs, FitHrf, GlmError, OnOff, Run, Trials, VOXEL_CHUNK,
};
use crate::hrf::{canonical_hrf, hrf_library};
use crate::stages::{self, NoStages, StageStore, Step};
use crate::xval::CrossValidation;
use crate::{fracridge, tail};
use faer::Mat;

/// GLMsingle's parameters, with its defaults from [`Params::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Repetition time in seconds (`tr`).
    pub tr: f64,
    /// Stimulus duration in seconds (`stimdur`).
    pub stimdur: f64,
    /// Polynomial degree per run (`maxpolydeg`).
    pub degrees: Vec<usize>,
    /// The assumed HRF of TYPEA (`hrftoassume`).
    pub assumed_hrf: Vec<f64>,
    /// TYPEB's library (`hrflibrary`), one HRF per entry.
    pub library: Vec<Vec<f64>>,
    /// `wantglmdenoise` (true): fit GLMdenoise and TYPEC (skipped, with a note, when no
    /// condition repeats across runs and `pcstop` > 0).
    pub want_glmdenoise: bool,
    /// `wantfracridge` (true): fit TYPED (skipped, with a note, when the fraction must be
    /// cross-validated and no condition repeats across runs).
    pub want_fracridge: bool,
    /// Candidate components (`n_pcs`, 10).
    pub n_pcs: usize,
    /// `pcstop` (1.05); ≤ 0 means use −pcstop components without cross-validation.
    pub pcstop: f64,
    /// `fracs` (1, 0.95, …, 0.05).
    pub fracs: Vec<f64>,
    /// `brainthresh` (99th percentile, 0.1).
    pub brain_thresh: (f64, f64),
    /// `brainR2` and `pcR2cutoff`: None takes the tail threshold of the on/off R².
    pub brain_r2: Option<f64>,
    /// See `brain_r2`.
    pub pc_r2_cutoff: Option<f64>,
    /// `pcR2cutoffmask`: None for all voxels.
    pub pc_r2_cutoff_mask: Option<Vec<bool>>,
    /// `sessionindicator`: the session of each run (z-scoring groups of the cross-validation).
    pub session_of_run: Vec<usize>,
    /// `wantautoscale` (true).
    pub want_autoscale: bool,
    /// Voxels fitted together in the cross-validated stages.
    pub chunk: usize,
}

/// GLMsingle's polynomial degree for a run of `n_times` volumes: round(minutes / 2), halves
/// away from zero.
pub fn polynomial_degree(n_times: usize, tr: f64) -> usize {
    crate::engine::degree_for_seconds(n_times as f64 * tr)
}

impl Params {
    /// GLMsingle's defaults for runs of `n_times` volumes.
    pub fn new(stimdur: f64, tr: f64, n_times: &[usize]) -> Params {
        Params {
            tr,
            stimdur,
            degrees: n_times.iter().map(|&n| polynomial_degree(n, tr)).collect(),
            assumed_hrf: canonical_hrf(stimdur, tr),
            library: hrf_library(stimdur, tr),
            want_glmdenoise: true,
            want_fracridge: true,
            n_pcs: 10,
            pcstop: 1.05,
            fracs: (0..20).map(|i| 1.0 - 0.05 * i as f64).collect(),
            brain_thresh: (99.0, 0.1),
            brain_r2: None,
            pc_r2_cutoff: None,
            pc_r2_cutoff_mask: None,
            session_of_run: vec![1; n_times.len()],
            want_autoscale: true,
            chunk: VOXEL_CHUNK / 4,
        }
    }
}

/// TYPEC's or TYPED's outputs under GLMsingle's names.
#[derive(Debug, Clone, PartialEq)]
pub struct Denoised {
    /// (voxels × trials), row-major, percent signal change.
    pub betasmd: Vec<f64>,
    /// R² of the fit per voxel, in percent.
    pub r2: Vec<f64>,
    /// The HRF per voxel, TYPEB's (0-based into the library).
    pub hrf_index: Vec<usize>,
    /// The ridge fraction per voxel (`FRACvalue`; 1 in TYPEC).
    pub frac_value: Vec<f64>,
    /// (voxels × 2), row-major: scale and offset matching the unregularised betas; empty
    /// without autoscaling.
    pub scaleoffset: Vec<f64>,
    /// (voxels × fracs), row-major: cross-validation badness per fraction; empty when the
    /// fraction was given.
    pub rrbadness: Vec<f64>,
}

/// Everything GLMsingle returns, model by model.
#[derive(Debug, Clone, PartialEq)]
pub struct GlmSingle {
    /// TYPEA: the on/off model.
    pub typea: OnOff,
    /// The tail threshold of the on/off R² (NaN when it has no two modes).
    pub r2_threshold: f64,
    /// TYPEB: the library HRF per voxel and its single-trial betas.
    pub typeb: FitHrf,
    /// GLMdenoise's noise pool and components; None when not wanted or skipped.
    pub denoise: Option<GlmDenoise>,
    /// TYPEC: TYPEB with GLMdenoise's components projected out; None without `denoise`.
    pub typec: Option<Denoised>,
    /// TYPED: TYPEC (or TYPEB without GLMdenoise) plus fractional ridge; None when not
    /// wanted or skipped.
    pub typed: Option<Denoised>,
    /// What was skipped and why, as GLMsingle's warnings.
    pub notes: Vec<String>,
}

/// How TYPEC/TYPED pick each voxel's fraction among `fracs` (whose first is 1).
enum Selection {
    /// One fraction for all voxels (its index).
    Fixed(usize),
    /// Cross-validated over all (`skip_first`: the 1 was added and is not a candidate).
    CrossValidated { skip_first: bool },
}

/// GLMsingle's TYPEA–TYPED on `runs` (see [`Run`]).
pub fn glm_single(
    runs: &[Run],
    voxels: usize,
    conditions: usize,
    params: &Params,
) -> Result<GlmSingle, GlmError> {
    glm_single_resumable(runs, voxels, conditions, params, &mut NoStages)
}

/// A stage found in `store`, else fitted and kept there.
fn staged<T>(
    store: &mut dyn StageStore,
    step: Step,
    from: impl FnOnce(Vec<Vec<f64>>) -> Option<T>,
    to: impl Fn(&T) -> Vec<Vec<f64>>,
    fit: impl FnOnce() -> Result<T, GlmError>,
) -> Result<T, GlmError> {
    if let Some(kept) = store.load(step).and_then(from) {
        return Ok(kept);
    }
    let value = fit()?;
    let arrays = to(&value);
    let refs: Vec<&[f64]> = arrays.iter().map(Vec::as_slice).collect();
    store.save(step, &refs);
    Ok(value)
}

/// [`glm_single`], taking TYPEA, TYPEB and GLMdenoise's components from `store` when it holds
/// them (an interrupted fit of the same runs) and keeping each there when fitted. The result is
/// the same as an unbroken fit's.
pub fn glm_single_resumable(
    runs: &[Run],
    voxels: usize,
    conditions: usize,
    params: &Params,
    store: &mut dyn StageStore,
) -> Result<GlmSingle, GlmError> {
    check_runs(runs, voxels, conditions, &params.degrees);
    let typea = staged(
        store,
        Step::OnOff,
        |a| stages::on_off_from(a, voxels),
        stages::on_off_arrays,
        || {
            fit_on_off(
                runs,
                voxels,
                conditions,
                &params.assumed_hrf,
                &params.degrees,
            )
        },
    )?;
    let r2_threshold = tail::tail_threshold(&typea.onoff_r2).map_or(f64::NAN, |(t, _)| t);
    let trials = Trials::of(runs, conditions);
    let n_trials = trials.condition.len();
    let typeb = staged(
        store,
        Step::FitHrf,
        |a| stages::fit_hrf_from(a, voxels, n_trials),
        stages::fit_hrf_arrays,
        || fit_hrf_library(runs, voxels, conditions, &params.library, &params.degrees),
    )?;
    let xval = CrossValidation::leave_one_run_out(&trials, &params.session_of_run);
    let mut notes = Vec::new();
    let want_denoise = params.want_glmdenoise && (xval.has_repeats() || params.pcstop <= 0.0);
    if params.want_glmdenoise && !want_denoise {
        notes.push("no condition repeats across runs: GLMdenoise (TYPEC) skipped".into());
    }
    let fracs = fractions(&params.fracs);
    let want_ridge =
        params.want_fracridge && (xval.has_repeats() || matches!(fracs.1, Selection::Fixed(_)));
    if params.want_fracridge && !want_ridge {
        notes.push("no condition repeats across runs: fractional ridge (TYPED) skipped".into());
    }
    let (single, _) = single_trial_designs(runs, conditions);
    let stage = Stage {
        runs,
        voxels,
        params,
        typeb: &typeb,
        single: &single,
        trials: trials.condition.len(),
        meanvol: &typea.meanvol,
        xval: &xval,
    };
    let n_times: Vec<usize> = runs.iter().map(|r| r.n_times).collect();
    let denoise = if want_denoise {
        Some(staged(
            store,
            Step::Denoise,
            |a| stages::denoise_from(a, voxels, &n_times),
            stages::denoise_arrays,
            || stage.glmdenoise(&typea, r2_threshold),
        )?)
    } else {
        None
    };
    let (components, pcnum) = denoise
        .as_ref()
        .map_or((Vec::new(), 0), |d| (d.pcregressors.clone(), d.pcnum));
    // TYPEC is TYPED's unregularised fraction without its choice: one pass makes both.
    let (fracs, selection) = if want_ridge {
        fracs
    } else {
        (vec![1.0], Selection::Fixed(0))
    };
    let mut models = Vec::new();
    if denoise.is_some() {
        models.push((Selection::Fixed(0), false));
    }
    if want_ridge {
        let autoscale = params.want_autoscale && fracs.len() > 1;
        models.push((selection, autoscale));
    }
    let mut fits = stage
        .final_fits(&components, pcnum, &fracs, &models)?
        .into_iter();
    let typec = denoise.as_ref().and_then(|_| fits.next());
    let typed = fits.next();
    Ok(GlmSingle {
        typea,
        r2_threshold,
        typeb,
        denoise,
        typec,
        typed,
        notes,
    })
}

/// The fractions TYPED fits (descending, distinct, 1 first) and how it chooses among them, as
/// GLMsingle: a single 1 needs no choice; a single other fraction is fitted with 1 beside it
/// (autoscaling needs the unregularised betas); several are cross-validated, 1 added when
/// missing but not chosen.
fn fractions(given: &[f64]) -> (Vec<f64>, Selection) {
    let mut fracs = given.to_vec();
    fracs.sort_by(|a, b| b.total_cmp(a));
    fracs.dedup();
    let has_one = fracs.first() == Some(&1.0);
    match (fracs.len(), has_one) {
        (1, true) => (fracs, Selection::Fixed(0)),
        (1, false) => (vec![1.0, fracs[0]], Selection::Fixed(1)),
        (_, true) => (fracs, Selection::CrossValidated { skip_first: false }),
        (_, false) => {
            fracs.insert(0, 1.0);
            (fracs, Selection::CrossValidated { skip_first: true })
        }
    }
}

/// What the GLMdenoise stages share.
struct Stage<'a> {
    runs: &'a [Run<'a>],
    voxels: usize,
    params: &'a Params,
    typeb: &'a FitHrf,
    single: &'a [Vec<f64>],
    trials: usize,
    meanvol: &'a [f64],
    xval: &'a CrossValidation,
}

impl Stage<'_> {
    /// The noise pool, its components and their number.
    fn glmdenoise(&self, typea: &OnOff, r2_threshold: f64) -> Result<GlmDenoise, GlmError> {
        let p = self.params;
        let brain_r2 = p.brain_r2.unwrap_or(r2_threshold);
        let cutoff = p.pc_r2_cutoff.unwrap_or(r2_threshold);
        let noisepool = noise_pool(&typea.meanvol, &typea.onoff_r2, p.brain_thresh, brain_r2);
        let pool: Vec<usize> = (0..self.voxels).filter(|&v| noisepool[v]).collect();
        if pool.is_empty() {
            return Err(GlmError::EmptyNoisePool);
        }
        let polynomials = denoising_nuisances(self.runs, &p.degrees, &[], 0);
        let pcregressors =
            noise_components(self.runs, self.voxels, &polynomials, &pool, p.n_pcs + 1);
        if p.pcstop <= 0.0 {
            return Ok(GlmDenoise {
                noisepool,
                pcregressors,
                glmbadness: Vec::new(),
                pcvoxels: vec![false; self.voxels],
                xvaltrend: Vec::new(),
                pcnum: choose_pcnum(&[], p.pcstop),
            });
        }
        let choice = ComponentChoice {
            degrees: &p.degrees,
            library: &p.library,
            hrf_index: &self.typeb.hrf_index,
            single: self.single,
            trials: self.trials,
            xval: self.xval,
            chunk: p.chunk,
        };
        let glmbadness =
            component_badness(self.runs, self.voxels, &pcregressors, p.n_pcs, &choice)?;
        let (pcvoxels, xvaltrend) = summarise_badness(
            &glmbadness,
            p.n_pcs + 1,
            &typea.onoff_r2,
            cutoff,
            p.pc_r2_cutoff_mask.as_deref(),
        );
        let pcnum = choose_pcnum(&xvaltrend, p.pcstop);
        Ok(GlmDenoise {
            noisepool,
            pcregressors,
            glmbadness,
            pcvoxels,
            xvaltrend,
            pcnum,
        })
    }

    /// The outputs of a model choosing among `n_fracs` fractions as `selection` says, empty.
    fn empty_output(&self, selection: &Selection, n_fracs: usize, autoscale: bool) -> Denoised {
        let voxels = self.voxels;
        Denoised {
            betasmd: vec![0.0; voxels * self.trials],
            r2: vec![f64::NAN; voxels],
            hrf_index: self.typeb.hrf_index.clone(),
            frac_value: vec![0.0; voxels],
            scaleoffset: if autoscale {
                vec![0.0; voxels * 2]
            } else {
                Vec::new()
            },
            rrbadness: match selection {
                Selection::CrossValidated { skip_first } => {
                    vec![0.0; voxels * (n_fracs - usize::from(*skip_first))]
                }
                Selection::Fixed(_) => Vec::new(),
            },
        }
    }

    /// TYPEC (fraction 1, fixed) and/or TYPED: single-trial betas with `pcnum` components
    /// projected out, fitted by fractional ridge at each of `fracs` (1 first) once, then for
    /// each of `models` (selection, autoscale) one fraction chosen per voxel.
    fn final_fits(
        &self,
        components: &[Vec<f64>],
        pcnum: usize,
        fracs: &[f64],
        models: &[(Selection, bool)],
    ) -> Result<Vec<Denoised>, GlmError> {
        let p = self.params;
        let nuisances = denoising_nuisances(self.runs, &p.degrees, components, pcnum);
        let data = run_data(self.runs);
        let (voxels, trials) = (self.voxels, self.trials);
        let mut outs: Vec<Denoised> = models
            .iter()
            .map(|(selection, autoscale)| self.empty_output(selection, fracs.len(), *autoscale))
            .collect();
        for (h, hrf) in p.library.iter().enumerate() {
            let which: Vec<usize> = (0..voxels)
                .filter(|&v| self.typeb.hrf_index[v] == h)
                .collect();
            if which.is_empty() || models.is_empty() {
                continue;
            }
            let designs = convolved_single_trial(self.single, trials, hrf);
            let design = PreparedDesign::new(&designs, trials, &nuisances);
            let spectrum = design
                .spectrum()
                .ok_or(GlmError::SingularDesign { hrf: h })?;
            for part in which.chunks(p.chunk.max(1)) {
                let without_poly = gather_without_polynomials(&data, &nuisances, voxels, part);
                let chunk = project_chunk(&without_poly, &nuisances, part.len());
                let cross = design.cross_fit(&chunk);
                let live = &design.live;
                let cross_live = Mat::from_fn(live.len(), part.len(), |a, v| cross[(live[a], v)]);
                let levels: Vec<Mat<f64>> = fracridge::solve(&spectrum, &cross_live, fracs)
                    .into_iter()
                    .map(|(betas, _)| expand_rows(&betas, live, trials))
                    .collect();
                for ((selection, autoscale), out) in models.iter().zip(&mut outs) {
                    let chosen = self.choose(&levels, selection, part, out);
                    let chosen_betas =
                        Mat::from_fn(trials, part.len(), |i, c| levels[chosen[c]][(i, c)]);
                    let r2 = design.r2(&chunk, &chosen_betas, &cross);
                    for (c, &v) in part.iter().enumerate() {
                        out.r2[v] = r2[c];
                        out.frac_value[v] = fracs[chosen[c]];
                        let betas: Vec<f64> = (0..trials).map(|i| chosen_betas[(i, c)]).collect();
                        let scaled = if *autoscale {
                            let unregularised: Vec<f64> =
                                (0..trials).map(|i| levels[0][(i, c)]).collect();
                            let [scale, offset] = scale_and_offset(&betas, &unregularised);
                            out.scaleoffset[v * 2] = scale;
                            out.scaleoffset[v * 2 + 1] = offset;
                            betas.iter().map(|b| scale * b + offset).collect()
                        } else {
                            betas
                        };
                        for (i, b) in scaled.into_iter().enumerate() {
                            out.betasmd[v * trials + i] = percent(b, self.meanvol[v]);
                        }
                    }
                }
            }
        }
        Ok(outs)
    }

    /// Each voxel's fraction index into `levels`, recording the cross-validation badness.
    fn choose(
        &self,
        levels: &[Mat<f64>],
        selection: &Selection,
        part: &[usize],
        out: &mut Denoised,
    ) -> Vec<usize> {
        match selection {
            Selection::Fixed(index) => vec![*index; part.len()],
            Selection::CrossValidated { skip_first } => {
                let badness = self.xval.badness(levels);
                let (count, first) = (levels.len(), usize::from(*skip_first));
                part.iter()
                    .enumerate()
                    .map(|(c, &v)| {
                        let row = &badness[c * count + first..(c + 1) * count];
                        let candidates = row.len();
                        out.rrbadness[v * candidates..(v + 1) * candidates].copy_from_slice(row);
                        // The first of equal minima, as argmin.
                        let best =
                            (0..row.len()).fold(0, |b, i| if row[i] < row[b] { i } else { b });
                        best + first
                    })
                    .collect()
            }
        }
    }
}

/// The scale and offset mapping `regularised` betas onto `unregularised` ones by least squares
/// (GLMsingle's `olsmatrix` on [betas, 1]: unit-length columns, pseudo-inverse); a negative
/// scale gives (1, 0).
pub fn scale_and_offset(regularised: &[f64], unregularised: &[f64]) -> [f64; 2] {
    let n = regularised.len() as f64;
    let length = regularised.iter().map(|b| b * b).sum::<f64>().sqrt();
    let ones_length = n.sqrt();
    let q: f64 = unregularised.iter().sum::<f64>() / ones_length;
    let fitted = if length == 0.0 {
        // An all-zero column is left out: the offset alone.
        [0.0, q / ones_length]
    } else {
        let rho = regularised.iter().sum::<f64>() / (length * ones_length);
        let p = regularised
            .iter()
            .zip(unregularised)
            .map(|(b, y)| b * y)
            .sum::<f64>()
            / length;
        // (1 ± ρ) are the eigenvalues of the normalised Gram matrix, (1, ±1)/√2 its vectors;
        // the pseudo-inverse drops an eigenvalue below 1e-15 of the largest, as numpy's pinv.
        let largest = 1.0 + rho.abs();
        let inverse = |e: f64| if e > 1e-15 * largest { 1.0 / e } else { 0.0 };
        let (s1, s2) = ((p + q) / 2f64.sqrt(), (p - q) / 2f64.sqrt());
        let (c1, c2) = (s1 * inverse(1.0 + rho), s2 * inverse(1.0 - rho));
        [
            (c1 + c2) / 2f64.sqrt() / length,
            (c1 - c2) / 2f64.sqrt() / ones_length,
        ]
    };
    if fitted[0] < 0.0 {
        [1.0, 0.0]
    } else {
        fitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_and_offset_is_least_squares() {
        let regularised = [1.0, 2.0, 3.0, 5.0];
        let unregularised: Vec<f64> = regularised.iter().map(|b| 2.5 * b - 1.0).collect();
        let [scale, offset] = scale_and_offset(&regularised, &unregularised);
        assert!((scale - 2.5).abs() < 1e-12 && (offset + 1.0).abs() < 1e-12);
        let flipped: Vec<f64> = regularised.iter().map(|b| -b).collect();
        assert_eq!(scale_and_offset(&regularised, &flipped), [1.0, 0.0]);
        let [scale, offset] = scale_and_offset(&[0.0; 4], &[1.0, 2.0, 3.0, 6.0]);
        assert!(scale == 0.0 && (offset - 3.0).abs() < 1e-12);
    }

    #[test]
    fn fractions_follow_glmsingles_cases() {
        let (fracs, selection) = fractions(&[0.5, 1.0, 0.5, 0.8]);
        assert_eq!(fracs, vec![1.0, 0.8, 0.5]);
        assert!(matches!(
            selection,
            Selection::CrossValidated { skip_first: false }
        ));
        let (fracs, selection) = fractions(&[0.3]);
        assert_eq!(fracs, vec![1.0, 0.3]);
        assert!(matches!(selection, Selection::Fixed(1)));
        assert_eq!(polynomial_degree(188, 1.6), 3);
        assert_eq!(polynomial_degree(75, 1.0), 1);
    }
}
