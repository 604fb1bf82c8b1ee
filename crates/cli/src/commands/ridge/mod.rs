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

/// `--precision`'s values, named by the ridge crate.
pub fn precision_parser() -> impl clap::builder::TypedValueParser<Value = Precision> {
    crate::args::choice(&Precision::ALL, Precision::name)
}
