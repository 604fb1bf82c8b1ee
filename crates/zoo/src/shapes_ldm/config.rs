//! shapes-ldm's sizes (as diffusers config JSON) and training settings, named as the
//! checkpoint ([`PriorConfig::shapes_ldm`]).

use crate::Preset;
use brainrecon_nn::tape::TrainEngine;
use serde_json::json;

/// Sizes of the three models, as diffusers config JSON, and the training settings.
#[derive(Clone, Debug)]
pub struct PriorConfig {
    /// Side of the square training images, in pixels.
    pub image_size: usize,
    /// Tokens per prompt (BOS, words, EOS, padding).
    pub max_length: usize,
    /// diffusers `config.json` of the AutoencoderKL (its `scaling_factor` is set after stage 1).
    pub vae: serde_json::Value,
    /// transformers `config.json` of the CLIP text encoder (vocabulary and positions are set at
    /// training).
    pub text_encoder: serde_json::Value,
    /// diffusers `config.json` of the U-Net (`sample_size` is set at training).
    pub unet: serde_json::Value,
    /// Steps of the autoencoder stage.
    pub vae_steps: usize,
    /// Steps of the decoder-only stage (0 skips it).
    pub decoder_steps: usize,
    /// Steps of the denoiser stage (text encoder and U-Net).
    pub unet_steps: usize,
    /// Images per autoencoder step.
    pub vae_batch: usize,
    /// Images per decoder-only step.
    pub decoder_batch: usize,
    /// Latents per denoiser step.
    pub unet_batch: usize,
    /// Peak learning rate of the autoencoder stage.
    pub vae_lr: f64,
    /// Peak learning rate of the decoder-only stage.
    pub decoder_lr: f64,
    /// Peak learning rate of the denoiser stage.
    pub unet_lr: f64,
    /// Weight of the KL term against the autoencoder's L1.
    pub kl_weight: f64,
    /// Extra weight of the shape's pixels in the autoencoder's L1 (a pixel the shape touches
    /// counts `1 + foreground_weight` times a background pixel).
    pub foreground_weight: f64,
    /// Log-variance the autoencoder's posterior starts with (the bias of `quant_conv`'s
    /// log-variance channels).
    pub initial_logvar: f64,
    /// Share of captions replaced by the empty prompt.
    pub caption_dropout: f64,
    /// γ of the min-SNR weighting of the denoiser's loss (Hang et al. 2023): a timestep with
    /// signal-to-noise ratio `snr` weighs `min(snr, γ) / snr`.
    pub snr_gamma: f64,
    /// Steps between checkpoints.
    pub checkpoint_every: usize,
    /// Which of [`PriorConfig::shapes_ldm`] and [`PriorConfig::tiny`] this started from.
    pub preset: Preset,
    /// What differentiates the denoiser's U-Net on the CPU: the project's tape (the default)
    /// or candle's autograd; other devices always take candle's.
    pub engine: TrainEngine,
}

impl PriorConfig {
    /// The shipped model: 64 px images, 4×16×16 latents, a 2-layer 64-wide text encoder and a
    /// two-level U-Net with cross-attention at 8×8 and in the middle. Sized to train on two CPU
    /// cores in about an hour: at 16×16 the U-Net has convolutions only, because attention over
    /// 256 tokens cost more than the rest of the step.
    pub fn shapes_ldm() -> Self {
        PriorConfig {
            image_size: 64,
            max_length: 16,
            vae: vae_config(&[16, 32, 64], 8, 64),
            text_encoder: text_config(64, 2, 4, 256),
            unet: unet_config(&[32, 64], &[false, true], 8, 64, 32),
            vae_steps: 4000,
            decoder_steps: 2000,
            unet_steps: 4500,
            vae_batch: 4,
            decoder_batch: 8,
            unet_batch: 32,
            vae_lr: 1e-3,
            decoder_lr: 3e-4,
            unet_lr: 1e-3,
            kl_weight: 1e-6,
            foreground_weight: 10.0,
            initial_logvar: -6.0,
            caption_dropout: 0.1,
            snr_gamma: 5.0,
            checkpoint_every: 100,
            preset: Preset::Shipped,
            engine: TrainEngine::Tape,
        }
    }

    /// The configuration a preset names.
    pub fn preset(preset: Preset) -> Self {
        match preset {
            Preset::Shipped => Self::shapes_ldm(),
            Preset::Tiny => Self::tiny(),
        }
    }

    /// Refuses a run without autoencoder or denoiser steps, naming the `train-prior` flags
    /// that set them.
    pub fn check(&self) -> brainrecon_nn::Result<()> {
        if self.unet_steps == 0 || self.vae_steps == 0 {
            return Err(brainrecon_nn::ModelError::Invalid(
                "--steps and --vae-steps must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// A model small enough to train for a few steps in a test.
    pub fn tiny() -> Self {
        PriorConfig {
            image_size: 16,
            max_length: 16,
            vae: vae_config(&[8, 8], 4, 16),
            text_encoder: text_config(16, 1, 2, 32),
            unet: unet_config(&[8, 16], &[true, true], 4, 16, 8),
            vae_steps: 3,
            decoder_steps: 3,
            unet_steps: 3,
            vae_batch: 2,
            decoder_batch: 2,
            unet_batch: 2,
            vae_lr: 1e-3,
            decoder_lr: 3e-4,
            unet_lr: 1e-3,
            kl_weight: 1e-6,
            foreground_weight: 10.0,
            initial_logvar: -6.0,
            caption_dropout: 0.5,
            snr_gamma: 5.0,
            checkpoint_every: 2,
            preset: Preset::Tiny,
            engine: TrainEngine::Tape,
        }
    }
}

/// diffusers config of an AutoencoderKL with one ResNet per level and 4 latent channels.
pub fn vae_config(channels: &[usize], groups: usize, image_size: usize) -> serde_json::Value {
    json!({
        "_class_name": "AutoencoderKL",
        "act_fn": "silu",
        "block_out_channels": channels,
        "down_block_types": vec!["DownEncoderBlock2D"; channels.len()],
        "up_block_types": vec!["UpDecoderBlock2D"; channels.len()],
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": 4,
        "layers_per_block": 1,
        "norm_num_groups": groups,
        "sample_size": image_size,
        "scaling_factor": 1.0,
        "force_upcast": true,
        "use_quant_conv": true,
        "use_post_quant_conv": true,
        "mid_block_add_attention": true,
    })
}

/// transformers config of a CLIP text encoder (vocabulary and positions are set at training).
pub fn text_config(hidden: usize, layers: usize, heads: usize, mlp: usize) -> serde_json::Value {
    json!({
        "architectures": ["CLIPTextModel"],
        "model_type": "clip_text_model",
        "hidden_size": hidden,
        "intermediate_size": mlp,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
        "projection_dim": hidden,
    })
}

/// diffusers config of a U-Net with one ResNet per level; `cross[i]` says whether level `i`
/// has (cross-)attention. The middle block always has.
pub fn unet_config(
    channels: &[usize],
    cross: &[bool],
    groups: usize,
    context: usize,
    head_dim: usize,
) -> serde_json::Value {
    assert_eq!(
        channels.len(),
        cross.len(),
        "one cross-attention flag per level"
    );
    let down: Vec<&str> = cross
        .iter()
        .map(|&c| {
            if c {
                "CrossAttnDownBlock2D"
            } else {
                "DownBlock2D"
            }
        })
        .collect();
    let up: Vec<&str> = cross
        .iter()
        .rev()
        .map(|&c| if c { "CrossAttnUpBlock2D" } else { "UpBlock2D" })
        .collect();
    json!({
        "_class_name": "UNet2DConditionModel",
        "act_fn": "silu",
        "attention_head_dim": head_dim,
        "block_out_channels": channels,
        "cross_attention_dim": context,
        "down_block_types": down,
        "up_block_types": up,
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "in_channels": 4,
        "out_channels": 4,
        "layers_per_block": 1,
        "norm_num_groups": groups,
        "norm_eps": 1e-5,
        "flip_sin_to_cos": true,
        "freq_shift": 0,
        "sample_size": 0,
        "use_linear_projection": false,
    })
}
