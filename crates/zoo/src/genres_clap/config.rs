//! genres-clap's sizes and training settings, named as the checkpoint (`Config::genres_clap()`).

use std::path::Path;

use brainrecon_audio::clap::{ClapConfig, ClapFeatureExtractor, ClapFeatureExtractorConfig};
use brainrecon_audio::clap::{Padding, Truncation};
use brainrecon_nn::{ModelError, Result};
use serde::{Deserialize, Serialize};

use crate::Preset;

use super::tokenizer;

/// Sizes of the model and its mel front end, and the training settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenresClapConfig {
    /// The synthetic tracks' rate (GTZAN's); the front end reads audio at it.
    pub sampling_rate: u32,
    /// Mel bins (`feature_size`, the audio tower's `num_mel_bins`).
    pub mel_bins: usize,
    /// STFT window length in samples (`fft_window_size`).
    pub fft_window_size: usize,
    /// STFT hop in samples (`hop_length`).
    pub hop_length: usize,
    /// The audio window (`max_length_s`): MuLan's 10 s.
    pub window_seconds: usize,
    /// Side of the square the spectrogram is folded into (`spec_size`).
    pub spec_size: usize,
    /// Side of the square patches (`patch_size` = `patch_stride`).
    pub patch: usize,
    /// The first stage's width (`patch_embeds_hidden_size`).
    pub patch_width: usize,
    /// Swin blocks per audio stage (`depths`).
    pub depths: Vec<usize>,
    /// Attention heads per audio stage (`num_attention_heads`).
    pub heads: Vec<usize>,
    /// Attention window side (`window_size`).
    pub attention_window: usize,
    /// Width of the audio blocks' MLP over their input width (`mlp_ratio`).
    pub mlp_ratio: f64,
    /// Width of the RoBERTa text tower (`hidden_size`).
    pub text_width: usize,
    /// Layers of the text tower.
    pub text_layers: usize,
    /// Attention heads of the text tower.
    pub text_heads: usize,
    /// The most tokens the BPE may learn (specials and the 256 bytes included).
    pub max_vocab: usize,
    /// Width of the joint audio-text space (`projection_dim`).
    pub projection_dim: usize,
    /// Captions the tokenizer is trained on (from the training stream).
    pub tokenizer_captions: usize,
    /// Distinct training clips (rendered once per run).
    pub training_clips: usize,
    /// Held-out clips scored at every checkpoint.
    pub held_out_clips: usize,
    /// Training steps.
    pub steps: usize,
    /// Clips per step.
    pub batch: usize,
    /// Peak learning rate (after warm-up).
    pub lr: f64,
    /// Steps between checkpoints.
    pub checkpoint_every: usize,
    /// Which of [`GenresClapConfig::genres_clap`] and [`GenresClapConfig::tiny`] this started
    /// from (left out of the shipped model's records).
    #[serde(default, skip_serializing_if = "Preset::is_shipped")]
    pub preset: Preset,
}

impl GenresClapConfig {
    /// The shipped genres-clap.
    pub fn genres_clap() -> Self {
        GenresClapConfig {
            sampling_rate: brainrecon_simulate::music::RATE,
            mel_bins: 32,
            fft_window_size: 1024,
            hop_length: 882,
            window_seconds: 10,
            spec_size: 128,
            patch: 8,
            patch_width: 16,
            depths: vec![2, 2, 2],
            heads: vec![1, 2, 4],
            attention_window: 4,
            mlp_ratio: 2.0,
            text_width: 64,
            text_layers: 2,
            text_heads: 4,
            max_vocab: 1000,
            projection_dim: 32,
            tokenizer_captions: 20_000,
            training_clips: 2000,
            held_out_clips: 200,
            steps: 300,
            batch: 64,
            lr: 1e-3,
            checkpoint_every: 50,
            preset: Preset::Shipped,
        }
    }

    /// The configuration a preset names (the tiny one with 4 steps).
    pub fn preset(preset: Preset) -> Self {
        match preset {
            Preset::Shipped => Self::genres_clap(),
            Preset::Tiny => Self::tiny(4),
        }
    }

    /// Refuses settings no run can train with, naming the `train-clap` flag that set them:
    /// no step, no checkpoint interval, a batch outside 2 ..= the training clips (the
    /// contrastive loss compares a batch's clips), a learning rate that is not a positive number.
    pub fn check(&self) -> Result<()> {
        let bad = |message: String| Err(ModelError::Invalid(message));
        if self.steps == 0 {
            return bad("--steps must be at least 1".into());
        }
        if self.checkpoint_every == 0 {
            return bad("--checkpoint-every must be at least 1".into());
        }
        if self.batch < 2 || self.batch > self.training_clips {
            return bad(format!(
                "--batch must be between 2 and the {} training clips, got {}",
                self.training_clips, self.batch
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("--lr must be a positive number, got {}", self.lr));
        }
        Ok(())
    }

    /// A few steps of a smaller model on few clips (tests).
    pub fn tiny(steps: usize) -> Self {
        GenresClapConfig {
            patch_width: 8,
            depths: vec![1, 1, 1],
            text_width: 32,
            text_heads: 2,
            max_vocab: 400,
            projection_dim: 16,
            tokenizer_captions: 300,
            training_clips: 8,
            held_out_clips: 10,
            steps,
            batch: 4,
            checkpoint_every: steps.div_ceil(2).max(1),
            preset: Preset::Tiny,
            ..Self::genres_clap()
        }
    }

    /// The `preprocessor_config.json` (`ClapFeatureExtractor`, `rand_trunc` as the unfused
    /// checkpoints use).
    pub fn preprocessor_json(&self) -> serde_json::Value {
        let max_samples = self.window_seconds * self.sampling_rate as usize;
        serde_json::json!({
            "feature_extractor_type": "ClapFeatureExtractor",
            "feature_size": self.mel_bins,
            "fft_window_size": self.fft_window_size,
            "frequency_max": self.sampling_rate as f64 / 2.0,
            "frequency_min": 20.0,
            "hop_length": self.hop_length,
            "max_length_s": self.window_seconds,
            "nb_frequency_bins": self.fft_window_size / 2 + 1,
            "nb_max_samples": max_samples,
            "padding": "repeatpad",
            "padding_side": "right",
            "padding_value": 0.0,
            "return_attention_mask": false,
            "sampling_rate": self.sampling_rate,
            "top_db": null,
            "truncation": "rand_trunc",
        })
    }

    /// The front end this configuration describes.
    pub fn feature_extractor(&self) -> ClapFeatureExtractor {
        ClapFeatureExtractor::new(ClapFeatureExtractorConfig {
            feature_size: self.mel_bins,
            sampling_rate: self.sampling_rate,
            hop_length: self.hop_length,
            max_length_s: self.window_seconds,
            fft_window_size: self.fft_window_size,
            frequency_min: 20.0,
            frequency_max: self.sampling_rate as f64 / 2.0,
            truncation: Truncation::RandTrunc,
            padding: Padding::RepeatPad,
        })
    }

    /// The transformers `config.json` of the model for a vocabulary of `vocab_size` tokens.
    pub fn clap_config_json(&self, vocab_size: usize) -> serde_json::Value {
        let stages = self.depths.len();
        let hidden = self.patch_width << (stages - 1);
        serde_json::json!({
            "architectures": ["ClapModel"],
            "model_type": "clap",
            "projection_dim": self.projection_dim,
            "projection_hidden_act": "relu",
            "logit_scale_init_value": 1.0 / 0.07,
            "initializer_factor": 1.0,
            "text_config": {
                "model_type": "clap_text_model",
                "vocab_size": vocab_size,
                "hidden_size": self.text_width,
                "num_hidden_layers": self.text_layers,
                "num_attention_heads": self.text_heads,
                "intermediate_size": 4 * self.text_width,
                "hidden_act": "gelu",
                "max_position_embeddings": tokenizer::MAX_TOKENS + 2,
                "type_vocab_size": 1,
                "layer_norm_eps": 1e-12,
                "pad_token_id": 1,
                "bos_token_id": 0,
                "eos_token_id": 2,
                "hidden_dropout_prob": 0.0,
                "attention_probs_dropout_prob": 0.0,
                "projection_dim": self.projection_dim,
                "projection_hidden_act": "relu",
            },
            "audio_config": {
                "model_type": "clap_audio_model",
                "window_size": self.attention_window,
                "num_mel_bins": self.mel_bins,
                "spec_size": self.spec_size,
                "hidden_act": "gelu",
                "patch_size": self.patch,
                "patch_stride": [self.patch, self.patch],
                "hidden_size": hidden,
                "projection_dim": self.projection_dim,
                "depths": self.depths,
                "num_attention_heads": self.heads,
                "num_hidden_layers": self.depths.iter().sum::<usize>(),
                "enable_fusion": false,
                "patch_embed_input_channels": 1,
                "patch_embeds_hidden_size": self.patch_width,
                "flatten_patch_embeds": true,
                "enable_patch_layer_norm": true,
                "qkv_bias": true,
                "mlp_ratio": self.mlp_ratio,
                "aff_block_r": 4,
                "layer_norm_eps": 1e-5,
                "drop_path_rate": 0.0,
                "hidden_dropout_prob": 0.0,
                "attention_probs_dropout_prob": 0.0,
                "projection_hidden_act": "relu",
            },
        })
    }

    /// The [`ClapConfig`] of [`Self::clap_config_json`].
    pub fn clap_config(&self, vocab_size: usize) -> Result<ClapConfig> {
        ClapConfig::from_value(
            &self.clap_config_json(vocab_size),
            Path::new("genres-clap/config.json"),
        )
    }
}
