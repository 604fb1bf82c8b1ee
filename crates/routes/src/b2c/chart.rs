//! Pictures of a B2C run: the loss curves (drawn by the model zoo's charts, which its training
//! runs share) and the ablation figure in the layout of the paper's Figure 3 (stimulus, then
//! one column per condition).

use super::train::StepLoss;
use crate::error::Result;
use std::path::Path;

pub use brainrecon_zoo::chart::{loss_png, loss_svg, smoothed, write_series_charts, Series};

/// The three smoothed series (total, diffusion, CLIP alignment; the last only when used).
fn series(losses: &[StepLoss]) -> Series {
    let mut s = vec![
        (
            "total",
            smoothed(&losses.iter().map(|l| l.total).collect::<Vec<_>>()),
        ),
        (
            "diffusion",
            smoothed(&losses.iter().map(|l| l.diffusion).collect::<Vec<_>>()),
        ),
    ];
    if losses.iter().any(|l| l.clip != 0.0) {
        s.push((
            "CLIP alignment",
            smoothed(&losses.iter().map(|l| l.clip).collect::<Vec<_>>()),
        ));
    }
    s
}

/// `loss.png` and `loss.svg` of a B2C run in `out`.
pub fn write_loss_charts(out: &Path, losses: &[StepLoss]) -> Result<()> {
    Ok(write_series_charts(
        out,
        "B2C training loss (smoothed)",
        &series(losses),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::report::comparison_grid;

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
        let svg = loss_svg("B2C", &series(&losses)).unwrap();
        assert!(svg.contains("CLIP alignment") && svg.contains("<svg"));
        let grid = comparison_grid(&[vec![png.clone(), png]], 32);
        assert_eq!((grid.height, grid.width), (40, 76));
    }
}
