//! Where a cortex comes from: fsaverage5, embedded in the binary (FreeSurfer data, as nilearn
//! 0.14.1 ships it; licence in `data/fsaverage5/LICENSE`), or a subject's FreeSurfer folder.

use crate::mesh::{Cortex, Hemi, Hemisphere, Mesh, VertexLabels};
use brainrecon_core::error::{DataError, Result};
use brainrecon_formats::fs_surface::{read_morph, read_patch, read_surface, Surface};
use brainrecon_formats::gifti::parse_gifti_bytes;
use brainrecon_formats::mgh::read_mgh;
use std::path::{Path, PathBuf};

/// Vertices per fsaverage5 hemisphere (an icosahedron subdivided five times).
pub const FSAVERAGE5_VERTICES: usize = 10_242;

macro_rules! embedded {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/data/fsaverage5/",
                $name
            )) as &[u8],
        )
    };
}

/// (file name, bytes) of each embedded fsaverage5 file.
const FILES: [(&str, &[u8]); 14] = [
    embedded!("white_left.gii.gz"),
    embedded!("white_right.gii.gz"),
    embedded!("pial_left.gii.gz"),
    embedded!("pial_right.gii.gz"),
    embedded!("infl_left.gii.gz"),
    embedded!("infl_right.gii.gz"),
    embedded!("flat_left.gii.gz"),
    embedded!("flat_right.gii.gz"),
    embedded!("sphere_left.gii.gz"),
    embedded!("sphere_right.gii.gz"),
    embedded!("curv_left.gii.gz"),
    embedded!("curv_right.gii.gz"),
    embedded!("sulc_left.gii.gz"),
    embedded!("sulc_right.gii.gz"),
];

fn side(hemi: Hemi) -> &'static str {
    match hemi {
        Hemi::Left => "left",
        Hemi::Right => "right",
    }
}

fn embedded_file(kind: &str, hemi: Hemi) -> (PathBuf, &'static [u8]) {
    let name = format!("{kind}_{}.gii.gz", side(hemi));
    let bytes = FILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| *b)
        .expect("every embedded fsaverage5 file is listed");
    (
        PathBuf::from(format!("<embedded fsaverage5>/{name}")),
        bytes,
    )
}

fn mesh_of(surface: Surface) -> Mesh {
    Mesh {
        vertices: surface.vertices,
        faces: surface.faces,
    }
}

/// One of fsaverage5's meshes (`white`, `pial`, `infl`, `flat`, `sphere`).
pub fn fsaverage5_mesh(kind: &str, hemi: Hemi) -> Result<Mesh> {
    let (path, bytes) = embedded_file(kind, hemi);
    let gifti = parse_gifti_bytes(&path, bytes)?;
    Ok(mesh_of(gifti.surface(&path)?))
}

/// One of fsaverage5's per-vertex shapes (`curv`, `sulc`).
pub fn fsaverage5_shape(kind: &str, hemi: Hemi) -> Result<Vec<f32>> {
    let (path, bytes) = embedded_file(kind, hemi);
    let gifti = parse_gifti_bytes(&path, bytes)?;
    let array = gifti.arrays.first().ok_or_else(|| {
        DataError::invalid(&path, "DataArray", "one array of shape values", "none")
    })?;
    Ok(array.data.iter().map(|&v| v as f32).collect())
}

/// fsaverage5: white, pial, inflated and flat meshes and curvature of both hemispheres.
pub fn fsaverage5() -> Result<Cortex> {
    let hemisphere = |hemi| -> Result<Hemisphere> {
        Ok(Hemisphere {
            white: fsaverage5_mesh("white", hemi)?,
            pial: fsaverage5_mesh("pial", hemi)?,
            inflated: fsaverage5_mesh("infl", hemi)?,
            flat: Some(fsaverage5_mesh("flat", hemi)?),
            curvature: fsaverage5_shape("curv", hemi)?,
        })
    };
    Ok(Cortex {
        name: "fsaverage5".into(),
        left: hemisphere(Hemi::Left)?,
        right: hemisphere(Hemi::Right)?,
    })
}

/// fsaverage5's cortical vertices of one hemisphere (those its flat map draws: the medial wall
/// left out), from the most posterior to the most anterior (white surface y, ties by index).
pub fn fsaverage5_cortex_by_y(hemi: Hemi) -> Result<Vec<u32>> {
    let flat = fsaverage5_mesh("flat", hemi)?;
    let white = fsaverage5_mesh("white", hemi)?;
    let used = flat.used_vertices();
    let mut order: Vec<u32> = (0..used.len() as u32)
        .filter(|&v| used[v as usize])
        .collect();
    order.sort_by(|&a, &b| {
        white.vertices[a as usize][1]
            .total_cmp(&white.vertices[b as usize][1])
            .then(a.cmp(&b))
    });
    Ok(order)
}

/// A subject's cortex from its FreeSurfer folder (`SUBJECT/surf/`): `?h.white`, `?h.pial`,
/// `?h.inflated`, `?h.curv`, and the flat patch `?h.full.flat.patch.3d` where present.
///
/// Coordinates are moved from FreeSurfer's surface RAS to scanner RAS by the surfaces' `cras`,
/// so that volumes in the subject's scanner space sample them. A file whose vertex count differs
/// from `?h.white`'s is refused, naming it.
pub fn freesurfer_subject(subject_dir: &Path) -> Result<Cortex> {
    let surf = subject_dir.join("surf");
    let hemisphere = |hemi: Hemi| -> Result<Hemisphere> {
        let p = hemi.prefix();
        let white_path = surf.join(format!("{p}.white"));
        let white = read_surface(&white_path)?;
        let n = white.vertices.len();
        let shift = white.c_ras.unwrap_or([0.0; 3]);
        let to_scanner = |s: Surface| -> Mesh {
            let mut m = mesh_of(s);
            for v in &mut m.vertices {
                for a in 0..3 {
                    v[a] += shift[a] as f32;
                }
            }
            m
        };
        let same_count = |path: &Path, count: usize| -> Result<()> {
            if count != n {
                return Err(DataError::invalid(
                    path,
                    "vertex count",
                    format!("{n} (as {})", white_path.display()),
                    count.to_string(),
                ));
            }
            Ok(())
        };
        let read = |name: &str| -> Result<Surface> {
            let path = surf.join(format!("{p}.{name}"));
            let s = read_surface(&path)?;
            same_count(&path, s.vertices.len())?;
            Ok(s)
        };
        let pial = read("pial")?;
        let inflated = read("inflated")?;
        let curv_path = surf.join(format!("{p}.curv"));
        let curvature = read_morph(&curv_path)?;
        same_count(&curv_path, curvature.len())?;
        let patch_path = surf.join(format!("{p}.full.flat.patch.3d"));
        let flat = if patch_path.is_file() {
            let patch = read_patch(&patch_path)?;
            let faces = patch.faces(&white, &patch_path)?;
            let mut vertices = white.vertices.clone();
            for (point, coords) in patch.vertices.iter().zip(&patch.coords) {
                vertices[*point as usize] = *coords;
            }
            Some(Mesh { vertices, faces })
        } else {
            None
        };
        Ok(Hemisphere {
            white: to_scanner(white),
            pial: to_scanner(pial),
            inflated: mesh_of(inflated),
            flat,
            curvature,
        })
    };
    let name = subject_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "subject".into());
    Ok(Cortex {
        name,
        left: hemisphere(Hemi::Left)?,
        right: hemisphere(Hemi::Right)?,
    })
}

/// A FreeSurfer folder's surface atlas: as NSD ships them, `label/?h.{atlas}.mgz` (one whole
/// value per vertex; 0 or less: no region) with the colour table `label/{atlas}.mgz.ctab`
/// (`<value> <name>` per line); else as `recon-all` writes them, `label/?h.{atlas}.annot`
/// (Desikan's `aparc`, HCP-MMP1 on fsaverage; a vertex's value is its colour-table row, and
/// row 0, FreeSurfer's "unknown", is no region). `None` when the folder has no such atlas; a
/// file whose vertex count differs from the cortex's is refused, naming it.
pub fn freesurfer_labels(
    subject_dir: &Path,
    atlas: &str,
    vertices: [usize; 2],
) -> Result<Option<VertexLabels>> {
    let label = subject_dir.join("label");
    let paths = Hemi::BOTH.map(|h| label.join(format!("{}.{atlas}.mgz", h.prefix())));
    if !paths.iter().all(|p| p.is_file()) {
        return annotation_labels(&label, atlas, vertices);
    }
    let mut values = Vec::new();
    for (path, n) in paths.iter().zip(vertices) {
        let mgh = read_mgh(path)?;
        let per_vertex = mgh.per_vertex(path)?;
        if per_vertex.len() != n {
            return Err(DataError::invalid(
                path,
                "vertex count",
                format!("{n} (the cortex's surfaces)"),
                per_vertex.len().to_string(),
            ));
        }
        values.push(per_vertex.iter().map(|&v| v as i32).collect::<Vec<i32>>());
    }
    let ctab = label.join(format!("{atlas}.mgz.ctab"));
    let names = if ctab.is_file() {
        parse_ctab(&ctab, &brainrecon_core::text::read_text(&ctab)?)?
    } else {
        Vec::new()
    };
    let right = values.pop().unwrap_or_default();
    let left = values.pop().unwrap_or_default();
    Ok(Some(VertexLabels {
        name: atlas.into(),
        left,
        right,
        names,
    }))
}

/// `label/?h.{atlas}.annot` as [`VertexLabels`] (see [`freesurfer_labels`]).
fn annotation_labels(
    label: &Path,
    atlas: &str,
    vertices: [usize; 2],
) -> Result<Option<VertexLabels>> {
    let paths = Hemi::BOTH.map(|h| label.join(format!("{}.{atlas}.annot", h.prefix())));
    if !paths.iter().all(|p| p.is_file()) {
        return Ok(None);
    }
    let mut values = Vec::new();
    let mut names = std::collections::BTreeMap::new();
    for (path, n) in paths.iter().zip(vertices) {
        let annotation = brainrecon_formats::fs_surface::read_annot(path, Some(n))?;
        for (name, &row) in annotation.names.iter().zip(&annotation.name_rows) {
            names.entry(row as i32).or_insert_with(|| name.clone());
        }
        values.push(annotation.labels);
    }
    let right = values.pop().unwrap_or_default();
    let left = values.pop().unwrap_or_default();
    Ok(Some(VertexLabels {
        name: atlas.into(),
        left,
        right,
        names: names.into_iter().filter(|&(row, _)| row > 0).collect(),
    }))
}

/// NSD's `.mgz.ctab`: `<value> <name>` per line (extra columns, such as colours, ignored).
pub fn parse_ctab(path: &Path, text: &str) -> Result<Vec<(i32, String)>> {
    let mut names = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let value = fields.next().and_then(|v| v.parse::<i32>().ok());
        let (Some(value), Some(name)) = (value, fields.next()) else {
            return Err(DataError::invalid(
                path,
                format!("line {}", i + 1),
                "a whole value and a name",
                line,
            ));
        };
        if value > 0 {
            names.push((value, name.to_string()));
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsaverage5_loads_with_its_published_sizes() {
        let cortex = fsaverage5().unwrap();
        for hemi in Hemi::BOTH {
            let h = cortex.hemi(hemi);
            assert_eq!(h.n_vertices(), FSAVERAGE5_VERTICES);
            assert_eq!(h.pial.vertices.len(), FSAVERAGE5_VERTICES);
            assert_eq!(h.inflated.faces.len(), 20_480);
            assert_eq!(h.curvature.len(), FSAVERAGE5_VERTICES);
            let flat = h.flat.as_ref().unwrap();
            assert!(flat.faces.len() < 20_480 && flat.faces.len() > 18_000);
        }
        // The left white surface lies left of the midline.
        let _ = fsaverage5_mesh("sphere", Hemi::Left).unwrap();
        let (lo, hi) = cortex.left.white.used_bounds();
        assert!(lo[0] < -60.0 && hi[0] < 5.0, "{lo:?} {hi:?}");
    }
}

#[cfg(test)]
mod label_tests {
    use super::*;

    #[test]
    fn recon_all_annotations_are_an_atlas_when_no_mgz_is_there() {
        // tools/fixtures/freesurfer_annot.py's file, written by nibabel: 12 vertices.
        let annot = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../formats/tests/fixtures/annot/lh.new.annot");
        let dir = tempfile::tempdir().unwrap();
        let label = dir.path().join("label");
        std::fs::create_dir_all(&label).unwrap();
        assert!(freesurfer_labels(dir.path(), "aparc", [12, 12])
            .unwrap()
            .is_none());
        for hemi in ["lh", "rh"] {
            std::fs::copy(&annot, label.join(format!("{hemi}.aparc.annot"))).unwrap();
        }
        let labels = freesurfer_labels(dir.path(), "aparc", [12, 12])
            .unwrap()
            .unwrap();
        assert_eq!(labels.left, [1, 1, 2, 2, 3, -1, 4, 4, 0, 3, -1, 2]);
        assert_eq!(labels.right, labels.left);
        let names: Vec<&str> = labels.names.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["bankssts", "cuneus", "insula", "precuneus"]);
        let err = freesurfer_labels(dir.path(), "aparc", [12, 13])
            .unwrap_err()
            .to_string();
        assert!(err.contains("rh.aparc.annot"), "{err}");
    }

    #[test]
    fn ctab_names_regions_and_refuses_bad_lines() {
        let p = Path::new("streams.mgz.ctab");
        let names = parse_ctab(p, "0 Unknown\n1 early\n2 midventral 12 34 56 0\n\n").unwrap();
        assert_eq!(names, vec![(1, "early".into()), (2, "midventral".into())]);
        let e = parse_ctab(p, "1 early\nventral\n").unwrap_err().to_string();
        assert!(
            e.contains("streams.mgz.ctab") && e.contains("line 2"),
            "{e}"
        );
    }
}
