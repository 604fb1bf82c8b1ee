//! ROIs of an own experiment from a segmentation on the runs' grid: FreeSurfer's aparc+aseg as
//! fMRIPrep ships it (found beside the runs), or any label volume the user names.
//!
//! fMRIPrep 20–25 write `anat/sub-<S>[_ses-<X>]_desc-aparcaseg_dseg.nii.gz` in the subject's
//! T1w space at the anatomical resolution (20–22 also a copy on the BOLD grid of each output
//! space in `func/`: `*_space-<SPACE>_desc-aparcaseg_dseg.nii.gz`). A volume in the runs' space
//! is sampled at the runs' voxel centres by nearest neighbour through the two affines, as
//! nilearn's `resample_to_img(..., interpolation="nearest")` does. Runs in a template space
//! (MNI152NLin2009cAsym, ...) without such a copy take the T1w one through fMRIPrep's
//! normalisation, `anat/sub-<S>_from-T1w_to-<SPACE>_mode-image_xfm.h5` (ANTs' affine +
//! displacement field): each run voxel's centre is mapped into T1w space and takes the label of
//! the nearest T1w voxel, as `antsApplyTransforms -n NearestNeighbor` resamples (ITK's rule).
//! A volume whose grid does not cover the runs' voxels is refused naming both files, shapes and
//! affines.
//!
//! The atlases written for the routes:
//! - `streams`: NSD's stream names from Desikan–Killiany regions (early: pericalcarine, cuneus,
//!   lingual; ventral: fusiform, parahippocampal, inferiortemporal; lateral: lateraloccipital;
//!   parietal: superiorparietal, inferiorparietal). NSD draws its streams by hand on the
//!   cortical surface; this is the nearest anatomical reading, not NSD's ROI;
//! - `visual`: the union of the streams (the routes' `nsdgeneral` resolves to it);
//! - `aparcaseg`: every labelled voxel under FreeSurfer's names.

use crate::error::{DataError, Result};
use crate::prepared::{AtlasMeta, LabelMeta};
use crate::runs::RunSet;
use brainrecon_core::geometry::invert_affine;
use brainrecon_formats::cifti::{read_layout, BrainModel, CiftiLabels, ModelType};
use brainrecon_formats::freesurfer::{cortical_region, label_name, read_label_table};
use brainrecon_formats::itk_transform::ItkTransform;
use brainrecon_formats::nifti_io;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// NSD's streams labels (value, name) and the Desikan–Killiany regions read as each.
pub const STREAMS: [(i32, &str, &[&str]); 7] = [
    (1, "early", &["pericalcarine", "cuneus", "lingual"]),
    (2, "midventral", &[]),
    (3, "midlateral", &[]),
    (4, "midparietal", &[]),
    (
        5,
        "ventral",
        &["fusiform", "parahippocampal", "inferiortemporal"],
    ),
    (6, "lateral", &["lateraloccipital"]),
    (7, "parietal", &["superiorparietal", "inferiorparietal"]),
];

/// The atlases `glm prepare` can write.
pub const ATLASES: [&str; 3] = ["visual", "streams", "aparcaseg"];

/// A label volume sampled at a run set's voxels.
#[derive(Debug, Clone)]
pub struct VoxelLabels {
    /// The label volume read (`.nii[.gz]`).
    pub source: PathBuf,
    /// Label value per run-set voxel (0: unlabelled).
    pub values: Vec<i32>,
    /// value → name.
    pub names: BTreeMap<i32, String>,
    /// Whether the volume was on another grid and sampled by nearest neighbour.
    pub resampled: bool,
    /// The transform the runs' voxel centres went through into the volume's space.
    pub transform: Option<PathBuf>,
}

/// A segmentation to sample at the runs' voxels, and the transform from the runs' space into
/// its space when it is in another one.
#[derive(Debug, Clone, PartialEq)]
pub struct AtlasSource {
    /// The segmentation (`.nii[.gz]`, e.g. fMRIPrep's `desc-aparcaseg_dseg`).
    pub volume: PathBuf,
    /// ITK transform (`.h5`) from the runs' space to the volume's; none when they share a space.
    pub transform: Option<PathBuf>,
}

/// A written atlas: its metadata and, per atlas voxel, its run-set voxel and label.
#[derive(Debug, Clone)]
pub struct AtlasVoxels {
    /// The atlas's metadata, as written.
    pub meta: AtlasMeta,
    /// Run-set voxel index of each atlas voxel, ascending.
    pub columns: Vec<usize>,
    /// Label of each atlas voxel.
    pub labels: Vec<i32>,
}

/// The subject's `func/` and `anat/` folders, then each session's.
fn subject_folders(subject_dir: &Path) -> Vec<PathBuf> {
    let mut folders = vec![subject_dir.join("func"), subject_dir.join("anat")];
    if let Ok(entries) = std::fs::read_dir(subject_dir) {
        let mut sessions: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("ses-"))
            })
            .collect();
        sessions.sort();
        for s in sessions {
            folders.push(s.join("func"));
            folders.push(s.join("anat"));
        }
    }
    folders
}

/// The first file (by name, folder by folder) whose name `wanted` accepts.
fn first_file(folders: &[PathBuf], wanted: impl Fn(&str) -> bool) -> Option<PathBuf> {
    folders.iter().find_map(|folder| {
        let mut found: Vec<PathBuf> = std::fs::read_dir(folder)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().is_some_and(|n| wanted(&n.to_string_lossy())))
            .collect();
        found.sort();
        found.into_iter().next()
    })
}

/// Whether a file name is in space `label` (no `space-` entity: T1w, fMRIPrep's convention).
fn in_space(name: &str, label: &str) -> bool {
    match name.split('_').find_map(|part| part.strip_prefix("space-")) {
        Some(s) => s == label,
        None => label == "T1w",
    }
}

/// fMRIPrep 20+'s aparc+aseg, and 1.x's `_label-aparcaseg_roi` (per run and in anat/).
fn is_aparcaseg(name: &str) -> bool {
    name.ends_with("_desc-aparcaseg_dseg.nii.gz") || name.ends_with("_label-aparcaseg_roi.nii.gz")
}

/// fMRIPrep's aparc+aseg for runs in `space`: in that space (on the BOLD grid in `func/`, older
/// fMRIPrep; the anatomical one in `anat/` for T1w), else the T1w one with fMRIPrep's
/// `from-T1w_to-<SPACE>_mode-image_xfm.h5` to reach it.
pub fn find_fmriprep_aparcaseg(fmriprep: &Path, subject: &str, space: &str) -> Result<AtlasSource> {
    let label = space.split(':').next().unwrap_or(space);
    let subject_dir = fmriprep.join(format!("sub-{subject}"));
    let folders = subject_folders(&subject_dir);
    if let Some(volume) = first_file(&folders, |n| is_aparcaseg(n) && in_space(n, label)) {
        return Ok(AtlasSource {
            volume,
            transform: None,
        });
    }
    let transform_name = format!("_from-T1w_to-{label}_mode-image_xfm.h5");
    if label != "T1w" {
        let t1w = first_file(&folders, |n| is_aparcaseg(n) && in_space(n, "T1w"));
        let transform = first_file(&folders, |n| n.ends_with(&transform_name));
        if let (Some(volume), Some(transform)) = (t1w, transform) {
            return Ok(AtlasSource {
                volume,
                transform: Some(transform),
            });
        }
    }
    Err(DataError::Missing {
        path: subject_dir.join("anat"),
        what: format!(
            "fMRIPrep's aparc+aseg segmentation for runs in space {label} \
             (sub-{subject}_desc-aparcaseg_dseg.nii.gz, written when fMRIPrep ran FreeSurfer, \
             with sub-{subject}{transform_name} for template spaces), \
             or name a label volume with --atlas (and --atlas-transform)"
        ),
    })
}

/// Samples the label volume at `path` at every voxel of `set`.
pub fn sample_labels(
    source: &AtlasSource,
    table: Option<&Path>,
    set: &RunSet,
) -> Result<VoxelLabels> {
    let path = source.volume.as_path();
    let volume = nifti_io::read_volume(path)?;
    let transform = source
        .transform
        .as_deref()
        .map(ItkTransform::read)
        .transpose()?;
    let same_grid = transform.is_none()
        && volume.shape == set.volume_shape()
        && brainrecon_core::geometry::same_affine(&volume.affine, set.affine());
    let mismatch = |what: &str| {
        DataError::invalid(
            path,
            "grid",
            format!(
                "a label volume covering the runs' grid ({:?}, affine {} in {})",
                set.volume_shape(),
                brainrecon_core::geometry::format_affine(set.affine()),
                set.root().join("runset.json").display()
            ),
            format!(
                "shape {:?}, affine {}: {what}",
                volume.shape,
                brainrecon_core::geometry::format_affine(&volume.affine)
            ),
        )
    };
    let sampled = match &transform {
        None => nearest_values(&volume, same_grid, set.affine(), set.voxel_indices()),
        Some(t) => warped_values(&volume, t, set.affine(), set.voxel_indices()),
    }
    .ok_or_else(|| mismatch("a singular affine"))?;
    let mut values = Vec::with_capacity(set.n_voxels());
    let mut outside = 0usize;
    for v in sampled {
        let Some(v) = v else {
            outside += 1;
            values.push(0);
            continue;
        };
        if v.fract() != 0.0 || !(0.0..=i32::MAX as f64).contains(&v) {
            return Err(DataError::invalid(
                path,
                "values",
                "integer labels ≥ 0 (a segmentation)",
                v.to_string(),
            ));
        }
        values.push(v as i32);
    }
    let labelled = values.iter().filter(|&&v| v > 0).count();
    if outside * 10 > set.n_voxels() || labelled * 2 < set.n_voxels() {
        return Err(mismatch(&format!(
            "{outside} of the runs' {} voxels fall outside it and {labelled} get a label: \
             another space or another subject?",
            set.n_voxels()
        )));
    }
    let names = label_names(&values, table)?;
    Ok(VoxelLabels {
        source: path.to_path_buf(),
        values,
        names,
        resampled: !same_grid,
        transform: source.transform.clone(),
    })
}

/// Where a grayordinate is: its structure, and its mesh vertex (surface models) or voxel.
type GrayordinatePlace = (String, bool, [usize; 3]);

fn places(models: &[BrainModel]) -> Vec<(usize, GrayordinatePlace)> {
    let mut out = Vec::new();
    for m in models {
        let surface = m.model_type == ModelType::Surface;
        for i in 0..m.index_count {
            let at = match surface {
                true => [m.vertex_indices[i], 0, 0],
                false => m.voxel_indices_ijk[i],
            };
            out.push((m.index_offset + i, (m.brain_structure.clone(), surface, at)));
        }
    }
    out
}

/// The first map of a CIFTI dense label file (`.dlabel.nii`) at every grayordinate of a CIFTI
/// run set, matched by structure and mesh vertex (or voxel): the parcellation may cover more or
/// fewer grayordinates than the runs (cortex only, say). Names from `table` when given, else the
/// file's label table.
pub fn sample_grayordinate_labels(
    path: &Path,
    table: Option<&Path>,
    set: &RunSet,
) -> Result<VoxelLabels> {
    let source = set.meta().grayordinates.as_ref().map(|g| g.source.clone());
    let Some(source) = source else {
        return Err(DataError::invalid(
            path,
            "--atlas",
            "a label volume (.nii[.gz]) for runs in a volume space",
            "a CIFTI dense label file",
        ));
    };
    let runs = read_layout(&source)?;
    let labels = CiftiLabels::read(path)?;
    let at: HashMap<GrayordinatePlace, usize> = places(&labels.brain_models)
        .into_iter()
        .map(|(c, p)| (p, c))
        .collect();
    let column_of: Vec<Option<usize>> = {
        let mut by_column = vec![None; runs.n_grayordinates];
        for (c, place) in places(&runs.models) {
            by_column[c] = at.get(&place).copied();
        }
        by_column
    };
    let keys = labels.keys(0);
    let mut values = Vec::with_capacity(set.n_voxels());
    for &[g, _, _] in set.voxel_indices() {
        let key = column_of.get(g).copied().flatten().map_or(0, |c| keys[c]);
        values.push(key.max(0));
    }
    let labelled = values.iter().filter(|&&v| v > 0).count();
    if labelled == 0 {
        return Err(DataError::invalid(
            path,
            "BrainModel",
            format!(
                "labels on the grayordinates of {} (the same structures and vertices)",
                source.display()
            ),
            "no labelled grayordinate in common",
        ));
    }
    let names = match table {
        Some(t) => label_names(&values, Some(t))?,
        None => names_of(&values, |v| labels.maps[0].labels.get(&v).cloned()),
    };
    Ok(VoxelLabels {
        source: path.to_path_buf(),
        values,
        names,
        resampled: false,
        transform: None,
    })
}

/// The value of `volume` at each of `voxels` (voxel indices of a grid whose voxel → mm affine is
/// `affine`) whose centres `transform` maps into the volume's space: the volume's voxel whose
/// index is nearest (halves rounded up), none outside `[−0.5, n − 0.5)` voxels, as ITK's
/// nearest-neighbour resampling (`antsApplyTransforms -n NearestNeighbor`) samples. None when
/// the volume's affine is singular.
pub fn warped_values(
    volume: &nifti_io::Volume,
    transform: &ItkTransform,
    affine: &[[f64; 4]; 4],
    voxels: &[[usize; 3]],
) -> Option<Vec<Option<f64>>> {
    let to_volume = invert_affine(&volume.affine)?;
    let value = |ijk: &[usize; 3]| {
        let p = [ijk[0] as f64, ijk[1] as f64, ijk[2] as f64, 1.0];
        let world: [f64; 3] = std::array::from_fn(|r| (0..4).map(|c| affine[r][c] * p[c]).sum());
        let q = transform.map_ras(world);
        let q = [q[0], q[1], q[2], 1.0];
        let mut index = [0usize; 3];
        for (r, slot) in index.iter_mut().enumerate() {
            let v: f64 = (0..4).map(|c| to_volume[r][c] * q[c]).sum();
            if !(v >= -0.5 && v < volume.shape[r] as f64 - 0.5) {
                return None;
            }
            *slot = ((v + 0.5).floor().max(0.0) as usize).min(volume.shape[r] - 1);
        }
        Some(volume.get(index[0], index[1], index[2]))
    };
    Some(voxels.iter().map(value).collect())
}

/// The value of `volume` at each of `voxels`, voxel indices of a grid whose voxel → mm affine is
/// `affine`: the same voxel when `same_grid`, else the volume's voxel nearest to its centre
/// through the two affines, as nilearn's `resample_to_img(..., interpolation="nearest")` samples;
/// none outside the volume. None when the volume's affine is singular.
pub fn nearest_values(
    volume: &nifti_io::Volume,
    same_grid: bool,
    affine: &[[f64; 4]; 4],
    voxels: &[[usize; 3]],
) -> Option<Vec<Option<f64>>> {
    let to_volume = match same_grid {
        true => None,
        false => Some(product(&invert_affine(&volume.affine)?, affine)),
    };
    let value = |&[i, j, k]: &[usize; 3]| match &to_volume {
        None => Some(volume.get(i, j, k)),
        Some(m) => nearest(m, [i, j, k], volume.shape).map(|[x, y, z]| volume.get(x, y, z)),
    };
    Some(voxels.iter().map(value).collect())
}

fn product(a: &[[f64; 4]; 4], b: &[[f64; 4]; 4]) -> [[f64; 4]; 4] {
    let mut out = [[0.0; 4]; 4];
    for r in 0..4 {
        for c in 0..4 {
            out[r][c] = (0..4).map(|k| a[r][k] * b[k][c]).sum();
        }
    }
    out
}

/// The voxel of a grid of `shape` nearest to voxel `ijk` mapped through `m`, if inside. As
/// scipy's `affine_transform(order=0)` under nilearn: a point is inside when each coordinate
/// lies between the first and the last voxel centre (0 to n − 1), so the outer half voxel of the
/// grid counts as outside.
fn nearest(m: &[[f64; 4]; 4], ijk: [usize; 3], shape: [usize; 3]) -> Option<[usize; 3]> {
    const EDGE: f64 = 1e-9;
    let p = [ijk[0] as f64, ijk[1] as f64, ijk[2] as f64, 1.0];
    let mut out = [0usize; 3];
    for r in 0..3 {
        let v = (0..4).map(|c| m[r][c] * p[c]).sum::<f64>();
        if !(-EDGE..=shape[r] as f64 - 1.0 + EDGE).contains(&v) {
            return None;
        }
        out[r] = (v.round().max(0.0) as usize).min(shape[r] - 1);
    }
    Some(out)
}

/// Names of the values present: the table's, else FreeSurfer's, else `label-<value>`.
fn label_names(values: &[i32], table: Option<&Path>) -> Result<BTreeMap<i32, String>> {
    let table = table.map(read_label_table).transpose()?;
    Ok(names_of(values, |v| {
        table
            .as_ref()
            .and_then(|t| t.get(&v).cloned())
            .or_else(|| label_name(v))
    }))
}

/// Names of the values present (> 0): `lookup`'s, else `label-<value>`.
fn names_of(values: &[i32], lookup: impl Fn(i32) -> Option<String>) -> BTreeMap<i32, String> {
    let mut names = BTreeMap::new();
    for &v in values.iter().filter(|&&v| v > 0) {
        names
            .entry(v)
            .or_insert_with(|| lookup(v).unwrap_or_else(|| format!("label-{v}")));
    }
    names
}

/// The atlas `name` (one of [`ATLASES`]) from the sampled labels.
pub fn atlas_voxels(name: &str, labels: &VoxelLabels) -> AtlasVoxels {
    // (value, name) per run-set voxel, or None outside the atlas.
    let stream_of = |v: i32| -> Option<i32> {
        let region = cortical_region(labels.names.get(&v)?)?;
        STREAMS
            .iter()
            .find(|(_, _, regions)| regions.contains(&region))
            .map(|s| s.0)
    };
    type LabelOf<'a> = Box<dyn Fn(i32) -> Option<i32> + 'a>;
    let (table, of): (Vec<(i32, String)>, LabelOf) = match name {
        "streams" => (
            STREAMS.iter().map(|s| (s.0, s.1.to_string())).collect(),
            Box::new(stream_of),
        ),
        "visual" => (
            vec![(1, "visual".into())],
            Box::new(move |v| stream_of(v).map(|_| 1)),
        ),
        _ => (
            labels.names.iter().map(|(v, n)| (*v, n.clone())).collect(),
            Box::new(|v| (v > 0).then_some(v)),
        ),
    };
    let mut columns = Vec::new();
    let mut values = Vec::new();
    for (c, &v) in labels.values.iter().enumerate() {
        if let Some(label) = of(v) {
            columns.push(c);
            values.push(label);
        }
    }
    let label_meta = table
        .into_iter()
        .map(|(value, name)| LabelMeta {
            value,
            name,
            n_voxels: values.iter().filter(|&&l| l == value).count(),
        })
        .collect();
    AtlasVoxels {
        meta: AtlasMeta {
            name: name.to_string(),
            n_voxels: columns.len(),
            labels: label_meta,
        },
        columns,
        labels: values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_affine_times_its_inverse_is_the_identity() {
        let a = [
            [0.0, -1.8, 0.1, 30.0],
            [2.0, 0.0, 0.0, -12.5],
            [0.0, 0.2, 1.7, 4.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let p = product(&invert_affine(&a).unwrap(), &a);
        for (r, row) in p.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                assert!((v - f64::from(u8::from(r == c))).abs() < 1e-12, "{p:?}");
            }
        }
    }

    #[test]
    fn template_space_runs_take_the_bold_grid_copy_else_the_t1w_one_through_the_transform() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let touch = |rel: &str| {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"").unwrap();
        };
        // fMRIPrep 23+: the T1w segmentation and the normalisation only.
        touch("sub-01/anat/sub-01_desc-aparcaseg_dseg.nii.gz");
        touch("sub-01/anat/sub-01_from-T1w_to-MNI152NLin2009cAsym_mode-image_xfm.h5");
        touch("sub-01/anat/sub-01_from-MNI152NLin2009cAsym_to-T1w_mode-image_xfm.h5");
        let space = "MNI152NLin2009cAsym:res-2";
        let found = find_fmriprep_aparcaseg(root, "01", space).unwrap();
        assert!(found.volume.ends_with("sub-01_desc-aparcaseg_dseg.nii.gz"));
        let transform = found.transform.unwrap();
        assert!(transform.ends_with("sub-01_from-T1w_to-MNI152NLin2009cAsym_mode-image_xfm.h5"));
        let t1w = find_fmriprep_aparcaseg(root, "01", "T1w").unwrap();
        assert_eq!(t1w.transform, None);
        // No transform to another template: refused, naming what is missing.
        let err = find_fmriprep_aparcaseg(root, "01", "MNI152NLin6Asym").unwrap_err();
        assert!(
            err.to_string().contains("from-T1w_to-MNI152NLin6Asym"),
            "{err}"
        );
        // fMRIPrep 20-22: a copy on the BOLD grid of the space is taken as it is.
        touch(
            "sub-01/func/sub-01_task-a_run-1_space-MNI152NLin2009cAsym_desc-aparcaseg_dseg.nii.gz",
        );
        let found = find_fmriprep_aparcaseg(root, "01", space).unwrap();
        assert!(found
            .volume
            .to_string_lossy()
            .contains("func/sub-01_task-a_run-1_space-MNI"));
        assert_eq!(found.transform, None);
    }

    #[test]
    fn nearest_neighbour_on_a_grid_twice_as_fine() {
        // BOLD 2 mm, atlas 1 mm with the same origin: BOLD voxel i is atlas voxel 2i.
        let bold = [
            [2.0, 0.0, 0.0, -10.0],
            [0.0, 2.0, 0.0, -10.0],
            [0.0, 0.0, 2.0, -10.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let mut fine = bold;
        (0..3).for_each(|r| fine[r][r] = 1.0);
        let m = product(&invert_affine(&fine).unwrap(), &bold);
        assert_eq!(nearest(&m, [3, 0, 4], [10, 10, 10]), Some([6, 0, 8]));
        assert_eq!(nearest(&m, [5, 0, 0], [10, 10, 10]), None);
    }
}
