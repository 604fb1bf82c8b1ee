//! Per-stimulus features from a diffusion model: the VAE latent z, the CLIP text context c
//! (averaged over an image's captions) and CLIP image embeddings.
//!
//! ```text
//! <dir>/<kind>.npy                 float32 (n_images, d), rows follow stimuli/ids.npy
//! <dir>/<kind>.json                FeatureMeta: kind, model, per-stimulus shape, settings
//! <dir>/cache/<kind>/settings.json the settings the cached rows were made with
//! <dir>/cache/<kind>/<id>.npy      one stimulus, written as soon as it is computed
//! ```
//! A rerun skips cached stimuli, so an interrupted job resumes; a cache made with other
//! settings is discarded.

use crate::error::{Result, RouteError};
use crate::progress::bar;
use brainrecon_core::fs::{read_json, write_json_atomic};
use brainrecon_datasets::prepared::PreparedSubject;
use brainrecon_diffusion::pipeline::{image_from_rgb8, Posterior, StableDiffusion, Tensor};
use brainrecon_formats::image::{Filter, RgbImage};
use brainrecon_formats::npy;
use brainrecon_nn::rng::{NoiseSource, SeededNoise};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The `format` of every [`FeatureMeta`], which marks a features file.
pub const FORMAT: &str = "brainrecon-features";

/// What is computed for each stimulus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureKind {
    /// The VAE latent (U-Net scale) of the image resized to the feature size.
    Vae,
    /// The text encoder's last hidden state, averaged over the image's captions.
    ClipText,
    /// Projected CLIP image embeddings.
    ClipImage,
    /// BLIP's image tokens: after the final LayerNorm (`None`, the caption route's target), or
    /// hidden state L (0 = embeddings, L = after block L) for encoding maps.
    BlipVision(Option<u8>),
    /// BLIP's text tokens of the captions (averaged over captions), at the same layers.
    BlipText(Option<u8>),
}

/// "-lL" for a layer, "" for the final state.
fn layer_suffix(layer: Option<u8>) -> String {
    layer.map(|l| format!("-l{l}")).unwrap_or_default()
}

impl FeatureKind {
    /// The file stem and the name in metadata.
    pub fn name(self) -> String {
        match self {
            FeatureKind::Vae => "vae".into(),
            FeatureKind::ClipText => "clip-text".into(),
            FeatureKind::ClipImage => "clip-image".into(),
            FeatureKind::BlipVision(layer) => format!("blip-vision{}", layer_suffix(layer)),
            FeatureKind::BlipText(layer) => format!("blip-text{}", layer_suffix(layer)),
        }
    }

    /// Parses a kind's name (see [`FeatureKind::name`]) or an alias: `z` (vae), `c` (clip-text),
    /// `blip` (blip-vision).
    ///
    /// # Errors
    /// [`RouteError::Usage`] naming the kinds when `text` is none of them.
    pub fn parse(text: &str) -> Result<Self> {
        let blip = |rest: &str, make: fn(Option<u8>) -> FeatureKind| -> Option<FeatureKind> {
            if rest.is_empty() {
                return Some(make(None));
            }
            rest.strip_prefix("-l")?
                .parse::<u8>()
                .ok()
                .map(|l| make(Some(l)))
        };
        let parsed = match text {
            "vae" | "z" => Some(FeatureKind::Vae),
            "clip-text" | "c" => Some(FeatureKind::ClipText),
            "clip-image" => Some(FeatureKind::ClipImage),
            "blip" => Some(FeatureKind::BlipVision(None)),
            _ => text
                .strip_prefix("blip-vision")
                .and_then(|rest| blip(rest, FeatureKind::BlipVision))
                .or_else(|| {
                    text.strip_prefix("blip-text")
                        .and_then(|rest| blip(rest, FeatureKind::BlipText))
                }),
        };
        parsed.ok_or_else(|| {
            RouteError::Usage(format!(
                "feature kind: expected vae, clip-text, clip-image, blip-vision[-lL] or \
                 blip-text[-lL], found '{text}'"
            ))
        })
    }

    /// The `features` arguments that compute this kind (`--kind blip-vision --layer 9`).
    pub fn command_arguments(self) -> String {
        match self {
            FeatureKind::BlipVision(Some(l)) => format!("--kind blip-vision --layer {l}"),
            FeatureKind::BlipText(Some(l)) => format!("--kind blip-text --layer {l}"),
            other => format!("--kind {}", other.name()),
        }
    }

    /// Whether the features are of the stimuli's captions (rather than their images).
    pub fn uses_captions(self) -> bool {
        matches!(self, FeatureKind::ClipText | FeatureKind::BlipText(_))
    }
}

/// Metadata next to a feature array.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeatureMeta {
    /// Always [`FORMAT`].
    pub format: String,
    /// The kind's name ([`FeatureKind::name`]).
    pub kind: String,
    /// The model as given on the command line (folder, cache snapshot or model id).
    pub model: String,
    /// Shape of one stimulus' features, e.g. [4, 40, 40] or [77, 768].
    pub shape: Vec<usize>,
    /// Settings that change the values (image size, posterior, seed).
    pub settings: BTreeMap<String, serde_json::Value>,
    /// The prepared subject the rows belong to.
    pub subject: String,
    /// Rows in the array: the subject's images.
    pub n_images: usize,
}

impl FeatureMeta {
    /// Values per stimulus (the product of `shape`; checked when the file is read).
    pub fn width(&self) -> usize {
        self.shape.iter().product()
    }

    /// Reads `<kind>.json`, refusing a `shape` whose product overflows or is zero: every width
    /// used later comes from a checked shape.
    pub fn read(path: &Path) -> Result<FeatureMeta> {
        let meta: FeatureMeta = read_json(path)?;
        let width = meta
            .shape
            .iter()
            .try_fold(1usize, |w, &d| w.checked_mul(d))
            .filter(|&w| w > 0);
        if width.is_none() {
            return Err(RouteError::mismatch(
                path,
                "shape",
                "per-stimulus extents of at least 1 whose product fits in memory",
                format!("{:?}", meta.shape),
            ));
        }
        Ok(meta)
    }
}

/// Computes features for a batch of stimuli.
pub trait StimulusEncoder {
    /// The kind of features computed.
    fn kind(&self) -> FeatureKind;
    /// Shape of one stimulus' features.
    fn shape(&self) -> Vec<usize>;
    /// What, besides the model, determines the values (recorded and compared on resume).
    fn settings(&self) -> BTreeMap<String, serde_json::Value>;
    /// One row of `prod(shape)` values per stimulus.
    fn encode(&self, stimuli: &[Stimulus]) -> Result<Vec<Vec<f32>>>;
}

/// One stimulus: its 73k id, image and captions.
pub struct Stimulus {
    /// The 0-based 73k id.
    pub id: usize,
    /// The stimulus image as stored (NSD: 425 × 425 px).
    pub image: RgbImage,
    /// Its captions from `stimuli/captions.json` (empty when the subject has none).
    pub captions: Vec<String>,
}

/// The model's [`brainrecon_diffusion::weights::ModelDir::fingerprint`], in the settings that
/// decide whether cached features are reused (the model was just read from those files, so a
/// read error here is only reported in the value).
pub fn model_fingerprint(sd: &StableDiffusion) -> String {
    sd.root
        .fingerprint()
        .unwrap_or_else(|e| format!("unreadable: {e}"))
}

/// The size (px) at which images are encoded for z: 5/8 of the model's native size, as the
/// published code resizes NSD's 425 px images to 320 px for SD1 (512 px), on the VAE's grid.
pub fn default_latent_image_size(sd: &StableDiffusion) -> usize {
    let f = sd.vae_scale_factor();
    let size = sd.default_size() as f64 * 0.625;
    ((size / f as f64).round() as usize).max(1) * f
}

/// z: VAE posterior mean (or a sample, seeded per stimulus id) × scaling factor.
pub struct VaeFeatures<'a> {
    /// The Stable Diffusion model whose VAE encodes.
    pub sd: &'a StableDiffusion,
    /// Side (px) the image is resized to (Lanczos) before encoding; see
    /// [`default_latent_image_size`].
    pub image_size: usize,
    /// The posterior's mean (the published code) or a sample.
    pub posterior: Posterior,
    /// Seed of the posterior samples (one stream per stimulus id, see [`stream_seed`]).
    pub seed: u64,
}

impl StimulusEncoder for VaeFeatures<'_> {
    fn kind(&self) -> FeatureKind {
        FeatureKind::Vae
    }

    fn shape(&self) -> Vec<usize> {
        let h = self.image_size / self.sd.vae_scale_factor();
        vec![self.sd.vae.config.latent_channels, h, h]
    }

    fn settings(&self) -> BTreeMap<String, serde_json::Value> {
        let mut s = BTreeMap::new();
        s.insert("image_size".into(), self.image_size.into());
        s.insert("resize".into(), "lanczos".into());
        let posterior = match self.posterior {
            Posterior::Mean => "mean",
            Posterior::Sample => "sample",
        };
        s.insert("posterior".into(), posterior.into());
        if self.posterior == Posterior::Sample {
            s.insert("seed".into(), self.seed.into());
        }
        s.insert(
            "model_fingerprint".into(),
            model_fingerprint(self.sd).into(),
        );
        s
    }

    fn encode(&self, stimuli: &[Stimulus]) -> Result<Vec<Vec<f32>>> {
        let size = self.image_size;
        let mut tensors = Vec::with_capacity(stimuli.len());
        for s in stimuli {
            let image = s.image.resize_with(size, size, Filter::Lanczos);
            tensors.push(image_from_rgb8(size, size, &image.pixels, &self.sd.device)?);
        }
        let batch = Tensor::cat(&tensors, 0)?;
        let dist = self.sd.vae.encode(&batch).map_err(diffusion_module)?;
        let z = match self.posterior {
            Posterior::Mean => dist.mean.clone(),
            Posterior::Sample => {
                // One noise stream per stimulus id: the same z whatever the batching.
                let dims = dist.mean.dims()[1..].to_vec();
                let mut eps = Vec::with_capacity(stimuli.len());
                for s in stimuli {
                    let mut noise = SeededNoise::new(stream_seed(self.seed, s.id as u64, 0));
                    eps.push(noise.gaussian(&dims, &self.sd.device, dist.mean.dtype())?);
                }
                dist.sample(&Tensor::stack(&eps, 0)?)
                    .map_err(diffusion_module)?
            }
        };
        let z = self
            .sd
            .vae
            .scale_latents(&z)
            .map_err(diffusion_module)?
            .to_dtype(brainrecon_diffusion::pipeline::DType::F32)?;
        rows_of(&z)
    }
}

/// c: the text encoder's last hidden state for each caption, averaged over the captions.
pub struct ClipTextFeatures<'a> {
    /// The Stable Diffusion model whose text encoder encodes.
    pub sd: &'a StableDiffusion,
}

impl StimulusEncoder for ClipTextFeatures<'_> {
    fn kind(&self) -> FeatureKind {
        FeatureKind::ClipText
    }

    fn shape(&self) -> Vec<usize> {
        vec![
            self.sd.text_encoder.config.max_position_embeddings,
            self.sd.text_encoder.config.hidden_size,
        ]
    }

    fn settings(&self) -> BTreeMap<String, serde_json::Value> {
        let mut s = BTreeMap::new();
        s.insert("captions".into(), "mean".into());
        s.insert(
            "model_fingerprint".into(),
            model_fingerprint(self.sd).into(),
        );
        s
    }

    fn encode(&self, stimuli: &[Stimulus]) -> Result<Vec<Vec<f32>>> {
        let mut rows = Vec::with_capacity(stimuli.len());
        for s in stimuli {
            if s.captions.is_empty() {
                return Err(RouteError::Usage(format!(
                    "image {} has no captions: clip-text features need stimuli/captions.json",
                    s.id
                )));
            }
            let prompts: Vec<&str> = s.captions.iter().map(String::as_str).collect();
            let context = self.sd.encode_text(&prompts)?;
            rows.push(context.mean(0)?.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(rows)
    }
}

fn diffusion_module(e: brainrecon_nn::ModelError) -> RouteError {
    RouteError::Diffusion(e)
}

/// [B, ...] → B flattened rows.
pub fn rows_of(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    let b = t.dim(0)?;
    let flat = t.flatten_from(1)?.to_vec2::<f32>()?;
    debug_assert_eq!(flat.len(), b);
    Ok(flat)
}

/// A seed for one (stimulus, sample) stream derived from the user's seed (splitmix64 mixing,
/// so neighbouring ids give unrelated streams).
pub fn stream_seed(seed: u64, id: u64, sample: u64) -> u64 {
    let mut x =
        seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ sample.wrapping_mul(0xD1B5_4A32_D192_ED03);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Where a kind's array and metadata live in a features directory.
pub fn feature_paths(dir: &Path, kind: FeatureKind) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{}.npy", kind.name())),
        dir.join(format!("{}.json", kind.name())),
    )
}

/// What [`compute_features`] did.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureSummary {
    /// The kind's name.
    pub kind: String,
    /// The array written, `<dir>/<kind>.npy`.
    pub array: PathBuf,
    /// Shape of one stimulus' features.
    pub shape: Vec<usize>,
    /// Rows in the array.
    pub n_images: usize,
    /// Stimuli computed in this run.
    pub computed: usize,
    /// Stimuli read back from the cache.
    pub cached: usize,
}

impl FeatureSummary {
    /// The line the command prints; `seconds` since the run began.
    pub fn text(&self, seconds: f64) -> String {
        format!(
            "{} features {:?} of {} images ({} computed, {} cached) in {:.1} s → {}",
            self.kind,
            self.shape,
            self.n_images,
            self.computed,
            self.cached,
            seconds,
            self.array.display()
        )
    }
}

#[derive(Serialize, Deserialize, PartialEq)]
struct CacheSettings {
    model: String,
    shape: Vec<usize>,
    settings: BTreeMap<String, serde_json::Value>,
}

/// Computes `encoder`'s features for every stimulus of `subject` into `dir`, `batch` at a
/// time, resuming from the per-stimulus cache. `model` is recorded in the metadata.
pub fn compute_features(
    subject: &PreparedSubject,
    dir: &Path,
    model: &str,
    encoder: &dyn StimulusEncoder,
    batch: usize,
    show_progress: bool,
) -> Result<FeatureSummary> {
    let kind = encoder.kind();
    let shape = encoder.shape();
    let width: usize = shape.iter().product();
    let stimuli = subject.images()?;
    let captions = if kind.uses_captions() {
        subject.captions()?
    } else {
        BTreeMap::new()
    };
    let cache = dir.join("cache").join(kind.name());
    let settings = CacheSettings {
        model: model.to_string(),
        shape: shape.clone(),
        settings: encoder.settings(),
    };
    let settings_path = cache.join("settings.json");
    if settings_path.exists() {
        let old: Option<CacheSettings> = read_json(&settings_path).ok();
        if old.as_ref() != Some(&settings) {
            eprintln!(
                "warning: {} was made with other settings; recomputing",
                cache.display()
            );
            // Whole or gone: a removal killed after settings.json went would leave the old
            // settings' entries under the new settings.
            brainrecon_core::fs::remove_dir_atomic(&cache)?;
        }
    }
    std::fs::create_dir_all(&cache).map_err(|e| brainrecon_core::DataError::io(&cache, e))?;
    write_json_atomic(&settings_path, &settings)?;

    let cached_path = |id: usize| cache.join(format!("{id}.npy"));
    let todo: Vec<usize> = stimuli
        .ids
        .iter()
        .copied()
        .filter(|&id| !cached_path(id).exists())
        .collect();
    let cached = stimuli.ids.len() - todo.len();
    let progress = bar(
        todo.len() as u64,
        &format!("{} features", kind.name()),
        show_progress,
    );
    for chunk in todo.chunks(batch.max(1)) {
        let batch: Vec<Stimulus> = chunk
            .iter()
            .map(|&id| Stimulus {
                id,
                image: stimuli.get(id).expect("id listed in the store"),
                captions: captions.get(&id).cloned().unwrap_or_default(),
            })
            .collect();
        let rows = encoder.encode(&batch)?;
        for (s, row) in batch.iter().zip(rows) {
            assert_eq!(row.len(), width, "encoder row width");
            npy::write(&cached_path(s.id), &[width], &row)?;
        }
        progress.inc(chunk.len() as u64);
    }
    progress.finish_and_clear();

    // Assemble the array in stimuli/ids.npy order, streaming rows from the cache.
    let (array_path, meta_path) = feature_paths(dir, kind);
    let mut writer = npy::Writer::<f32>::create(&array_path, &[stimuli.ids.len(), width])?;
    for &id in &stimuli.ids {
        let path = cached_path(id);
        let row = npy::read_f32(&path)?;
        if row.data.len() != width {
            return Err(RouteError::mismatch(&path, "length", width, row.data.len()));
        }
        writer.write(&row.data)?;
    }
    writer.finish()?;
    let meta = FeatureMeta {
        format: FORMAT.into(),
        kind: kind.name(),
        model: model.into(),
        shape: shape.clone(),
        settings: settings.settings,
        subject: subject.meta.subject.clone(),
        n_images: stimuli.ids.len(),
    };
    write_json_atomic(&meta_path, &meta)?;
    Ok(FeatureSummary {
        kind: kind.name(),
        array: array_path,
        shape,
        n_images: stimuli.ids.len(),
        computed: todo.len(),
        cached,
    })
}

/// The row of each of the images `ids` in arrays whose rows follow stimuli/ids.npy; an id the
/// subject lacks is an error naming ids.npy.
fn row_indices(subject: &PreparedSubject, ids: &[usize]) -> Result<Vec<usize>> {
    let stimuli = subject.images()?.ids;
    ids.iter()
        .map(|id| {
            stimuli.binary_search(id).map_err(|_| {
                RouteError::mismatch(
                    &subject.path("stimuli/ids.npy"),
                    "ids",
                    format!("image {id}"),
                    "missing",
                )
            })
        })
        .collect()
}

/// Rows of the images `ids` from `values` ((n_images, width) row-major, rows following
/// stimuli/ids.npy), in `ids` order.
pub fn rows_for_ids(
    subject: &PreparedSubject,
    values: &[f32],
    width: usize,
    ids: &[usize],
) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(ids.len() * width);
    for row in row_indices(subject, ids)? {
        out.extend_from_slice(&values[row * width..(row + 1) * width]);
    }
    Ok(out)
}

/// The mean (summed in f64, row by row) of the rows of the images `ids`, e.g. the training
/// images' mean feature that identification centres on.
pub fn mean_of_ids(
    subject: &PreparedSubject,
    values: &[f32],
    width: usize,
    ids: &[usize],
) -> Result<Vec<f32>> {
    let mut sum = vec![0f64; width];
    for row in row_indices(subject, ids)? {
        for (s, v) in sum.iter_mut().zip(&values[row * width..(row + 1) * width]) {
            *s += *v as f64;
        }
    }
    Ok(sum
        .iter()
        .map(|s| (s / ids.len().max(1) as f64) as f32)
        .collect())
}

/// Features of one kind, checked against the subject: (meta, row-major (n_images, d)).
pub fn load_features(
    subject: &PreparedSubject,
    dir: &Path,
    kind: FeatureKind,
) -> Result<(FeatureMeta, Vec<f32>)> {
    let (meta, mapped) = load_features_mapped(subject, dir, kind)?;
    Ok((meta, mapped.as_slice().to_vec()))
}

/// [`load_features`] memory-mapped: the values stay on disk until read.
pub fn load_features_mapped(
    subject: &PreparedSubject,
    dir: &Path,
    kind: FeatureKind,
) -> Result<(FeatureMeta, npy::MappedF32)> {
    let (array_path, meta_path) = feature_paths(dir, kind);
    if !meta_path.exists() || !array_path.exists() {
        return Err(RouteError::Missing {
            path: array_path,
            what: format!(
                "{} features; compute them with `brainrecon features --subject {} {} \
                 --model MODEL`",
                kind.name(),
                subject.root.display(),
                kind.command_arguments()
            ),
        });
    }
    let meta = FeatureMeta::read(&meta_path)?;
    if meta.format != FORMAT || meta.kind != kind.name() {
        return Err(RouteError::mismatch(
            &meta_path,
            "kind",
            format!("{FORMAT} of kind {}", kind.name()),
            format!("{} of kind {}", meta.format, meta.kind),
        ));
    }
    let array = npy::MappedF32::open(&array_path)?;
    let (rows, cols) = match array.shape() {
        &[rows, cols] => (rows, cols),
        shape => {
            return Err(RouteError::mismatch(
                &array_path,
                "shape",
                "(images, width)",
                format!("{shape:?}"),
            ))
        }
    };
    let n_images = subject.stimulus_ids()?.len();
    if rows != n_images {
        return Err(RouteError::mismatch(
            &array_path,
            "rows",
            format!(
                "{n_images} rows, one per image of {} (stimuli/ids.npy)",
                subject.root.display()
            ),
            rows,
        ));
    }
    if cols != meta.width() {
        return Err(RouteError::mismatch(
            &array_path,
            "columns",
            format!(
                "{} (shape {:?} in {})",
                meta.width(),
                meta.shape,
                meta_path.display()
            ),
            cols,
        ));
    }
    Ok((meta, array))
}

/// One `brainrecon features` run: which features of which subject, with which model.
pub struct FeatureRequest {
    /// The kind (z, c, clip-image, blip-vision, blip-text).
    pub kind: FeatureKind,
    /// The model (default: shapes-ldm, or shapes-blip for the BLIP kinds).
    pub model: Option<String>,
    /// The features folder.
    pub out: PathBuf,
    /// Image side fed to the model (default: the kind's).
    pub size: Option<usize>,
    /// Sample the VAE posterior instead of its mean.
    pub sample: bool,
    /// Seed of the posterior samples.
    pub seed: u64,
    /// Images per forward pass.
    pub batch: usize,
    /// BLIP's layer: `last`, `all` or a number.
    pub layer: String,
    /// Apply BLIP's mean/std to the images.
    pub normalize: bool,
    /// The weights' precision.
    pub dtype: brainrecon_diffusion::pipeline::DType,
    /// Where the model runs.
    pub device: brainrecon_diffusion::pipeline::Device,
    /// Draw a progress bar.
    pub progress: bool,
}

/// `brainrecon features` as the command line asks for it: names checked by
/// [`features_request`].
#[derive(Debug, Clone)]
pub struct FeaturesRequest {
    /// The prepared subject.
    pub subject: PathBuf,
    /// vae, clip-text, clip-image, blip-vision or blip-text.
    pub kind: String,
    /// The model (default: shapes-ldm, or shapes-blip for the BLIP kinds).
    pub model: Option<String>,
    /// BLIP's layer: `last`, `all` or a number.
    pub layer: String,
    /// Apply BLIP's mean/std to the images.
    pub normalize: bool,
    /// The features folder (default: SUBJECT/features).
    pub out: Option<PathBuf>,
    /// Image side fed to the model (default: the kind's).
    pub size: Option<usize>,
    /// Sample the VAE posterior instead of its mean, seeded by `seed`.
    pub sample: bool,
    /// Seed of the posterior samples.
    pub seed: u64,
    /// Images per forward pass.
    pub batch: usize,
    /// Where the model runs.
    pub device: brainrecon_core::Device,
    /// The weights' precision: f32, f16, or bf16 (GPU only).
    pub dtype: brainrecon_diffusion::pipeline::DType,
    /// Draw a progress bar.
    pub progress: bool,
}

/// Checks `r`, opens its subject and computes the features, calling `each` with the summary of
/// every array written and the seconds since the start.
pub fn features_request<E: From<RouteError>>(
    r: &FeaturesRequest,
    mut each: impl FnMut(&FeatureSummary, f64) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let subject = PreparedSubject::open(&r.subject).map_err(RouteError::from)?;
    let kind = FeatureKind::parse(&r.kind)?;
    let device = crate::decode::options::open_device(r.device)?;
    let dtype = r.dtype;
    crate::decode::options::check_dtype_on(dtype, &device)?;
    let request = FeatureRequest {
        kind,
        model: r.model.clone(),
        out: r
            .out
            .clone()
            .unwrap_or_else(|| crate::decode::decoders::default_features_dir(&subject)),
        size: r.size,
        sample: r.sample,
        seed: r.seed,
        batch: r.batch,
        layer: r.layer.clone(),
        normalize: r.normalize,
        dtype,
        device,
        progress: r.progress,
    };
    let started = std::time::Instant::now();
    compute_requested(&subject, &request, |summary| {
        each(summary, started.elapsed().as_secs_f64())
    })
}

/// The layers `--layer` names for a tower of `layers` blocks: None = after the final norm.
fn blip_layers(text: &str, layers: usize) -> Result<Vec<Option<u8>>> {
    match text {
        "last" => Ok(vec![None]),
        "all" => Ok((0..=layers).map(|l| Some(l as u8)).collect()),
        n => match n.parse::<usize>() {
            Ok(l) if l <= layers => Ok(vec![Some(l as u8)]),
            _ => Err(RouteError::Usage(format!(
                "--layer: expected last, all or a layer 0..={layers} of this model, found '{n}'"
            ))),
        },
    }
}

/// Computes the requested features of `subject` (every layer asked for, for BLIP), calling
/// `each` with the summary of each array written.
// `usize::is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
#[allow(clippy::manual_is_multiple_of)]
pub fn compute_requested<E: From<RouteError>>(
    subject: &PreparedSubject,
    req: &FeatureRequest,
    mut each: impl FnMut(&FeatureSummary) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    use crate::decode::clip::ClipImageFeatures;
    let kind = req.kind;
    if matches!(kind, FeatureKind::BlipVision(_) | FeatureKind::BlipText(_)) {
        return blip_features(subject, req, each);
    }
    let model = req.model.clone().unwrap_or_else(|| "shapes-ldm".into());
    let summary = match kind {
        FeatureKind::Vae | FeatureKind::ClipText => {
            let sd =
                StableDiffusion::load(&model, req.dtype, &req.device).map_err(RouteError::from)?;
            let encoder: Box<dyn StimulusEncoder> = if kind == FeatureKind::Vae {
                let size = req.size.unwrap_or_else(|| default_latent_image_size(&sd));
                let f = sd.vae_scale_factor();
                if size == 0 || size % f != 0 {
                    return Err(RouteError::Usage(format!(
                        "--size: expected a positive multiple of {f} for this model, found {size}"
                    ))
                    .into());
                }
                Box::new(VaeFeatures {
                    sd: &sd,
                    image_size: size,
                    posterior: if req.sample {
                        Posterior::Sample
                    } else {
                        Posterior::Mean
                    },
                    seed: req.seed,
                })
            } else {
                Box::new(ClipTextFeatures { sd: &sd })
            };
            compute_features(
                subject,
                &req.out,
                &model,
                encoder.as_ref(),
                req.batch,
                req.progress,
            )?
        }
        FeatureKind::ClipImage => {
            let clip = ClipImageFeatures::load(&model, req.dtype, &req.device)?;
            compute_features(subject, &req.out, &model, &clip, req.batch, req.progress)?
        }
        FeatureKind::BlipVision(_) | FeatureKind::BlipText(_) => unreachable!("handled above"),
    };
    each(&summary)
}

/// BLIP features: one array per layer asked for.
// `usize::is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
#[allow(clippy::manual_is_multiple_of)]
fn blip_features<E: From<RouteError>>(
    subject: &PreparedSubject,
    req: &FeatureRequest,
    mut each: impl FnMut(&FeatureSummary) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    use crate::decode::blip::BlipFeatures;
    let name = req.model.clone().unwrap_or_else(|| "shapes-blip".into());
    let loaded = crate::decode::blip::load_captioner(&name, &req.device)?;
    let vision = matches!(req.kind, FeatureKind::BlipVision(_));
    let layers = if vision {
        loaded.model.vision_model.config.num_hidden_layers
    } else {
        loaded.model.text_decoder.config().num_hidden_layers
    };
    let image_size = req
        .size
        .unwrap_or(loaded.model.vision_model.config.image_size);
    let patch = loaded.model.vision_model.config.patch_size;
    if image_size == 0 || image_size % patch != 0 {
        return Err(RouteError::Usage(format!(
            "--size: expected a positive multiple of the patch size {patch}, found {image_size}"
        ))
        .into());
    }
    for layer in blip_layers(&req.layer, layers)? {
        let encoder = BlipFeatures {
            model: &loaded.model,
            tokenizer: &loaded.tokenizer,
            fingerprint: loaded.fingerprint.clone(),
            kind: if vision {
                FeatureKind::BlipVision(layer)
            } else {
                FeatureKind::BlipText(layer)
            },
            image_size,
            normalize: req.normalize,
            device: req.device.clone(),
        };
        encoder.validate()?;
        let summary =
            compute_features(subject, &req.out, &name, &encoder, req.batch, req.progress)?;
        each(&summary)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_feature_shape_whose_product_overflows_is_refused_naming_the_file() {
        // Found by the long fuzz run: `group prepare` summed a shape of [4, 10, 2^63 - 1].
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vae.json");
        let mut meta = serde_json::json!({
            "format": FORMAT, "kind": "vae", "model": "m", "shape": [4, 10, i64::MAX],
            "settings": {}, "subject": "subj01", "n_images": 40
        });
        std::fs::write(&path, meta.to_string()).unwrap();
        let text = FeatureMeta::read(&path).unwrap_err().to_string();
        assert!(
            text.contains("vae.json") && text.contains("shape"),
            "{text}"
        );
        meta["shape"] = serde_json::json!([4, 0, 5]);
        std::fs::write(&path, meta.to_string()).unwrap();
        assert!(FeatureMeta::read(&path).is_err());
        meta["shape"] = serde_json::json!([4, 10, 10]);
        std::fs::write(&path, meta.to_string()).unwrap();
        assert_eq!(FeatureMeta::read(&path).unwrap().width(), 400);
    }

    use super::*;

    #[test]
    fn stream_seeds_differ_by_seed_image_and_sample() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..4 {
            for id in 0..50 {
                for sample in 0..5 {
                    assert!(seen.insert(stream_seed(seed, id, sample)));
                }
            }
        }
        assert_eq!(stream_seed(42, 7, 1), stream_seed(42, 7, 1));
    }

    #[test]
    fn kinds_parse() {
        assert_eq!(FeatureKind::parse("vae").unwrap(), FeatureKind::Vae);
        assert_eq!(FeatureKind::parse("c").unwrap(), FeatureKind::ClipText);
        assert_eq!(
            FeatureKind::parse("clip-image").unwrap().name(),
            "clip-image"
        );
        assert!(FeatureKind::parse("vgg").is_err());
    }
}
