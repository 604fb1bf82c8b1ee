//! Low-level image metrics: MSE, PixCorr and SSIM.
//!
//! Images are f32 in [0, 1], row-major, either RGB with shape `(h, w, 3)`
//! (channel fastest) or grayscale with shape `(h, w)`. Sums run in f64.
//!
//! SSIM reproduces scikit-image's
//! `structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
//! use_sample_covariance=False, data_range=1.0)` on float64 input, which is
//! the setting MindEye and most fMRI-reconstruction papers report.

use crate::error::{check_len, shape_len, MetricsError, Result};
use crate::vector;

/// Gaussian standard deviation of the SSIM window (Wang et al. 2004).
pub const SSIM_SIGMA: f64 = 1.5;
/// skimage truncates the SSIM Gaussian at 3.5 sigma: an 11-tap window.
pub const SSIM_TRUNCATE: f64 = 3.5;
/// SSIM stabiliser for the luminance term, relative to the data range.
pub const SSIM_K1: f64 = 0.01;
/// SSIM stabiliser for the contrast/structure term, relative to the data range.
pub const SSIM_K2: f64 = 0.03;
/// Pixel values span [0, 1].
const DATA_RANGE: f64 = 1.0;

/// RGB → luminance weights of `skimage.color.rgb2gray` (close to BT.709, not
/// BT.601's 0.299/0.587/0.114).
pub const GRAY_WEIGHTS: [f64; 3] = [0.2125, 0.7154, 0.0721];

/// Side length of the SSIM window: `2 * round_half_up(truncate * sigma) + 1`
/// (scipy's kernel radius), 11 for the defaults.
pub fn ssim_window_size() -> usize {
    2 * gaussian_radius(SSIM_SIGMA, SSIM_TRUNCATE) + 1
}

/// Mean squared error over all values. Shapes: `a`, `b` the same, any
/// image layout (`(h, w, 3)` or `(h, w)`), at least one value.
pub fn mse(a: &[f32], b: &[f32]) -> Result<f64> {
    vector::mse(a, b)
}

/// PixCorr: Pearson correlation of the two images flattened, as MindEye's
/// `np.corrcoef(img.flatten(), recon.flatten())[0, 1]`. Shapes: `a`, `b`
/// the same, any layout, at least two values.
///
/// NaN if either image is constant, as in numpy.
pub fn pixcorr(a: &[f32], b: &[f32]) -> Result<f64> {
    vector::pearson(a, b)
}

/// Luminance of an RGB image, as `skimage.color.rgb2gray`:
/// `0.2125 R + 0.7154 G + 0.0721 B`.
///
/// Shapes: `rgb` is `(h, w, 3)`; the result is `(h, w)`. Returned as f64 so
/// SSIM sees the same values skimage computes on float64 input.
pub fn to_grayscale(rgb: &[f32], h: usize, w: usize) -> Result<Vec<f64>> {
    check_len(
        "RGB image (h*w*3)",
        shape_len("RGB image", &[h, w, 3])?,
        rgb.len(),
    )?;
    Ok(rgb
        .chunks_exact(3)
        .map(|px| {
            GRAY_WEIGHTS[0] * f64::from(px[0])
                + GRAY_WEIGHTS[1] * f64::from(px[1])
                + GRAY_WEIGHTS[2] * f64::from(px[2])
        })
        .collect())
}

/// Mean SSIM of two grayscale images. Shapes: `a`, `b` are `(h, w)` with
/// `h, w >= 11` (the window size; skimage refuses smaller images too).
pub fn ssim(a: &[f32], b: &[f32], h: usize, w: usize) -> Result<f64> {
    let a: Vec<f64> = a.iter().map(|&v| f64::from(v)).collect();
    let b: Vec<f64> = b.iter().map(|&v| f64::from(v)).collect();
    ssim_f64(&a, &b, h, w)
}

/// Mean SSIM of two RGB images via their grayscale conversions, as MindEye
/// computes it (`rgb2gray` then SSIM). Shapes: `a`, `b` are `(h, w, 3)`,
/// `h, w >= 11`.
pub fn ssim_rgb(a: &[f32], b: &[f32], h: usize, w: usize) -> Result<f64> {
    let gray_a = to_grayscale(a, h, w)?;
    let gray_b = to_grayscale(b, h, w)?;
    ssim_f64(&gray_a, &gray_b, h, w)
}

/// [`ssim`] on f64 grayscale images of shape `(h, w)`, `h, w >= 11`.
pub fn ssim_f64(a: &[f64], b: &[f64], h: usize, w: usize) -> Result<f64> {
    let len = shape_len("grayscale image", &[h, w])?;
    check_len("first grayscale image (h*w)", len, a.len())?;
    check_len("second grayscale image (h*w)", len, b.len())?;
    let win = ssim_window_size();
    if h < win || w < win {
        return Err(MetricsError::ImageTooSmall { h, w, win });
    }

    let blur = |img: &[f64]| gaussian_filter_unchecked(img, h, w, SSIM_SIGMA, SSIM_TRUNCATE);
    let product =
        |x: &[f64], y: &[f64]| -> Vec<f64> { x.iter().zip(y).map(|(p, q)| p * q).collect() };
    let mu_a = blur(a);
    let mu_b = blur(b);
    let mu_aa = blur(&product(a, a));
    let mu_bb = blur(&product(b, b));
    let mu_ab = blur(&product(a, b));

    let c1 = (SSIM_K1 * DATA_RANGE).powi(2);
    let c2 = (SSIM_K2 * DATA_RANGE).powi(2);
    // Population (not sample) covariance, as use_sample_covariance=False.
    let ssim_at = |i: usize| -> f64 {
        let (ua, ub) = (mu_a[i], mu_b[i]);
        let var_a = mu_aa[i] - ua * ua;
        let var_b = mu_bb[i] - ub * ub;
        let cov = mu_ab[i] - ua * ub;
        let numerator = (2.0 * ua * ub + c1) * (2.0 * cov + c2);
        let denominator = (ua * ua + ub * ub + c1) * (var_a + var_b + c2);
        numerator / denominator
    };

    // skimage averages only where the whole window lies inside the image.
    let pad = (win - 1) / 2;
    let mut sum = 0.0f64;
    for y in pad..h - pad {
        for x in pad..w - pad {
            sum += ssim_at(y * w + x);
        }
    }
    let count = (h - 2 * pad) * (w - 2 * pad);
    Ok(sum / count as f64)
}

/// SSIM as scikit-image 0.17–0.19 computed `structural_similarity(a, b, multichannel=True,
/// gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)` on 2-D grayscale
/// images: `multichannel` made it treat the last axis (the columns) as channels, so the result is
/// the mean over columns of a 1-D SSIM down each column (Gaussian window of 11 taps, 5 samples
/// cropped at each end). brain-diffuser's published SSIM is this one (its environment pins
/// scikit-image 0.17.2); scikit-image ≥ 0.20 ignores the argument and gives [`ssim_f64`].
/// Shapes: `(h, w)` grayscale f64, `h >= 11`.
pub fn ssim_columns_legacy(a: &[f64], b: &[f64], h: usize, w: usize) -> Result<f64> {
    let len = shape_len("grayscale image", &[h, w])?;
    check_len("first grayscale image (h*w)", len, a.len())?;
    check_len("second grayscale image (h*w)", len, b.len())?;
    let win = ssim_window_size();
    if h < win {
        return Err(MetricsError::ImageTooSmall { h, w, win });
    }
    let radius = gaussian_radius(SSIM_SIGMA, SSIM_TRUNCATE);
    let kernel = gaussian_kernel(SSIM_SIGMA, radius);
    let blur = |x: &[f64]| -> Vec<f64> {
        (0..h)
            .map(|i| {
                kernel
                    .iter()
                    .enumerate()
                    .map(|(k, &wt)| {
                        wt * x[reflect_index(i as isize + k as isize - radius as isize, h)]
                    })
                    .sum()
            })
            .collect()
    };
    let (c1, c2) = (
        (SSIM_K1 * DATA_RANGE).powi(2),
        (SSIM_K2 * DATA_RANGE).powi(2),
    );
    let pad = (win - 1) / 2;
    let mut total = 0.0;
    for j in 0..w {
        let x: Vec<f64> = (0..h).map(|i| a[i * w + j]).collect();
        let y: Vec<f64> = (0..h).map(|i| b[i * w + j]).collect();
        let product =
            |p: &[f64], q: &[f64]| -> Vec<f64> { p.iter().zip(q).map(|(u, v)| u * v).collect() };
        let (ux, uy) = (blur(&x), blur(&y));
        let (uxx, uyy, uxy) = (
            blur(&product(&x, &x)),
            blur(&product(&y, &y)),
            blur(&product(&x, &y)),
        );
        let column: f64 = (pad..h - pad)
            .map(|i| {
                let (vx, vy, cov) = (
                    uxx[i] - ux[i] * ux[i],
                    uyy[i] - uy[i] * uy[i],
                    uxy[i] - ux[i] * uy[i],
                );
                ((2.0 * ux[i] * uy[i] + c1) * (2.0 * cov + c2))
                    / ((ux[i] * ux[i] + uy[i] * uy[i] + c1) * (vx + vy + c2))
            })
            .sum();
        total += column / (h - 2 * pad) as f64;
    }
    Ok(total / w as f64)
}

/// Separable Gaussian blur matching `scipy.ndimage.gaussian_filter(img,
/// sigma, truncate=truncate, mode='reflect')` on float64 input.
///
/// Shapes: `img` and the result are `(h, w)`, row-major. 'reflect' is the
/// half-sample symmetric extension `d c b a | a b c d | d c b a`, repeated
/// as often as the kernel radius needs (also for images narrower than it).
/// `sigma` must be finite and >= 0; scipy skips axes with sigma <= 1e-15.
pub fn gaussian_filter(
    img: &[f64],
    h: usize,
    w: usize,
    sigma: f64,
    truncate: f64,
) -> Result<Vec<f64>> {
    check_len("image (h*w)", shape_len("image", &[h, w])?, img.len())?;
    if !(sigma.is_finite() && sigma >= 0.0) {
        return Err(MetricsError::InvalidArgument(format!(
            "sigma must be finite and >= 0, got {sigma}"
        )));
    }
    if !(truncate.is_finite() && truncate >= 0.0) {
        return Err(MetricsError::InvalidArgument(format!(
            "truncate must be finite and >= 0, got {truncate}"
        )));
    }
    Ok(gaussian_filter_unchecked(img, h, w, sigma, truncate))
}

/// Kernel radius as scipy computes it: `int(truncate * sigma + 0.5)`.
fn gaussian_radius(sigma: f64, truncate: f64) -> usize {
    (truncate * sigma + 0.5).floor() as usize
}

/// Normalised 1-D Gaussian taps for offsets `-radius..=radius`.
fn gaussian_kernel(sigma: f64, radius: usize) -> Vec<f64> {
    let r = radius as isize;
    let taps: Vec<f64> = (-r..=r)
        .map(|x| (-0.5 / (sigma * sigma) * (x * x) as f64).exp())
        .collect();
    let total: f64 = taps.iter().sum();
    taps.into_iter().map(|t| t / total).collect()
}

/// Maps an out-of-range index onto `0..n` by half-sample symmetric reflection.
pub(crate) fn reflect_index(i: isize, n: usize) -> usize {
    let period = 2 * n as isize;
    let m = i.rem_euclid(period) as usize;
    if m < n {
        m
    } else {
        2 * n - 1 - m
    }
}

fn gaussian_filter_unchecked(
    img: &[f64],
    h: usize,
    w: usize,
    sigma: f64,
    truncate: f64,
) -> Vec<f64> {
    if sigma <= 1e-15 || img.is_empty() {
        return img.to_vec();
    }
    let radius = gaussian_radius(sigma, truncate);
    let kernel = gaussian_kernel(sigma, radius);
    let r = radius as isize;

    // Axis 0 (down the columns) first, then axis 1, as scipy does.
    let mut vertical = vec![0.0f64; img.len()];
    for y in 0..h {
        let out_row = &mut vertical[y * w..(y + 1) * w];
        for (k, &weight) in kernel.iter().enumerate() {
            let src_y = reflect_index(y as isize + k as isize - r, h);
            let src_row = &img[src_y * w..(src_y + 1) * w];
            for (o, &s) in out_row.iter_mut().zip(src_row) {
                *o += weight * s;
            }
        }
    }

    let mut out = vec![0.0f64; img.len()];
    let src_cols: Vec<Vec<usize>> = (0..w)
        .map(|x| {
            (0..kernel.len())
                .map(|k| reflect_index(x as isize + k as isize - r, w))
                .collect()
        })
        .collect();
    for y in 0..h {
        let row = &vertical[y * w..(y + 1) * w];
        for (x, o) in out[y * w..(y + 1) * w].iter_mut().enumerate() {
            *o = kernel
                .iter()
                .zip(&src_cols[x])
                .map(|(&weight, &sx)| weight * row[sx])
                .sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp_image(h: usize, w: usize) -> Vec<f32> {
        (0..h * w)
            .map(|i| ((i % w) as f32 * 0.37 + (i / w) as f32 * 0.11).sin() * 0.5 + 0.5)
            .collect()
    }

    #[test]
    fn window_is_eleven_taps() {
        assert_eq!(ssim_window_size(), 11);
    }

    #[test]
    fn reflect_is_half_sample_symmetric() {
        // d c b a | a b c d | d c b a for n = 4
        let mapped: Vec<usize> = (-4..8).map(|i| reflect_index(i, 4)).collect();
        assert_eq!(mapped, vec![3, 2, 1, 0, 0, 1, 2, 3, 3, 2, 1, 0]);
        assert_eq!(reflect_index(-9, 4), 0);
        assert_eq!(reflect_index(5, 1), 0);
    }

    #[test]
    fn kernel_sums_to_one_and_is_symmetric() {
        let k = gaussian_kernel(1.5, 5);
        assert_eq!(k.len(), 11);
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        for i in 0..5 {
            assert_eq!(k[i], k[10 - i]);
        }
        assert!(k[5] > k[4]);
    }

    #[test]
    fn blur_keeps_constant_image() {
        let img = vec![0.25f64; 7 * 5];
        let out = gaussian_filter(&img, 7, 5, 2.0, 4.0).unwrap();
        assert!(out.iter().all(|&v| (v - 0.25).abs() < 1e-15));
    }

    #[test]
    fn identical_images_score_perfectly() {
        let (h, w) = (16, 13);
        let gray = ramp_image(h, w);
        assert!((ssim(&gray, &gray, h, w).unwrap() - 1.0).abs() < 1e-12);
        assert!((pixcorr(&gray, &gray).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(mse(&gray, &gray).unwrap(), 0.0);

        let rgb: Vec<f32> = gray.iter().flat_map(|&v| [v, 1.0 - v, v * 0.5]).collect();
        assert!((ssim_rgb(&rgb, &rgb, h, w).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn constant_images() {
        let (h, w) = (12, 12);
        let grey = vec![0.5f32; h * w];
        let dark = vec![0.1f32; h * w];
        // Same constant: every local term is exactly 1.
        assert!((ssim(&grey, &grey, h, w).unwrap() - 1.0).abs() < 1e-12);
        // Different constants: only the luminance term is < 1.
        let l = (2.0 * 0.5 * 0.1 + 1e-4) / (0.25 + 0.01 + 1e-4);
        assert!((ssim(&grey, &dark, h, w).unwrap() - l).abs() < 1e-6);
        // A constant image has no correlation with anything.
        assert!(pixcorr(&grey, &ramp_image(h, w)).unwrap().is_nan());
        assert!((mse(&grey, &dark).unwrap() - 0.16).abs() < 1e-7);
    }

    #[test]
    fn grayscale_weights() {
        let rgb = [
            1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0,
        ];
        let g = to_grayscale(&rgb, 2, 2).unwrap();
        assert_eq!(g[0], 0.2125);
        assert_eq!(g[1], 0.7154);
        assert_eq!(g[2], 0.0721);
        assert!((g[3] - 1.0).abs() < 1e-15);
    }

    #[test]
    fn shape_errors_are_reported() {
        let img = vec![0.5f32; 12 * 12];
        assert!(matches!(
            ssim(&img, &img[..143], 12, 12),
            Err(MetricsError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            ssim(&img, &img, 12, 11),
            Err(MetricsError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            ssim(&img[..100], &img[..100], 10, 10),
            Err(MetricsError::ImageTooSmall { .. })
        ));
        assert!(matches!(
            to_grayscale(&img, 12, 12),
            Err(MetricsError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            ssim_rgb(&img, &img, 8, 6),
            Err(MetricsError::ImageTooSmall { .. })
        ));
        assert!(matches!(
            pixcorr(&img, &img[..10]),
            Err(MetricsError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            gaussian_filter(&[0.0; 4], 2, 2, f64::NAN, 4.0),
            Err(MetricsError::InvalidArgument(_))
        ));
        assert!(matches!(
            to_grayscale(&[], usize::MAX, 2),
            Err(MetricsError::InvalidArgument(_))
        ));
    }
}
