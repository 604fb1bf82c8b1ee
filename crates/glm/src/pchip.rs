//! Piecewise cubic Hermite interpolation with shape-preserving slopes (Fritsch & Carlson, with
//! Fritsch & Butland's weighted harmonic mean at interior knots and the three-point rule at the
//! ends), as scipy's `PchipInterpolator` computes it. GLMsingle resamples every HRF with it.

/// A pchip interpolant through the points (x, y).
#[derive(Debug, Clone)]
pub struct Pchip {
    x: Vec<f64>,
    y: Vec<f64>,
    /// Slope at each knot.
    slopes: Vec<f64>,
}

/// Sign as numpy's: −1, 0 or 1.
fn sign(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// The slope at an end knot from the two nearest intervals (widths h0, h1; secants m0, m1),
/// zero where it would leave the data's monotonicity, capped at 3·m0.
fn end_slope(h0: f64, h1: f64, m0: f64, m1: f64) -> f64 {
    let d = ((2.0 * h0 + h1) * m0 - h0 * m1) / (h0 + h1);
    if sign(d) != sign(m0) {
        0.0
    } else if sign(m0) != sign(m1) && d.abs() > 3.0 * m0.abs() {
        3.0 * m0
    } else {
        d
    }
}

/// Slopes at the knots from the interval widths `h` and secants `m` (one fewer than knots).
fn knot_slopes(h: &[f64], m: &[f64]) -> Vec<f64> {
    let n = h.len() + 1;
    if n == 2 {
        return vec![m[0]; 2];
    }
    let mut d = vec![0.0; n];
    for k in 1..n - 1 {
        let (m0, m1) = (m[k - 1], m[k]);
        if sign(m0) != sign(m1) || m0 == 0.0 || m1 == 0.0 {
            continue;
        }
        let (w1, w2) = (2.0 * h[k] + h[k - 1], h[k] + 2.0 * h[k - 1]);
        d[k] = (w1 + w2) / (w1 / m0 + w2 / m1);
    }
    d[0] = end_slope(h[0], h[1], m[0], m[1]);
    d[n - 1] = end_slope(h[n - 2], h[n - 3], m[n - 2], m[n - 3]);
    d
}

impl Pchip {
    /// `x` strictly increasing, at least two points, as long as `y`.
    pub fn new(x: &[f64], y: &[f64]) -> Pchip {
        assert!(
            x.len() >= 2 && x.len() == y.len(),
            "pchip: two or more (x, y) points"
        );
        assert!(
            x.windows(2).all(|w| w[1] > w[0]),
            "pchip: x must increase strictly"
        );
        let h: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
        let m: Vec<f64> = (0..h.len()).map(|k| (y[k + 1] - y[k]) / h[k]).collect();
        Pchip {
            slopes: knot_slopes(&h, &m),
            x: x.to_vec(),
            y: y.to_vec(),
        }
    }

    /// The interpolant at `t`. Outside [x₀, xₙ₋₁]: the end interval's cubic continued when
    /// `extrapolate`, NaN otherwise (scipy's `extrapolate=False`).
    pub fn at(&self, t: f64, extrapolate: bool) -> f64 {
        let (first, last) = (self.x[0], self.x[self.x.len() - 1]);
        if t.is_nan() || (!extrapolate && !(first..=last).contains(&t)) {
            return f64::NAN;
        }
        // The interval [x_k, x_{k+1}) holding t; the last one also holds its right end.
        let k = self
            .x
            .partition_point(|&v| v <= t)
            .saturating_sub(1)
            .min(self.x.len() - 2);
        let h = self.x[k + 1] - self.x[k];
        let (d0, d1) = (self.slopes[k], self.slopes[k + 1]);
        let m = (self.y[k + 1] - self.y[k]) / h;
        let c2 = (3.0 * m - 2.0 * d0 - d1) / h;
        let c3 = (d0 + d1 - 2.0 * m) / (h * h);
        let s = t - self.x[k];
        self.y[k] + s * (d0 + s * (c2 + s * c3))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_through_its_points_and_keeps_monotone_data_monotone() {
        let x = [0.0, 1.0, 2.5, 3.0, 5.0];
        let y = [0.0, 0.5, 2.0, 2.0, 4.0];
        let p = Pchip::new(&x, &y);
        for (&xi, &yi) in x.iter().zip(&y) {
            assert!((p.at(xi, false) - yi).abs() < 1e-12);
        }
        let samples: Vec<f64> = (0..=500).map(|i| p.at(i as f64 / 100.0, false)).collect();
        assert!(samples.windows(2).all(|w| w[1] >= w[0] - 1e-12));
        // Flat between equal neighbours: no overshoot.
        assert!((p.at(2.75, false) - 2.0).abs() < 1e-12);
        assert!(p.at(-0.1, false).is_nan() && p.at(5.1, false).is_nan());
        assert!(p.at(5.1, true).is_finite());
    }

    #[test]
    fn two_points_are_a_line() {
        let p = Pchip::new(&[1.0, 3.0], &[2.0, 6.0]);
        assert!((p.at(2.0, false) - 4.0).abs() < 1e-12);
        assert!((p.at(4.0, true) - 8.0).abs() < 1e-12);
    }
}
