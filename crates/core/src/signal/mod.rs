//! Time series: GLMsingle's polynomial drift terms (shared by the GLM and the run preparation)
//! and [`detrend`], per-voxel detrending and z-scoring of one run.

pub mod detrend;

/// GLMsingle's polynomial degree for a run of `seconds`: round(minutes / 2), halves away from
/// zero, computed as GLMsingle does (((n · tr) / 60) / 2); 0 for no duration. An 8-min run gets
/// 4, an 80-s run 1.
pub fn degree_for_seconds(seconds: f64) -> usize {
    if seconds.is_finite() && seconds > 0.0 {
        (seconds / 60.0 / 2.0).round() as usize
    } else {
        0
    }
}

/// Orthonormal columns (each `n` long) spanning the polynomials of degrees 0…`degree` of
/// linspace(−1, 1, n), the span of GLMsingle's `make_polynomial_matrix`. At most `n` columns.
pub fn polynomial_basis(n: usize, degree: usize) -> Vec<Vec<f64>> {
    let x: Vec<f64> = (0..n)
        .map(|t| {
            if n > 1 {
                2.0 * t as f64 / (n - 1) as f64 - 1.0
            } else {
                0.0
            }
        })
        .collect();
    let powers = (0..=degree.min(n.saturating_sub(1)))
        .map(|d| x.iter().map(|&xi| xi.powi(d as i32)).collect())
        .collect();
    orthonormalise(&[], powers)
}

/// `columns` (each as long as the basis vectors) made orthonormal to the orthonormal `basis`
/// and to each other (Gram–Schmidt, twice for rounding); a column (nearly) in the span of the
/// ones before it is dropped, as a pseudo-inverse would.
pub fn orthonormalise(basis: &[Vec<f64>], columns: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
    let mut out: Vec<Vec<f64>> = Vec::new();
    for mut v in columns {
        let before = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        for _ in 0..2 {
            for q in basis.iter().chain(&out) {
                let dot: f64 = v.iter().zip(q).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(q).for_each(|(a, b)| *a -= dot * b);
            }
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 1e-10 * before.max(1e-300) && norm > 0.0 {
            v.iter_mut().for_each(|a| *a /= norm);
            out.push(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_degree_follows_glmsingle() {
        assert_eq!(degree_for_seconds(480.0), 4);
        assert_eq!(degree_for_seconds(80.0), 1);
        assert_eq!(degree_for_seconds(0.0), 0);
        assert_eq!(degree_for_seconds(f64::NAN), 0);
    }

    #[test]
    fn the_polynomial_basis_is_orthonormal() {
        let basis = polynomial_basis(30, 3);
        assert_eq!(basis.len(), 4);
        for (i, a) in basis.iter().enumerate() {
            for (j, b) in basis.iter().enumerate() {
                let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                let expected = if i == j { 1.0 } else { 0.0 };
                assert!((dot - expected).abs() < 1e-12, "{i} {j} {dot}");
            }
        }
        assert_eq!(
            polynomial_basis(2, 5).len(),
            2,
            "no more columns than samples"
        );
    }
}
