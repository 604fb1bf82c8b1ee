//! Banded ridge timed on the issue's workload, with the arrays written as .npy so that
//! himalaya fits the same data.

use super::{command_line, number, FreshProcess};
use brainrecon_core::fs::{read_json, write_json_atomic};
use brainrecon_core::DataError;
use brainrecon_formats::npy;
use brainrecon_ridge::bench_banded::{
    banded_bench_alphas, banded_bench_candidates, generate_banded, run_banded, BandedBenchData,
    BandedWorkload, RowMajor,
};
use brainrecon_routes::decode::arrays::read_matrix;
use brainrecon_routes::error::{Result, RouteError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `meta.json` of the data folder; the himalaya anchor reads it too.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
pub struct Meta {
    /// Training rows.
    pub n_train: usize,
    /// Test rows.
    pub n_test: usize,
    /// Columns of each band.
    pub widths: Vec<usize>,
    /// Targets (voxels).
    pub t: usize,
    /// Runs (the CV's groups).
    pub runs: usize,
    /// The generator's seed.
    pub seed: u64,
    /// Band weights tried.
    pub candidates: Vec<Vec<f64>>,
    /// The alpha grid.
    pub alphas: Vec<f64>,
    /// Bumped when the generated data change.
    pub generator_version: u32,
}

/// One measured banded fit.
#[derive(Serialize, Deserialize, Debug)]
pub struct BandedResult {
    /// Targets.
    pub voxels: usize,
    /// Candidates of band weights.
    pub n_iter: usize,
    /// Threads of the linear algebra.
    pub threads: usize,
    /// Seconds of the fit.
    pub fit_seconds: f64,
    /// Seconds of the test prediction.
    pub predict_seconds: f64,
    /// Mean test R² over targets.
    pub test_r2_mean: f64,
    /// Median test R² over targets.
    pub test_r2_median: f64,
    /// Peak resident memory of the process, MB.
    pub peak_rss_mb: f64,
}

impl BandedResult {
    /// The table `bench banded` prints: a header and this fit's line.
    pub fn text(&self) -> String {
        format!(
            "voxels  candidates  fit s     predict s  test R² mean  test R² median  peak MB\n\
             {:<7} {:<11} {:<9.2} {:<10.3} {:<13.4} {:<15.4} {:.0}\n",
            self.voxels,
            self.n_iter,
            self.fit_seconds,
            self.predict_seconds,
            self.test_r2_mean,
            self.test_r2_median,
            self.peak_rss_mb
        )
    }
}

/// What `bench banded` times: the issue's workload ([`BandedWorkload::issue`]) at `voxels`
/// targets.
#[derive(Debug, Clone)]
pub struct BandedBench {
    /// Voxels (targets).
    pub voxels: usize,
    /// Band-weight candidates searched.
    pub n_iter: usize,
    /// Threads of the linear algebra.
    pub threads: usize,
    /// Where the .npy files and meta.json go (reused when already there).
    pub data_dir: PathBuf,
}

impl BandedBench {
    /// Refuses zero threads, voxels or candidates (a usage error).
    pub fn check(&self) -> Result<()> {
        if self.threads == 0 || self.voxels == 0 || self.n_iter == 0 {
            return Err(RouteError::Usage(
                "--threads, --voxels and --n-iter must be ≥ 1".into(),
            ));
        }
        Ok(())
    }
}

/// Writes the data unless it is there and times the fit in a fresh process (`bench banded
/// --fit-only`, which runs [`measure`]).
pub fn run<P: FreshProcess>(
    bench: &BandedBench,
    process: &mut P,
) -> Result<BandedResult, P::Error> {
    bench.check()?;
    let workload = BandedWorkload {
        t: bench.voxels,
        ..BandedWorkload::issue()
    };
    ensure_data(&workload, bench.n_iter, &bench.data_dir)?;
    process.log(&format!(
        "bench banded: fitting {} voxels, {} candidates…",
        bench.voxels, bench.n_iter
    ));
    let args = command_line(
        &["bench", "banded", "--fit-only"],
        &[
            ("--threads", number(bench.threads)),
            ("--voxels", number(bench.voxels)),
            ("--n-iter", number(bench.n_iter)),
            ("--data-dir", bench.data_dir.clone().into_os_string()),
        ],
    );
    process.measure("the banded fit", &args)
}

const SEED: u64 = 20241018;
const GENERATOR_VERSION: u32 = 1;

fn meta_for(w: &BandedWorkload, n_iter: usize) -> Result<Meta> {
    Ok(Meta {
        n_train: w.n_train,
        n_test: w.n_test,
        widths: w.widths.clone(),
        t: w.t,
        runs: w.runs,
        seed: SEED,
        candidates: banded_bench_candidates(n_iter, w.widths.len(), SEED)?,
        alphas: banded_bench_alphas(),
        generator_version: GENERATOR_VERSION,
    })
}

/// Writes the workload's bands, targets, run labels and meta.json under `dir` unless
/// identical ones are there.
pub fn ensure_data(w: &BandedWorkload, n_iter: usize, dir: &Path) -> Result<()> {
    let meta = meta_for(w, n_iter)?;
    let meta_path = dir.join("meta.json");
    if let Ok(existing) = read_json::<Meta>(&meta_path) {
        if existing == meta {
            return Ok(());
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    eprintln!("bench banded: generating the data in {}", dir.display());
    let data = generate_banded(w, SEED);
    for (b, (train, test)) in data.train_bands.iter().zip(&data.test_bands).enumerate() {
        write_matrix(&dir.join(format!("band{b}_train.npy")), train)?;
        write_matrix(&dir.join(format!("band{b}_test.npy")), test)?;
    }
    write_matrix(&dir.join("y_train.npy"), &data.y_train)?;
    write_matrix(&dir.join("y_test.npy"), &data.y_test)?;
    npy::write(&dir.join("runs.npy"), &[w.n_train], &w.run_labels())?;
    // meta.json last: its presence means the arrays are complete
    write_json_atomic(&meta_path, &meta)?;
    Ok(())
}

fn write_matrix(path: &Path, m: &RowMajor) -> Result<()> {
    npy::write(path, &[m.shape.0, m.shape.1], &m.data)?;
    Ok(())
}

fn load(path: &Path, what: &str) -> Result<RowMajor> {
    let m = read_matrix(path, what)?;
    Ok(RowMajor {
        data: m.data,
        shape: (m.rows, m.cols),
    })
}

/// Fits banded ridge on the data in `dir` and times the fit and the test prediction.
pub fn measure(dir: &Path, threads: usize) -> Result<BandedResult> {
    brainrecon_ridge::set_threads(threads);
    let meta: Meta = read_json(&dir.join("meta.json"))?;
    let mut data = BandedBenchData {
        train_bands: Vec::new(),
        test_bands: Vec::new(),
        y_train: load(&dir.join("y_train.npy"), "Y train")?,
        y_test: load(&dir.join("y_test.npy"), "Y test")?,
    };
    for b in 0..meta.widths.len() {
        let path = |split: &str| dir.join(format!("band{b}_{split}.npy"));
        data.train_bands.push(load(&path("train"), "band (train)")?);
        data.test_bands.push(load(&path("test"), "band (test)")?);
    }
    let runs = npy::read_i64(&dir.join("runs.npy"))?.data;
    let report = run_banded(&data, runs, meta.candidates.clone(), meta.alphas.clone())?;
    Ok(BandedResult {
        voxels: meta.t,
        n_iter: meta.candidates.len(),
        threads,
        fit_seconds: report.fit_seconds,
        predict_seconds: report.predict_seconds,
        test_r2_mean: report.test_r2_mean,
        test_r2_median: report.test_r2_median,
        peak_rss_mb: super::peak_rss_mb(),
    })
}
