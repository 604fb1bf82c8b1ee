//! MusicGen's text-conditioned generation as transformers' `MusicgenForConditionalGeneration`
//! runs it, up to the audio codes: the T5 text encoder
//! ([`brainrecon_language::t5::T5EncoderModel`], tensors under `text_encoder.`), the projection
//! of its states to the decoder's width (`enc_to_dec_proj`, when the widths differ), the decoder
//! over EnCodec codes ([`decoder`], under `decoder.`), the delay pattern ([`delay`]) and the
//! generation loop with classifier-free guidance, greedy or top-k sampling and a key/value cache
//! ([`generation`]).
//!
//! Turning codes into audio is EnCodec's decoder (the checkpoint's `audio_encoder.` tensors and
//! `audio_encoder` sub-config, read by [`crate::encodec`]); the hook is [`CodesToAudio`], used by
//! [`MusicgenForConditionalGeneration::generate_audio`].
//!
//! Checkpoints load unchanged from a folder or the Hugging Face cache (`facebook/musicgen-small`
//! and the other text-conditioned MusicGen checkpoints; melody conditioning is not supported).

pub mod config;
pub mod decoder;
pub mod delay;
pub mod generation;

use std::path::{Path, PathBuf};

use brainrecon_language::checkpoint::{weight_files, Checkpoint};
use brainrecon_language::t5::T5EncoderModel;
use brainrecon_nn::layers::Linear;
use brainrecon_nn::weights::resolve_model_folder;
use brainrecon_nn::{ModelError, Result};

use crate::encodec::{EncodecConfig, EncodecModel};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rand_chacha::ChaCha8Rng;

pub use config::{MusicgenConfig, MusicgenDecoderConfig, MusicgenGenerationDefaults};
pub use decoder::{DecoderCache, EncoderOutput, MusicgenDecoder, MusicgenForCausalLM};
pub use delay::DelayPattern;
pub use generation::{generate, Decoding, GeneratedCodes, GenerationSettings};

/// The hook through which generated codes become audio: EnCodec's decoder implements it (built
/// from the same checkpoint's `audio_encoder.` tensors, see
/// [`MusicgenForConditionalGeneration::weight_files`]).
pub trait CodesToAudio {
    /// Codes [B, K, frames] (u32, one audio channel's codebooks) → audio [B, 1, samples].
    fn decode_codes(&self, codes: &Tensor) -> Result<Tensor>;
}

/// EnCodec decodes generated codes as transformers' `audio_encoder.decode` does (no scale).
impl CodesToAudio for EncodecModel {
    fn decode_codes(&self, codes: &Tensor) -> Result<Tensor> {
        self.decode(codes, None)
    }
}

/// transformers' `MusicgenForConditionalGeneration` without its audio codec.
#[derive(Clone, Debug)]
pub struct MusicgenForConditionalGeneration {
    /// `text_encoder`.
    pub text_encoder: T5EncoderModel,
    /// `enc_to_dec_proj` (text width → decoder width), when the widths differ.
    pub enc_to_dec_proj: Option<Linear>,
    /// `decoder`.
    pub decoder: MusicgenForCausalLM,
    /// The checkpoint's `config.json`.
    pub config: MusicgenConfig,
    /// The checkpoint's `generation_config.json` defaults (transformers' when absent).
    pub generation: MusicgenGenerationDefaults,
    /// The safetensors files it was loaded from (EnCodec reads `audio_encoder.` from them).
    pub files: Vec<PathBuf>,
}

impl MusicgenForConditionalGeneration {
    /// Builds from a [`VarBuilder`] rooted at the checkpoint (where `text_encoder`, `decoder`
    /// and `enc_to_dec_proj` are).
    pub fn new(
        vb: VarBuilder,
        config: &MusicgenConfig,
        generation: MusicgenGenerationDefaults,
    ) -> Result<Self> {
        let text_width = config.text_encoder.d_model;
        let dec_width = config.decoder.hidden_size;
        if config.cross_attention_width() != dec_width {
            return Err(config::invalid(format!(
                "the text encoder's width {text_width} reaches the decoder (hidden_size \
                 {dec_width}) unprojected; the cross-attention needs equal widths"
            )));
        }
        let enc_to_dec_proj = if config.projects_encoder_states() {
            Some(Linear::new(
                vb.pp("enc_to_dec_proj"),
                text_width,
                dec_width,
                true,
            )?)
        } else {
            None
        };
        Ok(MusicgenForConditionalGeneration {
            text_encoder: T5EncoderModel::new(vb.pp("text_encoder"), &config.text_encoder)?,
            enc_to_dec_proj,
            decoder: MusicgenForCausalLM::new(vb.pp("decoder"), &config.decoder)?,
            config: config.clone(),
            generation,
            files: Vec::new(),
        })
    }

    /// Loads a folder (`config.json`, safetensors weights, optional `generation_config.json`),
    /// in f32 on `device`.
    pub fn load_dir(dir: &Path, device: &Device) -> Result<Self> {
        let config = MusicgenConfig::from_file(&dir.join("config.json"))?;
        let generation = MusicgenGenerationDefaults::from_dir(dir, &config.decoder)?;
        let files = weight_files(dir)?;
        let checkpoint = Checkpoint::open(&files, device, "decoder.lm_heads.0.weight", &[""])?;
        let mut model = Self::new(checkpoint.var_builder(), &config, generation)
            .map_err(|e| checkpoint.in_file(e))?;
        model.files = files;
        Ok(model)
    }

    /// Loads from a folder or a model id (`ORG/NAME`) in the Hugging Face cache; nothing is
    /// downloaded.
    pub fn load(name_or_dir: &str, device: &Device) -> Result<Self> {
        Self::load_dir(&resolve_model_dir(name_or_dir)?, device)
    }

    /// The checkpoint's safetensors files (empty when built from a [`VarBuilder`]).
    pub fn weight_files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The checkpoint's own codec: EnCodec from its `audio_encoder.` tensors and the
    /// `audio_encoder` sub-config of config.json.
    pub fn load_audio_codec(&self, device: &Device) -> Result<EncodecModel> {
        let config_path = self
            .files
            .first()
            .and_then(|file| file.parent())
            .map(|dir| dir.join("config.json"))
            .ok_or_else(|| {
                ModelError::Invalid(
                    "MusicGen's audio codec: this model was not loaded from a checkpoint folder"
                        .into(),
                )
            })?;
        let config = EncodecConfig::from_value(&self.config.audio_encoder, &config_path)?;
        let checkpoint = Checkpoint::open(
            &self.files,
            device,
            "audio_encoder.encoder.layers.0.conv.bias",
            &[""],
        )?;
        EncodecModel::new(checkpoint.var_builder().pp("audio_encoder"), &config)
            .map_err(|e| checkpoint.in_file(e))
    }

    /// The text encoder's states as the decoder reads them: T5 over `input_ids` [B, S] (mask
    /// [B, S], 1 = token; None = all tokens), projected by `enc_to_dec_proj`, zero at padding.
    pub fn encode_text(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<EncoderOutput> {
        let mut h = self.text_encoder.forward(input_ids, attention_mask)?;
        if let Some(proj) = &self.enc_to_dec_proj {
            h = proj.forward(&h)?;
        }
        let mask = match attention_mask {
            Some(m) => {
                let m = m.to_dtype(DType::F32)?.to_device(h.device())?;
                h = h.broadcast_mul(&m.unsqueeze(2)?)?;
                Some(m)
            }
            None => None,
        };
        Ok(EncoderOutput {
            hidden_states: h,
            attention_mask: mask,
        })
    }

    /// `model(input_ids, attention_mask, decoder_input_ids).logits`: codes [B, K, L] (transformers
    /// takes them as [B·K, L]) → logits [B, K, L, vocab_size].
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        decoder_codes: &Tensor,
    ) -> Result<Tensor> {
        let encoder = self.encode_text(input_ids, attention_mask)?;
        self.decoder.forward_all(decoder_codes, &encoder)
    }

    /// `generate(input_ids, attention_mask, ...)` up to the codes: [B, K, frames] with the
    /// delay pattern undone (see [`generation`]).
    pub fn generate(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        settings: &GenerationSettings,
        rng: &mut ChaCha8Rng,
    ) -> Result<GeneratedCodes> {
        let encoder = self.encode_text(input_ids, attention_mask)?;
        generate(
            &self.decoder,
            &encoder,
            self.generation.decoder_start_token_id,
            settings,
            rng,
        )
    }

    /// [`Self::generate`], then `codec` decodes the codes (stereo checkpoints: the left
    /// codebooks, then the right, concatenated on the channel axis as transformers does).
    pub fn generate_audio(
        &self,
        codec: &impl CodesToAudio,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        settings: &GenerationSettings,
        rng: &mut ChaCha8Rng,
    ) -> Result<Tensor> {
        let codes = self
            .generate(input_ids, attention_mask, settings, rng)?
            .codes;
        if self.config.decoder.audio_channels == 1 {
            return codec.decode_codes(&codes);
        }
        let k = self.config.decoder.num_codebooks;
        let pick = |offset: usize| -> Result<Tensor> {
            let rows: Vec<u32> = (offset..k).step_by(2).map(|r| r as u32).collect();
            let index = Tensor::from_vec(rows.clone(), rows.len(), codes.device())?;
            Ok(codes.index_select(&index, 1)?)
        };
        let left = codec.decode_codes(&pick(0)?)?;
        let right = codec.decode_codes(&pick(1)?)?;
        Ok(Tensor::cat(&[&left, &right], 1)?)
    }
}

/// The folder of a MusicGen checkpoint: a folder, or a model id (`ORG/NAME`) in the Hugging Face
/// cache (`$HF_HUB_CACHE`, `$HF_HOME/hub` or `~/.cache/huggingface/hub`).
pub fn resolve_model_dir(name_or_dir: &str) -> Result<PathBuf> {
    resolve_model_folder(
        name_or_dir,
        "a MusicGen folder",
        "config.json generation_config.json model.safetensors",
    )
}
