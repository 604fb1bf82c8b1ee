//! Scores of groups of test clips: per test segment, per position in the segment (the first,
//! middle and last third of its scored stimulus TRs) and per segment × position, so that a
//! route that works on part of a segment only shows it (issue: the fMRI near a run's ends).

use super::evaluate::ClipRow;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Names of the thirds of a segment's stimulus TRs.
pub const POSITIONS: [&str; 3] = ["early", "middle", "late"];

/// Mean scores of one group of clips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupScores {
    /// What the group holds: `test1`, `early`, `test1 early`, …
    pub group: String,
    /// The test segment (1-based), when the group is one segment's.
    pub segment: Option<usize>,
    /// `early`, `middle` or `late`, when the group is one position's.
    pub position: Option<String>,
    /// Clips in the group.
    pub clips: usize,
    /// The first stimulus TR of the group's clips.
    pub first_tr: usize,
    /// The last stimulus TR of the group's clips.
    pub last_tr: usize,
    /// Mean of the clips' MinD-Video 2-way scores.
    pub two_way: f64,
    /// Share of the clips whose motion direction the rule reads right.
    pub direction: f64,
    /// Share whose colour it reads right.
    pub colour: f64,
    /// Share whose shape it reads right.
    pub shape: f64,
    /// Mean of the clips' SSIM.
    pub ssim: f64,
}

/// The third of its segment (index into POSITIONS) of each row: the segment's scored TRs
/// from first to last cut into three equal spans.
pub fn positions(rows: &[ClipRow]) -> Vec<usize> {
    let mut spans: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    for row in rows {
        let span = spans.entry(row.segment).or_insert((row.tr, row.tr));
        *span = (span.0.min(row.tr), span.1.max(row.tr));
    }
    rows.iter()
        .map(|row| {
            let (first, last) = spans[&row.segment];
            ((row.tr - first) * POSITIONS.len() / (last - first + 1)).min(POSITIONS.len() - 1)
        })
        .collect()
}

fn mean(rows: &[&ClipRow], value: impl Fn(&ClipRow) -> f64) -> f64 {
    rows.iter().map(|r| value(r)).sum::<f64>() / rows.len().max(1) as f64
}

fn group_scores(
    (segment, position): (Option<usize>, Option<usize>),
    rows: &[&ClipRow],
) -> GroupScores {
    let name = [
        segment.map(|s| format!("test{s}")),
        position.map(|p| POSITIONS[p].to_string()),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    let flag = |f: bool| f64::from(u8::from(f));
    GroupScores {
        group: name,
        segment,
        position: position.map(|p| POSITIONS[p].to_string()),
        clips: rows.len(),
        first_tr: rows.iter().map(|r| r.tr).min().unwrap_or(0),
        last_tr: rows.iter().map(|r| r.tr).max().unwrap_or(0),
        two_way: mean(rows, |r| r.two_way),
        direction: mean(rows, |r| flag(r.direction_correct)),
        colour: mean(rows, |r| flag(r.colour_correct)),
        shape: mean(rows, |r| flag(r.shape_correct)),
        ssim: mean(rows, |r| r.ssim),
    }
}

/// Scores per segment, then per position over all segments, then per segment × position
/// (groups without clips are left out).
pub fn breakdown(rows: &[ClipRow]) -> Vec<GroupScores> {
    let position = positions(rows);
    let mut segments: Vec<usize> = rows.iter().map(|r| r.segment).collect();
    segments.sort_unstable();
    segments.dedup();
    let keys = segments
        .iter()
        .map(|&s| (Some(s), None))
        .chain((0..POSITIONS.len()).map(|p| (None, Some(p))))
        .chain(
            segments
                .iter()
                .flat_map(|&s| (0..POSITIONS.len()).map(move |p| (Some(s), Some(p)))),
        );
    keys.filter_map(|(segment, pos)| {
        let members: Vec<&ClipRow> = rows
            .iter()
            .zip(&position)
            .filter(|(r, &p)| segment.is_none_or(|s| r.segment == s) && pos.is_none_or(|q| p == q))
            .map(|(r, _)| r)
            .collect();
        (!members.is_empty()).then(|| group_scores((segment, pos), &members))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(segment: usize, tr: usize, colour: bool, two_way: f64) -> ClipRow {
        ClipRow {
            segment,
            tr,
            stimulus_reading: String::new(),
            reconstruction_reading: String::new(),
            direction_correct: false,
            colour_correct: colour,
            shape_correct: true,
            ssim: 0.5,
            psnr: 10.0,
            two_way,
            decoded_caption: None,
        }
    }

    #[test]
    fn segments_and_thirds_are_scored_apart() {
        // Segment 1: TRs 0..9, colour right in the first third only; segment 2: TRs 0..2.
        let mut rows: Vec<ClipRow> = (0..9).map(|t| row(1, t, t < 3, 1.0)).collect();
        rows.extend((0..3).map(|t| row(2, t, true, 0.5)));
        assert_eq!(positions(&rows), [0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 1, 2]);
        let groups = breakdown(&rows);
        let names: Vec<&str> = groups.iter().map(|g| g.group.as_str()).collect();
        assert_eq!(
            names,
            [
                "test1",
                "test2",
                "early",
                "middle",
                "late",
                "test1 early",
                "test1 middle",
                "test1 late",
                "test2 early",
                "test2 middle",
                "test2 late"
            ]
        );
        let by = |name: &str| groups.iter().find(|g| g.group == name).unwrap();
        assert_eq!((by("test1").clips, by("test1").colour), (9, 3.0 / 9.0));
        assert_eq!(
            (by("test1 early").colour, by("test1 late").colour),
            (1.0, 0.0)
        );
        assert_eq!(
            (by("test1 late").first_tr, by("test1 late").last_tr),
            (6, 8)
        );
        assert_eq!((by("early").clips, by("early").colour), (4, 1.0));
        assert_eq!(by("late").colour, 0.25);
        assert_eq!(by("test2").two_way, 0.5);
        assert_eq!(by("test2 middle").segment, Some(2));
        assert_eq!(by("middle").position.as_deref(), Some("middle"));
    }
}
