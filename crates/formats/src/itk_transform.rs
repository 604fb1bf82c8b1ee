//! ITK's HDF5 transform files (`.h5`), as fMRIPrep writes its spatial normalisation:
//! `anat/sub-<S>_from-T1w_to-<SPACE>_mode-image_xfm.h5`, ANTs' composite of an affine and a
//! displacement field.
//!
//! ```text
//! /TransformGroup/0/TransformType            "CompositeTransform_double_3_3"
//! /TransformGroup/<n>/TransformType          "AffineTransform_{double,float}_3_3" or
//!                                            "DisplacementFieldTransform_{double,float}_3_3"
//! /TransformGroup/<n>/TransformParameters    affine: 3×3 matrix (row-major), translation;
//!                                            field: a vector per voxel, components fastest,
//!                                            then x, y, z
//! /TransformGroup/<n>/TransformFixedParameters
//!                                            affine: centre; field: size, origin, spacing,
//!                                            direction (3×3 row-major)
//! ```
//! ITK works in LPS millimetres; [`ItkTransform::map_ras`] takes and returns RAS (NIfTI's world
//! space). A composite applies its last transform first. With `mode-image`, the transform maps
//! points of the target space (`to-`) to the source space (`from-`): what resampling a
//! source-space image onto a target grid needs, as `antsApplyTransforms` does. An affine maps
//! `p` to `M (p − c) + c + t`; a field adds its displacement, linearly interpolated, inside
//! `[−0.5, n − 0.5)` voxels of its grid (ITK's buffer test) and nothing outside.

use crate::error::{guard_foreign_parser, require_file, DataError, Result};
use brainrecon_core::geometry::{invert3, mul3};
use std::path::{Path, PathBuf};

const FORMAT: &str = "ITK HDF5 transform";

/// `M (p − c) + c + t`, in LPS.
#[derive(Debug, Clone, PartialEq)]
pub struct AffineStep {
    /// `M`, row-major.
    pub matrix: [[f64; 3]; 3],
    /// `t`, in mm.
    pub translation: [f64; 3],
    /// `c` (the fixed parameters), in mm.
    pub center: [f64; 3],
}

/// A dense displacement field on a grid, in LPS.
#[derive(Debug, Clone, PartialEq)]
pub struct DisplacementField {
    /// Grid size (x, y, z) in voxels.
    pub size: [usize; 3],
    /// Position of voxel (0, 0, 0), in mm (LPS).
    pub origin: [f64; 3],
    /// Voxel size (x, y, z), in mm.
    pub spacing: [f64; 3],
    /// Row-major; column `a` is the direction of grid axis `a`.
    pub direction: [[f64; 3]; 3],
    /// (x, y, z) per voxel, x fastest: `3 · size[0] · size[1] · size[2]` values.
    pub vectors: Vec<f64>,
    /// Point − origin → continuous index: (direction · diag(spacing))⁻¹.
    to_index: [[f64; 3]; 3],
}

/// One transform of a composite.
#[derive(Debug, Clone, PartialEq)]
pub enum ItkStep {
    /// `AffineTransform_{double,float}_3_3`.
    Affine(AffineStep),
    /// `DisplacementFieldTransform_{double,float}_3_3`.
    Field(DisplacementField),
}

/// A transform file's steps, in the file's (ITK's queue) order.
#[derive(Debug, Clone, PartialEq)]
pub struct ItkTransform {
    /// The file read.
    pub path: PathBuf,
    /// The composite's transforms; the last is applied first.
    pub steps: Vec<ItkStep>,
}

fn to_lps(p: [f64; 3]) -> [f64; 3] {
    [-p[0], -p[1], p[2]]
}

impl AffineStep {
    fn map(&self, p: [f64; 3]) -> [f64; 3] {
        let d: [f64; 3] = std::array::from_fn(|i| p[i] - self.center[i]);
        let m = mul3(&self.matrix, d);
        std::array::from_fn(|i| m[i] + self.center[i] + self.translation[i])
    }
}

impl DisplacementField {
    /// The field's value at LPS point `p`: trilinear between the voxels around it (neighbours
    /// beyond the grid clamped to its edge, as ITK's linear interpolator does), zero outside
    /// `[−0.5, n − 0.5)` voxels.
    fn displacement(&self, p: [f64; 3]) -> [f64; 3] {
        let index = mul3(
            &self.to_index,
            std::array::from_fn(|i| p[i] - self.origin[i]),
        );
        let inside = (0..3).all(|a| index[a] >= -0.5 && index[a] < self.size[a] as f64 - 0.5);
        if !inside {
            return [0.0; 3];
        }
        let base: [f64; 3] = std::array::from_fn(|a| index[a].floor());
        let mut out = [0.0; 3];
        for corner in 0..8 {
            let mut weight = 1.0;
            let mut flat = 0;
            let mut stride = 1;
            for a in 0..3 {
                let upper = (corner >> a) & 1 == 1;
                let frac = index[a] - base[a];
                weight *= if upper { frac } else { 1.0 - frac };
                let i =
                    (base[a] + f64::from(u8::from(upper))).clamp(0.0, self.size[a] as f64 - 1.0);
                flat += i as usize * stride;
                stride *= self.size[a];
            }
            if weight != 0.0 {
                (0..3).for_each(|c| out[c] += weight * self.vectors[3 * flat + c]);
            }
        }
        out
    }

    fn map(&self, p: [f64; 3]) -> [f64; 3] {
        let d = self.displacement(p);
        std::array::from_fn(|i| p[i] + d[i])
    }
}

impl ItkTransform {
    /// Reads a `.h5` transform file: a composite of affines and displacement fields, or one of
    /// them alone.
    pub fn read(path: &Path) -> Result<Self> {
        require_file(
            path,
            "an ITK transform (.h5), e.g. fMRIPrep's *_from-T1w_to-<SPACE>_mode-image_xfm.h5",
        )?;
        guard_foreign_parser(path, FORMAT, || read_steps(path))
    }

    /// Maps a RAS point (mm) through the steps, the last first.
    pub fn map_ras(&self, p: [f64; 3]) -> [f64; 3] {
        let mut q = to_lps(p);
        for step in self.steps.iter().rev() {
            q = match step {
                ItkStep::Affine(a) => a.map(q),
                ItkStep::Field(f) => f.map(q),
            };
        }
        to_lps(q)
    }
}

fn read_steps(path: &Path) -> Result<ItkTransform> {
    let file = hdf5_reader::Hdf5File::open(path).map_err(|e| DataError::format(path, FORMAT, e))?;
    let group = file.group("/TransformGroup").map_err(|_| {
        DataError::invalid(path, "/TransformGroup", "ITK's transform group", "none")
    })?;
    let (names, _) = group
        .member_names()
        .map_err(|e| DataError::format(path, FORMAT, e))?;
    let mut numbered: Vec<(usize, String)> = names
        .into_iter()
        .filter_map(|n| Some((n.parse::<usize>().ok()?, n)))
        .collect();
    numbered.sort();
    let mut steps = Vec::new();
    for (_, name) in &numbered {
        let member = group
            .group(name)
            .map_err(|e| DataError::format(path, FORMAT, e))?;
        let field = |what: &str| format!("/TransformGroup/{name}/{what}");
        let kind = member
            .dataset("TransformType")
            .and_then(|d| d.read_strings())
            .map_err(|_| {
                DataError::invalid(
                    path,
                    field("TransformType"),
                    "a transform type string",
                    "none",
                )
            })?;
        let kind = kind.first().cloned().unwrap_or_default();
        if kind.starts_with("CompositeTransform") {
            continue;
        }
        let read =
            |what: &str, expected: usize| read_values(path, &member, &field(what), what, expected);
        if kind.starts_with("AffineTransform") && kind.ends_with("_3_3") {
            steps.push(ItkStep::Affine(affine_step(
                &read("TransformParameters", 12)?,
                &read("TransformFixedParameters", 3)?,
            )));
        } else if kind.starts_with("DisplacementFieldTransform") && kind.ends_with("_3_3") {
            let fixed = read("TransformFixedParameters", 18)?;
            let size = field_size(path, &field("TransformFixedParameters"), &fixed)?;
            let count = 3 * size[0] * size[1] * size[2];
            let vectors = read("TransformParameters", count)?;
            steps.push(ItkStep::Field(displacement_field(
                path,
                &field("TransformFixedParameters"),
                size,
                &fixed,
                vectors,
            )?));
        } else {
            return Err(DataError::invalid(
                path,
                field("TransformType"),
                "AffineTransform_*_3_3 or DisplacementFieldTransform_*_3_3 (3-D; ANTs' and fMRIPrep's)",
                kind,
            ));
        }
    }
    if steps.is_empty() {
        return Err(DataError::invalid(
            path,
            "/TransformGroup",
            "at least one affine or displacement field",
            "none",
        ));
    }
    Ok(ItkTransform {
        path: path.to_path_buf(),
        steps,
    })
}

/// A float dataset of exactly `expected` values, as f64.
fn read_values(
    path: &Path,
    group: &hdf5_reader::group::Group,
    field: &str,
    name: &str,
    expected: usize,
) -> Result<Vec<f64>> {
    use hdf5_reader::Datatype as D;
    let dataset = group
        .dataset(name)
        .map_err(|_| DataError::invalid(path, field, "a dataset", "none"))?;
    let count: u64 = dataset.shape().iter().product();
    if count != expected as u64 {
        return Err(DataError::invalid(
            path,
            field,
            format!("{expected} values"),
            format!("{count} values"),
        ));
    }
    crate::limits::array_bytes(path, field, &[count], 8)?;
    let values: Vec<f64> = match dataset.dtype() {
        D::FloatingPoint { size: 8, .. } => dataset
            .read_array::<f64>()
            .map(|a| a.iter().copied().collect()),
        D::FloatingPoint { size: 4, .. } => dataset
            .read_array::<f32>()
            .map(|a| a.iter().map(|&v| f64::from(v)).collect()),
        other => {
            return Err(DataError::invalid(
                path,
                field,
                "float32 or float64 values",
                format!("{other:?}"),
            ))
        }
    }
    .map_err(|e| DataError::format(path, FORMAT, e))?;
    if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
        return Err(DataError::invalid(
            path,
            field,
            "finite values",
            bad.to_string(),
        ));
    }
    Ok(values)
}

fn affine_step(params: &[f64], fixed: &[f64]) -> AffineStep {
    AffineStep {
        matrix: std::array::from_fn(|r| std::array::from_fn(|c| params[3 * r + c])),
        translation: [params[9], params[10], params[11]],
        center: [fixed[0], fixed[1], fixed[2]],
    }
}

/// The field's grid size (the first three fixed parameters), checked before its values are read.
fn field_size(path: &Path, field: &str, fixed: &[f64]) -> Result<[usize; 3]> {
    let mut size = [0usize; 3];
    for a in 0..3 {
        let v = fixed[a];
        if v.fract() != 0.0 || !(1.0..=65536.0).contains(&v) {
            return Err(DataError::invalid(
                path,
                field,
                "a grid size of whole numbers 1 to 65536",
                format!("{:?}", &fixed[..3]),
            ));
        }
        size[a] = v as usize;
    }
    let count = size.iter().try_fold(3u64, |n, &s| n.checked_mul(s as u64));
    crate::limits::array_bytes(path, field, &[count.unwrap_or(u64::MAX)], 8)?;
    Ok(size)
}

fn displacement_field(
    path: &Path,
    field: &str,
    size: [usize; 3],
    fixed: &[f64],
    vectors: Vec<f64>,
) -> Result<DisplacementField> {
    let origin = [fixed[3], fixed[4], fixed[5]];
    let spacing = [fixed[6], fixed[7], fixed[8]];
    let direction: [[f64; 3]; 3] =
        std::array::from_fn(|r| std::array::from_fn(|c| fixed[9 + 3 * r + c]));
    let scaled: [[f64; 3]; 3] =
        std::array::from_fn(|r| std::array::from_fn(|c| direction[r][c] * spacing[c]));
    let to_index = invert3(&scaled)
        .filter(|_| spacing.iter().all(|&s| s > 0.0))
        .ok_or_else(|| {
            DataError::invalid(
                path,
                field,
                "positive spacings and an invertible direction",
                format!("spacing {spacing:?}, direction {direction:?}"),
            )
        })?;
    Ok(DisplacementField {
        size,
        origin,
        spacing,
        direction,
        vectors,
        to_index,
    })
}
