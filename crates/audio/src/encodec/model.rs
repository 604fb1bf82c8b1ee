//! `EncodecModel`: loading, encoding to codes (and to the continuous frame features), decoding.

use std::path::{Path, PathBuf};

use brainrecon_language::checkpoint::{weight_files, Checkpoint};
use brainrecon_nn::weights::resolve_model_folder;
use brainrecon_nn::{ModelError, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::config::EncodecConfig;
use super::modules::{EncodecDecoder, EncodecEncoder};
use super::quantizer::EncodecResidualVectorQuantizer;

/// transformers adds this to the RMS before dividing by it.
const SCALE_EPS: f64 = 1e-8;

/// The codes of a batch of clips, and the scale each clip was divided by (`normalize` configs
/// only; [`EncodecModel::decode`] multiplies it back).
#[derive(Clone, Debug)]
pub struct EncodecEncoding {
    /// [B, n_q, frames] (u32).
    pub codes: Tensor,
    /// [B, 1].
    pub scale: Option<Tensor>,
}

/// EnCodec as transformers' `EncodecModel` computes it (unchunked configs), parameters named
/// `encoder.*`, `decoder.*`, `quantizer.*` as there.
#[derive(Clone, Debug)]
pub struct EncodecModel {
    /// The checkpoint's config.
    pub config: EncodecConfig,
    /// SEANet encoder (`encoder.*`).
    pub encoder: EncodecEncoder,
    /// SEANet decoder (`decoder.*`).
    pub decoder: EncodecDecoder,
    /// Residual vector quantizer (`quantizer.*`).
    pub quantizer: EncodecResidualVectorQuantizer,
    device: Device,
}

impl EncodecModel {
    /// Builds the model from weights under `vb` (e.g. a MusicGen checkpoint's
    /// `audio_encoder` prefix); the computation runs in f32.
    pub fn new(vb: VarBuilder, config: &EncodecConfig) -> Result<Self> {
        config
            .check()
            .map_err(|m| ModelError::Invalid(format!("EnCodec config: {m}")))?;
        let vb = vb.set_dtype(DType::F32);
        Ok(EncodecModel {
            config: config.clone(),
            encoder: EncodecEncoder::new(vb.pp("encoder"), config)?,
            decoder: EncodecDecoder::new(vb.pp("decoder"), config)?,
            quantizer: EncodecResidualVectorQuantizer::new(vb.pp("quantizer"), config)?,
            device: vb.device().clone(),
        })
    }

    /// A folder with `config.json` and `model.safetensors` (as `save_pretrained` writes them),
    /// a Hugging Face cache snapshot, or a model id in the cache (`facebook/encodec_32khz`).
    /// Nothing is downloaded.
    pub fn load(model: &str, device: &Device) -> Result<Self> {
        Self::load_dir(&resolve_encodec_dir(model)?, device)
    }

    /// Loads the model from a folder holding `config.json` and safetensors weights. Errors: a
    /// missing or invalid config, missing weights or weights of the wrong shape, naming the file.
    pub fn load_dir(dir: &Path, device: &Device) -> Result<Self> {
        let config = EncodecConfig::from_file(&dir.join("config.json"))?;
        let files = weight_files(dir)?;
        let checkpoint = Checkpoint::open(&files, device, "encoder.layers.0.conv.bias", &[""])?;
        Self::new(checkpoint.var_builder(), &config).map_err(|e| checkpoint.in_file(e))
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Frames for `samples` samples: `ceil(samples / hop_length)`.
    pub fn frames_for(&self, samples: usize) -> usize {
        samples.div_ceil(self.config.hop_length())
    }

    /// The continuous encoder output of audio [B, channels, samples] (after dividing each clip
    /// by its RMS when the config normalises): [B, hidden_size, ceil(samples / hop)].
    pub fn embeddings(&self, audio: &Tensor) -> Result<Tensor> {
        Ok(self.embeddings_and_scale(audio)?.0)
    }

    /// The frame features averaged over time, [B, hidden_size]: one vector per clip or window
    /// (the music route's SoundStream-avg stand-in).
    pub fn mean_embedding(&self, audio: &Tensor) -> Result<Tensor> {
        Ok(self.embeddings(audio)?.mean(2)?)
    }

    /// [`EncodecModel::embeddings`] and the scale [B, 1] (normalising configs only).
    pub fn embeddings_and_scale(&self, audio: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let audio = self.checked_audio(audio)?;
        let (audio, scale) = if self.config.normalize {
            let b = audio.dim(0)?;
            let mono = audio.mean_keepdim(1)?;
            let scale = (mono.sqr()?.mean_keepdim(2)?.sqrt()? + SCALE_EPS)?;
            (audio.broadcast_div(&scale)?, Some(scale.reshape((b, 1))?))
        } else {
            (audio, None)
        };
        Ok((self.encoder.forward(&audio)?, scale))
    }

    /// Codes of audio [B, channels, samples] at `bandwidth` kbps (one of `target_bandwidths`;
    /// None takes the first, as transformers does): [B, n_q, ceil(samples / hop)].
    pub fn encode(&self, audio: &Tensor, bandwidth: Option<f64>) -> Result<EncodecEncoding> {
        let bandwidth = bandwidth.unwrap_or(self.config.target_bandwidths[0]);
        let n_q = self.config.num_quantizers_for_bandwidth(bandwidth)?;
        let (embeddings, scale) = self.embeddings_and_scale(audio)?;
        Ok(EncodecEncoding {
            codes: self.quantizer.encode(&embeddings, n_q)?,
            scale,
        })
    }

    /// Audio [B, channels, frames · hop] of codes [B, n_q, frames] (u32 or i64), multiplied by
    /// `scale` [B, 1] when given. transformers' `decode` without a padding mask returns the
    /// same length; narrow it to the clip's length if needed.
    pub fn decode(&self, codes: &Tensor, scale: Option<&Tensor>) -> Result<Tensor> {
        let codes = codes.to_device(&self.device)?;
        let embeddings = self.quantizer.decode(&codes)?;
        let audio = self.decoder.forward(&embeddings)?;
        match scale {
            None => Ok(audio),
            Some(scale) => {
                let b = audio.dim(0)?;
                if scale.elem_count() != b {
                    return Err(ModelError::Invalid(format!(
                        "EnCodec decode: scale of shape {:?} for a batch of {b}, expected [{b}, 1]",
                        scale.dims()
                    )));
                }
                let scale = scale
                    .to_device(&self.device)?
                    .to_dtype(DType::F32)?
                    .reshape((b, 1, 1))?;
                Ok(audio.broadcast_mul(&scale)?)
            }
        }
    }

    /// `audio` as f32 on the model's device, after checking its shape and values.
    fn checked_audio(&self, audio: &Tensor) -> Result<Tensor> {
        let channels = self.config.audio_channels;
        let dims = audio.dims();
        let bad = |m: String| {
            Err(ModelError::Invalid(format!(
                "EnCodec input audio of shape {dims:?}: {m}"
            )))
        };
        let [_, c, samples] = dims else {
            return bad(format!("expected [batch, {channels} channel(s), samples]"));
        };
        if *c != channels {
            return bad(format!(
                "{c} channel(s), but this model takes {channels} (config field `audio_channels`)"
            ));
        }
        if *samples == 0 || dims[0] == 0 {
            return bad("no samples".into());
        }
        if !audio.dtype().is_float() {
            return bad(format!(
                "dtype {:?}, expected floating-point samples",
                audio.dtype()
            ));
        }
        let audio = audio.to_device(&self.device)?.to_dtype(DType::F32)?;
        let total = audio.abs()?.sum_all()?.to_scalar::<f32>()?;
        if !total.is_finite() {
            return bad("NaN or infinite samples".into());
        }
        Ok(audio)
    }
}

/// The folder holding an EnCodec checkpoint: a folder with `config.json`, a Hugging Face cache
/// snapshot, or a model id in that cache.
pub fn resolve_encodec_dir(model: &str) -> Result<PathBuf> {
    resolve_model_folder(model, "an EnCodec folder", "config.json model.safetensors")
}
