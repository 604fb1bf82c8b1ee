//! `eeg reconstruct`: the decoded embedding becomes an image through the linear route's
//! img2img. Two ridge maps, fitted on the training images, take an image embedding to the
//! diffusion model's VAE latent z and to its text context c (of a prompt naming the image's
//! concept, as THINGS names its folders). A test trial's decoded embedding goes through both;
//! the decoded z's image is noised to `strength` and denoised under the decoded c.
//!
//! The decoded embeddings are first matched, dimension by dimension, to the mean and standard
//! deviation of the training images' embeddings over the test set (as Brain-Diffuser treats
//! its decoded CLIP features): NICE's encodings live on the sphere its contrastive loss trains,
//! at another scale than the image tower's outputs, and a map fitted on standardised columns
//! would otherwise extrapolate far from anything it was fitted on.
//!
//! ```text
//! <out>/settings.json               what the run was asked (a rerun resumes or is refused)
//! <out>/stimuli/<i>.png             test image i as seen (PNG, for scoring)
//! <out>/decoded/{embeddings,z,c}.npy the decoded embeddings (matched) and their z and c
//! <out>/decoded-z/<i>.png           VAE decode of the decoded z
//! <out>/sample-<k>/<i>.png          reconstructions k = 1..samples
//! <out>/own-embedding/{decoded-z,sample-1}/<i>.png  the same from the images' own
//!                                   embeddings (`ceiling`): what a perfect decoder would give
//! <out>/comparison.png              per row: stimulus | decoded z | samples (| own embedding)
//! <out>/reconstruction.json         EegReconstructReport: the scores of each image set
//! ```
//! The run stages in `<out>.partial`; every PNG is skipped on a rerun, so an interrupted run
//! continues with the same pixels.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::decode::features::{
    default_latent_image_size, rows_of, Stimulus, StimulusEncoder, VaeFeatures,
};
use crate::eeg::decoder::{concept_groups, read_embeddings, EegDecoder};
use crate::error::{Result, RouteError};
use crate::linear::{
    context_row, decoded_z_image, init_pixels, sample_images, unconditional, Counts, Manifest,
    ReconstructOptions,
};
use crate::progress::bar;
use crate::score::folder_eval::{eval, EvalRequest, Evaluated};
use crate::score::report::comparison_grid;
use brainrecon_core::fs::{read_json, write_json_atomic, OutputDir, Resume};
use brainrecon_core::stats::mean_std;
use brainrecon_core::DataError;
use brainrecon_datasets::things_eeg2::{ImageEntry, Split, ThingsEeg2};
use brainrecon_diffusion::pipeline::{Conditioning, DType, Device, Posterior, StableDiffusion};
use brainrecon_formats::image::{read_png, write_png};
use brainrecon_formats::npy;
use brainrecon_formats::video::frames::read_frame;
use brainrecon_ridge::{row_major_view, Cv, RidgeCv, RidgeModel, Scoring};
use serde::{Deserialize, Serialize};

const SETTINGS_FILE: &str = "settings.json";
const REPORT_FILE: &str = "reconstruction.json";
/// Where the reconstructions from the images' own embeddings go.
const CEILING_DIR: &str = "own-embedding";
/// The default prompt: `{concept}` is the concept's words (`00042_red_circle` → `red circle`).
pub const DEFAULT_PROMPT: &str = "a {concept}";

/// `brainrecon eeg reconstruct`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct EegReconstructRequest {
    /// The THINGS-EEG2 root the decoder was fitted from.
    #[cfg_attr(feature = "cli", arg(long, help = "The THINGS-EEG2 folder"))]
    pub data: PathBuf,
    /// An `eeg fit` folder; its test subject's test half is reconstructed.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help = "A decoder folder (`eeg fit`): its test subject's test images are reconstructed"
        )
    )]
    pub decoder: PathBuf,
    /// The embeddings folder the decoder was fitted to (its training rows fit the maps).
    #[cfg_attr(
        feature = "cli",
        arg(long, help = "The embeddings folder the decoder was fitted to")
    )]
    pub embeddings: PathBuf,
    /// The diffusion model (`shapes-ldm`, a diffusers folder or id).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value = "shapes-ldm",
            help = "The diffusion model: shapes-ldm, a diffusers folder or a model id"
        )
    )]
    pub model: String,
    /// The prompt of a concept's context, with `{concept}` for its words.
    #[cfg_attr(feature = "cli", arg(long, default_value = DEFAULT_PROMPT, help = "The prompt of a concept's context"))]
    pub prompt: String,
    /// Reconstructions per test image.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 1))]
    pub samples: usize,
    /// DDIM steps of the full schedule.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 50))]
    pub steps: usize,
    /// Share of the schedule img2img runs from the decoded z's image.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0.8))]
    pub strength: f64,
    /// Classifier-free guidance scale against the empty prompt.
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 5.0, help = "Classifier-free guidance scale")
    )]
    pub guidance: f64,
    /// Seed of the noise; each (image, sample) draws its own stream from it.
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 42, help = "Seed of the sampler's noise")
    )]
    pub seed: u64,
    /// Only the first N test images.
    #[cfg_attr(feature = "cli", arg(long))]
    pub limit: Option<usize>,
    /// Also reconstruct each test image from its own embedding through the same maps (one
    /// sample): what a perfect EEG decoder would give.
    #[cfg_attr(feature = "cli", arg(long))]
    pub ceiling: bool,
    /// The output folder (staged in `<out>.partial`).
    #[cfg_attr(feature = "cli", arg(long, help = "The output folder"))]
    pub out: PathBuf,
    /// Draw progress bars.
    #[cfg_attr(feature = "cli", arg(skip))]
    pub progress: bool,
}

impl EegReconstructRequest {
    /// The published img2img settings of the linear route (strength 0.8, guidance 5, 50 DDIM
    /// steps), one sample, shapes-ldm.
    pub fn new(data: &Path, decoder: &Path, embeddings: &Path, out: &Path) -> Self {
        EegReconstructRequest {
            data: data.to_path_buf(),
            decoder: decoder.to_path_buf(),
            embeddings: embeddings.to_path_buf(),
            model: "shapes-ldm".into(),
            prompt: DEFAULT_PROMPT.into(),
            samples: 1,
            steps: 50,
            strength: 0.8,
            guidance: 5.0,
            seed: 42,
            limit: None,
            ceiling: false,
            out: out.to_path_buf(),
            progress: false,
        }
    }
}

/// What a rerun must share with the run it continues (`settings.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Settings {
    data: PathBuf,
    decoder: PathBuf,
    embeddings: PathBuf,
    model: String,
    model_fingerprint: String,
    prompt: String,
    samples: usize,
    steps: usize,
    strength: f64,
    guidance: f64,
    seed: u64,
    limit: Option<usize>,
    ceiling: bool,
}

/// The scores of one image set against the stimuli.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScoredSet {
    /// `decoded z` or `sample k`.
    pub name: String,
    /// The set's folder of `<i>.png`.
    pub dir: PathBuf,
    /// PixCorr: mean Pearson r over flattened RGB values.
    pub pixcorr: f64,
    /// Mean SSIM of the grayscale images.
    pub ssim: f64,
    /// Two-way identification on pixels (chance 0.5).
    pub two_way_pixels: Option<f64>,
    /// `brainrecon eval`'s JSON of the folder: the pixel table and the metric suite.
    pub scores: serde_json::Value,
    /// The same as `brainrecon eval` prints it.
    pub text: String,
}

/// Mean Pearson r, over the test images, between a mapped z (or c) and the image's own.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FeatureAgreement {
    /// From the decoded embedding.
    pub decoded_z: f64,
    /// c from the decoded embedding.
    pub decoded_c: f64,
    /// From the image's own embedding: what a perfect EEG decoder would reach.
    pub ceiling_z: f64,
    /// c from the image's own embedding.
    pub ceiling_c: f64,
}

impl ScoredSet {
    /// `sample 1   PixCorr 0.116, SSIM 0.469, 2-way (pixels) 51.9%`.
    pub fn line(&self) -> String {
        let two = self.two_way_pixels.map_or(String::new(), |v| {
            format!(", 2-way (pixels) {:.1}%", 100.0 * v)
        });
        format!(
            "{:<26} PixCorr {:.3}, SSIM {:.3}{two}",
            self.name, self.pixcorr, self.ssim
        )
    }
}

/// `reconstruction.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EegReconstructReport {
    /// The output folder.
    pub out: PathBuf,
    /// True when the folder already held this run.
    #[serde(skip_deserializing)]
    pub already_done: bool,
    /// The decoder's test subject.
    pub subject: String,
    /// The `eeg fit` folder.
    pub decoder: PathBuf,
    /// Test images reconstructed.
    pub images: usize,
    /// How close the mapped z and c come to the images' own.
    pub features: FeatureAgreement,
    /// Each image set's scores: decoded z, the samples, then the own-embedding sets.
    pub sets: Vec<ScoredSet>,
    /// `comparison.png`: stimulus | decoded z | samples (| own embedding) per row.
    pub comparison: PathBuf,
    /// Wall time of the run, in seconds.
    pub seconds: f64,
}

impl EegReconstructReport {
    /// What was made and each set's scores, for people.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut text = format!(
            "{}: {} test images of {} reconstructed from {}{}\n  \
             r with the images' own z and c: decoded {:.2} and {:.2}, from the images' own embeddings {:.2} and {:.2}\n",
            self.out.display(),
            self.images,
            self.subject,
            self.decoder.display(),
            if self.already_done { " (already done)" } else { "" },
            self.features.decoded_z,
            self.features.decoded_c,
            self.features.ceiling_z,
            self.features.ceiling_c,
        );
        for set in &self.sets {
            let _ = writeln!(text, "  {}", set.line());
        }
        let _ = writeln!(
            text,
            "  comparison: {} (stimulus | decoded z | samples{})",
            self.comparison.display(),
            if self.sets.iter().any(|s| s.name.starts_with("own")) {
                " | own embedding"
            } else {
                ""
            }
        );
        text
    }
}

/// `00042_small_red_circle` → `small red circle`: THINGS' folder name without its number.
pub fn concept_words(concept: &str) -> String {
    let name = match concept.split_once('_') {
        Some((number, rest)) if number.chars().all(|c| c.is_ascii_digit()) => rest,
        _ => concept,
    };
    name.replace('_', " ")
}

/// The prompt of `entry`'s concept.
fn prompt_of(template: &str, entry: &ImageEntry) -> String {
    template.replace("{concept}", &concept_words(&entry.concept))
}

/// `decoded` [rows, d] with each column's mean and standard deviation (over its rows) made
/// those of the same column of `reference` [reference rows, d]; a constant column becomes the
/// reference's mean.
pub fn match_moments(decoded: &[f32], reference: &[f32], d: usize) -> Vec<f32> {
    assert!(d > 0 && decoded.len() % d == 0 && reference.len() % d == 0);
    let moments = |values: &[f32], j: usize| {
        let column: Vec<f64> = values
            .iter()
            .skip(j)
            .step_by(d)
            .map(|&v| f64::from(v))
            .collect();
        mean_std(&column)
    };
    let mut out = decoded.to_vec();
    for j in 0..d {
        let (mean, sd) = moments(decoded, j);
        let (target_mean, target_sd) = moments(reference, j);
        for v in out.iter_mut().skip(j).step_by(d) {
            let z = if sd > 0.0 {
                (f64::from(*v) - mean) / sd
            } else {
                0.0
            };
            *v = (target_mean + z * target_sd) as f32;
        }
    }
    out
}

/// Ridge from embeddings [rows, d] to `targets` [rows, width], the penalty chosen per column
/// by 5-fold cross-validation grouped by concept.
fn fit_map(
    x: &[f32],
    d: usize,
    targets: &[f32],
    width: usize,
    concepts: &[i64],
) -> Result<RidgeModel> {
    let rows = concepts.len();
    let cv = RidgeCv {
        alphas: (-3..=4).map(|e| 10f64.powi(e)).collect(),
        cv: Cv::KFold {
            n_folds: 5,
            groups: Some(concepts.to_vec()),
        },
        scoring: Scoring::R2,
        standardize: true,
        ..RidgeCv::default()
    };
    Ok(cv.fit(
        row_major_view("image embeddings", x, (rows, d))?,
        row_major_view("image features", targets, (rows, width))?,
    )?)
}

/// Mean over rows of the Pearson correlation between `a`'s row and `b`'s ([rows, width]).
pub fn mean_row_correlation(a: &[f32], b: &[f32], width: usize) -> f64 {
    let rows: Vec<f64> = a
        .chunks(width.max(1))
        .zip(b.chunks(width.max(1)))
        .map(|(x, y)| {
            let x: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
            let y: Vec<f64> = y.iter().map(|&v| f64::from(v)).collect();
            brainrecon_core::stats::pearson(&x, &y)
        })
        .collect();
    rows.iter().sum::<f64>() / rows.len().max(1) as f64
}

/// z (VAE posterior mean) and c (the context of the concept's prompt) of `entries`' images
/// at `paths`, [images, width] each.
fn image_features(
    vae: &VaeFeatures<'_>,
    template: &str,
    entries: &[ImageEntry],
    paths: &[PathBuf],
    label: &str,
    show_progress: bool,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let progress = bar(entries.len() as u64, label, show_progress);
    let (mut z, mut c) = (Vec::new(), Vec::new());
    let mut contexts: std::collections::BTreeMap<String, Vec<f32>> = Default::default();
    for (chunk, entries) in paths.chunks(32).zip(entries.chunks(32)) {
        let stimuli = chunk
            .iter()
            .enumerate()
            .map(|(i, path)| {
                Ok(Stimulus {
                    id: i,
                    image: read_frame(path)?,
                    captions: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        z.extend(vae.encode(&stimuli)?.into_iter().flatten());
        for entry in entries {
            let prompt = prompt_of(template, entry);
            if !contexts.contains_key(&prompt) {
                let context = rows_of(&vae.sd.encode_text(&[prompt.as_str()])?)?;
                contexts.insert(prompt.clone(), context.concat());
            }
            c.extend_from_slice(&contexts[&prompt]);
        }
        progress.inc(entries.len() as u64);
    }
    progress.finish_and_clear();
    Ok((z, c))
}

/// Runs the reconstruction (see the module documentation); a finished `out` with the same
/// settings is returned as it is.
pub fn reconstruct(request: &EegReconstructRequest) -> Result<EegReconstructReport> {
    let started = Instant::now();
    let r = request;
    if r.samples == 0 || r.steps == 0 || !(r.strength > 0.0 && r.strength <= 1.0) {
        return Err(RouteError::Usage(format!(
            "eeg reconstruct: expected --samples ≥ 1, --steps ≥ 1 and 0 < --strength ≤ 1, found {}, {} and {}",
            r.samples, r.steps, r.strength
        )));
    }
    // refused before the model loads and the maps are fitted, not after
    if r.limit == Some(0) {
        return Err(RouteError::Usage(
            "eeg reconstruct: --limit: expected at least 1 test image, found 0".into(),
        ));
    }
    if !r.prompt.contains("{concept}") {
        return Err(RouteError::Usage(format!(
            "--prompt: expected a template with {{concept}} in it, found '{}'",
            r.prompt
        )));
    }
    let set = ThingsEeg2::open(&r.data)?;
    let metadata = set.image_metadata()?;
    let decoder = EegDecoder::open(&r.decoder)?;
    let embeddings = read_embeddings(&r.embeddings, &metadata)?;
    let d = embeddings.meta.width;
    if d != decoder.meta.embeddings.width {
        return Err(DataError::invalid(
            &r.embeddings,
            "width",
            format!(
                "{} wide, as the decoder's embeddings",
                decoder.meta.embeddings.width
            ),
            d.to_string(),
        )
        .into());
    }
    let device = Device::Cpu;
    let sd = StableDiffusion::load(&r.model, DType::F32, &device)?;
    let settings = Settings {
        data: r.data.clone(),
        decoder: r.decoder.clone(),
        embeddings: r.embeddings.clone(),
        model: r.model.clone(),
        model_fingerprint: sd.root.fingerprint()?,
        prompt: r.prompt.clone(),
        samples: r.samples,
        steps: r.steps,
        strength: r.strength,
        guidance: r.guidance,
        seed: r.seed,
        limit: r.limit,
        ceiling: r.ceiling,
    };
    let dir = match OutputDir::resume_if(&r.out, SETTINGS_FILE, REPORT_FILE, &settings)? {
        Resume::Finished(out) => {
            let mut report: EegReconstructReport = read_json(&out.join(REPORT_FILE))?;
            report.already_done = true;
            return Ok(report);
        }
        Resume::Resumed(dir) | Resume::Fresh(dir) => dir,
    };
    let stage = dir.path().to_path_buf();

    // The maps, fitted on the training images' embeddings, z and context.
    let training = metadata.of(Split::Training);
    let training_paths = set.image_paths(&metadata, Split::Training)?;
    let concepts = concept_groups(&metadata);
    let x = &embeddings.training;
    let image_size = default_latent_image_size(&sd);
    let vae = VaeFeatures {
        sd: &sd,
        image_size,
        posterior: Posterior::Mean,
        seed: 0,
    };
    let (z, c) = image_features(
        &vae,
        &r.prompt,
        training,
        &training_paths,
        "training images' z and c",
        r.progress,
    )?;
    let rows = training.len();
    let (z_width, c_width) = (z.len() / rows.max(1), c.len() / rows.max(1));
    let z_map = fit_map(x, d, &z, z_width, &concepts)?;
    let c_map = fit_map(x, d, &c, c_width, &concepts)?;

    // The test images: decoded, mapped, reconstructed.
    let test = set.read_preprocessed(&decoder.meta.test_subject, Split::Test)?;
    let test_paths = set.image_paths(&metadata, Split::Test)?;
    let n = r.limit.unwrap_or(test_paths.len()).min(test_paths.len());
    let decoded = match_moments(&decoder.decode(&test)?, x, d);
    let decoded = &decoded[..n * d];
    let z_hat = z_map.predict_row_major(decoded, (n, d))?;
    let c_hat = c_map.predict_row_major(decoded, (n, d))?;

    // How near the decoded z and c come to the test images' own, and how near the maps
    // take the images' own embeddings (the ceiling of a perfect EEG decoder).
    let (z_true, c_true) = image_features(
        &vae,
        &r.prompt,
        &metadata.of(Split::Test)[..n],
        &test_paths[..n],
        "test images' z and c",
        r.progress,
    )?;
    let own = &embeddings.test[..n * d];
    let (z_own, c_own) = (
        z_map.predict_row_major(own, (n, d))?,
        c_map.predict_row_major(own, (n, d))?,
    );
    let features = FeatureAgreement {
        decoded_z: mean_row_correlation(&z_hat, &z_true, z_width),
        decoded_c: mean_row_correlation(&c_hat, &c_true, c_width),
        ceiling_z: mean_row_correlation(&z_own, &z_true, z_width),
        ceiling_c: mean_row_correlation(&c_own, &c_true, c_width),
    };
    let ids: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let decoded_dir = stage.join("decoded");
    npy::write(&decoded_dir.join("ids.npy"), &[n], &ids)?;
    npy::write(&decoded_dir.join("embeddings.npy"), &[n, d], decoded)?;
    npy::write(&decoded_dir.join("z.npy"), &[n, z_width], &z_hat)?;
    npy::write(&decoded_dir.join("c.npy"), &[n, c_width], &c_hat)?;

    let stimuli = stage.join("stimuli");
    std::fs::create_dir_all(&stimuli).map_err(|e| DataError::io(&stimuli, e))?;
    for (i, path) in test_paths[..n].iter().enumerate() {
        let stimulus = stimuli.join(format!("{i}.png"));
        if !stimulus.exists() {
            write_png(&stimulus, &read_frame(path)?)?;
        }
    }
    let options = ReconstructOptions {
        samples: r.samples,
        strength: r.strength,
        steps: r.steps,
        guidance: r.guidance,
        seed: r.seed,
        sample_posterior: false,
        batch: r.samples,
        ..ReconstructOptions::default()
    };
    let mut sources = vec![("", &z_hat, &c_hat, r.samples)];
    if r.ceiling {
        sources.push((CEILING_DIR, &z_own, &c_own, 1));
    }
    let mut sets = Vec::new();
    for (folder, z_rows, c_rows, samples) in sources {
        let root = stage.join(folder);
        let options = ReconstructOptions {
            samples,
            ..options.clone()
        };
        let label = match folder {
            "" => "EEG reconstructions".to_string(),
            _ => "from the images' own embeddings".to_string(),
        };
        let hw = image_size / sd.vae_scale_factor();
        img2img_all(
            &sd, &root, &options, z_rows, c_rows, n, hw, &label, r.progress,
        )?;
        let prefix = match folder {
            "" => String::new(),
            _ => "own embedding, ".to_string(),
        };
        let named = std::iter::once((format!("{prefix}decoded z"), Manifest::decoded_z_dir(&root)))
            .chain((1..=samples).map(|k| {
                (
                    format!("{prefix}sample {k}"),
                    Manifest::sample_dir(&root, k),
                )
            }));
        for (name, dir) in named {
            let relative = dir.strip_prefix(&stage).unwrap_or(&dir).to_path_buf();
            sets.push(score(&name, &dir, &stimuli, &r.out.join(relative))?);
        }
    }
    let comparison = stage.join("comparison.png");
    write_comparison(&stage, n, r.samples, r.ceiling, &comparison)?;
    let report = EegReconstructReport {
        out: r.out.clone(),
        already_done: false,
        subject: decoder.meta.test_subject.clone(),
        decoder: r.decoder.clone(),
        images: n,
        features,
        sets,
        comparison: r.out.join("comparison.png"),
        seconds: started.elapsed().as_secs_f64(),
    };
    write_json_atomic(&stage.join(REPORT_FILE), &report)?;
    dir.commit()?;
    Ok(report)
}

/// For each of `n` images: the VAE decode of its z row ([4, hw, hw]) to `root/decoded-z/<i>.png`, then
/// img2img from it under its c row to `root/sample-<k>/<i>.png` (each skipped when present).
#[allow(clippy::too_many_arguments)]
fn img2img_all(
    sd: &StableDiffusion,
    root: &Path,
    options: &ReconstructOptions,
    z_rows: &[f32],
    c_rows: &[f32],
    n: usize,
    hw: usize,
    label: &str,
    show_progress: bool,
) -> Result<()> {
    let dirs = std::iter::once(Manifest::decoded_z_dir(root))
        .chain((1..=options.samples).map(|k| Manifest::sample_dir(root, k)));
    for dir in dirs {
        std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
    }
    let uncond = unconditional(sd, options.guidance)?;
    let progress = bar((n * options.samples) as u64, label, show_progress);
    let mut counts = Counts::default();
    for i in 0..n {
        let z_image = decoded_z_image(sd, root, z_rows, hw, i, i, &mut counts)?;
        let context = Conditioning {
            cond: context_row(sd, c_rows, i)?,
            uncond: uncond.clone(),
        };
        let pixels = init_pixels(sd, &z_image)?;
        sample_images(
            sd,
            root,
            options,
            i,
            &context,
            Some(&pixels),
            false,
            &mut counts,
            &progress,
        )?;
    }
    progress.finish_and_clear();
    Ok(())
}

/// `folder` scored against the stimuli as `brainrecon eval` scores a folder of PNGs; `recorded`
/// is where the folder will be once the run is committed.
fn score(name: &str, folder: &Path, stimuli: &Path, recorded: &Path) -> Result<ScoredSet> {
    let evaluated = eval(
        &EvalRequest {
            stimuli: stimuli.to_path_buf(),
            recons: folder.to_path_buf(),
            clip: None,
            metric_weights: None,
            protocol: "mindeye".into(),
            device: brainrecon_core::Device::Cpu,
            rows_per_page: 20,
            thumbnail: 64,
            captions: None,
            meteor_jar: None,
            clip_score_model: None,
            sheet: None,
            command: String::new(),
        },
        crate::score::evaluate::no_extras,
    )?;
    let Evaluated::Folder(scores) = &evaluated else {
        return Err(RouteError::Usage(format!(
            "{}: expected a folder of PNGs, found a reconstruction run",
            folder.display()
        )));
    };
    Ok(ScoredSet {
        name: name.to_string(),
        dir: recorded.to_path_buf(),
        pixcorr: scores.table.pixcorr,
        ssim: scores.table.ssim,
        two_way_pixels: scores.table.two_way_pixels,
        scores: serde_json::to_value(&evaluated).map_err(|e| {
            RouteError::Usage(format!("{name}: the scores could not be recorded: {e}"))
        })?,
        text: evaluated.text(),
    })
}

/// Up to 8 rows of stimulus | decoded z | samples (| the own embedding's sample), 64 px a cell.
fn write_comparison(
    stage: &Path,
    n: usize,
    samples: usize,
    ceiling: bool,
    path: &Path,
) -> Result<()> {
    let mut rows = Vec::new();
    for i in 0..n.min(8) {
        let file = format!("{i}.png");
        let mut row = vec![
            read_png(&stage.join("stimuli").join(&file))?,
            read_png(&Manifest::decoded_z_dir(stage).join(&file))?,
        ];
        for k in 1..=samples {
            row.push(read_png(&Manifest::sample_dir(stage, k).join(&file))?);
        }
        if ceiling {
            let own = Manifest::sample_dir(&stage.join(CEILING_DIR), 1);
            row.push(read_png(&own.join(&file))?);
        }
        rows.push(row);
    }
    write_png(path, &comparison_grid(&rows, 64))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_concept_folder_gives_its_words() {
        assert_eq!(concept_words("00042_small_red_circle"), "small red circle");
        assert_eq!(concept_words("00001_aardvark"), "aardvark");
        assert_eq!(concept_words("aardvark"), "aardvark");
        assert_eq!(concept_words("ice_cream"), "ice cream");
    }

    #[test]
    fn decoded_columns_take_the_reference_moments() {
        // column 0: mean 2, sd 1 → reference mean 10, sd 2; column 1 constant → mean 5
        let decoded = [1.0, 7.0, 3.0, 7.0];
        let reference = [8.0, 4.0, 12.0, 6.0];
        assert_eq!(
            match_moments(&decoded, &reference, 2),
            [8.0, 5.0, 12.0, 5.0]
        );
    }
}
