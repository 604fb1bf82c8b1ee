//! `brainrecon eeg` from Python (brainrecon-routes' eeg module underneath), for
//! `brainrecon.eeg`: each function is one library call with the CLI's options and defaults,
//! run with the GIL released; the report (the CLI's `--json`) comes back as a dict.

use std::ops::Range;
use std::path::PathBuf;

use brainrecon_datasets::eeg_preprocess::MvnnDim;
use brainrecon_datasets::things_eeg2::{ChannelSelection, RawPreprocessing};
use brainrecon_routes::eeg::decoder::{
    embed_images, evaluate, fit, EegEvalRequest, EegFitRequest, EegMethod, EmbedRequest, Training,
};
use brainrecon_routes::eeg::nice_train::NiceTrainOptions;
use brainrecon_routes::eeg::preprocess::{
    prepare_bids, prepare_meg, preprocess, BidsEegRequest, MegPrepareRequest, Mvnn,
    PreprocessRequest,
};
use brainrecon_routes::eeg::reconstruct::{reconstruct, EegReconstructRequest};
use brainrecon_routes::eeg::ridge_decoder::RidgeDecoderOptions;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::errors;
use crate::routes::route;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(eeg_preprocess, m)?)?;
    m.add_function(wrap_pyfunction!(eeg_bids_prepare, m)?)?;
    m.add_function(wrap_pyfunction!(eeg_meg_prepare, m)?)?;
    m.add_function(wrap_pyfunction!(eeg_embed, m)?)?;
    m.add_function(wrap_pyfunction!(eeg_fit, m)?)?;
    m.add_function(wrap_pyfunction!(eeg_eval, m)?)?;
    m.add_function(wrap_pyfunction!(eeg_reconstruct, m)?)?;
    Ok(())
}

/// A report as a dict: its JSON text (serde_json, the CLI's `--json`) read by Python's json.
fn dict<'py>(py: Python<'py>, value: &impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// `brainrecon eeg preprocess`: THINGS-EEG2's raw recordings (DATA/eeg_dataset/raw_data) made
/// into the shipped layout in `out`; `subjects` empty or None: every one in raw_data.
/// `channels`: occipital-parietal or all; `mvnn`: time, epochs or none. Returns the report.
#[pyfunction]
#[pyo3(signature = (data, out, subjects=None, sfreq=100.0, tmin=-0.2, tmax=0.8,
    channels="occipital-parietal".to_string(), mvnn="time".to_string(), progress=false))]
#[allow(clippy::too_many_arguments)]
fn eeg_preprocess<'py>(
    py: Python<'py>,
    data: PathBuf,
    out: PathBuf,
    subjects: Option<Vec<String>>,
    sfreq: f64,
    tmin: f64,
    tmax: f64,
    channels: String,
    mvnn: String,
    progress: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let (channels, mvnn) = (channel_selection(&channels)?, mvnn_dim(&mvnn)?);
    let request = PreprocessRequest {
        data,
        subjects: subjects.unwrap_or_default(),
        out,
        options: RawPreprocessing {
            sfreq,
            tmin,
            tmax,
            channels,
            mvnn,
        },
    };
    let report = py
        .detach(|| {
            preprocess(&request, |subject| {
                if progress {
                    eprintln!("preprocessing {subject}");
                }
            })
        })
        .map_err(route)?;
    dict(py, &report)
}

/// `channels`: occipital-parietal or all.
fn channel_selection(name: &str) -> PyResult<ChannelSelection> {
    name.parse()
        .map_err(|e| errors::value(format!("channels: {e}")))
}

/// `mvnn`: time, epochs or none.
fn mvnn_dim(name: &str) -> PyResult<Option<MvnnDim>> {
    name.parse::<Mvnn>()
        .map(Mvnn::dim)
        .map_err(|e| errors::value(format!("mvnn: {e}")))
}

/// `brainrecon eeg bids-prepare`: an image experiment in BIDS EEG (BrainVision and
/// events.tsv; a lab's own, or THINGS-EEG1 as ds003825 ships it) made into THINGS-EEG2's
/// layout in `out`, with the images under `images` linked. Returns the report.
#[pyfunction]
#[pyo3(signature = (bids_root, subject, task, out, images=None, sfreq=100.0,
    channels="all".to_string(), mvnn="epochs".to_string()))]
#[allow(clippy::too_many_arguments)]
fn eeg_bids_prepare<'py>(
    py: Python<'py>,
    bids_root: PathBuf,
    subject: String,
    task: String,
    out: PathBuf,
    images: Option<PathBuf>,
    sfreq: f64,
    channels: String,
    mvnn: String,
) -> PyResult<Bound<'py, PyAny>> {
    let request = BidsEegRequest {
        bids_root,
        subject,
        task,
        images,
        out,
        options: RawPreprocessing {
            sfreq,
            channels: channel_selection(&channels)?,
            mvnn: mvnn_dim(&mvnn)?,
            ..RawPreprocessing::default()
        },
    };
    let report = py.detach(|| prepare_bids(&request)).map_err(route)?;
    dict(py, &report)
}

/// `brainrecon eeg meg-prepare`: a THINGS-MEG participant's preprocessed epochs (ds004212's
/// derivatives, MNE's FIF with its split parts) made into THINGS-EEG2's layout in `out`, with
/// the images under `images` linked. Returns the report.
#[pyfunction]
#[pyo3(signature = (data, participant, out, images=None, tmin=None, tmax=None,
    meg_only=true, exclude_bads=true))]
#[allow(clippy::too_many_arguments)]
fn eeg_meg_prepare<'py>(
    py: Python<'py>,
    data: PathBuf,
    participant: String,
    out: PathBuf,
    images: Option<PathBuf>,
    tmin: Option<f64>,
    tmax: Option<f64>,
    meg_only: bool,
    exclude_bads: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let request = MegPrepareRequest {
        data,
        participant,
        images,
        out,
        options: brainrecon_datasets::things_meg::MegOptions {
            meg_only,
            exclude_bads,
            tmin,
            tmax,
        },
    };
    let report = py.detach(|| prepare_meg(&request)).map_err(route)?;
    dict(py, &report)
}

/// `brainrecon eeg embed`: every training and test image of the data set embedded by `model`
/// (shapes-blip or a BLIP folder), written to `out`; returns the embeddings' record.
#[pyfunction]
#[pyo3(signature = (data, out, model="shapes-blip".to_string(), batch=64, progress=false))]
fn eeg_embed<'py>(
    py: Python<'py>,
    data: PathBuf,
    out: PathBuf,
    model: String,
    batch: usize,
    progress: bool,
) -> PyResult<Bound<'py, PyAny>> {
    if batch == 0 {
        return Err(errors::value("batch: expected at least 1 image"));
    }
    let request = EmbedRequest {
        data,
        model,
        out,
        batch,
        progress,
    };
    let meta = py.detach(|| embed_images(&request)).map_err(route)?;
    dict(py, &meta)
}

/// `brainrecon eeg fit`: a decoder from EEG epochs to image embeddings, trained on `subject`
/// or on every subject but `leave_out` (exactly one of them); `method` nice or ridge;
/// `window`: ridge's (start, end) samples. Returns the fit's report.
#[pyfunction]
#[pyo3(signature = (data, embeddings, out, subject=None, leave_out=None,
    method="nice".to_string(), epochs=40, batch=256, lr=2e-4, checkpoint_every=5, seed=0,
    window=None, progress=false, allow_seen_concepts=false))]
#[allow(clippy::too_many_arguments)]
fn eeg_fit<'py>(
    py: Python<'py>,
    data: PathBuf,
    embeddings: PathBuf,
    out: PathBuf,
    subject: Option<String>,
    leave_out: Option<String>,
    method: String,
    epochs: usize,
    batch: usize,
    lr: f64,
    checkpoint_every: usize,
    seed: u64,
    window: Option<(usize, usize)>,
    progress: bool,
    allow_seen_concepts: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let training = match (subject, leave_out) {
        (Some(s), None) => Training::Subject(s),
        (None, Some(s)) => Training::LeaveOut(s),
        _ => return Err(errors::value("give exactly one of subject and leave_out")),
    };
    let method: EegMethod = method
        .parse()
        .map_err(|e| errors::value(format!("--method: {e}")))?;
    let window: Option<Range<usize>> = match window {
        Some((start, end)) if start >= end => {
            return Err(errors::value(format!(
                "window: expected (start, end) samples with start < end, found ({start}, {end})"
            )))
        }
        w => w.map(|(start, end)| start..end),
    };
    let request = EegFitRequest {
        data,
        training,
        method,
        embeddings,
        out,
        nice: NiceTrainOptions {
            epochs,
            batch,
            lr,
            seed,
            checkpoint_every,
            ..NiceTrainOptions::default()
        },
        ridge: RidgeDecoderOptions {
            window,
            ..RidgeDecoderOptions::default()
        },
        allow_seen_concepts,
        progress,
    };
    let report = py.detach(|| fit(&request, |_, _| {})).map_err(route)?;
    dict(py, &report)
}

/// `brainrecon eeg eval`: each decoder scored by zero-shot retrieval on its test subject, and
/// the mean ± s.d. per method and setting; `ways` None: 2, 4, 10 and 50 where there are that
/// many images; `out`: also write the scores there. Returns the scores.
#[pyfunction]
#[pyo3(signature = (data, decoders, ways=None, draws=100, seed=0, out=None,
    allow_seen_concepts=false))]
#[allow(clippy::too_many_arguments)]
fn eeg_eval<'py>(
    py: Python<'py>,
    data: PathBuf,
    decoders: Vec<PathBuf>,
    ways: Option<Vec<usize>>,
    draws: usize,
    seed: u64,
    out: Option<PathBuf>,
    allow_seen_concepts: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let request = EegEvalRequest {
        data,
        decoders,
        ways,
        draws,
        seed,
        out,
        allow_seen_concepts,
    };
    let report = py.detach(|| evaluate(&request)).map_err(route)?;
    dict(py, &report)
}

/// `brainrecon eeg reconstruct`: the decoder's test subject's test images reconstructed from
/// their decoded embeddings (ridge maps to z and c, then img2img) into `out`. Returns the
/// report.
#[pyfunction]
#[pyo3(signature = (data, decoder, embeddings, out, model="shapes-ldm".to_string(),
    prompt="a {concept}".to_string(), samples=1, steps=50, strength=0.8, guidance=5.0, seed=42,
    limit=None, ceiling=false, progress=false))]
#[allow(clippy::too_many_arguments)]
fn eeg_reconstruct<'py>(
    py: Python<'py>,
    data: PathBuf,
    decoder: PathBuf,
    embeddings: PathBuf,
    out: PathBuf,
    model: String,
    prompt: String,
    samples: usize,
    steps: usize,
    strength: f64,
    guidance: f64,
    seed: u64,
    limit: Option<usize>,
    ceiling: bool,
    progress: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let request = EegReconstructRequest {
        model,
        prompt,
        samples,
        steps,
        strength,
        guidance,
        seed,
        limit,
        ceiling,
        progress,
        ..EegReconstructRequest::new(&data, &decoder, &embeddings, &out)
    };
    let report = py.detach(|| reconstruct(&request)).map_err(route)?;
    dict(py, &report)
}
