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

subcommands! {
    /// Time brainrecon's engines on synthetic data of the sizes real studies have
    pub enum BenchCommand {
        Ridge(ridge::RidgeArgs) => ridge::run,
        Caption(caption::Args) => caption::run,
        Clap(clap_embeddings::Args) => clap_embeddings::run,
        Banded(banded::Args) => banded::run,
        GroupAdapt(group::Args) => group::run,
        TrainStep(train_step::Args) => train_step::run,
        /// One measured fit in a fresh process (used by `bench ridge`).
        #[command(hide = true)]
        RidgeRun(ridge::RunArgs) => ridge::run_one,
    }
}

/// Runs a benchmark's measurement as brainrecon in a fresh process (so that its peak memory is
/// its own) and reads the JSON it prints.
struct FreshProcess;

impl brainrecon_showcase::bench::FreshProcess for FreshProcess {
    type Error = anyhow::Error;

    fn measure<T: serde::de::DeserializeOwned>(
        &mut self,
        what: &str,
        args: &[std::ffi::OsString],
    ) -> anyhow::Result<T> {
        let output = Command::new(std::env::current_exe()?).args(args).output()?;
        if !output.status.success() {
            anyhow::bail!("{what} failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(serde_json::from_slice(&output.stdout)?)
    }

    fn log(&mut self, line: &str) {
        eprintln!("{line}");
    }
}
