//! Bicubic resizing of a ViT position table as PyTorch's
//! `F.interpolate(mode="bicubic", align_corners=False)` computes it (CPU kernel, f32).
//!
//! Salesforce BLIP's `interpolate_pos_embed` (a 224-px checkpoint loaded into a 240-px model) and
//! transformers' `interpolate_pos_encoding` both call it with an output `size`, so the scale is
//! `in / out` and the source coordinate of output index `i` is `(i + 0.5) · scale − 0.5`, not
//! clamped at 0 (cubic). PyTorch keeps `floor` of it (at most `in − 1`), clamps the fraction to
//! [0, 1], weights the four taps `floor − 1 … floor + 2` with Keys' kernel at A = −0.75 and
//! reads taps outside the grid from the nearest border row (index clamping).
//!
//! The resize is separable: along each axis it is a matrix (`out × in`, the taps' weights,
//! summed where clamping folds taps onto one border index), applied as matmuls, which keeps it
//! differentiable.

use brainrecon_nn::{ModelError, Result};
use candle_core::Tensor;

/// PyTorch's `cubic_convolution1`: Keys' kernel for |x| ≤ 1.
fn cubic1(x: f32, a: f32) -> f32 {
    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
}

/// PyTorch's `cubic_convolution2`: Keys' kernel for 1 < |x| < 2.
fn cubic2(x: f32, a: f32) -> f32 {
    ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
}

/// The four tap weights for fraction `t` (PyTorch's `get_cubic_upsample_coefficients`).
fn cubic_coefficients(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let x2 = 1.0 - t;
    [
        cubic2(t + 1.0, A),
        cubic1(t, A),
        cubic1(x2, A),
        cubic2(x2 + 1.0, A),
    ]
}

/// The `output × input` matrix of a 1-D bicubic resize (`align_corners=False`, no scale
/// factor given), row-major.
pub fn bicubic_matrix(input: usize, output: usize) -> Vec<f32> {
    let mut m = vec![0f32; output * input];
    if input == 0 {
        return m;
    }
    let scale = input as f32 / output as f32;
    for o in 0..output {
        let real = scale * (o as f32 + 0.5) - 0.5;
        let index = (real.floor() as i64).min(input as i64 - 1);
        let t = (real - index as f32).clamp(0.0, 1.0);
        for (k, w) in cubic_coefficients(t).into_iter().enumerate() {
            let tap = (index - 1 + k as i64).clamp(0, input as i64 - 1) as usize;
            m[o * input + tap] += w;
        }
    }
    m
}

/// Resizes a grid of vectors `[h, w, d]` to `[out_h, out_w, d]` bicubically, width first then
/// height, the order of PyTorch's separable kernel.
pub fn bicubic_resize_grid(grid: &Tensor, out_h: usize, out_w: usize) -> Result<Tensor> {
    let (h, w, d) = grid.dims3()?;
    let device = grid.device();
    let dtype = grid.dtype();
    let mx = Tensor::from_vec(bicubic_matrix(w, out_w), (out_w, w), device)?.to_dtype(dtype)?;
    let my = Tensor::from_vec(bicubic_matrix(h, out_h), (out_h, h), device)?.to_dtype(dtype)?;
    // along the width: [h, out_w, d] = mx [out_w, w] · grid[row] [w, d] for each row
    let along_w = mx
        .unsqueeze(0)?
        .broadcast_as((h, out_w, w))?
        .contiguous()?
        .matmul(&grid.contiguous()?)?;
    // along the height: [out_h, out_w·d] = my [out_h, h] · [h, out_w·d]
    let out = my.matmul(&along_w.reshape((h, out_w * d))?)?;
    Ok(out.reshape((out_h, out_w, d))?)
}

/// A ViT position table `[1, 1 + g·g, d]` (class token first, then the `g × g` patch grid in
/// row-major order) resized to an `out_h × out_w` grid: `[1, 1 + out_h·out_w, d]`, the class
/// row kept. Salesforce BLIP's `interpolate_pos_embed` and transformers'
/// `interpolate_pos_encoding`.
pub fn interpolate_position_table(table: &Tensor, out_h: usize, out_w: usize) -> Result<Tensor> {
    let (one, n, d) = table.dims3()?;
    let g = (((n.saturating_sub(1)) as f64).sqrt().round()) as usize;
    if one != 1 || n < 2 || g * g + 1 != n {
        return Err(ModelError::Invalid(format!(
            "position table of shape {:?}: expected [1, 1 + g·g, d] (a class token and a square \
             patch grid)",
            table.dims()
        )));
    }
    let class = table.narrow(1, 0, 1)?;
    if (out_h, out_w) == (g, g) {
        return Ok(table.clone());
    }
    let grid = table.narrow(1, 1, g * g)?.reshape((g, g, d))?;
    let resized = bicubic_resize_grid(&grid, out_h, out_w)?.reshape((1, out_h * out_w, d))?;
    Ok(Tensor::cat(&[&class, &resized], 1)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn rows_sum_to_one_and_identity_when_sizes_match() {
        for (i, o) in [(14, 15), (24, 15), (5, 6), (3, 7), (1, 4)] {
            let m = bicubic_matrix(i, o);
            for r in 0..o {
                let s: f32 = m[r * i..(r + 1) * i].iter().sum();
                assert!((s - 1.0).abs() < 1e-6, "{i}->{o} row {r} sums to {s}");
            }
        }
        let m = bicubic_matrix(6, 6);
        for r in 0..6 {
            for c in 0..6 {
                let want = if r == c { 1.0 } else { 0.0 };
                assert!((m[r * 6 + c] - want).abs() < 1e-7);
            }
        }
    }

    #[test]
    fn border_taps_fold_onto_the_edge() {
        // 2 -> 3: output 0 sits at source -1/6, so its tap at -2 and -1 read row 0.
        let m = bicubic_matrix(2, 3);
        let real = 2.0f32 / 3.0 * 0.5 - 0.5;
        let c = cubic_coefficients(real - real.floor());
        assert!((m[0] - (c[0] + c[1] + c[2])).abs() < 1e-7);
        assert!((m[1] - c[3]).abs() < 1e-7);
    }

    #[test]
    fn half_pixel_taps_have_keys_weights_at_a_minus_three_quarters() {
        // t = 0.5: W(0.5) = 1 - 2.25·0.25 + 1.25·0.125 = 0.59375, W(1.5) = -0.09375
        let c = cubic_coefficients(0.5);
        let want = [-0.09375f32, 0.59375, 0.59375, -0.09375];
        for (a, b) in c.iter().zip(want) {
            assert!((a - b).abs() < 1e-7, "{c:?}");
        }
        // 4 -> 2 (scale 2): output 0 sits at source 0.5, between rows 0 and 1
        let m = bicubic_matrix(4, 2);
        let row0 = [-0.09375 + 0.59375, 0.59375, -0.09375, 0.0];
        for (a, b) in m[..4].iter().zip(row0) {
            assert!((a - b).abs() < 1e-7, "{m:?}");
        }
    }

    #[test]
    fn a_constant_table_stays_constant() {
        let dev = Device::Cpu;
        let table = Tensor::full(0.75f32, (1, 26, 3), &dev).unwrap();
        let out = interpolate_position_table(&table, 6, 7).unwrap();
        assert_eq!(out.dims(), [1, 43, 3]);
        let err = (out - 0.75).unwrap().abs().unwrap().max_all().unwrap();
        assert!(err.to_scalar::<f32>().unwrap() < 1e-6);
        let t = Tensor::zeros((1, 11, 4), DType::F32, &dev).unwrap(); // 10 patches: no square grid
        assert!(interpolate_position_table(&t, 2, 2).is_err());
    }
}
