//! Writing clips as H.264 MP4 files: OpenH264's encoder (Constrained Baseline, every picture
//! kept, I pictures only at the start) and a minimal MP4 muxer (`ftyp`, `mdat`, `moov` with one
//! `avc1` track), written atomically.

use crate::error::{DataError, Result};
use crate::image::RgbImage;
use brainrecon_core::fs::write_atomic;
use openh264::encoder::{Encoder, EncoderConfig, FrameRate, QpRange, RateControlMode, VuiConfig};
use openh264::formats::YUVBuffer;
use openh264::{OpenH264API, Timestamp};
use std::io::Write;
use std::path::Path;

/// The H.264 quantiser of [`write_mp4`] (lower is better; 20 is visually lossless for clips).
pub const MP4_QP: u8 = 20;

/// I420 planes of an RGB image with BT.601 limited-range coefficients (the inverse of
/// [`super::YuvFrame::to_rgb`]); chroma is the mean of each 2×2 block. Even sizes only.
fn rgb_to_i420(image: &RgbImage) -> Vec<u8> {
    let (w, h) = (image.width, image.height);
    let px = |r: usize, c: usize| {
        let at = (r * w + c) * 3;
        let p = &image.pixels[at..at + 3];
        (p[0] as f32, p[1] as f32, p[2] as f32)
    };
    let mut out = Vec::with_capacity(w * h * 3 / 2);
    for r in 0..h {
        for c in 0..w {
            let (red, g, b) = px(r, c);
            out.push((16.0 + 0.256_788 * red + 0.504_129 * g + 0.097_906 * b).round() as u8);
        }
    }
    let mut u = Vec::with_capacity(w * h / 4);
    let mut v = Vec::with_capacity(w * h / 4);
    for r in (0..h).step_by(2) {
        for c in (0..w).step_by(2) {
            let mut sum = (0.0, 0.0, 0.0);
            for (dr, dc) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let p = px(r + dr, c + dc);
                sum = (sum.0 + p.0 / 4.0, sum.1 + p.1 / 4.0, sum.2 + p.2 / 4.0);
            }
            let (red, g, b) = sum;
            u.push(
                (128.0 - 0.148_223 * red - 0.290_993 * g + 0.439_216 * b)
                    .round()
                    .clamp(0.0, 255.0) as u8,
            );
            v.push(
                (128.0 + 0.439_216 * red - 0.367_788 * g - 0.071_427 * b)
                    .round()
                    .clamp(0.0, 255.0) as u8,
            );
        }
    }
    out.extend(u);
    out.extend(v);
    out
}

/// NAL units of one encoded picture, without their start codes.
fn encode_frames(path: &Path, frames: &[RgbImage], fps: f64) -> Result<Vec<Vec<Vec<u8>>>> {
    let config = EncoderConfig::new()
        .skip_frames(false)
        .max_frame_rate(FrameRate::from_hz(fps as f32))
        .rate_control_mode(RateControlMode::Off)
        .qp(QpRange::new(MP4_QP, MP4_QP))
        .scene_change_detect(false)
        .background_detection(false)
        .adaptive_quantization(false)
        .vui(VuiConfig::bt601());
    let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
        .map_err(|e| DataError::format(path, "H.264", format!("cannot start the encoder: {e}")))?;
    let mut pictures = Vec::with_capacity(frames.len());
    for (i, frame) in frames.iter().enumerate() {
        let yuv = YUVBuffer::from_vec(rgb_to_i420(frame), frame.width, frame.height);
        // Real timestamps: with all-zero ones the encoder treats frames as duplicates.
        let millis = (i as f64 * 1000.0 / fps).round() as u64;
        let stream = encoder
            .encode_at(&yuv, Timestamp::from_millis(millis))
            .map_err(|e| DataError::format(path, "H.264", format!("encoding frame {i}: {e}")))?;
        let mut nals = Vec::new();
        for l in 0..stream.num_layers() {
            let layer = stream.layer(l).expect("layer index below num_layers");
            for n in 0..layer.nal_count() {
                let nal = layer.nal_unit(n).expect("NAL index below nal_count");
                let start = nal.iter().position(|&b| b == 1).map_or(0, |p| p + 1);
                nals.push(nal[start..].to_vec());
            }
        }
        if nals.is_empty() {
            return Err(DataError::format(
                path,
                "H.264",
                format!("the encoder skipped frame {i}"),
            ));
        }
        pictures.push(nals);
    }
    Ok(pictures)
}

/// Writes `frames` (one size, even width and height) as an H.264 MP4 at `fps`.
pub fn write_mp4(path: &Path, frames: &[RgbImage], fps: f64) -> Result<()> {
    let first = frames
        .first()
        .ok_or_else(|| DataError::invalid(path, "frames", "at least one frame", "none"))?;
    let (w, h) = (first.width, first.height);
    if w % 2 == 1 || h % 2 == 1 || w > 4096 || h > 4096 {
        return Err(DataError::invalid(
            path,
            "frame size",
            "even width and height up to 4096",
            format!("{w}x{h}"),
        ));
    }
    if let Some(other) = frames.iter().find(|f| (f.width, f.height) != (w, h)) {
        return Err(DataError::invalid(
            path,
            "frame size",
            format!("{w}x{h} (the first frame's)"),
            format!("{}x{}", other.width, other.height),
        ));
    }
    if !(fps.is_finite() && fps > 0.0) {
        return Err(DataError::invalid(
            path,
            "fps",
            "a positive frame rate",
            fps.to_string(),
        ));
    }
    let pictures = encode_frames(path, frames, fps)?;
    let track = mux_samples(path, &pictures)?;
    let timescale = 90_000u32;
    let delta = (timescale as f64 / fps).round().max(1.0) as u32;
    write_atomic(path, |out| {
        let ftyp = ftyp_box();
        out.write_all(&ftyp)?;
        let payload: usize = track.samples.iter().map(Vec::len).sum();
        out.write_all(&((payload + 8) as u32).to_be_bytes())?;
        out.write_all(b"mdat")?;
        for s in &track.samples {
            out.write_all(s)?;
        }
        let mdat_start = (ftyp.len() + 8) as u32;
        out.write_all(&moov_box(
            &track, w as u16, h as u16, timescale, delta, mdat_start,
        ))
    })
}

/// Length-prefixed samples, the parameter sets for `avcC`, and which samples are IDR.
struct MuxTrack {
    samples: Vec<Vec<u8>>,
    idr: Vec<bool>,
    sps: Vec<u8>,
    pps: Vec<u8>,
}

fn mux_samples(path: &Path, pictures: &[Vec<Vec<u8>>]) -> Result<MuxTrack> {
    let (mut sps, mut pps) = (None, None);
    let mut samples = Vec::with_capacity(pictures.len());
    let mut idr = Vec::with_capacity(pictures.len());
    for nals in pictures {
        let mut sample = Vec::new();
        let mut is_idr = false;
        for nal in nals.iter().filter(|n| !n.is_empty()) {
            match nal[0] & 0x1f {
                7 => sps = sps.or_else(|| Some(nal.clone())),
                8 => pps = pps.or_else(|| Some(nal.clone())),
                kind => {
                    is_idr |= kind == 5;
                    sample.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                    sample.extend_from_slice(nal);
                }
            }
        }
        samples.push(sample);
        idr.push(is_idr);
    }
    match (sps, pps) {
        (Some(sps), Some(pps)) if sps.len() >= 4 => Ok(MuxTrack {
            samples,
            idr,
            sps,
            pps,
        }),
        _ => Err(DataError::format(
            path,
            "H.264",
            "the encoder wrote no SPS/PPS",
        )),
    }
}

fn mp4_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&((payload.len() + 8) as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(payload);
    out
}

fn full_box(kind: &[u8; 4], version_flags: u32, payload: &[u8]) -> Vec<u8> {
    let mut body = version_flags.to_be_bytes().to_vec();
    body.extend_from_slice(payload);
    mp4_box(kind, &body)
}

fn be(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

fn ftyp_box() -> Vec<u8> {
    mp4_box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2avc1mp41")
}

const UNITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

fn moov_box(
    track: &MuxTrack,
    w: u16,
    h: u16,
    timescale: u32,
    delta: u32,
    mdat_start: u32,
) -> Vec<u8> {
    let n = track.samples.len() as u32;
    let duration = n * delta;
    let mut mvhd = be(&[0, 0, timescale, duration, 0x0001_0000]);
    mvhd.extend_from_slice(&[0x01, 0x00, 0, 0]);
    mvhd.extend(be(&[0, 0]));
    mvhd.extend(be(&UNITY_MATRIX));
    mvhd.extend(be(&[0; 6]));
    mvhd.extend(be(&[2]));
    let mut tkhd = be(&[0, 0, 1, 0, duration, 0, 0, 0]);
    tkhd.extend(be(&[0]));
    tkhd.extend(be(&UNITY_MATRIX));
    tkhd.extend(be(&[(w as u32) << 16, (h as u32) << 16]));
    let mut mdhd = be(&[0, 0, timescale, duration]);
    mdhd.extend_from_slice(&[0x55, 0xc4, 0, 0]);
    let mut hdlr = be(&[0]);
    hdlr.extend_from_slice(b"vide");
    hdlr.extend(be(&[0, 0, 0]));
    hdlr.extend_from_slice(b"VideoHandler\0");
    let vmhd = full_box(b"vmhd", 1, &[0; 8]);
    let dref = full_box(b"dref", 0, &[be(&[1]), full_box(b"url ", 1, &[])].concat());
    let dinf = mp4_box(b"dinf", &dref);
    let stbl = mp4_box(
        b"stbl",
        &[
            stsd_box(track, w, h),
            sample_tables(track, delta, mdat_start),
        ]
        .concat(),
    );
    let minf = mp4_box(b"minf", &[vmhd, dinf, stbl].concat());
    let mdia = mp4_box(
        b"mdia",
        &[
            full_box(b"mdhd", 0, &mdhd),
            full_box(b"hdlr", 0, &hdlr),
            minf,
        ]
        .concat(),
    );
    let trak = mp4_box(b"trak", &[full_box(b"tkhd", 3, &tkhd), mdia].concat());
    mp4_box(b"moov", &[full_box(b"mvhd", 0, &mvhd), trak].concat())
}

fn stsd_box(track: &MuxTrack, w: u16, h: u16) -> Vec<u8> {
    let mut avcc = vec![1, track.sps[1], track.sps[2], track.sps[3], 0xff, 0xe1];
    avcc.extend_from_slice(&(track.sps.len() as u16).to_be_bytes());
    avcc.extend_from_slice(&track.sps);
    avcc.push(1);
    avcc.extend_from_slice(&(track.pps.len() as u16).to_be_bytes());
    avcc.extend_from_slice(&track.pps);
    let mut entry = vec![0u8; 6];
    entry.extend_from_slice(&1u16.to_be_bytes());
    entry.extend_from_slice(&[0; 16]);
    entry.extend_from_slice(&w.to_be_bytes());
    entry.extend_from_slice(&h.to_be_bytes());
    entry.extend(be(&[0x0048_0000, 0x0048_0000, 0]));
    entry.extend_from_slice(&1u16.to_be_bytes());
    entry.extend_from_slice(&[0; 32]);
    entry.extend_from_slice(&[0x00, 0x18, 0xff, 0xff]);
    entry.extend(mp4_box(b"avcC", &avcc));
    full_box(b"stsd", 0, &[be(&[1]), mp4_box(b"avc1", &entry)].concat())
}

fn sample_tables(track: &MuxTrack, delta: u32, mdat_start: u32) -> Vec<u8> {
    let n = track.samples.len() as u32;
    let stts = full_box(b"stts", 0, &be(&[1, n, delta]));
    let sync: Vec<u32> = (0..n)
        .filter(|&i| track.idr[i as usize])
        .map(|i| i + 1)
        .collect();
    let stss = full_box(b"stss", 0, &[be(&[sync.len() as u32]), be(&sync)].concat());
    let stsc = full_box(b"stsc", 0, &be(&[1, 1, n, 1]));
    let sizes: Vec<u32> = track.samples.iter().map(|s| s.len() as u32).collect();
    let stsz = full_box(b"stsz", 0, &[be(&[0, n]), be(&sizes)].concat());
    let stco = full_box(b"stco", 0, &be(&[1, mdat_start]));
    [stts, stss, stsc, stsz, stco].concat()
}
