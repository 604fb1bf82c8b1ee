//! Scalar math for the vectorised loops: `exp` and `erf` without libm calls (so that loops over
//! slices compile to vector code), and the shifted exponentials of a softmax row.

/// `exp(x)` for f32 without a libm call, so that loops over slices vectorise: Cody-Waite
/// range reduction `x = n ln2 + r` and a degree-7 polynomial (Cephes `expf` coefficients),
/// relative error ~2e-7 over the clamped range [-87.3, 88.3].
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding and subtracting rounds to an integer.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 88.3);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // The integer n sits in the low mantissa bits of `shifted` (whose exponent is that of
    // 1.5 * 2^23): reading it from there, rather than by a float-to-int cast, which Rust
    // saturates lane by lane, keeps the loop vectorised.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    y * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

/// `erf(x)` for f32 without a libm call: Abramowitz & Stegun 7.1.26, absolute error below
/// 1.5e-7 (plus [`exp_f32`]'s), odd in `x`.
#[inline(always)]
pub(crate) fn erf_f32(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let mut p = 1.061_405_4f32;
    p = p * t - 1.453_152;
    p = p * t + 1.421_413_8;
    p = p * t - 0.284_496_74;
    p = p * t + 0.254_829_6;
    let y = 1.0 - p * t * exp_f32(-a * a);
    y.copysign(x)
}

/// `row[i] = exp(row[i] − max(row))`, returning the sum of the new values.
#[inline(always)]
pub(crate) fn exp_shifted_in_place(row: &mut [f32]) -> f32 {
    // Eight independent lanes let the compiler vectorise the max and the sum.
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = l.max(v);
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(lanes.iter())
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut acc = [0f32; 8];
    let mut chunks = row.chunks_exact_mut(8);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *v = exp_f32(*v - max);
            *a += *v;
        }
    }
    let mut sum = 0f32;
    for v in chunks.into_remainder() {
        *v = exp_f32(*v - max);
        sum += *v;
    }
    sum + acc.iter().sum::<f32>()
}

/// `d silu(v) / dv = σ(v)·(1 + v·(1 − σ(v)))`.
#[inline(always)]
pub(crate) fn silu_grad_f32(v: f32) -> f32 {
    let s = 1.0 / (1.0 + exp_f32(-v));
    s * (1.0 + v * (1.0 - s))
}

/// `(Φ(u), φ(u))`, the standard normal's distribution and density: exact GELU is `u·Φ(u)`, its
/// derivative `Φ(u) + u·φ(u)`.
#[inline(always)]
pub(crate) fn normal_cdf_pdf_f32(u: f32) -> (f32, f32) {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    (
        0.5 * (1.0 + erf_f32(u * std::f32::consts::FRAC_1_SQRT_2)),
        INV_SQRT_2PI * exp_f32(-0.5 * u * u),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_is_accurate() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 0.5 {
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 5e-7, "relative error {worst}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(-1000.0) < 1e-37);
    }
}
