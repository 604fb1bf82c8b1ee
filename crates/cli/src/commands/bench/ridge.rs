//! `brainrecon bench ridge`: ridge timed on fMRI-shaped workloads, each fit in a fresh process
//! (`bench ridge-run`) so that its peak memory is its own.

use crate::args::{DeviceArgs, JsonArg};
use crate::commands::ridge::ridge_device;
use crate::commands::{print_json, usage};
use brainrecon_ridge::{Cv, Precision, RidgeCv, Workload, WORKLOADS};
use brainrecon_routes::bench::ridge::{ensure_data, measure, RunResult};
use std::path::PathBuf;
use std::process::Command;

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
#[command(mut_arg("device", |a| a.help("cpu, cuda or cuda:N (a build with `--features cuda`)")))]
#[command(mut_arg("json", |a| a.help("Print the results as JSON")))]
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
    #[command(flatten)]
    device: DeviceArgs,
    /// Keep the models as dual coefficients (`ridge fit --dual`; wide workloads, CPU)
    #[arg(long)]
    dual: bool,
    #[command(flatten)]
    json: JsonArg,
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

pub fn run(args: RidgeArgs) -> anyhow::Result<()> {
    let workloads = selected(&args.workload)?;
    let precisions = precisions(&args.precision)?;
    let methods = cv_methods(&args.cv)?;
    if args.threads == 0 {
        return Err(usage("--threads must be ≥ 1"));
    }
    args.device.ridge()?;
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
                        args.device.name(),
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
    if args.json.json {
        return print_json(&results);
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

/// One measured fit, printed as one JSON line for `bench ridge`.
pub fn run_one(args: RunArgs) -> anyhow::Result<()> {
    let estimator = RidgeCv {
        cv: match args.cv.as_str() {
            "gcv" => Cv::Gcv,
            _ => Cv::Loo,
        },
        precision: match args.precision.as_str() {
            "f32" => Precision::F32,
            _ => Precision::F64,
        },
        device: ridge_device(&args.device)?,
        dual: args.dual,
        ..RidgeCv::default()
    };
    let device = estimator.device;
    let mut result = measure(
        &args.dir,
        estimator,
        args.threads,
        (&args.cv, &args.precision, &args.device),
    )?;
    result.peak_gpu_mb = gpu_peak_mb(&device);
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
