//! genres-clap's loss curve as an SVG (plotters draws text as `<text>` elements: no fonts).

use brainrecon_nn::{ModelError, Result};
use plotters::prelude::*;

/// Moving average over about 2 % of the run (the noise of single batches hidden).
pub fn smoothed(values: &[f64]) -> Vec<f64> {
    let w = (values.len() / 50).max(1);
    let mut out = Vec::with_capacity(values.len());
    let mut sum = 0.0;
    for (i, v) in values.iter().enumerate() {
        sum += v;
        if i >= w {
            sum -= values[i - w];
        }
        out.push(sum / (i + 1).min(w) as f64);
    }
    out
}

/// The losses per step (light) and smoothed (dark), on a linear axis, with `title`.
pub fn loss_svg(title: &str, losses: &[f64]) -> Result<String> {
    let fail = |e: String| ModelError::Invalid(format!("loss chart: {e}"));
    let smooth = smoothed(losses);
    let finite = losses.iter().copied().filter(|v| v.is_finite());
    let top = finite.fold(0f64, f64::max).max(1e-3) * 1.05;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .caption(title, ("sans-serif", 16))
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..losses.len().max(2) as f64, 0f64..top)
            .map_err(|e| fail(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("contrastive loss")
            .draw()
            .map_err(|e| fail(e.to_string()))?;
        let series = [
            ("per step", losses, RGBColor(170, 190, 220)),
            ("smoothed", smooth.as_slice(), RGBColor(31, 119, 180)),
        ];
        for (name, values, color) in series {
            chart
                .draw_series(LineSeries::new(
                    values.iter().enumerate().map(|(i, v)| ((i + 1) as f64, *v)),
                    color,
                ))
                .map_err(|e| fail(e.to_string()))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(e.to_string()))?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    Ok(svg)
}
