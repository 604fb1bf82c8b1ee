//! Splitting the explained variance of a joint model between its feature spaces.
//!
//! * [`r2_score_split`] and [`correlation_score_split`]: himalaya's product-measure split of
//!   one joint model's R² (or correlation) into per-band contributions that add up to the
//!   joint score (`himalaya.scoring`).
//! * [`partition_two`] and [`partition_three`]: set-theoretic variance partitioning from
//!   the R² of separately fitted models on every subset of the feature spaces (unique
//!   variance of A = R²(all) − R²(all but A), shared parts by inclusion–exclusion).

use faer::{Mat, MatRef};

use crate::error::{Result, RidgeError};
use crate::preprocess::check_finite;

/// Checks that every part has the shape of `y_true` and finite values.
fn check_parts(y_true: MatRef<'_, f32>, parts: &[MatRef<'_, f32>]) -> Result<()> {
    if parts.is_empty() {
        return Err(RidgeError::Shape("no prediction part given".into()));
    }
    check_finite("y_true", y_true)?;
    for (b, part) in parts.iter().enumerate() {
        if (part.nrows(), part.ncols()) != (y_true.nrows(), y_true.ncols()) {
            return Err(RidgeError::Shape(format!(
                "prediction part {b} is {}×{}, y_true is {}×{}",
                part.nrows(),
                part.ncols(),
                y_true.nrows(),
                y_true.ncols()
            )));
        }
        check_finite("a prediction part", *part)?;
    }
    Ok(())
}

/// himalaya's `r2_score_split`: the contribution of each part to the R² of their sum.
///
/// `y_true` (n×t) must be zero-mean over samples (as in himalaya, it is not centered here);
/// `parts[b]` (n×t each) are the per-band predictions. Returns B×t:
///
/// ```text
/// r2[b, j] = Σ_i (2 y_ij ŷ_b,ij − Σ_c ŷ_b,ij ŷ_c,ij) / Σ_i y_ij²    (include_correlation)
/// r2[b, j] = Σ_i (2 y_ij ŷ_b,ij − ŷ_b,ij²) / Σ_i y_ij²              (otherwise)
/// ```
///
/// With `include_correlation` the rows add up to `1 − ‖y − Σ_b ŷ_b‖² / ‖y‖²`. A target with
/// `Σ y² = 0` gets NaN (himalaya divides by zero there).
pub fn r2_score_split(
    y_true: MatRef<'_, f32>,
    parts: &[MatRef<'_, f32>],
    include_correlation: bool,
) -> Result<Mat<f64>> {
    check_parts(y_true, parts)?;
    let (n, t) = (y_true.nrows(), y_true.ncols());
    let mut out = Mat::<f64>::zeros(parts.len(), t);
    for j in 0..t {
        let y = y_true.col(j);
        let sst: f64 = (0..n).map(|i| (y[i] as f64).powi(2)).sum();
        for (b, part) in parts.iter().enumerate() {
            let own = part.col(j);
            let mut sum = 0.0;
            for i in 0..n {
                let pb = own[i] as f64;
                let product = match include_correlation {
                    true => parts.iter().map(|c| c[(i, j)] as f64).sum::<f64>() * pb,
                    false => pb * pb,
                };
                sum += 2.0 * y[i] as f64 * pb - product;
            }
            out[(b, j)] = if sst == 0.0 { f64::NAN } else { sum / sst };
        }
    }
    Ok(out)
}

/// himalaya's `correlation_score_split`: the contribution of each part to the Pearson
/// correlation between `y_true` and the sum of the parts (B×t; rows add up to it).
///
/// `r[b, j] = mean_i(ỹ_ij ŷ̃_b,ij) / (std(y_j) · std(Σ_c ŷ_c,j))` with `~` the removal of the
/// column mean and population standard deviations (a zero deviation counts as 1).
pub fn correlation_score_split(
    y_true: MatRef<'_, f32>,
    parts: &[MatRef<'_, f32>],
) -> Result<Mat<f64>> {
    check_parts(y_true, parts)?;
    let (n, t) = (y_true.nrows(), y_true.ncols());
    let mut out = Mat::<f64>::zeros(parts.len(), t);
    let centered = |values: Vec<f64>| {
        let mean = values.iter().sum::<f64>() / n as f64;
        values.into_iter().map(|v| v - mean).collect::<Vec<f64>>()
    };
    let deviation = |values: &[f64]| {
        let std = (values.iter().map(|v| v * v).sum::<f64>() / n as f64).sqrt();
        if std == 0.0 {
            1.0
        } else {
            std
        }
    };
    for j in 0..t {
        let y = centered((0..n).map(|i| y_true[(i, j)] as f64).collect());
        let parts_c: Vec<Vec<f64>> = parts
            .iter()
            .map(|p| centered((0..n).map(|i| p[(i, j)] as f64).collect()))
            .collect();
        let sum: Vec<f64> = (0..n).map(|i| parts_c.iter().map(|p| p[i]).sum()).collect();
        let scale = deviation(&y) * deviation(&sum);
        for (b, part) in parts_c.iter().enumerate() {
            let covariance = y.iter().zip(part).map(|(a, b)| a * b).sum::<f64>() / n as f64;
            out[(b, j)] = covariance / scale;
        }
    }
    Ok(out)
}

/// Variance partition of two feature spaces A and B (per target).
#[derive(Debug, Clone, PartialEq)]
pub struct TwoSpacePartition {
    /// `R²(AB) − R²(B)`.
    pub unique_a: Vec<f64>,
    /// `R²(AB) − R²(A)`.
    pub unique_b: Vec<f64>,
    /// `R²(A) + R²(B) − R²(AB)`.
    pub shared: Vec<f64>,
}

/// Partitions from the R² (per target) of the models on A, on B and on both.
pub fn partition_two(r2_a: &[f64], r2_b: &[f64], r2_ab: &[f64]) -> Result<TwoSpacePartition> {
    same_lengths(&[r2_a, r2_b, r2_ab])?;
    let map = |f: &dyn Fn(usize) -> f64| (0..r2_ab.len()).map(f).collect();
    Ok(TwoSpacePartition {
        unique_a: map(&|j| r2_ab[j] - r2_b[j]),
        unique_b: map(&|j| r2_ab[j] - r2_a[j]),
        shared: map(&|j| r2_a[j] + r2_b[j] - r2_ab[j]),
    })
}

/// R² per target of the models fitted on each subset of three feature spaces A, B, C.
#[derive(Debug, Clone, Copy)]
pub struct ThreeSpaceR2<'a> {
    /// R²(A), one per target.
    pub a: &'a [f64],
    /// R²(B).
    pub b: &'a [f64],
    /// R²(C).
    pub c: &'a [f64],
    /// R²(AB), the model on A and B together.
    pub ab: &'a [f64],
    /// R²(AC).
    pub ac: &'a [f64],
    /// R²(BC).
    pub bc: &'a [f64],
    /// R²(ABC).
    pub abc: &'a [f64],
}

/// The seven regions of the Venn diagram of three feature spaces (per target). They add up
/// to `R²(ABC)`; `a + ab + ac + abc = R²(A)` and likewise for B and C.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreeSpacePartition {
    /// Unique to A: `R²(ABC) − R²(BC)`.
    pub unique_a: Vec<f64>,
    /// Unique to B: `R²(ABC) − R²(AC)`.
    pub unique_b: Vec<f64>,
    /// Unique to C: `R²(ABC) − R²(AB)`.
    pub unique_c: Vec<f64>,
    /// Shared by A and B only: `R²(AC) + R²(BC) − R²(C) − R²(ABC)`.
    pub shared_ab: Vec<f64>,
    /// Shared by A and C only: `R²(AB) + R²(BC) − R²(B) − R²(ABC)`.
    pub shared_ac: Vec<f64>,
    /// Shared by B and C only: `R²(AB) + R²(AC) − R²(A) − R²(ABC)`.
    pub shared_bc: Vec<f64>,
    /// Shared by all three: `R²(A) + R²(B) + R²(C) − R²(AB) − R²(AC) − R²(BC) + R²(ABC)`.
    pub shared_abc: Vec<f64>,
}

/// Partitions three feature spaces from the R² of the models on all seven subsets.
pub fn partition_three(r2: ThreeSpaceR2<'_>) -> Result<ThreeSpacePartition> {
    let ThreeSpaceR2 {
        a,
        b,
        c,
        ab,
        ac,
        bc,
        abc,
    } = r2;
    same_lengths(&[a, b, c, ab, ac, bc, abc])?;
    let map = |f: &dyn Fn(usize) -> f64| (0..abc.len()).map(f).collect();
    Ok(ThreeSpacePartition {
        unique_a: map(&|j| abc[j] - bc[j]),
        unique_b: map(&|j| abc[j] - ac[j]),
        unique_c: map(&|j| abc[j] - ab[j]),
        shared_ab: map(&|j| ac[j] + bc[j] - c[j] - abc[j]),
        shared_ac: map(&|j| ab[j] + bc[j] - b[j] - abc[j]),
        shared_bc: map(&|j| ab[j] + ac[j] - a[j] - abc[j]),
        shared_abc: map(&|j| a[j] + b[j] + c[j] - ab[j] - ac[j] - bc[j] + abc[j]),
    })
}

fn same_lengths(columns: &[&[f64]]) -> Result<()> {
    let lengths: Vec<usize> = columns.iter().map(|c| c.len()).collect();
    if lengths.iter().any(|&l| l != lengths[0]) {
        return Err(RidgeError::Shape(format!(
            "the R² vectors have different lengths (targets): {lengths:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_space_regions_reconstruct_every_subset() {
        // region areas of a Venn diagram → subset R², then back
        let (ra, rb, rc, rab, rac, rbc, rabc) = (0.05, 0.02, 0.07, 0.01, 0.03, 0.04, 0.06);
        let a = ra + rab + rac + rabc;
        let b = rb + rab + rbc + rabc;
        let c = rc + rac + rbc + rabc;
        let ab = ra + rb + rab + rac + rbc + rabc;
        let ac = ra + rc + rab + rac + rbc + rabc;
        let bc = rb + rc + rab + rac + rbc + rabc;
        let abc = ra + rb + rc + rab + rac + rbc + rabc;
        let p = partition_three(ThreeSpaceR2 {
            a: &[a],
            b: &[b],
            c: &[c],
            ab: &[ab],
            ac: &[ac],
            bc: &[bc],
            abc: &[abc],
        })
        .unwrap();
        let got = [
            p.unique_a[0],
            p.unique_b[0],
            p.unique_c[0],
            p.shared_ab[0],
            p.shared_ac[0],
            p.shared_bc[0],
            p.shared_abc[0],
        ];
        for (g, e) in got.iter().zip([ra, rb, rc, rab, rac, rbc, rabc]) {
            assert!((g - e).abs() < 1e-15, "{got:?}");
        }
        let two = partition_two(&[a], &[b], &[ab]).unwrap();
        assert!((two.unique_a[0] - (ra + rac)).abs() < 1e-15);
        assert!((two.shared[0] - (rab + rabc)).abs() < 1e-15);
        assert!(partition_two(&[a], &[b, b], &[ab]).is_err());
    }
}
