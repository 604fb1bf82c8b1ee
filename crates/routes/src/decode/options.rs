//! Checks of the settings that the routes take as text (a device name, a precision, sampler
//! steps), with the messages the command line shows for them; bad ones are usage errors.

use crate::{Result, RouteError};
use brainrecon_diffusion::pipeline::{DType, Device};
use serde::{Deserialize, Serialize};

fn usage(message: String) -> RouteError {
    RouteError::Usage(message)
}

/// `cpu`, `cuda` or `cuda:N` → the device choice; any other name is a usage error.
pub fn parse_device(name: &str) -> Result<brainrecon_core::Device> {
    name.parse().map_err(|e| usage(format!("--device: {e}")))
}

/// Opens the device the models run on; a CUDA device this build or machine lacks is refused.
pub fn open_device(device: brainrecon_core::Device) -> Result<Device> {
    let Some(ordinal) = device.ordinal() else {
        return Ok(Device::Cpu);
    };
    Device::new_cuda(ordinal).map_err(|e| {
        usage(format!(
            "--device {device}: {e} (CUDA needs a build with `--features cuda` and an NVIDIA GPU)"
        ))
    })
}

/// `cpu`, `cuda` or `cuda:N` → the device the models run on ([`parse_device`], then
/// [`open_device`]).
pub fn device(name: &str) -> Result<Device> {
    open_device(parse_device(name)?)
}

/// `f32`, `f16` or `bf16` → the precision of the U-Net and text encoder.
pub fn dtype(name: &str) -> Result<DType> {
    match name {
        "f32" => Ok(DType::F32),
        "f16" => Ok(DType::F16),
        "bf16" => Ok(DType::BF16),
        other => Err(usage(format!(
            "--dtype: expected f32, f16 or bf16, found '{other}'"
        ))),
    }
}

/// bf16 runs on GPUs only: the CPU has no bf16 matrix products.
pub fn check_dtype_on(dtype: DType, device: &Device) -> Result<()> {
    if dtype == DType::BF16 && !device.is_cuda() {
        return Err(usage(
            "--dtype bf16 needs --device cuda: the CPU has no bf16 matrix products (use f32 or f16)"
                .into(),
        ));
    }
    Ok(())
}

/// Sampler steps in 1 … 1000 and a finite guidance scale ≥ 0.
pub fn check_sampling(steps: usize, guidance: f64) -> Result<()> {
    if steps == 0 || steps > 1000 {
        return Err(usage(format!("--steps: expected 1 to 1000, found {steps}")));
    }
    if !guidance.is_finite() || guidance < 0.0 {
        return Err(usage(format!(
            "--guidance: expected a finite value ≥ 0, found {guidance}"
        )));
    }
    Ok(())
}

/// `cpu`, `cuda` or `cuda:N` → where a ridge fit runs ([`parse_device`], then
/// [`check_ridge_device`]).
pub fn ridge_device(text: &str) -> Result<brainrecon_ridge::Device> {
    check_ridge_device(parse_device(text)?)
}

/// A ridge fit's device; a GPU in a build without CUDA is refused.
pub fn check_ridge_device(device: brainrecon_ridge::Device) -> Result<brainrecon_ridge::Device> {
    if device.is_cuda() && !brainrecon_ridge::cuda_compiled() {
        return Err(usage(format!(
            "--device {device}: this brainrecon was built without CUDA (build with --features cuda, \
             see the README's GPU section)"
        )));
    }
    Ok(device)
}

/// A comma-separated alpha grid → its values, every one finite and > 0.
pub fn parse_alphas(text: &str) -> Result<Vec<f64>> {
    let parts: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() {
        return Err(usage(
            "--alphas: the alpha grid is empty; give comma-separated values > 0, e.g. 1e1,1e2,1e3"
                .into(),
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

/// Which U-Net tensors are trained with the encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tune {
    /// Every U-Net weight (the paper).
    Unet,
    /// Only the cross-attention keys and values (`attn2.to_k`, `attn2.to_v`).
    AttnKv,
    /// The U-Net stays as it is.
    None,
}

impl Tune {
    /// Parses `--tune`: `unet`, `attn-kv` or `none`.
    ///
    /// # Errors
    /// [`RouteError::Usage`] for anything else.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "unet" => Ok(Tune::Unet),
            "attn-kv" => Ok(Tune::AttnKv),
            "none" => Ok(Tune::None),
            other => Err(RouteError::Usage(format!(
                "--tune: expected unet, attn-kv or none, found '{other}'"
            ))),
        }
    }

    /// The flag value [`Tune::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Tune::Unet => "unet",
            Tune::AttnKv => "attn-kv",
            Tune::None => "none",
        }
    }

    /// Whether the U-Net tensor `name` (diffusers naming) is trained.
    pub fn selects(self, name: &str) -> bool {
        match self {
            Tune::Unet => true,
            Tune::AttnKv => name.contains("attn2.to_k.") || name.contains("attn2.to_v."),
            Tune::None => false,
        }
    }
}

/// The value parser of a flag whose values are a library's choices (`all` in the order `--help`
/// lists them, each written `name(choice)`): clap checks the value against the names and lists
/// them ("[possible values: …]"), and the field holds the choice itself. With the `cli` feature.
#[cfg(feature = "cli")]
pub fn choice<T: Copy + Send + Sync + 'static>(
    all: &'static [T],
    name: fn(T) -> &'static str,
) -> impl clap::builder::TypedValueParser<Value = T> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(all.iter().map(|&c| name(c))).map(
        move |typed: String| {
            *all.iter()
                .find(|&&c| name(c) == typed)
                .expect("clap admits only the choices' names")
        },
    )
}
