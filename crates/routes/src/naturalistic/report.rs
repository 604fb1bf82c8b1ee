//! The HTML page of `encode-runs`: per-band histograms of the voxels' scores and a slice
//! montage of every map, self-contained (inline SVG and PNG data URIs).

use crate::score::report::{base64, binned, encode_png, escape, Binned};
use brainrecon_formats::image::RgbImage;
use plotters::prelude::*;
use std::fmt::Write as _;

const BINS: usize = 40;

/// One voxel map: a name, its values per voxel, and a note on how to read it.
pub struct VoxelMap<'a> {
    /// The map's title.
    pub name: String,
    /// One value per voxel, in [`VoxelSpace::voxels`] order.
    pub values: &'a [f64],
    /// How to read it, shown under the montage.
    pub note: String,
}

/// Where the voxels sit: the volume's shape and each voxel's (i, j, k).
pub struct VoxelSpace<'a> {
    /// The volume's shape (i, j, k).
    pub shape: [usize; 3],
    /// Each voxel's (i, j, k) in the volume.
    pub voxels: &'a [[usize; 3]],
}

/// Overlaid histograms of several per-voxel series (e.g. each band's split R²).
pub fn histograms_svg(title: &str, series: &[(String, Vec<f64>)]) -> Result<String, String> {
    let finite: Vec<Vec<f64>> = series
        .iter()
        .map(|(_, v)| v.iter().copied().filter(|x| x.is_finite()).collect())
        .collect();
    let values: Vec<&[f64]> = finite.iter().map(Vec::as_slice).collect();
    let Binned {
        lo,
        hi,
        width,
        counts,
        top,
    } = binned(&values, BINS);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(lo..hi, 0u32..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc("voxels")
            .draw()
            .map_err(|e| e.to_string())?;
        for (k, ((name, _), c)) in series.iter().zip(&counts).enumerate() {
            let style = Palette99::pick(k).mix(0.5).filled();
            chart
                .draw_series(c.iter().enumerate().filter(|(_, &n)| n > 0).map(|(i, &n)| {
                    let x0 = lo + i as f64 * width;
                    Rectangle::new([(x0, 0), (x0 + width, n)], style)
                }))
                .map_err(|e| e.to_string())?
                .label(name.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], style));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// A diverging colour for `v` in [−1, 1]: blue for negative, red for positive, white at 0.
fn diverging(v: f64) -> [u8; 3] {
    let t = v.clamp(-1.0, 1.0);
    let fade = |c: f64| (255.0 * (1.0 - t.abs()) + c * t.abs()).round() as u8;
    if t >= 0.0 {
        [fade(200.0), fade(30.0), fade(30.0)]
    } else {
        [fade(30.0), fade(60.0), fade(200.0)]
    }
}

/// Axial slices (k) of `values` side by side in rows of `per_row`, each voxel `scale` pixels;
/// voxels outside the map are dark grey, values are scaled by the largest magnitude.
pub fn slice_montage(space: &VoxelSpace, values: &[f64], per_row: usize, scale: usize) -> RgbImage {
    assert_eq!(space.voxels.len(), values.len(), "one value per voxel");
    let [nx, ny, nz] = space.shape;
    let peak = values
        .iter()
        .filter(|v| v.is_finite())
        .fold(0f64, |m, v| m.max(v.abs()))
        .max(1e-12);
    let per_row = per_row.clamp(1, nz.max(1));
    let rows = nz.div_ceil(per_row);
    let (width, height) = (per_row * nx * scale, rows * ny * scale);
    let mut pixels = vec![40u8; width * height * 3];
    for (&[i, j, k], &v) in space.voxels.iter().zip(values) {
        let colour = if v.is_finite() {
            diverging(v / peak)
        } else {
            [90, 90, 90]
        };
        // Radiological habit aside, rows go up the j axis so the slice reads upright.
        let x0 = (k % per_row) * nx * scale + i * scale;
        let y0 = (k / per_row) * ny * scale + (ny - 1 - j) * scale;
        for dy in 0..scale {
            for dx in 0..scale {
                let at = ((y0 + dy) * width + x0 + dx) * 3;
                pixels[at..at + 3].copy_from_slice(&colour);
            }
        }
    }
    RgbImage::new(height, width, pixels)
}

/// The page: a title, the command, a summary table, the histograms, then each map's montage.
pub fn encoding_page(
    title: &str,
    command: &str,
    summary: &[(String, String)],
    histograms: &[String],
    space: &VoxelSpace,
    maps: &[VoxelMap],
    cortex_section: Option<&str>,
) -> Result<String, String> {
    let mut html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>\
         body{{font-family:sans-serif;margin:2em;max-width:70em}} td,th{{padding:2px 10px;\
         text-align:left}} img{{image-rendering:pixelated;border:1px solid #ccc}}</style>\
         </head><body><h1>{t}</h1><p><code>{c}</code></p><table>",
        t = escape(title),
        c = escape(command)
    );
    for (name, value) in summary {
        let _ = write!(
            html,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(name),
            escape(value)
        );
    }
    html.push_str("</table><h2>Distributions</h2>");
    histograms.iter().for_each(|svg| html.push_str(svg));
    if let Some(section) = cortex_section {
        html.push_str(section);
    }
    html.push_str("<h2>Maps (axial slices, red positive, blue negative)</h2>");
    let scale = (480 / space.shape[0].max(1)).clamp(1, 8);
    for map in maps {
        let image = slice_montage(space, map.values, 8, scale);
        let png = encode_png(&image)?;
        let _ = write!(
            html,
            "<h3>{}</h3><p>{}</p><img alt=\"{}\" src=\"data:image/png;base64,{}\">",
            escape(&map.name),
            escape(&map.note),
            escape(&map.name),
            base64(&png)
        );
    }
    html.push_str("</body></html>\n");
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn montage_puts_each_voxel_in_its_slice() {
        let voxels = [[0, 0, 0], [1, 1, 1]];
        let space = VoxelSpace {
            shape: [2, 2, 2],
            voxels: &voxels,
        };
        let image = slice_montage(&space, &[1.0, -1.0], 2, 1);
        assert_eq!((image.width, image.height), (4, 2));
        let at = |x: usize, y: usize| &image.pixels[(y * 4 + x) * 3..(y * 4 + x) * 3 + 3];
        assert_eq!(
            at(0, 1),
            &[200, 30, 30],
            "voxel (0,0,0): bottom-left of slice 0, red"
        );
        assert_eq!(
            at(3, 0),
            &[30, 60, 200],
            "voxel (1,1,1): top-right of slice 1, blue"
        );
        assert_eq!(at(1, 1), &[40, 40, 40], "outside the map");
    }
}
