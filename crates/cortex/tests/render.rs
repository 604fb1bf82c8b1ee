//! Pictures of fsaverage5 maps: where data lands, which colours appear, speed.

use brainrecon_cortex::colour::{Colormap, Scale};
use brainrecon_cortex::mesh::{Cortex, Hemi, SurfaceMap, VertexLabels};
use brainrecon_cortex::render::*;
use brainrecon_cortex::template::fsaverage5;
use brainrecon_formats::image::write_png;
use std::path::Path;

/// A map of `f` of each white-surface vertex, in `scale`.
fn map_of(cortex: &Cortex, name: &str, scale: Scale, f: impl Fn([f32; 3]) -> f64) -> SurfaceMap {
    let values = |h: Hemi| {
        cortex
            .hemi(h)
            .white
            .vertices
            .iter()
            .map(|&v| f(v))
            .collect()
    };
    SurfaceMap {
        name: name.into(),
        left: values(Hemi::Left),
        right: values(Hemi::Right),
        scale,
    }
}

fn diverging(m: f64, threshold: Option<f64>) -> Scale {
    Scale::Continuous {
        colormap: Colormap::Diverging,
        min: -m,
        max: m,
        threshold,
    }
}

/// Quadrant 0–3 of a white-surface point: anterior/posterior × dorsal/ventral of (y, z) =
/// (−18, 15), roughly the centre of the hemisphere.
fn quadrant(v: [f32; 3]) -> usize {
    (v[1] > -18.0) as usize * 2 + (v[2] > 15.0) as usize
}

const QUADRANTS: [&str; 4] = [
    "posterior ventral",
    "posterior dorsal",
    "anterior ventral",
    "anterior dorsal",
];

fn quadrant_map(cortex: &Cortex) -> SurfaceMap {
    let names = QUADRANTS.iter().map(|s| s.to_string()).collect();
    map_of(cortex, "quadrant", Scale::Categorical { names }, |v| {
        quadrant(v) as f64
    })
}

fn quadrant_labels(cortex: &Cortex) -> VertexLabels {
    let values = |h: Hemi| {
        let white = &cortex.hemi(h).white.vertices;
        white.iter().map(|&v| quadrant(v) as i32 + 1).collect()
    };
    VertexLabels {
        name: "quadrants".into(),
        left: values(Hemi::Left),
        right: values(Hemi::Right),
        names: (1..=4)
            .map(|i| (i, QUADRANTS[i as usize - 1].into()))
            .collect(),
    }
}

/// Writes the figures a person looks at to judge the pictures (/tmp/render-samples); run with
/// `-- --ignored`.
#[test]
#[ignore = "writes sample pictures to /tmp/render-samples"]
fn samples() {
    let cortex = fsaverage5().unwrap();
    let dir = Path::new("/tmp/render-samples");
    let labels = quadrant_labels(&cortex);
    std::fs::create_dir_all(dir).unwrap();
    let write = |name: &str, map: &SurfaceMap, labels: Option<&VertexLabels>, title: &str| {
        write_png(&dir.join(name), &figure(&cortex, map, labels, title)).unwrap();
    };
    let y = map_of(&cortex, "white y (mm)", diverging(100.0, Some(10.0)), |v| {
        v[1] as f64
    });
    write("y.png", &y, None, "fsaverage5: y of the white surface");
    let z = map_of(&cortex, "white z (mm)", diverging(80.0, None), |v| {
        v[2] as f64
    });
    write("z.png", &z, None, "fsaverage5: z of the white surface");
    let x = map_of(&cortex, "white x (mm)", diverging(70.0, None), |v| {
        v[0] as f64
    });
    write("x.png", &x, None, "fsaverage5: x of the white surface");
    let none = map_of(&cortex, "nothing", diverging(1.0, None), |_| f64::NAN);
    write("curvature.png", &none, None, "fsaverage5: curvature only");
    write(
        "quadrants.png",
        &quadrant_map(&cortex),
        Some(&labels),
        "Quadrants (categorical)",
    );
    // Every view of both hemispheres, left hemisphere blue, anterior dark, in a row.
    let side = map_of(&cortex, "side", diverging(100.0, None), |v| {
        v[0].signum() as f64 * (60.0 - v[1] as f64)
    });
    let views: Vec<RgbImage> = View::ALL
        .iter()
        .map(|&v| render_view(&cortex, None, v, &side, Some(&labels), 200))
        .collect();
    let mut row = RgbImage::new(
        200,
        200 * views.len(),
        vec![255; 200 * 200 * 3 * views.len()],
    );
    for (k, v) in views.iter().enumerate() {
        for r in 0..200 {
            let d = (r * row.width + k * 200) * 3;
            row.pixels[d..d + 600].copy_from_slice(&v.pixels[r * 600..(r + 1) * 600]);
        }
    }
    write_png(&dir.join("views.png"), &row).unwrap();
    // Every glyph, for looking at the font.
    let mut sheet = RgbImage::new(100, 600, vec![255; 100 * 600 * 3]);
    let ascii: String = (32u8..=126).map(char::from).collect();
    for (i, chunk) in ascii.as_bytes().chunks(48).enumerate() {
        let line = std::str::from_utf8(chunk).unwrap();
        brainrecon_cortex::font::draw_text(&mut sheet, 4, 4 + 22 * i, line, 2, [0, 0, 0]);
    }
    let extra = "R² −0.5 µV 90° 3×3 € best band: gamma (30–80 Hz)";
    brainrecon_cortex::font::draw_text(&mut sheet, 4, 70, extra, 2, [0, 0, 0]);
    write_png(&dir.join("font.png"), &sheet).unwrap();
    let hot = map_of(&cortex, "R²", Scale::positive(&[0.3], Some(0.05)), |v| {
        (0.3 - ((v[1] + 80.0).powi(2) + (v[2] - 5.0).powi(2)).sqrt() as f64 / 150.0).max(0.0)
    });
    write(
        "hot-outlined.png",
        &hot,
        Some(&labels),
        "R² near the occipital pole, quadrants outlined",
    );
}

/// Whether a pixel shows the map: neither background, nor a (shaded) grey, nor outline.
fn is_data(p: &[u8]) -> bool {
    !(p[0] == p[1] && p[1] == p[2])
}

/// (row, column) of each pixel of `img` for which `keep` holds.
fn where_(img: &RgbImage, keep: impl Fn(&[u8]) -> bool) -> Vec<(usize, usize)> {
    img.pixels
        .chunks(3)
        .enumerate()
        .filter(|(_, p)| keep(p))
        .map(|(i, _)| (i / img.width, i % img.width))
        .collect()
}

fn mean_column(points: &[(usize, usize)]) -> f64 {
    points.iter().map(|p| p.1 as f64).sum::<f64>() / points.len() as f64
}

fn mean_row(points: &[(usize, usize)]) -> f64 {
    points.iter().map(|p| p.0 as f64).sum::<f64>() / points.len() as f64
}

use brainrecon_formats::image::RgbImage;

/// 1 on the left white surface's anterior half (y > 0), 0 elsewhere (hidden by the threshold).
fn anterior_left(cortex: &Cortex) -> SurfaceMap {
    let mut map = map_of(cortex, "front", diverging(1.0, Some(0.5)), |v| {
        (v[1] > 0.0) as u8 as f64
    });
    map.right.iter_mut().for_each(|v| *v = 0.0);
    map
}

#[test]
fn anterior_data_is_drawn_in_front_in_the_lateral_views() {
    let cortex = fsaverage5().unwrap();
    let map = anterior_left(&cortex);
    let img = render_view(&cortex, Some(Hemi::Left), View::Lateral, &map, None, 200);
    let cortex_px = where_(&img, |p| p != BACKGROUND);
    let (c0, c1) = (
        cortex_px.iter().map(|p| p.1).min().unwrap(),
        cortex_px.iter().map(|p| p.1).max().unwrap(),
    );
    let data = where_(&img, is_data);
    assert!(data.len() > 2000, "{} data pixels", data.len());
    // Dark red, shaded: red well above green and blue.
    assert!(data.iter().all(|&(r, c)| {
        let p = &img.pixels[(r * img.width + c) * 3..][..3];
        p[0] > p[1] && p[0] > p[2]
    }));
    // Anterior is on the picture's left in a left lateral view; nothing in the back third.
    let back = c0 + (c1 - c0) * 2 / 3;
    assert!(data.iter().all(|p| p.1 < back), "data behind column {back}");
    let front = data.iter().filter(|p| p.1 < (c0 + c1) / 2).count();
    assert!(
        front as f64 > 0.8 * data.len() as f64,
        "{front} of {}",
        data.len()
    );
    // The right hemisphere has no data, and the left lateral view does not show it.
    let right = render_view(&cortex, Some(Hemi::Right), View::Lateral, &map, None, 200);
    assert!(where_(&right, is_data).is_empty());
    // The left medial view has anterior on the right.
    let medial = render_view(&cortex, Some(Hemi::Left), View::Medial, &map, None, 200);
    let data = where_(&medial, is_data);
    assert!(mean_column(&data) > 110.0, "{}", mean_column(&data));
}

#[test]
fn both_hemispheres_are_drawn_apart_and_ventral_shows_the_left_on_the_right() {
    let cortex = fsaverage5().unwrap();
    let mut map = map_of(&cortex, "hemisphere", diverging(1.0, None), |_| 1.0);
    map.left.iter_mut().for_each(|v| *v = -1.0);
    let img = render_view(&cortex, None, View::Ventral, &map, None, 200);
    // Left hemisphere values are −1 (blue), right +1 (red).
    let blue = where_(&img, |p| is_data(p) && p[2] > p[0]);
    let red = where_(&img, |p| is_data(p) && p[0] > p[2]);
    assert!(blue.len() > 1000 && red.len() > 1000);
    assert!(mean_column(&blue) > 110.0 && mean_column(&red) < 90.0);
    // The hemispheres do not overlap: a background column separates them.
    let max_red = red.iter().map(|p| p.1).max().unwrap();
    let min_blue = blue.iter().map(|p| p.1).min().unwrap();
    assert!(max_red < min_blue, "{max_red} ≥ {min_blue}");
    // Dorsal: the left on the left, anterior up.
    let dorsal = render_view(&cortex, None, View::Dorsal, &map, None, 200);
    let blue = where_(&dorsal, |p| is_data(p) && p[2] > p[0]);
    assert!(mean_column(&blue) < 90.0);
    let front = anterior_left(&cortex);
    let dorsal = render_view(&cortex, None, View::Dorsal, &front, None, 200);
    assert!(mean_row(&where_(&dorsal, is_data)) < 90.0);
}

#[test]
fn categorical_maps_draw_only_palette_colours_greys_and_outlines() {
    let cortex = fsaverage5().unwrap();
    let map = quadrant_map(&cortex);
    let labels = quadrant_labels(&cortex);
    let palette: Vec<[u8; 3]> = (0..4)
        .map(brainrecon_cortex::colour::category_colour)
        .collect();
    let allowed = |p: &[u8]| {
        p == BACKGROUND
            || p == GYRUS_GREY
            || p == SULCUS_GREY
            || p == OUTLINE
            || palette.contains(&[p[0], p[1], p[2]])
    };
    let flat = render_flat(&cortex, &map, Some(&labels), 300).unwrap();
    let bad = where_(&flat, |p| !allowed(p));
    assert!(
        bad.is_empty(),
        "{} pixels of other colours, e.g. {:?}",
        bad.len(),
        bad[0]
    );
    for c in &palette {
        assert!(where_(&flat, |p| p == c).len() > 500, "{c:?} missing");
    }
    assert!(where_(&flat, |p| p == OUTLINE).len() > 100, "no outlines");
    // Without labels, no outlines.
    let plain = render_flat(&cortex, &map, None, 300).unwrap();
    assert!(where_(&plain, |p| p == OUTLINE).is_empty());
    // In the 3-D views categories are not blended either: each pixel is a shaded palette
    // colour (its hue kept), a grey or the outline.
    let view = render_view(&cortex, Some(Hemi::Left), View::Lateral, &map, None, 150);
    let shaded_palette = |p: &[u8]| {
        palette.iter().any(|c| {
            let dot = |a: [f32; 3], b: [f32; 3]| a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
            let (c, p) = (c.map(f32::from), [p[0], p[1], p[2]].map(f32::from));
            let s = dot(p, c) / dot(c, c);
            (0..3).all(|i| (p[i] - s * c[i]).abs() <= 1.5)
        })
    };
    let data = where_(&view, is_data);
    assert!(data.len() > 5000);
    for (r, c) in data {
        let p = &view.pixels[(r * view.width + c) * 3..][..3];
        assert!(shaded_palette(p), "{p:?} at ({r}, {c})");
    }
}

#[test]
fn flat_map_puts_the_left_hemisphere_left_dorsal_up_and_occipital_in_the_middle() {
    let cortex = fsaverage5().unwrap();
    let mut map = map_of(&cortex, "front", diverging(1.0, None), |v| {
        v[1].signum() as f64
    });
    map.right.iter_mut().for_each(|v| *v = f64::NAN);
    let img = render_flat(&cortex, &map, None, 240).unwrap();
    assert!(
        img.width > 2 * img.height && img.width < 3 * img.height,
        "{}",
        img.width
    );
    let data = where_(&img, is_data);
    assert!(data.len() > 10_000);
    assert!(
        data.iter().all(|p| p.1 < img.width / 2),
        "left data in the right half"
    );
    // Anterior (red, +1) toward the outer edge, posterior (blue) toward the middle.
    let front = where_(&img, |p| is_data(p) && p[0] > p[2]);
    let back = where_(&img, |p| is_data(p) && p[2] > p[0]);
    assert!(mean_column(&front) + 40.0 < mean_column(&back));
    // Dorsal up.
    let z = map_of(&cortex, "up", diverging(1.0, None), |v| {
        (v[2] - 15.0).signum() as f64
    });
    let img = render_flat(&cortex, &z, None, 240).unwrap();
    let up = where_(&img, |p| is_data(p) && p[0] > p[2]);
    let down = where_(&img, |p| is_data(p) && p[2] > p[0]);
    assert!(mean_row(&up) + 30.0 < mean_row(&down));
}

#[test]
fn the_threshold_hides_small_values() {
    let cortex = fsaverage5().unwrap();
    let shown = map_of(&cortex, "small", Scale::positive(&[1.0], Some(0.1)), |_| {
        0.2
    });
    let hidden = map_of(&cortex, "small", Scale::positive(&[1.0], Some(0.3)), |_| {
        0.2
    });
    let count = |m: &SurfaceMap| {
        let flat = render_flat(&cortex, m, None, 200).unwrap();
        let view = render_view(&cortex, None, View::Ventral, m, None, 120);
        (where_(&flat, is_data).len(), where_(&view, is_data).len())
    };
    let (f, v) = count(&shown);
    assert!(f > 10_000 && v > 3000, "{f} {v}");
    assert_eq!(count(&hidden), (0, 0));
}

#[test]
fn colour_bar_spans_the_colormap_and_figure_has_every_part() {
    let scale = diverging(2.0, None);
    let bar = colour_bar(&scale, 400, "r");
    let (lo, hi) = (Colormap::Diverging.at(0.0), Colormap::Diverging.at(1.0));
    let close = |p: &[u8], c: [u8; 3]| (0..3).all(|i| (p[i] as i32 - c[i] as i32).abs() <= 3);
    let first = where_(&bar, |p| close(p, lo));
    let last = where_(&bar, |p| close(p, hi));
    assert!(!first.is_empty() && !last.is_empty());
    assert!(mean_column(&first) < 100.0 && mean_column(&last) > 300.0);

    let cortex = fsaverage5().unwrap();
    let map = map_of(&cortex, "y", diverging(100.0, None), |v| v[1] as f64);
    let img = figure(&cortex, &map, None, "Title");
    assert!(
        img.width >= 5 * FIGURE_VIEW_SIZE && img.height > FIGURE_FLAT_HEIGHT + FIGURE_VIEW_SIZE
    );
    // Title ink in the top rows; the bar's ends near the bottom.
    assert!(!where_(&img, |p| p == [0, 0, 0]).iter().any(|p| p.0 < 5));
    assert!(where_(&img, |p| p == [0, 0, 0]).iter().any(|p| p.0 < 40));
    assert!(where_(&img, |p| close(p, lo))
        .iter()
        .any(|p| p.0 > img.height - 80));
}

#[test]
fn a_cortex_without_flat_maps_gets_no_flat_map_but_a_figure() {
    let mut cortex = fsaverage5().unwrap();
    cortex.left.flat = None;
    let map = map_of(&cortex, "nan", diverging(1.0, None), |_| f64::NAN);
    assert!(render_flat(&cortex, &map, None, 100).is_none());
    let img = figure(&cortex, &map, None, "");
    assert!(img.height < FIGURE_FLAT_HEIGHT);
    // Nothing but the colour bar's gradient has colour.
    let bar = colour_bar(&map.scale, 100, "nan").height;
    assert!(where_(&img, is_data).iter().all(|p| p.0 + bar > img.height));
}

/// Each triangle split in four at its edges' midpoints, in every mesh of the hemisphere.
fn subdivide(h: &brainrecon_cortex::mesh::Hemisphere) -> brainrecon_cortex::mesh::Hemisphere {
    use brainrecon_cortex::mesh::{Hemisphere, Mesh};
    use std::collections::HashMap;
    let n = h.n_vertices() as u32;
    let mut index: HashMap<(u32, u32), u32> = HashMap::new();
    let mut order: Vec<(u32, u32)> = Vec::new();
    let mut split = |faces: &[[u32; 3]]| -> Vec<[u32; 3]> {
        let mut mid = |a: u32, b: u32| -> u32 {
            let key = (a.min(b), a.max(b));
            *index.entry(key).or_insert_with(|| {
                order.push(key);
                n + order.len() as u32 - 1
            })
        };
        faces
            .iter()
            .flat_map(|&[a, b, c]| {
                let (ab, bc, ca) = (mid(a, b), mid(b, c), mid(c, a));
                [[a, ab, ca], [ab, b, bc], [ca, bc, c], [ab, bc, ca]]
            })
            .collect()
    };
    let faces = [
        split(&h.white.faces),
        split(&h.pial.faces),
        split(&h.inflated.faces),
        split(&h.flat.as_ref().unwrap().faces),
    ];
    let grow = |m: &Mesh, faces: Vec<[u32; 3]>| {
        let mut vertices = m.vertices.clone();
        vertices.extend(order.iter().map(|&(a, b)| {
            let (p, q) = (m.vertices[a as usize], m.vertices[b as usize]);
            [0, 1, 2].map(|i| (p[i] + q[i]) / 2.0)
        }));
        Mesh { vertices, faces }
    };
    let [white, pial, inflated, flat] = faces;
    let mut curvature = h.curvature.clone();
    curvature.extend(
        order
            .iter()
            .map(|&(a, b)| (h.curvature[a as usize] + h.curvature[b as usize]) / 2.0),
    );
    Hemisphere {
        white: grow(&h.white, white),
        pial: grow(&h.pial, pial),
        inflated: grow(&h.inflated, inflated),
        flat: Some(grow(h.flat.as_ref().unwrap(), flat)),
        curvature,
    }
}

/// `figure` of fsaverage5 subdivided twice (163,842 vertices per hemisphere, fsaverage7's
/// count) in under 2 s (0.23 s measured in the test build, which optimises this crate).
#[test]
fn figure_of_a_fine_mesh_takes_under_two_seconds() {
    let base = fsaverage5().unwrap();
    for times in [1, 2] {
        let mut cortex = base.clone();
        for _ in 0..times {
            cortex.left = subdivide(&cortex.left);
            cortex.right = subdivide(&cortex.right);
        }
        let map = map_of(&cortex, "y", diverging(100.0, Some(10.0)), |v| v[1] as f64);
        let labels = quadrant_labels(&cortex);
        let start = std::time::Instant::now();
        let img = figure(&cortex, &map, Some(&labels), "fine");
        let took = start.elapsed().as_secs_f64();
        let n = cortex.n_vertices();
        eprintln!("figure of {} + {} vertices: {took:.3} s", n[0], n[1]);
        assert!(where_(&img, is_data).len() > 100_000);
        if times == 2 {
            assert!(took < 2.0, "{took:.2} s");
        }
    }
}
