//! The HTML report in a real browser: every inline thumbnail on every page decodes, and the check
//! itself notices a corrupted image. Needs Chromium; fails (does not skip) without it.

mod browser;

use brainrecon_formats::image::RgbImage;
use brainrecon_routes::score::report::{
    write_report, DecoderAccuracy, GridRow, MetricRow, Report, Table,
};
use std::time::Instant;

/// A square of one colour with a darker centre, so thumbnails are not flat.
fn square(size: usize, rgb: [u8; 3]) -> RgbImage {
    let mut pixels = Vec::with_capacity(size * size * 3);
    for y in 0..size {
        for x in 0..size {
            let centre =
                (size / 4..3 * size / 4).contains(&x) && (size / 4..3 * size / 4).contains(&y);
            pixels.extend(rgb.map(|c| if centre { c / 2 } else { c }));
        }
    }
    RgbImage::new(size, size, pixels)
}

/// 7 rows at 3 per page (3 pages); row 4 has a missing cell; one column is not square.
fn synthetic_report() -> Report {
    let colours = [[230, 40, 40], [40, 200, 60], [50, 80, 230], [240, 200, 30]];
    let rows = (0..7)
        .map(|i| GridRow {
            label: format!("image {i} <&>"),
            images: vec![
                Some(square(48, colours[i % 4])),
                (i != 4).then(|| square(64, colours[(i + 1) % 4])),
                Some(RgbImage::new(20, 40, colours[(i + 2) % 4].repeat(20 * 40))),
            ],
        })
        .collect();
    Report {
        title: "synthetic · browser test".into(),
        command: "brainrecon report --out 'a b' <test>".into(),
        model: "none".into(),
        versions: vec![("brainrecon".into(), env!("CARGO_PKG_VERSION").into())],
        columns: vec!["stimulus".into(), "decoded z".into(), "sample 1".into()],
        rows,
        metrics: vec![MetricRow {
            name: "linear".into(),
            values: vec![Some(0.25), None],
        }],
        metric_columns: vec!["PixCorr ↑".into(), "SSIM ↑".into()],
        tables: vec![Table {
            title: "The field's metrics".into(),
            columns: vec!["PixCorr ↑".into(), "AlexNet(2) % ↑".into()],
            rows: vec![MetricRow {
                name: "sample <1>".into(),
                values: vec![Some(0.3), None],
            }],
            note: "weights <absent> & more".into(),
        }],
        decoders: vec![DecoderAccuracy {
            name: "z".into(),
            roi: "streams/early".into(),
            n_voxels: 100,
            cv_score: (0..40).map(|i| (i as f64 / 40.0) - 0.2).collect(),
            test_r: (0..40).map(|i| i as f64 / 50.0).collect(),
            alpha_at_edge: 0.1,
        }],
        rows_per_page: 3,
        thumbnail: 32,
    }
}

#[test]
fn every_page_loads_all_images_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let pages = write_report(&dir.path().join("report.html"), &synthetic_report()).unwrap();
    assert_eq!(pages.len(), 3);
    // Present cells per page: rows 0–2, 3–5 (one missing), 6.
    let expected = [9, 8, 3];
    let started = Instant::now();
    for (page, expected) in pages.iter().zip(expected) {
        let check = browser::check_images_load(page).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(check.images, expected, "{}: {check:?}", page.display());
        assert_eq!(check.loaded, check.images, "{}: {check:?}", page.display());
        assert!(check.broken.is_empty(), "{}: {check:?}", page.display());
    }
    eprintln!(
        "browser check of {} pages: {:.1?}",
        pages.len(),
        started.elapsed()
    );
}

#[test]
fn a_corrupted_image_is_reported_broken() {
    let dir = tempfile::tempdir().unwrap();
    let pages = write_report(&dir.path().join("report.html"), &synthetic_report()).unwrap();
    let html = std::fs::read_to_string(&pages[0]).unwrap();
    // Break the PNG signature of the first image only.
    let prefix = "data:image/png;base64,";
    let corrupted = html.replacen(prefix, &format!("{prefix}AAAA"), 1);
    assert_ne!(corrupted, html);
    let path = dir.path().join("corrupted.html");
    std::fs::write(&path, corrupted).unwrap();
    let check = browser::check_images_load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(check.images, 9, "{check:?}");
    assert_eq!(check.loaded, 8, "{check:?}");
    assert_eq!(check.broken.len(), 1, "{check:?}");
    assert!(
        check.broken[0].starts_with("data:image/png;base64,AAAA"),
        "{check:?}"
    );
}
