//! An H.264 MP4 file as a frame source: frame `i` in presentation order, decoded on demand.

use super::h264::{TrackDecoder, YuvFrame};
use super::mp4::{read_track, sample_is_idr, Track};
use super::VideoInfo;
use crate::error::{DataError, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A group of pictures: the samples from one IDR sample to the next (decoding order).
#[derive(Debug, Clone, Copy)]
struct Gop {
    first_sample: usize,
    /// The smallest presentation index among its samples.
    first_frame: usize,
    /// Some sample presents before the sync sample (leading pictures that reference the
    /// previous group): decoding must start earlier.
    open: bool,
}

/// An opened H.264 MP4 file.
pub struct Mp4Video {
    path: PathBuf,
    track: Track,
    gops: Vec<Gop>,
    info: VideoInfo,
}

impl Mp4Video {
    /// Reads the sample table and decodes the first picture (for the size, and so that a file
    /// the decoder cannot read fails here).
    pub fn open(path: &Path) -> Result<Self> {
        let track = read_track(path)?;
        if track.samples.is_empty() {
            return Err(DataError::invalid(
                path,
                "video track",
                "at least one frame",
                "0 samples",
            ));
        }
        let gops = groups_of_pictures(path, &track)?;
        let first = TrackDecoder::start_at(path, &track, 0)?
            .next_picture()?
            .ok_or_else(|| DataError::format(path, "H.264", "the decoder returned no picture"))?;
        let fps = match track.fps() {
            f if f > 0.0 => f,
            _ => {
                return Err(DataError::invalid(
                    path,
                    "frame rate",
                    "a positive rate from 'stts'",
                    "none",
                ))
            }
        };
        let info = VideoInfo {
            frames: track.samples.len(),
            fps,
            width: first.width,
            height: first.height,
        };
        Ok(Mp4Video {
            path: path.to_path_buf(),
            track,
            gops,
            info,
        })
    }

    /// Frame count, rate (from the mean sample duration) and size (of the first picture).
    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// The file opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The H.264 profile_idc from `avcC` (66 Baseline, 77 Main, 100 High).
    pub fn profile(&self) -> u8 {
        self.track.avc.profile
    }

    /// Decoded YUV pictures of frames `indices` (presentation order), in the order asked.
    /// Each group of pictures is decoded once per call however many of its frames are asked.
    pub fn yuv_frames(&self, indices: &[usize]) -> Result<Vec<YuvFrame>> {
        let mut found: BTreeMap<usize, YuvFrame> = BTreeMap::new();
        self.visit_yuv(indices, |i, picture| {
            found.insert(i, picture);
            Ok(())
        })?;
        Ok(indices.iter().map(|i| found[i].clone()).collect())
    }

    /// Calls `visit(index, picture)` for each distinct frame of `indices` in ascending order,
    /// keeping no picture: a whole 8-minute stimulus can be scanned in constant memory.
    pub fn visit_yuv(
        &self,
        indices: &[usize],
        mut visit: impl FnMut(usize, YuvFrame) -> Result<()>,
    ) -> Result<()> {
        super::check_indices(&self.path, &self.info, indices)?;
        let mut wanted: Vec<usize> = indices.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        // (decoder, next frame it returns, group that frame is in)
        let mut decoder: Option<(TrackDecoder<'_>, usize, usize)> = None;
        for &target in &wanted {
            let gop = self.gop_of_frame(target);
            let reuse = matches!(&decoder, Some((_, next, at)) if *next <= target && gop <= at + 1);
            if !reuse {
                let start = self.start_gop(gop);
                let g = self.gops[start];
                let fresh = TrackDecoder::start_at(&self.path, &self.track, g.first_sample)?;
                decoder = Some((fresh, g.first_frame, start));
            }
            let (dec, next, at) = decoder.as_mut().expect("set above");
            while *next <= target {
                let picture = dec.next_picture()?.ok_or_else(|| self.ran_short(*next))?;
                if *next == target {
                    visit(target, picture)?;
                }
                *next += 1;
                *at = self.gop_of_frame(*next - 1);
            }
        }
        Ok(())
    }

    fn ran_short(&self, frame: usize) -> DataError {
        DataError::invalid(
            &self.path,
            "decoded frames",
            format!(
                "{} pictures (one per sample in the index)",
                self.info.frames
            ),
            format!("the decoder stopped before frame {frame}"),
        )
    }

    /// The group holding presentation frame `frame`: the last whose first frame is ≤ `frame`.
    fn gop_of_frame(&self, frame: usize) -> usize {
        self.gops
            .partition_point(|g| g.first_frame <= frame)
            .saturating_sub(1)
    }

    /// Where to start decoding for group `gop`: open groups need the group before them.
    fn start_gop(&self, gop: usize) -> usize {
        let mut g = gop;
        while g > 0 && self.gops[g].open {
            g -= 1;
        }
        g
    }
}

/// Groups starting at the sync samples that hold an IDR picture (and at sample 0).
fn groups_of_pictures(path: &Path, track: &Track) -> Result<Vec<Gop>> {
    let order = track.presentation_order();
    let mut rank = vec![0usize; order.len()];
    for (frame, &sample) in order.iter().enumerate() {
        rank[sample] = frame;
    }
    let mut file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut starts = vec![0];
    for (i, sample) in track.samples.iter().enumerate().skip(1) {
        if sample.sync && sample_is_idr(path, &mut file, sample, track.avc.nal_length_size)? {
            starts.push(i);
        }
    }
    Ok(starts
        .iter()
        .enumerate()
        .map(|(g, &first_sample)| {
            let end = starts.get(g + 1).copied().unwrap_or(track.samples.len());
            let first_frame = (first_sample..end).map(|s| rank[s]).min().unwrap_or(0);
            Gop {
                first_sample,
                first_frame,
                open: first_frame < rank[first_sample],
            }
        })
        .collect())
}
