//! Initial noise that moves: every frame of a clip takes one frame's noise, rolled by the
//! displacement a velocity gives at that frame. An image model draws its content where its
//! noise leads it, so the generated content follows the roll (the idea of FreeTraj, Qiu et al.
//! 2024, and of Go-with-the-Flow, Burgert et al. 2025, which move the initial noise along a
//! trajectory or a flow to steer a video model's motion). Whole-pixel rolls that wrap around
//! keep every frame exactly N(0, I), as the sampler expects.

use brainrecon_nn::rng::NoiseSource;
use brainrecon_nn::Result;
use candle_core::{DType, Device, Tensor};

/// The latent-pixel roll (x, y) of frame `k` at `velocity` (frame widths and heights per
/// frame; x right, y down) on an h×w latent: the nearest whole pixel to k·v·size.
pub fn frame_roll(velocity: [f32; 2], k: usize, h: usize, w: usize) -> [isize; 2] {
    [
        (k as f32 * velocity[0] * w as f32).round() as isize,
        (k as f32 * velocity[1] * h as f32).round() as isize,
    ]
}

/// Clip noise [B, C, f, h, w]: row b draws one frame [C, h, w] from `noise` (rows in order)
/// and frame k is that frame rolled by [`frame_roll`] of `velocities[b]`.
pub fn moving_noise(
    noise: &mut dyn NoiseSource,
    [b, c, f, h, w]: [usize; 5],
    velocities: &[[f32; 2]],
    device: &Device,
) -> Result<Tensor> {
    assert_eq!(velocities.len(), b, "one velocity per clip");
    let first = noise
        .gaussian(&[b, c, h, w], &Device::Cpu, DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let mut out = vec![0f32; b * c * f * h * w];
    for (row, velocity) in velocities.iter().enumerate() {
        for k in 0..f {
            let [sx, sy] = frame_roll(*velocity, k, h, w);
            for ch in 0..c {
                let src = &first[(row * c + ch) * h * w..][..h * w];
                let dst = &mut out[((row * c + ch) * f + k) * h * w..][..h * w];
                roll_plane(src, dst, h, w, [sx, sy]);
            }
        }
    }
    Ok(Tensor::from_vec(out, (b, c, f, h, w), device)?)
}

/// `dst` = `src` (h×w) moved by (sx, sy) pixels, wrapping around.
fn roll_plane(src: &[f32], dst: &mut [f32], h: usize, w: usize, [sx, sy]: [isize; 2]) {
    for y in 0..h {
        let from_y = (y as isize - sy).rem_euclid(h as isize) as usize;
        for x in 0..w {
            let from_x = (x as isize - sx).rem_euclid(w as isize) as usize;
            dst[y * w + x] = src[from_y * w + from_x];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brainrecon_nn::rng::SeededNoise;

    #[test]
    fn frames_are_the_first_frame_rolled() {
        let v = [[0.25f32, -0.125], [0.0, 0.0]];
        let x = moving_noise(&mut SeededNoise::new(3), [2, 2, 4, 8, 8], &v, &Device::Cpu).unwrap();
        let first = SeededNoise::new(3)
            .gaussian(&[2, 2, 8, 8], &Device::Cpu, DType::F32)
            .unwrap();
        for k in 0..4 {
            // Row 0 moves 2 pixels right and 1 up a frame; row 1 stays.
            let frame = x
                .get(0)
                .unwrap()
                .narrow(1, k, 1)
                .unwrap()
                .squeeze(1)
                .unwrap();
            let want = first.get(0).unwrap();
            let rolled = want
                .roll(2 * k as i32, 2)
                .unwrap()
                .roll(-(k as i32), 1)
                .unwrap();
            assert_eq!(
                frame.to_vec3::<f32>().unwrap(),
                rolled.to_vec3::<f32>().unwrap()
            );
            let still = x
                .get(1)
                .unwrap()
                .narrow(1, k, 1)
                .unwrap()
                .squeeze(1)
                .unwrap();
            assert_eq!(
                still.to_vec3::<f32>().unwrap(),
                first.get(1).unwrap().to_vec3::<f32>().unwrap()
            );
        }
    }

    #[test]
    fn rolls_round_to_the_nearest_pixel() {
        assert_eq!(frame_roll([0.04, -0.04], 0, 16, 16), [0, 0]);
        assert_eq!(frame_roll([0.04, -0.04], 1, 16, 16), [1, -1]);
        assert_eq!(frame_roll([0.04, 0.0], 5, 16, 16), [3, 0]);
        assert_eq!(frame_roll([0.01, 0.0], 2, 16, 16), [0, 0]);
    }
}
