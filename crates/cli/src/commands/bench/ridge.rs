//! `brainrecon bench ridge`: ridge timed on fMRI-shaped workloads, each fit in a fresh process
//! (`bench ridge-run`) so that its peak memory is its own.

use crate::commands::prelude::*;
use brainrecon_routes::decode::options::ridge_device;
use brainrecon_showcase::bench::ridge::{self, measure_named, table, RidgeBench};

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

pub fn run(args: RidgeArgs) -> anyhow::Result<()> {
    let bench = RidgeBench {
        workload: args.workload,
        threads: args.threads,
        data_dir: args.data_dir,
        precision: args.precision,
        cv: args.cv,
        device: args.device.choice()?,
        dual: args.dual,
    };
    let results = ridge::run(&bench, &mut super::FreshProcess)?;
    report(args.json.json, &results, |r| table(r))
}

/// One measured fit, printed as one JSON line for `bench ridge`.
pub fn run_one(args: RunArgs) -> anyhow::Result<()> {
    let device = ridge_device(&args.device)?;
    let (cv, precision) = (&args.cv, &args.precision);
    let result = measure_named(&args.dir, args.threads, cv, precision, device, args.dual)?;
    outln!("{}", serde_json::to_string(&result)?)
}
