//! An NSD-like volume: brain mask, visual ROIs, and voxel tuning.
//!
//! Early visual voxels have Gaussian population receptive fields over image luminance and local
//! contrast, arranged retinotopically; higher visual voxels are tuned to the scene's semantic
//! attributes; other brain voxels carry noise only.

use super::scene::{Scene, N_ATTRIBUTES};
use brainrecon_formats::image::RgbImage;
use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::Serialize;

/// Atlas label tables as NSD names them (value, name).
pub const STREAMS: [(i32, &str); 7] = [
    (1, "early"),
    (2, "midventral"),
    (3, "midlateral"),
    (4, "midparietal"),
    (5, "ventral"),
    (6, "lateral"),
    (7, "parietal"),
];
/// NSD's `prf-visualrois` labels (value, name).
pub const PRF_VISUALROIS: [(i32, &str); 7] = [
    (1, "V1v"),
    (2, "V1d"),
    (3, "V2v"),
    (4, "V2d"),
    (5, "V3v"),
    (6, "V3d"),
    (7, "hV4"),
];
/// NSD's `nsdgeneral` label (value, name).
pub const NSDGENERAL: [(i32, &str); 1] = [(1, "nsdgeneral")];

/// How a voxel responds to a scene.
#[derive(Debug, Clone)]
pub enum Tuning {
    /// Gaussian pRF at (u, v) in [0, 1]² with width `sigma`, weights on luminance and contrast.
    Receptive {
        /// Horizontal centre in the image, 0 (left) to 1 (right).
        u: f32,
        /// Vertical centre in the image, 0 (top) to 1 (bottom).
        v: f32,
        /// Gaussian width, in image widths.
        sigma: f32,
        /// Weight on the pRF-weighted luminance.
        luminance: f32,
        /// Weight on the pRF-weighted local contrast.
        contrast: f32,
    },
    /// Linear weights on the one-hot scene attributes.
    Semantic {
        /// One weight per attribute of `Scene::one_hot`.
        weights: Vec<f32>,
    },
    /// Noise only.
    None,
}

/// One in-brain voxel and how it responds.
#[derive(Debug, Clone)]
pub struct Voxel {
    /// (x, y, z) in the volume.
    pub coord: [usize; 3],
    /// What it responds to.
    pub tuning: Tuning,
    /// Signal amplitude in percent signal change.
    pub amplitude: f32,
    /// Noise-ceiling SNR: signal sd / noise sd on a single trial.
    pub ncsnr: f32,
}

/// The simulated brain: label volumes (x fastest) and the voxels inside the brain.
pub struct Brain {
    /// (X, Y, Z)
    pub shape: [usize; 3],
    /// Row-major voxel → world affine (1.8-mm voxels, centred), as NSD's `func1pt8mm`.
    pub affine: [[f64; 4]; 4],
    /// `nsdgeneral` label volume: −1 outside the brain, 0 unlabelled, 1 visual cortex.
    pub nsdgeneral: Vec<i16>,
    /// `streams` label volume ([`STREAMS`]): −1 outside the brain, 0 unlabelled.
    pub streams: Vec<i16>,
    /// `prf-visualrois` label volume ([`PRF_VISUALROIS`]): −1 outside the brain, 0 unlabelled.
    pub prf_visualrois: Vec<i16>,
    /// In-brain voxels in betas order: z, then y, then x fastest.
    pub voxels: Vec<Voxel>,
}

impl Brain {
    /// Flat index of voxel (x, y, z) in the label volumes (x fastest).
    pub fn index(&self, [x, y, z]: [usize; 3]) -> usize {
        x + self.shape[0] * (y + self.shape[1] * z)
    }

    /// A lone subject's brain of `shape` voxels: an ellipsoid whose back is visual cortex.
    pub fn new(shape: [usize; 3], rng: &mut impl Rng) -> Self {
        Self::build(shape, None, rng).0
    }

    /// One subject of a simulated group: its regions from `traits`' thresholds, each visual
    /// voxel's tuning mixed from the population's shared field at its shifted normalised
    /// position and an individual draw made as [`Brain::new`] makes it. Returns the brain and,
    /// per voxel (betas order), the parts of a visual voxel's tuning (`None` elsewhere).
    pub fn group_member(
        shape: [usize; 3],
        population: &Population,
        traits: &SubjectTraits,
        rng: &mut impl Rng,
    ) -> (Self, Vec<Option<TuningParts>>) {
        Self::build(shape, Some((population, traits)), rng)
    }

    /// Without a group the random draws (their number and order) are those of the first
    /// version, so a single subject's files stay bit-identical.
    fn build(
        shape: [usize; 3],
        group: Option<(&Population, &SubjectTraits)>,
        rng: &mut impl Rng,
    ) -> (Self, Vec<Option<TuningParts>>) {
        let [nx, ny, nz] = shape;
        let n = nx * ny * nz;
        let (mut nsdgeneral, mut streams, mut prf) =
            (vec![-1i16; n], vec![-1i16; n], vec![-1i16; n]);
        let mut voxels = Vec::new();
        let mut parts = Vec::new();
        let centre = [nx as f32 / 2.0, ny as f32 / 2.0, nz as f32 / 2.0];
        let radii = [0.46 * nx as f32, 0.46 * ny as f32, 0.42 * nz as f32];
        let normal = Normal::new(0.0f32, 1.0).unwrap();
        let [t_early, t_higher, t_ventral, t_lateral] = group
            .map(|(_, t)| t.thresholds)
            .unwrap_or(DEFAULT_THRESHOLDS);
        // Weights of the shared and the individual part (√(1−R), √R).
        let (w_shared, w_own) = group.map_or((0.0, 1.0), |(_, t)| {
            ((1.0 - t.individual_share).sqrt(), t.individual_share.sqrt())
        });
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
                    for volume in [&mut nsdgeneral, &mut streams, &mut prf] {
                        volume[i] = 0;
                    }
                    // Posterior fraction of the brain along y: 0 at the occipital pole.
                    let fy = (y as f32 + 0.5 - (centre[1] - radii[1])) / (2.0 * radii[1]);
                    let fx = (x as f32 + 0.5) / nx as f32;
                    let fz = (z as f32 + 0.5) / nz as f32;
                    // Where the population's shared fields are read for this voxel.
                    let position =
                        group.map(|(_, t)| [fx + t.shift[0], fy + t.shift[1], fz + t.shift[2]]);
                    let lateral = (fx - 0.5).abs() > t_lateral;
                    let mut part = None;
                    let (stream, tuning) = if fy < t_early {
                        let level = ((fy / t_early) * 3.0).min(2.999) as i32; // V1, V2, V3
                        let dorsal = fz >= 0.5;
                        prf[i] = (1 + 2 * level + dorsal as i32) as i16;
                        // Retinotopy: hemisphere → opposite visual field, dorsal → lower field.
                        let u = if fx < 0.5 {
                            0.5 + (0.5 - fx) * 1.7
                        } else {
                            0.5 - (fx - 0.5) * 1.7
                        };
                        let v = if dorsal {
                            0.5 + (fz - 0.5) * 1.6
                        } else {
                            0.5 - (0.5 - fz) * 1.6
                        };
                        let tuning = match (group, position) {
                            (Some((population, _)), Some(p)) => {
                                let shared = population.retinotopic.at(p);
                                let own = [
                                    normal.sample(rng),
                                    normal.sample(rng),
                                    rng.gen::<f32>(),
                                    normal.sample(rng),
                                    rng.gen::<f32>(),
                                ];
                                let du = w_shared * shared[1] + w_own * own[0];
                                let dv = w_shared * shared[2] + w_own * own[1];
                                let luminance = w_shared * shared[0] + w_own * own[3];
                                let mut individual = vec![own[3], own[0], own[1]];
                                individual.resize(N_ATTRIBUTES, 0.0);
                                let mut shared_row = vec![shared[0], shared[1], shared[2]];
                                shared_row.resize(N_ATTRIBUTES, 0.0);
                                part = Some(TuningParts {
                                    position: p,
                                    shared: shared_row,
                                    individual,
                                });
                                Tuning::Receptive {
                                    u: (u + 0.05 * du).clamp(0.02, 0.98),
                                    v: (v + 0.05 * dv).clamp(0.02, 0.98),
                                    sigma: 0.05 + 0.035 * level as f32 + 0.02 * own[2],
                                    luminance,
                                    contrast: 0.5 + own[4],
                                }
                            }
                            _ => Tuning::Receptive {
                                u: (u + 0.05 * normal.sample(rng)).clamp(0.02, 0.98),
                                v: (v + 0.05 * normal.sample(rng)).clamp(0.02, 0.98),
                                sigma: 0.05 + 0.035 * level as f32 + 0.02 * rng.gen::<f32>(),
                                luminance: normal.sample(rng),
                                contrast: 0.5 + rng.gen::<f32>(),
                            },
                        };
                        (1, tuning)
                    } else if fy < t_higher {
                        let (stream, emphasis): (i16, [f32; 5]) = if fz < t_ventral {
                            (5, [1.0, 1.0, 0.3, 0.2, 0.4]) // ventral: shape and colour
                        } else if lateral {
                            (6, [1.0, 0.3, 0.2, 0.8, 0.6]) // lateral: shape and position
                        } else {
                            (7, [0.2, 0.2, 0.3, 1.0, 1.0]) // parietal: position and size
                        };
                        // hV4 borders V3 ventrally.
                        if stream == 5 && fy < t_early + 0.04 {
                            prf[i] = 7;
                        }
                        let groups = [4, 6, 4, 5, 2];
                        let emphasis_of: Vec<f32> = groups
                            .iter()
                            .zip(emphasis)
                            .flat_map(|(&count, e)| std::iter::repeat_n(e, count))
                            .collect();
                        let individual: Vec<f32> =
                            (0..N_ATTRIBUTES).map(|_| normal.sample(rng)).collect();
                        let weights: Vec<f32> = match (group, position) {
                            (Some((population, _)), Some(p)) => {
                                let shared = population.semantic.at(p);
                                let weights = shared
                                    .iter()
                                    .zip(&individual)
                                    .zip(&emphasis_of)
                                    .map(|((s, o), e)| e * (w_shared * s + w_own * o))
                                    .collect();
                                part = Some(TuningParts {
                                    position: p,
                                    shared,
                                    individual,
                                });
                                weights
                            }
                            _ => emphasis_of
                                .iter()
                                .zip(&individual)
                                .map(|(e, o)| e * o)
                                .collect(),
                        };
                        (stream, Tuning::Semantic { weights })
                    } else {
                        (0, Tuning::None)
                    };
                    if stream > 0 {
                        streams[i] = stream;
                        nsdgeneral[i] = 1;
                    }
                    let visual = stream > 0;
                    let snr_factor = group.map_or(1.0, |(_, t)| t.snr_factor);
                    voxels.push(Voxel {
                        coord: [x, y, z],
                        tuning,
                        amplitude: if visual {
                            0.8 + 1.6 * rng.gen::<f32>()
                        } else {
                            0.0
                        },
                        ncsnr: if visual {
                            let ncsnr = 0.15 + 0.5 * rng.gen::<f32>();
                            if group.is_some() {
                                ncsnr * snr_factor
                            } else {
                                ncsnr
                            }
                        } else {
                            0.0
                        },
                    });
                    parts.push(part);
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
            voxels,
        };
        (brain, parts)
    }
}

/// Region bounds in normalised position: early visual below fy, higher visual below fy,
/// ventral below fz, lateral beyond |fx − 0.5|.
pub const DEFAULT_THRESHOLDS: [f32; 4] = [0.16, 0.34, 0.45, 0.22];

/// A smooth field over normalised brain position: Gaussian bumps at `centres`, each carrying a
/// vector of values; at p it is Σ_j g_j(p)·values_j / ‖g(p)‖₂, so with independent N(0, 1)
/// values every component has unit variance everywhere.
#[derive(Debug, Clone, Serialize)]
pub struct Field {
    /// (bumps, 3): normalised (fx, fy, fz).
    pub centres: Vec<[f32; 3]>,
    /// (bumps, dims)
    pub values: Vec<Vec<f32>>,
    /// Width of each bump in normalised units.
    pub sigma: f32,
}

impl Field {
    fn random(
        bumps: usize,
        dims: usize,
        fy: std::ops::Range<f32>,
        sigma: f32,
        rng: &mut impl Rng,
    ) -> Self {
        let normal = Normal::new(0.0f32, 1.0).unwrap();
        let mut centres = Vec::with_capacity(bumps);
        let mut values = Vec::with_capacity(bumps);
        for _ in 0..bumps {
            centres.push([
                rng.gen::<f32>(),
                rng.gen_range(fy.clone()),
                rng.gen::<f32>(),
            ]);
            values.push((0..dims).map(|_| normal.sample(rng)).collect());
        }
        Field {
            centres,
            values,
            sigma,
        }
    }

    /// The field's value at normalised position `p` (dims,).
    pub fn at(&self, p: [f32; 3]) -> Vec<f32> {
        let d2: Vec<f64> = self
            .centres
            .iter()
            .map(|c| (0..3).map(|a| ((p[a] - c[a]) as f64).powi(2)).sum())
            .collect();
        // Relative to the nearest bump, so far positions do not underflow to 0/0.
        let nearest = d2.iter().copied().fold(f64::INFINITY, f64::min);
        let s2 = 2.0 * (self.sigma as f64).powi(2);
        let g: Vec<f64> = d2.iter().map(|d| (-(d - nearest) / s2).exp()).collect();
        let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
        let dims = self.values.first().map_or(0, Vec::len);
        (0..dims)
            .map(|k| {
                (g.iter()
                    .zip(&self.values)
                    .map(|(g, v)| g * v[k] as f64)
                    .sum::<f64>()
                    / norm) as f32
            })
            .collect()
    }
}

/// Width of a population field's Gaussian bumps in normalised position.
pub const FIELD_SIGMA: f32 = 0.08;

/// The tuning a simulated group shares: 48 semantic prototypes (21 attribute weights each)
/// over the higher-visual band, and a field of (luminance weight, u jitter, v jitter) over the
/// early-visual band.
#[derive(Debug, Clone, Serialize)]
pub struct Population {
    /// Attribute weights (21 per bump) over the higher-visual band.
    pub semantic: Field,
    /// (luminance weight, u jitter, v jitter) over the early-visual band.
    pub retinotopic: Field,
}

impl Population {
    /// A random population: 48 semantic and 24 retinotopic bumps of width [`FIELD_SIGMA`].
    pub fn new(rng: &mut impl Rng) -> Self {
        Population {
            semantic: Field::random(48, N_ATTRIBUTES, 0.12..0.40, FIELD_SIGMA, rng),
            retinotopic: Field::random(24, 3, 0.0..0.22, FIELD_SIGMA, rng),
        }
    }
}

/// A group subject's single-trial SNR relative to a lone subject's. A group's voxels share a
/// 21-dimensional signal and independent noise, so pooling over hundreds of voxels makes one
/// session nearly as good as many; at this scale one session of 90 trials decodes clearly
/// worse than ten (two-way identification of c about 0.73 against 0.96).
pub const GROUP_NCSNR_SCALE: f32 = 0.35;

/// How one group subject differs from the population.
#[derive(Debug, Clone, Serialize)]
pub struct SubjectTraits {
    /// Region bounds ([`DEFAULT_THRESHOLDS`] jittered).
    pub thresholds: [f32; 4],
    /// Added to a voxel's normalised position before the shared fields are read.
    pub shift: [f32; 3],
    /// Multiplies every visual voxel's `ncsnr`: [`GROUP_NCSNR_SCALE`] × U(0.7, 1.3).
    pub snr_factor: f32,
    /// R: the variance share of the individual part of each tuning value.
    pub individual_share: f32,
}

impl SubjectTraits {
    /// One subject's traits: thresholds jittered by ±0.02, a shift of ±0.03, an SNR factor, and
    /// `individual_share` as R.
    pub fn random(individual_share: f32, rng: &mut impl Rng) -> Self {
        let mut thresholds = DEFAULT_THRESHOLDS;
        for t in &mut thresholds {
            *t += rng.gen_range(-0.02..0.02);
        }
        let shift = [0; 3].map(|_| rng.gen_range(-0.03f32..0.03));
        SubjectTraits {
            thresholds,
            shift,
            snr_factor: GROUP_NCSNR_SCALE * rng.gen_range(0.7..1.3),
            individual_share,
        }
    }
}

/// A group subject's visual voxel: where it reads the shared fields and its two tuning parts,
/// each (21,): a semantic voxel's attribute weights before its stream's emphasis; a pRF
/// voxel's (luminance weight, u jitter, v jitter) in the first three places, zeros after.
#[derive(Debug, Clone)]
pub struct TuningParts {
    /// Normalised (fx, fy, fz) where it reads the shared fields (shift included).
    pub position: [f32; 3],
    /// The population's part (21,).
    pub shared: Vec<f32>,
    /// The subject's own draw (21,).
    pub individual: Vec<f32>,
}

/// Luminance and local contrast maps of an image on a `grid`×`grid` lattice.
pub fn luminance_contrast(image: &RgbImage, grid: usize) -> (Vec<f32>, Vec<f32>) {
    let small = image.resize(grid, grid);
    let lum: Vec<f32> = small
        .pixels
        .chunks_exact(3)
        .map(|p| (0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32) / 255.0)
        .collect();
    let mut contrast = vec![0.0; grid * grid];
    for y in 0..grid {
        for x in 0..grid {
            let at = |xx: usize, yy: usize| lum[yy.min(grid - 1) * grid + xx.min(grid - 1)];
            let gx = at(x + 1, y) - at(x.saturating_sub(1), y);
            let gy = at(x, y + 1) - at(x, y.saturating_sub(1));
            contrast[y * grid + x] = (gx * gx + gy * gy).sqrt();
        }
    }
    (lum, contrast)
}

/// Noise-free response of a voxel to a scene (arbitrary units; normalised later).
pub fn response(voxel: &Voxel, scene: &Scene, lum: &[f32], contrast: &[f32], grid: usize) -> f32 {
    Responder::new(voxel, grid).respond(&scene.one_hot(), lum, contrast)
}

/// A voxel's response function with its pRF weights computed once, for many scenes.
pub enum Responder<'a> {
    /// A pRF voxel.
    Receptive {
        /// Gaussian weight per grid cell (row-major) and their sum.
        weights: Vec<f32>,
        /// Sum of the weights.
        norm: f32,
        /// Weight on the pRF-weighted luminance.
        luminance: f32,
        /// Weight on the pRF-weighted local contrast.
        contrast: f32,
    },
    /// A semantic voxel's attribute weights.
    Semantic(&'a [f32]),
    /// A noise-only voxel (responds 0).
    None,
}

impl<'a> Responder<'a> {
    /// The response function of `voxel` on a `grid`×`grid` lattice.
    pub fn new(voxel: &'a Voxel, grid: usize) -> Self {
        match &voxel.tuning {
            Tuning::Receptive {
                u,
                v,
                sigma,
                luminance,
                contrast,
            } => {
                let mut weights = Vec::with_capacity(grid * grid);
                let mut norm = 0.0;
                for y in 0..grid {
                    for x in 0..grid {
                        let du = (x as f32 + 0.5) / grid as f32 - u;
                        let dv = (y as f32 + 0.5) / grid as f32 - v;
                        let g = (-(du * du + dv * dv) / (2.0 * sigma * sigma)).exp();
                        weights.push(g);
                        norm += g;
                    }
                }
                Responder::Receptive {
                    weights,
                    norm,
                    luminance: *luminance,
                    contrast: *contrast,
                }
            }
            Tuning::Semantic { weights } => Responder::Semantic(weights),
            Tuning::None => Responder::None,
        }
    }

    /// Response to a scene given its attributes (`Scene::one_hot`) and its
    /// `luminance_contrast` maps.
    pub fn respond(&self, one_hot: &[f32], lum: &[f32], contrast: &[f32]) -> f32 {
        match self {
            Responder::Receptive {
                weights,
                norm,
                luminance,
                contrast: w_contrast,
            } => {
                let (mut sum_l, mut sum_c) = (0.0, 0.0);
                for ((g, l), c) in weights.iter().zip(lum).zip(contrast) {
                    sum_l += g * l;
                    sum_c += g * c;
                }
                luminance * sum_l / norm + w_contrast * 4.0 * sum_c / norm
            }
            Responder::Semantic(weights) => {
                one_hot.iter().zip(weights.iter()).map(|(a, w)| a * w).sum()
            }
            Responder::None => 0.0,
        }
    }
}
