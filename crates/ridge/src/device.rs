//! Where a fit runs: the CPU (faer) or an NVIDIA GPU (cuBLAS, cuSOLVER; `cuda` feature).

use std::fmt;
use std::str::FromStr;

use crate::error::RidgeError;

/// The processor that fits a [`crate::RidgeCv`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// All cores of the machine (see [`crate::set_threads`]).
    #[default]
    Cpu,
    /// CUDA device `N` (0 for `cuda`). Needs a build with the `cuda` feature.
    Cuda(usize),
}

impl Device {
    /// Whether this build can fit on CUDA devices at all (the `cuda` feature).
    pub const fn cuda_compiled() -> bool {
        cfg!(feature = "cuda")
    }
}

impl FromStr for Device {
    type Err = RidgeError;

    /// `cpu`, `cuda` or `cuda:N`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            RidgeError::Options(format!(
                "device: expected cpu, cuda or cuda:N, found '{text}'"
            ))
        };
        match text {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => {
                let ordinal = text.strip_prefix("cuda:").ok_or_else(bad)?;
                ordinal.parse().map(Device::Cuda).map_err(|_| bad())
            }
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms_and_rejects_others() {
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!("cuda:3".parse::<Device>().unwrap(), Device::Cuda(3));
        for bad in ["gpu", "cuda:", "cuda:x", "CUDA", ""] {
            let message = bad.parse::<Device>().unwrap_err().to_string();
            assert!(
                message.contains("expected cpu, cuda or cuda:N"),
                "{message}"
            );
        }
        assert_eq!(Device::Cuda(1).to_string(), "cuda:1");
    }
}
