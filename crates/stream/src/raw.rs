//! Raw interleaved little-endian frames (int16 or float32) from a file, stdin or a socket.

use crate::error::{check_channels, check_rate, Result, StreamError};
use crate::source::{Chunk, Source};
use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

/// The sample type of a raw stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawFormat {
    /// Signed 16-bit little-endian integers, converted to f32 unscaled.
    I16,
    /// IEEE 754 32-bit little-endian floats.
    F32,
}

impl RawFormat {
    /// Bytes per sample.
    pub fn width(self) -> usize {
        match self {
            RawFormat::I16 => 2,
            RawFormat::F32 => 4,
        }
    }

    /// `i16` or `f32`.
    pub fn name(self) -> &'static str {
        match self {
            RawFormat::I16 => "i16",
            RawFormat::F32 => "f32",
        }
    }

    /// Parses `i16`/`int16` or `f32`/`float32`.
    pub fn parse(text: &str) -> Result<Self> {
        match text.to_ascii_lowercase().as_str() {
            "i16" | "int16" | "s16le" => Ok(RawFormat::I16),
            "f32" | "float32" | "f32le" => Ok(RawFormat::F32),
            other => Err(StreamError::parameter(
                "raw sample format",
                "i16 or f32",
                other,
            )),
        }
    }
}

/// Decodes whole frames of little-endian `format` samples into f32.
///
/// `bytes.len()` must be a multiple of `format.width()`; the output has
/// `bytes.len() / format.width()` samples in the same (interleaved) order.
pub fn decode(format: RawFormat, bytes: &[u8]) -> Vec<f32> {
    match format {
        RawFormat::I16 => bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32)
            .collect(),
        RawFormat::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    }
}

/// Reads interleaved raw frames (`channels` samples of `format` each) from any reader: a file,
/// stdin, or a `TcpStream`.
///
/// Each call to [`Source::next_chunk`] returns as soon as at least one whole frame has arrived,
/// so a live socket is not held up waiting for a full chunk. A stream that ends on a frame
/// boundary reports the end (`Ok(None)`); one that ends inside a frame is an error naming the
/// stream, the bytes left over and the frame size.
pub struct RawReader<R: Read> {
    reader: R,
    name: PathBuf,
    format: RawFormat,
    channels: usize,
    rate: f64,
    /// Bytes read but not yet returned (less than one frame between calls, in practice).
    pending: Vec<u8>,
    frames_read: u64,
    ended: bool,
}

impl<R: Read> RawReader<R> {
    /// A reader of `channels` × `format` frames at `rate` Hz; `name` (a path, `<stdin>`, or a
    /// socket address) is used in messages.
    pub fn new(
        reader: R,
        name: impl AsRef<Path>,
        format: RawFormat,
        channels: usize,
        rate: f64,
    ) -> Result<Self> {
        check_channels("channels", channels)?;
        check_rate("rate", rate)?;
        Ok(RawReader {
            reader,
            name: name.as_ref().to_path_buf(),
            format,
            channels,
            rate,
            pending: Vec::new(),
            frames_read: 0,
            ended: false,
        })
    }

    /// Bytes per frame (`channels × width`).
    pub fn frame_bytes(&self) -> usize {
        self.channels * self.format.width()
    }

    /// Frames returned so far.
    pub fn frames_read(&self) -> u64 {
        self.frames_read
    }

    fn take_frames(&mut self, max_frames: usize) -> Chunk {
        let frame = self.frame_bytes();
        let frames = (self.pending.len() / frame).min(max_frames);
        let bytes: Vec<u8> = self.pending.drain(..frames * frame).collect();
        self.frames_read += frames as u64;
        Chunk {
            channels: self.channels,
            data: decode(self.format, &bytes),
        }
    }
}

impl<R: Read> Source for RawReader<R> {
    fn channels(&self) -> usize {
        self.channels
    }

    fn rate(&self) -> f64 {
        self.rate
    }

    fn next_chunk(&mut self, max_frames: usize) -> Result<Option<Chunk>> {
        let max_frames = max_frames.max(1);
        let frame = self.frame_bytes();
        let wanted = max_frames.saturating_mul(frame);
        let mut buffer = Vec::new();
        while self.pending.len() < frame {
            if buffer.is_empty() {
                buffer = vec![0u8; wanted.clamp(frame, (1 << 20).max(frame))];
            }
            if self.ended {
                return Ok(None);
            }
            let want = wanted
                .saturating_sub(self.pending.len())
                .clamp(1, buffer.len());
            match self.reader.read(&mut buffer[..want]) {
                Ok(0) => {
                    self.ended = true;
                    if !self.pending.is_empty() {
                        let left = self.pending.len();
                        self.pending.clear();
                        return Err(StreamError::invalid(
                            &self.name,
                            "length",
                            format!(
                                "whole frames of {frame} bytes ({} channels × {}-byte {})",
                                self.channels,
                                self.format.width(),
                                self.format.name()
                            ),
                            format!(
                                "{left} bytes of a partial frame after {} frames (stream truncated?)",
                                self.frames_read
                            ),
                        ));
                    }
                    return Ok(None);
                }
                Ok(n) => self.pending.extend_from_slice(&buffer[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(StreamError::io(&self.name, e)),
            }
        }
        Ok(Some(self.take_frames(max_frames)))
    }
}

/// Opens a raw file of interleaved `channels × format` frames at `rate` Hz.
///
/// Fails at once, naming the file and the expected multiple, when the file's size is not a
/// whole number of frames (a truncated file or a wrong channel count or sample format).
pub fn open_raw(
    path: &Path,
    format: RawFormat,
    channels: usize,
    rate: f64,
) -> Result<RawReader<BufReader<File>>> {
    check_channels("channels", channels)?;
    check_rate("rate", rate)?;
    let file = File::open(path).map_err(|e| StreamError::io(path, e))?;
    let len = file.metadata().map_err(|e| StreamError::io(path, e))?.len();
    let frame = (channels * format.width()) as u64;
    if len % frame != 0 {
        return Err(StreamError::invalid(
            path,
            "size",
            format!(
                "a multiple of {frame} bytes ({channels} channels × {}-byte {} samples)",
                format.width(),
                format.name()
            ),
            format!(
                "{len} bytes ({} whole frames and {} bytes over: truncated, or a different channel count or sample format)",
                len / frame,
                len % frame
            ),
        ));
    }
    RawReader::new(BufReader::new(file), path, format, channels, rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A reader that hands out at most `step` bytes per read, like a socket.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn i16_bytes(values: &[i16]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn decodes_i16_and_f32() {
        assert_eq!(
            decode(RawFormat::I16, &i16_bytes(&[-2, 7])),
            vec![-2.0, 7.0]
        );
        let bytes: Vec<u8> = [1.5f32, -0.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(decode(RawFormat::F32, &bytes), vec![1.5, -0.25]);
    }

    #[test]
    fn trickled_bytes_become_whole_frames() {
        let values: Vec<i16> = (0..30).collect();
        let reader = Trickle {
            data: i16_bytes(&values),
            at: 0,
            step: 5,
        };
        let mut raw = RawReader::new(reader, "<tcp>", RawFormat::I16, 3, 100.0).unwrap();
        let mut all = Vec::new();
        while let Some(chunk) = raw.next_chunk(4).unwrap() {
            assert!(chunk.frames() >= 1 && chunk.frames() <= 4);
            all.extend(chunk.data);
        }
        assert_eq!(all, values.iter().map(|&v| v as f32).collect::<Vec<_>>());
        assert_eq!(raw.frames_read(), 10);
        assert!(raw.next_chunk(4).unwrap().is_none());
    }

    #[test]
    fn partial_frame_at_end_is_an_error() {
        let mut bytes = i16_bytes(&[1, 2, 3, 4]);
        bytes.push(9);
        let mut raw =
            RawReader::new(Cursor::new(bytes), "<stdin>", RawFormat::I16, 2, 10.0).unwrap();
        assert_eq!(raw.next_chunk(10).unwrap().unwrap().frames(), 2);
        let err = raw.next_chunk(10).unwrap_err().to_string();
        assert!(err.contains("<stdin>") && err.contains("4 bytes"), "{err}");
        assert!(raw.next_chunk(10).unwrap().is_none());
    }

    #[test]
    fn parses_formats() {
        assert_eq!(RawFormat::parse("int16").unwrap(), RawFormat::I16);
        assert_eq!(RawFormat::parse("F32").unwrap(), RawFormat::F32);
        assert!(RawFormat::parse("u8").is_err());
    }
}
