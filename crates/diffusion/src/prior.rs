//! Pieces of diffusion training shared by the project's own diffusion models (shapes-ldm and
//! shapes-motion are trained in the model zoo, `brainrecon_zoo`) and the B2C route: the
//! objective's weights and a U-Net with trainable tensors.

use crate::pipeline::{DType, StableDiffusion};
use crate::unet::UNet2DConditionModel;
use brainrecon_nn::weights::Overlay;
use brainrecon_nn::Result;

/// Min-SNR-γ weights of an epsilon-prediction loss, one per timestep: `min(snr, γ) / snr`
/// with `snr = ᾱ / (1 − ᾱ)`.
///
/// With a uniform weight the many low-noise timesteps, where the answer is nearly in the
/// input, take as much of the gradient as the high-noise ones that decide colour, shape and
/// place; capping their weight spends the steps on the layout, and the model learns it in
/// fewer steps (Hang et al., "Efficient Diffusion Training via Min-SNR Weighting Strategy").
pub fn min_snr_weights(alphas_cumprod: &[f32], timesteps: &[usize], gamma: f64) -> Vec<f32> {
    timesteps
        .iter()
        .map(|&t| {
            let acp = alphas_cumprod[t] as f64;
            let snr = acp / (1.0 - acp);
            (snr.min(gamma) / snr) as f32
        })
        .collect()
}

/// `sd`'s U-Net rebuilt over its stored weights with the tensors `select` picks (by their name
/// in the `unet` folder) as f32 variables that gradients reach; the variables by name, sorted.
pub fn trainable_unet(
    sd: &StableDiffusion,
    select: impl Fn(&str) -> bool,
) -> Result<(UNet2DConditionModel, Vec<(String, candle_core::Var)>)> {
    let weights = sd.root.weights("unet", DType::F32, &sd.device)?;
    let (overlay, vars) = Overlay::trainable(&weights, select, DType::F32)?;
    let unet = UNet2DConditionModel::new(overlay.var_builder(), &sd.unet.config)?;
    Ok((unet, vars))
}
