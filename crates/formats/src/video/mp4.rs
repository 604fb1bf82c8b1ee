//! The MP4 (ISO base media file) container: the first H.264 video track's sample table.
//!
//! Only what decoding needs is read: `moov/trak/mdia` (`mdhd` time scale, `hdlr` type) and the
//! sample table `stbl` (`stsd/avc1/avcC`, `stts`, `ctts`, `stsc`, `stsz`, `stco`/`co64`,
//! `stss`). Every offset and count is checked against the file, so a truncated or corrupt file
//! gives an error naming it, never a panic.

use crate::error::{DataError, Result};
use std::path::Path;

/// One coded picture of the track, in decoding order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Byte offset of the sample in the file.
    pub offset: u64,
    /// Length of the sample in bytes (`stsz`).
    pub size: u32,
    /// Decoding time, in `timescale` units.
    pub decode_time: i64,
    /// Presentation (composition) time, in `timescale` units.
    pub present_time: i64,
    /// A sync sample (an IDR picture): decoding can start here.
    pub sync: bool,
}

/// The `avcC` decoder configuration: parameter sets and the NAL length-prefix size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    /// H.264 `profile_idc` (66 Baseline, 77 Main, 100 High).
    pub profile: u8,
    /// H.264 `level_idc` (e.g. 31 for level 3.1).
    pub level: u8,
    /// Bytes of the big-endian length before each NAL unit in a sample (1, 2 or 4).
    pub nal_length_size: usize,
    /// Sequence parameter sets, NAL units without start codes.
    pub sps: Vec<Vec<u8>>,
    /// Picture parameter sets, NAL units without start codes.
    pub pps: Vec<Vec<u8>>,
}

/// The first video track of an MP4 file.
#[derive(Debug, Clone)]
pub struct Track {
    /// Time units per second of the media (`mdhd`).
    pub timescale: u32,
    /// Display size from the sample entry (`avc1`).
    pub width: u16,
    /// Display height in pixels (`avc1`).
    pub height: u16,
    /// The decoder configuration (`avcC`).
    pub avc: AvcConfig,
    /// In decoding order.
    pub samples: Vec<Sample>,
}

impl Track {
    /// Frames per second from the mean sample duration.
    pub fn fps(&self) -> f64 {
        let n = self.samples.len();
        if n < 2 {
            return 0.0;
        }
        let first = self.samples[0].decode_time;
        let last = self.samples[n - 1].decode_time;
        // The last sample's duration is part of the span as well: mean over n - 1 gaps.
        let span = (last - first) as f64 / (n - 1) as f64;
        if span <= 0.0 {
            0.0
        } else {
            self.timescale as f64 / span
        }
    }

    /// Sample indices (decoding order) sorted by presentation time: entry `i` is the sample
    /// shown as frame `i`.
    pub fn presentation_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.samples.len()).collect();
        order.sort_by_key(|&i| (self.samples[i].present_time, i));
        order
    }
}

/// A byte reader over one box's payload that reports short data as a format error.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    path: &'a Path,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    fn new(path: &'a Path, what: &'static str, bytes: &'a [u8]) -> Self {
        Cursor {
            bytes,
            at: 0,
            path,
            what,
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| {
            DataError::format(
                self.path,
                "MP4",
                format!("the '{}' box is shorter than its fields", self.what),
            )
        })?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        Ok(u64::from_be_bytes(b.try_into().unwrap()))
    }
    /// A full box's version (its flags are skipped).
    fn version(&mut self) -> Result<u8> {
        let v = self.u8()?;
        self.take(3)?;
        Ok(v)
    }
    /// An entry count, bounded by what the remaining bytes can hold.
    fn count(&mut self, entry_size: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(entry_size) > self.bytes.len() - self.at {
            return Err(DataError::format(
                self.path,
                "MP4",
                format!(
                    "the '{}' box lists {n} entries but is too short for them",
                    self.what
                ),
            ));
        }
        Ok(n)
    }
}

/// Child boxes of a container payload: (four-character type, payload).
fn children<'a>(path: &Path, bytes: &'a [u8]) -> Result<Vec<([u8; 4], &'a [u8])>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let size32 = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as u64;
        let kind: [u8; 4] = bytes[at + 4..at + 8].try_into().unwrap();
        let (header, size) = match size32 {
            0 => (8u64, (bytes.len() - at) as u64),
            1 => {
                if at + 16 > bytes.len() {
                    return Err(truncated_box(path, kind));
                }
                let large = u64::from_be_bytes(bytes[at + 8..at + 16].try_into().unwrap());
                (16, large)
            }
            s => (8, s),
        };
        if size < header || at as u64 + size > bytes.len() as u64 {
            return Err(truncated_box(path, kind));
        }
        let (start, end) = (at + header as usize, at + size as usize);
        out.push((kind, &bytes[start..end]));
        at = end;
    }
    Ok(out)
}

fn truncated_box(path: &Path, kind: [u8; 4]) -> DataError {
    DataError::format(
        path,
        "MP4",
        format!(
            "the '{}' box runs past the end of its parent or of the file (truncated or corrupt)",
            String::from_utf8_lossy(&kind)
        ),
    )
}

fn child<'a>(path: &Path, bytes: &'a [u8], kind: &[u8; 4]) -> Result<Option<&'a [u8]>> {
    Ok(children(path, bytes)?
        .into_iter()
        .find(|(k, _)| k == kind)
        .map(|(_, b)| b))
}

fn require<'a>(path: &Path, bytes: &'a [u8], kind: &[u8; 4], parent: &str) -> Result<&'a [u8]> {
    child(path, bytes, kind)?.ok_or_else(|| {
        DataError::format(
            path,
            "MP4",
            format!("'{parent}' has no '{}' box", String::from_utf8_lossy(kind)),
        )
    })
}

/// Finds the top-level `moov` box without reading the (large) media data: box headers are read
/// one at a time and skipped.
fn read_moov(path: &Path) -> Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    let mut at = 0u64;
    let mut saw_ftyp = false;
    while at + 8 <= len {
        let mut head = [0u8; 16];
        file.seek(SeekFrom::Start(at))
            .map_err(|e| DataError::io(path, e))?;
        let n = (len - at).min(16) as usize;
        file.read_exact(&mut head[..n])
            .map_err(|e| DataError::io(path, e))?;
        let kind: [u8; 4] = head[4..8].try_into().unwrap();
        if at == 0 && !kind.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
            return Err(not_mp4(path));
        }
        saw_ftyp |= &kind == b"ftyp";
        let (header, size) = match u32::from_be_bytes(head[..4].try_into().unwrap()) {
            0 => (8, len - at),
            1 if n == 16 => (16, u64::from_be_bytes(head[8..16].try_into().unwrap())),
            1 => return Err(truncated_box(path, kind)),
            s => (8, s as u64),
        };
        if size < header || at + size > len {
            return Err(truncated_box(path, kind));
        }
        if &kind == b"moov" {
            let mut moov = vec![0u8; (size - header) as usize];
            file.seek(SeekFrom::Start(at + header))
                .map_err(|e| DataError::io(path, e))?;
            file.read_exact(&mut moov)
                .map_err(|e| DataError::io(path, e))?;
            return Ok(moov);
        }
        at += size;
    }
    if !saw_ftyp {
        return Err(not_mp4(path));
    }
    Err(DataError::format(
        path,
        "MP4",
        "no 'moov' box (the file is truncated or was not finished writing)",
    ))
}

fn not_mp4(path: &Path) -> DataError {
    DataError::format(
        path,
        "MP4",
        "not an MP4 / ISO media file (no box structure)",
    )
}

/// Reads the first video track's sample table. A track that is not H.264 (`avc1`/`avc3`) is an
/// error naming its codec.
pub fn read_track(path: &Path) -> Result<Track> {
    let moov = read_moov(path)?;
    let file_len = std::fs::metadata(path)
        .map_err(|e| DataError::io(path, e))?
        .len();
    for (kind, trak) in children(path, &moov)? {
        if &kind != b"trak" {
            continue;
        }
        let mdia = require(path, trak, b"mdia", "trak")?;
        let hdlr = require(path, mdia, b"hdlr", "mdia")?;
        if hdlr.get(8..12) != Some(b"vide") {
            continue;
        }
        let track = read_video_track(path, mdia, file_len)?;
        if let Some(last) = track.samples.iter().map(|s| s.offset + s.size as u64).max() {
            if last > file_len {
                return Err(DataError::invalid(
                    path,
                    "media data",
                    format!("{last} bytes for the samples the index lists"),
                    format!("{file_len} bytes (file truncated)"),
                ));
            }
        }
        return Ok(track);
    }
    Err(DataError::format(path, "MP4", "no video track"))
}

fn read_video_track(path: &Path, mdia: &[u8], file_len: u64) -> Result<Track> {
    let mdhd = require(path, mdia, b"mdhd", "mdia")?;
    let mut c = Cursor::new(path, "mdhd", mdhd);
    let timescale = if c.version()? == 1 {
        c.take(16)?;
        c.u32()?
    } else {
        c.take(8)?;
        c.u32()?
    };
    if timescale == 0 {
        return Err(DataError::invalid(
            path,
            "mdhd timescale",
            "a positive value",
            "0",
        ));
    }
    let minf = require(path, mdia, b"minf", "mdia")?;
    let stbl = require(path, minf, b"stbl", "minf")?;
    let (width, height, avc) = read_stsd(path, require(path, stbl, b"stsd", "stbl")?)?;
    let sizes = read_stsz(path, require(path, stbl, b"stsz", "stbl")?, file_len)?;
    let n = sizes.len();
    let decode_times = read_stts(path, require(path, stbl, b"stts", "stbl")?, n)?;
    let offsets_ctts = match child(path, stbl, b"ctts")? {
        Some(ctts) => read_ctts(path, ctts, n)?,
        None => vec![0; n],
    };
    let chunk_offsets = match child(path, stbl, b"stco")? {
        Some(stco) => read_chunk_offsets(path, stco, false)?,
        None => read_chunk_offsets(path, require(path, stbl, b"co64", "stbl")?, true)?,
    };
    let offsets = sample_offsets(
        path,
        require(path, stbl, b"stsc", "stbl")?,
        &chunk_offsets,
        &sizes,
    )?;
    let sync = match child(path, stbl, b"stss")? {
        Some(stss) => read_stss(path, stss, n)?,
        None => vec![true; n],
    };
    let samples = (0..n)
        .map(|i| Sample {
            offset: offsets[i],
            size: sizes[i],
            decode_time: decode_times[i],
            present_time: decode_times[i] + offsets_ctts[i],
            sync: sync[i],
        })
        .collect();
    Ok(Track {
        timescale,
        width,
        height,
        avc,
        samples,
    })
}

/// The sample description: `avc1`/`avc3` with its `avcC`; any other codec is an error.
fn read_stsd(path: &Path, stsd: &[u8]) -> Result<(u16, u16, AvcConfig)> {
    let mut c = Cursor::new(path, "stsd", stsd);
    c.version()?;
    let count = c.u32()?;
    let entries = children(path, &stsd[8..])?;
    let (kind, entry) = entries.first().filter(|_| count > 0).ok_or_else(|| {
        DataError::format(path, "MP4", "the video track has no sample description")
    })?;
    if kind != b"avc1" && kind != b"avc3" {
        let codec = String::from_utf8_lossy(kind).into_owned();
        return Err(DataError::invalid(
            path,
            "video codec",
            "H.264 ('avc1' or 'avc3')",
            format!("'{codec}'"),
        ));
    }
    // VisualSampleEntry: 6 reserved + 2 index + 16 pre-defined/reserved, then width, height,
    // and 50 more bytes before the child boxes.
    let mut e = Cursor::new(path, "avc1", entry);
    e.take(24)?;
    let (width, height) = (e.u16()?, e.u16()?);
    // The decoder and the RGB conversion size their frames from this.
    crate::limits::image_pixels(path, "avc1 width × height", width as u64, height as u64)?;
    let boxes = entry.get(78..).ok_or_else(|| truncated_box(path, *kind))?;
    let avcc = require(path, boxes, b"avcC", "avc1")?;
    Ok((width, height, read_avcc(path, avcc)?))
}

fn read_avcc(path: &Path, avcc: &[u8]) -> Result<AvcConfig> {
    let mut c = Cursor::new(path, "avcC", avcc);
    let version = c.u8()?;
    if version != 1 {
        return Err(DataError::invalid(
            path,
            "avcC version",
            "1",
            version.to_string(),
        ));
    }
    let profile = c.u8()?;
    c.u8()?;
    let level = c.u8()?;
    let nal_length_size = (c.u8()? & 3) as usize + 1;
    if nal_length_size == 3 {
        return Err(DataError::invalid(
            path,
            "avcC NAL length size",
            "1, 2 or 4 bytes",
            "3",
        ));
    }
    fn read_sets(c: &mut Cursor<'_>, count: usize) -> Result<Vec<Vec<u8>>> {
        (0..count)
            .map(|_| {
                let len = c.u16()? as usize;
                Ok(c.take(len)?.to_vec())
            })
            .collect()
    }
    let n_sps = (c.u8()? & 31) as usize;
    let sps = read_sets(&mut c, n_sps)?;
    let n_pps = c.u8()? as usize;
    let pps = read_sets(&mut c, n_pps)?;
    if sps.is_empty() || pps.is_empty() {
        return Err(DataError::format(
            path,
            "MP4",
            "avcC holds no SPS or no PPS",
        ));
    }
    check_sps(path, &sps)?;
    Ok(AvcConfig {
        profile,
        level,
        nal_length_size,
        sps,
        pps,
    })
}

/// Sample sizes; with one size for all, their count is bounded by the file's length before
/// anything is sized by it.
fn read_stsz(path: &Path, stsz: &[u8], file_len: u64) -> Result<Vec<u32>> {
    let mut c = Cursor::new(path, "stsz", stsz);
    c.version()?;
    let fixed = c.u32()?;
    if fixed != 0 {
        let n = c.u32()? as usize;
        if (n as u64).saturating_mul(fixed as u64) > file_len {
            return Err(DataError::invalid(
                path,
                "stsz",
                format!("samples that fit in the file's {file_len} bytes"),
                format!("{n} samples of {fixed} bytes"),
            ));
        }
        return Ok(vec![fixed; n]);
    }
    let n = c.count(4)?;
    (0..n).map(|_| c.u32()).collect()
}

/// Decoding times of `n` samples from the run-length `stts` table.
fn read_stts(path: &Path, stts: &[u8], n: usize) -> Result<Vec<i64>> {
    let mut c = Cursor::new(path, "stts", stts);
    c.version()?;
    let runs = c.count(8)?;
    let mut times = Vec::with_capacity(n);
    let (mut t, mut listed) = (0i64, 0u64);
    for _ in 0..runs {
        let (count, delta) = (c.u32()?, c.u32()? as i64);
        listed += count as u64;
        for _ in 0..count {
            if times.len() == n {
                break;
            }
            times.push(t);
            t += delta;
        }
    }
    // The runs must cover the samples exactly (ISO/IEC 14496-12): a count past them is a
    // broken table, not padding.
    if listed != n as u64 {
        return Err(DataError::invalid(
            path,
            "stts",
            format!("times for {n} samples"),
            format!("{listed}"),
        ));
    }
    Ok(times)
}

/// Composition offsets (version 0 unsigned, version 1 signed).
fn read_ctts(path: &Path, ctts: &[u8], n: usize) -> Result<Vec<i64>> {
    let mut c = Cursor::new(path, "ctts", ctts);
    let signed = c.version()? == 1;
    let runs = c.count(8)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..runs {
        let count = c.u32()?;
        let raw = c.u32()?;
        let offset = if signed {
            raw as i32 as i64
        } else {
            raw as i64
        };
        for _ in 0..count {
            if out.len() == n {
                break;
            }
            out.push(offset);
        }
    }
    if out.len() != n {
        return Err(DataError::invalid(
            path,
            "ctts",
            format!("offsets for {n} samples"),
            format!("{}", out.len()),
        ));
    }
    Ok(out)
}

fn read_chunk_offsets(path: &Path, bytes: &[u8], wide: bool) -> Result<Vec<u64>> {
    let mut c = Cursor::new(path, if wide { "co64" } else { "stco" }, bytes);
    c.version()?;
    let n = c.count(if wide { 8 } else { 4 })?;
    (0..n)
        .map(|_| {
            if wide {
                c.u64()
            } else {
                c.u32().map(u64::from)
            }
        })
        .collect()
}

/// File offsets of the samples from the sample-to-chunk runs and the chunk offsets.
fn sample_offsets(path: &Path, stsc: &[u8], chunks: &[u64], sizes: &[u32]) -> Result<Vec<u64>> {
    let mut c = Cursor::new(path, "stsc", stsc);
    c.version()?;
    let runs = c.count(12)?;
    let mut table = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (first_chunk, per_chunk) = (c.u32()? as usize, c.u32()? as usize);
        c.u32()?;
        table.push((first_chunk, per_chunk));
    }
    let mut offsets = Vec::with_capacity(sizes.len());
    for (r, &(first, per_chunk)) in table.iter().enumerate() {
        let end = table.get(r + 1).map_or(chunks.len() + 1, |next| next.0);
        if first == 0 || end < first {
            return Err(DataError::invalid(
                path,
                "stsc",
                "increasing chunk numbers from 1",
                format!("{first}"),
            ));
        }
        for chunk in first..end {
            let Some(&base) = chunks.get(chunk - 1) else {
                break;
            };
            let mut at = base;
            for _ in 0..per_chunk {
                let Some(&size) = sizes.get(offsets.len()) else {
                    break;
                };
                offsets.push(at);
                at += size as u64;
            }
        }
    }
    if offsets.len() != sizes.len() {
        return Err(DataError::invalid(
            path,
            "stsc/stco",
            format!("chunks holding {} samples", sizes.len()),
            format!("{}", offsets.len()),
        ));
    }
    Ok(offsets)
}

fn read_stss(path: &Path, stss: &[u8], n: usize) -> Result<Vec<bool>> {
    let mut c = Cursor::new(path, "stss", stss);
    c.version()?;
    let count = c.count(4)?;
    let mut sync = vec![false; n];
    for _ in 0..count {
        let number = c.u32()? as usize;
        if number == 0 || number > n {
            return Err(DataError::invalid(
                path,
                "stss",
                format!("sample numbers 1..={n}"),
                number.to_string(),
            ));
        }
        sync[number - 1] = true;
    }
    Ok(sync)
}

/// Converts one sample (length-prefixed NAL units) to an Annex B byte stream (start codes).
pub fn sample_to_annex_b(
    path: &Path,
    sample: &[u8],
    nal_length_size: usize,
    out: &mut Vec<u8>,
) -> Result<()> {
    let mut at = 0usize;
    while at < sample.len() {
        let Some(prefix) = sample.get(at..at + nal_length_size) else {
            return Err(DataError::format(
                path,
                "H.264",
                "a sample ends inside a NAL length prefix",
            ));
        };
        let len = prefix
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        at += nal_length_size;
        let Some(nal) = sample.get(at..at + len) else {
            return Err(DataError::format(
                path,
                "H.264",
                "a NAL unit runs past the end of its sample",
            ));
        };
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
        at += len;
    }
    Ok(())
}

/// Whether sample `sample` holds an IDR picture (NAL unit type 5): only there can a decoder
/// start (a non-IDR sync sample of an open group of pictures needs earlier pictures). Only the
/// NAL headers are read.
pub fn sample_is_idr(
    path: &Path,
    file: &mut std::fs::File,
    sample: &Sample,
    nal_length_size: usize,
) -> Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let end = sample.offset + sample.size as u64;
    let mut at = sample.offset;
    let mut head = [0u8; 5];
    while at + (nal_length_size as u64) < end {
        let n = nal_length_size + 1;
        file.seek(SeekFrom::Start(at))
            .and_then(|_| file.read_exact(&mut head[..n]))
            .map_err(|e| DataError::io(path, e))?;
        let len = head[..nal_length_size]
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | b as u64);
        if head[nal_length_size] & 0x1f == 5 {
            return Ok(true);
        }
        at += nal_length_size as u64 + len;
    }
    Ok(false)
}

/// Refuses an SPS whose picture passes [`crate::limits::IMAGE_PIXELS`]: the decoder allocates
/// its pictures from the SPS's size, not avc1's.
fn check_sps(path: &Path, sps: &[Vec<u8>]) -> Result<()> {
    for set in sps {
        if let Some((width, height)) = sps_size(set) {
            crate::limits::image_pixels(path, "SPS width × height", width, height)?;
        }
    }
    Ok(())
}

/// Reads an SPS's bits (emulation prevention bytes removed) as Exp-Golomb codes.
struct Bits {
    bytes: Vec<u8>,
    at: usize,
}

impl Bits {
    fn new(nal: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(nal.len());
        for &b in nal {
            // 00 00 03 → 00 00: the 03 only keeps start codes out of the payload.
            if b == 3 && bytes.len() >= 2 && bytes[bytes.len() - 2..] == [0, 0] {
                continue;
            }
            bytes.push(b);
        }
        Bits { bytes, at: 0 }
    }

    fn bit(&mut self) -> Option<u64> {
        let byte = *self.bytes.get(self.at / 8)?;
        let bit = (byte >> (7 - self.at % 8)) & 1;
        self.at += 1;
        Some(bit as u64)
    }

    fn bits(&mut self, n: u32) -> Option<u64> {
        (0..n).try_fold(0, |v, _| Some(v << 1 | self.bit()?))
    }

    fn ue(&mut self) -> Option<u64> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1 << zeros) - 1 + self.bits(zeros)?)
    }

    fn se(&mut self) -> Option<i64> {
        let k = self.ue()? as i64;
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -k / 2 })
    }
}

/// Skips a `scaling_list` of `size` entries (H.264 7.3.2.1.1.1).
fn skip_scaling_list(b: &mut Bits, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            next = (last + b.se()? + 256).rem_euclid(256);
        }
        last = if next == 0 { last } else { next };
    }
    Some(())
}

/// Width and height in pixels (before cropping) that an SPS NAL unit declares (H.264
/// 7.3.2.1.1); `None` when it does not parse, which the decoder then reports.
fn sps_size(nal: &[u8]) -> Option<(u64, u64)> {
    let mut b = Bits::new(nal);
    b.bits(8)?; // NAL header
    let profile = b.bits(8)?;
    b.bits(16)?; // constraint flags, level
    b.ue()?; // seq_parameter_set_id
    if [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].contains(&profile) {
        let chroma = b.ue()?;
        if chroma == 3 {
            b.bit()?;
        }
        b.ue()?;
        b.ue()?;
        b.bit()?;
        if b.bit()? == 1 {
            for i in 0..if chroma == 3 { 12 } else { 8 } {
                if b.bit()? == 1 {
                    skip_scaling_list(&mut b, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    b.ue()?; // log2_max_frame_num_minus4
    match b.ue()? {
        0 => {
            b.ue()?;
        }
        1 => {
            b.bit()?;
            b.se()?;
            b.se()?;
            for _ in 0..b.ue()?.min(256) {
                b.se()?;
            }
        }
        _ => {}
    }
    b.ue()?; // max_num_ref_frames
    b.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = b.ue()? + 1;
    let height_units = b.ue()? + 1;
    let frame_mbs_only = b.bit()?;
    Some((width_mbs * 16, height_units * 16 * (2 - frame_mbs_only)))
}

#[cfg(test)]
mod size_tests {
    use crate::image::RgbImage;

    #[test]
    fn a_frame_size_above_the_pixel_limit_is_refused_from_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wide.mp4");
        let frame = RgbImage::new(16, 16, vec![90; 16 * 16 * 3]);
        crate::video::write_mp4(&path, &[frame.clone(), frame], 2.0).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        // The sample entry inside 'stsd' (ftyp lists 'avc1' as a brand too).
        let find = |from: usize, tag: &[u8]| {
            from + bytes[from..].windows(4).position(|w| w == tag).unwrap()
        };
        let at = find(find(0, b"stsd"), b"avc1");
        // Width and height follow the entry's 24 reserved bytes: 65535 × 65535.
        bytes[at + 28..at + 32].fill(0xff);
        std::fs::write(&path, &bytes).unwrap();
        let err = crate::video::open(&path).err().unwrap().to_string();
        assert!(
            err.contains("wide.mp4") && err.contains("avc1 width"),
            "{err}"
        );
    }

    #[test]
    fn the_sps_size_is_read_and_a_huge_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small.mp4");
        let frame = RgbImage::new(48, 32, vec![90; 48 * 32 * 3]);
        crate::video::write_mp4(&path, &[frame], 2.0).unwrap();
        let track = super::read_track(&path).unwrap();
        assert_eq!(super::sps_size(&track.avc.sps[0]), Some((32, 48)));
        // Baseline SPS: ids and counts, then 4096 × 4096 macroblocks (65536² pixels).
        let mut bits = String::from("1"); // seq_parameter_set_id = 0
        bits += "1"; // log2_max_frame_num_minus4 = 0
        bits += "011"; // pic_order_cnt_type = 2
        bits += "010"; // max_num_ref_frames = 1
        bits += "0"; // gaps
        let mbs = "0000000000001000000000000"; // ue(4095)
        bits = bits + mbs + mbs + "1" + "1";
        while bits.len() % 8 != 0 {
            bits.push('0');
        }
        let mut sps = vec![0x67, 66, 0, 30];
        sps.extend(
            (0..bits.len() / 8).map(|i| u8::from_str_radix(&bits[i * 8..i * 8 + 8], 2).unwrap()),
        );
        assert_eq!(super::sps_size(&sps), Some((65_536, 65_536)));
        let err = super::check_sps(&path, &[sps]).unwrap_err().to_string();
        assert!(err.contains("small.mp4") && err.contains("SPS"), "{err}");
    }
}
