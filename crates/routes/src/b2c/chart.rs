//! Pictures of a B2C run: the loss curves (PNG drawn here, SVG with labels by plotters) and the
//! ablation figure in the layout of the paper's Figure 3 (stimulus, then one column per
//! condition).

use super::train::StepLoss;
use crate::error::Result;
use brainrecon_data::image::{write_png, RgbImage};
use plotters::prelude::*;
use std::path::Path;

const COLORS: [[u8; 3]; 3] = [[30, 30, 30], [31, 119, 180], [214, 39, 40]];

/// Moving average over a window of about 2 % of the run (noise of single batches hidden).
fn smooth(values: &[f64]) -> Vec<f64> {
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

/// Named loss series, one value per step.
pub type Series = Vec<(&'static str, Vec<f64>)>;

/// The three smoothed series (total, diffusion, CLIP alignment; the last only when used).
fn series(losses: &[StepLoss]) -> Series {
    let mut s = vec![
        (
            "total",
            smooth(&losses.iter().map(|l| l.total).collect::<Vec<_>>()),
        ),
        (
            "diffusion",
            smooth(&losses.iter().map(|l| l.diffusion).collect::<Vec<_>>()),
        ),
    ];
    if losses.iter().any(|l| l.clip != 0.0) {
        s.push((
            "CLIP alignment",
            smooth(&losses.iter().map(|l| l.clip).collect::<Vec<_>>()),
        ));
    }
    s
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

/// A 640 × 360 PNG of the smoothed curves on a log axis (grid lines at powers of ten).
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

/// The same curves as an SVG with axes, labels, a legend and `title`.
pub fn loss_svg(title: &str, all: &Series) -> std::result::Result<String, String> {
    let steps = all.first().map_or(0, |(_, v)| v.len());
    let (lo, hi) = log_range(all);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .caption(title, ("sans-serif", 16))
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(
                0f64..steps.max(2) as f64,
                (10f64.powf(lo)..10f64.powf(hi)).log_scale(),
            )
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss")
            .draw()
            .map_err(|e| e.to_string())?;
        for (s, (name, values)) in all.iter().enumerate() {
            let c = COLORS[s];
            let color = RGBColor(c[0], c[1], c[2]);
            chart
                .draw_series(LineSeries::new(
                    values.iter().enumerate().map(|(i, v)| ((i + 1) as f64, *v)),
                    color,
                ))
                .map_err(|e| e.to_string())?
                .label(*name)
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

/// `loss.png` and `loss.svg` of a B2C run in `out`.
pub fn write_loss_charts(out: &Path, losses: &[StepLoss]) -> Result<()> {
    write_series_charts(out, "B2C training loss (smoothed)", &series(losses))
}

/// `loss.png` and `loss.svg` of any named series in `out`.
pub fn write_series_charts(out: &Path, title: &str, all: &Series) -> Result<()> {
    write_png(&out.join("loss.png"), &loss_png(all))?;
    let svg = loss_svg(title, all)
        .map_err(|e| crate::error::RouteError::Usage(format!("loss chart: {e}")))?;
    brainrecon_core::fs::write_bytes_atomic(&out.join("loss.svg"), svg.as_bytes())?;
    Ok(())
}

/// `values` smoothed over about 2 % of the run, as the charts draw them.
pub fn smoothed(values: &[f64]) -> Vec<f64> {
    smooth(values)
}

/// Figure 3's layout: one row per image, the stimulus then each condition, `cell` px squares
/// with a 4 px white gutter.
pub fn comparison_grid(rows: &[Vec<RgbImage>], cell: usize) -> RgbImage {
    let cols = rows.first().map_or(0, Vec::len);
    let gap = 4;
    let (w, h) = (cols * (cell + gap) + gap, rows.len() * (cell + gap) + gap);
    let mut pixels = vec![255u8; w * h * 3];
    for (r, row) in rows.iter().enumerate() {
        for (c, image) in row.iter().enumerate() {
            let im = image.resize(cell, cell);
            let (x0, y0) = (gap + c * (cell + gap), gap + r * (cell + gap));
            for y in 0..cell {
                let dst = ((y0 + y) * w + x0) * 3;
                pixels[dst..dst + cell * 3]
                    .copy_from_slice(&im.pixels[y * cell * 3..(y + 1) * cell * 3]);
            }
        }
    }
    RgbImage::new(h, w, pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_keeps_length_and_constant_series() {
        let v = vec![2.0; 500];
        let s = smooth(&v);
        assert_eq!(s.len(), 500);
        assert!(s.iter().all(|x| (x - 2.0).abs() < 1e-12));
        let ramp: Vec<f64> = (0..100).map(f64::from).collect();
        assert_eq!(smooth(&ramp)[50], 49.5);
    }

    #[test]
    fn charts_draw_decreasing_losses() {
        let losses: Vec<StepLoss> = (0..200)
            .map(|i| StepLoss {
                total: 2.0 / (1.0 + i as f64),
                diffusion: 1.0 / (1.0 + i as f64),
                clip: 0.25 / (1.0 + i as f64),
            })
            .collect();
        let png = loss_png(&series(&losses));
        assert_eq!((png.height, png.width), (360, 640));
        assert!(png.pixels.chunks(3).any(|p| p == COLORS[1]));
        let svg = loss_svg("B2C", &series(&losses)).unwrap();
        assert!(svg.contains("CLIP alignment") && svg.contains("<svg"));
        let grid = comparison_grid(&[vec![png.clone(), png]], 32);
        assert_eq!((grid.height, grid.width), (40, 76));
    }
}
