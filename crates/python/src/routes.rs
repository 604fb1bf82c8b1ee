//! The reconstruction routes (brainrecon-routes underneath), for `brainrecon.routes` and
//! `brainrecon.realtime`: each function is one library call with the CLI's options, run with
//! the GIL released; summaries come back as JSON text, which the Python layer reads.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use brainrecon_datasets::prepared::PreparedSubject;
use brainrecon_diffusion::pipeline::{DType, Device, StableDiffusion};
use brainrecon_formats::image::RgbImage;
use brainrecon_realtime::follow::FollowOptions;
use brainrecon_routes::decode::decoders::{
    default_alphas, default_features_dir, fit_decoder, DecoderCv, DecoderSpec, Target,
};
use brainrecon_routes::decode::features::{compute_requested, FeatureKind, FeatureRequest};
use brainrecon_routes::linear::{Method, ReconstructOptions};
use brainrecon_routes::realtime::session::{LiveEvent, LiveOptions, LiveSession};
use brainrecon_routes::reconstruct::{condition, load_decoders, reconstruct};
use brainrecon_routes::RouteError;
use numpy::{PyArray1, PyArrayMethods};
use pyo3::exceptions::{PyFileNotFoundError, PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(route_features, m)?)?;
    m.add_function(wrap_pyfunction!(route_fit, m)?)?;
    m.add_function(wrap_pyfunction!(route_reconstruct, m)?)?;
    m.add_function(wrap_pyfunction!(route_encode_runs, m)?)?;
    m.add_function(wrap_pyfunction!(route_train_word2vec, m)?)?;
    m.add_function(wrap_pyfunction!(route_caption, m)?)?;
    m.add_class::<LiveSessionPy>()?;
    Ok(())
}

/// A route's error: bad input (files, fields, options) as ValueError or FileNotFoundError with
/// the CLI's message, internal failures as RuntimeError.
pub fn route(error: RouteError) -> PyErr {
    match error {
        RouteError::Data(e) => errors::data(e),
        RouteError::Ridge(e) => errors::ridge(e),
        RouteError::Missing { .. } => PyFileNotFoundError::new_err(error.to_string()),
        e if e.is_user_error() => errors::value(e.to_string()),
        e => PyRuntimeError::new_err(e.to_string()),
    }
}

fn json(value: &impl serde::Serialize) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

fn open_subject(py: Python<'_>, dir: &Path) -> PyResult<PreparedSubject> {
    py.detach(|| PreparedSubject::open(dir))
        .map_err(errors::data)
}

/// The CPU in f32 or f16/bf16 (the CLI's `--dtype`); the Python faces run on the CPU.
fn dtype(name: &str) -> PyResult<DType> {
    match name {
        "f32" => Ok(DType::F32),
        "f16" => Ok(DType::F16),
        "bf16" => Ok(DType::BF16),
        other => Err(errors::value(format!(
            "dtype: expected f32, f16 or bf16, found '{other}'"
        ))),
    }
}

/// `brainrecon features`: computes one kind of features of a prepared subject (every layer
/// asked for, for BLIP); returns each array's summary as a JSON list.
#[pyfunction]
#[pyo3(signature = (subject, kind, *, model=None, out=None, size=None, sample=false, seed=0,
    batch=8, layer="last".to_string(), normalize=false, dtype="f32".to_string(), progress=false))]
#[allow(clippy::too_many_arguments)]
fn route_features(
    py: Python<'_>,
    subject: PathBuf,
    kind: &str,
    model: Option<String>,
    out: Option<PathBuf>,
    size: Option<usize>,
    sample: bool,
    seed: u64,
    batch: usize,
    layer: String,
    normalize: bool,
    dtype: String,
    progress: bool,
) -> PyResult<String> {
    let subject = open_subject(py, &subject)?;
    let kind = FeatureKind::parse(kind).map_err(route)?;
    if batch == 0 {
        return Err(errors::value("batch: expected at least 1 stimulus"));
    }
    let request = FeatureRequest {
        kind,
        model,
        out: out.unwrap_or_else(|| default_features_dir(&subject)),
        size,
        sample,
        seed,
        batch,
        layer,
        normalize,
        dtype: self::dtype(&dtype)?,
        device: Device::Cpu,
        progress,
    };
    let summaries = py
        .detach(|| {
            let mut summaries = Vec::new();
            compute_requested::<RouteError>(&subject, &request, |s| {
                summaries.push(s.clone());
                Ok(())
            })
            .map(|()| summaries)
        })
        .map_err(route)?;
    json(&summaries)
}

/// `brainrecon fit`: fits a ridge decoder from an ROI's betas to per-image targets and writes
/// it to `out`; returns the fit's summary as JSON. `standardize` None takes the target's
/// default (on for z, c and clip-image); `cv` is `loo`, `gcv` or a number of folds.
#[pyfunction]
#[pyo3(signature = (subject, target, out, *, roi=None, features=None, alphas=None,
    cv="5".to_string(), average_train=false, standardize=None, intercept=true,
    precision="f64".to_string(), target_block=None))]
#[allow(clippy::too_many_arguments)]
fn route_fit(
    py: Python<'_>,
    subject: PathBuf,
    target: &str,
    out: PathBuf,
    roi: Option<String>,
    features: Option<PathBuf>,
    alphas: Option<Vec<f64>>,
    cv: String,
    average_train: bool,
    standardize: Option<bool>,
    intercept: bool,
    precision: String,
    target_block: Option<usize>,
) -> PyResult<String> {
    let subject = open_subject(py, &subject)?;
    let target = Target::parse(target).map_err(route)?;
    let cv_choice = DecoderCv::parse(&cv).ok_or_else(|| {
        errors::value(format!(
            "cv: expected loo, gcv or a number of folds ≥ 2, found '{cv}'"
        ))
    })?;
    if target_block == Some(0) {
        return Err(errors::value("target_block: expected at least 1 target"));
    }
    let precision = match precision.as_str() {
        "f64" => brainrecon_ridge::Precision::F64,
        "f32" => brainrecon_ridge::Precision::F32,
        other => {
            return Err(errors::value(format!(
                "precision: expected f64 or f32, found '{other}'"
            )))
        }
    };
    let roi = match roi {
        Some(roi) => roi,
        None => {
            let (roi, missing) = target.default_roi_on(&subject);
            if !missing.is_empty() {
                eprintln!(
                    "warning: {} not in this subject; decoding from {roi}",
                    missing.join(", ")
                );
            }
            roi
        }
    };
    let published = target.is_model_feature();
    let spec = DecoderSpec {
        roi,
        alphas: alphas.unwrap_or_else(|| default_alphas(&target)),
        features_dir: features.unwrap_or_else(|| default_features_dir(&subject)),
        standardize: standardize.unwrap_or(published),
        target,
        cv: cv_choice,
        intercept,
        average_train,
        device: brainrecon_ridge::Device::Cpu,
        precision,
        target_block,
    };
    let summary = py
        .detach(|| fit_decoder(&subject, &spec, &out))
        .map_err(route)?;
    if let Some(warning) = summary.edge_warning() {
        eprintln!("warning: {warning}");
    }
    json(&summary)
}

/// `brainrecon reconstruct`: runs a route (linear, z-only, c-only, b2c or caption) on the
/// subject's test images into `out` (images already there are kept); returns the run's
/// summary as JSON. The images are `out`/sample-K/ID.png and `out`/decoded-z/ID.png, listed by
/// `out`/manifest.json.
#[pyfunction]
#[pyo3(signature = (subject, out, *, method="linear".to_string(), decoders=None, captions=None,
    b2c=None, init="noise".to_string(), model="shapes-ldm".to_string(), samples=5, strength=0.8,
    steps=50, guidance=5.0, seed=42, posterior_mean=false, limit=None, batch=None,
    dtype="f32".to_string(), progress=false))]
#[allow(clippy::too_many_arguments)]
fn route_reconstruct(
    py: Python<'_>,
    subject: PathBuf,
    out: PathBuf,
    method: String,
    decoders: Option<PathBuf>,
    captions: Option<PathBuf>,
    b2c: Option<PathBuf>,
    init: String,
    model: String,
    samples: usize,
    strength: f64,
    steps: usize,
    guidance: f64,
    seed: u64,
    posterior_mean: bool,
    limit: Option<usize>,
    batch: Option<usize>,
    dtype: String,
    progress: bool,
) -> PyResult<String> {
    let method = Method::parse(&method).map_err(route)?;
    if steps == 0 || !(guidance.is_finite() && guidance >= 0.0) {
        return Err(errors::value(format!(
            "steps and guidance: expected at least 1 step and a guidance ≥ 0, found {steps} and \
             {guidance}"
        )));
    }
    if batch == Some(0) {
        return Err(errors::value("batch: expected at least 1 sample"));
    }
    let init_z = match init.as_str() {
        "noise" => false,
        "z" => true,
        other => {
            return Err(errors::value(format!(
                "init: expected noise or z, found '{other}'"
            )))
        }
    };
    if method != Method::B2c && decoders.is_none() {
        return Err(errors::value(format!(
            "method {}: needs decoders (a folder holding z/ and c/)",
            method.name()
        )));
    }
    if (method == Method::B2c) != b2c.is_some() {
        return Err(errors::value(
            "b2c: a B2C folder goes with method='b2c', and method='b2c' needs it",
        ));
    }
    if (method == Method::Caption) != captions.is_some() {
        return Err(errors::value(
            "captions: a captions file goes with method='caption', and method='caption' needs it",
        ));
    }
    let dtype = self::dtype(&dtype)?;
    let subject = open_subject(py, &subject)?;
    let options = ReconstructOptions {
        method,
        samples,
        strength,
        steps,
        guidance,
        seed,
        sample_posterior: !posterior_mean,
        limit,
        init_z,
        batch: batch.unwrap_or(samples),
        shard: None,
    };
    let command = format!("brainrecon.reconstruct(method={:?})", method.name());
    let summary = py
        .detach(|| {
            let decoders = load_decoders(decoders.as_deref())?;
            let mut sd = StableDiffusion::load(&model, dtype, &Device::Cpu)?;
            reconstruct(
                &subject,
                &mut sd,
                &model,
                &decoders,
                condition(b2c.as_deref(), captions.as_deref()),
                &options,
                &out,
                &command,
                progress,
            )
        })
        .map_err(route)?;
    json(&summary)
}

/// `brainrecon caption`: BLIP captions of the test images from decoded image tokens
/// (`source` decoded, the `blip` decoder in `decoders`) or the stimuli's own tokens
/// (`features`), written to `out`/captions.json; returns that file's contents as JSON.
#[pyfunction]
#[pyo3(signature = (subject, out, *, source="decoded".to_string(), decoders=None, features=None,
    blip="shapes-blip".to_string(), beams=3, max_length=20, min_length=5,
    repetition_penalty=1.5, beam_scoring="published".to_string(),
    prompt="a picture of ".to_string(), limit=None, progress=false))]
#[allow(clippy::too_many_arguments)]
fn route_caption(
    py: Python<'_>,
    subject: PathBuf,
    out: PathBuf,
    source: String,
    decoders: Option<PathBuf>,
    features: Option<PathBuf>,
    blip: String,
    beams: usize,
    max_length: usize,
    min_length: usize,
    repetition_penalty: f64,
    beam_scoring: String,
    prompt: String,
    limit: Option<usize>,
    progress: bool,
) -> PyResult<String> {
    use brainrecon_language::generate::BeamScoring;
    use brainrecon_routes::caption::decode::{
        caption_test_images, CaptionOptions, Captioner, TokenSource,
    };
    use brainrecon_routes::caption::load_captioner;
    use brainrecon_routes::decode::decoders::Decoder;
    let scoring = BeamScoring::parse(&beam_scoring).ok_or_else(|| {
        errors::value(format!(
            "beam_scoring: expected published, transformers4 or transformers5, found \
             '{beam_scoring}'"
        ))
    })?;
    if beams == 0 || max_length <= min_length.max(1) {
        return Err(errors::value(format!(
            "beams must be ≥ 1 and max_length ({max_length}) greater than min_length \
             ({min_length})"
        )));
    }
    let options = CaptionOptions {
        num_beams: beams,
        max_length,
        min_length,
        repetition_penalty,
        scoring,
        prompt,
        limit,
    };
    let decoded = match (source.as_str(), &decoders) {
        ("decoded", Some(_)) => true,
        ("decoded", None) => {
            return Err(errors::value(
                "source 'decoded' needs decoders (a folder holding blip/)",
            ))
        }
        ("features", _) => false,
        (other, _) => {
            return Err(errors::value(format!(
                "source: expected decoded or features, found '{other}'"
            )))
        }
    };
    let subject = open_subject(py, &subject)?;
    let file = py
        .detach(|| -> Result<_, RouteError> {
            let decoder = match (&decoders, decoded) {
                (Some(dir), true) => Some(Decoder::load(&dir.join("blip"))?),
                _ => None,
            };
            let features = features.unwrap_or_else(|| default_features_dir(&subject));
            let source = match &decoder {
                Some(decoder) => TokenSource::Decoded(decoder),
                None => TokenSource::Features(&features),
            };
            let loaded = load_captioner(&blip, &Device::Cpu)?;
            let captioner = Captioner {
                model: &loaded.model,
                tokenizer: &loaded.tokenizer,
                name: blip.clone(),
                fingerprint: loaded.fingerprint.clone(),
                device: Device::Cpu,
            };
            caption_test_images(&subject, &source, &captioner, &options, &out, progress)
        })
        .map_err(route)?;
    json(&file)
}

/// `brainrecon encode-runs`: banded encoding models of a prepared run set (`bids prepare`),
/// written to `out` (encoding.json, r/r2/p/q.npy, r2_split.npy, unique.npy, maps/,
/// report.html); returns the summary as JSON. Empty `delays` and `delay_mean` take the
/// default FIR delays.
#[pyfunction]
#[pyo3(signature = (subject, bands, out, *, dataset_features=None, allow_weak_bands=false,
    folds=None, text_model="word2vec-movie".to_string(), layer="last".to_string(),
    test_runs=Vec::new(), align="mean".to_string(), delays=Vec::new(), delay_mean=Vec::new(),
    pca=None, alphas=vec![1.0, 10.0, 100.0, 1e3, 1e4, 1e5], n_iter=20, permutations=1000,
    block=10, unique=false, seed=0, cortex="auto".to_string(), progress=false))]
#[allow(clippy::too_many_arguments)]
fn route_encode_runs(
    py: Python<'_>,
    subject: PathBuf,
    bands: Vec<String>,
    out: PathBuf,
    dataset_features: Option<String>,
    allow_weak_bands: bool,
    folds: Option<usize>,
    text_model: String,
    layer: String,
    test_runs: Vec<String>,
    align: String,
    delays: Vec<i64>,
    delay_mean: Vec<i64>,
    pca: Option<usize>,
    alphas: Vec<f64>,
    n_iter: usize,
    permutations: usize,
    block: usize,
    unique: bool,
    seed: u64,
    cortex: String,
    progress: bool,
) -> PyResult<String> {
    use brainrecon_routes::naturalistic::{
        encode_runs, load_featurizer, Align, Band, BandSource, Delays, EncodeRunsOptions,
        LayerChoice,
    };
    let mut parsed = Vec::with_capacity(bands.len());
    for spec in &bands {
        let mut band = Band::parse(spec).map_err(route)?;
        // every annotation band read as the dataset's features, as `--dataset-features`
        if let (BandSource::Annotations(kind), Some(features)) = (&band.source, &dataset_features) {
            let features = if kind.ends_with("_EN") {
                features.replace("_jp_", "_en_")
            } else {
                features.clone()
            };
            band.source = BandSource::DatasetFeatures {
                kind: kind.clone(),
                features,
            };
        }
        parsed.push(band);
    }
    let align = match align.as_str() {
        "mean" => Align::Mean,
        "lanczos" => Align::Lanczos,
        other => {
            return Err(errors::value(format!(
                "align: expected mean or lanczos, found {other}"
            )))
        }
    };
    let delays = match (delays.is_empty(), delay_mean.is_empty()) {
        (true, true) => Delays::Default,
        (false, true) => Delays::Fir(delays),
        (true, false) => Delays::Mean(delay_mean),
        (false, false) => return Err(errors::value("delays and delay_mean exclude each other")),
    };
    if n_iter == 0 || block == 0 || pca == Some(0) {
        return Err(errors::value("n_iter, block and pca must be at least 1"));
    }
    let options = EncodeRunsOptions {
        out,
        bands: parsed,
        test_runs,
        folds,
        allow_weak_bands,
        align,
        delays,
        pca,
        alphas,
        n_iter,
        permutations,
        block,
        unique,
        seed,
        cortex: cortex
            .parse()
            .map_err(|e: String| errors::value(format!("cortex: {e}")))?,
        command: "brainrecon.encode_runs".into(),
    };
    let layer = LayerChoice::parse(&layer).map_err(route)?;
    let summary = py
        .detach(|| {
            let runs = brainrecon_datasets::runs::RunSet::open(&subject)?;
            let needs_text = options
                .bands
                .iter()
                .any(|b| matches!(b.source, BandSource::Annotations(_)));
            let featurizer = if needs_text {
                Some(load_featurizer(&text_model, &layer, &Device::Cpu)?)
            } else {
                None
            };
            let started = std::time::Instant::now();
            encode_runs(&runs, &options, featurizer.as_ref(), &mut |step| {
                if progress {
                    eprintln!(
                        "encode-runs: {step} ({:.0} s)",
                        started.elapsed().as_secs_f64()
                    );
                }
            })
        })
        .map_err(route)?;
    for warning in &summary.warnings {
        eprintln!("warning: {warning}");
    }
    json(&summary)
}

/// `brainrecon train-word2vec --corpus`: skip-gram vectors of a text corpus (files or folders),
/// split into words as the encoding route splits them, written to `out` (vectors.bin,
/// training.json); returns the summary as JSON. Defaults are gensim's `Word2Vec(sg=1)`.
#[pyfunction]
#[pyo3(signature = (corpus, out, *, markup="auto".to_string(), dim=100, window=5, negative=5,
    min_count=5, epochs=5, sample=1e-3, alpha=0.025, seed=0, progress=false))]
#[allow(clippy::too_many_arguments)]
fn route_train_word2vec(
    py: Python<'_>,
    corpus: Vec<PathBuf>,
    out: PathBuf,
    markup: String,
    dim: usize,
    window: usize,
    negative: usize,
    min_count: usize,
    epochs: usize,
    sample: f64,
    alpha: f32,
    seed: u64,
    progress: bool,
) -> PyResult<String> {
    use brainrecon_routes::naturalistic::annotations::parse_markup;
    use brainrecon_routes::naturalistic::corpus::train_word2vec_on_corpus;
    if corpus.is_empty() {
        return Err(errors::value("corpus: give at least one file or folder"));
    }
    let markup = parse_markup(&markup).map_err(route)?;
    let config = brainrecon_routes::naturalistic::corpus::Word2VecConfig {
        dim,
        window,
        negative,
        min_count,
        epochs,
        alpha,
        sample,
        seed,
    };
    let summary = py
        .detach(|| {
            train_word2vec_on_corpus(
                &corpus,
                markup,
                &config,
                &out,
                "brainrecon.train_word2vec",
                progress,
            )
        })
        .map_err(route)?;
    json(&summary)
}

/// A live session (`brainrecon realtime run`) as an iterator of events; the Python class
/// `brainrecon.realtime.Session` wraps it.
#[pyclass(name = "LiveSession", module = "brainrecon._native")]
struct LiveSessionPy {
    session: Mutex<Option<LiveSession>>,
    stop: Arc<AtomicBool>,
}

fn image_array<'py>(py: Python<'py>, image: &RgbImage) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_slice(py, &image.pixels)
        .reshape([image.height, image.width, 3])?
        .into_any())
}

#[pymethods]
impl LiveSessionPy {
    /// Opens the subject, its decoders and the model, and starts following `folder` (the
    /// CLI's flags of `realtime run`, with its defaults).
    #[new]
    #[pyo3(signature = (folder, subject, decoders, tr, *, out=PathBuf::from("realtime-session"),
        subject_reference=None, window_s=4.0, delay_s=4.0, draw_all=false, events=None,
        model="shapes-ldm".to_string(), steps=10, strength=0.8, guidance=5.0, seed=42,
        dtype="f32".to_string(), volumes=None, idle_seconds=60.0, settle_ms=200, poll_ms=20,
        smoothing_mm=5.0, slices=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        folder: PathBuf,
        subject: PathBuf,
        decoders: PathBuf,
        tr: f64,
        out: PathBuf,
        subject_reference: Option<PathBuf>,
        window_s: f64,
        delay_s: f64,
        draw_all: bool,
        events: Option<PathBuf>,
        model: String,
        steps: usize,
        strength: f64,
        guidance: f64,
        seed: u64,
        dtype: String,
        volumes: Option<usize>,
        idle_seconds: f64,
        settle_ms: u64,
        poll_ms: u64,
        smoothing_mm: f64,
        slices: Option<usize>,
    ) -> PyResult<Self> {
        let mut follow = FollowOptions::new(folder);
        follow.volumes = volumes;
        follow.idle_seconds = idle_seconds;
        follow.settle_ms = settle_ms;
        follow.poll_ms = poll_ms;
        follow.smoothing_mm = smoothing_mm;
        follow.slices = slices;
        follow.check().map_err(errors::data)?;
        let options = LiveOptions {
            follow,
            subject,
            decoders,
            subject_reference,
            tr,
            window_s,
            delay_s,
            draw_all,
            events,
            out,
            model,
            steps,
            strength,
            guidance,
            seed,
            device: Device::Cpu,
            dtype: self::dtype(&dtype)?,
            command: "brainrecon.realtime.Session".into(),
        };
        let session = py.detach(|| LiveSession::open(options)).map_err(route)?;
        Ok(LiveSessionPy {
            session: Mutex::new(Some(session)),
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Ends the session after the volume in hand (safe from another thread).
    fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// The next event as a dict (`type`: volume, refused or waiting); StopIteration once the
    /// session has ended. Waits for the scanner with the GIL released.
    fn next_event<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stop = self.stop.clone();
        let event = py.detach(|| {
            let mut guard = self.session.lock().unwrap_or_else(|e| e.into_inner());
            match guard.as_mut() {
                Some(session) => session.next(&stop),
                None => Ok(None),
            }
        });
        let Some(event) = event.map_err(route)? else {
            return Err(PyStopIteration::new_err(()));
        };
        let d = PyDict::new(py);
        match event {
            LiveEvent::Volume(v) => {
                let row = &v.arrived.row;
                d.set_item("type", "volume")?;
                d.set_item("volume", row.volume)?;
                d.set_item("file", &row.file)?;
                d.set_item("motion", row.motion.to_vec())?;
                d.set_item("framewise_displacement_mm", row.framewise_displacement_mm)?;
                d.set_item("latency_ms", row.latency_ms)?;
                d.set_item("warming_up", v.warming_up)?;
                match &v.decoded {
                    Some((z, c)) => {
                        d.set_item("z", PyArray1::from_slice(py, z))?;
                        d.set_item("c", PyArray1::from_slice(py, c))?;
                    }
                    None => {
                        d.set_item("z", py.None())?;
                        d.set_item("c", py.None())?;
                    }
                }
            }
            LiveEvent::Drawn(frame) => {
                d.set_item("type", "frame")?;
                d.set_item("volume", frame.row.volume)?;
                d.set_item("image", image_array(py, &frame.image)?)?;
                d.set_item("decoded_z", image_array(py, &frame.decoded_z)?)?;
                d.set_item("latency_ms", frame.latency_ms)?;
            }
            LiveEvent::Refused(r) => {
                d.set_item("type", "refused")?;
                d.set_item("file", &r.file)?;
                d.set_item("error", &r.error)?;
            }
            LiveEvent::Waiting { since, pause } => {
                d.set_item("type", "waiting")?;
                d.set_item("seconds", since.as_secs_f64())?;
                d.set_item("pause_seconds", pause.map(|p| p.seconds))?;
            }
        }
        Ok(d)
    }

    /// Writes the session's record (volumes.tsv, session.json, and with events the
    /// reconstruction folders) and returns its summary as JSON. The session is closed after.
    fn finish(&self, py: Python<'_>) -> PyResult<String> {
        let session = self
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| errors::value("the session has already finished"))?;
        let summary = py.detach(|| session.finish()).map_err(route)?;
        json(&summary)
    }
}
