//! The stimulus side of a CC2017-style dataset: each sample's clip (the frames shown during its
//! stimulus TR) and caption.
//!
//! Stimuli are `<stimuli>/segK.mp4` / `testK.mp4` (CC2017's 30-fps movies) or frame folders
//! `<stimuli>/segK/`, `<stimuli>/testK/` (the synthetic subject's). The clip of TR t is the
//! `frames_per_tr` frames shown at t·TR + k·TR/frames_per_tr, k = 0 … frames_per_tr − 1 (3 Hz for
//! CC2017's 6 frames per 2-s TR, as MinD-Video samples them).
//!
//! Captions: a TSV with the header `split<TAB>segment<TAB>tr<TAB>caption` (split `train` or `test`,
//! segment 1-based, TR 0-based), one row per stimulus TR that has a sample; the synthetic
//! subject writes `stimuli/captions.tsv`.

use crate::error::{Result, RouteError};
use brainrecon_formats::cifti::cc2017::Split;
use brainrecon_formats::image::RgbImage;
use brainrecon_formats::motion::{clip_velocity, MOTION_GRID};
use brainrecon_formats::video::{self, Video};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A sample's stimulus: split, segment (1-based), stimulus TR (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StimulusTr {
    /// Training or test segments.
    pub split: Split,
    /// The segment, 1-based.
    pub segment: usize,
    /// The stimulus TR in the segment, 0-based.
    pub tr: usize,
}

/// The video of one segment: `segK.mp4`, `segK/` (frames), or `testK…` for the test split.
pub fn segment_video_path(stimuli: &Path, split: Split, segment: usize) -> Result<PathBuf> {
    let name = format!("{}{segment}", split.prefix());
    let candidates = [stimuli.join(format!("{name}.mp4")), stimuli.join(&name)];
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .ok_or_else(|| RouteError::Missing {
            path: candidates[0].clone(),
            what: format!("the stimulus of segment {name}: {name}.mp4 or a frame folder {name}/"),
        })
}

/// Opened segment videos, reused across samples, and the velocity of every clip decoded so far.
pub struct StimulusClips {
    stimuli: PathBuf,
    tr_seconds: f64,
    frames_per_tr: usize,
    open: HashMap<(bool, usize), Video>,
    velocities: HashMap<StimulusTr, [f32; 2]>,
}

impl StimulusClips {
    /// Clips of the `stimuli` folder: `frames_per_tr` frames evenly spaced over each TR of
    /// `tr_seconds`.
    pub fn new(stimuli: &Path, tr_seconds: f64, frames_per_tr: usize) -> Self {
        StimulusClips {
            stimuli: stimuli.to_path_buf(),
            tr_seconds,
            frames_per_tr,
            open: HashMap::new(),
            velocities: HashMap::new(),
        }
    }

    /// The times (seconds into the segment) of TR `tr`'s frames.
    pub fn frame_times(&self, tr: usize) -> Vec<f64> {
        let step = self.tr_seconds / self.frames_per_tr as f64;
        (0..self.frames_per_tr)
            .map(|k| tr as f64 * self.tr_seconds + k as f64 * step)
            .collect()
    }

    /// The frames shown during `at`'s TR. A video shorter than the TR is an error naming the
    /// file and its length.
    pub fn clip(&mut self, at: StimulusTr) -> Result<Vec<RgbImage>> {
        let key = (at.split == Split::Test, at.segment);
        if !self.open.contains_key(&key) {
            let path = segment_video_path(&self.stimuli, at.split, at.segment)?;
            self.open.insert(key, video::open(&path)?);
        }
        let times = self.frame_times(at.tr);
        let frames = self.open[&key].frames_at_times(&times)?;
        // measured at a 16 × 16 grid it costs little next to decoding the frames, and the motion
        // decoder then needs no second decoding of clips read for the latents
        self.velocities
            .insert(at, clip_velocity(&frames, MOTION_GRID));
        Ok(frames)
    }

    /// The global velocity of `at`'s clip ([`clip_velocity`]), decoding the clip only when it
    /// was not decoded before.
    pub fn velocity(&mut self, at: StimulusTr) -> Result<[f32; 2]> {
        if let Some(velocity) = self.velocities.get(&at) {
            return Ok(*velocity);
        }
        self.clip(at)?;
        Ok(self.velocities[&at])
    }
}

/// Captions by stimulus TR, read from a `split<TAB>segment<TAB>tr<TAB>caption` TSV.
pub fn read_captions(path: &Path) -> Result<HashMap<StimulusTr, String>> {
    let text = brainrecon_core::text::read_text(path)?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    if header.trim_end() != "split\tsegment\ttr\tcaption" {
        return Err(RouteError::mismatch(
            path,
            "header",
            "split<TAB>segment<TAB>tr<TAB>caption",
            header,
        ));
    }
    let mut captions = HashMap::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let row = i + 2;
        let cells: Vec<&str> = line.splitn(4, '\t').collect();
        let bad = |field: &str, expected: &str, found: &str| {
            RouteError::mismatch(path, format!("row {row} {field}"), expected, found)
        };
        if cells.len() != 4 {
            return Err(bad(
                "cells",
                "4 tab-separated cells",
                &cells.len().to_string(),
            ));
        }
        let split =
            Split::from_name(cells[0]).ok_or_else(|| bad("split", "train or test", cells[0]))?;
        let segment = cells[1]
            .parse::<usize>()
            .ok()
            .filter(|&s| s >= 1)
            .ok_or_else(|| bad("segment", "a segment number from 1", cells[1]))?;
        let tr = cells[2]
            .parse::<usize>()
            .map_err(|_| bad("tr", "a TR index from 0", cells[2]))?;
        captions.insert(
            StimulusTr { split, segment, tr },
            cells[3].trim().to_string(),
        );
    }
    Ok(captions)
}

/// The caption of each of `samples`; a sample without one is an error naming the file.
pub fn captions_of(
    path: &Path,
    captions: &HashMap<StimulusTr, String>,
    samples: &[StimulusTr],
) -> Result<Vec<String>> {
    samples
        .iter()
        .map(|s| {
            captions.get(s).cloned().ok_or_else(|| {
                RouteError::mismatch(
                    path,
                    "rows",
                    format!(
                        "a caption for {} segment {} TR {}",
                        s.split.name(),
                        s.segment,
                        s.tr
                    ),
                    "none",
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_sampled_evenly_inside_the_tr() {
        let clips = StimulusClips::new(Path::new("/none"), 2.0, 6);
        let t = clips.frame_times(3);
        assert_eq!(t.len(), 6);
        assert!((t[0] - 6.0).abs() < 1e-12 && (t[5] - (6.0 + 5.0 / 3.0)).abs() < 1e-12);
    }

    #[test]
    fn captions_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("captions.tsv");
        std::fs::write(
            &path,
            "split\tsegment\ttr\tcaption\ntrain\t1\t0\ta red circle\n",
        )
        .unwrap();
        let captions = read_captions(&path).unwrap();
        let at = StimulusTr {
            split: Split::Train,
            segment: 1,
            tr: 0,
        };
        assert_eq!(captions[&at], "a red circle");
        let missing = StimulusTr { tr: 1, ..at };
        let err = captions_of(&path, &captions, &[missing])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("captions.tsv") && err.contains("TR 1"),
            "{err}"
        );
        std::fs::write(&path, "split\tsegment\ttr\tcaption\nvalid\t1\t0\tx\n").unwrap();
        let err = read_captions(&path).unwrap_err().to_string();
        assert!(err.contains("row 2 split"), "{err}");
    }
}
