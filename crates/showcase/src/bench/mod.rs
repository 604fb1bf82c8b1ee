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
