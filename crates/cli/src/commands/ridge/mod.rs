//! `brainrecon ridge …`: ridge regression on plain .npy arrays, usable without a prepared
//! subject (the work is in `brainrecon_routes::arrays`).

mod fit;
mod merge;
mod predict;
mod score;

use crate::commands::usage;
use brainrecon_ridge::Precision;

/// Ridge regression on plain arrays (.npy): fit with cross-validated alphas, predict, score, merge
#[derive(clap::Subcommand)]
pub enum RidgeCommand {
    Fit(fit::Args),
    Merge(merge::Args),
    Predict(predict::Args),
    Score(score::Args),
}

pub fn run(command: RidgeCommand) -> anyhow::Result<()> {
    match command {
        RidgeCommand::Fit(args) => fit::run(args),
        RidgeCommand::Merge(args) => merge::run(args),
        RidgeCommand::Predict(args) => predict::run(args),
        RidgeCommand::Score(args) => score::run(args),
    }
}

/// `--device` for ridge: cpu, cuda or cuda:N; a GPU in a build without CUDA is a usage error.
pub fn ridge_device(text: &str) -> anyhow::Result<brainrecon_ridge::Device> {
    let device: brainrecon_ridge::Device = text.parse().map_err(|_| {
        usage(format!(
            "--device: expected cpu, cuda or cuda:N, found '{text}'"
        ))
    })?;
    if device != brainrecon_ridge::Device::Cpu && !brainrecon_ridge::Device::cuda_compiled() {
        return Err(usage(format!(
            "--device {text}: this brainrecon was built without CUDA (build with --features cuda, \
             see the README's GPU section)"
        )));
    }
    Ok(device)
}

/// `--precision` values.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PrecisionArg {
    F64,
    F32,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::F64 => Precision::F64,
            PrecisionArg::F32 => Precision::F32,
        }
    }
}

/// `--alphas` text → grid; every value finite and > 0.
pub(crate) fn parse_alphas(text: &str) -> anyhow::Result<Vec<f64>> {
    let parts: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() {
        return Err(usage(
            "--alphas: the alpha grid is empty; give comma-separated values > 0, e.g. 1e1,1e2,1e3",
        ));
    }
    parts
        .iter()
        .map(|p| match p.parse::<f64>() {
            Ok(a) if a.is_finite() && a > 0.0 => Ok(a),
            _ => Err(usage(format!(
                "--alphas: expected finite values > 0, found '{p}'"
            ))),
        })
        .collect()
}
