//! The music genre neuroimaging dataset's stimuli (OpenNeuro ds003720; Nakai, Koide-Majima &
//! Nishimoto): each row of a run's `_events.tsv` is one 15-s clip cut from a GTZAN track.
//!
//! Columns read (BIDS `onset`, `duration`, and the dataset's own three):
//!
//! ```text
//! onset     seconds from the run's first volume
//! duration  seconds the clip played (15)
//! genre     GTZAN genre, written quoted in ds003720 ('blues'); quotes are removed
//! track     the track's index within its genre (blues.00042.wav is track 42)
//! start     where the clip starts in the track, in seconds
//! ```
//!
//! These names are those the public analysis code of ds003720 reads (`genre`, `track`, `start`
//! beside `onset`/`duration`); the dataset's files themselves were not available here to check
//! against. [`gtzan_track`] finds the track's audio under a GTZAN folder and [`event_clip`]
//! cuts the event's clip out of it.

use crate::error::{DataError, Result};
use brainrecon_formats::audio::{pad_allowance, read_audio, samples_past_end, Audio, AudioHeader};
use brainrecon_formats::events::Events;
use std::path::{Path, PathBuf};

/// GTZAN's ten genres, in its own (alphabetical) order.
pub const GTZAN_GENRES: [&str; 10] = [
    "blues",
    "classical",
    "country",
    "disco",
    "hiphop",
    "jazz",
    "metal",
    "pop",
    "reggae",
    "rock",
];
/// Seconds each ds003720 stimulus plays.
pub const CLIP_SECONDS: f64 = 15.0;

/// One row of a ds003720 events table.
#[derive(Debug, Clone, PartialEq)]
pub struct StimulusEvent {
    /// 1-based data row of the table (for messages).
    pub row: usize,
    /// Onset in the run, seconds.
    pub onset: f64,
    /// Duration, seconds ([`CLIP_SECONDS`] in ds003720).
    pub duration: f64,
    /// The GTZAN genre, as the table names it (`blues`, …; see [`GTZAN_GENRES`]).
    pub genre: String,
    /// Index of `genre`'s GTZAN track (0–99 in GTZAN).
    pub track: u32,
    /// Start of the clip within the track, in seconds.
    pub start: f64,
}

impl StimulusEvent {
    /// `blues.00042`: the track's file stem in GTZAN.
    pub fn track_name(&self) -> String {
        format!("{}.{:05}", self.genre, self.track)
    }

    /// Index of the genre in [`GTZAN_GENRES`], if it is one of them.
    pub fn genre_index(&self) -> Option<usize> {
        GTZAN_GENRES.iter().position(|g| *g == self.genre)
    }
}

/// Reads a ds003720 `_events.tsv`.
pub fn read_stimulus_events(path: &Path) -> Result<Vec<StimulusEvent>> {
    stimulus_events(&Events::read(path)?)
}

/// The stimulus events of a table already read. Every row needs an onset, a genre, a
/// non-negative integer track and a non-negative start; a missing duration (`n/a`) is 15 s.
pub fn stimulus_events(events: &Events) -> Result<Vec<StimulusEvent>> {
    let path = events.path();
    let onsets = events.onsets()?;
    let durations = events.durations()?;
    let genres = events.unquoted("genre")?;
    let tracks = events.integers("track")?;
    let starts = events.times("start")?;
    let invalid = |row: usize, column: &str, expected: &str, found: String| {
        DataError::invalid(path, format!("row {row} column {column}"), expected, found)
    };
    (0..events.len())
        .map(|i| {
            let row = i + 1;
            let genre = genres[i]
                .filter(|g| !g.is_empty())
                .ok_or_else(|| invalid(row, "genre", "a genre name", "n/a".into()))?;
            let track =
                tracks[i].ok_or_else(|| invalid(row, "track", "a track number", "n/a".into()))?;
            let track = u32::try_from(track)
                .map_err(|_| invalid(row, "track", "a track number ≥ 0", track.to_string()))?;
            let start = starts[i]
                .ok_or_else(|| invalid(row, "start", "a start in seconds", "n/a".into()))?;
            if !(start.is_finite() && start >= 0.0) {
                return Err(invalid(row, "start", "seconds ≥ 0", start.to_string()));
            }
            let duration = durations[i].unwrap_or(CLIP_SECONDS);
            if !(duration.is_finite() && duration > 0.0) {
                return Err(invalid(
                    row,
                    "duration",
                    "seconds > 0",
                    duration.to_string(),
                ));
            }
            Ok(StimulusEvent {
                row,
                onset: onsets[i],
                duration,
                genre: genre.to_string(),
                track,
                start,
            })
        })
        .collect()
}

/// Extensions tried for a GTZAN track, in order (GTZAN's own `.au` files are not read: convert
/// them, or use the `.wav` distribution).
pub const TRACK_EXTENSIONS: [&str; 4] = ["wav", "flac", "mp3", "ogg"];

/// The audio file of `genre`'s track `track` under a GTZAN folder: `<root>/<genre>/<genre>.NNNNN.wav`
/// (also `<root>/genres/…` and `<root>/genres_original/…`, the two layouts GTZAN is shared
/// in, and `.flac`, `.mp3`, `.ogg` for `.wav`).
pub fn gtzan_track(root: &Path, genre: &str, track: u32) -> Result<PathBuf> {
    let stem = format!("{genre}.{track:05}");
    let dirs = [
        root.join(genre),
        root.join("genres").join(genre),
        root.join("genres_original").join(genre),
    ];
    for dir in &dirs {
        for extension in TRACK_EXTENSIONS {
            let path = dir.join(format!("{stem}.{extension}"));
            if path.is_file() {
                return Ok(path);
            }
        }
    }
    Err(DataError::Missing {
        path: dirs[0].join(format!("{stem}.wav")),
        what: format!(
            "GTZAN track {stem} (.wav, .flac, .mp3 or .ogg) under {}, {}/genres or {}/genres_original",
            root.display(),
            root.display(),
            root.display()
        ),
    })
}

/// Seconds an event's clip may reach past the end of its track and still be cut, the missing
/// tail as silence. GTZAN's tracks are nominally 30 s, a few of them some hundredths of a
/// second shorter (29.98 s), while ds003720's events cut 15 s from 15 s on: they would end
/// past such a track by the few hundredths. 0.1 s covers that with room, yet stays far
/// below anything the analysis resolves: 1% of a 10-s embedding window, a fifteenth of a
/// 1.5-s TR (a window step), so no scan or window sees a different stimulus. A clip further
/// past the end points at the wrong track or start, and is refused.
pub const TRACK_END_TOLERANCE: f64 = 0.1;

fn clip_field(field: &str, event: &StimulusEvent, events_file: &Path) -> String {
    format!(
        "{field} of {} row {} ({})",
        events_file.display(),
        event.row,
        event.track_name()
    )
}

/// The event's clip cut from its track's audio (`start` to `start + duration`). A clip ending
/// at most [`TRACK_END_TOLERANCE`] past the end of the track gets its missing tail as silence;
/// one further past is an error naming the track file, the events file and row, and both
/// lengths.
pub fn cut_clip(track: &Audio, event: &StimulusEvent, events_file: &Path) -> Result<Audio> {
    track
        .clip_padded(event.start, event.duration, TRACK_END_TOLERANCE)
        .map_err(|e| match e {
            DataError::Invalid {
                path,
                field,
                expected,
                found,
            } => DataError::Invalid {
                path,
                field: clip_field(&field, event, events_file),
                expected,
                found,
            },
            other => other,
        })
}

/// Whether the event's clip can be cut from a track of the length its header gives (see
/// [`cut_clip`]), without decoding it: the same error as [`cut_clip`]'s when it cannot.
pub fn check_clip_fits(
    header: &AudioHeader,
    track_file: &Path,
    event: &StimulusEvent,
    events_file: &Path,
) -> Result<()> {
    let frames = usize::try_from(header.frames).unwrap_or(usize::MAX);
    let missing = samples_past_end(frames, header.rate, event.start, event.duration);
    if missing <= pad_allowance(header.rate, TRACK_END_TOLERANCE) {
        return Ok(());
    }
    let end = event.start + event.duration;
    Err(DataError::invalid(
        track_file,
        clip_field("clip", event, events_file),
        format!(
            "a clip inside the audio's {:.3} s ({} samples at {} Hz), or ending at most {TRACK_END_TOLERANCE} s past its end",
            header.duration(),
            header.frames,
            header.rate
        ),
        format!(
            "{} s + {} s (ends at {end:.3} s, {:.3} s past the end)",
            event.start,
            event.duration,
            end - header.duration()
        ),
    ))
}

/// Reads the event's track under `gtzan_root`, at `rate` Hz mono, and cuts the event's clip.
pub fn event_clip(
    gtzan_root: &Path,
    event: &StimulusEvent,
    events_file: &Path,
    rate: u32,
) -> Result<Audio> {
    let path = gtzan_track(gtzan_root, &event.genre, event.track)?;
    let track = read_audio(&path)?;
    // Cut first, then resample: the clip's edges are then filtered with the track's context
    // cut away, as a player starting at `start` would hear them.
    let clip = cut_clip(&track, event, events_file)?;
    clip.to_mono_at(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_typed_events_and_bad_cells_name_their_row() {
        let text = "onset\tduration\tgenre\ttrack\tstart\n0.0\t15.0\t'jazz'\t3\t7.5\n15.0\tn/a\t'rock'\t42\t0\n";
        let events = Events::parse(Path::new("run-01_events.tsv"), text).unwrap();
        let parsed = stimulus_events(&events).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].genre, "jazz");
        assert_eq!(parsed[0].genre_index(), Some(5));
        assert_eq!((parsed[0].track, parsed[0].start), (3, 7.5));
        assert_eq!(parsed[1].duration, CLIP_SECONDS);
        assert_eq!(parsed[1].track_name(), "rock.00042");
        let bad = "onset\tduration\tgenre\ttrack\tstart\n0\t15\tblues\t-1\t0\n";
        let err = stimulus_events(&Events::parse(Path::new("e.tsv"), bad).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("e.tsv") && err.contains("row 1 column track"),
            "{err}"
        );
        let missing = "onset\tduration\tgenre\ttrack\n0\t15\tblues\t1\n";
        let err = stimulus_events(&Events::parse(Path::new("e.tsv"), missing).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("a column named 'start'"), "{err}");
    }

    #[test]
    fn a_clip_past_the_track_names_the_track_and_the_row() {
        let track = Audio {
            samples: vec![0.0; 100 * 20],
            rate: 100,
            channels_in_file: 1,
            source: PathBuf::from("genres/pop/pop.00001.wav"),
        };
        let event = StimulusEvent {
            row: 4,
            onset: 45.0,
            duration: 15.0,
            genre: "pop".into(),
            track: 1,
            start: 6.0,
        };
        let err = cut_clip(&track, &event, Path::new("run-02_events.tsv"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pop.00001.wav")
                && err.contains("run-02_events.tsv row 4")
                && err.contains("past the end"),
            "{err}"
        );
        let fits = StimulusEvent {
            start: 5.0,
            ..event
        };
        assert_eq!(
            cut_clip(&track, &fits, Path::new("e.tsv"))
                .unwrap()
                .samples
                .len(),
            1500
        );
    }

    /// ds003720 cuts 15 s from 15 s on; a GTZAN track of 29.98 s is 0.02 s short of that.
    fn second_half(row: usize) -> StimulusEvent {
        StimulusEvent {
            row,
            onset: 30.0,
            duration: 15.0,
            genre: "blues".into(),
            track: 7,
            start: 15.0,
        }
    }

    fn track_of(seconds: f64, rate: u32) -> Audio {
        Audio {
            samples: vec![0.5; (seconds * rate as f64).round() as usize],
            rate,
            channels_in_file: 1,
            source: PathBuf::from("genres/blues/blues.00007.wav"),
        }
    }

    #[test]
    fn a_clip_a_little_past_a_short_track_is_padded_with_silence() {
        let rate = 22_050;
        let track = track_of(29.98, rate);
        let clip = cut_clip(&track, &second_half(5), Path::new("run-01_events.tsv")).unwrap();
        assert_eq!(clip.samples.len(), 15 * rate as usize);
        // The 0.02 s (441 samples) the track lacks are zeros; the rest is the track's.
        let kept = track.samples.len() - 15 * rate as usize;
        assert!(clip.samples[..kept].iter().all(|&v| v == 0.5));
        assert_eq!(clip.samples.len() - kept, 441);
        assert!(clip.samples[kept..].iter().all(|&v| v == 0.0));
        // The header alone says the same.
        let header = AudioHeader {
            rate,
            frames: track.samples.len() as u64,
        };
        check_clip_fits(&header, &track.source, &second_half(5), Path::new("e.tsv")).unwrap();
    }

    #[test]
    fn a_clip_past_the_tolerance_is_refused_naming_the_track_row_and_lengths() {
        let rate = 22_050;
        let track = track_of(20.0, rate);
        let events = Path::new("run-03_events.tsv");
        let header = AudioHeader {
            rate,
            frames: track.samples.len() as u64,
        };
        let cut = cut_clip(&track, &second_half(6), events)
            .unwrap_err()
            .to_string();
        let checked = check_clip_fits(&header, &track.source, &second_half(6), events)
            .unwrap_err()
            .to_string();
        for err in [&cut, &checked] {
            for needle in [
                "blues.00007.wav",
                "run-03_events.tsv row 6",
                "20.000 s",
                "ends at 30.000 s",
                "10.000 s past the end",
                "at most 0.1 s past",
            ] {
                assert!(err.contains(needle), "{needle:?} not in {err}");
            }
        }
        // Just past the tolerance (0.11 s short) is refused too; just inside (0.09 s) is not.
        assert!(cut_clip(&track_of(29.89, rate), &second_half(1), events).is_err());
        assert!(cut_clip(&track_of(29.91, rate), &second_half(1), events).is_ok());
    }
}
