//! Limits on sizes read out of files, checked before anything is allocated.
//!
//! A header can claim any size; the readers refuse one above these limits with an error naming
//! the file, the field, the limit and the environment variable that raises it. The defaults are
//! far above any real dataset (NSD's largest array is 2.7 GB) and below what would abort the
//! process; a memory map is not an allocation and is bounded by the file's own length.

use crate::error::{DataError, Result};
use std::path::Path;

/// One limit: what it bounds, its default and the variable that overrides it.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// What is bounded, as the error message says it ("bytes in one array").
    pub what: &'static str,
    /// Environment variable that raises (or lowers) it.
    pub variable: &'static str,
    /// Value when the variable is unset.
    pub default: u64,
}

/// Bytes one array read from a file may take in memory (NIfTI data, `.npy` read into memory,
/// MAT/HDF5 datasets, decoded audio and video frames).
pub const ARRAY_BYTES: Limit = Limit {
    what: "bytes in one array",
    variable: "BRAINRECON_MAX_ARRAY_BYTES",
    default: 32 << 30,
};

/// Pixels in one decoded image or video frame (width × height).
pub const IMAGE_PIXELS: Limit = Limit {
    what: "pixels in one image",
    variable: "BRAINRECON_MAX_IMAGE_PIXELS",
    default: 1 << 28,
};

/// Samples per second of an audio file or a recorded signal.
pub const SAMPLE_RATE: Limit = Limit {
    what: "samples per second",
    variable: "BRAINRECON_MAX_SAMPLE_RATE",
    default: 1_536_000,
};

/// Volumes (time points) in one run, and trials or clips listed by one design file.
pub const VOLUMES: Limit = Limit {
    what: "volumes, trials or clips in one file",
    variable: "BRAINRECON_MAX_VOLUMES",
    default: 1_000_000,
};

/// Bytes in one line of a text file read line by line (annotations, corpora): work per line
/// (word segmentation, a language model's context) grows with it, and a real line is short.
pub const LINE_BYTES: Limit = Limit {
    what: "bytes in one line of text",
    variable: "BRAINRECON_MAX_LINE_BYTES",
    default: 1 << 20,
};

/// Every limit, in the order `brainrecon info --limits` lists them.
pub const ALL: [Limit; 5] = [ARRAY_BYTES, IMAGE_PIXELS, SAMPLE_RATE, VOLUMES, LINE_BYTES];

/// One limit in force, as `brainrecon info --limits --json` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LimitRow {
    /// What is bounded ([`Limit::what`]).
    pub limit: &'static str,
    /// The value in force.
    pub value: u64,
    /// The value when the variable is unset.
    pub default: u64,
    /// The environment variable that raises it.
    pub variable: &'static str,
}

/// Every limit of [`ALL`] with the value in force now.
pub fn in_force() -> Vec<LimitRow> {
    ALL.iter()
        .map(|l| LimitRow {
            limit: l.what,
            value: l.value(),
            default: l.default,
            variable: l.variable,
        })
        .collect()
}

/// `rows` as a table for people: limit, value, and the variable that raises it.
pub fn table(rows: &[LimitRow]) -> String {
    let mut text = format!("{:<38} {:>14}  raise with\n", "limit", "value");
    for row in rows {
        text.push_str(&format!(
            "{:<38} {:>14}  {}\n",
            row.limit, row.value, row.variable
        ));
    }
    text
}

impl Limit {
    /// The value in force: the variable when it holds a whole number, else the default.
    pub fn value(&self) -> u64 {
        std::env::var(self.variable)
            .ok()
            .and_then(|v| v.trim().replace('_', "").parse().ok())
            .unwrap_or(self.default)
    }

    /// Refuses `found` (read from `field` of `path`) above the limit.
    pub fn check(&self, path: &Path, field: &str, found: u64) -> Result<u64> {
        let limit = self.value();
        if found <= limit {
            return Ok(found);
        }
        Err(DataError::invalid(
            path,
            field,
            format!(
                "at most {limit} {} (brainrecon's limit; set {}={found} or more to raise it)",
                self.what, self.variable
            ),
            found.to_string(),
        ))
    }
}

/// `dims`' product times `element` bytes, refused when it overflows or passes [`ARRAY_BYTES`].
pub fn array_bytes(path: &Path, field: &str, dims: &[u64], element: u64) -> Result<u64> {
    let bytes = dims
        .iter()
        .try_fold(element, |n, &d| n.checked_mul(d))
        .ok_or_else(|| {
            DataError::invalid(
                path,
                field,
                "an addressable size",
                format!("{dims:?} × {element} bytes"),
            )
        })?;
    ARRAY_BYTES.check(path, field, bytes)
}

/// A sample rate in Hz read from `field` of `path`, refused unless finite, above 0 and at
/// most [`SAMPLE_RATE`]. Every reader that takes a rate from a file calls this before the rate
/// sizes anything: epochs, resampling and windows are sample counts of `seconds × rate`, so a
/// rate of 1e306 (a `SamplingInterval` of 1e-300 µs) would overflow them and one of 1e10 would
/// ask for tens of gigabytes.
pub fn sample_rate(path: &Path, field: &str, rate: f64) -> Result<f64> {
    if !(rate.is_finite() && rate > 0.0) {
        return Err(DataError::invalid(
            path,
            field,
            "a finite sample rate above 0 Hz",
            rate.to_string(),
        ));
    }
    let limit = SAMPLE_RATE.value();
    if rate > limit as f64 {
        // A rate like 1e306 is shown as such, and no variable could raise the limit to it.
        let (found, raise) = match rate < 1e15 {
            true => (
                rate.to_string(),
                format!(
                    "; set {}={} or more to raise it",
                    SAMPLE_RATE.variable,
                    rate.ceil()
                ),
            ),
            false => (
                format!("{rate:e}"),
                format!(", set by {}", SAMPLE_RATE.variable),
            ),
        };
        return Err(DataError::invalid(
            path,
            field,
            format!(
                "at most {limit} {} (brainrecon's limit{raise})",
                SAMPLE_RATE.what
            ),
            found,
        ));
    }
    Ok(rate)
}

/// `width × height` refused when it passes [`IMAGE_PIXELS`].
pub fn image_pixels(path: &Path, field: &str, width: u64, height: u64) -> Result<u64> {
    let pixels = width.saturating_mul(height);
    IMAGE_PIXELS.check(path, field, pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_size_above_the_limit_names_the_variable_and_the_file() {
        let path = Path::new("betas.nii.gz");
        let err = array_bytes(path, "dim", &[1 << 20, 1 << 20, 1 << 10], 4).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("betas.nii.gz"), "{text}");
        assert!(text.contains("BRAINRECON_MAX_ARRAY_BYTES"), "{text}");
        assert!(text.contains("dim"), "{text}");
        assert!(array_bytes(path, "dim", &[u64::MAX, 2], 4)
            .unwrap_err()
            .to_string()
            .contains("addressable"));
        assert_eq!(
            array_bytes(path, "dim", &[81, 104, 83], 2).unwrap(),
            1_398_384
        );
        assert!(image_pixels(path, "IHDR", 1 << 20, 1 << 20).is_err());
        assert!(image_pixels(path, "IHDR", 4096, 4096).is_ok());
    }

    #[test]
    fn sample_rates_must_be_finite_positive_and_at_most_the_limit() {
        let path = Path::new("run.vhdr");
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e306, 1e10] {
            let text = sample_rate(path, "SamplingInterval", bad)
                .unwrap_err()
                .to_string();
            assert!(
                text.contains("run.vhdr") && text.contains("SamplingInterval"),
                "{bad}: {text}"
            );
        }
        let text = sample_rate(path, "rate", 1e10).unwrap_err().to_string();
        assert!(
            text.contains("BRAINRECON_MAX_SAMPLE_RATE=10000000000"),
            "{text}"
        );
        let text = sample_rate(path, "rate", 1e306).unwrap_err().to_string();
        assert!(text.ends_with("found 1e306"), "{text}");
        assert!(text.contains("BRAINRECON_MAX_SAMPLE_RATE"), "{text}");
        assert_eq!(sample_rate(path, "rate", 250.0).unwrap(), 250.0);
        assert!(sample_rate(path, "rate", SAMPLE_RATE.default as f64).is_ok());
        assert!(sample_rate(path, "rate", SAMPLE_RATE.default as f64 + 0.5).is_err());
    }
}
