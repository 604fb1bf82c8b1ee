//! What the transformers text models ([`crate::gpt2`], [`crate::bert`], [`crate::llama`]) share:
//! reading `config.json` fields with errors naming the file and the field ([`ConfigFields`]);
//! opening a checkpoint folder's tensors under the prefix a task model stores them with
//! (`bert.` for `BertForMaskedLM`, `model.` for `LlamaForCausalLM`, `transformer.` for
//! `GPT2LMHeadModel`) and with transformers' legacy LayerNorm names (`gamma`/`beta`), as
//! transformers 5 renames them on load ([`Checkpoint`]); the additive attention mask of a
//! right-padded, optionally causal batch ([`attention_bias`]); token-id checks.

use std::path::{Path, PathBuf};

use brainrecon_nn::layers;
use brainrecon_nn::weights::{component_files, read_json, Weights};
use brainrecon_nn::{ModelError, Result};
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use serde_json::{Map, Value};

/// The fields of one `config.json`, read by name; errors name the file and the field.
pub struct ConfigFields<'a> {
    path: &'a Path,
    what: &'static str,
    object: &'a Map<String, Value>,
    /// `"rope_parameters."` for a nested object's fields, for messages.
    prefix: String,
}

impl<'a> ConfigFields<'a> {
    /// `value` must be a JSON object; `what` names the config in messages ("GPT-2 config").
    pub fn new(value: &'a Value, path: &'a Path, what: &'static str) -> Result<Self> {
        let object = value.as_object().ok_or_else(|| ModelError::Config {
            path: path.to_path_buf(),
            what: what.into(),
            message: "expected a JSON object".into(),
        })?;
        Ok(ConfigFields {
            path,
            what,
            object,
            prefix: String::new(),
        })
    }

    /// The fields of the nested object `key` (None when absent, null or empty); its errors
    /// name `key.field`.
    pub fn nested(&self, key: &'static str) -> Result<Option<ConfigFields<'a>>> {
        Ok(self.object(key)?.map(|object| ConfigFields {
            path: self.path,
            what: self.what,
            object,
            prefix: format!("{}{key}.", self.prefix),
        }))
    }

    /// `key` as messages name it (with the nesting).
    pub fn name(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// A [`ModelError::Config`] naming this config's file with `message`.
    pub fn error(&self, message: String) -> ModelError {
        ModelError::Config {
            path: self.path.to_path_buf(),
            what: self.what.into(),
            message,
        }
    }

    /// The first of `keys` present with a non-null value (transformers' aliases, e.g. GPT-2's
    /// `n_embd` for `hidden_size`).
    pub fn find(&self, keys: &[&'static str]) -> Option<(&'static str, &'a Value)> {
        keys.iter().find_map(|&k| match self.object.get(k) {
            None | Some(Value::Null) => None,
            Some(v) => Some((k, v)),
        })
    }

    fn as_usize(&self, key: &str, v: &Value) -> Result<usize> {
        let n = v.as_u64().ok_or_else(|| {
            self.error(format!(
                "field `{}` is {v}, expected a whole number",
                self.name(key)
            ))
        })?;
        // Hostile configs: no field may overflow index arithmetic or size a huge buffer.
        let max = size_cap(key);
        if n > max as u64 {
            return Err(self.error(format!(
                "{}: expected an integer in 0..={max}, found {n}",
                self.name(key)
            )));
        }
        Ok(n as usize)
    }

    /// A required whole number, positive. `meaning` explains the field in the error.
    pub fn usize(&self, keys: &[&'static str], meaning: &str) -> Result<usize> {
        let (key, v) = self.find(keys).ok_or_else(|| {
            self.error(format!(
                "field `{}` is missing ({meaning})",
                self.name(keys[0])
            ))
        })?;
        let n = self.as_usize(key, v)?;
        if n == 0 {
            return Err(self.error(format!(
                "field `{}` is 0, expected a positive number",
                self.name(key)
            )));
        }
        Ok(n)
    }

    /// An optional whole number.
    pub fn opt_usize(&self, keys: &[&'static str]) -> Result<Option<usize>> {
        self.find(keys)
            .map(|(key, v)| self.as_usize(key, v))
            .transpose()
    }

    /// A number (`keys` tried in order), `default` when absent; epsilons must lie in (0, 1], rotary
    /// bases and factors must be positive.
    pub fn f64_or(&self, keys: &[&'static str], default: f64) -> Result<f64> {
        match self.find(keys) {
            None => Ok(default),
            Some((key, v)) => {
                let x = v.as_f64().ok_or_else(|| {
                    self.error(format!(
                        "field `{}` is {v}, expected a number",
                        self.name(key)
                    ))
                })?;
                self.check_float(key, x)?;
                Ok(x)
            }
        }
    }

    /// Epsilons in (0, 1] and rotary bases/factors positive: other values give NaN outputs.
    fn check_float(&self, key: &str, x: f64) -> Result<()> {
        let name = self.name(key);
        let checked = if key.contains("eps") {
            brainrecon_nn::config_bounds::epsilon(&name, x)
        } else if key.contains("theta") || key.ends_with("factor") {
            match x.is_finite() && x > 0.0 {
                true => Ok(()),
                false => Err(format!(
                    "{name}: expected a finite positive number, found {x}"
                )),
            }
        } else {
            Ok(())
        };
        checked.map_err(|m| self.error(m))
    }

    /// A boolean, `default` when absent.
    pub fn bool_or(&self, key: &'static str, default: bool) -> Result<bool> {
        match self.find(&[key]) {
            None => Ok(default),
            Some((_, Value::Bool(b))) => Ok(*b),
            Some((_, v)) => Err(self.error(format!(
                "field `{}` is {v}, expected true or false",
                self.name(key)
            ))),
        }
    }

    /// A string (`keys` tried in order), `default` when absent.
    pub fn string_or(&self, keys: &[&'static str], default: &str) -> Result<String> {
        match self.find(keys) {
            None => Ok(default.to_string()),
            Some((_, Value::String(s))) => Ok(s.clone()),
            Some((key, v)) => Err(self.error(format!(
                "field `{}` is {v}, expected a string",
                self.name(key)
            ))),
        }
    }

    /// A nested object (None when absent, null or empty).
    pub fn object(&self, key: &'static str) -> Result<Option<&'a Map<String, Value>>> {
        match self.find(&[key]) {
            None => Ok(None),
            Some((_, Value::Object(o))) if o.is_empty() => Ok(None),
            Some((_, Value::Object(o))) => Ok(Some(o)),
            Some((_, v)) => Err(self.error(format!(
                "field `{}` is {v}, expected an object",
                self.name(key)
            ))),
        }
    }
}

/// The largest value a whole-number config field may take, by its name (the bounds of
/// [`brainrecon_nn::config_bounds`]): layers and heads `MAX_LAYERS`, kernels `MAX_KERNEL`,
/// widths `MAX_CHANNELS`, feed-forward widths `MAX_FFN`, positions `MAX_POSITIONS`, anything
/// else (vocabularies, token ids, buckets) `MAX_VOCAB`.
pub fn size_cap(key: &str) -> usize {
    use brainrecon_nn::config_bounds;
    let has = |parts: &[&str]| parts.iter().any(|p| key.contains(p));
    if has(&["vocab", "token_id", "bucket"]) {
        config_bounds::MAX_VOCAB
    } else if has(&["layer", "head", "n_block", "num_codebooks", "quantizers"]) {
        config_bounds::MAX_LAYERS
    } else if has(&["kernel", "stride", "compress", "dilation"]) {
        config_bounds::MAX_KERNEL
    } else if has(&["intermediate", "inner", "ffn", "d_ff", "mlp"]) {
        config_bounds::MAX_FFN
    } else if has(&["position", "n_ctx", "max_length", "seq", "context"]) {
        config_bounds::MAX_POSITIONS
    } else if has(&[
        "hidden", "embd", "d_model", "d_kv", "dim", "channels", "filters", "size",
    ]) {
        config_bounds::MAX_CHANNELS
    } else {
        config_bounds::MAX_VOCAB
    }
}

/// Checks `hidden % heads == 0` (transformers refuses other configs too).
#[allow(clippy::manual_is_multiple_of)] // `is_multiple_of` needs Rust 1.87; the workspace supports 1.85
pub fn check_divisible(
    fields: &ConfigFields,
    (hidden_key, hidden): (&str, usize),
    (heads_key, heads): (&str, usize),
) -> Result<()> {
    if hidden % heads != 0 {
        return Err(fields.error(format!(
            "`{hidden_key}` {hidden} is not divisible by `{heads_key}` {heads}"
        )));
    }
    Ok(())
}

/// The safetensors files of a model folder: `model.safetensors` or the shards of
/// `model.safetensors.index.json`. Pickle checkpoints are refused with the file named.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if dir.join("model.safetensors").is_file() || dir.join("model.safetensors.index.json").is_file()
    {
        return component_files(dir, false);
    }
    for pickle in [
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
        "tf_model.h5",
    ] {
        if dir.join(pickle).is_file() {
            return Err(ModelError::Pickle {
                path: dir.join(pickle),
            });
        }
    }
    Err(ModelError::MissingFile {
        path: dir.join("model.safetensors"),
        what: "the model's weights: model.safetensors or model.safetensors.index.json".into(),
    })
}

/// A checkpoint's tensors with names resolved as transformers resolves them: under the prefix
/// of the task model that saved them, and `LayerNorm.gamma`/`LayerNorm.beta` for
/// `LayerNorm.weight`/`LayerNorm.bias` (old BERT checkpoints).
#[derive(Clone)]
pub struct Checkpoint {
    weights: Weights,
    prefix: String,
}

impl Checkpoint {
    /// Opens `files` (converted to f32 on `device`). The prefix is the first of `prefixes` under
    /// which `probe` (a tensor every checkpoint of the family has) is stored; an error names
    /// the file and the tensor when it is under none.
    pub fn open(
        files: &[PathBuf],
        device: &Device,
        probe: &str,
        prefixes: &[&str],
    ) -> Result<Self> {
        let weights = Weights::from_files(files, DType::F32, device)?;
        let found = prefixes.iter().find(|p| {
            let name = join(p, probe);
            weights.contains(&name) || legacy_name(&name).is_some_and(|n| weights.contains(&n))
        });
        match found {
            Some(prefix) => Ok(Checkpoint {
                weights,
                prefix: prefix.to_string(),
            }),
            None => Err(ModelError::MissingTensor {
                path: weights.path(),
                name: format!(
                    "{probe} (looked under the prefixes {:?}; is this a checkpoint of this model \
                     family?)",
                    prefixes
                ),
            }),
        }
    }

    /// The file holding the first tensor, for messages.
    pub fn path(&self) -> PathBuf {
        self.weights.path()
    }

    /// A [`VarBuilder`] rooted at the base model (the prefix already applied).
    pub fn var_builder(&self) -> VarBuilder<'static> {
        let vb = VarBuilder::from_backend(
            Box::new(self.clone()),
            DType::F32,
            self.weights.device().clone(),
        );
        if self.prefix.is_empty() {
            vb
        } else {
            vb.pp(self.prefix.clone())
        }
    }

    /// Attaches the file to a module-building error.
    pub fn in_file(&self, e: ModelError) -> ModelError {
        e.in_file(self.path())
    }

    fn resolve(&self, name: &str) -> String {
        if !self.weights.contains(name) {
            if let Some(legacy) = legacy_name(name) {
                if self.weights.contains(&legacy) {
                    return legacy;
                }
            }
        }
        name.to_string()
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// transformers' "legacy" renaming: `LayerNorm.gamma` → `LayerNorm.weight`, `beta` → `bias`.
fn legacy_name(name: &str) -> Option<String> {
    if let Some(stem) = name.strip_suffix("LayerNorm.weight") {
        return Some(format!("{stem}LayerNorm.gamma"));
    }
    name.strip_suffix("LayerNorm.bias")
        .map(|stem| format!("{stem}LayerNorm.beta"))
}

impl SimpleBackend for Checkpoint {
    fn get(
        &self,
        s: Shape,
        name: &str,
        init: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        SimpleBackend::get(&self.weights, s, &self.resolve(name), init, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        SimpleBackend::get_unchecked(&self.weights, &self.resolve(name), dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.weights.contains(&self.resolve(name))
    }
}

/// The value of masked attention scores (transformers 5 uses the dtype's minimum).
const MASKED: f32 = f32::MIN;

/// The additive attention mask of a batch, f32 broadcastable to [B, heads, L, L] ([B, 1, L, L]
/// when causal, [B, 1, 1, L] otherwise), or None when nothing is masked:
/// `f32::MIN` for keys that are padding (`attention_mask` [B, L], 1 = token, 0 = padding, any
/// dtype) and, when `causal`, for keys after the query. Padded queries still see the real
/// tokens before them (right padding), so no row is fully masked.
pub fn attention_bias(
    attention_mask: Option<&Tensor>,
    (b, l): (usize, usize),
    causal: bool,
    device: &Device,
) -> Result<Option<Tensor>> {
    let padding = match attention_mask {
        None => None,
        Some(m) => {
            if m.dims() != [b, l] {
                return Err(ModelError::Invalid(format!(
                    "attention_mask has shape {:?}, input_ids [{b}, {l}]: expected the same shape",
                    m.dims()
                )));
            }
            let keep = m
                .to_dtype(DType::F32)?
                .to_device(device)?
                .clamp(0f32, 1f32)?;
            // (1 − keep) · MASKED, without forming MASKED · 1 − MASKED
            let additive = ((keep - 1.0)? * (-(MASKED as f64)))?;
            Some(additive.reshape((b, 1, 1, l))?)
        }
    };
    let causal = if causal && l > 1 {
        Some(layers::causal_mask(l, device)?.reshape((1, 1, l, l))?)
    } else {
        None
    };
    Ok(match (padding, causal) {
        (Some(p), Some(c)) => Some(p.broadcast_add(&c)?),
        (p, None) => p,
        (None, c) => c,
    })
}

/// Token ids [B, L] as U32, each checked against the vocabulary.
pub fn checked_ids(input_ids: &Tensor, vocab: usize) -> Result<Tensor> {
    let ids = match input_ids.dtype() {
        DType::U32 | DType::I64 | DType::U8 => input_ids.to_dtype(DType::I64)?,
        other => {
            return Err(ModelError::Invalid(format!(
                "input_ids are {other:?}; expected integer token ids (u32 or i64)"
            )))
        }
    };
    if ids.rank() != 2 {
        return Err(ModelError::Invalid(format!(
            "input_ids have shape {:?}; expected [batch, tokens]",
            ids.dims()
        )));
    }
    let values: Vec<i64> = ids.flatten_all()?.to_vec1()?;
    if let Some(bad) = values.iter().find(|&&v| v < 0 || v as usize >= vocab) {
        return Err(ModelError::Invalid(format!(
            "token id {bad} is outside the model's vocabulary (vocab_size {vocab}); does the \
             tokenizer belong to this model?"
        )));
    }
    Ok(ids.to_dtype(DType::U32)?)
}

/// `table[ids]`: ids [B, L] (u32) → [B, L, d].
pub fn embed(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let (b, l) = ids.dims2()?;
    let d = table.dim(1)?;
    Ok(table
        .index_select(&ids.flatten_all()?, 0)?
        .reshape((b, l, d))?)
}

/// [B, L, H·Dh] → [B, H, L, Dh], contiguous.
pub fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, l, d) = x.dims3()?;
    Ok(x.reshape((b, l, heads, d / heads))?
        .transpose(1, 2)?
        .contiguous()?)
}

/// [B, H, L, Dh] → [B, L, H·Dh].
pub fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let (b, h, l, dh) = x.dims4()?;
    Ok(x.transpose(1, 2)?.reshape((b, l, h * dh))?)
}

/// `config.json` as a JSON value (errors name the file).
pub fn read_config(path: &Path) -> Result<Value> {
    read_json(path, "model config")
}

#[cfg(test)]
mod hostile_tests {
    use brainrecon_nn::config_bounds::hostile::problems;
    use serde_json::{json, Value};
    use std::path::Path;

    fn check(config: Value, unread: &[&str], load: fn(&Value, &Path) -> String) {
        let path = Path::new("model/config.json");
        let run = |v: &Value| match load(v, path) {
            e if e.is_empty() => Ok(()),
            e => Err(e),
        };
        let found = problems(&config, unread, &run);
        assert!(found.is_empty(), "{}", found.join("\n"));
    }

    fn err<T>(r: brainrecon_nn::Result<T>) -> String {
        r.err().map(|e| e.to_string()).unwrap_or_default()
    }

    /// Every number of small Llama, BERT, GPT-2 and T5 configs set to 0, -1, huge or the wrong
    /// type: no panic; huge values and wrong types refused, naming the field.
    #[test]
    fn every_numeric_field_of_the_text_model_configs_is_bounded() {
        let llama = json!({"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
            "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 100,
            "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 10000.0});
        // Any positive rotary base is a valid (if odd) model.
        check(llama, &["rope_theta"], |v, p| {
            err(crate::llama::LlamaConfig::from_value(v, p))
        });
        let bert = json!({"vocab_size": 100, "hidden_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 128, "max_position_embeddings": 64,
            "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0});
        // BERT's encoder never reads its padding id (the attention mask covers padding).
        check(bert, &["pad_token_id"], |v, p| {
            err(crate::bert::BertConfig::from_value(v, p))
        });
        let gpt2 = json!({"vocab_size": 100, "n_embd": 64, "n_layer": 2, "n_head": 4,
            "n_positions": 64, "layer_norm_epsilon": 1e-5});
        check(gpt2, &[], |v, p| {
            err(crate::gpt2::Gpt2Config::from_value(v, p))
        });
        let t5 = json!({"d_ff": 128, "d_kv": 16, "d_model": 64, "num_heads": 4,
            "num_layers": 2, "relative_attention_num_buckets": 32,
            "relative_attention_max_distance": 128, "vocab_size": 100});
        check(t5, &[], |v, p| err(crate::t5::T5Config::from_value(v, p)));
    }

    #[test]
    fn size_caps_follow_the_field_names() {
        use brainrecon_nn::config_bounds::*;
        assert_eq!(super::size_cap("vocab_size"), MAX_VOCAB);
        assert_eq!(super::size_cap("num_hidden_layers"), MAX_LAYERS);
        assert_eq!(super::size_cap("kernel_size"), MAX_KERNEL);
        assert_eq!(super::size_cap("intermediate_size"), MAX_FFN);
        assert_eq!(super::size_cap("max_position_embeddings"), MAX_POSITIONS);
        assert_eq!(super::size_cap("hidden_size"), MAX_CHANNELS);
    }
}
