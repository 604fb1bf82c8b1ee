//! `simulate --kind music`: a synthetic subject listening to music, laid out as the music genre
//! neuroimaging dataset (OpenNeuro ds003720) ships it, with GTZAN-like audio and the truth
//! beside it.
//!
//! ```text
//! dataset_description.json, participants.tsv
//! sub-001/func/sub-001_task-Training_run-NN_bold.nii   int16 + scl_slope, TR 1.5 s
//! sub-001/func/sub-001_task-Training_run-NN_bold.json  {"RepetitionTime": 1.5, "TaskName": "Training"}
//! sub-001/func/sub-001_task-Training_run-NN_events.tsv onset, duration, genre ('blues'), track, start
//! sub-001/func/sub-001_task-Test_run-NN_{bold.nii,bold.json,events.tsv}
//! stimuli/genres/<genre>/<genre>.000NN.wav             the tracks: 22050 Hz mono 16-bit PCM
//! stimuli/captions.tsv                                 track ('blues.00042'), start, caption per clip
//! library/<genre>/<genre>.000NN.wav                    15-s tracks nobody heard, for retrieval
//! derivatives/mask/sub-001_mask.nii.gz                 the brain (int16 0/1)
//! derivatives/atlas/sub-001_atlas-Destrieux_dseg.nii.gz   cortical ROIs (int16 labels)
//! derivatives/atlas/sub-001_atlas-Destrieux_dseg.tsv      index, name (FreeSurfer aparc.a2009s numbering and names)
//! truth/                                               see TRUTH_FILES
//! ```
//!
//! **Stimuli.** Ten synthetic genres named after GTZAN's, each a recipe: a tempo range, a
//! 16-step drum pattern on a kit of sine-sweep and noise voices (or no drums), a swing, modes,
//! chord progressions, bass and comping rhythms, and a choice of instruments (additive or FM
//! recipes, some overdriven). A clip's plan draws the tempo, key, mode, progression,
//! instruments and a mood from its genre; its caption is written from a small grammar naming
//! genre, instruments, drums, mood, tempo and key. Each clip is the 15 s from `start` of its
//! own track (`--track-seconds` long; GTZAN's are 30 s), rendered at 22050 Hz and normalised
//! to RMS 0.1.
//!
//! **Design** (ds003720, Nakai et al.): per genre, 1/9 of the clips (at least one) are test
//! clips, the rest training clips. Training runs hold `--clips-per-run` clips heard once;
//! test runs hold `--clips-per-run / 4` clips heard 4 times each, in shuffled order. Every run
//! starts with one extra clip at onset 0, a repeat of the run's last presentation (the
//! dataset's analyses drop the first clip of each run; which clip it repeats there was not
//! checked), then plays clips back to back: 10 TRs each (41 clips, 410 volumes per run at the
//! paper's size, as public analyses of ds003720 read it). That each test run holds its own
//! clips, all 4 presentations of them, is this simulator's reading of the paper, not checked
//! against the dataset's files. The paper's size (`MusicOptions::paper`):
//! 54 clips per genre, 40 per run: 480 training clips in 12 runs and 60 test clips × 4 in 6.
//!
//! **Brain.** An ellipsoid cut into 24 Destrieux-named ROIs (12 per hemisphere, angular
//! sectors in the y–z plane). Four ROIs per hemisphere are auditory (Heschl's gyrus, the
//! transverse temporal sulcus, planum temporale, lateral STG): 85% of their voxels follow the
//! clip's acoustic features per TR ([`brainrecon_formats::audio::features`], computed from the written
//! audio itself and z-scored over all clips); four are higher-level (STS, middle temporal,
//! IFG triangular part, angular gyrus): 85% of their voxels follow the clip's semantic vector
//! (genre one-hot and a 4-d hidden vector of the caption's mood word), constant over the clip;
//! the rest, and every voxel of the other four ROIs, carry noise only. Each driven voxel mixes
//! its features with fixed random weights; the drive is convolved with SPM's canonical HRF at
//! the TR and scaled to 1% signal change, plus slow drift and Gaussian noise at `snr`, on a
//! baseline of 800–1200 (as `--kind movie`).

use super::bold::{bold_volumes, grid_affine, write_bold_run, write_voxel_truth};
use super::movie::canonical_hrf;
use super::new_output_dir;
use crate::synth::{midi_hz, mix, render_drum, render_note, Drum, Envelope, Timbre, Voice};
use brainrecon_core::error::{DataError, Result};
use brainrecon_core::fs::{write_bytes_atomic, write_json_atomic};
use brainrecon_datasets::ds003720::GTZAN_GENRES;
use brainrecon_formats::audio::features::{acoustic_features, feature_names, N_FEATURES};
use brainrecon_formats::audio::wav;
use brainrecon_formats::nifti_io;
use brainrecon_formats::npy;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Seconds per volume (ds003720's).
pub const TR: f64 = 1.5;
/// Sample rate of the tracks (GTZAN's).
pub const RATE: u32 = 22_050;
/// Seconds per clip (ds003720's).
pub const CLIP_SECONDS: f64 = 15.0;
/// Volumes per clip.
pub const TRS_PER_CLIP: usize = 10;
/// Presentations of each test clip.
pub const TEST_REPEATS: usize = 4;
/// Dimensions of the mood words' hidden vectors.
pub const MOOD_DIM: usize = 4;
/// Columns of the semantic vector: genre one-hot, then the mood vector.
pub const SEMANTIC_DIM: usize = GTZAN_GENRES.len() + MOOD_DIM;
const SUBJECT: &str = "001";
const TASKS: [&str; 2] = ["Training", "Test"];
/// Share of an ROI's voxels its group drives (the rest are noise).
const DRIVEN_SHARE: f64 = 0.85;
const TRACK_RMS: f64 = 0.1;

/// Voxel groups, in the order of `voxel_group.npy`'s values.
pub const GROUPS: [&str; 3] = ["acoustic", "semantic", "noise"];

/// ROIs per hemisphere: (Destrieux index in FreeSurfer's aparc.a2009s table, name, group).
/// The label value is 11100 + index on the left, 12100 + index on the right.
pub const ROIS: [(u32, &str, usize); 12] = [
    (33, "G_temp_sup-G_T_transv", 0),
    (74, "S_temporal_sup", 1),
    (19, "G_occipital_middle", 2),
    (75, "S_temporal_transverse", 0),
    (38, "G_temporal_middle", 1),
    (29, "G_precentral", 2),
    (36, "G_temp_sup-Plan_tempo", 0),
    (14, "G_front_inf-Triangul", 1),
    (16, "G_front_sup", 2),
    (34, "G_temp_sup-Lateral", 0),
    (25, "G_pariet_inf-Angular", 1),
    (11, "G_cuneus", 2),
];

/// Files in `truth/`.
pub const TRUTH_FILES: &str = "truth.json; clips.json (per clip: id, genre, track, start, split, tempo, key, mode, \
instruments, drums, mood, caption, audio file); acoustic.npy (clips, 10, 10) float32 raw features per TR (names in truth.json); \
semantic.npy (clips, 14) float32 genre one-hot + mood vector; moods.json (mood word → hidden vector); \
voxels.npy (brain voxels, 3) int32 (i, j, k), ordered as `bids prepare --mask derivatives/mask/sub-001_mask.nii.gz` orders them; \
voxel_group.npy (brain voxels,) int32 index into truth.json groups; voxel_roi.npy (brain voxels,) int32 atlas label; \
signal/task-<T>_run-NN.npy (TRs, brain voxels) float32 noise-free response in % signal change (no drift, no noise)";

/// What `simulate --kind music` writes.
#[derive(Debug, Clone)]
pub struct MusicOptions {
    /// The dataset root to create.
    pub out: PathBuf,
    /// Clips per genre heard by the subject (1/9 of them test clips).
    pub clips_per_genre: usize,
    /// Clips per training run (test runs hold a quarter as many, each heard 4 times).
    pub clips_per_run: usize,
    /// Length of each GTZAN-like track (≥ 15 s).
    pub track_seconds: f64,
    /// Seed of every random draw.
    pub seed: u64,
    /// (X, Y, Z)
    pub volume_shape: [usize; 3],
    /// Signal std / noise std per volume.
    pub snr: f64,
    /// Tracks per genre in `library/`: a music library for retrieval, drawn from a stream of
    /// clips that no subject hears (and that genres-clap was not trained on).
    pub library_per_genre: usize,
}

impl MusicOptions {
    /// Small enough for tests: 5 clips per genre (40 training, 10 test), 20 per run, 18-s
    /// tracks, a 16 × 16 × 10 volume.
    pub fn new(out: &Path) -> Self {
        MusicOptions {
            out: out.to_path_buf(),
            clips_per_genre: 5,
            clips_per_run: 20,
            track_seconds: 18.0,
            seed: 0,
            volume_shape: [16, 16, 10],
            snr: 1.0,
            library_per_genre: 5,
        }
    }

    /// ds003720's design: 54 clips per genre (480 training, 60 test), 40 per run, 30-s tracks.
    pub fn paper(out: &Path) -> Self {
        MusicOptions {
            clips_per_genre: 54,
            clips_per_run: 40,
            track_seconds: 30.0,
            library_per_genre: 20,
            ..MusicOptions::new(out)
        }
    }

    /// Test clips per genre: 1/9 of them, at least one.
    pub fn test_per_genre(&self) -> usize {
        ((self.clips_per_genre as f64 / 9.0).round() as usize).max(1)
    }
}

/// One clip: what was played and how it was made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Clip {
    /// The clip's index in `clips.json`.
    pub id: usize,
    /// Its genre (one of GTZAN's ten names).
    pub genre: String,
    /// Its track number within the genre (`<genre>.000NN.wav`).
    pub track: u32,
    /// Start of the clip within the track, seconds.
    pub start: f64,
    /// `train` or `test`.
    pub split: String,
    /// Tempo, beats per minute.
    pub tempo: f64,
    /// Tonic as a note name (C … B).
    pub key: String,
    /// Mode (`major`, `minor`, `dorian`, `mixolydian`, `phrygian`).
    pub mode: String,
    /// Lead, chords, bass.
    pub instruments: Vec<String>,
    /// The drum kit's description, or none.
    pub drums: Option<String>,
    /// The mood word its caption uses.
    pub mood: String,
    /// Its caption (the captions table's).
    pub caption: String,
    /// The track file, relative to the dataset root.
    pub audio: String,
}

/// One run: its task and what it played.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunTruth {
    /// `Training` or `Test`.
    pub task: String,
    /// Run number within the task (1-based, `run-NN`).
    pub run: usize,
    /// Clip ids in order of presentation, the leading repeat first.
    pub clips: Vec<usize>,
    /// Volumes of the run (10 per clip).
    pub n_trs: usize,
}

/// One ROI of the atlas and how many of its voxels are driven.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RoiTruth {
    /// Its value in the atlas (FreeSurfer's aparc.a2009s numbering).
    pub label: i32,
    /// Its Destrieux name (`ctx_lh_S_temporal_transverse`, …).
    pub name: String,
    /// The group it belongs to (of [`GROUPS`]).
    pub group: String,
    /// Voxels in the ROI.
    pub n_voxels: usize,
    /// Of them, those following the group's features (none for noise ROIs).
    pub n_driven: usize,
}

/// `truth/truth.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MusicTruth {
    /// `sub-001`.
    pub subject: String,
    /// The seed it was made with.
    pub seed: u64,
    /// Seconds per volume ([`TR`]).
    pub tr: f64,
    /// Audio sample rate, Hz ([`RATE`]).
    pub rate: u32,
    /// Seconds of each clip ([`CLIP_SECONDS`]).
    pub clip_seconds: f64,
    /// Seconds of each track.
    pub track_seconds: f64,
    /// The genres, in GTZAN's order (the semantic one-hot's).
    pub genres: Vec<String>,
    /// Clips per genre heard by the subject.
    pub clips_per_genre: usize,
    /// Training clips, each heard once.
    pub n_train_clips: usize,
    /// Test clips, each heard `test_repeats` times.
    pub n_test_clips: usize,
    /// Presentations of each test clip ([`TEST_REPEATS`]).
    pub test_repeats: usize,
    /// Every run, training first.
    pub runs: Vec<RunTruth>,
    /// (X, Y, Z)
    pub volume_shape: [usize; 3],
    /// Voxels inside the brain mask.
    pub n_brain_voxels: usize,
    /// Voxel groups ([`GROUPS`]; `voxel_group.npy` indexes them).
    pub groups: Vec<String>,
    /// Voxels in each group, in `groups` order.
    pub group_voxels: Vec<usize>,
    /// The atlas's ROIs.
    pub rois: Vec<RoiTruth>,
    /// Names of the acoustic features (`acoustic.npy`'s second axis).
    pub acoustic_features: Vec<String>,
    /// Width of the semantic vector: genre one-hot and mood ([`SEMANTIC_DIM`]).
    pub semantic_dim: usize,
    /// Signal std / noise std per volume.
    pub snr: f64,
    /// Std of each driven voxel's response, % signal change.
    pub signal_percent: f64,
    /// The HRF sampled at the TR (sum 1).
    pub hrf: Vec<f64>,
    /// The HRF, in words.
    pub hrf_description: String,
    /// What `truth/` holds ([`TRUTH_FILES`]).
    pub files: String,
}

/// What [`simulate_music`] wrote.
#[derive(Debug)]
pub struct SimulatedMusic {
    /// The dataset root.
    pub out: PathBuf,
    /// Its `truth/truth.json`.
    pub truth: MusicTruth,
}

// ---------------------------------------------------------------------------------------------
// Genres

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Major,
    Minor,
    Dorian,
    Mixolydian,
    Phrygian,
}

impl Mode {
    fn scale(self) -> [i32; 7] {
        match self {
            Mode::Major => [0, 2, 4, 5, 7, 9, 11],
            Mode::Minor => [0, 2, 3, 5, 7, 8, 10],
            Mode::Dorian => [0, 2, 3, 5, 7, 9, 10],
            Mode::Mixolydian => [0, 2, 4, 5, 7, 9, 10],
            Mode::Phrygian => [0, 1, 3, 5, 7, 8, 10],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Major => "major",
            Mode::Minor => "minor",
            Mode::Dorian => "dorian",
            Mode::Mixolydian => "mixolydian",
            Mode::Phrygian => "phrygian",
        }
    }

    /// Whether the mode's third is major (for the caption's "major"/"minor key").
    fn is_major(self) -> bool {
        self.scale()[2] == 4
    }
}

/// How chords are voiced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Voicing {
    Triad,
    Seventh,
    Power,
}

/// A genre's recipe. Patterns are 16 steps (sixteenth notes) of one 4/4 bar: `x` plays.
/// Bass patterns: `x` the chord's root, `f` its fifth, `o` the root an octave up, `w` a
/// walking step towards the next bar's root.
struct Genre {
    name: &'static str,
    phrase: &'static str,
    tempo: (f64, f64),
    modes: &'static [Mode],
    swing: f64,
    drums: &'static [(Drum, &'static str)],
    drums_phrase: &'static str,
    progressions: &'static [&'static [usize]],
    voicing: Voicing,
    comp: &'static str,
    comp_hold: usize,
    bass: &'static str,
    leads: &'static [&'static str],
    chords: &'static [&'static str],
    basses: &'static [&'static str],
    /// Probability that an eighth-note position starts a lead note.
    lead_density: f64,
    moods: [&'static str; 3],
}

const HATS: &str = "x.x.x.x.x.x.x.x.";
const BACKBEAT: &str = "....x.......x...";

static GENRES: [Genre; 10] = [
    Genre {
        name: "blues",
        phrase: "blues",
        tempo: (68.0, 96.0),
        modes: &[Mode::Mixolydian],
        swing: 0.66,
        drums: &[
            (Drum::Kick, "x.......x......."),
            (Drum::Snare, BACKBEAT),
            (Drum::ClosedHat, HATS),
        ],
        drums_phrase: "a shuffle beat",
        progressions: &[
            &[0, 0, 0, 0, 3, 3, 0, 0, 4, 3, 0, 4],
            &[0, 3, 0, 0, 3, 3, 0, 0, 4, 3, 0, 4],
        ],
        voicing: Voicing::Seventh,
        comp: "x.....x.x.....x.",
        comp_hold: 3,
        bass: "w...w...w...w...",
        leads: &["harmonica", "piano"],
        chords: &["electric organ", "piano"],
        basses: &["upright bass", "electric bass"],
        lead_density: 0.35,
        moods: ["melancholic", "soulful", "gritty"],
    },
    Genre {
        name: "classical",
        phrase: "classical",
        tempo: (60.0, 96.0),
        modes: &[Mode::Major, Mode::Minor],
        swing: 0.5,
        drums: &[],
        drums_phrase: "",
        progressions: &[&[0, 3, 4, 0], &[0, 5, 3, 4], &[0, 4, 5, 3]],
        voicing: Voicing::Triad,
        comp: "x.......x.......",
        comp_hold: 8,
        bass: "x.......x.......",
        leads: &["flute", "violin"],
        chords: &["string section", "piano"],
        basses: &["cello"],
        lead_density: 0.45,
        moods: ["serene", "stately", "dramatic"],
    },
    Genre {
        name: "country",
        phrase: "country",
        tempo: (100.0, 130.0),
        modes: &[Mode::Major],
        swing: 0.5,
        drums: &[
            (Drum::Kick, "x.......x......."),
            (Drum::Rimshot, BACKBEAT),
            (Drum::ClosedHat, HATS),
        ],
        drums_phrase: "a train beat",
        progressions: &[&[0, 3, 4, 0], &[0, 0, 3, 4]],
        voicing: Voicing::Triad,
        comp: "..x...x...x...x.",
        comp_hold: 1,
        bass: "x...f...x...f...",
        leads: &["fiddle", "steel guitar"],
        chords: &["twangy guitar", "clean guitar"],
        basses: &["electric bass"],
        lead_density: 0.4,
        moods: ["cheerful", "nostalgic", "easygoing"],
    },
    Genre {
        name: "disco",
        phrase: "disco",
        tempo: (112.0, 128.0),
        modes: &[Mode::Minor, Mode::Dorian],
        swing: 0.5,
        drums: &[
            (Drum::Kick, "x...x...x...x..."),
            (Drum::Clap, BACKBEAT),
            (Drum::OpenHat, "..x...x...x...x."),
            (Drum::ClosedHat, "x...x...x...x..."),
        ],
        drums_phrase: "a four-on-the-floor beat",
        progressions: &[&[0, 3], &[0, 5, 3, 4]],
        voicing: Voicing::Seventh,
        comp: "..x...x...x...x.",
        comp_hold: 1,
        bass: "x.o.x.o.x.o.x.o.",
        leads: &["synth strings", "brass"],
        chords: &["electric piano", "clean guitar"],
        basses: &["electric bass"],
        lead_density: 0.3,
        moods: ["groovy", "euphoric", "glamorous"],
    },
    Genre {
        name: "hiphop",
        phrase: "hip hop",
        tempo: (80.0, 98.0),
        modes: &[Mode::Minor],
        swing: 0.58,
        drums: &[
            (Drum::Kick, "x......x..x....."),
            (Drum::Snare, BACKBEAT),
            (Drum::ClosedHat, HATS),
        ],
        drums_phrase: "a boom-bap beat",
        progressions: &[&[0, 5], &[0, 3], &[0, 5, 3, 4]],
        voicing: Voicing::Seventh,
        comp: "x...............",
        comp_hold: 12,
        bass: "x......x..x.....",
        leads: &["electric piano", "synth lead"],
        chords: &["synth pad", "electric piano"],
        basses: &["sub bass"],
        lead_density: 0.2,
        moods: ["laid-back", "moody", "confident"],
    },
    Genre {
        name: "jazz",
        phrase: "jazz",
        tempo: (110.0, 160.0),
        modes: &[Mode::Dorian, Mode::Major],
        swing: 0.66,
        drums: &[
            (Drum::Ride, "x...x.x.x...x.x."),
            (Drum::ClosedHat, BACKBEAT),
            (Drum::Kick, "x.........x....."),
        ],
        drums_phrase: "swinging ride cymbal drums",
        progressions: &[&[1, 4, 0, 0], &[1, 4, 0, 5]],
        voicing: Voicing::Seventh,
        comp: "...x.....x......",
        comp_hold: 2,
        bass: "w...w...w...w...",
        leads: &["vibraphone", "trumpet"],
        chords: &["piano", "electric piano"],
        basses: &["upright bass"],
        lead_density: 0.5,
        moods: ["smooth", "playful", "sophisticated"],
    },
    Genre {
        name: "metal",
        phrase: "metal",
        tempo: (140.0, 190.0),
        modes: &[Mode::Phrygian, Mode::Minor],
        swing: 0.5,
        drums: &[
            (Drum::Kick, "xxxxxxxxxxxxxxxx"),
            (Drum::Snare, BACKBEAT),
            (Drum::Ride, HATS),
        ],
        drums_phrase: "double-kick drums",
        progressions: &[&[0, 5, 6, 0], &[0, 0, 5, 6], &[0, 1, 0, 6]],
        voicing: Voicing::Power,
        comp: "xxxxxxxxxxxxxxxx",
        comp_hold: 1,
        bass: "x.x.x.x.x.x.x.x.",
        leads: &["lead guitar"],
        chords: &["distorted guitar"],
        basses: &["electric bass"],
        lead_density: 0.45,
        moods: ["aggressive", "dark", "intense"],
    },
    Genre {
        name: "pop",
        phrase: "pop",
        tempo: (96.0, 124.0),
        modes: &[Mode::Major],
        swing: 0.5,
        drums: &[
            (Drum::Kick, "x.....x.x......."),
            (Drum::Clap, BACKBEAT),
            (Drum::ClosedHat, HATS),
        ],
        drums_phrase: "a steady dance beat",
        progressions: &[&[0, 4, 5, 3], &[5, 3, 0, 4]],
        voicing: Voicing::Triad,
        comp: "x.....x.....x...",
        comp_hold: 4,
        bass: "x..x..x.x..x..x.",
        leads: &["synth lead", "piano"],
        chords: &["synth pad", "piano"],
        basses: &["synth bass", "electric bass"],
        lead_density: 0.4,
        moods: ["upbeat", "catchy", "bright"],
    },
    Genre {
        name: "reggae",
        phrase: "reggae",
        tempo: (68.0, 88.0),
        modes: &[Mode::Minor, Mode::Major],
        swing: 0.56,
        drums: &[
            (Drum::Kick, "........x......."),
            (Drum::Rimshot, "........x......."),
            (Drum::ClosedHat, HATS),
        ],
        drums_phrase: "a one-drop rhythm",
        progressions: &[&[0, 3], &[0, 6], &[0, 3, 4, 3]],
        voicing: Voicing::Triad,
        comp: "....x.......x...",
        comp_hold: 1,
        bass: "x.....x.x.......",
        leads: &["electric organ", "melodica"],
        chords: &["skank guitar"],
        basses: &["electric bass"],
        lead_density: 0.25,
        moods: ["relaxed", "sunny", "mellow"],
    },
    Genre {
        name: "rock",
        phrase: "rock",
        tempo: (110.0, 140.0),
        modes: &[Mode::Mixolydian, Mode::Major],
        swing: 0.5,
        drums: &[
            (Drum::Kick, "x.......x.x....."),
            (Drum::Snare, BACKBEAT),
            (Drum::ClosedHat, HATS),
        ],
        drums_phrase: "a driving backbeat",
        progressions: &[&[0, 6, 3, 0], &[0, 3, 4, 3]],
        voicing: Voicing::Power,
        comp: "x.x.x.x.x.x.x.x.",
        comp_hold: 2,
        bass: "x.x.x.x.x.x.x.x.",
        leads: &["overdriven guitar"],
        chords: &["overdriven guitar"],
        basses: &["electric bass"],
        lead_density: 0.35,
        moods: ["energetic", "rebellious", "anthemic"],
    },
];

/// How an instrument recipe makes its partials.
enum Sound {
    /// Explicit partials (ratio, amplitude) and their damping.
    Partials(&'static [(f64, f64)], f64),
    /// Sawtooth-like partials 1/k up to k = n, and their damping.
    Saw(usize, f64),
    /// FM: ratio, index, index decay.
    Fm(f64, f64, f64),
}

/// An instrument recipe: names, sound, envelope (attack, decay, sustain, release), drive, gain.
type Recipe = (&'static [&'static str], Sound, [f64; 4], f64, f64);

#[rustfmt::skip]
static INSTRUMENTS: [Recipe; 22] = [
    (&["electric organ"], Sound::Partials(&[(1.0, 1.0), (2.0, 0.6), (3.0, 0.45), (4.0, 0.25), (6.0, 0.15), (8.0, 0.1)], 0.0), [0.01, 0.05, 0.9, 0.05], 0.0, 0.5),
    (&["electric piano"], Sound::Fm(1.0, 2.5, 3.0), [0.005, 1.2, 0.3, 0.3], 0.0, 0.6),
    (&["piano"], Sound::Partials(&[(1.0, 1.0), (2.0, 0.5), (3.0, 0.3), (4.0, 0.2), (5.0, 0.12), (6.0, 0.08)], 1.5), [0.003, 1.5, 0.2, 0.3], 0.0, 0.6),
    (&["string section", "synth strings"], Sound::Saw(10, 0.0), [0.25, 0.3, 0.85, 0.4], 0.0, 0.35),
    (&["violin", "fiddle"], Sound::Saw(12, 0.0), [0.06, 0.1, 0.8, 0.12], 0.0, 0.4),
    (&["cello"], Sound::Saw(8, 0.0), [0.15, 0.2, 0.85, 0.3], 0.0, 0.6),
    (&["flute"], Sound::Partials(&[(1.0, 1.0), (2.0, 0.25), (3.0, 0.1)], 0.0), [0.06, 0.1, 0.8, 0.1], 0.0, 0.6),
    (&["harmonica", "melodica"], Sound::Partials(&[(1.0, 1.0), (2.0, 0.7), (3.0, 0.5), (4.0, 0.3), (5.0, 0.2)], 0.0), [0.03, 0.1, 0.8, 0.06], 1.5, 0.5),
    (&["twangy guitar"], Sound::Fm(3.0, 3.0, 8.0), [0.002, 0.4, 0.2, 0.15], 0.0, 0.5),
    (&["steel guitar"], Sound::Partials(&[(1.0, 1.0), (2.0, 0.5), (3.0, 0.3), (4.0, 0.15)], 0.3), [0.08, 0.2, 0.7, 0.3], 0.0, 0.5),
    (&["clean guitar"], Sound::Partials(&[(1.0, 1.0), (2.0, 0.6), (3.0, 0.4), (4.0, 0.3), (5.0, 0.2)], 3.0), [0.002, 0.6, 0.2, 0.2], 0.0, 0.55),
    (&["skank guitar"], Sound::Partials(&[(1.0, 1.0), (2.0, 0.7), (3.0, 0.5), (4.0, 0.4), (6.0, 0.2)], 4.0), [0.002, 0.12, 0.0, 0.05], 0.0, 0.6),
    (&["distorted guitar", "lead guitar"], Sound::Saw(8, 0.5), [0.005, 0.2, 0.8, 0.08], 6.0, 0.35),
    (&["overdriven guitar"], Sound::Saw(8, 0.8), [0.005, 0.3, 0.7, 0.1], 2.5, 0.4),
    (&["vibraphone"], Sound::Fm(4.0, 1.2, 2.0), [0.002, 2.0, 0.0, 0.5], 0.0, 0.6),
    (&["trumpet", "brass"], Sound::Saw(8, 0.0), [0.04, 0.1, 0.8, 0.1], 1.2, 0.4),
    (&["synth pad"], Sound::Partials(&[(1.0, 1.0), (1.006, 0.8), (2.0, 0.3), (3.0, 0.2)], 0.0), [0.4, 0.5, 0.8, 0.8], 0.0, 0.35),
    (&["synth lead"], Sound::Partials(&[(1.0, 1.0), (3.0, 0.33), (5.0, 0.2), (7.0, 0.14)], 0.0), [0.01, 0.1, 0.8, 0.05], 0.0, 0.45),
    (&["upright bass"], Sound::Partials(&[(1.0, 1.0), (2.0, 0.4), (3.0, 0.15)], 3.0), [0.01, 0.5, 0.3, 0.1], 0.0, 0.9),
    (&["electric bass"], Sound::Partials(&[(1.0, 1.0), (2.0, 0.5), (3.0, 0.25), (4.0, 0.1)], 0.5), [0.005, 0.3, 0.6, 0.08], 0.0, 0.8),
    (&["synth bass"], Sound::Fm(1.0, 1.5, 4.0), [0.005, 0.2, 0.7, 0.05], 0.0, 0.8),
    (&["sub bass"], Sound::Partials(&[(1.0, 1.0), (2.0, 0.1)], 0.0), [0.01, 0.1, 0.9, 0.1], 0.0, 1.0),
];

/// The voice of an instrument named in the genres (`None` for a name without a recipe).
fn instrument(name: &str) -> Option<Voice> {
    let (_, sound, [attack, decay, sustain, release], drive, gain) = INSTRUMENTS
        .iter()
        .find(|(names, ..)| names.contains(&name))?;
    let timbre = match *sound {
        Sound::Partials(partials, damping) => Timbre::Additive {
            partials: partials.to_vec(),
            damping,
        },
        Sound::Saw(n, damping) => Timbre::Additive {
            partials: (1..=n).map(|k| (k as f64, 1.0 / k as f64)).collect(),
            damping,
        },
        Sound::Fm(ratio, index, index_decay) => Timbre::Fm {
            ratio,
            index,
            index_decay,
        },
    };
    Some(Voice {
        name: name.to_string(),
        timbre,
        envelope: Envelope {
            attack: *attack,
            decay: *decay,
            sustain: *sustain,
            release: *release,
        },
        drive: *drive,
        gain: *gain,
    })
}

const NOTE_NAMES: [&str; 12] = [
    "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B",
];

/// What a clip's track plays, drawn from its genre.
struct Plan {
    genre: usize,
    tempo: f64,
    /// MIDI note of the tonic in the bass octave.
    tonic: i32,
    mode: Mode,
    progression: &'static [usize],
    lead: &'static str,
    chords: &'static str,
    bass: &'static str,
    mood: usize,
}

fn draw_plan(genre: usize, rng: &mut ChaCha8Rng) -> Plan {
    let g = &GENRES[genre];
    Plan {
        genre,
        tempo: rng.gen_range(g.tempo.0..=g.tempo.1).round(),
        tonic: rng.gen_range(36..48),
        mode: *g.modes.choose(rng).unwrap(),
        progression: g.progressions.choose(rng).unwrap(),
        lead: g.leads.choose(rng).unwrap(),
        chords: g.chords.choose(rng).unwrap(),
        bass: g.basses.choose(rng).unwrap(),
        mood: rng.gen_range(0..3),
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// The clip's caption from a small grammar: genre, mood, instruments, drums, tempo and key.
fn caption(plan: &Plan, rng: &mut ChaCha8Rng) -> String {
    let g = &GENRES[plan.genre];
    let mood = g.moods[plan.mood];
    let piece = *["track", "piece", "song", "tune"].choose(rng).unwrap();
    let tempo = match plan.tempo {
        t if t < 90.0 => "slow",
        t if t <= 125.0 => "moderate",
        _ => "fast",
    };
    let key = if plan.mode.is_major() {
        "major"
    } else {
        "minor"
    };
    let drums = if g.drums.is_empty() {
        ", without drums".to_string()
    } else {
        format!(" over {}", g.drums_phrase)
    };
    let instruments = if plan.lead == plan.chords {
        format!("{} and {}", plan.lead, plan.bass)
    } else {
        format!("{}, {} and {}", plan.lead, plan.chords, plan.bass)
    };
    match rng.gen_range(0..3) {
        0 => format!(
            "{} {mood} {} {piece} with {instruments}{drums}, at a {tempo} tempo in a {key} key.",
            capitalise(article(mood)),
            g.phrase
        ),
        1 => format!(
            "{} {piece} featuring {instruments}{drums}; {mood}, {tempo}, in {} {}.",
            capitalise(g.phrase),
            NOTE_NAMES[(plan.tonic % 12) as usize],
            key
        ),
        _ => format!(
            "This {mood} {} {piece} has {instruments}{drums}, at a {tempo} tempo.",
            g.phrase
        ),
    }
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Rendering

/// Semitones of the chord on scale degree `degree` above the tonic.
fn chord(mode: Mode, degree: usize, voicing: Voicing) -> Vec<i32> {
    let scale = mode.scale();
    let note = |step: usize| scale[step % 7] + 12 * (step / 7) as i32;
    match voicing {
        Voicing::Power => vec![note(degree), note(degree) + 7, note(degree) + 12],
        Voicing::Triad => vec![note(degree), note(degree + 2), note(degree + 4)],
        Voicing::Seventh => vec![
            note(degree),
            note(degree + 2),
            note(degree + 4),
            note(degree + 6),
        ],
    }
}

/// Time in seconds of step `s` (0–15) of bar `bar`, with swing on the off-sixteenths' pairs.
fn step_time(plan: &Plan, bar: usize, s: usize) -> f64 {
    let step = 60.0 / plan.tempo / 4.0;
    let swing = GENRES[plan.genre].swing;
    let pair = (s / 2) as f64 * 2.0 * step;
    let offset = if s % 2 == 1 { 2.0 * step * swing } else { 0.0 };
    bar as f64 * 16.0 * step + pair + offset
}

/// Notes and drum hits of one track, rendered once and mixed as often as they play (a track
/// repeats a few sounds many times).
struct Sounds {
    rate: f64,
    voices: [Voice; 3],
    /// (voice, MIDI note, hold in samples) → the note at velocity 1.
    notes: HashMap<(usize, i32, usize), Vec<f32>>,
    /// (drum, variant) → the hit at velocity 1.
    drums: HashMap<(Drum, usize), Vec<f32>>,
}

const LEAD: usize = 0;
const CHORDS: usize = 1;
const BASS: usize = 2;

impl Sounds {
    fn new(plan: &Plan, rate: f64) -> Self {
        Sounds {
            rate,
            // Every name in GENRES has a recipe (a unit test checks).
            voices: [plan.lead, plan.chords, plan.bass].map(|n| instrument(n).expect("a recipe")),
            notes: HashMap::new(),
            drums: HashMap::new(),
        }
    }

    fn play(
        &mut self,
        out: &mut [f32],
        voice: usize,
        midi: i32,
        start: f64,
        hold: f64,
        velocity: f64,
    ) {
        let key = (voice, midi, (hold * self.rate).round() as usize);
        let (rate, voices) = (self.rate, &self.voices);
        let sound = self
            .notes
            .entry(key)
            .or_insert_with(|| render_note(rate, &voices[voice], hold, midi_hz(midi as f64)));
        mix(out, rate, start, sound, velocity);
    }

    /// Two recorded variants of each drum, picked at random per hit.
    fn hit(
        &mut self,
        out: &mut [f32],
        drum: Drum,
        start: f64,
        velocity: f64,
        rng: &mut ChaCha8Rng,
    ) {
        let variant = rng.gen_range(0..2);
        let rate = self.rate;
        let sound = self
            .drums
            .entry((drum, variant))
            .or_insert_with(|| render_drum(rate, drum, rng));
        mix(out, rate, start, sound, velocity);
    }
}

/// Renders a whole track of `seconds` at `rate`: drums, bass, chords, lead; RMS 0.1.
fn render_track(plan: &Plan, seconds: f64, rate: u32, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let g = &GENRES[plan.genre];
    let mut out = vec![0.0f32; (seconds * rate as f64).round() as usize];
    let mut sounds = Sounds::new(plan, rate as f64);
    let step = 60.0 / plan.tempo / 4.0;
    let bars = (seconds / (16.0 * step)).ceil() as usize + 1;
    let scale = plan.mode.scale();
    let mut lead_step: i32 = rng.gen_range(0..7);
    for bar in 0..bars {
        let degree = plan.progression[bar % plan.progression.len()];
        let next_degree = plan.progression[(bar + 1) % plan.progression.len()];
        for (drum, pattern) in g.drums {
            for (s, c) in pattern.chars().enumerate() {
                if c == 'x' {
                    let velocity = rng.gen_range(0.75..1.0) * 0.8;
                    sounds.hit(&mut out, *drum, step_time(plan, bar, s), velocity, rng);
                }
            }
        }
        play_bass(&mut out, &mut sounds, plan, bar, degree, next_degree);
        let hold = g.comp_hold as f64 * step * 0.95;
        for (s, c) in g.comp.chars().enumerate() {
            if c == 'x' {
                for n in chord(plan.mode, degree, g.voicing) {
                    let t = step_time(plan, bar, s);
                    sounds.play(&mut out, CHORDS, plan.tonic + 12 + n, t, hold, 0.35);
                }
            }
        }
        // Lead: a random walk on the scale, two octaves above the bass.
        for s in (0..16).step_by(2) {
            if rng.gen::<f64>() < g.lead_density {
                lead_step = (lead_step + rng.gen_range(-2..=2)).clamp(0, 13);
                let n = scale[(lead_step % 7) as usize] + 12 * (lead_step / 7);
                let hold = step * rng.gen_range(1..=4) as f64 * 2.0 * 0.9;
                let t = step_time(plan, bar, s);
                sounds.play(&mut out, LEAD, plan.tonic + 24 + n, t, hold, 0.8);
            }
        }
    }
    normalise(&mut out);
    out
}

fn play_bass(
    out: &mut [f32],
    sounds: &mut Sounds,
    plan: &Plan,
    bar: usize,
    degree: usize,
    next: usize,
) {
    let g = &GENRES[plan.genre];
    let scale = plan.mode.scale();
    let step = 60.0 / plan.tempo / 4.0;
    let hits: Vec<usize> = g
        .bass
        .char_indices()
        .filter(|(_, c)| *c != '.')
        .map(|(i, _)| i)
        .collect();
    for (k, &s) in hits.iter().enumerate() {
        let root = scale[degree % 7];
        let interval = match g.bass.as_bytes()[s] {
            b'f' => scale[(degree + 4) % 7] + if degree + 4 >= 7 { 12 } else { 0 },
            b'o' => root + 12,
            b'w' => {
                // Walk: the root, then 2, 4, 5 semitones towards the next bar's root.
                let target = scale[next % 7];
                let dir = if target >= root { 1 } else { -1 };
                root + dir * [0, 2, 4, 5][k % 4].min((target - root).abs().max(2))
            }
            _ => root,
        };
        let until = hits.get(k + 1).copied().unwrap_or(16);
        let hold = (until - s) as f64 * step * 0.9;
        let t = step_time(plan, bar, s);
        sounds.play(out, BASS, plan.tonic + interval, t, hold, 0.9);
    }
}

fn normalise(samples: &mut [f32]) {
    let rms = (samples.iter().map(|&v| (v as f64).powi(2)).sum::<f64>()
        / samples.len().max(1) as f64)
        .sqrt();
    if rms <= 0.0 {
        return;
    }
    let mut scale = TRACK_RMS / rms;
    let peak = samples.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64 * scale;
    if peak > 0.95 {
        scale *= 0.95 / peak;
    }
    samples
        .iter_mut()
        .for_each(|v| *v = (*v as f64 * scale) as f32);
}

// ---------------------------------------------------------------------------------------------
// Clips and runs

/// Every clip's metadata, plan and split; genre-major order (clip id = genre · per_genre + k).
fn make_clips(opts: &MusicOptions, rng: &mut ChaCha8Rng) -> Vec<(Clip, Plan)> {
    let n_test = opts.test_per_genre();
    let max_start = ((opts.track_seconds - CLIP_SECONDS) / 0.5).floor() as usize;
    let mut clips = Vec::new();
    for (g, gen) in GENRES.iter().enumerate() {
        let genre = gen.name;
        let mut tracks: Vec<u32> = (0..opts.clips_per_genre.max(100) as u32).collect();
        tracks.shuffle(rng);
        for (k, &track) in tracks.iter().take(opts.clips_per_genre).enumerate() {
            let plan = draw_plan(g, rng);
            let caption = caption(&plan, rng);
            let start = rng.gen_range(0..=max_start) as f64 * 0.5;
            clips.push((
                Clip {
                    id: clips.len(),
                    genre: genre.to_string(),
                    track,
                    start,
                    split: if k < n_test { "test" } else { "train" }.into(),
                    tempo: plan.tempo,
                    key: NOTE_NAMES[(plan.tonic % 12) as usize].into(),
                    mode: plan.mode.name().into(),
                    instruments: vec![plan.lead.into(), plan.chords.into(), plan.bass.into()],
                    drums: (!gen.drums.is_empty()).then(|| gen.drums_phrase.to_string()),
                    mood: gen.moods[plan.mood].into(),
                    caption,
                    audio: format!("stimuli/genres/{genre}/{genre}.{track:05}.wav"),
                },
                plan,
            ));
        }
    }
    clips
}

/// Runs of both tasks: (task, clip ids in order, the leading repeat first).
fn make_runs(clips: &[Clip], per_run: usize, rng: &mut ChaCha8Rng) -> Vec<(String, Vec<usize>)> {
    let ids = |split: &str| -> Vec<usize> {
        clips
            .iter()
            .filter(|c| c.split == split)
            .map(|c| c.id)
            .collect()
    };
    let lead = |mut order: Vec<usize>| {
        order.insert(0, *order.last().unwrap());
        order
    };
    let mut runs = Vec::new();
    let mut train = ids("train");
    train.shuffle(rng);
    for chunk in train.chunks(per_run) {
        runs.push((TASKS[0].to_string(), lead(chunk.to_vec())));
    }
    let mut test = ids("test");
    test.shuffle(rng);
    for group in test.chunks(per_run / TEST_REPEATS) {
        let mut order: Vec<usize> = group.iter().flat_map(|&c| [c; TEST_REPEATS]).collect();
        order.shuffle(rng);
        runs.push((TASKS[1].to_string(), lead(order)));
    }
    runs
}

// ---------------------------------------------------------------------------------------------
// Brain

struct Brain {
    /// Flat (x-fastest) index of each brain voxel, ascending.
    flat: Vec<usize>,
    /// Atlas label of each voxel.
    roi: Vec<i32>,
    /// Group of each voxel (index into GROUPS).
    group: Vec<usize>,
}

fn roi_label(hemisphere: usize, index: u32) -> i32 {
    (if hemisphere == 0 { 11100 } else { 12100 }) + index as i32
}

fn roi_name(hemisphere: usize, name: &str) -> String {
    format!("ctx_{}_{name}", if hemisphere == 0 { "lh" } else { "rh" })
}

/// An ellipsoid filling 90% of the grid; x < centre is the left hemisphere; each hemisphere
/// cut into 12 angular sectors around the x axis, one ROI each.
fn make_brain(shape: [usize; 3], rng: &mut ChaCha8Rng) -> Brain {
    let centre = shape.map(|s| (s as f64 - 1.0) / 2.0);
    let radius = shape.map(|s| 0.45 * s as f64);
    let (mut flat, mut roi, mut group) = (Vec::new(), Vec::new(), Vec::new());
    for z in 0..shape[2] {
        for y in 0..shape[1] {
            for x in 0..shape[0] {
                let d = [
                    x as f64 - centre[0],
                    y as f64 - centre[1],
                    z as f64 - centre[2],
                ];
                if (0..3).map(|a| (d[a] / radius[a]).powi(2)).sum::<f64>() > 1.0 {
                    continue;
                }
                let hemisphere = usize::from(d[0] >= 0.0);
                let angle = d[2].atan2(d[1]) + std::f64::consts::PI;
                let sector = ((angle / std::f64::consts::TAU * 12.0) as usize).min(11);
                let (index, _, g) = ROIS[sector];
                flat.push(x + shape[0] * (y + shape[1] * z));
                roi.push(roi_label(hemisphere, index));
                group.push(if g < 2 && rng.gen::<f64>() < DRIVEN_SHARE {
                    g
                } else {
                    2
                });
            }
        }
    }
    Brain { flat, roi, group }
}

/// The drive of every group per clip and TR within it: acoustic (z-scored features) and
/// semantic vectors.
struct Drives {
    /// (clips, TRS_PER_CLIP, N_FEATURES), z-scored per feature over all clips and TRs.
    acoustic: Vec<[[f64; N_FEATURES]; TRS_PER_CLIP]>,
    /// (clips, SEMANTIC_DIM)
    semantic: Vec<Vec<f64>>,
}

fn zscore_acoustic(
    raw: &[[[f64; N_FEATURES]; TRS_PER_CLIP]],
) -> Vec<[[f64; N_FEATURES]; TRS_PER_CLIP]> {
    let rows: Vec<&[f64; N_FEATURES]> = raw.iter().flatten().collect();
    let n = rows.len() as f64;
    let mut out = raw.to_vec();
    for f in 0..N_FEATURES {
        let mean = rows.iter().map(|r| r[f]).sum::<f64>() / n;
        let sd = (rows.iter().map(|r| (r[f] - mean).powi(2)).sum::<f64>() / n).sqrt();
        for clip in &mut out {
            for row in clip.iter_mut() {
                row[f] = if sd > 0.0 { (row[f] - mean) / sd } else { 0.0 };
            }
        }
    }
    out
}

/// Noise-free responses (TRs × brain voxels, % signal change) of every run.
fn responses(
    rng: &mut ChaCha8Rng,
    brain: &Brain,
    drives: &Drives,
    runs: &[(String, Vec<usize>)],
) -> Vec<Vec<f64>> {
    let normal = Normal::new(0.0, 1.0).unwrap();
    let hrf = canonical_hrf(TR);
    let n = brain.flat.len();
    let weights: Vec<Vec<f64>> = brain
        .group
        .iter()
        .map(|&g| {
            let dims = [N_FEATURES, SEMANTIC_DIM, 0][g];
            (0..dims).map(|_| normal.sample(rng)).collect()
        })
        .collect();
    let mut signals: Vec<Vec<f64>> = runs
        .iter()
        .map(|(_, c)| vec![0.0; c.len() * TRS_PER_CLIP * n])
        .collect();
    for (run, (_, order)) in runs.iter().enumerate() {
        let trs = order.len() * TRS_PER_CLIP;
        for v in 0..n {
            let drive: Vec<f64> = (0..trs)
                .map(|t| {
                    let (clip, within) = (order[t / TRS_PER_CLIP], t % TRS_PER_CLIP);
                    let features: &[f64] = match brain.group[v] {
                        0 => &drives.acoustic[clip][within],
                        1 => &drives.semantic[clip],
                        _ => &[],
                    };
                    features.iter().zip(&weights[v]).map(|(x, w)| x * w).sum()
                })
                .collect();
            for t in 0..trs {
                let r: f64 = hrf
                    .iter()
                    .enumerate()
                    .take(t + 1)
                    .map(|(lag, h)| h * drive[t - lag])
                    .sum();
                signals[run][t * n + v] = r;
            }
        }
    }
    // 1% signal change: each voxel's std over all runs scaled to one.
    for v in 0..n {
        let values: Vec<f64> = signals
            .iter()
            .flat_map(|r| r.iter().skip(v).step_by(n).copied())
            .collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let sd =
            (values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt();
        for run in &mut signals {
            for x in run.iter_mut().skip(v).step_by(n) {
                *x = if sd > 0.0 { (*x - mean) / sd } else { 0.0 };
            }
        }
    }
    signals
}

// ---------------------------------------------------------------------------------------------
// Writing

fn check(opts: &MusicOptions) -> Result<()> {
    let usage = |message: String| Err(DataError::Usage(message));
    if !(2..=100).contains(&opts.clips_per_genre) {
        return usage(format!(
            "--clips-per-genre: expected 2 to 100 (GTZAN has 100 tracks per genre), found {}",
            opts.clips_per_genre
        ));
    }
    if !(4..=80).contains(&opts.clips_per_run) || !opts.clips_per_run.is_multiple_of(TEST_REPEATS) {
        return usage(format!("--clips-per-run: expected a multiple of 4 from 4 to 80 (test runs play a quarter as many clips 4 times), found {}", opts.clips_per_run));
    }
    if !(opts.track_seconds.is_finite() && (CLIP_SECONDS..=120.0).contains(&opts.track_seconds)) {
        return usage(format!(
            "--track-seconds: expected 15 to 120 (a clip is 15 s), found {}",
            opts.track_seconds
        ));
    }
    if opts.volume_shape.iter().any(|d| !(8..=128).contains(d)) {
        return usage(format!(
            "--volume: expected three sizes from 8 to 128, found {:?}",
            opts.volume_shape
        ));
    }
    if opts.library_per_genre > 1000 {
        return usage(format!(
            "--library-per-genre: expected at most 1000, found {}",
            opts.library_per_genre
        ));
    }
    if !(opts.snr.is_finite() && opts.snr > 0.0) {
        return usage(format!(
            "snr: expected a positive number, found {}",
            opts.snr
        ));
    }
    Ok(())
}

/// Writes the synthetic music subject (see the module documentation).
pub fn simulate_music(opts: &MusicOptions) -> Result<SimulatedMusic> {
    check(opts)?;
    let truth = new_output_dir(&opts.out)?.run(|staging| write_subject(opts, staging))?;
    Ok(SimulatedMusic {
        out: opts.out.clone(),
        truth,
    })
}

/// A seed of its own per clip, so a clip's track does not depend on how many came before it.
fn clip_rng(seed: u64, clip: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(
        seed ^ 0x6D75_7369_6300_0000 ^ (clip as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    )
}

/// Renders and writes every track; returns each clip's raw acoustic features per TR, computed
/// from the clip as stored (16-bit).
fn write_tracks(
    opts: &MusicOptions,
    root: &Path,
    clips: &[(Clip, Plan)],
) -> Result<Vec<[[f64; N_FEATURES]; TRS_PER_CLIP]>> {
    let mut features = Vec::with_capacity(clips.len());
    for (clip, plan) in clips {
        let mut rng = clip_rng(opts.seed, clip.id);
        let track = render_track(plan, opts.track_seconds, RATE, &mut rng);
        wav::write_pcm16(&root.join(&clip.audio), RATE, 1, &track)?;
        let first = (clip.start * RATE as f64).round() as usize;
        let len = (CLIP_SECONDS * RATE as f64).round() as usize;
        let stored: Vec<f32> = track[first..first + len]
            .iter()
            .map(|&v| wav::quantize(v) as f32 / 32768.0)
            .collect();
        let rows = acoustic_features(&stored, RATE, TR);
        let mut table = [[0.0; N_FEATURES]; TRS_PER_CLIP];
        table.copy_from_slice(&rows[..TRS_PER_CLIP]);
        features.push(table);
    }
    Ok(features)
}

fn write_run(
    root: &Path,
    task: &str,
    run: usize,
    series: &[Vec<f64>],
    shape: [usize; 3],
    order: &[usize],
    clips: &[Clip],
) -> Result<()> {
    let file = write_bold_run(root, (SUBJECT, task, run), "bold.nii", TR, shape, series)?;
    let mut events = String::from("onset\tduration\tgenre\ttrack\tstart\n");
    for (k, &c) in order.iter().enumerate() {
        let clip = &clips[c];
        events.push_str(&format!(
            "{:.1}\t{CLIP_SECONDS:.1}\t'{}'\t{}\t{:.1}\n",
            k as f64 * CLIP_SECONDS,
            clip.genre,
            clip.track,
            clip.start
        ));
    }
    write_bytes_atomic(&file("events.tsv"), events.as_bytes())
}

/// `stimuli/captions.tsv`: each clip's caption, keyed by track and start as the events are.
fn write_captions(root: &Path, clips: &[Clip]) -> Result<()> {
    let mut table = String::from("track\tstart\tcaption\n");
    for clip in clips {
        table.push_str(&format!(
            "{}.{:05}\t{:.1}\t{}\n",
            clip.genre, clip.track, clip.start, clip.caption
        ));
    }
    write_bytes_atomic(&root.join("stimuli/captions.tsv"), table.as_bytes())
}

/// The seed of the library's clip stream (apart from every other stream of the seed).
pub fn library_stream(seed: u64) -> u64 {
    seed ^ 0x6C69_6272_6172_7921
}

/// `library/<genre>/<genre>.000NN.wav`: `library_per_genre` stream clips per genre, 15 s each.
fn write_library(root: &Path, opts: &MusicOptions) -> Result<()> {
    let n = opts.library_per_genre * GENRES.len();
    for index in 0..n as u64 {
        let clip = StreamClip::new(library_stream(opts.seed), index);
        let number = index / GENRES.len() as u64;
        let name = clip.genre_name();
        let path = root.join(format!("library/{name}/{name}.{number:05}.wav"));
        wav::write_pcm16(&path, RATE, 1, &clip.render())?;
    }
    Ok(())
}

fn write_atlas(root: &Path, brain: &Brain, shape: [usize; 3]) -> Result<()> {
    let mut labels = vec![0i16; shape.iter().product()];
    for (&f, &label) in brain.flat.iter().zip(&brain.roi) {
        labels[f] = label as i16;
    }
    let dir = root.join("derivatives/atlas");
    nifti_io::write_i16(
        &dir.join(format!("sub-{SUBJECT}_atlas-Destrieux_dseg.nii.gz")),
        shape,
        &grid_affine(shape),
        &labels,
    )?;
    let mut table = String::from("index\tname\n");
    for hemisphere in 0..2 {
        let mut rows: Vec<(i32, String)> = ROIS
            .iter()
            .map(|(i, name, _)| (roi_label(hemisphere, *i), roi_name(hemisphere, name)))
            .collect();
        rows.sort();
        for (label, name) in rows {
            table.push_str(&format!("{label}\t{name}\n"));
        }
    }
    write_bytes_atomic(
        &dir.join(format!("sub-{SUBJECT}_atlas-Destrieux_dseg.tsv")),
        table.as_bytes(),
    )?;
    let mut mask = vec![0i16; shape.iter().product()];
    brain.flat.iter().for_each(|&f| mask[f] = 1);
    nifti_io::write_i16(
        &root.join(format!("derivatives/mask/sub-{SUBJECT}_mask.nii.gz")),
        shape,
        &grid_affine(shape),
        &mask,
    )
}

fn mood_vectors(rng: &mut ChaCha8Rng) -> BTreeMap<&'static str, Vec<f64>> {
    let normal = Normal::new(0.0, 1.0).unwrap();
    GENRES
        .iter()
        .flat_map(|g| g.moods)
        .map(|m| (m, (0..MOOD_DIM).map(|_| normal.sample(rng)).collect()))
        .collect()
}

fn semantic_vector(clip: &Clip, moods: &BTreeMap<&'static str, Vec<f64>>) -> Vec<f64> {
    let mut v = vec![0.0; SEMANTIC_DIM];
    let genre = GTZAN_GENRES.iter().position(|g| *g == clip.genre).unwrap();
    v[genre] = 1.0;
    v[GTZAN_GENRES.len()..].copy_from_slice(&moods[clip.mood.as_str()]);
    v
}

fn write_subject(opts: &MusicOptions, root: &Path) -> Result<MusicTruth> {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let shape = opts.volume_shape;
    let planned = make_clips(opts, &mut rng);
    let clips: Vec<Clip> = planned.iter().map(|(c, _)| c.clone()).collect();
    let runs = make_runs(&clips, opts.clips_per_run, &mut rng);
    let brain = make_brain(shape, &mut rng);
    let moods = mood_vectors(&mut rng);
    let raw = write_tracks(opts, root, &planned)?;
    let drives = Drives {
        acoustic: zscore_acoustic(&raw),
        semantic: clips.iter().map(|c| semantic_vector(c, &moods)).collect(),
    };
    let signals = responses(&mut rng, &brain, &drives, &runs);
    let baseline: Vec<f64> = (0..brain.flat.len())
        .map(|_| rng.gen_range(800.0..1200.0))
        .collect();
    write_json_atomic(
        &root.join("dataset_description.json"),
        &serde_json::json!({
            "Name": "brainrecon simulated music subject (ds003720 layout)", "BIDSVersion": "1.8.0", "DatasetType": "raw",
            "GeneratedBy": [{"Name": "brainrecon simulate --kind music", "Description": format!("seed {}", opts.seed)}],
        }),
    )?;
    write_bytes_atomic(
        &root.join("participants.tsv"),
        format!("participant_id\nsub-{SUBJECT}\n").as_bytes(),
    )?;
    let mut numbers = BTreeMap::<&str, usize>::new();
    let mut run_truth = Vec::new();
    for (k, (task, order)) in runs.iter().enumerate() {
        let run = {
            let n = numbers.entry(task.as_str()).or_insert(0);
            *n += 1;
            *n
        };
        let trs = signals[k].len() / brain.flat.len().max(1);
        let series = bold_volumes(
            &mut rng,
            &brain.flat,
            &baseline,
            &signals[k],
            trs,
            TR,
            shape,
            (2.0, opts.snr),
        );
        write_run(root, task, run, &series, shape, order, &clips)?;
        run_truth.push(RunTruth {
            task: task.clone(),
            run,
            clips: order.clone(),
            n_trs: order.len() * TRS_PER_CLIP,
        });
    }
    write_atlas(root, &brain, shape)?;
    write_captions(root, &clips)?;
    write_library(root, opts)?;
    write_truth(
        opts, root, &brain, &clips, &raw, &drives, &moods, &signals, run_truth,
    )
}

#[allow(clippy::too_many_arguments)]
fn write_truth(
    opts: &MusicOptions,
    root: &Path,
    brain: &Brain,
    clips: &[Clip],
    raw: &[[[f64; N_FEATURES]; TRS_PER_CLIP]],
    drives: &Drives,
    moods: &BTreeMap<&'static str, Vec<f64>>,
    signals: &[Vec<f64>],
    runs: Vec<RunTruth>,
) -> Result<MusicTruth> {
    let dir = root.join("truth");
    let shape = opts.volume_shape;
    let n = brain.flat.len();
    write_voxel_truth(&dir, &brain.flat, &brain.group, shape)?;
    npy::write(&dir.join("voxel_roi.npy"), &[n], &brain.roi)?;
    let acoustic: Vec<f32> = raw.iter().flatten().flatten().map(|&v| v as f32).collect();
    npy::write(
        &dir.join("acoustic.npy"),
        &[clips.len(), TRS_PER_CLIP, N_FEATURES],
        &acoustic,
    )?;
    let semantic: Vec<f32> = drives
        .semantic
        .iter()
        .flatten()
        .map(|&v| v as f32)
        .collect();
    npy::write(
        &dir.join("semantic.npy"),
        &[clips.len(), SEMANTIC_DIM],
        &semantic,
    )?;
    for (run, values) in runs.iter().zip(signals) {
        let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        npy::write(
            &dir.join(format!("signal/task-{}_run-{:02}.npy", run.task, run.run)),
            &[run.n_trs, n],
            &values,
        )?;
    }
    write_json_atomic(&dir.join("clips.json"), &clips)?;
    write_json_atomic(&dir.join("moods.json"), moods)?;
    let rois = (0..2)
        .flat_map(|h| ROIS.iter().map(move |r| (h, r)))
        .map(|(h, (index, name, group))| {
            let label = roi_label(h, *index);
            let members: Vec<usize> = (0..n).filter(|&v| brain.roi[v] == label).collect();
            RoiTruth {
                label,
                name: roi_name(h, name),
                group: GROUPS[*group].into(),
                n_voxels: members.len(),
                n_driven: members
                    .iter()
                    .filter(|&&v| brain.group[v] == *group && *group < 2)
                    .count(),
            }
        })
        .collect();
    let truth = MusicTruth {
        subject: format!("sub-{SUBJECT}"),
        seed: opts.seed,
        tr: TR,
        rate: RATE,
        clip_seconds: CLIP_SECONDS,
        track_seconds: opts.track_seconds,
        genres: GTZAN_GENRES.iter().map(|g| g.to_string()).collect(),
        clips_per_genre: opts.clips_per_genre,
        n_train_clips: clips.iter().filter(|c| c.split == "train").count(),
        n_test_clips: clips.iter().filter(|c| c.split == "test").count(),
        test_repeats: TEST_REPEATS,
        runs,
        volume_shape: shape,
        n_brain_voxels: n,
        groups: GROUPS.iter().map(|g| g.to_string()).collect(),
        group_voxels: (0..GROUPS.len()).map(|g| brain.group.iter().filter(|&&x| x == g).count()).collect(),
        rois,
        acoustic_features: feature_names(),
        semantic_dim: SEMANTIC_DIM,
        snr: opts.snr,
        signal_percent: 1.0,
        hrf: canonical_hrf(TR),
        hrf_description: "SPM canonical double gamma (peaks at 6 s and 16 s, ratio 1/6, 32 s) sampled at the TR, sum 1".into(),
        files: TRUTH_FILES.into(),
    };
    write_json_atomic(&dir.join("truth.json"), &truth)?;
    Ok(truth)
}

// ---------------------------------------------------------------------------------------------
// Clips outside any subject

/// Clip `index` of a seeded stream of synthetic clips that belong to no subject (training data
/// for the project's own models): genre `index mod 10` (GTZAN's order), a plan and caption
/// drawn as the subject's clips are, and CLIP_SECONDS of its own track. Its random streams are
/// keyed by (`seed`, `index`) under tags no subject uses, so no stream clip is a subject's
/// clip, and clip `i` does not depend on the clips before it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamClip {
    /// The stream's seed.
    pub seed: u64,
    /// The clip's index in the stream.
    pub index: u64,
    /// Index into [`GTZAN_GENRES`].
    pub genre: usize,
    /// Its caption.
    pub caption: String,
}

/// A ChaCha8 stream keyed by `seed` and a domain tag, numbered by the clip index.
fn stream_rng(seed: u64, domain: &[u8; 8], index: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(domain);
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(index);
    rng
}

const STREAM_PLAN: &[u8; 8] = b"mus-plan";
const STREAM_AUDIO: &[u8; 8] = b"mus-wave";

impl StreamClip {
    /// The clip's genre and caption (nothing is rendered).
    pub fn new(seed: u64, index: u64) -> Self {
        let genre = (index % GENRES.len() as u64) as usize;
        let mut rng = stream_rng(seed, STREAM_PLAN, index);
        let plan = draw_plan(genre, &mut rng);
        StreamClip {
            seed,
            index,
            genre,
            caption: caption(&plan, &mut rng),
        }
    }

    /// The genre's name (`blues` … `rock`).
    pub fn genre_name(&self) -> &'static str {
        GENRES[self.genre].name
    }

    /// The clip's audio: CLIP_SECONDS at [`RATE`], RMS 0.1, as the subject's tracks are
    /// rendered (before their 16-bit storage).
    pub fn render(&self) -> Vec<f32> {
        let plan = draw_plan(
            self.genre,
            &mut stream_rng(self.seed, STREAM_PLAN, self.index),
        );
        let mut rng = stream_rng(self.seed, STREAM_AUDIO, self.index);
        render_track(&plan, CLIP_SECONDS, RATE, &mut rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genres_name_real_instruments_and_patterns_of_sixteen_steps() {
        for g in &GENRES {
            assert!(GTZAN_GENRES.contains(&g.name));
            for (_, p) in g.drums {
                assert_eq!(p.len(), 16, "{}", g.name);
            }
            assert_eq!((g.comp.len(), g.bass.len()), (16, 16), "{}", g.name);
            for name in g.leads.iter().chain(g.chords).chain(g.basses) {
                let voice = instrument(name).expect("every instrument has a recipe");
                assert_eq!(voice.name, *name);
            }
            assert!(g.progressions.iter().all(|p| p.iter().all(|&d| d < 7)));
        }
        assert_eq!(
            GENRES.iter().map(|g| g.name).collect::<Vec<_>>(),
            GTZAN_GENRES.to_vec()
        );
    }

    #[test]
    fn captions_follow_the_grammar() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for (g, genre) in GENRES.iter().enumerate() {
            let plan = draw_plan(g, &mut rng);
            let text = caption(&plan, &mut rng);
            let lower = text.to_lowercase();
            assert!(lower.contains(genre.phrase), "{text}");
            assert!(lower.contains(genre.moods[plan.mood]), "{text}");
            assert!(text.contains(plan.lead) && text.ends_with('.'), "{text}");
            assert_eq!(text.contains("without drums"), g == 1, "{text}");
        }
        assert_eq!(article("upbeat"), "an");
    }

    #[test]
    fn tracks_are_seeded_loud_enough_and_differ_by_genre() {
        let render = |g: usize, seed: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let plan = draw_plan(g, &mut rng);
            render_track(&plan, 3.0, RATE, &mut rng)
        };
        let metal = render(6, 1);
        assert_eq!(metal, render(6, 1));
        assert_eq!(metal.len(), 3 * RATE as usize);
        let rms =
            (metal.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / metal.len() as f64).sqrt();
        assert!(
            (rms - TRACK_RMS).abs() < 0.02 && metal.iter().all(|v| v.abs() <= 0.951),
            "{rms}"
        );
        // Metal's overdriven guitars and cymbals put far more energy in the 8 kHz band than
        // classical strings and flutes do.
        let top_band = |x: &[f32]| {
            let rows = acoustic_features(x, RATE, 1.5);
            rows.iter().map(|r| r[6]).sum::<f64>() / rows.len() as f64
        };
        let (loud, quiet) = (top_band(&metal), top_band(&render(1, 1)));
        assert!(loud > quiet + 2.0, "{loud} vs {quiet}");
    }

    #[test]
    fn stream_clips_are_seeded_balanced_and_captioned() {
        let clips: Vec<StreamClip> = (0..20).map(|i| StreamClip::new(3, i)).collect();
        assert_eq!(clips[13], StreamClip::new(3, 13));
        assert_ne!(clips[13].caption, StreamClip::new(4, 13).caption);
        for c in &clips {
            assert_eq!(c.genre, c.index as usize % 10);
            let phrase = GENRES[c.genre].phrase;
            assert!(c.caption.to_lowercase().contains(phrase), "{}", c.caption);
        }
        assert_eq!(clips[6].genre_name(), "metal");
        let audio = clips[6].render();
        assert_eq!(audio.len(), (CLIP_SECONDS * RATE as f64) as usize);
        assert_eq!(audio, StreamClip::new(3, 6).render());
    }

    #[test]
    fn runs_follow_the_design() {
        let opts = MusicOptions::paper(Path::new("x"));
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let planned = make_clips(&opts, &mut rng);
        let clips: Vec<Clip> = planned.into_iter().map(|(c, _)| c).collect();
        assert_eq!(clips.len(), 540);
        let runs = make_runs(&clips, opts.clips_per_run, &mut rng);
        let training: Vec<_> = runs.iter().filter(|r| r.0 == "Training").collect();
        let test: Vec<_> = runs.iter().filter(|r| r.0 == "Test").collect();
        assert_eq!((training.len(), test.len()), (12, 6));
        assert!(runs.iter().all(|r| r.1.len() == 41 && r.1[0] == r.1[40]));
        let heard: Vec<usize> = training.iter().flat_map(|r| r.1[1..].to_vec()).collect();
        assert_eq!(
            heard
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            480
        );
        for r in &test {
            let mut counts = BTreeMap::new();
            r.1[1..]
                .iter()
                .for_each(|c| *counts.entry(c).or_insert(0) += 1);
            assert_eq!(counts.len(), 10);
            assert!(counts.values().all(|&n| n == 4));
        }
        assert!(clips
            .iter()
            .all(|c| c.start + CLIP_SECONDS <= opts.track_seconds));
    }
}
