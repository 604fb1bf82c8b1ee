//! `simulate --kind eeg`: subjects watching images in rapid serial presentation, written in
//! THINGS-EEG2's shipped layout (see `brainrecon_datasets::things_eeg2`), with the truth beside
//! it.
//!
//! ```text
//! eeg_dataset/preprocessed_data/sub-XX/preprocessed_eeg_training.npy   [conditions, 4, 17, 100]
//! eeg_dataset/preprocessed_data/sub-XX/preprocessed_eeg_test.npy       [conditions, R, 17, 100]
//! image_set/image_metadata.npy
//! image_set/training_images/<concept>/<file>.png, image_set/test_images/<concept>/<file>.png
//! truth/eeg.json
//! ```
//!
//! The dicts are pickled as NumPy 1.x's `np.save` wrote the shipped files, so NumPy and the
//! project read them alike. The images are PNG (THINGS ships JPEG; the project writes no JPEG).
//!
//! **Concepts and images.** A concept is a scene of `scene.rs` without its position (size,
//! colour, shape, background: 192 concepts); its images are the scene at different positions.
//! Training and test concepts are disjoint, as in THINGS-EEG2, so zero-shot decoding must
//! generalise over attributes, not over concepts.
//!
//! **The EEG** (17 occipital and parietal channels, −0.2 to 0.79 s at 100 Hz, as the
//! preprocessed data set) is a sum of event-related components, one per attribute family, each
//! a Gaussian bump in time at the family's latency whose topography over the channels is that
//! of the attribute's value:
//!
//! | family | latency | width | topography |
//! |---|---|---|---|
//! | position | 100 ms | 25 ms | contralateral: a blob on the hemisphere opposite the shape, lower for a lower shape (each subject's a little displaced) |
//! | colour | 120 ms | 30 ms | a smooth random pattern per colour |
//! | size | 140 ms | 30 ms | the same per size |
//! | shape | 170 ms | 35 ms | the same per shape (the N1's latency) |
//! | background | 220 ms | 40 ms | the same per background |
//!
//! plus a visual evoked response common to every image (P1–N1, not informative) and a small
//! component of each image's own (250 ms). Topographies are smooth over the scalp (sums of
//! Gaussian blobs at channel positions). Each subject's topography is
//! `√(1 − R)·shared + √R·own` (`individual_share` R), its latencies are shifted by its own
//! N(0, 10 ms), and every trial's amplitude varies by N(0, 20 %) and its latency by N(0, 5 ms).
//! The background is 1/f-like noise (a sum of AR(1) processes with time constants from 10 to
//! 320 ms) plus an alpha rhythm (8–12 Hz, random phase and amplitude per trial), mixed across
//! neighbouring channels. Values are in units of the noise's standard deviation, as after the
//! data set's multivariate noise normalisation.

use crate::new_output_dir;
use crate::scene::{Scene, BACKGROUNDS, COLOURS, POSITIONS, SHAPES, SIZES};
use brainrecon_core::error::{DataError, Result};
use brainrecon_core::fs::write_json_atomic;
use brainrecon_core::progress::bar;
use brainrecon_datasets::things_eeg2::{
    write_image_metadata, write_preprocessed, ImageEntry, ImageMetadata,
};
use brainrecon_formats::image::write_png;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, StandardNormal};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// THINGS-EEG2's preprocessed channels (the occipital and parietal ones) and their positions on
/// a flattened scalp (x right, y front; the vertex at 0, 0).
pub const CHANNELS: [(&str, [f64; 2]); 17] = [
    ("Pz", [0.0, -0.50]),
    ("P3", [-0.35, -0.50]),
    ("P7", [-0.70, -0.55]),
    ("O1", [-0.30, -0.90]),
    ("Oz", [0.0, -0.95]),
    ("O2", [0.30, -0.90]),
    ("P4", [0.35, -0.50]),
    ("P8", [0.70, -0.55]),
    ("P1", [-0.17, -0.50]),
    ("P5", [-0.53, -0.52]),
    ("PO7", [-0.55, -0.75]),
    ("PO3", [-0.27, -0.72]),
    ("POz", [0.0, -0.72]),
    ("PO4", [0.27, -0.72]),
    ("PO8", [0.55, -0.75]),
    ("P6", [0.53, -0.52]),
    ("P2", [0.17, -0.50]),
];

/// Samples of an epoch: −0.2 to 0.79 s at 100 Hz.
pub const TIMES: usize = 100;
const SFREQ: f64 = 100.0;
const FIRST_TIME: f64 = -0.2;

/// The attribute families: name, latency (s), width (s).
pub const FAMILIES: [(&str, f64, f64); 5] = [
    ("position", 0.100, 0.025),
    ("colour", 0.120, 0.030),
    ("size", 0.140, 0.030),
    ("shape", 0.170, 0.035),
    ("background", 0.220, 0.040),
];

/// Concepts: every size, colour, shape and background.
pub const N_CONCEPTS: usize = SIZES.len() * COLOURS.len() * SHAPES.len() * BACKGROUNDS.len();

/// What `simulate --kind eeg` writes.
#[derive(Debug, Clone)]
pub struct EegOptions {
    /// The dataset root to create.
    pub out: PathBuf,
    /// Seed of every random draw.
    pub seed: u64,
    /// Subjects (`sub-01` …).
    pub subjects: usize,
    /// Training concepts (disjoint from the test concepts).
    pub train_concepts: usize,
    /// Images of a training concept (its scene at this many positions, at most 5).
    pub images_per_concept: usize,
    /// Test concepts, one image each.
    pub test_concepts: usize,
    /// Times each training image is seen (4 in THINGS-EEG2).
    pub train_repetitions: usize,
    /// Times each test image is seen (80 in THINGS-EEG2).
    pub test_repetitions: usize,
    /// Side of the images in pixels.
    pub image_size: usize,
    /// Peak amplitude of an attribute's component, in noise standard deviations.
    pub signal: f64,
    /// R: the variance share of each subject's own topographies.
    pub individual_share: f64,
    /// Whether to draw progress bars.
    pub progress: bool,
}

impl EegOptions {
    /// 3 subjects; 96 training concepts × 3 images seen 4 times, 32 test concepts × 1 image
    /// seen 20 times; 64-px images.
    pub fn new(out: &Path) -> Self {
        EegOptions {
            out: out.to_path_buf(),
            seed: 0,
            subjects: 3,
            train_concepts: 96,
            images_per_concept: 3,
            test_concepts: 32,
            train_repetitions: 4,
            test_repetitions: 20,
            image_size: 64,
            signal: 0.6,
            individual_share: 0.3,
            progress: false,
        }
    }
}

/// One image of the simulated set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageTruth {
    /// The concept's folder (`00001_<words>`).
    pub concept: String,
    /// The image's file in it (`<words>_01.png`).
    pub file: String,
    /// The scene drawn.
    pub scene: Scene,
}

/// One subject's own parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubjectTruth {
    /// `sub-XX`.
    pub subject: String,
    /// Added to every family's latency, seconds.
    pub latency_shift: f64,
}

/// `truth/eeg.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EegTruth {
    /// Channel names, in the data's order.
    pub channels: Vec<String>,
    /// Sample rate, Hz (100).
    pub sfreq: f64,
    /// Samples per epoch ([`TIMES`]).
    pub times: usize,
    /// (family, latency s, width s).
    pub families: Vec<(String, f64, f64)>,
    /// Peak amplitude of an attribute's component, in noise standard deviations.
    pub signal: f64,
    /// R: the variance share of each subject's own topographies.
    pub individual_share: f64,
    /// Times each training image is seen.
    pub train_repetitions: usize,
    /// Times each test image is seen.
    pub test_repetitions: usize,
    /// Each subject's own parameters.
    pub subjects: Vec<SubjectTruth>,
    /// The training images, in condition order.
    pub training: Vec<ImageTruth>,
    /// The test images, in condition order.
    pub test: Vec<ImageTruth>,
}

/// What `simulate --kind eeg` wrote.
pub struct SimulatedEeg {
    /// The dataset root.
    pub out: PathBuf,
    /// Its `truth/eeg.json`.
    pub truth: EegTruth,
}

fn check(o: &EegOptions) -> Result<()> {
    let usage = |m: String| Err(DataError::Usage(m));
    for (flag, v, lo, hi) in [
        ("--subjects", o.subjects, 1, 20),
        ("training concepts", o.train_concepts, 2, N_CONCEPTS),
        (
            "images per concept",
            o.images_per_concept,
            1,
            POSITIONS.len(),
        ),
        ("test concepts", o.test_concepts, 2, N_CONCEPTS),
        ("training repetitions", o.train_repetitions, 1, 100),
        ("test repetitions", o.test_repetitions, 1, 200),
        ("--image-size", o.image_size, 16, 512),
    ] {
        if !(lo..=hi).contains(&v) {
            return usage(format!("{flag}: expected {lo} to {hi}, found {v}"));
        }
    }
    if o.train_concepts + o.test_concepts > N_CONCEPTS {
        return usage(format!(
            "training and test concepts: expected at most {N_CONCEPTS} together (every size, colour, shape and background), found {}",
            o.train_concepts + o.test_concepts
        ));
    }
    if !(0.0..=1.0).contains(&o.individual_share) {
        return usage(format!(
            "--individual-share: expected 0 to 1, found {}",
            o.individual_share
        ));
    }
    if !(o.signal.is_finite() && o.signal >= 0.0) {
        return usage(format!(
            "signal: expected a finite amplitude ≥ 0, found {}",
            o.signal
        ));
    }
    Ok(())
}

/// Concept `k` (0-based) as (size, colour, shape, background).
fn concept_scene(k: usize, position: usize) -> Scene {
    let background = k % BACKGROUNDS.len();
    let rest = k / BACKGROUNDS.len();
    let shape = rest % SHAPES.len();
    let rest = rest / SHAPES.len();
    Scene {
        shape,
        colour: rest % COLOURS.len(),
        background,
        position,
        size: rest / COLOURS.len(),
    }
}

/// `small_red_circle_on_grey`.
fn concept_words(s: &Scene) -> String {
    format!(
        "{}_{}_{}_on_{}",
        SIZES[s.size].0, COLOURS[s.colour].0, SHAPES[s.shape], BACKGROUNDS[s.background].0
    )
}

/// A smooth topography: the sum of `blobs` Gaussian blobs (width 0.3) of random sign at random
/// points of the posterior scalp, scaled to unit peak.
fn smooth_topography(rng: &mut ChaCha8Rng, blobs: usize) -> Vec<f64> {
    let mut t = vec![0f64; CHANNELS.len()];
    for _ in 0..blobs {
        let centre = [rng.gen_range(-0.8..0.8), rng.gen_range(-1.0..-0.4)];
        let sign = if rng.gen_bool(0.5) { 1.0 } else { -1.0 };
        blob(&mut t, centre, 0.3, sign);
    }
    unit_peak(t)
}

fn blob(t: &mut [f64], centre: [f64; 2], width: f64, weight: f64) {
    for (v, (_, p)) in t.iter_mut().zip(CHANNELS) {
        let d2 = (p[0] - centre[0]).powi(2) + (p[1] - centre[1]).powi(2);
        *v += weight * (-d2 / (2.0 * width * width)).exp();
    }
}

fn unit_peak(t: Vec<f64>) -> Vec<f64> {
    let peak = t.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-12);
    t.into_iter().map(|v| v / peak).collect()
}

/// The position family's topography: a blob over the hemisphere opposite the shape's
/// horizontal position, lower on the scalp for a lower shape.
fn retinotopic_topography(position: usize, offset: [f64; 2]) -> Vec<f64> {
    let [x, y] = POSITIONS[position].1;
    let centre = [
        -(x as f64 - 0.5) * 1.6 + offset[0],
        -0.55 - (y as f64 - 0.28) * 0.8 + offset[1],
    ];
    let mut t = vec![0f64; CHANNELS.len()];
    blob(&mut t, centre, 0.25, 1.0);
    unit_peak(t)
}

/// Topographies of every family's values: [family][value][channel].
type Topographies = Vec<Vec<Vec<f64>>>;

fn family_sizes() -> [usize; 5] {
    [
        POSITIONS.len(),
        COLOURS.len(),
        SIZES.len(),
        SHAPES.len(),
        BACKGROUNDS.len(),
    ]
}

fn scene_values(s: &Scene) -> [usize; 5] {
    [s.position, s.colour, s.size, s.shape, s.background]
}

fn shared_topographies(rng: &mut ChaCha8Rng) -> Topographies {
    family_sizes()
        .iter()
        .enumerate()
        .map(|(f, &n)| {
            (0..n)
                .map(|v| match f {
                    0 => retinotopic_topography(v, [0.0, 0.0]),
                    _ => smooth_topography(rng, 3),
                })
                .collect()
        })
        .collect()
}

/// One subject's topographies: √(1 − R)·shared + √R·own. A subject's own position topography
/// is the retinotopic blob moved by N(0, 0.1) (visual areas lie a little differently in each
/// head); the other families' are smooth random patterns.
fn subject_topographies(shared: &Topographies, r: f64, rng: &mut ChaCha8Rng) -> Topographies {
    let offset = [
        0.1 * rng.sample::<f64, _>(StandardNormal),
        0.1 * rng.sample::<f64, _>(StandardNormal),
    ];
    shared
        .iter()
        .enumerate()
        .map(|(f, values)| {
            values
                .iter()
                .enumerate()
                .map(|(v, t)| {
                    let own = match f {
                        0 => retinotopic_topography(v, offset),
                        _ => smooth_topography(rng, 3),
                    };
                    t.iter()
                        .zip(own)
                        .map(|(s, o)| (1.0 - r).sqrt() * s + r.sqrt() * o)
                        .collect()
                })
                .collect()
        })
        .collect()
}

fn bump(t: f64, latency: f64, width: f64) -> f64 {
    (-(t - latency).powi(2) / (2.0 * width * width)).exp()
}

/// Noise of one epoch [channels × times]: 1/f-like plus alpha, mixed over neighbours, unit
/// variance per channel on average.
fn background(rng: &mut ChaCha8Rng, mixing: &[Vec<f64>]) -> Vec<f64> {
    let mut sources = vec![0f64; CHANNELS.len() * TIMES];
    // AR(1) processes with time constants 10–320 ms, variance-matched, summed: a 1/f-like
    // spectrum over 3–100 Hz.
    for c in 0..CHANNELS.len() {
        let row = &mut sources[c * TIMES..(c + 1) * TIMES];
        for k in 0..6 {
            let tau = 0.01 * 2f64.powi(k);
            let a = (-1.0 / (tau * SFREQ)).exp();
            let scale = (1.0 - a * a).sqrt();
            let mut x: f64 = rng.sample(StandardNormal);
            for v in row.iter_mut() {
                x = a * x + scale * rng.sample::<f64, _>(StandardNormal);
                *v += x / 6f64.sqrt();
            }
        }
        let freq = rng.gen_range(8.0..12.0);
        let phase = rng.gen_range(0.0..std::f64::consts::TAU);
        let amplitude = rng.gen_range(0.2..0.8);
        for (i, v) in row.iter_mut().enumerate() {
            *v += amplitude * (std::f64::consts::TAU * freq * i as f64 / SFREQ + phase).sin();
        }
    }
    let mut out = vec![0f64; CHANNELS.len() * TIMES];
    for (c, weights) in mixing.iter().enumerate() {
        for (s, w) in weights.iter().enumerate() {
            for t in 0..TIMES {
                out[c * TIMES + t] += w * sources[s * TIMES + t];
            }
        }
    }
    out
}

/// Each channel a normalised mix of its neighbours (volume conduction).
fn neighbour_mixing() -> Vec<Vec<f64>> {
    CHANNELS
        .iter()
        .map(|(_, p)| {
            let w: Vec<f64> = CHANNELS
                .iter()
                .map(|(_, q)| {
                    (-((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)) / (2.0 * 0.2 * 0.2)).exp()
                })
                .collect();
            let norm = w.iter().map(|v| v * v).sum::<f64>().sqrt();
            w.into_iter().map(|v| v / norm).collect()
        })
        .collect()
}

struct Subject {
    topographies: Topographies,
    latency_shift: f64,
    /// The common visual evoked response's topography.
    evoked: Vec<f64>,
}

/// One epoch of `subject` seeing `scene` (with its own component `own`).
fn epoch(
    o: &EegOptions,
    subject: &Subject,
    scene: &Scene,
    own: &[f64],
    mixing: &[Vec<f64>],
    rng: &mut ChaCha8Rng,
) -> Vec<f64> {
    let mut x = background(rng, mixing);
    let amplitude = 1.0 + 0.2 * rng.sample::<f64, _>(StandardNormal);
    let jitter = Normal::new(0.0, 0.005).expect("valid").sample(rng);
    let shift = subject.latency_shift + jitter;
    let values = scene_values(scene);
    for t in 0..TIMES {
        let time = FIRST_TIME + t as f64 / SFREQ;
        // P1–N1 complex common to every image.
        let evoked = bump(time, 0.1 + shift, 0.02) - 1.2 * bump(time, 0.17 + shift, 0.03);
        let own_wave = 0.4 * bump(time, 0.25 + shift, 0.05);
        for c in 0..CHANNELS.len() {
            let mut v = 0.5 * evoked * subject.evoked[c] + own_wave * own[c];
            for (f, &(_, latency, width)) in FAMILIES.iter().enumerate() {
                v += bump(time, latency + shift, width) * subject.topographies[f][values[f]][c];
            }
            x[c * TIMES + t] += o.signal * amplitude * v;
        }
    }
    x
}

/// Writes the data set (see the module documentation).
pub fn simulate_eeg(o: &EegOptions) -> Result<SimulatedEeg> {
    check(o)?;
    let truth = new_output_dir(&o.out)?.run(|staging| write_dataset(o, staging))?;
    Ok(SimulatedEeg {
        out: o.out.clone(),
        truth,
    })
}

fn write_dataset(o: &EegOptions, root: &Path) -> Result<EegTruth> {
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed ^ 0xEE6_0000);
    let mut concepts: Vec<usize> = (0..N_CONCEPTS).collect();
    concepts.shuffle(&mut rng);
    let mut train_concepts = concepts[..o.train_concepts].to_vec();
    let mut test_concepts = concepts[o.train_concepts..o.train_concepts + o.test_concepts].to_vec();
    // THINGS numbers its concepts alphabetically and lists them in order.
    train_concepts.sort_unstable();
    test_concepts.sort_unstable();
    let images = |concepts: &[usize], per: usize, rng: &mut ChaCha8Rng| -> Vec<ImageTruth> {
        concepts
            .iter()
            .flat_map(|&k| {
                let mut positions: Vec<usize> = (0..POSITIONS.len()).collect();
                positions.shuffle(rng);
                positions.truncate(per);
                positions.sort_unstable();
                let words = concept_words(&concept_scene(k, 0));
                positions
                    .into_iter()
                    .enumerate()
                    .map(move |(i, p)| ImageTruth {
                        concept: format!("{:05}_{words}", k + 1),
                        file: format!("{words}_{:02}.png", i + 1),
                        scene: concept_scene(k, p),
                    })
            })
            .collect()
    };
    let training = images(&train_concepts, o.images_per_concept, &mut rng);
    let test = images(&test_concepts, 1, &mut rng);

    let image_set = root.join("image_set");
    for (folder, list) in [("training_images", &training), ("test_images", &test)] {
        for image in list.iter() {
            let dir = image_set.join(folder).join(&image.concept);
            std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
            write_png(&dir.join(&image.file), &image.scene.render(o.image_size))?;
        }
    }
    let entries = |list: &[ImageTruth]| -> Vec<ImageEntry> {
        list.iter()
            .map(|i| ImageEntry {
                concept: i.concept.clone(),
                file: i.file.clone(),
            })
            .collect()
    };
    write_image_metadata(
        &image_set.join("image_metadata.npy"),
        &ImageMetadata {
            training: entries(&training),
            test: entries(&test),
        },
    )?;

    let shared = shared_topographies(&mut rng);
    let mixing = neighbour_mixing();
    let times: Vec<f64> = (0..TIMES)
        .map(|t| ((FIRST_TIME + t as f64 / SFREQ) * 100.0).round() / 100.0)
        .collect();
    let bar = bar(
        (o.subjects * (training.len() + test.len())) as u64,
        "EEG epochs",
        o.progress,
    );
    let mut subjects = Vec::new();
    for s in 0..o.subjects {
        let name = format!("sub-{:02}", s + 1);
        let mut srng = ChaCha8Rng::seed_from_u64(o.seed ^ 0x5EB_0000 ^ (s as u64 + 1));
        let subject = Subject {
            topographies: subject_topographies(&shared, o.individual_share, &mut srng),
            latency_shift: Normal::new(0.0, 0.01).expect("valid").sample(&mut srng),
            evoked: smooth_topography(&mut srng, 2),
        };
        let dir = root.join("eeg_dataset/preprocessed_data").join(&name);
        std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
        for (stem, list, repetitions) in [
            ("training", &training, o.train_repetitions),
            ("test", &test, o.test_repetitions),
        ] {
            let mut data = Vec::with_capacity(list.len() * repetitions * CHANNELS.len() * TIMES);
            for image in list.iter() {
                // An image's own component is the same for every subject and repetition.
                let mut own_rng =
                    ChaCha8Rng::seed_from_u64(o.seed ^ 0x1A6E ^ ((image.scene.id() as u64) << 8));
                let own = smooth_topography(&mut own_rng, 2);
                for _ in 0..repetitions {
                    data.extend(epoch(o, &subject, &image.scene, &own, &mixing, &mut srng));
                }
                bar.inc(1);
            }
            let names: Vec<String> = CHANNELS.iter().map(|(c, _)| c.to_string()).collect();
            write_preprocessed(
                &dir.join(format!("preprocessed_eeg_{stem}.npy")),
                &data,
                [list.len(), repetitions, CHANNELS.len(), TIMES],
                &names,
                &times,
            )?;
        }
        subjects.push(SubjectTruth {
            subject: name,
            latency_shift: subject.latency_shift,
        });
    }
    bar.finish_and_clear();
    let truth = EegTruth {
        channels: CHANNELS.iter().map(|(n, _)| n.to_string()).collect(),
        sfreq: SFREQ,
        times: TIMES,
        families: FAMILIES
            .iter()
            .map(|&(n, l, w)| (n.to_string(), l, w))
            .collect(),
        signal: o.signal,
        individual_share: o.individual_share,
        train_repetitions: o.train_repetitions,
        test_repetitions: o.test_repetitions,
        subjects,
        training,
        test,
    };
    let dir = root.join("truth");
    std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
    write_json_atomic(&dir.join("eeg.json"), &truth)?;
    Ok(truth)
}
