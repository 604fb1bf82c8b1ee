//! `group fit`: a space for the group, its pooled subject and the decoders fitted on it.

use super::data::{
    apply_map, feature_rows, feature_widths, scale_targets, split_rows, split_rows_block,
    target_scaling_blocks, write_mat, write_pooled_features, write_space_subject, write_vec, Rows,
    SpaceSubject,
};
use super::{decoders_dir, space_dir, GroupMeta, SpaceMeta, SpaceMethod, SPACE_FORMAT};
use crate::decode::decoders::{fit_request, log_grid, DecoderSummary, FitRequest};
use crate::error::{Result, RouteError};
use crate::linear::shards::ImageShard;
use brainrecon_align::pooled_ridge::{
    fit_pooled_ridge, pooled_ridge_peak_bytes, PooledPath, PooledRidgeOptions, RepeatedRows,
};
use brainrecon_align::shared_space::SharedSpaceOptions;
use brainrecon_align::srm::{fit_det_srm, fit_srm, SrmOptions};
use brainrecon_align::streamed::{
    fit_shared_space_blocks, gcv_alpha_blocks, peak_bytes, BlockSpectrum, BlockSubject, RowBlocks,
    SubjectSize,
};
use brainrecon_core::fs::{write_json_atomic, OutputDir};
use brainrecon_datasets::prepared::{PreparedSubject, Roi, Split};
use brainrecon_formats::npy;
use faer::Mat;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What `group fit` is asked.
#[derive(Debug, Clone)]
pub struct GroupFitRequest {
    /// The group folder.
    pub group: PathBuf,
    /// shared, srm or detsrm.
    pub method: String,
    /// The space's name (default: the method's).
    pub name: Option<String>,
    /// Dimensions of the space.
    pub k: usize,
    /// Iterations of SRM.
    pub n_iter: usize,
    /// Seed of the fit (SRM's initial maps, the shared space's randomized-SVD probes).
    pub seed: u64,
    /// Decoders to fit on the pooled subject (z, c).
    pub targets: Vec<String>,
    /// Cross-validation of those decoders (as `fit --cv`).
    pub cv: String,
}

/// What `group fit` did.
#[derive(Debug, Clone, Serialize)]
pub struct GroupFitReport {
    /// The space folder written, `GROUP/spaces/NAME`.
    pub space: PathBuf,
    /// How it was fitted (`shared`, `srm`, `detsrm`).
    pub method: String,
    /// Dimensions of the space.
    pub k: usize,
    /// Train rows of the pooled subject: every group subject's trials in the space.
    pub n_pooled_rows: usize,
    /// Wall time of the space's fit, in seconds.
    pub seconds_space: f64,
    /// The decoders fitted on the pooled subject.
    pub decoders: Vec<DecoderSummary>,
}

impl GroupFitReport {
    /// The lines the command prints.
    pub fn text(&self) -> String {
        let mut text = format!(
            "fitted space {} ({}, k = {}) in {:.1} s; pooled subject of {} rows\n",
            self.space.display(),
            self.method,
            self.k,
            self.seconds_space,
            self.n_pooled_rows
        );
        for d in &self.decoders {
            text.push_str(&format!(
                "  decoder {} from the space: test r mean {:.3} on {} images ({:.1} s) → {}\n",
                d.target,
                d.test_r_mean,
                d.n_test,
                d.seconds,
                d.model.display()
            ));
        }
        text
    }
}

/// The alpha grid of the maps into a space.
pub fn map_alphas() -> Vec<f64> {
    log_grid(-1.0, 7.0, 17)
}

/// Columns of `y` to choose an alpha on: all, or an even subsample of 512.
pub fn alpha_columns(y: &Mat<f64>) -> Mat<f64> {
    let cols = alpha_column_indices(y.ncols());
    Mat::from_fn(y.nrows(), cols.len(), |i, j| y[(i, cols[j])])
}

/// The columns [`alpha_columns`] keeps of d: all, or every ⌈d/512⌉-th.
pub fn alpha_column_indices(d: usize) -> Vec<usize> {
    let step = d.div_ceil(512).max(1);
    (0..d).step_by(step).collect()
}

/// How a `group fit` run may use memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FitLimits {
    /// Refuse, before reading the train betas, a fit whose estimated peak ([`FitMemory`]) is
    /// above this many bytes. `None`: no limit (the estimate is still reported).
    pub memory_bytes: Option<u64>,
    /// Rows read per block by the space's fit (default: [`default_block_rows`]).
    pub block_rows: Option<usize>,
    /// The largest basis the encoder is solved in (default [`ENCODER_RANK`]): exact when the
    /// features' dimension p or the pooled subject's distinct images are at most this, else the
    /// ridge in a range-finder basis of this many dimensions
    /// ([`brainrecon_align::pooled_ridge`]).
    pub encoder_rank: Option<usize>,
}

impl FitLimits {
    /// The limits of a memory budget of `gb` GB (10⁹ bytes), as `group fit --memory-gb` and
    /// Python's `group.fit(memory_gb=…)` take it; `None`: no budget. Errors: a budget that is
    /// not a positive finite number ([`RouteError::Usage`]).
    pub fn with_memory_gb(gb: Option<f64>) -> Result<Self> {
        let memory_bytes = match gb {
            None => None,
            Some(gb) if gb.is_finite() && gb > 0.0 => Some((gb * 1e9) as u64),
            Some(gb) => {
                return Err(RouteError::Usage(format!(
                    "--memory-gb: expected a positive number of GB, found {gb}"
                )))
            }
        };
        Ok(FitLimits {
            memory_bytes,
            ..FitLimits::default()
        })
    }
}

/// The encoder's largest basis by default: 4,096 dimensions (see [`FitLimits::encoder_rank`]).
pub const ENCODER_RANK: usize = 4096;

/// Bytes of f64 a default block of rows holds: 256 MiB.
pub const BLOCK_BYTES: usize = 256 << 20;

/// Rows per block so that one block of the widest matrix read (`width` columns of f64) is
/// about [`BLOCK_BYTES`]; at least 1.
pub fn default_block_rows(width: usize) -> usize {
    (BLOCK_BYTES / (8 * width.max(1))).max(1)
}

/// A group subject's size as the fit sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FitSubjectSize {
    /// Fitting rows: train trials, then align images.
    pub rows: usize,
    /// Voxels of the group's ROI.
    pub voxels: usize,
    /// Rows of its test split (one per test image), read whole.
    pub test_rows: usize,
}

/// The estimated peak memory of `group fit`, in bytes, by part; f64 unless said. With b the
/// rows per block, d the targets (feature columns), k the space's dimensions, m the distinct
/// images of the pooled fitting rows and r = min([`FitLimits::encoder_rank`], d, m):
/// `peak = held_rows + max(space, pooled + encoder, pooled + pooled_features)`, and one
/// `--shard` task of subject s needs `stats_task` (below). Nothing of it grows with the rows
/// but the spectra (min(n_s, v_s)², at most v_s²), the pooled rows (Σ n_s · k) and the
/// encoder's per-image means (m · k).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FitMemory {
    /// Every subject's align and test selections of its test split (Σ t_s v_s), held
    /// throughout, plus one whole split (max t_s v_s) while a subject is read.
    pub held_rows: u64,
    /// The space's fit: for `shared`, the streamed fit's bound
    /// ([`brainrecon_align::streamed::peak_bytes`]); for SRM, the align images and its maps.
    pub space: u64,
    /// The maps and the pooled subject's rows in the space (Σ v_s k + Σ n_s k), held after the
    /// fit.
    pub pooled: u64,
    /// The encoder (scaled features → space) from row blocks of the m distinct images
    /// ([`brainrecon_align::pooled_ridge::pooled_ridge_peak_bytes`]), plus one block of raw
    /// features as they are read (12 b d: f64 and the f32 gather).
    pub encoder: u64,
    /// The pooled subject's features, written image block by image block: 12 b d.
    pub pooled_features: u64,
    /// `held_rows` + the largest of `space`, `pooled + encoder`, `pooled + pooled_features`.
    pub peak: u64,
    /// One statistics task (`--shard k/N`) of the largest subject: its test split held
    /// (2 t v), then the largest of the spectrum (3 r_s² with r_s = min(n, v), plus two blocks
    /// of betas, 2 b v) and its GCV (r_s² held, the projections r_s g and v g for g GCV
    /// columns, two blocks of betas and 3 b d of targets as they are read and scaled).
    pub stats_task: u64,
}

impl FitMemory {
    /// Estimates the peak of a fit of `subjects` onto `d` targets with `images` pooled images,
    /// `encoder_images` of them (m) among the fitting rows, the encoder solved in at most
    /// `encoder_rank` dimensions.
    #[allow(clippy::too_many_arguments)]
    pub fn estimate(
        method: SpaceMethod,
        subjects: &[FitSubjectSize],
        d: usize,
        images: usize,
        encoder_images: usize,
        opts: &SharedSpaceOptions,
        block_rows: usize,
        encoder_rank: usize,
    ) -> Self {
        let f = 8u64;
        let k = opts.k as u64;
        let d64 = d as u64;
        let sum_n: u64 = subjects.iter().map(|s| s.rows as u64).sum();
        let sum_v: u64 = subjects.iter().map(|s| s.voxels as u64).sum();
        // The align and test selections part the test split: Σ t v held, and while a subject
        // is read its whole split beside them.
        let split = |s: &FitSubjectSize| f * s.test_rows as u64 * s.voxels as u64;
        let held_rows: u64 =
            subjects.iter().map(split).sum::<u64>() + subjects.iter().map(split).max().unwrap_or(0);
        let space = match method {
            SpaceMethod::Shared => {
                let sizes: Vec<SubjectSize> = subjects
                    .iter()
                    .map(|s| SubjectSize {
                        rows: s.rows,
                        voxels: s.voxels,
                    })
                    .collect();
                let gcv = alpha_column_indices(d).len();
                peak_bytes(&sizes, d, gcv, opts, block_rows)
            }
            // The align images transposed, and W, its update and S (k × align images).
            SpaceMethod::Srm | SpaceMethod::Detsrm => {
                let align: u64 = subjects
                    .iter()
                    .map(|s| s.test_rows as u64 * s.voxels as u64)
                    .sum();
                f * (align + 3 * sum_v * k)
            }
        };
        let pooled = f * (sum_v * k + sum_n * k);
        let b_images = block_rows.min(images.max(1)) as u64;
        let read_block = 12 * b_images * d64;
        let encoder = pooled_ridge_peak_bytes(
            encoder_images,
            d,
            opts.k,
            map_alphas().len(),
            encoder_rank,
            block_rows,
        ) + read_block;
        let pooled_features = read_block;
        let peak = held_rows + space.max(pooled + encoder).max(pooled + pooled_features);
        let stats_task = subjects
            .iter()
            .map(|s| stats_task_bytes(s, d, block_rows))
            .max()
            .unwrap_or(0);
        Self {
            held_rows,
            space,
            pooled,
            encoder,
            pooled_features,
            peak,
            stats_task,
        }
    }

    /// The refusal when the estimate is above `budget` bytes, naming the sizes and the parts.
    pub fn check(
        &self,
        budget: Option<u64>,
        subjects: &[FitSubjectSize],
        d: usize,
        k: usize,
    ) -> Result<()> {
        let Some(budget) = budget else {
            return Ok(());
        };
        if self.peak <= budget {
            return Ok(());
        }
        let gb = |b: u64| b as f64 / 1e9;
        let rows: usize = subjects.iter().map(|s| s.rows).sum();
        let voxels = subjects.iter().map(|s| s.voxels).max().unwrap_or(0);
        Err(RouteError::Usage(format!(
            "--memory-gb {:.1}: group fit of {} subjects ({rows} fitting rows in all, up to \
             {voxels} voxels) onto {d} targets at k = {k} needs about {:.1} GB (estimated before \
             reading: the space's fit {:.1} GB, the encoder from all {rows} rows × {d} targets \
             {:.1} GB, the pooled subject's features {:.1} GB, rows held {:.1} GB); allow more \
             memory, fewer subjects or rows, a smaller k or a smaller encoder basis",
            gb(budget),
            subjects.len(),
            gb(self.peak),
            gb(self.space),
            gb(self.encoder),
            gb(self.pooled_features),
            gb(self.held_rows),
        )))
    }

    /// The refusal of a statistics task (`--shard k/N`) whose estimate for subject `index`
    /// (of `size`) is above `budget` bytes.
    pub fn check_stats_task(
        budget: Option<u64>,
        index: usize,
        size: &FitSubjectSize,
        d: usize,
        block_rows: usize,
    ) -> Result<()> {
        let needed = stats_task_bytes(size, d, block_rows);
        match budget {
            Some(budget) if needed > budget => Err(RouteError::Usage(format!(
                "--memory-gb {:.1}: the statistics of subject {index} ({} fitting rows × {} \
                 voxels, targets {d}) need about {:.1} GB (estimated before reading: its \
                 spectrum of min(rows, voxels)² and the blocks of {block_rows} rows); allow \
                 more memory or fewer rows per block",
                budget as f64 / 1e9,
                size.rows,
                size.voxels,
                needed as f64 / 1e9
            ))),
            _ => Ok(()),
        }
    }

    /// One line for the progress: the peak and its parts in GB.
    pub fn text(&self) -> String {
        let gb = |b: u64| b as f64 / 1e9;
        format!(
            "estimated peak {:.2} GB (space {:.2}, encoder {:.2}, pooled features {:.2}, rows \
             held {:.2}; one statistics task {:.2})",
            gb(self.peak),
            gb(self.space),
            gb(self.encoder),
            gb(self.pooled_features),
            gb(self.held_rows),
            gb(self.stats_task)
        )
    }
}

/// [`FitMemory::stats_task`] for one subject.
fn stats_task_bytes(s: &FitSubjectSize, d: usize, block_rows: usize) -> u64 {
    let (n, v, t) = (s.rows as u64, s.voxels as u64, s.test_rows as u64);
    let r = n.min(v);
    let b = (block_rows as u64).min(n.max(1));
    let g = alpha_column_indices(d).len() as u64;
    let spectrum = 3 * r * r + 2 * b * v;
    let gcv = r * r + r * g + v * g + 2 * b * v + 3 * b * d as u64;
    8 * (2 * t * v + spectrum.max(gcv))
}

/// One group subject's rows: train trials (read from disk in blocks), align images and
/// test-half images (in memory, one row per shared image).
pub(crate) struct SubjectRows {
    pub subject: PreparedSubject,
    pub roi: Roi,
    pub train_ids: Vec<usize>,
    pub align: Rows,
    pub test: Rows,
    /// Rows of the test split, all of which are read.
    pub test_split_rows: usize,
}

impl SubjectRows {
    /// Ids of the fitting rows: train trials, then align images.
    fn fitting_ids(&self) -> Vec<usize> {
        self.train_ids
            .iter()
            .chain(&self.align.ids)
            .copied()
            .collect()
    }

    fn size(&self) -> FitSubjectSize {
        FitSubjectSize {
            rows: self.train_ids.len() + self.align.ids.len(),
            voxels: self.roi.n_voxels,
            test_rows: self.test_split_rows,
        }
    }
}

pub(crate) fn load_subject_rows(group: &GroupMeta, index: usize) -> Result<SubjectRows> {
    let subject = PreparedSubject::open(&group.subjects[index].path)?;
    let roi = subject.roi(&group.roi)?;
    if roi.n_voxels != group.subjects[index].n_voxels {
        return Err(RouteError::mismatch(
            &subject.path("subject.json"),
            "voxels",
            format!(
                "{} voxels of {} as when the group was prepared",
                group.subjects[index].n_voxels, group.roi
            ),
            roi.n_voxels,
        ));
    }
    let train_ids = subject.row_ids(Split::Train)?;
    let train_path = subject.betas_path(&roi.atlas, Split::Train);
    let header = npy::read_header(&train_path)?;
    if header.shape.len() != 2 || header.shape[0] != train_ids.len() {
        return Err(RouteError::mismatch(
            &train_path,
            "rows",
            format!("{} rows, one per stimulus id", train_ids.len()),
            format!("{:?}", header.shape),
        ));
    }
    let tested = split_rows(&subject, &roi, Split::Test)?;
    let align = tested.select(|_, id| group.align_ids.binary_search(&id).is_ok());
    let test = tested.select(|_, id| group.test_ids.binary_search(&id).is_ok());
    Ok(SubjectRows {
        test_split_rows: tested.ids.len(),
        subject,
        roi,
        train_ids,
        align,
        test,
    })
}

/// A subject's fitting betas (train trials, then align images) less `mean`, by row blocks:
/// the train trials read from disk for each block.
struct FittingBetas<'a> {
    rows: &'a SubjectRows,
    mean: Vec<f64>,
}

impl FittingBetas<'_> {
    /// The raw rows `start .. start + len` (f32 → f64), not centred.
    fn raw(&self, start: usize, len: usize) -> Result<Mat<f64>> {
        let n_train = self.rows.train_ids.len();
        let v = self.rows.roi.n_voxels;
        let mut x = Mat::<f64>::zeros(len, v);
        let train_end = (start + len).min(n_train);
        if start < train_end {
            let part = split_rows_block(
                &self.rows.subject,
                &self.rows.roi,
                Split::Train,
                start,
                train_end - start,
            )?;
            x.as_mut().subrows_mut(0, part.nrows()).copy_from(&part);
        }
        for i in start.max(n_train)..start + len {
            for j in 0..v {
                x[(i - start, j)] = self.rows.align.x[(i - n_train, j)];
            }
        }
        Ok(x)
    }

    /// Column means of the fitting rows, summed in row order as
    /// [`super::data::column_means`] sums them.
    fn means(rows: &SubjectRows, block_rows: usize) -> Result<Vec<f64>> {
        let zeros = FittingBetas {
            rows,
            mean: vec![0.0; rows.roi.n_voxels],
        };
        let n = zeros.rows();
        let zero: f64 = std::iter::empty::<f64>().sum();
        let mut sums = vec![zero; rows.roi.n_voxels];
        for start in (0..n).step_by(block_rows.max(1)) {
            let x = zeros.raw(start, block_rows.min(n - start))?;
            for (j, sum) in sums.iter_mut().enumerate() {
                for i in 0..x.nrows() {
                    *sum += x[(i, j)];
                }
            }
        }
        let count = n.max(1) as f64;
        Ok(sums.into_iter().map(|s| s / count).collect())
    }

    /// `(X − mean) · map` of every fitting row, block by block.
    fn mapped(&self, map: &Mat<f64>, block_rows: usize) -> Result<Mat<f64>> {
        let n = self.rows();
        let mut out = Mat::<f64>::zeros(n, map.ncols());
        for start in (0..n).step_by(block_rows.max(1)) {
            let x = self.block(start, block_rows.min(n - start))?;
            let part = &x * map;
            out.as_mut()
                .subrows_mut(start, part.nrows())
                .copy_from(&part);
        }
        Ok(out)
    }
}

impl RowBlocks for FittingBetas<'_> {
    type Error = RouteError;
    fn rows(&self) -> usize {
        self.rows.train_ids.len() + self.rows.align.ids.len()
    }
    fn cols(&self) -> usize {
        self.rows.roi.n_voxels
    }
    fn block(&self, start: usize, len: usize) -> Result<Mat<f64>> {
        let mut x = self.raw(start, len)?;
        for j in 0..x.ncols() {
            for i in 0..x.nrows() {
                x[(i, j)] -= self.mean[j];
            }
        }
        Ok(x)
    }
}

/// A subject's scaled targets of its fitting rows (or of `columns` of them), by row blocks
/// read from its features folder.
struct FittingTargets<'a> {
    subject: &'a PreparedSubject,
    kinds: &'a [String],
    ids: Vec<usize>,
    mean: &'a [f64],
    blocks: &'a [super::TargetBlock],
    columns: Option<Vec<usize>>,
}

impl RowBlocks for FittingTargets<'_> {
    type Error = RouteError;
    fn rows(&self) -> usize {
        self.ids.len()
    }
    fn cols(&self) -> usize {
        self.columns.as_ref().map_or(self.mean.len(), Vec::len)
    }
    fn block(&self, start: usize, len: usize) -> Result<Mat<f64>> {
        let raw = feature_rows(self.subject, self.kinds, &self.ids[start..start + len])?;
        let y = scale_targets(&raw, self.mean, self.blocks);
        Ok(match &self.columns {
            Some(cols) => Mat::from_fn(y.nrows(), cols.len(), |i, j| y[(i, cols[j])]),
            None => y,
        })
    }
}

/// Fits a space, writes it with its pooled subject, then fits the decoders on that subject.
pub fn fit_group(r: &GroupFitRequest, progress: &mut dyn FnMut(String)) -> Result<GroupFitReport> {
    fit_group_within(r, &FitLimits::default(), progress)
}

/// [`fit_group`] within `limits`: refuses (a usage error, exit 2) before reading the train
/// betas when the estimated peak ([`FitMemory`]) is above the budget.
///
/// The `shared` space is fitted from row blocks ([`brainrecon_align::streamed`]): each
/// subject's betas are read from disk block by block (f32 → f64) on every pass and its targets
/// gathered from its features by block; one eigendecomposition per subject serves the GCV
/// choice of α and the fit. The result equals the in-memory fit: to the bit when every
/// subject has at least as many voxels as rows and fits in one block, to rounding otherwise
/// (crates/routes/tests/group_fit_streamed.rs). It runs as [`FitStep::Whole`] of
/// [`fit_group_step`]: every subject's statistics, then the merge, the same two functions
/// that the array form runs in separate processes.
pub fn fit_group_within(
    r: &GroupFitRequest,
    limits: &FitLimits,
    progress: &mut dyn FnMut(String),
) -> Result<GroupFitReport> {
    match fit_group_step(r, limits, &FitStep::Whole, progress)? {
        FitStepReport::Fitted(report) => Ok(report),
        FitStepReport::Stats(_) => unreachable!("the whole fit ends with the space"),
    }
}

/// Which part of `group fit` a process runs: all of it, or one piece of the array form (a Slurm
/// job array: one task per shard of subjects, then a merge that waits for them all).
#[derive(Debug, Clone, PartialEq)]
pub enum FitStep {
    /// Every subject's statistics, then the merge, in one process.
    Whole,
    /// `--shard k/N`: the statistics of the k-th of N contiguous slices of the group's subjects
    /// (sizes differ by at most one, earlier slices take the extra ones), each written to
    /// `WORK/subject-S` ([`stats_dir`]). `shared` only.
    SubjectStats {
        /// Which slice of the subjects.
        shard: ImageShard,
        /// The statistics' folder (default [`default_work_dir`]).
        work: Option<PathBuf>,
    },
    /// `--merge`: the rest of the fit (randomized SVD, maps, pooled subject, decoders) from
    /// every subject's statistics in the work folder. `shared` only.
    Merge {
        /// The statistics' folder (default [`default_work_dir`]).
        work: Option<PathBuf>,
    },
}

/// What a [`fit_group_step`] did; as JSON, the variant's own fields.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum FitStepReport {
    /// The space was fitted ([`FitStep::Whole`], [`FitStep::Merge`]).
    Fitted(GroupFitReport),
    /// Statistics were written ([`FitStep::SubjectStats`]).
    Stats(StatsReport),
}

impl FitStepReport {
    /// The lines the command prints.
    pub fn text(&self) -> String {
        match self {
            FitStepReport::Fitted(r) => r.text(),
            FitStepReport::Stats(r) => r.text(),
        }
    }
}

/// What a [`FitStep::SubjectStats`] task wrote.
#[derive(Debug, Clone, Serialize)]
pub struct StatsReport {
    /// The work folder.
    pub work: PathBuf,
    /// Each subject's statistics written: (index in group.json, its folder, seconds).
    pub subjects: Vec<WrittenStats>,
}

/// One subject's statistics, as a task wrote them.
#[derive(Debug, Clone, Serialize)]
pub struct WrittenStats {
    /// The subject's index in group.json (0-based).
    pub subject: usize,
    /// `WORK/subject-S`.
    pub dir: PathBuf,
    /// Its GCV α.
    pub alpha: f64,
    /// Wall time of its statistics, in seconds.
    pub seconds: f64,
}

impl StatsReport {
    /// The lines the command prints.
    pub fn text(&self) -> String {
        let mut text = String::new();
        for s in &self.subjects {
            text.push_str(&format!(
                "statistics of subject {} (α = {}) in {:.1} s → {}\n",
                s.subject,
                s.alpha,
                s.seconds,
                s.dir.display()
            ));
        }
        text
    }
}

/// `GROUP/stats/NAME`: where the array form's tasks write their statistics by default.
pub fn default_work_dir(group: &Path, name: &str) -> PathBuf {
    group.join("stats").join(name)
}

/// `WORK/subject-S`: subject S's statistics (S: its 0-based index in group.json).
pub fn stats_dir(work: &Path, subject: usize) -> PathBuf {
    work.join(format!("subject-{subject}"))
}

/// `stats.json` of a subject's statistics, written last: its presence marks them done.
pub const STATS_FILE: &str = "stats.json";
const STATS_FORMAT: &str = "brainrecon-group-stats";

/// Whether every subject of shard `shard` has its statistics in `work` (read from the
/// files: `stats.json` is committed with the rest). `subjects`: the group's count.
pub fn shard_stats_done(work: &Path, shard: ImageShard, subjects: usize) -> bool {
    shard
        .rows(subjects)
        .all(|s| stats_dir(work, s).join(STATS_FILE).is_file())
}

/// Runs `step` of `group fit`. [`FitStep::Whole`] is [`fit_group_within`]; the array form
/// runs [`FitStep::SubjectStats`] for every shard (in any order, in separate processes), then
/// [`FitStep::Merge`], and writes the same bytes as the whole fit (every file of the space;
/// `space.json`'s `seconds` is wall time): both go through the same per-subject function
/// and the same merge, and the statistics are stored in f64, bit for bit.
///
/// A subject's statistics are the heavy, independent part: its fitting rows' column means,
/// the spectrum of its betas (one pass forms the Gram, one eigendecomposition) and its GCV α.
/// α is chosen on the targets scaled as the whole group's are, so every task first reads the
/// group's target scaling (every subject's features of its fitting rows, not its betas).
///
/// Errors: as [`fit_group_within`]; a usage error for a step of the array form with a method
/// other than `shared` or a shard count above the subjects'; in the merge, a subject's
/// statistics missing ([`RouteError::Missing`], naming the file), or written for another group,
/// subject, ROI, features or block size ([`RouteError::Mismatch`], naming the file and field).
pub fn fit_group_step(
    r: &GroupFitRequest,
    limits: &FitLimits,
    step: &FitStep,
    progress: &mut dyn FnMut(String),
) -> Result<FitStepReport> {
    let plan = FitPlan::new(r, limits)?;
    let work = |w: &Option<PathBuf>| {
        w.clone()
            .unwrap_or_else(|| default_work_dir(&r.group, &plan.name))
    };
    if *step != FitStep::Whole && plan.method != SpaceMethod::Shared {
        return Err(RouteError::Usage(format!(
            "--shard/--merge: the array form fits --method shared (one spectrum per subject); \
             --method {} aligns on the align images in one process: leave --shard and --merge \
             out",
            plan.method.name()
        )));
    }
    let started = Instant::now();
    match step {
        FitStep::SubjectStats { shard, work: w } => {
            let work = work(w);
            let written = plan.write_subject_stats(*shard, &work, limits.memory_bytes, progress)?;
            Ok(FitStepReport::Stats(StatsReport {
                work,
                subjects: written,
            }))
        }
        FitStep::Whole | FitStep::Merge { .. } => {
            progress(format!("reading {} subjects", plan.group.subjects.len()));
            let rows: Vec<SubjectRows> = (0..plan.group.subjects.len())
                .map(|i| load_subject_rows(&plan.group, i))
                .collect::<Result<_>>()?;
            plan.check_memory(&rows, limits, progress)?;
            let scaling = plan.scaling(
                &rows
                    .iter()
                    .map(|s| (&s.subject, s.fitting_ids()))
                    .collect::<Vec<_>>(),
            )?;
            let stats = match (step, plan.method) {
                (FitStep::Merge { work: w }, _) => {
                    let work = work(w);
                    let stats = (0..rows.len())
                        .map(|s| plan.read_subject_stats(&work, s, &rows[s], &scaling))
                        .collect::<Result<Vec<_>>>()?;
                    progress(format!(
                        "read {} subjects' statistics from {} after {:.1} s",
                        stats.len(),
                        work.display(),
                        started.elapsed().as_secs_f64()
                    ));
                    Some(stats)
                }
                (_, SpaceMethod::Shared) => Some(
                    rows.iter()
                        .enumerate()
                        .map(|(s, subject_rows)| {
                            let stats = plan.subject_stats(s, subject_rows, &scaling)?;
                            progress(format!(
                                "subject {} of {}: spectrum and α after {:.1} s",
                                s + 1,
                                rows.len(),
                                started.elapsed().as_secs_f64()
                            ));
                            Ok(stats)
                        })
                        .collect::<Result<Vec<_>>>()?,
                ),
                _ => None,
            };
            plan.merge(r, rows, scaling, stats, started, progress)
                .map(FitStepReport::Fitted)
        }
    }
}

/// What every step of a fit derives from the request and the group before reading betas.
struct FitPlan {
    group: GroupMeta,
    method: SpaceMethod,
    name: String,
    /// Widths of the target blocks (the group's kinds), and d, their sum.
    widths: Vec<usize>,
    d: usize,
    block_rows: usize,
    /// The encoder's largest basis ([`FitLimits::encoder_rank`]).
    encoder_rank: usize,
    opts: SharedSpaceOptions,
}

/// The group's target scaling and every subject's fitting ids (train trials, then align
/// images), computed alike in every process.
struct Scaling {
    mean: Vec<f64>,
    blocks: Vec<super::TargetBlock>,
    fitting_ids: Vec<Vec<usize>>,
}

/// One subject's statistics: what the merge needs of it besides its rows.
struct SubjectStats {
    /// Column means of its fitting rows.
    mean: Vec<f64>,
    alpha: f64,
    spectrum: BlockSpectrum,
}

/// `stats.json` of a subject's statistics: what they were computed from, checked by the merge.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
struct StatsMeta {
    format: String,
    format_version: u32,
    /// Index in group.json, 0-based.
    subject: usize,
    /// The subject's prepared folder, as group.json names it.
    subject_path: PathBuf,
    roi: String,
    kinds: Vec<String>,
    /// Fitting rows n (train trials, then align images) and voxels v.
    rows: usize,
    voxels: usize,
    /// Targets d and the rows per block the statistics were read in.
    targets: usize,
    block_rows: usize,
    /// The group's target scales, one per kind.
    target_scales: Vec<f64>,
    alpha: f64,
    seconds: f64,
}

impl FitPlan {
    fn new(r: &GroupFitRequest, limits: &FitLimits) -> Result<Self> {
        let group = GroupMeta::read(&r.group)?;
        let method = SpaceMethod::parse(&r.method)?;
        let name = r.name.clone().unwrap_or_else(|| method.name().to_string());
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(RouteError::Usage(format!(
                "--name: expected a folder name for the space, found '{name}'"
            )));
        }
        if r.k == 0 {
            return Err(RouteError::Usage(
                "--k: expected at least 1 dimension".into(),
            ));
        }
        if method.needs_shared_images() && group.align_ids.len() < 2 {
            return Err(RouteError::Usage(format!(
                "--method {}: aligns subjects on images every one of them saw, but {} holds {} \
                 such images to align on; use --method shared, which needs none",
                method.name(),
                r.group.join("group.json").display(),
                group.align_ids.len()
            )));
        }
        if method.needs_shared_images() && r.k > group.align_ids.len() {
            return Err(RouteError::Usage(format!(
                "--k {}: SRM's space has at most as many dimensions as align images ({})",
                r.k,
                group.align_ids.len()
            )));
        }
        if limits.block_rows == Some(0) {
            return Err(RouteError::Usage("block rows: expected at least 1".into()));
        }
        if limits.encoder_rank == Some(0) {
            return Err(RouteError::Usage(
                "encoder rank: expected at least 1 dimension".into(),
            ));
        }
        for target in &r.targets {
            crate::decode::decoders::Target::parse(target)?;
        }
        let first = group.subjects.first().ok_or_else(|| {
            RouteError::mismatch(
                &r.group.join("group.json"),
                "subjects",
                "at least one subject",
                "none",
            )
        })?;
        let widths = feature_widths(&PreparedSubject::open(&first.path)?, &group.kinds)?;
        let d: usize = widths.iter().sum();
        // From group.json's voxel counts, which every step checks against the subjects': the
        // same blocks in every process.
        let widest = group
            .subjects
            .iter()
            .map(|s| s.n_voxels)
            .max()
            .unwrap_or(1)
            .max(d);
        let block_rows = limits
            .block_rows
            .unwrap_or_else(|| default_block_rows(widest));
        let opts = SharedSpaceOptions {
            k: r.k,
            seed: r.seed,
            ..SharedSpaceOptions::default()
        };
        Ok(FitPlan {
            group,
            method,
            name,
            widths,
            d,
            block_rows,
            encoder_rank: limits.encoder_rank.unwrap_or(ENCODER_RANK),
            opts,
        })
    }

    /// The estimated peak of the whole fit (or the merge), refused above the budget.
    fn check_memory(
        &self,
        rows: &[SubjectRows],
        limits: &FitLimits,
        progress: &mut dyn FnMut(String),
    ) -> Result<()> {
        let sizes: Vec<FitSubjectSize> = rows.iter().map(SubjectRows::size).collect();
        let pooled_images: BTreeSet<usize> = rows
            .iter()
            .flat_map(|s| {
                s.fitting_ids()
                    .into_iter()
                    .chain(s.test.ids.iter().copied())
            })
            .collect();
        let encoder_images: BTreeSet<usize> =
            rows.iter().flat_map(SubjectRows::fitting_ids).collect();
        let memory = FitMemory::estimate(
            self.method,
            &sizes,
            self.d,
            pooled_images.len(),
            encoder_images.len(),
            &self.opts,
            self.block_rows,
            self.encoder_rank,
        );
        progress(format!(
            "{}; blocks of {} rows",
            memory.text(),
            self.block_rows
        ));
        memory.check(limits.memory_bytes, &sizes, self.d, self.opts.k)
    }

    /// Targets of every subject's fitting rows, scaled by the stacked rows' means and block
    /// variances.
    fn scaling(&self, subjects: &[(&PreparedSubject, Vec<usize>)]) -> Result<Scaling> {
        let parts: Vec<(&PreparedSubject, &[usize])> = subjects
            .iter()
            .map(|(s, ids)| (*s, ids.as_slice()))
            .collect();
        let (mean, blocks) =
            target_scaling_blocks(&parts, &self.group.kinds, &self.widths, self.block_rows)?;
        Ok(Scaling {
            mean,
            blocks,
            fitting_ids: subjects.iter().map(|(_, ids)| ids.clone()).collect(),
        })
    }

    fn targets<'a>(
        &'a self,
        subject: &'a PreparedSubject,
        ids: &[usize],
        scaling: &'a Scaling,
        columns: Option<Vec<usize>>,
    ) -> FittingTargets<'a> {
        FittingTargets {
            subject,
            kinds: &self.group.kinds,
            ids: ids.to_vec(),
            mean: &scaling.mean,
            blocks: &scaling.blocks,
            columns,
        }
    }

    /// Subject `s`'s statistics: the one function both forms run for it.
    fn subject_stats(
        &self,
        s: usize,
        rows: &SubjectRows,
        scaling: &Scaling,
    ) -> Result<SubjectStats> {
        let mean = FittingBetas::means(rows, self.block_rows)?;
        let x = FittingBetas {
            rows,
            mean: mean.clone(),
        };
        let spectrum = BlockSpectrum::from_blocks(&x, self.block_rows)?;
        let y = self.targets(
            &rows.subject,
            &scaling.fitting_ids[s],
            scaling,
            Some(alpha_column_indices(self.d)),
        );
        let alpha = gcv_alpha_blocks(&spectrum, &x, &y, &map_alphas(), self.block_rows)?;
        Ok(SubjectStats {
            mean,
            alpha,
            spectrum,
        })
    }

    /// A task of the array form: the group's scaling (from every subject's features), then
    /// the statistics of each subject of `shard`, each written through its own output folder;
    /// each subject refused first when its estimate ([`FitMemory::stats_task`]) is above
    /// `memory_bytes`.
    fn write_subject_stats(
        &self,
        shard: ImageShard,
        work: &Path,
        memory_bytes: Option<u64>,
        progress: &mut dyn FnMut(String),
    ) -> Result<Vec<WrittenStats>> {
        let n_subjects = self.group.subjects.len();
        if shard.count > n_subjects {
            return Err(RouteError::Usage(format!(
                "--shard {}/{}: the group has {n_subjects} subjects, so at most {n_subjects} \
                 shards of at least one subject each",
                shard.index, shard.count
            )));
        }
        let opened: Vec<PreparedSubject> = self
            .group
            .subjects
            .iter()
            .map(|s| PreparedSubject::open(&s.path))
            .collect::<Result<_, _>>()?;
        let ids: Vec<Vec<usize>> = opened
            .iter()
            .map(|s| fitting_ids_of(s, &self.group))
            .collect::<Result<_>>()?;
        // Each task's subjects estimated, and refused over the budget, before any betas are read.
        let mut sizes = BTreeMap::new();
        for s in shard.rows(n_subjects) {
            let size = FitSubjectSize {
                rows: ids[s].len(),
                voxels: self.group.subjects[s].n_voxels,
                test_rows: opened[s].row_ids(Split::Test)?.len(),
            };
            FitMemory::check_stats_task(memory_bytes, s, &size, self.d, self.block_rows)?;
            sizes.insert(s, size);
        }
        let scaling = self.scaling(&opened.iter().zip(ids).collect::<Vec<_>>())?;
        drop(opened);
        let mut written = Vec::new();
        for s in shard.rows(n_subjects) {
            let started = Instant::now();
            progress(format!(
                "subject {} of {n_subjects}: estimated peak {:.2} GB",
                s + 1,
                stats_task_bytes(&sizes[&s], self.d, self.block_rows) as f64 / 1e9
            ));
            let rows = load_subject_rows(&self.group, s)?;
            let stats = self.subject_stats(s, &rows, &scaling)?;
            let seconds = started.elapsed().as_secs_f64();
            let dir = stats_dir(work, s);
            let meta = self.stats_meta(s, &rows, &scaling, stats.alpha, seconds);
            let out = OutputDir::create(&dir)?;
            let staging = out.path().to_path_buf();
            write_f64(&staging.join("mean.npy"), &[stats.mean.len()], &stats.mean)?;
            write_spectrum(&staging, &stats.spectrum)?;
            write_f64(
                &staging.join("target_mean.npy"),
                &[scaling.mean.len()],
                &scaling.mean,
            )?;
            write_json_atomic(&staging.join(STATS_FILE), &meta)?;
            out.commit()?;
            progress(format!(
                "subject {} of {n_subjects}: statistics in {seconds:.1} s → {}",
                s + 1,
                dir.display()
            ));
            written.push(WrittenStats {
                subject: s,
                dir,
                alpha: stats.alpha,
                seconds,
            });
        }
        Ok(written)
    }

    fn stats_meta(
        &self,
        s: usize,
        rows: &SubjectRows,
        scaling: &Scaling,
        alpha: f64,
        seconds: f64,
    ) -> StatsMeta {
        StatsMeta {
            format: STATS_FORMAT.into(),
            format_version: 1,
            subject: s,
            subject_path: self.group.subjects[s].path.clone(),
            roi: self.group.roi.clone(),
            kinds: self.group.kinds.clone(),
            rows: rows.train_ids.len() + rows.align.ids.len(),
            voxels: rows.roi.n_voxels,
            targets: self.d,
            block_rows: self.block_rows,
            target_scales: scaling.blocks.iter().map(|b| b.scale).collect(),
            alpha,
            seconds,
        }
    }

    /// Subject `s`'s statistics from `WORK/subject-S`, refused when they were written for
    /// another group, subject, ROI, features or block size than this merge's.
    fn read_subject_stats(
        &self,
        work: &Path,
        s: usize,
        rows: &SubjectRows,
        scaling: &Scaling,
    ) -> Result<SubjectStats> {
        let dir = stats_dir(work, s);
        let path = dir.join(STATS_FILE);
        if !path.is_file() {
            return Err(RouteError::Missing {
                path,
                what: format!(
                    "the statistics of subject {s} ({}), written by `group fit --shard k/N` \
                     with the same --group, --name and --work: run the shard that holds it, \
                     then the merge again",
                    self.group.subjects[s].path.display()
                ),
            });
        }
        let found: StatsMeta = brainrecon_core::fs::read_json(&path)?;
        let expected = self.stats_meta(s, rows, scaling, found.alpha, found.seconds);
        let field = |name: &str, e: String, f: String| -> Result<()> {
            if e == f {
                Ok(())
            } else {
                Err(RouteError::mismatch(&path, name, e, f))
            }
        };
        field("format", STATS_FORMAT.into(), found.format.clone())?;
        field(
            "format_version",
            "1".into(),
            found.format_version.to_string(),
        )?;
        field("subject", s.to_string(), found.subject.to_string())?;
        field(
            "subject_path",
            expected.subject_path.display().to_string(),
            found.subject_path.display().to_string(),
        )?;
        field("roi", expected.roi.clone(), found.roi.clone())?;
        field("kinds", expected.kinds.join(","), found.kinds.join(","))?;
        field("rows", expected.rows.to_string(), found.rows.to_string())?;
        field(
            "voxels",
            expected.voxels.to_string(),
            found.voxels.to_string(),
        )?;
        field(
            "targets",
            expected.targets.to_string(),
            found.targets.to_string(),
        )?;
        field(
            "block_rows",
            expected.block_rows.to_string(),
            found.block_rows.to_string(),
        )?;
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        if bits(&expected.target_scales) != bits(&found.target_scales) {
            return Err(RouteError::mismatch(
                &path,
                "target_scales",
                format!(
                    "{:?} (the group's targets as this merge scales them)",
                    expected.target_scales
                ),
                format!(
                    "{:?}: features changed since the task ran",
                    found.target_scales
                ),
            ));
        }
        let target_mean = read_f64(&dir.join("target_mean.npy"), &[self.d])?;
        if bits(&target_mean) != bits(&scaling.mean) {
            return Err(RouteError::mismatch(
                &dir.join("target_mean.npy"),
                "values",
                "the group's target means as this merge computes them",
                "other values: features changed since the task ran",
            ));
        }
        let mean = read_f64(&dir.join("mean.npy"), &[expected.voxels])?;
        let spectrum = read_spectrum(&dir, expected.rows, expected.voxels)?;
        if !(found.alpha.is_finite() && found.alpha > 0.0) {
            return Err(RouteError::mismatch(
                &path,
                "alpha",
                "a positive number",
                found.alpha,
            ));
        }
        Ok(SubjectStats {
            mean,
            alpha: found.alpha,
            spectrum,
        })
    }

    /// The rest of the fit from every subject's statistics (`None`: SRM, which needs none):
    /// the space, its maps, the pooled subject, the encoder and the decoders.
    fn merge(
        &self,
        r: &GroupFitRequest,
        rows: Vec<SubjectRows>,
        scaling: Scaling,
        stats: Option<Vec<SubjectStats>>,
        started: Instant,
        progress: &mut dyn FnMut(String),
    ) -> Result<GroupFitReport> {
        let FitPlan {
            group,
            method,
            name,
            widths,
            d: _,
            block_rows,
            encoder_rank,
            opts,
        } = self;
        let (method, block_rows, name) = (*method, *block_rows, name.clone());
        let (target_mean, blocks, fitting_ids) =
            (&scaling.mean, &scaling.blocks, &scaling.fitting_ids);
        progress(format!("fitting the {} space (k = {})", method.name(), r.k));
        let (maps, means, alphas, basis, template) = match stats {
            Some(stats) => {
                let (means, alphas, spectra): (Vec<Vec<f64>>, Vec<f64>, Vec<BlockSpectrum>) =
                    stats.into_iter().fold(
                        (Vec::new(), Vec::new(), Vec::new()),
                        |(mut m, mut a, mut sp), st| {
                            m.push(st.mean);
                            a.push(st.alpha);
                            sp.push(st.spectrum);
                            (m, a, sp)
                        },
                    );
                let xs: Vec<FittingBetas> = rows
                    .iter()
                    .zip(&means)
                    .map(|(s, m)| FittingBetas {
                        rows: s,
                        mean: m.clone(),
                    })
                    .collect();
                let ys: Vec<FittingTargets> = rows
                    .iter()
                    .zip(fitting_ids)
                    .map(|(s, ids)| self.targets(&s.subject, ids, &scaling, None))
                    .collect();
                let subjects: Vec<BlockSubject<'_, RouteError>> = xs
                    .iter()
                    .zip(&ys)
                    .zip(&spectra)
                    .map(|((x, y), spectrum)| BlockSubject { x, y, spectrum })
                    .collect();
                progress(format!(
                    "alphas {alphas:?} after {:.1} s",
                    started.elapsed().as_secs_f64()
                ));
                let space = fit_shared_space_blocks(&subjects, &alphas, opts, block_rows)?;
                drop(subjects);
                drop(spectra);
                progress(format!(
                    "space after {:.1} s",
                    started.elapsed().as_secs_f64()
                ));
                let template = mean_mapped(
                    &rows.iter().map(|s| &s.align).collect::<Vec<_>>(),
                    &means,
                    &space.maps,
                );
                (
                    space.maps,
                    means,
                    alphas.into_iter().map(Some).collect::<Vec<_>>(),
                    Some(space.basis),
                    template,
                )
            }
            None => {
                // BrainIAK's orientation: voxels × samples, the align images in one order.
                let data: Vec<Mat<f64>> = rows
                    .iter()
                    .map(|s| s.align.x.transpose().to_owned())
                    .collect();
                let refs: Vec<_> = data.iter().map(|d| d.as_ref()).collect();
                let opts = SrmOptions {
                    features: r.k,
                    n_iter: r.n_iter,
                    seed: r.seed,
                };
                let (w, s) = if method == SpaceMethod::Srm {
                    let fitted = fit_srm(&refs, &opts)?;
                    (fitted.w, fitted.s)
                } else {
                    let fitted = fit_det_srm(&refs, &opts)?;
                    (fitted.w, fitted.s)
                };
                let means: Vec<Vec<f64>> = rows.iter().map(|s| vec![0.0; s.roi.n_voxels]).collect();
                (
                    w,
                    means,
                    vec![None; rows.len()],
                    None,
                    s.transpose().to_owned(),
                )
            }
        };
        let seconds_space = started.elapsed().as_secs_f64();

        // The pooled subject: every subject's fitting rows in the space; test images averaged
        // over subjects.
        let pooled_train = Rows {
            ids: fitting_ids.iter().flatten().copied().collect(),
            x: stack_rows(
                &rows
                    .iter()
                    .zip(&means)
                    .zip(&maps)
                    .map(|((s, m), map)| {
                        FittingBetas {
                            rows: s,
                            mean: m.clone(),
                        }
                        .mapped(map, block_rows)
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
        };
        let pooled_sessions: Vec<usize> = fitting_ids
            .iter()
            .enumerate()
            .flat_map(|(s, ids)| std::iter::repeat_n(s + 1, ids.len()))
            .collect();
        let pooled_test = Rows {
            ids: group.test_ids.clone(),
            x: mean_mapped(
                &rows.iter().map(|s| &s.test).collect::<Vec<_>>(),
                &means,
                &maps,
            ),
        };
        let space_path = space_dir(&r.group, &name);
        let meta = SpaceMeta {
            format: SPACE_FORMAT.into(),
            format_version: 1,
            name: name.clone(),
            method,
            k: maps[0].ncols(),
            roi: group.roi.clone(),
            blocks: blocks.clone(),
            alphas,
            align_ids: group.align_ids.clone(),
            seed: r.seed,
            seconds: seconds_space,
        };
        let out = OutputDir::create(&space_path)?;
        let dir = out.path().to_path_buf();
        let mkdir =
            |p: &Path| std::fs::create_dir_all(p).map_err(|e| brainrecon_core::DataError::io(p, e));
        mkdir(&dir.join("maps"))?;
        for (i, (map, mean)) in maps.iter().zip(&means).enumerate() {
            write_mat(&dir.join(format!("maps/{i}.npy")), map)?;
            write_vec(&dir.join(format!("maps/{i}_mean.npy")), mean)?;
        }
        if let Some(basis) = &basis {
            write_mat(&dir.join("basis.npy"), basis)?;
        }
        write_vec(&dir.join("target_mean.npy"), target_mean)?;
        write_mat(&dir.join("template.npy"), &template)?;
        progress(format!(
            "maps written after {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        // Features of every image the pooled subject holds, from the first subject that saw
        // it (an image's features are the same in every subject's folder).
        let mut source: BTreeMap<usize, usize> = BTreeMap::new();
        for (s, ids) in fitting_ids.iter().enumerate() {
            for &id in ids.iter().chain(&rows[s].test.ids) {
                source.entry(id).or_insert(s);
            }
        }
        let encoder = write_encoder(
            &dir.join("encoder"),
            &pooled_train,
            &EncoderInputs {
                rows: &rows,
                source: &source,
                kinds: &group.kinds,
                target_mean,
                blocks,
            },
            &PooledRidgeOptions {
                alphas: map_alphas(),
                max_rank: *encoder_rank,
                seed: r.seed,
                block_rows,
            },
        )?;
        progress(format!(
            "encoder ({} path, {} dimensions, {:.6} of the features' sum of squares) after \
             {:.1} s",
            encoder.0,
            encoder.1,
            encoder.2,
            started.elapsed().as_secs_f64()
        ));
        let all_ids: Vec<usize> = source.keys().copied().collect();
        let pooled_dir = dir.join("pooled");
        let mut pooled_meta = rows[0].subject.meta.clone();
        pooled_meta.subject = format!("group-{name}");
        pooled_meta.sessions = (1..=rows.len()).collect();
        write_space_subject(
            &pooled_dir,
            &SpaceSubject {
                meta: pooled_meta,
                train: &pooled_train,
                test: &pooled_test,
                train_sessions: pooled_sessions,
            },
            None,
        )?;
        let images: Vec<(usize, usize)> = all_ids.iter().map(|&id| (source[&id], id)).collect();
        write_pooled_features(
            &pooled_dir,
            &group.kinds,
            &ImageFeatures {
                rows: &rows,
                kinds: &group.kinds,
                images: &images,
                width: widths.iter().sum(),
                scaled: None,
            },
            block_rows,
            &rows[0].subject,
            &format!("group-{name}"),
        )?;
        write_json_atomic(&dir.join("space.json"), &meta)?;
        out.commit()?;

        let mut decoders = Vec::new();
        for target in &r.targets {
            progress(format!("fitting decoder {target} on the pooled subject"));
            let summary = fit_request(
                &FitRequest {
                    roi: Some(super::SHARED_ATLAS.into()),
                    cv: r.cv.clone(),
                    ..FitRequest::with_defaults(
                        space_path.join("pooled"),
                        target.clone(),
                        decoders_dir(&r.group, &name).join(target),
                    )
                },
                &mut |w| progress(format!("warning: {w}")),
            )?;
            decoders.push(summary);
        }
        Ok(GroupFitReport {
            space: space_path,
            method: method.name().into(),
            k: meta.k,
            n_pooled_rows: pooled_train.ids.len(),
            seconds_space,
            decoders,
        })
    }
}

/// A subject's fitting ids without reading its betas: its train trials, then its test-split
/// rows that are align images, in the order [`load_subject_rows`] gives them.
fn fitting_ids_of(subject: &PreparedSubject, group: &GroupMeta) -> Result<Vec<usize>> {
    let mut ids = subject.row_ids(Split::Train)?;
    ids.extend(
        subject
            .row_ids(Split::Test)?
            .into_iter()
            .filter(|id| group.align_ids.binary_search(id).is_ok()),
    );
    Ok(ids)
}

/// Writes a spectrum into `dir` as `eigenvalues.npy` (r) and `eigenvectors.npy` (r × r, C
/// order), float64, so that [`read_spectrum`] gives it back to the bit.
pub fn write_spectrum(dir: &Path, spectrum: &BlockSpectrum) -> Result<()> {
    let lambda = spectrum.eigenvalues();
    write_f64(&dir.join("eigenvalues.npy"), &[lambda.len()], lambda)?;
    let u = spectrum.eigenvectors();
    let row_major: Vec<f64> = (0..u.nrows())
        .flat_map(|i| (0..u.ncols()).map(move |j| u[(i, j)]))
        .collect();
    write_f64(
        &dir.join("eigenvectors.npy"),
        &[u.nrows(), u.ncols()],
        &row_major,
    )
}

/// The spectrum [`write_spectrum`] wrote into `dir`, of betas of `rows` × `voxels`.
///
/// Errors: a file missing ([`RouteError::Missing`]), or not float64 of the shapes
/// (r = min(rows, voxels)), non-finite, or a negative eigenvalue ([`RouteError::Mismatch`],
/// naming the file).
pub fn read_spectrum(dir: &Path, rows: usize, voxels: usize) -> Result<BlockSpectrum> {
    let r = rows.min(voxels);
    let lambda = read_f64(&dir.join("eigenvalues.npy"), &[r])?;
    let vectors = read_f64(&dir.join("eigenvectors.npy"), &[r, r])?;
    let vectors = Mat::from_fn(r, r, |i, j| vectors[i * r + j]);
    BlockSpectrum::from_parts(vectors, lambda, rows, voxels).map_err(|e| {
        RouteError::mismatch(
            &dir.join("eigenvalues.npy"),
            "values",
            "eigenvalues of a spectrum: finite, not negative",
            e,
        )
    })
}

/// Writes `values` as a float64 `.npy` of `shape` (C order): statistics kept to the bit.
pub fn write_f64(path: &Path, shape: &[usize], values: &[f64]) -> Result<()> {
    Ok(npy::write(path, shape, values)?)
}

/// Reads a float64 `.npy` of `shape` (C order), refusing another dtype, shape or a
/// non-finite value, naming the file.
pub fn read_f64(path: &Path, shape: &[usize]) -> Result<Vec<f64>> {
    if !path.is_file() {
        return Err(RouteError::Missing {
            path: path.to_path_buf(),
            what: "part of a subject's statistics, written by `group fit --shard k/N`; run \
                   that shard again"
                .into(),
        });
    }
    let header = npy::read_header(path)?;
    if header.descr != "<f8" || header.fortran_order || header.shape != shape {
        return Err(RouteError::mismatch(
            path,
            "header",
            format!("float64 (<f8) in C order of shape {shape:?}"),
            format!(
                "{} of shape {:?}{}",
                header.descr,
                header.shape,
                if header.fortran_order {
                    " in Fortran order"
                } else {
                    ""
                }
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| brainrecon_core::DataError::io(path, e))?;
    let count: usize = shape.iter().product();
    let data = bytes
        .get(header.data_offset..header.data_offset + 8 * count)
        .ok_or_else(|| {
            RouteError::mismatch(
                path,
                "data",
                format!("{count} float64 values"),
                format!(
                    "{} bytes after the header",
                    bytes.len().saturating_sub(header.data_offset)
                ),
            )
        })?;
    let values: Vec<f64> = data
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(RouteError::mismatch(
            path,
            format!("value {i}"),
            "a finite number",
            values[i],
        ));
    }
    Ok(values)
}

/// Rows of several matrices with the same columns, one under another.
pub(crate) fn stack_rows(parts: &[Mat<f64>]) -> Mat<f64> {
    let cols = parts.first().map_or(0, |p| p.ncols());
    let n: usize = parts.iter().map(|p| p.nrows()).sum();
    let mut out = Mat::zeros(n, cols);
    let mut offset = 0;
    for p in parts {
        assert_eq!(p.ncols(), cols, "stacked parts' columns");
        for i in 0..p.nrows() {
            for j in 0..cols {
                out[(offset + i, j)] = p[(i, j)];
            }
        }
        offset += p.nrows();
    }
    out
}

/// The mean over subjects of their rows mapped into the space; every subject holds the same
/// ids in the same order (shared images).
fn mean_mapped(rows: &[&Rows], means: &[Vec<f64>], maps: &[Mat<f64>]) -> Mat<f64> {
    let k = maps[0].ncols();
    let n = rows[0].ids.len();
    let mut sum = Mat::<f64>::zeros(n, k);
    for ((r, m), map) in rows.iter().zip(means).zip(maps) {
        assert_eq!(r.ids, rows[0].ids, "shared images in one order");
        let mapped = apply_map(&r.x, m, map);
        for i in 0..n {
            for j in 0..k {
                sum[(i, j)] += mapped[(i, j)] / rows.len() as f64;
            }
        }
    }
    sum
}

/// Where the encoder's inputs come from: the subjects, which subject's features folder each
/// image is read from, and the group's target scaling.
struct EncoderInputs<'a> {
    rows: &'a [SubjectRows],
    source: &'a BTreeMap<usize, usize>,
    kinds: &'a [String],
    target_mean: &'a [f64],
    blocks: &'a [super::TargetBlock],
}

/// Images' features, each read from the subject that saw it ([`feature_rows`]), by row
/// blocks; scaled as the group's targets are when `scaled` holds the scaling.
struct ImageFeatures<'a> {
    rows: &'a [SubjectRows],
    kinds: &'a [String],
    /// (source subject, image id) of each row, in row order.
    images: &'a [(usize, usize)],
    width: usize,
    scaled: Option<(&'a [f64], &'a [super::TargetBlock])>,
}

impl RowBlocks for ImageFeatures<'_> {
    type Error = RouteError;
    fn rows(&self) -> usize {
        self.images.len()
    }
    fn cols(&self) -> usize {
        self.width
    }
    fn block(&self, start: usize, len: usize) -> Result<Mat<f64>> {
        let mut out = Mat::<f64>::zeros(len, self.width);
        // One read per subject in the block, however its images interleave.
        let mut by_subject: BTreeMap<usize, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
        for (i, &(s, id)) in self.images[start..start + len].iter().enumerate() {
            let entry = by_subject.entry(s).or_default();
            entry.0.push(i);
            entry.1.push(id);
        }
        for (s, (positions, ids)) in by_subject {
            let y = feature_rows(&self.rows[s].subject, self.kinds, &ids)?;
            for (row, &i) in positions.iter().enumerate() {
                out.as_mut()
                    .subrows_mut(i, 1)
                    .copy_from(y.as_ref().subrows(row, 1));
            }
        }
        Ok(match self.scaled {
            Some((mean, blocks)) => scale_targets(&out, mean, blocks),
            None => out,
        })
    }
}

/// A ridge from the scaled stimulus features to the space, fitted on the pooled rows (one GCV
/// α per dimension, chosen on those rows): the group's predicted response to any image, for
/// aligning a subject without shared images. Fitted from row blocks of the distinct images
/// ([`fit_pooled_ridge`]): each image's rows enter as their count and mean, which gives the
/// trials' ridge and GCV exactly; the features are read block by block, never whole. Returns
/// the path taken, the basis' dimensions and the share of the features' sum of squares it
/// holds (1 when exact), also written into the model's metadata.
fn write_encoder(
    dir: &Path,
    pooled: &Rows,
    inputs: &EncoderInputs<'_>,
    opts: &PooledRidgeOptions,
) -> Result<(&'static str, usize, f64)> {
    let k = pooled.x.ncols();
    // Distinct images in (source subject, id) order: runs of one subject read together.
    let mut at: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for id in &pooled.ids {
        at.entry((inputs.source[id], *id)).or_insert(0);
    }
    let images: Vec<(usize, usize)> = at.keys().copied().collect();
    for (i, v) in at.values_mut().enumerate() {
        *v = i;
    }
    let row_of = |id: usize| at[&(inputs.source[&id], id)];
    let mut counts = vec![0usize; images.len()];
    let mut y_mean = Mat::<f64>::zeros(images.len(), k);
    for (t, &id) in pooled.ids.iter().enumerate() {
        let i = row_of(id);
        counts[i] += 1;
        for j in 0..k {
            y_mean[(i, j)] += pooled.x[(t, j)];
        }
    }
    for (i, &c) in counts.iter().enumerate() {
        for j in 0..k {
            y_mean[(i, j)] /= c as f64;
        }
    }
    let mut y_within = vec![0.0f64; k];
    for (t, &id) in pooled.ids.iter().enumerate() {
        let i = row_of(id);
        for (j, w) in y_within.iter_mut().enumerate() {
            *w += (pooled.x[(t, j)] - y_mean[(i, j)]).powi(2);
        }
    }
    let features = ImageFeatures {
        rows: inputs.rows,
        kinds: inputs.kinds,
        images: &images,
        width: inputs.target_mean.len(),
        scaled: Some((inputs.target_mean, inputs.blocks)),
    };
    let fit = fit_pooled_ridge(
        &RepeatedRows {
            x: &features,
            counts: &counts,
            y_mean: y_mean.as_ref(),
            y_within: &y_within,
        },
        opts,
    )?;
    let path = match fit.path {
        PooledPath::Primal => "primal",
        PooledPath::Dual => "dual",
        PooledPath::Reduced => "reduced",
    };
    let to_f32 = |m: &Mat<f64>| Mat::<f32>::from_fn(m.nrows(), m.ncols(), |i, j| m[(i, j)] as f32);
    let p = fit.weights.nrows();
    let mut metadata = BTreeMap::new();
    metadata.insert("encoder_path".to_string(), serde_json::json!(path));
    metadata.insert("encoder_rank".to_string(), serde_json::json!(fit.rank));
    metadata.insert(
        "encoder_captured".to_string(),
        serde_json::json!(fit.captured),
    );
    metadata.insert(
        "encoder_images".to_string(),
        serde_json::json!(images.len()),
    );
    let model = brainrecon_ridge::RidgeModel {
        weights: to_f32(&fit.weights),
        intercept: fit.intercept.iter().map(|&v| v as f32).collect(),
        x_mean: fit.x_mean.iter().map(|&v| v as f32).collect(),
        x_scale: vec![1.0; p],
        alphas: fit.alphas.clone(),
        cv_scores: to_f32(&fit.scores),
        alpha_grid: opts.alphas.clone(),
        options: brainrecon_ridge::ModelOptions {
            cv: brainrecon_ridge::CvMethod::Gcv,
            scoring: brainrecon_ridge::Scoring::NegMse,
            fit_intercept: true,
            standardize: false,
            solver: if fit.path == PooledPath::Dual {
                brainrecon_ridge::Solver::Dual
            } else {
                brainrecon_ridge::Solver::Primal
            },
        },
        target_range: brainrecon_ridge::TargetRange {
            start: 0,
            end: k,
            total: k,
        },
        metadata,
        dual: None,
    };
    model.save(dir)?;
    Ok((path, fit.rank, fit.captured))
}
