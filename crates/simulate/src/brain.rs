//! An NSD-like volume: brain mask, visual ROIs, and voxel tuning.
//!
//! Early visual voxels have Gaussian population receptive fields over image luminance and local
//! contrast, arranged retinotopically; higher visual voxels are tuned to the scene's semantic
//! attributes; other brain voxels carry noise only.

use super::scene::{Scene, N_ATTRIBUTES};
use brainrecon_formats::image::RgbImage;
use rand::Rng;
use rand_distr::{Distribution, Normal};

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
pub const PRF_VISUALROIS: [(i32, &str); 7] = [
    (1, "V1v"),
    (2, "V1d"),
    (3, "V2v"),
    (4, "V2d"),
    (5, "V3v"),
    (6, "V3d"),
    (7, "hV4"),
];
pub const NSDGENERAL: [(i32, &str); 1] = [(1, "nsdgeneral")];

/// How a voxel responds to a scene.
#[derive(Debug, Clone)]
pub enum Tuning {
    /// Gaussian pRF at (u, v) in [0,1]² with width `sigma`, weights on luminance and contrast.
    Receptive {
        u: f32,
        v: f32,
        sigma: f32,
        luminance: f32,
        contrast: f32,
    },
    /// Linear weights on the one-hot scene attributes.
    Semantic { weights: Vec<f32> },
    /// Noise only.
    None,
}

#[derive(Debug, Clone)]
pub struct Voxel {
    /// (x, y, z) in the volume.
    pub coord: [usize; 3],
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
    pub affine: [[f64; 4]; 4],
    pub nsdgeneral: Vec<i16>,
    pub streams: Vec<i16>,
    pub prf_visualrois: Vec<i16>,
    /// In-brain voxels in betas order: z, then y, then x fastest.
    pub voxels: Vec<Voxel>,
}

impl Brain {
    pub fn index(&self, [x, y, z]: [usize; 3]) -> usize {
        x + self.shape[0] * (y + self.shape[1] * z)
    }

    pub fn new(shape: [usize; 3], rng: &mut impl Rng) -> Self {
        let [nx, ny, nz] = shape;
        let n = nx * ny * nz;
        let (mut nsdgeneral, mut streams, mut prf) =
            (vec![-1i16; n], vec![-1i16; n], vec![-1i16; n]);
        let mut voxels = Vec::new();
        let centre = [nx as f32 / 2.0, ny as f32 / 2.0, nz as f32 / 2.0];
        let radii = [0.46 * nx as f32, 0.46 * ny as f32, 0.42 * nz as f32];
        let normal = Normal::new(0.0f32, 1.0).unwrap();
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
                    let lateral = (fx - 0.5).abs() > 0.22;
                    let (stream, tuning) = if fy < 0.16 {
                        let level = ((fy / 0.16) * 3.0).min(2.999) as i32; // V1, V2, V3
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
                        let tuning = Tuning::Receptive {
                            u: (u + 0.05 * normal.sample(rng)).clamp(0.02, 0.98),
                            v: (v + 0.05 * normal.sample(rng)).clamp(0.02, 0.98),
                            sigma: 0.05 + 0.035 * level as f32 + 0.02 * rng.gen::<f32>(),
                            luminance: normal.sample(rng),
                            contrast: 0.5 + rng.gen::<f32>(),
                        };
                        (1, tuning)
                    } else if fy < 0.34 {
                        let (stream, emphasis): (i16, [f32; 5]) = if fz < 0.45 {
                            (5, [1.0, 1.0, 0.3, 0.2, 0.4]) // ventral: shape and colour
                        } else if lateral {
                            (6, [1.0, 0.3, 0.2, 0.8, 0.6]) // lateral: shape and position
                        } else {
                            (7, [0.2, 0.2, 0.3, 1.0, 1.0]) // parietal: position and size
                        };
                        if stream == 5 && fy < 0.2 {
                            prf[i] = 7; // hV4 borders V3 ventrally
                        }
                        let groups = [4, 6, 4, 5, 2];
                        let mut weights = Vec::with_capacity(N_ATTRIBUTES);
                        for (g, &count) in groups.iter().enumerate() {
                            for _ in 0..count {
                                weights.push(emphasis[g] * normal.sample(rng));
                            }
                        }
                        (stream, Tuning::Semantic { weights })
                    } else {
                        (0, Tuning::None)
                    };
                    if stream > 0 {
                        streams[i] = stream;
                        nsdgeneral[i] = 1;
                    }
                    let visual = stream > 0;
                    voxels.push(Voxel {
                        coord: [x, y, z],
                        tuning,
                        amplitude: if visual {
                            0.8 + 1.6 * rng.gen::<f32>()
                        } else {
                            0.0
                        },
                        ncsnr: if visual {
                            0.15 + 0.5 * rng.gen::<f32>()
                        } else {
                            0.0
                        },
                    });
                }
            }
        }
        let mm = 1.8;
        let affine = [
            [mm, 0.0, 0.0, -(nx as f64) * mm / 2.0],
            [0.0, mm, 0.0, -(ny as f64) * mm / 2.0],
            [0.0, 0.0, mm, -(nz as f64) * mm / 2.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        Brain {
            shape,
            affine,
            nsdgeneral,
            streams,
            prf_visualrois: prf,
            voxels,
        }
    }
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
    Receptive {
        /// Gaussian weight per grid cell (row-major) and their sum.
        weights: Vec<f32>,
        norm: f32,
        luminance: f32,
        contrast: f32,
    },
    Semantic(&'a [f32]),
    None,
}

impl<'a> Responder<'a> {
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
