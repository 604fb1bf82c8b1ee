//! `brainrecon bench banded`: banded ridge timed on the issue's workload, with the arrays
//! written as .npy so that `tools/bench/banded_anchor.py` fits himalaya on the same data.

use crate::commands::ridge::read_matrix;
use crate::commands::usage;
use brainrecon_data::npy;
use brainrecon_ridge::bench_banded::{
    banded_bench_alphas, banded_bench_candidates, generate_banded, run_banded, BandedBenchData,
    BandedWorkload, RowMajor,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Time banded ridge (random search over band weights, leave-one-run-out CV, R² selection).
///
/// Workload: 3 bands of 300 features, 3,000 training TRs in 5 runs of 600, 600 test TRs,
/// 20,000 voxels (`--voxels` for smaller runs); `--n-iter` candidates (uniform, then
/// Dirichlet draws, seeded) and 8 alphas 10^0 … 10^7. The arrays (float32) go to
/// `--data-dir` as .npy with `meta.json` (candidates, alphas), so the himalaya anchor fits the
/// same problem. The fit runs in a fresh process; its peak memory is that process's VmHWM.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon bench banded --voxels 2000 --n-iter 3 --data-dir target/bench-banded\n  \
    bash tools/bench/banded.sh      # with the himalaya anchor, one after the other"
)]
pub struct BandedArgs {
    /// Voxels (targets)
    #[arg(long, default_value_t = 20_000)]
    voxels: usize,
    /// Band-weight candidates searched
    #[arg(long, default_value_t = 4)]
    n_iter: usize,
    /// Threads for the linear algebra
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Where the generated .npy files go (reused when already there)
    #[arg(long, default_value = "target/bench-banded")]
    data_dir: PathBuf,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
    /// Fit the data already in --data-dir in this process (used by `bench banded` itself)
    #[arg(long, hide = true)]
    fit_only: bool,
}

/// `meta.json` of the data folder; the himalaya anchor reads it too.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Meta {
    n_train: usize,
    n_test: usize,
    widths: Vec<usize>,
    t: usize,
    runs: usize,
    seed: u64,
    candidates: Vec<Vec<f64>>,
    alphas: Vec<f64>,
    generator_version: u32,
}

/// One measured fit.
#[derive(Serialize, Deserialize, Debug)]
struct BandedResult {
    voxels: usize,
    n_iter: usize,
    threads: usize,
    fit_seconds: f64,
    predict_seconds: f64,
    test_r2_mean: f64,
    test_r2_median: f64,
    peak_rss_mb: f64,
}

const SEED: u64 = 20241018;
const GENERATOR_VERSION: u32 = 1;

pub fn banded(args: BandedArgs) -> anyhow::Result<()> {
    if args.threads == 0 || args.voxels == 0 || args.n_iter == 0 {
        return Err(usage("--threads, --voxels and --n-iter must be ≥ 1"));
    }
    if args.fit_only {
        return fit(&args);
    }
    let workload = BandedWorkload {
        t: args.voxels,
        ..BandedWorkload::issue()
    };
    ensure_data(&workload, args.n_iter, &args.data_dir)?;
    eprintln!(
        "bench banded: fitting {} voxels, {} candidates…",
        args.voxels, args.n_iter
    );
    let output = Command::new(std::env::current_exe()?)
        .args(["bench", "banded", "--fit-only", "--threads"])
        .arg(args.threads.to_string())
        .args(["--voxels", &args.voxels.to_string()])
        .args(["--n-iter", &args.n_iter.to_string()])
        .arg("--data-dir")
        .arg(&args.data_dir)
        .output()?;
    if !output.status.success() {
        anyhow::bail!(
            "the banded fit failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let result: BandedResult = serde_json::from_slice(&output.stdout)?;
    if args.json {
        return crate::commands::print_json(&result);
    }
    outln!("voxels  candidates  fit s     predict s  test R² mean  test R² median  peak MB")?;
    outln!(
        "{:<7} {:<11} {:<9.2} {:<10.3} {:<13.4} {:<15.4} {:.0}",
        result.voxels,
        result.n_iter,
        result.fit_seconds,
        result.predict_seconds,
        result.test_r2_mean,
        result.test_r2_median,
        result.peak_rss_mb
    )?;
    Ok(())
}

fn meta_for(w: &BandedWorkload, n_iter: usize) -> anyhow::Result<Meta> {
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

/// Writes the arrays and meta.json under `dir` unless identical ones are there.
fn ensure_data(w: &BandedWorkload, n_iter: usize, dir: &Path) -> anyhow::Result<()> {
    let meta = meta_for(w, n_iter)?;
    let meta_path = dir.join("meta.json");
    if let Ok(existing) = brainrecon_data::atomic::read_json::<Meta>(&meta_path) {
        if existing == meta {
            return Ok(());
        }
    }
    std::fs::create_dir_all(dir)?;
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
    brainrecon_data::atomic::write_json_atomic(&meta_path, &meta)?;
    Ok(())
}

/// Writes `m` as a C-order float32 .npy.
fn write_matrix(path: &Path, m: &RowMajor) -> anyhow::Result<()> {
    npy::write(path, &[m.shape.0, m.shape.1], &m.data)?;
    Ok(())
}

/// Reads a float32 .npy matrix.
fn load(path: &Path, what: &str) -> anyhow::Result<RowMajor> {
    let m = read_matrix(path, what)?;
    Ok(RowMajor {
        data: m.data,
        shape: (m.rows, m.cols),
    })
}

/// Peak resident set size of this process (VmHWM), in MB (10^6 bytes).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb * 1024.0 / 1e6)
}

/// The measured fit (run in its own process by [`banded`]).
fn fit(args: &BandedArgs) -> anyhow::Result<()> {
    brainrecon_ridge::set_threads(args.threads);
    let dir = &args.data_dir;
    let meta: Meta = brainrecon_data::atomic::read_json(&dir.join("meta.json"))?;
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
    let result = BandedResult {
        voxels: meta.t,
        n_iter: meta.candidates.len(),
        threads: args.threads,
        fit_seconds: report.fit_seconds,
        predict_seconds: report.predict_seconds,
        test_r2_mean: report.test_r2_mean,
        test_r2_median: report.test_r2_median,
        peak_rss_mb: peak_rss_mb(),
    };
    outln!("{}", serde_json::to_string(&result)?)?;
    Ok(())
}
