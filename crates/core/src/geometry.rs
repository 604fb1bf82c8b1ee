//! Small dense geometry: 3×3 matrices and 4×4 affines, inverted under one singularity rule.
//!
//! The rule is relative to the matrix's scale: a matrix is refused when its determinant is not
//! finite or `|det| ≤ 1e-12 · max|mᵢⱼ|³`, so a voxel grid in micrometres and one in metres are
//! judged alike (an absolute threshold would refuse the first and accept near-singular ones of
//! the second).

/// A 3×3 matrix, rows first.
pub type Mat3 = [[f64; 3]; 3];

/// A 4×4 affine (rows first; the last row `[0, 0, 0, 1]`).
pub type Affine = [[f64; 4]; 4];

/// Millimetres two grids' affines may differ by and still be one grid: NIfTI stores its
/// affine in 32-bit floats, whose rounding at scanner coordinates of a few hundred mm is
/// below 1e-4 mm; a real difference of grids is a voxel's fraction, far above it.
pub const AFFINE_TOLERANCE_MM: f64 = 1e-3;

/// Whether two affines place voxels at the same points: their first three rows within
/// [`AFFINE_TOLERANCE_MM`], entry by entry (the last row is `[0, 0, 0, 1]` in both).
pub fn same_affine(a: &Affine, b: &Affine) -> bool {
    a.iter().zip(b).take(3).all(|(x, y)| {
        x.iter()
            .zip(y)
            .all(|(u, v)| (u - v).abs() <= AFFINE_TOLERANCE_MM)
    })
}

/// The first three rows of an affine, 3 decimals: `[2.000 0.000 0.000 -90.000] …`.
pub fn format_affine(a: &Affine) -> String {
    let rows: Vec<String> = a[..3]
        .iter()
        .map(|r| format!("[{:.3} {:.3} {:.3} {:.3}]", r[0], r[1], r[2], r[3]))
        .collect();
    rows.join(" ")
}

/// One volume's grid as a file gives it: its voxel counts and voxel-to-world affine.
#[derive(Debug, Clone, Copy)]
pub struct Grid<'a> {
    /// The file the grid was read from (named in a refusal).
    pub path: &'a std::path::Path,
    /// Voxels along i, j, k.
    pub shape: [usize; 3],
    /// Voxel (i, j, k, 1) → world millimetres.
    pub affine: &'a Affine,
}

/// Refuses `found` unless it is the grid `expected`: the same voxel counts and affines within
/// [`AFFINE_TOLERANCE_MM`]. The error names both files, their shapes and their affines (a mask
/// shifted by 5 mm, or in 2-mm voxels, has the runs' shape and would be read silently).
pub fn check_same_grid(found: Grid, expected: Grid) -> crate::error::Result<()> {
    if found.shape == expected.shape && same_affine(found.affine, expected.affine) {
        return Ok(());
    }
    Err(crate::error::DataError::invalid(
        found.path,
        "grid",
        format!(
            "the grid of {}: shape {:?}, affine {} (resample it onto that grid first)",
            expected.path.display(),
            expected.shape,
            format_affine(expected.affine)
        ),
        format!(
            "shape {:?}, affine {}",
            found.shape,
            format_affine(found.affine)
        ),
    ))
}

/// Determinant of a 3×3 matrix.
pub fn det3(m: &Mat3) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

/// True when `det` counts as singular for a matrix whose largest absolute entry is `scale`.
pub fn is_singular(det: f64, scale: f64) -> bool {
    !det.is_finite() || det.abs() <= 1e-12 * scale.powi(3)
}

/// Inverse of a 3×3 matrix by its adjugate; `None` when (nearly) singular or not finite.
pub fn invert3(m: &Mat3) -> Option<Mat3> {
    let cof =
        |r0: usize, r1: usize, c0: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    let adj = [
        [cof(1, 2, 1, 2), -cof(0, 2, 1, 2), cof(0, 1, 1, 2)],
        [-cof(1, 2, 0, 2), cof(0, 2, 0, 2), -cof(0, 1, 0, 2)],
        [cof(1, 2, 0, 1), -cof(0, 2, 0, 1), cof(0, 1, 0, 1)],
    ];
    let det = m[0][0] * adj[0][0] + m[0][1] * adj[1][0] + m[0][2] * adj[2][0];
    let scale = m.iter().flatten().map(|v| v.abs()).fold(0.0, f64::max);
    if is_singular(det, scale) {
        return None;
    }
    Some(adj.map(|row| row.map(|v| v / det)))
}

/// `m · v`.
pub fn mul3(m: &Mat3, v: [f64; 3]) -> [f64; 3] {
    std::array::from_fn(|r| m[r][0] * v[0] + m[r][1] * v[1] + m[r][2] * v[2])
}

/// The linear (upper-left 3×3) part of an affine.
pub fn linear_part(a: &Affine) -> Mat3 {
    std::array::from_fn(|r| std::array::from_fn(|c| a[r][c]))
}

/// Inverse of an affine (rotation/scale/shear + translation); `None` when its linear part is
/// singular under [`invert3`]'s rule.
pub fn invert_affine(a: &Affine) -> Option<Affine> {
    let inverse = invert3(&linear_part(a))?;
    let mut inv: Affine = std::array::from_fn(|r| {
        std::array::from_fn(|c| if r < 3 && c < 3 { inverse[r][c] } else { 0.0 })
    });
    for row in inv.iter_mut().take(3) {
        row[3] = -(0..3).map(|c| row[c] * a[c][3]).sum::<f64>();
    }
    inv[3][3] = 1.0;
    Some(inv)
}

/// Maps point `p` through affine `a`.
pub fn apply_affine(a: &Affine, p: [f64; 3]) -> [f64; 3] {
    std::array::from_fn(|r| a[r][0] * p[0] + a[r][1] * p[1] + a[r][2] * p[2] + a[r][3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inverse_times_its_matrix_is_the_identity() {
        let m = [[2.0, 0.3, -1.0], [0.1, 1.8, 0.4], [-0.5, 0.2, 3.0]];
        let inv = invert3(&m).unwrap();
        for r in 0..3 {
            for c in 0..3 {
                let v: f64 = (0..3).map(|k| m[r][k] * inv[k][c]).sum();
                assert!(
                    (v - f64::from(u8::from(r == c))).abs() < 1e-12,
                    "{r} {c} {v}"
                );
            }
        }
    }

    #[test]
    fn the_rule_is_relative_to_the_scale() {
        let tiny = [[1e-5, 0.0, 0.0], [0.0, 1e-5, 0.0], [0.0, 0.0, 1e-5]];
        assert!(
            invert3(&tiny).is_some(),
            "a small but well-conditioned grid is invertible"
        );
        let flat = [[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 0.0, 1.0]];
        assert!(invert3(&flat).is_none());
        assert!(invert3(&[[f64::NAN, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]).is_none());
    }

    #[test]
    fn an_affine_round_trips_a_point() {
        let a = [
            [1.8, 0.0, 0.1, -72.0],
            [0.0, 1.8, 0.0, -90.5],
            [0.0, -0.2, 1.8, -60.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let inv = invert_affine(&a).unwrap();
        let p = [10.0, -3.5, 7.25];
        let back = apply_affine(&inv, apply_affine(&a, p));
        for i in 0..3 {
            assert!((back[i] - p[i]).abs() < 1e-12);
        }
    }
}

#[cfg(test)]
mod grid_tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_shifted_or_rescaled_grid_of_the_same_shape_is_refused_naming_both_files() {
        let runs: Affine = [
            [2.0, 0.0, 0.0, -90.0],
            [0.0, 2.0, 0.0, -126.0],
            [0.0, 0.0, 2.0, -72.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let expected = Grid {
            path: Path::new("bold.nii.gz"),
            shape: [4, 5, 6],
            affine: &runs,
        };
        let mut rounded = runs;
        rounded[0][3] += 1e-5; // float32 rounding
        let grid = |affine| Grid {
            path: Path::new("mask.nii.gz"),
            shape: [4, 5, 6],
            affine,
        };
        check_same_grid(grid(&rounded), expected).unwrap();
        let mut shifted = runs;
        shifted[2][3] += 5.0;
        let mut finer = runs;
        (0..3).for_each(|i| finer[i][i] = 1.0);
        for affine in [&shifted, &finer] {
            let text = check_same_grid(grid(affine), expected)
                .unwrap_err()
                .to_string();
            assert!(
                text.contains("mask.nii.gz")
                    && text.contains("bold.nii.gz")
                    && text.contains("[4, 5, 6]"),
                "{text}"
            );
        }
        let other_shape = Grid {
            shape: [4, 5, 7],
            ..grid(&runs)
        };
        assert!(check_same_grid(other_shape, expected).is_err());
    }
}
