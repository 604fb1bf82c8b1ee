//! Flag groups that many commands share, flattened into each command's `Args` with
//! `#[command(flatten)]`, so that a flag is spelled, defaulted and parsed in one place.
//!
//! A command whose flag says more than the group's help keeps its own wording with
//! `#[command(mut_arg("device", |a| a.help("cpu, cuda or cuda:N: where the fit runs")))]` on
//! its `Args` struct (the same for `"dtype"` and `"json"`).

use brainrecon_diffusion::pipeline::{DType, Device};
use brainrecon_routes::decode::options::{
    check_dtype_on, check_ridge_device, dtype, open_device, parse_device,
};

/// `--device`: where the models run.
#[derive(clap::Args, Debug, Clone)]
pub struct DeviceArgs {
    /// cpu, cuda or cuda:N
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl DeviceArgs {
    /// The device `--device` names; a usage error (exit 2) for a name that is none of `cpu`,
    /// `cuda` and `cuda:N`.
    pub fn choice(&self) -> anyhow::Result<brainrecon_core::Device> {
        Ok(parse_device(&self.device)?)
    }

    /// The device named by `--device`, opened; a usage error (exit 2) for an unknown name or a
    /// CUDA device this build or machine lacks.
    pub fn device(&self) -> anyhow::Result<Device> {
        Ok(open_device(self.choice()?)?)
    }

    /// The device of a ridge fit named by `--device` (a GPU needs a build with CUDA).
    pub fn ridge(&self) -> anyhow::Result<brainrecon_ridge::Device> {
        Ok(check_ridge_device(self.choice()?)?)
    }
}

/// `--preset`: the size a training command trains.
#[derive(clap::Args, Debug, Clone)]
pub struct PresetArgs {
    /// shipped (the checkpoint's size and steps) or tiny (a small model that runs the whole
    /// training, its checkpoints and its outputs in seconds, to try a set-up; its weights are of
    /// no use)
    #[arg(long, default_value = "shipped", value_parser = choice(&brainrecon_zoo::Preset::ALL, brainrecon_zoo::Preset::name))]
    pub preset: brainrecon_zoo::Preset,
}

pub use brainrecon_routes::decode::options::choice;

/// `--dtype`: the precision the weights run in.
#[derive(clap::Args, Debug, Clone)]
pub struct DtypeArgs {
    /// Weights' precision: f32, f16, or bf16 (GPU only)
    #[arg(long, default_value = "f32")]
    pub dtype: String,
}

impl DtypeArgs {
    /// The precision named by `--dtype`; a usage error for an unknown name.
    pub fn dtype(&self) -> anyhow::Result<DType> {
        Ok(dtype(&self.dtype)?)
    }

    /// The precision named by `--dtype`, refused when it cannot run on `device` (bf16 on
    /// the CPU).
    pub fn dtype_on(&self, device: &Device) -> anyhow::Result<DType> {
        let dtype = self.dtype()?;
        check_dtype_on(dtype, device)?;
        Ok(dtype)
    }
}

/// `--cortex`: where a report draws its maps on the cortex.
#[derive(clap::Args, Debug, Clone)]
pub struct CortexArg {
    /// Cortex of the report's maps: auto (a simulation's maps on fsaverage5), none,
    /// fsaverage5 (a volume in MNI space), stretch, a FreeSurfer subject folder (volumes in its
    /// scanner space), or fsaverage5:FOLDER (sampled on the subject, drawn on fsaverage5)
    #[arg(long, default_value = "auto", value_name = "CORTEX")]
    pub cortex: String,
}

impl CortexArg {
    pub fn choice(&self) -> anyhow::Result<brainrecon_routes::CortexChoice> {
        crate::commands::parse_flag("--cortex", &self.cortex)
    }
}

/// `--json`: print the command's result as JSON instead of lines for people.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct JsonArg {
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
}

impl JsonArg {
    /// Prints `report`: as pretty JSON with `--json`, else as the lines `text` makes of it.
    pub fn print<R: serde::Serialize>(
        self,
        report: &R,
        text: impl FnOnce(&R) -> String,
    ) -> anyhow::Result<()> {
        if self.json {
            crate::commands::print_json(report)
        } else {
            outln!("{}", text(report))
        }
    }
}
