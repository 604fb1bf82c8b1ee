//! A volume's voxel grid and values, as the realignment reads them.

use thiserror::Error;

/// Why a volume cannot be used.
#[derive(Debug, Error, PartialEq)]
pub enum GridError {
    /// An axis of the grid has no voxels.
    #[error("the grid has a zero extent: {shape:?}")]
    Empty {
        /// The grid's extent (X, Y, Z).
        shape: [usize; 3],
    },
    /// The values do not fill the grid.
    #[error("{values} values for a grid of {shape:?} ({expected} voxels)")]
    Length {
        /// The grid's extent (X, Y, Z).
        shape: [usize; 3],
        /// Values given.
        values: usize,
        /// Voxels of the grid.
        expected: usize,
    },
    /// The affine's 3×3 linear part cannot be inverted.
    #[error("the voxel-to-world affine is singular (determinant {determinant:e})")]
    SingularAffine {
        /// Determinant of the linear part.
        determinant: f64,
    },
}

/// A 3-D voxel grid: its extent (X, Y, Z; X varies fastest in memory, as in NIfTI) and the
/// row-major 4×4 affine from voxel indices to world millimetres.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// Voxels along X, Y, Z.
    pub shape: [usize; 3],
    /// Voxel (x, y, z, 1) → world millimetres, row-major.
    pub affine: [[f64; 4]; 4],
}

impl Grid {
    /// The grid with voxel sizes `voxel_mm` and its first voxel at `origin_mm`, axes along
    /// the world's.
    pub fn axis_aligned(shape: [usize; 3], voxel_mm: [f64; 3], origin_mm: [f64; 3]) -> Grid {
        let mut affine = [[0.0; 4]; 4];
        for axis in 0..3 {
            affine[axis][axis] = voxel_mm[axis];
            affine[axis][3] = origin_mm[axis];
        }
        affine[3][3] = 1.0;
        Grid { shape, affine }
    }

    /// Number of voxels.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether any axis has no voxels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Linear index of voxel (x, y, z).
    pub fn index(&self, x: usize, y: usize, z: usize) -> usize {
        x + self.shape[0] * (y + self.shape[1] * z)
    }

    /// World coordinates (mm) of the voxel at linear index `index`.
    pub fn world_of_index(&self, index: usize) -> [f64; 3] {
        let [nx, ny, _] = self.shape;
        self.world([
            (index % nx) as f64,
            ((index / nx) % ny) as f64,
            (index / (nx * ny)) as f64,
        ])
    }

    /// World coordinates (mm) of a (fractional) voxel position.
    pub fn world(&self, voxel: [f64; 3]) -> [f64; 3] {
        let a = &self.affine;
        std::array::from_fn(|r| {
            a[r][0] * voxel[0] + a[r][1] * voxel[1] + a[r][2] * voxel[2] + a[r][3]
        })
    }

    /// Whether `other`'s voxels lie where this grid's do: affines equal to 0.001 (mm, or
    /// mm per voxel), as a header's printed decimals allow.
    pub fn same_placement(&self, other: &Grid) -> bool {
        (0..3).all(|r| (0..4).all(|c| (self.affine[r][c] - other.affine[r][c]).abs() <= 1e-3))
    }

    /// The world position of the grid's centre.
    pub fn centre(&self) -> [f64; 3] {
        self.world(self.shape.map(|n| (n as f64 - 1.0) / 2.0))
    }

    /// Length in mm of one voxel step along each axis.
    pub fn voxel_sizes(&self) -> [f64; 3] {
        std::array::from_fn(|c| {
            (0..3)
                .map(|r| self.affine[r][c].powi(2))
                .sum::<f64>()
                .sqrt()
        })
    }

    /// The 3×3 inverse of the affine's linear part and its translation: world → voxel is
    /// `inverse · (w − translation)`.
    pub fn world_to_voxel(&self) -> Result<WorldToVoxel, GridError> {
        let l: [[f64; 3]; 3] = std::array::from_fn(|r| std::array::from_fn(|c| self.affine[r][c]));
        // The ground crate's rule (relative to the matrix's scale); the determinant names it.
        let inverse =
            brainrecon_core::geometry::invert3(&l).ok_or_else(|| GridError::SingularAffine {
                determinant: brainrecon_core::geometry::det3(&l),
            })?;
        Ok(WorldToVoxel {
            inverse,
            translation: std::array::from_fn(|r| self.affine[r][3]),
        })
    }
}

/// The map from world millimetres to voxel positions of one grid.
#[derive(Debug, Clone, Copy)]
pub struct WorldToVoxel {
    /// Inverse of the affine's 3×3 linear part.
    pub inverse: [[f64; 3]; 3],
    /// The affine's translation (mm): the world position of voxel (0, 0, 0).
    pub translation: [f64; 3],
}

impl WorldToVoxel {
    /// The (fractional) voxel position of world point `world` (mm).
    pub fn voxel(&self, world: [f64; 3]) -> [f64; 3] {
        let d = [
            world[0] - self.translation[0],
            world[1] - self.translation[1],
            world[2] - self.translation[2],
        ];
        let m = &self.inverse;
        std::array::from_fn(|r| m[r][0] * d[0] + m[r][1] * d[1] + m[r][2] * d[2])
    }
}

/// Values on a grid (X fastest).
#[derive(Debug, Clone)]
pub struct Image {
    /// Where the values lie.
    pub grid: Grid,
    /// One value per voxel, X fastest.
    pub values: Vec<f32>,
}

impl Image {
    /// Checks that `values` fill `grid` and that its affine can be inverted.
    pub fn new(grid: Grid, values: Vec<f32>) -> Result<Image, GridError> {
        if grid.is_empty() {
            return Err(GridError::Empty { shape: grid.shape });
        }
        if values.len() != grid.len() {
            return Err(GridError::Length {
                shape: grid.shape,
                values: values.len(),
                expected: grid.len(),
            });
        }
        grid.world_to_voxel()?;
        Ok(Image { grid, values })
    }

    /// Trilinear interpolation at a voxel position; `None` outside the grid (beyond the
    /// centres of its outer voxels).
    pub fn sample(&self, voxel: [f64; 3]) -> Option<f64> {
        let [nx, ny, nz] = self.grid.shape;
        let mut base = [0usize; 3];
        let mut frac = [0.0f64; 3];
        for axis in 0..3 {
            let n = self.grid.shape[axis];
            let v = voxel[axis];
            if !(v >= 0.0 && v <= (n - 1) as f64) {
                return None;
            }
            let b = (v.floor() as usize).min(n.saturating_sub(2));
            base[axis] = b;
            frac[axis] = v - b as f64;
        }
        let step = [
            usize::from(nx > 1),
            if ny > 1 { nx } else { 0 },
            if nz > 1 { nx * ny } else { 0 },
        ];
        let i0 = self.grid.index(base[0], base[1], base[2]);
        let at = |dx: usize, dy: usize, dz: usize| -> f64 {
            self.values[i0 + dx * step[0] + dy * step[1] + dz * step[2]] as f64
        };
        let lerp = |a: f64, b: f64, t: f64| a + (b - a) * t;
        let [fx, fy, fz] = frac;
        let c00 = lerp(at(0, 0, 0), at(1, 0, 0), fx);
        let c10 = lerp(at(0, 1, 0), at(1, 1, 0), fx);
        let c01 = lerp(at(0, 0, 1), at(1, 0, 1), fx);
        let c11 = lerp(at(0, 1, 1), at(1, 1, 1), fx);
        Some(lerp(lerp(c00, c10, fy), lerp(c01, c11, fy), fz))
    }

    /// The image smoothed by an isotropic Gaussian of `fwhm_mm` (separable, in each axis's
    /// voxel units; weights renormalised at the edges so borders do not darken). 0 returns a
    /// copy.
    pub fn smoothed(&self, fwhm_mm: f64) -> Image {
        let mut values = self.values.clone();
        if fwhm_mm > 0.0 {
            let sizes = self.grid.voxel_sizes();
            for (axis, &size) in sizes.iter().enumerate() {
                let sigma = fwhm_mm / (8.0 * std::f64::consts::LN_2).sqrt() / size;
                values = smooth_axis(&values, self.grid.shape, axis, sigma);
            }
        }
        Image {
            grid: self.grid.clone(),
            values,
        }
    }
}

/// Gaussian of standard deviation `sigma` (voxels) along one axis of a (X, Y, Z) array.
fn smooth_axis(values: &[f32], shape: [usize; 3], axis: usize, sigma: f64) -> Vec<f32> {
    if sigma < 0.05 || shape[axis] < 2 {
        return values.to_vec();
    }
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f64> = (-radius..=radius)
        .map(|k| (-0.5 * (k as f64 / sigma).powi(2)).exp())
        .collect();
    let stride = match axis {
        0 => 1,
        1 => shape[0],
        _ => shape[0] * shape[1],
    };
    let n = shape[axis] as isize;
    let mut out = vec![0.0f32; values.len()];
    for (i, o) in out.iter_mut().enumerate() {
        let pos = ((i / stride) % shape[axis]) as isize;
        let (mut sum, mut weight) = (0.0, 0.0);
        for (j, &w) in kernel.iter().enumerate() {
            let p = pos + j as isize - radius;
            if p >= 0 && p < n {
                let at = (i as isize + (p - pos) * stride as isize) as usize;
                sum += w * values[at] as f64;
                weight += w;
            }
        }
        *o = (sum / weight) as f32;
    }
    out
}
