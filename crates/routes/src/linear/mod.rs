//! The linear route (Takagi & Nishimoto, CVPR 2023): ridge-decoded VAE latent z and CLIP text
//! context c drive Stable Diffusion's img2img.
//!
//! For each test image: z is VAE-decoded (the "decoded z" image), resized to the model's size
//! with Lanczos, encoded again and noised to `strength` of the schedule; DDIM then denoises it
//! conditioned on c, with classifier-free guidance against the empty prompt. The ablations are
//! `z-only` (the decoded-z image alone) and `c-only` (txt2img from c).
//!
//! ```text
//! <out>/manifest.json              Manifest: settings, decoders, model, ids, command
//! <out>/decoded/{ids,z,c}.npy      decoded features of the test images
//! <out>/decoded-z/<id>.png         VAE decode of the decoded z (linear, z-only)
//! <out>/sample-<k>/<id>.png        reconstructions k = 1..samples (linear, c-only)
//! ```
//! Every PNG is written atomically as soon as it is made and skipped on a rerun, so the job
//! resumes where it stopped. Noise for (image, sample) comes from its own seeded stream, so a
//! resumed run writes the same pixels as an uninterrupted one.

pub mod generate;
pub mod shards;

use crate::decode::decoders::Decoder;
use crate::decode::features::stream_seed;
use crate::error::{Result, RouteError};
use crate::linear::shards::{check_stop, ImageShard};
use crate::progress::bar;
use brainrecon_core::fs::{read_json, write_json_atomic};
use brainrecon_datasets::prepared::PreparedSubject;
use brainrecon_diffusion::pipeline::{
    image_from_rgb8, image_to_hwc, Conditioning, Posterior, SampleOptions, StableDiffusion, Tensor,
};
use brainrecon_diffusion::scheduler::SchedulerKind;
use brainrecon_formats::image::{read_png, write_png, Filter, RgbImage};
use brainrecon_formats::npy;
use brainrecon_nn::rng::{PerRowNoise, SeededNoise};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The `format` of a reconstruction [`Manifest`].
pub const FORMAT: &str = "brainrecon-reconstruction";

/// How a reconstruction run makes its images (`--method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// img2img from the decoded z, conditioned on the decoded c.
    Linear,
    /// The VAE decode of the decoded z alone.
    ZOnly,
    /// txt2img conditioned on the context a trained B2C encoder makes of the betas.
    B2c,
    /// txt2img conditioned on the decoded c alone.
    COnly,
    /// img2img from the decoded z, conditioned on the caption BLIP wrote from decoded tokens.
    Caption,
}

impl Method {
    /// Parses `--method`: `linear`, `z-only`, `c-only`, `b2c` or `caption`.
    ///
    /// # Errors
    /// [`RouteError::Usage`] for anything else.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "linear" => Ok(Method::Linear),
            "z-only" => Ok(Method::ZOnly),
            "c-only" => Ok(Method::COnly),
            "b2c" => Ok(Method::B2c),
            "caption" => Ok(Method::Caption),
            other => Err(RouteError::Usage(format!(
                "--method: expected linear, z-only, c-only, b2c or caption, found '{other}'"
            ))),
        }
    }

    /// The name [`Method::parse`] reads (and the manifest records).
    pub fn name(self) -> &'static str {
        match self {
            Method::Linear => "linear",
            Method::ZOnly => "z-only",
            Method::COnly => "c-only",
            Method::B2c => "b2c",
            Method::Caption => "caption",
        }
    }

    pub(crate) fn uses_z(self) -> bool {
        matches!(self, Method::Linear | Method::ZOnly | Method::Caption)
    }

    /// Whether the run samples conditioned images (sample-<k>/).
    pub(crate) fn uses_c(self) -> bool {
        matches!(
            self,
            Method::Linear | Method::COnly | Method::B2c | Method::Caption
        )
    }
}

/// Settings of a reconstruction run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReconstructOptions {
    /// The route.
    pub method: Method,
    /// Reconstructions per test image.
    pub samples: usize,
    /// Share of the schedule img2img runs (t_enc = strength × steps).
    pub strength: f64,
    /// DDIM steps of the full schedule.
    pub steps: usize,
    /// Classifier-free guidance scale (1 or below: no unconditional pass).
    pub guidance: f64,
    /// Seed of the noise; each (image, sample) draws its own stream from it.
    pub seed: u64,
    /// Re-encoding of the decoded-z image: a posterior sample (as the published code) or mean.
    pub sample_posterior: bool,
    /// Only the first N test images.
    pub limit: Option<usize>,
    /// B2C: img2img from the linear route's decoded z instead of txt2img.
    #[serde(default)]
    pub init_z: bool,
    /// Samples of one image denoised together in one batch (memory grows with it; the
    /// images do not change, up to rounding).
    #[serde(default = "one")]
    pub batch: usize,
    /// Only this slice of the test images (`--shard k/N`); [`crate::linear::shards::merge`] joins the
    /// slices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ImageShard>,
}

fn one() -> usize {
    1
}

impl Default for ReconstructOptions {
    /// The published settings: 5 samples, strength 0.8, 50 DDIM steps, guidance 5.
    fn default() -> Self {
        ReconstructOptions {
            method: Method::Linear,
            samples: 5,
            strength: 0.8,
            steps: 50,
            guidance: 5.0,
            seed: 42,
            sample_posterior: true,
            limit: None,
            init_z: false,
            batch: 5,
            shard: None,
        }
    }
}

/// What a reconstruction directory holds; `brainrecon eval` reads it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The run's settings.
    pub options: ReconstructOptions,
    /// The subject's name.
    pub subject: String,
    /// The prepared subject folder.
    pub subject_dir: PathBuf,
    /// The z decoder folder, when the method uses z.
    pub z_decoder: Option<PathBuf>,
    /// The c decoder folder, when the method uses decoded c.
    pub c_decoder: Option<PathBuf>,
    /// The B2C folder (`--method b2c`) and a fingerprint of its files.
    #[serde(default)]
    pub b2c: Option<PathBuf>,
    /// Fingerprint of the B2C folder's files.
    #[serde(default)]
    pub b2c_fingerprint: Option<String>,
    /// The captions file (`--method caption`) and a hash of its bytes.
    #[serde(default)]
    pub captions: Option<PathBuf>,
    /// Hash of the captions file's bytes.
    #[serde(default)]
    pub captions_fingerprint: Option<String>,
    /// The Stable Diffusion model as named on the command line.
    pub model: String,
    /// [`brainrecon_diffusion::weights::ModelDir::fingerprint`] of the model's files (empty in
    /// manifests written before it was recorded).
    #[serde(default)]
    pub model_fingerprint: String,
    /// Size (px) of the decoded-z images, and of the reconstructions.
    pub latent_image_size: Option<usize>,
    /// The model's native size (px).
    pub image_size: usize,
    /// The 0-based 73k ids of the test images reconstructed, in order.
    pub ids: Vec<usize>,
    /// The command line that made the run, for the record.
    pub command: String,
    /// (software, version) pairs: brainrecon's, and the diffusers version that saved the model.
    pub versions: Vec<(String, String)>,
    /// False until every image is written.
    pub complete: bool,
}

impl Manifest {
    /// The manifest's file name in a reconstruction folder.
    pub const FILE: &'static str = "manifest.json";

    /// A run's manifest (incomplete) with what every route records, `model_fingerprint` being
    /// [`brainrecon_diffusion::weights::ModelDir::fingerprint`] of `sd`'s files; the route sets
    /// its decoders or B2C folder and the decoded-z image size.
    pub(crate) fn new(
        subject: &PreparedSubject,
        sd: &StableDiffusion,
        (model, model_fingerprint): (&str, String),
        options: &ReconstructOptions,
        ids: &[usize],
        command: &str,
    ) -> Self {
        Manifest {
            format: FORMAT.into(),
            options: options.clone(),
            subject: subject.meta.subject.clone(),
            subject_dir: subject.root.clone(),
            z_decoder: None,
            c_decoder: None,
            b2c: None,
            b2c_fingerprint: None,
            captions: None,
            captions_fingerprint: None,
            model: model.into(),
            model_fingerprint,
            latent_image_size: None,
            image_size: sd.default_size(),
            ids: ids.to_vec(),
            command: command.into(),
            versions: versions(sd),
            complete: false,
        }
    }

    /// Reads `dir/manifest.json`.
    ///
    /// # Errors
    /// An unreadable file, or a `format` other than [`FORMAT`].
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(Self::FILE);
        let manifest: Manifest = read_json(&path)?;
        if manifest.format != FORMAT {
            return Err(RouteError::mismatch(
                &path,
                "format",
                FORMAT,
                &manifest.format,
            ));
        }
        Ok(manifest)
    }

    /// `dir/decoded-z`: the VAE decodes of the decoded z.
    pub fn decoded_z_dir(dir: &Path) -> PathBuf {
        dir.join("decoded-z")
    }

    /// `dir/sample-<k>`: the k-th reconstruction of every image (k from 1).
    pub fn sample_dir(dir: &Path, k: usize) -> PathBuf {
        dir.join(format!("sample-{k}"))
    }

    /// Image sets to evaluate: ("decoded z", dir) and ("sample k", dir).
    pub fn image_sets(&self, dir: &Path) -> Vec<(String, PathBuf)> {
        let mut sets = Vec::new();
        if self.options.method.uses_z() || self.options.init_z {
            sets.push(("decoded z".to_string(), Self::decoded_z_dir(dir)));
        }
        if self.options.method.uses_c() {
            for k in 1..=self.options.samples {
                sets.push((format!("sample {k}"), Self::sample_dir(dir, k)));
            }
        }
        sets
    }
}

/// Counts of what a run did.
#[derive(Debug, Clone, Serialize)]
pub struct ReconstructSummary {
    /// The reconstruction folder.
    pub out: PathBuf,
    /// Test images in the run (after `limit` and `shard`).
    pub n_images: usize,
    /// PNGs written.
    pub written: usize,
    /// PNGs already there from an earlier run, left as they were.
    pub skipped: usize,
    /// Wall time, in seconds.
    pub seconds: f64,
}

/// Checks the decoders against each other, the subject and the model, and returns the
/// latent spatial size of z (if used).
pub(crate) fn check_decoders(
    subject: &PreparedSubject,
    sd: &StableDiffusion,
    method: Method,
    z: Option<&Decoder>,
    c: Option<&Decoder>,
) -> Result<Option<usize>> {
    let mut latent_hw = None;
    if let Some(z) = z {
        let json = z.dir.join(brainrecon_ridge::MODEL_FILE);
        if z.target != "z" {
            return Err(RouteError::mismatch(
                &json,
                "target",
                "a z decoder (`brainrecon fit --target z`)",
                &z.target,
            ));
        }
        z.roi_of(subject)?;
        let channels = sd.unet.config.in_channels;
        let shape = &z.target_shape;
        if shape.len() != 3 || shape[0] != channels || shape[1] != shape[2] {
            return Err(RouteError::mismatch(
                &json,
                "target_shape",
                format!(
                    "[{channels}, h, h], the latent shape of {}",
                    sd.root.root.display()
                ),
                format!("{shape:?} (decoder fit on another model's latents?)"),
            ));
        }
        latent_hw = Some(shape[1]);
    } else if method.uses_z() {
        return Err(RouteError::Usage(format!(
            "--method {} needs a z decoder (decoders/z)",
            method.name()
        )));
    }
    if let Some(c) = c {
        let json = c.dir.join(brainrecon_ridge::MODEL_FILE);
        if c.target != "c" {
            return Err(RouteError::mismatch(
                &json,
                "target",
                "a c decoder (`brainrecon fit --target c`)",
                &c.target,
            ));
        }
        c.roi_of(subject)?;
        let expected = vec![
            sd.text_encoder.config.max_position_embeddings,
            sd.unet.config.cross_attention_dim,
        ];
        if c.target_shape != expected {
            return Err(RouteError::mismatch(
                &json,
                "target_shape",
                format!(
                    "{expected:?}, the text context of {}",
                    sd.root.root.display()
                ),
                format!(
                    "{:?} (decoder fit on another model's context?)",
                    c.target_shape
                ),
            ));
        }
    } else if method.uses_c() {
        return Err(RouteError::Usage(format!(
            "--method {} needs a c decoder (decoders/c)",
            method.name()
        )));
    }
    Ok(latent_hw)
}

pub(crate) fn tensor_to_image(image: &Tensor) -> Result<RgbImage> {
    let (h, w, values) = image_to_hwc(image)?;
    Ok(RgbImage::from_unit_f32(h, w, &values))
}

/// Rejects sampling settings that cannot run, naming the flag.
pub(crate) fn check_sampling(options: &ReconstructOptions) -> Result<()> {
    if options.samples == 0 && options.method.uses_c() {
        return Err(RouteError::Usage("--samples must be at least 1".into()));
    }
    if !(options.strength > 0.0 && options.strength <= 1.0) {
        return Err(RouteError::Usage(format!(
            "--strength must be in (0, 1], found {}",
            options.strength
        )));
    }
    Ok(())
}

/// Warns when a decoder was fit on features of another model than the one reconstructing.
fn warn_on_provenance(decoders: &[&Decoder], model: &str, fingerprint: &str) {
    for decoder in decoders {
        let metadata = &decoder.model.metadata;
        let recorded = |key: &str| metadata.get(key).and_then(|v| v.as_str());
        if let Some(fit_model) = recorded("target_model") {
            if fit_model != model {
                eprintln!(
                    "warning: {} was fit on features of '{fit_model}', reconstructing with \
                     '{model}'",
                    decoder.dir.display()
                );
            } else if let Some(fit_on) =
                recorded("target_model_fingerprint").filter(|f| *f != fingerprint)
            {
                eprintln!(
                    "warning: {} was fit on features of other files under the name '{model}' \
                     (fingerprint {fit_on}, now {fingerprint})",
                    decoder.dir.display(),
                );
            }
        }
    }
}

/// The test images' ids (first `limit`) and each decoder's predictions for them.
fn decode_test_features(
    subject: &PreparedSubject,
    decoders: [Option<&Decoder>; 2],
    limit: Option<usize>,
) -> Result<(Vec<usize>, [Option<Vec<f32>>; 2])> {
    let mut ids = subject.test_stimulus_ids()?;
    let mut rows = [None, None];
    for (slot, decoder) in rows.iter_mut().zip(decoders) {
        if let Some(decoder) = decoder {
            let (_, mut predicted) = decoder.predict_test(subject)?;
            if let Some(limit) = limit {
                predicted.truncate(limit.min(ids.len()) * decoder.model.n_targets());
            }
            *slot = Some(predicted);
        }
    }
    if let Some(limit) = limit {
        ids.truncate(limit);
    }
    Ok((ids, rows))
}

/// The linear route's decoded z of every test image and its spatial size, checked against
/// the model; `needed_by` names the option that asked for it.
pub(crate) fn decoded_test_z(
    subject: &PreparedSubject,
    sd: &StableDiffusion,
    z: Option<&Decoder>,
    needed_by: &str,
) -> Result<(Vec<f32>, usize)> {
    let z = z.ok_or_else(|| {
        RouteError::Usage(format!(
            "{needed_by} needs a z decoder (--decoders DIR with z/)"
        ))
    })?;
    let shape = &z.target_shape;
    if z.target != "z" || shape.len() != 3 || shape[0] != sd.unet.config.in_channels {
        return Err(RouteError::mismatch(
            &z.dir.join(brainrecon_ridge::MODEL_FILE),
            "target_shape",
            format!("a z decoder for the latents of {}", sd.root.root.display()),
            format!("target {} of shape {shape:?}", z.target),
        ));
    }
    Ok((z.predict_test(subject)?.1, shape[1]))
}

/// Writes `out/decoded/ids.npy` and one `<name>.npy` (n, shape…) per array.
pub(crate) fn write_decoded(
    out: &Path,
    ids: &[usize],
    arrays: &[(&str, &[usize], &[f32])],
) -> Result<()> {
    let decoded = out.join("decoded");
    npy::write(
        &decoded.join("ids.npy"),
        &[ids.len()],
        &ids.iter().map(|&i| i as i64).collect::<Vec<_>>(),
    )?;
    for (name, shape, values) in arrays {
        let mut full = vec![ids.len()];
        full.extend(*shape);
        let width: usize = shape.iter().product();
        npy::write(
            &decoded.join(format!("{name}.npy")),
            &full,
            &values[..ids.len() * width],
        )?;
    }
    Ok(())
}

/// The part of a run this process does: rows `rows` of the test images, recorded in the
/// manifest at `manifest_path` (`<out>/manifest.json`, or the shard's own).
pub(crate) struct RunScope {
    pub manifest_path: PathBuf,
    pub rows: std::ops::Range<usize>,
}

/// Refuses to resume a run made with other settings or model files, then records `manifest`
/// (incomplete), narrowed to the shard's images when the run is a shard.
pub(crate) fn begin_run(out: &Path, manifest: &mut Manifest) -> Result<RunScope> {
    let (manifest_path, rows) = match manifest.options.shard {
        Some(shard) => {
            let rows = shard.rows(manifest.ids.len());
            manifest.ids = manifest.ids[rows.clone()].to_vec();
            (shard.manifest_path(out), rows)
        }
        None => (out.join(Manifest::FILE), 0..manifest.ids.len()),
    };
    if let Some(old) = manifest_path
        .exists()
        .then(|| read_json::<Manifest>(&manifest_path).ok())
        .flatten()
    {
        check_resumable(&manifest_path, &old, manifest)?;
    }
    write_json_atomic(&manifest_path, manifest)?;
    Ok(RunScope {
        manifest_path,
        rows,
    })
}

/// A run may resume `old` (the manifest found at `path`) when only the selection of images
/// (--limit, --shard) or the grouping of samples (--batch) changed.
fn check_resumable(path: &Path, old: &Manifest, manifest: &Manifest) -> Result<()> {
    let same = ReconstructOptions {
        limit: manifest.options.limit,
        batch: manifest.options.batch,
        shard: manifest.options.shard,
        ..old.options.clone()
    } == manifest.options;
    if same
        && old.model == manifest.model
        && old.model_fingerprint == manifest.model_fingerprint
        && old.b2c_fingerprint == manifest.b2c_fingerprint
        && old.captions_fingerprint == manifest.captions_fingerprint
    {
        return Ok(());
    }
    Err(RouteError::mismatch(
        path,
        "options",
        format!(
            "{:?} with model {} (files {}) (a run to resume)",
            manifest.options, manifest.model, manifest.model_fingerprint
        ),
        format!(
            "{:?} with model {} (files {}): use another --out, or delete it to start over",
            old.options,
            old.model,
            if old.model_fingerprint.is_empty() {
                "not recorded"
            } else {
                &old.model_fingerprint
            }
        ),
    ))
}

/// How many images a run wrote and found already written.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    pub written: usize,
    pub skipped: usize,
}

impl Counts {
    /// The run's summary: `n_images` test images into `out`, timed from `started`.
    pub(crate) fn summary(
        self,
        out: &Path,
        n_images: usize,
        started: std::time::Instant,
    ) -> ReconstructSummary {
        ReconstructSummary {
            out: out.to_path_buf(),
            n_images,
            written: self.written,
            skipped: self.skipped,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// The VAE decode of row `row` of the decoded z: made and written to `decoded-z/<id>.png`, or
/// read back from there (PNG is lossless, so a resume sees the same pixels).
pub(crate) fn decoded_z_image(
    sd: &StableDiffusion,
    out: &Path,
    z_rows: &[f32],
    hw: usize,
    row: usize,
    id: usize,
    counts: &mut Counts,
) -> Result<RgbImage> {
    let path = Manifest::decoded_z_dir(out).join(format!("{id}.png"));
    if path.exists() {
        counts.skipped += 1;
        return Ok(read_png(&path)?);
    }
    let width = sd.unet.config.in_channels * hw * hw;
    let z = Tensor::from_vec(
        z_rows[row * width..(row + 1) * width].to_vec(),
        (1, sd.unet.config.in_channels, hw, hw),
        &sd.device,
    )?;
    let image = tensor_to_image(&sd.decode_latent(&z)?)?;
    write_png(&path, &image)?;
    counts.written += 1;
    Ok(image)
}

/// The image pixels img2img starts from: `image` resized to the model's size with Lanczos.
pub(crate) fn init_pixels(sd: &StableDiffusion, image: &RgbImage) -> Result<Tensor> {
    let size = sd.default_size();
    let image = image.resize_with(size, size, Filter::Lanczos);
    Ok(image_from_rgb8(size, size, &image.pixels, &sd.device)?)
}

/// Reconstructions 1..=samples of image `id` conditioned on `context`, each from its own
/// seeded noise stream, written to `sample-<k>/<id>.png` (skipped when present): img2img from
/// `init` (pixels, noised to `options.strength`) when given, else txt2img. With
/// `keep_latent`, the sampler's final latent goes to `sample-<k>/<id>.latent.npy` first.
/// Up to `options.batch` samples share one U-Net call; each keeps its own noise stream.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sample_images(
    sd: &StableDiffusion,
    out: &Path,
    options: &ReconstructOptions,
    id: usize,
    context: &Conditioning,
    init: Option<&Tensor>,
    keep_latent: bool,
    counts: &mut Counts,
    progress: &indicatif::ProgressBar,
) -> Result<()> {
    let mut pending = Vec::new();
    for k in 1..=options.samples {
        if Manifest::sample_dir(out, k)
            .join(format!("{id}.png"))
            .exists()
        {
            counts.skipped += 1;
            progress.inc(1);
        } else {
            pending.push(k);
        }
    }
    for group in pending.chunks(options.batch.max(1)) {
        let latents = sample_latents(sd, options, id, context, init, group)?;
        let images = sd.decode_latent(&latents)?;
        for (row, &k) in group.iter().enumerate() {
            let dir = Manifest::sample_dir(out, k);
            if keep_latent {
                let latent = latents.narrow(0, row, 1)?;
                let values = latent.flatten_all()?.to_vec1::<f32>()?;
                npy::write(
                    &dir.join(format!("{id}.latent.npy")),
                    &latent.dims()[1..],
                    &values,
                )?;
            }
            let image = tensor_to_image(&images.narrow(0, row, 1)?)?;
            write_png(&dir.join(format!("{id}.png")), &image)?;
            counts.written += 1;
            progress.inc(1);
        }
    }
    Ok(())
}

/// The final latents [len(samples), 4, h, w] of samples `samples` of image `id`, in one batch:
/// row r draws from sample `samples[r]`'s stream, as that sample alone would.
pub(crate) fn sample_latents(
    sd: &StableDiffusion,
    options: &ReconstructOptions,
    id: usize,
    context: &Conditioning,
    init: Option<&Tensor>,
    samples: &[usize],
) -> Result<Tensor> {
    let sample_options = SampleOptions {
        steps: options.steps,
        guidance: options.guidance,
        scheduler: SchedulerKind::Ddim { eta: 0.0 },
    };
    let streams = samples
        .iter()
        .map(|&k| SeededNoise::new(stream_seed(options.seed, id as u64, k as u64)))
        .collect();
    let mut noise = PerRowNoise::new(streams);
    let context = context.repeat_rows(samples.len())?;
    Ok(match init {
        Some(pixels) => {
            let posterior = if options.sample_posterior {
                Posterior::Sample
            } else {
                Posterior::Mean
            };
            let init = sd.encode_image_rows(pixels, samples.len(), posterior, &mut noise)?;
            sd.img2img(
                &init,
                &context,
                options.strength,
                &sample_options,
                &mut noise,
                &mut |_| {},
            )?
        }
        None => {
            let size = sd.default_size();
            sd.txt2img(
                &context,
                size,
                size,
                &sample_options,
                &mut noise,
                &mut |_| {},
            )?
        }
    })
}

/// Marks the run complete.
pub(crate) fn finish_run(manifest_path: &Path, manifest: &mut Manifest) -> Result<()> {
    manifest.complete = true;
    write_json_atomic(manifest_path, manifest)?;
    Ok(())
}

/// One test image's context [1, T, D] from row-major rows of T·D values.
pub(crate) fn context_row(sd: &StableDiffusion, rows: &[f32], row: usize) -> Result<Tensor> {
    let (t, d) = (
        sd.text_encoder.config.max_position_embeddings,
        sd.unet.config.cross_attention_dim,
    );
    Ok(Tensor::from_vec(
        rows[row * t * d..(row + 1) * t * d].to_vec(),
        (1, t, d),
        &sd.device,
    )?)
}

/// The empty prompt's context when guidance needs it.
pub(crate) fn unconditional(sd: &StableDiffusion, guidance: f64) -> Result<Option<Tensor>> {
    Ok(if guidance > 1.0 {
        Some(sd.encode_text(&[""])?)
    } else {
        None
    })
}

/// Runs the route on the subject's test images. `command` and `model` are recorded.
#[allow(clippy::too_many_arguments)]
pub fn reconstruct(
    subject: &PreparedSubject,
    sd: &StableDiffusion,
    model: &str,
    z_decoder: Option<&Decoder>,
    c_decoder: Option<&Decoder>,
    options: &ReconstructOptions,
    out: &Path,
    command: &str,
    show_progress: bool,
) -> Result<ReconstructSummary> {
    let started = std::time::Instant::now();
    check_sampling(options)?;
    if options.method == Method::B2c {
        return Err(RouteError::Usage("--method b2c needs --b2c DIR".into()));
    }
    if options.method == Method::Caption {
        return Err(RouteError::Usage(
            "--method caption needs --captions FILE (from `brainrecon caption`)".into(),
        ));
    }
    let z_decoder = z_decoder.filter(|_| options.method.uses_z());
    let c_decoder = c_decoder.filter(|_| options.method.uses_c());
    let latent_hw = check_decoders(subject, sd, options.method, z_decoder, c_decoder)?;
    let fingerprint = sd.root.fingerprint()?;
    let decoders: Vec<&Decoder> = [z_decoder, c_decoder].into_iter().flatten().collect();
    warn_on_provenance(&decoders, model, &fingerprint);

    // Decode the features of every test image up front (one matrix product each).
    let (ids, [z_rows, c_rows]) =
        decode_test_features(subject, [z_decoder, c_decoder], options.limit)?;
    let mut arrays: Vec<(&str, &[usize], &[f32])> = Vec::new();
    for (name, rows, decoder) in [("z", &z_rows, z_decoder), ("c", &c_rows, c_decoder)] {
        if let (Some(rows), Some(decoder)) = (rows, decoder) {
            arrays.push((name, &decoder.target_shape, rows));
        }
    }
    write_decoded(out, &ids, &arrays)?;

    let mut manifest = Manifest {
        z_decoder: z_decoder.map(|d| d.dir.clone()),
        c_decoder: c_decoder.map(|d| d.dir.clone()),
        latent_image_size: latent_hw.map(|h| h * sd.vae_scale_factor()),
        ..Manifest::new(subject, sd, (model, fingerprint), options, &ids, command)
    };
    let scope = begin_run(out, &mut manifest)?;

    let steps_per_image = usize::from(options.method.uses_z())
        + if options.method.uses_c() {
            options.samples
        } else {
            0
        };
    let progress = bar(
        (scope.rows.len() * steps_per_image) as u64,
        &format!("{} recon", options.method.name()),
        show_progress,
    );
    let uncond = if options.method.uses_c() {
        unconditional(sd, options.guidance)?
    } else {
        None
    };
    let mut counts = Counts::default();
    for row in scope.rows.clone() {
        check_stop(row - scope.rows.start, scope.rows.len())?;
        let id = ids[row];
        let mut z_image = None;
        if let (Some(rows), Some(hw)) = (&z_rows, latent_hw) {
            z_image = Some(decoded_z_image(sd, out, rows, hw, row, id, &mut counts)?);
            progress.inc(1);
        }
        let Some(c_rows) = &c_rows else { continue };
        let context = Conditioning {
            cond: context_row(sd, c_rows, row)?,
            uncond: uncond.clone(),
        };
        let pixels = z_image
            .as_ref()
            .map(|image| init_pixels(sd, image))
            .transpose()?;
        sample_images(
            sd,
            out,
            options,
            id,
            &context,
            pixels.as_ref(),
            false,
            &mut counts,
            &progress,
        )?;
    }
    progress.finish_and_clear();
    finish_run(&scope.manifest_path, &mut manifest)?;
    Ok(counts.summary(out, scope.rows.len(), started))
}

/// brainrecon's version and the model's diffusers version, for the record.
pub fn versions(sd: &StableDiffusion) -> Vec<(String, String)> {
    let mut v = vec![(
        "brainrecon".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    )];
    let index = sd.root.root.join("model_index.json");
    if let Ok(text) = std::fs::read_to_string(&index) {
        if let Ok(json) =
            serde_json::from_str::<serde_json::Value>(brainrecon_core::text::without_bom(&text))
        {
            if let Some(d) = json.get("_diffusers_version").and_then(|v| v.as_str()) {
                v.push(("model saved by diffusers".to_string(), d.to_string()));
            }
        }
    }
    v
}
