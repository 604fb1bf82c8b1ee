//! Audio decoding and resampling against references no one here wrote: files written by
//! libsndfile 1.2.2 (through soundfile 0.13.1) and what libsndfile reads back from them, and
//! `scipy.signal.resample_poly` 1.16.3 (fixtures from tools/fixtures/audio_fixtures.py).

use brainrecon_formats::audio::{read_audio, read_channels, resample, Resampler};
use brainrecon_formats::npy;
use brainrecon_formats::DataError;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio")
}

fn cases() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("cases.json")).unwrap()).unwrap()
}

/// libsndfile's decode of a fixture as floats, (frames, channels) row-major.
fn reference(case: &serde_json::Value) -> (Vec<f64>, usize) {
    let path = fixtures().join(case["reference"].as_str().unwrap());
    let scale = case["scale"].as_f64().unwrap();
    let (shape, values) = if case["subtype"] == "FLOAT" {
        let a = npy::read_f32(&path).unwrap();
        (a.shape, a.data.iter().map(|&v| v as f64).collect())
    } else {
        let a = npy::read_i64(&path).unwrap();
        (a.shape, a.data.iter().map(|&v| v as f64 / scale).collect())
    };
    assert_eq!(shape[1], case["channels"].as_u64().unwrap() as usize);
    (values, shape[1])
}

#[test]
fn lossless_files_decode_to_exactly_what_libsndfile_reads() {
    let cases = cases();
    let mut checked = 0;
    for case in cases["files"].as_array().unwrap() {
        if case["lossy"].as_bool().unwrap() {
            continue;
        }
        let name = case["file"].as_str().unwrap();
        let decoded = read_channels(&fixtures().join(name)).unwrap();
        let (want, channels) = reference(case);
        assert_eq!(
            decoded.rate as u64,
            case["rate"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(decoded.channels.len(), channels, "{name}");
        assert_eq!(decoded.frames(), want.len() / channels, "{name}");
        for (c, samples) in decoded.channels.iter().enumerate() {
            for (i, &v) in samples.iter().enumerate() {
                assert_eq!(
                    v as f64,
                    want[i * channels + c],
                    "{name}: frame {i} channel {c}"
                );
            }
        }
        // The flat stretch is there and exact: 40 ms of silence, then 0.25.
        let rate = decoded.rate as usize;
        assert!(decoded.channels[0][..rate * 40 / 1000]
            .iter()
            .all(|&v| v == 0.0));
        assert!(
            (decoded.channels[0][rate * 55 / 1000] - 0.25).abs() < 1e-4,
            "{name}"
        );
        checked += 1;
    }
    assert_eq!(checked, 4);
}

#[test]
fn lossy_files_decode_close_to_libsndfiles_own_decode() {
    let cases = cases();
    let mut checked = 0;
    for case in cases["files"].as_array().unwrap() {
        if !case["lossy"].as_bool().unwrap() {
            continue;
        }
        let name = case["file"].as_str().unwrap();
        let decoded = read_channels(&fixtures().join(name)).unwrap();
        let (want, channels) = reference(case);
        let frames = want.len() / channels;
        assert_eq!(
            decoded.rate as u64,
            case["rate"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(decoded.channels.len(), channels, "{name}");
        // Gapless: the encoder's delay and padding are trimmed, so the frames line up.
        assert_eq!(decoded.frames(), frames, "{name}");
        let (mut err2, mut ref2, mut worst) = (0.0f64, 0.0f64, 0.0f64);
        for c in 0..channels {
            for i in 0..frames {
                let (a, b) = (decoded.channels[c][i] as f64, want[i * channels + c]);
                err2 += (a - b).powi(2);
                ref2 += b * b;
                worst = worst.max((a - b).abs());
            }
        }
        let rms = (err2 / (frames * channels) as f64).sqrt();
        let codec = case["codec_rms_error"].as_f64().unwrap();
        // Two decoders of one stream differ by float rounding and the reference's 1/32768
        // steps (rms 9e-6 alone; measured 8e-6 for both files); the codec itself loses
        // 0.02–0.05. A misaligned, mis-scaled or wrong-channel decode fails both bounds.
        assert!(
            rms < 5e-5 && rms < codec / 100.0,
            "{name}: rms {rms} (codec {codec})"
        );
        assert!(worst < 1e-4, "{name}: worst {worst}");
        assert!(ref2 > 0.0);
        checked += 1;
    }
    assert_eq!(checked, 2);
}

#[test]
fn mono_is_the_mean_of_the_channels() {
    let path = fixtures().join("pcm16_stereo_44100.wav");
    let channels = read_channels(&path).unwrap();
    let audio = read_audio(&path).unwrap();
    assert_eq!(audio.channels_in_file, 2);
    assert_eq!(audio.rate, 44_100);
    for (i, &v) in audio.samples.iter().enumerate() {
        let want = (channels.channels[0][i] as f64 + channels.channels[1][i] as f64) / 2.0;
        assert_eq!(v, want as f32);
    }
    // At another rate: the resampler's output on that mono signal.
    let at_48k = audio.to_mono_at(48_000).unwrap();
    assert_eq!(at_48k.samples, resample(&audio.samples, 44_100, 48_000));
    assert_eq!(at_48k.samples.len(), 9600);
}

#[test]
fn resampling_matches_scipy_resample_poly() {
    let cases = cases();
    let input = npy::read_f32(&fixtures().join("resample_in.npy"))
        .unwrap()
        .data;
    let list = cases["resample"]["cases"].as_array().unwrap();
    assert_eq!(list.len(), 6);
    for case in list {
        let (from, to) = (
            case["from"].as_u64().unwrap() as u32,
            case["to"].as_u64().unwrap() as u32,
        );
        let want = npy::read_f32(&fixtures().join(case["output"].as_str().unwrap()))
            .unwrap()
            .data;
        let r = Resampler::new(from, to);
        assert_eq!(
            (r.up as u64, r.down as u64),
            (case["up"].as_u64().unwrap(), case["down"].as_u64().unwrap())
        );
        let got = resample(&input, from, to);
        assert_eq!(got.len(), want.len(), "{from}→{to}");
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-6, "{from}→{to}: worst difference {worst}");
    }
}

#[test]
fn files_that_do_not_decode_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("song.mp3");
    std::fs::write(
        &garbage,
        b"this is not audio at all, just some text in a file",
    )
    .unwrap();
    let err = read_audio(&garbage).unwrap_err();
    assert!(matches!(err, DataError::Format { .. }), "{err:?}");
    assert!(err.to_string().contains("song.mp3"), "{err}");

    let empty = dir.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    let err = read_audio(&empty).unwrap_err().to_string();
    assert!(err.contains("empty.wav"), "{err}");

    // A valid WAV header with no frames: decodes, but holds nothing.
    let silent = dir.path().join("no_frames.wav");
    brainrecon_formats::audio::wav::write_pcm16(&silent, 22_050, 1, &[]).unwrap();
    let err = read_audio(&silent).unwrap_err();
    assert!(
        matches!(&err, DataError::Invalid { field, .. } if field == "samples"),
        "{err:?}"
    );
    assert!(err.to_string().contains("no_frames.wav"), "{err}");

    // A WAV cut short midway keeps what is there rather than failing.
    let whole = std::fs::read(fixtures().join("pcm16_stereo_44100.wav")).unwrap();
    let cut = dir.path().join("cut.wav");
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    match read_channels(&cut) {
        Ok(d) => assert!(d.frames() > 1000 && d.frames() < 8820, "{}", d.frames()),
        Err(e) => assert!(e.to_string().contains("cut.wav"), "{e}"),
    }

    let missing = dir.path().join("missing.flac");
    let err = read_audio(&missing).unwrap_err();
    assert!(matches!(err, DataError::Missing { .. }), "{err:?}");
}

#[test]
fn our_wav_writer_reads_back_through_the_decoder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tone.wav");
    let samples: Vec<f32> = (0..2205).map(|i| ((i as f32) * 0.05).sin() * 0.7).collect();
    brainrecon_formats::audio::wav::write_pcm16(&path, 22_050, 1, &samples).unwrap();
    let back = read_audio(&path).unwrap();
    assert_eq!(
        (back.rate, back.channels_in_file, back.samples.len()),
        (22_050, 1, 2205)
    );
    for (a, b) in back.samples.iter().zip(&samples) {
        assert_eq!(
            *a,
            brainrecon_formats::audio::wav::quantize(*b) as f32 / 32768.0
        );
    }
}

/// The length a header gives (what `music fit` checks tracks with before it decodes any) is
/// the length decoding gives, for every container read.
#[test]
fn headers_give_the_decoded_rate_and_length() {
    for case in cases()["files"].as_array().unwrap() {
        let path = fixtures().join(case["file"].as_str().unwrap());
        let header = brainrecon_formats::audio::read_header(&path).unwrap();
        let decoded = read_channels(&path).unwrap();
        assert_eq!(
            (header.rate, header.frames),
            (decoded.rate, decoded.frames() as u64),
            "{}",
            path.display()
        );
    }
}
