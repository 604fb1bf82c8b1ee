//! `simulate --kind movie`: a synthetic subject watching a movie, in BIDS as OpenNeuro ships it,
//! with ds005531-style per-second annotations, and the truth beside it.
//!
//! ```text
//! dataset_description.json, participants.tsv
//! sub-01/func/sub-01_task-movie_run-0N_bold.nii.gz   int16 + scl_slope, TR 1 s
//! sub-01/func/sub-01_task-movie_run-0N_bold.json     {"RepetitionTime": 1.0, "TaskName": "movie"}
//! sub-01/func/sub-01_task-movie_run-0N_events.tsv    onset, duration, title (one row per scene)
//! derivatives/mask/sub-01_mask.nii.gz                 the brain (int16 0/1)
//! derivatives/annotation/movie_run-0N_<kind>_each1sec.txt   one line per second
//! truth/                                              see TRUTH_FILES
//! ```
//!
//! Five annotation kinds on the paper's time scales: `speech` (utterances of 2–4 s, silences as
//! empty lines), `objects` (new every second), `story` (every 5 s), `summary` (every 60–120 s),
//! `timeplace` (per scene of 20–60 s). Lines come from a small seeded grammar; each kind draws
//! its content words from its own vocabulary, and the function words all kinds share carry no
//! signal, so the kinds are independent. Every content word has a hidden vector (6 dimensions);
//! a kind's semantic vector at second s is the mean of the vectors of that line's content words
//! (zero for an empty line).
//!
//! The brain is an ellipsoid split into angular sectors, one voxel group each: one group per
//! kind, one driven by `speech` and `summary` together, and one of noise only. A voxel's neural
//! drive is a fixed random linear mix of its kinds' semantic vectors; convolved with SPM's
//! canonical double-gamma HRF sampled at the TR and scaled to 1% signal change (std over the
//! runs), plus slow drift (a linear trend and a 300–900 s sinusoid, each about four times the signal)
//! and Gaussian noise at `snr` (signal std / noise std), on a baseline of 800–1200.

use super::bold::{bold_volumes, grid_affine, write_bold_run, write_voxel_truth};
use super::new_output_dir;
use brainrecon_core::error::{DataError, Result};
use brainrecon_core::fs::{write_bytes_atomic, write_json_atomic};
use brainrecon_formats::nifti_io;
use brainrecon_formats::npy;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Annotation kinds, in the order of `voxel_kinds.npy`'s columns.
pub const KINDS: [&str; 5] = ["speech", "objects", "story", "summary", "timeplace"];
/// Dimensions of each kind's hidden semantic vectors.
pub const SEMANTIC_DIM: usize = 6;
const TR: f64 = 1.0;
const TASK: &str = "movie";
const SUBJECT: &str = "01";
/// The group driven by two kinds.
const MIXED: [&str; 2] = ["speech", "summary"];
const FUNCTION_WORDS: [&str; 10] = [
    "the", "a", "of", "and", "in", "to", "with", "is", "on", "at",
];

fn vocabulary(kind: &str) -> &'static [&'static str] {
    match kind {
        "speech" => &[
            "hello", "sorry", "tomorrow", "money", "promise", "doctor", "hurry", "listen",
            "secret", "dinner", "police", "lawyer", "brother", "deal", "truth", "wedding",
        ],
        "objects" => &[
            "car", "table", "phone", "window", "dog", "bottle", "chair", "lamp", "umbrella",
            "door", "book", "cup", "tree", "bag", "clock", "knife",
        ],
        "story" => &[
            "betrays",
            "escapes",
            "confesses",
            "follows",
            "argues",
            "rescues",
            "hides",
            "discovers",
            "threatens",
            "forgives",
            "chases",
            "meets",
            "loses",
            "plans",
            "steals",
            "returns",
        ],
        "summary" => &[
            "family",
            "revenge",
            "ambition",
            "friendship",
            "grief",
            "loyalty",
            "crime",
            "romance",
            "power",
            "redemption",
            "fear",
            "hope",
            "rivalry",
            "justice",
            "sacrifice",
            "freedom",
        ],
        _ => &[
            "morning",
            "night",
            "evening",
            "dawn",
            "kitchen",
            "office",
            "street",
            "hospital",
            "beach",
            "garage",
            "school",
            "church",
            "bar",
            "forest",
            "airport",
            "courtroom",
        ],
    }
}

/// Files in `truth/`.
pub const TRUTH_FILES: &str = "truth.json; vocabulary.json (kind → word → hidden vector); \
voxels.npy (brain voxels, 3) int32 (i, j, k), ordered as `bids prepare --mask derivatives/mask/sub-01_mask.nii.gz` orders them; \
voxel_group.npy (brain voxels,) int32 index into truth.json groups; voxel_kinds.npy (brain voxels, 5) uint8, 1 where a kind drives the voxel; \
semantics/run-0N_<kind>.npy (seconds, 6) float32 hidden per-second vectors; signal/run-0N.npy (seconds, brain voxels) float32 noise-free \
response in % signal change (no drift, no noise)";

/// What `simulate --kind movie` writes.
#[derive(Debug, Clone)]
pub struct MovieOptions {
    /// The dataset root to create.
    pub out: PathBuf,
    /// Runs (`run-0N`).
    pub runs: usize,
    /// Seconds (volumes, at TR 1 s) per run.
    pub run_seconds: usize,
    /// Seed of every random draw.
    pub seed: u64,
    /// (X, Y, Z)
    pub volume_shape: [usize; 3],
    /// Signal std / noise std.
    pub snr: f64,
}

impl MovieOptions {
    /// The default: 4 runs of 300 s, a 20 × 20 × 10 volume, SNR 1, seed 0.
    pub fn new(out: &Path) -> Self {
        MovieOptions {
            out: out.to_path_buf(),
            runs: 4,
            run_seconds: 300,
            seed: 0,
            volume_shape: [20, 20, 10],
            snr: 1.0,
        }
    }
}

/// One voxel group: the kinds that drive it and its size.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupTruth {
    /// The group's name.
    pub name: String,
    /// The annotation kinds driving it (none for the noise group).
    pub kinds: Vec<String>,
    /// Voxels in the group.
    pub n_voxels: usize,
}

/// `truth/truth.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MovieTruth {
    /// `sub-01`.
    pub subject: String,
    /// `movie`.
    pub task: String,
    /// The seed it was made with.
    pub seed: u64,
    /// Seconds per volume (1).
    pub tr: f64,
    /// Runs.
    pub runs: usize,
    /// Seconds per run.
    pub run_seconds: usize,
    /// (X, Y, Z)
    pub volume_shape: [usize; 3],
    /// Voxels inside the brain mask.
    pub n_brain_voxels: usize,
    /// The annotation kinds ([`KINDS`]).
    pub kinds: Vec<String>,
    /// Dimensions of the hidden word vectors ([`SEMANTIC_DIM`]).
    pub semantic_dim: usize,
    /// The voxel groups (`voxel_group.npy` indexes them).
    pub groups: Vec<GroupTruth>,
    /// Signal std / noise std.
    pub snr: f64,
    /// Std of each driven voxel's response over the runs, % signal change.
    pub signal_percent: f64,
    /// The HRF sampled at the TR (sum 1).
    pub hrf: Vec<f64>,
    /// The HRF, in words.
    pub hrf_description: String,
    /// The words all kinds share, which carry no signal.
    pub function_words: Vec<String>,
    /// What `truth/` holds ([`TRUTH_FILES`]).
    pub files: String,
}

/// What [`simulate_movie`] wrote.
pub struct SimulatedMovie {
    /// The dataset root.
    pub out: PathBuf,
    /// Its `truth/truth.json`.
    pub truth: MovieTruth,
}

/// SPM's canonical HRF (`spm_hrf`: gamma densities peaking at 6 s and 16 s, the second scaled
/// by 1/6, 32 s long) sampled once per TR and normalised to sum 1.
pub fn canonical_hrf(tr: f64) -> Vec<f64> {
    fn gamma_pdf(t: f64, shape: f64) -> f64 {
        if t <= 0.0 {
            return 0.0;
        }
        // Γ(6) = 120 and Γ(16) = 15!: the only two shapes used.
        let gamma = if shape == 6.0 {
            120.0
        } else {
            1_307_674_368_000.0
        };
        t.powf(shape - 1.0) * (-t).exp() / gamma
    }
    let n = (32.0 / tr).floor() as usize + 1;
    let h: Vec<f64> = (0..n)
        .map(|i| {
            let t = i as f64 * tr;
            gamma_pdf(t, 6.0) - gamma_pdf(t, 16.0) / 6.0
        })
        .collect();
    let sum: f64 = h.iter().sum();
    h.into_iter().map(|v| v / sum).collect()
}

/// Annotation lines of every kind as the grammar writes them, for training text models on:
/// `runs` runs of `seconds` from `seed` (never the seeds' runs of a simulated subject, which
/// draw from a generator keyed differently), each segment's line once.
pub fn annotation_corpus(seed: u64, runs: usize, seconds: usize) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xC0_4B05);
    let mut corpus = Vec::new();
    for _ in 0..runs {
        let (lines, _) = annotate(&mut rng, seconds);
        for kind in lines {
            let mut previous: Option<String> = None;
            for line in kind {
                if !line.is_empty() && previous.as_ref() != Some(&line) {
                    corpus.push(line.clone());
                }
                previous = Some(line);
            }
        }
    }
    corpus
}

/// One run's annotation lines for every kind (kind order of `KINDS`), each `seconds` long.
fn annotate(rng: &mut ChaCha8Rng, seconds: usize) -> (Vec<Vec<String>>, Vec<(usize, usize)>) {
    let word = |rng: &mut ChaCha8Rng, kind: &str| *vocabulary(kind).choose(rng).unwrap();
    let function = |rng: &mut ChaCha8Rng| *FUNCTION_WORDS.choose(rng).unwrap();
    let mut lines = vec![Vec::with_capacity(seconds); KINDS.len()];
    // speech: silences of 1–3 s, then an utterance of 2–4 s, three words a second.
    while lines[0].len() < seconds {
        for _ in 0..rng.gen_range(1..=3) {
            lines[0].push(String::new());
        }
        for _ in 0..rng.gen_range(2..=4) {
            let w = [word(rng, "speech"), function(rng), word(rng, "speech")];
            lines[0].push(w.join(" "));
        }
    }
    for _ in 0..seconds {
        let (a, b) = (word(rng, "objects"), word(rng, "objects"));
        lines[1].push(format!("a {a} and a {b}"));
    }
    let mut segments = |rng: &mut ChaCha8Rng,
                        k: usize,
                        lengths: std::ops::RangeInclusive<usize>,
                        make: &mut dyn FnMut(&mut ChaCha8Rng) -> String| {
        let mut spans = Vec::new();
        while lines[k].len() < seconds {
            let start = lines[k].len();
            let len = rng.gen_range(lengths.clone());
            let text = make(rng);
            lines[k].extend(std::iter::repeat_n(text, len));
            spans.push((start, len.min(seconds - start)));
        }
        spans
    };
    segments(rng, 2, 5..=5, &mut |r| {
        format!(
            "he {} the one who {} and {}",
            word(r, "story"),
            word(r, "story"),
            word(r, "story")
        )
    });
    segments(rng, 3, 60..=120, &mut |r| {
        format!(
            "a story of {} and {} with {}",
            word(r, "summary"),
            word(r, "summary"),
            word(r, "summary")
        )
    });
    let times = &vocabulary("timeplace")[..4];
    let places = &vocabulary("timeplace")[4..];
    let scenes = segments(rng, 4, 20..=60, &mut |r| {
        format!(
            "{} at the {}",
            times.choose(r).unwrap(),
            places.choose(r).unwrap()
        )
    });
    for l in &mut lines {
        l.truncate(seconds);
    }
    (lines, scenes)
}

/// Hidden vectors of every content word, per kind.
type WordVectors = Vec<BTreeMap<&'static str, Vec<f64>>>;

fn word_vectors(rng: &mut ChaCha8Rng) -> WordVectors {
    let normal = Normal::new(0.0, 1.0).unwrap();
    KINDS
        .iter()
        .map(|k| {
            vocabulary(k)
                .iter()
                .map(|&w| (w, (0..SEMANTIC_DIM).map(|_| normal.sample(rng)).collect()))
                .collect()
        })
        .collect()
}

/// (seconds × SEMANTIC_DIM) semantic vectors of one kind's lines: mean over content words.
fn semantics(lines: &[String], vectors: &BTreeMap<&'static str, Vec<f64>>) -> Vec<f64> {
    let mut out = vec![0.0; lines.len() * SEMANTIC_DIM];
    for (s, line) in lines.iter().enumerate() {
        let content: Vec<&Vec<f64>> = line
            .split_whitespace()
            .filter_map(|w| vectors.get(w))
            .collect();
        for v in &content {
            for d in 0..SEMANTIC_DIM {
                out[s * SEMANTIC_DIM + d] += v[d] / content.len() as f64;
            }
        }
    }
    out
}

struct Brain {
    /// Flat (x-fastest) index of each brain voxel, ascending.
    flat: Vec<usize>,
    group: Vec<usize>,
    groups: Vec<(String, Vec<usize>)>,
}

/// An ellipsoid filling 90% of the grid, cut into 7 angular sectors around the z axis.
fn make_brain(shape: [usize; 3]) -> Brain {
    let mut groups: Vec<(String, Vec<usize>)> = KINDS
        .iter()
        .enumerate()
        .map(|(k, &name)| (name.to_string(), vec![k]))
        .collect();
    groups.push((
        MIXED.join("+"),
        MIXED
            .iter()
            .map(|m| KINDS.iter().position(|k| k == m).unwrap())
            .collect(),
    ));
    groups.push(("noise".into(), Vec::new()));
    let centre = shape.map(|s| (s as f64 - 1.0) / 2.0);
    let radius = shape.map(|s| 0.45 * s as f64);
    let (mut flat, mut group) = (Vec::new(), Vec::new());
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
                let angle = d[1].atan2(d[0]) + std::f64::consts::PI;
                let sector = ((angle / std::f64::consts::TAU) * groups.len() as f64) as usize;
                flat.push(x + shape[0] * (y + shape[1] * z));
                group.push(sector.min(groups.len() - 1));
            }
        }
    }
    Brain {
        flat,
        group,
        groups,
    }
}

/// Noise-free responses (seconds × brain voxels, % signal change) of every run.
fn responses(
    rng: &mut ChaCha8Rng,
    brain: &Brain,
    semantic: &[Vec<Vec<f64>>],
    seconds: usize,
) -> Vec<Vec<f64>> {
    let normal = Normal::new(0.0, 1.0).unwrap();
    let hrf = canonical_hrf(TR);
    let n = brain.flat.len();
    let weights: Vec<Vec<Vec<f64>>> = brain
        .group
        .iter()
        .map(|&g| {
            brain.groups[g]
                .1
                .iter()
                .map(|_| (0..SEMANTIC_DIM).map(|_| normal.sample(rng)).collect())
                .collect()
        })
        .collect();
    let mut signals = vec![vec![0.0; seconds * n]; semantic.len()];
    for (run, kinds) in semantic.iter().enumerate() {
        for v in 0..n {
            let drive: Vec<f64> = (0..seconds)
                .map(|s| {
                    brain.groups[brain.group[v]]
                        .1
                        .iter()
                        .zip(&weights[v])
                        .map(|(&k, w)| {
                            (0..SEMANTIC_DIM)
                                .map(|d| w[d] * kinds[k][s * SEMANTIC_DIM + d])
                                .sum::<f64>()
                        })
                        .sum()
                })
                .collect();
            for s in 0..seconds {
                let r: f64 = hrf
                    .iter()
                    .enumerate()
                    .take(s + 1)
                    .map(|(lag, h)| h * drive[s - lag])
                    .sum();
                signals[run][s * n + v] = r;
            }
        }
    }
    // 1% signal change: each voxel's std over all runs scaled to one.
    for v in 0..n {
        let values: Vec<f64> = signals
            .iter()
            .flat_map(|r| (0..seconds).map(move |s| r[s * n + v]))
            .collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let std =
            (values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt();
        for run in &mut signals {
            for s in 0..seconds {
                run[s * n + v] = if std > 0.0 {
                    (run[s * n + v] - mean) / std
                } else {
                    0.0
                };
            }
        }
    }
    signals
}

fn check(opts: &MovieOptions) -> Result<()> {
    if !(1..=20).contains(&opts.runs) {
        return Err(DataError::Usage(format!(
            "--runs: expected 1 to 20, found {}",
            opts.runs
        )));
    }
    if !(60..=3600).contains(&opts.run_seconds) {
        return Err(DataError::Usage(format!(
            "--run-seconds: expected 60 to 3600, found {}",
            opts.run_seconds
        )));
    }
    if !(opts.snr.is_finite() && opts.snr > 0.0) {
        return Err(DataError::Usage(format!(
            "snr: expected a positive number, found {}",
            opts.snr
        )));
    }
    Ok(())
}

/// Writes the synthetic movie subject (see the module documentation).
pub fn simulate_movie(opts: &MovieOptions) -> Result<SimulatedMovie> {
    check(opts)?;
    let truth = new_output_dir(&opts.out)?.run(|staging| write_subject(opts, staging))?;
    Ok(SimulatedMovie {
        out: opts.out.clone(),
        truth,
    })
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    write_bytes_atomic(path, text.as_bytes())
}

/// One run's BIDS files (BOLD, sidecar, events) and its annotations.
fn write_run(
    root: &Path,
    run: usize,
    series: &[Vec<f64>],
    shape: [usize; 3],
    lines: &[Vec<String>],
    scenes: &[(usize, usize)],
) -> Result<()> {
    let file = write_bold_run(root, (SUBJECT, TASK, run), "bold.nii.gz", TR, shape, series)?;
    let mut events = String::from("onset\tduration\ttitle\n");
    for &(start, len) in scenes {
        events.push_str(&format!("{:.1}\t{:.1}\t{TASK}\n", start as f64, len as f64));
    }
    write_text(&file("events.tsv"), &events)?;
    for (k, kind) in KINDS.iter().enumerate() {
        let path = root.join(format!(
            "derivatives/annotation/{TASK}_run-{run:02}_{kind}_each1sec.txt"
        ));
        write_text(&path, &(lines[k].join("\n") + "\n"))?;
    }
    Ok(())
}

fn write_subject(opts: &MovieOptions, root: &Path) -> Result<MovieTruth> {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let (shape, seconds) = (opts.volume_shape, opts.run_seconds);
    let brain = make_brain(shape);
    let vectors = word_vectors(&mut rng);
    let mut texts = Vec::new();
    let mut semantic = Vec::new();
    for _ in 0..opts.runs {
        let (lines, scenes) = annotate(&mut rng, seconds);
        semantic.push(
            (0..KINDS.len())
                .map(|k| semantics(&lines[k], &vectors[k]))
                .collect::<Vec<_>>(),
        );
        texts.push((lines, scenes));
    }
    let signals = responses(&mut rng, &brain, &semantic, seconds);
    let baseline: Vec<f64> = (0..brain.flat.len())
        .map(|_| rng.gen_range(800.0..1200.0))
        .collect();
    write_json_atomic(
        &root.join("dataset_description.json"),
        &serde_json::json!({
            "Name": "brainrecon simulated movie subject", "BIDSVersion": "1.8.0", "DatasetType": "raw",
            "GeneratedBy": [{"Name": "brainrecon simulate --kind movie", "Description": format!("seed {}", opts.seed)}],
        }),
    )?;
    write_text(
        &root.join("participants.tsv"),
        &format!("participant_id\nsub-{SUBJECT}\n"),
    )?;
    for (run, (lines, scenes)) in texts.iter().enumerate() {
        let series = bold_volumes(
            &mut rng,
            &brain.flat,
            &baseline,
            &signals[run],
            seconds,
            TR,
            shape,
            (4.0, opts.snr),
        );
        write_run(root, run + 1, &series, shape, lines, scenes)?;
    }
    let mut mask = vec![0i16; shape.iter().product()];
    brain.flat.iter().for_each(|&f| mask[f] = 1);
    nifti_io::write_i16(
        &root.join(format!("derivatives/mask/sub-{SUBJECT}_mask.nii.gz")),
        shape,
        &grid_affine(shape),
        &mask,
    )?;
    write_truth(opts, root, &brain, &vectors, &semantic, &signals)
}

fn write_truth(
    opts: &MovieOptions,
    root: &Path,
    brain: &Brain,
    vectors: &WordVectors,
    semantic: &[Vec<Vec<f64>>],
    signals: &[Vec<f64>],
) -> Result<MovieTruth> {
    let dir = root.join("truth");
    let shape = opts.volume_shape;
    let n = brain.flat.len();
    write_voxel_truth(&dir, &brain.flat, &brain.group, shape)?;
    let kinds: Vec<u8> = brain
        .group
        .iter()
        .flat_map(|&g| (0..KINDS.len()).map(move |k| brain.groups[g].1.contains(&k) as u8))
        .collect();
    npy::write(&dir.join("voxel_kinds.npy"), &[n, KINDS.len()], &kinds)?;
    for (run, per_kind) in semantic.iter().enumerate() {
        for (k, values) in per_kind.iter().enumerate() {
            let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
            npy::write(
                &dir.join(format!("semantics/run-{:02}_{}.npy", run + 1, KINDS[k])),
                &[opts.run_seconds, SEMANTIC_DIM],
                &values,
            )?;
        }
        let values: Vec<f32> = signals[run].iter().map(|&v| v as f32).collect();
        npy::write(
            &dir.join(format!("signal/run-{:02}.npy", run + 1)),
            &[opts.run_seconds, n],
            &values,
        )?;
    }
    let vocab: BTreeMap<&str, &BTreeMap<&str, Vec<f64>>> =
        KINDS.iter().copied().zip(vectors.iter()).collect();
    write_json_atomic(&dir.join("vocabulary.json"), &vocab)?;
    let truth = MovieTruth {
        subject: format!("sub-{SUBJECT}"),
        task: TASK.into(),
        seed: opts.seed,
        tr: TR,
        runs: opts.runs,
        run_seconds: opts.run_seconds,
        volume_shape: shape,
        n_brain_voxels: n,
        kinds: KINDS.iter().map(|k| k.to_string()).collect(),
        semantic_dim: SEMANTIC_DIM,
        groups: brain.groups.iter().enumerate().map(|(g, (name, ks))| GroupTruth {
            name: name.clone(),
            kinds: ks.iter().map(|&k| KINDS[k].to_string()).collect(),
            n_voxels: brain.group.iter().filter(|&&x| x == g).count(),
        }).collect(),
        snr: opts.snr,
        signal_percent: 1.0,
        hrf: canonical_hrf(TR),
        hrf_description: "SPM canonical double gamma (peaks at 6 s and 16 s, ratio 1/6, 32 s) sampled at the TR, sum 1".into(),
        function_words: FUNCTION_WORDS.iter().map(|w| w.to_string()).collect(),
        files: TRUTH_FILES.into(),
    };
    write_json_atomic(&dir.join("truth.json"), &truth)?;
    Ok(truth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrf_peaks_near_five_seconds_and_undershoots() {
        let h = canonical_hrf(1.0);
        assert_eq!(h.len(), 33);
        let peak = (0..h.len()).max_by(|&a, &b| h[a].total_cmp(&h[b])).unwrap();
        assert_eq!(peak, 5);
        assert!(h[15] < 0.0 && (h.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn annotations_keep_their_time_scales_and_vocabularies() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (lines, scenes) = annotate(&mut rng, 300);
        assert!(lines.iter().all(|l| l.len() == 300));
        assert!(lines[0].iter().any(|l| l.is_empty()), "speech has silences");
        let repeats = |k: usize| lines[k].windows(2).filter(|w| w[0] == w[1]).count();
        assert!(repeats(1) < 5, "objects change every second");
        assert!(
            (1..300)
                .filter(|s| s % 5 != 0)
                .all(|s| lines[2][s] == lines[2][s - 1]),
            "story holds 5 s"
        );
        assert!(repeats(3) >= 300 - 300 / 60, "summary holds 60 s or more");
        assert!(
            scenes.iter().all(|&(_, len)| len <= 60)
                && scenes.iter().map(|s| s.1).sum::<usize>() == 300
        );
        // A content word belongs to its own kind only: the kinds share nothing but words
        // without vectors.
        for (k, kind) in KINDS.iter().enumerate() {
            for word in lines[k].iter().flat_map(|l| l.split_whitespace()) {
                let owner = KINDS.iter().find(|o| vocabulary(o).contains(&word));
                assert!(
                    owner.is_none_or(|o| o == kind),
                    "{kind}: '{word}' belongs to {owner:?}"
                );
            }
        }
    }
}
