//! A second group simulator (`simulate --generator population`), independent of the one in
//! [`crate::group`]: tuning is not tied to brain position.
//!
//! # The generative model
//! - A population of [`POPULATION_PROFILES`] functional profiles is drawn once for the group:
//!   pRFs over the image's luminance (random centre, size and sign), attribute tunings (random
//!   weights on the scene's shape, colour, background, position and size, each attribute group
//!   with its own random emphasis) and mixtures of the two.
//! - Each subject has its own grid (the requested volume scaled by 0.85–1.15 per axis), brain
//!   and region bounds, so voxel counts and ROI extents differ. Its visual (`nsdgeneral`)
//!   voxels take the population's profiles in a random order of their own: a voxel's place says
//!   nothing about its profile, and only a functional match carries anything across subjects.
//! - A visual voxel's noise-free signal over the scenes is
//!   `√(1−R)·population profile + √R·individual profile`, each part normalised (mean 0, sd 1
//!   over the 960 distinct scenes, which images are drawn from uniformly), then renormalised;
//!   R is `--individual-share` (default 0.3: 70 % population, 30 % individual, in variance).
//! - Trials follow NSD's session: 750 trials a session (3 × images / sessions when `--images`
//!   is given), every image shown 3 times over the sessions in one `masterordering` for all
//!   subjects; the shared images (default 300, NSD's `shared1000` idea) are every subject's
//!   test images, the others its own.
//! - Single-trial noise is set by a target ncsnr drawn per subject uniformly from
//!   `--ncsnr LO,HI` (default 0.1 to 0.3). NSD's definition (Allen et al. 2022): with a voxel's
//!   betas z-scored per session, `ncsnr = sd_signal / sd_noise`, where `sd_noise²` is the mean
//!   over images of the variance (ddof 1) across an image's repeats and
//!   `sd_signal² = max(0, 1 − sd_noise²)`. A visual voxel's beta in percent signal change is
//!   `offset + gain·amplitude·(signal + ε/ncsnr)`, ε ~ N(0, 1), with a per-session offset and
//!   gain per voxel that z-scoring per session removes; other brain voxels carry noise only.
//!
//! # What is written
//! NSD's layout, as [`crate::group`] writes it (so `nsd prepare` and `group prepare` read it
//! unchanged): the experiment design, merged stimulus table, captions and stimulus brick once,
//! and per subject its betas sessions, responses and ROI masks. Truth in `truth/`:
//! `population.json` ([`PopulationTruth`]) and per subject `truth/subjNN/` with `truth.json`
//! ([`crate::Truth`]), `trial_stimulus.npy` and `trial_session.npy` (trials,) int64,
//! `voxel_coords.npy` (visual voxels, 3) int32 (x, y, z), `profile.npy` (visual voxels,) int64
//! (the population profile each visual voxel draws on) and `signal_shared.npy` (shared images in
//! id order, visual voxels) float32, the noise-free signal (sd 1 over scenes).

use crate::brain::Brain;
use crate::scene::{Scene, BACKGROUNDS, COLOURS, N_ATTRIBUTES, N_SCENES, POSITIONS, SHAPES, SIZES};
use crate::{
    subject_truth, write_brick, write_captions, write_responses, write_rois, SimulateOptions,
    Simulated, Truth, BETAS_DEFLATE_LEVEL,
};
use brainrecon_core::error::{DataError, Result};
use brainrecon_core::fs::write_json_atomic;
use brainrecon_core::progress::bar_aligned;
use brainrecon_datasets::nsd::{Layout, BETA_SCALE};
use brainrecon_formats::npy;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

use crate::h5stream::ChunkedWriter;

/// Functional profiles in the group's population.
pub const POPULATION_PROFILES: usize = 96;
/// Side of the luminance lattice the pRFs read (the image in `PRF_GRID`² cells).
pub const PRF_GRID: usize = 16;
/// Trials in one of NSD's scan sessions.
pub const SESSION_TRIALS: usize = 750;
/// Sessions when `--sessions` is not given.
pub const DEFAULT_SESSIONS: usize = 10;
/// Subjects when `--subjects` is not given.
pub const DEFAULT_SUBJECTS: usize = 5;
/// Shared images when `--shared-images` is not given (at most a quarter of the images).
pub const DEFAULT_SHARED: usize = 300;
/// Range of the per-subject target ncsnr when `--ncsnr` is not given.
pub const DEFAULT_NCSNR: [f64; 2] = [0.1, 0.3];

/// A pRF over the image's luminance on the [`PRF_GRID`] lattice.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Prf {
    /// Horizontal centre, 0 (left) to 1 (right), in image widths.
    pub u: f32,
    /// Vertical centre, 0 (top) to 1 (bottom), in image widths.
    pub v: f32,
    /// Gaussian width, in image widths.
    pub sigma: f32,
    /// +1: brighter is more; −1: darker is more.
    pub sign: f32,
}

/// One functional profile: what a voxel responds to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Profile {
    /// Luminance in a pRF.
    Prf(Prf),
    /// Linear weights on `Scene::one_hot` ([`N_ATTRIBUTES`] of them).
    Attributes {
        /// One weight per attribute.
        weights: Vec<f32>,
    },
    /// `√a·prf + √(1−a)·attributes`, both parts normalised.
    Mixture {
        /// The luminance part.
        prf: Prf,
        /// The attribute part's weights ([`N_ATTRIBUTES`]).
        weights: Vec<f32>,
        /// a: the pRF's variance share, 0.2 to 0.8.
        prf_share: f32,
    },
}

impl Prf {
    fn random(rng: &mut impl Rng) -> Self {
        Prf {
            u: rng.gen_range(0.1..0.9),
            v: rng.gen_range(0.1..0.9),
            sigma: rng.gen_range(0.04..0.25),
            sign: if rng.gen::<bool>() { 1.0 } else { -1.0 },
        }
    }

    /// Normalised responses over the scenes of `table`.
    fn responses(&self, table: &SceneTable) -> Vec<f32> {
        let cells = PRF_GRID * PRF_GRID;
        let weights: Vec<f32> = (0..cells)
            .map(|c| {
                let x = ((c % PRF_GRID) as f32 + 0.5) / PRF_GRID as f32;
                let y = ((c / PRF_GRID) as f32 + 0.5) / PRF_GRID as f32;
                let d2 = (x - self.u).powi(2) + (y - self.v).powi(2);
                (-d2 / (2.0 * self.sigma * self.sigma)).exp()
            })
            .collect();
        let raw = (0..N_SCENES)
            .map(|id| {
                let lum = &table.luminance[id * cells..(id + 1) * cells];
                self.sign * weights.iter().zip(lum).map(|(w, l)| w * l).sum::<f32>()
            })
            .collect();
        normalised(raw)
    }
}

/// Attribute weights: each group (shape, colour, background, position, size) has an emphasis
/// in [0, 1) squared, times a standard normal per attribute.
fn random_weights(rng: &mut impl Rng, normal: &Normal<f32>) -> Vec<f32> {
    let mut weights = Vec::with_capacity(N_ATTRIBUTES);
    for count in [
        SHAPES.len(),
        COLOURS.len(),
        BACKGROUNDS.len(),
        POSITIONS.len(),
        SIZES.len(),
    ] {
        let emphasis = rng.gen::<f32>().powi(2);
        weights.extend((0..count).map(|_| emphasis * normal.sample(rng)));
    }
    weights
}

fn attribute_responses(weights: &[f32], table: &SceneTable) -> Vec<f32> {
    let raw = table
        .one_hot
        .iter()
        .map(|h| h.iter().zip(weights).map(|(a, w)| a * w).sum())
        .collect();
    normalised(raw)
}

impl Profile {
    /// A profile drawn as the population's are: a pRF (35 %), an attribute tuning (35 %) or a
    /// mixture (30 %).
    pub fn random(rng: &mut impl Rng) -> Self {
        let normal = Normal::new(0.0f32, 1.0).unwrap();
        let kind = rng.gen::<f32>();
        if kind < 0.35 {
            Profile::Prf(Prf::random(rng))
        } else if kind < 0.7 {
            Profile::Attributes {
                weights: random_weights(rng, &normal),
            }
        } else {
            Profile::Mixture {
                prf: Prf::random(rng),
                weights: random_weights(rng, &normal),
                prf_share: rng.gen_range(0.2..0.8),
            }
        }
    }

    /// Responses to every scene, by [`Scene::id`]: mean 0 and sd 1 over the [`N_SCENES`].
    pub fn responses(&self, table: &SceneTable) -> Vec<f32> {
        match self {
            Profile::Prf(prf) => prf.responses(table),
            Profile::Attributes { weights } => attribute_responses(weights, table),
            Profile::Mixture {
                prf,
                weights,
                prf_share,
            } => mix(
                &prf.responses(table),
                &attribute_responses(weights, table),
                1.0 - prf_share,
            ),
        }
    }
}

/// `√(1−share)·a + √share·b`, renormalised (mean 0, sd 1).
fn mix(a: &[f32], b: &[f32], share: f32) -> Vec<f32> {
    let (wa, wb) = ((1.0 - share).sqrt(), share.sqrt());
    normalised(a.iter().zip(b).map(|(x, y)| wa * x + wb * y).collect())
}

/// Mean 0, sd 1 (population sd; a constant stays 0).
fn normalised(mut values: Vec<f32>) -> Vec<f32> {
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let sd = var.sqrt().max(1e-9);
    for v in &mut values {
        *v = ((*v as f64 - mean) / sd) as f32;
    }
    values
}

/// Every distinct scene's luminance on the [`PRF_GRID`] lattice and its one-hot attributes,
/// by [`Scene::id`]; the profiles are normalised over it.
pub struct SceneTable {
    /// (N_SCENES, PRF_GRID²) luminance in [0, 1] (Rec. 601 luma), row-major cells.
    luminance: Vec<f32>,
    /// (N_SCENES, N_ATTRIBUTES)
    one_hot: Vec<Vec<f32>>,
}

impl SceneTable {
    /// The table of all [`N_SCENES`] scenes: the shape's coverage of each cell blends its
    /// colour's luminance with the background's.
    pub fn new() -> Self {
        let luma =
            |c: [u8; 3]| (0.299 * c[0] as f32 + 0.587 * c[1] as f32 + 0.114 * c[2] as f32) / 255.0;
        let mut luminance = Vec::with_capacity(N_SCENES * PRF_GRID * PRF_GRID);
        let mut one_hot = Vec::with_capacity(N_SCENES);
        for id in 0..N_SCENES {
            let scene = Scene::from_id(id);
            let (fg, bg) = (
                luma(COLOURS[scene.colour].1),
                luma(BACKGROUNDS[scene.background].1),
            );
            luminance.extend(
                scene
                    .coverage(PRF_GRID)
                    .into_iter()
                    .map(|a| a * fg + (1.0 - a) * bg),
            );
            one_hot.push(scene.one_hot());
        }
        SceneTable { luminance, one_hot }
    }
}

impl Default for SceneTable {
    fn default() -> Self {
        Self::new()
    }
}

/// What the population simulator knows, saved as `truth/population.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PopulationTruth {
    /// `"population"`: which simulator wrote it.
    pub generator: String,
    /// The seed it was made with.
    pub seed: u64,
    /// N
    pub n_subjects: usize,
    /// R: the variance share of each voxel's individual profile.
    pub individual_share: f64,
    /// Images each subject sees (each 3 times).
    pub n_images: usize,
    /// Distinct images over the group: shared + N × own.
    pub n_pool: usize,
    /// Sessions written.
    pub sessions: usize,
    /// Trials in each full session (the last may hold fewer).
    pub trials_per_session: usize,
    /// The range the subjects' target ncsnr was drawn from, [low, high].
    pub ncsnr_range: [f64; 2],
    /// 0-based ids every subject sees (sorted).
    pub shared_ids: Vec<usize>,
    /// The population's profiles ([`POPULATION_PROFILES`]).
    pub profiles: Vec<Profile>,
    /// Each subject, in order (`subj01` …).
    pub subjects: Vec<PopulationSubject>,
}

/// One subject in [`PopulationTruth`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PopulationSubject {
    /// `subjNN`.
    pub subject: String,
    /// (X, Y, Z)
    pub volume_shape: [usize; 3],
    /// Region bounds in normalised position: early visual below fy, visual below fy, ventral
    /// below fz, lateral beyond |fx − 0.5|.
    pub regions: [f32; 4],
    /// Target single-trial ncsnr of every visual voxel (NSD's definition, see the module).
    pub ncsnr: f64,
    /// Voxels per atlas and per `atlas/label`.
    pub rois: BTreeMap<String, usize>,
    /// Training trials the subject saw.
    pub n_train_trials: usize,
    /// Test (shared-image) trials the subject saw.
    pub n_test_trials: usize,
    /// 0-based ids this subject alone sees (sorted).
    pub own_ids: Vec<usize>,
}

/// Shared images when `--shared-images` is not given: [`DEFAULT_SHARED`], at most a quarter of
/// the images, at least 3.
pub fn default_shared(n_images: usize) -> usize {
    DEFAULT_SHARED.min(n_images / 4).max(3)
}

/// Writes a group with the population model; `opts` is checked by [`crate::simulate`]
/// (`opts.subject` is not used: subjects `subj01` … `subjNN` are written).
pub(crate) fn simulate_population(opts: &SimulateOptions) -> Result<Simulated> {
    let (truths, population) = crate::group::write_in_layout(opts, write_tree)?;
    Ok(Simulated {
        out: opts.out.clone(),
        truth: truths[0].clone(),
        group: None,
        population: Some(Box::new(population)),
    })
}

/// Subject `s`'s (0-based) random stream, apart from the group's and from [`crate::group`]'s.
fn subject_rng(seed: u64, s: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(1000 + s as u64);
    rng
}

/// A subject's brain: an ellipsoid whose back (fy below `regions[1]`) is visual cortex, with
/// NSD's three atlases. Returns the label volumes (voxels left empty) and the in-brain voxels'
/// coordinates in betas order (z, then y, then x fastest) with whether each is visual.
fn subject_brain(shape: [usize; 3], regions: [f32; 4]) -> (Brain, Vec<([usize; 3], bool)>) {
    let [nx, ny, nz] = shape;
    let n = nx * ny * nz;
    let (mut nsdgeneral, mut streams, mut prf) = (vec![-1i16; n], vec![-1i16; n], vec![-1i16; n]);
    let centre = [nx as f32 / 2.0, ny as f32 / 2.0, nz as f32 / 2.0];
    let radii = [0.46 * nx as f32, 0.46 * ny as f32, 0.42 * nz as f32];
    let [t_early, t_visual, t_ventral, t_lateral] = regions;
    let mut voxels = Vec::new();
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let d: f32 = (0..3)
                    .map(|a| (([x, y, z][a] as f32 + 0.5 - centre[a]) / radii[a]).powi(2))
                    .sum();
                if d > 1.0 {
                    continue;
                }
                let i = x + nx * (y + ny * z);
                nsdgeneral[i] = 0;
                streams[i] = 0;
                prf[i] = 0;
                let fy = (y as f32 + 0.5 - (centre[1] - radii[1])) / (2.0 * radii[1]);
                let fx = (x as f32 + 0.5) / nx as f32;
                let fz = (z as f32 + 0.5) / nz as f32;
                let visual = fy < t_visual;
                if visual {
                    nsdgeneral[i] = 1;
                    streams[i] = if fy < t_early {
                        let level = ((fy / t_early) * 3.0).min(2.999) as i16;
                        prf[i] = 1 + 2 * level + (fz >= 0.5) as i16;
                        1
                    } else if fz < t_ventral {
                        5
                    } else if (fx - 0.5).abs() > t_lateral {
                        6
                    } else {
                        7
                    };
                }
                voxels.push(([x, y, z], visual));
            }
        }
    }
    let affine = crate::bold::centred_affine(shape, 1.8);
    let brain = Brain {
        shape,
        affine,
        nsdgeneral,
        streams,
        prf_visualrois: prf,
        voxels: Vec::new(),
    };
    (brain, voxels)
}

fn write_tree(opts: &SimulateOptions, root: &Path) -> Result<(Vec<Truth>, PopulationTruth)> {
    let n_subjects = opts.subjects;
    let n_shared = opts
        .shared_images
        .unwrap_or_else(|| default_shared(opts.n_images));
    let n_pool = n_shared + n_subjects * (opts.n_images - n_shared);
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    // The group's draws first: profiles, scenes, captions, design.
    let profiles: Vec<Profile> = (0..POPULATION_PROFILES)
        .map(|_| Profile::random(&mut rng))
        .collect();
    let scenes: Vec<Scene> = (0..n_pool).map(|_| Scene::random(&mut rng)).collect();
    let captions: Vec<Vec<String>> = scenes.iter().map(|s| s.captions(&mut rng)).collect();
    let (design, own) = crate::group::group_design(opts.n_images, n_shared, n_subjects, &mut rng);
    let n_trials = design.master_ordering.len();
    let per_session = n_trials.div_ceil(opts.sessions);
    let sessions: Vec<usize> = (1..=n_trials.div_ceil(per_session)).collect();
    let trial_session: Vec<usize> = (0..n_trials).map(|t| t / per_session + 1).collect();

    let table = SceneTable::new();
    let population: Vec<Vec<f32>> = profiles.iter().map(|p| p.responses(&table)).collect();
    let images: Vec<_> = scenes.iter().map(|s| s.render(opts.image_size)).collect();
    let first = Layout::new(root, 1);
    design.write_expdesign(&first, opts.n_images)?;
    write_captions(&first, &captions)?;
    write_brick(&first, &images, opts.image_size)?;
    let mut shared_ids = design.shared.clone();
    shared_ids.sort_unstable();

    let mut truths = Vec::with_capacity(n_subjects);
    let mut subjects = Vec::with_capacity(n_subjects);
    let mut trial_ids_of = Vec::with_capacity(n_subjects);
    for s in 0..n_subjects {
        let mut rng = subject_rng(opts.seed, s);
        let shape = opts
            .volume_shape
            .map(|d| ((d as f32 * rng.gen_range(0.85f32..1.15)).round() as usize).max(8));
        let regions = [
            rng.gen_range(0.12f32..0.2),
            rng.gen_range(0.28f32..0.4),
            rng.gen_range(0.38f32..0.52),
            rng.gen_range(0.18f32..0.26),
        ];
        let ncsnr = if opts.ncsnr[0] < opts.ncsnr[1] {
            rng.gen_range(opts.ncsnr[0]..opts.ncsnr[1])
        } else {
            opts.ncsnr[0]
        };
        let (brain, voxels) = subject_brain(shape, regions);
        let visual: Vec<usize> = (0..voxels.len()).filter(|&v| voxels[v].1).collect();
        // The population's profiles in this subject's own random order.
        let mut profile: Vec<usize> = (0..visual.len()).map(|k| k % POPULATION_PROFILES).collect();
        profile.shuffle(&mut rng);
        // (N_SCENES, visual voxels): each row one scene's signal over the visual voxels.
        let mut signal = vec![0f32; N_SCENES * visual.len()];
        for (k, &p) in profile.iter().enumerate() {
            let individual = Profile::random(&mut rng).responses(&table);
            let mixed = mix(&population[p], &individual, opts.individual_share as f32);
            for (id, value) in mixed.into_iter().enumerate() {
                signal[id * visual.len() + k] = value;
            }
        }
        let layout = Layout::new(root, s + 1);
        let sub_opts = SimulateOptions {
            subject: s + 1,
            volume_shape: shape,
            ..opts.clone()
        };
        let trial_ids: Vec<usize> = design
            .master_ordering
            .iter()
            .map(|&c| design.subject_images[s][c])
            .collect();
        let trial_scenes: Vec<usize> = trial_ids.iter().map(|&id| scenes[id].id()).collect();
        write_betas(
            opts,
            &layout,
            &BetasModel {
                shape,
                voxels: &voxels,
                signal: &signal,
                n_visual: visual.len(),
                ncsnr: ncsnr as f32,
            },
            &trial_scenes,
            &trial_session,
            &sessions,
            &mut rng,
        )?;
        write_responses(&layout, &trial_ids, &trial_session, per_session)?;
        let rois = write_rois(&layout, &brain)?;
        let truth = subject_truth(
            &sub_opts,
            &layout,
            &design.shared,
            &trial_ids,
            &trial_session,
            &sessions,
            rois.clone(),
            &scenes,
        );
        let truth_dir = root.join("truth").join(layout.subject_name());
        std::fs::create_dir_all(&truth_dir).map_err(|e| DataError::io(&truth_dir, e))?;
        write_json_atomic(&truth_dir.join("truth.json"), &truth)?;
        let as_i64 = |v: &[usize]| v.iter().map(|&x| x as i64).collect::<Vec<_>>();
        npy::write(
            &truth_dir.join("trial_stimulus.npy"),
            &[n_trials],
            &as_i64(&trial_ids),
        )?;
        npy::write(
            &truth_dir.join("trial_session.npy"),
            &[n_trials],
            &as_i64(&trial_session),
        )?;
        let coords: Vec<i32> = visual
            .iter()
            .flat_map(|&v| voxels[v].0.map(|c| c as i32))
            .collect();
        npy::write(
            &truth_dir.join("voxel_coords.npy"),
            &[visual.len(), 3],
            &coords,
        )?;
        npy::write(
            &truth_dir.join("profile.npy"),
            &[visual.len()],
            &as_i64(&profile),
        )?;
        let shared_signal: Vec<f32> = shared_ids
            .iter()
            .flat_map(|&id| {
                let row = scenes[id].id() * visual.len();
                signal[row..row + visual.len()].iter().copied()
            })
            .collect();
        npy::write(
            &truth_dir.join("signal_shared.npy"),
            &[shared_ids.len(), visual.len()],
            &shared_signal,
        )?;
        let mut own_ids = own[s].clone();
        own_ids.sort_unstable();
        subjects.push(PopulationSubject {
            subject: layout.subject_name(),
            volume_shape: shape,
            regions,
            ncsnr,
            rois,
            n_train_trials: truth.n_train_trials,
            n_test_trials: truth.n_test_trials,
            own_ids,
        });
        truths.push(truth);
        trial_ids_of.push(trial_ids);
    }
    crate::group::write_stim_info(&first, &design, n_pool, &trial_ids_of)?;
    let population = PopulationTruth {
        generator: "population".into(),
        seed: opts.seed,
        n_subjects,
        individual_share: opts.individual_share,
        n_images: opts.n_images,
        n_pool,
        sessions: sessions.len(),
        trials_per_session: per_session,
        ncsnr_range: opts.ncsnr,
        shared_ids,
        profiles,
        subjects,
    };
    write_json_atomic(&root.join("truth").join("population.json"), &population)?;
    Ok((truths, population))
}

/// What the betas of one subject are made from.
struct BetasModel<'a> {
    shape: [usize; 3],
    /// In-brain voxels in betas order, and whether each is visual.
    voxels: &'a [([usize; 3], bool)],
    /// (N_SCENES, n_visual) noise-free signal, sd 1.
    signal: &'a [f32],
    n_visual: usize,
    ncsnr: f32,
}

/// Betas per session, one trial (one chunk) at a time, int16 = percent signal change × 300.
fn write_betas(
    opts: &SimulateOptions,
    layout: &Layout,
    model: &BetasModel,
    trial_scenes: &[usize],
    trial_session: &[usize],
    sessions: &[usize],
    rng: &mut ChaCha8Rng,
) -> Result<()> {
    let normal = Normal::new(0.0f32, 1.0).unwrap();
    let [nx, ny, nz] = model.shape;
    let n_vox = model.voxels.len();
    let flat: Vec<usize> = model
        .voxels
        .iter()
        .map(|([x, y, z], _)| (z * ny + y) * nx + x)
        .collect();
    // Signal amplitude (percent signal change) of each in-brain voxel; 0 outside visual cortex.
    let amplitudes: Vec<f32> = model
        .voxels
        .iter()
        .map(|(_, visual)| {
            if *visual {
                rng.gen_range(0.5..1.5)
            } else {
                0.0
            }
        })
        .collect();
    let noise_sd = 1.0 / model.ncsnr;
    let bar = bar_aligned(trial_scenes.len() as u64, "betas trials", opts.progress, 14);
    let mut data = vec![0i16; nx * ny * nz];
    for &session in sessions {
        let trials: Vec<usize> = (0..trial_scenes.len())
            .filter(|&t| trial_session[t] == session)
            .collect();
        let offsets: Vec<f32> = (0..n_vox).map(|_| 0.8 * normal.sample(rng)).collect();
        let gains: Vec<f32> = (0..n_vox).map(|_| rng.gen_range(0.7..1.3)).collect();
        let mut writer = ChunkedWriter::<i16>::create(
            &layout.betas(session),
            "betas",
            &[trials.len(), nz, ny, nx],
            1,
            Some(BETAS_DEFLATE_LEVEL),
        )?;
        for &t in &trials {
            let row = &model.signal[trial_scenes[t] * model.n_visual..][..model.n_visual];
            let mut k = 0;
            for v in 0..n_vox {
                let psc = if model.voxels[v].1 {
                    let s = row[k];
                    k += 1;
                    offsets[v] + gains[v] * amplitudes[v] * (s + noise_sd * normal.sample(rng))
                } else {
                    offsets[v] + 1.2 * normal.sample(rng)
                };
                data[flat[v]] = (psc * BETA_SCALE).round().clamp(-32768.0, 32767.0) as i16;
            }
            writer.write_rows(&data)?;
            bar.inc(1);
        }
        writer.finish()?;
    }
    bar.finish_and_clear();
    Ok(())
}
