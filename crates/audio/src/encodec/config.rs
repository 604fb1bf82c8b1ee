//! transformers' `EncodecConfig`, read from a checkpoint's `config.json`.

use std::path::Path;

use brainrecon_language::checkpoint::{read_config, size_cap, ConfigFields};
use brainrecon_nn::Result;
use serde_json::Value;

const WHAT: &str = "EnCodec config";

/// How the convolutions are normalised (`norm_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormType {
    /// Weight normalisation: the kernel is stored as a magnitude `g` and a direction `v`.
    WeightNorm,
    /// A plain kernel followed by `GroupNorm(1, channels)` (encodec_48khz).
    TimeGroupNorm,
}

/// How `EncodecConv1d` pads the time axis (`pad_mode`, torch's `F.pad` modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadMode {
    /// Mirror the signal without repeating the edge sample (`reflect`, the default).
    Reflect,
    /// Zeros (`constant`).
    Constant,
    /// Repeat the edge sample (`replicate`).
    Replicate,
    /// Wrap around (`circular`).
    Circular,
}

/// transformers' `EncodecConfig`; every field defaults as there (encodec_24khz's values).
#[derive(Clone, Debug, PartialEq)]
pub struct EncodecConfig {
    /// The bandwidths (kbps) `encode` accepts; the last fixes the number of codebooks.
    pub target_bandwidths: Vec<f64>,
    /// Audio sample rate in Hz (24,000 by default; 32,000 for MusicGen's codec).
    pub sampling_rate: usize,
    /// Audio channels (1 mono, 2 stereo).
    pub audio_channels: usize,
    /// Divide each clip by its RMS before encoding (and multiply the decoded audio back).
    pub normalize: bool,
    /// Set by encodec_48khz (1 s chunks); refused when loading (see [`EncodecConfig::check`]).
    pub chunk_length_s: Option<f64>,
    /// Overlap between chunks, as a share of `chunk_length_s` (chunked configs only).
    pub overlap: Option<f64>,
    /// The width of the encoder output and of the codebook entries.
    pub hidden_size: usize,
    /// Channels of the first convolution; each downsampling doubles them.
    pub num_filters: usize,
    /// Residual blocks per resolution.
    pub num_residual_layers: usize,
    /// Decoder strides; the encoder downsamples by them in reverse order.
    pub upsampling_ratios: Vec<usize>,
    /// How the convolutions are normalised.
    pub norm_type: NormType,
    /// Kernel size of the first convolution.
    pub kernel_size: usize,
    /// Kernel size of the last convolution.
    pub last_kernel_size: usize,
    /// Kernel size of the residual blocks' first convolution.
    pub residual_kernel_size: usize,
    /// Dilation of residual block `j` is `dilation_growth_rate^j`.
    pub dilation_growth_rate: usize,
    /// Whether the convolutions are causal (all padding on the left).
    pub use_causal_conv: bool,
    /// How the convolutions pad the time axis.
    pub pad_mode: PadMode,
    /// Channel reduction inside the residual branches.
    pub compress: usize,
    /// LSTM layers after the encoder's last downsampling (and before the decoder's first
    /// upsampling).
    pub num_lstm_layers: usize,
    /// The share of a causal transposed convolution's trimming taken from the right.
    pub trim_right_ratio: f64,
    /// Entries per codebook (1024).
    pub codebook_size: usize,
    /// Width of a codebook entry; must equal `hidden_size`.
    pub codebook_dim: usize,
    /// Whether the residual blocks' skip path is a 1×1 convolution (else the identity).
    pub use_conv_shortcut: bool,
}

impl EncodecConfig {
    /// Reads and checks a checkpoint's `config.json` ([`EncodecConfig::from_value`]). Errors:
    /// the file unreadable or not JSON, a field of the wrong type, a config
    /// [`EncodecConfig::check`] refuses; each naming the file and field.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_value(&read_config(path)?, path)
    }

    /// Parses a `config.json` (or the `audio_encoder` object of a MusicGen config); `path`
    /// names it in errors. The config is checked ([`EncodecConfig::check`]).
    pub fn from_value(value: &Value, path: &Path) -> Result<Self> {
        let f = ConfigFields::new(value, path, WHAT)?;
        let hidden_size = f.opt_usize(&["hidden_size"])?.unwrap_or(128);
        let norm_type = match f.string_or(&["norm_type"], "weight_norm")?.as_str() {
            "weight_norm" => NormType::WeightNorm,
            "time_group_norm" => NormType::TimeGroupNorm,
            other => {
                return Err(f.error(format!(
                    "field `norm_type` is \"{other}\", expected \"weight_norm\" or \
                     \"time_group_norm\""
                )))
            }
        };
        let pad_mode = match f.string_or(&["pad_mode"], "reflect")?.as_str() {
            "reflect" => PadMode::Reflect,
            "constant" => PadMode::Constant,
            "replicate" => PadMode::Replicate,
            "circular" => PadMode::Circular,
            other => {
                return Err(f.error(format!(
                    "field `pad_mode` is \"{other}\", expected \"reflect\", \"constant\", \
                     \"replicate\" or \"circular\""
                )))
            }
        };
        let config = EncodecConfig {
            target_bandwidths: f64_list(&f, "target_bandwidths", &[1.5, 3.0, 6.0, 12.0, 24.0])?,
            sampling_rate: f.opt_usize(&["sampling_rate"])?.unwrap_or(24_000),
            audio_channels: f.opt_usize(&["audio_channels"])?.unwrap_or(1),
            normalize: f.bool_or("normalize", false)?,
            chunk_length_s: opt_f64(&f, "chunk_length_s")?,
            overlap: opt_f64(&f, "overlap")?,
            hidden_size,
            num_filters: f.opt_usize(&["num_filters"])?.unwrap_or(32),
            num_residual_layers: f.opt_usize(&["num_residual_layers"])?.unwrap_or(1),
            upsampling_ratios: usize_list(&f, "upsampling_ratios", &[8, 5, 4, 2])?,
            norm_type,
            kernel_size: f.opt_usize(&["kernel_size"])?.unwrap_or(7),
            last_kernel_size: f.opt_usize(&["last_kernel_size"])?.unwrap_or(7),
            residual_kernel_size: f.opt_usize(&["residual_kernel_size"])?.unwrap_or(3),
            dilation_growth_rate: f.opt_usize(&["dilation_growth_rate"])?.unwrap_or(2),
            use_causal_conv: f.bool_or("use_causal_conv", true)?,
            pad_mode,
            compress: f.opt_usize(&["compress"])?.unwrap_or(2),
            num_lstm_layers: f.opt_usize(&["num_lstm_layers"])?.unwrap_or(2),
            trim_right_ratio: f.f64_or(&["trim_right_ratio"], 1.0)?,
            codebook_size: f.opt_usize(&["codebook_size"])?.unwrap_or(1024),
            codebook_dim: f.opt_usize(&["codebook_dim"])?.unwrap_or(hidden_size),
            use_conv_shortcut: f.bool_or("use_conv_shortcut", true)?,
        };
        config.check().map_err(|m| f.error(m))?;
        Ok(config)
    }

    /// What this implementation (and transformers) cannot build or run, as a message naming
    /// the field.
    pub fn check(&self) -> std::result::Result<(), String> {
        self.check_sizes()?;
        let positive = [
            ("sampling_rate", self.sampling_rate),
            ("hidden_size", self.hidden_size),
            ("num_filters", self.num_filters),
            ("kernel_size", self.kernel_size),
            ("last_kernel_size", self.last_kernel_size),
            ("residual_kernel_size", self.residual_kernel_size),
            ("dilation_growth_rate", self.dilation_growth_rate),
            ("compress", self.compress),
            ("codebook_size", self.codebook_size),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("field `{name}` is 0, expected a positive number"));
        }
        if !(1..=2).contains(&self.audio_channels) {
            return Err(format!(
                "field `audio_channels` is {}, expected 1 or 2",
                self.audio_channels
            ));
        }
        if self.upsampling_ratios.is_empty() || self.upsampling_ratios.contains(&0) {
            return Err(format!(
                "field `upsampling_ratios` is {:?}, expected a non-empty list of positive strides",
                self.upsampling_ratios
            ));
        }
        if self.chunk_length_s.is_some() {
            return Err(format!(
                "field `chunk_length_s` is {:?}: chunked encoding with overlap-add \
                 (encodec_48khz) is not supported; encodec_24khz and encodec_32khz set it to null",
                self.chunk_length_s.unwrap_or_default()
            ));
        }
        if !self.codebook_size.is_power_of_two() {
            return Err(format!(
                "field `codebook_size` is {}, expected a power of 2",
                self.codebook_size
            ));
        }
        if self.codebook_dim != self.hidden_size {
            return Err(format!(
                "field `codebook_dim` is {} but `hidden_size` is {}: the quantizer compares \
                 encoder frames with codebook entries, so they must be equal",
                self.codebook_dim, self.hidden_size
            ));
        }
        if !(0.0..=1.0).contains(&self.trim_right_ratio)
            || (!self.use_causal_conv && self.trim_right_ratio != 1.0)
        {
            return Err(format!(
                "field `trim_right_ratio` is {}, expected a value in [0, 1], and 1.0 unless \
                 `use_causal_conv` is true",
                self.trim_right_ratio
            ));
        }
        if self.target_bandwidths.is_empty()
            || self
                .target_bandwidths
                .iter()
                .any(|b| !b.is_finite() || *b <= 0.0)
            || self.num_quantizers() == 0
        {
            return Err(format!(
                "field `target_bandwidths` is {:?}, expected positive bandwidths (kbps) whose \
                 largest gives at least one codebook of {} bits at {} frames/s",
                self.target_bandwidths,
                self.codebook_nbits(),
                self.frame_rate()
            ));
        }
        // Each codebook is a module to build: bound how many the bandwidth asks for.
        brainrecon_nn::config_bounds::positive(
            "target_bandwidths (codebooks)",
            self.num_quantizers(),
            1024,
        )
    }

    /// Bounds the sizes (hostile `config.json` files) before any arithmetic on them: the hop
    /// length is the product of the ratios, and a 1-entry codebook has 0 bits per code.
    fn check_sizes(&self) -> std::result::Result<(), String> {
        use brainrecon_nn::config_bounds::*;
        list_len("upsampling_ratios", self.upsampling_ratios.len(), 1, 8)?;
        all_positive("upsampling_ratios", &self.upsampling_ratios, MAX_KERNEL)?;
        in_range("codebook_size", self.codebook_size, 2, MAX_CHANNELS)?;
        list_len("target_bandwidths", self.target_bandwidths.len(), 1, 64)?;
        for (i, b) in self.target_bandwidths.iter().enumerate() {
            finite_in(&format!("target_bandwidths[{i}]"), *b, 0.0, 1e4)?;
        }
        Ok(())
    }

    /// Samples per frame: the product of the strides.
    pub fn hop_length(&self) -> usize {
        self.upsampling_ratios.iter().product()
    }

    /// Frames per second, rounded up as transformers does.
    pub fn frame_rate(&self) -> usize {
        self.sampling_rate.div_ceil(self.hop_length())
    }

    /// Bits per code: `log2(codebook_size)`, rounded up.
    pub fn codebook_nbits(&self) -> usize {
        self.codebook_size.next_power_of_two().trailing_zeros() as usize
    }

    /// The quantizer's codebooks: as many as the largest target bandwidth pays for.
    pub fn num_quantizers(&self) -> usize {
        let last = self.target_bandwidths.last().copied().unwrap_or(0.0);
        let per = (self.frame_rate() * self.codebook_nbits()) as f64;
        (1000.0 * last).div_euclid(per).max(0.0) as usize
    }

    /// The codebooks used at `bandwidth` kbps, which must be one of `target_bandwidths`.
    pub fn num_quantizers_for_bandwidth(&self, bandwidth: f64) -> Result<usize> {
        if !self.target_bandwidths.contains(&bandwidth) {
            return Err(brainrecon_nn::ModelError::Invalid(format!(
                "EnCodec: bandwidth {bandwidth} kbps is not one this model was trained for; \
                 choose one of {:?} (config field `target_bandwidths`)",
                self.target_bandwidths
            )));
        }
        let per_codebook = (self.codebook_size as f64).log2() * self.frame_rate() as f64;
        let n = (bandwidth * 1000.0 / per_codebook).floor().max(1.0) as usize;
        Ok(n.min(self.num_quantizers()))
    }
}

fn opt_f64(f: &ConfigFields, key: &'static str) -> Result<Option<f64>> {
    match f.find(&[key]) {
        None => Ok(None),
        Some((_, v)) => v.as_f64().map(Some).ok_or_else(|| {
            f.error(format!(
                "field `{}` is {v}, expected a number or null",
                f.name(key)
            ))
        }),
    }
}

fn list<'a>(f: &ConfigFields<'a>, key: &'static str) -> Result<Option<&'a Vec<Value>>> {
    match f.find(&[key]) {
        None => Ok(None),
        Some((_, Value::Array(items))) => Ok(Some(items)),
        Some((_, v)) => Err(f.error(format!("field `{}` is {v}, expected a list", f.name(key)))),
    }
}

fn f64_list(f: &ConfigFields, key: &'static str, default: &[f64]) -> Result<Vec<f64>> {
    let Some(items) = list(f, key)? else {
        return Ok(default.to_vec());
    };
    items
        .iter()
        .map(|v| {
            v.as_f64().ok_or_else(|| {
                f.error(format!(
                    "field `{}` holds {v}, expected numbers",
                    f.name(key)
                ))
            })
        })
        .collect()
}

fn usize_list(f: &ConfigFields, key: &'static str, default: &[usize]) -> Result<Vec<usize>> {
    let Some(items) = list(f, key)? else {
        return Ok(default.to_vec());
    };
    let max = size_cap(key) as u64;
    items
        .iter()
        .map(|v| {
            v.as_u64()
                .filter(|&n| n <= max)
                .map(|n| n as usize)
                .ok_or_else(|| {
                    f.error(format!(
                        "{}: expected whole numbers in 0..={max}, found {v}",
                        f.name(key)
                    ))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<EncodecConfig> {
        EncodecConfig::from_value(
            &serde_json::from_str(json).unwrap(),
            Path::new("config.json"),
        )
    }

    #[test]
    fn defaults_are_encodec_24khz() {
        let c = parse("{}").unwrap();
        assert_eq!(c.hop_length(), 320);
        assert_eq!(c.frame_rate(), 75);
        assert_eq!(c.num_quantizers(), 32);
        assert_eq!(c.num_quantizers_for_bandwidth(6.0).unwrap(), 8);
        assert!(c.use_causal_conv);
    }

    #[test]
    fn encodec_32khz_has_four_codebooks() {
        let c = parse(
            r#"{"upsampling_ratios": [8, 5, 4, 4], "target_bandwidths": [2.2],
                "num_filters": 64, "sampling_rate": 32000, "codebook_size": 2048,
                "use_causal_conv": false, "normalize": false, "use_conv_shortcut": false}"#,
        )
        .unwrap();
        assert_eq!(c.frame_rate(), 50);
        assert_eq!(c.num_quantizers(), 4);
        assert_eq!(c.num_quantizers_for_bandwidth(2.2).unwrap(), 4);
    }

    #[test]
    fn bad_fields_are_named() {
        for (json, field) in [
            (
                r#"{"chunk_length_s": 1.0, "overlap": 0.01}"#,
                "chunk_length_s",
            ),
            (r#"{"codebook_size": 1000}"#, "codebook_size"),
            (r#"{"codebook_dim": 64}"#, "codebook_dim"),
            (r#"{"norm_type": "layer_norm"}"#, "norm_type"),
            (r#"{"pad_mode": "mirror"}"#, "pad_mode"),
            (r#"{"audio_channels": 3}"#, "audio_channels"),
            (r#"{"upsampling_ratios": []}"#, "upsampling_ratios"),
            (r#"{"target_bandwidths": [0.001]}"#, "target_bandwidths"),
            (
                r#"{"use_causal_conv": false, "trim_right_ratio": 0.5}"#,
                "trim_right_ratio",
            ),
        ] {
            let e = parse(json).unwrap_err().to_string();
            assert!(
                e.contains("config.json") && e.contains(field),
                "{json}: {e}"
            );
        }
    }

    #[test]
    fn bandwidths_outside_the_list_are_refused() {
        let c = parse("{}").unwrap();
        let e = c.num_quantizers_for_bandwidth(7.0).unwrap_err().to_string();
        assert!(e.contains("7") && e.contains("target_bandwidths"), "{e}");
    }
}
