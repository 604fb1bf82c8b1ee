//! The cortex as the pictures need it: per hemisphere an inflated mesh for 3-D views, a flat
//! mesh for the flat map and the curvature underneath, plus per-vertex maps and labels.

use crate::colour::Scale;

/// Which hemisphere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hemi {
    /// The left hemisphere (`lh`).
    Left,
    /// The right hemisphere (`rh`).
    Right,
}

impl Hemi {
    /// Left, then right: the order maps and files list them in.
    pub const BOTH: [Hemi; 2] = [Hemi::Left, Hemi::Right];

    /// `lh` / `rh`, FreeSurfer's prefixes.
    pub fn prefix(self) -> &'static str {
        match self {
            Hemi::Left => "lh",
            Hemi::Right => "rh",
        }
    }

    /// `L` / `R`, BIDS's `hemi-` values.
    pub fn bids(self) -> &'static str {
        match self {
            Hemi::Left => "L",
            Hemi::Right => "R",
        }
    }
}

/// A triangle mesh: vertices in mm, faces as 0-based vertex indices.
#[derive(Clone, Debug, PartialEq)]
pub struct Mesh {
    /// [vertices, 3].
    pub vertices: Vec<[f32; 3]>,
    /// [faces, 3].
    pub faces: Vec<[u32; 3]>,
}

impl Mesh {
    /// The smallest and largest coordinate along each axis over the vertices that faces use.
    pub fn used_bounds(&self) -> ([f32; 3], [f32; 3]) {
        used_bounds(&self.vertices, &self.faces)
    }

    /// `[vertices]`: whether a face uses the vertex (a flat map's cut-away vertices do not).
    pub fn used_vertices(&self) -> Vec<bool> {
        let mut used = vec![false; self.vertices.len()];
        for face in &self.faces {
            for &v in face {
                if let Some(u) = used.get_mut(v as usize) {
                    *u = true;
                }
            }
        }
        used
    }
}

/// [`Mesh::used_bounds`] of vertices and faces held apart (NaN coordinates are passed over;
/// infinite bounds when no face uses a vertex).
pub fn used_bounds(vertices: &[[f32; 3]], faces: &[[u32; 3]]) -> ([f32; 3], [f32; 3]) {
    let mut lo = [f32::INFINITY; 3];
    let mut hi = [f32::NEG_INFINITY; 3];
    for face in faces {
        for &v in face {
            let p = vertices[v as usize];
            for a in 0..3 {
                lo[a] = lo[a].min(p[a]);
                hi[a] = hi[a].max(p[a]);
            }
        }
    }
    (lo, hi)
}

/// One hemisphere. Every mesh has the same vertices (vertex i is the same point of cortex).
#[derive(Clone, Debug)]
pub struct Hemisphere {
    /// The folded cortex's mid-thickness or white surface, for placing data (mm).
    pub white: Mesh,
    /// The pial surface (mm), with `white` bounding the grey matter.
    pub pial: Mesh,
    /// The inflated surface, for 3-D views.
    pub inflated: Mesh,
    /// The flat map: x, y in mm, z = 0; its faces cover only the vertices that are on the map
    /// (the medial wall and the cuts are left out), the others keep coordinates no face uses.
    pub flat: Option<Mesh>,
    /// FreeSurfer's curvature, positive in sulci; drawn as two greys underneath the data.
    pub curvature: Vec<f32>,
}

impl Hemisphere {
    /// Number of vertices (the same in every mesh).
    pub fn n_vertices(&self) -> usize {
        self.white.vertices.len()
    }
}

/// Both hemispheres of a cortex.
#[derive(Clone, Debug)]
pub struct Cortex {
    /// The cortex's name (`fsaverage5`, or a subject's).
    pub name: String,
    /// The left hemisphere.
    pub left: Hemisphere,
    /// The right hemisphere.
    pub right: Hemisphere,
}

impl Cortex {
    /// One hemisphere.
    pub fn hemi(&self, hemi: Hemi) -> &Hemisphere {
        match hemi {
            Hemi::Left => &self.left,
            Hemi::Right => &self.right,
        }
    }

    /// Vertices in the left hemisphere, then the right.
    pub fn n_vertices(&self) -> [usize; 2] {
        [self.left.n_vertices(), self.right.n_vertices()]
    }

    /// Whether both hemispheres have flat maps.
    pub fn has_flat(&self) -> bool {
        self.left.flat.is_some() && self.right.flat.is_some()
    }
}

/// One value per vertex of each hemisphere (NaN: no value there), with the scale it is drawn in.
#[derive(Clone, Debug)]
pub struct SurfaceMap {
    /// The map's title (`test r`, `best band`, …).
    pub name: String,
    /// [left vertices].
    pub left: Vec<f64>,
    /// [right vertices].
    pub right: Vec<f64>,
    /// How the values are coloured.
    pub scale: Scale,
}

impl SurfaceMap {
    /// The values of one hemisphere, one per vertex.
    pub fn values(&self, hemi: Hemi) -> &[f64] {
        match hemi {
            Hemi::Left => &self.left,
            Hemi::Right => &self.right,
        }
    }
}

/// Regions given per vertex (0 or less: in none), with their names, for outlines and hover.
#[derive(Clone, Debug, Default)]
pub struct VertexLabels {
    /// The atlas's name (`streams`, `prf-visualrois`, …).
    pub name: String,
    /// [left vertices].
    pub left: Vec<i32>,
    /// [right vertices].
    pub right: Vec<i32>,
    /// (value, name) of each region.
    pub names: Vec<(i32, String)>,
}

impl VertexLabels {
    /// The labels of one hemisphere, one per vertex.
    pub fn values(&self, hemi: Hemi) -> &[i32] {
        match hemi {
            Hemi::Left => &self.left,
            Hemi::Right => &self.right,
        }
    }

    /// The name of region `value`, if it has one.
    pub fn name_of(&self, value: i32) -> Option<&str> {
        self.names
            .iter()
            .find(|(v, _)| *v == value)
            .map(|(_, n)| n.as_str())
    }
}
