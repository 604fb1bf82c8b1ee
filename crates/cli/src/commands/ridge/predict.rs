//! `brainrecon ridge predict`: Y from X with a saved model.

use std::path::PathBuf;

/// Predict Y (n, t) from X (n, p) with a model from `ridge fit` or `ridge merge`.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon ridge predict --model model --x X_test.npy --out P.npy"
)]
pub struct Args {
    /// Model directory
    #[arg(long)]
    model: PathBuf,
    /// Predictors, (n, p) .npy with the model's p columns
    #[arg(long)]
    x: PathBuf,
    /// Predictions to write, float32 (n, t) .npy
    #[arg(long)]
    out: PathBuf,
    /// Threads (default: all cores)
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(threads) = args.threads {
        brainrecon_ridge::set_threads(threads);
    }
    let (rows, targets) =
        brainrecon_routes::decode::arrays::predict(&args.model, &args.x, &args.out)?;
    outln!(
        "predicted {rows} rows × {targets} targets; saved {}",
        args.out.display()
    )
}
