//! BLIP's captioner as transformers' `BlipForConditionalGeneration` computes it: the image tower
//! ([`vision`], `vision_model.*`) and the BERT text decoder with cross-attention ([`text`],
//! `text_decoder.*`), loaded from a folder in transformers' layout or the Hugging Face cache;
//! [`session::CaptionSession`] runs the decoder for [`crate::generate`].
//!
//! Every module is built from elementary candle ops and the project's layers, whose softmax,
//! layer norm and activations have backward passes, so the whole model can be trained
//! ([`BlipForConditionalGeneration::load_trainable`], [`lm_loss`]); without gradients, the
//! layers take their fast inference kernels.
//!
//! Versions: transformers 4.35 and 5.x compute the same captioner. They differ in details that
//! do not change the outputs here: the additive value of masked attention positions (−10000 in
//! 4.x, the dtype's minimum in 5.x; both vanish in the softmax), and tying: 5.x saves no
//! `cls.predictions.decoder.weight` and ties a missing one to the word embeddings, uses a
//! stored one when present (we do the same), while 4.35 initialises a missing one at random.
//! Only 5.x has `interpolate_pos_encoding`; it calls the same bicubic resize as Salesforce's
//! `interpolate_pos_embed`.
//!
//! Checkpoints: the hub's `Salesforce/blip-image-captioning-base` was converted at 384 px, its
//! position table already resized from the 224-px pretraining grid (14×14 → 24×24); fed 240-px
//! images it is resized again (24×24 → 15×15), which is not what the published caption route
//! ran (14×14 → 15×15 from `model_base_capfilt_large.pth`, see `tools/convert_blip.py
//! --image-size 240`). Its config also keeps transformers' ViT LayerNorm eps 1e-5, where
//! Salesforce's ViT uses 1e-6.

pub mod config;
pub mod interpolate;
pub mod session;
pub mod text;
pub mod vision;

use std::path::{Path, PathBuf};

use brainrecon_nn::weights::{
    cached_snapshot, component_files, hub_cache_dir, looks_like_model_id, Overlay, Weights,
};
use brainrecon_nn::{ModelError, Result};
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::VarBuilder;

pub use config::{blip_vision_defaults, Activation, BlipConfig, BlipTextConfig, BlipVisionConfig};
pub use interpolate::interpolate_position_table;
pub use session::CaptionSession;
pub use text::{
    AttentionMode, BlipTextLMHeadModel, BlipTextModel, DecoderWeight, TextInputs, TextKvCache,
    TextOutput,
};
pub use vision::{BlipVisionModel, BlipVisionOutput};

/// transformers' `BlipForConditionalGeneration`.
#[derive(Clone, Debug)]
pub struct BlipForConditionalGeneration {
    /// `vision_model`: the image tower.
    pub vision_model: BlipVisionModel,
    /// `text_decoder`: the BERT decoder with its language-model head.
    pub text_decoder: BlipTextLMHeadModel,
    /// The model's config.
    pub config: BlipConfig,
}

impl BlipForConditionalGeneration {
    /// Builds from any [`VarBuilder`] rooted at the checkpoint (a file store, seeded trainable
    /// parameters...); the head is tied to the word embeddings when the text config says so.
    pub fn new(vb: VarBuilder, config: &BlipConfig) -> Result<Self> {
        let tie = if config.text_config.tie_word_embeddings {
            DecoderWeight::Tied
        } else {
            DecoderWeight::Own
        };
        Self::with_decoder_weight(vb, config, tie)
    }

    /// Builds from a [`VarBuilder`] rooted at the checkpoint with the head's weight as
    /// `decoder_weight` says; errors on a tensor `vb` lacks or misshapes.
    pub fn with_decoder_weight(
        vb: VarBuilder,
        config: &BlipConfig,
        decoder_weight: DecoderWeight,
    ) -> Result<Self> {
        Ok(BlipForConditionalGeneration {
            vision_model: BlipVisionModel::new(vb.pp("vision_model"), &config.vision_config)?,
            text_decoder: BlipTextLMHeadModel::with_decoder_weight(
                vb.pp("text_decoder"),
                &config.text_config,
                decoder_weight,
            )?,
            config: config.clone(),
        })
    }

    /// Builds from stored tensors with transformers 5's tying rule: the checkpoint's own
    /// `text_decoder.cls.predictions.decoder.weight` when it has one, else the word embeddings
    /// (an error when `tie_word_embeddings` is false). Errors name the file.
    pub fn from_weights(weights: &Weights, config: &BlipConfig) -> Result<Self> {
        let decoder_weight = decoder_weight_of(|n| weights.contains(n), config);
        Self::with_decoder_weight(weights.var_builder(), config, decoder_weight)
            .map_err(|e| e.in_file(weights.path()))
    }

    /// Loads a checkpoint in f32 from `model`: a folder with `config.json` and
    /// `model.safetensors` (or a sharded index), a Hugging Face cache snapshot, or a model id
    /// in that cache (`Salesforce/blip-image-captioning-base`). Nothing is downloaded.
    pub fn load(model: &str, device: &Device) -> Result<Self> {
        Self::load_dir(&resolve_blip_dir(model)?, device)
    }

    /// Loads a folder (see [`BlipForConditionalGeneration::load`]).
    pub fn load_dir(dir: &Path, device: &Device) -> Result<Self> {
        let (config, weights) = open_dir(dir, device)?;
        Self::from_weights(&weights, &config)
    }

    /// Loads a folder with the tensors whose name satisfies `trainable` as [`Var`]s (f32), so
    /// that gradients reach them; returns the model and the variables by name.
    pub fn load_trainable(
        dir: &Path,
        trainable: impl Fn(&str) -> bool,
        device: &Device,
    ) -> Result<(Self, Vec<(String, Var)>)> {
        let (config, weights) = open_dir(dir, device)?;
        let decoder_weight = decoder_weight_of(|n| weights.contains(n), &config);
        let (overlay, vars) = Overlay::trainable(&weights, trainable, DType::F32)?;
        let model = Self::with_decoder_weight(overlay.var_builder(), &config, decoder_weight)
            .map_err(|e| e.in_file(weights.path()))?;
        Ok((model, vars))
    }

    /// The image features the decoder cross-attends to: `vision_model(pixel_values)
    /// .last_hidden_state`, [B, 1 + patches, d].
    pub fn image_embeds(&self, pixel_values: &Tensor) -> Result<Tensor> {
        self.vision_model.forward(pixel_values)
    }

    /// `model(pixel_values, input_ids)`: the decoder's logits [B, L, V] over the image features
    /// (causal self-attention, every image token attended).
    pub fn forward(&self, pixel_values: &Tensor, input_ids: &Tensor) -> Result<Tensor> {
        let image_embeds = self.image_embeds(pixel_values)?;
        let inputs = TextInputs {
            encoder_hidden_states: Some(&image_embeds),
            ..Default::default()
        };
        Ok(self.text_decoder.forward(input_ids, &inputs)?.logits)
    }

    /// A decoding session over encoder states [N, Lenc, d] (image features or decoded brain
    /// features), for [`crate::generate`].
    pub fn caption_session(&self, encoder_hidden_states: &Tensor) -> Result<CaptionSession<'_>> {
        CaptionSession::new(&self.text_decoder, encoder_hidden_states)
    }
}

/// transformers 5's rule: the checkpoint's `decoder.weight` when present, else tied.
fn decoder_weight_of(contains: impl Fn(&str) -> bool, config: &BlipConfig) -> DecoderWeight {
    if contains("text_decoder.cls.predictions.decoder.weight")
        || !config.text_config.tie_word_embeddings
    {
        DecoderWeight::Own
    } else {
        DecoderWeight::Tied
    }
}

/// `config.json` (checked to be a BLIP captioner) and the safetensors of a folder.
fn open_dir(dir: &Path, device: &Device) -> Result<(BlipConfig, Weights)> {
    let config_path = dir.join("config.json");
    let config = BlipConfig::from_file(&config_path)?;
    config.check_captioning(&config_path)?;
    let files = weight_files(dir)?;
    let weights = Weights::from_files(&files, DType::F32, device)?;
    if !weights.contains("text_decoder.bert.embeddings.word_embeddings.weight") {
        return Err(ModelError::MissingTensor {
            path: weights.path(),
            name: "text_decoder.bert.embeddings.word_embeddings.weight (a \
                   BlipForConditionalGeneration checkpoint has text_decoder.* and \
                   vision_model.* tensors)"
                .into(),
        });
    }
    Ok((config, weights))
}

/// `model.safetensors`, or the shards of `model.safetensors.index.json`.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if dir.join("model.safetensors").is_file() || dir.join("model.safetensors.index.json").is_file()
    {
        return component_files(dir, false);
    }
    for pickle in ["pytorch_model.bin", "model_base_capfilt_large.pth"] {
        if dir.join(pickle).is_file() {
            return Err(ModelError::Pickle {
                path: dir.join(pickle),
            });
        }
    }
    Err(ModelError::MissingFile {
        path: dir.join("model.safetensors"),
        what: "BLIP weights: model.safetensors or model.safetensors.index.json (Salesforce's \
               .pth checkpoints convert with tools/convert_blip.py)"
            .into(),
    })
}

/// The folder of a BLIP checkpoint from `model`: a folder, a cache snapshot, or a model id in
/// the Hugging Face cache (`$HF_HUB_CACHE`, `$HF_HOME/hub` or `~/.cache/huggingface/hub`).
pub fn resolve_blip_dir(model: &str) -> Result<PathBuf> {
    let path = Path::new(model);
    if path.is_dir() {
        if !path.join("config.json").is_file() {
            return Err(ModelError::MissingFile {
                path: path.join("config.json"),
                what: "a BLIP checkpoint folder has config.json and model.safetensors".into(),
            });
        }
        return Ok(path.to_path_buf());
    }
    if looks_like_model_id(model) {
        let hub = hub_cache_dir();
        return match cached_snapshot(&hub, model)? {
            Some(dir) => Ok(dir),
            None => Err(ModelError::ModelNotFound {
                model: model.to_string(),
                message: format!(
                    "not a folder, and not in the Hugging Face cache ({}; set HF_HOME or \
                     HF_HUB_CACHE to use another). Nothing is downloaded: run \
                     `huggingface-cli download {model} config.json model.safetensors \
                     tokenizer.json tokenizer_config.json vocab.txt` on a machine with network \
                     (then copy the cache), or pass a folder",
                    hub.join(format!("models--{}", model.replace('/', "--")))
                        .display()
                ),
            }),
        };
    }
    Err(ModelError::ModelNotFound {
        model: model.to_string(),
        message: "no such folder, and not a model id of the form ORG/NAME".into(),
    })
}

/// `log_softmax` over the last dimension from elementary ops (differentiable).
fn log_softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    let log_sum = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(shifted.broadcast_sub(&log_sum)?)
}

/// The captioning loss of `BlipTextLMHeadModel(labels=…, reduction="mean")`: the logits of
/// positions `0 … L−2` [B, L, V] against labels `1 … L−1` [B, L] (i64; −100 = ignored, e.g.
/// padding and the prompt), cross-entropy with `label_smoothing` (Salesforce trains with 0.1,
/// transformers' config default is 0), averaged over the counted tokens. Differentiable.
pub fn lm_loss(logits: &Tensor, labels: &Tensor, label_smoothing: f64) -> Result<Tensor> {
    let (b, l, v) = logits.dims3()?;
    if labels.dims() != [b, l] || l < 2 {
        return Err(ModelError::Invalid(format!(
            "labels have shape {:?}, logits {:?}: expected labels [B, L] with L ≥ 2",
            labels.dims(),
            logits.dims()
        )));
    }
    let targets: Vec<i64> = labels
        .narrow(1, 1, l - 1)?
        .to_dtype(DType::I64)?
        .flatten_all()?
        .to_vec1()?;
    if let Some(bad) = targets
        .iter()
        .find(|&&t| t != -100 && !(0..v as i64).contains(&t))
    {
        return Err(ModelError::Invalid(format!(
            "label {bad} is outside the vocabulary (vocab_size {v}) and is not -100"
        )));
    }
    let counted: Vec<f32> = targets.iter().map(|&t| (t != -100) as u8 as f32).collect();
    let n = counted.iter().sum::<f32>();
    if n == 0.0 {
        return Err(ModelError::Invalid(
            "every label is -100: nothing to learn".into(),
        ));
    }
    let device = logits.device();
    let rows = b * (l - 1);
    let index: Vec<u32> = targets.iter().map(|&t| t.max(0) as u32).collect();
    let index = Tensor::from_vec(index, (rows, 1), device)?;
    let weight = Tensor::from_vec(counted, rows, device)?;
    let logp = log_softmax_last_dim(
        &logits
            .narrow(1, 0, l - 1)?
            .to_dtype(DType::F32)?
            .reshape((rows, v))?,
    )?;
    let nll = logp.gather(&index, 1)?.reshape(rows)?.neg()?;
    let per_token = if label_smoothing > 0.0 {
        let uniform = (logp.mean(1)?.neg()? * label_smoothing)?;
        ((nll * (1.0 - label_smoothing))? + uniform)?
    } else {
        nll
    };
    Ok(((per_token * weight)?.sum_all()? / n as f64)?)
}
