//! Decoded features drawn as the linear route draws them, one sample and a short schedule.

use super::decoders::LiveDecoders;
use crate::error::Result;
use crate::linear::{sample_latents, tensor_to_image, Method, ReconstructOptions};
use brainrecon_datasets::prepared::PreparedSubject;
use brainrecon_diffusion::pipeline::{Conditioning, StableDiffusion, Tensor};
use brainrecon_formats::image::RgbImage;

/// Draws decoded (z, c) as the linear route does: the picture of z, encoded again, noised to
/// `strength` and denoised with DDIM conditioned on c (guidance against the empty prompt).
pub struct LiveDrawer {
    pub(super) options: ReconstructOptions,
    pub(super) latent_hw: usize,
    uncond: Option<Tensor>,
}

/// One volume's pictures: the VAE decode of its z, and the reconstruction.
pub struct Drawn {
    /// The VAE decode of the decoded z.
    pub decoded_z: RgbImage,
    /// The reconstruction: img2img from that picture, conditioned on the decoded c.
    pub image: RgbImage,
}

impl LiveDrawer {
    /// Checks that the decoders were fit on `subject` and on `sd`'s latents and context (as
    /// the linear route checks them).
    pub fn new(
        subject: &PreparedSubject,
        sd: &StableDiffusion,
        decoders: &LiveDecoders,
        steps: usize,
        strength: f64,
        guidance: f64,
        seed: u64,
    ) -> Result<LiveDrawer> {
        let options = ReconstructOptions {
            method: Method::Linear,
            samples: 1,
            strength,
            steps,
            guidance,
            seed,
            sample_posterior: false,
            batch: 1,
            ..ReconstructOptions::default()
        };
        crate::linear::check_sampling(&options)?;
        let latent_hw = crate::linear::check_decoders(
            subject,
            sd,
            Method::Linear,
            Some(&decoders.z),
            Some(&decoders.c),
        )?
        .expect("the linear method has a z decoder");
        Ok(LiveDrawer {
            latent_hw,
            uncond: crate::linear::unconditional(sd, guidance)?,
            options,
        })
    }

    /// The pictures of volume `volume`'s decoded features (its noise stream is the volume's),
    /// drawn with `sd`, the model the drawer was made for.
    pub fn draw(&self, sd: &StableDiffusion, z: &[f32], c: &[f32], volume: usize) -> Result<Drawn> {
        let hw = self.latent_hw;
        let z = Tensor::from_vec(
            z.to_vec(),
            (1, sd.unet.config.in_channels, hw, hw),
            &sd.device,
        )?;
        let decoded_z = tensor_to_image(&sd.decode_latent(&z)?)?;
        let pixels = crate::linear::init_pixels(sd, &decoded_z)?;
        let context = Conditioning {
            cond: crate::linear::context_row(sd, c, 0)?,
            uncond: self.uncond.clone(),
        };
        let latents = sample_latents(sd, &self.options, volume, &context, Some(&pixels), &[1])?;
        let image = tensor_to_image(&sd.decode_latent(&latents)?)?;
        Ok(Drawn { decoded_z, image })
    }
}
