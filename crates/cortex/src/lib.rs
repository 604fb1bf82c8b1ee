//! Maps on the cortex, drawn as the papers draw them.
//!
//! - [`mesh`]: the cortex as two hemispheres (inflated and flat meshes, curvature), per-vertex
//!   maps and labels.
//! - [`template`]: fsaverage5, embedded (FreeSurfer data; `data/fsaverage5/LICENSE`), and a
//!   subject's own FreeSurfer folder.
//! - [`colour`]: continuous and categorical colour scales.
//! - [`render`]: PNG pictures (flat map, inflated lateral/medial/ventral views, colour bar).
//! - [`page`]: a self-contained interactive page (rotate, flat ↔ inflated, hover).
//! - [`place`]: a volume's voxels on the template or a subject's surfaces.
//! - [`surface_sampling`]: a volume's values at a surface's vertices, as nilearn's
//!   `vol_to_surf` samples them (what [`place`] draws with).
//! - [`write`](mod@write): maps as `.func.gii` and `.dscalar.nii` for pycortex and Workbench.
#![warn(missing_docs)]

pub mod colour;
pub mod font;
pub mod mesh;
pub mod page;
pub mod place;
pub mod render;
pub mod report;
pub mod surface_sampling;
pub mod template;
pub mod write;
