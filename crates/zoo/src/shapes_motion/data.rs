//! shapes-motion's data: seeded clips of a scene of shapes-ldm moving left, right, up, down
//! or standing still (`brainrecon_simulate::video`), captioned "a red circle moving left",
//! with their timesteps, and the frozen VAE's latents of their frames.

use super::config::MotionTrainConfig;
use brainrecon_diffusion::pipeline::{image_from_rgb8, Posterior, StableDiffusion};
use brainrecon_formats::image::RgbImage;
use brainrecon_nn::rng::SeededNoise;
use brainrecon_nn::Result;
use brainrecon_simulate::video::ClipSpec;
use candle_core::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The clips of training step `step`: (spec, caption or "" when dropped, timestep).
pub fn training_clips(
    seed: u64,
    step: usize,
    config: &MotionTrainConfig,
    n_train: usize,
) -> Vec<(ClipSpec, String, usize)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7107_0000_0000 ^ step as u64);
    (0..config.batch)
        .map(|_| {
            let spec = ClipSpec::random(&mut rng, config.frames);
            let caption = if rng.gen_bool(config.caption_dropout) {
                String::new()
            } else {
                spec.caption()
            };
            let t = match config.timestep_shift == 1.0 {
                true => rng.gen_range(0..n_train),
                false => shifted_timestep(rng.gen::<f64>(), config.timestep_shift, n_train),
            };
            (spec, caption, t)
        })
        .collect()
}

/// The timestep of uniform `u` in [0, 1) under `shift` (see
/// [`MotionTrainConfig::timestep_shift`]), in 0..n.
pub fn shifted_timestep(u: f64, shift: f64, n: usize) -> usize {
    let fraction = shift * u / (1.0 + (shift - 1.0) * u);
    ((fraction * n as f64) as usize).min(n - 1)
}

/// Frames of `clips` clips (each `frames` long) → VAE latents [clips, 4, frames, h, w].
pub fn clip_latents(sd: &StableDiffusion, clips: &[Vec<RgbImage>]) -> Result<Tensor> {
    let frames = clips[0].len();
    let images = clips
        .iter()
        .flatten()
        .map(|im| image_from_rgb8(im.height, im.width, &im.pixels, &sd.device))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let batch = Tensor::cat(&images, 0)?;
    let mut unused = SeededNoise::new(0);
    let z = sd.encode_image(&batch, Posterior::Mean, &mut unused)?;
    let (_, c, h, w) = z.dims4()?;
    Ok(z.reshape((clips.len(), frames, c, h, w))?
        .permute((0, 2, 1, 3, 4))?
        .contiguous()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifted_timesteps_favour_high_noise_and_stay_in_range() {
        assert_eq!(shifted_timestep(0.5, 1.0, 1000), 500);
        // s·u / (1 + (s − 1)·u) at s = 3, u = 1/2: 3/4.
        assert_eq!(shifted_timestep(0.5, 3.0, 1000), 750);
        assert_eq!(shifted_timestep(0.0, 3.0, 1000), 0);
        assert_eq!(shifted_timestep(0.999_999_9, 3.0, 1000), 999);
        let config = MotionTrainConfig {
            timestep_shift: 3.0,
            batch: 64,
            ..MotionTrainConfig::default()
        };
        let ts: Vec<usize> = training_clips(0, 0, &config, 1000)
            .iter()
            .map(|c| c.2)
            .collect();
        let mean = ts.iter().sum::<usize>() as f64 / ts.len() as f64;
        assert!(mean > 600.0, "mean timestep {mean} under shift 3");
    }
}
