//! `brainrecon bench …`: reproducible timings, written so Python can run on the same data (the
//! measuring is in `brainrecon_showcase::bench`).

use std::process::Command;

mod banded;
mod caption;
// not `clap`: the module would shadow the crate that the derives name
mod clap_embeddings;
mod group;
mod ridge;
mod train_step;

/// Time brainrecon's engines on synthetic data of the sizes real studies have
#[derive(clap::Subcommand)]
pub enum BenchCommand {
    Ridge(ridge::RidgeArgs),
    Caption(caption::Args),
    Clap(clap_embeddings::Args),
    Banded(banded::Args),
    GroupAdapt(group::Args),
    TrainStep(train_step::Args),
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
        BenchCommand::GroupAdapt(args) => group::run(args),
        BenchCommand::TrainStep(args) => train_step::run(args),
        BenchCommand::RidgeRun(args) => ridge::run_one(args),
    }
}

/// Runs brainrecon with the arguments `args` adds in a fresh process (so that its peak memory
/// is its own) and reads the JSON it prints; `what` names it when it fails.
fn in_fresh_process<T: serde::de::DeserializeOwned>(
    what: &str,
    args: impl FnOnce(&mut Command) -> &mut Command,
) -> anyhow::Result<T> {
    let output = args(&mut Command::new(std::env::current_exe()?)).output()?;
    if !output.status.success() {
        anyhow::bail!("{what} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}
