//! Candidate band weights (gammas) for the random search, and their checks.
//!
//! himalaya (`generate_dirichlet_samples` then `gammas[0] = 1 / n_kernels`): the first
//! candidate is the uniform weighting, the others are Dirichlet draws whose concentration
//! cycles through the given list (`[c0, c1, c0, c1, …]`). The draws come from a seeded
//! ChaCha8 generator owned by this crate, so they differ from numpy's but are reproducible on
//! every machine; pass [`Candidates::Explicit`] to search exactly the same candidates as a
//! himalaya run (`n_iter=array`).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Result, RidgeError};

/// Largest accepted `|Σ_b γ_b − 1|` of an explicit candidate.
const SUM_TOLERANCE: f64 = 1e-6;

/// How the band-weight candidates are chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Candidates {
    /// The candidates themselves: one row of B non-negative weights summing to 1 each
    /// (himalaya's `n_iter=array`; e.g. the B one-hot rows search "one band per target").
    Explicit(Vec<Vec<f64>>),
    /// `n_iter` candidates: the uniform weighting first, then Dirichlet draws whose
    /// concentration cycles through `concentrations` (himalaya's default is `[0.1, 1.0]`;
    /// `f64::INFINITY` gives uniform rows), from a ChaCha8 generator seeded with `seed`.
    Dirichlet {
        /// Number of candidates, the uniform one included.
        n_iter: usize,
        /// Dirichlet concentrations (> 0): candidate `i` uses `concentrations[i % len]`.
        concentrations: Vec<f64>,
        /// Seed of the ChaCha8 generator.
        seed: u64,
    },
}

impl Default for Candidates {
    /// himalaya's defaults: 100 candidates, concentrations `[0.1, 1.0]`.
    fn default() -> Self {
        Candidates::Dirichlet {
            n_iter: 100,
            concentrations: vec![0.1, 1.0],
            seed: 0,
        }
    }
}

impl Candidates {
    /// The candidate rows (n_iter × `n_bands`), checked.
    pub fn resolve(&self, n_bands: usize) -> Result<Vec<Vec<f64>>> {
        match self {
            Candidates::Explicit(rows) => {
                check_explicit(rows, n_bands)?;
                Ok(rows.clone())
            }
            Candidates::Dirichlet {
                n_iter,
                concentrations,
                seed,
            } => dirichlet_candidates(*n_iter, n_bands, concentrations, *seed),
        }
    }
}

/// Errors unless every row has `n_bands` finite non-negative weights summing to 1.
fn check_explicit(rows: &[Vec<f64>], n_bands: usize) -> Result<()> {
    if rows.is_empty() {
        return Err(RidgeError::Options(
            "the list of band-weight candidates (gammas) is empty".into(),
        ));
    }
    for (i, row) in rows.iter().enumerate() {
        if row.len() != n_bands {
            return Err(RidgeError::Options(format!(
                "gamma candidate {i} has {} weights, expected one per band ({n_bands})",
                row.len()
            )));
        }
        if let Some(bad) = row.iter().find(|g| !(g.is_finite() && **g >= 0.0)) {
            return Err(RidgeError::Options(format!(
                "gamma candidate {i} {row:?}: weight {bad} is not a finite value ≥ 0"
            )));
        }
        let sum: f64 = row.iter().sum();
        if (sum - 1.0).abs() > SUM_TOLERANCE {
            return Err(RidgeError::Options(format!(
                "gamma candidate {i} {row:?} sums to {sum}, expected 1 (within {SUM_TOLERANCE:e})"
            )));
        }
    }
    Ok(())
}

/// `n_iter` candidates over `n_bands` bands: row 0 uniform, row `i ≥ 1` a Dirichlet draw with
/// concentration `concentrations[i % len]` (himalaya's order).
pub fn dirichlet_candidates(
    n_iter: usize,
    n_bands: usize,
    concentrations: &[f64],
    seed: u64,
) -> Result<Vec<Vec<f64>>> {
    if n_iter == 0 || n_bands == 0 {
        return Err(RidgeError::Options(format!(
            "need ≥ 1 candidate and ≥ 1 band (n_iter = {n_iter}, bands = {n_bands})"
        )));
    }
    if concentrations.is_empty() {
        return Err(RidgeError::Options(
            "the Dirichlet concentration list is empty".into(),
        ));
    }
    if let Some(bad) = concentrations.iter().find(|c| c.is_nan() || **c <= 0.0) {
        return Err(RidgeError::Options(format!(
            "Dirichlet concentration {bad} is not > 0"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let uniform = vec![1.0 / n_bands as f64; n_bands];
    let mut rows = vec![uniform.clone()];
    for i in 1..n_iter {
        let concentration = concentrations[i % concentrations.len()];
        rows.push(if concentration.is_infinite() {
            uniform.clone()
        } else {
            dirichlet(&mut rng, concentration, n_bands)
        });
    }
    Ok(rows)
}

/// One symmetric Dirichlet(`a`, …, `a`) draw: normalized Gamma(a) variables, combined in log
/// space because for small `a` a Gamma variable can underflow to 0.
fn dirichlet(rng: &mut ChaCha8Rng, a: f64, n: usize) -> Vec<f64> {
    let logs: Vec<f64> = (0..n).map(|_| log_gamma_variate(rng, a)).collect();
    let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = logs.iter().map(|l| (l - top).exp()).collect();
    let total: f64 = weights.iter().sum();
    weights.into_iter().map(|w| w / total).collect()
}

/// `ln X` for `X ~ Gamma(a, 1)`: Marsaglia & Tsang (2000) for `a ≥ 1`; for `a < 1`,
/// `X = Y · U^{1/a}` with `Y ~ Gamma(a + 1)` (their boosting step).
fn log_gamma_variate(rng: &mut ChaCha8Rng, a: f64) -> f64 {
    if a < 1.0 {
        return log_gamma_variate(rng, a + 1.0) + open_unit(rng).ln() / a;
    }
    let d = a - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = standard_normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = open_unit(rng);
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return (d * v).ln();
        }
    }
}

/// Uniform on (0, 1].
fn open_unit(rng: &mut ChaCha8Rng) -> f64 {
    1.0 - rng.gen::<f64>()
}

/// Standard normal by the Box–Muller transform.
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let (u, v) = (open_unit(rng), rng.gen::<f64>());
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_on_the_simplex_uniform_first_and_reproducible() {
        let rows = dirichlet_candidates(50, 3, &[0.1, 1.0], 7).unwrap();
        assert_eq!(rows.len(), 50);
        assert_eq!(rows[0], vec![1.0 / 3.0; 3]);
        for row in &rows {
            assert!(row.iter().all(|g| (0.0..=1.0).contains(g)));
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        assert_eq!(rows, dirichlet_candidates(50, 3, &[0.1, 1.0], 7).unwrap());
        assert_ne!(rows, dirichlet_candidates(50, 3, &[0.1, 1.0], 8).unwrap());
        // an infinite concentration gives uniform rows
        let flat = dirichlet_candidates(4, 2, &[f64::INFINITY], 0).unwrap();
        assert!(flat.iter().all(|r| r == &vec![0.5, 0.5]));
    }

    #[test]
    fn dirichlet_moments_match_the_distribution() {
        // Dirichlet(a,…,a) over B bands: mean 1/B, variance (B−1)/(B²(aB+1))
        for (a, bands) in [(0.1, 3), (1.0, 3), (2.5, 4)] {
            let draws = 20_000;
            let mut rng = ChaCha8Rng::seed_from_u64(11);
            let first: Vec<f64> = (0..draws)
                .map(|_| dirichlet(&mut rng, a, bands)[0])
                .collect();
            let mean = first.iter().sum::<f64>() / draws as f64;
            let var = first.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / draws as f64;
            let b = bands as f64;
            let (mean_ref, var_ref) = (1.0 / b, (b - 1.0) / (b * b * (a * b + 1.0)));
            // standard error of the mean is sqrt(var/draws) ≈ 0.003 at most: allow 4 of them
            assert!(
                (mean - mean_ref).abs() < 0.012,
                "a={a}: mean {mean} vs {mean_ref}"
            );
            assert!(
                (var / var_ref - 1.0).abs() < 0.05,
                "a={a}: var {var} vs {var_ref}"
            );
        }
    }

    #[test]
    fn bad_candidates_are_refused_with_their_index() {
        let bad = |rows: Vec<Vec<f64>>| {
            Candidates::Explicit(rows)
                .resolve(2)
                .unwrap_err()
                .to_string()
        };
        assert!(bad(vec![]).contains("empty"));
        assert!(bad(vec![vec![0.5, 0.5], vec![1.0]]).contains("candidate 1 has 1 weights"));
        assert!(bad(vec![vec![1.5, -0.5]]).contains("-0.5"));
        assert!(bad(vec![vec![0.3, 0.3]]).contains("sums to 0.6"));
        assert!(bad(vec![vec![f64::NAN, 1.0]]).contains("NaN"));
        assert!(dirichlet_candidates(3, 2, &[0.0], 0).is_err());
        assert!(dirichlet_candidates(0, 2, &[1.0], 0).is_err());
    }
}
