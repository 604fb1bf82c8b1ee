//! `encode-runs`: voxelwise banded-ridge encoding of continuous runs (Nakagi et al. 2024).
//!
//! ```text
//! <out>/encoding.json      settings, runs, bands, per-band summaries (and the planted-kind
//!                          table when the run set is a simulated subject with --truth)
//! <out>/r.npy, r2.npy      (voxels,) test Pearson r and R² of the joint model
//! <out>/p.npy, q.npy       (voxels,) block-permutation p and BH-FDR q of r
//! <out>/r2_split.npy       (bands, voxels) product-measure split of the joint R² (himalaya
//!                          r2_score_split); rows sum to the joint R²
//! <out>/unique.npy         (bands, voxels) unique variance: R²(all) − R²(all but the band)
//! <out>/maps/*.nii.gz      the same per voxel in the subject's volume
//! <out>/report.html        histograms per band and slice montages of every map
//! ```

use super::design::{
    band_rows, delayed, pca, stack, standardize, Align, Band, BandSource, BandText, Delays,
};
use super::report::{encoding_page, histograms_svg, VoxelMap, VoxelSpace};
use super::text::TextFeaturizer;
use crate::error::{Result, RouteError};
use brainrecon_core::fs::{write_bytes_atomic, write_json_atomic};
use brainrecon_cortex::place::VoxelGrid;
use brainrecon_cortex::report::{
    html_section, resolve, write_cortex_maps, CortexChoice, MapKind, VoxelMapSpec,
};
use brainrecon_datasets::runs::RunSet;
use brainrecon_formats::npy;
use brainrecon_ridge::metrics::r2_per_target;
use brainrecon_ridge::partition::r2_score_split;
use brainrecon_ridge::stats::{bh_fdr, permutation_test, seeded_block_permutations, Standardized};
use brainrecon_ridge::{BandedCv, BandedRidgeCv, Candidates};
use faer::{Mat, MatRef};
use serde::Serialize;
use std::path::PathBuf;

/// Settings of [`encode_runs`].
#[derive(Clone, Debug)]
pub struct EncodeRunsOptions {
    /// The folder to write (see the module documentation).
    pub out: PathBuf,
    /// The feature bands, each with its own ridge weight.
    pub bands: Vec<Band>,
    /// Runs held out for testing (names); the others train, with leave-one-run-out CV.
    pub test_runs: Vec<String>,
    /// Instead of leave-one-run-out: K folds, fold k holding out the k-th of K contiguous
    /// blocks of every training run (for fewer than two training runs).
    pub folds: Option<usize>,
    /// Fit bands whose features are all zero or mostly out of the text model's vocabulary
    /// (refused otherwise: such a band explains nothing and hides a wrong model or text).
    pub allow_weak_bands: bool,
    /// How per-second features become per-TR rows.
    pub align: Align,
    /// The FIR delays (TRs) the hemodynamic lag is modelled with.
    pub delays: Delays,
    /// Keep each band's top K principal components of the training rows.
    pub pca: Option<usize>,
    /// The ridge penalty grid.
    pub alphas: Vec<f64>,
    /// Band-weight candidates of the random search (Dirichlet, himalaya's concentrations).
    pub n_iter: usize,
    /// Block permutations of the test TRs in the null of r.
    pub permutations: usize,
    /// TRs permuted together in the null.
    pub block: usize,
    /// Also fit every model without one band, for unique variance.
    pub unique: bool,
    /// Seed of the band-weight search and the permutations.
    pub seed: u64,
    /// Where the report draws its maps on the cortex (`auto`: a simulation's on fsaverage5).
    pub cortex: CortexChoice,
    /// The exact command line, for the report.
    pub command: String,
}

/// One band's summary over voxels.
#[derive(Clone, Debug, Serialize)]
pub struct BandSummary {
    /// The band.
    pub name: String,
    /// Its columns in the design (after PCA and delays).
    pub width: usize,
    /// Mean over voxels of its share of the joint test R² (himalaya's `r2_score_split`).
    pub mean_r2_split: f64,
    /// Mean over voxels of its unique variance, R²(all) − R²(all but the band), when fitted.
    pub mean_unique: Option<f64>,
    /// Voxels for which this band has the largest split R².
    pub best_voxels: usize,
    /// Share of the annotation words out of the text model's vocabulary (Word2Vec bands).
    pub out_of_vocabulary: Option<f64>,
    /// Share of the rows (seconds) whose features are all zero.
    pub zero_rows: f64,
}

/// What [`encode_runs`] found.
#[derive(Clone, Debug, Serialize)]
pub struct EncodeRunsSummary {
    /// Voxels fitted.
    pub voxels: usize,
    /// Training TRs (censored ones left out).
    pub train_trs: usize,
    /// Test TRs (censored ones left out).
    pub test_trs: usize,
    /// TRs the run set lists as censored, left out of the fit and the scores.
    pub censored_trs: usize,
    /// Mean over voxels of the joint model's test Pearson r.
    pub mean_r: f64,
    /// Voxels whose r is significant at BH-FDR q ≤ 0.05.
    pub significant_voxels: usize,
    /// One per band, in the order given.
    pub bands: Vec<BandSummary>,
    /// Bands that explain little by construction (see [`EncodeRunsOptions::allow_weak_bands`]).
    pub warnings: Vec<String>,
}

impl EncodeRunsSummary {
    /// The summary as `encode-runs` prints it; `out` is the output folder.
    pub fn text(&self, out: &std::path::Path) -> String {
        use std::fmt::Write;
        let summary = self;
        let mut text = String::new();
        let _ = writeln!(
            text,
            "{} voxels, {} train / {} test TRs{}: mean test r {:.3}, {} significant (BH q ≤ 0.05)",
            summary.voxels,
            summary.train_trs,
            summary.test_trs,
            if summary.censored_trs > 0 {
                format!(" ({} censored TRs left out)", summary.censored_trs)
            } else {
                String::new()
            },
            summary.mean_r,
            summary.significant_voxels
        );
        let width = summary
            .bands
            .iter()
            .map(|b| b.name.len())
            .max()
            .unwrap_or(0)
            .max(12);
        for band in &summary.bands {
            let _ = writeln!(
                text,
                "  {:<width$} {:>5} columns  mean split R² {:.4}{}  best in {} voxels",
                band.name,
                band.width,
                band.mean_r2_split,
                band.mean_unique
                    .map(|u| format!("  mean unique {u:.4}"))
                    .unwrap_or_default(),
                band.best_voxels
            );
        }
        let _ = writeln!(text, "→ {}", out.join("report.html").display());
        text
    }
}

/// Out-of-vocabulary share above which a band is refused (without `allow_weak_bands`).
pub const MAX_OUT_OF_VOCABULARY: f64 = 0.5;
/// Out-of-vocabulary share above which a band is named in a warning.
pub const WARN_OUT_OF_VOCABULARY: f64 = 0.2;

/// Indices of the train and test runs.
fn split_runs(
    runs: &RunSet,
    test_runs: &[String],
    folds: Option<usize>,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let names: Vec<&str> = runs.runs().iter().map(|r| r.name.as_str()).collect();
    let test: Vec<usize> = if test_runs.is_empty() {
        vec![names.len() - 1]
    } else {
        test_runs
            .iter()
            .map(|t| {
                names.iter().position(|n| n == t).ok_or_else(|| {
                    RouteError::mismatch(
                        &runs.root().join("runset.json"),
                        "runs",
                        format!("a run named {t}"),
                        names.join(", "),
                    )
                })
            })
            .collect::<Result<_>>()?
    };
    let train: Vec<usize> = (0..names.len()).filter(|i| !test.contains(i)).collect();
    let needed = if folds.is_some() { 1 } else { 2 };
    if train.len() < needed || test.is_empty() {
        return Err(RouteError::mismatch(
            &runs.root().join("runset.json"),
            "runs",
            if folds.is_some() {
                "at least 1 training run and 1 test run".to_string()
            } else {
                "at least 2 training runs for leave-one-run-out CV, and 1 test run (with one training run, pass --folds K: K contiguous blocks of each run as folds; or prepare more runs with several --task)".to_string()
            },
            format!(
                "{} training ({}), {} test",
                train.len(),
                train
                    .iter()
                    .map(|&i| names[i])
                    .collect::<Vec<_>>()
                    .join(", "),
                test.len()
            ),
        ));
    }
    Ok((train, test))
}

/// The voxels' rows of the runs `which`, stacked: (TRs, voxels).
fn voxel_rows(runs: &RunSet, which: &[usize]) -> Result<Mat<f32>> {
    let v = runs.n_voxels();
    let n: usize = which.iter().map(|&i| runs.runs()[i].n_trs).sum();
    let mut out = Mat::<f32>::zeros(n, v);
    let mut at = 0;
    for &i in which {
        let data = runs.run_data(i)?;
        let values = data.as_slice();
        let m = runs.runs()[i].n_trs;
        for r in 0..m {
            for c in 0..v {
                out[(at + r, c)] = values[r * v + c];
            }
        }
        at += m;
    }
    Ok(out)
}

/// Every band's design for the train and test runs: (train rows, test rows) per band, and
/// what the text model made of each band.
#[allow(clippy::type_complexity)]
fn band_designs(
    runs: &RunSet,
    opts: &EncodeRunsOptions,
    featurizer: Option<&TextFeaturizer>,
    (train, test): (&[usize], &[usize]),
) -> Result<(Vec<(Mat<f32>, Mat<f32>)>, Vec<BandText>)> {
    let mut texts = Vec::new();
    let designs = opts
        .bands
        .iter()
        .map(|band| {
            let (mut rows, text) = band_rows(runs, band, featurizer, opts.align)?;
            texts.push(text);
            standardize(&mut rows, train);
            if let Some(k) = opts.pca {
                pca(&mut rows, train, k)?;
            }
            let rows = delayed(&rows, &opts.delays, runs.tr())?;
            Ok((stack(&rows, train), stack(&rows, test)))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((designs, texts))
}

/// Bands that are all zero or mostly out of vocabulary: refused, or with `allow_weak_bands`
/// returned as warnings; a band with many unknown words is named in a warning. `model` is the
/// text model of annotation bands; a folder written by `features text` names its own.
fn weak_bands(opts: &EncodeRunsOptions, texts: &[BandText], model: &str) -> Result<Vec<String>> {
    let mut refused = Vec::new();
    let mut warnings = Vec::new();
    let mut vocabulary_advice = false;
    for (band, text) in opts.bands.iter().zip(texts) {
        let model = text.model.as_deref().unwrap_or(model);
        let oov = (text.words > 0).then(|| text.out_of_vocabulary as f64 / text.words as f64);
        let where_from = match &band.source {
            BandSource::Annotations(kind) => format!("the {kind} annotations through {model}"),
            BandSource::Files(dir) => format!("the feature files in {}", dir.display()),
            BandSource::DatasetFeatures { kind, features } => format!(
                "the dataset's feature files derivatives/feature/*_{kind}_{features}_mean.mat"
            ),
        };
        if text.rows > 0 && text.zero_rows == text.rows {
            let why = if text.words > 0 {
                vocabulary_advice = true;
                format!(
                    ": {} of {} words out of the vocabulary of {model}",
                    text.out_of_vocabulary, text.words
                )
            } else if matches!(band.source, BandSource::Annotations(_)) {
                ": every line is blank".to_string()
            } else {
                " (a file of zeros: an interrupted download or an empty feature)".to_string()
            };
            refused.push(format!(
                "band {}: all {} rows read from {where_from} are zero{why}",
                band.name, text.rows
            ));
        } else if let Some(f) = oov.filter(|&f| f > MAX_OUT_OF_VOCABULARY) {
            vocabulary_advice = true;
            refused.push(format!(
                "band {}: {:.0}% of its {} words are out of the vocabulary of {model} ({where_from})",
                band.name,
                100.0 * f,
                text.words
            ));
        } else if let Some(f) = oov.filter(|&f| f > WARN_OUT_OF_VOCABULARY) {
            warnings.push(format!(
                "band {}: {:.0}% of its {} words are out of the vocabulary of {model}",
                band.name,
                100.0 * f,
                text.words
            ));
        }
    }
    if !refused.is_empty() && !opts.allow_weak_bands {
        let advice = if vocabulary_advice {
            "a text model for the annotations' language is needed, e.g. a word2vec file of Japanese words for ds005531's Japanese kinds, or the dataset's own features KIND:GPT2medium_jp_layer12; "
        } else {
            ""
        };
        return Err(RouteError::Usage(format!(
            "{}\n({advice}--allow-weak-bands fits anyway)",
            refused.join("\n")
        )));
    }
    refused.extend(warnings);
    Ok(refused)
}

/// Fits banded ridge on the bands `which` and predicts the test rows: (prediction, parts).
fn fit_predict(
    designs: &[(Mat<f32>, Mat<f32>)],
    which: &[usize],
    y_train: MatRef<'_, f32>,
    groups: &[i64],
    opts: &EncodeRunsOptions,
) -> Result<(Mat<f32>, Vec<Mat<f32>>)> {
    let train: Vec<MatRef<'_, f32>> = which.iter().map(|&b| designs[b].0.as_ref()).collect();
    let test: Vec<MatRef<'_, f32>> = which.iter().map(|&b| designs[b].1.as_ref()).collect();
    let solver = BandedRidgeCv {
        alphas: opts.alphas.clone(),
        candidates: Candidates::Dirichlet {
            n_iter: if which.len() == 1 { 1 } else { opts.n_iter },
            concentrations: vec![0.1, 1.0],
            seed: opts.seed,
        },
        cv: BandedCv::Groups(groups.to_vec()),
        ..BandedRidgeCv::default()
    };
    let model = solver.fit(&train, y_train)?;
    Ok((model.predict(&test)?, model.predict_split(&test)?))
}

/// The run label of every training row (leave-one-run-out folds).
fn run_labels(runs: &RunSet, train: &[usize]) -> Vec<i64> {
    train
        .iter()
        .flat_map(|&i| std::iter::repeat_n(i as i64, runs.runs()[i].n_trs))
        .collect()
}

/// Per stacked row of the runs `which`: false where the run set lists the TR as censored.
fn kept_rows(runs: &RunSet, which: &[usize]) -> Vec<bool> {
    which
        .iter()
        .flat_map(|&i| {
            let run = &runs.runs()[i];
            let censored: &[usize] = run.confounds.as_ref().map_or(&[], |c| &c.censored);
            (0..run.n_trs).map(move |t| !censored.contains(&t))
        })
        .collect()
}

/// The rows of `m` (rows × columns) where `keep` is true.
fn select_rows(m: Mat<f32>, keep: &[bool]) -> Mat<f32> {
    assert_eq!(m.nrows(), keep.len(), "one flag per row");
    if keep.iter().all(|&k| k) {
        return m;
    }
    let rows: Vec<usize> = (0..m.nrows()).filter(|&r| keep[r]).collect();
    Mat::from_fn(rows.len(), m.ncols(), |r, c| m[(rows[r], c)])
}

/// The fold of every training row with `k` folds: the k-th of `k` contiguous blocks of each
/// run (FIR delays reach a few TRs across a block's edge, as they do across runs' edges in
/// himalaya's examples).
fn block_labels(runs: &RunSet, train: &[usize], k: usize) -> Vec<i64> {
    train
        .iter()
        .flat_map(|&i| {
            let n = runs.runs()[i].n_trs;
            (0..n).map(move |t| (t * k / n) as i64)
        })
        .collect()
}

/// Test r, block-permutation p and BH-FDR q per voxel.
fn significance(
    y_test: MatRef<'_, f32>,
    predicted: MatRef<'_, f32>,
    opts: &EncodeRunsOptions,
) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let (n, v) = (y_test.nrows(), y_test.ncols());
    let row_major = |m: MatRef<'_, f32>| -> Vec<f32> {
        (0..n)
            .flat_map(|i| (0..v).map(move |j| m[(i, j)]))
            .collect()
    };
    let pred = Standardized::from_row_major(&row_major(predicted), n, v)?;
    let truth = Standardized::from_row_major(&row_major(y_test), n, v)?;
    let perms = seeded_block_permutations(n, opts.block, opts.permutations.max(1), opts.seed);
    let (r, p) = permutation_test(&pred, &truth, &perms)?;
    let (q, _) = bh_fdr(&p, crate::score::FDR_ALPHA)?;
    Ok((r, p, q))
}

/// Refuses a search without candidates (`n_iter`), an empty permutation block or `pca` 0.
pub fn check_search(n_iter: usize, block: usize, pca: Option<usize>) -> Result<()> {
    if n_iter == 0 || block == 0 {
        return Err(RouteError::Usage(
            "--n-iter and --block must be at least 1".into(),
        ));
    }
    if pca == Some(0) {
        return Err(RouteError::Usage("--pca must be at least 1".into()));
    }
    Ok(())
}

/// `encode-runs` whole: the run set in `subject` opened, the text model `text_model` (hidden
/// state `layer`, see [`super::LayerChoice::parse`]) loaded on `device` when a band reads
/// annotations, then [`encode_runs`].
pub fn encode_run_set(
    subject: &std::path::Path,
    opts: &EncodeRunsOptions,
    text_model: &str,
    layer: &str,
    device: &candle_core::Device,
    progress: &mut dyn FnMut(&str),
) -> Result<EncodeRunsSummary> {
    let runs = RunSet::open(subject)?;
    let needs_text = opts
        .bands
        .iter()
        .any(|b| matches!(b.source, super::BandSource::Annotations(_)));
    let featurizer = if needs_text {
        Some(super::load_featurizer(
            text_model,
            &super::LayerChoice::parse(layer)?,
            device,
        )?)
    } else {
        None
    };
    encode_runs(&runs, opts, featurizer.as_ref(), progress)
}

/// Runs the encoding model on a run set; writes the outputs listed in the module docs.
pub fn encode_runs(
    runs: &RunSet,
    opts: &EncodeRunsOptions,
    featurizer: Option<&TextFeaturizer>,
    progress: &mut dyn FnMut(&str),
) -> Result<EncodeRunsSummary> {
    check_options(opts)?;
    let (train, test) = split_runs(runs, &opts.test_runs, opts.folds)?;
    progress("features");
    let (designs, texts) = band_designs(runs, opts, featurizer, (&train, &test))?;
    let model = featurizer.map_or("the text model", |f| f.name());
    let warnings = weak_bands(opts, &texts, model)?;
    let groups = match opts.folds {
        Some(k) => block_labels(runs, &train, k),
        None => run_labels(runs, &train),
    };
    // Censored TRs (fMRIPrep's scrubbed and non-steady-state volumes) hold zeros, not data:
    // they leave the fit and the scores, after the features were delayed on the full runs.
    let (keep_train, keep_test) = (kept_rows(runs, &train), kept_rows(runs, &test));
    let censored_trs = keep_train.iter().chain(&keep_test).filter(|k| !**k).count();
    let designs: Vec<(Mat<f32>, Mat<f32>)> = designs
        .into_iter()
        .map(|(a, b)| (select_rows(a, &keep_train), select_rows(b, &keep_test)))
        .collect();
    let y_train = select_rows(voxel_rows(runs, &train)?, &keep_train);
    let y_test = select_rows(voxel_rows(runs, &test)?, &keep_test);
    let groups: Vec<i64> = groups
        .into_iter()
        .zip(&keep_train)
        .filter_map(|(g, &k)| k.then_some(g))
        .collect();
    let all: Vec<usize> = (0..opts.bands.len()).collect();
    progress("joint model");
    let (predicted, parts) = fit_predict(&designs, &all, y_train.as_ref(), &groups, opts)?;
    let r2 = r2_per_target(y_test.as_ref(), predicted.as_ref())?;
    let part_refs: Vec<MatRef<'_, f32>> = parts.iter().map(|p| p.as_ref()).collect();
    let split = r2_score_split(y_test.as_ref(), &part_refs, true)?;
    let unique = if opts.unique && opts.bands.len() >= 2 {
        Some(unique_variance(
            &designs,
            &r2,
            y_train.as_ref(),
            y_test.as_ref(),
            &groups,
            opts,
            progress,
        )?)
    } else {
        None
    };
    progress("statistics");
    let (r, p, q) = significance(y_test.as_ref(), predicted.as_ref(), opts)?;
    let results = Results {
        r,
        p,
        q,
        r2,
        split: (0..split.nrows())
            .flat_map(|b| (0..split.ncols()).map(move |j| (b, j)))
            .map(|(b, j)| split[(b, j)])
            .collect(),
        unique,
        widths: designs.iter().map(|d| d.0.ncols()).collect(),
        texts,
        warnings,
        train_trs: y_train.nrows(),
        test_trs: y_test.nrows(),
        censored_trs,
    };
    progress("writing");
    write_outputs(runs, opts, &results)
}

fn check_options(opts: &EncodeRunsOptions) -> Result<()> {
    if opts.bands.is_empty() {
        return Err(RouteError::Usage(
            "at least one feature band is needed".into(),
        ));
    }
    let mut names: Vec<&str> = opts.bands.iter().map(|b| b.name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(RouteError::Usage(format!("band names repeat: {names:?}")));
    }
    if opts.block == 0 {
        return Err(RouteError::Usage("--block must be at least 1".into()));
    }
    if matches!(opts.folds, Some(k) if k < 2) {
        return Err(RouteError::Usage("--folds must be at least 2".into()));
    }
    Ok(())
}

/// Unique variance of each band: R²(all) − R²(all but the band), (bands × voxels) row-major.
fn unique_variance(
    designs: &[(Mat<f32>, Mat<f32>)],
    r2_joint: &[f64],
    y_train: MatRef<'_, f32>,
    y_test: MatRef<'_, f32>,
    groups: &[i64],
    opts: &EncodeRunsOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<f64>> {
    let b = designs.len();
    let mut unique = Vec::with_capacity(b * r2_joint.len());
    for left_out in 0..b {
        progress(&format!("model without {}", opts.bands[left_out].name));
        let others: Vec<usize> = (0..b).filter(|&k| k != left_out).collect();
        let (predicted, _) = fit_predict(designs, &others, y_train, groups, opts)?;
        let r2 = r2_per_target(y_test, predicted.as_ref())?;
        unique.extend(r2_joint.iter().zip(&r2).map(|(j, o)| j - o));
    }
    Ok(unique)
}

struct Results {
    r: Vec<f64>,
    p: Vec<f64>,
    q: Vec<f64>,
    r2: Vec<f64>,
    /// (bands × voxels) row-major.
    split: Vec<f64>,
    unique: Option<Vec<f64>>,
    widths: Vec<usize>,
    texts: Vec<BandText>,
    warnings: Vec<String>,
    train_trs: usize,
    test_trs: usize,
    censored_trs: usize,
}

fn mean(values: &[f64]) -> f64 {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    finite.iter().sum::<f64>() / finite.len().max(1) as f64
}

fn summarize(opts: &EncodeRunsOptions, results: &Results) -> EncodeRunsSummary {
    let v = results.r.len();
    let row = |m: &[f64], b: usize| m[b * v..(b + 1) * v].to_vec();
    let best = |b: usize| {
        (0..v)
            .filter(|&j| {
                (0..opts.bands.len()).all(|o| results.split[o * v + j] <= results.split[b * v + j])
            })
            .count()
    };
    EncodeRunsSummary {
        voxels: v,
        train_trs: results.train_trs,
        test_trs: results.test_trs,
        censored_trs: results.censored_trs,
        mean_r: mean(&results.r),
        significant_voxels: results
            .q
            .iter()
            .filter(|&&q| q <= crate::score::FDR_ALPHA)
            .count(),
        bands: opts
            .bands
            .iter()
            .enumerate()
            .map(|(b, band)| BandSummary {
                name: band.name.clone(),
                width: results.widths[b],
                mean_r2_split: mean(&row(&results.split, b)),
                mean_unique: results.unique.as_ref().map(|u| mean(&row(u, b))),
                best_voxels: best(b),
                out_of_vocabulary: {
                    let t = &results.texts[b];
                    (t.words > 0).then(|| t.out_of_vocabulary as f64 / t.words as f64)
                },
                zero_rows: {
                    let t = &results.texts[b];
                    t.zero_rows as f64 / t.rows.max(1) as f64
                },
            })
            .collect(),
        warnings: results.warnings.clone(),
    }
}

fn write_outputs(
    runs: &RunSet,
    opts: &EncodeRunsOptions,
    results: &Results,
) -> Result<EncodeRunsSummary> {
    let out = &opts.out;
    let maps_dir = out.join("maps");
    std::fs::create_dir_all(&maps_dir).map_err(|e| brainrecon_core::DataError::io(&maps_dir, e))?;
    let v = results.r.len();
    let b = opts.bands.len();
    let f32s = |x: &[f64]| x.iter().map(|&v| v as f32).collect::<Vec<f32>>();
    for (name, values) in [
        ("r", &results.r),
        ("r2", &results.r2),
        ("p", &results.p),
        ("q", &results.q),
    ] {
        npy::write(&out.join(format!("{name}.npy")), &[v], &f32s(values))?;
        runs.write_voxel_map(&maps_dir.join(format!("{name}.nii.gz")), &f32s(values))?;
    }
    npy::write(&out.join("r2_split.npy"), &[b, v], &f32s(&results.split))?;
    if let Some(unique) = &results.unique {
        npy::write(&out.join("unique.npy"), &[b, v], &f32s(unique))?;
    }
    for (k, band) in opts.bands.iter().enumerate() {
        let split = &results.split[k * v..(k + 1) * v];
        runs.write_voxel_map(
            &maps_dir.join(format!("r2_split-{}.nii.gz", band.name)),
            &f32s(split),
        )?;
        if let Some(unique) = &results.unique {
            let u = &unique[k * v..(k + 1) * v];
            runs.write_voxel_map(
                &maps_dir.join(format!("unique-{}.nii.gz", band.name)),
                &f32s(u),
            )?;
        }
    }
    let summary = summarize(opts, results);
    write_json_atomic(
        &out.join("encoding.json"),
        &serde_json::json!({
            "format": "brainrecon-encode-runs",
            "command": opts.command,
            "runset": runs.root(),
            "bands": opts.bands.iter().map(|b| &b.name).collect::<Vec<_>>(),
            "test_runs": opts.test_runs,
            "folds": opts.folds,
            "align": format!("{:?}", opts.align).to_lowercase(),
            "delays": format!("{:?}", opts.delays.resolve(runs.tr())),
            "pca": opts.pca,
            "alphas": opts.alphas,
            "n_iter": opts.n_iter,
            "permutations": opts.permutations,
            "block": opts.block,
            "seed": opts.seed,
            "summary": &summary,
        }),
    )?;
    write_report(runs, opts, results, &summary)?;
    Ok(summary)
}

fn write_report(
    runs: &RunSet,
    opts: &EncodeRunsOptions,
    results: &Results,
    summary: &EncodeRunsSummary,
) -> Result<()> {
    let v = results.r.len();
    let band_rows = |m: &[f64]| -> Vec<(String, Vec<f64>)> {
        opts.bands
            .iter()
            .enumerate()
            .map(|(k, band)| (band.name.clone(), m[k * v..(k + 1) * v].to_vec()))
            .collect()
    };
    let fail = |e: String| RouteError::Usage(format!("report: {e}"));
    let mut histograms = vec![
        histograms_svg("test r (joint model)", &[("r".into(), results.r.clone())]).map_err(fail)?,
        histograms_svg("split R² per band", &band_rows(&results.split)).map_err(fail)?,
    ];
    if let Some(u) = &results.unique {
        histograms.push(histograms_svg("unique variance per band", &band_rows(u)).map_err(fail)?);
    }
    let mut maps = vec![VoxelMap {
        name: "test r".into(),
        values: &results.r,
        note: "joint model".into(),
    }];
    for (k, band) in opts.bands.iter().enumerate() {
        maps.push(VoxelMap {
            name: format!("split R²: {}", band.name),
            values: &results.split[k * v..(k + 1) * v],
            note: "the band's share of the joint R² (product measure)".into(),
        });
    }
    let space = VoxelSpace {
        shape: runs.volume_shape(),
        voxels: runs.voxel_indices(),
    };
    let mut table = vec![
        ("voxels".to_string(), summary.voxels.to_string()),
        (
            "TRs (train / test; censored, left out)".into(),
            format!(
                "{} / {}; {}",
                summary.train_trs, summary.test_trs, summary.censored_trs
            ),
        ),
        ("mean test r".into(), format!("{:.4}", summary.mean_r)),
        (
            "significant voxels (BH q ≤ 0.05)".into(),
            summary.significant_voxels.to_string(),
        ),
    ];
    for band in &summary.bands {
        table.push((
            format!("band {} ({} columns)", band.name, band.width),
            format!(
                "mean split R² {:.4}{}; best in {} voxels",
                band.mean_r2_split,
                band.mean_unique
                    .map(|u| format!(", mean unique {u:.4}"))
                    .unwrap_or_default(),
                band.best_voxels
            ),
        ));
    }
    for warning in &summary.warnings {
        table.push(("warning".into(), warning.clone()));
    }
    let cortex = cortex_maps(runs, opts, results)?;
    let html = encoding_page(
        "encode-runs",
        &opts.command,
        &table,
        &histograms,
        &space,
        &maps,
        cortex.as_deref(),
    )
    .map_err(fail)?;
    write_bytes_atomic(&opts.out.join("report.html"), html.as_bytes())?;
    Ok(())
}

/// Each voxel's band of largest split R², where the joint model is significant (BH q ≤ 0.05;
/// NaN elsewhere): Nakagi et al.'s and Takagi & Nishimoto's "best" maps.
pub fn best_band(split: &[f64], q: &[f64], bands: usize) -> Vec<f64> {
    let v = q.len();
    assert_eq!(split.len(), bands * v, "split R² is (bands, voxels)");
    (0..v)
        .map(|j| {
            // NaN q fails too.
            if q[j].is_nan() || q[j] > 0.05 {
                return f64::NAN;
            }
            (0..bands)
                .filter(|&b| split[b * v + j].is_finite())
                .max_by(|&a, &b| split[a * v + j].total_cmp(&split[b * v + j]))
                .map_or(f64::NAN, |b| b as f64)
        })
        .collect()
}

/// A CIFTI run set's cortical grayordinates on fsaverage5, where its surface models are
/// fsaverage5's (the video simulator's). `None` for other meshes (CC2017's fsLR 32k: its maps
/// are in the `.dscalar.nii` files Workbench reads) or `--cortex none`.
fn grayordinates_on_fsaverage5(
    source: &std::path::Path,
    choice: &CortexChoice,
    columns: usize,
) -> Result<Option<brainrecon_cortex::report::CortexPlacement>> {
    if matches!(choice, CortexChoice::None) {
        return Ok(None);
    }
    let (models, _) = brainrecon_formats::cifti::read_brain_models(source)?;
    // Not fsaverage5's vertices: no pictures, the report says nothing of the cortex.
    Ok(brainrecon_cortex::report::grayordinates_on_fsaverage5(source, &models, columns).ok())
}

/// The maps on the cortex (`cortex/`), and the report's section for them; `None` when no
/// cortex applies.
fn cortex_maps(
    runs: &RunSet,
    opts: &EncodeRunsOptions,
    results: &Results,
) -> Result<Option<String>> {
    let placed = match &runs.meta().grayordinates {
        Some(g) => grayordinates_on_fsaverage5(&g.source, &opts.cortex, results.r.len())?,
        None => {
            let grid = VoxelGrid {
                shape: runs.volume_shape(),
                affine: runs.affine(),
                voxels: runs.voxel_indices(),
            };
            let simulated = brainrecon_datasets::simulated::is_simulated(&runs.meta().source.root);
            resolve(&opts.cortex, &grid, simulated)?
        }
    };
    let Some(placed) = placed else {
        return Ok(None);
    };
    let v = results.r.len();
    let names: Vec<String> = opts.bands.iter().map(|b| b.name.clone()).collect();
    let best = best_band(&results.split, &results.q, names.len());
    let mut maps = vec![
        VoxelMapSpec {
            name: "test r".into(),
            values: &results.r,
            kind: MapKind::Signed { threshold: None },
        },
        VoxelMapSpec {
            name: "best band (q ≤ 0.05)".into(),
            values: &best,
            kind: MapKind::Categorical {
                names: names.clone(),
            },
        },
    ];
    for (k, name) in names.iter().enumerate() {
        maps.push(VoxelMapSpec {
            name: format!("split R² {name}"),
            values: &results.split[k * v..(k + 1) * v],
            kind: MapKind::Positive { threshold: None },
        });
    }
    if let Some(unique) = &results.unique {
        for (k, name) in names.iter().enumerate() {
            maps.push(VoxelMapSpec {
                name: format!("unique {name}"),
                values: &unique[k * v..(k + 1) * v],
                kind: MapKind::Signed { threshold: None },
            });
        }
    }
    let figures = write_cortex_maps(&opts.out.join("cortex"), &placed, &maps, None)?;
    Ok(Some(html_section(&figures, "cortex")))
}
