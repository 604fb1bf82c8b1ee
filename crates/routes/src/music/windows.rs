//! The paper's samples: each clip presentation cut into windows (10 s advanced 1.5 s: 4 per
//! 15-s clip), each window's fMRI the mean of the scans acquired inside it, test clips' windows
//! averaged over their repeats.

use crate::error::{Result, RouteError};
use brainrecon_datasets::ds003720::{stimulus_events, StimulusEvent};
use brainrecon_datasets::runs::RunSet;
use brainrecon_formats::events::Events;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Window length, step and the shift of the scans against the audio.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct WindowSpec {
    /// Seconds of audio per window (MuLan's 10 s).
    #[cfg_attr(
        feature = "cli",
        arg(
            long = "window",
            value_name = "WINDOW",
            default_value_t = 10.0,
            help = "Seconds of audio per window"
        )
    )]
    pub seconds: f64,
    /// Seconds between window starts (one TR of ds003720: 1.5 s).
    #[cfg_attr(
        feature = "cli",
        arg(long, default_value_t = 1.5, help = "Seconds between windows")
    )]
    pub step: f64,
    /// Seconds the scans are shifted after the audio (0: the scans inside the window, as the
    /// paper aligns them).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            default_value_t = 0.0,
            help = "Seconds the scans are shifted after the audio (0: the scans inside the window)"
        )
    )]
    pub delay: f64,
}

impl WindowSpec {
    /// Windows that fit in a clip of `clip_seconds` (at least one).
    pub fn count(&self, clip_seconds: f64) -> usize {
        (((clip_seconds - self.seconds) / self.step + 1e-9).floor() as i64 + 1).max(1) as usize
    }
}

/// One presentation of a clip.
#[derive(Debug, Clone)]
pub struct Presentation {
    /// Index of the run in the run set.
    pub run: usize,
    /// The run's events file (named in errors).
    pub events_file: PathBuf,
    /// The clip as the events table gives it: onset, genre, track, start.
    pub event: StimulusEvent,
    /// Whether the run is of the test task.
    pub test: bool,
}

/// A clip heard in the scanner (all its presentations share its track and start).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClipKey {
    /// The GTZAN genre (`blues`, …).
    pub genre: String,
    /// Index of the genre's GTZAN track.
    pub track: u32,
    /// Start of the clip in its track, seconds.
    pub start: f64,
    /// Length of the clip, seconds.
    pub duration: f64,
}

impl ClipKey {
    /// `blues.00042`.
    pub fn track_name(&self) -> String {
        format!("{}.{:05}", self.genre, self.track)
    }
}

/// A decoding sample: window `window` of a clip, with the mean fMRI over its presentations.
#[derive(Debug, Clone)]
pub struct WindowSample {
    /// Index into [`Windows::clips`].
    pub clip: usize,
    /// Index of the window within its clip.
    pub window: usize,
    /// Seconds from the clip's start.
    pub offset: f64,
}

/// The samples of one split: clips, windows and their fMRI rows.
#[derive(Debug, Clone)]
pub struct Windows {
    /// The split's distinct clips.
    pub clips: Vec<ClipKey>,
    /// One per row of `fmri`.
    pub samples: Vec<WindowSample>,
    /// (samples, voxels) row-major.
    pub fmri: Vec<f32>,
    /// Voxels per row.
    pub n_voxels: usize,
}

/// Every stimulus presentation of the run set, split by task (`test_task` = test). The first
/// clip of each run is dropped when `drop_first` (ds003720's analyses drop it: it repeats a clip
/// and its response starts from rest).
pub fn presentations(
    runs: &RunSet,
    test_task: &str,
    drop_first: bool,
) -> Result<Vec<Presentation>> {
    let mut out = Vec::new();
    for (i, run) in runs.runs().iter().enumerate() {
        let Some(events) = &run.events else {
            return Err(RouteError::Missing {
                path: runs.root().join("runset.json"),
                what: format!(
                    "the events of run {} (genre, track, start per clip)",
                    run.name
                ),
            });
        };
        let path = runs.root().join(events);
        let events = stimulus_events(&Events::read(&path)?)?;
        let skip = usize::from(drop_first && !events.is_empty());
        for event in events.into_iter().skip(skip) {
            out.push(Presentation {
                run: i,
                events_file: path.clone(),
                event,
                test: run.task == test_task,
            });
        }
    }
    Ok(out)
}

/// What a window holds of a run.
#[derive(Debug, PartialEq)]
enum WindowScans {
    /// The mean of its uncensored scans.
    Mean(Vec<f32>),
    /// Scans, but every one censored (fMRIPrep scrubbing): the presentation is left out.
    AllCensored,
    /// No scan at all: the clip lies past the run.
    None,
}

/// Mean of the run's rows whose acquisition time lies in `[from, to)` (recording clock),
/// leaving out the rows the run set lists as censored (they hold zeros, not data).
fn window_mean(
    data: &[f32],
    (n_trs, n_voxels): (usize, usize),
    (start_seconds, tr): (f64, f64),
    (from, to): (f64, f64),
    censored: &[usize],
) -> WindowScans {
    let mut acc = vec![0f64; n_voxels];
    let (mut rows, mut inside) = (0usize, 0usize);
    for t in 0..n_trs {
        let time = start_seconds + t as f64 * tr;
        if time + 1e-9 >= from && time + 1e-9 < to {
            inside += 1;
            if censored.contains(&t) {
                continue;
            }
            let row = &data[t * n_voxels..(t + 1) * n_voxels];
            acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v as f64);
            rows += 1;
        }
    }
    match (rows, inside) {
        (0, 0) => WindowScans::None,
        (0, _) => WindowScans::AllCensored,
        _ => WindowScans::Mean(acc.iter().map(|a| (a / rows as f64) as f32).collect()),
    }
}

fn clip_key(event: &StimulusEvent) -> ClipKey {
    ClipKey {
        genre: event.genre.clone(),
        track: event.track,
        start: event.start,
        duration: event.duration,
    }
}

/// The windows of `split` (test or not): per clip in order of first presentation, per window,
/// the fMRI averaged over the scans inside the window and over the clip's presentations.
pub fn split_windows(
    runs: &RunSet,
    presentations: &[Presentation],
    test: bool,
    spec: &WindowSpec,
) -> Result<Windows> {
    let n_voxels = runs.n_voxels();
    let mut order: Vec<ClipKey> = Vec::new();
    let mut sums: BTreeMap<(usize, usize), (Vec<f64>, usize)> = BTreeMap::new();
    let mut by_run: BTreeMap<usize, Vec<&Presentation>> = BTreeMap::new();
    presentations
        .iter()
        .filter(|p| p.test == test)
        .for_each(|p| by_run.entry(p.run).or_default().push(p));
    for (&run, list) in &by_run {
        let info = &runs.runs()[run];
        let censored: &[usize] = info.confounds.as_ref().map_or(&[], |c| &c.censored);
        let data = runs.run_data(run)?;
        let data = data.as_slice();
        for p in list {
            let key = clip_key(&p.event);
            let clip = match order
                .iter()
                .position(|k| k.track_name() == key.track_name())
            {
                Some(c) => c,
                None => {
                    order.push(key);
                    order.len() - 1
                }
            };
            for w in 0..spec.count(p.event.duration) {
                let from = p.event.onset + w as f64 * spec.step + spec.delay;
                let to = from + spec.seconds;
                let mean = match window_mean(data, (info.n_trs, n_voxels), (info.start_seconds, runs.tr()), (from, to), censored) {
                    WindowScans::Mean(mean) => mean,
                    WindowScans::AllCensored => continue,
                    WindowScans::None => {
                        return Err(RouteError::mismatch(
                            &p.events_file,
                            format!("onset of row {} ({})", p.event.row, p.event.track_name()),
                            format!("a clip whose window {w} ({from:.1}–{to:.1} s) holds scans of the run's {} ({} TRs from {} s)", info.name, info.n_trs, info.start_seconds),
                            format!("{} s, past the end of the run", p.event.onset),
                        ))
                    }
                };
                let entry = sums
                    .entry((clip, w))
                    .or_insert_with(|| (vec![0.0; n_voxels], 0));
                entry
                    .0
                    .iter_mut()
                    .zip(&mean)
                    .for_each(|(a, &v)| *a += v as f64);
                entry.1 += 1;
            }
        }
    }
    let mut samples = Vec::with_capacity(sums.len());
    let mut fmri = Vec::with_capacity(sums.len() * n_voxels);
    for (&(clip, window), (sum, count)) in &sums {
        samples.push(WindowSample {
            clip,
            window,
            offset: window as f64 * spec.step,
        });
        fmri.extend(sum.iter().map(|s| (s / *count as f64) as f32));
    }
    Ok(Windows {
        clips: order,
        samples,
        fmri,
        n_voxels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifteen_second_clip_has_the_papers_four_windows() {
        let spec = WindowSpec {
            seconds: 10.0,
            step: 1.5,
            delay: 0.0,
        };
        assert_eq!(spec.count(15.0), 4);
        assert_eq!(spec.count(14.4), 3);
        assert_eq!(spec.count(5.0), 1);
    }

    #[test]
    fn a_window_averages_the_scans_acquired_inside_it() {
        // 8 TRs of 2 voxels at TR 1.5 s from 0 s: row t = (t, -t).
        let data: Vec<f32> = (0..8).flat_map(|t| [t as f32, -(t as f32)]).collect();
        // [3, 7.5): rows at 3.0, 4.5, 6.0 → mean 3.
        let mean = window_mean(&data, (8, 2), (0.0, 1.5), (3.0, 7.5), &[]);
        assert_eq!(mean, WindowScans::Mean(vec![3.0, -3.0]));
        // The recording clock: rows start at 1.5 s.
        let mean = window_mean(&data, (8, 2), (1.5, 1.5), (3.0, 7.5), &[]);
        assert_eq!(mean, WindowScans::Mean(vec![2.0, -2.0]));
        let past = window_mean(&data, (8, 2), (0.0, 1.5), (12.0, 20.0), &[]);
        assert_eq!(past, WindowScans::None);
    }

    #[test]
    fn censored_scans_leave_the_window_mean() {
        let data: Vec<f32> = (0..8).flat_map(|t| [t as f32, -(t as f32)]).collect();
        // [3, 7.5) holds rows 2, 3, 4; row 4 censored → mean of rows 2 and 3.
        let mean = window_mean(&data, (8, 2), (0.0, 1.5), (3.0, 7.5), &[4, 7]);
        assert_eq!(mean, WindowScans::Mean(vec![2.5, -2.5]));
        let all = window_mean(&data, (8, 2), (0.0, 1.5), (3.0, 7.5), &[2, 3, 4]);
        assert_eq!(all, WindowScans::AllCensored);
    }
}
