//! transformers' `ClapModel`: the RoBERTa text tower (`text_model`, with its pooler) and the
//! HTSAT audio tower (`audio_model.audio_encoder`), each with a projection head
//! (`text_projection`, `audio_projection`) into the joint space, and the two learned
//! temperatures `logit_scale_a`, `logit_scale_t` (stored as logarithms).
//!
//! `get_audio_features` / `get_text_features` return L2-normalised embeddings; the logits are
//! their cosine similarities times `exp(logit_scale_a)` (per audio) and `exp(logit_scale_t)`
//! (per text), as transformers computes them.

use std::path::{Path, PathBuf};

use brainrecon_language::checkpoint::{weight_files, Checkpoint};
use brainrecon_language::roberta::RobertaModel;
use brainrecon_nn::init::ParamInit;
use brainrecon_nn::layers;
use brainrecon_nn::weights::resolve_model_folder;
use brainrecon_nn::{ModelError, Result};
use candle_core::{Device, Tensor, D};
use candle_nn::VarBuilder;

use super::config::ClapConfig;
use super::htsat::ClapAudioEncoder;
use super::projection::ClapProjectionLayer;

/// What [`ClapModel::forward`] returns.
#[derive(Clone, Debug)]
pub struct ClapOutput {
    /// [B_audio, B_text]: `audio_embeds · text_embedsᵀ · exp(logit_scale_a)`.
    pub logits_per_audio: Tensor,
    /// [B_text, B_audio]: `text_embeds · audio_embedsᵀ · exp(logit_scale_t)`.
    pub logits_per_text: Tensor,
    /// [B_audio, P], unit length.
    pub audio_embeds: Tensor,
    /// [B_text, P], unit length.
    pub text_embeds: Tensor,
}

/// transformers' `ClapModel`.
#[derive(Clone, Debug)]
pub struct ClapModel {
    /// `text_model` (`ClapTextModel`, with its pooler).
    pub text_model: RobertaModel,
    /// `text_projection`: RoBERTa's pooled output → the joint space.
    pub text_projection: ClapProjectionLayer,
    /// `audio_model.audio_encoder`.
    pub audio_model: ClapAudioEncoder,
    /// `audio_projection`: HTSAT's pooled output → the joint space.
    pub audio_projection: ClapProjectionLayer,
    /// Scalar, the log of the audio temperature.
    pub logit_scale_a: Tensor,
    /// Scalar, the log of the text temperature.
    pub logit_scale_t: Tensor,
    /// The checkpoint's config.
    pub config: ClapConfig,
}

/// `x / max(‖x‖₂, 1e-12)` along the last axis (`F.normalize`).
fn normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.maximum(1e-12)?;
    Ok(x.broadcast_div(&norm)?)
}

impl ClapModel {
    /// Builds from a [`VarBuilder`] rooted at the model (names as `ClapModel.state_dict()`).
    pub fn new(vb: VarBuilder, c: &ClapConfig) -> Result<Self> {
        let text_model = RobertaModel::new(vb.pp("text_model"), &c.text_config, true)?;
        let audio_model =
            ClapAudioEncoder::new(vb.pp("audio_model").pp("audio_encoder"), &c.audio_config)?;
        let projection = |name: &str, hidden: usize| {
            ClapProjectionLayer::new(
                vb.pp(name),
                hidden,
                c.projection_dim,
                c.projection_activation,
            )
        };
        Ok(ClapModel {
            text_model,
            text_projection: projection("text_projection", c.text_config.hidden_size)?,
            audio_model,
            audio_projection: projection("audio_projection", c.audio_config.hidden_size)?,
            logit_scale_a: layers::weight(&vb, (), "logit_scale_a")?,
            logit_scale_t: layers::weight(&vb, (), "logit_scale_t")?,
            config: c.clone(),
        })
    }

    /// Loads a folder (`config.json`, `model.safetensors` or its shards) in f32 on `device`.
    pub fn load_dir(dir: &Path, device: &Device) -> Result<Self> {
        let config = ClapConfig::from_file(&dir.join("config.json"))?;
        let checkpoint = Checkpoint::open(&weight_files(dir)?, device, "logit_scale_a", &[""])?;
        Self::new(checkpoint.var_builder(), &config).map_err(|e| checkpoint.in_file(e))
    }

    /// Loads `model`: a folder or a hub id (`laion/clap-htsat-unfused`,
    /// `laion/larger_clap_music`) already in the Hugging Face cache.
    pub fn load(model: &str, device: &Device) -> Result<Self> {
        Self::load_dir(&resolve_model(model)?, device)
    }

    /// `get_text_features`: ids [B, L] (u32 or i64), mask [B, L] → unit embeddings [B, P].
    pub fn get_text_features(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let out = self.text_model.forward(input_ids, attention_mask)?;
        let pooled = out
            .pooler_output
            .ok_or_else(|| ModelError::Invalid("CLAP's text tower has no pooler".into()))?;
        normalize(&self.text_projection.forward(&pooled)?)
    }

    /// `get_audio_features`: mel features [B, C, T, F] from
    /// [`super::ClapFeatureExtractor`], `is_longer` per clip (read by the fused model) → unit
    /// embeddings [B, P].
    pub fn get_audio_features(
        &self,
        input_features: &Tensor,
        is_longer: &[bool],
    ) -> Result<Tensor> {
        let out = self.audio_model.forward(input_features, is_longer)?;
        normalize(&self.audio_projection.forward(&out.pooler_output)?)
    }

    /// The logits of unit embeddings: (per audio [Ba, Bt], per text [Bt, Ba]).
    pub fn logits(&self, audio_embeds: &Tensor, text_embeds: &Tensor) -> Result<(Tensor, Tensor)> {
        let sim = audio_embeds.matmul(&text_embeds.t()?)?;
        let per_audio = sim.broadcast_mul(&self.logit_scale_a.exp()?)?;
        let per_text = sim.t()?.broadcast_mul(&self.logit_scale_t.exp()?)?;
        Ok((per_audio, per_text))
    }

    /// `model(input_ids, input_features, is_longer, attention_mask)`.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        input_features: &Tensor,
        is_longer: &[bool],
    ) -> Result<ClapOutput> {
        let audio_embeds = self.get_audio_features(input_features, is_longer)?;
        let text_embeds = self.get_text_features(input_ids, attention_mask)?;
        let (logits_per_audio, logits_per_text) = self.logits(&audio_embeds, &text_embeds)?;
        Ok(ClapOutput {
            logits_per_audio,
            logits_per_text,
            audio_embeds,
            text_embeds,
        })
    }

    /// The initialisation to train a CLAP-architecture model from scratch with
    /// `brainrecon_nn::init::init_parameters_with`: PyTorch's defaults, but batch-norm
    /// variances at 1 and the temperatures at `log(logit_scale_init_value)` as transformers
    /// sets them (running statistics are constants to leave out of the optimiser).
    pub fn init_rule(config: &ClapConfig) -> impl Fn(&str, &[usize], ParamInit) -> ParamInit {
        let scale = config.logit_scale_init_value.ln();
        move |name: &str, _shape: &[usize], default: ParamInit| {
            if name.ends_with("running_var") {
                ParamInit::Constant(1.0)
            } else if name.ends_with("logit_scale_a") || name.ends_with("logit_scale_t") {
                ParamInit::Constant(scale)
            } else {
                default
            }
        }
    }
}

/// A folder or a hub id found in the Hugging Face cache (the project's own models are named
/// in the model zoo, `brainrecon_zoo`, which resolves them before this).
pub fn resolve_model(model: &str) -> Result<PathBuf> {
    resolve_model_folder(
        model,
        "a CLAP folder",
        "config.json model.safetensors preprocessor_config.json tokenizer.json",
    )
}
