//! `brainrecon ridge fit`: X → Y from two .npy files, alphas by cross-validation.

use crate::commands::prelude::*;
use brainrecon_ridge::Precision;
use brainrecon_routes::decode::arrays::{fit, EstimatorRequest, FitOptions};

/// Fit multi-target ridge regression X → Y from two .npy files, one alpha per target.
///
/// X is (n, p) and Y is (n, t) (a 1-D Y is one target), float32 or float64, C order. Alphas
/// are chosen per target by efficient leave-one-out (`--cv loo`, as scikit-learn
/// `RidgeCV(alpha_per_target=True)`) or K-fold (`--cv 5`, as himalaya `RidgeCV`; with
/// `--groups` all rows of a group stay in one fold). The solver (primal p×p or kernel n×n) is
/// chosen by shape. `--shard k/N` fits only the k-th of N equal target ranges, k = 0 … N-1
/// (0-based, like `SLURM_ARRAY_TASK_ID` with `#SBATCH --array=0-(N-1)`); join the shards
/// with `brainrecon ridge merge`. With more columns than rows, `--dual` keeps the model as dual
/// coefficients and the training X (as himalaya's KernelRidge) and skips the refit of the
/// weights; `ridge predict` reads either form.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon ridge fit --x X.npy --y Y.npy --alphas 1e1,1e2,1e3,1e4 --cv loo --out model\n  \
    brainrecon ridge fit --x X.npy --y Y.npy --cv 5 --groups stimulus.npy --shard $SLURM_ARRAY_TASK_ID/8 --out shards/$SLURM_ARRAY_TASK_ID\n  \
    brainrecon ridge fit --x betas.npy --y latents.npy --cv gcv --precision f32 --dual --out model"
)]
#[command(mut_arg("device", |a| a.help(
    "cpu, cuda or cuda:N: where the fit runs (GPU: --cv gcv or loo, in --precision; a build with `--features cuda`)"
)))]
#[command(mut_arg("json", |a| a.help("Print the fit summary as JSON")))]
pub struct Args {
    /// Predictors, (n, p) .npy
    #[arg(long)]
    x: PathBuf,
    /// Targets, (n, t) or (n,) .npy
    #[arg(long)]
    y: PathBuf,
    /// Alpha grid, comma-separated, all > 0 (default: 10 values log-spaced over 1 … 1e6)
    #[arg(long)]
    alphas: Option<String>,
    /// `loo` (efficient leave-one-out), `gcv` (generalized cross-validation: the mean leverage
    /// instead of each one; up to 3× faster when X has more columns than rows) or a number
    /// of folds (K-fold, contiguous, no shuffle)
    #[arg(long, default_value = "loo")]
    cv: String,
    /// Integer .npy with one group label per row of X (K-fold only): a group never straddles folds
    #[arg(long)]
    groups: Option<PathBuf>,
    /// Scale each column of X to unit variance inside the model
    #[arg(long)]
    standardize: bool,
    /// Fit an unpenalized intercept (center X and Y)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    intercept: bool,
    /// Fit only target shard k of N, written `k/N` with k = 0 … N-1
    #[arg(long)]
    shard: Option<String>,
    /// Targets processed together (bounds memory: about 3 × n × chunk × 4 bytes per chunk)
    #[arg(long, default_value_t = 2048)]
    target_chunk: usize,
    /// Precision of the Gram matrix and its eigendecomposition: f64, or f32 (about 2× faster)
    #[arg(long, default_value = "f64", value_parser = super::precision_parser())]
    precision: Precision,
    /// Threads (default: all cores)
    #[arg(long)]
    threads: Option<usize>,
    #[command(flatten)]
    device: DeviceArgs,
    /// Keep dual coefficients (n × t) and the training X instead of weights (p × t): for more
    /// columns than rows, on the CPU; saves the refit (2·p·n·t operations) and, for many
    /// targets, space
    #[arg(long)]
    dual: bool,
    /// Model directory to write (weights.safetensors + model.json)
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // every argument and file is checked before any work or output
    let estimator = EstimatorRequest {
        alphas: args.alphas,
        intercept: args.intercept,
        standardize: args.standardize,
        target_chunk: args.target_chunk,
        precision: args.precision,
        device: args.device.choice()?,
        dual: args.dual,
        threads: args.threads,
    }
    .estimator()?;
    let s = fit(FitOptions {
        x: args.x,
        y: args.y,
        groups: args.groups,
        cv: args.cv,
        shard: args.shard,
        estimator,
        out: args.out,
    })?;
    args.json.print(&s, |_| s.text())
}
