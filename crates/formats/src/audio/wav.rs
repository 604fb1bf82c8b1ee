//! A 16-bit PCM WAV writer (RIFF `WAVE`, `fmt ` chunk of format 1, `data` chunk), written
//! atomically. Samples in [-1, 1] are stored as `round(v · 32768)` clamped to the int16 range,
//! the inverse of how decoders (libsndfile, symphonia) read 16-bit PCM back (`v / 32768`).

use crate::error::{DataError, Result};
use brainrecon_core::fs::write_bytes_atomic;
use std::path::Path;

/// The int16 value a sample is stored as.
pub fn quantize(v: f32) -> i16 {
    (v as f64 * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// The WAV file's bytes: `interleaved` holds frames of `channels` samples.
pub fn encode_pcm16(rate: u32, channels: u16, interleaved: &[f32]) -> Vec<u8> {
    let data_len = interleaved.len() * 2;
    let mut out = Vec::with_capacity(44 + data_len);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((36 + data_len) as u32).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    let block_align = channels as u32 * 2;
    out.extend_from_slice(&(rate * block_align).to_le_bytes());
    out.extend_from_slice(&(block_align as u16).to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data_len as u32).to_le_bytes());
    for &v in interleaved {
        out.extend_from_slice(&quantize(v).to_le_bytes());
    }
    out
}

/// Writes a mono or multichannel 16-bit WAV file.
pub fn write_pcm16(path: &Path, rate: u32, channels: u16, interleaved: &[f32]) -> Result<()> {
    if channels == 0 || rate == 0 || !interleaved.len().is_multiple_of(channels as usize) {
        return Err(DataError::invalid(
            path,
            "samples",
            "a positive rate and whole frames of at least one channel",
            format!(
                "{} samples, {channels} channels at {rate} Hz",
                interleaved.len()
            ),
        ));
    }
    if interleaved.len() * 2 > (u32::MAX - 36) as usize {
        return Err(DataError::invalid(
            path,
            "samples",
            "less than 4 GiB of audio (the RIFF size limit)",
            format!("{} samples", interleaved.len()),
        ));
    }
    write_bytes_atomic(path, &encode_pcm16(rate, channels, interleaved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_and_samples_are_where_riff_puts_them() {
        let bytes = encode_pcm16(22_050, 2, &[0.0, 1.0, -1.0, 0.5]);
        assert_eq!(bytes.len(), 44 + 8);
        assert_eq!(&bytes[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 44);
        assert_eq!(u16::from_le_bytes(bytes[22..24].try_into().unwrap()), 2);
        assert_eq!(
            u32::from_le_bytes(bytes[24..28].try_into().unwrap()),
            22_050
        );
        assert_eq!(
            u32::from_le_bytes(bytes[28..32].try_into().unwrap()),
            88_200
        );
        let samples: Vec<i16> = bytes[44..]
            .chunks(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(samples, vec![0, 32767, -32768, 16384]);
    }
}
