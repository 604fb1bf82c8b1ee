//! Synthetic banded-ridge workload for timing (used by `brainrecon bench banded`; no
//! assertions). The same arrays are written to .npy so that himalaya can be timed on them.

use std::time::Instant;

use faer::{Mat, MatRef};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::banded::{dirichlet_candidates, BandedCv, BandedRidgeCv, Candidates};
use crate::error::Result;
use crate::fit::row_major_view;
use crate::linalg::mul_add;
use crate::metrics::{r2_per_target, summarize};
use crate::select::Scoring;

/// Shape of a banded workload: `runs` runs of `n_train / runs` TRs for training
/// (leave-one-run-out CV), `n_test` held-out TRs, bands of `widths` features, `t` voxels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BandedWorkload {
    /// Training TRs.
    pub n_train: usize,
    /// Held-out TRs.
    pub n_test: usize,
    /// Features of each band.
    pub widths: Vec<usize>,
    /// Voxels (targets).
    pub t: usize,
    /// Training runs, the CV groups.
    pub runs: usize,
}

impl BandedWorkload {
    /// The issue's workload: 3 bands of 300 features, 3,000 training TRs in 5 runs,
    /// 600 test TRs, 20,000 voxels.
    pub fn issue() -> Self {
        BandedWorkload {
            n_train: 3000,
            n_test: 600,
            widths: vec![300, 300, 300],
            t: 20_000,
            runs: 5,
        }
    }

    /// Run label of each training TR (contiguous runs of equal length, the last one longer
    /// when `runs` does not divide `n_train`).
    pub fn run_labels(&self) -> Vec<i64> {
        let per_run = (self.n_train / self.runs.max(1)).max(1);
        (0..self.n_train)
            .map(|i| (i / per_run).min(self.runs.max(1) - 1) as i64)
            .collect()
    }
}

/// The benchmark's alpha grid: 8 values log-spaced over 10^0 … 10^7.
pub fn banded_bench_alphas() -> Vec<f64> {
    (0..8).map(|k| 10f64.powi(k)).collect()
}

/// The benchmark's candidates: uniform first, then Dirichlet draws (concentrations
/// [0.1, 1.0], himalaya's default), seeded.
pub fn banded_bench_candidates(n_iter: usize, n_bands: usize, seed: u64) -> Result<Vec<Vec<f64>>> {
    dirichlet_candidates(n_iter, n_bands, &[0.1, 1.0], seed)
}

/// A row-major f32 matrix (as stored in a C-order .npy).
#[derive(Debug, Clone, PartialEq)]
pub struct RowMajor {
    /// Values, row after row.
    pub data: Vec<f32>,
    /// (rows, columns)
    pub shape: (usize, usize),
}

impl RowMajor {
    fn of(m: MatRef<'_, f32>) -> Self {
        let mut data = Vec::with_capacity(m.nrows() * m.ncols());
        for i in 0..m.nrows() {
            data.extend((0..m.ncols()).map(|j| m[(i, j)]));
        }
        RowMajor {
            data,
            shape: (m.nrows(), m.ncols()),
        }
    }

    /// The matrix view (errors if `data` does not hold `shape`).
    pub fn view(&self) -> Result<MatRef<'_, f32>> {
        row_major_view("benchmark array", &self.data, self.shape)
    }
}

/// Generated arrays, row-major.
pub struct BandedBenchData {
    /// Per band: n_train×p_b.
    pub train_bands: Vec<RowMajor>,
    /// Per band: n_test×p_b.
    pub test_bands: Vec<RowMajor>,
    /// n_train×t.
    pub y_train: RowMajor,
    /// n_test×t.
    pub y_test: RowMajor,
}
/// Generates `w` from `seed` (ChaCha8: identical on every machine).
///
/// Bands are unit-variance uniform noise. Each voxel j weights the bands by its own
/// `v_bj` (a Dirichlet(1) draw, so voxels prefer different bands) and responds
/// `y_j = Σ_b √v_bj X_b w_bj + e_j` with `w_bj` uniform, scaled so the signal variance
/// is 0.25 against unit noise (R² ≈ 0.2 at best).
pub fn generate_banded(w: &BandedWorkload, seed: u64) -> BandedBenchData {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut uniform = |rows: usize, cols: usize, gain: f32| {
        let half = 3f32.sqrt() * gain;
        Mat::<f32>::from_fn(rows, cols, |_, _| (rng.gen::<f32>() * 2.0 - 1.0) * half)
    };
    let n = w.n_train + w.n_test;
    let bands: Vec<Mat<f32>> = w.widths.iter().map(|&p| uniform(n, p, 1.0)).collect();
    let mut y = uniform(n, w.t, 1.0);
    let preference = dirichlet_candidates(w.t + 1, w.widths.len(), &[1.0], seed ^ 0x5eed)
        .expect("valid Dirichlet parameters");
    for (b, band) in bands.iter().enumerate() {
        let gain = (0.25 / band.ncols() as f32).sqrt();
        let mut weights = uniform(band.ncols(), w.t, gain);
        for j in 0..w.t {
            let scale = preference[j + 1][b].sqrt() as f32;
            weights.col_mut(j).iter_mut().for_each(|v| *v *= scale);
        }
        mul_add(y.as_mut(), band.as_ref(), weights.as_ref(), 1.0);
    }
    let split = |m: &Mat<f32>| {
        (
            RowMajor::of(m.subrows(0, w.n_train)),
            RowMajor::of(m.subrows(w.n_train, w.n_test)),
        )
    };
    let (train_bands, test_bands) = bands.iter().map(split).unzip();
    let (y_train, y_test) = split(&y);
    BandedBenchData {
        train_bands,
        test_bands,
        y_train,
        y_test,
    }
}

/// Timings and test score of one banded fit.
#[derive(Debug, Clone)]
pub struct BandedBenchReport {
    /// Wall-clock seconds of the fit (search and refit).
    pub fit_seconds: f64,
    /// Wall-clock seconds of the prediction on the test rows.
    pub predict_seconds: f64,
    /// Mean test R² over voxels.
    pub test_r2_mean: f64,
    /// Median test R² over voxels.
    pub test_r2_median: f64,
}

/// Fits [`BandedRidgeCv`] (leave-one-run-out over `runs`, R² scoring, intercept) on the
/// training arrays with the given candidates and alphas, then scores the test rows.
pub fn run_banded(
    data: &BandedBenchData,
    runs: Vec<i64>,
    candidates: Vec<Vec<f64>>,
    alphas: Vec<f64>,
) -> Result<BandedBenchReport> {
    let (train_bands, test_bands) = (views(&data.train_bands)?, views(&data.test_bands)?);
    let (y_train, y_test) = (data.y_train.view()?, data.y_test.view()?);
    let estimator = BandedRidgeCv {
        alphas,
        candidates: Candidates::Explicit(candidates),
        cv: BandedCv::Groups(runs),
        scoring: Scoring::R2,
        fit_intercept: true,
        target_chunk: 2048,
    };
    let start = Instant::now();
    let model = estimator.fit(&train_bands, y_train)?;
    let fit_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let pred = model.predict(&test_bands)?;
    let predict_seconds = start.elapsed().as_secs_f64();
    let r2 = summarize(&r2_per_target(y_test, pred.as_ref())?);
    Ok(BandedBenchReport {
        fit_seconds,
        predict_seconds,
        test_r2_mean: r2.mean,
        test_r2_median: r2.median,
    })
}

fn views(bands: &[RowMajor]) -> Result<Vec<MatRef<'_, f32>>> {
    bands.iter().map(RowMajor::view).collect()
}
