//! Metrics between two flat vectors (latents, CLIP embeddings, feature maps).
//!
//! All functions take two slices of equal length `d >= 1` (`pearson` needs
//! `d >= 2`) and accumulate in f64.

use crate::error::{check_len, MetricsError, Result};

fn check_pair(a: &[f32], b: &[f32]) -> Result<()> {
    if a.is_empty() {
        return Err(MetricsError::Empty {
            what: "vector",
            need: "at least one value is required",
        });
    }
    check_len("second vector (must match first)", a.len(), b.len())
}

/// Mean squared error, `mean((a - b)^2)`. Shapes: `a`, `b`: `(d,)`.
pub fn mse(a: &[f32], b: &[f32]) -> Result<f64> {
    check_pair(a, b)?;
    let sum: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| {
            let diff = f64::from(x) - f64::from(y);
            diff * diff
        })
        .sum();
    Ok(sum / a.len() as f64)
}

/// Pearson correlation, as `np.corrcoef(a, b)[0, 1]`. Shapes: `(d,)`, `d >= 2`.
///
/// Returns NaN when either input is constant (zero variance), as numpy does;
/// callers averaging over a dataset see the NaN rather than a silent 0.
pub fn pearson(a: &[f32], b: &[f32]) -> Result<f64> {
    check_pair(a, b)?;
    if a.len() < 2 {
        return Err(MetricsError::InvalidArgument(
            "Pearson correlation needs at least 2 values".into(),
        ));
    }
    Ok(pearson_f64(
        a.iter().map(|&x| f64::from(x)),
        b.iter().map(|&x| f64::from(x)),
    ))
}

/// Correlation distance `1 − pearson(a, b)`, as `scipy.spatial.distance.correlation` (the
/// distance MindEye reports for EfficientNet-B1 and SwAV features). Shapes: `(d,)`, `d >= 2`.
pub fn correlation_distance(a: &[f32], b: &[f32]) -> Result<f64> {
    Ok(1.0 - pearson(a, b)?)
}

/// Cosine similarity `a·b / (|a| |b|)`. Shapes: `(d,)`.
///
/// Returns NaN if either vector is all zeros (the angle is undefined).
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> Result<f64> {
    check_pair(a, b)?;
    let (mut dot, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        aa += x * x;
        bb += y * y;
    }
    let denom = aa.sqrt() * bb.sqrt();
    Ok(if denom == 0.0 { f64::NAN } else { dot / denom })
}

/// Pearson correlation of two equally long f64 sequences (length >= 1 checked
/// by callers). Two-pass (mean first) for accuracy on values far from zero.
/// Clamped to [-1, 1] like `np.corrcoef`.
pub(crate) fn pearson_f64<A, B>(a: A, b: B) -> f64
where
    A: Iterator<Item = f64> + Clone,
    B: Iterator<Item = f64> + Clone,
{
    let mut n = 0usize;
    let (mut sum_a, mut sum_b) = (0.0f64, 0.0f64);
    for (x, y) in a.clone().zip(b.clone()) {
        sum_a += x;
        sum_b += y;
        n += 1;
    }
    let (mean_a, mean_b) = (sum_a / n as f64, sum_b / n as f64);
    let (mut sab, mut saa, mut sbb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.zip(b) {
        let (dx, dy) = (x - mean_a, y - mean_b);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    let denom = saa.sqrt() * sbb.sqrt();
    if denom == 0.0 {
        return f64::NAN;
    }
    (sab / denom).clamp(-1.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_vectors() {
        let a = [0.5f32, -1.0, 2.0, 3.5];
        assert_eq!(mse(&a, &a).unwrap(), 0.0);
        assert!((pearson(&a, &a).unwrap() - 1.0).abs() < 1e-12);
        assert!((cosine_similarity(&a, &a).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn known_values() {
        let a = [1.0f32, 2.0, 3.0];
        let b = [3.0f32, 2.0, 1.0];
        assert!((mse(&a, &b).unwrap() - 8.0 / 3.0).abs() < 1e-12);
        assert!((pearson(&a, &b).unwrap() + 1.0).abs() < 1e-12);
        assert!((cosine_similarity(&a, &b).unwrap() - 10.0 / 14.0).abs() < 1e-12);
        // Orthogonal vectors.
        assert!(cosine_similarity(&[1.0, 0.0], &[0.0, 2.0]).unwrap().abs() < 1e-15);
    }

    #[test]
    fn degenerate_inputs_give_nan() {
        assert!(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0])
            .unwrap()
            .is_nan());
        assert!(cosine_similarity(&[0.0, 0.0], &[1.0, 2.0])
            .unwrap()
            .is_nan());
    }

    #[test]
    fn shape_errors() {
        assert!(matches!(
            mse(&[1.0, 2.0], &[1.0]),
            Err(MetricsError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            pearson(&[1.0], &[1.0, 2.0]),
            Err(MetricsError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            cosine_similarity(&[], &[]),
            Err(MetricsError::Empty { .. })
        ));
        assert!(matches!(
            pearson(&[1.0], &[2.0]),
            Err(MetricsError::InvalidArgument(_))
        ));
    }
}
