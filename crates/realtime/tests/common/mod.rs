//! A smooth head phantom for the realignment and session tests: Gaussian blobs inside a
//! soft-edged ellipsoid, evaluated exactly at each voxel's (moved) position.
#![allow(dead_code)]
use brainrecon_realtime::grid::{Grid, Image};
use brainrecon_realtime::rigid::Rigid;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// A head-like intensity field (world mm → intensity).
pub struct Phantom {
    pub blobs: Vec<([f64; 3], [f64; 3], f64)>,
}

impl Phantom {
    pub fn new(seed: u64) -> Phantom {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let blobs = (0..24)
            .map(|_| {
                let centre = [
                    rng.gen_range(-45.0..45.0),
                    rng.gen_range(-55.0..55.0),
                    rng.gen_range(-35.0..35.0),
                ];
                let width = [
                    rng.gen_range(5.0..16.0),
                    rng.gen_range(5.0..16.0),
                    rng.gen_range(5.0..16.0),
                ];
                (centre, width, rng.gen_range(0.2..1.0))
            })
            .collect();
        Phantom { blobs }
    }

    pub fn at(&self, w: [f64; 3]) -> f64 {
        // A brain-sized ellipsoid with a soft edge, and structure inside it.
        let r = ((w[0] / 65.0).powi(2) + (w[1] / 80.0).powi(2) + (w[2] / 55.0).powi(2)).sqrt();
        let envelope = 1.0 / (1.0 + ((r - 1.0) / 0.04).exp());
        let inside: f64 = self
            .blobs
            .iter()
            .map(|(c, s, a)| {
                let d2: f64 = (0..3).map(|i| ((w[i] - c[i]) / s[i]).powi(2)).sum();
                a * (-0.5 * d2).exp()
            })
            .sum();
        100.0 * envelope * (1.0 + inside)
    }

    /// The phantom seen on `grid` after the head moved by `motion` (reference world → world).
    pub fn image(&self, grid: &Grid, motion: &Rigid, noise_sd: f64, seed: u64) -> Image {
        field_image(grid, motion, noise_sd, seed, |w| self.at(w))
    }
}

/// Any field of the head's own (reference) coordinates seen on `grid` after the head moved
/// by `motion`, plus Gaussian noise of `noise_sd`.
pub fn field_image(
    grid: &Grid,
    motion: &Rigid,
    noise_sd: f64,
    seed: u64,
    field: impl Fn([f64; 3]) -> f64,
) -> Image {
    let back = motion.inverse();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, 1.0).unwrap();
    let [nx, ny, nz] = grid.shape;
    let mut values = vec![0.0f32; grid.len()];
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let w = grid.world([x as f64, y as f64, z as f64]);
                let v = field(back.apply(w)) + noise_sd * normal.sample(&mut rng);
                values[grid.index(x, y, z)] = v as f32;
            }
        }
    }
    Image::new(grid.clone(), values).unwrap()
}

/// An EPI-like grid: 64 × 64 × 32 voxels of 3 × 3 × 3.5 mm centred on the origin.
pub fn epi_grid() -> Grid {
    let shape = [64, 64, 32];
    let voxel = [3.0, 3.0, 3.5];
    let origin = std::array::from_fn(|i| -(shape[i] as f64 - 1.0) / 2.0 * voxel[i]);
    Grid::axis_aligned(shape, voxel, origin)
}
