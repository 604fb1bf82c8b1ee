//! `brainrecon ridge merge`: target shards joined into one model.

use std::path::PathBuf;

/// Join target shards fitted with `ridge fit --shard k/N` into one model.
///
/// The shards may be given in any order; together they must cover every target exactly once,
/// and share X, the alpha grid and the options.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  brainrecon ridge merge --models shards/0 shards/1 shards/2 shards/3 --out model"
)]
pub struct Args {
    /// Shard model directories
    #[arg(long, num_args = 1.., required = true)]
    models: Vec<PathBuf>,
    /// Merged model directory to write
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // one shard in memory at a time: at NSD's c size the weights are gigabytes
    let (n_features, n_targets) = brainrecon_ridge::merge_saved(&args.models, &args.out)?;
    outln!(
        "merged {} shards: {n_features} features → {n_targets} targets; saved {}",
        args.models.len(),
        args.out.display()
    )
}
