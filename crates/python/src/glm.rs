//! GLMsingle's four models on numpy runs (brainrecon-glm underneath), for
//! `brainrecon.glm.GLM_single`: the Python layer checks GLMsingle's options and turns them into
//! the arguments here; this returns the fitted arrays flat, which it reshapes.

use std::time::Instant;

use brainrecon_glm::fit::{GlmError, Run};
use brainrecon_glm::glmsingle::{glm_single_resumable, Denoised, Params};
use brainrecon_glm::stages::{StageStore, Step};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(glm_single_fit, m)?)?;
    m.add_function(wrap_pyfunction!(glm_canonical_hrf, m)?)?;
    m.add_function(wrap_pyfunction!(glm_hrf_library, m)?)?;
    Ok(())
}

/// Keeps nothing, but says on standard error when each stage has finished (GLMsingle prints
/// its stages too).
struct Progress {
    show: bool,
    start: Instant,
}

impl Progress {
    fn say(&self, what: &str) {
        if self.show {
            eprintln!("[{:7.1} s] {what}", self.start.elapsed().as_secs_f64());
        }
    }
}

impl StageStore for Progress {
    fn load(&mut self, _: Step) -> Option<Vec<Vec<f64>>> {
        None
    }

    fn save(&mut self, step: Step, _: &[&[f64]]) {
        self.say(match step {
            Step::OnOff => "TYPEA (on/off) fitted",
            Step::FitHrf => "TYPEB (library HRF per voxel) fitted",
            Step::Denoise => "GLMdenoise's components chosen",
        });
    }
}

fn contiguous<'a, T: numpy::Element>(
    array: &'a PyReadonlyArray2<'_, T>,
    what: &str,
    run: usize,
) -> PyResult<&'a [T]> {
    array
        .as_slice()
        .map_err(|_| errors::value(format!("{what}[{run}]: expected a C-contiguous array")))
}

fn glm_error(error: GlmError) -> PyErr {
    errors::value(error.to_string())
}

fn check_timing(stimdur: f64, tr: f64) -> PyResult<()> {
    if stimdur.is_finite() && stimdur > 0.0 && tr.is_finite() && tr > 0.0 {
        Ok(())
    } else {
        Err(errors::value(format!(
            "stimdur and tr: expected positive seconds, found {stimdur} and {tr}"
        )))
    }
}

/// GLMsingle's canonical HRF for a stimulus of `stimdur` seconds sampled every `tr` seconds
/// (`getcanonicalhrf`).
#[pyfunction]
fn glm_canonical_hrf(stimdur: f64, tr: f64) -> PyResult<Vec<f64>> {
    check_timing(stimdur, tr)?;
    Ok(brainrecon_glm::hrf::canonical_hrf(stimdur, tr))
}

/// GLMsingle's library of 20 HRFs (`getcanonicalhrflibrary`): one HRF per row.
#[pyfunction]
fn glm_hrf_library(stimdur: f64, tr: f64) -> PyResult<Vec<Vec<f64>>> {
    check_timing(stimdur, tr)?;
    Ok(brainrecon_glm::hrf::hrf_library(stimdur, tr))
}

/// GLMsingle's TYPEA–TYPED, with the GIL released.
///
/// Per run: `data` (n_times × voxels) float32, `designs` (n_times × conditions) float64 with 1
/// at each trial's onset, `extras` (n_times × e) float64 (e may be 0). `library` is one HRF per
/// row; `session_of_run` GLMsingle's `sessionindicator`; None for `brain_r2` / `pc_r2_cutoff`
/// takes the tail threshold of the on/off R². Returns a dict: `typea`, `typeb`, `typec`,
/// `typed` (absent when not fitted) of flat arrays in voxel-major order ((voxels × k) row-major),
/// `denoise` (its `pcregressors` one (n_times × n_pcs + 1) array per run), `r2_threshold`,
/// `notes`.
#[pyfunction]
#[pyo3(signature = (data, designs, extras, stimdur, tr, *, degrees, assumed_hrf, library,
    want_glmdenoise, want_fracridge, n_pcs, pcstop, fracs, brain_thresh, brain_r2,
    pc_r2_cutoff, pc_r2_cutoff_mask, session_of_run, want_autoscale, chunk, progress))]
#[allow(clippy::too_many_arguments)]
fn glm_single_fit<'py>(
    py: Python<'py>,
    data: Vec<PyReadonlyArray2<'py, f32>>,
    designs: Vec<PyReadonlyArray2<'py, f64>>,
    extras: Vec<PyReadonlyArray2<'py, f64>>,
    stimdur: f64,
    tr: f64,
    degrees: Vec<usize>,
    assumed_hrf: Vec<f64>,
    library: Vec<Vec<f64>>,
    want_glmdenoise: bool,
    want_fracridge: bool,
    n_pcs: usize,
    pcstop: f64,
    fracs: Vec<f64>,
    brain_thresh: (f64, f64),
    brain_r2: Option<f64>,
    pc_r2_cutoff: Option<f64>,
    pc_r2_cutoff_mask: Option<Vec<bool>>,
    session_of_run: Vec<usize>,
    want_autoscale: bool,
    chunk: usize,
    progress: bool,
) -> PyResult<Bound<'py, PyDict>> {
    check_timing(stimdur, tr)?;
    let n_runs = data.len();
    if n_runs == 0 || designs.len() != n_runs || extras.len() != n_runs {
        return Err(errors::value(format!(
            "expected as many designs and extra regressors as runs ({n_runs}), found {} and {}",
            designs.len(),
            extras.len()
        )));
    }
    let voxels = data[0].shape()[1];
    let conditions = designs[0].shape()[1];
    if voxels == 0 || conditions == 0 {
        return Err(errors::value(format!(
            "expected at least one voxel and one condition, found {voxels} and {conditions}"
        )));
    }
    let mut runs = Vec::with_capacity(n_runs);
    for r in 0..n_runs {
        let n_times = data[r].shape()[0];
        let (d, x) = (designs[r].shape(), extras[r].shape());
        if n_times == 0
            || data[r].shape()[1] != voxels
            || d != [n_times, conditions]
            || x[0] != n_times
        {
            return Err(errors::value(format!(
                "run {r}: data (time × voxels) {:?}, design {d:?} and extra regressors {x:?} \
                 disagree (expected {voxels} voxels, {conditions} conditions, {n_times} volumes)",
                data[r].shape()
            )));
        }
        runs.push(Run {
            data: contiguous(&data[r], "data", r)?,
            design: contiguous(&designs[r], "design", r)?,
            n_times,
            extra: contiguous(&extras[r], "extra_regressors", r)?,
        });
    }
    if degrees.len() != n_runs || session_of_run.len() != n_runs {
        return Err(errors::value(format!(
            "maxpolydeg and sessionindicator: expected one value per run ({n_runs})"
        )));
    }
    let params = Params {
        tr,
        stimdur,
        degrees,
        assumed_hrf,
        library,
        want_glmdenoise,
        want_fracridge,
        n_pcs,
        pcstop,
        fracs,
        brain_thresh,
        brain_r2,
        pc_r2_cutoff,
        pc_r2_cutoff_mask,
        session_of_run,
        want_autoscale,
        chunk: chunk.max(1),
    };
    let fit = py
        .detach(|| {
            let mut stages = Progress {
                show: progress,
                start: Instant::now(),
            };
            let fit = glm_single_resumable(&runs, voxels, conditions, &params, &mut stages);
            if fit.is_ok() {
                stages.say("TYPEC and TYPED fitted");
            }
            fit
        })
        .map_err(glm_error)?;

    let array = |values: &[f64]| PyArray1::from_slice(py, values);
    let indices = |values: &[usize]| PyArray1::from_vec(py, values.to_vec());
    let flags = |values: &[bool]| PyArray1::from_vec(py, values.to_vec());
    let out = PyDict::new(py);
    let typea = PyDict::new(py);
    typea.set_item("onoffR2", array(&fit.typea.onoff_r2))?;
    typea.set_item("meanvol", array(&fit.typea.meanvol))?;
    typea.set_item("betasmd", array(&fit.typea.betasmd))?;
    out.set_item("typea", typea)?;
    let typeb = PyDict::new(py);
    typeb.set_item("HRFindex", indices(&fit.typeb.hrf_index))?;
    typeb.set_item("R2", array(&fit.typeb.r2))?;
    typeb.set_item("betasmd", array(&fit.typeb.betasmd))?;
    typeb.set_item("stimorder", indices(&fit.typeb.stim_order))?;
    out.set_item("typeb", typeb)?;
    if let Some(d) = &fit.denoise {
        let denoise = PyDict::new(py);
        denoise.set_item("noisepool", flags(&d.noisepool))?;
        denoise.set_item("pcvoxels", flags(&d.pcvoxels))?;
        denoise.set_item("glmbadness", array(&d.glmbadness))?;
        denoise.set_item("xvaltrend", array(&d.xvaltrend))?;
        denoise.set_item("pcnum", d.pcnum)?;
        let mut components = Vec::with_capacity(runs.len());
        for (r, run) in d.pcregressors.iter().zip(&runs) {
            let count = r.len() / run.n_times;
            components.push(array(r).reshape([run.n_times, count])?);
        }
        denoise.set_item("pcregressors", components)?;
        out.set_item("denoise", denoise)?;
    }
    let model = |d: &Denoised| -> PyResult<Bound<'py, PyDict>> {
        let m = PyDict::new(py);
        m.set_item("HRFindex", indices(&d.hrf_index))?;
        m.set_item("R2", array(&d.r2))?;
        m.set_item("betasmd", array(&d.betasmd))?;
        m.set_item("FRACvalue", array(&d.frac_value))?;
        m.set_item("scaleoffset", array(&d.scaleoffset))?;
        m.set_item("rrbadness", array(&d.rrbadness))?;
        Ok(m)
    };
    if let Some(c) = &fit.typec {
        out.set_item("typec", model(c)?)?;
    }
    if let Some(d) = &fit.typed {
        out.set_item("typed", model(d)?)?;
    }
    out.set_item("r2_threshold", fit.r2_threshold)?;
    out.set_item("notes", fit.notes.clone())?;
    Ok(out)
}
