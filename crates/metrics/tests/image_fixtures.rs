//! Image metrics against scikit-image / numpy references.

mod common;

use brainrecon_metrics::image;
use common::{assert_close, load, u8_to_f32};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    rgb_cases: Vec<RgbCase>,
    gray_cases: Vec<GrayCase>,
    gaussian_filter_cases: Vec<FilterCase>,
}

#[derive(Deserialize)]
struct RgbCase {
    name: String,
    h: usize,
    w: usize,
    truth_rgb_u8: Vec<u8>,
    recon_rgb_u8: Vec<u8>,
    expected: RgbExpected,
}

#[derive(Deserialize)]
struct RgbExpected {
    mse: f64,
    pixcorr: f64,
    ssim_rgb: f64,
    ssim_rgb_float32_pipeline: f64,
    truth_gray: Option<Vec<f64>>,
}

#[derive(Deserialize)]
struct GrayCase {
    name: String,
    h: usize,
    w: usize,
    truth_gray_u8: Vec<u8>,
    recon_gray_u8: Vec<u8>,
    expected_ssim: f64,
    expected_pixcorr: f64,
}

#[derive(Deserialize)]
struct FilterCase {
    h: usize,
    w: usize,
    sigma: f64,
    truncate: f64,
    input: Vec<f32>,
    expected: Vec<f64>,
}

fn fixture() -> Fixture {
    load("image_metrics.json")
}

#[test]
fn rgb_metrics_match_skimage_and_numpy() {
    let fx = fixture();
    assert!(fx.rgb_cases.len() >= 5);
    for case in &fx.rgb_cases {
        let truth = u8_to_f32(&case.truth_rgb_u8);
        let recon = u8_to_f32(&case.recon_rgb_u8);
        let (h, w) = (case.h, case.w);
        let name = &case.name;

        let ssim = image::ssim_rgb(&recon, &truth, h, w).unwrap();
        assert_close(
            &format!("{name} ssim_rgb"),
            ssim,
            case.expected.ssim_rgb,
            1e-5,
        );
        // SSIM is symmetric in its arguments.
        let swapped = image::ssim_rgb(&truth, &recon, h, w).unwrap();
        assert_close(&format!("{name} ssim_rgb swapped"), swapped, ssim, 1e-12);
        // skimage on float32 input filters in float32: still within 1e-5.
        assert_close(
            &format!("{name} ssim vs float32 pipeline"),
            ssim,
            case.expected.ssim_rgb_float32_pipeline,
            1e-5,
        );

        let pixcorr = image::pixcorr(&truth, &recon).unwrap();
        assert_close(
            &format!("{name} pixcorr"),
            pixcorr,
            case.expected.pixcorr,
            1e-9,
        );
        let mse = image::mse(&truth, &recon).unwrap();
        assert_close(&format!("{name} mse"), mse, case.expected.mse, 1e-12);

        if let Some(gray) = &case.expected.truth_gray {
            let ours = image::to_grayscale(&truth, h, w).unwrap();
            assert_eq!(ours.len(), gray.len());
            for (i, (a, b)) in ours.iter().zip(gray).enumerate() {
                assert_close(&format!("{name} gray[{i}]"), *a, *b, 1e-12);
            }
        }
    }
}

/// The matching is tight: the default test tolerance is far below the
/// spread of values in the fixture, so a wrong window or padding fails.
#[test]
fn ssim_fixture_values_are_discriminating() {
    let fx = fixture();
    let values: Vec<f64> = fx.rgb_cases.iter().map(|c| c.expected.ssim_rgb).collect();
    let min = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    assert!(
        min < 0.1 && max > 0.99,
        "fixture SSIMs span too little: {values:?}"
    );
}

#[test]
fn grayscale_ssim_matches_skimage() {
    for case in &fixture().gray_cases {
        let truth = u8_to_f32(&case.truth_gray_u8);
        let recon = u8_to_f32(&case.recon_gray_u8);
        let ssim = image::ssim(&truth, &recon, case.h, case.w).unwrap();
        assert_close(
            &format!("{} ssim", case.name),
            ssim,
            case.expected_ssim,
            1e-5,
        );
        let pixcorr = image::pixcorr(&truth, &recon).unwrap();
        assert_close(
            &format!("{} pixcorr", case.name),
            pixcorr,
            case.expected_pixcorr,
            1e-9,
        );
        // Transposing the image changes nothing conceptually but everything
        // in memory: a swapped h/w must be rejected or give a different value.
        if case.h != case.w {
            let transposed = image::ssim(&truth, &recon, case.w, case.h);
            if let Ok(v) = transposed {
                assert!((v - case.expected_ssim).abs() > 1e-9);
            }
        }
    }
}

#[test]
fn gaussian_filter_matches_scipy_reflect() {
    for case in &fixture().gaussian_filter_cases {
        let input: Vec<f64> = case.input.iter().map(|&v| f64::from(v)).collect();
        let out =
            image::gaussian_filter(&input, case.h, case.w, case.sigma, case.truncate).unwrap();
        assert_eq!(out.len(), case.expected.len());
        for (i, (a, b)) in out.iter().zip(&case.expected).enumerate() {
            let what = format!("{}x{} sigma {} [{i}]", case.h, case.w, case.sigma);
            assert_close(&what, *a, *b, 1e-12);
        }
    }
}
