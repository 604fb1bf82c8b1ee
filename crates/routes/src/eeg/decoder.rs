//! The verbs behind `brainrecon eeg`: image embeddings of a THINGS-EEG2 layout (`embed`), a
//! decoder fitted on one subject or on all but one (`fit`), and decoders scored on their test
//! subject's held-out concepts with the mean and s.d. over subjects (`eval`).
//!
//! An embeddings folder holds `training.npy` [training images, d] and `test.npy` [test images,
//! d], float32 or float64, rows in `image_metadata.npy`'s order, and `embeddings.json`
//! naming the model. A CLIP's embeddings from the user's own script are read the same way
//! (`embeddings.json` may then be absent).
//!
//! A decoder folder holds `decoder.json` ([`DecoderMeta`]), the model (`nice/` or `atm/`, each
//! a `config.json` and `model.safetensors`, or `ridge/`), and `test_embeddings.npy`, the
//! candidates it is scored against. A NICE or ATM fit checkpoints into the folder's staging
//! copy and a rerun of the same command resumes there.
//!
//! **Zero-shot.** The scores are zero-shot only when training never saw a test concept (THINGS
//! concepts as [`things_concept`] reads them from the image names). `fit` compares the data
//! set's training and test concepts and records the training ones in
//! `training_concepts.json`; `eval` compares those with the test concepts of the data it
//! scores on. Shared concepts are refused unless `allow_seen_concepts` (`--allow-seen-concepts`:
//! a within-concept benchmark, a data set such as THINGS-EEG1 whose test concepts are also
//! trained on, on purpose); either way [`ConceptCheck`] says what was found.
//!
//! **Non-finite values** are refused naming their file: the EEG read as the decoders use it
//! (float32, each condition's repetitions averaged) and the decoded embeddings.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::eeg::embed::ImageEmbedder;
use crate::eeg::nice_train::{
    encode_conditions, train_nice, EegEncoder, EncoderKind, NiceTrainOptions,
};
use crate::eeg::retrieval::{zero_shot, RetrievalScores};
use crate::eeg::ridge_decoder::{RidgeDecoder, RidgeDecoderOptions};
use crate::error::{Result, RouteError};
use brainrecon_core::fs::{read_json, write_folder_atomic, write_json_atomic, OutputDir, Resume};
use brainrecon_core::progress::bar;
use brainrecon_core::stats::mean_std;
use brainrecon_core::DataError;
use brainrecon_datasets::things_eeg2::{
    ImageEntry, ImageMetadata, PreprocessedEeg, Split, ThingsEeg2,
};
use brainrecon_datasets::things_meg::things_concept;
use brainrecon_formats::npy;
use brainrecon_ridge::RidgeModel;
use serde::{Deserialize, Serialize};

const EMBEDDINGS_FORMAT: &str = "brainrecon-eeg-embeddings-1";
const DECODER_FORMAT: &str = "brainrecon-eeg-decoder-1";
const DECODER_FILE: &str = "decoder.json";
const SETTINGS_FILE: &str = "settings.json";
const CANDIDATES_FILE: &str = "test_embeddings.npy";
const CONCEPTS_FILE: &str = "training_concepts.json";
const CONCEPTS_FORMAT: &str = "brainrecon-eeg-training-concepts-1";

/// `training_concepts.json`: the THINGS concepts of a decoder's training images.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct TrainingConcepts {
    format: String,
    /// Sorted, each once.
    concepts: Vec<String>,
    /// Training images whose names tell no concept.
    unknown_images: usize,
}

/// Whether a decoder's training concepts and the test concepts it is scored on are disjoint
/// (zero-shot); see the module documentation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConceptCheck {
    /// False when nothing could be compared: no image name told its concept, or the decoder
    /// has no `training_concepts.json` (fitted before it was written).
    pub checked: bool,
    /// Distinct concepts of the training images.
    pub training_concepts: usize,
    /// Distinct concepts of the test images scored.
    pub test_concepts: usize,
    /// Concepts of both halves; 0 for a zero-shot score.
    pub shared: usize,
    /// Up to 10 of them.
    pub shared_examples: Vec<String>,
    /// Images (of both halves) whose names tell no concept: not compared.
    pub unknown_images: usize,
    /// True when `--allow-seen-concepts` let shared concepts through: the scores are then not
    /// zero-shot.
    pub overlap_allowed: bool,
}

/// The concepts of `entries` ([`things_concept`]) and how many told none.
fn concepts_of(entries: &[ImageEntry]) -> (BTreeSet<String>, usize) {
    let mut unknown = 0;
    let concepts = entries
        .iter()
        .filter_map(|e| {
            let c = things_concept(e);
            unknown += c.is_none() as usize;
            c
        })
        .collect();
    (concepts, unknown)
}

/// Compares `training` with `test` concepts; refuses shared ones unless `allow`, naming
/// `training_source` and `test_source` (the files the concepts came from) and some of them.
fn check_concepts(
    training: &BTreeSet<String>,
    test: &BTreeSet<String>,
    unknown_images: usize,
    allow: bool,
    training_source: &str,
    test_source: &str,
) -> Result<ConceptCheck> {
    let shared: Vec<&String> = training.intersection(test).collect();
    let check = ConceptCheck {
        checked: !training.is_empty() && !test.is_empty(),
        training_concepts: training.len(),
        test_concepts: test.len(),
        shared: shared.len(),
        shared_examples: shared.iter().take(10).map(|c| c.to_string()).collect(),
        unknown_images,
        overlap_allowed: allow && !shared.is_empty(),
    };
    if !shared.is_empty() && !allow {
        let more = if shared.len() > 10 { ", …" } else { "" };
        return Err(RouteError::Usage(format!(
            "{training_source} and {test_source} share {} of {} test concepts ({}{more}): a \
             zero-shot score needs test concepts that training never saw. Leave the training \
             images of those concepts out (as `eeg meg-prepare` does), or pass \
             --allow-seen-concepts to accept scores that are not zero-shot",
            shared.len(),
            test.len(),
            check.shared_examples.join(", ")
        )));
    }
    Ok(check)
}

/// The first non-finite value of `eeg` as the decoders read it (each epoch, then each
/// condition's mean over its repetitions, which can overflow float32 though every epoch is
/// finite), refused naming `paths` (the files it was read from; several when pooled, each
/// holding `eeg.repetitions / paths.len()` of every condition's repetitions in order).
pub(crate) fn require_finite_eeg(eeg: &PreprocessedEeg, paths: &[PathBuf]) -> Result<()> {
    let field = "preprocessed_eeg_data";
    let expected = "finite values within float32's range (±3.4e38), also each image \
                    condition's mean over its repetitions";
    let per_file = (eeg.repetitions / paths.len().max(1)).max(1);
    let file = |r: usize| paths.get(r / per_file).or(paths.first()).cloned();
    for c in 0..eeg.conditions {
        for r in 0..eeg.repetitions {
            if let Some(v) = eeg.epoch(c, r).iter().find(|v| !v.is_finite()) {
                let found = format!("{v} in image condition {c}, repetition {}", r % per_file);
                return Err(match file(r) {
                    Some(path) => DataError::invalid(path, field, expected, found).into(),
                    None => RouteError::Usage(format!("EEG: expected {expected}, found {found}")),
                });
            }
        }
        if let Some(v) = eeg.condition_mean(c).iter().find(|v| !v.is_finite()) {
            let files: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            return Err(RouteError::Usage(format!(
                "{}: {field}: expected {expected}, found {v} in the mean of image condition {c} \
                 over its {} repetitions (values too large for float32)",
                files.join(", "),
                eeg.repetitions
            )));
        }
    }
    Ok(())
}

/// `embeddings.json`: where an embeddings folder's rows come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsMeta {
    /// Always `brainrecon-eeg-embeddings-1`.
    pub format: String,
    /// The image model (`shapes-blip`, a folder), or `user` for files without this record.
    pub model: String,
    /// The model folder's fingerprint (empty for `user`).
    pub fingerprint: String,
    /// d: values per embedding.
    pub width: usize,
    /// Rows of `training.npy`: the training images.
    pub training: usize,
    /// Rows of `test.npy`: the test images.
    pub test: usize,
}

impl EmbeddingsMeta {
    /// As `eeg embed` prints it: the images embedded, by which model, and the folder `out`.
    pub fn text(&self, out: &Path) -> String {
        format!(
            "{} training and {} test images embedded by {} ({} wide): {}",
            self.training,
            self.test,
            self.model,
            self.width,
            out.display()
        )
    }
}

/// `brainrecon eeg embed`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct EmbedRequest {
    /// The THINGS-EEG2 root (its `image_set`).
    #[cfg_attr(feature = "cli", arg(long, help = "The THINGS-EEG2 folder"))]
    pub data: PathBuf,
    /// `shapes-blip` or a BLIP folder.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value = "shapes-blip",
            help = "shapes-blip or a BLIP folder"
        )
    )]
    pub model: String,
    /// The embeddings folder to write.
    #[cfg_attr(feature = "cli", arg(long))]
    pub out: PathBuf,
    /// Images per forward pass.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 64))]
    pub batch: usize,
    /// Draw a progress bar.
    #[cfg_attr(feature = "cli", arg(skip))]
    pub progress: bool,
}

/// Embeds every training and test image of the data set and writes the folder (atomically).
pub fn embed_images(request: &EmbedRequest) -> Result<EmbeddingsMeta> {
    let set = ThingsEeg2::open(&request.data)?;
    let metadata = set.image_metadata()?;
    let embedder = ImageEmbedder::load(&request.model)?;
    let d = embedder.width();
    let batch = request.batch.max(1);
    let mut halves = Vec::new();
    for split in [Split::Training, Split::Test] {
        let paths = set.image_paths(&metadata, split)?;
        let label = match split {
            Split::Training => "training images",
            Split::Test => "test images",
        };
        let progress = bar(paths.len() as u64, label, request.progress);
        let mut rows = Vec::with_capacity(paths.len() * d);
        for chunk in paths.chunks(batch) {
            rows.extend(embedder.embed(chunk, batch)?);
            progress.inc(chunk.len() as u64);
        }
        progress.finish_and_clear();
        halves.push(rows);
    }
    let meta = EmbeddingsMeta {
        format: EMBEDDINGS_FORMAT.into(),
        model: request.model.clone(),
        fingerprint: embedder.fingerprint().to_string(),
        width: d,
        training: metadata.training.len(),
        test: metadata.test.len(),
    };
    write_folder_atomic(&request.out, |dir| -> Result<()> {
        npy::write(&dir.join("training.npy"), &[meta.training, d], &halves[0])?;
        npy::write(&dir.join("test.npy"), &[meta.test, d], &halves[1])?;
        write_json_atomic(&dir.join("embeddings.json"), &meta)?;
        Ok(())
    })?;
    Ok(meta)
}

/// An embeddings folder read and checked against the data set's images.
pub struct ImageEmbeddings {
    /// `embeddings.json`, or a `user` record when the folder has none.
    pub meta: EmbeddingsMeta,
    /// [training images, width].
    pub training: Vec<f32>,
    /// [test images, width].
    pub test: Vec<f32>,
}

/// Reads `dir` (see the module documentation): each file must hold one finite row per image
/// of `metadata`'s half, both of one width.
pub fn read_embeddings(dir: &Path, metadata: &ImageMetadata) -> Result<ImageEmbeddings> {
    let record = dir.join("embeddings.json");
    let mut halves = Vec::new();
    let mut width = None;
    for (split, name) in [(Split::Training, "training.npy"), (Split::Test, "test.npy")] {
        let path = dir.join(name);
        let array = npy::read_f32(&path)?;
        let images = metadata.of(split).len();
        let found = format!("shape {:?}", array.shape);
        let expected = match width {
            Some(d) => format!("[{images}, {d}]: one row per image, as wide as training.npy"),
            None => format!("[{images}, d]: one row per image of image_metadata.npy"),
        };
        match array.shape[..] {
            [rows, d] if rows == images && d > 0 && width.is_none_or(|w| w == d) => {
                width = Some(d);
            }
            _ => return Err(DataError::invalid(&path, "shape", expected, found).into()),
        }
        npy::require_finite(&path, &array.data, array.shape[1], "finite embeddings")?;
        halves.push(array.data);
    }
    let width = width.unwrap_or(0);
    let meta = if record.is_file() {
        let meta: EmbeddingsMeta = read_json(&record)?;
        if meta.width != width {
            return Err(DataError::invalid(
                &record,
                "width",
                format!("the files' width {width}"),
                meta.width.to_string(),
            )
            .into());
        }
        meta
    } else {
        EmbeddingsMeta {
            format: EMBEDDINGS_FORMAT.into(),
            model: "user".into(),
            fingerprint: String::new(),
            width,
            training: metadata.training.len(),
            test: metadata.test.len(),
        }
    };
    let test = halves.pop().unwrap_or_default();
    let training = halves.pop().unwrap_or_default();
    Ok(ImageEmbeddings {
        meta,
        training,
        test,
    })
}

/// The decoders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EegMethod {
    /// Ridge from the epoch's samples (the papers' linear baseline).
    Ridge,
    /// NICE's contrastive encoder.
    Nice,
    /// ATM's: NICE's encoder behind a channel-attention Transformer.
    Atm,
}

impl EegMethod {
    /// Every method, in the order `--method` lists them.
    pub const ALL: [EegMethod; 3] = [EegMethod::Nice, EegMethod::Atm, EegMethod::Ridge];

    /// The name on the command line and in decoder.json.
    pub fn name(self) -> &'static str {
        match self {
            EegMethod::Ridge => "ridge",
            EegMethod::Nice => "nice",
            EegMethod::Atm => "atm",
        }
    }

    /// The contrastive encoder behind the method, if it is one.
    pub fn encoder(self) -> Option<EncoderKind> {
        match self {
            EegMethod::Ridge => None,
            EegMethod::Nice => Some(EncoderKind::Nice),
            EegMethod::Atm => Some(EncoderKind::Atm),
        }
    }
}

impl std::str::FromStr for EegMethod {
    type Err = String;

    /// `ridge`, `nice` or `atm`.
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == text)
            .ok_or_else(|| format!("expected ridge, nice or atm, found '{text}'"))
    }
}

/// Whose data train the decoder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Training {
    /// The subject's own training half; scored on its test half.
    Subject(String),
    /// Every other subject's training half, pooled; scored on this subject's test half
    /// (leave one subject out).
    LeaveOut(String),
}

impl Training {
    /// The subject scored.
    pub fn test_subject(&self) -> &str {
        match self {
            Training::Subject(s) | Training::LeaveOut(s) => s,
        }
    }
}

/// `brainrecon eeg fit`.
#[derive(Clone, Debug)]
pub struct EegFitRequest {
    /// The THINGS-EEG2 root.
    pub data: PathBuf,
    /// Whose data train the decoder, and the subject it is scored on.
    pub training: Training,
    /// The decoder.
    pub method: EegMethod,
    /// The embeddings folder ([`embed_images`], or the user's).
    pub embeddings: PathBuf,
    /// The decoder folder to write.
    pub out: PathBuf,
    /// NICE and ATM training settings (epochs, batch, learning rate, seed).
    pub nice: NiceTrainOptions,
    /// Ridge settings (window, alphas, folds).
    pub ridge: RidgeDecoderOptions,
    /// Fit even when training and test share concepts (the scores are then not zero-shot).
    pub allow_seen_concepts: bool,
    /// Draw a progress bar.
    pub progress: bool,
}

/// What a fit depends on: a rerun with the same settings resumes or finds it done.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct FitSettings {
    method: EegMethod,
    data: PathBuf,
    trained_on: Vec<String>,
    test_subject: String,
    embeddings: EmbeddingsMeta,
    epochs: usize,
    batch: usize,
    lr: f64,
    seed: u64,
    window: Option<(usize, usize)>,
    alphas: Vec<f64>,
    folds: usize,
    average_repetitions: bool,
}

/// `decoder.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DecoderMeta {
    /// Always `brainrecon-eeg-decoder-1`.
    pub format: String,
    /// The decoder.
    pub method: EegMethod,
    /// Subjects whose training halves were used.
    pub trained_on: Vec<String>,
    /// The subject it is scored on.
    pub test_subject: String,
    /// The data set it was fitted from.
    pub data: PathBuf,
    /// The EEG channels it reads, in order.
    pub ch_names: Vec<String>,
    /// Samples per epoch.
    pub times: usize,
    /// Seconds of the epoch's first sample from the image's onset.
    #[serde(default)]
    pub tmin: f64,
    /// The epochs' sampling rate in Hz (0 when the times were not evenly spaced).
    #[serde(default)]
    pub sfreq: f64,
    /// Samples of the epoch used (ridge).
    pub window: (usize, usize),
    /// The image embeddings it decodes into.
    pub embeddings: EmbeddingsMeta,
    /// Training conditions × repetitions pooled.
    pub training_trials: usize,
    /// NICE: the mean loss of each epoch.
    pub epoch_losses: Vec<f64>,
    /// NICE: the epoch a rerun resumed from (0: none).
    pub resumed_from: usize,
    /// Seed of NICE's and ATM's initialisation, batches and dropout (ridge draws nothing).
    pub seed: u64,
    /// Wall time of the fit, in seconds.
    pub seconds: f64,
    /// Training against test concepts of the data set fitted from (absent in decoders fitted
    /// before it was recorded).
    #[serde(default)]
    pub concepts: Option<ConceptCheck>,
}

/// What `fit` did.
#[derive(Clone, Debug, Serialize)]
pub struct EegFitReport {
    /// The decoder folder.
    pub out: PathBuf,
    /// True when the folder already held this fit.
    pub already_done: bool,
    /// Its `decoder.json`.
    pub meta: DecoderMeta,
}

impl EegFitReport {
    /// What was fitted, in one line for people.
    pub fn text(&self) -> String {
        let m = &self.meta;
        let done = if self.already_done {
            " (already done)"
        } else {
            ""
        };
        let loss = match (m.epoch_losses.first(), m.epoch_losses.last()) {
            (Some(a), Some(b)) => format!(
                ", loss {a:.3} → {b:.3} over {} epochs",
                m.epoch_losses.len()
            ),
            _ => String::new(),
        };
        let concepts = match &m.concepts {
            Some(c) if c.overlap_allowed => format!(
                "; NOT zero-shot: {} test concepts also trained on (allowed)",
                c.shared
            ),
            Some(c) if c.checked => format!(
                "; zero-shot: none of the {} test concepts trained on",
                c.test_concepts
            ),
            _ => "; concepts not checked (the image names tell none)".into(),
        };
        format!(
            "{} decoder of {} trained on {} ({} trials, {} channels × {} \
             samples){loss}{concepts}{done}: {}",
            m.method.name(),
            m.test_subject,
            m.trained_on.join(", "),
            m.training_trials,
            m.ch_names.len(),
            m.times,
            self.out.display()
        )
    }
}

/// The subjects a [`Training`] pools, checked against the data set's.
fn subjects_of(set: &ThingsEeg2, training: &Training) -> Result<Vec<String>> {
    let all = set.subjects()?;
    let subject = training.test_subject();
    if !all.iter().any(|s| s == subject) {
        return Err(DataError::invalid(
            &set.preprocessed,
            "subject",
            format!("one of {}", all.join(", ")),
            subject,
        )
        .into());
    }
    Ok(match training {
        Training::Subject(s) => vec![s.clone()],
        Training::LeaveOut(s) => {
            let others: Vec<String> = all.into_iter().filter(|o| o != s).collect();
            if others.is_empty() {
                return Err(RouteError::Usage(format!(
                    "--leave-out {s}: the data set has no other subject to train on"
                )));
            }
            others
        }
    })
}

/// Each training image's concept as its index among the sorted concept names (the folds of
/// ridge's cross-validation group them).
pub(crate) fn concept_groups(metadata: &ImageMetadata) -> Vec<i64> {
    let mut names: Vec<&str> = metadata
        .training
        .iter()
        .map(|e| e.concept.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    metadata
        .training
        .iter()
        .map(|e| names.binary_search(&e.concept.as_str()).unwrap_or(0) as i64)
        .collect()
}

/// Fits a decoder into `request.out` (see the module documentation).
pub fn fit(
    request: &EegFitRequest,
    mut each_epoch: impl FnMut(usize, f64),
) -> Result<EegFitReport> {
    let started = Instant::now();
    let set = ThingsEeg2::open(&request.data)?;
    let metadata = set.image_metadata()?;
    let embeddings = read_embeddings(&request.embeddings, &metadata)?;
    let trained_on = subjects_of(&set, &request.training)?;
    let paths: Vec<PathBuf> = trained_on
        .iter()
        .map(|s| set.preprocessed_path(s, Split::Training))
        .collect();
    let test_path = set.preprocessed_path(request.training.test_subject(), Split::Test);
    let metadata_path = set.images.join("image_metadata.npy");
    let (training_concepts, unknown_training) = concepts_of(&metadata.training);
    let (test_concepts, unknown_test) = concepts_of(&metadata.test);
    let concepts = check_concepts(
        &training_concepts,
        &test_concepts,
        unknown_training + unknown_test,
        request.allow_seen_concepts,
        &format!(
            "the training images ({}) of {}",
            paths[0].display(),
            metadata_path.display()
        ),
        &format!("its test images ({})", test_path.display()),
    )?;
    let window = request.ridge.window.clone();
    let settings = FitSettings {
        method: request.method,
        data: request.data.clone(),
        trained_on: trained_on.clone(),
        test_subject: request.training.test_subject().to_string(),
        embeddings: embeddings.meta.clone(),
        epochs: request.nice.epochs,
        batch: request.nice.batch,
        lr: request.nice.lr,
        seed: request.nice.seed,
        window: window.as_ref().map(|w| (w.start, w.end)),
        alphas: request.ridge.alphas.clone(),
        folds: request.ridge.folds,
        average_repetitions: request.ridge.average_repetitions,
    };
    let dir = match OutputDir::resume_if(&request.out, SETTINGS_FILE, DECODER_FILE, &settings)? {
        Resume::Finished(out) => {
            let meta: DecoderMeta = read_json(&out.join(DECODER_FILE))?;
            return Ok(EegFitReport {
                out,
                already_done: true,
                meta,
            });
        }
        Resume::Resumed(dir) => (dir, false),
        Resume::Fresh(dir) => (dir, true),
    };
    let (dir, fresh) = dir;
    let staging = dir.path().to_path_buf();
    // A refusal of the inputs leaves nothing behind: a staging folder this run made is removed
    // (an interrupted run's, with its checkpoints, is kept for the next try).
    let fitted = fit_into(
        request,
        &set,
        FitInputs {
            metadata: &metadata,
            metadata_path: &metadata_path,
            embeddings,
            trained_on,
            paths: &paths,
            training_concepts,
            unknown_training,
            concepts,
            started,
        },
        &staging,
        &mut each_epoch,
    );
    let meta = match fitted {
        Ok(meta) => meta,
        Err(e) => {
            if fresh {
                dir.abort();
            }
            return Err(e);
        }
    };
    let out = dir.commit()?;
    Ok(EegFitReport {
        out,
        already_done: false,
        meta,
    })
}

/// What [`fit`] read and checked before its output folder was opened.
struct FitInputs<'a> {
    metadata: &'a ImageMetadata,
    metadata_path: &'a Path,
    embeddings: ImageEmbeddings,
    trained_on: Vec<String>,
    paths: &'a [PathBuf],
    training_concepts: BTreeSet<String>,
    unknown_training: usize,
    concepts: ConceptCheck,
    started: Instant,
}

/// The fit itself, written into `staging`: reads the training EEG, fits, and writes the
/// decoder's files; returns the decoder's record (written last).
fn fit_into(
    request: &EegFitRequest,
    set: &ThingsEeg2,
    inputs: FitInputs<'_>,
    staging: &Path,
    each_epoch: &mut impl FnMut(usize, f64),
) -> Result<DecoderMeta> {
    let FitInputs {
        metadata,
        metadata_path,
        embeddings,
        trained_on,
        paths,
        training_concepts,
        unknown_training,
        concepts,
        started,
    } = inputs;
    let parts = trained_on
        .iter()
        .map(|s| set.read_preprocessed(s, Split::Training))
        .collect::<brainrecon_core::Result<Vec<_>>>()?;
    for (part, path) in parts.iter().zip(paths) {
        require_finite_eeg(part, std::slice::from_ref(path))?;
    }
    let train = PreprocessedEeg::stack_repetitions(&parts, paths)?;
    drop(parts);
    // The pooled means too (several subjects' repetitions averaged).
    require_finite_eeg(&train, paths)?;
    if train.conditions != metadata.training.len() {
        return Err(DataError::invalid(
            &paths[0],
            "preprocessed_eeg_data",
            format!(
                "one condition per training image of image_metadata.npy ({})",
                metadata.training.len()
            ),
            format!("{} conditions", train.conditions),
        )
        .into());
    }
    let d = embeddings.meta.width;
    let (window, epoch_losses, resumed_from) = match request.method {
        EegMethod::Ridge => {
            let groups = concept_groups(metadata);
            let distinct = groups.iter().collect::<BTreeSet<_>>().len();
            let folds = request.ridge.folds;
            if folds < 2 || folds > distinct {
                return Err(DataError::invalid(
                    metadata_path,
                    "training concepts (the folds of ridge's cross-validation)",
                    format!(
                        "at least {} training concepts: ridge chooses its penalty by \
                         {folds}-fold cross-validation with the folds grouped by concept",
                        folds.max(2)
                    ),
                    format!("{distinct} concept folders"),
                )
                .into());
            }
            let decoder =
                RidgeDecoder::fit(&train, &embeddings.training, d, &groups, &request.ridge)?;
            decoder.model.save(staging.join("ridge"))?;
            (decoder.window, Vec::new(), 0)
        }
        EegMethod::Nice | EegMethod::Atm => {
            let kind = request.method.encoder().unwrap_or(EncoderKind::Nice);
            let work = staging.join("checkpoints");
            let label = format!("{} epochs", kind.name());
            let progress = bar(request.nice.epochs as u64, &label, request.progress);
            let trained = train_nice(
                kind,
                &train,
                &embeddings.training,
                d,
                &request.nice,
                Some(&work),
                |epoch, loss| {
                    progress.set_position(epoch as u64);
                    each_epoch(epoch, loss);
                },
            )?;
            progress.finish_and_clear();
            trained
                .encoder
                .save(&trained.parameters, &staging.join(request.method.name()))?;
            let _ = std::fs::remove_dir_all(&work);
            (
                0..train.times.len(),
                trained.epoch_losses,
                trained.resumed_from,
            )
        }
    };
    npy::write(
        &staging.join(CANDIDATES_FILE),
        &[embeddings.meta.test, d],
        &embeddings.test,
    )?;
    write_json_atomic(
        &staging.join(CONCEPTS_FILE),
        &TrainingConcepts {
            format: CONCEPTS_FORMAT.into(),
            concepts: training_concepts.into_iter().collect(),
            unknown_images: unknown_training,
        },
    )?;
    let meta = DecoderMeta {
        format: DECODER_FORMAT.into(),
        method: request.method,
        trained_on,
        test_subject: request.training.test_subject().to_string(),
        data: request.data.clone(),
        ch_names: train.ch_names.clone(),
        times: train.times.len(),
        tmin: train.times.first().copied().unwrap_or(0.0),
        sfreq: train.sampling_rate(),
        window: (window.start, window.end),
        embeddings: embeddings.meta,
        training_trials: train.conditions * train.repetitions,
        epoch_losses,
        resumed_from,
        seed: request.nice.seed,
        seconds: started.elapsed().as_secs_f64(),
        concepts: Some(concepts),
    };
    write_json_atomic(&staging.join(DECODER_FILE), &meta)?;
    Ok(meta)
}

/// A fitted decoder loaded from its folder.
pub struct EegDecoder {
    /// The decoder folder.
    pub dir: PathBuf,
    /// Its `decoder.json`.
    pub meta: DecoderMeta,
    model: Model,
    /// [test images, d].
    pub candidates: Vec<f32>,
}

enum Model {
    Ridge(Box<RidgeDecoder>),
    Encoder(EegEncoder),
}

impl EegDecoder {
    /// Loads the decoder folder `dir`: `decoder.json`, its model and the candidates.
    ///
    /// # Errors
    /// A `format` other than the decoder's, a ridge window outside the epoch, or candidates whose
    /// shape is not `[test images, d]`.
    pub fn open(dir: &Path) -> Result<Self> {
        let record = dir.join(DECODER_FILE);
        let meta: DecoderMeta = read_json(&record)?;
        if meta.format != DECODER_FORMAT {
            return Err(DataError::invalid(&record, "format", DECODER_FORMAT, &meta.format).into());
        }
        let model = match meta.method {
            EegMethod::Ridge => {
                let model = RidgeModel::load(dir.join("ridge"))?;
                let (start, end) = meta.window;
                if start >= end || end > meta.times {
                    return Err(DataError::invalid(
                        &record,
                        "window",
                        format!("samples within 0..{}", meta.times),
                        format!("{start}..{end}"),
                    )
                    .into());
                }
                Model::Ridge(Box::new(RidgeDecoder {
                    model,
                    window: start..end,
                    channels: meta.ch_names.len(),
                    times: meta.times,
                }))
            }
            EegMethod::Nice | EegMethod::Atm => {
                let kind = meta.method.encoder().unwrap_or(EncoderKind::Nice);
                Model::Encoder(EegEncoder::load(kind, &dir.join(meta.method.name()))?)
            }
        };
        let path = dir.join(CANDIDATES_FILE);
        let candidates = npy::read_f32(&path)?;
        if candidates.shape.len() != 2 || candidates.shape[1] != meta.embeddings.width {
            return Err(DataError::invalid(
                &path,
                "shape",
                format!("[test images, {}]", meta.embeddings.width),
                format!("{:?}", candidates.shape),
            )
            .into());
        }
        Ok(EegDecoder {
            dir: dir.to_path_buf(),
            meta,
            model,
            candidates: candidates.data,
        })
    }

    /// Decoded embeddings [conditions, d] of `eeg`, each condition from its repetitions'
    /// average.
    pub fn decode(&self, eeg: &PreprocessedEeg) -> Result<Vec<f32>> {
        if eeg.ch_names != self.meta.ch_names || eeg.times.len() != self.meta.times {
            return Err(RouteError::Usage(format!(
                "{}: fitted on {} channels × {} samples ({}), given {} × {} ({})",
                self.dir.display(),
                self.meta.ch_names.len(),
                self.meta.times,
                self.meta.ch_names.join(","),
                eeg.channels(),
                eeg.times.len(),
                eeg.ch_names.join(",")
            )));
        }
        match &self.model {
            Model::Ridge(ridge) => ridge.predict(eeg),
            Model::Encoder(encoder) => encode_conditions(encoder, eeg),
        }
    }
}

/// `brainrecon eeg eval`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct EegEvalRequest {
    /// The THINGS-EEG2 root holding the test subjects' data.
    #[cfg_attr(feature = "cli", arg(long, help = "The THINGS-EEG2 folder"))]
    pub data: PathBuf,
    /// Decoder folders, each scored on its own test subject.
    #[cfg_attr(
        feature = "cli",
        arg(
            long = "decoder",
            required = true,
            help = "A decoder folder (repeat): each is scored on its own test subject"
        )
    )]
    pub decoders: Vec<PathBuf>,
    /// k of the k-way scores; None: 2, 4, 10 and 50 where there are that many test images.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_delimiter = ',',
            help = "k of the k-way scores, comma-separated"
        )
    )]
    pub ways: Option<Vec<usize>>,
    /// Draws per trial of each k-way score.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 100,
            help = "Draws of distractors per trial for each k-way score"
        )
    )]
    pub draws: usize,
    /// Seed of the k-way draws.
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 0, help = "Seed of the distractor draws")
    )]
    pub seed: u64,
    /// Where to write the report's JSON (atomically), if anywhere.
    #[cfg_attr(
        feature = "cli",
        arg(long, help = "Also write the scores to this JSON file")
    )]
    pub out: Option<PathBuf>,
    /// Score even when a decoder's training concepts include test concepts (not zero-shot).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "Score even a decoder whose training concepts include test concepts (refused otherwise: not zero-shot); the scores say so"
        )
    )]
    pub allow_seen_concepts: bool,
}

/// One decoder's scores.
#[derive(Clone, Debug, Serialize)]
pub struct DecoderScores {
    /// The decoder folder.
    pub decoder: PathBuf,
    /// Its method.
    pub method: EegMethod,
    /// The test subject scored.
    pub subject: String,
    /// The subjects whose training halves trained it.
    pub trained_on: Vec<String>,
    /// Zero-shot retrieval among the test images: top-1, top-5 and k-way.
    pub scores: RetrievalScores,
    /// The decoder's training concepts against the test concepts scored.
    pub concepts: ConceptCheck,
    /// Decoding time per test trial (its repetitions' average, all decoded in one batch).
    pub ms_per_trial: f64,
}

/// A mean and s.d. over decoders (population s.d., numpy's default).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct MeanSd {
    /// Mean over the decoders.
    pub mean: f64,
    /// Population s.d. over the decoders.
    pub sd: f64,
}

impl MeanSd {
    fn of(values: impl Iterator<Item = f64>) -> Self {
        let (mean, sd) = mean_std(&values.collect::<Vec<_>>());
        MeanSd { mean, sd }
    }
}

/// The mean and s.d. of the decoders of one method and setting.
#[derive(Clone, Debug, Serialize)]
pub struct GroupSummary {
    /// The decoders' method.
    pub method: EegMethod,
    /// `within` (trained on the test subject) or `leave-one-out` (on the others).
    pub setting: String,
    /// Decoders (subjects) summarised.
    pub n: usize,
    /// Top-1 accuracy (fraction) over the decoders.
    pub top1: MeanSd,
    /// Top-5 accuracy (fraction) over the decoders.
    pub top5: MeanSd,
    /// (k, mean and s.d. of the k-way top-1), where every decoder has the same k.
    pub ways: Vec<(usize, MeanSd)>,
}

impl DecoderScores {
    fn setting(&self) -> &'static str {
        match self.trained_on.as_slice() {
            [one] if *one == self.subject => "within",
            _ => "leave-one-out",
        }
    }
}

/// The scores of every decoder and their summaries.
#[derive(Clone, Debug, Serialize)]
pub struct EegEvalReport {
    /// One per decoder, in the order given.
    pub rows: Vec<DecoderScores>,
    /// Per method and setting, in the order first met.
    pub summaries: Vec<GroupSummary>,
    /// Chance top-1: 1/n over n test images.
    pub chance_top1: f64,
    /// Chance top-5: 5/n.
    pub chance_top5: f64,
}

impl EegEvalReport {
    /// The summary of `method` in `setting` (`within`, `leave-one-out`).
    pub fn summary(&self, method: EegMethod, setting: &str) -> Option<&GroupSummary> {
        self.summaries
            .iter()
            .find(|s| s.method == method && s.setting == setting)
    }

    /// A table: one row per decoder, then mean ± s.d. per method and setting.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let pct = |v: f64| format!("{:.1}", 100.0 * v);
        let mut text = String::new();
        let n = self.rows.first().map_or(0, |r| r.scores.n);
        let ks: Vec<usize> = self
            .rows
            .first()
            .map(|r| r.scores.ways.iter().map(|w| w.k).collect())
            .unwrap_or_default();
        let mut header = format!(
            "{:<8} {:<6} {:<14} {:>11} {:>11}",
            "subject", "method", "setting", "top-1", "top-5"
        );
        for k in &ks {
            let _ = write!(header, " {:>11}", format!("{k}-way"));
        }
        let _ = writeln!(text, "{header}  ms/trial   ({n} test images; %)");
        for r in &self.rows {
            let mut line = format!(
                "{:<8} {:<6} {:<14} {:>11} {:>11}",
                r.subject,
                r.method.name(),
                r.setting(),
                pct(r.scores.top1),
                pct(r.scores.top5)
            );
            for w in &r.scores.ways {
                let _ = write!(line, " {:>11}", pct(w.top1));
            }
            let _ = writeln!(text, "{line}  {:.3}", r.ms_per_trial);
        }
        let ms = |m: &MeanSd| format!("{} ± {}", pct(m.mean), pct(m.sd));
        for s in &self.summaries {
            let mut line = format!(
                "{:<8} {:<6} {:<14} {:>11} {:>11}",
                format!("mean({})", s.n),
                s.method.name(),
                s.setting,
                ms(&s.top1),
                ms(&s.top5)
            );
            for (_, m) in &s.ways {
                let _ = write!(line, " {:>11}", ms(m));
            }
            let _ = writeln!(text, "{line}");
        }
        let _ = write!(
            text,
            "chance: top-1 {}, top-5 {}",
            pct(self.chance_top1),
            pct(self.chance_top5)
        );
        for k in &ks {
            let _ = write!(text, ", {k}-way {}", pct(1.0 / *k as f64));
        }
        let _ = write!(text, " (ties count against the match)");
        for r in &self.rows {
            if r.concepts.overlap_allowed {
                let _ = write!(
                    text,
                    "\nNOT zero-shot: {} trained on {} of the {} test concepts (allowed by \
                     --allow-seen-concepts)",
                    r.decoder.display(),
                    r.concepts.shared,
                    r.concepts.test_concepts
                );
            } else if !r.concepts.checked {
                let _ = write!(
                    text,
                    "\nconcepts not checked for {}: no training_concepts.json, or image names \
                     that tell no concept",
                    r.decoder.display()
                );
            }
        }
        text
    }
}

/// Mean ± s.d. per (method, setting).
fn summarise(rows: &[DecoderScores]) -> Vec<GroupSummary> {
    let mut keys: Vec<(EegMethod, &str)> = Vec::new();
    for r in rows {
        if !keys.contains(&(r.method, r.setting())) {
            keys.push((r.method, r.setting()));
        }
    }
    keys.into_iter()
        .map(|(method, setting)| {
            let group: Vec<&DecoderScores> = rows
                .iter()
                .filter(|r| r.method == method && r.setting() == setting)
                .collect();
            let ks: Vec<usize> = group[0].scores.ways.iter().map(|w| w.k).collect();
            let same = group
                .iter()
                .all(|r| r.scores.ways.iter().map(|w| w.k).eq(ks.iter().copied()));
            let ways = match same {
                true => ks
                    .iter()
                    .enumerate()
                    .map(|(i, &k)| (k, MeanSd::of(group.iter().map(|r| r.scores.ways[i].top1))))
                    .collect(),
                false => Vec::new(),
            };
            GroupSummary {
                method,
                setting: setting.to_string(),
                n: group.len(),
                top1: MeanSd::of(group.iter().map(|r| r.scores.top1)),
                top5: MeanSd::of(group.iter().map(|r| r.scores.top5)),
                ways,
            }
        })
        .collect()
}

/// Scores each decoder on its test subject's test half (see [`crate::eeg::retrieval`]).
pub fn evaluate(request: &EegEvalRequest) -> Result<EegEvalReport> {
    if request.decoders.is_empty() {
        return Err(RouteError::Usage(
            "--decoder: give at least one decoder folder".into(),
        ));
    }
    let set = ThingsEeg2::open(&request.data)?;
    let metadata_path = set.images.join("image_metadata.npy");
    // The test concepts, when the data set names its images.
    let (test_concepts, unknown_test) = match metadata_path.is_file() {
        true => concepts_of(&set.image_metadata()?.test),
        false => (BTreeSet::new(), 0),
    };
    let mut rows = Vec::with_capacity(request.decoders.len());
    // Each subject's test half, read once for all the decoders scored on it.
    let mut tests: std::collections::BTreeMap<String, PreprocessedEeg> = Default::default();
    for dir in &request.decoders {
        let decoder = EegDecoder::open(dir)?;
        let subject = &decoder.meta.test_subject;
        if !tests.contains_key(subject) {
            let test = set.read_preprocessed(subject, Split::Test)?;
            tests.insert(subject.clone(), test);
        }
        let test = &tests[subject];
        let test_path = set.preprocessed_path(subject, Split::Test);
        let record = dir.join(CONCEPTS_FILE);
        let concepts = match record.is_file() {
            true => {
                let trained: TrainingConcepts = read_json(&record)?;
                check_concepts(
                    &trained.concepts.into_iter().collect(),
                    &test_concepts,
                    trained.unknown_images + unknown_test,
                    request.allow_seen_concepts,
                    &format!("the decoder's training concepts ({})", record.display()),
                    &format!(
                        "the test images ({}) of {}",
                        test_path.display(),
                        metadata_path.display()
                    ),
                )?
            }
            false => ConceptCheck::default(),
        };
        require_finite_eeg(test, std::slice::from_ref(&test_path))?;
        let d = decoder.meta.embeddings.width;
        if test.conditions * d != decoder.candidates.len() {
            return Err(DataError::invalid(
                set.preprocessed_path(&decoder.meta.test_subject, Split::Test),
                "preprocessed_eeg_data",
                format!(
                    "one condition per test image the decoder was fitted with ({})",
                    decoder.candidates.len() / d
                ),
                format!("{} conditions", test.conditions),
            )
            .into());
        }
        let ways = match &request.ways {
            Some(ways) => ways.clone(),
            None => [2, 4, 10, 50]
                .into_iter()
                .filter(|&k| k <= test.conditions)
                .collect(),
        };
        let started = Instant::now();
        let predicted = decoder.decode(test)?;
        let ms_per_trial = started.elapsed().as_secs_f64() * 1e3 / test.conditions.max(1) as f64;
        // A broken model is refused, not scored (brainrecon_metrics::rank).
        brainrecon_metrics::require_finite(
            &format!(
                "the embeddings {} decoded from {}",
                dir.display(),
                test_path.display()
            ),
            &predicted,
            d,
        )?;
        brainrecon_metrics::require_finite(
            &dir.join(CANDIDATES_FILE).display().to_string(),
            &decoder.candidates,
            d,
        )?;
        let scores = zero_shot(
            &predicted,
            &decoder.candidates,
            d,
            &ways,
            request.draws,
            request.seed,
        )?;
        rows.push(DecoderScores {
            decoder: dir.clone(),
            method: decoder.meta.method,
            subject: decoder.meta.test_subject.clone(),
            trained_on: decoder.meta.trained_on.clone(),
            scores,
            concepts,
            ms_per_trial,
        });
    }
    let report = EegEvalReport {
        summaries: summarise(&rows),
        chance_top1: rows[0].scores.chance_top1,
        chance_top5: rows[0].scores.chance_top5,
        rows,
    };
    if let Some(out) = &request.out {
        write_json_atomic(out, &report)?;
    }
    Ok(report)
}
