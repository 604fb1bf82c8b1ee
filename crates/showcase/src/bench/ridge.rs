//! Ridge regression (LOO and GCV, 10 alphas, one per target) timed on synthetic fMRI-shaped
//! workloads. Each workload's arrays and `meta.json` go under one folder; a measured fit reads
//! them back, as the Python anchors do, so that peak memory includes the arrays read.

use super::{command_line, number, FreshProcess};
use brainrecon_core::fs::{read_json, write_json_atomic};
use brainrecon_formats::npy;
use brainrecon_ridge::metrics::{pearson_per_target, summarize};
use brainrecon_ridge::{bench_alphas, generate, row_major_view, RidgeCv, Workload};
use brainrecon_routes::decode::arrays::read_matrix;
use brainrecon_routes::decode::options::check_ridge_device;
use brainrecon_routes::error::{Result, RouteError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `meta.json` of a workload folder; the Python anchors read it too.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
pub struct Meta {
    /// A, B, C or A16k.
    pub workload: String,
    /// Training rows.
    pub n_train: usize,
    /// Test rows.
    pub n_test: usize,
    /// Predictors.
    pub p: usize,
    /// Targets.
    pub t: usize,
    /// The generator's seed.
    pub seed: u64,
    /// The alpha grid.
    pub alphas: Vec<f64>,
    /// Bumped when the generated data change.
    pub generator_version: u32,
}

/// One measured fit (`bench ridge-run` prints it as JSON).
#[derive(Serialize, Deserialize, Debug)]
pub struct RunResult {
    /// The workload's name.
    pub workload: String,
    /// `loo` or `gcv`.
    pub cv: String,
    /// `f32` or `f64`.
    pub precision: String,
    /// The solver chosen by shape.
    pub solver: String,
    /// `primal` (weights) or `dual` (dual coefficients and the training X).
    #[serde(default)]
    pub form: String,
    /// Threads of the linear algebra.
    pub threads: usize,
    /// Seconds of the fit.
    pub fit_seconds: f64,
    /// Seconds of the test prediction.
    pub predict_seconds: f64,
    /// Mean test Pearson r over targets.
    pub mean_test_r: f64,
    /// Peak resident memory of the process, MB.
    pub peak_rss_mb: f64,
    /// `--device` as typed.
    pub device: String,
    /// Device memory the fit allocated at its peak (GPU runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_gpu_mb: Option<f64>,
}

const SEED: u64 = 20240611;
const GENERATOR_VERSION: u32 = 1;

/// Writes the workload's arrays and meta.json under `dir` unless identical ones are there.
pub fn ensure_data(w: &Workload, dir: &Path) -> Result<()> {
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
    if let Ok(existing) = read_json::<Meta>(&meta_path) {
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
    write_json_atomic(&meta_path, &meta)?;
    Ok(())
}

/// Fits `estimator` (its alphas replaced by the workload's) on the workload in `dir` and
/// times the fit and the test prediction. `cv`, `precision` and `device` are the names the
/// result records; `peak_gpu_mb` is left to [`measure_named`] (a CUDA build knows it).
pub fn measure(
    dir: &Path,
    estimator: RidgeCv,
    threads: usize,
    (cv, precision, device): (&str, &str, &str),
) -> Result<RunResult> {
    brainrecon_ridge::set_threads(threads);
    let meta: Meta = read_json(&dir.join("meta.json"))?;
    let x = read_matrix(&dir.join("x_train.npy"), "X train")?;
    let y = read_matrix(&dir.join("y_train.npy"), "Y train")?;
    let x_test = read_matrix(&dir.join("x_test.npy"), "X test")?;
    let y_test = read_matrix(&dir.join("y_test.npy"), "Y test")?;
    let estimator = RidgeCv {
        alphas: meta.alphas.clone(),
        ..estimator
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
    Ok(RunResult {
        workload: meta.workload,
        cv: cv.into(),
        precision: precision.into(),
        solver: format!("{:?}", model.options.solver).to_lowercase(),
        form: if model.dual.is_some() {
            "dual"
        } else {
            "primal"
        }
        .into(),
        threads,
        fit_seconds,
        predict_seconds,
        mean_test_r: summarize(&r).mean,
        peak_rss_mb: super::peak_rss_mb(),
        peak_gpu_mb: None,
        device: device.into(),
    })
}

/// The fits `bench ridge` runs: every (workload, cv, precision) named by `workload` (A, B, C,
/// A16k or all = A, B and C), `precision` (f32, f64 or both) and `cv` (loo, gcv or both), in
/// the order they run.
pub fn plan(
    workload: &str,
    precision: &str,
    cv: &str,
) -> Result<Vec<(Workload, &'static str, &'static str)>> {
    let usage = |m: String| brainrecon_routes::RouteError::Usage(m);
    let workloads: Vec<Workload> = match workload {
        // A16k (1.3 GB of arrays, minutes on a laptop) runs only when named
        "all" => brainrecon_ridge::WORKLOADS
            .iter()
            .filter(|w| w.name != "A16k")
            .copied()
            .collect(),
        name => vec![*brainrecon_ridge::WORKLOADS
            .iter()
            .find(|w| w.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                usage(format!(
                    "--workload: expected A, B, C, A16k or all, found '{name}'"
                ))
            })?],
    };
    let precisions: &[&'static str] = match precision {
        "both" => &["f32", "f64"],
        "f32" => &["f32"],
        "f64" => &["f64"],
        other => {
            return Err(usage(format!(
                "--precision: expected f32, f64 or both, found '{other}'"
            )))
        }
    };
    let methods: &[&'static str] = match cv {
        "both" => &["loo", "gcv"],
        "loo" => &["loo"],
        "gcv" => &["gcv"],
        other => {
            return Err(usage(format!(
                "--cv: expected loo, gcv or both, found '{other}'"
            )))
        }
    };
    let mut fits = Vec::new();
    for w in workloads {
        for &cv in methods {
            for &precision in precisions {
                fits.push((w, cv, precision));
            }
        }
    }
    Ok(fits)
}

/// What `bench ridge` times.
#[derive(Debug, Clone)]
pub struct RidgeBench {
    /// A, B, C, A16k or all (A, B and C).
    pub workload: String,
    /// Threads of the linear algebra.
    pub threads: usize,
    /// Where each workload's .npy files go (`<data_dir>/<workload>/`; reused when already there).
    pub data_dir: PathBuf,
    /// Decomposition precision: f32, f64 or both (one fit each).
    pub precision: String,
    /// Alpha selection: loo, gcv or both (one fit each).
    pub cv: String,
    /// Where the fits run.
    pub device: brainrecon_ridge::Device,
    /// Keep the models as dual coefficients.
    pub dual: bool,
}

/// Times every fit of [`plan`], each in a fresh process (`bench ridge-run`), after writing
/// each workload's data. Usage errors: an unknown workload, precision or cv, no threads, a
/// GPU in a build without CUDA.
pub fn run<P: FreshProcess>(
    bench: &RidgeBench,
    process: &mut P,
) -> Result<Vec<RunResult>, P::Error> {
    let fits = plan(&bench.workload, &bench.precision, &bench.cv)?;
    if bench.threads == 0 {
        return Err(RouteError::Usage("--threads must be ≥ 1".into()).into());
    }
    check_ridge_device(bench.device)?;
    let mut results = Vec::new();
    for (k, (w, cv, precision)) in fits.iter().enumerate() {
        let dir = bench.data_dir.join(w.name);
        if k == 0 || fits[k - 1].0.name != w.name {
            ensure_data(w, &dir)?;
        }
        let what = format!("workload {} ({cv}, {precision})", w.name);
        process.log(&format!("bench ridge: {what}…"));
        let mut args = command_line(
            &["bench", "ridge-run"],
            &[
                ("--threads", number(bench.threads)),
                ("--precision", (*precision).into()),
                ("--cv", (*cv).into()),
                ("--device", bench.device.to_string().into()),
            ],
        );
        if bench.dual {
            args.push("--dual".into());
        }
        args.extend(["--dir".into(), dir.into_os_string()]);
        results.push(process.measure(&what, &args)?);
    }
    Ok(results)
}

/// The table `bench ridge` prints: a header, then one line per fit.
pub fn table(results: &[RunResult]) -> String {
    let mut text = String::from(
        "workload  device  cv   precision  solver  form    fit s     predict s  test mean r  peak MB  GPU MB\n",
    );
    for r in results {
        text += &format!(
            "{:<9} {:<7} {:<4} {:<10} {:<7} {:<7} {:<9.2} {:<10.3} {:<12.4} {:<8.0} {}\n",
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
        );
    }
    text
}

/// [`measure`] with the estimator named as `bench ridge-run` names it: `cv` loo or gcv,
/// `precision` f32 or f64, on `device`, `dual` for dual coefficients; a GPU fit's peak device
/// memory is recorded.
pub fn measure_named(
    dir: &Path,
    threads: usize,
    cv: &str,
    precision: &str,
    device: brainrecon_ridge::Device,
    dual: bool,
) -> Result<RunResult> {
    let estimator = RidgeCv {
        cv: match cv {
            "gcv" => brainrecon_ridge::Cv::Gcv,
            _ => brainrecon_ridge::Cv::Loo,
        },
        precision: match precision {
            "f32" => brainrecon_ridge::Precision::F32,
            _ => brainrecon_ridge::Precision::F64,
        },
        device: check_ridge_device(device)?,
        dual,
        ..RidgeCv::default()
    };
    let name = device.to_string();
    let result = measure(dir, estimator, threads, (cv, precision, &name))?;
    Ok(RunResult {
        peak_gpu_mb: gpu_peak_mb(device),
        ..result
    })
}

/// Device memory of the last fit at its peak, in MB (GPU fits of a CUDA build only).
fn gpu_peak_mb(device: brainrecon_ridge::Device) -> Option<f64> {
    #[cfg(feature = "cuda")]
    if device.is_cuda() {
        return Some(brainrecon_ridge::last_fit_peak_bytes() as f64 / 1e6);
    }
    let _ = device;
    None
}
