//! Language-model features of text annotations (one line of text per second of a movie, as in
//! voxelwise encoding of naturalistic fMRI): [`TextModel`] runs GPT-2, BERT or Llama as
//! transformers does and returns every hidden state; [`annotation_features`] tokenizes each
//! annotation, runs the model and mean-pools the token states of each requested layer.
//!
//! **Pooling.** Each annotation's feature is the mean of its token states over the tokens the
//! model receives (its attention mask), special tokens included — the common mean-pooling
//! recipe (sentence-transformers' `MeanPooling`). So GPT-2 pools the text's tokens only (its
//! tokenizer adds none), Llama also pools its BOS token (Llama's tokenizer adds it and the model
//! was trained to see it; without it the first token's states are out of distribution), BERT
//! pools `[CLS]` and `[SEP]`. [`PoolTokens::TextOnly`] leaves out the tokens the
//! tokenizer added (the BOS state of large Llama models is known to be far larger than the
//! others and may dominate a mean). Layer 0 is the embedding output; layer `n` the model's
//! last hidden state (after GPT-2's `ln_f`, after Llama's final `norm`), as transformers'
//! `output_hidden_states=True` returns them.
//!
//! **Empty annotations** (no characters other than whitespace — seconds without speech or
//! description) get all-zero features and are not run through the model.
//!
//! **Long annotations** are truncated to the model's positions (`n_positions` for GPT-2,
//! `max_position_embeddings` for BERT and Llama) as `tokenizer(text, truncation=True,
//! max_length=…)` truncates (BERT keeps its `[SEP]`); [`AnnotationFeatures::truncated`] lists
//! them so that callers can warn.
//!
//! **Batching.** Annotations are sorted by token count and run in batches of similar length,
//! right-padded, with an attention mask; every position counts from 0 in every row, so a padded
//! batch gives each annotation the states it gets alone (up to float rounding).

use std::path::{Path, PathBuf};

use brainrecon_nn::weights::resolve_model_folder;
use brainrecon_nn::{ModelError, Result};
use candle_core::{DType, Device, Tensor};
use serde_json::Value;

use crate::bert::{BertConfig, BertModel};
use crate::checkpoint::read_config;
use crate::gpt2::{Gpt2Config, Gpt2Model};
use crate::llama::{LlamaConfig, LlamaModel};
use crate::text_tokenizer::{EncodedText, TextTokenizer};

/// The model families [`TextModel`] runs, by `config.json`'s `model_type`.
pub const SUPPORTED_MODEL_TYPES: [&str; 3] = ["gpt2", "bert", "llama"];

/// A text model of one of the supported families, chosen by `config.json`'s `model_type`.
#[derive(Clone, Debug)]
pub enum TextModel {
    /// `model_type` `gpt2`.
    Gpt2(Gpt2Model),
    /// `model_type` `bert`.
    Bert(BertModel),
    /// `model_type` `llama`.
    Llama(LlamaModel),
}

impl TextModel {
    /// Loads a folder with `config.json` and `model.safetensors` (or a sharded
    /// `model.safetensors.index.json`), in f32 on `device` (bf16/f16 checkpoints converted).
    pub fn load_dir(dir: &Path, device: &Device) -> Result<Self> {
        let config_path = dir.join("config.json");
        let value = read_config(&config_path)?;
        Ok(match model_type(&value, &config_path)? {
            "gpt2" => {
                let config = Gpt2Config::from_value(&value, &config_path)?;
                TextModel::Gpt2(Gpt2Model::load_with_config(dir, &config, device)?)
            }
            "bert" => {
                let config = BertConfig::from_value(&value, &config_path)?;
                TextModel::Bert(BertModel::load_with_config(dir, &config, device)?)
            }
            _ => {
                let config = LlamaConfig::from_value(&value, &config_path)?;
                TextModel::Llama(LlamaModel::load_with_config(dir, &config, device)?)
            }
        })
    }

    /// `config.json`'s `model_type`.
    pub fn model_type(&self) -> &'static str {
        match self {
            TextModel::Gpt2(_) => "gpt2",
            TextModel::Bert(_) => "bert",
            TextModel::Llama(_) => "llama",
        }
    }

    /// Every hidden state, `num_hidden_states()` tensors [B, L, d], as transformers'
    /// `output_hidden_states=True` returns them (see the family's `forward`). `input_ids`
    /// [B, L] (u32 or i64); `attention_mask` [B, L] (1 = token, 0 = padding, padding on the
    /// right; None: all tokens).
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<Vec<Tensor>> {
        match self {
            TextModel::Gpt2(m) => m.forward(input_ids, attention_mask),
            TextModel::Bert(m) => m.forward(input_ids, attention_mask),
            TextModel::Llama(m) => m.forward(input_ids, attention_mask),
        }
    }

    /// Layers + 1 (the embedding output is layer 0).
    pub fn num_hidden_states(&self) -> usize {
        1 + match self {
            TextModel::Gpt2(m) => m.config.n_layer,
            TextModel::Bert(m) => m.config.num_hidden_layers,
            TextModel::Llama(m) => m.config.num_hidden_layers,
        }
    }

    /// The width of every hidden state.
    pub fn hidden_size(&self) -> usize {
        match self {
            TextModel::Gpt2(m) => m.config.n_embd,
            TextModel::Bert(m) => m.config.hidden_size,
            TextModel::Llama(m) => m.config.hidden_size,
        }
    }

    /// The longest input in tokens: the position table's rows, or Llama's
    /// `max_position_embeddings`.
    pub fn max_positions(&self) -> usize {
        match self {
            TextModel::Gpt2(m) => m.config.n_positions,
            TextModel::Bert(m) => m.config.max_position_embeddings,
            TextModel::Llama(m) => m.config.max_position_embeddings,
        }
    }

    /// The vocabulary size: rows of the token embedding table.
    pub fn vocab_size(&self) -> usize {
        match self {
            TextModel::Gpt2(m) => m.config.vocab_size,
            TextModel::Bert(m) => m.config.vocab_size,
            TextModel::Llama(m) => m.config.vocab_size,
        }
    }

    fn device(&self) -> &Device {
        match self {
            TextModel::Gpt2(m) => m.wte.device(),
            TextModel::Bert(m) => m.embeddings.word_embeddings.device(),
            TextModel::Llama(m) => m.embed_tokens.device(),
        }
    }
}

/// `config.json`'s `model_type`, checked to be supported.
fn model_type<'a>(value: &'a Value, path: &Path) -> Result<&'a str> {
    let bad = |message: String| ModelError::Config {
        path: path.to_path_buf(),
        what: "model config".into(),
        message,
    };
    match value.get("model_type") {
        None | Some(Value::Null) => Err(bad(format!(
            "field `model_type` is missing (expected one of {SUPPORTED_MODEL_TYPES:?})"
        ))),
        Some(Value::String(t)) if SUPPORTED_MODEL_TYPES.contains(&t.as_str()) => Ok(t),
        Some(other) => Err(bad(format!(
            "field `model_type` is {other}; supported: {SUPPORTED_MODEL_TYPES:?}"
        ))),
    }
}

/// The folder of a text model from `name_or_dir`: a folder, or a model id (`ORG/NAME`) in the
/// Hugging Face cache (`$HF_HUB_CACHE`, `$HF_HOME/hub` or `~/.cache/huggingface/hub`; the
/// snapshot `refs/main` names). Nothing is downloaded.
pub fn resolve_text_model_dir(name_or_dir: &str) -> Result<PathBuf> {
    resolve_model_folder(
        name_or_dir,
        "a model folder",
        "config.json model.safetensors tokenizer.json tokenizer_config.json",
    )
}

/// Loads a text model and its tokenizer from a folder or a model id in the Hugging Face cache
/// (see [`resolve_text_model_dir`]).
pub fn load_text_model(name_or_dir: &str, device: &Device) -> Result<(TextModel, TextTokenizer)> {
    let dir = resolve_text_model_dir(name_or_dir)?;
    let model = TextModel::load_dir(&dir, device)?;
    let tokenizer = TextTokenizer::from_dir(&dir, model.model_type())?;
    Ok((model, tokenizer))
}

/// Which tokens an annotation's mean covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PoolTokens {
    /// Every token the model receives, the tokenizer's special tokens included (default).
    #[default]
    All,
    /// Only the text's tokens (BOS, `[CLS]`, `[SEP]` left out).
    TextOnly,
}

/// Options of [`annotation_features_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeatureOptions {
    /// Which tokens each annotation's mean covers.
    pub pool: PoolTokens,
    /// The most tokens (rows × padded length) per forward pass (default 2048: every hidden
    /// state of the batch is held at once, 23 × 2048 × 2048 f32 for TinyLlama).
    pub batch_tokens: usize,
    /// The most annotations per forward pass.
    pub batch_size: usize,
}

impl Default for FeatureOptions {
    fn default() -> Self {
        FeatureOptions {
            pool: PoolTokens::All,
            batch_tokens: 2048,
            batch_size: 64,
        }
    }
}

/// Mean-pooled features of annotations.
#[derive(Clone, Debug)]
pub struct AnnotationFeatures {
    /// The hidden-state indices, in the order asked for (0 = embeddings).
    pub layers: Vec<usize>,
    /// Per layer, [texts, hidden] f32 on the CPU.
    pub features: Vec<Tensor>,
    /// The annotations cut to the model's positions (indices into the texts).
    pub truncated: Vec<usize>,
    /// The annotations without non-whitespace characters (their features are zeros).
    pub empty: Vec<usize>,
}

/// Every hidden-state index of `model` (`--layer all`).
pub fn all_layers(model: &TextModel) -> Vec<usize> {
    (0..model.num_hidden_states()).collect()
}

/// [`annotation_features_with`] with the default options (every token pooled).
pub fn annotation_features(
    model: &TextModel,
    tokenizer: &TextTokenizer,
    texts: &[String],
    layers: &[usize],
) -> Result<AnnotationFeatures> {
    annotation_features_with(model, tokenizer, texts, layers, FeatureOptions::default())
}

/// Per requested layer, each text's mean token state, [texts, hidden] (see the module docs).
pub fn annotation_features_with(
    model: &TextModel,
    tokenizer: &TextTokenizer,
    texts: &[String],
    layers: &[usize],
    options: FeatureOptions,
) -> Result<AnnotationFeatures> {
    let n_states = model.num_hidden_states();
    if let Some(bad) = layers.iter().find(|&&l| l >= n_states) {
        return Err(ModelError::Invalid(format!(
            "layer {bad} does not exist: the {} model has hidden states 0..={} (0 = embeddings)",
            model.model_type(),
            n_states - 1
        )));
    }
    if options.batch_tokens == 0 || options.batch_size == 0 {
        return Err(ModelError::Invalid(
            "batch_tokens and batch_size must be positive".into(),
        ));
    }
    let truncating = tokenizer.truncating(model.max_positions())?;
    let mut encoded = Vec::with_capacity(texts.len());
    let (mut truncated, mut empty) = (Vec::new(), Vec::new());
    for (i, text) in texts.iter().enumerate() {
        let e = if text.trim().is_empty() {
            None
        } else {
            Some(tokenizer.encode_with(&truncating, text)?)
        };
        match &e {
            Some(e) if e.truncated => truncated.push(i),
            Some(e) if e.ids.is_empty() => empty.push(i),
            None => empty.push(i),
            _ => {}
        }
        encoded.push(e.filter(|e| !e.ids.is_empty()));
    }
    let d = model.hidden_size();
    let mut out = vec![vec![0f32; texts.len() * d]; layers.len()];
    for batch in batches(&encoded, options) {
        let pooled = pool_batch(model, &batch, &encoded, layers, options.pool)?;
        for (slot, rows) in out.iter_mut().zip(&pooled) {
            for (&text, row) in batch.iter().zip(rows.chunks(d)) {
                slot[text * d..(text + 1) * d].copy_from_slice(row);
            }
        }
    }
    let features = out
        .into_iter()
        .map(|v| Ok(Tensor::from_vec(v, (texts.len(), d), &Device::Cpu)?))
        .collect::<Result<Vec<_>>>()?;
    Ok(AnnotationFeatures {
        layers: layers.to_vec(),
        features,
        truncated,
        empty,
    })
}

/// Groups the encoded texts (by index) into batches of similar length, shortest first.
fn batches(encoded: &[Option<EncodedText>], options: FeatureOptions) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..encoded.len())
        .filter(|&i| encoded[i].is_some())
        .collect();
    let len = |i: usize| encoded[i].as_ref().map_or(0, |e| e.ids.len());
    order.sort_by_key(|&i| len(i));
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for i in order {
        // sorted ascending, so this text sets the padded length
        let rows = current.len() + 1;
        if !current.is_empty()
            && (rows > options.batch_size || rows * len(i) > options.batch_tokens)
        {
            out.push(std::mem::take(&mut current));
        }
        current.push(i);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Runs one right-padded batch; per layer, the pooled rows [batch · d] in batch order.
fn pool_batch(
    model: &TextModel,
    batch: &[usize],
    encoded: &[Option<EncodedText>],
    layers: &[usize],
    pool: PoolTokens,
) -> Result<Vec<Vec<f32>>> {
    let rows: Vec<&EncodedText> = batch
        .iter()
        .map(|&i| encoded[i].as_ref().expect("batched texts are encoded"))
        .collect();
    let l = rows.iter().map(|e| e.ids.len()).max().unwrap_or(0);
    let b = rows.len();
    let (mut ids, mut mask, mut weights) =
        (vec![0u32; b * l], vec![0f32; b * l], vec![0f32; b * l]);
    for (r, e) in rows.iter().enumerate() {
        ids[r * l..r * l + e.ids.len()].copy_from_slice(&e.ids);
        let pooled: Vec<bool> = match pool {
            PoolTokens::All => vec![true; e.ids.len()],
            PoolTokens::TextOnly => e.special.iter().map(|&s| s == 0).collect(),
        };
        let count = pooled.iter().filter(|&&p| p).count();
        for (t, &p) in pooled.iter().enumerate() {
            mask[r * l + t] = 1.0;
            if p {
                weights[r * l + t] = 1.0 / count as f32;
            }
        }
    }
    let device = model.device();
    let ids = Tensor::from_vec(ids, (b, l), device)?;
    let mask = Tensor::from_vec(mask, (b, l), device)?;
    let weights = Tensor::from_vec(weights, (b, l, 1), device)?;
    let states = model.forward(&ids, Some(&mask))?;
    layers
        .iter()
        .map(|&layer| {
            // Σ_t w_t h_t: padding (and unpooled tokens) weigh 0
            let pooled = states[layer].broadcast_mul(&weights)?.sum(1)?;
            Ok(pooled
                .to_dtype(DType::F32)?
                .to_device(&Device::Cpu)?
                .flatten_all()?
                .to_vec1::<f32>()?)
        })
        .collect()
}
