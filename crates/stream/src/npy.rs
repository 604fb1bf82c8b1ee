//! NumPy `.npy` recordings: a `(samples, channels)` array (or `(samples,)` for one channel) of
//! float32, float64, int16 or int32, with the header parsed by `brainrecon_formats::npy`.

use crate::error::{check_rate, Result, StreamError};
use crate::source::{default_labels, Recording};
use std::path::Path;

/// Reads a `.npy` recording of `(samples, channels)` values at `rate` Hz.
///
/// float64 and int32 values are rounded to the nearest f32; int16 values are exact.
pub fn read_npy(path: &Path, rate: f64) -> Result<Recording> {
    check_rate("rate", rate)?;
    let bytes = std::fs::read(path).map_err(|e| StreamError::io(path, e))?;
    let header = brainrecon_formats::npy::parse_header(path, &bytes)?;
    let (frames, channels) = match header.shape.as_slice() {
        [n] => (*n, 1),
        [n, c] => (*n, *c),
        other => {
            return Err(StreamError::invalid(
                path,
                "shape",
                "(samples, channels) or (samples,)",
                format!("{other:?}"),
            ))
        }
    };
    if channels == 0 {
        return Err(StreamError::invalid(
            path,
            "shape",
            "at least 1 channel",
            format!("{:?}", header.shape),
        ));
    }
    let width =
        match header.descr.as_str() {
            "<f4" | "<i4" => 4,
            "<f8" => 8,
            "<i2" => 2,
            other => return Err(StreamError::invalid(
                path,
                "dtype",
                "little-endian float32 ('<f4'), float64 ('<f8'), int16 ('<i2') or int32 ('<i4')",
                other,
            )),
        };
    let need = frames
        .checked_mul(channels)
        .and_then(|n| n.checked_mul(width))
        .ok_or_else(|| {
            StreamError::invalid(
                path,
                "shape",
                "a size that fits in memory",
                format!("{:?}", header.shape),
            )
        })?;
    let body = &bytes[header.data_offset.min(bytes.len())..];
    if body.len() < need {
        return Err(StreamError::invalid(
            path,
            "data",
            format!("{need} bytes for shape {:?}", header.shape),
            format!("{} bytes (file truncated)", body.len()),
        ));
    }
    let body = &body[..need];
    let data: Vec<f32> = match header.descr.as_str() {
        "<f4" => body
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        "<f8" => body
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        "<i4" => body
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
            .collect(),
        _ => body
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32)
            .collect(),
    };
    Recording::new(path, rate, default_labels(channels), data)
}
