//! A self-contained interactive page: the cortex in 3-D (inflated, both hemispheres), drag to
//! rotate, wheel to zoom, preset views, a flat-map toggle, a map selector, a colour bar, and
//! hover that names the vertex under the mouse (hemisphere, index, value, region).
//!
//! Everything is inside the one HTML file: the meshes, faces and per-vertex colours travel as
//! base64 of little-endian `Float32Array`/`Uint32Array`/`Uint8Array`/`Int32Array` buffers in a
//! JSON block (`<script type="application/json" id="brainrecon-data">`); the drawing code is
//! inline JavaScript with WebGL (2 or 1) and a software rasteriser on a 2-D canvas where WebGL is
//! unavailable (headless browsers without a GPU).
//!
//! The page reads its initial state from the URL hash, so that each state can be opened (and
//! screenshot) directly: `#flat`, `#view=ventral&map=1`, `#hemi=L`, `#zoom=1.5`,
//! `#renderer=2d`, `#selftest` (see [`page_html`]).

use crate::colour::{category_colour, Scale};
use crate::mesh::{used_bounds, Cortex, Hemi, Hemisphere, Mesh, SurfaceMap, VertexLabels};
use brainrecon_core::stats::pearson;
use brainrecon_core::text::{base64_encode, escape_html as html_escape};
use serde_json::{json, Value};

/// The colour of gyri (curvature ≤ 0) where a map draws nothing.
pub const GYRUS_GREY: [u8; 3] = [176, 176, 176];
/// The colour of sulci (curvature > 0) where a map draws nothing: darker than gyri.
pub const SULCUS_GREY: [u8; 3] = [112, 112, 112];

/// The `id` of the page's JSON data block.
pub const DATA_ELEMENT_ID: &str = "brainrecon-data";

/// The bytes of standard padded base64, or `None` if `text` is not that.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if text.len() % 4 != 0 {
        return None;
    }
    let value = |c: u8| -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let quads = text.len() / 4;
    for (q, quad) in text.chunks(4).enumerate() {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && q + 1 != quads) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

fn f32_buffer(values: impl IntoIterator<Item = f32>) -> String {
    let mut bytes = Vec::new();
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    base64_encode(&bytes)
}

fn u32_buffer(values: impl IntoIterator<Item = u32>) -> String {
    let mut bytes = Vec::new();
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    base64_encode(&bytes)
}

fn i32_buffer(values: impl IntoIterator<Item = i32>) -> String {
    let mut bytes = Vec::new();
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    base64_encode(&bytes)
}

/// JSON that is safe inside a `<script>` element: `<`, `>`, `&` and the JavaScript line
/// separators only occur inside JSON strings, where their `\u` escapes mean the same.
fn script_safe_json(value: &Value) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            _ => out.push(c),
        }
    }
    out
}

/// The grey of a vertex with this curvature (sulci darker).
fn curvature_grey(curvature: f32) -> [u8; 3] {
    if curvature > 0.0 {
        SULCUS_GREY
    } else {
        GYRUS_GREY
    }
}

/// Per-vertex RGB of a map on one hemisphere: the scale's colour, or the curvature grey where
/// the scale draws nothing (NaN, under threshold, missing values).
fn vertex_colours(hemisphere: &Hemisphere, values: &[f64], scale: &Scale) -> Vec<u8> {
    let n = hemisphere.n_vertices();
    let mut rgb = Vec::with_capacity(n * 3);
    for v in 0..n {
        let value = values.get(v).copied().unwrap_or(f64::NAN);
        let colour = scale
            .colour(value)
            .unwrap_or_else(|| curvature_grey(hemisphere.curvature.get(v).copied().unwrap_or(0.0)));
        rgb.extend_from_slice(&colour);
    }
    rgb
}

/// The flat map's (x, y) turned so that dorsal is up: if the flat y runs against the folded
/// surface's z (superior) over the map's vertices, the map is turned by 180° (x and y negated,
/// which keeps it unmirrored).
fn oriented_flat(hemisphere: &Hemisphere, flat: &Mesh) -> Vec<[f32; 3]> {
    let used = flat.used_vertices();
    let mut fy = Vec::new();
    let mut wz = Vec::new();
    for (v, &u) in used.iter().enumerate() {
        if let (true, Some(w)) = (u, hemisphere.white.vertices.get(v)) {
            fy.push(f64::from(flat.vertices[v][1]));
            wz.push(f64::from(w[2]));
        }
    }
    // NaN (a constant series) does not turn it.
    let turn = pearson(&fy, &wz) < 0.0;
    flat.vertices
        .iter()
        .map(|p| {
            if turn {
                [-p[0], -p[1], 0.0]
            } else {
                [p[0], p[1], 0.0]
            }
        })
        .collect()
}

/// The two hemispheres' vertices moved apart along x (left to the left of the midline, right to
/// the right, `gap` between them as a fraction of the wider one's width) and centred in y and z.
fn spread(
    left: &[[f32; 3]],
    left_faces: &[[u32; 3]],
    right: &[[f32; 3]],
    right_faces: &[[u32; 3]],
    gap: f32,
) -> (Vec<[f32; 3]>, Vec<[f32; 3]>) {
    let (llo, lhi) = used_bounds(left, left_faces);
    let (rlo, rhi) = used_bounds(right, right_faces);
    let width = (lhi[0] - llo[0]).max(rhi[0] - rlo[0]).max(1e-3);
    let half_gap = 0.5 * gap * width;
    let dl = -half_gap - lhi[0];
    let dr = half_gap - rlo[0];
    let mut centre = [0f32; 3];
    for a in 1..3 {
        centre[a] = 0.5 * (llo[a].min(rlo[a]) + lhi[a].max(rhi[a]));
    }
    let place = |vs: &[[f32; 3]], dx: f32| -> Vec<[f32; 3]> {
        vs.iter()
            .map(|p| [p[0] + dx, p[1] - centre[1], p[2] - centre[2]])
            .collect()
    };
    (place(left, dl), place(right, dr))
}

fn scale_json(scale: &Scale) -> Value {
    match scale {
        Scale::Continuous {
            colormap,
            min,
            max,
            threshold,
        } => {
            let gradient: Vec<[u8; 3]> = (0..=16).map(|i| colormap.at(i as f64 / 16.0)).collect();
            json!({
                "kind": "continuous",
                "colormap": format!("{colormap:?}"),
                "min": min,
                "max": max,
                "threshold": threshold,
                "gradient": gradient,
            })
        }
        Scale::Categorical { names } => {
            let categories: Vec<Value> = names
                .iter()
                .enumerate()
                .map(|(i, name)| json!({"name": name, "colour": category_colour(i)}))
                .collect();
            json!({"kind": "categorical", "categories": categories})
        }
    }
}

fn put(buffers: &mut serde_json::Map<String, Value>, name: String, base64: String) {
    buffers.insert(name, Value::String(base64));
}

/// The page's data block: sizes, maps' scales and names, and the base64 buffers.
fn page_data(
    cortex: &Cortex,
    maps: &[SurfaceMap],
    labels: Option<&VertexLabels>,
    title: &str,
) -> Value {
    let mut buffers = serde_json::Map::new();
    let hemis = [&cortex.left, &cortex.right];
    let has_flat = cortex.has_flat();

    let (infl_l, infl_r) = spread(
        &cortex.left.inflated.vertices,
        &cortex.left.inflated.faces,
        &cortex.right.inflated.vertices,
        &cortex.right.inflated.faces,
        0.12,
    );
    let flats = match (&cortex.left.flat, &cortex.right.flat) {
        (Some(fl), Some(fr)) => {
            let (l, r) = spread(
                &oriented_flat(&cortex.left, fl),
                &fl.faces,
                &oriented_flat(&cortex.right, fr),
                &fr.faces,
                0.08,
            );
            Some([(l, &fl.faces), (r, &fr.faces)])
        }
        _ => None,
    };
    let inflated = [infl_l, infl_r];

    let mut hemi_meta = Vec::new();
    for (k, hemi) in Hemi::BOTH.into_iter().enumerate() {
        let h = hemis[k];
        let name = hemi.bids();
        let n = h.n_vertices();
        put(
            &mut buffers,
            format!("{name}.inflated"),
            f32_buffer(inflated[k].iter().flatten().copied()),
        );
        put(
            &mut buffers,
            format!("{name}.faces"),
            u32_buffer(h.inflated.faces.iter().flatten().copied()),
        );
        let mut flat_faces = 0;
        if let Some(flats) = &flats {
            let (vertices, faces) = &flats[k];
            flat_faces = faces.len();
            put(
                &mut buffers,
                format!("{name}.flat"),
                f32_buffer(vertices.iter().flatten().copied()),
            );
            put(
                &mut buffers,
                format!("{name}.flat_faces"),
                u32_buffer(faces.iter().flatten().copied()),
            );
        }
        let curv: Vec<u8> = (0..n)
            .flat_map(|v| curvature_grey(h.curvature.get(v).copied().unwrap_or(0.0)))
            .collect();
        put(&mut buffers, format!("{name}.curv"), base64_encode(&curv));
        for (j, map) in maps.iter().enumerate() {
            let values = map.values(hemi);
            put(
                &mut buffers,
                format!("{name}.map{j}.rgb"),
                base64_encode(&vertex_colours(h, values, &map.scale)),
            );
            put(
                &mut buffers,
                format!("{name}.map{j}.values"),
                f32_buffer((0..n).map(|v| values.get(v).copied().unwrap_or(f64::NAN) as f32)),
            );
        }
        if let Some(labels) = labels {
            let values = labels.values(hemi);
            put(
                &mut buffers,
                format!("{name}.labels"),
                i32_buffer((0..n).map(|v| values.get(v).copied().unwrap_or(0))),
            );
        }
        hemi_meta.push(json!({
            "name": name,
            "vertices": n,
            "faces": h.inflated.faces.len(),
            "flat_faces": flat_faces,
        }));
    }

    let maps_meta: Vec<Value> = maps
        .iter()
        .map(|m| json!({"name": m.name, "scale": scale_json(&m.scale)}))
        .collect();
    let labels_meta = labels.map(|l| {
        json!({
            "name": l.name,
            "names": l.names.iter().map(|(v, n)| json!([v, n])).collect::<Vec<_>>(),
        })
    });
    json!({
        "format": "brainrecon-cortex-page/1",
        "title": title,
        "cortex": cortex.name,
        "has_flat": flats.is_some() && has_flat,
        "hemis": hemi_meta,
        "maps": maps_meta,
        "labels": labels_meta,
        "greys": {"gyrus": GYRUS_GREY, "sulcus": SULCUS_GREY},
        "buffers": Value::Object(buffers),
    })
}

/// A single self-contained HTML page showing `maps` on `cortex` (no network: data, script and
/// style are inline).
///
/// - 3-D view of both inflated hemispheres, spread apart; drag rotates (in the flat map: pans),
///   the wheel zooms toward the mouse, double-click fits; buttons for lateral, medial (one
///   hemisphere), dorsal, ventral, anterior and posterior views; a toggle to both flat maps
///   side by side (left hemisphere on the left, dorsal up) when the cortex has them.
/// - A selector between maps, a colour bar of the current map (gradient and min/max, or
///   category swatches and names), and a status line naming the vertex under the mouse
///   (hemisphere, index, value, and the region of `labels`).
/// - Vertex colours are computed here with [`Scale::colour`]; where it gives none, the
///   curvature shows ([`SULCUS_GREY`] in sulci, [`GYRUS_GREY`] on gyri).
///
/// URL-hash options (joined with `&`): `flat` or `mode=flat|inflated`;
/// `view=lateral-left|lateral-right|medial-left|medial-right|dorsal|ventral|anterior|posterior`
/// (also `lateral`, `medial`); `map=N` (0-based); `hemi=L|R|both`; `zoom=F`;
/// `renderer=2d|webgl` (force a path); `selftest` (checks the data, picking and drawing, then
/// sets `document.title` to `SELFTEST PASS …` or `SELFTEST FAIL …`).
pub fn page_html(
    cortex: &Cortex,
    maps: &[SurfaceMap],
    labels: Option<&VertexLabels>,
    title: &str,
) -> String {
    let data = script_safe_json(&page_data(cortex, maps, labels, title));
    let title_html = html_escape(title);
    let mut subtitle = html_escape(&cortex.name);
    if let Some(l) = labels {
        subtitle.push_str(" · regions: ");
        subtitle.push_str(&html_escape(&l.name));
    }
    let mut html = String::with_capacity(data.len() + STYLE.len() + SCRIPT.len() + 4096);
    html.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str(
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
    );
    html.push_str(&title_html);
    html.push_str("</title>\n<style>");
    html.push_str(STYLE);
    html.push_str("</style>\n</head>\n<body>\n<div id=\"bar\"><span id=\"title\">");
    html.push_str(&title_html);
    html.push_str("</span><span id=\"subtitle\">");
    html.push_str(&subtitle);
    html.push_str("</span>");
    html.push_str(BAR);
    html.push_str("</div>\n");
    html.push_str(BODY);
    html.push_str("<script type=\"application/json\" id=\"");
    html.push_str(DATA_ELEMENT_ID);
    html.push_str("\">");
    html.push_str(&data);
    html.push_str("</script>\n<script>");
    html.push_str(SCRIPT);
    html.push_str("</script>\n</body>\n</html>\n");
    html
}

const STYLE: &str = r#"
html,body{margin:0;height:100%;background:#202329;color:#e6e6e6;font:13px/1.35 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;overflow:hidden}
body{display:flex;flex-direction:column}
#bar{display:flex;flex-wrap:wrap;align-items:center;gap:6px;padding:6px 10px;background:#2b2f37;border-bottom:1px solid #3a3f4a}
#title{font-weight:600;font-size:15px;margin-right:4px}
#subtitle{color:#9aa3b2;margin-right:10px}
.grp{display:inline-flex;gap:3px;align-items:center;margin-right:8px}
button,select{background:#3a404c;color:#eee;border:1px solid #4b5261;border-radius:4px;padding:3px 7px;font:inherit;cursor:pointer}
button:hover,select:hover{background:#474e5d}
button.on{background:#5a6b8c;border-color:#7d8fb3}
button:disabled{opacity:.4;cursor:default}
label{cursor:pointer;user-select:none}
#stage{position:relative;flex:1 1 auto;min-height:0}
#view{position:absolute;left:0;top:0;width:100%;height:100%;cursor:grab;display:block}
#view.dragging{cursor:grabbing}
#legend{position:absolute;left:12px;bottom:12px;background:rgba(32,35,41,.82);border:1px solid #3a3f4a;border-radius:6px;padding:8px 10px;max-width:46%;pointer-events:none}
#legend .name{font-weight:600;margin-bottom:4px}
#legend .ramp{width:220px;height:14px;border:1px solid #555;border-radius:2px}
#legend .ends{display:flex;justify-content:space-between;width:222px;font-variant-numeric:tabular-nums}
#legend .note{color:#9aa3b2;font-size:11px}
#legend .cat{display:flex;align-items:center;gap:6px}
#legend .sw{width:12px;height:12px;border:1px solid #555;border-radius:2px;flex:none}
#renderer{position:absolute;right:10px;bottom:8px;color:#7c8594;font-size:11px;pointer-events:none}
#status{padding:5px 10px;background:#2b2f37;border-top:1px solid #3a3f4a;min-height:18px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;font-variant-numeric:tabular-nums}
#selftest{display:none}
"#;

const BAR: &str = r#"<span class="grp" id="views"><button data-view="lateral-left" title="Lateral view of the left hemisphere">Lateral L</button><button data-view="lateral-right" title="Lateral view of the right hemisphere">Lateral R</button><button data-view="medial-left" title="Medial view of the left hemisphere (right hidden)">Medial L</button><button data-view="medial-right" title="Medial view of the right hemisphere (left hidden)">Medial R</button><button data-view="dorsal">Dorsal</button><button data-view="ventral">Ventral</button><button data-view="anterior">Anterior</button><button data-view="posterior">Posterior</button></span><span class="grp"><button id="mode" title="Inflated 3-D surfaces or flat maps">Flat map</button><button id="fit" title="Fit the view (double-click)">Fit</button></span><span class="grp"><label><input type="checkbox" id="showL" checked>L</label><label><input type="checkbox" id="showR" checked>R</label></span><span class="grp" id="mapgrp"><label for="map">Map</label><select id="map"></select></span>"#;

const BODY: &str = r#"<div id="stage"><canvas id="view"></canvas><div id="legend"></div><div id="renderer"></div></div>
<div id="status">Drag to rotate, wheel to zoom; hover a vertex to read its value.</div>
<pre id="selftest"></pre>
"#;

const SCRIPT: &str = r##"
(function () {
"use strict";
var D = JSON.parse(document.getElementById("brainrecon-data").textContent);
var BG = [32, 35, 41];

// ---- data ----
function raw(name) {
  var s = D.buffers[name];
  if (typeof s !== "string") throw new Error("missing buffer " + name);
  var b = atob(s), n = b.length, u = new Uint8Array(n);
  for (var i = 0; i < n; i++) u[i] = b.charCodeAt(i);
  return u;
}
function f32(name) { var u = raw(name); return new Float32Array(u.buffer, 0, u.length >> 2); }
function u32(name) { var u = raw(name); return new Uint32Array(u.buffer, 0, u.length >> 2); }
function i32(name) { var u = raw(name); return new Int32Array(u.buffer, 0, u.length >> 2); }

var H = D.hemis.map(function (h) {
  var o = { name: h.name, n: h.vertices, mesh: {} };
  o.mesh.inflated = { pos: f32(h.name + ".inflated"), faces: u32(h.name + ".faces") };
  if (D.has_flat) o.mesh.flat = { pos: f32(h.name + ".flat"), faces: u32(h.name + ".flat_faces") };
  o.curv = raw(h.name + ".curv");
  o.rgb = D.maps.map(function (m, j) { return raw(h.name + ".map" + j + ".rgb"); });
  o.values = D.maps.map(function (m, j) { return f32(h.name + ".map" + j + ".values"); });
  o.labels = D.labels ? i32(h.name + ".labels") : null;
  return o;
});
var OFF = [0, H[0].n], N = H[0].n + H[1].n;
var LABEL_NAMES = {};
if (D.labels) D.labels.names.forEach(function (p) { LABEL_NAMES[p[0]] = p[1]; });

// Both hemispheres of one kind of mesh in one set of arrays (right's indices offset).
function combine(kind) {
  var pos = new Float32Array(3 * N), nrm = new Float32Array(3 * N), used = new Uint8Array(N);
  var nf = H[0].mesh[kind].faces.length / 3 + H[1].mesh[kind].faces.length / 3;
  var idx = new Uint32Array(3 * nf), fn = new Float32Array(3 * nf);
  var fstart = [0, H[0].mesh[kind].faces.length / 3], fcount = [fstart[1], H[1].mesh[kind].faces.length / 3];
  for (var h = 0; h < 2; h++) {
    var m = H[h].mesh[kind], o = OFF[h], f0 = fstart[h];
    pos.set(m.pos, 3 * o);
    var cx = 0, cy = 0, cz = 0;
    for (var v = 0; v < H[h].n; v++) { cx += m.pos[3 * v]; cy += m.pos[3 * v + 1]; cz += m.pos[3 * v + 2]; }
    cx /= H[h].n; cy /= H[h].n; cz /= H[h].n;
    var outward = 0;
    for (var f = 0; f < fcount[h]; f++) {
      var a = m.faces[3 * f], b = m.faces[3 * f + 1], c = m.faces[3 * f + 2];
      idx[3 * (f0 + f)] = a + o; idx[3 * (f0 + f) + 1] = b + o; idx[3 * (f0 + f) + 2] = c + o;
      used[a + o] = used[b + o] = used[c + o] = 1;
      var ax = m.pos[3 * a], ay = m.pos[3 * a + 1], az = m.pos[3 * a + 2];
      var ux = m.pos[3 * b] - ax, uy = m.pos[3 * b + 1] - ay, uz = m.pos[3 * b + 2] - az;
      var wx = m.pos[3 * c] - ax, wy = m.pos[3 * c + 1] - ay, wz = m.pos[3 * c + 2] - az;
      var nx = uy * wz - uz * wy, ny = uz * wx - ux * wz, nz = ux * wy - uy * wx;
      fn[3 * (f0 + f)] = nx; fn[3 * (f0 + f) + 1] = ny; fn[3 * (f0 + f) + 2] = nz;
      outward += nx * (ax - cx) + ny * (ay - cy) + nz * (az - cz);
    }
    var sign = kind === "flat" ? 1 : (outward < 0 ? -1 : 1);
    for (f = 0; f < fcount[h]; f++) {
      var k = 3 * (f0 + f);
      if (kind === "flat") { fn[k] = 0; fn[k + 1] = 0; fn[k + 2] = 1; continue; }
      fn[k] *= sign; fn[k + 1] *= sign; fn[k + 2] *= sign;
      for (var j = 0; j < 3; j++) {
        var g = idx[k + j];
        nrm[3 * g] += fn[k]; nrm[3 * g + 1] += fn[k + 1]; nrm[3 * g + 2] += fn[k + 2];
      }
    }
    if (kind === "flat") for (v = 0; v < H[h].n; v++) nrm[3 * (o + v) + 2] = 1;
  }
  for (var g2 = 0; g2 < N; g2++) {
    var l = Math.hypot(nrm[3 * g2], nrm[3 * g2 + 1], nrm[3 * g2 + 2]);
    if (l > 0) { nrm[3 * g2] /= l; nrm[3 * g2 + 1] /= l; nrm[3 * g2 + 2] /= l; }
  }
  var r = 0;
  for (g2 = 0; g2 < N; g2++) if (used[g2]) r = Math.max(r, Math.hypot(pos[3 * g2], pos[3 * g2 + 1], pos[3 * g2 + 2]));
  return { kind: kind, pos: pos, nrm: nrm, idx: idx, fn: fn, used: used, fstart: fstart, fcount: fcount, radius: r || 1 };
}
var MESH = { inflated: combine("inflated") };
if (D.has_flat) MESH.flat = combine("flat");

var COLOURS = [];
function colours(j) {
  if (COLOURS[j]) return COLOURS[j];
  var c = new Uint8Array(3 * N);
  for (var h = 0; h < 2; h++) c.set(j < 0 ? H[h].curv : H[h].rgb[j], 3 * OFF[h]);
  return (COLOURS[j] = c);
}

// ---- state ----
var VIEWS = {
  "lateral-left": { R: [0, -1, 0, 0, 0, 1, -1, 0, 0], show: [true, true] },
  "lateral-right": { R: [0, 1, 0, 0, 0, 1, 1, 0, 0], show: [true, true] },
  "medial-left": { R: [0, 1, 0, 0, 0, 1, 1, 0, 0], show: [true, false] },
  "medial-right": { R: [0, -1, 0, 0, 0, 1, -1, 0, 0], show: [false, true] },
  "dorsal": { R: [1, 0, 0, 0, 1, 0, 0, 0, 1], show: [true, true] },
  "ventral": { R: [-1, 0, 0, 0, 1, 0, 0, 0, -1], show: [true, true] },
  "anterior": { R: [-1, 0, 0, 0, 0, 1, 0, 1, 0], show: [true, true] },
  "posterior": { R: [1, 0, 0, 0, 0, 1, 0, -1, 0], show: [true, true] }
};
var ALIASES = { lateral: "lateral-left", medial: "medial-left", left: "lateral-left", right: "lateral-right",
  "lateral-l": "lateral-left", "lateral-r": "lateral-right", "medial-l": "medial-left", "medial-r": "medial-right" };
// R: rows are the camera's right, up and toward-the-viewer axes in world (RAS) coordinates.
var S = { mode: "inflated", view: "lateral-left", map: D.maps.length ? 0 : -1, show: [true, true],
  R: VIEWS["lateral-left"].R.slice(), pan: [0, 0], base: 1, zoom: 1, W: 1, H: 1, dpr: 1, ver: 0 };

function parseHash() {
  var o = {};
  location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
    if (!kv) return;
    var i = kv.indexOf("=");
    var k = decodeURIComponent(i < 0 ? kv : kv.slice(0, i)).toLowerCase();
    o[k] = i < 0 ? "" : decodeURIComponent(kv.slice(i + 1));
  });
  return o;
}
var HASH = parseHash();

// ---- DOM ----
var stage = document.getElementById("stage");
var canvas = document.getElementById("view");
var statusEl = document.getElementById("status");
var legendEl = document.getElementById("legend");
var modeBtn = document.getElementById("mode");
var mapSel = document.getElementById("map");
var showBoxes = [document.getElementById("showL"), document.getElementById("showR")];
var viewBtns = Array.prototype.slice.call(document.querySelectorAll("#views button"));

// ---- renderers ----
var gl = null, GL = null, ctx2d = null, RENDERER = "none", IMG = null;
var VS = "attribute vec3 aPos; attribute vec3 aNrm; attribute vec3 aCol;" +
  "uniform mat4 uMvp; uniform vec3 uToward; uniform float uFlat;" +
  "varying vec3 vCol;" +
  "void main(){ gl_Position = uMvp * vec4(aPos, 1.0);" +
  " float l = abs(dot(aNrm, uToward));" +
  " float s = uFlat > 0.5 ? 1.0 : 0.3 + 0.7 * l;" +
  " vCol = aCol * s; }";
var FS = "precision mediump float; varying vec3 vCol; void main(){ gl_FragColor = vec4(vCol, 1.0); }";

function initGL(cv) {
  var opts = { antialias: true, preserveDrawingBuffer: true, alpha: false };
  var g = null, v2 = false;
  try {
    g = cv.getContext("webgl2", opts);
    v2 = !!g;
    if (!g) g = cv.getContext("webgl", opts) || cv.getContext("experimental-webgl", opts);
  } catch (e) { g = null; }
  if (!g) return null;
  if (!v2 && !g.getExtension("OES_element_index_uint")) return null;
  function shader(type, src) {
    var s = g.createShader(type); g.shaderSource(s, src); g.compileShader(s);
    if (!g.getShaderParameter(s, g.COMPILE_STATUS)) throw new Error(g.getShaderInfoLog(s));
    return s;
  }
  try {
    var p = g.createProgram();
    g.attachShader(p, shader(g.VERTEX_SHADER, VS));
    g.attachShader(p, shader(g.FRAGMENT_SHADER, FS));
    g.linkProgram(p);
    if (!g.getProgramParameter(p, g.LINK_STATUS)) throw new Error(g.getProgramInfoLog(p));
    var L = { prog: p, v2: v2, aPos: g.getAttribLocation(p, "aPos"), aNrm: g.getAttribLocation(p, "aNrm"),
      aCol: g.getAttribLocation(p, "aCol"), uMvp: g.getUniformLocation(p, "uMvp"),
      uToward: g.getUniformLocation(p, "uToward"), uFlat: g.getUniformLocation(p, "uFlat"), buf: {} };
    Object.keys(MESH).forEach(function (k) {
      var m = MESH[k], b = {};
      b.pos = g.createBuffer(); g.bindBuffer(g.ARRAY_BUFFER, b.pos); g.bufferData(g.ARRAY_BUFFER, m.pos, g.STATIC_DRAW);
      b.nrm = g.createBuffer(); g.bindBuffer(g.ARRAY_BUFFER, b.nrm); g.bufferData(g.ARRAY_BUFFER, m.nrm, g.STATIC_DRAW);
      b.idx = g.createBuffer(); g.bindBuffer(g.ELEMENT_ARRAY_BUFFER, b.idx); g.bufferData(g.ELEMENT_ARRAY_BUFFER, m.idx, g.STATIC_DRAW);
      L.buf[k] = b;
    });
    L.col = g.createBuffer(); L.colMap = null;
    if (g.getError() !== g.NO_ERROR) return null;
    return { gl: g, L: L };
  } catch (e) {
    if (window.console) console.warn("WebGL unusable, drawing in 2-D:", e);
    return null;
  }
}

function setupRenderer() {
  var force = (HASH.renderer || "").toLowerCase();
  if (force !== "2d") {
    var r = initGL(canvas);
    if (r) { gl = r.gl; GL = r.L; RENDERER = r.L.v2 ? "webgl2" : "webgl"; return; }
  }
  // A canvas that failed to give a WebGL context may refuse a 2-D one: use a fresh canvas.
  var fresh = document.createElement("canvas");
  fresh.id = "view";
  canvas.parentNode.replaceChild(fresh, canvas);
  canvas = fresh;
  ctx2d = canvas.getContext("2d");
  RENDERER = "2d";
}

function resize() {
  var dpr = window.devicePixelRatio || 1;
  var w = Math.max(1, stage.clientWidth), h = Math.max(1, stage.clientHeight);
  S.W = w; S.H = h; S.dpr = dpr;
  canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
  S.ver++;
}

function scale() { return S.base * S.zoom; }

var PROJ = { ver: -1, mode: "", sx: null, sy: null, sz: null };
// Screen positions (CSS pixels) and depth (toward the viewer) of every vertex of the mesh shown.
function project() {
  var m = MESH[S.mode];
  if (PROJ.ver === S.ver && PROJ.mode === S.mode) return PROJ;
  if (!PROJ.sx || PROJ.sx.length !== N) { PROJ.sx = new Float32Array(N); PROJ.sy = new Float32Array(N); PROJ.sz = new Float32Array(N); }
  var R = S.R, s = scale(), cx = S.W / 2, cy = S.H / 2, p = m.pos;
  for (var i = 0; i < N; i++) {
    var x = p[3 * i], y = p[3 * i + 1], z = p[3 * i + 2];
    PROJ.sx[i] = cx + (R[0] * x + R[1] * y + R[2] * z + S.pan[0]) * s;
    PROJ.sy[i] = cy - (R[3] * x + R[4] * y + R[5] * z + S.pan[1]) * s;
    PROJ.sz[i] = R[6] * x + R[7] * y + R[8] * z;
  }
  PROJ.ver = S.ver; PROJ.mode = S.mode;
  return PROJ;
}

function fit() {
  var m = MESH[S.mode], R = S.R, p = m.pos;
  var x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (var h = 0; h < 2; h++) {
    if (!S.show[h]) continue;
    for (var v = OFF[h]; v < OFF[h] + H[h].n; v++) {
      if (!m.used[v]) continue;
      var x = p[3 * v], y = p[3 * v + 1], z = p[3 * v + 2];
      var cx = R[0] * x + R[1] * y + R[2] * z, cy = R[3] * x + R[4] * y + R[5] * z;
      if (cx < x0) x0 = cx; if (cx > x1) x1 = cx; if (cy < y0) y0 = cy; if (cy > y1) y1 = cy;
    }
  }
  if (!(x1 > x0) || !(y1 > y0)) { S.base = 1; S.pan = [0, 0]; S.zoom = 1; S.ver++; return; }
  S.base = 0.92 * Math.min(S.W / (x1 - x0), S.H / (y1 - y0));
  S.pan = [-(x0 + x1) / 2, -(y0 + y1) / 2];
  S.zoom = 1;
  S.ver++;
}

function drawGL() {
  var L = GL, m = MESH[S.mode], b = L.buf[S.mode];
  gl.viewport(0, 0, canvas.width, canvas.height);
  gl.clearColor(BG[0] / 255, BG[1] / 255, BG[2] / 255, 1);
  gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
  gl.enable(gl.DEPTH_TEST); gl.depthFunc(gl.LEQUAL);
  gl.useProgram(L.prog);
  if (L.colMap !== S.map) {
    gl.bindBuffer(gl.ARRAY_BUFFER, L.col); gl.bufferData(gl.ARRAY_BUFFER, colours(S.map), gl.STATIC_DRAW);
    L.colMap = S.map;
  }
  gl.bindBuffer(gl.ARRAY_BUFFER, b.pos); gl.enableVertexAttribArray(L.aPos); gl.vertexAttribPointer(L.aPos, 3, gl.FLOAT, false, 0, 0);
  gl.bindBuffer(gl.ARRAY_BUFFER, b.nrm); gl.enableVertexAttribArray(L.aNrm); gl.vertexAttribPointer(L.aNrm, 3, gl.FLOAT, false, 0, 0);
  gl.bindBuffer(gl.ARRAY_BUFFER, L.col); gl.enableVertexAttribArray(L.aCol); gl.vertexAttribPointer(L.aCol, 3, gl.UNSIGNED_BYTE, true, 0, 0);
  gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, b.idx);
  var R = S.R, s = scale(), a = 2 * s / S.W, bb = 2 * s / S.H, c = 1 / (1.5 * m.radius);
  var mvp = new Float32Array([
    R[0] * a, R[3] * bb, -R[6] * c, 0,
    R[1] * a, R[4] * bb, -R[7] * c, 0,
    R[2] * a, R[5] * bb, -R[8] * c, 0,
    S.pan[0] * a, S.pan[1] * bb, 0, 1]);
  gl.uniformMatrix4fv(L.uMvp, false, mvp);
  gl.uniform3f(L.uToward, R[6], R[7], R[8]);
  gl.uniform1f(L.uFlat, S.mode === "flat" ? 1 : 0);
  for (var h = 0; h < 2; h++) {
    if (S.show[h] && m.fcount[h] > 0) gl.drawElements(gl.TRIANGLES, 3 * m.fcount[h], gl.UNSIGNED_INT, 12 * m.fstart[h]);
  }
}

// Software rasteriser with a depth buffer and Gouraud colours, for browsers without WebGL.
function draw2D() {
  var W = canvas.width, Hh = canvas.height, dpr = S.dpr;
  if (!IMG || IMG.width !== W || IMG.height !== Hh) {
    IMG = ctx2d.createImageData(W, Hh);
    IMG.px = new Uint32Array(IMG.data.buffer);
    IMG.z = new Float32Array(W * Hh);
  }
  var px = IMG.px, zb = IMG.z;
  var bgc = (255 << 24 | BG[2] << 16 | BG[1] << 8 | BG[0]) >>> 0;
  px.fill(bgc); zb.fill(-Infinity);
  var m = MESH[S.mode], P = project(), col = colours(S.map), R = S.R, flat = S.mode === "flat";
  var sr = new Float32Array(N), sg = new Float32Array(N), sb = new Float32Array(N);
  for (var i = 0; i < N; i++) {
    var sh = flat ? 1 : 0.3 + 0.7 * Math.abs(m.nrm[3 * i] * R[6] + m.nrm[3 * i + 1] * R[7] + m.nrm[3 * i + 2] * R[8]);
    sr[i] = col[3 * i] * sh; sg[i] = col[3 * i + 1] * sh; sb[i] = col[3 * i + 2] * sh;
  }
  var sx = P.sx, sy = P.sy, sz = P.sz, idx = m.idx, fn = m.fn;
  for (var h = 0; h < 2; h++) {
    if (!S.show[h]) continue;
    var fe = m.fstart[h] + m.fcount[h];
    for (var f = m.fstart[h]; f < fe; f++) {
      var k = 3 * f;
      if (!flat && fn[k] * R[6] + fn[k + 1] * R[7] + fn[k + 2] * R[8] < 0) continue;
      var a = idx[k], b = idx[k + 1], c = idx[k + 2];
      var x0 = sx[a] * dpr, y0 = sy[a] * dpr, x1 = sx[b] * dpr, y1 = sy[b] * dpr, x2 = sx[c] * dpr, y2 = sy[c] * dpr;
      var area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0);
      if (area === 0 || area !== area) continue;
      var minx = Math.max(0, Math.floor(Math.min(x0, x1, x2))), maxx = Math.min(W - 1, Math.ceil(Math.max(x0, x1, x2)));
      var miny = Math.max(0, Math.floor(Math.min(y0, y1, y2))), maxy = Math.min(Hh - 1, Math.ceil(Math.max(y0, y1, y2)));
      if (minx > maxx || miny > maxy) continue;
      var inv = 1 / area, z0 = sz[a], z1 = sz[b], z2 = sz[c];
      for (var y = miny; y <= maxy; y++) {
        var py = y + 0.5, row = y * W;
        for (var x = minx; x <= maxx; x++) {
          var pxx = x + 0.5;
          var w0 = ((x1 - pxx) * (y2 - py) - (x2 - pxx) * (y1 - py)) * inv;
          if (w0 < -1e-4) continue;
          var w1 = ((x2 - pxx) * (y0 - py) - (x0 - pxx) * (y2 - py)) * inv;
          if (w1 < -1e-4) continue;
          var w2 = 1 - w0 - w1;
          if (w2 < -1e-4) continue;
          var z = w0 * z0 + w1 * z1 + w2 * z2, o = row + x;
          if (z <= zb[o]) continue;
          zb[o] = z;
          var r = w0 * sr[a] + w1 * sr[b] + w2 * sr[c];
          var g = w0 * sg[a] + w1 * sg[b] + w2 * sg[c];
          var bl = w0 * sb[a] + w1 * sb[b] + w2 * sb[c];
          px[o] = (255 << 24 | (bl & 255) << 16 | (g & 255) << 8 | (r & 255)) >>> 0;
        }
      }
    }
  }
  ctx2d.putImageData(IMG, 0, 0);
}

var pending = false;
function drawNow() {
  pending = false;
  if (RENDERER === "2d") draw2D(); else if (gl) drawGL();
}
function requestDraw() {
  if (pending) return;
  pending = true;
  window.requestAnimationFrame(drawNow);
}

// ---- picking: the front-most face under the point, then its vertex nearest on screen ----
function pick(mx, my) {
  var m = MESH[S.mode], P = project(), sx = P.sx, sy = P.sy, sz = P.sz, idx = m.idx;
  var best = -1, bestZ = -Infinity;
  for (var h = 0; h < 2; h++) {
    if (!S.show[h]) continue;
    var fe = m.fstart[h] + m.fcount[h];
    for (var f = m.fstart[h]; f < fe; f++) {
      var a = idx[3 * f], b = idx[3 * f + 1], c = idx[3 * f + 2];
      var x0 = sx[a], x1 = sx[b], x2 = sx[c];
      if ((mx < x0 && mx < x1 && mx < x2) || (mx > x0 && mx > x1 && mx > x2)) continue;
      var y0 = sy[a], y1 = sy[b], y2 = sy[c];
      if ((my < y0 && my < y1 && my < y2) || (my > y0 && my > y1 && my > y2)) continue;
      var area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0);
      if (area === 0) continue;
      var w0 = ((x1 - mx) * (y2 - my) - (x2 - mx) * (y1 - my)) / area;
      var w1 = ((x2 - mx) * (y0 - my) - (x0 - mx) * (y2 - my)) / area;
      var w2 = 1 - w0 - w1;
      if (w0 < -1e-6 || w1 < -1e-6 || w2 < -1e-6) continue;
      var z = w0 * sz[a] + w1 * sz[b] + w2 * sz[c];
      if (z > bestZ) { bestZ = z; best = f; }
    }
  }
  if (best < 0) return null;
  var gv = -1, bd = Infinity;
  for (var j = 0; j < 3; j++) {
    var g = idx[3 * best + j], d = Math.hypot(sx[g] - mx, sy[g] - my);
    if (d < bd) { bd = d; gv = g; }
  }
  var hh = gv < OFF[1] ? 0 : 1;
  return { hemi: hh, vertex: gv - OFF[hh], face: best, global: gv };
}

function fmt(v) {
  if (v === null || v === undefined || v !== v) return "no value";
  if (!isFinite(v)) return String(v);
  var a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(3);
  return String(Number(v.toPrecision(4)));
}

function describe(p) {
  if (!p) return "";
  var h = H[p.hemi], parts = [h.name + " hemisphere, vertex " + p.vertex];
  if (S.map >= 0) {
    var mp = D.maps[S.map], v = h.values[S.map][p.vertex], txt = fmt(v);
    if (mp.scale.kind === "categorical" && v === v) {
      var cat = mp.scale.categories[Math.round(v)];
      if (cat) txt += " (" + cat.name + ")";
    }
    parts.push(mp.name + ": " + txt);
  }
  if (h.labels) {
    var lv = h.labels[p.vertex];
    parts.push((D.labels.name || "region") + ": " + (lv > 0 ? (LABEL_NAMES[lv] !== undefined ? LABEL_NAMES[lv] : "#" + lv) : "—"));
  }
  return parts.join("  ·  ");
}

function hint() {
  return S.mode === "flat" ? "Drag to pan, wheel to zoom, double-click to fit; hover a vertex to read its value."
    : "Drag to rotate (right- or shift-drag to pan), wheel to zoom, double-click to fit; hover a vertex to read its value.";
}

var LAST = null;
function hover(mx, my) {
  var p = pick(mx, my);
  LAST = p;
  statusEl.textContent = p ? describe(p) : hint();
  return p;
}

// ---- legend and controls ----
function legend() {
  legendEl.textContent = "";
  if (S.map < 0) { legendEl.style.display = "none"; return; }
  legendEl.style.display = "";
  var mp = D.maps[S.map], sc = mp.scale;
  var name = document.createElement("div"); name.className = "name"; name.textContent = mp.name; legendEl.appendChild(name);
  if (sc.kind === "continuous") {
    var ramp = document.createElement("div"); ramp.className = "ramp";
    var stops = sc.gradient.map(function (c, i) { return "rgb(" + c.join(",") + ") " + (100 * i / (sc.gradient.length - 1)).toFixed(2) + "%"; });
    ramp.style.background = "linear-gradient(to right," + stops.join(",") + ")";
    legendEl.appendChild(ramp);
    var ends = document.createElement("div"); ends.className = "ends";
    var lo = document.createElement("span"); lo.textContent = fmt(sc.min);
    var hi = document.createElement("span"); hi.textContent = fmt(sc.max);
    ends.appendChild(lo); ends.appendChild(hi); legendEl.appendChild(ends);
    if (sc.threshold !== null && sc.threshold !== undefined) {
      var note = document.createElement("div"); note.className = "note";
      note.textContent = "|value| < " + fmt(sc.threshold) + " not shown"; legendEl.appendChild(note);
    }
  } else {
    sc.categories.forEach(function (c) {
      var row = document.createElement("div"); row.className = "cat";
      var sw = document.createElement("span"); sw.className = "sw"; sw.style.background = "rgb(" + c.colour.join(",") + ")";
      var t = document.createElement("span"); t.textContent = c.name;
      row.appendChild(sw); row.appendChild(t); legendEl.appendChild(row);
    });
  }
}

function syncControls() {
  modeBtn.textContent = S.mode === "flat" ? "3-D inflated" : "Flat map";
  modeBtn.style.display = D.has_flat ? "" : "none";
  viewBtns.forEach(function (b) {
    b.disabled = S.mode === "flat";
    b.classList.toggle("on", S.mode !== "flat" && b.getAttribute("data-view") === S.view);
  });
  showBoxes[0].checked = S.show[0]; showBoxes[1].checked = S.show[1];
  mapSel.value = String(S.map);
  document.getElementById("renderer").textContent = RENDERER === "2d" ? "2-D canvas (no WebGL)" : RENDERER.toUpperCase();
  document.body.setAttribute("data-renderer", RENDERER);
  document.body.setAttribute("data-mode", S.mode);
  document.body.setAttribute("data-view", S.view);
}

function setView(name) {
  var v = VIEWS[name];
  if (!v) return;
  S.view = name; S.R = v.R.slice(); S.show = v.show.slice();
  if (S.mode === "flat") S.mode = "inflated";
  fit(); syncControls(); requestDraw();
}
function setMode(mode) {
  if (mode === "flat" && !D.has_flat) mode = "inflated";
  S.mode = mode;
  if (mode === "flat") { S.R = [1, 0, 0, 0, 1, 0, 0, 0, 1]; S.show = [true, true]; }
  else S.R = VIEWS[S.view].R.slice();
  fit(); syncControls(); requestDraw();
  statusEl.textContent = hint();
}
function setMap(j) {
  if (!(j >= 0 && j < D.maps.length)) return;
  S.map = j; legend(); syncControls(); requestDraw();
}

D.maps.forEach(function (m, j) {
  var o = document.createElement("option"); o.value = String(j); o.textContent = m.name; mapSel.appendChild(o);
});
if (D.maps.length < 2) document.getElementById("mapgrp").style.display = "none";

function bindControls() {
  viewBtns.forEach(function (b) { b.addEventListener("click", function () { setView(b.getAttribute("data-view")); }); });
  modeBtn.addEventListener("click", function () { setMode(S.mode === "flat" ? "inflated" : "flat"); });
  document.getElementById("fit").addEventListener("click", function () { fit(); requestDraw(); });
  mapSel.addEventListener("change", function () { setMap(parseInt(mapSel.value, 10)); });
  showBoxes.forEach(function (box, h) {
    box.addEventListener("change", function () { S.show[h] = box.checked; S.ver++; requestDraw(); });
  });

  var drag = null;
  function local(e) { var r = canvas.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; }
  canvas.addEventListener("mousedown", function (e) {
    drag = { p: local(e), pan: S.mode === "flat" || e.button !== 0 || e.shiftKey };
    canvas.classList.add("dragging");
    e.preventDefault();
  });
  canvas.addEventListener("contextmenu", function (e) { e.preventDefault(); });
  window.addEventListener("mouseup", function () { drag = null; canvas.classList.remove("dragging"); });
  window.addEventListener("mousemove", function (e) {
    if (!drag) return;
    var q = local(e), dx = q[0] - drag.p[0], dy = q[1] - drag.p[1];
    drag.p = q;
    if (drag.pan) {
      var s = scale(); S.pan[0] += dx / s; S.pan[1] -= dy / s;
    } else {
      rotate(dx * 0.01, dy * 0.01);
    }
    S.ver++; requestDraw();
  });
  var hoverPending = null;
  canvas.addEventListener("mousemove", function (e) {
    if (drag) return;
    var q = local(e);
    if (e.isTrusted === false) { hover(q[0], q[1]); return; }
    if (hoverPending) { hoverPending = q; return; }
    hoverPending = q;
    window.requestAnimationFrame(function () { var p = hoverPending; hoverPending = null; if (p) hover(p[0], p[1]); });
  });
  canvas.addEventListener("mouseleave", function () { statusEl.textContent = hint(); });
  canvas.addEventListener("wheel", function (e) {
    e.preventDefault();
    var q = local(e), s0 = scale();
    var wx = (q[0] - S.W / 2) / s0 - S.pan[0], wy = -(q[1] - S.H / 2) / s0 - S.pan[1];
    S.zoom = Math.min(40, Math.max(0.2, S.zoom * Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0015))));
    var s1 = scale();
    S.pan[0] = (q[0] - S.W / 2) / s1 - wx; S.pan[1] = -(q[1] - S.H / 2) / s1 - wy;
    S.ver++; requestDraw();
  }, { passive: false });
  canvas.addEventListener("dblclick", function () { fit(); requestDraw(); });
  window.addEventListener("resize", function () { resize(); fit(); drawNow(); });
}

// Turn the camera: dx about its up axis, dy about its right axis (R := Rinc · R).
function rotate(ax, ay) {
  var ca = Math.cos(ax), sa = Math.sin(ax), cb = Math.cos(ay), sb = Math.sin(ay);
  // Rinc = Rx(ay) · Ry(ax), in camera coordinates.
  var M = [ca, 0, sa, sb * sa, cb, -sb * ca, -cb * sa, sb, cb * ca];
  var R = S.R, out = new Array(9);
  for (var i = 0; i < 3; i++) for (var j = 0; j < 3; j++)
    out[3 * i + j] = M[3 * i] * R[j] + M[3 * i + 1] * R[3 + j] + M[3 * i + 2] * R[6 + j];
  // Re-orthonormalise (Gram-Schmidt on the rows).
  function norm(o) { var l = Math.hypot(out[o], out[o + 1], out[o + 2]); out[o] /= l; out[o + 1] /= l; out[o + 2] /= l; }
  norm(0);
  var d = out[0] * out[3] + out[1] * out[4] + out[2] * out[5];
  out[3] -= d * out[0]; out[4] -= d * out[1]; out[5] -= d * out[2]; norm(3);
  out[6] = out[1] * out[5] - out[2] * out[4]; out[7] = out[2] * out[3] - out[0] * out[5]; out[8] = out[0] * out[4] - out[1] * out[3];
  S.R = out; S.view = "custom";
  viewBtns.forEach(function (b) { b.classList.remove("on"); });
}

// ---- self-test (#selftest): data sizes, picking in several views, something drawn ----
function drawnFraction() {
  var W = canvas.width, Hh = canvas.height, n = 0, tot = 0, buf;
  if (RENDERER === "2d") { buf = IMG.data; }
  else { buf = new Uint8Array(W * Hh * 4); gl.readPixels(0, 0, W, Hh, gl.RGBA, gl.UNSIGNED_BYTE, buf); }
  for (var i = 0; i < W * Hh; i += 7) {
    tot++;
    if (Math.abs(buf[4 * i] - BG[0]) + Math.abs(buf[4 * i + 1] - BG[1]) + Math.abs(buf[4 * i + 2] - BG[2]) > 12) n++;
  }
  return n / tot;
}

function selfTest() {
  var errs = [], notes = [];
  var saved = { mode: S.mode, view: S.view, R: S.R.slice(), show: S.show.slice(), pan: S.pan.slice(), base: S.base, zoom: S.zoom, map: S.map };
  function check(cond, msg) { if (!cond) errs.push(msg); }
  H.forEach(function (h) {
    check(h.mesh.inflated.pos.length === 3 * h.n, h.name + " inflated size");
    Object.keys(h.mesh).forEach(function (k) {
      var fs = h.mesh[k].faces;
      for (var i = 0; i < fs.length; i++) if (fs[i] >= h.n) { errs.push(h.name + " " + k + " face index out of range"); break; }
    });
    check(h.curv.length === 3 * h.n, h.name + " curvature size");
    h.rgb.forEach(function (c, j) { check(c.length === 3 * h.n, h.name + " map " + j + " colours"); check(h.values[j].length === h.n, h.name + " map " + j + " values"); });
    if (h.labels) check(h.labels.length === h.n, h.name + " labels");
  });
  D.hemis.forEach(function (m, k) {
    check(H[k].mesh.inflated.faces.length === 3 * m.faces, m.name + " face count");
    if (D.has_flat) check(H[k].mesh.flat.faces.length === 3 * m.flat_faces, m.name + " flat face count");
  });
  var cases = [["inflated", "lateral-left", 0], ["inflated", "lateral-right", 1], ["inflated", "dorsal", -1], ["inflated", "ventral", -1], ["inflated", "medial-left", 0], ["inflated", "medial-right", 1]];
  if (D.has_flat) cases.push(["flat", "", 0], ["flat", "", 1]);
  cases.forEach(function (cs) {
    if (cs[0] === "flat") setMode("flat"); else { S.mode = "inflated"; setView(cs[1]); }
    drawNow();
    var frac = drawnFraction();
    check(frac > 0.05, cs[0] + " " + cs[1] + ": only " + (100 * frac).toFixed(1) + "% of the picture drawn");
    var P = project(), m = MESH[S.mode], target = -1, tz = -Infinity;
    if (cs[0] === "flat") {
      // The used vertex of hemisphere cs[2] nearest its used vertices' centroid on screen.
      var h = cs[2], mx = 0, my = 0, cnt = 0, v;
      for (v = OFF[h]; v < OFF[h] + H[h].n; v++) if (m.used[v]) { mx += P.sx[v]; my += P.sy[v]; cnt++; }
      mx /= cnt; my /= cnt;
      var bd = Infinity;
      for (v = OFF[h]; v < OFF[h] + H[h].n; v++) if (m.used[v]) { var d = Math.hypot(P.sx[v] - mx, P.sy[v] - my); if (d < bd) { bd = d; target = v; } }
    } else {
      for (var hh = 0; hh < 2; hh++) if (S.show[hh]) for (v = OFF[hh]; v < OFF[hh] + H[hh].n; v++) if (m.used[v] && P.sz[v] > tz) { tz = P.sz[v]; target = v; }
    }
    var r = canvas.getBoundingClientRect();
    var ev = new MouseEvent("mousemove", { clientX: r.left + P.sx[target], clientY: r.top + P.sy[target], bubbles: true });
    canvas.dispatchEvent(ev);
    var p = LAST, th = target < OFF[1] ? 0 : 1, name = cs[0] + " " + cs[1];
    // Events land on whole CSS pixels; the pick must be the vertex or one within 1.5 pixels of it.
    if (!p) { errs.push(name + ": nothing picked at vertex " + (target - OFF[th])); return; }
    var dist = Math.hypot(P.sx[p.global] - P.sx[target], P.sy[p.global] - P.sy[target]);
    check(p.global === target || dist < 1.5, name + ": picked " + H[p.hemi].name + " " + p.vertex + " for " + H[th].name + " " + (target - OFF[th]));
    if (cs[2] >= 0) check(p.hemi === cs[2], name + ": picked hemisphere " + H[p.hemi].name);
    var text = statusEl.textContent;
    check(text.indexOf(H[p.hemi].name + " hemisphere, vertex " + p.vertex) === 0, name + ": status reads '" + text + "'");
    if (S.map >= 0) check(text.indexOf(fmt(H[p.hemi].values[S.map][p.vertex])) >= 0, name + ": status lacks the value");
    if (H[p.hemi].labels) {
      var lv = H[p.hemi].labels[p.vertex];
      if (lv > 0 && LABEL_NAMES[lv] !== undefined) check(text.indexOf(LABEL_NAMES[lv]) >= 0, name + ": status lacks the region name");
    }
    notes.push(name + "→" + H[p.hemi].name + p.vertex);
  });
  // On the flat maps nothing hides anything: every vertex hovered is the one picked, with its
  // value and region in the status line.
  if (D.has_flat) {
    setMode("flat"); drawNow();
    var Pf = project(), mf = MESH.flat, tried = 0, seenLabel = false;
    for (var gv = 0; gv < N && tried < 60; gv += 173) {
      var cand = gv;
      if (D.labels && !seenLabel) {
        for (var q = gv; q < N; q++) { var hq = q < OFF[1] ? 0 : 1; if (mf.used[q] && H[hq].labels[q - OFF[hq]] > 0) { cand = q; break; } }
      }
      if (!mf.used[cand]) continue;
      tried++;
      // At the vertex's exact position (events round to whole pixels, which can fall just off
      // the map's edge).
      hover(Pf.sx[cand], Pf.sy[cand]);
      var pf = LAST, hc = cand < OFF[1] ? 0 : 1;
      if (!pf) { errs.push("flat: nothing picked at " + H[hc].name + " " + (cand - OFF[hc])); continue; }
      var df = Math.hypot(Pf.sx[pf.global] - Pf.sx[cand], Pf.sy[pf.global] - Pf.sy[cand]);
      check(pf.hemi === hc && df < 1.5, "flat: picked " + H[pf.hemi].name + " " + pf.vertex + " for " + H[hc].name + " " + (cand - OFF[hc]));
      if (H[pf.hemi].labels) {
        var lf = H[pf.hemi].labels[pf.vertex];
        if (lf > 0 && LABEL_NAMES[lf] !== undefined) {
          seenLabel = true;
          check(statusEl.textContent.indexOf(LABEL_NAMES[lf]) >= 0, "flat: status lacks region " + LABEL_NAMES[lf]);
        }
      }
    }
    check(tried > 20, "flat: only " + tried + " vertices tried");
    if (D.labels) check(seenLabel, "flat: no labelled vertex hovered");
    notes.push("flat: " + tried + " vertices hovered");
  }
  // Dragging turns the camera (keeping it a rotation), the wheel zooms.
  setView("lateral-left");
  var R0 = S.R.slice(), rc = canvas.getBoundingClientRect();
  canvas.dispatchEvent(new MouseEvent("mousedown", { clientX: rc.left + 100, clientY: rc.top + 100, button: 0, bubbles: true }));
  window.dispatchEvent(new MouseEvent("mousemove", { clientX: rc.left + 160, clientY: rc.top + 130, bubbles: true }));
  window.dispatchEvent(new MouseEvent("mouseup", { bubbles: true }));
  var Rn = S.R, moved = 0;
  for (var ri = 0; ri < 9; ri++) moved += Math.abs(Rn[ri] - R0[ri]);
  var det = Rn[0] * (Rn[4] * Rn[8] - Rn[5] * Rn[7]) - Rn[1] * (Rn[3] * Rn[8] - Rn[5] * Rn[6]) + Rn[2] * (Rn[3] * Rn[7] - Rn[4] * Rn[6]);
  check(moved > 0.1, "drag did not rotate");
  check(Math.abs(det - 1) < 1e-6, "rotation's determinant is " + det);
  var z0 = S.zoom;
  canvas.dispatchEvent(new WheelEvent("wheel", { clientX: rc.left + S.W / 2, clientY: rc.top + S.H / 2, deltaY: -200, bubbles: true, cancelable: true }));
  check(S.zoom > z0, "wheel did not zoom in");
  // Nothing is picked off the brain (a corner of the canvas).
  check(pick(1, 1) === null, "picked something in the corner");
  // Maps switch colours.
  if (D.maps.length > 1) {
    var c0 = colours(0), c1 = colours(1), differ = false;
    for (var i = 0; i < c0.length; i++) if (c0[i] !== c1[i]) { differ = true; break; }
    check(differ, "maps 0 and 1 have the same colours");
  }
  S.mode = saved.mode; S.view = saved.view; S.R = saved.R; S.show = saved.show; S.pan = saved.pan; S.base = saved.base; S.zoom = saved.zoom; S.map = saved.map;
  S.ver++; syncControls(); legend(); drawNow();
  statusEl.textContent = hint();
  var t0 = performance.now(); drawNow(); var drawMs = performance.now() - t0;
  t0 = performance.now(); pick(S.W / 2, S.H / 2); var pickMs = performance.now() - t0;
  var result = { ok: errs.length === 0, renderer: RENDERER, errors: errs, picks: notes, drawMs: Math.round(drawMs), pickMs: Math.round(pickMs) };
  document.getElementById("selftest").textContent = JSON.stringify(result);
  return result;
}

// ---- start ----
function start() {
  setupRenderer();
  resize();
  var mode = (HASH.mode || (HASH.flat !== undefined ? "flat" : "inflated")).toLowerCase();
  var view = (HASH.view || "lateral-left").toLowerCase();
  view = ALIASES[view] || view;
  if (!VIEWS[view]) view = "lateral-left";
  S.view = view; S.R = VIEWS[view].R.slice(); S.show = VIEWS[view].show.slice();
  if (HASH.map !== undefined) { var j = parseInt(HASH.map, 10); if (j >= 0 && j < D.maps.length) S.map = j; }
  if (HASH.hemi) { var hm = HASH.hemi.toUpperCase(); if (hm === "L") S.show = [true, false]; else if (hm === "R") S.show = [false, true]; else S.show = [true, true]; }
  S.mode = mode === "flat" && D.has_flat ? "flat" : "inflated";
  if (S.mode === "flat") S.R = [1, 0, 0, 0, 1, 0, 0, 0, 1];
  fit();
  if (HASH.zoom) { var z = parseFloat(HASH.zoom); if (z > 0) S.zoom = z; }
  bindControls();
  legend(); syncControls(); drawNow();
  statusEl.textContent = hint();
  if (HASH.hover) {
    // #hover=L204: hover that vertex at start (for screenshots of the status line).
    var hv = /^([LR])[:.]?(\d+)$/i.exec(HASH.hover);
    if (hv) {
      var hh = hv[1].toUpperCase() === "L" ? 0 : 1, vv = parseInt(hv[2], 10);
      if (vv < H[hh].n) { var P0 = project(); hover(P0.sx[OFF[hh] + vv], P0.sy[OFF[hh] + vv]); }
    }
  }
  window.brainrecon = { state: S, pick: pick, hover: hover, draw: drawNow, selfTest: selfTest, setView: setView, setMode: setMode, setMap: setMap, renderer: RENDERER };
  if (HASH.selftest !== undefined) {
    var res;
    try { res = selfTest(); } catch (e) { res = { ok: false, renderer: RENDERER, errors: ["exception: " + e], picks: [] }; document.getElementById("selftest").textContent = JSON.stringify(res); }
    document.title = (res.ok ? "SELFTEST PASS " : "SELFTEST FAIL ") + RENDERER + (res.ok ? "" : ": " + res.errors.join("; "));
  }
}
start();
})();
"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, coded) in cases {
            assert_eq!(base64_encode(plain.as_bytes()), coded);
            assert_eq!(base64_decode(coded).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn base64_round_trips_every_byte_and_length() {
        let bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        for len in 0..bytes.len() {
            let coded = base64_encode(&bytes[..len]);
            assert_eq!(coded.len(), len.div_ceil(3) * 4);
            assert_eq!(
                base64_decode(&coded).unwrap(),
                &bytes[..len],
                "length {len}"
            );
        }
        assert!(base64_decode("Zm9").is_none());
        assert!(base64_decode("Z=9v").is_none());
        assert!(base64_decode("Zg==Zm9v").is_none());
        assert!(base64_decode("Zm9*").is_none());
    }

    #[test]
    fn json_in_script_cannot_close_the_element() {
        let v = json!({"name": "</script><!-- & \u{2028}"});
        let s = script_safe_json(&v);
        assert!(!s.contains('<') && !s.contains('>') && !s.contains('&'));
        let back: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn html_escape_escapes_markup_and_quotes() {
        assert_eq!(
            html_escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
