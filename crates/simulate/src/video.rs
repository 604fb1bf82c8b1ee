//! `simulate --kind video`: a synthetic subject watching clips of moving shapes, written in the
//! layout of the CC2017 dataset (Wen et al. 2018), with the truth beside it.
//!
//! ```text
//! design.json                                         segments, repetitions, TRs (see below)
//! subject1/fmri/segK/cifti/segK_R_Atlas.dtseries.nii   training segment K, repetition R
//! subject1/fmri/testK/cifti/testK_R_Atlas.dtseries.nii test segment K, repetition R
//! stimuli/segK/frame_000000.png …                       the segment's frames (RGB PNG)
//! stimuli/segK/frames.json                              {"fps", "width", "height", "n_frames"}
//! stimuli/captions.tsv                                  split, segment, TR, caption (the video route's)
//! truth/                                                see TRUTH_FILES
//! ```
//!
//! CC2017 ships its stimuli as `segK.mp4` at 30 fps; here each segment is a folder of frames at
//! `frames_per_tr / TR` fps (3 fps by default, the rate the video-reconstruction papers sample
//! CC2017 at). `design.json` is not part of CC2017: it tells `data::cc2017` the (smaller)
//! design of a simulated dataset; without it the published design is expected.
//!
//! **Stimulus.** A segment is a sequence of clips, each 1–3 TRs long, cut at TR boundaries: a
//! scene of `scene.rs` (shape, colour, background, size) whose shape moves left, right, up or
//! down at a constant speed, or stands still, staying inside the frame ([`ClipSpec`],
//! [`render_clip`]).
//!
//! **Brain.** Grayordinates of two cortical surfaces (`CIFTI_STRUCTURE_CORTEX_LEFT/RIGHT`,
//! vertices of fsaverage5 spread from the occipital pole forwards, its medial wall left out) and a small subcortical voxel model
//! (`CIFTI_STRUCTURE_THALAMUS_LEFT`, noise only). Each hemisphere is cut into contiguous
//! blocks, back to front: `early-contrast` (25%: RMS contrast of the frame in one cell of a
//! 4×4 grid, cells in vertex order), `early-motion` (20%: motion energy in one of the four directions, over the
//! whole frame), `higher` (25%: a random linear mix of the clip's shape and colour categories),
//! `noise` (30%). Features are computed per frame from the rendered pixels (contrast, motion)
//! or the clip (categories), convolved with SPM's canonical HRF at the frame rate and sampled
//! at the middle of each TR; each grayordinate's signal is scaled to `signal_percent` standard
//! deviation over all segments. A run is baseline × (1 + (signal + drift + noise) / 100) with a
//! per-run drift (linear trend and a 300–900 s sinusoid) and noise of std `signal_percent /
//! snr`: every repetition of a segment carries the same signal with independent drift and noise.
//!
//! **Motion energy** of a frame in direction d is the least-squares displacement along d that
//! explains the change from the previous frame (brightness constancy, summed over the RGB
//! channels: Σ −∂I/∂t · ∂I/∂d / Σ (∂I/∂d)², in pixels per frame), rectified; zero on the first
//! frame of a clip, since a cut is not motion.

use super::bold::{bold_volumes, write_voxel_truth};
use super::movie::canonical_hrf;
use super::new_output_dir;
use super::scene::{Scene, BACKGROUNDS, COLOURS, POSITIONS, SHAPES, SIZES};
use brainrecon_core::error::{DataError, Result};
use brainrecon_core::fs::write_json_atomic;
use brainrecon_core::progress::bar_aligned;
use brainrecon_datasets::cc2017::{Design, DESIGN_FORMAT};
use brainrecon_formats::cifti::cc2017::{run_path, Split};
use brainrecon_formats::cifti::{
    write_dense_series, BrainModel, CiftiVolume, ModelType, SeriesMap,
};
use brainrecon_formats::image::{write_png, RgbImage};
use brainrecon_formats::motion::ShiftSums;
use brainrecon_formats::npy;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Seconds per volume, as CC2017.
pub const TR: f64 = 2.0;
/// The motion directions, in the order of `direction` indices everywhere.
pub const DIRECTIONS: [&str; 5] = ["left", "right", "up", "down", "still"];
/// Side of the retinotopic grid of the contrast voxels.
pub const GRID: usize = 4;
/// Voxel groups, in the order of `voxel_group.npy`.
pub const GROUPS: [&str; 4] = ["early-contrast", "early-motion", "higher", "noise"];
/// Share of each hemisphere's vertices in each group (same order).
const GROUP_SHARES: [f64; 4] = [0.25, 0.20, 0.25, 0.30];
/// Features per frame: contrast cells, motion directions, shapes, colours.
const N_FEATURES: usize = GRID * GRID + 4 + SHAPES.len() + COLOURS.len();

/// Files in `truth/`.
pub const TRUTH_FILES: &str = "truth.json; segments/<seg>.json (clips with their first TR, length, spec and \
captions; per TR the clip, caption and direction); segments/<seg>_direction.npy (n_tr,) int64 index into \
DIRECTIONS; signal/<seg>.npy (n_tr, grayordinates) float32 noise-free signal in % change; \
voxels.npy (grayordinates, 3) int32: column 0 the grayordinate index (CIFTI column), columns 1-2 zero; \
voxel_group.npy (grayordinates,) int32 index into truth.json groups; voxel_tuning.npy (grayordinates,) \
int32: the grid cell (row-major, 4×4) of early-contrast voxels, the direction of early-motion voxels, -1 else";

/// A direction of motion (`Still` does not move).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Towards −x (left).
    Left,
    /// Towards +x (right).
    Right,
    /// Towards −y (up).
    Up,
    /// Towards +y (down).
    Down,
    /// No motion.
    Still,
}

impl Direction {
    /// Every direction, in [`DIRECTIONS`] order.
    pub const ALL: [Direction; 5] = [
        Direction::Left,
        Direction::Right,
        Direction::Up,
        Direction::Down,
        Direction::Still,
    ];

    /// Index into [`DIRECTIONS`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Its name in [`DIRECTIONS`] (`left`, …).
    pub fn name(self) -> &'static str {
        DIRECTIONS[self.index()]
    }

    /// Unit step in image coordinates (x right, y down).
    pub fn vector(self) -> [f32; 2] {
        match self {
            Direction::Left => [-1.0, 0.0],
            Direction::Right => [1.0, 0.0],
            Direction::Up => [0.0, -1.0],
            Direction::Down => [0.0, 1.0],
            Direction::Still => [0.0, 0.0],
        }
    }
}

/// One clip: a scene whose shape starts at `start` and moves `speed` image widths per frame in
/// `direction`. `scene.position` is the named position nearest to `start` (the scene tables'
/// vocabulary); the drawing uses `start`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClipSpec {
    /// Shape, colour, background and size (and the named position nearest `start`).
    pub scene: Scene,
    /// Direction of motion.
    pub direction: Direction,
    /// Displacement per frame, in image widths (0 when still).
    pub speed: f32,
    /// Centre of the shape in the first frame, x and y in [0, 1].
    pub start: [f32; 2],
}

/// Speeds drawn for moving clips, image widths per frame (2–3 pixels at 64 px: a clip of one TR
/// moves 10–16 pixels; longer clips are slowed so the shape stays in the frame).
const SPEED: std::ops::Range<f32> = 0.03..0.05;
/// Share of still clips.
const STILL_SHARE: f64 = 0.15;

impl ClipSpec {
    /// Centre of the shape in frame `frame`.
    pub fn centre(&self, frame: usize) -> [f32; 2] {
        let [dx, dy] = self.direction.vector();
        let d = self.speed * frame as f32;
        [self.start[0] + dx * d, self.start[1] + dy * d]
    }

    /// A random clip of `n_frames` frames whose shape stays wholly inside the frame: the speed
    /// is capped so the path fits, and the start leaves room for it.
    pub fn random(rng: &mut impl Rng, n_frames: usize) -> Self {
        let mut scene = Scene::random(rng);
        let direction = if rng.gen_bool(STILL_SHARE) {
            Direction::Still
        } else {
            Direction::ALL[rng.gen_range(0..4)]
        };
        // The shapes reach at most SIZES radius from their centre.
        let r = SIZES[scene.size].1;
        let room = 1.0 - 2.0 * r;
        let steps = n_frames.saturating_sub(1).max(1) as f32;
        let speed = match direction {
            Direction::Still => 0.0,
            _ => rng.gen_range(SPEED).min(room / steps),
        };
        let travel = speed * steps;
        let [dx, dy] = direction.vector();
        let along = |rng: &mut dyn rand::RngCore, v: f32| {
            // Start so that start + v·travel stays in [r, 1 − r].
            let lo = r + if v < 0.0 { travel } else { 0.0 };
            let hi = 1.0 - r - if v > 0.0 { travel } else { 0.0 };
            if hi > lo {
                rng.gen_range(lo..hi)
            } else {
                lo
            }
        };
        let start = [along(rng, dx), along(rng, dy)];
        scene.position = nearest_position(start);
        ClipSpec {
            scene,
            direction,
            speed,
            start,
        }
    }

    fn words(&self) -> (&'static str, &'static str, &'static str, &'static str) {
        (
            SIZES[self.scene.size].0,
            COLOURS[self.scene.colour].0,
            SHAPES[self.scene.shape],
            BACKGROUNDS[self.scene.background].0,
        )
    }

    /// "moving left", or "standing still".
    fn motion_phrase(&self) -> String {
        match self.direction {
            Direction::Still => "standing still".into(),
            d => format!("moving {}", d.name()),
        }
    }

    /// The canonical caption: "a red circle moving left".
    pub fn caption(&self) -> String {
        let (_, colour, shape, _) = self.words();
        format!("a {colour} {shape} {}", self.motion_phrase())
    }

    /// Five captions naming colour, shape and motion, with the scene captions' other words
    /// (size, background); the first is [`ClipSpec::caption`].
    pub fn captions(&self, rng: &mut impl Rng) -> Vec<String> {
        let (size, colour, shape, background) = self.words();
        let motion = self.motion_phrase();
        let verb = match self.direction {
            Direction::Still => "stays in place".to_string(),
            Direction::Left | Direction::Right => {
                format!("moves to the {}", self.direction.name())
            }
            d => format!("moves {}", d.name()),
        };
        let big = if size == "small" {
            ["small", "little"]
        } else {
            ["large", "big"]
        };
        vec![
            self.caption(),
            format!("a {size} {colour} {shape} on a {background} background {motion}"),
            format!("a {colour} {shape} {verb} against {background}"),
            format!(
                "a {background} video of a {} {colour} {shape} {motion}",
                big.choose(rng).unwrap()
            ),
            format!("the {colour} {shape} {verb}"),
        ]
    }
}

fn nearest_position(p: [f32; 2]) -> usize {
    let d = |q: [f32; 2]| (q[0] - p[0]).powi(2) + (q[1] - p[1]).powi(2);
    (0..POSITIONS.len())
        .min_by(|&a, &b| d(POSITIONS[a].1).total_cmp(&d(POSITIONS[b].1)))
        .unwrap()
}

/// The `n_frames` frames (`size`×`size`) of a clip: the scene drawn with its shape at
/// [`ClipSpec::centre`] of each frame.
pub fn render_clip(spec: &ClipSpec, n_frames: usize, size: usize) -> Vec<RgbImage> {
    (0..n_frames)
        .map(|f| spec.scene.render_at(spec.centre(f), size))
        .collect()
}

/// A clip placed in a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlacedClip {
    /// The segment's TR where the clip starts (0-based).
    pub first_tr: usize,
    /// TRs the clip lasts (1–3).
    pub n_trs: usize,
    /// What the clip shows.
    pub spec: ClipSpec,
    /// Five captions naming colour, shape and motion.
    pub captions: Vec<String>,
}

/// One TR of a segment's truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrTruth {
    /// TR index in the segment (0-based).
    pub tr: usize,
    /// Index into the segment's clips of the clip shown.
    pub clip: usize,
    /// The clip's first caption (the captions table's).
    pub caption: String,
    /// The clip's direction of motion.
    pub direction: Direction,
}

/// `truth/segments/<name>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentTruth {
    /// `segK` or `testK`.
    pub name: String,
    /// Volumes of the segment.
    pub n_tr: usize,
    /// Frames shown per TR.
    pub frames_per_tr: usize,
    /// The segment's clips, in order.
    pub clips: Vec<PlacedClip>,
    /// Per TR: clip, caption and direction.
    pub trs: Vec<TrTruth>,
}

/// What `simulate --kind video` writes.
#[derive(Debug, Clone)]
pub struct VideoOptions {
    /// The dataset root to create.
    pub out: PathBuf,
    /// Seed of every random draw.
    pub seed: u64,
    /// `subjectN`.
    pub subject: usize,
    /// Training segments (`segK`).
    pub train_segments: usize,
    /// Presentations of each training segment.
    pub train_repetitions: usize,
    /// Test segments (`testK`).
    pub test_segments: usize,
    /// Presentations of each test segment.
    pub test_repetitions: usize,
    /// Volumes per segment.
    pub n_tr: usize,
    /// Frames shown per TR (fps = frames_per_tr / [`TR`]).
    pub frames_per_tr: usize,
    /// Side of the square frames, pixels.
    pub frame_size: usize,
    /// Cortical grayordinates per hemisphere.
    pub vertices_per_hemisphere: usize,
    /// Voxels of the subcortical (noise-only) model.
    pub subcortical_voxels: usize,
    /// Signal std / noise std.
    pub snr: f64,
    /// Whether to draw progress bars.
    pub progress: bool,
}

impl VideoOptions {
    /// The small default: 4 training segments × 2, 2 test segments × 4, 40 TRs each, 64-px
    /// frames, 2000 grayordinates (seconds to make).
    pub fn new(out: &Path) -> Self {
        VideoOptions {
            out: out.to_path_buf(),
            seed: 0,
            subject: 1,
            train_segments: 4,
            train_repetitions: 2,
            test_segments: 2,
            test_repetitions: 4,
            n_tr: 40,
            frames_per_tr: 6,
            frame_size: 64,
            vertices_per_hemisphere: 900,
            subcortical_voxels: 200,
            snr: 1.0,
            progress: false,
        }
    }

    /// CC2017's design: 18 training segments × 2, 5 test segments × 10, 240 TRs each (the
    /// grayordinates stay small: 91k would be 7 GB of runs).
    pub fn paper(out: &Path) -> Self {
        VideoOptions {
            train_segments: 18,
            test_segments: 5,
            test_repetitions: 10,
            n_tr: 240,
            ..VideoOptions::new(out)
        }
    }

    /// The dataset's `design.json`.
    pub fn design(&self) -> Design {
        Design {
            format: DESIGN_FORMAT.into(),
            train_segments: self.train_segments,
            train_repetitions: self.train_repetitions,
            test_segments: self.test_segments,
            test_repetitions: self.test_repetitions,
            n_tr: self.n_tr,
            tr: TR,
            frames_per_tr: self.frames_per_tr,
        }
    }
}

/// One voxel group and its size.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupTruth {
    /// The group's name (of [`GROUPS`]).
    pub name: String,
    /// Grayordinates in the group.
    pub n_grayordinates: usize,
}

/// `truth/truth.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VideoTruth {
    /// `subjectN`.
    pub subject: String,
    /// The seed it was made with.
    pub seed: u64,
    /// Segments, repetitions and TRs.
    pub design: Design,
    /// Frame rate of the stimuli (frames per second).
    pub fps: f64,
    /// Side of the square frames, pixels.
    pub frame_size: usize,
    /// Grayordinates of every run (cortex, then subcortical voxels).
    pub n_grayordinates: usize,
    /// Grayordinates of the two cortical surfaces (the first columns).
    pub n_cortex: usize,
    /// The voxel groups, in [`GROUPS`] order (`voxel_group.npy` indexes them).
    pub groups: Vec<GroupTruth>,
    /// [`DIRECTIONS`] (`segments/<seg>_direction.npy` indexes them).
    pub directions: Vec<String>,
    /// Side of the contrast voxels' retinotopic grid ([`GRID`]).
    pub grid: usize,
    /// Signal std / noise std.
    pub snr: f64,
    /// Std of each tuned grayordinate's signal over all segments, % of baseline.
    pub signal_percent: f64,
    /// Amplitude scale of the per-run drifts (linear trend and sinusoid), % of baseline.
    pub drift_percent: f64,
    /// The HRF the features were convolved with, in words.
    pub hrf_description: String,
    /// What `truth/` holds ([`TRUTH_FILES`]).
    pub files: String,
}

/// What [`simulate_video`] wrote.
pub struct SimulatedVideo {
    /// The dataset root.
    pub out: PathBuf,
    /// Its `truth/truth.json`.
    pub truth: VideoTruth,
}

fn check(opts: &VideoOptions) -> Result<()> {
    let usage = |flag: &str, range: &str, v: usize| {
        Err(DataError::Usage(format!(
            "{flag}: expected {range}, found {v}"
        )))
    };
    for (flag, v, lo, hi) in [
        ("train segments", opts.train_segments, 1, 100),
        ("train repetitions", opts.train_repetitions, 2, 20),
        ("test segments", opts.test_segments, 1, 100),
        ("test repetitions", opts.test_repetitions, 1, 20),
        ("--n-tr", opts.n_tr, 12, 2000),
        ("frames per TR", opts.frames_per_tr, 2, 60),
        ("--frame-size", opts.frame_size, 16, 512),
        (
            "vertices per hemisphere",
            opts.vertices_per_hemisphere,
            40,
            200_000,
        ),
        ("--subject", opts.subject, 1, 99),
    ] {
        if !(lo..=hi).contains(&v) {
            return usage(flag, &format!("{lo} to {hi}"), v);
        }
    }
    if opts.subcortical_voxels > 1000 {
        return usage("subcortical voxels", "0 to 1000", opts.subcortical_voxels);
    }
    if !(opts.snr.is_finite() && opts.snr > 0.0) {
        return Err(DataError::Usage(format!(
            "snr: expected a positive number, found {}",
            opts.snr
        )));
    }
    Ok(())
}

/// Writes the synthetic video subject (see the module documentation).
pub fn simulate_video(opts: &VideoOptions) -> Result<SimulatedVideo> {
    check(opts)?;
    let truth = new_output_dir(&opts.out)?.run(|staging| write_dataset(opts, staging))?;
    Ok(SimulatedVideo {
        out: opts.out.clone(),
        truth,
    })
}

/// Clips of 1–3 TRs filling `n_tr` TRs.
fn segment_clips(rng: &mut ChaCha8Rng, n_tr: usize, frames_per_tr: usize) -> Vec<PlacedClip> {
    let mut clips = Vec::new();
    let mut tr = 0;
    while tr < n_tr {
        let n_trs = rng.gen_range(1..=3).min(n_tr - tr);
        let spec = ClipSpec::random(rng, n_trs * frames_per_tr);
        let captions = spec.captions(rng);
        clips.push(PlacedClip {
            first_tr: tr,
            n_trs,
            spec,
            captions,
        });
        tr += n_trs;
    }
    clips
}

fn segment_truth(
    name: String,
    n_tr: usize,
    frames_per_tr: usize,
    clips: Vec<PlacedClip>,
) -> SegmentTruth {
    let trs = clips
        .iter()
        .enumerate()
        .flat_map(|(c, clip)| {
            (clip.first_tr..clip.first_tr + clip.n_trs).map(move |tr| TrTruth {
                tr,
                clip: c,
                caption: clip.captions[0].clone(),
                direction: clip.spec.direction,
            })
        })
        .collect();
    SegmentTruth {
        name,
        n_tr,
        frames_per_tr,
        clips,
        trs,
    }
}

/// Luminance-free colour planes of a frame as f32 (h, w, 3).
fn planes(frame: &RgbImage) -> Vec<f32> {
    frame.pixels.iter().map(|&p| p as f32 / 255.0).collect()
}

/// RMS contrast (std of the mean of the RGB channels) in each cell of the GRID×GRID grid.
fn contrast_cells(frame: &RgbImage) -> [f32; GRID * GRID] {
    let (h, w) = (frame.height, frame.width);
    let mut sum = [0f64; GRID * GRID];
    let mut sq = [0f64; GRID * GRID];
    let mut n = [0f64; GRID * GRID];
    for y in 0..h {
        for x in 0..w {
            let p = &frame.pixels[(y * w + x) * 3..(y * w + x) * 3 + 3];
            let l = (p[0] as f64 + p[1] as f64 + p[2] as f64) / (3.0 * 255.0);
            let c = (y * GRID / h) * GRID + x * GRID / w;
            sum[c] += l;
            sq[c] += l * l;
            n[c] += 1.0;
        }
    }
    std::array::from_fn(|c| {
        let mean = sum[c] / n[c];
        (sq[c] / n[c] - mean * mean).max(0.0).sqrt() as f32
    })
}

/// Rectified least-squares displacement (pixels per frame) from `previous` to `current` along
/// each moving direction (see the module documentation).
fn motion_energy(previous: &[f32], current: &[f32], h: usize, w: usize) -> [f32; 4] {
    let mut sums = ShiftSums::default();
    sums.add_pair(previous, current, h, w, 3);
    let [vx, vy] = sums.displacement();
    // left, right, up (y decreasing), down
    [(-vx).max(0.0), vx.max(0.0), (-vy).max(0.0), vy.max(0.0)].map(|v| v as f32)
}

/// Renders a segment's frames, writes them, and returns its per-frame features
/// (frames × N_FEATURES).
fn render_segment(
    dir: &Path,
    truth: &SegmentTruth,
    size: usize,
    fps: f64,
) -> Result<Vec<[f32; N_FEATURES]>> {
    let mut features = Vec::with_capacity(truth.n_tr * truth.frames_per_tr);
    let mut index = 0usize;
    for clip in &truth.clips {
        let frames = render_clip(&clip.spec, clip.n_trs * truth.frames_per_tr, size);
        let mut previous: Option<Vec<f32>> = None;
        for frame in &frames {
            let current = planes(frame);
            let mut f = [0f32; N_FEATURES];
            f[..GRID * GRID].copy_from_slice(&contrast_cells(frame));
            if let Some(p) = &previous {
                f[GRID * GRID..GRID * GRID + 4]
                    .copy_from_slice(&motion_energy(p, &current, size, size));
            }
            f[GRID * GRID + 4 + clip.spec.scene.shape] = 1.0;
            f[GRID * GRID + 4 + SHAPES.len() + clip.spec.scene.colour] = 1.0;
            features.push(f);
            write_png(&dir.join(format!("frame_{index:06}.png")), frame)?;
            previous = Some(current);
            index += 1;
        }
    }
    write_json_atomic(
        &dir.join("frames.json"),
        &serde_json::json!({"fps": fps, "width": size, "height": size, "n_frames": index}),
    )?;
    Ok(features)
}

/// Features convolved with the HRF at the frame rate and sampled at the middle of each TR:
/// (n_tr × N_FEATURES).
fn sampled_features(features: &[[f32; N_FEATURES]], n_tr: usize, frames_per_tr: usize) -> Vec<f64> {
    let hrf = canonical_hrf(TR / frames_per_tr as f64);
    let mut out = vec![0f64; n_tr * N_FEATURES];
    for t in 0..n_tr {
        let frame = t * frames_per_tr + frames_per_tr / 2;
        for (lag, h) in hrf.iter().enumerate().take(frame + 1) {
            let f = &features[frame - lag];
            for k in 0..N_FEATURES {
                out[t * N_FEATURES + k] += h * f[k] as f64;
            }
        }
    }
    out
}

/// The grayordinates: brain models, each one's group and tuning, and per-voxel feature weights.
struct Brain {
    models: Vec<BrainModel>,
    volume: CiftiVolume,
    group: Vec<usize>,
    tuning: Vec<i32>,
    /// (grayordinates × N_FEATURES)
    weights: Vec<f64>,
    n_cortex: usize,
}

/// A hemisphere's grayordinates as vertices of fsaverage5 (the cortex brainrecon embeds):
/// `count` of its cortical vertices (the medial wall left out) spread evenly from the occipital
/// pole forwards, so the groups, cut in vertex order, are bands from back to front
/// (`early-*` at the back). More grayordinates than fsaverage5 has: a mesh of its own, every
/// tenth vertex left out as a medial wall is.
fn surface_model(
    structure: &str,
    offset: usize,
    count: usize,
    posterior_first: &[u32],
) -> BrainModel {
    let n = posterior_first.len();
    let (vertex_indices, mesh_vertices): (Vec<usize>, usize) = if count <= n {
        let picks = (0..count).map(|i| posterior_first[i * n / count] as usize);
        (
            picks.collect(),
            brainrecon_cortex::template::FSAVERAGE5_VERTICES,
        )
    } else {
        let v: Vec<usize> = (0..).filter(|v| v % 10 != 9).take(count).collect();
        let last = v.last().map_or(1, |v| v + 1);
        (v, last)
    };
    BrainModel {
        index_offset: offset,
        index_count: count,
        model_type: ModelType::Surface,
        brain_structure: structure.into(),
        surface_number_of_vertices: Some(mesh_vertices),
        vertex_indices,
        voxel_indices_ijk: Vec::new(),
    }
}

fn make_brain(rng: &mut ChaCha8Rng, per_hemisphere: usize, subcortical: usize) -> Result<Brain> {
    use brainrecon_cortex::mesh::Hemi;
    use brainrecon_cortex::template::fsaverage5_cortex_by_y;
    let mut models = vec![
        surface_model(
            brainrecon_formats::cifti::CORTEX[0],
            0,
            per_hemisphere,
            &fsaverage5_cortex_by_y(Hemi::Left)?,
        ),
        surface_model(
            brainrecon_formats::cifti::CORTEX[1],
            per_hemisphere,
            per_hemisphere,
            &fsaverage5_cortex_by_y(Hemi::Right)?,
        ),
    ];
    // HCP's 2-mm MNI grid; the voxels fill a box around the left thalamus.
    let volume = CiftiVolume {
        dimensions: [91, 109, 91],
        ijk_to_xyz: [
            [-2.0, 0.0, 0.0, 90.0],
            [0.0, 2.0, 0.0, -126.0],
            [0.0, 0.0, 2.0, -72.0],
            [0.0, 0.0, 0.0, 1.0],
        ],
        meter_exponent: -3,
    };
    if subcortical > 0 {
        let voxels: Vec<[usize; 3]> = (0..subcortical)
            .map(|i| [48 + i % 10, 50 + (i / 10) % 10, 36 + i / 100])
            .collect();
        models.push(BrainModel {
            index_offset: 2 * per_hemisphere,
            index_count: subcortical,
            model_type: ModelType::Voxels,
            brain_structure: "CIFTI_STRUCTURE_THALAMUS_LEFT".into(),
            surface_number_of_vertices: None,
            vertex_indices: Vec::new(),
            voxel_indices_ijk: voxels,
        });
    }
    let normal = Normal::new(0.0, 1.0).unwrap();
    let n = 2 * per_hemisphere + subcortical;
    let (mut group, mut tuning) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut weights = vec![0f64; n * N_FEATURES];
    let bounds: Vec<usize> = GROUP_SHARES
        .iter()
        .scan(0.0, |acc, s| {
            *acc += s;
            Some((*acc * per_hemisphere as f64).round() as usize)
        })
        .collect();
    for g in 0..n {
        let w = &mut weights[g * N_FEATURES..(g + 1) * N_FEATURES];
        if g >= 2 * per_hemisphere {
            group.push(3);
            tuning.push(-1);
            continue;
        }
        let v = g % per_hemisphere;
        let k = bounds.iter().position(|&b| v < b).unwrap_or(3);
        let start = if k == 0 { 0 } else { bounds[k - 1] };
        let share = (v - start) as f64 / (bounds[k] - start).max(1) as f64;
        group.push(k);
        match k {
            0 => {
                let cell = ((share * (GRID * GRID) as f64) as usize).min(GRID * GRID - 1);
                w[cell] = 1.0;
                tuning.push(cell as i32);
            }
            1 => {
                let d = ((share * 4.0) as usize).min(3);
                w[GRID * GRID + d] = 1.0;
                tuning.push(d as i32);
            }
            2 => {
                for x in &mut w[GRID * GRID + 4..] {
                    *x = normal.sample(rng);
                }
                tuning.push(-1);
            }
            _ => tuning.push(-1),
        }
    }
    Ok(Brain {
        models,
        volume,
        group,
        tuning,
        weights,
        n_cortex: 2 * per_hemisphere,
    })
}

/// Noise-free signal of each segment (n_tr × grayordinates, % change): the weighted sampled
/// features, each grayordinate scaled to unit std over all segments (times `percent`).
fn segment_signals(brain: &Brain, sampled: &[Vec<f64>], percent: f64) -> Vec<Vec<f64>> {
    let n = brain.group.len();
    let mut signals: Vec<Vec<f64>> = sampled
        .iter()
        .map(|f| {
            let n_tr = f.len() / N_FEATURES;
            let mut s = vec![0f64; n_tr * n];
            for t in 0..n_tr {
                let ft = &f[t * N_FEATURES..(t + 1) * N_FEATURES];
                for g in 0..n {
                    let w = &brain.weights[g * N_FEATURES..(g + 1) * N_FEATURES];
                    s[t * n + g] = w.iter().zip(ft).map(|(a, b)| a * b).sum();
                }
            }
            s
        })
        .collect();
    for g in 0..n {
        let (mut sum, mut sq, mut count) = (0f64, 0f64, 0f64);
        for s in &signals {
            for v in s.iter().skip(g).step_by(n) {
                sum += v;
                sq += v * v;
                count += 1.0;
            }
        }
        let mean = sum / count;
        let std = (sq / count - mean * mean).max(0.0).sqrt();
        for s in &mut signals {
            for v in s.iter_mut().skip(g).step_by(n) {
                *v = if std > 1e-12 {
                    percent * (*v - mean) / std
                } else {
                    0.0
                };
            }
        }
    }
    signals
}

/// Segment names and splits in order: training then test.
fn segments(opts: &VideoOptions) -> Vec<(Split, usize, usize)> {
    let train = (1..=opts.train_segments).map(|k| (Split::Train, k, opts.train_repetitions));
    let test = (1..=opts.test_segments).map(|k| (Split::Test, k, opts.test_repetitions));
    train.chain(test).collect()
}

const SIGNAL_PERCENT: f64 = 1.0;
const DRIFT_PERCENT: f64 = 2.0;

fn write_dataset(opts: &VideoOptions, root: &Path) -> Result<VideoTruth> {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0xCC_2017);
    let fps = opts.frames_per_tr as f64 / TR;
    let brain = make_brain(
        &mut rng,
        opts.vertices_per_hemisphere,
        opts.subcortical_voxels,
    )?;
    let segs = segments(opts);
    let bar = bar_aligned(segs.len() as u64, "stimuli", opts.progress, 12);
    let (mut truths, mut sampled) = (Vec::new(), Vec::new());
    for &(split, k, _) in &segs {
        let name = format!("{}{k}", split.prefix());
        let clips = segment_clips(&mut rng, opts.n_tr, opts.frames_per_tr);
        let truth = segment_truth(name.clone(), opts.n_tr, opts.frames_per_tr, clips);
        let features = render_segment(
            &root.join("stimuli").join(&name),
            &truth,
            opts.frame_size,
            fps,
        )?;
        sampled.push(sampled_features(&features, opts.n_tr, opts.frames_per_tr));
        truths.push(truth);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let signals = segment_signals(&brain, &sampled, SIGNAL_PERCENT);
    write_runs(opts, root, &brain, &segs, &signals, &mut rng)?;
    write_json_atomic(&root.join("design.json"), &opts.design())?;
    write_captions(&root.join("stimuli").join(CAPTIONS_FILE), &segs, &truths)?;
    write_truth(opts, root, &brain, &truths, &signals)
}

/// The captions table the video route reads (`split<TAB>segment<TAB>tr<TAB>caption`, one row per TR).
pub const CAPTIONS_FILE: &str = "captions.tsv";

fn write_captions(
    path: &Path,
    segs: &[(Split, usize, usize)],
    truths: &[SegmentTruth],
) -> Result<()> {
    let mut text = String::from("split\tsegment\ttr\tcaption\n");
    for (&(split, k, _), truth) in segs.iter().zip(truths) {
        for tr in &truth.trs {
            let split = split.name();
            text.push_str(&format!("{split}\t{k}\t{}\t{}\n", tr.tr, tr.caption));
        }
    }
    brainrecon_core::fs::write_bytes_atomic(path, text.as_bytes())
}

fn write_runs(
    opts: &VideoOptions,
    root: &Path,
    brain: &Brain,
    segs: &[(Split, usize, usize)],
    signals: &[Vec<f64>],
    rng: &mut ChaCha8Rng,
) -> Result<()> {
    let n = brain.group.len();
    let flat: Vec<usize> = (0..n).collect();
    let baseline: Vec<f64> = (0..n).map(|_| rng.gen_range(8000.0..12000.0)).collect();
    let series = SeriesMap {
        count: opts.n_tr,
        start: 0.0,
        step: TR,
        exponent: 0,
        unit: "SECOND".into(),
    };
    let total: usize = segs.iter().map(|s| s.2).sum();
    let bar = bar_aligned(total as u64, "runs", opts.progress, 12);
    for (&(split, k, repetitions), signal) in segs.iter().zip(signals) {
        for rep in 1..=repetitions {
            let volumes = bold_volumes(
                rng,
                &flat,
                &baseline,
                signal,
                opts.n_tr,
                TR,
                [n, 1, 1],
                (DRIFT_PERCENT, opts.snr),
            );
            let data: Vec<f32> = volumes.iter().flatten().map(|&v| v as f32).collect();
            let path = run_path(root, opts.subject, split, k, rep);
            write_dense_series(&path, &series, &brain.models, Some(&brain.volume), &data)?;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(())
}

fn write_truth(
    opts: &VideoOptions,
    root: &Path,
    brain: &Brain,
    truths: &[SegmentTruth],
    signals: &[Vec<f64>],
) -> Result<VideoTruth> {
    let dir = root.join("truth");
    let n = brain.group.len();
    let flat: Vec<usize> = (0..n).collect();
    write_voxel_truth(&dir, &flat, &brain.group, [n, 1, 1])?;
    npy::write(&dir.join("voxel_tuning.npy"), &[n], &brain.tuning)?;
    for (truth, signal) in truths.iter().zip(signals) {
        let seg = dir.join("segments");
        write_json_atomic(&seg.join(format!("{}.json", truth.name)), truth)?;
        let directions: Vec<i64> = truth
            .trs
            .iter()
            .map(|t| t.direction.index() as i64)
            .collect();
        npy::write(
            &seg.join(format!("{}_direction.npy", truth.name)),
            &[truth.n_tr],
            &directions,
        )?;
        let values: Vec<f32> = signal.iter().map(|&v| v as f32).collect();
        npy::write(
            &dir.join(format!("signal/{}.npy", truth.name)),
            &[truth.n_tr, n],
            &values,
        )?;
    }
    let truth = VideoTruth {
        subject: format!("subject{}", opts.subject),
        seed: opts.seed,
        design: opts.design(),
        fps: opts.frames_per_tr as f64 / TR,
        frame_size: opts.frame_size,
        n_grayordinates: n,
        n_cortex: brain.n_cortex,
        groups: GROUPS
            .iter()
            .enumerate()
            .map(|(g, name)| GroupTruth {
                name: name.to_string(),
                n_grayordinates: brain.group.iter().filter(|&&x| x == g).count(),
            })
            .collect(),
        directions: DIRECTIONS.iter().map(|d| d.to_string()).collect(),
        grid: GRID,
        snr: opts.snr,
        signal_percent: SIGNAL_PERCENT,
        drift_percent: DRIFT_PERCENT,
        hrf_description: "SPM canonical double gamma (peaks at 6 s and 16 s, ratio 1/6, 32 s) at the frame rate, sum 1; sampled at the middle of each TR".into(),
        files: TRUTH_FILES.into(),
    };
    write_json_atomic(&dir.join("truth.json"), &truth)?;
    Ok(truth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grayordinates_are_fsaverage5_vertices_early_groups_at_the_back() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let brain = make_brain(&mut rng, 900, 10).unwrap();
        let white = brainrecon_cortex::template::fsaverage5_mesh(
            "white",
            brainrecon_cortex::mesh::Hemi::Left,
        )
        .unwrap();
        let left = &brain.models[0];
        assert_eq!(left.surface_number_of_vertices, Some(10_242));
        let mut seen = std::collections::BTreeSet::new();
        assert!(left
            .vertex_indices
            .iter()
            .all(|&v| v < 10_242 && seen.insert(v)));
        let mean_y = |group: usize| {
            let ys: Vec<f32> = (0..900)
                .filter(|&g| brain.group[g] == group)
                .map(|g| white.vertices[left.vertex_indices[g]][1])
                .collect();
            ys.iter().sum::<f32>() / ys.len() as f32
        };
        // early-contrast, early-motion, higher, noise: from the occipital pole forwards.
        assert!(mean_y(0) < mean_y(1) && mean_y(1) < mean_y(2) && mean_y(2) < mean_y(3));
        assert!(mean_y(0) < -60.0, "{}", mean_y(0));
    }

    /// Centre of mass of the pixels that differ from the background.
    fn object_centre(frame: &RgbImage, background: [u8; 3]) -> [f32; 2] {
        let (mut sx, mut sy, mut n) = (0f32, 0f32, 0f32);
        for y in 0..frame.height {
            for x in 0..frame.width {
                let p = &frame.pixels[(y * frame.width + x) * 3..][..3];
                if p != background {
                    sx += x as f32;
                    sy += y as f32;
                    n += 1.0;
                }
            }
        }
        [sx / n, sy / n]
    }

    #[test]
    fn clips_move_in_their_direction_and_stay_inside() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..60 {
            let n = rng.gen_range(6..=18);
            let spec = ClipSpec::random(&mut rng, n);
            let frames = render_clip(&spec, n, 48);
            assert_eq!(frames.len(), n);
            let bg = BACKGROUNDS[spec.scene.background].1;
            let r = SIZES[spec.scene.size].1;
            for f in 0..n {
                let c = spec.centre(f);
                assert!(
                    c.iter().all(|&v| v >= r - 1e-5 && v <= 1.0 - r + 1e-5),
                    "{spec:?}"
                );
            }
            let (a, b) = (
                object_centre(&frames[0], bg),
                object_centre(&frames[n - 1], bg),
            );
            let moved = [b[0] - a[0], b[1] - a[1]];
            let [dx, dy] = spec.direction.vector();
            let along = moved[0] * dx + moved[1] * dy;
            let across = moved[0] * dy - moved[1] * dx;
            if spec.direction == Direction::Still {
                assert!(moved[0].abs() < 0.01 && moved[1].abs() < 0.01);
            } else {
                assert!(
                    along > 0.5 * spec.speed * 48.0 * (n - 1) as f32,
                    "{spec:?} moved {moved:?}"
                );
                assert!(across.abs() < 0.5, "{spec:?} moved {moved:?}");
            }
            let caption = spec.caption();
            assert!(caption.contains(COLOURS[spec.scene.colour].0));
            assert!(caption.contains(SHAPES[spec.scene.shape]));
            assert!(spec
                .captions(&mut rng)
                .iter()
                .all(|c| c.contains(SHAPES[spec.scene.shape])));
        }
    }

    #[test]
    fn motion_energy_finds_the_direction() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut right = 0;
        let mut total = 0;
        for _ in 0..40 {
            let spec = ClipSpec::random(&mut rng, 6);
            if spec.direction == Direction::Still {
                continue;
            }
            let frames = render_clip(&spec, 2, 64);
            let e = motion_energy(&planes(&frames[0]), &planes(&frames[1]), 64, 64);
            let best = (0..4).max_by(|&a, &b| e[a].total_cmp(&e[b])).unwrap();
            right += (best == spec.direction.index()) as usize;
            total += 1;
        }
        assert!(right == total, "{right} of {total}");
    }
}
