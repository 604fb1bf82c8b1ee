//! Pictures of a per-layer encoding sweep: mean test r per layer, one line per ROI (SVG drawn
//! by plotters), and a small self-contained HTML page with the chart and its table.

use super::{Reduction, RoiSummary};
use plotters::prelude::*;
use serde::Serialize;
use std::fmt::Write as _;

/// The encoding results of one layer.
#[derive(Debug, Clone, Serialize)]
pub struct LayerResult {
    /// The layer (0 = embeddings, L = after block L).
    pub layer: usize,
    /// The feature sets, joined by `+` (`blip-vision-l3`, `blip-vision-l3+blip-text-l3`).
    pub features: String,
    /// Columns of the features before any reduction.
    pub n_features: usize,
    /// Columns the ridge was fit on.
    pub design_width: usize,
    /// What the reduction to the training images' span kept, when the design was reduced.
    pub reduction: Option<Reduction>,
    /// The fitted ROI first, then its labels in the chosen atlases.
    pub rois: Vec<RoiSummary>,
}

impl LayerResult {
    /// The layer's line as `encode layers` prints it when the layer is done.
    pub fn line(&self) -> String {
        format!(
            "layer {}: {} ({} columns)",
            self.layer, self.features, self.design_width
        )
    }
}

/// Mean r of `roi` per layer, in layer order (NaN where the layer lacks it).
fn series<'a>(layers: &'a [LayerResult], roi: &'a str) -> impl Iterator<Item = (f64, f64)> + 'a {
    layers.iter().map(move |l| {
        let r = l
            .rois
            .iter()
            .find(|s| s.roi == roi)
            .map_or(f64::NAN, |s| s.mean_r);
        (l.layer as f64, r)
    })
}

/// The ROI names in first-seen order.
fn roi_names(layers: &[LayerResult]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for summary in layers.iter().flat_map(|l| &l.rois) {
        if !names.contains(&summary.roi) {
            names.push(summary.roi.clone());
        }
    }
    names
}

/// y range covering every finite mean r and 0, padded.
fn y_range(layers: &[LayerResult]) -> (f64, f64) {
    let values = layers
        .iter()
        .flat_map(|l| l.rois.iter().map(|s| s.mean_r))
        .filter(|v| v.is_finite());
    let (lo, hi) = values.fold((0.0f64, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let pad = ((hi - lo) * 0.08).max(0.01);
    (lo - pad, hi + pad)
}

/// Distinct, readable line colours (matplotlib's tab10, then six darker ones); more ROIs than
/// colours reuse them.
const COLORS: [(u8, u8, u8); 16] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (0, 0, 0),
    (0, 0, 128),
    (128, 0, 0),
    (0, 100, 100),
    (128, 128, 0),
    (90, 0, 120),
];

fn color(k: usize) -> RGBColor {
    let (r, g, b) = COLORS[k % COLORS.len()];
    RGBColor(r, g, b)
}

/// Line chart: layer on x, mean test r on y, one line (with points) per ROI; the legend sits
/// in a column right of the plot, so it never hides a line.
pub fn layers_svg(title: &str, layers: &[LayerResult]) -> Result<String, String> {
    let (lo, hi) = y_range(layers);
    let first = layers.iter().map(|l| l.layer).min().unwrap_or(0) as f64;
    let last = (layers.iter().map(|l| l.layer).max().unwrap_or(1) as f64).max(first + 1.0);
    let names = roi_names(layers);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (820, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (plot, legend) = root.split_horizontally(620);
        let mut chart = ChartBuilder::on(&plot)
            .margin(12)
            .caption(title, ("sans-serif", 16))
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(first - 0.25..last + 0.25, lo..hi)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("layer (0 = embeddings)")
            .y_desc("mean test r")
            .x_labels(layers.len().clamp(2, 14))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .map_err(|e| e.to_string())?;
        for (k, roi) in names.iter().enumerate() {
            let points: Vec<(f64, f64)> = series(layers, roi).filter(|p| p.1.is_finite()).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color(k).stroke_width(2)))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, color(k).filled())))
                .map_err(|e| e.to_string())?;
        }
        draw_legend(&legend, &names).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// One row per ROI: a short line in its colour, then its name.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    names: &[String],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    for (k, name) in names.iter().enumerate() {
        let y = 48 + 20 * k as i32;
        area.draw(&PathElement::new(
            vec![(4, y), (24, y)],
            color(k).stroke_width(2),
        ))?;
        area.draw(&Text::new(
            name.as_str(),
            (30, y - 7),
            ("sans-serif", 13).into_font(),
        ))?;
    }
    Ok(())
}

/// A self-contained page: the chart, then mean r and the fraction of significant voxels of
/// every ROI per layer.
pub fn layers_html(
    title: &str,
    command: &str,
    svg: &str,
    layers: &[LayerResult],
    cortex_section: Option<&str>,
) -> String {
    use crate::score::report::escape;
    let names = roi_names(layers);
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n\
         <style>body{{font-family:system-ui,sans-serif;margin:1.5em;color:#222}}\
         table{{border-collapse:collapse}}th,td{{border:1px solid #ccc;padding:.25em .5em}}\
         td{{text-align:right;font-variant-numeric:tabular-nums}}th{{background:#f0f0f0}}\
         pre{{background:#f4f4f4;padding:.6em;white-space:pre-wrap}}svg{{max-width:100%;height:auto}}\
         </style></head><body>\n<h1>{t}</h1>\n<pre>{c}</pre>\n{svg}\n<table>\n<tr><th>ROI</th>",
        t = escape(title),
        c = escape(command),
    );
    for l in layers {
        let _ = write!(html, "<th>layer {}</th>", l.layer);
    }
    html.push_str("</tr>\n");
    for roi in &names {
        let _ = write!(html, "<tr><th>{}</th>", escape(roi));
        for l in layers {
            match l.rois.iter().find(|s| &s.roi == roi) {
                Some(s) if s.mean_r.is_finite() => {
                    let _ = write!(
                        html,
                        "<td>{:.3} ({:.0}%)</td>",
                        s.mean_r,
                        100.0 * s.fraction_significant
                    );
                }
                _ => html.push_str("<td>—</td>"),
            }
        }
        html.push_str("</tr>\n");
    }
    html.push_str(
        "</table>\n<p>Mean test r over the ROI's voxels (share of voxels significant at \
         BH-FDR q ≤ 0.05).</p>\n",
    );
    html.push_str(cortex_section.unwrap_or_default());
    html.push_str("</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(layer: usize, early: f64, ventral: f64) -> LayerResult {
        let roi = |name: &str, r: f64| RoiSummary {
            roi: name.into(),
            n_voxels: 10,
            mean_r: r,
            median_r: r,
            n_significant: 5,
            fraction_significant: 0.5,
        };
        LayerResult {
            layer,
            features: format!("blip-vision-l{layer}"),
            n_features: 100,
            design_width: 50,
            reduction: None,
            rois: vec![roi("streams/early", early), roi("streams/ventral", ventral)],
        }
    }

    #[test]
    fn the_chart_has_every_rois_points_and_the_page_one_cell_per_layer() {
        let layers = vec![
            layer(0, 0.4, 0.1),
            layer(1, 0.3, 0.2),
            layer(2, 0.2, f64::NAN),
        ];
        let svg = layers_svg("subj01 <blip-vision>", &layers).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.contains("streams/early") && svg.contains("streams/ventral"));
        // A point per finite mean r: 3 for early, 2 for ventral (layer 2's is undefined).
        assert_eq!(svg.matches("<circle").count(), 5);
        let html = layers_html(
            "subj01 <blip-vision>",
            "brainrecon encode layers",
            &svg,
            &layers,
            None,
        );
        assert!(html.contains("subj01 &lt;blip-vision&gt;"));
        assert_eq!(html.matches("<th>layer ").count(), 3);
        assert!(html.contains("<td>0.400 (50%)</td>"));
        assert_eq!(
            html.matches("<td>—</td>").count(),
            1,
            "the undefined mean r"
        );
    }
}
