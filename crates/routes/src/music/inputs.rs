//! `music fit`'s external inputs, checked before any window is embedded (on ds003720's 2,160
//! windows embedding is minutes of work): the run set and its events, the embedding model
//! (its files exist, its configs parse, its weights load), every GTZAN track the events name
//! (it exists, its header is audio with a sample rate and a length, and each clip cut from it
//! fits, within `stimuli::TRACK_END_TOLERANCE`), the atlas (it exists, parses and lies on the run set's
//! grid) and, for clap-text, the captions (the file reads and every clip has one). Every
//! problem found is reported at once, one line each ([`RouteError::Inputs`]).

use super::decode::{self, Roi};
use super::embed::{Embedder, EmbeddingKind};
use super::fit::{read_captions, MusicFitOptions};
use super::windows::{presentations, Presentation};
use crate::error::{Result, RouteError};
use brainrecon_datasets::ds003720::{check_clip_fits, gtzan_track};
use brainrecon_datasets::runs::RunSet;
use brainrecon_formats::audio::read_header;
use candle_core::Device;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

/// Lines of one kind shown before the rest are counted (a wrong `--stimuli` layout would
/// otherwise print one line for each of ds003720's 540 clips).
const LINES_PER_KIND: usize = 20;

/// The inputs, checked and loaded.
pub(crate) struct Checked {
    pub runs: RunSet,
    pub shown: Vec<Presentation>,
    pub embedder: Embedder,
    pub captions: Option<BTreeMap<String, String>>,
    pub rois: Vec<Roi>,
}

/// The problems found so far, one line each.
#[derive(Default)]
struct Problems {
    lines: Vec<String>,
}

impl Problems {
    fn push(&mut self, line: impl Display) {
        self.lines.push(line.to_string());
    }

    /// The value, or None with its error recorded.
    fn take<T, E: Display>(&mut self, result: std::result::Result<T, E>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    /// At most [`LINES_PER_KIND`] of `lines`, then one counting the rest.
    fn push_capped(&mut self, lines: Vec<String>, kind: &str) {
        let more = lines.len().saturating_sub(LINES_PER_KIND);
        self.lines.extend(lines.into_iter().take(LINES_PER_KIND));
        if more > 0 {
            self.push(format!("… and {more} more {kind}"));
        }
    }
}

/// Checks every input of `music fit` (see the module's documentation) and returns them loaded;
/// all problems together in one [`RouteError::Inputs`] otherwise.
pub(crate) fn check_inputs(opts: &MusicFitOptions, device: &Device) -> Result<Checked> {
    let mut problems = Problems::default();
    let runs = problems.take(RunSet::open(&opts.runs));
    let shown = runs
        .as_ref()
        .and_then(|r| problems.take(presentations(r, &opts.test_task, opts.drop_first)));
    let embedder = problems.take(
        Embedder::load(opts.embedding, &opts.model, device).map_err(|e| model_problem(opts, e)),
    );
    let captions = check_captions(opts, shown.as_deref(), &mut problems);
    if opts.embedding != EmbeddingKind::ClapText {
        if let Some(shown) = &shown {
            check_tracks(opts, shown, &mut problems);
        }
    }
    let rois = runs.as_ref().and_then(|r| {
        problems.take(decode::atlas_rois(
            r,
            &opts.atlas,
            opts.atlas_names.as_deref(),
            opts.min_roi_voxels,
        ))
    });
    match (runs, shown, embedder, rois) {
        (Some(runs), Some(shown), Some(embedder), Some(rois)) if problems.lines.is_empty() => {
            Ok(Checked {
                runs,
                shown,
                embedder,
                captions,
                rois,
            })
        }
        _ => Err(RouteError::Inputs(problems.lines)),
    }
}

/// The model's error, naming the option it came from unless it names the model already.
fn model_problem(opts: &MusicFitOptions, error: RouteError) -> String {
    let text = error.to_string();
    if text.contains(&opts.model) {
        format!("--model: {text}")
    } else {
        format!("--model {}: {text}", opts.model)
    }
}

/// clap-text: the captions file reads and has a caption for every clip. None otherwise.
fn check_captions(
    opts: &MusicFitOptions,
    shown: Option<&[Presentation]>,
    problems: &mut Problems,
) -> Option<BTreeMap<String, String>> {
    if opts.embedding != EmbeddingKind::ClapText {
        return None;
    }
    let path = opts.captions.as_ref()?;
    let captions = problems.take(read_captions(path))?;
    let tracks: BTreeSet<String> = shown
        .unwrap_or_default()
        .iter()
        .map(|p| p.event.track_name())
        .collect();
    let missing: Vec<String> = tracks
        .iter()
        .filter(|t| !captions.contains_key(*t))
        .map(|t| {
            RouteError::mismatch(path, "track", format!("a caption of {t}"), "none").to_string()
        })
        .collect();
    problems.push_capped(missing, "clips without a caption");
    Some(captions)
}

/// Every track the clips are cut from: it exists under `--stimuli`, its header reads as audio
/// with a rate and a length, and each distinct clip ends inside it (or within
/// `stimuli::TRACK_END_TOLERANCE` of its end).
fn check_tracks(opts: &MusicFitOptions, shown: &[Presentation], problems: &mut Problems) {
    if !opts.stimuli.is_dir() {
        problems.push(RouteError::Missing {
            path: opts.stimuli.clone(),
            what: "the GTZAN folder of --stimuli: <genre>/<genre>.NNNNN.wav".into(),
        });
        return;
    }
    let mut by_track: BTreeMap<String, Vec<&Presentation>> = BTreeMap::new();
    for p in shown {
        by_track.entry(p.event.track_name()).or_default().push(p);
    }
    let (mut missing, mut unreadable, mut too_short) = (Vec::new(), Vec::new(), Vec::new());
    for uses in by_track.values() {
        let first = uses[0];
        let path = match gtzan_track(&opts.stimuli, &first.event.genre, first.event.track) {
            Ok(path) => path,
            Err(e) => {
                missing.push(format!("{e}; named by {}", rows_naming(uses)));
                continue;
            }
        };
        let header = match read_header(&path) {
            Ok(header) => header,
            Err(e) => {
                unreadable.push(format!("{e}; named by {}", rows_naming(uses)));
                continue;
            }
        };
        let mut clips = BTreeSet::new();
        for p in uses {
            let clip = (p.event.start.to_bits(), p.event.duration.to_bits());
            if clips.insert(clip) {
                if let Err(e) = check_clip_fits(&header, &path, &p.event, &p.events_file) {
                    too_short.push(e.to_string());
                }
            }
        }
    }
    problems.push_capped(missing, "tracks missing");
    problems.push_capped(unreadable, "tracks unreadable");
    problems.push_capped(too_short, "clips past the end of their track");
}

/// `FILE row N` of a track's first use, and how many others there are.
fn rows_naming(uses: &[&Presentation]) -> String {
    let first = format!(
        "{} row {}",
        uses[0].events_file.display(),
        uses[0].event.row
    );
    match uses.len() {
        1 => first,
        n => format!(
            "{first} and {} other row{}",
            n - 1,
            if n == 2 { "" } else { "s" }
        ),
    }
}
