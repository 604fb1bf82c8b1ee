//! Where a computation runs, as `--device` names it: the one device choice that the ridge
//! fits, the models and the routes take. Opening the device (a CUDA context) is the engine's
//! business; this is only the choice.

use std::fmt;
use std::str::FromStr;

/// The processor a fit or a model runs on: the CPU, or an NVIDIA GPU by CUDA ordinal.
///
/// Written `cpu`, `cuda` or `cuda:N`. `cuda` and `cuda:0` are the same GPU; the value keeps
/// which one was written, so that messages and reports repeat the flag as typed
/// ([`fmt::Display`]), and [`Device::ordinal`] resolves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// The CPU, all its cores.
    #[default]
    Cpu,
    /// CUDA device `N` (`cuda:N`), or `None` for plain `cuda`: device 0.
    Cuda(Option<usize>),
}

impl Device {
    /// CUDA device `n`, written `cuda:n`.
    pub const fn cuda(n: usize) -> Self {
        Device::Cuda(Some(n))
    }

    /// The CUDA ordinal (`cuda` is 0); `None` for the CPU.
    pub fn ordinal(self) -> Option<usize> {
        match self {
            Device::Cpu => None,
            Device::Cuda(n) => Some(n.unwrap_or(0)),
        }
    }

    /// Whether this is a GPU.
    pub fn is_cuda(self) -> bool {
        matches!(self, Device::Cuda(_))
    }

    /// The same device with its ordinal written out (`cuda` → `cuda:0`), for records that
    /// name the device whatever the spelling.
    pub fn resolved(self) -> Self {
        match self.ordinal() {
            None => Device::Cpu,
            Some(n) => Device::cuda(n),
        }
    }
}

/// A device name that is none of `cpu`, `cuda` and `cuda:N`; its message is
/// "expected cpu, cuda or cuda:N, found '…'".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownDevice(pub String);

impl fmt::Display for UnknownDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected cpu, cuda or cuda:N, found '{}'", self.0)
    }
}

impl std::error::Error for UnknownDevice {}

impl FromStr for Device {
    type Err = UnknownDevice;

    /// `cpu`, `cuda` or `cuda:N`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(None)),
            _ => text
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::cuda)
                .ok_or_else(|| UnknownDevice(text.to_string())),
        }
    }
}

impl fmt::Display for Device {
    /// The name as written: `cpu`, `cuda` or `cuda:N`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(None) => write!(f, "cuda"),
            Device::Cuda(Some(n)) => write!(f, "cuda:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms_and_writes_them_back() {
        for (text, device) in [
            ("cpu", Device::Cpu),
            ("cuda", Device::Cuda(None)),
            ("cuda:3", Device::cuda(3)),
        ] {
            assert_eq!(text.parse::<Device>().unwrap(), device);
            assert_eq!(device.to_string(), text);
        }
        assert_eq!(Device::Cuda(None).ordinal(), Some(0));
        assert_eq!(Device::Cuda(None).resolved().to_string(), "cuda:0");
        assert_eq!(Device::Cpu.ordinal(), None);
    }

    #[test]
    fn refuses_other_names() {
        for bad in ["gpu", "cuda:", "cuda:x", "CUDA", "", "cuda:-1"] {
            let message = bad.parse::<Device>().unwrap_err().to_string();
            assert_eq!(
                message,
                format!("expected cpu, cuda or cuda:N, found '{bad}'")
            );
        }
    }
}
