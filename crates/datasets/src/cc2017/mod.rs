//! `video prepare`: a CC2017 subject (Wen et al. 2018; CIFTI-2 runs per segment and
//! repetition, see [`brainrecon_formats::cifti::cc2017`]) → windows of fMRI as samples for a decoder.
//!
//! Steps, per run: read the CIFTI file, keep the asked structures (both cortical surfaces by
//! default: CC2017's first 59,412 grayordinates), cut it to the design's TRs, remove a
//! least-squares polynomial per grayordinate (of GLMdenoise's degree for the run's duration by
//! default: 4 on CC2017's 8-min runs, as Wen et al.) and z-score it
//! (population std; a flat grayordinate stays zero). Then the repetitions of each segment are
//! averaged, and the sample of stimulus TR t of a segment is the average's TRs t + lag …
//! t + lag + K − 1 side by side (`--window K`, `--lag L`; MinD-Video's `fMRI[t], fMRI[t+1]` is
//! K = 2, L = 0). A stimulus TR whose window runs past the segment has no sample.
//!
//! **Reliability.** Test–retest reliability of a grayordinate is the Pearson correlation, over
//! all TRs of all training segments, between two presentations of the same segments (each
//! run's mean removed first, so baselines that differ between runs do not count), averaged
//! over the pairs of presentations (CC2017 has two: one correlation). The mask keeps the
//! grayordinates above `--reliability-threshold` (default 0.2); flat ones count as 0. Wen et
//! al. select cortical locations by this between-repetition correlation of the training movie;
//! the threshold is ours to choose (at 4,320 training TRs an r of 0.2 is far beyond chance).
//!
//! **Design.** `design.json` at the dataset root (written by `simulate --kind video`) gives the
//! segments, repetitions and TRs; without it CC2017's published design is expected: 18 training
//! segments × 2, 5 test segments × 10, 240 TRs. A run of exactly the design's TRs is used
//! whole; CC2017's own runs of 245 or 246 volumes are cut as the dataset authors' code does
//! (the first 1 or 2 and the last 4 dropped); fewer TRs, or other counts, are an error.
//!
//! Output (written in `<out>.partial`, renamed when complete; any error removes it):
//! ```text
//! video.json              VideoPrepared (below): options, design, counts, file list
//! X_train.npy, X_test.npy float32 (samples, K·V): block k (columns k·V … k·V+V−1) is TR t+lag+k
//! train_index.npy, test_index.npy   int64 (samples, 2): segment (1-based), stimulus TR (0-based)
//! fmri_train.npy, fmri_test.npy     float32 (segments, n_tr, V): repetition averages, kept voxels
//!                                   (MinD-Video's fmri_train_subjectN.npy layout)
//! columns.npy             int64 (S,): CIFTI column of each selected grayordinate
//! reliability.npy         float32 (S,): test-retest r of each selected grayordinate
//! mask.npy                uint8 (S,): 1 where kept (V of them)
//! grayordinates.npy       int64 (V,): CIFTI column of each kept voxel (the X columns' order)
//! ```

pub mod mindvideo;

use crate::error::{DataError, Result};
use crate::limits;
use brainrecon_core::fs::{read_json, write_json_atomic, OutputDir, Refusals};
use brainrecon_core::progress::bar_aligned;
use brainrecon_core::signal::detrend::{self, Detrend, PolyBasis};
use brainrecon_formats::cifti::cc2017::{runs_in, Run, Split};
use brainrecon_formats::cifti::{BrainModel, CiftiSeries, CORTEX};
use brainrecon_formats::npy;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `design.json`'s format name.
pub const DESIGN_FORMAT: &str = "brainrecon-cc2017-design";
/// `video.json`'s format name.
pub const FORMAT: &str = "brainrecon-video-prepared";
/// `video.json`'s format version.
pub const FORMAT_VERSION: u32 = 1;
/// The default `--reliability-threshold`.
pub const DEFAULT_RELIABILITY_THRESHOLD: f64 = 0.2;

/// Segments, repetitions and TRs of a CC2017-style dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Design {
    /// [`DESIGN_FORMAT`].
    pub format: String,
    /// Training segments (18 in CC2017).
    pub train_segments: usize,
    /// Presentations of each training segment (2 in CC2017).
    pub train_repetitions: usize,
    /// Test segments (5 in CC2017).
    pub test_segments: usize,
    /// Presentations of each test segment (10 in CC2017).
    pub test_repetitions: usize,
    /// Volumes per run used (after cutting).
    pub n_tr: usize,
    /// Seconds per volume.
    pub tr: f64,
    /// Stimulus frames per TR.
    pub frames_per_tr: usize,
}

impl Design {
    /// CC2017 as published: 18 × 2 training, 5 × 10 test, 240 TRs of 2 s, 3 fps as the video
    /// papers sample it (the movies are 30 fps).
    pub fn published() -> Self {
        Design {
            format: DESIGN_FORMAT.into(),
            train_segments: 18,
            train_repetitions: 2,
            test_segments: 5,
            test_repetitions: 10,
            n_tr: 240,
            tr: 2.0,
            frames_per_tr: 6,
        }
    }

    /// `<root>/design.json` if there is one, else the published design.
    pub fn of_dataset(root: &Path) -> Result<Self> {
        let path = root.join("design.json");
        if !path.exists() {
            return Ok(Design::published());
        }
        let design: Design = read_json(&path)?;
        if design.format != DESIGN_FORMAT {
            return Err(DataError::invalid(
                &path,
                "format",
                DESIGN_FORMAT,
                design.format,
            ));
        }
        design.check(&path)?;
        Ok(design)
    }

    /// Refuses counts of 0, above [`limits::VOLUMES`], or whose products (runs of a split,
    /// frames of a run) overflow or pass it: buffers and loops are sized by them.
    pub fn check(&self, path: &Path) -> Result<()> {
        let counts = [
            self.train_segments,
            self.train_repetitions,
            self.test_segments,
            self.test_repetitions,
            self.n_tr,
            self.frames_per_tr,
        ];
        if counts.contains(&0)
            || self.train_repetitions < 2
            || !(self.tr.is_finite() && self.tr > 0.0)
        {
            return Err(DataError::invalid(
                path,
                "design",
                "positive counts, at least 2 training repetitions and a positive tr",
                format!("{counts:?}, tr {}", self.tr),
            ));
        }
        let products = [
            (
                "train_segments × train_repetitions",
                self.train_segments,
                self.train_repetitions,
            ),
            (
                "test_segments × test_repetitions",
                self.test_segments,
                self.test_repetitions,
            ),
            ("n_tr × frames_per_tr", self.n_tr, self.frames_per_tr),
        ];
        for (field, a, b) in products {
            let product = (a as u64).saturating_mul(b as u64);
            limits::VOLUMES.check(path, field, product)?;
        }
        Ok(())
    }

    fn shape(&self, split: Split) -> (usize, usize) {
        match split {
            Split::Train => (self.train_segments, self.train_repetitions),
            Split::Test => (self.test_segments, self.test_repetitions),
        }
    }
}

/// What `video prepare` reads, writes and how it processes the runs.
#[derive(Debug, Clone)]
pub struct Cc2017Options {
    /// The dataset root (holding `subjectN/fmri/`, and `design.json` when simulated).
    pub root: PathBuf,
    /// `subjectN`.
    pub subject: usize,
    /// The output folder.
    pub out: PathBuf,
    /// CIFTI structures to keep (`CORTEX_LEFT` or `CIFTI_STRUCTURE_CORTEX_LEFT`).
    pub structures: Vec<String>,
    /// The polynomial removed from each run.
    pub detrend: RunDetrend,
    /// Whether each run is z-scored per grayordinate after detrending.
    pub zscore: bool,
    /// K: TRs per sample.
    pub window: usize,
    /// L: TRs from the stimulus TR to the window's first.
    pub lag: usize,
    /// Keep grayordinates whose reliability exceeds this; `None` keeps all.
    pub reliability_threshold: Option<f64>,
    /// Whether to draw a progress bar.
    pub progress: bool,
}

impl Cc2017Options {
    /// The defaults: cortex, the drift degree from the runs' duration, z-score, window 2, lag 0,
    /// threshold 0.2.
    pub fn new(root: &Path, subject: usize, out: &Path) -> Self {
        Cc2017Options {
            root: root.to_path_buf(),
            subject,
            out: out.to_path_buf(),
            structures: CORTEX.iter().map(|s| s.to_string()).collect(),
            detrend: RunDetrend::ByDuration,
            zscore: true,
            window: 2,
            lag: 0,
            reliability_threshold: Some(DEFAULT_RELIABILITY_THRESHOLD),
            progress: false,
        }
    }
}

/// The polynomial removed from each run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunDetrend {
    /// No detrending.
    Off,
    /// GLMdenoise's degree for the run's duration (`detrend::degree_for_duration`): 4 for
    /// CC2017's 8-min runs, as Wen et al. remove.
    ByDuration,
    /// A polynomial of this degree.
    Order(usize),
}

impl RunDetrend {
    /// The degree used on runs of `n_tr` TRs of `tr` seconds (`None`: no detrending).
    pub fn degree(self, n_tr: usize, tr: f64) -> Option<usize> {
        match self {
            RunDetrend::Off => None,
            RunDetrend::ByDuration => Some(detrend::degree_for_duration(n_tr as f64 * tr)),
            RunDetrend::Order(order) => Some(order),
        }
    }
}

/// What a rerun must match to count as done.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Settings {
    /// The dataset root.
    pub root: PathBuf,
    /// `subjectN`.
    pub subject: usize,
    /// CIFTI structures kept, as given.
    pub structures: Vec<String>,
    /// `poly:N` or `none`.
    pub detrend: String,
    /// Whether runs were z-scored.
    pub zscore: bool,
    /// K: TRs per sample.
    pub window: usize,
    /// L: TRs from the stimulus TR to the window's first.
    pub lag: usize,
    /// The reliability threshold; `None` kept all.
    pub reliability_threshold: Option<f64>,
}

/// `video.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VideoPrepared {
    /// [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// The settings it was prepared with.
    pub settings: Settings,
    /// The design the runs were read by.
    pub design: Design,
    /// How each run was cut to `design.n_tr` (e.g. "245 → 1..241"), one per distinct case.
    pub cuts: Vec<String>,
    /// Grayordinates of the selected structures (S).
    pub n_selected: usize,
    /// Kept voxels (V).
    pub n_voxels: usize,
    /// Training samples (rows of `X_train.npy`).
    pub n_train: usize,
    /// Test samples (rows of `X_test.npy`).
    pub n_test: usize,
    /// K·V.
    pub n_features: usize,
    /// How reliability was computed, in words.
    pub reliability: String,
    /// Mean reliability of the kept voxels.
    pub mean_reliability_kept: f64,
    /// Mean reliability of all selected grayordinates.
    pub mean_reliability_all: f64,
    /// Run-grayordinates that were flat after detrending (left zero).
    pub flat_grayordinates: usize,
    /// Runs read, training and test.
    pub runs_read: usize,
    /// The arrays written, by file name.
    pub files: Vec<String>,
}

/// What [`prepare`] did.
#[derive(Debug, Clone, Serialize)]
pub struct PrepareReport {
    /// The output folder.
    pub out: PathBuf,
    /// Whether the folder already held this preparation (nothing was written).
    pub already_prepared: bool,
    /// Its `video.json`.
    pub meta: VideoPrepared,
}

impl PrepareReport {
    /// The report as `video prepare` prints it, one line each.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let (report, m) = (self, &self.meta);
        let mut text = String::new();
        if report.already_prepared {
            text.push_str(&crate::already_prepared_line(&report.out));
        }
        let _ = writeln!(
            text,
            "prepared subject{} at {}: {} runs read ({} training segments × {}, {} test segments × {}, {} TRs), {} of {} grayordinates kept (mean test-retest r {:.3}, {:.3} over all), window {} from lag {}: X_train {} × {}, X_test {} × {}",
            m.settings.subject,
            report.out.display(),
            m.runs_read,
            m.design.train_segments,
            m.design.train_repetitions,
            m.design.test_segments,
            m.design.test_repetitions,
            m.design.n_tr,
            m.n_voxels,
            m.n_selected,
            m.mean_reliability_kept,
            m.mean_reliability_all,
            m.settings.window,
            m.settings.lag,
            m.n_train,
            m.n_features,
            m.n_test,
            m.n_features
        );
        text
    }
}

/// Reads and checks `<dir>/video.json`.
pub fn read_meta(dir: &Path) -> Result<VideoPrepared> {
    let path = dir.join("video.json");
    if !path.exists() {
        return Err(DataError::Missing {
            path,
            what: "a prepared video subject (made by `brainrecon video prepare`)".into(),
        });
    }
    let meta: VideoPrepared = read_json(&path)?;
    if meta.format != FORMAT || meta.version != FORMAT_VERSION {
        return Err(DataError::invalid(
            &path,
            "format",
            format!("{FORMAT} version {FORMAT_VERSION}"),
            format!("{} version {}", meta.format, meta.version),
        ));
    }
    meta.design.check(&path)?;
    Ok(meta)
}

fn check_options(opts: &Cc2017Options, design: &Design) -> Result<()> {
    if opts.window == 0 {
        return Err(DataError::Usage(
            "--window: expected at least 1 TR, found 0".into(),
        ));
    }
    if opts.window + opts.lag > design.n_tr {
        return Err(DataError::Usage(format!(
            "--window {} with --lag {}: expected at most the {} TRs of a segment together",
            opts.window, opts.lag, design.n_tr
        )));
    }
    if let Some(r) = opts.reliability_threshold {
        if !(-1.0..1.0).contains(&r) {
            return Err(DataError::Usage(format!(
                "--reliability-threshold: expected a correlation in [-1, 1), found {r}"
            )));
        }
    }
    if let RunDetrend::Order(order @ 11..) = opts.detrend {
        return Err(DataError::Usage(format!(
            "--detrend-order: expected 0 to 10 or auto, found {order}"
        )));
    }
    if opts.structures.is_empty() {
        return Err(DataError::Usage("--structure: name at least one".into()));
    }
    Ok(())
}

/// The rows of a run used: all of them, or CC2017's cut of 245/246-volume runs.
fn kept_rows(run: &Path, n_time: usize, n_tr: usize) -> Result<std::ops::Range<usize>> {
    match n_time.checked_sub(n_tr) {
        Some(0) => Ok(0..n_tr),
        Some(5) => Ok(1..n_tr + 1),
        Some(6) => Ok(2..n_tr + 2),
        _ => Err(DataError::invalid(
            run,
            "NumberOfSeriesPoints",
            format!(
                "{n_tr} TRs (the design's), or {} / {} (CC2017's runs before the authors' cut)",
                n_tr + 5,
                n_tr + 6
            ),
            if n_time < n_tr {
                format!("{n_time}: fewer TRs than the design's {n_tr}")
            } else {
                n_time.to_string()
            },
        )),
    }
}

/// The selected models must be those of the first run read.
fn check_models(
    run: &Path,
    models: &[BrainModel],
    reference: &(PathBuf, Vec<BrainModel>),
) -> Result<()> {
    let (first, expected) = reference;
    if models == expected.as_slice() {
        return Ok(());
    }
    let describe = |m: &[BrainModel]| {
        m.iter()
            .map(|b| {
                format!(
                    "{} [{}..{})",
                    b.brain_structure,
                    b.index_offset,
                    b.index_offset + b.index_count
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let detail = if describe(models) == describe(expected) {
        "the same ranges with other vertex or voxel indices".to_string()
    } else {
        describe(models)
    };
    Err(DataError::invalid(
        run,
        "CIFTI brain models",
        format!("those of {}: {}", first.display(), describe(expected)),
        detail,
    ))
}

/// Per-run reading and cleaning.
struct Reader<'a> {
    opts: &'a Cc2017Options,
    design: &'a Design,
    basis: Option<PolyBasis>,
    reference: Option<(PathBuf, Vec<BrainModel>)>,
    columns: Vec<usize>,
    cuts: Vec<String>,
    flat: usize,
}

impl Reader<'_> {
    /// One run, detrended and z-scored: voxel-major (S × n_tr).
    fn read(&mut self, run: &Run) -> Result<Vec<f64>> {
        let cifti = CiftiSeries::read(&run.path)?;
        if let Some(tr) = cifti.tr_seconds() {
            if (tr - self.design.tr).abs() > 1e-6 {
                return Err(DataError::invalid(
                    &run.path,
                    "CIFTI XML SeriesStep",
                    format!("{} s (the design's TR)", self.design.tr),
                    format!("{tr} s"),
                ));
            }
        }
        let names: Vec<&str> = self.opts.structures.iter().map(String::as_str).collect();
        let selection = cifti.select(&names)?;
        match &self.reference {
            Some(reference) => check_models(&run.path, &selection.models, reference)?,
            None => {
                self.reference = Some((run.path.clone(), selection.models.clone()));
                self.columns = selection.columns.clone();
            }
        }
        let rows = kept_rows(&run.path, selection.n_time, self.design.n_tr)?;
        let cut = format!("{} → {}..{}", selection.n_time, rows.start, rows.end);
        if !self.cuts.contains(&cut) {
            self.cuts.push(cut);
        }
        let (n, s) = (self.design.n_tr, selection.columns.len());
        let mut m = vec![0f64; s * n];
        for (t, row) in selection
            .data
            .chunks_exact(s)
            .skip(rows.start)
            .take(n)
            .enumerate()
        {
            for (v, &x) in row.iter().enumerate() {
                m[v * n + t] = x as f64;
            }
        }
        if let Some(bad) = m.iter().position(|v| !v.is_finite()) {
            return Err(DataError::invalid(
                &run.path,
                format!(
                    "grayordinate {} at TR {}",
                    self.columns[bad / n],
                    bad % n + rows.start
                ),
                "finite values",
                m[bad].to_string(),
            ));
        }
        self.clean(&mut m, n);
        Ok(m)
    }

    fn clean(&mut self, m: &mut [f64], n: usize) {
        for x in m.chunks_exact_mut(n) {
            let scale = detrend::rms(x);
            if let Some(basis) = &self.basis {
                basis.remove_fit(x);
            }
            if self.opts.zscore && !detrend::zscore(x, scale) {
                x.fill(0.0);
                self.flat += 1;
            }
        }
    }
}

/// Sums over the training runs for the reliability: per repetition, Σx and Σx² of the
/// run-demeaned series; per pair of repetitions, Σ x_a·x_b.
struct ReliabilityStats {
    reps: usize,
    sums: Vec<Vec<f64>>,
    squares: Vec<Vec<f64>>,
    cross: Vec<Vec<f64>>,
}

impl ReliabilityStats {
    /// Sized by the first segment added.
    fn new(reps: usize) -> Self {
        ReliabilityStats {
            reps,
            sums: Vec::new(),
            squares: Vec::new(),
            cross: Vec::new(),
        }
    }

    /// Adds one segment's repetitions (each voxel-major S × n).
    fn add(&mut self, runs: &[Vec<f64>], n: usize) {
        if self.sums.is_empty() {
            let s = runs[0].len() / n;
            self.sums = vec![vec![0.0; s]; self.reps];
            self.squares = vec![vec![0.0; s]; self.reps];
            // Pairs (a, b), a < b, in order.
            self.cross = vec![vec![0.0; s]; self.reps * (self.reps - 1) / 2];
        }
        let centred: Vec<Vec<f64>> = runs
            .iter()
            .map(|m| {
                let mut m = m.clone();
                for x in m.chunks_exact_mut(n) {
                    let mean = x.iter().sum::<f64>() / n as f64;
                    x.iter_mut().for_each(|v| *v -= mean);
                }
                m
            })
            .collect();
        for (r, m) in centred.iter().enumerate() {
            for (v, x) in m.chunks_exact(n).enumerate() {
                self.sums[r][v] += x.iter().sum::<f64>();
                self.squares[r][v] += x.iter().map(|a| a * a).sum::<f64>();
            }
        }
        let mut pair = 0;
        for a in 0..self.reps {
            for b in a + 1..self.reps {
                for (v, (x, y)) in centred[a]
                    .chunks_exact(n)
                    .zip(centred[b].chunks_exact(n))
                    .enumerate()
                {
                    self.cross[pair][v] += x.iter().zip(y).map(|(p, q)| p * q).sum::<f64>();
                }
                pair += 1;
            }
        }
    }

    /// Mean over pairs of the Pearson r over `count` TRs (0 where a series is flat).
    fn reliability(&self, count: usize) -> Vec<f64> {
        let c = count as f64;
        let s = self.sums[0].len();
        (0..s)
            .map(|v| {
                let mut total = 0.0;
                let mut pair = 0;
                for a in 0..self.reps {
                    for b in a + 1..self.reps {
                        let (ma, mb) = (self.sums[a][v] / c, self.sums[b][v] / c);
                        let cov = self.cross[pair][v] / c - ma * mb;
                        let va = self.squares[a][v] / c - ma * ma;
                        let vb = self.squares[b][v] / c - mb * mb;
                        if va > 1e-20 && vb > 1e-20 {
                            total += cov / (va * vb).sqrt();
                        }
                        pair += 1;
                    }
                }
                total / pair as f64
            })
            .collect()
    }
}

/// Repetition averages of every segment of a split: (segments, S × n) voxel-major.
fn split_averages(
    reader: &mut Reader,
    runs: &[Run],
    (segments, reps): (usize, usize),
    mut stats: Option<&mut ReliabilityStats>,
    bar: &ProgressBar,
) -> Result<Vec<Vec<f64>>> {
    let n = reader.design.n_tr;
    let mut averages = Vec::with_capacity(segments);
    for segment in runs.chunks(reps) {
        let mut cleaned = Vec::with_capacity(reps);
        for run in segment {
            bar.set_message(format!(
                "{}{} rep {}",
                run.split.prefix(),
                run.segment,
                run.repetition
            ));
            cleaned.push(reader.read(run)?);
            bar.inc(1);
        }
        let mut mean = vec![0f64; cleaned[0].len()];
        for m in &cleaned {
            mean.iter_mut()
                .zip(m)
                .for_each(|(a, b)| *a += b / reps as f64);
        }
        if let Some(stats) = stats.as_deref_mut() {
            stats.add(&cleaned, n);
        }
        averages.push(mean);
    }
    Ok(averages)
}

/// Writes one split's averages, windows and index (kept voxels only).
fn write_split(
    dir: &Path,
    name: &str,
    averages: &[Vec<f64>],
    kept: &[usize],
    n: usize,
    (window, lag): (usize, usize),
) -> Result<usize> {
    let v = kept.len();
    // (segments, n, V) time-major, f32.
    let mut fmri = Vec::with_capacity(averages.len() * n * v);
    for avg in averages {
        for t in 0..n {
            fmri.extend(kept.iter().map(|&c| avg[c * n + t] as f32));
        }
    }
    npy::write(
        &dir.join(format!("fmri_{name}.npy")),
        &[averages.len(), n, v],
        &fmri,
    )?;
    let per_segment = n + 1 - window - lag;
    let samples = averages.len() * per_segment;
    let mut x =
        npy::Writer::<f32>::create(&dir.join(format!("X_{name}.npy")), &[samples, window * v])?;
    let mut index = Vec::with_capacity(samples * 2);
    for s in 0..averages.len() {
        for t in 0..per_segment {
            let start = (s * n + t + lag) * v;
            x.write(&fmri[start..start + window * v])?;
            index.extend([(s + 1) as i64, t as i64]);
        }
    }
    x.finish()?;
    npy::write(
        &dir.join(format!("{name}_index.npy")),
        &[samples, 2],
        &index,
    )?;
    Ok(samples)
}

fn settings(opts: &Cc2017Options, design: &Design) -> Result<Settings> {
    Ok(Settings {
        root: std::fs::canonicalize(&opts.root).map_err(|e| DataError::io(&opts.root, e))?,
        subject: opts.subject,
        structures: opts.structures.clone(),
        detrend: opts
            .detrend
            .degree(design.n_tr, design.tr)
            .map_or("none".into(), |o| Detrend::Poly { order: o }.label()),
        zscore: opts.zscore,
        window: opts.window,
        lag: opts.lag,
        reliability_threshold: opts.reliability_threshold,
    })
}

/// Runs `video prepare` (see the module documentation).
pub fn prepare(opts: &Cc2017Options) -> Result<PrepareReport> {
    if !opts.root.is_dir() {
        return Err(DataError::Missing {
            path: opts.root.clone(),
            what: "the CC2017 dataset's root folder (holding subjectN/fmri)".into(),
        });
    }
    let design = Design::of_dataset(&opts.root)?;
    check_options(opts, &design)?;
    let settings = settings(opts, &design)?;
    let train = runs_in(
        &opts.root,
        opts.subject,
        Split::Train,
        design.train_segments,
        design.train_repetitions,
    )?;
    let test = runs_in(
        &opts.root,
        opts.subject,
        Split::Test,
        design.test_segments,
        design.test_repetitions,
    )?;
    let refusals = Refusals {
        other_settings: [
            "a new directory, or one prepared with the same settings",
            "a subject prepared with other settings: choose another --out or remove it",
        ],
        not_empty: ["a new or empty directory", "a non-empty directory"],
    };
    if opts.out.join("video.json").exists() {
        let meta = read_meta(&opts.out)?;
        if meta.settings == settings {
            return Ok(PrepareReport {
                out: opts.out.clone(),
                already_prepared: true,
                meta,
            });
        }
        return Err(refusals.other_settings_error(&opts.out));
    }
    let meta = OutputDir::create_empty(&opts.out, refusals.not_empty)?
        .run(|staging| write_prepared(opts, &design, settings, &train, &test, staging))?;
    Ok(PrepareReport {
        out: opts.out.clone(),
        already_prepared: false,
        meta,
    })
}

fn write_prepared(
    opts: &Cc2017Options,
    design: &Design,
    settings: Settings,
    train: &[Run],
    test: &[Run],
    dir: &Path,
) -> Result<VideoPrepared> {
    let n = design.n_tr;
    let mut reader = Reader {
        opts,
        design,
        basis: opts
            .detrend
            .degree(n, design.tr)
            .map(|o| PolyBasis::new(n, o)),
        reference: None,
        columns: Vec::new(),
        cuts: Vec::new(),
        flat: 0,
    };
    let bar = bar_aligned((train.len() + test.len()) as u64, "", opts.progress, 14);
    let mut stats = ReliabilityStats::new(design.train_repetitions);
    let train_avg = split_averages(
        &mut reader,
        train,
        design.shape(Split::Train),
        Some(&mut stats),
        &bar,
    )?;
    let test_avg = split_averages(&mut reader, test, design.shape(Split::Test), None, &bar)?;
    bar.finish_and_clear();
    let reliability = stats.reliability(train_avg.len() * n);
    let kept: Vec<usize> = match opts.reliability_threshold {
        Some(r) => (0..reliability.len())
            .filter(|&v| reliability[v] > r)
            .collect(),
        None => (0..reliability.len()).collect(),
    };
    if kept.is_empty() {
        let best = reliability
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        return Err(DataError::Usage(format!(
            "--reliability-threshold {}: no grayordinate is above it (the highest test-retest r is {best:.3}); lower it",
            opts.reliability_threshold.unwrap_or(0.0)
        )));
    }
    let mask: Vec<u8> = (0..reliability.len())
        .map(|v| kept.binary_search(&v).is_ok() as u8)
        .collect();
    let columns: Vec<i64> = reader.columns.iter().map(|&c| c as i64).collect();
    npy::write(&dir.join("columns.npy"), &[columns.len()], &columns)?;
    let r32: Vec<f32> = reliability.iter().map(|&r| r as f32).collect();
    npy::write(&dir.join("reliability.npy"), &[r32.len()], &r32)?;
    npy::write(&dir.join("mask.npy"), &[mask.len()], &mask)?;
    let gray: Vec<i64> = kept.iter().map(|&v| columns[v]).collect();
    npy::write(&dir.join("grayordinates.npy"), &[gray.len()], &gray)?;
    let window = (opts.window, opts.lag);
    let n_train = write_split(dir, "train", &train_avg, &kept, n, window)?;
    let n_test = write_split(dir, "test", &test_avg, &kept, n, window)?;
    let mean = |v: &[usize]| v.iter().map(|&i| reliability[i]).sum::<f64>() / v.len().max(1) as f64;
    let all: Vec<usize> = (0..reliability.len()).collect();
    let meta = VideoPrepared {
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        settings,
        design: design.clone(),
        cuts: reader.cuts.clone(),
        n_selected: reliability.len(),
        n_voxels: kept.len(),
        n_train,
        n_test,
        n_features: opts.window * kept.len(),
        reliability: "Pearson r between presentations of the training segments over all their TRs (run means removed), mean over pairs of presentations".into(),
        mean_reliability_kept: mean(&kept),
        mean_reliability_all: mean(&all),
        flat_grayordinates: reader.flat,
        runs_read: train.len() + test.len(),
        files: [
            "X_train.npy", "X_test.npy", "train_index.npy", "test_index.npy", "fmri_train.npy",
            "fmri_test.npy", "columns.npy", "reliability.npy", "mask.npy", "grayordinates.npy",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    };
    write_json_atomic(&dir.join("video.json"), &meta)?;
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_counts_whose_product_passes_the_limit_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("design.json");
        let huge = [
            ("train_segments", serde_json::json!(u64::MAX / 2 + 1)),
            ("test_repetitions", serde_json::json!(4_000_000)),
            ("frames_per_tr", serde_json::json!(1u64 << 40)),
        ];
        for (field, value) in huge {
            let mut design = serde_json::to_value(Design::published()).unwrap();
            design[field] = value;
            std::fs::write(&path, design.to_string()).unwrap();
            let err = Design::of_dataset(dir.path()).unwrap_err().to_string();
            assert!(
                err.contains("design.json") && err.contains("BRAINRECON_MAX_VOLUMES"),
                "{field}: {err}"
            );
        }
        let mut design = serde_json::to_value(Design::published()).unwrap();
        design["frames_per_tr"] = serde_json::json!(0);
        std::fs::write(&path, design.to_string()).unwrap();
        assert!(Design::of_dataset(dir.path()).is_err());
    }
}
