//! `brainrecon ridge …`: ridge regression on plain .npy arrays, usable without a prepared
//! subject (the work is in `brainrecon_routes::decode::arrays`).

mod fit;
mod merge;
mod predict;
mod score;

use brainrecon_ridge::Precision;

subcommands! {
    /// Ridge regression on plain arrays (.npy): fit with cross-validated alphas, predict, score, merge
    pub enum RidgeCommand {
        Fit(fit::Args) => fit::run,
        Merge(merge::Args) => merge::run,
        Predict(predict::Args) => predict::run,
        Score(score::Args) => score::run,
    }
}

/// `--device` for ridge: cpu, cuda or cuda:N; a GPU in a build without CUDA is a usage error.
pub fn ridge_device(text: &str) -> anyhow::Result<brainrecon_ridge::Device> {
    Ok(brainrecon_routes::decode::options::ridge_device(text)?)
}

/// `--precision`'s values, named by the ridge crate.
pub fn precision_parser() -> impl clap::builder::TypedValueParser<Value = Precision> {
    crate::args::choice(&Precision::ALL, Precision::name)
}

/// `--alphas` text → grid; every value finite and > 0.
pub(crate) fn parse_alphas(text: &str) -> anyhow::Result<Vec<f64>> {
    Ok(brainrecon_routes::decode::options::parse_alphas(text)?)
}
