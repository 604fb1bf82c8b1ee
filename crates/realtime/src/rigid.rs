//! Rigid-body transforms of world space: 3 translations (mm) and 3 rotations (degrees) about
//! a centre, rotations composed as SPM's `spm_matrix` does (R = Rx · Ry · Rz: pitch about x,
//! roll about y, yaw about z).

use serde::{Deserialize, Serialize};

/// The 6 motion parameters a motion trace plots.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RigidParams {
    /// Along x, y, z (mm).
    pub translation_mm: [f64; 3],
    /// About x, y, z (degrees).
    pub rotation_deg: [f64; 3],
}

/// `w ↦ rotation · w + translation` on world millimetres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rigid {
    /// Orthonormal rotation, row-major.
    pub rotation: [[f64; 3]; 3],
    /// Translation applied after the rotation (mm).
    pub translation: [f64; 3],
}

/// R = Rx(a) · Ry(b) · Rz(g) for angles in radians.
pub fn rotation_matrix(angles: [f64; 3]) -> [[f64; 3]; 3] {
    let (sa, ca) = angles[0].sin_cos();
    let (sb, cb) = angles[1].sin_cos();
    let (sg, cg) = angles[2].sin_cos();
    [
        [cb * cg, -cb * sg, sb],
        [sa * sb * cg + ca * sg, -sa * sb * sg + ca * cg, -sa * cb],
        [-ca * sb * cg + sa * sg, ca * sb * sg + sa * cg, ca * cb],
    ]
}

/// The angles (radians) of [`rotation_matrix`] back from the matrix.
pub fn rotation_angles(r: &[[f64; 3]; 3]) -> [f64; 3] {
    let b = r[0][2].clamp(-1.0, 1.0).asin();
    let a = (-r[1][2]).atan2(r[2][2]);
    let g = (-r[0][1]).atan2(r[0][0]);
    [a, b, g]
}

fn mat_vec(m: &[[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    std::array::from_fn(|r| m[r][0] * v[0] + m[r][1] * v[1] + m[r][2] * v[2])
}

fn mat_mul(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    std::array::from_fn(|r| std::array::from_fn(|c| (0..3).map(|k| a[r][k] * b[k][c]).sum()))
}

impl Rigid {
    /// No motion.
    pub const IDENTITY: Rigid = Rigid {
        rotation: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        translation: [0.0; 3],
    };

    /// `w ↦ R (w − c) + c + t` for translations in mm and angles in radians.
    pub fn about(centre: [f64; 3], translation: [f64; 3], angles_rad: [f64; 3]) -> Rigid {
        let rotation = rotation_matrix(angles_rad);
        let rc = mat_vec(&rotation, centre);
        Rigid {
            rotation,
            translation: std::array::from_fn(|i| centre[i] - rc[i] + translation[i]),
        }
    }

    /// The transform of motion parameters (mm, degrees) about `centre`: the inverse of
    /// [`Rigid::params`].
    pub fn from_params(params: &RigidParams, centre: [f64; 3]) -> Rigid {
        Rigid::about(
            centre,
            params.translation_mm,
            params.rotation_deg.map(f64::to_radians),
        )
    }

    /// The parameters of this transform about `centre`: the translation is where the
    /// centre goes.
    pub fn params(&self, centre: [f64; 3]) -> RigidParams {
        let moved = self.apply(centre);
        RigidParams {
            translation_mm: std::array::from_fn(|i| moved[i] - centre[i]),
            rotation_deg: rotation_angles(&self.rotation).map(f64::to_degrees),
        }
    }

    /// The image of world point `w` (mm).
    pub fn apply(&self, w: [f64; 3]) -> [f64; 3] {
        let r = mat_vec(&self.rotation, w);
        std::array::from_fn(|i| r[i] + self.translation[i])
    }

    /// `self ∘ inner`: `inner` first.
    pub fn compose(&self, inner: &Rigid) -> Rigid {
        let t = mat_vec(&self.rotation, inner.translation);
        Rigid {
            rotation: mat_mul(&self.rotation, &inner.rotation),
            translation: std::array::from_fn(|i| t[i] + self.translation[i]),
        }
    }

    /// The inverse transform.
    pub fn inverse(&self) -> Rigid {
        let rt: [[f64; 3]; 3] =
            std::array::from_fn(|r| std::array::from_fn(|c| self.rotation[c][r]));
        let t = mat_vec(&rt, self.translation);
        Rigid {
            rotation: rt,
            translation: t.map(|v| -v),
        }
    }

    /// The row-major 4×4 matrix.
    pub fn matrix(&self) -> [[f64; 4]; 4] {
        let mut m = [[0.0; 4]; 4];
        for (r, row) in m.iter_mut().take(3).enumerate() {
            row[..3].copy_from_slice(&self.rotation[r]);
            row[3] = self.translation[r];
        }
        m[3][3] = 1.0;
        m
    }

    /// The largest displacement (mm) this transform gives a point within `radius_mm` of
    /// `centre`, bounded as translation + rotation angle × radius.
    pub fn displacement_bound(&self, centre: [f64; 3], radius_mm: f64) -> f64 {
        let p = self.params(centre);
        let t = p.translation_mm.iter().map(|v| v * v).sum::<f64>().sqrt();
        let trace = self.rotation[0][0] + self.rotation[1][1] + self.rotation[2][2];
        let angle = ((trace - 1.0) / 2.0).clamp(-1.0, 1.0).acos();
        t + angle * radius_mm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_round_trip_and_inverse_undoes() {
        let centre = [10.0, -20.0, 5.0];
        let p = RigidParams {
            translation_mm: [1.5, -0.7, 2.25],
            rotation_deg: [3.0, -8.0, 12.5],
        };
        let t = Rigid::from_params(&p, centre);
        let back = t.params(centre);
        for i in 0..3 {
            assert!((back.translation_mm[i] - p.translation_mm[i]).abs() < 1e-12);
            assert!((back.rotation_deg[i] - p.rotation_deg[i]).abs() < 1e-12);
        }
        let w = [3.0, 4.0, -7.0];
        let there_and_back = t.inverse().compose(&t).apply(w);
        for i in 0..3 {
            assert!((there_and_back[i] - w[i]).abs() < 1e-12);
        }
    }

    #[test]
    fn rotations_follow_spm_order() {
        // spm_matrix([0 0 0 a b g]) has R = R1(a)·R2(b)·R3(g); with a = b = 0 it is a yaw.
        let r = rotation_matrix([0.0, 0.0, std::f64::consts::FRAC_PI_2]);
        let x = mat_vec(&r, [1.0, 0.0, 0.0]);
        assert!((x[1] - 1.0).abs() < 1e-12 && x[0].abs() < 1e-12);
        let p = rotation_matrix([0.1, 0.0, 0.0]);
        let y = rotation_matrix([0.0, 0.2, 0.0]);
        let z = rotation_matrix([0.0, 0.0, 0.3]);
        let composed = mat_mul(&mat_mul(&p, &y), &z);
        let direct = rotation_matrix([0.1, 0.2, 0.3]);
        for r in 0..3 {
            for c in 0..3 {
                assert!((composed[r][c] - direct[r][c]).abs() < 1e-12);
            }
        }
    }
}
