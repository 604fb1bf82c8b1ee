//! A volume's values at the vertices of a cortical surface, as nilearn's `vol_to_surf` samples
//! them with `interpolation="linear"`:
//!
//! - **line** (`kind="line"`): `n` points on the vertex's outer normal (the normalised sum of
//!   its faces' unit normals), from `+radius` to `−radius` mm;
//! - **depth** (`kind="depth"`, nilearn's choice when an inner mesh is given): `n` points from
//!   the outer surface (pial, t = 0) to the inner one (white, t = 1), `(1 − t)·outer + t·inner`.
//!
//! Each point goes through the inverse affine to voxel coordinates (voxel centres at integer
//! indices). A point is kept when every coordinate is in `[0, size)` and, with a mask, the mask is
//! set at the coordinates' floor; its value is trilinear over the voxel grid, extrapolated
//! linearly past the last voxel centre (scipy's `RegularGridInterpolator` with
//! `fill_value=None`). A vertex's value is the mean of its kept points that are not NaN, NaN when
//! there are none.

use brainrecon_core::geometry::{apply_affine, invert_affine, Affine};

/// A volume: `data[i + nx·(j + ny·k)]` is voxel (i, j, k) (NIfTI's order).
#[derive(Clone, Copy, Debug)]
pub struct Volume<'a> {
    /// The values, first index fastest.
    pub data: &'a [f32],
    /// nx, ny, nz.
    pub dims: [usize; 3],
    /// Voxel indices to mm.
    pub affine: &'a Affine,
}

/// Where each vertex's points lie.
#[derive(Clone, Copy, Debug)]
pub enum Sampling<'a> {
    /// Along the outer normal, from `+radius` to `−radius` mm.
    Line {
        /// Half the segment's length, mm (nilearn's default 3).
        radius: f64,
    },
    /// From the mesh (outer, pial) to `inner` (white), vertex by vertex.
    Depth {
        /// The inner surface's vertices, one per vertex of the mesh.
        inner: &'a [[f32; 3]],
    },
}

/// Unit outer normals of a mesh's vertices: the sum of the unit normals of the faces around each
/// vertex (`cross(v1 − v0, v2 − v0)`), normalised; zero where there is none.
/// Faces naming a vertex past the mesh's are left out.
pub fn vertex_normals(vertices: &[[f32; 3]], faces: &[[u32; 3]]) -> Vec<[f64; 3]> {
    let mut normals = vec![[0.0f64; 3]; vertices.len()];
    let p = |v: u32| vertices[v as usize].map(f64::from);
    for face in faces
        .iter()
        .filter(|f| f.iter().all(|&v| (v as usize) < vertices.len()))
    {
        let [a, b, c] = face.map(p);
        let (u, w) = (sub(b, a), sub(c, a));
        let n = unit([
            u[1] * w[2] - u[2] * w[1],
            u[2] * w[0] - u[0] * w[2],
            u[0] * w[1] - u[1] * w[0],
        ]);
        for &v in face {
            let acc = &mut normals[v as usize];
            for d in 0..3 {
                acc[d] += n[d];
            }
        }
    }
    normals.into_iter().map(unit).collect()
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn unit(v: [f64; 3]) -> [f64; 3] {
    let norm = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    if norm > 0.0 {
        v.map(|x| x / norm)
    } else {
        v
    }
}

/// `n` evenly spaced values from `a` to `b` (numpy's `linspace`).
fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![a],
        _ => (0..n)
            .map(|i| a + (b - a) * i as f64 / (n - 1) as f64)
            .collect(),
    }
}

/// The volume's values at `vertices` ([`module`](self) documentation): one value per vertex.
/// `faces` give the normals of [`Sampling::Line`]; `mask`, in the volume's order, keeps points
/// whose floor voxel is set. `None` when the affine is singular, or `data`, `mask` or `inner`
/// has another length than the dims or the vertices ask.
pub fn vol_to_surf(
    volume: &Volume,
    vertices: &[[f32; 3]],
    faces: &[[u32; 3]],
    sampling: Sampling,
    n_samples: usize,
    mask: Option<&[bool]>,
) -> Option<Vec<f64>> {
    let [nx, ny, nz] = volume.dims;
    let voxels = nx.checked_mul(ny)?.checked_mul(nz)?;
    if volume.data.len() != voxels || mask.is_some_and(|m| m.len() != voxels) {
        return None;
    }
    let to_voxels = invert_affine(volume.affine)?;
    let normals = match sampling {
        Sampling::Line { .. } => vertex_normals(vertices, faces),
        Sampling::Depth { inner } if inner.len() == vertices.len() => Vec::new(),
        Sampling::Depth { .. } => return None,
    };
    let steps = match sampling {
        Sampling::Line { radius } => linspace(radius, -radius, n_samples),
        Sampling::Depth { .. } => linspace(0.0, 1.0, n_samples),
    };
    let out = vertices
        .iter()
        .enumerate()
        .map(|(v, &point)| {
            let point = point.map(f64::from);
            let (mut sum, mut kept) = (0.0, 0usize);
            for &s in &steps {
                let mm = match sampling {
                    Sampling::Line { .. } => std::array::from_fn(|d| point[d] + s * normals[v][d]),
                    Sampling::Depth { inner } => {
                        let q = inner[v].map(f64::from);
                        std::array::from_fn(|d| (1.0 - s) * point[d] + s * q[d])
                    }
                };
                let x = apply_affine(&to_voxels, mm);
                if let Some(value) = sample(volume, mask, x) {
                    if !value.is_nan() {
                        sum += value;
                        kept += 1;
                    }
                }
            }
            if kept == 0 {
                f64::NAN
            } else {
                sum / kept as f64
            }
        })
        .collect();
    Some(out)
}

/// The trilinear value at voxel coordinates `x`, or None when `x` is outside `[0, size)` or
/// masked out.
fn sample(volume: &Volume, mask: Option<&[bool]>, x: [f64; 3]) -> Option<f64> {
    let [nx, ny, nz] = volume.dims;
    if (0..3).any(|d| !(x[d] >= 0.0 && x[d] < volume.dims[d] as f64)) {
        return None;
    }
    let at = |i: usize, j: usize, k: usize| i + nx * (j + ny * k);
    if let Some(mask) = mask {
        let f = x.map(|c| c.floor() as usize);
        if !mask.get(at(f[0], f[1], f[2])).copied().unwrap_or(false) {
            return None;
        }
    }
    // the cell's lower corner and the fractions: the last cell extrapolates past its centre
    let corner = |c: f64, n: usize| -> (usize, f64) {
        if n < 2 {
            return (0, 0.0);
        }
        let i = (c.floor() as usize).min(n - 2);
        (i, c - i as f64)
    };
    let (i, ti) = corner(x[0], nx);
    let (j, tj) = corner(x[1], ny);
    let (k, tk) = corner(x[2], nz);
    let step = |n: usize| usize::from(n > 1);
    let (di, dj, dk) = (step(nx), step(ny), step(nz));
    let v = |a: usize, b: usize, c: usize| f64::from(volume.data[at(i + a, j + b, k + c)]);
    let lerp = |a: f64, b: f64, t: f64| a + (b - a) * t;
    let face = |c: usize| {
        lerp(
            lerp(v(0, 0, c), v(di, 0, c), ti),
            lerp(v(0, dj, c), v(di, dj, c), ti),
            tj,
        )
    };
    Some(lerp(face(0), face(dk), tk))
}
