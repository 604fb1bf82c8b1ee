//! `brainrecon bench banded`: banded ridge timed on the issue's workload, with the arrays
//! written as .npy so that `tools/bench/banded_anchor.py` fits himalaya on the same data.

use crate::args::JsonArg;
use crate::commands::{print_json, usage};
use brainrecon_ridge::bench_banded::BandedWorkload;
use brainrecon_showcase::bench::banded::{ensure_data, measure, BandedResult};
use std::path::PathBuf;

/// Time banded ridge (random search over band weights, leave-one-run-out CV, R² selection).
///
/// Workload: 3 bands of 300 features, 3,000 training TRs in 5 runs of 600, 600 test TRs,
/// 20,000 voxels (`--voxels` for smaller runs); `--n-iter` candidates (uniform, then
/// Dirichlet draws, seeded) and 8 alphas 10^0 … 10^7. The arrays (float32) go to
/// `--data-dir` as .npy with `meta.json` (candidates, alphas), so the himalaya anchor fits the
/// same problem. The fit runs in a fresh process; its peak memory is that process's VmHWM.
#[derive(clap::Args)]
#[command(mut_arg("json", |a| a.help("Print the result as JSON")))]
#[command(
    after_help = "Example:\n  brainrecon bench banded --voxels 2000 --n-iter 3 --data-dir target/bench-banded\n  \
    bash tools/bench/banded.sh      # with the himalaya anchor, one after the other"
)]
pub struct Args {
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
    #[command(flatten)]
    json: JsonArg,
    /// Fit the data already in --data-dir in this process (used by `bench banded` itself)
    #[arg(long, hide = true)]
    fit_only: bool,
}

/// `meta.json` of the data folder; the himalaya anchor reads it too.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.threads == 0 || args.voxels == 0 || args.n_iter == 0 {
        return Err(usage("--threads, --voxels and --n-iter must be ≥ 1"));
    }
    if args.fit_only {
        let result = measure(&args.data_dir, args.threads)?;
        return outln!("{}", serde_json::to_string(&result)?);
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
    let result: BandedResult = super::in_fresh_process("the banded fit", |c| {
        c.args(["bench", "banded", "--fit-only", "--threads"])
            .arg(args.threads.to_string())
            .args(["--voxels", &args.voxels.to_string()])
            .args(["--n-iter", &args.n_iter.to_string()])
            .arg("--data-dir")
            .arg(&args.data_dir)
    })?;
    if args.json.json {
        return print_json(&result);
    }
    out!("{}", result.text())
}
