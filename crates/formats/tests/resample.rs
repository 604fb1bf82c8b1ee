//! `RgbImage::resize_with` against Pillow 13.0.0's `Image.resize` (fixtures from
//! tools/fixtures/resample_fixtures.py), and `center_crop` against transformers'
//! `image_transforms.center_crop`.

use brainrecon_formats::image::{Filter, RgbImage};
use brainrecon_formats::npy;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/resample")
}

fn read_image(name: &str) -> RgbImage {
    let array = npy::read_u8(&fixtures().join(name)).unwrap();
    assert_eq!(array.shape.len(), 3, "{name}: (h, w, 3)");
    assert_eq!(array.shape[2], 3, "{name}: (h, w, 3)");
    RgbImage::new(array.shape[0], array.shape[1], array.data)
}

#[test]
fn bicubic_and_lanczos_match_pillow() {
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("cases.json")).unwrap())
            .unwrap();
    let cases = cases["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    let (mut values, mut exact, mut worst) = (0usize, 0usize, 0u8);
    for case in cases {
        let source = read_image(case["source"].as_str().unwrap());
        let expected = read_image(case["expected"].as_str().unwrap());
        let filter = match case["filter"].as_str().unwrap() {
            "bicubic" => Filter::Bicubic,
            "lanczos" => Filter::Lanczos,
            other => panic!("unknown filter {other}"),
        };
        let (h, w) = (
            case["height"].as_u64().unwrap() as usize,
            case["width"].as_u64().unwrap() as usize,
        );
        let got = source.resize_with(h, w, filter);
        assert_eq!((got.height, got.width), (h, w));
        let diffs: Vec<u8> = got
            .pixels
            .iter()
            .zip(&expected.pixels)
            .map(|(a, b)| a.abs_diff(*b))
            .collect();
        let case_worst = diffs.iter().copied().max().unwrap_or(0);
        let case_exact = diffs.iter().filter(|&&d| d == 0).count();
        println!(
            "{} {:?} {}x{} -> {h}x{w}: max diff {case_worst}, {case_exact}/{} exact",
            case["source"],
            filter,
            source.height,
            source.width,
            diffs.len()
        );
        assert!(case_worst <= 1, "{case}: max abs diff {case_worst}");
        values += diffs.len();
        exact += case_exact;
        worst = worst.max(case_worst);
    }
    let fraction = exact as f64 / values as f64;
    println!(
        "all cases: max diff {worst}, {:.4}% exact",
        fraction * 100.0
    );
    assert!(fraction >= 0.99, "only {:.4}% exact", fraction * 100.0);
}

#[test]
fn same_size_is_identity_and_area_is_resize() {
    let source = read_image("src_a.npy");
    for filter in [Filter::Bicubic, Filter::Lanczos, Filter::Area] {
        assert_eq!(
            source.resize_with(source.height, source.width, filter),
            source
        );
    }
    assert_eq!(
        source.resize_with(20, 31, Filter::Area),
        source.resize(20, 31)
    );
}

#[test]
fn center_crop_matches_transformers() {
    // A 5×7 image whose pixel (r, c) holds 7r + c + 1 in every channel; the expected crops were
    // printed by transformers 5.23.0's `image_transforms.center_crop`.
    let pixels: Vec<u8> = (0..35u8).flat_map(|v| [v + 1; 3]).collect();
    let image = RgbImage::new(5, 7, pixels);
    let red = |im: &RgbImage| -> Vec<Vec<u8>> {
        (0..im.height)
            .map(|r| {
                (0..im.width)
                    .map(|c| im.pixels[(r * im.width + c) * 3])
                    .collect()
            })
            .collect()
    };
    assert_eq!(
        red(&image.center_crop(4)),
        [
            [2, 3, 4, 5],
            [9, 10, 11, 12],
            [16, 17, 18, 19],
            [23, 24, 25, 26]
        ]
    );
    assert_eq!(
        red(&image.center_crop(3)),
        [[10, 11, 12], [17, 18, 19], [24, 25, 26]]
    );
    // Larger than the image: centred on black, the odd extra row/column before the image.
    assert_eq!(
        red(&image.center_crop(6)),
        [
            [0, 0, 0, 0, 0, 0],
            [1, 2, 3, 4, 5, 6],
            [8, 9, 10, 11, 12, 13],
            [15, 16, 17, 18, 19, 20],
            [22, 23, 24, 25, 26, 27],
            [29, 30, 31, 32, 33, 34]
        ]
    );
    let big = red(&image.center_crop(8));
    assert_eq!(big[0], [0; 8]);
    assert_eq!(big[1], [0; 8]);
    assert_eq!(big[2], [0, 1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(big[6], [0, 29, 30, 31, 32, 33, 34, 35]);
    assert_eq!(big[7], [0; 8]);
    assert_eq!(image.center_crop(7).height, 7);
    // Height and width apart.
    assert_eq!(
        red(&image.center_crop_to(3, 8)),
        [
            [0, 8, 9, 10, 11, 12, 13, 14],
            [0, 15, 16, 17, 18, 19, 20, 21],
            [0, 22, 23, 24, 25, 26, 27, 28]
        ]
    );
    assert_eq!(
        red(&image.center_crop_to(6, 2)),
        [[0, 0], [3, 4], [10, 11], [17, 18], [24, 25], [31, 32]]
    );
}
