//! `brainrecon bench banded`: banded ridge timed on the workload, with the arrays
//! written as .npy so that `tools/bench/banded_anchor.py` fits himalaya on the same data.

use crate::commands::prelude::*;
use brainrecon_showcase::bench::banded::{self, measure, BandedBench};

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

pub fn run(args: Args) -> anyhow::Result<()> {
    let bench = BandedBench {
        voxels: args.voxels,
        n_iter: args.n_iter,
        threads: args.threads,
        data_dir: args.data_dir,
    };
    if args.fit_only {
        bench.check()?;
        let result = measure(&bench.data_dir, bench.threads)?;
        return outln!("{}", serde_json::to_string(&result)?);
    }
    let result = banded::run(&bench, &mut super::FreshProcess)?;
    report(args.json.json, &result, |r| r.text())
}
