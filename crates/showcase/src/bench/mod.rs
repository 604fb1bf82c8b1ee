//! Reproducible timings of brainrecon's engines, on data written as .npy so that the Python
//! anchors (scikit-learn, himalaya, transformers) run on the same inputs: the measuring half of
//! `brainrecon bench`.
//!
//! - [`ridge`]: ridge (LOO and GCV) on fMRI-shaped workloads;
//! - [`banded`]: banded ridge on the workload;
//! - [`caption`]: BLIP's beam search per image;
//! - [`clap`]: CLAP audio embeddings per 10-s window;
//! - [`group`]: a new subject adapted into a group's shared space, and the group's fit;
//! - [`train_step`]: one training step of the U-Net or the video window encoder.

pub mod banded;
pub mod caption;
pub mod clap;
pub mod group;
pub mod ridge;
pub mod train_step;

use brainrecon_routes::RouteError;
use serde::de::DeserializeOwned;
use std::ffi::OsString;

/// How a benchmark runs a measurement in a fresh process, so that the process's peak memory is
/// the measurement's own.
pub trait FreshProcess {
    /// The caller's error; the benchmark's own become it.
    type Error: From<RouteError>;

    /// Runs brainrecon with `args` (a hidden measuring command, e.g. `bench ridge-run …`) and
    /// reads the JSON it prints; `what` names the measurement when it fails.
    fn measure<T: DeserializeOwned>(
        &mut self,
        what: &str,
        args: &[OsString],
    ) -> Result<T, Self::Error>;

    /// A line of progress, for people (standard error).
    fn log(&mut self, line: &str);
}

/// A measuring command's words: `words`, then each flag with its value.
fn command_line(words: &[&str], flags: &[(&str, OsString)]) -> Vec<OsString> {
    let flags = flags
        .iter()
        .flat_map(|(flag, value)| [OsString::from(flag), value.clone()]);
    words.iter().map(OsString::from).chain(flags).collect()
}

/// A number as a flag's value.
fn number(n: usize) -> OsString {
    n.to_string().into()
}

/// Peak resident set size of this process (VmHWM), in MB (10^6 bytes); NaN where
/// /proc/self/status cannot be read.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb * 1024.0 / 1e6)
}
