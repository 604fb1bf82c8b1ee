//! Image preprocessing as the metric code runs it: bilinear resizing without antialiasing
//! (torchvision 0.16's `Resize` on tensors, which MindEye2 used: `F.interpolate(...,
//! mode="bilinear", align_corners=False, antialias=False)`) and channel normalisation.
//!
//! Images are batches [B, C, H, W] of f32 in a flat row-major buffer.

/// ImageNet's channel means and standard deviations (torchvision's weights).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// OpenAI CLIP's.
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// Source taps of one output index along one axis: torch's `area_pixel_compute_source_index`
/// with `align_corners=False` (`(i + 0.5)·scale − 0.5`, clamped at 0) and the neighbour index
/// clamped at the edge.
fn taps(n_in: usize, n_out: usize) -> Vec<(usize, usize, f32)> {
    let scale = n_in as f32 / n_out as f32;
    (0..n_out)
        .map(|i| {
            let src = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src as usize).min(n_in - 1);
            let i1 = if i0 < n_in - 1 { i0 + 1 } else { i0 };
            (i0, i1, src - i0 as f32)
        })
        .collect()
}

/// Resizes every plane of `images` ([B·C, H, W] as `planes` planes) to `out_h` × `out_w`.
/// Shapes are asserted: `images.len() == planes · h · w`.
pub fn resize_bilinear(
    images: &[f32],
    planes: usize,
    (h, w): (usize, usize),
    (out_h, out_w): (usize, usize),
) -> Vec<f32> {
    assert_eq!(
        images.len(),
        planes * h * w,
        "images of {planes} planes of {h}×{w}"
    );
    assert!(h > 0 && w > 0 && out_h > 0 && out_w > 0, "empty image");
    if (h, w) == (out_h, out_w) {
        return images.to_vec();
    }
    let (ys, xs) = (taps(h, out_h), taps(w, out_w));
    let mut out = vec![0f32; planes * out_h * out_w];
    use rayon::prelude::*;
    out.par_chunks_mut(out_h * out_w)
        .enumerate()
        .for_each(|(p, dst)| {
            let src = &images[p * h * w..(p + 1) * h * w];
            for (oy, &(y0, y1, ly)) in ys.iter().enumerate() {
                let (r0, r1) = (&src[y0 * w..(y0 + 1) * w], &src[y1 * w..(y1 + 1) * w]);
                for (ox, &(x0, x1, lx)) in xs.iter().enumerate() {
                    let top = (1.0 - lx) * r0[x0] + lx * r0[x1];
                    let bottom = (1.0 - lx) * r1[x0] + lx * r1[x1];
                    dst[oy * out_w + ox] = (1.0 - ly) * top + ly * bottom;
                }
            }
        });
    out
}

/// `(x − mean[c]) / std[c]` in place over [B, 3, H, W] with `plane = H·W`.
pub fn normalize(images: &mut [f32], plane: usize, mean: [f32; 3], std: [f32; 3]) {
    for (k, chunk) in images.chunks_mut(plane).enumerate() {
        let c = k % 3;
        for v in chunk {
            *v = (*v - mean[c]) / std[c];
        }
    }
}
