//! Evaluation of a reconstruction directory: the metric table, its JSON, and the HTML report.
//!
//! Images are compared at the stimulus size of the prepared subject (reconstructions are
//! resampled to it with bicubic filtering), so rows of different image sizes stay comparable.
//! Rows: the decoded-z images, the mean over the reconstruction samples, and the decoded
//! features themselves (latent MSE, per-image Pearson, two-way identification in latent space
//! on features centred by the training images' mean).

use crate::decode::decoders::Decoder;
use crate::decode::features::{
    feature_paths, load_features, mean_of_ids, rows_for_ids, FeatureKind,
};
use crate::error::{Result, RouteError};
use crate::linear::Manifest;
use crate::score::report::{DecoderAccuracy, GridRow, MetricRow, Report, Table};
use crate::score::suite::{self, Absent, Networks, Protocol, SuiteRow};
use brainrecon_core::fs::write_json_atomic;
use brainrecon_datasets::prepared::{PreparedSubject, Stimuli};
use brainrecon_formats::image::{read_png, Filter, RgbImage};
use brainrecon_formats::npy;
use brainrecon_metrics::{identification, vector, MetricsTable};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One row of the metric table; metrics that do not apply are `None`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct EvalRow {
    /// What the row scores: an image set ("decoded z", "sample 1", the mean over samples) or
    /// decoded features.
    pub name: String,
    /// Test images scored.
    pub n_images: usize,
    /// PixCorr: mean Pearson r over flattened RGB values (higher is better).
    pub pixcorr: Option<f64>,
    /// Mean SSIM of the grayscale images (skimage's settings, as MindEye).
    pub ssim: Option<f64>,
    /// Mean per-image MSE of RGB values in [0, 1].
    pub mse: Option<f64>,
    /// Two-way identification with raw pixels as features (chance 0.5).
    pub two_way_pixels: Option<f64>,
    /// Mean per-image MSE of decoded and true features.
    pub latent_mse: Option<f64>,
    /// Mean per-image Pearson r of decoded and true features.
    pub latent_pcc: Option<f64>,
    /// Two-way identification in feature space, on features centred by the training images' mean.
    pub two_way_latent: Option<f64>,
    /// B2C: mean cosine of the encoder's context and the true CLIP text context.
    pub context_cosine: Option<f64>,
    /// B2C: two-way identification of the true context from the encoder's.
    pub context_two_way: Option<f64>,
}

impl EvalRow {
    /// Column headers of [`EvalRow::values`], with the better direction.
    pub const COLUMNS: [&'static str; 9] = [
        "PixCorr ↑",
        "SSIM ↑",
        "pixel MSE ↓",
        "2-way pixels ↑",
        "latent MSE ↓",
        "latent PCC ↑",
        "2-way latent ↑",
        "context cos ↑",
        "ctx pair ID ↑",
    ];

    /// The metrics in [`EvalRow::COLUMNS`] order.
    pub fn values(&self) -> [Option<f64>; 9] {
        [
            self.pixcorr,
            self.ssim,
            self.mse,
            self.two_way_pixels,
            self.latent_mse,
            self.latent_pcc,
            self.two_way_latent,
            self.context_cosine,
            self.context_two_way,
        ]
    }
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// The reconstruction folder evaluated.
    pub result: PathBuf,
    /// The run's route (see [`crate::linear::Method::name`]).
    pub method: String,
    /// Test images compared.
    pub n_test: usize,
    /// Images are compared at size × size.
    pub size: usize,
    /// The CLIP model of the suite's CLIP identification, when one was loaded.
    pub clip_model: Option<String>,
    /// The route's own metric table.
    pub rows: Vec<EvalRow>,
    /// The field's eight metrics (MindEye2's Table 1) for every image set.
    pub suite: SuiteTable,
    /// Caption metrics of the decoded captions, when there are some.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub captions: Option<brainrecon_metrics::CaptionScores>,
    /// `<dir>/eval/metrics.json`, this evaluation as JSON.
    pub metrics_json: PathBuf,
    /// The HTML report's pages.
    pub report: Vec<PathBuf>,
}

impl std::fmt::Display for Evaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} test images, {} route, compared at {}×{} px",
            self.n_test, self.method, self.size, self.size
        )?;
        write!(f, "{:<36}", "")?;
        for c in EvalRow::COLUMNS {
            write!(f, "{c:>15}")?;
        }
        writeln!(f)?;
        for row in &self.rows {
            write!(f, "{:<36}", row.name)?;
            for v in row.values() {
                match v {
                    Some(v) => write!(f, "{v:>15.4}")?,
                    None => write!(f, "{:>15}", "—")?,
                }
            }
            writeln!(f)?;
        }
        write!(f, "{}", self.suite)?;
        if let Some(c) = &self.captions {
            let or_dash = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.1}"));
            writeln!(
                f,
                "decoded captions ({} images): BLEU-1 {:.1}, BLEU-4 {:.1}, METEOR {}, ROUGE-L {:.1}, \
                 CIDEr {:.1}, CLIP-S {}, RefCLIP-S {}",
                c.n_items,
                c.bleu_1,
                c.bleu_4,
                or_dash(c.meteor),
                c.rouge_l,
                c.cider,
                or_dash(c.clip_s),
                or_dash(c.ref_clip_s)
            )?;
        }
        Ok(())
    }
}

/// The field's metric suite of an evaluation (see [`crate::score::suite`]).
#[derive(Debug, Clone, Serialize)]
pub struct SuiteTable {
    /// Whose preprocessing the suite follows.
    pub protocol: Protocol,
    /// Headers with units: two-way identification in percent.
    pub columns: Vec<String>,
    /// One row per image set, then the mean over the samples.
    pub rows: Vec<SuiteRow>,
    /// Metrics whose network could not be loaded, and the command that supplies it.
    pub absent: Vec<Absent>,
    /// Per image set: an .npy of (images × 8) values, NaN where absent.
    pub per_image: Vec<PathBuf>,
}

impl std::fmt::Display for SuiteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "the field's metrics ({} protocol):",
            self.protocol.name()
        )?;
        write!(f, "{:<36}", "")?;
        for c in &self.columns {
            write!(f, "{c:>15}")?;
        }
        writeln!(f)?;
        for row in &self.rows {
            write!(f, "{:<36}", row.name)?;
            for (v, percent) in crate::score::suite::display_values(&row.values)
                .iter()
                .zip(crate::score::suite::PERCENT)
            {
                match v {
                    Some(v) if percent => write!(f, "{v:>14.1}%")?,
                    Some(v) => write!(f, "{v:>15.3}")?,
                    None => write!(f, "{:>15}", "—")?,
                }
            }
            writeln!(f)?;
        }
        for a in &self.absent {
            writeln!(f, "{}: absent ({}); {}", a.metric, a.reason, a.supply)?;
        }
        Ok(())
    }
}

/// How to evaluate.
pub struct EvalOptions<'a> {
    /// The networks of the metric suite (possibly none of them: PixCorr and SSIM need none).
    pub suite: &'a Networks,
    /// Grid rows per report page, and thumbnail size (px).
    pub rows_per_page: usize,
    /// Thumbnail side in the report (px).
    pub thumbnail: usize,
    /// The command line, recorded in the report.
    pub command: String,
    /// Captions to score (default: the run's own, for `--method caption`).
    pub captions: Option<&'a Path>,
    /// pycocoevalcap's `meteor-1.5.jar`, for METEOR.
    pub meteor_jar: Option<&'a Path>,
    /// CLIP model of CLIP-S / RefCLIP-S (clipscore.py's ViT-B/32), when available.
    pub clip_score_model: Option<&'a brainrecon_diffusion::clip_model::ClipModel>,
}

fn missing_images(set: &str, dir: &Path, missing: &[usize]) -> RouteError {
    RouteError::Missing {
        path: dir.to_path_buf(),
        what: format!(
            "{} of the {set} images, e.g. {}.png; finish the run with the same \
             `brainrecon reconstruct` command (it resumes)",
            missing.len(),
            missing[0]
        ),
    }
}

/// Images of one set, in `ids` order, as stored.
fn read_set(set: &str, dir: &Path, ids: &[usize]) -> Result<Vec<RgbImage>> {
    let missing: Vec<usize> = ids
        .iter()
        .copied()
        .filter(|id| !dir.join(format!("{id}.png")).exists())
        .collect();
    if !missing.is_empty() {
        return Err(missing_images(set, dir, &missing));
    }
    ids.iter()
        .map(|id| Ok(read_png(&dir.join(format!("{id}.png")))?))
        .collect()
}

/// Images resampled to size × size (bicubic) for the table of [`image_metrics`].
fn at_size(images: &[RgbImage], size: usize) -> Vec<RgbImage> {
    images
        .iter()
        .map(|im| im.resize_with(size, size, Filter::Bicubic))
        .collect()
}

fn image_metrics(
    name: &str,
    truths: &[RgbImage],
    recons: &[RgbImage],
    size: usize,
) -> Result<EvalRow> {
    let t: Vec<Vec<f32>> = truths.iter().map(RgbImage::to_unit_f32).collect();
    let r: Vec<Vec<f32>> = recons.iter().map(RgbImage::to_unit_f32).collect();
    let table = MetricsTable::from_rgb_pairs(&t, &r, size, size)?;
    Ok(EvalRow {
        name: name.into(),
        n_images: truths.len(),
        pixcorr: Some(table.pixcorr),
        ssim: Some(table.ssim),
        mse: Some(table.mse),
        two_way_pixels: table.two_way_pixels,
        ..EvalRow::default()
    })
}

/// Mean of each metric over rows (samples of the same route).
fn mean_row(name: &str, rows: &[EvalRow]) -> EvalRow {
    let mean = |get: fn(&EvalRow) -> Option<f64>| -> Option<f64> {
        let v: Option<Vec<f64>> = rows.iter().map(get).collect();
        v.filter(|v| !v.is_empty())
            .map(|v| v.iter().sum::<f64>() / v.len() as f64)
    };
    EvalRow {
        name: name.into(),
        n_images: rows.first().map_or(0, |r| r.n_images),
        pixcorr: mean(|r| r.pixcorr),
        ssim: mean(|r| r.ssim),
        mse: mean(|r| r.mse),
        two_way_pixels: mean(|r| r.two_way_pixels),
        latent_mse: mean(|r| r.latent_mse),
        latent_pcc: mean(|r| r.latent_pcc),
        two_way_latent: mean(|r| r.two_way_latent),
        ..EvalRow::default()
    }
}

/// Decoded vs true features of the test images (n, d): latent MSE and mean per-image
/// Pearson on the raw values, and two-way identification after subtracting `center` (the
/// training images' mean, d) from both, so that the pattern every latent shares does not
/// dominate the correlations.
pub fn latent_metrics(
    decoded: &[f32],
    truth: &[f32],
    center: &[f32],
    n: usize,
    d: usize,
) -> Result<EvalRow> {
    assert_eq!(decoded.len(), n * d, "decoded (n, d)");
    assert_eq!(truth.len(), n * d, "truth (n, d)");
    assert_eq!(center.len(), d, "center (d,)");
    let (mut mse, mut pcc) = (0.0, 0.0);
    for i in 0..n {
        let (a, b) = (&decoded[i * d..(i + 1) * d], &truth[i * d..(i + 1) * d]);
        mse += vector::mse(a, b)?;
        pcc += vector::pearson(a, b)?;
    }
    let centered = |rows: &[f32]| -> Vec<f32> {
        rows.iter()
            .enumerate()
            .map(|(k, v)| v - center[k % d])
            .collect()
    };
    Ok(EvalRow {
        n_images: n,
        latent_mse: Some(mse / n as f64),
        latent_pcc: Some(pcc / n as f64),
        two_way_latent: if n >= 2 {
            Some(identification::two_way_identification(
                &centered(decoded),
                &centered(truth),
                n,
                d,
            )?)
        } else {
            None
        },
        ..EvalRow::default()
    })
}

/// Decoded features (out/decoded/<name>.npy) against the features the decoder was fit on.
fn decoded_feature_row(
    subject: &PreparedSubject,
    dir: &Path,
    decoder: &Decoder,
    kind: FeatureKind,
    name: &str,
    ids: &[usize],
) -> Result<Option<EvalRow>> {
    let decoded_path = dir.join("decoded").join(format!("{}.npy", decoder.target));
    let source = decoder
        .model
        .metadata
        .get("target_source")
        .and_then(|v| v.as_str())
        .map(PathBuf::from);
    let Some(features_dir) = source.as_deref().and_then(Path::parent) else {
        return Ok(None);
    };
    if !feature_paths(features_dir, kind).0.exists() || !decoded_path.exists() {
        return Ok(None);
    }
    let (meta, values) = load_features(subject, features_dir, kind)?;
    let d = meta.width();
    let decoded = npy::read_f32(&decoded_path)?;
    if decoded.data.len() != ids.len() * d {
        return Err(RouteError::mismatch(
            &decoded_path,
            "shape",
            format!("{} rows of {d} values", ids.len()),
            format!("{:?}", decoded.shape),
        ));
    }
    // A decoder that wrote NaN is refused naming its file, not scored (metrics::rank).
    brainrecon_metrics::require_finite(&decoded_path.display().to_string(), &decoded.data, d)?;
    let truth = rows_for_ids(subject, &values, d, ids)?;
    let center = mean_of_ids(subject, &values, d, &subject.train_image_ids()?)?;
    let mut row = latent_metrics(&decoded.data, &truth, &center, ids.len(), d)?;
    row.name = name.into();
    Ok(Some(row))
}

/// The suite's table and the published rows, for the report.
fn suite_report_tables(suite: &SuiteTable, networks: &Networks) -> Vec<Table> {
    let mut note = format!(
        "Computed as the {} protocol computes them (see the README): two-way identification in percent (chance 50%), \
         EffNet-B and SwAV as mean correlation distance (lower is better).",
        suite.protocol.name()
    );
    for a in &suite.absent {
        note.push_str(&format!(
            " {} absent ({}): {}.",
            a.metric, a.reason, a.supply
        ));
    }
    if let Some(clip) = &networks.clip_name {
        note.push_str(&format!(" CLIP: {clip}."));
    }
    let ours = Table {
        title: "The field's metrics (MindEye2's Table 1 columns)".into(),
        columns: suite.columns.clone(),
        rows: suite
            .rows
            .iter()
            .map(|r| MetricRow {
                name: r.name.clone(),
                values: suite::display_values(&r.values),
            })
            .collect(),
        note,
    };
    let published = Table {
        title: "Published, for comparison (real NSD)".into(),
        columns: suite.columns.clone(),
        rows: suite::PUBLISHED
            .iter()
            .map(|(name, source, values)| MetricRow {
                name: format!("{name} ({source})"),
                values: suite::display_values(&values.map(Some)),
            })
            .collect(),
        note: "These rows are real-NSD results reported by others (MindEye2's paper and repository), not \
               computed here; numbers from the synthetic subject are not comparable with them."
            .into(),
    };
    vec![ours, published]
}

/// The metric suite over every image set (and the mean over the samples), with a progress
/// bar; per-image values go to `per_image_dir`.
fn suite_table(
    stimuli: &[RgbImage],
    sets: &[(String, Vec<RgbImage>)],
    networks: &Networks,
    per_image_dir: &Path,
    samples_name: &dyn Fn(usize) -> String,
) -> Result<SuiteTable> {
    let protocol = networks.protocol;
    let passes = (networks.passes() * stimuli.len() * (sets.len() + 1)) as u64;
    let show = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let bar = crate::progress::bar(passes, "metric networks", show);
    let tick = |k: u64| bar.inc(k);
    let truth = suite::prepare(stimuli, protocol);
    let truth_features = networks.features(&truth, &tick)?;
    let mut rows = Vec::new();
    let mut samples = Vec::new();
    for (name, images) in sets {
        let recon = suite::prepare(images, protocol);
        let features = networks.features(&recon, &tick)?;
        let row = suite::score(name, &truth, &truth_features, &recon, &features, protocol)?;
        if name.starts_with("sample") {
            samples.push(row);
        } else {
            rows.push(row);
        }
    }
    bar.finish_and_clear();
    if !samples.is_empty() {
        rows.push(SuiteRow::mean(&samples_name(samples.len()), &samples));
        rows.splice(rows.len() - 1..rows.len() - 1, samples);
    }
    std::fs::create_dir_all(per_image_dir)
        .map_err(|e| brainrecon_core::DataError::io(per_image_dir, e))?;
    let per_image = rows
        .iter()
        .map(|row| suite::write_per_image(per_image_dir, row))
        .collect::<Result<_>>()?;
    Ok(SuiteTable {
        protocol,
        columns: suite::column_headers(),
        rows,
        absent: networks.absent.clone(),
        per_image,
    })
}

/// What an evaluation has read, handed to the routes' [`EvalExtras`].
#[derive(Clone, Copy)]
pub struct EvalContext<'a> {
    /// The prepared subject the reconstructions are of.
    pub subject: &'a PreparedSubject,
    /// The reconstruction folder.
    pub dir: &'a Path,
    /// Its manifest.
    pub manifest: &'a Manifest,
    /// The evaluation's options.
    pub options: &'a EvalOptions<'a>,
    /// The subject's stimulus images.
    pub stimuli: &'a Stimuli,
}

/// A route's own part of an evaluation, as nilearn's estimators supply their report section:
/// the evaluator calls these at fixed points and imports no route. Every method adds nothing
/// by default.
pub trait EvalExtras {
    /// Latent scores of sample sets 1..=samples, in order, copied into the samples' rows (B2C's
    /// final latents); empty when the route has none.
    fn sample_latents(&self) -> Result<Vec<EvalRow>> {
        Ok(Vec::new())
    }
    /// Rows after the reconstructions' (B2C's context row).
    fn rows(&self) -> Result<Vec<EvalRow>> {
        Ok(Vec::new())
    }
    /// Scores kept in `metrics.json` and tables added to the report after the suite's.
    fn section(&self) -> Result<ReportSection> {
        Ok(ReportSection::default())
    }
    /// Text shown beside test image `id` in the report's grid (its decoded caption).
    fn label(&self, _id: usize) -> Option<String> {
        None
    }
}

/// A route's section of an evaluation.
#[derive(Debug, Default)]
pub struct ReportSection {
    /// Caption metrics of decoded captions, kept in `metrics.json` as `captions`.
    pub captions: Option<brainrecon_metrics::CaptionScores>,
    /// Tables for the report.
    pub tables: Vec<Table>,
}

/// Finds the routes' extras for an evaluation from what it has read; the crate's top knows the
/// image routes and supplies the finder for them.
pub type ExtrasFinder = for<'a> fn(&EvalContext<'a>) -> Result<Vec<Box<dyn EvalExtras + 'a>>>;

/// The finder of an evaluation with no route's extras.
pub fn no_extras<'a>(_: &EvalContext<'a>) -> Result<Vec<Box<dyn EvalExtras + 'a>>> {
    Ok(Vec::new())
}

/// Evaluates the reconstruction directory `dir` against `subject`, writes
/// `<dir>/eval/metrics.json` and the report `<dir>/eval/report.html`.
pub fn evaluate(
    subject: &PreparedSubject,
    dir: &Path,
    options: &EvalOptions,
    find_extras: ExtrasFinder,
) -> Result<Evaluation> {
    let manifest = Manifest::load(dir)?;
    if manifest.subject != subject.meta.subject {
        return Err(RouteError::mismatch(
            &dir.join(Manifest::FILE),
            "subject",
            &subject.meta.subject,
            &manifest.subject,
        ));
    }
    let ids = &manifest.ids;
    let [h, w] = subject.meta.image_size;
    let size = h.min(w).max(11);
    let stimuli = subject.images()?;
    let native: Vec<RgbImage> = ids
        .iter()
        .map(|&id| {
            stimuli.get(id).ok_or_else(|| {
                RouteError::mismatch(
                    &subject.path("stimuli/ids.npy"),
                    "ids",
                    format!("test image {id} of {}", dir.display()),
                    "missing",
                )
            })
        })
        .collect::<Result<_>>()?;
    let truths = at_size(&native, size);
    let sets: Vec<(String, Vec<RgbImage>)> = manifest
        .image_sets(dir)
        .into_iter()
        .map(|(name, set_dir)| Ok((name.clone(), read_set(&name, &set_dir, ids)?)))
        .collect::<Result<_>>()?;

    let mut rows = Vec::new();
    let mut columns = vec!["stimulus".to_string()];
    let mut sample_rows = Vec::new();
    let mut resized = Vec::new();
    let context = EvalContext {
        subject,
        dir,
        manifest: &manifest,
        options,
        stimuli: &stimuli,
    };
    let extras = find_extras(&context)?;
    let mut latent_rows = Vec::new();
    for extra in &extras {
        if latent_rows.is_empty() {
            latent_rows = extra.sample_latents()?;
        }
    }
    for (name, images) in &sets {
        let images = at_size(images, size);
        let mut row = image_metrics(name, &truths, &images, size)?;
        if name.starts_with("sample") {
            if let Some(latent) = latent_rows.get(sample_rows.len()) {
                row.latent_mse = latent.latent_mse;
                row.latent_pcc = latent.latent_pcc;
                row.two_way_latent = latent.two_way_latent;
            }
            sample_rows.push(row);
        } else {
            rows.push(row);
        }
        columns.push(name.clone());
        resized.push(images);
    }
    let samples_name = |count: usize| {
        format!(
            "reconstruction (mean of {})",
            if count == 1 {
                "1 sample".to_string()
            } else {
                format!("{count} samples")
            }
        )
    };
    if !sample_rows.is_empty() {
        rows.push(mean_row(&samples_name(sample_rows.len()), &sample_rows));
    }
    let suite = suite_table(
        &native,
        &sets,
        options.suite,
        &dir.join("eval").join("suite"),
        &samples_name,
    )?;

    for extra in &extras {
        rows.extend(extra.rows()?);
    }
    let mut decoders = Vec::new();
    for (path, kind, name) in [
        (
            &manifest.z_decoder,
            FeatureKind::Vae,
            "decoded z (features)",
        ),
        (
            &manifest.c_decoder,
            FeatureKind::ClipText,
            "decoded c (features)",
        ),
    ] {
        let Some(path) = path else { continue };
        let decoder = Decoder::load(path)?;
        if let Some(row) = decoded_feature_row(subject, dir, &decoder, kind, name, ids)? {
            rows.push(row);
        }
        decoders.push(DecoderAccuracy {
            name: decoder.target.clone(),
            roi: decoder.roi.clone(),
            n_voxels: decoder.model.n_features(),
            cv_score: decoder
                .model
                .best_cv_scores()
                .iter()
                .map(|&s| s as f64)
                .collect(),
            test_r: decoder.test_r()?,
            alpha_at_edge: decoder.alpha_at_edge(),
        });
    }

    let mut tables = suite_report_tables(&suite, options.suite);
    let mut caption_scores = None;
    for extra in &extras {
        let section = extra.section()?;
        caption_scores = caption_scores.or(section.captions);
        tables.extend(section.tables);
    }
    let label = |id: usize| {
        extras
            .iter()
            .find_map(|extra| extra.label(id))
            .map_or_else(|| format!("{id}"), |text| format!("{id} · {text}"))
    };
    let eval_dir = dir.join("eval");
    let evaluation_rows = rows.clone();
    let metrics_json = eval_dir.join("metrics.json");
    let report = Report {
        title: format!(
            "{} · {} route",
            manifest.subject,
            manifest.options.method.name()
        ),
        command: manifest.command.clone(),
        model: manifest.model.clone(),
        versions: manifest.versions.clone(),
        columns,
        rows: ids
            .iter()
            .enumerate()
            .map(|(i, id)| GridRow {
                label: label(*id),
                images: std::iter::once(Some(truths[i].clone()))
                    .chain(resized.iter().map(|set| Some(set[i].clone())))
                    .collect(),
            })
            .collect(),
        metrics: rows
            .iter()
            .map(|r| MetricRow {
                name: r.name.clone(),
                values: r.values().to_vec(),
            })
            .collect(),
        metric_columns: EvalRow::COLUMNS.iter().map(|c| c.to_string()).collect(),
        tables,
        decoders,
        rows_per_page: options.rows_per_page,
        thumbnail: options.thumbnail,
    };
    let mut evaluation = Evaluation {
        result: dir.to_path_buf(),
        method: manifest.options.method.name().into(),
        n_test: ids.len(),
        size,
        clip_model: options.suite.clip_name.clone(),
        rows: evaluation_rows,
        suite,
        captions: caption_scores,
        metrics_json: metrics_json.clone(),
        report: Vec::new(),
    };
    let mut report = report;
    report.command = report_command(&manifest.command, &options.command);
    evaluation.report = crate::score::report::write_report(&eval_dir.join("report.html"), &report)?;
    write_json_atomic(&metrics_json, &evaluation)?;
    Ok(evaluation)
}

/// The report's command lines: the reconstruction's, then the evaluation's, each once. The
/// demo runs both steps in one process, so both record the demo's own command line.
fn report_command(reconstruct: &str, eval: &str) -> String {
    let mut lines: Vec<&str> = Vec::new();
    for line in [reconstruct, eval] {
        if !line.is_empty() && !lines.contains(&line) {
            lines.push(line);
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_each_command_once() {
        let demo = "brainrecon demo --out demo";
        assert_eq!(report_command(demo, demo), demo);
        assert_eq!(
            report_command(
                "brainrecon reconstruct --out r",
                "brainrecon eval --recons r"
            ),
            "brainrecon reconstruct --out r\nbrainrecon eval --recons r"
        );
        assert_eq!(report_command("", demo), demo);
    }

    #[test]
    fn perfect_decoding_scores_perfectly_and_shuffled_does_not() {
        // Row i: the shared centre plus a bump at i, so only the centred rows tell images apart.
        let (n, d) = (6, 8);
        let center: Vec<f32> = (0..d).map(|j| 10.0 + j as f32 * 0.1).collect();
        let truth: Vec<f32> = (0..n * d)
            .map(|k| center[k % d] + if k % d == k / d { 5.0 } else { 0.0 })
            .collect();
        let row = latent_metrics(&truth, &truth, &center, n, d).unwrap();
        assert_eq!(row.latent_mse, Some(0.0));
        assert!((row.latent_pcc.unwrap() - 1.0).abs() < 1e-9);
        assert_eq!(row.two_way_latent, Some(1.0));
        // Rows shifted by one: every prediction belongs to another image.
        let shifted: Vec<f32> = truth[d..].iter().chain(&truth[..d]).copied().collect();
        let row = latent_metrics(&shifted, &truth, &center, n, d).unwrap();
        assert_eq!(row.two_way_latent, Some(0.0), "{row:?}");
        assert!(row.latent_mse.unwrap() > 0.0);
    }

    #[test]
    fn sample_rows_are_averaged() {
        let rows = [
            EvalRow {
                name: "sample 1".into(),
                n_images: 3,
                pixcorr: Some(0.2),
                ssim: Some(0.4),
                ..EvalRow::default()
            },
            EvalRow {
                name: "sample 2".into(),
                n_images: 3,
                pixcorr: Some(0.4),
                ssim: Some(0.2),
                ..EvalRow::default()
            },
        ];
        let mean = mean_row("mean", &rows);
        assert!((mean.pixcorr.unwrap() - 0.3).abs() < 1e-12);
        assert!((mean.ssim.unwrap() - 0.3).abs() < 1e-12);
        assert_eq!(mean.two_way_pixels, None);
        assert_eq!(mean.n_images, 3);
    }
}
