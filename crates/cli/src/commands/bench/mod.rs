//! `brainrecon bench …`: reproducible timings, written so Python can run on the same data (the
//! measuring is in `brainrecon_routes::bench`).

mod banded;
mod caption;
// not `clap`: the module would shadow the crate that the derives name
mod clap_embeddings;
mod ridge;

/// Time brainrecon's engines on synthetic data of the sizes real studies have
#[derive(clap::Subcommand)]
pub enum BenchCommand {
    Ridge(ridge::RidgeArgs),
    Caption(caption::Args),
    Clap(clap_embeddings::Args),
    Banded(banded::Args),
    /// One measured fit in a fresh process (used by `bench ridge`).
    #[command(hide = true)]
    RidgeRun(ridge::RunArgs),
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Ridge(args) => ridge::run(args),
        BenchCommand::Caption(args) => caption::run(args),
        BenchCommand::Clap(args) => clap_embeddings::run(args),
        BenchCommand::Banded(args) => banded::run(args),
        BenchCommand::RidgeRun(args) => ridge::run_one(args),
    }
}
