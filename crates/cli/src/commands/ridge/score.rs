//! `brainrecon ridge score`: Pearson r and R² per target.

use crate::commands::prelude::*;

/// Score predictions against the truth, per target: Pearson r and R² (scikit-learn `r2_score`).
///
/// Prints their mean and median over targets (constant columns, whose r is undefined, are
/// skipped). `--out-prefix P` also writes the per-target values to `P_r.npy` and `P_r2.npy`.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon ridge score --pred P.npy --y Y_test.npy --out-prefix scores/test --json"
)]
pub struct Args {
    /// Predictions, (n, t) .npy
    #[arg(long)]
    pred: PathBuf,
    /// Truth, (n, t) .npy
    #[arg(long)]
    y: PathBuf,
    /// Write per-target arrays PREFIX_r.npy and PREFIX_r2.npy (float64, (t,))
    #[arg(long)]
    out_prefix: Option<PathBuf>,
    #[command(flatten)]
    json: JsonArg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let s =
        brainrecon_routes::decode::arrays::score(&args.pred, &args.y, args.out_prefix.as_deref())?;
    args.json.print(&s, |_| s.text())
}
