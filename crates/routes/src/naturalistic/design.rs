//! Feature bands over time: per-second (or per-TR) feature rows of each run, aligned to the
//! TRs, standardised on the training runs, optionally reduced by PCA, then delayed per run.

use super::text::TextFeaturizer;
use crate::error::{Result, RouteError};
use brainrecon_datasets::ds005531;
use brainrecon_datasets::runs::{RunInfo, RunSet};
use brainrecon_formats::{mat, npy};
use brainrecon_ridge::temporal::{delay, delay_mean, lanczos_interp, tr_mean};
use faer::Mat;
use std::path::{Path, PathBuf};

/// Where a band's features come from.
#[derive(Clone, Debug)]
pub enum BandSource {
    /// The run set's annotations of this kind, through the text model.
    Annotations(String),
    /// `DIR/<run name>.npy` per run (or `DIR/<title>_run-NN_<band>_each1sec.npy`, what
    /// `features text` writes from a dataset's annotation folder): float32 (rows, width), one
    /// row per TR, per second of the run set's rows, or per second from the recording's start
    /// (the dropped seconds are then cut).
    Files(PathBuf),
    /// The dataset's own features of an annotation kind, ds005531's
    /// `derivatives/feature/<title>_run-NN_<kind>_<features>_mean.mat` (`stim`, a row per
    /// second of the movie, dummy seconds included), cut to the run set's rows.
    DatasetFeatures {
        /// The annotation kind (`story`, `objectiveAnnot50chara`, …).
        kind: String,
        /// The features' name in the file name (`GPT2medium_jp_layer12`).
        features: String,
    },
}

/// What the text model made of a band's annotations, over all runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BandText {
    /// Words seen (Word2Vec, here or by `features text` for a folder it wrote; 0 for language
    /// models and other feature files).
    pub words: usize,
    /// Of them, out of the model's vocabulary.
    pub out_of_vocabulary: usize,
    /// Rows (seconds) whose features are all zero, and all rows.
    pub zero_rows: usize,
    /// All rows (seconds) over the runs.
    pub rows: usize,
    /// The model that made a feature folder's files, from its `features.json`.
    pub model: Option<String>,
}

/// One feature band of an encoding model.
#[derive(Clone, Debug)]
pub struct Band {
    /// The band's name in the results (the kind, or NAME of `NAME=DIR`).
    pub name: String,
    /// Where its features come from.
    pub source: BandSource,
}

impl Band {
    /// `kind` (annotations), `kind:FEATURES` (the dataset's own features of the kind, e.g.
    /// `story:GPT2medium_jp_layer12`) or `name=DIR` (feature files).
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = || {
            RouteError::Usage(format!(
                "band {spec:?}: expected KIND, KIND:FEATURES or NAME=DIR"
            ))
        };
        if let (None, Some((kind, features))) = (spec.split_once('='), spec.split_once(':')) {
            if kind.is_empty() || features.is_empty() {
                return Err(bad());
            }
            return Ok(Band {
                name: kind.into(),
                source: BandSource::DatasetFeatures {
                    kind: kind.into(),
                    features: features.into(),
                },
            });
        }
        match spec.split_once('=') {
            Some((name, dir)) if !name.is_empty() && !dir.is_empty() => Ok(Band {
                name: name.into(),
                source: BandSource::Files(dir.into()),
            }),
            Some(_) => Err(bad()),
            None if spec.is_empty() => Err(bad()),
            None => Ok(Band {
                name: spec.into(),
                source: BandSource::Annotations(spec.into()),
            }),
        }
    }
}

impl Band {
    /// An annotation band read as the dataset's features `features` instead, when given
    /// (`encode-runs --dataset-features`); ds005531's English kinds (`*_EN`) take the `_en`
    /// variant of a `_jp` feature name. Other bands are returned as they are.
    pub fn with_dataset_features(self, features: Option<&str>) -> Band {
        match (&self.source, features) {
            (BandSource::Annotations(kind), Some(features)) => {
                let features = if kind.ends_with("_EN") {
                    features.replace("_jp_", "_en_")
                } else {
                    features.to_string()
                };
                Band {
                    source: BandSource::DatasetFeatures {
                        kind: kind.clone(),
                        features,
                    },
                    ..self
                }
            }
            _ => self,
        }
    }
}

/// How per-second rows become per-TR rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// The mean of the seconds inside each TR.
    Mean,
    /// Lanczos resampling (window 3) at the TRs' centres, as Huth-lab code downsamples.
    Lanczos,
}

impl Align {
    /// `mean` or `lanczos`.
    pub fn parse(text: &str) -> Result<Align> {
        match text {
            "mean" => Ok(Align::Mean),
            "lanczos" => Ok(Align::Lanczos),
            other => Err(RouteError::Usage(format!(
                "--align: expected mean or lanczos, found {other}"
            ))),
        }
    }
}

/// How the haemodynamic delay is modelled.
#[derive(Clone, Debug, PartialEq)]
pub enum Delays {
    /// FIR copies at every TR from 2 s to 8 s after the features (1–4 TRs at TR 2 s, as
    /// voxelwise_tutorials; 2–8 at TR 1 s).
    Default,
    /// Concatenated copies shifted by these many TRs (FIR; voxelwise_tutorials' Delayer).
    Fir(Vec<i64>),
    /// The mean of copies shifted by these many TRs (the papers' "average of 8–10 s").
    Mean(Vec<i64>),
}

/// A band's rows for every run, aligned to the TRs: (n_trs, width) each, and what the text
/// model made of its annotations.
pub fn band_rows(
    runs: &RunSet,
    band: &Band,
    featurizer: Option<&TextFeaturizer>,
    align: Align,
) -> Result<(Vec<Mat<f32>>, BandText)> {
    let mut text = BandText::default();
    let rows = (0..runs.runs().len())
        .map(|i| {
            let (rows, width, source) = per_run_rows(runs, i, band, featurizer, &mut text)?;
            let rows = run_rows(runs, i, rows, width, &source)?;
            text.rows += rows.len() / width.max(1);
            text.zero_rows += rows
                .chunks_exact(width.max(1))
                .filter(|r| r.iter().all(|&v| v == 0.0))
                .count();
            align_run(runs, i, &rows, width, align)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((rows, text))
}

/// One run's raw rows (row-major), their width, and the file they came from.
fn per_run_rows(
    runs: &RunSet,
    i: usize,
    band: &Band,
    featurizer: Option<&TextFeaturizer>,
    text: &mut BandText,
) -> Result<(Vec<f32>, usize, PathBuf)> {
    let run = &runs.runs()[i];
    match &band.source {
        BandSource::Annotations(kind) => {
            let featurizer = featurizer.ok_or_else(|| {
                RouteError::Usage(format!("band {kind}: annotations need a text model"))
            })?;
            let markup = ds005531::markup_of_layout(&runs.meta().source.layout);
            let lines: Vec<Vec<String>> = runs
                .annotations(i, kind)?
                .iter()
                .map(|line| ds005531::annotation_segments(markup, kind, line))
                .collect();
            let features = featurizer.segment_features(&lines)?;
            text.words += features.words;
            text.out_of_vocabulary += features.skipped;
            let (_, values) = features.layers.into_iter().next().expect("one layer");
            Ok((values, features.dim, runs.root().join(&run.name)))
        }
        BandSource::Files(dir) => {
            let path = feature_file_of_run(dir, run, &band.name)?;
            // A folder `features text` wrote says what its model made of each file's words.
            if let Some(record) = super::annotations::read_feature_record(dir)? {
                let stem = path.file_stem().unwrap_or_default().to_string_lossy();
                if let Some(file) = record.files.get(stem.as_ref()) {
                    text.words += file.words;
                    text.out_of_vocabulary += file.skipped;
                }
                text.model = Some(record.model);
            }
            let npy::Array { shape, data } = npy::read_f32(&path)?;
            let [_, width] = shape[..] else {
                return Err(RouteError::mismatch(
                    &path,
                    "shape",
                    "(rows, width)",
                    format!("{shape:?}"),
                ));
            };
            Ok((check_finite(data, &path)?, width, path))
        }
        BandSource::DatasetFeatures { kind, features } => {
            let (title, number) = (&run.task, run.run.unwrap_or(1));
            let root = &runs.meta().source.root;
            let path = ds005531::feature_file(root, title, number, kind, features);
            brainrecon_core::error::require_file(&path, "the dataset's features of this run and kind (derivatives/feature/<title>_run-NN_<kind>_<features>_mean.mat)")?;
            let stim = &mat::read_matrices(&path, &["stim"])?[0];
            // MATLAB stores columns first: row r of (seconds, width) is every stim.rows-th value.
            let values: Vec<f32> = (0..stim.rows)
                .flat_map(|r| (0..stim.cols).map(move |c| (r, c)))
                .map(|(r, c)| stim.get(r, c) as f32)
                .collect();
            Ok((check_finite(values, &path)?, stim.cols, path))
        }
    }
}

fn check_finite(values: Vec<f32>, path: &Path) -> Result<Vec<f32>> {
    if values.iter().any(|v| !v.is_finite()) {
        return Err(RouteError::mismatch(
            path,
            "values",
            "finite numbers",
            "NaN or inf",
        ));
    }
    Ok(values)
}

/// `DIR/<run name>.npy`, else `DIR/<title>_run-NN_<band>_each1sec.npy` (the name `features
/// text` gives the features of a dataset's annotation file).
fn feature_file_of_run(dir: &Path, run: &RunInfo, band: &str) -> Result<PathBuf> {
    let by_run = dir.join(format!("{}.npy", run.name));
    if by_run.is_file() {
        return Ok(by_run);
    }
    if let Some(number) = run.run {
        let by_annotation = dir.join(format!("{}_run-{number:02}_{band}_each1sec.npy", run.task));
        if by_annotation.is_file() {
            return Ok(by_annotation);
        }
    }
    Err(RouteError::Missing {
        path: by_run,
        what: format!(
            "features of run {} for band {band} (or {}_run-NN_{band}_each1sec.npy)",
            run.name, run.task
        ),
    })
}

/// Rows of a run as the run set keeps them: rows per TR or per second of the kept volumes
/// pass; rows per second from the recording's start (annotation files as shipped, dummy
/// seconds included, possibly running past the kept volumes) are cut to the kept seconds.
fn run_rows(
    runs: &RunSet,
    i: usize,
    rows: Vec<f32>,
    width: usize,
    source: &Path,
) -> Result<Vec<f32>> {
    let run = &runs.runs()[i];
    let n_rows = rows.len() / width.max(1);
    let seconds = brainrecon_datasets::runs::seconds(run.n_trs, runs.tr());
    if n_rows == run.n_trs || n_rows == seconds {
        return Ok(rows);
    }
    let start = run.start_seconds.round() as usize;
    if start > 0 && n_rows >= start + seconds {
        return Ok(rows[start * width..(start + seconds) * width].to_vec());
    }
    Err(RouteError::mismatch(
        source,
        "rows",
        format!(
            "{} (one per TR), {seconds} (one per second) or at least {} (per second from the recording's start, {start} dropped) for run {}",
            run.n_trs,
            start + seconds,
            run.name
        ),
        n_rows,
    ))
}

/// Rows per second (TR ≠ 1 s) or per TR, as [`run_rows`] passes them → (n_trs, width).
fn align_run(
    runs: &RunSet,
    i: usize,
    rows: &[f32],
    width: usize,
    align: Align,
) -> Result<Mat<f32>> {
    let (n_trs, tr) = (runs.runs()[i].n_trs, runs.tr());
    let n_rows = rows.len() / width.max(1);
    let x = Mat::from_fn(n_rows, width, |r, c| rows[r * width + c]);
    if n_rows == n_trs {
        return Ok(x);
    }
    // `run_rows` has checked (and cut) the rows: here they are one per second.
    debug_assert_eq!(n_rows, brainrecon_datasets::runs::seconds(n_trs, tr));
    let times: Vec<f64> = (0..n_rows).map(|s| s as f64 + 0.5).collect();
    Ok(match align {
        Align::Mean => tr_mean(x.as_ref(), &times, tr, n_trs)?,
        Align::Lanczos => {
            let centres: Vec<f64> = (0..n_trs).map(|k| (k as f64 + 0.5) * tr).collect();
            lanczos_interp(x.as_ref(), &times, &centres, 3)?
        }
    })
}

/// Standardises every run's columns with the mean and std of the training runs' rows
/// (constant columns are centred only).
pub fn standardize(rows: &mut [Mat<f32>], train: &[usize]) {
    let width = rows[0].ncols();
    let n: usize = train.iter().map(|&r| rows[r].nrows()).sum();
    for c in 0..width {
        let values = || {
            train
                .iter()
                .flat_map(|&r| (0..rows[r].nrows()).map(move |i| (r, i)))
        };
        let mean = values().map(|(r, i)| rows[r][(i, c)] as f64).sum::<f64>() / n as f64;
        let var = values()
            .map(|(r, i)| (rows[r][(i, c)] as f64 - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        let scale = if var > 1e-20 { 1.0 / var.sqrt() } else { 1.0 };
        for run in rows.iter_mut() {
            for i in 0..run.nrows() {
                run[(i, c)] = ((run[(i, c)] as f64 - mean) * scale) as f32;
            }
        }
    }
}

/// Projects every run onto the top `k` principal axes of the training rows (already centred).
pub fn pca(rows: &mut [Mat<f32>], train: &[usize], k: usize) -> Result<()> {
    let width = rows[0].ncols();
    if k >= width {
        return Ok(());
    }
    let stacked = stack(rows, train);
    let stacked = Mat::<f64>::from_fn(stacked.nrows(), width, |i, j| stacked[(i, j)] as f64);
    let svd = stacked
        .thin_svd()
        .map_err(|e| RouteError::Usage(format!("PCA: the SVD did not converge ({e:?})")))?;
    let axes = svd.V().subcols(0, k).to_owned();
    for run in rows.iter_mut() {
        let x = Mat::<f64>::from_fn(run.nrows(), width, |i, j| run[(i, j)] as f64);
        let projected = &x * &axes;
        *run = Mat::from_fn(run.nrows(), k, |i, j| projected[(i, j)] as f32);
    }
    Ok(())
}

impl Delays {
    /// FIR delays (`fir`), or the mean of shifted copies (`mean`), or neither for the
    /// default; not both.
    pub fn from_lists(fir: &[i64], mean: &[i64]) -> Result<Delays> {
        match (fir.is_empty(), mean.is_empty()) {
            (true, true) => Ok(Delays::Default),
            (false, true) => Ok(Delays::Fir(fir.to_vec())),
            (true, false) => Ok(Delays::Mean(mean.to_vec())),
            (false, false) => Err(RouteError::Usage(
                "--delays and --delay-mean exclude each other".into(),
            )),
        }
    }
}

impl Delays {
    /// [`Delays::Default`] made explicit for a TR of `tr` seconds.
    pub fn resolve(&self, tr: f64) -> Delays {
        match self {
            Delays::Default => {
                let first = (2.0 / tr).ceil().max(1.0) as i64;
                let last = ((8.0 / tr).floor() as i64).max(first);
                Delays::Fir((first..=last).collect())
            }
            other => other.clone(),
        }
    }
}

/// Delays applied within each run (no row leaks across a run boundary).
pub fn delayed(rows: &[Mat<f32>], delays: &Delays, tr: f64) -> Result<Vec<Mat<f32>>> {
    let delays = delays.resolve(tr);
    rows.iter()
        .map(|x| {
            Ok(match &delays {
                Delays::Default => unreachable!("resolved above"),
                Delays::Fir(d) => delay(x.as_ref(), d)?,
                Delays::Mean(d) => delay_mean(x.as_ref(), d)?,
            })
        })
        .collect()
}

/// The rows of the runs `which`, stacked in that order.
pub fn stack(rows: &[Mat<f32>], which: &[usize]) -> Mat<f32> {
    let width = rows[which[0]].ncols();
    let n: usize = which.iter().map(|&r| rows[r].nrows()).sum();
    let mut out = Mat::<f32>::zeros(n, width);
    let mut at = 0;
    for &r in which {
        let m = rows[r].nrows();
        out.as_mut().subrows_mut(at, m).copy_from(rows[r].as_ref());
        at += m;
    }
    out
}

#[cfg(test)]
mod flag_tests {
    use super::*;

    #[test]
    fn dataset_features_replace_annotation_bands_only() {
        let band = Band::parse("speechTranscription_EN").unwrap();
        let band = band.with_dataset_features(Some("GPT2medium_jp_layer12"));
        match band.source {
            BandSource::DatasetFeatures { kind, features } => {
                assert_eq!(kind, "speechTranscription_EN");
                assert_eq!(features, "GPT2medium_en_layer12");
            }
            other => panic!("{other:?}"),
        }
        let files = Band::parse("w=feats")
            .unwrap()
            .with_dataset_features(Some("x"));
        assert!(matches!(files.source, BandSource::Files(_)));
    }

    #[test]
    fn align_and_delays_from_flags() {
        assert_eq!(Align::parse("lanczos").unwrap(), Align::Lanczos);
        assert!(Align::parse("cubic").is_err());
        assert_eq!(Delays::from_lists(&[], &[]).unwrap(), Delays::Default);
        assert_eq!(
            Delays::from_lists(&[1, 2], &[]).unwrap(),
            Delays::Fir(vec![1, 2])
        );
        assert_eq!(
            Delays::from_lists(&[], &[8]).unwrap(),
            Delays::Mean(vec![8])
        );
        assert!(Delays::from_lists(&[1], &[8]).is_err());
    }
}
