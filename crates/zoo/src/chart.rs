//! Loss curves of training runs (B2C, shapes-blip, genres-clap): a PNG drawn here, and SVGs
//! with axes, labels and a legend by plotters (text as `<text>` elements: no fonts needed).

use brainrecon_formats::image::{write_png, RgbImage};
use brainrecon_nn::{ModelError, Result};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use std::path::Path;

/// Colours of the series of [`loss_png`] and [`loss_svg`], in order.
pub const COLORS: [[u8; 3]; 3] = [[30, 30, 30], [31, 119, 180], [214, 39, 40]];

/// Named loss series, one value per step.
pub type Series = Vec<(&'static str, Vec<f64>)>;

/// Moving average over a window of about 2 % of the run (noise of single batches hidden);
/// the same length as `values`.
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

/// log10 range of the positive values, padded.
fn log_range(all: &[(&str, Vec<f64>)]) -> (f64, f64) {
    let logs = all
        .iter()
        .flat_map(|(_, v)| v.iter())
        .filter(|v| **v > 0.0)
        .map(|v| v.log10());
    let (lo, hi) = logs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if lo.is_finite() {
        (lo - 0.05, (hi + 0.05).max(lo + 0.1))
    } else {
        (-1.0, 1.0)
    }
}

/// A 640 × 360 PNG of the series on a log axis (grid lines at powers of ten).
pub fn loss_png(all: &Series) -> RgbImage {
    let steps = all.first().map_or(0, |(_, v)| v.len());
    let (w, h, margin) = (640usize, 360usize, 24usize);
    let mut pixels = vec![255u8; w * h * 3];
    let mut put = |x: usize, y: usize, c: [u8; 3]| {
        if x < w && y < h {
            pixels[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&c);
        }
    };
    let (lo, hi) = log_range(all);
    let to_y =
        |v: f64| margin as f64 + (hi - v.max(1e-30).log10()) / (hi - lo) * (h - 2 * margin) as f64;
    let to_x =
        |i: usize| margin as f64 + i as f64 / (steps.max(2) - 1) as f64 * (w - 2 * margin) as f64;
    for decade in (lo.ceil() as i32)..=(hi.floor() as i32) {
        let y = to_y(10f64.powi(decade)).round() as usize;
        for x in margin..w - margin {
            put(x, y, [220, 220, 220]);
        }
    }
    for k in margin..=h - margin {
        put(margin, k, [0, 0, 0]);
    }
    for k in margin..=w - margin {
        put(k, h - margin, [0, 0, 0]);
    }
    for (s, (_, values)) in all.iter().enumerate() {
        for i in 1..values.len() {
            let (x0, y0, x1, y1) = (to_x(i - 1), to_y(values[i - 1]), to_x(i), to_y(values[i]));
            let n = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
            for k in 0..=n {
                let t = k as f64 / n as f64;
                put(
                    (x0 + t * (x1 - x0)).round() as usize,
                    (y0 + t * (y1 - y0)).round() as usize,
                    COLORS[s],
                );
            }
        }
    }
    RgbImage::new(h, w, pixels)
}

/// The layout of one SVG chart: its title, the y axis's label and label width.
struct Frame<'a> {
    title: &'a str,
    y_desc: &'a str,
    y_label_area: u32,
}

/// A 640 × 360 SVG of `lines` (name, one value per step from step 1, colour) over `steps`
/// steps on the y axis `y`.
fn draw_svg<Y>(
    frame: &Frame,
    steps: usize,
    y: Y,
    lines: &[(&str, &[f64], RGBColor)],
) -> std::result::Result<String, String>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .caption(frame.title, ("sans-serif", 16))
            .x_label_area_size(32)
            .y_label_area_size(frame.y_label_area)
            .build_cartesian_2d(0f64..steps.max(2) as f64, y)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc(frame.y_desc)
            .draw()
            .map_err(|e| e.to_string())?;
        for &(name, values, color) in lines {
            chart
                .draw_series(LineSeries::new(
                    values.iter().enumerate().map(|(i, v)| ((i + 1) as f64, *v)),
                    color,
                ))
                .map_err(|e| e.to_string())?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// The series of [`loss_png`] as an SVG on a log axis with `title`.
pub fn loss_svg(title: &str, all: &Series) -> std::result::Result<String, String> {
    let steps = all.first().map_or(0, |(_, v)| v.len());
    let (lo, hi) = log_range(all);
    let lines: Vec<(&str, &[f64], RGBColor)> = all
        .iter()
        .zip(COLORS)
        .map(|((name, values), [r, g, b])| (*name, values.as_slice(), RGBColor(r, g, b)))
        .collect();
    let frame = Frame {
        title,
        y_desc: "loss",
        y_label_area: 56,
    };
    draw_svg(
        &frame,
        steps,
        (10f64.powf(lo)..10f64.powf(hi)).log_scale(),
        &lines,
    )
}

/// `loss.png` and `loss.svg` of the named series in `out`.
pub fn write_series_charts(out: &Path, title: &str, all: &Series) -> Result<()> {
    write_png(&out.join("loss.png"), &loss_png(all))?;
    let svg = loss_svg(title, all).map_err(|e| ModelError::Invalid(format!("loss chart: {e}")))?;
    brainrecon_core::fs::write_bytes_atomic(&out.join("loss.svg"), svg.as_bytes())?;
    Ok(())
}

/// The losses per step (light) and [`smoothed`] (dark) as an SVG on a linear axis from 0,
/// with `title` and the y axis named `y_desc`.
pub fn raw_and_smoothed_svg(title: &str, y_desc: &str, losses: &[f64]) -> Result<String> {
    let smooth = smoothed(losses);
    let finite = losses.iter().copied().filter(|v| v.is_finite());
    let top = finite.fold(0f64, f64::max).max(1e-3) * 1.05;
    let frame = Frame {
        title,
        y_desc,
        y_label_area: 48,
    };
    let lines = [
        ("per step", losses, RGBColor(170, 190, 220)),
        ("smoothed", smooth.as_slice(), RGBColor(31, 119, 180)),
    ];
    draw_svg(&frame, losses.len(), 0f64..top, &lines)
        .map_err(|e| ModelError::Invalid(format!("loss chart: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_keeps_length_and_constant_series() {
        let v = vec![2.0; 500];
        let s = smoothed(&v);
        assert_eq!(s.len(), 500);
        assert!(s.iter().all(|x| (x - 2.0).abs() < 1e-12));
        let ramp: Vec<f64> = (0..100).map(f64::from).collect();
        assert_eq!(smoothed(&ramp)[50], 49.5);
    }

    #[test]
    fn charts_draw_decreasing_losses() {
        let curve = |scale: f64| -> Vec<f64> {
            smoothed(
                &(0..200)
                    .map(|i| scale / (1.0 + i as f64))
                    .collect::<Vec<_>>(),
            )
        };
        let series: Series = vec![
            ("total", curve(2.0)),
            ("diffusion", curve(1.0)),
            ("CLIP alignment", curve(0.25)),
        ];
        let png = loss_png(&series);
        assert_eq!((png.height, png.width), (360, 640));
        assert!(png.pixels.chunks(3).any(|p| p == COLORS[1]));
        let svg = loss_svg("B2C", &series).unwrap();
        assert!(svg.contains("CLIP alignment") && svg.contains("<svg"));
        let linear = raw_and_smoothed_svg("a run", "contrastive loss", &curve(1.0)).unwrap();
        assert!(linear.contains("smoothed") && linear.contains("contrastive loss"));
    }
}
