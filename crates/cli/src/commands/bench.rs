//! `brainrecon bench …`: reproducible timings, written so Python can run on the same data.

use super::ridge::read_matrix;
use super::usage;
use brainrecon_data::npy;
use brainrecon_ridge::metrics::{pearson_per_target, summarize};
use brainrecon_ridge::{
    bench_alphas, generate, row_major_view, Cv, Precision, RidgeCv, Workload, WORKLOADS,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[path = "bench_banded.rs"]
mod bench_banded;

/// Time brainrecon's engines on synthetic data of the sizes real studies have
#[derive(clap::Subcommand)]
pub enum BenchCommand {
    Ridge(RidgeArgs),
    Caption(super::bench_caption::CaptionArgs),
    Clap(super::bench_clap::ClapArgs),
    Banded(bench_banded::BandedArgs),
    /// One measured fit in a fresh process (used by `bench ridge`).
    #[command(hide = true)]
    RidgeRun(RunArgs),
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Ridge(args) => ridge(args),
        BenchCommand::Caption(args) => super::bench_caption::caption(args),
        BenchCommand::Clap(args) => super::bench_clap::clap(args),
        BenchCommand::Banded(args) => bench_banded::banded(args),
        BenchCommand::RidgeRun(args) => ridge_run(args),
    }
}

/// Time ridge regression (LOO and GCV, 10 alphas, one per target) on synthetic fMRI-shaped data.
///
/// Workloads: A decoding (8859 train / 982 test rows, 15724 voxels → 768 features), B encoding
/// (768 features → 15724 voxels), C small (2000/500, 4000 → 1000), A16k A's voxels to the full
/// SD latent (15724 voxels → 16384 values of a 4×64×64 latent; about 1.3 GB of arrays, run only
/// when named). The data (float32, a planted
/// rank-16 signal plus noise, seeded) are written as .npy under `--data-dir/<workload>/` with
/// `meta.json` (shapes, alphas), so `tools/bench/ridge_anchors.py` fits scikit-learn and
/// himalaya on the same arrays. Each fit runs in its own process; peak memory is that
/// process's VmHWM (it includes the arrays read from disk, as for Python).
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon bench ridge --workload C --threads 2 --data-dir target/bench-data\n  \
    bash tools/bench/ridge.sh all     # with the Python anchors, one table"
)]
pub struct RidgeArgs {
    /// A, B, C, A16k or all (all = A, B and C)
    #[arg(long, default_value = "all")]
    workload: String,
    /// Threads for the linear algebra
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Where the generated .npy files go (reused when already there)
    #[arg(long, default_value = "target/bench-data")]
    data_dir: PathBuf,
    /// Decomposition precision: f32, f64 or both (one run each)
    #[arg(long, default_value = "both")]
    precision: String,
    /// Alpha selection: loo, gcv or both (one run each)
    #[arg(long, default_value = "both")]
    cv: String,
    /// cpu, cuda or cuda:N (a build with `--features cuda`)
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Keep the models as dual coefficients (`ridge fit --dual`; wide workloads, CPU)
    #[arg(long)]
    dual: bool,
    /// Print the results as JSON
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct RunArgs {
    #[arg(long)]
    dir: PathBuf,
    #[arg(long)]
    threads: usize,
    #[arg(long)]
    precision: String,
    #[arg(long)]
    cv: String,
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long)]
    dual: bool,
}

/// `meta.json` of a workload directory; the Python anchors read it too.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Meta {
    workload: String,
    n_train: usize,
    n_test: usize,
    p: usize,
    t: usize,
    seed: u64,
    alphas: Vec<f64>,
    generator_version: u32,
}

/// One measured fit, printed as JSON by `ridge-run`.
#[derive(Serialize, Deserialize, Debug)]
struct RunResult {
    workload: String,
    cv: String,
    precision: String,
    solver: String,
    /// `primal` (weights) or `dual` (dual coefficients and the training X).
    #[serde(default)]
    form: String,
    threads: usize,
    fit_seconds: f64,
    predict_seconds: f64,
    mean_test_r: f64,
    peak_rss_mb: f64,
    device: String,
    /// Device memory the fit allocated at its peak (GPU runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    peak_gpu_mb: Option<f64>,
}

const SEED: u64 = 20240611;
const GENERATOR_VERSION: u32 = 1;

fn selected(workload: &str) -> anyhow::Result<Vec<Workload>> {
    match workload {
        // A16k (1.3 GB of arrays, minutes on a laptop) runs only when named
        "all" => Ok(WORKLOADS
            .iter()
            .filter(|w| w.name != "A16k")
            .copied()
            .collect()),
        name => WORKLOADS
            .iter()
            .find(|w| w.name.eq_ignore_ascii_case(name))
            .map(|w| vec![*w])
            .ok_or_else(|| {
                usage(format!(
                    "--workload: expected A, B, C, A16k or all, found '{name}'"
                ))
            }),
    }
}

fn precisions(text: &str) -> anyhow::Result<Vec<&'static str>> {
    match text {
        "both" => Ok(vec!["f32", "f64"]),
        "f32" => Ok(vec!["f32"]),
        "f64" => Ok(vec!["f64"]),
        other => Err(usage(format!(
            "--precision: expected f32, f64 or both, found '{other}'"
        ))),
    }
}

fn cv_methods(text: &str) -> anyhow::Result<Vec<&'static str>> {
    match text {
        "both" => Ok(vec!["loo", "gcv"]),
        "loo" => Ok(vec!["loo"]),
        "gcv" => Ok(vec!["gcv"]),
        other => Err(usage(format!(
            "--cv: expected loo, gcv or both, found '{other}'"
        ))),
    }
}

fn ridge(args: RidgeArgs) -> anyhow::Result<()> {
    let workloads = selected(&args.workload)?;
    let precisions = precisions(&args.precision)?;
    let methods = cv_methods(&args.cv)?;
    if args.threads == 0 {
        return Err(usage("--threads must be ≥ 1"));
    }
    super::ridge::ridge_device(&args.device)?;
    let exe = std::env::current_exe()?;
    let mut results = Vec::new();
    for w in &workloads {
        let dir = args.data_dir.join(w.name);
        ensure_data(w, &dir)?;
        for cv in &methods {
            for precision in &precisions {
                eprintln!("bench ridge: workload {} ({cv}, {precision})…", w.name);
                let output = Command::new(&exe)
                    .args(["bench", "ridge-run", "--threads"])
                    .arg(args.threads.to_string())
                    .args([
                        "--precision",
                        precision,
                        "--cv",
                        cv,
                        "--device",
                        &args.device,
                    ])
                    .args(args.dual.then_some("--dual"))
                    .arg("--dir")
                    .arg(&dir)
                    .output()?;
                if !output.status.success() {
                    anyhow::bail!(
                        "workload {} ({cv}, {precision}) failed: {}",
                        w.name,
                        String::from_utf8_lossy(&output.stderr)
                    );
                }
                let result: RunResult = serde_json::from_slice(&output.stdout)?;
                results.push(result);
            }
        }
    }
    if args.json {
        return super::print_json(&results);
    }
    outln!("workload  device  cv   precision  solver  form    fit s     predict s  test mean r  peak MB  GPU MB")?;
    for r in &results {
        outln!(
            "{:<9} {:<7} {:<4} {:<10} {:<7} {:<7} {:<9.2} {:<10.3} {:<12.4} {:<8.0} {}",
            r.workload,
            r.device,
            r.cv,
            r.precision,
            r.solver,
            r.form,
            r.fit_seconds,
            r.predict_seconds,
            r.mean_test_r,
            r.peak_rss_mb,
            r.peak_gpu_mb.map_or("-".into(), |m| format!("{m:.0}"))
        )?;
    }
    Ok(())
}

/// Writes the workload's arrays and meta.json under `dir` unless identical ones are there.
fn ensure_data(w: &Workload, dir: &Path) -> anyhow::Result<()> {
    let meta = Meta {
        workload: w.name.into(),
        n_train: w.n_train,
        n_test: w.n_test,
        p: w.p,
        t: w.t,
        seed: SEED,
        alphas: bench_alphas(),
        generator_version: GENERATOR_VERSION,
    };
    let meta_path = dir.join("meta.json");
    if let Ok(existing) = brainrecon_data::atomic::read_json::<Meta>(&meta_path) {
        if existing == meta {
            return Ok(());
        }
    }
    eprintln!(
        "bench ridge: generating workload {} in {}",
        w.name,
        dir.display()
    );
    let data = generate(w, SEED);
    npy::write(&dir.join("x_train.npy"), &[w.n_train, w.p], &data.x_train)?;
    npy::write(&dir.join("y_train.npy"), &[w.n_train, w.t], &data.y_train)?;
    npy::write(&dir.join("x_test.npy"), &[w.n_test, w.p], &data.x_test)?;
    npy::write(&dir.join("y_test.npy"), &[w.n_test, w.t], &data.y_test)?;
    // meta.json last: its presence means the arrays are complete
    brainrecon_data::atomic::write_json_atomic(&meta_path, &meta)?;
    Ok(())
}

fn ridge_run(args: RunArgs) -> anyhow::Result<()> {
    brainrecon_ridge::set_threads(args.threads);
    let meta: Meta = brainrecon_data::atomic::read_json(&args.dir.join("meta.json"))?;
    let precision = match args.precision.as_str() {
        "f32" => Precision::F32,
        _ => Precision::F64,
    };
    let x = read_matrix(&args.dir.join("x_train.npy"), "X train")?;
    let y = read_matrix(&args.dir.join("y_train.npy"), "Y train")?;
    let x_test = read_matrix(&args.dir.join("x_test.npy"), "X test")?;
    let y_test = read_matrix(&args.dir.join("y_test.npy"), "Y test")?;
    let estimator = RidgeCv {
        alphas: meta.alphas.clone(),
        cv: match args.cv.as_str() {
            "gcv" => Cv::Gcv,
            _ => Cv::Loo,
        },
        precision,
        device: super::ridge::ridge_device(&args.device)?,
        dual: args.dual,
        ..RidgeCv::default()
    };
    let started = Instant::now();
    let model = estimator.fit_row_major(&x.data, (x.rows, x.cols), &y.data, (y.rows, y.cols))?;
    let fit_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let pred = model.predict(row_major_view(
        "X test",
        &x_test.data,
        (x_test.rows, x_test.cols),
    )?)?;
    let predict_seconds = started.elapsed().as_secs_f64();
    let truth = row_major_view("Y test", &y_test.data, (y_test.rows, y_test.cols))?;
    let r = pearson_per_target(truth, pred.as_ref())?;
    let result = RunResult {
        workload: meta.workload,
        cv: args.cv,
        precision: args.precision,
        solver: format!("{:?}", model.options.solver).to_lowercase(),
        form: if model.dual.is_some() {
            "dual"
        } else {
            "primal"
        }
        .into(),
        threads: args.threads,
        fit_seconds,
        predict_seconds,
        mean_test_r: summarize(&r).mean,
        peak_rss_mb: peak_rss_mb(),
        peak_gpu_mb: gpu_peak_mb(&estimator.device),
        device: args.device,
    };
    outln!("{}", serde_json::to_string(&result)?)?;
    Ok(())
}

/// Device memory of the fit at its peak, in MB (GPU fits only).
fn gpu_peak_mb(device: &brainrecon_ridge::Device) -> Option<f64> {
    #[cfg(feature = "cuda")]
    if *device != brainrecon_ridge::Device::Cpu {
        return Some(brainrecon_ridge::last_fit_peak_bytes() as f64 / 1e6);
    }
    let _ = device;
    None
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
