//! `brainrecon group` from Python (brainrecon-routes' group module underneath), for
//! `brainrecon.group`: each function is one library call with the CLI's options, run with the
//! GIL released; reports come back as JSON text (the CLI's `--json`), which the Python layer
//! reads. Also the simulated group (`simulate --subjects N`) the group commands start from.

use std::path::PathBuf;

use brainrecon_datasets::nsd::{parse_sessions, parse_subject};
use brainrecon_routes::group::adapt::{adapt, AdaptRequest, MapFit, Via};
use brainrecon_routes::group::curve::{curve, CurveRequest};
use brainrecon_routes::group::fit::{fit_group_within, FitLimits, GroupFitRequest};
use brainrecon_routes::group::prepare::{prepare_group, GroupPrepareRequest};
use brainrecon_simulate::{simulate, OutputLayout, SimulateOptions};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::errors;
use crate::routes::route;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(group_prepare, m)?)?;
    m.add_function(wrap_pyfunction!(group_fit, m)?)?;
    m.add_function(wrap_pyfunction!(group_adapt, m)?)?;
    m.add_function(wrap_pyfunction!(group_curve, m)?)?;
    m.add_function(wrap_pyfunction!(group_simulate, m)?)?;
    Ok(())
}

fn json(value: &impl serde::Serialize) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

/// Lines the routes report as they go, on standard error when `show` (the CLI's progress).
fn note(show: bool) -> impl FnMut(String) {
    move |line| {
        if show {
            eprintln!("{line}");
        }
    }
}

/// `brainrecon group prepare`: a group folder from prepared subjects; returns the report.
#[pyfunction]
#[pyo3(signature = (subjects, out, roi, kinds, align_share, seed))]
fn group_prepare(
    py: Python<'_>,
    subjects: Vec<PathBuf>,
    out: PathBuf,
    roi: String,
    kinds: Vec<String>,
    align_share: f64,
    seed: u64,
) -> PyResult<String> {
    let request = GroupPrepareRequest {
        subjects,
        out,
        roi,
        kinds,
        align_share,
        seed,
    };
    let report = py.detach(|| prepare_group(&request)).map_err(route)?;
    json(&report)
}

/// `brainrecon group fit`: a space shared by the group and decoders on it; returns the report.
#[pyfunction]
#[pyo3(signature = (group, method, name, k, n_iter, seed, targets, cv, progress, memory_gb))]
#[allow(clippy::too_many_arguments)]
fn group_fit(
    py: Python<'_>,
    group: PathBuf,
    method: String,
    name: Option<String>,
    k: usize,
    n_iter: usize,
    seed: u64,
    targets: Vec<String>,
    cv: String,
    progress: bool,
    memory_gb: Option<f64>,
) -> PyResult<String> {
    let limits = FitLimits::with_memory_gb(memory_gb).map_err(route)?;
    let request = GroupFitRequest {
        group,
        method,
        name,
        k,
        n_iter,
        seed,
        targets,
        cv,
    };
    let report = py
        .detach(|| fit_group_within(&request, &limits, &mut note(progress)))
        .map_err(route)?;
    json(&report)
}

/// `brainrecon group adapt`: a new subject brought into a group's space; returns the report.
/// `sessions` is the CLI's text (e.g. "1" or "1-2").
#[pyfunction]
#[pyo3(signature = (group, space, subject, out, sessions, via, map, eval_subject))]
#[allow(clippy::too_many_arguments)]
fn group_adapt(
    py: Python<'_>,
    group: PathBuf,
    space: String,
    subject: PathBuf,
    out: PathBuf,
    sessions: Option<String>,
    via: Option<String>,
    map: Option<String>,
    eval_subject: Option<PathBuf>,
) -> PyResult<String> {
    let sessions = sessions
        .as_deref()
        .map(parse_sessions)
        .transpose()
        .map_err(errors::data)?;
    let via: Via = match via {
        Some(v) => v
            .parse()
            .map_err(|e| errors::value(format!("--via: {e}")))?,
        None => Via::default(),
    };
    let map: Option<MapFit> = map
        .map(|m| m.parse().map_err(|e| errors::value(format!("--map: {e}"))))
        .transpose()?;
    let request = AdaptRequest {
        group,
        space,
        subject,
        sessions,
        via,
        map,
        eval_subject,
        out,
    };
    let report = py.detach(|| adapt(&request)).map_err(route)?;
    json(&report)
}

/// `brainrecon group curve`: two-way identification against the new subject's first trials,
/// mean ± s.d. over `seeds` validation/test splits; returns the curve. `trials`: counts, None
/// standing for all.
#[pyfunction]
#[pyo3(signature = (group, spaces, nsd_root, subject, out, trials, seeds, targets, progress))]
#[allow(clippy::too_many_arguments)]
fn group_curve(
    py: Python<'_>,
    group: PathBuf,
    spaces: Vec<String>,
    nsd_root: PathBuf,
    subject: String,
    out: PathBuf,
    trials: Vec<Option<usize>>,
    seeds: usize,
    targets: Vec<String>,
    progress: bool,
) -> PyResult<String> {
    if let Some(bad) = trials.iter().find(|s| **s == Some(0)) {
        return Err(errors::value(format!(
            "trials: expected counts ≥ 1 or 'all', found {}",
            bad.unwrap_or(0)
        )));
    }
    let request = CurveRequest {
        group,
        spaces,
        nsd_root,
        subject: parse_subject(&subject).map_err(errors::data)?,
        trials,
        seeds,
        targets,
        out,
        progress,
    };
    let result = py
        .detach(|| curve(&request, &mut note(progress)))
        .map_err(route)?;
    json(&result)
}

/// `brainrecon simulate --subjects N`: a simulated group as an NSD root (subj01 … subjNN);
/// `volume` is (X, Y, Z). Returns the root.
#[pyfunction]
#[pyo3(signature = (out, subjects, n_images, shared_images, sessions, individual_share,
    image_size, volume, seed))]
#[allow(clippy::too_many_arguments)]
fn group_simulate(
    py: Python<'_>,
    out: PathBuf,
    subjects: usize,
    n_images: usize,
    shared_images: Option<usize>,
    sessions: usize,
    individual_share: f64,
    image_size: usize,
    volume: Option<(usize, usize, usize)>,
    seed: u64,
) -> PyResult<PathBuf> {
    let mut options = SimulateOptions::new(&out);
    options.layout = OutputLayout::Nsd;
    options.subjects = subjects;
    options.n_images = n_images;
    options.shared_images = shared_images;
    options.sessions = sessions;
    options.individual_share = individual_share;
    options.image_size = image_size;
    if let Some((x, y, z)) = volume {
        options.volume_shape = [x, y, z];
    }
    options.seed = seed;
    let simulated = py.detach(|| simulate(&options)).map_err(errors::data)?;
    Ok(simulated.out)
}
