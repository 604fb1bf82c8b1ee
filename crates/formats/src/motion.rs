//! The global motion of a clip: the least-squares displacement that explains each frame's
//! change from the previous one under brightness constancy (Lucas–Kanade with one window, the
//! whole frame; each axis solved on its own): v_x = Σ −∂I/∂t · ∂Ī/∂x / Σ (∂Ī/∂x)², with Ī the
//! mean of the two frames, central differences, the border pixels left out, all channels
//! summed. On a flat background only the moving object's edges have gradients, so this is the
//! object's velocity; on a camera pan, the pan's. The linearisation holds for displacements
//! below about a pixel, so [`clip_velocity`] measures on frames shrunk to a coarse grid.

use crate::image::RgbImage;

/// The sums of one or more frame pairs; [`ShiftSums::displacement`] solves them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ShiftSums {
    /// Σ −∂I/∂t · ∂Ī/∂x.
    pub gx_it: f64,
    /// Σ (∂Ī/∂x)².
    pub gx2: f64,
    /// Σ −∂I/∂t · ∂Ī/∂y.
    pub gy_it: f64,
    /// Σ (∂Ī/∂y)².
    pub gy2: f64,
}

impl ShiftSums {
    /// Adds the pair `previous` → `current`, both h×w×`channels` row-major.
    pub fn add_pair(
        &mut self,
        previous: &[f32],
        current: &[f32],
        h: usize,
        w: usize,
        channels: usize,
    ) {
        assert_eq!(previous.len(), h * w * channels, "previous frame size");
        assert_eq!(current.len(), h * w * channels, "current frame size");
        let at = |img: &[f32], y: usize, x: usize, c: usize| img[(y * w + x) * channels + c];
        for y in 1..h.saturating_sub(1) {
            for x in 1..w.saturating_sub(1) {
                for c in 0..channels {
                    let it = (at(current, y, x, c) - at(previous, y, x, c)) as f64;
                    let mean = |yy: usize, xx: usize| {
                        0.5 * (at(current, yy, xx, c) + at(previous, yy, xx, c)) as f64
                    };
                    let gx = 0.5 * (mean(y, x + 1) - mean(y, x - 1));
                    let gy = 0.5 * (mean(y + 1, x) - mean(y - 1, x));
                    self.gx_it += -it * gx;
                    self.gx2 += gx * gx;
                    self.gy_it += -it * gy;
                    self.gy2 += gy * gy;
                }
            }
        }
    }

    /// The displacement (pixels per frame; x right, y down); 0 on an axis without gradients.
    pub fn displacement(&self) -> [f64; 2] {
        let solve = |num: f64, den: f64| if den > 1e-9 { num / den } else { 0.0 };
        [solve(self.gx_it, self.gx2), solve(self.gy_it, self.gy2)]
    }
}

/// Grid the frames are shrunk to (area averaging) before [`clip_velocity`] measures: a shape
/// moving 5% of the frame per frame moves 0.8 grid pixels.
pub const MOTION_GRID: usize = 16;

/// A clip's velocity in frame widths (x, right) and heights (y, down) per frame: the
/// least-squares displacement pooled over its consecutive frame pairs, measured at `grid`×`grid`.
/// Zero for a clip of one frame.
pub fn clip_velocity(frames: &[RgbImage], grid: usize) -> [f32; 2] {
    assert!(grid >= 3, "the motion grid needs at least 3×3 pixels");
    let planes: Vec<Vec<f32>> = frames
        .iter()
        .map(|f| f.resize(grid, grid).to_unit_f32())
        .collect();
    let mut sums = ShiftSums::default();
    for pair in planes.windows(2) {
        sums.add_pair(&pair[0], &pair[1], grid, grid, 3);
    }
    let [vx, vy] = sums.displacement();
    [(vx / grid as f64) as f32, (vy / grid as f64) as f32]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame with a soft disc (radius 0.15, edge 0.05 of the width) centred at (cx, cy).
    fn disc(size: usize, cx: f32, cy: f32) -> RgbImage {
        let mut pixels = Vec::with_capacity(size * size * 3);
        for y in 0..size {
            for x in 0..size {
                let (u, v) = (
                    (x as f32 + 0.5) / size as f32,
                    (y as f32 + 0.5) / size as f32,
                );
                let d = (u - cx).hypot(v - cy);
                let a = ((0.15 - d) / 0.05 + 0.5).clamp(0.0, 1.0);
                let value = (40.0 + 180.0 * a) as u8;
                pixels.extend([value, (value / 2), 200 - value / 4]);
            }
        }
        RgbImage::new(size, size, pixels)
    }

    fn moving(v: [f32; 2], n: usize) -> Vec<RgbImage> {
        (0..n)
            .map(|k| disc(64, 0.4 + v[0] * k as f32, 0.45 + v[1] * k as f32))
            .collect()
    }

    #[test]
    fn a_moving_disc_is_measured_at_its_velocity() {
        for v in [
            [0.04, 0.0],
            [-0.03, 0.0],
            [0.0, 0.05],
            [0.0, -0.04],
            [0.02, 0.03],
        ] {
            let got = clip_velocity(&moving(v, 6), MOTION_GRID);
            for axis in 0..2 {
                assert!(
                    (got[axis] - v[axis]).abs() <= 0.2 * v[axis].abs() + 0.003,
                    "velocity {v:?} measured as {got:?}"
                );
            }
        }
    }

    #[test]
    fn still_and_single_frames_do_not_move() {
        assert_eq!(
            clip_velocity(&moving([0.0, 0.0], 6), MOTION_GRID),
            [0.0, 0.0]
        );
        assert_eq!(
            clip_velocity(&moving([0.04, 0.0], 1), MOTION_GRID),
            [0.0, 0.0]
        );
        // A flat clip has no gradients: no motion, not a division by zero.
        let flat = RgbImage::new(32, 32, vec![90; 32 * 32 * 3]);
        assert_eq!(
            clip_velocity(&[flat.clone(), flat], MOTION_GRID),
            [0.0, 0.0]
        );
    }
}
