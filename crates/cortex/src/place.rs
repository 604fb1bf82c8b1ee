//! A volume map's voxels on a cortex: which vertex shows which voxel's value.
//!
//! Three ways, one per kind of data:
//! - [`Placement::sample`]: a real volume on real surfaces (a subject's own, in its scanner
//!   space; or fsaverage5 for a volume in MNI space, as nilearn projects MNI volumes onto
//!   fsaverage): each vertex averages the volume at ten points from the pial to the white
//!   surface (nilearn's `vol_to_surf` with `kind="depth"`), voxels without a value left out.
//! - [`Placement::stretch`]: a simulated brain, which has no anatomy: the template's
//!   mid-thickness surface is stretched over the box of the brain's voxels (each axis on its
//!   own, in mm) and each vertex shows its nearest voxel. Regions the simulator planted in the
//!   volume land on contiguous patches of cortex; where they land is this mapping's choice.
//! - [`Placement::grayordinates`]: CIFTI surface grayordinates already are vertices.

use crate::mesh::{Cortex, Hemi};
use crate::surface_sampling::{vol_to_surf, Sampling, Volume};
use brainrecon_core::geometry::{apply_affine, Affine};

/// The voxels a volume map has values at.
#[derive(Clone, Copy, Debug)]
pub struct VoxelGrid<'a> {
    /// nx, ny, nz.
    pub shape: [usize; 3],
    /// Voxel indices to mm.
    pub affine: &'a Affine,
    /// (i, j, k) of each column of the map.
    pub voxels: &'a [[usize; 3]],
}

/// Points sampled per vertex between the pial and white surfaces.
const DEPTH_SAMPLES: usize = 10;

/// How a cortex shows a map given per voxel (or per grayordinate).
#[derive(Clone, Debug)]
pub enum Placement {
    /// Each vertex shows one column of the map (or none).
    Column {
        /// [left vertices]: the column shown at each vertex.
        left: Vec<Option<u32>>,
        /// [right vertices].
        right: Vec<Option<u32>>,
        /// Columns of the map.
        columns: usize,
    },
    /// Each vertex averages the volume between the pial and white surfaces.
    Sampled {
        /// The volume's extent, nx, ny, nz.
        shape: [usize; 3],
        /// Voxel indices to mm.
        affine: Affine,
        /// (i, j, k) of each column of the map.
        voxels: Vec<[usize; 3]>,
    },
    /// Placed on another cortex (a subject's), then carried to this one vertex by vertex
    /// (through the spheres: each vertex takes its nearest vertex of the other's `sphere.reg`).
    Resampled {
        /// The placement on the other cortex.
        inner: Box<Placement>,
        /// The other cortex.
        source: Box<Cortex>,
        /// [left vertices of this cortex]: the source's vertex.
        left: Vec<u32>,
        /// [right vertices].
        right: Vec<u32>,
    },
}

impl Placement {
    /// A real volume on real surfaces (module documentation).
    pub fn sample(grid: &VoxelGrid) -> Placement {
        Placement::Sampled {
            shape: grid.shape,
            affine: *grid.affine,
            voxels: grid.voxels.to_vec(),
        }
    }

    /// A simulated brain on a template (module documentation).
    pub fn stretch(cortex: &Cortex, grid: &VoxelGrid) -> Placement {
        let centres: Vec<[f64; 3]> = grid
            .voxels
            .iter()
            .map(|&[i, j, k]| apply_affine(grid.affine, [i as f64, j as f64, k as f64]))
            .collect();
        let mid = |hemi: Hemi| -> Vec<[f64; 3]> {
            let h = cortex.hemi(hemi);
            h.white
                .vertices
                .iter()
                .zip(&h.pial.vertices)
                .map(|(w, p)| std::array::from_fn(|a| 0.5 * (w[a] as f64 + p[a] as f64)))
                .collect()
        };
        let (left, right) = (mid(Hemi::Left), mid(Hemi::Right));
        let (from_lo, from_hi) = bounds(left.iter().chain(&right));
        let (to_lo, to_hi) = bounds(centres.iter());
        let stretch = |p: &[f64; 3]| -> [f64; 3] {
            std::array::from_fn(|a| {
                let span = from_hi[a] - from_lo[a];
                let t = if span > 0.0 {
                    (p[a] - from_lo[a]) / span
                } else {
                    0.5
                };
                to_lo[a] + t * (to_hi[a] - to_lo[a])
            })
        };
        let nearest = NearestVoxel::new(grid);
        let place = |points: &[[f64; 3]]| -> Vec<Option<u32>> {
            points
                .iter()
                .map(|p| nearest.find(stretch(p)).map(|c| c as u32))
                .collect()
        };
        Placement::Column {
            left: place(&left),
            right: place(&right),
            columns: grid.voxels.len(),
        }
    }

    /// CIFTI surface grayordinates as vertices: `left[g]` is the left-hemisphere vertex of
    /// column `offset_left + g` (likewise right); other vertices show nothing. `None` when a
    /// vertex index is past the cortex's vertex count.
    pub fn grayordinates(
        cortex: &Cortex,
        left: (usize, &[usize]),
        right: (usize, &[usize]),
        columns: usize,
    ) -> Option<Placement> {
        let place = |hemi: Hemi, (offset, vertices): (usize, &[usize])| {
            let mut out = vec![None; cortex.hemi(hemi).n_vertices()];
            for (g, &v) in vertices.iter().enumerate() {
                let column = offset + g;
                if column >= columns {
                    return None;
                }
                *out.get_mut(v)? = Some(column as u32);
            }
            Some(out)
        };
        Some(Placement::Column {
            left: place(Hemi::Left, left)?,
            right: place(Hemi::Right, right)?,
            columns,
        })
    }

    /// A placement of columns whose vertices are sparser than the mesh's: each vertex of the
    /// cortex proper (the flat map's, where there is one) without a column takes the column of
    /// the nearest vertex that has one (white surface, mm), so regions read as patches as on a
    /// denser mesh. Other placements are returned as they are.
    pub fn filled(self, cortex: &Cortex) -> Placement {
        let Placement::Column {
            left,
            right,
            columns,
        } = self
        else {
            return self;
        };
        let fill = |hemi: Hemi, at: Vec<Option<u32>>| -> Vec<Option<u32>> {
            let h = cortex.hemi(hemi);
            let cortical = match &h.flat {
                Some(flat) => flat.used_vertices(),
                None => vec![true; at.len()],
            };
            let sources: Vec<usize> = (0..at.len()).filter(|&v| at[v].is_some()).collect();
            if sources.is_empty() {
                return at;
            }
            let p = &h.white.vertices;
            (0..at.len())
                .map(|v| {
                    if at[v].is_some() || !cortical[v] {
                        return at[v];
                    }
                    let d = |s: usize| -> f32 { (0..3).map(|a| (p[s][a] - p[v][a]).powi(2)).sum() };
                    let nearest = sources
                        .iter()
                        .copied()
                        .min_by(|&a, &b| d(a).total_cmp(&d(b)).then(a.cmp(&b)))
                        .expect("sources is not empty");
                    at[nearest]
                })
                .collect()
        };
        Placement::Column {
            left: fill(Hemi::Left, left),
            right: fill(Hemi::Right, right),
            columns,
        }
    }

    /// The map's values at each vertex of `cortex`'s hemispheres (NaN where none). `values`
    /// holds one value per voxel (or column); asserted.
    pub fn project(&self, cortex: &Cortex, values: &[f64]) -> (Vec<f64>, Vec<f64>) {
        match self {
            Placement::Column {
                left,
                right,
                columns,
            } => {
                assert_eq!(values.len(), *columns, "one value per column");
                let take = |at: &[Option<u32>]| -> Vec<f64> {
                    at.iter()
                        .map(|c| c.map_or(f64::NAN, |c| values[c as usize]))
                        .collect()
                };
                (take(left), take(right))
            }
            Placement::Resampled {
                inner,
                source,
                left,
                right,
            } => {
                let (l, r) = inner.project(source, values);
                let take = |from: &[f64], at: &[u32]| -> Vec<f64> {
                    at.iter().map(|&v| from[v as usize]).collect()
                };
                (take(&l, left), take(&r, right))
            }
            Placement::Sampled {
                shape,
                affine,
                voxels,
            } => {
                assert_eq!(values.len(), voxels.len(), "one value per voxel");
                let [nx, ny, _] = *shape;
                let n: usize = shape.iter().product();
                // Zero outside the map's voxels, as the map's NIfTI holds (nilearn then
                // interpolates towards it at the map's edge, and so do we).
                let mut data = vec![0f32; n];
                let mut mask = vec![false; n];
                for (&[i, j, k], &v) in voxels.iter().zip(values) {
                    let at = i + nx * (j + ny * k);
                    data[at] = v as f32;
                    mask[at] = v.is_finite();
                }
                let volume = Volume {
                    data: &data,
                    dims: *shape,
                    affine,
                };
                let sample = |hemi: Hemi| -> Vec<f64> {
                    let h = cortex.hemi(hemi);
                    vol_to_surf(
                        &volume,
                        &h.pial.vertices,
                        &h.pial.faces,
                        Sampling::Depth {
                            inner: &h.white.vertices,
                        },
                        DEPTH_SAMPLES,
                        Some(&mask),
                    )
                    .unwrap_or_else(|| vec![f64::NAN; h.n_vertices()])
                };
                (sample(Hemi::Left), sample(Hemi::Right))
            }
        }
    }

    /// Each vertex's column, for categorical maps of columns (`None` for sampled placements,
    /// whose vertices mix voxels).
    pub fn columns(&self, hemi: Hemi) -> Option<&[Option<u32>]> {
        match self {
            Placement::Column { left, right, .. } => Some(match hemi {
                Hemi::Left => left,
                Hemi::Right => right,
            }),
            Placement::Sampled { .. } | Placement::Resampled { .. } => None,
        }
    }
}

/// For each point of `target`, the index of the `source` point in the nearest direction from
/// the origin: two registered spheres (FreeSurfer's `?h.sphere.reg` on fsaverage's sphere),
/// whatever their radii. Found cell by cell in a grid over the unit cube.
pub fn nearest_on_sphere(source: &[[f32; 3]], target: &[[f32; 3]]) -> Vec<u32> {
    let unit = |p: &[f32; 3]| -> [f64; 3] {
        let n = (p.iter().map(|&x| (x as f64).powi(2)).sum::<f64>()).sqrt();
        if n > 0.0 {
            p.map(|x| x as f64 / n)
        } else {
            [0.0; 3]
        }
    };
    if source.is_empty() {
        return vec![0; target.len()];
    }
    // About two source points per occupied cell of the sphere's surface.
    let k = ((source.len() as f64 / 2.0).sqrt().ceil() as i64).clamp(2, 1024);
    let cell = |p: &[f64; 3]| -> [i64; 3] {
        p.map(|x| (((x + 1.0) / 2.0 * k as f64).floor() as i64).clamp(0, k - 1))
    };
    let points: Vec<[f64; 3]> = source.iter().map(unit).collect();
    let mut grid: std::collections::HashMap<[i64; 3], Vec<u32>> = Default::default();
    for (i, p) in points.iter().enumerate() {
        grid.entry(cell(p)).or_default().push(i as u32);
    }
    target
        .iter()
        .map(|t| {
            let t = unit(t);
            let c = cell(&t);
            let width = 2.0 / k as f64;
            search_shells(c, k, width, |cell, best| {
                for &i in grid.get(&cell).into_iter().flatten() {
                    let p = points[i as usize];
                    let d: f64 = (0..3).map(|a| (p[a] - t[a]).powi(2)).sum();
                    offer(best, d, i as usize);
                }
            })
            .map_or(0, |i| i as u32)
        })
        .collect()
}

/// Keeps `(d, i)` in `best` when it is nearer, or as near with a lower index (so ties break
/// the same way whatever order cells are visited in).
fn offer(best: &mut Option<(f64, usize)>, d: f64, i: usize) {
    if best.is_none_or(|(b, bi)| d < b || (d == b && i < bi)) {
        *best = Some((d, i));
    }
}

/// The index of the nearest candidate: `visit` offers ([`offer`]) the candidates of each grid
/// cell, in Chebyshev shells of radius 0, 1, … around `centre`, until no further shell can hold
/// a nearer one (a cell r shells out is at least (r − 1) · `width` away) or past `limit`.
fn search_shells(
    centre: [i64; 3],
    limit: i64,
    width: f64,
    mut visit: impl FnMut([i64; 3], &mut Option<(f64, usize)>),
) -> Option<usize> {
    let mut best = None;
    for r in 0..=limit {
        if let Some((d, _)) = best {
            let reach = (r - 1).max(0) as f64 * width;
            if reach * reach > d {
                break;
            }
        }
        for di in -r..=r {
            for dj in -r..=r {
                for dk in -r..=r {
                    if di.abs().max(dj.abs()).max(dk.abs()) == r {
                        visit([centre[0] + di, centre[1] + dj, centre[2] + dk], &mut best);
                    }
                }
            }
        }
    }
    best.map(|(_, i)| i)
}

/// Smallest and largest coordinate along each axis.
fn bounds<'a>(points: impl Iterator<Item = &'a [f64; 3]>) -> ([f64; 3], [f64; 3]) {
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for p in points {
        for a in 0..3 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    (lo, hi)
}

/// The nearest of a grid's voxels to a point, found shell by shell around the point's voxel.
struct NearestVoxel<'a> {
    grid: &'a VoxelGrid<'a>,
    /// Column of each voxel of the grid, first index fastest (`u32::MAX`: not a map voxel).
    column: Vec<u32>,
    to_voxels: Affine,
    /// mm: a voxel r shells out (in index space) is at least (r − 1) of these away.
    voxel_width: f64,
}

impl<'a> NearestVoxel<'a> {
    fn new(grid: &'a VoxelGrid<'a>) -> Self {
        let [nx, ny, nz] = grid.shape;
        let mut column = vec![u32::MAX; nx * ny * nz];
        for (c, &[i, j, k]) in grid.voxels.iter().enumerate() {
            column[i + nx * (j + ny * k)] = c as u32;
        }
        let to_voxels =
            brainrecon_core::geometry::invert_affine(grid.affine).unwrap_or(*grid.affine);
        // A lower bound of the affine's smallest singular value, oblique or sheared:
        // 1 / ‖A⁻¹‖_F ≤ 1 / σ_max(A⁻¹) = σ_min(A).
        let inverse_norm = (0..3)
            .flat_map(|r| (0..3).map(move |c| (r, c)))
            .map(|(r, c)| to_voxels[r][c].powi(2))
            .sum::<f64>()
            .sqrt();
        let voxel_width = if inverse_norm > 0.0 {
            1.0 / inverse_norm
        } else {
            0.0
        };
        NearestVoxel {
            grid,
            column,
            to_voxels,
            voxel_width,
        }
    }

    /// The column of the voxel nearest `mm` (distance in mm), `None` for an empty grid.
    fn find(&self, mm: [f64; 3]) -> Option<usize> {
        if self.grid.voxels.is_empty() {
            return None;
        }
        let p = apply_affine(&self.to_voxels, mm);
        let [nx, ny, nz] = self.grid.shape;
        let centre: [i64; 3] = std::array::from_fn(|a| p[a].round() as i64);
        let distance = |c: usize| -> f64 {
            let [i, j, k] = self.grid.voxels[c];
            let q = apply_affine(self.grid.affine, [i as f64, j as f64, k as f64]);
            (0..3).map(|a| (q[a] - mm[a]).powi(2)).sum()
        };
        let inside = (0..3).all(|a| (0..self.grid.shape[a] as i64).contains(&centre[a]));
        if !inside {
            // Outside the grid the shells would start far from every voxel: look at each.
            let mut best = None;
            for c in 0..self.grid.voxels.len() {
                offer(&mut best, distance(c), c);
            }
            return best.map(|(_, c)| c);
        }
        let limit = nx.max(ny).max(nz) as i64;
        search_shells(centre, limit, self.voxel_width, |[i, j, k], best| {
            if i < 0 || j < 0 || k < 0 {
                return;
            }
            let (i, j, k) = (i as usize, j as usize, k as usize);
            if i >= nx || j >= ny || k >= nz {
                return;
            }
            let c = self.column[i + nx * (j + ny * k)];
            if c != u32::MAX {
                offer(best, distance(c as usize), c as usize);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::fsaverage5;

    #[test]
    fn stretch_keeps_left_on_left_and_front_in_front() {
        let cortex = fsaverage5().unwrap();
        // A 10 × 12 × 8 block of 3-mm voxels, every voxel in the map.
        let affine: Affine = [
            [3.0, 0.0, 0.0, -15.0],
            [0.0, 3.0, 0.0, -18.0],
            [0.0, 0.0, 3.0, -12.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let voxels: Vec<[usize; 3]> = (0..8)
            .flat_map(|k| (0..12).flat_map(move |j| (0..10).map(move |i| [i, j, k])))
            .collect();
        let grid = VoxelGrid {
            shape: [10, 12, 8],
            affine: &affine,
            voxels: &voxels,
        };
        let placement = Placement::stretch(&cortex, &grid);
        let i_of: Vec<f64> = voxels.iter().map(|v| v[0] as f64).collect();
        let j_of: Vec<f64> = voxels.iter().map(|v| v[1] as f64).collect();
        let (li, ri) = placement.project(&cortex, &i_of);
        assert!(li.iter().all(|&i| i <= 5.0), "left hemisphere on low i");
        assert!(ri.iter().all(|&i| i >= 4.0), "right hemisphere on high i");
        let (lj, _) = placement.project(&cortex, &j_of);
        // The most anterior vertex (largest y) shows a voxel at the front.
        let front = cortex
            .left
            .white
            .vertices
            .iter()
            .enumerate()
            .max_by(|a, b| a.1[1].total_cmp(&b.1[1]))
            .unwrap()
            .0;
        assert!(lj[front] >= 10.0, "{}", lj[front]);
    }

    #[test]
    fn sampling_a_constant_volume_gives_the_constant_inside_and_nan_outside() {
        let cortex = fsaverage5().unwrap();
        // 4-mm voxels over the left hemisphere only (x < 0).
        let affine: Affine = [
            [4.0, 0.0, 0.0, -80.0],
            [0.0, 4.0, 0.0, -120.0],
            [0.0, 0.0, 4.0, -60.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let shape = [20, 50, 40];
        let voxels: Vec<[usize; 3]> = (0..40)
            .flat_map(|k| (0..50).flat_map(move |j| (0..20).map(move |i| [i, j, k])))
            .collect();
        let grid = VoxelGrid {
            shape,
            affine: &affine,
            voxels: &voxels,
        };
        let values = vec![2.5; voxels.len()];
        let (left, right) = Placement::sample(&grid).project(&cortex, &values);
        let finite = left.iter().filter(|v| v.is_finite()).count();
        assert!(finite > 10_000, "{finite}");
        assert!(left
            .iter()
            .filter(|v| v.is_finite())
            .all(|v| (v - 2.5).abs() < 1e-6));
        assert!(right.iter().filter(|v| v.is_finite()).count() < 200);
    }

    #[test]
    fn nearest_voxel_matches_brute_force_on_a_sparse_oblique_grid() {
        // Sheared and rotated 2 × 3 × 4 mm voxels; every seventh voxel of a 12 × 10 × 8 grid.
        let affine: Affine = [
            [1.8, 0.9, 0.0, -10.0],
            [-0.6, 2.7, 0.8, 5.0],
            [0.0, -0.3, 4.0, 2.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let voxels: Vec<[usize; 3]> = (0..12 * 10 * 8)
            .filter(|v| v % 7 == 3)
            .map(|v| [v % 12, (v / 12) % 10, v / 120])
            .collect();
        let grid = VoxelGrid {
            shape: [12, 10, 8],
            affine: &affine,
            voxels: &voxels,
        };
        let nearest = NearestVoxel::new(&grid);
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for _ in 0..400 {
            let p = [
                next() * 60.0 - 20.0,
                next() * 50.0 - 10.0,
                next() * 50.0 - 10.0,
            ];
            let d = |c: usize| {
                let [i, j, k] = voxels[c];
                let q = apply_affine(&affine, [i as f64, j as f64, k as f64]);
                (0..3).map(|a| (q[a] - p[a]).powi(2)).sum::<f64>()
            };
            let brute = (0..voxels.len())
                .min_by(|&a, &b| d(a).total_cmp(&d(b)))
                .unwrap();
            let found = nearest.find(p).unwrap();
            assert!(
                d(found) <= d(brute),
                "{p:?}: {found} ({}) vs {brute} ({})",
                d(found),
                d(brute)
            );
        }
    }

    #[test]
    fn nearest_on_sphere_matches_brute_force() {
        let source = crate::template::fsaverage5_mesh("sphere", Hemi::Left).unwrap();
        // Targets: a rotated copy at another radius, so the nearest is rarely the same index.
        let (c, s) = (0.3f32.cos(), 0.3f32.sin());
        let target: Vec<[f32; 3]> = source.vertices[..500]
            .iter()
            .map(|p| {
                [
                    2.0 * (c * p[0] - s * p[1]),
                    2.0 * (s * p[0] + c * p[1]),
                    2.0 * p[2],
                ]
            })
            .collect();
        let found = nearest_on_sphere(&source.vertices, &target);
        let unit = |p: &[f32; 3]| {
            let n = p.iter().map(|x| x * x).sum::<f32>().sqrt();
            p.map(|x| x / n)
        };
        for (t, &f) in target.iter().zip(&found) {
            let t = unit(t);
            let d = |i: usize| {
                let p = unit(&source.vertices[i]);
                (0..3).map(|a| (p[a] - t[a]).powi(2)).sum::<f32>()
            };
            let brute = (0..source.vertices.len())
                .min_by(|&a, &b| d(a).total_cmp(&d(b)))
                .unwrap();
            assert!(d(f as usize) <= d(brute) + 1e-7, "{f} vs {brute}");
        }
    }

    #[test]
    fn grayordinates_refuse_vertices_past_the_mesh() {
        let cortex = fsaverage5().unwrap();
        let ok = Placement::grayordinates(&cortex, (0, &[0, 5]), (2, &[7]), 3).unwrap();
        let (l, r) = ok.project(&cortex, &[1.0, 2.0, 3.0]);
        assert_eq!((l[0], l[5], r[7]), (1.0, 2.0, 3.0));
        assert!(l[1].is_nan());
        assert!(Placement::grayordinates(&cortex, (0, &[20_000]), (1, &[]), 1).is_none());
        // Filled: every cortical vertex shows one of the two columns, the medial wall none.
        let filled = ok.filled(&cortex);
        let (l, r) = filled.project(&cortex, &[1.0, 2.0, 3.0]);
        let cortical = crate::template::fsaverage5_cortex_by_y(Hemi::Left).unwrap();
        assert!(cortical
            .iter()
            .all(|&v| l[v as usize] == 1.0 || l[v as usize] == 2.0));
        assert!(
            l.iter().filter(|v| v.is_nan()).count() > 500,
            "the medial wall stays empty"
        );
        assert!(r.iter().filter(|v| **v == 3.0).count() > 9_000);
    }
}
