//! Pictures of maps on the cortex, drawn as pycortex and nilearn draw them: the flat map of
//! both hemispheres, inflated views under an orthographic camera, a colour bar, and a figure
//! combining them.
//!
//! Under the data lies the curvature in two greys (pycortex's default: gyri light, sulci dark);
//! vertices with no colour (NaN, under the threshold, not a category) show it. Regions of
//! [`VertexLabels`] are outlined in black. Every picture has a white background.
//!
//! Flat maps are drawn as stored, with no transform: fsaverage5's (nilearn's) are already
//! oriented as pycortex draws its flat maps, dorsal up, the frontal lobes at the picture's
//! outer edges and the occipital poles toward the middle, the left hemisphere on the left
//! (checked by the integration tests on y and z maps). A subject's FreeSurfer patch comes in
//! whatever rotation it was cut in.
//!
//! Inflated views use an orthographic camera looking at the meshes from the view's side; with
//! both hemispheres, lateral and medial views use the left hemisphere's camera, and the
//! hemispheres are moved apart in x (they overlap when inflated).

use crate::colour::Scale;
use crate::font::{draw_text, text_height, text_width};
use crate::mesh::{Cortex, Hemi, Mesh, SurfaceMap, VertexLabels};
use brainrecon_formats::image::RgbImage;

/// The picture's background.
pub const BACKGROUND: [u8; 3] = [255, 255, 255];
/// Curvature underlay on gyri (curvature ≤ 0): 0.625 × 255, pycortex's light grey.
pub const GYRUS_GREY: [u8; 3] = [159, 159, 159];
/// Curvature underlay in sulci (curvature > 0): 0.375 × 255, pycortex's dark grey.
pub const SULCUS_GREY: [u8; 3] = [96, 96, 96];
/// Region outlines.
pub const OUTLINE: [u8; 3] = [0, 0, 0];
/// Titles, numbers and names.
const INK: [u8; 3] = [0, 0, 0];

/// Where the camera of an inflated view looks from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum View {
    /// From the hemisphere's outside (−x for the left, +x for the right); anterior toward the
    /// left of the picture for the left hemisphere, toward the right for the right.
    Lateral,
    /// From the midline (+x for the left, −x for the right).
    Medial,
    /// From below, anterior up; as a camera there sees it, the left hemisphere is on the right.
    Ventral,
    /// From above, anterior up, the left hemisphere on the left.
    Dorsal,
    /// From the front, dorsal up; the left hemisphere is on the right.
    Anterior,
    /// From behind, dorsal up, the left hemisphere on the left.
    Posterior,
}

impl View {
    /// All six views.
    pub const ALL: [View; 6] = [
        View::Lateral,
        View::Medial,
        View::Ventral,
        View::Dorsal,
        View::Anterior,
        View::Posterior,
    ];

    /// `lateral`, `medial`, ….
    pub fn name(self) -> &'static str {
        match self {
            View::Lateral => "lateral",
            View::Medial => "medial",
            View::Ventral => "ventral",
            View::Dorsal => "dorsal",
            View::Anterior => "anterior",
            View::Posterior => "posterior",
        }
    }

    /// The camera of this view of `hemi` (with both hemispheres, the left's).
    fn camera(self, hemi: Hemi) -> Camera {
        let side = if hemi == Hemi::Left { -1.0 } else { 1.0 };
        let (toward, up) = match self {
            View::Lateral => ([side, 0.0, 0.0], [0.0, 0.0, 1.0]),
            View::Medial => ([-side, 0.0, 0.0], [0.0, 0.0, 1.0]),
            View::Ventral => ([0.0, 0.0, -1.0], [0.0, 1.0, 0.0]),
            View::Dorsal => ([0.0, 0.0, 1.0], [0.0, 1.0, 0.0]),
            View::Anterior => ([0.0, 1.0, 0.0], [0.0, 0.0, 1.0]),
            View::Posterior => ([0.0, -1.0, 0.0], [0.0, 0.0, 1.0]),
        };
        Camera {
            right: cross(up, toward),
            up,
            toward,
        }
    }
}

/// An orthographic camera: unit axes in RAS (mm). `toward` points from the brain to the viewer,
/// so depth along it grows toward the viewer; `right` = `up` × `toward`.
#[derive(Clone, Copy, Debug)]
struct Camera {
    right: [f32; 3],
    up: [f32; 3],
    toward: [f32; 3],
}

fn cross(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f32; 3], b: [f32; 3]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// The underlay grey of a vertex with curvature `c` (positive in sulci; NaN drawn as a gyrus).
pub fn curvature_grey(c: f32) -> [u8; 3] {
    if c > 0.0 {
        SULCUS_GREY
    } else {
        GYRUS_GREY
    }
}

/// [vertices] each vertex's map colour, `None` where the map draws nothing.
fn vertex_colours(values: &[f64], scale: &Scale) -> Vec<Option<[u8; 3]>> {
    values.iter().map(|&v| scale.colour(v)).collect()
}

/// [vertices] curvature with NaN taken as 0 (a gyrus), so that blends stay finite.
fn finite_curvature(curvature: &[f32]) -> Vec<f32> {
    curvature
        .iter()
        .map(|&c| if c.is_finite() { c } else { 0.0 })
        .collect()
}

/// Checks a hemisphere's map, labels and curvature against its vertex count: callers check
/// first, so a mismatch is a bug.
fn check_lengths(cortex: &Cortex, hemi: Hemi, map: &SurfaceMap, labels: Option<&VertexLabels>) {
    let h = cortex.hemi(hemi);
    let n = h.n_vertices();
    let name = hemi.prefix();
    assert_eq!(map.values(hemi).len(), n, "{name} map values ≠ vertices");
    assert_eq!(h.curvature.len(), n, "{name} curvature ≠ vertices");
    if let Some(l) = labels {
        assert_eq!(l.values(hemi).len(), n, "{name} labels ≠ vertices");
    }
}

/// One mesh made ready for the canvas.
struct Painted<'a> {
    /// [vertices] (column, row, depth) in pixels; depth grows toward the viewer.
    screen: Vec<[f32; 3]>,
    /// [faces, 3].
    faces: &'a [[u32; 3]],
    /// [vertices] the map's colour before shading, `None` where the curvature shows.
    colours: Vec<Option<[u8; 3]>>,
    /// [vertices] curvature (finite), positive in sulci.
    curvature: Vec<f32>,
    /// [vertices] Lambert factor; `None` on the flat map (no light).
    shade: Option<Vec<f32>>,
    /// [vertices] region of each vertex, where regions are outlined.
    labels: Option<&'a [i32]>,
    /// Categorical maps take each pixel's colour from the triangle's nearest vertex, so that
    /// no blend of two categories appears.
    nearest: bool,
}

/// Pixels being drawn: colour, depth (−∞ where nothing is) and the region under each pixel.
struct Canvas {
    width: usize,
    height: usize,
    /// [height × width].
    rgb: Vec<[u8; 3]>,
    /// [height × width].
    depth: Vec<f32>,
    /// [height × width] region of the pixel's nearest vertex (≤ 0 taken as 0), `NO_REGION`
    /// where no labelled mesh is drawn.
    region: Vec<i32>,
}

const NO_REGION: i32 = i32::MIN;

/// In a 3-D view, a pixel of a triangle whose corners lie in different regions is drawn as
/// outline where no region holds more than this share of the barycentric weight: a band
/// along the border through the triangle's middle.
const OUTLINE_SHARE: f32 = 0.75;

impl Canvas {
    fn new(height: usize, width: usize) -> Canvas {
        let n = height * width;
        Canvas {
            width,
            height,
            rgb: vec![BACKGROUND; n],
            depth: vec![f32::NEG_INFINITY; n],
            region: vec![NO_REGION; n],
        }
    }

    fn covered(&self, i: usize) -> bool {
        self.depth[i] > f32::NEG_INFINITY
    }

    fn into_image(self) -> RgbImage {
        let pixels = self.rgb.into_iter().flatten().collect();
        RgbImage::new(self.height, self.width, pixels)
    }

    /// Rasterises every face of `mesh`, nearer pixels over farther ones (ties: the later face).
    /// `face_outlines`: outline borders inside triangles (3-D views); otherwise the caller
    /// outlines from `region` afterwards (flat map).
    fn paint(&mut self, mesh: &Painted, face_outlines: bool) {
        let n = mesh.screen.len();
        for face in mesh.faces {
            let f = face.map(|v| v as usize);
            if f.iter().any(|&v| v >= n) {
                continue;
            }
            let corners = f.map(|v| mesh.screen[v]);
            let regions = mesh.labels.map(|l| f.map(|v| l[v].max(0)));
            raster(corners, self.width, self.height, |px, w| {
                let z = w[0] * corners[0][2] + w[1] * corners[1][2] + w[2] * corners[2][2];
                if z < self.depth[px] {
                    return;
                }
                self.depth[px] = z;
                let k = nearest_corner(w);
                if let Some(r) = regions {
                    self.region[px] = r[k];
                    if face_outlines && on_border(r, w) {
                        self.rgb[px] = OUTLINE;
                        return;
                    }
                }
                self.rgb[px] = pixel_colour(mesh, f, w, k);
            });
        }
    }

    /// Draws `OUTLINE` over covered pixels whose region differs from a covered neighbour's:
    /// any of the 4 neighbours with `both_sides` (lines 2 pixels wide), else only the right and
    /// lower ones (1 pixel).
    fn outline_regions(&mut self, both_sides: bool) {
        let (w, h) = (self.width, self.height);
        let labelled = |c: &Canvas, i: usize| c.covered(i) && c.region[i] != NO_REGION;
        let mut border = vec![false; w * h];
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                if !labelled(self, i) {
                    continue;
                }
                let mut neighbours = [None; 4];
                if x + 1 < w {
                    neighbours[0] = Some(i + 1);
                }
                if y + 1 < h {
                    neighbours[1] = Some(i + w);
                }
                if both_sides && x > 0 {
                    neighbours[2] = Some(i - 1);
                }
                if both_sides && y > 0 {
                    neighbours[3] = Some(i - w);
                }
                border[i] = neighbours
                    .into_iter()
                    .flatten()
                    .any(|j| labelled(self, j) && self.region[j] != self.region[i]);
            }
        }
        for (px, b) in self.rgb.iter_mut().zip(border) {
            if b {
                *px = OUTLINE;
            }
        }
    }
}

/// The corner with the largest barycentric weight.
fn nearest_corner(w: [f32; 3]) -> usize {
    if w[0] >= w[1] && w[0] >= w[2] {
        0
    } else if w[1] >= w[2] {
        1
    } else {
        2
    }
}

/// Whether a pixel with weights `w` in a triangle with corner regions `r` lies on the border
/// band between regions (never when all three corners share a region).
fn on_border(r: [i32; 3], w: [f32; 3]) -> bool {
    if r[0] == r[1] && r[1] == r[2] {
        return false;
    }
    let share = |k: usize| (0..3).filter(|&j| r[j] == r[k]).map(|j| w[j]).sum::<f32>();
    (0..3).map(share).fold(0.0, f32::max) < OUTLINE_SHARE
}

/// The colour of a pixel with weights `w` in face `f` whose nearest corner is `k`.
///
/// The underlay is the grey of the interpolated curvature, so sulci have smooth edges. A
/// categorical map shows the nearest corner's colour, or the underlay where that corner has
/// none. A continuous map shows where corners with colours hold at least half of the weight,
/// their colours blended by their weights: the data's edge is crisp, with no fade into grey.
fn pixel_colour(mesh: &Painted, f: [usize; 3], w: [f32; 3], k: usize) -> [u8; 3] {
    let curv: f32 = (0..3).map(|j| w[j] * mesh.curvature[f[j]]).sum();
    let underlay = curvature_grey(curv).map(f32::from);
    let mut rgb = if mesh.nearest {
        mesh.colours[f[k]].map_or(underlay, |c| c.map(f32::from))
    } else {
        let mut sum = [0f32; 3];
        let mut cover = 0f32;
        for j in 0..3 {
            if let Some(c) = mesh.colours[f[j]] {
                cover += w[j];
                for ch in 0..3 {
                    sum[ch] += w[j] * c[ch] as f32;
                }
            }
        }
        if cover >= 0.5 {
            sum.map(|c| c / cover)
        } else {
            underlay
        }
    };
    if let Some(shade) = &mesh.shade {
        let s = w[0] * shade[f[0]] + w[1] * shade[f[1]] + w[2] * shade[f[2]];
        rgb = rgb.map(|c| c * s);
    }
    rgb.map(|c| c.round().clamp(0.0, 255.0) as u8)
}

/// Twice the signed area of (a, b, p): positive when p is left of a→b (rows grow downward).
fn edge(a: [f32; 3], b: [f32; 3], p: [f32; 2]) -> f32 {
    (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
}

/// Calls `plot(pixel index, barycentric weights)` for each pixel whose centre lies in the
/// triangle (corners as (column, row, _) in pixels; either winding). Degenerate triangles and
/// those with non-finite corners draw nothing; edges are inclusive so that neighbouring
/// triangles leave no cracks.
fn raster(t: [[f32; 3]; 3], width: usize, height: usize, mut plot: impl FnMut(usize, [f32; 3])) {
    if t.iter().flatten().any(|c| !c.is_finite()) || width == 0 || height == 0 {
        return;
    }
    let area = edge(t[0], t[1], [t[2][0], t[2][1]]);
    if area.abs() < 1e-12 || !area.is_finite() {
        return;
    }
    let lo = |a: usize| t[0][a].min(t[1][a]).min(t[2][a]);
    let hi = |a: usize| t[0][a].max(t[1][a]).max(t[2][a]);
    // Pixel (x, y) has its centre at (x + 0.5, y + 0.5).
    let span = |a: usize, n: usize| -> Option<(usize, usize)> {
        let first = (lo(a) - 0.5).ceil().max(0.0);
        let last = (hi(a) - 0.5).floor().min(n as f32 - 1.0);
        (first <= last).then_some((first as usize, last as usize))
    };
    let (Some((x0, x1)), Some((y0, y1))) = (span(0, width), span(1, height)) else {
        return;
    };
    // Slack for pixel centres on a shared edge, which rounding may put outside both triangles.
    let eps = -1e-5;
    for y in y0..=y1 {
        for x in x0..=x1 {
            let p = [x as f32 + 0.5, y as f32 + 0.5];
            let w0 = edge(t[1], t[2], p) / area;
            let w1 = edge(t[2], t[0], p) / area;
            let w2 = 1.0 - w0 - w1;
            if w0 >= eps && w1 >= eps && w2 >= eps {
                plot(y * width + x, [w0, w1, w2]);
            }
        }
    }
}

/// [vertices] unit normals: the sum of the faces' area-weighted normals around each vertex.
fn vertex_normals(mesh: &Mesh) -> Vec<[f32; 3]> {
    let n = mesh.vertices.len();
    let mut normals = vec![[0f32; 3]; n];
    for face in &mesh.faces {
        let f = face.map(|v| v as usize);
        if f.iter().any(|&v| v >= n) {
            continue;
        }
        let [a, b, c] = f.map(|v| mesh.vertices[v]);
        let fnorm = cross(
            [b[0] - a[0], b[1] - a[1], b[2] - a[2]],
            [c[0] - a[0], c[1] - a[1], c[2] - a[2]],
        );
        for v in f {
            for a in 0..3 {
                normals[v][a] += fnorm[a];
            }
        }
    }
    for nrm in &mut normals {
        let len = dot(*nrm, *nrm).sqrt();
        if len > 0.0 && len.is_finite() {
            *nrm = nrm.map(|c| c / len);
        }
    }
    normals
}

/// [vertices] Lambert shading with the light at the camera: ambient 0.35 plus 0.65 × |cos|
/// (either normal orientation lights the same).
fn lambert(mesh: &Mesh, camera: &Camera) -> Vec<f32> {
    vertex_normals(mesh)
        .into_iter()
        .map(|n| 0.35 + 0.65 * dot(n, camera.toward).abs().min(1.0))
        .collect()
}

/// The x shift of each drawn hemisphere's inflated mesh: with both drawn, the left's largest x
/// and the right's smallest are moved to ∓`gap`/2, since inflated hemispheres overlap in space.
fn inflated_offsets(cortex: &Cortex, hemis: &[Hemi]) -> Vec<f32> {
    const GAP: f32 = 8.0;
    if hemis.len() < 2 {
        return vec![0.0; hemis.len()];
    }
    hemis
        .iter()
        .map(|&h| {
            let (lo, hi) = cortex.hemi(h).inflated.used_bounds();
            let shift = match h {
                Hemi::Left => -hi[0] - GAP / 2.0,
                Hemi::Right => -lo[0] + GAP / 2.0,
            };
            if shift.is_finite() {
                shift
            } else {
                0.0
            }
        })
        .collect()
}

/// Smallest and largest of (x, y) over the vertices that `faces` use.
fn used_extent(points: &[[f32; 3]], faces: &[[u32; 3]], lo: &mut [f32; 2], hi: &mut [f32; 2]) {
    for face in faces {
        for &v in face {
            if let Some(p) = points.get(v as usize) {
                for a in 0..2 {
                    if p[a].is_finite() {
                        lo[a] = lo[a].min(p[a]);
                        hi[a] = hi[a].max(p[a]);
                    }
                }
            }
        }
    }
}

/// Moves points given as (right, up, depth) in mm so that the box `lo`–`hi` fills
/// `width`×`height` less `margin` on each side, centred, aspect kept: (column, row, depth) in
/// pixels.
fn fit(
    points: &mut [[f32; 3]],
    lo: [f32; 2],
    hi: [f32; 2],
    width: usize,
    height: usize,
    margin: f32,
) {
    let span = [(hi[0] - lo[0]).max(1e-6), (hi[1] - lo[1]).max(1e-6)];
    let room = [
        (width as f32 - 2.0 * margin).max(1.0),
        (height as f32 - 2.0 * margin).max(1.0),
    ];
    let s = (room[0] / span[0]).min(room[1] / span[1]);
    let centre = [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0];
    for p in points {
        p[0] = width as f32 / 2.0 + (p[0] - centre[0]) * s;
        p[1] = height as f32 / 2.0 - (p[1] - centre[1]) * s;
    }
}

/// A `size`×`size` picture of the inflated `hemi` (`None`: both, placed apart in x) seen from
/// `view`, the map over the curvature, Lambert-shaded from the camera, regions of `labels`
/// outlined. Categorical maps colour each pixel as its triangle's nearest vertex; continuous
/// maps blend the corners' colours.
///
/// Panics if the map's, the labels' or the curvature's lengths differ from the vertex counts.
pub fn render_view(
    cortex: &Cortex,
    hemi: Option<Hemi>,
    view: View,
    map: &SurfaceMap,
    labels: Option<&VertexLabels>,
    size: usize,
) -> RgbImage {
    let hemis: Vec<Hemi> = match hemi {
        Some(h) => vec![h],
        None => Hemi::BOTH.to_vec(),
    };
    for &h in &hemis {
        check_lengths(cortex, h, map, labels);
    }
    let camera = view.camera(hemi.unwrap_or(Hemi::Left));
    let offsets = inflated_offsets(cortex, &hemis);
    let nearest = matches!(map.scale, Scale::Categorical { .. });
    let mut painted: Vec<Painted> = hemis
        .iter()
        .zip(&offsets)
        .map(|(&h, &dx)| {
            let hs = cortex.hemi(h);
            let mesh = &hs.inflated;
            let screen = mesh
                .vertices
                .iter()
                .map(|v| {
                    let p = [v[0] + dx, v[1], v[2]];
                    [
                        dot(p, camera.right),
                        dot(p, camera.up),
                        dot(p, camera.toward),
                    ]
                })
                .collect();
            Painted {
                screen,
                faces: &mesh.faces,
                colours: vertex_colours(map.values(h), &map.scale),
                curvature: finite_curvature(&hs.curvature),
                shade: Some(lambert(mesh, &camera)),
                labels: labels.map(|l| l.values(h)),
                nearest,
            }
        })
        .collect();
    let (mut lo, mut hi) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
    for p in &painted {
        used_extent(&p.screen, p.faces, &mut lo, &mut hi);
    }
    let mut canvas = Canvas::new(size, size);
    if lo[0] > hi[0] {
        return canvas.into_image();
    }
    let margin = (size as f32 * 0.03).max(1.0);
    for p in &mut painted {
        fit(&mut p.screen, lo, hi, size, size, margin);
        canvas.paint(p, true);
    }
    // Triangles smaller than a pixel rarely put a pixel centre on their border band: the
    // pixels' regions close the gaps.
    if labels.is_some() {
        canvas.outline_regions(false);
    }
    canvas.into_image()
}

/// Gap between the two hemispheres of a flat map, as a share of the picture's height.
const FLAT_GAP: f32 = 0.04;

/// Both hemispheres' flat maps side by side (left on the left), `height` pixels high with their
/// aspect kept, the map over the curvature, regions of `labels` outlined; `None` without flat
/// maps. Continuous maps blend the triangle corners' colours; categorical maps and regions take
/// the nearest corner's.
///
/// Panics if the map's, the labels' or the curvature's lengths differ from the vertex counts.
pub fn render_flat(
    cortex: &Cortex,
    map: &SurfaceMap,
    labels: Option<&VertexLabels>,
    height: usize,
) -> Option<RgbImage> {
    let flats = [cortex.left.flat.as_ref()?, cortex.right.flat.as_ref()?];
    for h in Hemi::BOTH {
        check_lengths(cortex, h, map, labels);
    }
    let margin = (height as f32 * 0.02).max(2.0);
    let gap = height as f32 * FLAT_GAP;
    // Drawn as stored: see the module's notes on orientation.
    let bounds: Vec<([f32; 2], [f32; 2])> = flats
        .iter()
        .map(|m| {
            let (mut lo, mut hi) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
            used_extent(&m.vertices, &m.faces, &mut lo, &mut hi);
            (lo, hi)
        })
        .collect();
    if bounds.iter().any(|(lo, hi)| lo[0] > hi[0]) {
        return Some(Canvas::new(height, height).into_image());
    }
    // One scale for both: the taller hemisphere fills the height.
    let y_lo = bounds[0].0[1].min(bounds[1].0[1]);
    let y_hi = bounds[0].1[1].max(bounds[1].1[1]);
    let mm_wide = [0, 1].map(|i| (bounds[i].1[0] - bounds[i].0[0]).max(0.0));
    let s = (height as f32 - 2.0 * margin).max(1.0) / (y_hi - y_lo).max(1e-6);
    // A map far wider than high (a broken patch) is kept to 4 heights wide.
    let s = s.min(4.0 * height.max(1) as f32 / (mm_wide[0] + mm_wide[1]).max(1e-6));
    let widths = mm_wide.map(|w| w * s);
    let width = (2.0 * margin + gap + widths[0] + widths[1]).ceil() as usize;
    let lefts = [margin, margin + widths[0] + gap];
    let nearest = matches!(map.scale, Scale::Categorical { .. });
    let mut canvas = Canvas::new(height, width);
    for (i, h) in Hemi::BOTH.into_iter().enumerate() {
        let hs = cortex.hemi(h);
        let x_lo = bounds[i].0[0];
        let screen = flats[i]
            .vertices
            .iter()
            .map(|p| {
                [
                    lefts[i] + (p[0] - x_lo) * s,
                    margin + (y_hi - p[1]) * s,
                    0.0,
                ]
            })
            .collect();
        let painted = Painted {
            screen,
            faces: &flats[i].faces,
            colours: vertex_colours(map.values(h), &map.scale),
            curvature: finite_curvature(&hs.curvature),
            shade: None,
            labels: labels.map(|l| l.values(h)),
            nearest,
        };
        canvas.paint(&painted, false);
    }
    if labels.is_some() {
        canvas.outline_regions(true);
    }
    Some(canvas.into_image())
}

/// A number as the colour bar prints it: three significant digits, trailing zeros dropped,
/// scientific notation for very large or small magnitudes, `−` as the minus sign.
pub fn format_number(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "inf".into()
        } else {
            "−inf".into()
        };
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    let text = if !(1e-3..1e4).contains(&a) {
        format!("{v:.1e}")
    } else {
        let decimals = (2 - a.log10().floor() as i32).clamp(0, 4) as usize;
        let t = format!("{v:.decimals$}");
        if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            t
        }
    };
    // Only the sign: `e-4` keeps the hyphen, as in print.
    match text.strip_prefix('-') {
        Some(rest) => format!("−{rest}"),
        None => text,
    }
}

/// Text scale of colour-bar numbers, names and labels (14-pixel capitals).
const BAR_TEXT: usize = 2;

fn blank(height: usize, width: usize) -> RgbImage {
    RgbImage::new(height, width, vec![255; height * width * 3])
}

fn put(img: &mut RgbImage, x: usize, y: usize, colour: [u8; 3]) {
    if x < img.width && y < img.height {
        let at = (y * img.width + x) * 3;
        img.pixels[at..at + 3].copy_from_slice(&colour);
    }
}

fn fill_rect(img: &mut RgbImage, x: usize, y: usize, w: usize, h: usize, colour: [u8; 3]) {
    for row in y..y.saturating_add(h) {
        for col in x..x.saturating_add(w) {
            put(img, col, row, colour);
        }
    }
}

/// Draws `text` centred on column `cx` (clipped at the left edge).
fn draw_centred(img: &mut RgbImage, cx: usize, y: usize, text: &str, scale: usize) {
    let x = cx.saturating_sub(text_width(text, scale) / 2);
    draw_text(img, x, y, text, scale, INK);
}

/// A `width`-pixel-wide legend of `scale` under `label`: for continuous scales a gradient
/// with the minimum and maximum written under its ends, ticks and numbers at ±threshold and at
/// 0 where they fall inside, and the range hidden by the threshold drawn in the gyrus grey (as
/// the cortex shows it); for categorical scales a swatch and name per category, in rows.
pub fn colour_bar(scale: &Scale, width: usize, label: &str) -> RgbImage {
    match scale {
        Scale::Continuous {
            min,
            max,
            threshold,
            ..
        } => gradient_bar(scale, *min, *max, *threshold, width, label),
        Scale::Categorical { names } => swatches(names, width, label),
    }
}

/// Continuous colour bar (see [`colour_bar`]).
fn gradient_bar(
    scale: &Scale,
    min: f64,
    max: f64,
    threshold: Option<f64>,
    width: usize,
    label: &str,
) -> RgbImage {
    const BAR_H: usize = 18;
    const TICK: usize = 5;
    let th = text_height(BAR_TEXT);
    let (min_t, max_t) = (format_number(min), format_number(max));
    // Room at both ends for half of the end numbers.
    let side = (text_width(&min_t, BAR_TEXT).max(text_width(&max_t, BAR_TEXT)) / 2 + 4).max(8);
    let bar_w = width.saturating_sub(2 * side);
    let bar_y = if label.is_empty() { 4 } else { th + 10 };
    let numbers_y = bar_y + BAR_H + TICK + 3;
    let mut img = blank(numbers_y + th + 4, width);
    if !label.is_empty() {
        draw_centred(&mut img, width / 2, 4, label, BAR_TEXT);
    }
    if bar_w == 0 {
        return img;
    }
    let value_at = |col: usize| min + (max - min) * (col as f64 + 0.5) / bar_w as f64;
    for col in 0..bar_w {
        let c = scale.colour(value_at(col)).unwrap_or(GYRUS_GREY);
        fill_rect(&mut img, side + col, bar_y, 1, BAR_H, c);
    }
    // Marks: the ends always, then threshold and zero where they fit between the others.
    let column_of = |v: f64| -> Option<usize> {
        let t = (v - min) / (max - min);
        (t.is_finite() && (0.0..=1.0).contains(&t))
            .then(|| side + ((t * bar_w as f64).round() as usize).min(bar_w - 1))
    };
    let mut marks: Vec<(usize, String)> = vec![(side, min_t), (side + bar_w - 1, max_t)];
    let mut inner = Vec::new();
    if let Some(t) = threshold.filter(|t| t.is_finite() && *t > 0.0) {
        inner.extend([-t, t]);
    }
    if min < 0.0 && max > 0.0 {
        inner.push(0.0);
    }
    let mut taken: Vec<(usize, usize)> = marks.iter().map(|(x, t)| label_span(*x, t)).collect();
    for v in inner {
        let Some(x) = column_of(v) else { continue };
        let text = format_number(v);
        let span = label_span(x, &text);
        if taken.iter().all(|s| span.1 + 6 <= s.0 || s.1 + 6 <= span.0) {
            taken.push(span);
            marks.push((x, text));
        }
    }
    for (x, text) in &marks {
        fill_rect(&mut img, *x, bar_y + BAR_H, 1, TICK, INK);
        let (left, _) = label_span(*x, text);
        draw_text(&mut img, left, numbers_y, text, BAR_TEXT, INK);
    }
    img
}

/// Columns [from, to) a number centred under column `x` takes.
fn label_span(x: usize, text: &str) -> (usize, usize) {
    let w = text_width(text, BAR_TEXT);
    let left = x.saturating_sub(w / 2);
    (left, left + w)
}

/// Categorical legend (see [`colour_bar`]): rows of swatch + name, wrapped at `width`.
fn swatches(names: &[String], width: usize, label: &str) -> RgbImage {
    const PAD: usize = 6;
    let th = text_height(BAR_TEXT);
    let swatch = th;
    let top = if label.is_empty() { PAD } else { th + 2 * PAD };
    // Lay out first (x, y of each entry), then draw.
    let mut places = Vec::with_capacity(names.len());
    let (mut x, mut y) = (PAD, top);
    for name in names {
        let w = swatch + 4 + text_width(name, BAR_TEXT);
        if x > PAD && x + w + PAD > width {
            x = PAD;
            y += th + PAD;
        }
        places.push((x, y));
        x += w + 3 * PAD;
    }
    let height = if names.is_empty() { top } else { y + th + PAD };
    let mut img = blank(height, width);
    if !label.is_empty() {
        draw_centred(&mut img, width / 2, PAD, label, BAR_TEXT);
    }
    for (i, (name, &(x, y))) in names.iter().zip(&places).enumerate() {
        let c = crate::colour::category_colour(i);
        fill_rect(&mut img, x, y, swatch, swatch, c);
        draw_text(&mut img, x + swatch + 4, y, name, BAR_TEXT, INK);
    }
    img
}

/// Copies `src` into `dst` with its top-left corner at (x, y), clipped.
fn blit(dst: &mut RgbImage, src: &RgbImage, x: usize, y: usize) {
    for row in 0..src.height {
        let dy = y + row;
        if dy >= dst.height {
            break;
        }
        let n = src.width.min(dst.width.saturating_sub(x));
        if n == 0 {
            break;
        }
        let s = row * src.width * 3;
        let d = (dy * dst.width + x) * 3;
        dst.pixels[d..d + n * 3].copy_from_slice(&src.pixels[s..s + n * 3]);
    }
}

/// Height of the figure's flat map in pixels.
pub const FIGURE_FLAT_HEIGHT: usize = 500;
/// Side of each inflated view in the figure, in pixels.
pub const FIGURE_VIEW_SIZE: usize = 220;

/// The inflated views of [`figure`], left to right: (hemisphere, view, caption).
const FIGURE_VIEWS: [(Option<Hemi>, View, &str); 5] = [
    (Some(Hemi::Left), View::Lateral, "left lateral"),
    (Some(Hemi::Left), View::Medial, "left medial"),
    (Some(Hemi::Right), View::Medial, "right medial"),
    (Some(Hemi::Right), View::Lateral, "right lateral"),
    (None, View::Ventral, "ventral (R | L)"),
];

/// One picture for a report: `title` on top, the flat map (if the cortex has one,
/// [`FIGURE_FLAT_HEIGHT`] high), a row of captioned inflated views ([`FIGURE_VIEW_SIZE`]
/// square: left lateral, left medial, right medial, right lateral, ventral of both), and the
/// colour bar named after the map.
pub fn figure(
    cortex: &Cortex,
    map: &SurfaceMap,
    labels: Option<&VertexLabels>,
    title: &str,
) -> RgbImage {
    const PAD: usize = 12;
    const TITLE: usize = 3;
    const CAPTION: usize = 2;
    let flat = render_flat(cortex, map, labels, FIGURE_FLAT_HEIGHT);
    let views: Vec<RgbImage> = FIGURE_VIEWS
        .iter()
        .map(|&(h, v, _)| render_view(cortex, h, v, map, labels, FIGURE_VIEW_SIZE))
        .collect();
    let row_w = views.iter().map(|v| v.width).sum::<usize>() + PAD * (views.len() - 1);
    let width = 2 * PAD + row_w.max(flat.as_ref().map_or(0, |f| f.width));
    let bar = colour_bar(&map.scale, (width * 2 / 3).min(width - 2 * PAD), &map.name);
    let title_h = if title.is_empty() {
        0
    } else {
        text_height(TITLE) + PAD
    };
    let flat_h = flat.as_ref().map_or(0, |f| f.height + PAD);
    let caption_h = text_height(CAPTION) + 4;
    let height = PAD + title_h + flat_h + FIGURE_VIEW_SIZE + caption_h + PAD + bar.height + PAD;
    let mut img = blank(height, width);
    let mut y = PAD;
    if !title.is_empty() {
        draw_centred(&mut img, width / 2, y, title, TITLE);
        y += title_h;
    }
    if let Some(f) = &flat {
        blit(&mut img, f, (width - f.width) / 2, y);
        y += flat_h;
    }
    let mut x = (width - row_w) / 2;
    for (view, &(_, _, caption)) in views.iter().zip(&FIGURE_VIEWS) {
        blit(&mut img, view, x, y);
        draw_centred(
            &mut img,
            x + view.width / 2,
            y + view.height,
            caption,
            CAPTION,
        );
        x += view.width + PAD;
    }
    y += FIGURE_VIEW_SIZE + caption_h + PAD;
    blit(&mut img, &bar, (width - bar.width) / 2, y);
    img
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::colour::{category_colour, Colormap};
    use crate::mesh::Hemisphere;

    /// A square of two triangles per hemisphere: in the plane x = ∓10 (facing out) when
    /// inflated, in z = 0 when flat; curvature alternating gyrus, sulcus.
    fn square_cortex() -> Cortex {
        let hemisphere = |x: f32| {
            let inflated = Mesh {
                vertices: vec![
                    [x, -10.0, -10.0],
                    [x, 10.0, -10.0],
                    [x, 10.0, 10.0],
                    [x, -10.0, 10.0],
                ],
                faces: vec![[0, 1, 2], [0, 2, 3]],
            };
            let flat = Mesh {
                vertices: vec![
                    [-10.0, -10.0, 0.0],
                    [10.0, -10.0, 0.0],
                    [10.0, 10.0, 0.0],
                    [-10.0, 10.0, 0.0],
                ],
                faces: inflated.faces.clone(),
            };
            Hemisphere {
                white: inflated.clone(),
                pial: inflated.clone(),
                inflated,
                flat: Some(flat),
                curvature: vec![-1.0, 1.0, -1.0, 1.0],
            }
        };
        Cortex {
            name: "square".into(),
            left: hemisphere(-10.0),
            right: hemisphere(10.0),
        }
    }

    fn map(left: Vec<f64>, right: Vec<f64>, scale: Scale) -> SurfaceMap {
        SurfaceMap {
            name: "m".into(),
            left,
            right,
            scale,
        }
    }

    fn red_blue() -> Scale {
        Scale::Continuous {
            colormap: Colormap::Diverging,
            min: -1.0,
            max: 1.0,
            threshold: None,
        }
    }

    fn colours(img: &RgbImage) -> std::collections::BTreeSet<[u8; 3]> {
        img.pixels.chunks(3).map(|p| [p[0], p[1], p[2]]).collect()
    }

    #[test]
    fn raster_covers_each_pixel_centre_inside_without_cracks() {
        let (a, b, c, d) = (
            [1.0, 1.0, 0.0],
            [9.0, 1.0, 0.0],
            [9.0, 9.0, 0.0],
            [1.0, 9.0, 0.0],
        );
        let mut hits = vec![0; 100];
        for t in [[a, b, c], [a, d, c]] {
            raster(t, 10, 10, |i, w| {
                assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-5);
                hits[i] += 1;
            });
        }
        // Centres 1.5 … 8.5 in both axes: 8 × 8 pixels, those on the diagonal twice.
        assert_eq!(hits.iter().filter(|&&h| h > 0).count(), 64);
        assert_eq!(hits.iter().filter(|&&h| h > 1).count(), 8);
        assert_eq!(hits[0], 0);
    }

    #[test]
    fn raster_skips_degenerate_and_non_finite_triangles_and_clips() {
        let mut calls = 0;
        let line = [[0.0, 0.0, 0.0], [5.0, 5.0, 0.0], [10.0, 10.0, 0.0]];
        let nan = [[0.0, 0.0, 0.0], [f32::NAN, 5.0, 0.0], [10.0, 0.0, 0.0]];
        for t in [line, nan] {
            raster(t, 10, 10, |_, _| calls += 1);
        }
        raster(
            [[0.0; 3], [9.0, 0.0, 0.0], [0.0, 9.0, 0.0]],
            0,
            0,
            |_, _| calls += 1,
        );
        assert_eq!(calls, 0);
        let huge = [[-1e6, -1e6, 0.0], [1e6, -1e6, 0.0], [0.0, 1e6, 0.0]];
        raster(huge, 5, 4, |_, _| calls += 1);
        assert_eq!(calls, 20);
        let outside = [[20.0, 20.0, 0.0], [30.0, 20.0, 0.0], [20.0, 30.0, 0.0]];
        raster(outside, 5, 4, |_, _| panic!("drawn outside"));
    }

    #[test]
    fn borders_lie_between_regions_only() {
        assert!(!on_border([2, 2, 2], [0.3, 0.3, 0.4]));
        assert!(on_border([1, 1, 2], [0.4, 0.2, 0.4]));
        assert!(!on_border([1, 1, 2], [0.5, 0.4, 0.1]));
        assert!(on_border([1, 2, 3], [0.34, 0.33, 0.33]));
        assert_eq!(nearest_corner([0.2, 0.5, 0.3]), 1);
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(format_number(0.0), "0");
        assert_eq!(format_number(0.05), "0.05");
        assert_eq!(format_number(0.3), "0.3");
        assert_eq!(format_number(-103.2), "−103");
        assert_eq!(format_number(1.2345), "1.23");
        assert_eq!(format_number(12345.0), "1.2e4");
        assert_eq!(format_number(-0.000123), "−1.2e-4");
        assert_eq!(format_number(f64::NAN), "NaN");
    }

    #[test]
    fn sulci_are_darker_than_gyri() {
        assert!(curvature_grey(0.5)[0] < curvature_grey(-0.5)[0]);
        assert_eq!(curvature_grey(0.0), GYRUS_GREY);
        assert_eq!(curvature_grey(f32::NAN), GYRUS_GREY);
    }

    #[test]
    fn a_square_facing_the_camera_shows_both_greys_unshaded() {
        let cortex = square_cortex();
        let nan = map(vec![f64::NAN; 4], vec![f64::NAN; 4], red_blue());
        let img = render_view(&cortex, Some(Hemi::Left), View::Lateral, &nan, None, 40);
        let seen = colours(&img);
        assert!(
            seen.contains(&GYRUS_GREY) && seen.contains(&SULCUS_GREY),
            "{seen:?}"
        );
        // The medial camera sees the same square from behind, lit the same.
        let img = render_view(&cortex, Some(Hemi::Left), View::Medial, &nan, None, 40);
        assert!(colours(&img).contains(&GYRUS_GREY));
        // Seen edge-on from below, the square is a line: nothing drawn.
        let img = render_view(&cortex, Some(Hemi::Left), View::Ventral, &nan, None, 40);
        assert_eq!(colours(&img), [BACKGROUND].into());
    }

    #[test]
    fn continuous_colours_blend_and_categories_do_not() {
        let cortex = square_cortex();
        let ramp = map(vec![-1.0, 1.0, 1.0, -1.0], vec![f64::NAN; 4], red_blue());
        let flat = render_flat(&cortex, &ramp, None, 60).unwrap();
        // Mid-way colours between the ends appear.
        assert!(colours(&flat).len() > 10);
        let names = vec!["a".to_string(), "b".to_string()];
        let cats = map(
            vec![0.0, 1.0, 1.0, 0.0],
            vec![f64::NAN; 4],
            Scale::Categorical { names },
        );
        let flat = render_flat(&cortex, &cats, None, 60).unwrap();
        let allowed = [
            BACKGROUND,
            GYRUS_GREY,
            SULCUS_GREY,
            category_colour(0),
            category_colour(1),
        ];
        assert!(
            colours(&flat).iter().all(|c| allowed.contains(c)),
            "{:?}",
            colours(&flat)
        );
    }

    #[test]
    fn flat_outlines_follow_region_borders() {
        let cortex = square_cortex();
        let nan = map(vec![f64::NAN; 4], vec![f64::NAN; 4], red_blue());
        let labels = VertexLabels {
            name: "l".into(),
            left: vec![1, 2, 2, 1],
            right: vec![3, 3, 3, 3],
            names: vec![],
        };
        let img = render_flat(&cortex, &nan, Some(&labels), 60).unwrap();
        let outline: Vec<usize> = img
            .pixels
            .chunks(3)
            .enumerate()
            .filter(|(_, p)| *p == OUTLINE)
            .map(|(i, _)| i % img.width)
            .collect();
        assert!(outline.len() > 20);
        // Only in the left square (the right one is one region), near its middle column.
        assert!(
            outline
                .iter()
                .all(|&x| x < img.width / 2 && x > img.width / 8),
            "{outline:?}"
        );
    }

    #[test]
    fn empty_and_degenerate_inputs_draw_a_blank_picture() {
        let empty = Hemisphere {
            white: Mesh {
                vertices: vec![],
                faces: vec![],
            },
            pial: Mesh {
                vertices: vec![],
                faces: vec![],
            },
            inflated: Mesh {
                vertices: vec![],
                faces: vec![],
            },
            flat: Some(Mesh {
                vertices: vec![],
                faces: vec![],
            }),
            curvature: vec![],
        };
        let cortex = Cortex {
            name: "empty".into(),
            left: empty.clone(),
            right: empty,
        };
        let m = map(vec![], vec![], Scale::positive(&[], None));
        let img = render_view(&cortex, None, View::Lateral, &m, None, 16);
        assert_eq!((img.height, img.width), (16, 16));
        assert_eq!(colours(&img), [BACKGROUND].into());
        assert!(render_flat(&cortex, &m, None, 16).is_some());
        let _ = figure(&cortex, &m, None, "empty");
        let _ = colour_bar(&m.scale, 0, "");
        let _ = colour_bar(&m.scale, 3, "long label");
        let _ = render_view(
            &square_cortex(),
            None,
            View::Anterior,
            &map(vec![0.0; 4], vec![0.0; 4], red_blue()),
            None,
            0,
        );
    }

    #[test]
    #[should_panic(expected = "lh map values")]
    fn a_map_of_the_wrong_length_is_refused() {
        let cortex = square_cortex();
        let short = map(vec![0.0; 3], vec![0.0; 4], red_blue());
        render_view(&cortex, Some(Hemi::Left), View::Lateral, &short, None, 10);
    }

    #[test]
    fn colour_bars_show_the_threshold_and_the_categories() {
        let scale = Scale::Continuous {
            colormap: Colormap::Diverging,
            min: -1.0,
            max: 1.0,
            threshold: Some(0.5),
        };
        let bar = colour_bar(&scale, 300, "r");
        let seen = colours(&bar);
        let end = Colormap::Diverging.at(1.0);
        let near_end = |c: &[u8; 3]| (0..3).all(|i| c[i].abs_diff(end[i]) <= 3);
        assert!(seen.contains(&GYRUS_GREY) && seen.iter().any(near_end));
        assert!(!seen.contains(&Colormap::Diverging.at(0.5)));
        let names: Vec<String> = (0..6).map(|i| format!("category {i}")).collect();
        let wide = colour_bar(
            &Scale::Categorical {
                names: names.clone(),
            },
            2000,
            "",
        );
        let narrow = colour_bar(&Scale::Categorical { names }, 200, "");
        for i in 0..6 {
            assert!(colours(&narrow).contains(&category_colour(i)));
        }
        assert!(
            narrow.height > 3 * wide.height,
            "{} {}",
            narrow.height,
            wide.height
        );
    }
}
