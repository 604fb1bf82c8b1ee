//! A new subject adapted into a group's shared space, and the group's shared space itself,
//! timed at NSD's size on synthetic data with a planted low-rank structure.
//!
//! The adapt half runs the steps of `group adapt --via features` on a shared space, with the
//! library's own functions and in the same order: read X (betas, f32 → f64), the targets Y
//! (f32 features → f64, centred and scaled by block); T = Y·P with the basis P read as f32 by
//! blocks of rows (`times_basis`);
//! α by GCV on 512 columns of T; M = ridge(X → T); then (X − μ)·M for the train rows and
//! the test rows. The arrays are read from .npy files written beforehand, so that reading and
//! its memory count as they do in the library.

use super::{command_line, number, FreshProcess};
use brainrecon_align::pooled_ridge::{
    fit_pooled_ridge, pooled_ridge_peak_bytes, PooledRidgeOptions, RepeatedRows,
};
use brainrecon_align::shared_space::{fit_subject_map, gcv_alpha, SharedSpaceOptions};
use brainrecon_align::streamed::{
    fit_shared_space_blocks, gcv_alpha_blocks, peak_bytes, BlockSpectrum, BlockSubject, RowBlocks,
    SubjectSize,
};
use brainrecon_core::fs::OutputDir;
use brainrecon_core::fs::{read_json, write_json_atomic};
use brainrecon_core::DataError;
use brainrecon_formats::npy;
use brainrecon_routes::error::{Result, RouteError};
use brainrecon_routes::group::data::{
    apply_map, column_means, read_mat, read_vec, scale_targets, times_basis,
};
use brainrecon_routes::group::fit::{
    alpha_column_indices, alpha_columns, default_block_rows, map_alphas, read_f64, read_spectrum,
    write_f64, write_spectrum, ENCODER_RANK,
};
use brainrecon_routes::group::TargetBlock;
use faer::Mat;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Rank of the planted structure shared by betas and targets.
pub const PLANTED_RANK: usize = 64;
/// Width of the first target block (z: a 4×64×64 latent); the rest is c.
pub const Z_WIDTH: usize = 16_384;
const SEED: u64 = 20261127;
const GENERATOR_VERSION: u32 = 1;
/// Noise standard deviations of the betas and the targets (signal variance 1 per column).
const X_NOISE: f32 = 2.0;
const Y_NOISE: f32 = 0.5;

/// The adapt workload's size.
#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
pub struct AdaptWorkload {
    /// Voxels v (NSD's nsdgeneral: 15,724).
    pub voxels: usize,
    /// Trials n the map is fitted on (one hour: 750).
    pub trials: usize,
    /// Rows mapped besides the trials (the test images).
    pub test_rows: usize,
    /// Targets d (z 16,384 + c 59,136 = 75,520).
    pub targets: usize,
}

/// `meta.json` of the adapt data folder.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
pub struct AdaptMeta {
    /// Sizes.
    pub workload: AdaptWorkload,
    /// Target blocks (z, c) with the group's scale.
    pub blocks: Vec<TargetBlock>,
    /// The generator's seed.
    pub seed: u64,
    /// Rank of the planted structure.
    pub rank: usize,
    /// Bumped when the generated data change.
    pub generator_version: u32,
}

/// One measured adapt (printed as JSON by the measuring process).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct AdaptResult {
    /// Dimension of the shared space.
    pub k: usize,
    /// Voxels.
    pub voxels: usize,
    /// Trials the map is fitted on.
    pub trials: usize,
    /// Test rows mapped besides the trials.
    pub test_rows: usize,
    /// Targets d.
    pub targets: usize,
    /// Threads of the linear algebra.
    pub threads: usize,
    /// The α GCV chose.
    pub alpha: f64,
    /// Reading X and Y (f32 → f64) and scaling Y.
    pub read_seconds: f64,
    /// Reading P: block by block within T = Y·P, so the same as `targets_seconds`.
    pub read_basis_seconds: f64,
    /// T = Y·P, reading P by blocks of rows.
    pub targets_seconds: f64,
    /// The default map (`--map encoding`): 5-fold choice of (λ, μ) over the 5 × 5 grid, refit.
    pub encoding_seconds: f64,
    /// The penalties it chose (relative units).
    pub lambda: f64,
    /// See `lambda`.
    pub mu: f64,
    /// `--map ridge`, beside it: centring X and GCV over the 17 alphas.
    pub alpha_seconds: f64,
    /// `--map ridge`: `fit_subject_map`.
    pub map_seconds: f64,
    /// Reading the test rows and mapping train and test rows.
    pub apply_seconds: f64,
    /// The default path: read, Y·P, the encoding map, apply (the ridge map not counted).
    pub total_seconds: f64,
    /// CPU seconds (user + system) of the process over those steps; below threads × total
    /// when the cores were shared with other work.
    pub cpu_seconds: f64,
    /// Peak resident memory of the process (VmHWM), MB.
    pub peak_rss_mb: f64,
    /// The peak (VmHWM, MB) as it stood after each step: where the peak is reached.
    pub peak_after_step_mb: Vec<(String, f64)>,
}

/// One measured group fit.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct GroupResult {
    /// Subjects.
    pub subjects: usize,
    /// Rows (trials) per subject.
    pub rows_per_subject: usize,
    /// Voxels per subject.
    pub voxels: usize,
    /// Targets d.
    pub targets: usize,
    /// Dimension of the shared space.
    pub k: usize,
    /// Power iterations of the randomized SVD.
    pub power_iters: usize,
    /// Threads of the linear algebra.
    pub threads: usize,
    /// Rows per block read.
    pub block_rows: usize,
    /// Of the total, seconds spent generating the rows of blocks (where the route reads them
    /// from disk), over every pass.
    pub generate_seconds: f64,
    /// Column means, each subject's spectrum (one Gram and eigendecomposition) and its GCV α.
    pub alpha_seconds: f64,
    /// The streamed fit (randomized SVD passes and the maps).
    pub fit_seconds: f64,
    /// Means, spectra, α and fit.
    pub total_seconds: f64,
    /// CPU seconds (user + system) of the process over the whole fit.
    pub cpu_seconds: f64,
    /// Peak resident memory of the process (VmHWM), MB.
    pub peak_rss_mb: f64,
    /// The bound `brainrecon_align::streamed::peak_bytes` gives before the fit, MB.
    pub estimated_peak_mb: f64,
}

/// What `bench group-adapt` reports.
#[derive(Serialize, Deserialize, Debug)]
pub struct GroupBenchReport {
    /// The CPU (model name) and the cores the system shows.
    pub machine: String,
    /// One fresh process per k.
    pub adapt: Vec<AdaptResult>,
    /// The group fit, when asked.
    pub group: Option<GroupResult>,
    /// The goal for the adapt: seconds.
    pub goal_seconds: f64,
    /// The goal for the adapt: peak memory, GB (10^9 bytes).
    pub goal_gb: f64,
}

impl GroupBenchReport {
    /// Lines for people: one per k, then the group fit.
    pub fn text(&self) -> String {
        let mut text = format!("machine: {}\n", self.machine);
        text += "adapt  k      voxels  trials  targets  read s  Y·P s   encoding s  apply s  total s  CPU s    peak GB  goal (≤ 60 s, ≤ 4 GB)   beside: --map ridge (alpha, GCV s, map s)\n";
        for r in &self.adapt {
            let gb = r.peak_rss_mb / 1e3;
            let met = r.total_seconds <= self.goal_seconds && gb <= self.goal_gb;
            text += &format!(
                "       {:<6} {:<7} {:<7} {:<8} {:<7.2} {:<7.2} {:<11.2} {:<8.2} {:<8.2} {:<8.2} {:<8.2} {:<23} {:.3e}, {:.2}, {:.2}\n",
                r.k,
                r.voxels,
                r.trials,
                r.targets,
                r.read_seconds,
                r.targets_seconds,
                r.encoding_seconds,
                r.apply_seconds,
                r.total_seconds,
                r.cpu_seconds,
                gb,
                if met { "met" } else { "missed" },
                r.alpha,
                r.alpha_seconds,
                r.map_seconds
            );
        }
        if let Some(g) = &self.group {
            text += &format!(
                "group fit (streamed, blocks of {} rows): {} subjects × {} rows × {} voxels → {} \
                 targets, k = {}: spectra and GCV {:.1} s, fit {:.1} s, total {:.1} s ({:.1} CPU \
                 s; generating rows {:.1} s of it), peak {:.2} GB (bound {:.2} GB)\n",
                g.block_rows,
                g.subjects,
                g.rows_per_subject,
                g.voxels,
                g.targets,
                g.k,
                g.alpha_seconds,
                g.fit_seconds,
                g.total_seconds,
                g.cpu_seconds,
                g.generate_seconds,
                g.peak_rss_mb / 1e3,
                g.estimated_peak_mb / 1e3
            );
        }
        text
    }
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat (100 ticks a
/// second); NaN where it cannot be read.
pub fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // the fields after the command name, which is in parentheses
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(f64::NAN)
}

/// The CPU's model name and the number of processors /proc/cpuinfo lists.
pub fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU".to_string(), |m| m.trim().to_string());
    let cpus = info.lines().filter(|l| l.starts_with("processor")).count();
    format!("{model}, {cpus} CPUs")
}

/// Target blocks of width `targets`: z (up to 16,384), then c (the rest).
fn block_widths(targets: usize) -> Vec<(&'static str, usize)> {
    let z = targets.min(Z_WIDTH);
    let mut widths = vec![("z", z)];
    if targets > z {
        widths.push(("c", targets - z));
    }
    widths
}

fn basis_path(dir: &Path, k: usize) -> PathBuf {
    dir.join(format!("basis_k{k}.npy"))
}

/// Rows `s · W + noise` (row-major, `rows × W.cols`) for latent rows `latent` (rows × r) and
/// the loading `w` (r × cols, row-major).
fn planted_rows(
    latent: &[f32],
    w: &[f32],
    cols: usize,
    noise: f32,
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    let rows = latent.len() / PLANTED_RANK;
    let mut out = vec![0f32; rows * cols];
    for (i, row) in out.chunks_mut(cols).enumerate() {
        for (t, &s) in latent[i * PLANTED_RANK..(i + 1) * PLANTED_RANK]
            .iter()
            .enumerate()
        {
            for (o, &a) in row.iter_mut().zip(&w[t * cols..(t + 1) * cols]) {
                *o += s * a;
            }
        }
        for o in row.iter_mut() {
            *o += noise * rng.sample::<f32, _>(StandardNormal);
        }
    }
    out
}

fn gaussian(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| scale * rng.sample::<f32, _>(StandardNormal))
        .collect()
}

/// Writes X (train and test), Y, the target mean and meta.json under `dir` unless identical
/// ones are there (bases of earlier data are removed then).
pub fn ensure_adapt_data(w: &AdaptWorkload, dir: &Path) -> Result<()> {
    let meta_path = dir.join("meta.json");
    let existing = read_json::<AdaptMeta>(&meta_path).ok();
    if existing.as_ref().is_some_and(|m| {
        m.workload == *w && m.seed == SEED && m.generator_version == GENERATOR_VERSION
    }) {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let _ = std::fs::remove_file(&meta_path);
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("basis_k") && name.ends_with(".npy") {
            std::fs::remove_file(&path).map_err(|e| DataError::io(&path, e))?;
        }
    }
    eprintln!(
        "bench group-adapt: generating the data in {}",
        dir.display()
    );
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let r = PLANTED_RANK;
    let scale = 1.0 / (r as f32).sqrt();
    let a = gaussian(&mut rng, r * w.voxels, scale);
    let b = gaussian(&mut rng, r * w.targets, scale);
    let latent_train = gaussian(&mut rng, w.trials * r, 1.0);
    let latent_test = gaussian(&mut rng, w.test_rows * r, 1.0);
    let x_train = planted_rows(&latent_train, &a, w.voxels, X_NOISE, &mut rng);
    npy::write(&dir.join("x_train.npy"), &[w.trials, w.voxels], &x_train)?;
    drop(x_train);
    let x_test = planted_rows(&latent_test, &a, w.voxels, X_NOISE, &mut rng);
    npy::write(&dir.join("x_test.npy"), &[w.test_rows, w.voxels], &x_test)?;
    drop(x_test);
    let y = planted_rows(&latent_train, &b, w.targets, Y_NOISE, &mut rng);
    // The group's mean and block scales, here from the subject's own rows.
    let n = w.trials.max(1) as f64;
    let mut mean = vec![0f64; w.targets];
    for row in y.chunks(w.targets) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64 / n;
        }
    }
    let mut var = vec![0f64; w.targets];
    for row in y.chunks(w.targets) {
        for ((s, &v), &m) in var.iter_mut().zip(row).zip(&mean) {
            *s += (v as f64 - m).powi(2) / n;
        }
    }
    let mut blocks = Vec::new();
    let mut offset = 0;
    for (kind, width) in block_widths(w.targets) {
        let total: f64 = var[offset..offset + width].iter().sum();
        blocks.push(TargetBlock {
            kind: kind.into(),
            width,
            scale: if total > 0.0 { 1.0 / total.sqrt() } else { 1.0 },
        });
        offset += width;
    }
    npy::write(&dir.join("y_train.npy"), &[w.trials, w.targets], &y)?;
    let mean32: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
    npy::write(&dir.join("target_mean.npy"), &[w.targets], &mean32)?;
    // meta.json last: its presence means the arrays are complete
    write_json_atomic(
        &meta_path,
        &AdaptMeta {
            workload: w.clone(),
            blocks,
            seed: SEED,
            rank: r,
            generator_version: GENERATOR_VERSION,
        },
    )?;
    Ok(())
}

/// Writes a random d × k basis with orthonormal columns as `basis_k{k}.npy` (f32, as
/// `group fit` writes `basis.npy`) unless it is there.
///
/// Each row of d gets one column (columns of disjoint support, each normalised), then a random
/// Householder reflection `I − 2uuᵀ` makes every entry non-zero; both keep PᵀP = I. The
/// products timed do not depend on the values, only on the shape.
pub fn ensure_basis(dir: &Path, d: usize, k: usize) -> Result<()> {
    let path = basis_path(dir, k);
    if path.exists() {
        return Ok(());
    }
    if k == 0 || k > d {
        return Err(RouteError::Usage(format!(
            "--k: each k must be between 1 and the {d} targets, found {k}"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(SEED ^ k as u64);
    // Row i's column: a shuffled cycle over 0..k, so every column has ⌊d/k⌋ or ⌈d/k⌉ rows.
    let mut column: Vec<usize> = (0..d).map(|i| i % k).collect();
    for i in (1..d).rev() {
        let j = rng.gen_range(0..=i);
        column.swap(i, j);
    }
    let mut value: Vec<f64> = (0..d)
        .map(|_| rng.sample::<f64, _>(StandardNormal))
        .collect();
    let mut norm = vec![0f64; k];
    for (&c, &v) in column.iter().zip(&value) {
        norm[c] += v * v;
    }
    for (v, &c) in value.iter_mut().zip(&column) {
        *v /= norm[c].sqrt();
    }
    let mut u: Vec<f64> = (0..d)
        .map(|_| rng.sample::<f64, _>(StandardNormal))
        .collect();
    let u_norm = u.iter().map(|x| x * x).sum::<f64>().sqrt();
    u.iter_mut().for_each(|x| *x /= u_norm);
    // uᵀP₀, then P = P₀ − 2 u (uᵀP₀).
    let mut utp = vec![0f64; k];
    for i in 0..d {
        utp[column[i]] += u[i] * value[i];
    }
    let mut p = vec![0f32; d * k];
    for (i, row) in p.chunks_mut(k).enumerate() {
        for (o, &w) in row.iter_mut().zip(&utp) {
            *o = (-2.0 * u[i] * w) as f32;
        }
        row[column[i]] += value[i] as f32;
    }
    npy::write(&path, &[d, k], &p)?;
    Ok(())
}

/// Runs the adapt steps on the data in `dir` with the basis of dimension `k`, timing each.
pub fn measure_adapt(dir: &Path, k: usize, threads: usize) -> Result<AdaptResult> {
    brainrecon_ridge::set_threads(threads);
    let meta: AdaptMeta = read_json(&dir.join("meta.json"))?;
    let w = &meta.workload;
    let mut peaks = Vec::new();
    let mut peak_after = |step: &str| peaks.push((step.to_string(), super::peak_rss_mb()));
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let x = read_mat(&dir.join("x_train.npy"))?;
    let mean = read_vec(&dir.join("target_mean.npy"))?;
    // As `feature_rows`: the raw features live only until they are scaled.
    let y = scale_targets(&read_mat(&dir.join("y_train.npy"))?, &mean, &meta.blocks);
    peak_after("read X and Y");
    let read_seconds = started.elapsed().as_secs_f64();

    // As `group adapt`: P is read block by block of rows into T = Y·P, never whole.
    let step = Instant::now();
    let targets = times_basis(&y, &basis_path(dir, k), k, "the bench's basis")?;
    drop(y);
    let targets_seconds = step.elapsed().as_secs_f64();
    let read_basis_seconds = targets_seconds;
    peak_after("read P, T = Y·P");

    let step = Instant::now();
    let encoding = brainrecon_align::encoding_map::fit_encoding_map(
        x.as_ref(),
        targets.as_ref(),
        &brainrecon_align::encoding_map::DEFAULT_LAMBDAS,
        &brainrecon_align::encoding_map::DEFAULT_MUS,
        5,
    )?;
    let encoding_seconds = step.elapsed().as_secs_f64();
    peak_after("encoding map");

    let step = Instant::now();
    let x_mean = column_means(&x);
    let xc = Mat::from_fn(x.nrows(), x.ncols(), |i, j| x[(i, j)] - x_mean[j]);
    let alpha = gcv_alpha(xc.as_ref(), alpha_columns(&targets).as_ref(), &map_alphas())?;
    let alpha_seconds = step.elapsed().as_secs_f64();
    peak_after("GCV");

    let step = Instant::now();
    let identity = Mat::<f64>::identity(targets.ncols(), targets.ncols());
    let map = fit_subject_map(xc.as_ref(), targets.as_ref(), identity.as_ref(), alpha)?;
    drop((xc, identity, targets));
    let map_seconds = step.elapsed().as_secs_f64();
    peak_after("map");

    drop(map);
    let step = Instant::now();
    let mapped_train = apply_map(&x, &x_mean, &encoding.map);
    let x_test = read_mat(&dir.join("x_test.npy"))?;
    let mapped_test = apply_map(&x_test, &x_mean, &encoding.map);
    let apply_seconds = step.elapsed().as_secs_f64();
    let total_seconds = started.elapsed().as_secs_f64() - alpha_seconds - map_seconds;
    let cpu = cpu_seconds() - cpu_before;
    peak_after("apply");
    if !(mapped_train[(0, 0)].is_finite() && mapped_test[(0, 0)].is_finite()) {
        return Err(RouteError::Usage(
            "bench group-adapt: the mapped rows are not finite".into(),
        ));
    }
    Ok(AdaptResult {
        k,
        voxels: w.voxels,
        trials: w.trials,
        test_rows: w.test_rows,
        targets: w.targets,
        threads,
        alpha,
        read_seconds,
        read_basis_seconds,
        targets_seconds,
        encoding_seconds,
        lambda: encoding.lambda,
        mu: encoding.mu,
        alpha_seconds,
        map_seconds,
        apply_seconds,
        total_seconds,
        cpu_seconds: cpu,
        peak_rss_mb: super::peak_rss_mb(),
        peak_after_step_mb: peaks,
    })
}

/// What `bench group-adapt` times.
#[derive(Debug, Clone)]
pub struct GroupBench {
    /// Voxels of the new subject.
    pub voxels: usize,
    /// Trials the map is fitted on.
    pub trials: usize,
    /// Test rows mapped besides the trials.
    pub test_rows: usize,
    /// Targets (z, then c).
    pub targets: usize,
    /// Dimensions of the shared space, one measured process each.
    pub k: Vec<usize>,
    /// Whether to time the adapt (false: the group fit only).
    pub adapt: bool,
    /// Subjects of the group fit.
    pub subjects: usize,
    /// Rows (images) per subject of the group fit (0: no group fit).
    pub group_images: usize,
    /// Dimension of the group fit's space.
    pub group_k: usize,
    /// Threads of the linear algebra.
    pub threads: usize,
    /// Where the generated .npy files go (reused when already there).
    pub data_dir: PathBuf,
}

impl GroupBench {
    /// Refuses sizes that cannot be fitted (usage errors): no threads, voxels or targets,
    /// fewer than 2 trials, a k outside 1 ..= targets.
    pub fn check(&self) -> Result<()> {
        if self.threads == 0 || self.voxels == 0 || self.trials < 2 || self.targets == 0 {
            return Err(RouteError::Usage(
                "--threads, --voxels and --targets must be ≥ 1, --trials ≥ 2".into(),
            ));
        }
        if self.adapt && (self.k.is_empty() || self.k.iter().any(|&k| k == 0 || k > self.targets)) {
            return Err(RouteError::Usage(format!(
                "--k: each k must be between 1 and --targets ({})",
                self.targets
            )));
        }
        Ok(())
    }

    fn group_workload(&self) -> GroupWorkload {
        GroupWorkload {
            subjects: self.subjects,
            rows: self.group_images,
            voxels: self.voxels,
            targets: self.targets,
            k: self.group_k,
        }
    }
}

/// A measurement made in this process.
#[derive(Serialize, Debug)]
#[serde(untagged)]
pub enum Measured {
    /// The adapt at the first k.
    Adapt(AdaptResult),
    /// The group fit.
    Group(GroupResult),
    /// One step of the group fit's array form.
    GroupStep(GroupStepResult),
}

/// One step of the group fit's array form, each in its own process: a subject's statistics
/// (`group-stats:S`) or the merge (`group-merge`).
#[derive(Serialize, Debug)]
pub struct GroupStepResult {
    /// `stats` or `merge`.
    pub step: String,
    /// The subject of a `stats` step (0-based).
    pub subject: Option<usize>,
    /// Wall time of the step, seconds (generating the rows included).
    pub seconds: f64,
    /// Of which generating the synthetic rows (reading them from disk, in the route).
    pub generate_seconds: f64,
    /// Of a `stats` step, the spectrum: one pass forming the Gram, one eigendecomposition
    /// (generating its rows included).
    pub spectrum_seconds: Option<f64>,
    /// CPU seconds (user + system) of the step.
    pub cpu_seconds: f64,
    /// Peak resident memory of the process (VmHWM), MB.
    pub peak_rss_mb: f64,
    /// Of a `group-encoder` step: the path, basis and share of the features it held, and the
    /// bound computed before the fit (MB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoder: Option<EncoderNote>,
}

/// What a `group-encoder` step fitted.
#[derive(Serialize, Debug)]
pub struct EncoderNote {
    /// Distinct images m (3 trials each, as NSD's).
    pub images: usize,
    /// primal, dual or reduced.
    pub path: String,
    /// Dimensions of the basis solved in.
    pub rank: usize,
    /// Share of the weighted, centred features' sum of squares in the basis.
    pub captured: f64,
    /// [`pooled_ridge_peak_bytes`] plus one block read, MB.
    pub estimated_peak_mb: f64,
}

/// One measurement in this process: `adapt` ([`measure_adapt`] at the first k, on the data in
/// `data_dir`) or `group` ([`measure_group`]).
pub fn measure_here(bench: &GroupBench, what: &str) -> Result<Measured> {
    bench.check()?;
    match what {
        "adapt" => Ok(Measured::Adapt(measure_adapt(
            &bench.data_dir,
            bench.k[0],
            bench.threads,
        )?)),
        "group" => Ok(Measured::Group(measure_group(
            &bench.group_workload(),
            bench.threads,
        )?)),
        "group-merge" => Ok(Measured::GroupStep(measure_group_merge(
            &bench.group_workload(),
            bench.threads,
            &bench.data_dir,
        )?)),
        "group-encoder" => Ok(Measured::GroupStep(measure_group_encoder(
            &bench.group_workload(),
            bench.threads,
        )?)),
        other => match other.strip_prefix("group-stats:").map(str::parse::<usize>) {
            Some(Ok(subject)) if subject < bench.subjects => {
                Ok(Measured::GroupStep(measure_group_stats(
                    &bench.group_workload(),
                    bench.threads,
                    subject,
                    &bench.data_dir,
                )?))
            }
            _ => Err(RouteError::Usage(format!(
                "--measure: adapt, group, group-stats:S (S below --subjects), group-merge or \
                 group-encoder, found '{other}'"
            ))),
        },
    }
}

/// Writes the adapt's data unless it is there, times the adapt at every k and then the group
/// fit (with `group_images`), each in a fresh process (`bench group-adapt --measure …`, which
/// runs [`measure_here`]).
pub fn run<P: FreshProcess>(
    bench: &GroupBench,
    process: &mut P,
) -> Result<GroupBenchReport, P::Error> {
    bench.check()?;
    let workload = AdaptWorkload {
        voxels: bench.voxels,
        trials: bench.trials,
        test_rows: bench.test_rows,
        targets: bench.targets,
    };
    if bench.adapt {
        ensure_adapt_data(&workload, &bench.data_dir)?;
    }
    let common = command_line(
        &["bench", "group-adapt"],
        &[
            ("--threads", number(bench.threads)),
            ("--voxels", number(bench.voxels)),
            ("--trials", number(bench.trials)),
            ("--test-rows", number(bench.test_rows)),
            ("--targets", number(bench.targets)),
            ("--data-dir", bench.data_dir.clone().into_os_string()),
        ],
    );
    let mut adapt = Vec::new();
    let adapt_ks: &[usize] = if bench.adapt { &bench.k } else { &[] };
    for &k in adapt_ks {
        ensure_basis(&bench.data_dir, bench.targets, k)?;
        process.log(&format!("bench group-adapt: adapting at k = {k}…"));
        let args = [
            common.clone(),
            command_line(&["--measure", "adapt"], &[("--k", number(k))]),
        ]
        .concat();
        adapt.push(process.measure(&format!("the adapt at k = {k}"), &args)?);
    }
    let group = if bench.group_images > 0 {
        process.log(&format!(
            "bench group-adapt: fitting the group ({} subjects × {} rows, k = {})…",
            bench.subjects, bench.group_images, bench.group_k
        ));
        let own = command_line(
            &["--measure", "group"],
            &[
                ("--subjects", number(bench.subjects)),
                ("--group-images", number(bench.group_images)),
                ("--group-k", number(bench.group_k)),
            ],
        );
        Some(process.measure("the group fit", &[common, own].concat())?)
    } else {
        None
    };
    Ok(GroupBenchReport {
        machine: machine(),
        adapt,
        group,
        goal_seconds: 60.0,
        goal_gb: 4.0,
    })
}

/// The group fit's size.
#[derive(Debug, Clone)]
pub struct GroupWorkload {
    /// Subjects.
    pub subjects: usize,
    /// Rows (images) per subject.
    pub rows: usize,
    /// Voxels per subject.
    pub voxels: usize,
    /// Targets d.
    pub targets: usize,
    /// Dimension of the shared space.
    pub k: usize,
}

/// A synthetic subject's betas or targets, generated row by row on demand as the route reads
/// them from disk: row i is `latent_i · loading + noise`, latent and noise drawn from a
/// generator seeded by (subject, row), so a block read twice is the same; noise is uniform
/// with the variance of [`X_NOISE`] or [`Y_NOISE`] (cheap to draw, as reading is). Columns
/// are centred by `mean` (computed by one pass beforehand, as the route does).
struct PlantedRows<'a> {
    subject: u64,
    rows: usize,
    loading: &'a [f32],
    cols: usize,
    noise: f32,
    salt: u64,
    mean: Vec<f64>,
    generating: &'a std::cell::Cell<f64>,
}

/// splitmix64: a fast, seedable stream for the synthetic rows.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Uniform on (−√3, √3): mean 0, variance 1.
fn unit_uniform(state: &mut u64) -> f32 {
    let u = (splitmix(state) >> 40) as f32 / (1u64 << 24) as f32;
    (2.0 * u - 1.0) * 3f32.sqrt()
}

impl PlantedRows<'_> {
    fn latent(&self, row: usize) -> [f32; PLANTED_RANK] {
        let mut state = SEED ^ (self.subject << 40) ^ row as u64;
        let mut l = [0f32; PLANTED_RANK];
        for v in l.iter_mut() {
            *v = unit_uniform(&mut state);
        }
        l
    }

    fn raw_block(&self, start: usize, len: usize) -> Mat<f64> {
        let t = Instant::now();
        let mut out = Mat::<f64>::zeros(len, self.cols);
        let mut row = vec![0f32; self.cols];
        for i in 0..len {
            let latent = self.latent(start + i);
            row.iter_mut().for_each(|v| *v = 0.0);
            for (r, &s) in latent.iter().enumerate() {
                for (o, &a) in row
                    .iter_mut()
                    .zip(&self.loading[r * self.cols..(r + 1) * self.cols])
                {
                    *o += s * a;
                }
            }
            let mut state = SEED ^ self.salt ^ (self.subject << 40) ^ ((start + i) as u64) << 1;
            for (j, &v) in row.iter().enumerate() {
                out[(i, j)] = (v + self.noise * unit_uniform(&mut state)) as f64;
            }
        }
        self.generating
            .set(self.generating.get() + t.elapsed().as_secs_f64());
        out
    }

    fn centre(&mut self, block_rows: usize) {
        let mut sums = vec![0f64; self.cols];
        for start in (0..self.rows).step_by(block_rows) {
            let b = self.raw_block(start, block_rows.min(self.rows - start));
            for (j, s) in sums.iter_mut().enumerate() {
                for i in 0..b.nrows() {
                    *s += b[(i, j)];
                }
            }
        }
        self.mean = sums.iter().map(|s| s / self.rows as f64).collect();
    }
}

impl RowBlocks for PlantedRows<'_> {
    type Error = RouteError;
    fn rows(&self) -> usize {
        self.rows
    }
    fn cols(&self) -> usize {
        self.cols
    }
    fn block(&self, start: usize, len: usize) -> Result<Mat<f64>> {
        let mut b = self.raw_block(start, len);
        for j in 0..b.ncols() {
            for i in 0..b.nrows() {
                b[(i, j)] -= self.mean[j];
            }
        }
        Ok(b)
    }
}

/// Times `group fit`'s shared space at the workload's size as the route runs it, streamed:
/// per subject the column means, one spectrum and the GCV α on 512 target columns, then
/// [`fit_shared_space_blocks`]; rows generated per block (a planted rank-64 structure plus
/// noise, seeded per row, so a block read twice is the same) where the route reads them, blocks
/// of [`default_block_rows`] rows. Peak memory is the process's VmHWM.
pub fn measure_group(w: &GroupWorkload, threads: usize) -> Result<GroupResult> {
    brainrecon_ridge::set_threads(threads);
    let block_rows = default_block_rows(w.voxels.max(w.targets));
    let opts = SharedSpaceOptions {
        k: w.k,
        ..SharedSpaceOptions::default()
    };
    let sizes = vec![
        SubjectSize {
            rows: w.rows,
            voxels: w.voxels,
        };
        w.subjects
    ];
    let gcv_columns = alpha_column_indices(w.targets);
    let estimated = peak_bytes(&sizes, w.targets, gcv_columns.len(), &opts, block_rows);
    let group = PlantedGroup::new(w);
    let generating = &group.generating;

    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let planted = |s: usize, y: bool| group.rows(w, s, y);
    let mut xs = Vec::with_capacity(w.subjects);
    let mut ys = Vec::with_capacity(w.subjects);
    for s in 0..w.subjects {
        let mut x = planted(s, false);
        x.centre(block_rows);
        let mut y = planted(s, true);
        y.centre(block_rows);
        xs.push(x);
        ys.push(y);
    }
    let grid = map_alphas();
    let mut spectra = Vec::with_capacity(w.subjects);
    let mut alphas = Vec::with_capacity(w.subjects);
    for (x, y) in xs.iter().zip(&ys) {
        let spectrum = BlockSpectrum::from_blocks(x, block_rows)?;
        let columns = Columns {
            inner: y,
            columns: &gcv_columns,
        };
        alphas.push(gcv_alpha_blocks(&spectrum, x, &columns, &grid, block_rows)?);
        spectra.push(spectrum);
    }
    let alpha_seconds = started.elapsed().as_secs_f64();

    let step = Instant::now();
    let subjects: Vec<BlockSubject<'_, RouteError>> = xs
        .iter()
        .zip(&ys)
        .zip(&spectra)
        .map(|((x, y), spectrum)| BlockSubject { x, y, spectrum })
        .collect();
    let space = fit_shared_space_blocks(&subjects, &alphas, &opts, block_rows)?;
    let fit_seconds = step.elapsed().as_secs_f64();
    if !space.basis[(0, 0)].is_finite() {
        return Err(RouteError::Usage(
            "bench group-adapt: the fitted space is not finite".into(),
        ));
    }
    drop(space);
    Ok(GroupResult {
        subjects: w.subjects,
        rows_per_subject: w.rows,
        voxels: w.voxels,
        targets: w.targets,
        k: w.k,
        power_iters: opts.power_iters,
        threads,
        block_rows,
        generate_seconds: generating.get(),
        alpha_seconds,
        fit_seconds,
        total_seconds: alpha_seconds + fit_seconds,
        cpu_seconds: cpu_seconds() - cpu_before,
        peak_rss_mb: super::peak_rss_mb(),
        estimated_peak_mb: estimated as f64 / 1e6,
    })
}

/// The loadings of a planted group (every process draws the same), and the time spent
/// generating its rows.
struct PlantedGroup {
    y_loading: Vec<f32>,
    x_loadings: Vec<Vec<f32>>,
    generating: std::cell::Cell<f64>,
}

impl PlantedGroup {
    fn new(w: &GroupWorkload) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(SEED ^ 0x9e37_79b9);
        let r = PLANTED_RANK;
        let scale = 1.0 / (r as f32).sqrt();
        let y_loading = gaussian(&mut rng, r * w.targets, scale);
        let x_loadings = (0..w.subjects)
            .map(|_| gaussian(&mut rng, r * w.voxels, scale))
            .collect();
        PlantedGroup {
            y_loading,
            x_loadings,
            generating: std::cell::Cell::new(0.0),
        }
    }

    /// Subject `s`'s betas (`y` false) or targets, not yet centred.
    fn rows(&self, w: &GroupWorkload, s: usize, y: bool) -> PlantedRows<'_> {
        PlantedRows {
            subject: s as u64,
            rows: w.rows,
            loading: if y {
                &self.y_loading
            } else {
                &self.x_loadings[s]
            },
            cols: if y { w.targets } else { w.voxels },
            noise: if y { Y_NOISE } else { X_NOISE },
            salt: if y { 0x5eed } else { 0 },
            mean: Vec::new(),
            generating: &self.generating,
        }
    }
}

/// `DATA/group-stats/S`: subject S's statistics of the array form.
fn group_stats_dir(data_dir: &Path, w: &GroupWorkload, subject: usize) -> PathBuf {
    data_dir
        .join(format!(
            "group-stats-{}x{}x{}x{}",
            w.subjects, w.rows, w.voxels, w.targets
        ))
        .join(subject.to_string())
}

/// The array form's task for `subject`, as `group fit --shard` runs it: its column means
/// (betas and targets), its spectrum and its GCV α, written (float64) to
/// `DATA/group-stats-…/S` through an output folder.
pub fn measure_group_stats(
    w: &GroupWorkload,
    threads: usize,
    subject: usize,
    data_dir: &Path,
) -> Result<GroupStepResult> {
    brainrecon_ridge::set_threads(threads);
    let block_rows = default_block_rows(w.voxels.max(w.targets));
    let group = PlantedGroup::new(w);
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut x = group.rows(w, subject, false);
    x.centre(block_rows);
    let mut y = group.rows(w, subject, true);
    y.centre(block_rows);
    let spectrum_started = Instant::now();
    let spectrum = BlockSpectrum::from_blocks(&x, block_rows)?;
    let spectrum_seconds = spectrum_started.elapsed().as_secs_f64();
    let gcv_columns = alpha_column_indices(w.targets);
    let columns = Columns {
        inner: &y,
        columns: &gcv_columns,
    };
    let alpha = gcv_alpha_blocks(&spectrum, &x, &columns, &map_alphas(), block_rows)?;
    let out = OutputDir::create(&group_stats_dir(data_dir, w, subject))?;
    write_spectrum(out.path(), &spectrum)?;
    write_f64(&out.path().join("x_mean.npy"), &[x.mean.len()], &x.mean)?;
    write_f64(&out.path().join("y_mean.npy"), &[y.mean.len()], &y.mean)?;
    write_f64(&out.path().join("alpha.npy"), &[1], &[alpha])?;
    out.commit()?;
    Ok(GroupStepResult {
        step: "stats".into(),
        subject: Some(subject),
        seconds: started.elapsed().as_secs_f64(),
        generate_seconds: group.generating.get(),
        spectrum_seconds: Some(spectrum_seconds),
        cpu_seconds: cpu_seconds() - cpu_before,
        peak_rss_mb: super::peak_rss_mb(),
        encoder: None,
    })
}

/// The array form's merge, as `group fit --merge` runs it: every subject's statistics read
/// back, then [`fit_shared_space_blocks`].
pub fn measure_group_merge(
    w: &GroupWorkload,
    threads: usize,
    data_dir: &Path,
) -> Result<GroupStepResult> {
    brainrecon_ridge::set_threads(threads);
    let block_rows = default_block_rows(w.voxels.max(w.targets));
    let opts = SharedSpaceOptions {
        k: w.k,
        ..SharedSpaceOptions::default()
    };
    let group = PlantedGroup::new(w);
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut xs = Vec::with_capacity(w.subjects);
    let mut ys = Vec::with_capacity(w.subjects);
    let mut spectra = Vec::with_capacity(w.subjects);
    let mut alphas = Vec::with_capacity(w.subjects);
    for s in 0..w.subjects {
        let dir = group_stats_dir(data_dir, w, s);
        let mut x = group.rows(w, s, false);
        x.mean = read_f64(&dir.join("x_mean.npy"), &[w.voxels])?;
        let mut y = group.rows(w, s, true);
        y.mean = read_f64(&dir.join("y_mean.npy"), &[w.targets])?;
        spectra.push(read_spectrum(&dir, w.rows, w.voxels)?);
        alphas.push(read_f64(&dir.join("alpha.npy"), &[1])?[0]);
        xs.push(x);
        ys.push(y);
    }
    let subjects: Vec<BlockSubject<'_, RouteError>> = xs
        .iter()
        .zip(&ys)
        .zip(&spectra)
        .map(|((x, y), spectrum)| BlockSubject { x, y, spectrum })
        .collect();
    let space = fit_shared_space_blocks(&subjects, &alphas, &opts, block_rows)?;
    if !space.basis[(0, 0)].is_finite() {
        return Err(RouteError::Usage(
            "bench group-adapt: the fitted space is not finite".into(),
        ));
    }
    Ok(GroupStepResult {
        step: "merge".into(),
        subject: None,
        seconds: started.elapsed().as_secs_f64(),
        generate_seconds: group.generating.get(),
        spectrum_seconds: None,
        cpu_seconds: cpu_seconds() - cpu_before,
        peak_rss_mb: super::peak_rss_mb(),
        encoder: None,
    })
}

/// Some columns of a [`RowBlocks`] (GCV's 512 target columns).
struct Columns<'a, R> {
    inner: &'a R,
    columns: &'a [usize],
}

impl<R: RowBlocks<Error = RouteError>> RowBlocks for Columns<'_, R> {
    type Error = RouteError;
    fn rows(&self) -> usize {
        self.inner.rows()
    }
    fn cols(&self) -> usize {
        self.columns.len()
    }
    fn block(&self, start: usize, len: usize) -> Result<Mat<f64>> {
        let b = self.inner.block(start, len)?;
        Ok(Mat::from_fn(len, self.columns.len(), |i, j| {
            b[(i, self.columns[j])]
        }))
    }
}

/// The merge's encoder, as `group fit` fits it ([`fit_pooled_ridge`], default basis
/// [`ENCODER_RANK`]): every subject's rows as images of 3 trials each (NSD's repeats), image i
/// of subject s with the planted features of its row 3i, generated block by block where the
/// route reads its features; the space's coordinates drawn (their values do not change the
/// work). Blocks of [`default_block_rows`] rows of the targets.
pub fn measure_group_encoder(w: &GroupWorkload, threads: usize) -> Result<GroupStepResult> {
    brainrecon_ridge::set_threads(threads);
    let block_rows = default_block_rows(w.voxels.max(w.targets));
    let group = PlantedGroup::new(w);
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let per_subject = w.rows.div_ceil(3);
    let images: Vec<(usize, usize)> = (0..w.subjects)
        .flat_map(|s| (0..per_subject).map(move |i| (s, 3 * i)))
        .collect();
    let counts: Vec<usize> = images.iter().map(|&(_, row)| 3.min(w.rows - row)).collect();
    let m = images.len();
    let mut rng = ChaCha8Rng::seed_from_u64(SEED ^ 0xe1c0);
    let y_mean = Mat::<f64>::from_fn(m, w.k, |_, _| rng.sample::<f64, _>(StandardNormal));
    let y_within = vec![w.rows as f64 * w.subjects as f64 * 0.5; w.k];
    let rows: Vec<PlantedRows<'_>> = (0..w.subjects).map(|s| group.rows(w, s, true)).collect();
    let features = PlantedImages {
        rows: &rows,
        images: &images,
        cols: w.targets,
    };
    let estimated = pooled_ridge_peak_bytes(
        m,
        w.targets,
        w.k,
        map_alphas().len(),
        ENCODER_RANK,
        block_rows,
    ) + 12 * block_rows.min(m) as u64 * w.targets as u64;
    let fit = fit_pooled_ridge(
        &RepeatedRows {
            x: &features,
            counts: &counts,
            y_mean: y_mean.as_ref(),
            y_within: &y_within,
        },
        &PooledRidgeOptions {
            alphas: map_alphas(),
            max_rank: ENCODER_RANK,
            seed: SEED,
            block_rows,
        },
    )?;
    if !fit.weights[(0, 0)].is_finite() {
        return Err(RouteError::Usage(
            "bench group-adapt: the fitted encoder is not finite".into(),
        ));
    }
    Ok(GroupStepResult {
        step: "encoder".into(),
        subject: None,
        seconds: started.elapsed().as_secs_f64(),
        generate_seconds: group.generating.get(),
        spectrum_seconds: None,
        cpu_seconds: cpu_seconds() - cpu_before,
        peak_rss_mb: super::peak_rss_mb(),
        encoder: Some(EncoderNote {
            images: m,
            path: format!("{:?}", fit.path).to_lowercase(),
            rank: fit.rank,
            captured: fit.captured,
            estimated_peak_mb: estimated as f64 / 1e6,
        }),
    })
}

/// Images as the encoder reads them: image i is a planted row of its subject's targets.
struct PlantedImages<'a> {
    rows: &'a [PlantedRows<'a>],
    /// (subject, row) of each image.
    images: &'a [(usize, usize)],
    cols: usize,
}

impl RowBlocks for PlantedImages<'_> {
    type Error = RouteError;
    fn rows(&self) -> usize {
        self.images.len()
    }
    fn cols(&self) -> usize {
        self.cols
    }
    fn block(&self, start: usize, len: usize) -> Result<Mat<f64>> {
        let mut out = Mat::<f64>::zeros(len, self.cols);
        for (i, &(s, row)) in self.images[start..start + len].iter().enumerate() {
            let one = self.rows[s].raw_block(row, 1);
            out.as_mut().subrows_mut(i, 1).copy_from(&one);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basis_has_orthonormal_columns() {
        let dir = tempfile::tempdir().unwrap();
        ensure_basis(dir.path(), 50, 7).unwrap();
        let p = read_mat(&basis_path(dir.path(), 7)).unwrap();
        let g = p.transpose() * &p;
        for i in 0..7 {
            for j in 0..7 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!(
                    (g[(i, j)] - want).abs() < 1e-5,
                    "PᵀP[{i},{j}] = {}",
                    g[(i, j)]
                );
            }
        }
        // dense after the reflection
        assert!((0..50).all(|i| (0..7).all(|j| p[(i, j)] != 0.0)));
    }

    #[test]
    fn small_adapt_and_group_run() {
        let dir = tempfile::tempdir().unwrap();
        let w = AdaptWorkload {
            voxels: 120,
            trials: 40,
            test_rows: 10,
            targets: 16_400,
        };
        ensure_adapt_data(&w, dir.path()).unwrap();
        let meta: AdaptMeta = read_json(&dir.path().join("meta.json")).unwrap();
        assert_eq!(meta.blocks.len(), 2);
        assert_eq!(meta.blocks[1].width, 16);
        ensure_basis(dir.path(), w.targets, 8).unwrap();
        let r = measure_adapt(dir.path(), 8, 1).unwrap();
        assert_eq!((r.k, r.trials, r.voxels), (8, 40, 120));
        assert!(r.alpha > 0.0 && r.total_seconds >= r.map_seconds);
        // A second call reuses the data.
        ensure_adapt_data(&w, dir.path()).unwrap();
        assert!(basis_path(dir.path(), 8).exists());

        let g = measure_group(
            &GroupWorkload {
                subjects: 2,
                rows: 30,
                voxels: 50,
                targets: 80,
                k: 4,
            },
            1,
        )
        .unwrap();
        assert_eq!(g.k, 4);
        assert!(g.peak_rss_mb > 0.0);
    }

    #[test]
    fn the_array_form_merges_only_when_every_subject_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let w = GroupWorkload {
            subjects: 2,
            rows: 30,
            voxels: 20,
            targets: 80,
            k: 4,
        };
        let first = measure_group_stats(&w, 1, 0, dir.path()).unwrap();
        assert_eq!((first.step.as_str(), first.subject), ("stats", Some(0)));
        let early = measure_group_merge(&w, 1, dir.path()).unwrap_err();
        assert!(
            early
                .to_string()
                .contains(&format!("{}", group_stats_dir(dir.path(), &w, 1).display())),
            "{early}"
        );
        measure_group_stats(&w, 1, 1, dir.path()).unwrap();
        let merge = measure_group_merge(&w, 1, dir.path()).unwrap();
        assert_eq!((merge.step.as_str(), merge.subject), ("merge", None));
        assert!(merge.peak_rss_mb > 0.0);
    }
}
