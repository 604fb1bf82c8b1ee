//! Audio files to `f32` samples through symphonia: WAV (PCM and float), FLAC, MP3 and OGG
//! Vorbis, whatever the extension says (the container is probed; the extension is a hint).
//! Integer samples become `v / 2^(bits-1)` (16-bit: `v / 32768`), as libsndfile reads them.
//! MP3 and Vorbis are decoded gaplessly: the encoder's delay and padding, where the file records
//! them, are trimmed.

use crate::error::{DataError, Result};
use std::path::Path;
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

const WHAT: &str = "audio (WAV, FLAC, MP3 or OGG Vorbis)";

/// Every channel of a file, at the file's rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// (channels, frames)
    pub channels: Vec<Vec<f32>>,
    /// Sample rate (Hz).
    pub rate: u32,
    /// Packets the decoder rejected as malformed and skipped (their audio is missing).
    pub skipped_packets: usize,
}

impl Decoded {
    /// Samples per channel (0 for no channels).
    pub fn frames(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    /// The channels averaged (computed in f64, so a mono mix of identical channels is exact).
    pub fn mono(&self) -> Vec<f32> {
        let n = self.channels.len().max(1) as f64;
        (0..self.frames())
            .map(|i| (self.channels.iter().map(|c| c[i] as f64).sum::<f64>() / n) as f32)
            .collect()
    }
}

fn format_error(path: &Path, detail: impl ToString) -> DataError {
    DataError::format(path, WHAT, detail)
}

/// What a file's header says of its default audio track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioHeader {
    /// Samples per second.
    pub rate: u32,
    /// Frames (samples per channel) of playable audio.
    pub frames: u64,
}

impl AudioHeader {
    /// Seconds of audio.
    pub fn duration(&self) -> f64 {
        self.frames as f64 / self.rate as f64
    }
}

/// The lowest rate an audio file may claim. Audio is recorded at 8 kHz or more; a header that
/// says less is damaged, and resampling it to a model's rate would multiply its length (a
/// 400 KB file at 1 Hz becomes 17.6 GB at 22,050 Hz).
pub const MIN_AUDIO_RATE: u32 = 1_000;

/// Refuses a rate below [`MIN_AUDIO_RATE`] or one [`crate::limits::sample_rate`] refuses:
/// resampling and clip lengths are sized by it, so a header's rate is checked before anything
/// uses it.
fn check_rate(path: &Path, rate: u32) -> Result<u32> {
    if rate < MIN_AUDIO_RATE {
        return Err(DataError::invalid(
            path,
            "sample rate",
            format!(
                "at least {MIN_AUDIO_RATE} samples per second (audio is recorded at 8,000 or more)"
            ),
            rate.to_string(),
        ));
    }
    crate::limits::sample_rate(path, "sample rate", rate as f64)?;
    Ok(rate)
}

/// The file's container, probed (the extension is only a hint).
fn open_container(path: &Path) -> Result<Box<dyn FormatReader>> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(extension) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(extension);
    }
    symphonia::default::get_probe()
        .probe(
            &hint,
            stream,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| format_error(path, format!("not a readable container ({e})")))
}

/// The sample rate and length of the file's default audio track from its header, without
/// decoding it (a container whose header gives no length, as some MP3 and OGG files, is
/// decoded to count its frames). Errors name the file as [`read_channels`]'s do.
pub fn read_header(path: &Path) -> Result<AudioHeader> {
    crate::error::guard_foreign_parser(path, WHAT, || read_header_unguarded(path))
}

fn read_header_unguarded(path: &Path) -> Result<AudioHeader> {
    let format = open_container(path)?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| format_error(path, "no audio track"))?;
    let rate = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .and_then(|p| p.sample_rate)
        .map(|r| check_rate(path, r))
        .transpose()?;
    match (rate, track.num_frames) {
        (Some(rate), Some(frames)) if frames > 0 => Ok(AudioHeader { rate, frames }),
        _ => {
            let decoded = read_channels(path)?;
            Ok(AudioHeader {
                rate: decoded.rate,
                frames: decoded.frames() as u64,
            })
        }
    }
}

/// Decodes the file's default audio track. Errors name the file: it is missing, its container
/// or codec is not one of the four, it has no audio track, its rate or channel count changes
/// midway, or it holds no frame of audio at all.
pub fn read_channels(path: &Path) -> Result<Decoded> {
    crate::error::guard_foreign_parser(path, WHAT, || read_channels_unguarded(path))
}

fn read_channels_unguarded(path: &Path) -> Result<Decoded> {
    let mut format = open_container(path)?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| format_error(path, "no audio track"))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| format_error(path, "the audio track has no codec parameters"))?;
    if let Some(rate) = params.sample_rate {
        check_rate(path, rate)?;
    }
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default().gapless(true))
        .map_err(|e| format_error(path, format!("unsupported codec ({e})")))?;
    let mut out = Decoded {
        channels: Vec::new(),
        rate: 0,
        skipped_packets: 0,
    };
    let mut interleaved: Vec<f32> = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            // A truncated file ends its stream early: keep what decoded.
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break
            }
            Err(e) => return Err(format_error(path, format!("while reading packets: {e}"))),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buffer = match decoder.decode(&packet) {
            Ok(buffer) => buffer,
            Err(SymphoniaError::DecodeError(_)) => {
                out.skipped_packets += 1;
                continue;
            }
            Err(e) => return Err(format_error(path, format!("while decoding: {e}"))),
        };
        let (rate, channels) = (buffer.spec().rate(), buffer.spec().channels().count());
        if out.channels.is_empty() {
            out.rate = check_rate(path, rate)?;
            out.channels = vec![Vec::new(); channels];
        } else if rate != out.rate || channels != out.channels.len() {
            return Err(DataError::invalid(
                path,
                "stream",
                format!(
                    "one sample rate and channel count ({} Hz, {} channels)",
                    out.rate,
                    out.channels.len()
                ),
                format!("a change to {rate} Hz, {channels} channels midway"),
            ));
        }
        interleaved.resize(buffer.samples_interleaved(), 0.0);
        buffer.copy_to_slice_interleaved(&mut interleaved[..]);
        for frame in interleaved.chunks_exact(channels.max(1)) {
            for (c, &v) in frame.iter().enumerate() {
                out.channels[c].push(v);
            }
        }
    }
    if out.frames() == 0 || out.rate == 0 {
        return Err(DataError::invalid(
            path,
            "samples",
            "at least one decoded frame of audio",
            if out.skipped_packets > 0 {
                format!("none ({} malformed packets)", out.skipped_packets)
            } else {
                "none (an empty stream)".to_string()
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_gives_the_rate_and_length_without_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blues.00001.wav");
        // 2.5 s of stereo at 22,050 Hz.
        let frames = 55_125;
        let interleaved: Vec<f32> = (0..frames * 2).map(|i| (i % 7) as f32 / 10.0).collect();
        crate::audio::wav::write_pcm16(&path, 22_050, 2, &interleaved).unwrap();
        let header = read_header(&path).unwrap();
        assert_eq!(
            header,
            AudioHeader {
                rate: 22_050,
                frames: frames as u64
            }
        );
        assert_eq!(header.duration(), 2.5);
        assert_eq!(read_channels(&path).unwrap().frames(), frames);
        let broken = dir.path().join("broken.wav");
        std::fs::write(&broken, b"RIFF not really").unwrap();
        let err = read_header(&broken).unwrap_err().to_string();
        assert!(err.contains("broken.wav"), "{err}");
        let err = read_header(&dir.path().join("absent.wav"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("absent.wav"), "{err}");
    }

    /// A 48-byte WAV whose header claims `rate` samples per second.
    fn wav_claiming(path: &Path, rate: u32) {
        let mut bytes = crate::audio::wav::encode_pcm16(8_000, 1, &[0.1, 0.2]);
        bytes[24..28].copy_from_slice(&rate.to_le_bytes());
        bytes[28..32].copy_from_slice(&rate.wrapping_mul(2).to_le_bytes());
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn a_sample_rate_of_zero_or_above_the_limit_is_refused_from_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ghz.wav");
        wav_claiming(&path, 4_294_967_295);
        for err in [
            read_header(&path).unwrap_err(),
            read_channels(&path).unwrap_err(),
            crate::audio::read_audio(&path).unwrap_err(),
        ] {
            let text = err.to_string();
            assert!(
                text.contains("ghz.wav") && text.contains("sample rate"),
                "{text}"
            );
            assert!(text.contains("BRAINRECON_MAX_SAMPLE_RATE"), "{text}");
        }
        let zero = dir.path().join("zero.wav");
        wav_claiming(&zero, 0);
        let text = read_channels(&zero).unwrap_err().to_string();
        assert!(text.contains("zero.wav"), "{text}");
    }

    /// A 1 Hz header once made `music retrieve` resample a 400 KB file into 17.6 GB and abort.
    #[test]
    fn a_rate_below_audio_rates_is_refused_and_resampling_is_sized_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one-hertz.wav");
        wav_claiming(&path, 1);
        let text = crate::audio::read_audio(&path).unwrap_err().to_string();
        assert!(
            text.contains("one-hertz.wav") && text.contains("sample rate") && text.contains("1000"),
            "{text}"
        );
        // A rate pair that multiplies the length past the array limit is refused before the
        // output is allocated.
        let audio = crate::audio::Audio {
            samples: vec![0.0; 1_000_000],
            rate: MIN_AUDIO_RATE,
            channels_in_file: 1,
            source: path.clone(),
        };
        let text = audio.to_mono_at(u32::MAX).unwrap_err().to_string();
        assert!(
            text.contains("one-hertz.wav") && text.contains("BRAINRECON_MAX_ARRAY_BYTES"),
            "{text}"
        );
    }
}
