//! What a report calls: choose the cortex a run set's maps are drawn on, then write each map's
//! picture, the viewer page and the map files into one folder.
//!
//! ```text
//! cortex/<map>.png                   flat map, inflated views, colour bar (one per map)
//! cortex/viewer.html                 every map in one self-contained page
//! cortex/maps_hemi-{L,R}.func.gii    every map per hemisphere (pycortex, nilearn)
//! cortex/maps.dscalar.nii            every map over both hemispheres (Workbench)
//! cortex/vertex_columns.npy          int32 (left + right vertices,): the voxel each vertex shows
//!                                    (−1: none), where each vertex shows one voxel
//! cortex/cortex.json                 which cortex, how the voxels were placed, the files
//! ```

use crate::colour::Scale;
use crate::mesh::{Cortex, Hemi, SurfaceMap, VertexLabels};
use crate::place::{Placement, VoxelGrid};
use crate::{page, render, template, write};
use brainrecon_core::error::{DataError, Result};
use brainrecon_core::fs::{write_bytes_atomic, write_json_atomic};
use brainrecon_formats::cifti::BrainModel;
use brainrecon_formats::image::write_png;
use std::path::{Path, PathBuf};

/// Where a report's maps are drawn (`--cortex`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum CortexChoice {
    /// A simulation's maps on fsaverage5 stretched over its brain; real data: no surfaces.
    #[default]
    Auto,
    /// No cortex pictures.
    None,
    /// fsaverage5, sampling a volume in MNI space between its pial and white surfaces.
    Fsaverage5,
    /// fsaverage5 stretched over the volume's voxels (what `auto` does for simulations).
    Stretch,
    /// A subject's FreeSurfer folder (`surf/?h.white`, …), volumes in its scanner space.
    FreeSurfer(PathBuf),
    /// Sampled on a subject's surfaces as [`CortexChoice::FreeSurfer`], then drawn on
    /// fsaverage5 through the subject's `surf/?h.sphere.reg` (group maps): `fsaverage5:DIR`.
    Fsaverage5Through(PathBuf),
}

impl std::str::FromStr for CortexChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "auto" => CortexChoice::Auto,
            "none" => CortexChoice::None,
            "fsaverage5" => CortexChoice::Fsaverage5,
            "stretch" => CortexChoice::Stretch,
            other if other.starts_with("fsaverage5:") => {
                CortexChoice::Fsaverage5Through(PathBuf::from(&other["fsaverage5:".len()..]))
            }
            "" => {
                return Err(
                    "expected auto, none, fsaverage5, stretch or a FreeSurfer subject folder"
                        .into(),
                )
            }
            dir => CortexChoice::FreeSurfer(PathBuf::from(dir)),
        })
    }
}

/// A cortex and how a run set's voxels reach it.
#[derive(Clone, Debug)]
pub struct CortexPlacement {
    /// The cortex drawn on.
    pub cortex: Cortex,
    /// How each of its vertices gets a value from the run set's voxels.
    pub placement: Placement,
    /// One sentence for the report: which cortex and how the voxels were placed.
    pub how: String,
    /// The cortex's own atlas (NSD's `label/?h.streams.mgz`), outlined where a report gives
    /// none.
    pub labels: Option<VertexLabels>,
}

/// The cortex `choice` asks for, with the voxels of `grid` placed on it; `None` when no
/// cortex applies (`none`, or `auto` for data that is not a simulation's). `simulated` tells
/// `auto` whether the data is a simulation's.
pub fn resolve(
    choice: &CortexChoice,
    grid: &VoxelGrid,
    simulated: bool,
) -> Result<Option<CortexPlacement>> {
    let stretch = || -> Result<CortexPlacement> {
        let cortex = template::fsaverage5()?;
        let placement = Placement::stretch(&cortex, grid);
        Ok(CortexPlacement {
            cortex,
            placement,
            labels: None,
            how: "fsaverage5 stretched over the simulated brain's box; each vertex shows its \
                  nearest voxel (a simulation has no anatomy: where regions land is this \
                  mapping's choice)"
                .into(),
        })
    };
    Ok(match choice {
        CortexChoice::None => None,
        CortexChoice::Auto if simulated => Some(stretch()?),
        CortexChoice::Auto => None,
        CortexChoice::Stretch => Some(stretch()?),
        CortexChoice::Fsaverage5 => Some(CortexPlacement {
            cortex: template::fsaverage5()?,
            placement: Placement::sample(grid),
            labels: None,
            how: "fsaverage5; each vertex averages the volume (taken as MNI space) at 10 \
                  points from the pial to the white surface, as nilearn's vol_to_surf"
                .into(),
        }),
        CortexChoice::FreeSurfer(dir) => {
            let cortex = template::freesurfer_subject(dir)?;
            // NSD's visual streams where the folder has them, else recon-all's Desikan atlas.
            let labels = match template::freesurfer_labels(dir, "streams", cortex.n_vertices())? {
                Some(labels) => Some(labels),
                None => template::freesurfer_labels(dir, "aparc", cortex.n_vertices())?,
            };
            Some(CortexPlacement {
                cortex,
                placement: Placement::sample(grid),
                labels,
                how: format!(
                    "{}'s own surfaces (scanner RAS through the surfaces' c_ras); each vertex \
                     averages the volume at 10 points from the pial to the white surface",
                    dir.display()
                ),
            })
        }
        CortexChoice::Fsaverage5Through(dir) => {
            let subject = template::freesurfer_subject(dir)?;
            let fsaverage = template::fsaverage5()?;
            let mut index = Vec::new();
            for hemi in Hemi::BOTH {
                let path = dir
                    .join("surf")
                    .join(format!("{}.sphere.reg", hemi.prefix()));
                let reg = brainrecon_formats::fs_surface::read_surface(&path)?;
                if reg.vertices.len() != subject.hemi(hemi).n_vertices() {
                    return Err(DataError::invalid(
                        &path,
                        "vertex count",
                        format!(
                            "{} (as surf/{}.white)",
                            subject.hemi(hemi).n_vertices(),
                            hemi.prefix()
                        ),
                        reg.vertices.len().to_string(),
                    ));
                }
                let target = template::fsaverage5_mesh("sphere", hemi)?;
                index.push(crate::place::nearest_on_sphere(
                    &reg.vertices,
                    &target.vertices,
                ));
            }
            let right = index.pop().unwrap_or_default();
            let left = index.pop().unwrap_or_default();
            Some(CortexPlacement {
                cortex: fsaverage,
                placement: Placement::Resampled {
                    inner: Box::new(Placement::sample(grid)),
                    source: Box::new(subject),
                    left,
                    right,
                },
                labels: None,
                how: format!(
                    "sampled on {}'s own surfaces (10 points from the pial to the white \
                     surface), then drawn on fsaverage5: each fsaverage5 vertex takes the \
                     subject's vertex nearest on the registered sphere (surf/?h.sphere.reg)",
                    dir.display()
                ),
            })
        }
    })
}

/// How a map's values are coloured.
#[derive(Clone, Debug, PartialEq)]
pub enum MapKind {
    /// Signed values (r, weights): blue–white–red, symmetric, hidden under the threshold.
    Signed {
        /// Magnitude under which a value is hidden; None shows all.
        threshold: Option<f64>,
    },
    /// Values from 0 up (R², unique variance): hot, hidden under the threshold.
    Positive {
        /// Value under which a value is hidden; None shows all.
        threshold: Option<f64>,
    },
    /// Whole values naming categories (best band, best layer).
    Categorical {
        /// The name of category `i` at index `i`.
        names: Vec<String>,
    },
}

/// One map over a run set's voxels.
#[derive(Clone, Debug)]
pub struct VoxelMapSpec<'a> {
    /// The map's title; the file name is made from it.
    pub name: String,
    /// One value per voxel of the grid (NaN: none).
    pub values: &'a [f64],
    /// How the values are coloured.
    pub kind: MapKind,
}

/// Regions over a run set's voxels (0 or less: in none), for outlines and hover.
#[derive(Clone, Debug)]
pub struct VoxelLabelsSpec<'a> {
    /// The atlas's name.
    pub name: String,
    /// One value per voxel.
    pub values: &'a [i32],
    /// (value, name) of each region.
    pub names: Vec<(i32, String)>,
}

/// What [`write_cortex_maps`] wrote.
#[derive(Clone, Debug)]
pub struct CortexFigures {
    /// One sentence: which cortex and how the voxels were placed.
    pub how: String,
    /// (map name, its picture).
    pub pictures: Vec<(String, PathBuf)>,
    /// The interactive page, `viewer.html`.
    pub viewer: PathBuf,
    /// The `.func.gii` and `.dscalar.nii` files.
    pub map_files: Vec<PathBuf>,
}

impl CortexFigures {
    /// The figures as `cortex draw --json` prints them: how the maps were placed, each
    /// picture's name and path, the viewer page and the map files.
    pub fn json(&self) -> serde_json::Value {
        let pictures: Vec<_> = self
            .pictures
            .iter()
            .map(|(name, path)| serde_json::json!({"name": name, "path": path}))
            .collect();
        serde_json::json!({
            "how": self.how,
            "pictures": pictures,
            "viewer": self.viewer,
            "map_files": self.map_files,
        })
    }

    /// For people: how the maps were placed, each picture on its line, then the viewer page.
    pub fn text(&self) -> String {
        let mut text = format!("{}\n", self.how);
        for (name, path) in &self.pictures {
            text += &format!("  {name}: {}\n", path.display());
        }
        text + &format!("→ {}\n", self.viewer.display())
    }
}

/// A file name made of a map's name: lower-case letters, digits, `-`; each run of other
/// characters becomes one `_` (`best band (q ≤ 0.05)` → `best_band_q_0_05`).
pub fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    // One `_` for each run of others, none at the ends.
    let s = s
        .split('_')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("_");
    if s.is_empty() {
        "map".into()
    } else {
        s
    }
}

/// Whole values per vertex for categories placed by `placement`: a vertex shown by one column
/// takes its category; a sampled vertex takes the category most of its samples fall in.
fn project_categories(
    placement: &Placement,
    cortex: &Cortex,
    values: &[f64],
    categories: &[i64],
) -> (Vec<f64>, Vec<f64>) {
    if let Placement::Column { .. } = placement {
        return placement.project(cortex, values);
    }
    let [nl, nr] = cortex.n_vertices();
    let mut best = (vec![(0.0, f64::NAN); nl], vec![(0.0, f64::NAN); nr]);
    for &c in categories {
        let indicator: Vec<f64> = values
            .iter()
            .map(|&v| {
                if !v.is_finite() {
                    f64::NAN
                } else if v.round() as i64 == c {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let (l, r) = placement.project(cortex, &indicator);
        for (slot, share) in best.0.iter_mut().zip(&l).chain(best.1.iter_mut().zip(&r)) {
            if share.is_finite() && *share > slot.0 {
                *slot = (*share, c as f64);
            }
        }
    }
    (
        best.0.into_iter().map(|(_, c)| c).collect(),
        best.1.into_iter().map(|(_, c)| c).collect(),
    )
}

/// A voxel map on the cortex, coloured as its kind asks.
pub fn surface_map(placed: &CortexPlacement, spec: &VoxelMapSpec) -> SurfaceMap {
    let (left, right) = match &spec.kind {
        MapKind::Categorical { names } => {
            let categories: Vec<i64> = (0..names.len() as i64).collect();
            project_categories(&placed.placement, &placed.cortex, spec.values, &categories)
        }
        _ => placed.placement.project(&placed.cortex, spec.values),
    };
    let both: Vec<f64> = left.iter().chain(&right).copied().collect();
    let scale = match &spec.kind {
        MapKind::Signed { threshold } => Scale::symmetric(&both, *threshold),
        MapKind::Positive { threshold } => Scale::positive(&both, *threshold),
        MapKind::Categorical { names } => Scale::Categorical {
            names: names.clone(),
        },
    };
    SurfaceMap {
        name: spec.name.clone(),
        left,
        right,
        scale,
    }
}

/// Voxel regions on the cortex.
pub fn surface_labels(placed: &CortexPlacement, spec: &VoxelLabelsSpec) -> VertexLabels {
    let values: Vec<f64> = spec.values.iter().map(|&v| v as f64).collect();
    let mut categories: Vec<i64> = spec.values.iter().map(|&v| v as i64).collect();
    categories.sort_unstable();
    categories.dedup();
    let (left, right) = project_categories(&placed.placement, &placed.cortex, &values, &categories);
    let whole = |v: Vec<f64>| -> Vec<i32> {
        v.into_iter()
            .map(|x| if x.is_finite() { x as i32 } else { 0 })
            .collect()
    };
    VertexLabels {
        name: spec.name.clone(),
        left: whole(left),
        right: whole(right),
        names: spec.names.clone(),
    }
}

/// Writes the pictures, the viewer and the map files of `maps` into `dir` (module
/// documentation). Each map holds one value per voxel of the placement's grid (asserted).
pub fn write_cortex_maps(
    dir: &Path,
    placed: &CortexPlacement,
    maps: &[VoxelMapSpec],
    labels: Option<&VoxelLabelsSpec>,
) -> Result<CortexFigures> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let surface_maps: Vec<SurfaceMap> = maps.iter().map(|m| surface_map(placed, m)).collect();
    let labels = labels
        .map(|l| surface_labels(placed, l))
        .or_else(|| placed.labels.clone());
    let mut pictures = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    for map in &surface_maps {
        let mut name = slug(&map.name);
        while !used.insert(name.clone()) {
            name.push('_');
        }
        let path = dir.join(format!("{name}.png"));
        let image = render::figure(&placed.cortex, map, labels.as_ref(), &map.name);
        write_png(&path, &image)?;
        pictures.push((map.name.clone(), path));
    }
    let title = match maps {
        [one] => format!("{} on {}", one.name, placed.cortex.name),
        _ => format!("{} maps on {}", maps.len(), placed.cortex.name),
    };
    let viewer = dir.join("viewer.html");
    let html = page::page_html(&placed.cortex, &surface_maps, labels.as_ref(), &title);
    write_bytes_atomic(&viewer, html.as_bytes())?;
    let refs: Vec<&SurfaceMap> = surface_maps.iter().collect();
    let map_files = write::write_maps(dir, "maps", &placed.cortex, &refs)?;
    if let (Some(left), Some(right)) = (
        placed.placement.columns(Hemi::Left),
        placed.placement.columns(Hemi::Right),
    ) {
        // Which voxel (column of the maps) each vertex shows, left then right (−1: none).
        let columns: Vec<i32> = left
            .iter()
            .chain(right)
            .map(|c| c.map_or(-1, |c| c as i32))
            .collect();
        brainrecon_formats::npy::write(
            &dir.join("vertex_columns.npy"),
            &[columns.len()],
            &columns,
        )?;
    }
    let file_name = |p: &PathBuf| p.file_name().map(|n| n.to_string_lossy().into_owned());
    write_json_atomic(
        &dir.join("cortex.json"),
        &serde_json::json!({
            "format": "brainrecon-cortex-maps",
            "cortex": placed.cortex.name,
            "vertices": placed.cortex.n_vertices(),
            "hemispheres": Hemi::BOTH.map(|h| h.bids()),
            "how": placed.how,
            "maps": surface_maps.iter().zip(&pictures).map(|(m, (_, p))| serde_json::json!({
                "name": m.name,
                "picture": file_name(p),
                "vertices_with_values": m.left.iter().chain(&m.right).filter(|v| v.is_finite()).count(),
            })).collect::<Vec<_>>(),
            "labels": labels.as_ref().map(|l| &l.name),
            "viewer": "viewer.html",
            "map_files": map_files.iter().map(file_name).collect::<Vec<_>>(),
        }),
    )?;
    Ok(CortexFigures {
        how: placed.how.clone(),
        pictures,
        viewer,
        map_files,
    })
}

/// The report page's section for `figures`, whose files lie in the folder `rel` (relative to
/// the page).
pub fn html_section(figures: &CortexFigures, rel: &str) -> String {
    let esc = brainrecon_core::text::escape_html;
    let name_of = |p: &PathBuf| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut html = format!(
        "<h2>On the cortex</h2><p>{}. <a href=\"{rel}/{}\">Open the viewer</a> (rotate, \
         inflated ↔ flat, hover for values). Map files: {}.</p>",
        esc(&figures.how),
        name_of(&figures.viewer),
        figures
            .map_files
            .iter()
            .map(|p| format!("<a href=\"{rel}/{n}\">{n}</a>", n = esc(&name_of(p))))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (name, path) in &figures.pictures {
        html.push_str(&format!(
            "<h3>{}</h3><img src=\"{rel}/{}\" alt=\"{}\" style=\"max-width:100%\">",
            esc(name),
            esc(&name_of(path)),
            esc(name)
        ));
    }
    html
}

/// What `brainrecon cortex draw` draws: one volume (or several, one map each) on a cortex.
#[derive(Clone, Debug)]
pub struct DrawOptions {
    /// 3-D NIfTI maps, on one grid.
    pub volumes: Vec<PathBuf>,
    /// Voxels drawn: where this mask is non-zero (default: every voxel whose value is finite
    /// and non-zero in the first volume).
    pub mask: Option<PathBuf>,
    /// The cortex drawn on (`--cortex`).
    pub cortex: CortexChoice,
    /// `signed`, `positive` or `categorical` (whole values 0, 1, …).
    pub kind: String,
    /// Values whose magnitude is under this are not drawn.
    pub threshold: Option<f64>,
    /// The output folder.
    pub out: PathBuf,
}

/// Draws `opts.volumes` on the cortex into `opts.out` (laid out as [`write_cortex_maps`]
/// writes, written whole then renamed into place). `auto` means `fsaverage5` here (a volume
/// given on its own is taken as MNI space).
pub fn draw_volumes(opts: &DrawOptions) -> Result<CortexFigures> {
    use brainrecon_formats::nifti_io::read_volume;
    let first = opts
        .volumes
        .first()
        .ok_or_else(|| DataError::Usage("--volume: give at least one NIfTI map".into()))?;
    if first.to_string_lossy().ends_with(".dscalar.nii") {
        return draw_dense_scalars(opts);
    }
    let volumes = opts
        .volumes
        .iter()
        .map(|p| read_volume(p).map(|v| (p.clone(), v)))
        .collect::<Result<Vec<_>>>()?;
    let reference = &volumes[0].1;
    let same_grid = |path: &Path, shape: [usize; 3], affine: &[[f64; 4]; 4]| -> Result<()> {
        let close = brainrecon_core::geometry::same_affine(affine, &reference.affine);
        if shape != reference.shape || !close {
            return Err(DataError::invalid(
                path,
                "grid",
                format!(
                    "the grid of {} (shape {:?}, affine {:?})",
                    first.display(),
                    reference.shape,
                    reference.affine
                ),
                format!("shape {shape:?}, affine {affine:?}"),
            ));
        }
        Ok(())
    };
    for (path, v) in &volumes[1..] {
        same_grid(path, v.shape, &v.affine)?;
    }
    let keep: Vec<bool> = match &opts.mask {
        Some(path) => {
            let mask = read_volume(path)?;
            same_grid(path, mask.shape, &mask.affine)?;
            mask.values
                .iter()
                .map(|&m| m != 0.0 && m.is_finite())
                .collect()
        }
        None => reference
            .values
            .iter()
            .map(|&v| v != 0.0 && v.is_finite())
            .collect(),
    };
    let [nx, ny, _] = reference.shape;
    let voxels: Vec<[usize; 3]> = keep
        .iter()
        .enumerate()
        .filter(|(_, &k)| k)
        .map(|(i, _)| [i % nx, (i / nx) % ny, i / (nx * ny)])
        .collect();
    if voxels.is_empty() {
        return Err(DataError::invalid(
            opts.mask.as_ref().unwrap_or(first),
            "voxels",
            "at least one voxel to draw (non-zero and finite)",
            "none",
        ));
    }
    let kind = map_kind(
        &opts.kind,
        opts.threshold,
        volumes.iter().flat_map(|(_, v)| v.values.iter()),
    )?;
    let grid = VoxelGrid {
        shape: reference.shape,
        affine: &reference.affine,
        voxels: &voxels,
    };
    let choice = match &opts.cortex {
        CortexChoice::Auto => CortexChoice::Fsaverage5,
        other => other.clone(),
    };
    let Some(placed) = resolve(&choice, &grid, false)? else {
        return Err(DataError::Usage("--cortex none: nothing to draw".into()));
    };
    let values: Vec<(String, Vec<f64>)> = volumes
        .iter()
        .map(|(path, v)| {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let name = name
                .trim_end_matches(".gz")
                .trim_end_matches(".nii")
                .to_string();
            let at = voxels
                .iter()
                .map(|&[i, j, k]| v.values[v.index(i, j, k)])
                .collect();
            (name, at)
        })
        .collect();
    let maps: Vec<VoxelMapSpec> = values
        .iter()
        .map(|(name, at)| VoxelMapSpec {
            name: name.clone(),
            values: at,
            kind: kind.clone(),
        })
        .collect();
    write_into(&opts.out, &placed, &maps)
}

/// The cortical grayordinates of the CIFTI file `path` (its brain `models`, `columns` in all)
/// on fsaverage5, whose vertices they must be (10,242 a hemisphere: the video simulator's);
/// each cortical vertex without a grayordinate shows the nearest one's. Other meshes (fsLR
/// 32k) are refused naming the file, the structure and its vertex count.
pub fn grayordinates_on_fsaverage5(
    path: &Path,
    models: &[BrainModel],
    columns: usize,
) -> Result<CortexPlacement> {
    use brainrecon_formats::cifti::CORTEX;
    let surface = |structure: &str| -> Result<(usize, &[usize])> {
        let model = models
            .iter()
            .find(|m| m.brain_structure == structure)
            .ok_or_else(|| {
                DataError::invalid(
                    path,
                    "BrainModel",
                    format!("a {structure} surface model"),
                    "none",
                )
            })?;
        if model.surface_number_of_vertices != Some(template::FSAVERAGE5_VERTICES) {
            return Err(DataError::invalid(
                path,
                format!("{structure} SurfaceNumberOfVertices"),
                format!(
                    "{} (fsaverage5, the cortex brainrecon embeds; draw other meshes in \
                     Workbench)",
                    template::FSAVERAGE5_VERTICES
                ),
                format!("{:?}", model.surface_number_of_vertices),
            ));
        }
        Ok((model.index_offset, &model.vertex_indices))
    };
    let (left, right) = (surface(CORTEX[0])?, surface(CORTEX[1])?);
    let cortex = template::fsaverage5()?;
    let placement = Placement::grayordinates(&cortex, left, right, columns).ok_or_else(|| {
        DataError::invalid(
            path,
            "BrainModel",
            "vertices of fsaverage5",
            "a vertex past it",
        )
    })?;
    Ok(CortexPlacement {
        placement: placement.filled(&cortex),
        cortex,
        labels: None,
        how: "fsaverage5, the surface the CIFTI file's cortical grayordinates name; each \
              cortical vertex without a grayordinate shows the nearest one's"
            .into(),
    })
}

/// [`draw_volumes`] of CIFTI dense scalar files (`.dscalar.nii`) whose cortical surface models
/// are fsaverage5's (10,242 vertices a hemisphere): each named map drawn; each cortical vertex
/// without a grayordinate shows the nearest one's.
fn draw_dense_scalars(opts: &DrawOptions) -> Result<CortexFigures> {
    use brainrecon_formats::cifti::read_dense_scalars;
    let mut named: Vec<(String, Vec<f64>)> = Vec::new();
    let mut first: Option<(&PathBuf, Vec<BrainModel>, usize)> = None;
    for path in &opts.volumes {
        let (names, models, data) = read_dense_scalars(path)?;
        let columns = data.len() / names.len().max(1);
        match &first {
            // One placement serves every file: each must lay its grayordinates out alike.
            Some((first_path, first_models, _)) if *first_models != models => {
                return Err(DataError::invalid(
                    path,
                    "BrainModel",
                    format!("the brain models of {}", first_path.display()),
                    "other brain models",
                ));
            }
            Some(_) => {}
            None => first = Some((path, models, columns)),
        }
        for (row, name) in names.iter().enumerate() {
            let values = data[row * columns..(row + 1) * columns]
                .iter()
                .map(|&v| v as f64)
                .collect();
            named.push((name.clone(), values));
        }
    }
    let (path, models, columns) =
        first.ok_or_else(|| DataError::Usage("--volume: give at least one map".into()))?;
    let placed = grayordinates_on_fsaverage5(path, &models, columns)?;
    let kind = map_kind(
        &opts.kind,
        opts.threshold,
        named.iter().flat_map(|(_, v)| v.iter()),
    )?;
    let maps: Vec<VoxelMapSpec> = named
        .iter()
        .map(|(name, values)| VoxelMapSpec {
            name: name.clone(),
            values,
            kind: kind.clone(),
        })
        .collect();
    write_into(&opts.out, &placed, &maps)
}

/// The colour kind `--kind` names; categories run from 0 to the largest value.
fn map_kind<'a>(
    kind: &str,
    threshold: Option<f64>,
    values: impl Iterator<Item = &'a f64>,
) -> Result<MapKind> {
    Ok(match kind {
        "signed" => MapKind::Signed { threshold },
        "positive" => MapKind::Positive { threshold },
        "categorical" => {
            let largest = values
                .filter(|v| v.is_finite())
                .fold(0f64, |m, &v| m.max(v));
            let n = (largest.round() as usize).saturating_add(1).min(1000);
            MapKind::Categorical {
                names: (0..n).map(|i| i.to_string()).collect(),
            }
        }
        other => {
            return Err(DataError::Usage(format!(
                "--kind: expected signed, positive or categorical, found '{other}'"
            )))
        }
    })
}

/// [`write_cortex_maps`] into `out`, written whole then renamed into place; the paths returned
/// are the final ones.
fn write_into(
    out: &Path,
    placed: &CortexPlacement,
    maps: &[VoxelMapSpec],
) -> Result<CortexFigures> {
    let mut figures = brainrecon_core::fs::write_folder_atomic(out, |staging| {
        write_cortex_maps(staging, placed, maps, None)
    })?;
    let moved = |p: &PathBuf| out.join(p.file_name().unwrap_or_default());
    figures.viewer = moved(&figures.viewer);
    figures.map_files = figures.map_files.iter().map(moved).collect();
    for (_, p) in &mut figures.pictures {
        *p = moved(p);
    }
    Ok(figures)
}
