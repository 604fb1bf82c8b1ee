//! `simulate --kind events`: an event-related image experiment as a lab records it (raw BIDS)
//! and fMRIPrep preprocesses it (a derivatives folder named and shaped as fMRIPrep 24 writes
//! it), with the truth beside it.
//!
//! ```text
//! dataset_description.json, participants.tsv, stimuli/scene-NNNNN.png
//! sub-01/func/sub-01_task-images_run-NN_bold.nii.gz (+ .json)      int16 + scl_slope
//! sub-01/func/sub-01_task-images_run-NN_events.tsv  onset duration trial_type stim_file
//! derivatives/fmriprep/dataset_description.json     GeneratedBy [{Name: fMRIPrep, Version}]
//! derivatives/fmriprep/sub-01/func/
//!   sub-01_task-images_run-NN_space-T1w_desc-preproc_bold.nii.gz (+ .json)
//!   sub-01_task-images_run-NN_space-T1w_desc-brain_mask.nii.gz
//!   sub-01_task-images_run-NN_space-T1w_boldref.nii.gz   the run's reference volume (float32)
//!   sub-01_task-images_run-NN_desc-confounds_timeseries.tsv (+ .json)
//! derivatives/fmriprep/sub-01/anat/sub-01_desc-aparcaseg_dseg.nii.gz   FreeSurfer labels on a
//!   grid twice as fine as the runs' (as fMRIPrep writes it: T1w space, anatomical resolution)
//! derivatives/fmriprep/desc-aparcaseg_dseg.tsv      index, name of every label
//! stimuli/captions.json                              {"scene-NNNNN.png": [five captions]}
//! truth/events_truth.json; hrf_index.npy (brain voxels,) int64 0-based into GLMsingle's library;
//!   trial_psc.npy (trials, brain voxels) float32 planted amplitudes in percent; visual.npy
//!   (brain voxels,) uint8; voxels.npy (brain voxels, 3) int32 (i, j, k); brain voxels in
//!   flat order (x fastest), as a mask-based reader orders them
//! ```
//!
//! The brain is the image simulator's (visual voxels tuned to the scenes' pixels or
//! attributes). A trial's amplitude at a visual voxel is the voxel's amplitude × (1.5, what any
//! image evokes, + its normalised response to the scene + a third of the image simulator's
//! trial noise at its SNR), in percent signal change; each brain
//! voxel's response follows one of GLMsingle's 20 library HRFs (drawn per voxel). Every brain
//! voxel also carries three global noise components (smooth, about 1% each), the six motion
//! parameters of the confounds table (random walks, a few tenths of a percent), a linear and a
//! quadratic drift (four times stronger in run 3) and white noise (2%), on a baseline of 800–1200;
//! the first volume of every run is 30% brighter (not yet at steady state, flagged in the
//! confounds' non_steady_state_outlier00). Test images are shown three times and training
//! images twice, each repeat in another run, so a GLM can cross-validate across runs; one slot
//! in five is a blank (fixation: `trial_type` fixation, `stim_file` n/a).

use super::brain::{luminance_contrast, Brain, Tuning};
use super::scene::Scene;
use super::{new_output_dir, Signal};
use brainrecon_core::error::{DataError, Result};
use brainrecon_core::fs::{write_bytes_atomic, write_json_atomic};
use brainrecon_formats::image::write_png;
use brainrecon_formats::nifti4d::{self, Storage};
use brainrecon_formats::npy;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const SUBJECT: &str = "01";
/// The BIDS task label of the runs.
pub const TASK: &str = "images";
/// fMRIPrep's output space of the runs: the subject's own anatomy, where fMRIPrep's aparc+aseg
/// segmentation lives.
pub const SPACE: &str = "T1w";
/// Seconds between trial onsets and each stimulus' duration (NSD's 3 s on, 1 s off).
const TRIAL_SECONDS: f64 = 4.0;
const STIMULUS_SECONDS: f64 = 3.0;
const LEAD_SECONDS: f64 = 4.0;
const TAIL_SECONDS: f64 = 16.0;
/// A visual voxel's response common to every image, in units of its amplitude.
const EVOKED: f32 = 1.5;
/// The trial-to-trial variability of the response, relative to the image simulator's (whose
/// betas carry the measurement's noise too; here the time series carries that).
const TRIAL_NOISE: f32 = 0.33;
/// The first volume's brightness relative to the steady state.
const NOT_YET_STEADY: f64 = 1.3;
/// White noise in percent of the baseline, per volume.
const WHITE_NOISE: f64 = 2.0;
const MOTION: [&str; 6] = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"];

/// What `simulate --kind events` writes.
#[derive(Debug, Clone)]
pub struct EventsOptions {
    /// The dataset root to create.
    pub out: PathBuf,
    /// Seed of every random draw.
    pub seed: u64,
    /// Runs (`run-NN`).
    pub runs: usize,
    /// Training images, each shown twice.
    pub train_images: usize,
    /// Test images, each shown three times.
    pub test_images: usize,
    /// Seconds per volume.
    pub tr: f64,
    /// (X, Y, Z)
    pub volume_shape: [usize; 3],
    /// Side of the square stimulus images, pixels.
    pub image_size: usize,
}

impl EventsOptions {
    /// 7 runs at TR 2 s, 165 training images shown twice and 30 test images three times (420
    /// trials, 60 a run), a 24 × 30 × 20 volume.
    pub fn new(out: &Path) -> Self {
        EventsOptions {
            out: out.to_path_buf(),
            seed: 0,
            runs: 7,
            train_images: 165,
            test_images: 30,
            tr: 2.0,
            volume_shape: [24, 30, 20],
            image_size: 64,
        }
    }
}

/// `truth/events_truth.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventsTruth {
    /// The seed it was made with.
    pub seed: u64,
    /// Seconds per volume.
    pub tr: f64,
    /// Seconds each image is shown (3).
    pub stimdur: f64,
    /// Runs.
    pub runs: usize,
    /// Volumes per run.
    pub n_volumes: usize,
    /// Scene ids (`Scene::id`) of the images, training images first.
    pub images: Vec<usize>,
    /// Training images: the first this many of `images`.
    pub n_train_images: usize,
    /// Per trial in run-then-onset order: (run 0-based, onset seconds, image index).
    pub trials: Vec<(usize, f64, usize)>,
    /// Voxels inside the brain.
    pub brain_voxels: usize,
    /// Of them, the visual (tuned) ones.
    pub visual_voxels: usize,
    /// (X, Y, Z) of the runs' volumes.
    #[serde(default = "default_volume_shape")]
    pub volume_shape: [usize; 3],
    /// Side of the square stimulus images, pixels.
    #[serde(default = "default_image_size")]
    pub image_size: usize,
}

fn default_volume_shape() -> [usize; 3] {
    EventsOptions::new(Path::new("")).volume_shape
}

fn default_image_size() -> usize {
    EventsOptions::new(Path::new("")).image_size
}

impl EventsTruth {
    /// The options that made this experiment (output folder aside).
    pub fn options(&self) -> EventsOptions {
        EventsOptions {
            out: PathBuf::new(),
            seed: self.seed,
            runs: self.runs,
            train_images: self.n_train_images,
            test_images: self.images.len() - self.n_train_images.min(self.images.len()),
            tr: self.tr,
            volume_shape: self.volume_shape,
            image_size: self.image_size,
        }
    }
}

/// The trial slots of every run: each image's repeats spread over different runs, one blank
/// (fixation) slot per four trials, shuffled within runs. Returns per run the image of each
/// slot (None: blank).
fn schedule(opts: &EventsOptions, rng: &mut ChaCha8Rng) -> Result<Vec<Vec<Option<usize>>>> {
    let repeats: Vec<usize> = (0..opts.train_images + opts.test_images)
        .map(|i| if i < opts.train_images { 2 } else { 3 })
        .collect();
    let total: usize = repeats.iter().sum();
    if opts.runs < 3 || !total.is_multiple_of(opts.runs) {
        return Err(DataError::Usage(format!(
            "--runs: expected at least 3 runs that divide the {total} trials evenly, found {}",
            opts.runs
        )));
    }
    let per_run = total / opts.runs;
    // Deal the repeats round-robin so no image repeats within a run, then shuffle each run.
    let mut order: Vec<usize> = (0..repeats.len()).collect();
    order.shuffle(rng);
    let mut runs = vec![Vec::with_capacity(per_run); opts.runs];
    let mut next = 0;
    for &image in &order {
        for _ in 0..repeats[image] {
            runs[next % opts.runs].push(image);
            next += 1;
        }
    }
    Ok(runs
        .into_iter()
        .map(|images| {
            let blanks = images.len() / 4;
            let mut slots: Vec<Option<usize>> = images.into_iter().map(Some).collect();
            slots.extend(std::iter::repeat_n(None, blanks));
            slots.shuffle(rng);
            slots
        })
        .collect())
}

/// Onset in seconds of slot `i` of a run.
fn slot_onset(i: usize) -> f64 {
    LEAD_SECONDS + i as f64 * TRIAL_SECONDS
}

/// The (onset, image) of every trial of a run's slots.
fn slot_trials(slots: &[Option<usize>]) -> Vec<(f64, usize)> {
    slots
        .iter()
        .enumerate()
        .filter_map(|(i, image)| image.map(|image| (slot_onset(i), image)))
        .collect()
}

/// GLMsingle's library of HRFs for the stimulus duration, sampled at `tr`, each scaled to
/// peak 1.
fn peaked_library(tr: f64) -> Vec<Vec<f64>> {
    brainrecon_glm::hrf::hrf_library(STIMULUS_SECONDS, tr)
        .iter()
        .map(|h| {
            let peak = h.iter().copied().fold(f64::MIN, f64::max);
            h.iter().map(|v| v / peak).collect()
        })
        .collect()
}

/// Each brain voxel's library HRF index and its HRF sampled at the TR (peak 1).
fn voxel_hrfs(rng: &mut ChaCha8Rng, n: usize, tr: f64) -> (Vec<usize>, Vec<Vec<f64>>) {
    let peaked = peaked_library(tr);
    let index: Vec<usize> = (0..n).map(|_| rng.gen_range(0..peaked.len())).collect();
    (index, peaked)
}

/// A smooth random series with unit standard deviation.
fn smooth(rng: &mut ChaCha8Rng, n: usize, width: f64) -> Vec<f64> {
    let normal = Normal::new(0.0, 1.0).unwrap();
    let white: Vec<f64> = (0..n + 40).map(|_| normal.sample(rng)).collect();
    let x: Vec<f64> = (0..n)
        .map(|t| {
            (0..41)
                .map(|k| {
                    let d = k as f64 - 20.0;
                    (-0.5 * (d / width).powi(2)).exp() * white[t + k]
                })
                .sum()
        })
        .collect();
    let mean = x.iter().sum::<f64>() / n as f64;
    let sd = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
    x.iter().map(|v| (v - mean) / sd.max(1e-12)).collect()
}

/// What every run shares: the brain, its voxels' HRFs, noise loadings and baselines.
struct Subject {
    brain: Brain,
    flat: Vec<usize>,
    visual_of: Vec<Option<usize>>,
    hrf_index: Vec<usize>,
    hrfs: Vec<Vec<f64>>,
    baseline: Vec<f64>,
    global_loadings: Vec<[f64; 3]>,
    motion_loadings: Vec<[f64; 6]>,
}

impl Subject {
    fn new(opts: &EventsOptions, rng: &mut ChaCha8Rng) -> Subject {
        let brain = Brain::new(opts.volume_shape, rng);
        let [nx, ny, _] = opts.volume_shape;
        let flat: Vec<usize> = brain
            .voxels
            .iter()
            .map(|v| v.coord[0] + nx * (v.coord[1] + ny * v.coord[2]))
            .collect();
        let mut visual_of = vec![None; brain.voxels.len()];
        let mut k = 0;
        for (v, voxel) in brain.voxels.iter().enumerate() {
            if brain.nsdgeneral[brain.index(voxel.coord)] > 0 {
                visual_of[v] = Some(k);
                k += 1;
            }
        }
        let n = brain.voxels.len();
        let (hrf_index, hrfs) = voxel_hrfs(rng, n, opts.tr);
        let normal = Normal::new(0.0, 1.0).unwrap();
        let mut draw = |scale: f64| scale * normal.sample(rng);
        let global_loadings = (0..n).map(|_| [draw(1.0), draw(1.0), draw(1.0)]).collect();
        let motion_loadings = (0..n).map(|_| std::array::from_fn(|_| draw(0.4))).collect();
        let baseline = (0..n).map(|_| rng.gen_range(800.0..1200.0)).collect();
        Subject {
            brain,
            flat,
            visual_of,
            hrf_index,
            hrfs,
            baseline,
            global_loadings,
            motion_loadings,
        }
    }
}

/// One run: its volumes, motion parameters (n × 6) and planted trial amplitudes (trials of
/// the run × brain voxels, percent).
struct RunData {
    volumes: Vec<Vec<f64>>,
    motion: Vec<[f64; 6]>,
    trial_psc: Vec<Vec<f32>>,
}

fn simulate_run(
    opts: &EventsOptions,
    subject: &Subject,
    signal: &Signal,
    trials: &[(f64, usize)],
    strong_drift: bool,
    n: usize,
    rng: &mut ChaCha8Rng,
) -> RunData {
    let normal = Normal::new(0.0, 1.0).unwrap();
    let brain = &subject.brain;
    let n_vox = brain.voxels.len();
    let global: Vec<Vec<f64>> = (0..3).map(|_| smooth(rng, n, 3.0)).collect();
    let mut motion = vec![[0.0; 6]; n];
    for t in 1..n {
        let previous = motion[t - 1];
        for (j, m) in motion[t].iter_mut().enumerate() {
            let step = if j < 3 { 0.02 } else { 0.0004 };
            *m = previous[j] + step * normal.sample(rng);
        }
    }
    let trial_psc: Vec<Vec<f32>> = trials
        .iter()
        .map(|&(_, image)| {
            (0..n_vox)
                .map(|v| match (subject.visual_of[v], &brain.voxels[v].tuning) {
                    (Some(k), tuning) if !matches!(tuning, Tuning::None) => {
                        let voxel = &brain.voxels[v];
                        // Any image evokes a response (EVOKED), modulated by the image's features.
                        let s = EVOKED
                            + signal.value(image, k)
                            + TRIAL_NOISE * normal.sample(rng) as f32 / voxel.ncsnr;
                        voxel.amplitude * s
                    }
                    _ => 0.0,
                })
                .collect()
        })
        .collect();
    let drift = if strong_drift { 4.0 } else { 1.0 };
    let x_axis: Vec<f64> = (0..n)
        .map(|t| 2.0 * t as f64 / (n - 1) as f64 - 1.0)
        .collect();
    let mut percent = vec![vec![0.0; n_vox]; n];
    for v in 0..n_vox {
        let hrf = &subject.hrfs[subject.hrf_index[v]];
        for (&(seconds, _), psc) in trials.iter().zip(&trial_psc) {
            let onset = (seconds / opts.tr).round() as usize;
            for (lag, h) in hrf.iter().enumerate().take(n.saturating_sub(onset)) {
                percent[onset + lag][v] += psc[v] as f64 * h;
            }
        }
        let (linear, quadratic) = (drift * normal.sample(rng), drift * 0.5 * normal.sample(rng));
        let (g, m) = (&subject.global_loadings[v], &subject.motion_loadings[v]);
        for t in 0..n {
            let scale = [10.0, 10.0, 10.0, 500.0, 500.0, 500.0];
            percent[t][v] += linear * x_axis[t]
                + quadratic * x_axis[t] * x_axis[t]
                + (0..3).map(|c| g[c] * global[c][t]).sum::<f64>()
                + (0..6).map(|j| m[j] * motion[t][j] * scale[j]).sum::<f64>()
                + WHITE_NOISE * normal.sample(rng);
        }
    }
    let len: usize = opts.volume_shape.iter().product();
    let volumes = (0..n)
        .map(|t| {
            let mut volume: Vec<f64> = (0..len)
                .map(|_| (30.0 + 3.0 * normal.sample(rng)).max(0.0))
                .collect();
            let settle = if t == 0 { NOT_YET_STEADY } else { 1.0 };
            for (v, &f) in subject.flat.iter().enumerate() {
                volume[f] = settle * subject.baseline[v] * (1.0 + percent[t][v] / 100.0);
            }
            volume
        })
        .collect();
    RunData {
        volumes,
        motion,
        trial_psc,
    }
}

/// The voxel-wise mean of `volumes` (at least one).
fn mean_volume(volumes: &[Vec<f64>]) -> Vec<f32> {
    let mut sum = vec![0.0f64; volumes[0].len()];
    for volume in volumes {
        sum.iter_mut().zip(volume).for_each(|(s, v)| *s += v);
    }
    sum.iter()
        .map(|s| (s / volumes.len() as f64) as f32)
        .collect()
}

fn n_volumes(opts: &EventsOptions) -> usize {
    let trials = (opts.train_images * 2 + opts.test_images * 3) / opts.runs.max(1);
    let slots = trials + trials / 4;
    ((slot_onset(slots) + TAIL_SECONDS) / opts.tr).ceil() as usize
}

fn text(path: &Path, content: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    }
    write_bytes_atomic(path, content.as_bytes())
}

/// fMRIPrep's confounds table of a run: motion, their framewise displacement (n/a in the
/// first row, as fMRIPrep writes derivatives), global/csf/white-matter means and the
/// non-steady-state flag of volume 0.
fn confounds_table(run: &RunData, volumes: &[Vec<f64>], flat: &[usize]) -> String {
    let mut table = MOTION.join("\t");
    table.push_str(
        "\tframewise_displacement\tglobal_signal\tcsf\twhite_matter\tnon_steady_state_outlier00\n",
    );
    for (t, m) in run.motion.iter().enumerate() {
        let fd = if t == 0 {
            "n/a".to_string()
        } else {
            let p = &run.motion[t - 1];
            let d: f64 = (0..3).map(|j| (m[j] - p[j]).abs()).sum::<f64>()
                + (3..6).map(|j| 50.0 * (m[j] - p[j]).abs()).sum::<f64>();
            format!("{d:.6}")
        };
        let global = flat.iter().map(|&f| volumes[t][f]).sum::<f64>() / flat.len() as f64;
        let cells: Vec<String> = m.iter().map(|v| format!("{v:.6}")).collect();
        table.push_str(&format!(
            "{}\t{fd}\t{global:.4}\t{:.4}\t{:.4}\t{}\n",
            cells.join("\t"),
            0.9 * global,
            1.1 * global,
            u8::from(t == 0)
        ));
    }
    table
}

/// Writes the dataset (see the module documentation).
pub fn simulate_events(opts: &EventsOptions) -> Result<EventsTruth> {
    if opts.tr <= 0.0 || opts.tr > TRIAL_SECONDS || opts.image_size < 16 {
        return Err(DataError::Usage(format!(
            "simulate --kind events: a TR in (0, {TRIAL_SECONDS}] s and images of 16 pixels or more"
        )));
    }
    new_output_dir(&opts.out)?.run(|staging| write_dataset(opts, staging))
}

/// The experiment's subject and images, drawn first from the seed's generator (`rng` is left
/// where the runs' schedule starts), so a later session of the same subject can be made.
struct Experiment {
    subject: Subject,
    scenes: Vec<Scene>,
    rendered: Vec<brainrecon_formats::image::RgbImage>,
    maps: Vec<(Vec<f32>, Vec<f32>)>,
    visual: Vec<usize>,
}

/// The luminance-contrast grid the visual voxels see.
const CONTRAST_GRID: usize = 24;

impl Experiment {
    fn new(opts: &EventsOptions, rng: &mut ChaCha8Rng) -> Experiment {
        let subject = Subject::new(opts, rng);
        let n_images = opts.train_images + opts.test_images;
        // Distinct scenes: each image is its own condition (its own stim_file).
        let mut scenes: Vec<Scene> = Vec::with_capacity(n_images);
        while scenes.len() < n_images {
            let scene = Scene::random(rng);
            if scenes.iter().all(|s| s.id() != scene.id()) {
                scenes.push(scene);
            }
        }
        let rendered: Vec<_> = scenes.iter().map(|s| s.render(opts.image_size)).collect();
        let maps: Vec<_> = rendered
            .iter()
            .map(|im| luminance_contrast(im, CONTRAST_GRID))
            .collect();
        let visual: Vec<usize> = (0..subject.brain.voxels.len())
            .filter(|&v| subject.visual_of[v].is_some())
            .collect();
        Experiment {
            subject,
            scenes,
            rendered,
            maps,
            visual,
        }
    }

    fn signal(&self) -> Signal<'_> {
        Signal::new(
            &self.subject.brain,
            &self.visual,
            &self.scenes,
            &self.maps,
            CONTRAST_GRID,
        )
    }
}

fn write_dataset(opts: &EventsOptions, root: &Path) -> Result<EventsTruth> {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let experiment = Experiment::new(opts, &mut rng);
    let Experiment {
        subject,
        scenes,
        rendered,
        visual,
        ..
    } = &experiment;
    let signal = experiment.signal();
    let runs = schedule(opts, &mut rng)?;
    write_top_level(opts, root, scenes, rendered)?;
    let fmriprep = root.join("derivatives/fmriprep");
    write_segmentation(&fmriprep, &subject.brain)?;
    let mut trials = Vec::new();
    let mut trial_psc: Vec<f32> = Vec::new();
    for (r, slots) in runs.iter().enumerate() {
        let run_trials = slot_trials(slots);
        let n = n_volumes(opts);
        let run = simulate_run(opts, subject, &signal, &run_trials, r == 2, n, &mut rng);
        write_run(opts, root, &fmriprep, r + 1, &run, slots, scenes, subject)?;
        trials.extend(run_trials.iter().map(|&(onset, image)| (r, onset, image)));
        trial_psc.extend(run.trial_psc.iter().flatten());
    }
    let truth = EventsTruth {
        seed: opts.seed,
        tr: opts.tr,
        stimdur: STIMULUS_SECONDS,
        runs: opts.runs,
        n_volumes: n_volumes(opts),
        images: scenes.iter().map(Scene::id).collect(),
        n_train_images: opts.train_images,
        trials,
        brain_voxels: subject.brain.voxels.len(),
        visual_voxels: visual.len(),
        volume_shape: opts.volume_shape,
        image_size: opts.image_size,
    };
    write_truth(root, &truth, subject, &trial_psc)?;
    Ok(truth)
}

fn write_top_level(
    opts: &EventsOptions,
    root: &Path,
    scenes: &[Scene],
    rendered: &[brainrecon_formats::image::RgbImage],
) -> Result<()> {
    write_json_atomic(
        &root.join("dataset_description.json"),
        &serde_json::json!({
            "Name": "brainrecon simulated event-related image experiment", "BIDSVersion": "1.8.0",
            "DatasetType": "raw",
            "GeneratedBy": [{"Name": "brainrecon simulate --kind events", "Description": format!("seed {}", opts.seed)}],
        }),
    )?;
    text(
        &root.join("participants.tsv"),
        &format!("participant_id\nsub-{SUBJECT}\n"),
    )?;
    let stimuli = root.join("stimuli");
    std::fs::create_dir_all(&stimuli).map_err(|e| DataError::io(&stimuli, e))?;
    for (scene, image) in scenes.iter().zip(rendered) {
        write_png(&stimuli.join(stimulus_name(scene)), image)?;
    }
    // Captions from their own stream, so the recordings do not depend on them.
    let mut caption_rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0xCA97_10E5);
    let captions: std::collections::BTreeMap<String, Vec<String>> = scenes
        .iter()
        .map(|scene| (stimulus_name(scene), scene.captions(&mut caption_rng)))
        .collect();
    write_json_atomic(&stimuli.join("captions.json"), &captions)?;
    let derivatives = root.join("derivatives/fmriprep");
    std::fs::create_dir_all(&derivatives).map_err(|e| DataError::io(&derivatives, e))?;
    write_json_atomic(
        &derivatives.join("dataset_description.json"),
        &serde_json::json!({
            "Name": "fMRIPrep - fMRI PREProcessing workflow", "BIDSVersion": "1.8.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "fMRIPrep", "Version": "24.1.1", "CodeURL": "https://github.com/nipreps/fmriprep/archive/24.1.1.tar.gz"}],
        }),
    )
}

/// The Desikan–Killiany region of a brain voxel (None outside the brain; in-brain voxels
/// outside the visual streams are white matter near the centre, else frontal or
/// supramarginal cortex).
fn aparc_region(brain: &Brain, [x, y, z]: [usize; 3]) -> Option<i32> {
    let i = brain.index([x, y, z]);
    if brain.streams[i] < 0 {
        return None;
    }
    let [nx, ny, nz] = brain.shape;
    let left = x < nx / 2;
    let region = match (brain.streams[i], brain.prf_visualrois[i]) {
        (1, 1 | 2) => "pericalcarine",
        (1, 3 | 5) => "lingual",
        (1, _) => "cuneus",
        (5, _) => "fusiform",
        (6, _) => "lateraloccipital",
        (7, _) => "superiorparietal",
        _ => {
            let centre = |v: usize, n: usize| (v as f64 + 0.5) / n as f64 - 0.5;
            if centre(x, nx).abs() < 0.2 && centre(z, nz).abs() < 0.2 {
                return Some(if left { 2 } else { 41 });
            }
            if y as f64 > 0.6 * ny as f64 {
                "superiorfrontal"
            } else {
                "supramarginal"
            }
        }
    };
    brainrecon_formats::freesurfer::cortical_label(region, left)
}

/// fMRIPrep's `anat/sub-01_desc-aparcaseg_dseg.nii.gz` (the runs' field of view at twice
/// their resolution, same origin) and the derivatives' `desc-aparcaseg_dseg.tsv`.
fn write_segmentation(fmriprep: &Path, brain: &Brain) -> Result<()> {
    let [nx, ny, nz] = brain.shape;
    let fine = [2 * nx, 2 * ny, 2 * nz];
    let mut affine = super::bold::grid_affine(brain.shape);
    (0..3).for_each(|r| (0..3).for_each(|c| affine[r][c] /= 2.0));
    let mut labels = vec![0i16; fine.iter().product()];
    let mut present = std::collections::BTreeSet::new();
    for z in 0..fine[2] {
        for y in 0..fine[1] {
            for x in 0..fine[0] {
                let coarse = [
                    (x / 2).min(nx - 1),
                    (y / 2).min(ny - 1),
                    (z / 2).min(nz - 1),
                ];
                if let Some(label) = aparc_region(brain, coarse) {
                    labels[x + fine[0] * (y + fine[1] * z)] = label as i16;
                    present.insert(label);
                }
            }
        }
    }
    let anat = fmriprep.join(format!("sub-{SUBJECT}/anat"));
    std::fs::create_dir_all(&anat).map_err(|e| DataError::io(&anat, e))?;
    brainrecon_formats::nifti_io::write_i16(
        &anat.join(format!("sub-{SUBJECT}_desc-aparcaseg_dseg.nii.gz")),
        fine,
        &affine,
        &labels,
    )?;
    let mut table = String::from("index\tname\n0\tUnknown\n");
    for label in present {
        let name = brainrecon_formats::freesurfer::label_name(label).unwrap_or_default();
        table.push_str(&format!("{label}\t{name}\n"));
    }
    text(&fmriprep.join("desc-aparcaseg_dseg.tsv"), &table)
}

fn stimulus_name(scene: &Scene) -> String {
    format!("scene-{:05}.png", scene.id())
}

#[allow(clippy::too_many_arguments)]
fn write_run(
    opts: &EventsOptions,
    root: &Path,
    fmriprep: &Path,
    run: usize,
    data: &RunData,
    slots: &[Option<usize>],
    scenes: &[Scene],
    subject: &Subject,
) -> Result<()> {
    let name = format!("sub-{SUBJECT}_task-{TASK}_run-{run:02}");
    let func = root.join(format!("sub-{SUBJECT}/func"));
    let derived = fmriprep.join(format!("sub-{SUBJECT}/func"));
    for dir in [&func, &derived] {
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    }
    let shape = opts.volume_shape;
    let affine = super::bold::grid_affine(shape);
    // 0.1 keeps 0.01% steps at 1000 and holds up to 3276.
    let storage = Storage::Int16 {
        slope: 0.1,
        inter: 0.0,
    };
    for path in [
        func.join(format!("{name}_bold.nii.gz")),
        derived.join(format!("{name}_space-{SPACE}_desc-preproc_bold.nii.gz")),
    ] {
        nifti4d::write_series(&path, shape, opts.tr, &affine, storage, &data.volumes)?;
    }
    write_json_atomic(
        &func.join(format!("{name}_bold.json")),
        &serde_json::json!({"RepetitionTime": opts.tr, "TaskName": TASK}),
    )?;
    write_json_atomic(
        &derived.join(format!("{name}_space-{SPACE}_desc-preproc_bold.json")),
        &serde_json::json!({"RepetitionTime": opts.tr, "SkullStripped": false, "TaskName": TASK}),
    )?;
    // fMRIPrep's reference volume of the run: here the mean of its steady-state volumes.
    brainrecon_formats::nifti_io::write_f32(
        &derived.join(format!("{name}_space-{SPACE}_boldref.nii.gz")),
        shape,
        &affine,
        &mean_volume(&data.volumes[1..]),
    )?;
    let mut mask = vec![0i16; shape.iter().product()];
    subject.flat.iter().for_each(|&f| mask[f] = 1);
    brainrecon_formats::nifti_io::write_i16(
        &derived.join(format!("{name}_space-{SPACE}_desc-brain_mask.nii.gz")),
        shape,
        &affine,
        &mask,
    )?;
    text(
        &derived.join(format!("{name}_desc-confounds_timeseries.tsv")),
        &confounds_table(data, &data.volumes, &subject.flat),
    )?;
    write_json_atomic(
        &derived.join(format!("{name}_desc-confounds_timeseries.json")),
        &serde_json::json!({"framewise_displacement": {"Description": "Framewise displacement (Power et al. 2014), mm", "Units": "mm"}}),
    )?;
    text(
        &func.join(format!("{name}_events.tsv")),
        &events_table(slots, scenes, 0.0),
    )
}

/// A run's BIDS events.tsv: every slot, blanks as fixation, onsets `delay` seconds later than
/// the slots'.
fn events_table(slots: &[Option<usize>], scenes: &[Scene], delay: f64) -> String {
    let mut events = String::from("onset\tduration\ttrial_type\tstim_file\n");
    for (i, slot) in slots.iter().enumerate() {
        let (kind, file) = match slot {
            Some(image) => ("image", stimulus_name(&scenes[*image])),
            None => ("fixation", "n/a".to_string()),
        };
        events.push_str(&format!(
            "{:.1}\t{STIMULUS_SECONDS:.1}\t{kind}\t{file}\n",
            slot_onset(i) + delay
        ));
    }
    events
}

fn write_truth(
    root: &Path,
    truth: &EventsTruth,
    subject: &Subject,
    trial_psc: &[f32],
) -> Result<()> {
    let dir = root.join("truth");
    std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
    write_json_atomic(&dir.join("events_truth.json"), truth)?;
    let n = subject.brain.voxels.len();
    let index: Vec<i64> = subject.hrf_index.iter().map(|&i| i as i64).collect();
    npy::write(&dir.join("hrf_index.npy"), &[n], &index)?;
    npy::write(
        &dir.join("trial_psc.npy"),
        &[truth.trials.len(), n],
        trial_psc,
    )?;
    let visual: Vec<u8> = subject
        .visual_of
        .iter()
        .map(|v| u8::from(v.is_some()))
        .collect();
    npy::write(&dir.join("visual.npy"), &[n], &visual)?;
    let groups = vec![0; n];
    super::bold::write_voxel_truth(&dir, &subject.flat, &groups, subject.brain.shape)?;
    Ok(())
}

/// A later session of an experiment's subject, as a real-time export would deliver it.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Seeds this session's schedule, noise and drifts (the subject comes from the
    /// experiment's seed).
    pub seed: u64,
    /// Seconds per volume.
    pub tr: f64,
    /// The first this many test images (None: all of them).
    pub images: Option<usize>,
    /// Times each image is shown (in shuffled order, one blank per four trials).
    pub repeats: usize,
    /// Seconds of rest before the first image (the baseline block real-time protocols begin
    /// with), added to the 4-s lead.
    pub rest_seconds: f64,
}

/// One shown image of a [`ScannerSession`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionTrial {
    /// Onset from the session's first volume, seconds.
    pub onset: f64,
    /// Index into the experiment's images (`EventsTruth::images`).
    pub image: usize,
    /// The image's scene id (`Scene::id`).
    pub scene_id: usize,
    /// The image's file name (`scene-NNNNN.png`).
    pub stim_file: String,
}

/// A session's volumes on the subject's grid, before any head motion, and what was shown.
#[derive(Debug, Clone)]
pub struct ScannerSession {
    /// Seconds per volume.
    pub tr: f64,
    /// The grid (X, Y, Z).
    pub shape: [usize; 3],
    /// Row-major voxel → world affine (mm).
    pub affine: [[f64; 4]; 4],
    /// One volume per TR, x fastest.
    pub volumes: Vec<Vec<f32>>,
    /// The images shown, in order.
    pub trials: Vec<SessionTrial>,
    /// BIDS events.tsv of the session (onset, duration, trial_type, stim_file).
    pub events_tsv: String,
}

/// Simulates another session of the subject of the experiment `experiment` describes (same
/// brain, voxels' HRFs, baselines and tuning; new noise): its test images shown in shuffled
/// order, one every 4 s, at the session's TR.
pub fn simulate_session(
    experiment: &EventsTruth,
    session: &SessionOptions,
) -> Result<ScannerSession> {
    let opts = EventsOptions {
        tr: session.tr,
        ..experiment.options()
    };
    if !(session.tr > 0.0 && session.tr <= TRIAL_SECONDS)
        || session.repeats == 0
        || !(session.rest_seconds.is_finite() && (0.0..=3600.0).contains(&session.rest_seconds))
    {
        return Err(DataError::Usage(format!(
            "a session at a TR in (0, {TRIAL_SECONDS}] s with each image shown at least once \
             and a rest of 0 to 3600 s"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(experiment.seed);
    let mut rebuilt = Experiment::new(&experiment.options(), &mut rng);
    let ids: Vec<usize> = rebuilt.scenes.iter().map(Scene::id).collect();
    if ids != experiment.images {
        return Err(DataError::Usage(
            "the experiment's truth does not match its seed (made by another version?)".into(),
        ));
    }
    // The same voxels' HRFs, sampled at this session's TR.
    rebuilt.subject.hrfs = peaked_library(session.tr);
    let test: Vec<usize> = (opts.train_images..ids.len())
        .take(session.images.unwrap_or(usize::MAX))
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(session.seed ^ 0x5CA7_7E55_10A5_0001);
    let mut slots: Vec<Option<usize>> = std::iter::repeat_n(&test, session.repeats)
        .flatten()
        .map(|&i| Some(i))
        .collect();
    slots.extend(std::iter::repeat_n(None, slots.len() / 4));
    slots.shuffle(&mut rng);
    let rest = session.rest_seconds;
    let trials: Vec<(f64, usize)> = slot_trials(&slots)
        .into_iter()
        .map(|(onset, image)| (onset + rest, image))
        .collect();
    let n = ((slot_onset(slots.len()) + rest + TAIL_SECONDS) / session.tr).ceil() as usize;
    let signal = rebuilt.signal();
    let mut run = simulate_run(
        &opts,
        &rebuilt.subject,
        &signal,
        &trials,
        false,
        n,
        &mut rng,
    );
    // A real-time export starts at steady state: the scanner keeps its dummy scans.
    for &f in &rebuilt.subject.flat {
        run.volumes[0][f] /= NOT_YET_STEADY;
    }
    Ok(ScannerSession {
        tr: session.tr,
        shape: opts.volume_shape,
        affine: super::bold::grid_affine(opts.volume_shape),
        volumes: run
            .volumes
            .iter()
            .map(|v| v.iter().map(|&x| x as f32).collect())
            .collect(),
        trials: trials
            .iter()
            .map(|&(onset, image)| SessionTrial {
                onset,
                image,
                scene_id: ids[image],
                stim_file: stimulus_name(&rebuilt.scenes[image]),
            })
            .collect(),
        events_tsv: events_table(&slots, &rebuilt.scenes, rest),
    })
}
