//! Evaluation of a reconstruction directory: the metric table, its JSON, and the HTML report.
//!
//! Images are compared at the stimulus size of the prepared subject (reconstructions are
//! resampled to it with bicubic filtering), so rows of different image sizes stay comparable.
//! Rows: the decoded-z images, the mean over the reconstruction samples, and the decoded
//! features themselves (latent MSE, per-image Pearson, two-way identification in latent space
//! on features centred by the training images' mean).

use crate::decoders::Decoder;
use crate::error::{Result, RouteError};
use crate::features::{feature_paths, load_features, FeatureKind};
use crate::linear::Manifest;
use crate::report::{DecoderAccuracy, GridRow, MetricRow, Report};
use brainrecon_data::atomic::write_json_atomic;
use brainrecon_data::image::{read_png, Filter, RgbImage};
use brainrecon_data::npy;
use brainrecon_data::prepared::PreparedSubject;
use brainrecon_metrics::{identification, vector, MetricsTable};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Embeds images for identification in a model's space (CLIP image embeddings).
pub trait ImageEmbedder {
    /// A name for the table, e.g. the model id.
    fn name(&self) -> String;
    /// One embedding per image.
    fn embed(&self, images: &[RgbImage]) -> Result<Vec<Vec<f32>>>;
}

/// One row of the metric table; metrics that do not apply are `None`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct EvalRow {
    pub name: String,
    pub n_images: usize,
    pub pixcorr: Option<f64>,
    pub ssim: Option<f64>,
    pub mse: Option<f64>,
    pub two_way_pixels: Option<f64>,
    pub two_way_clip: Option<f64>,
    pub latent_mse: Option<f64>,
    pub latent_pcc: Option<f64>,
    pub two_way_latent: Option<f64>,
}

impl EvalRow {
    pub const COLUMNS: [&'static str; 8] = [
        "PixCorr ↑",
        "SSIM ↑",
        "pixel MSE ↓",
        "2-way pixels ↑",
        "2-way CLIP ↑",
        "latent MSE ↓",
        "latent PCC ↑",
        "2-way latent ↑",
    ];

    pub fn values(&self) -> [Option<f64>; 8] {
        [
            self.pixcorr,
            self.ssim,
            self.mse,
            self.two_way_pixels,
            self.two_way_clip,
            self.latent_mse,
            self.latent_pcc,
            self.two_way_latent,
        ]
    }
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub result: PathBuf,
    pub method: String,
    pub n_test: usize,
    /// Images are compared at size × size.
    pub size: usize,
    pub clip_model: Option<String>,
    pub rows: Vec<EvalRow>,
    pub metrics_json: PathBuf,
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
        Ok(())
    }
}

/// How to evaluate.
pub struct EvalOptions<'a> {
    pub clip: Option<&'a dyn ImageEmbedder>,
    /// Grid rows per report page, and thumbnail size (px).
    pub rows_per_page: usize,
    pub thumbnail: usize,
    /// The command line, recorded in the report.
    pub command: String,
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

/// Images of one set, in `ids` order, resampled to size × size.
fn read_set(set: &str, dir: &Path, ids: &[usize], size: usize) -> Result<Vec<RgbImage>> {
    let missing: Vec<usize> = ids
        .iter()
        .copied()
        .filter(|id| !dir.join(format!("{id}.png")).exists())
        .collect();
    if !missing.is_empty() {
        return Err(missing_images(set, dir, &missing));
    }
    ids.iter()
        .map(|id| {
            let image = read_png(&dir.join(format!("{id}.png")))?;
            Ok(image.resize_with(size, size, Filter::Bicubic))
        })
        .collect()
}

fn image_metrics(
    name: &str,
    truths: &[RgbImage],
    recons: &[RgbImage],
    size: usize,
    clip: Option<(&dyn ImageEmbedder, &[Vec<f32>])>,
) -> Result<EvalRow> {
    let t: Vec<Vec<f32>> = truths.iter().map(RgbImage::to_unit_f32).collect();
    let r: Vec<Vec<f32>> = recons.iter().map(RgbImage::to_unit_f32).collect();
    let table = MetricsTable::from_rgb_pairs(&t, &r, size, size)?;
    let two_way_clip = match clip {
        Some((embedder, truth_embeds)) if truths.len() >= 2 => {
            let recon_embeds = embedder.embed(recons)?;
            let d = truth_embeds[0].len();
            Some(identification::two_way_identification(
                &recon_embeds.concat(),
                &truth_embeds.concat(),
                truths.len(),
                d,
            )?)
        }
        _ => None,
    };
    Ok(EvalRow {
        name: name.into(),
        n_images: truths.len(),
        pixcorr: Some(table.pixcorr),
        ssim: Some(table.ssim),
        mse: Some(table.mse),
        two_way_pixels: table.two_way_pixels,
        two_way_clip,
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
        two_way_clip: mean(|r| r.two_way_clip),
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
    let stimuli = subject.images()?;
    let row_of = |id: &usize| {
        stimuli.ids.binary_search(id).map_err(|_| {
            RouteError::mismatch(
                &subject.path("stimuli/ids.npy"),
                "ids",
                format!("image {id}"),
                "missing",
            )
        })
    };
    let mut truth = Vec::with_capacity(ids.len() * d);
    for id in ids {
        let row = row_of(id)?;
        truth.extend_from_slice(&values[row * d..(row + 1) * d]);
    }
    let train = subject.train_image_ids()?;
    let mut center = vec![0f64; d];
    for id in &train {
        let row = row_of(id)?;
        for (c, v) in center.iter_mut().zip(&values[row * d..(row + 1) * d]) {
            *c += *v as f64;
        }
    }
    let center: Vec<f32> = center
        .iter()
        .map(|c| (c / train.len().max(1) as f64) as f32)
        .collect();
    let mut row = latent_metrics(&decoded.data, &truth, &center, ids.len(), d)?;
    row.name = name.into();
    Ok(Some(row))
}

/// Evaluates the reconstruction directory `dir` against `subject`, writes
/// `<dir>/eval/metrics.json` and the report `<dir>/eval/report.html`.
pub fn evaluate(
    subject: &PreparedSubject,
    dir: &Path,
    options: &EvalOptions,
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
    let truths: Vec<RgbImage> = ids
        .iter()
        .map(|&id| {
            stimuli
                .get(id)
                .map(|im| im.resize_with(size, size, Filter::Bicubic))
                .ok_or_else(|| {
                    RouteError::mismatch(
                        &subject.path("stimuli/ids.npy"),
                        "ids",
                        format!("test image {id} of {}", dir.display()),
                        "missing",
                    )
                })
        })
        .collect::<Result<_>>()?;
    let truth_embeds = match options.clip {
        Some(clip) => Some(clip.embed(&truths)?),
        None => None,
    };
    let clip = options.clip.zip(truth_embeds.as_deref());

    let mut rows = Vec::new();
    let mut columns = vec!["stimulus".to_string()];
    let mut sets = Vec::new();
    let mut sample_rows = Vec::new();
    for (name, set_dir) in manifest.image_sets(dir) {
        let images = read_set(&name, &set_dir, ids, size)?;
        let row = image_metrics(&name, &truths, &images, size, clip)?;
        if name.starts_with("sample") {
            sample_rows.push(row);
        } else {
            rows.push(row);
        }
        columns.push(name);
        sets.push(images);
    }
    if !sample_rows.is_empty() {
        let name = format!(
            "reconstruction (mean of {})",
            if sample_rows.len() == 1 {
                "1 sample".to_string()
            } else {
                format!("{} samples", sample_rows.len())
            }
        );
        rows.push(mean_row(&name, &sample_rows));
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
                label: format!("{id}"),
                images: std::iter::once(Some(truths[i].clone()))
                    .chain(sets.iter().map(|set| Some(set[i].clone())))
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
        decoders,
        rows_per_page: options.rows_per_page,
        thumbnail: options.thumbnail,
    };
    let mut evaluation = Evaluation {
        result: dir.to_path_buf(),
        method: manifest.options.method.name().into(),
        n_test: ids.len(),
        size,
        clip_model: options.clip.map(|c| c.name()),
        rows: evaluation_rows,
        metrics_json: metrics_json.clone(),
        report: Vec::new(),
    };
    let mut report = report;
    report.command = format!("{}\n{}", manifest.command, options.command);
    evaluation.report = crate::report::write_report(&eval_dir.join("report.html"), &report)?;
    write_json_atomic(&metrics_json, &evaluation)?;
    Ok(evaluation)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(mean.two_way_clip, None);
        assert_eq!(mean.n_images, 3);
    }
}
