//! shapes-blip's sizes and training settings, named as the checkpoint
//! ([`CaptionerConfig::shapes_blip`]), and the transformers `config.json` they give.

use crate::Preset;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Sizes and training settings of the captioner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaptionerConfig {
    /// Side of the square input images, in pixels.
    pub image_size: usize,
    /// Side of the ViT's square patches, in pixels.
    pub patch_size: usize,
    /// Width of the ViT image tower.
    pub vision_width: usize,
    /// Layers of the image tower.
    pub vision_layers: usize,
    /// Width of the BERT text decoder.
    pub text_width: usize,
    /// Layers of the text decoder.
    pub text_layers: usize,
    /// Attention heads of both towers.
    pub heads: usize,
    /// Steps of the first stage (the whole model).
    pub steps: usize,
    /// Images per step.
    pub batch: usize,
    /// Peak learning rate of the first stage.
    pub lr: f64,
    /// Share of batches whose image tokens are shrunk toward the batch mean and noised.
    pub token_shrinkage: f64,
    /// Steps of the second stage (text decoder alone on ridge-like tokens); 0 skips it.
    pub decoder_steps: usize,
    /// Peak learning rate of the second stage.
    pub decoder_lr: f64,
    /// Steps between checkpoints.
    pub checkpoint_every: usize,
    /// Which of [`CaptionerConfig::shapes_blip`] and [`CaptionerConfig::tiny`] this started
    /// from (left out of the shipped model's records).
    #[serde(default, skip_serializing_if = "Preset::is_shipped")]
    pub preset: Preset,
}

impl CaptionerConfig {
    /// The shipped shapes-blip.
    pub fn shapes_blip() -> Self {
        CaptionerConfig {
            image_size: 64,
            patch_size: 8,
            vision_width: 64,
            vision_layers: 3,
            text_width: 64,
            text_layers: 2,
            heads: 4,
            steps: 6000,
            batch: 32,
            lr: 1e-3,
            token_shrinkage: 0.5,
            decoder_steps: 3000,
            decoder_lr: 3e-4,
            checkpoint_every: 100,
            preset: Preset::Shipped,
        }
    }

    /// The configuration a preset names (the tiny one with 4 steps per stage).
    pub fn preset(preset: Preset) -> Self {
        match preset {
            Preset::Shipped => Self::shapes_blip(),
            Preset::Tiny => Self::tiny(4),
        }
    }

    /// Refuses settings no run can train with, naming the `train-captioner` flag that set
    /// them: no step, a learning rate that is not a positive number, a token shrinkage share
    /// outside 0–1.
    pub fn check(&self) -> brainrecon_nn::Result<()> {
        let bad = |message: String| Err(brainrecon_nn::ModelError::Invalid(message));
        if self.steps == 0 {
            return bad("--steps must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("--lr must be a positive number, got {}", self.lr));
        }
        if !(0.0..=1.0).contains(&self.token_shrinkage) {
            return bad(format!(
                "--token-shrinkage must be between 0 and 1, got {}",
                self.token_shrinkage
            ));
        }
        Ok(())
    }

    /// The `train-captioner` command that trains this configuration.
    pub fn command(&self, out: &Path, seed: u64) -> String {
        let shipped = Self::preset(self.preset);
        let mut command = format!(
            "brainrecon train-captioner --out {} --seed {seed}{} --steps {}",
            out.display(),
            self.preset.flag(),
            self.steps
        );
        if self.lr != shipped.lr {
            command += &format!(" --lr {}", self.lr);
        }
        if self.token_shrinkage != shipped.token_shrinkage {
            command += &format!(" --token-shrinkage {}", self.token_shrinkage);
        }
        if self.decoder_steps != shipped.decoder_steps {
            command += &format!(" --decoder-steps {}", self.decoder_steps);
        }
        command
    }

    /// A few steps of a smaller model (tests).
    pub fn tiny(steps: usize) -> Self {
        CaptionerConfig {
            image_size: 32,
            patch_size: 8,
            vision_width: 32,
            vision_layers: 1,
            text_width: 32,
            text_layers: 1,
            heads: 2,
            steps,
            batch: 8,
            lr: 2e-3,
            decoder_steps: steps,
            checkpoint_every: steps.div_ceil(2).max(1),
            preset: Preset::Tiny,
            ..Self::shapes_blip()
        }
    }

    /// The transformers `config.json` of the model, for the vocabulary `tokens`.
    pub fn blip_config_json(&self, tokens: &[String]) -> serde_json::Value {
        let id = |t: &str| tokens.iter().position(|x| x == t).expect("special token");
        serde_json::json!({
            "architectures": ["BlipForConditionalGeneration"],
            "model_type": "blip",
            "projection_dim": self.text_width,
            "image_text_hidden_size": self.text_width,
            "tie_word_embeddings": true,
            "vision_config": {
                "model_type": "blip_vision_model",
                "hidden_size": self.vision_width,
                "intermediate_size": 2 * self.vision_width,
                "num_hidden_layers": self.vision_layers,
                "num_attention_heads": self.heads,
                "image_size": self.image_size,
                "patch_size": self.patch_size,
                "hidden_act": "gelu",
                "layer_norm_eps": 1e-6,
                "projection_dim": self.text_width,
            },
            "text_config": {
                "model_type": "blip_text_model",
                "vocab_size": tokens.len(),
                "hidden_size": self.text_width,
                "encoder_hidden_size": self.vision_width,
                "intermediate_size": 2 * self.text_width,
                "num_hidden_layers": self.text_layers,
                "num_attention_heads": self.heads,
                "max_position_embeddings": 40,
                "hidden_act": "gelu",
                "layer_norm_eps": 1e-12,
                "bos_token_id": id("[DEC]"),
                "pad_token_id": id("[PAD]"),
                "sep_token_id": id("[SEP]"),
                "eos_token_id": id("[SEP]"),
                "is_decoder": true,
                "tie_word_embeddings": true,
            },
        })
    }
}
