//! H.264 decoding of an MP4 track with OpenH264 (Cisco's decoder, compiled from the source the
//! `openh264` crate bundles: no system library), and YUV 4:2:0 → RGB conversion.
//!
//! OpenH264 returns pictures in presentation order (it reorders B-frames by picture order
//! count), so after starting at an IDR sample the k-th picture out is the k-th frame in
//! presentation order from that sample's group of pictures on.
//!
//! Checked against ffmpeg's decoder (tests/video_io.rs): identical YUV for Constrained Baseline,
//! for High profile with CABAC, 8×8 transforms, B-frame pyramids, weighted prediction and
//! spatial direct prediction, and for open groups of pictures. B-frames with *temporal* direct
//! prediction (x264's `--direct temporal`, or `auto` in its slower presets) are not bit-exact
//! in OpenH264: those frames differ by a few levels (≤ 5 in the test clip) until the next IDR.

use super::mp4::{sample_to_annex_b, Track};
use crate::error::{DataError, Result};
use crate::image::RgbImage;
use openh264::decoder::{DecodedYUV, Decoder, DecoderConfig, Flush};
use openh264::formats::YUVSource;
use openh264::OpenH264API;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// A decoded picture in planar YUV 4:2:0 (I420): luma `height × width`, each chroma plane
/// `⌈height/2⌉ × ⌈width/2⌉`, no padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YuvFrame {
    /// Luma width in pixels.
    pub width: usize,
    /// Luma height in pixels.
    pub height: usize,
    /// Luma plane, `height × width` row-major.
    pub y: Vec<u8>,
    /// Cb plane, `⌈height/2⌉ × ⌈width/2⌉` row-major.
    pub u: Vec<u8>,
    /// Cr plane, `⌈height/2⌉ × ⌈width/2⌉` row-major.
    pub v: Vec<u8>,
}

impl YuvFrame {
    fn from_decoded(picture: &DecodedYUV<'_>) -> Self {
        let (width, height) = picture.dimensions();
        let (stride_y, stride_u, stride_v) = picture.strides();
        let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
        let copy = |plane: &[u8], stride: usize, w: usize, h: usize| -> Vec<u8> {
            let mut out = vec![0u8; w * h];
            for r in 0..h {
                // OpenH264's chroma slices can end mid-row for odd heights; what is there is copied.
                let start = (r * stride).min(plane.len());
                let end = (start + w).min(plane.len());
                out[r * w..r * w + (end - start)].copy_from_slice(&plane[start..end]);
            }
            out
        };
        YuvFrame {
            width,
            height,
            y: copy(picture.y(), stride_y, width, height),
            u: copy(picture.u(), stride_u, cw, ch),
            v: copy(picture.v(), stride_v, cw, ch),
        }
    }

    /// RGB with ITU-R BT.601 limited-range coefficients (what ffmpeg's scaler and OpenCV use
    /// for untagged video): R = 1.164(Y−16) + 1.596(V−128), G = 1.164(Y−16) − 0.392(U−128) −
    /// 0.813(V−128), B = 1.164(Y−16) + 2.017(U−128); each chroma sample covers its 2×2 block.
    pub fn to_rgb(&self) -> RgbImage {
        let (w, h) = (self.width, self.height);
        let cw = w.div_ceil(2);
        let mut pixels = Vec::with_capacity(w * h * 3);
        for r in 0..h {
            for c in 0..w {
                let y = 1.164_383_6 * (self.y[r * w + c] as f32 - 16.0);
                let at = (r / 2) * cw + c / 2;
                let (u, v) = (self.u[at] as f32 - 128.0, self.v[at] as f32 - 128.0);
                let rgb = [
                    y + 1.596_026_8 * v,
                    y - 0.391_762_3 * u - 0.812_967_6 * v,
                    y + 2.017_232_1 * u,
                ];
                pixels.extend(rgb.iter().map(|x| x.round().clamp(0.0, 255.0) as u8));
            }
        }
        RgbImage::new(h, w, pixels)
    }
}

/// A decoder positioned in a track, reading samples from the file as it goes.
pub(crate) struct TrackDecoder<'a> {
    path: &'a Path,
    track: &'a Track,
    file: File,
    decoder: Decoder,
    next_sample: usize,
    annex_b: Vec<u8>,
    sample: Vec<u8>,
    /// Pictures flushed out after the last sample, in presentation order.
    flushed: std::collections::VecDeque<YuvFrame>,
    finished: bool,
}

fn decoder_error(path: &Path, sample: usize, e: impl std::fmt::Display) -> DataError {
    DataError::format(
        path,
        "H.264",
        format!("decoding sample {sample} (in decoding order) failed: {e}"),
    )
}

impl<'a> TrackDecoder<'a> {
    /// A fresh decoder that starts at sync sample `start`, with the parameter sets fed first.
    pub(crate) fn start_at(path: &'a Path, track: &'a Track, start: usize) -> Result<Self> {
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let config = DecoderConfig::new().flush_after_decode(Flush::NoFlush);
        let decoder =
            Decoder::with_api_config(OpenH264API::from_source(), config).map_err(|e| {
                DataError::format(path, "H.264", format!("cannot start the decoder: {e}"))
            })?;
        let mut this = TrackDecoder {
            path,
            track,
            file,
            decoder,
            next_sample: start,
            annex_b: Vec::new(),
            sample: Vec::new(),
            flushed: Default::default(),
            finished: false,
        };
        let mut headers = Vec::new();
        for set in track.avc.sps.iter().chain(&track.avc.pps) {
            headers.extend_from_slice(&[0, 0, 0, 1]);
            headers.extend_from_slice(set);
        }
        this.decoder
            .decode(&headers)
            .map_err(|e| DataError::format(path, "H.264", format!("the SPS/PPS in avcC: {e}")))?;
        Ok(this)
    }

    /// Feeds the next sample; returns the picture that came out, if any. After the last sample,
    /// returns the pictures still held for reordering, one per call, then `None`.
    pub(crate) fn next_picture(&mut self) -> Result<Option<YuvFrame>> {
        while self.next_sample < self.track.samples.len() {
            let index = self.next_sample;
            self.next_sample += 1;
            self.read_sample(index)?;
            let picture = self
                .decoder
                .decode(&self.annex_b)
                .map_err(|e| decoder_error(self.path, index, e))?;
            if let Some(picture) = picture {
                return Ok(Some(YuvFrame::from_decoded(&picture)));
            }
        }
        if !self.finished {
            self.finished = true;
            let last = self.track.samples.len();
            let rest = self
                .decoder
                .flush_remaining()
                .map_err(|e| decoder_error(self.path, last, e))?;
            self.flushed.extend(rest.iter().map(YuvFrame::from_decoded));
        }
        Ok(self.flushed.pop_front())
    }

    fn read_sample(&mut self, index: usize) -> Result<()> {
        let s = self.track.samples[index];
        self.sample.resize(s.size as usize, 0);
        self.file
            .seek(SeekFrom::Start(s.offset))
            .and_then(|_| self.file.read_exact(&mut self.sample))
            .map_err(|e| DataError::io(self.path, e))?;
        self.annex_b.clear();
        sample_to_annex_b(
            self.path,
            &self.sample,
            self.track.avc.nal_length_size,
            &mut self.annex_b,
        )
    }
}
