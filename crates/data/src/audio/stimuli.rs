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

use super::{read_audio, Audio};
use crate::error::{DataError, Result};
use crate::runs::Events;
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
    pub onset: f64,
    pub duration: f64,
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
    let starts = events.numbers("start")?;
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

/// The event's clip cut from its track's audio (`start` to `start + duration`). A clip past the
/// end of the track is an error naming the track file, the events file and row.
pub fn cut_clip(track: &Audio, event: &StimulusEvent, events_file: &Path) -> Result<Audio> {
    track
        .clip(event.start, event.duration)
        .map_err(|e| match e {
            DataError::Invalid {
                path,
                field,
                expected,
                found,
            } => DataError::Invalid {
                path,
                field: format!(
                    "{field} of {} row {} ({})",
                    events_file.display(),
                    event.row,
                    event.track_name()
                ),
                expected,
                found,
            },
            other => other,
        })
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
}
