//! Training weights of the diffusion objective, shared by the project's own diffusion models
//! (shapes-ldm and shapes-motion are trained in the model zoo, `brainrecon_zoo`).

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
