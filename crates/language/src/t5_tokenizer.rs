//! T5's tokenizer as transformers loads it (MusicGen's text encoder reads its ids).

use brainrecon_nn::{ModelError, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

/// MusicGen's text tokenizer as transformers 5's `AutoTokenizer` loads a MusicGen folder: T5's
/// `T5Tokenizer`, which keeps only the Unigram vocabulary and the `Precompiled` normalizer of
/// `tokenizer.json` and rebuilds the rest (unknown id 2, no byte fallback, `WhitespaceSplit` then
/// `Metaspace(▁, prepend always, split)`, `$A </s>`), whatever the file's own pipeline says.
/// Added tokens are the file's and the config's eos/unk/pad.
pub struct T5Tokenizer {
    tokenizer: Tokenizer,
    path: PathBuf,
}

impl std::fmt::Debug for T5Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("T5Tokenizer")
            .field("path", &self.path)
            .finish()
    }
}

/// A token option of tokenizer_config.json: `"</s>"` or `{"content": "</s>", ...}`.
fn config_token(config: &Value, key: &str, default: &str) -> String {
    match config.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string(),
        _ => default.to_string(),
    }
}

impl T5Tokenizer {
    /// Loads `dir/tokenizer.json` (with `dir/tokenizer_config.json` when present).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(ModelError::MissingFile {
                path,
                what: format!(
                    "MusicGen's text tokenizer: the folder {} has no tokenizer.json (T5's, as \
                     transformers' save_pretrained writes it; facebook/musicgen-* ship it: \
                     `huggingface-cli download facebook/musicgen-small tokenizer.json \
                     tokenizer_config.json`)",
                    dir.display()
                ),
            });
        }
        let config_path = dir.join("tokenizer_config.json");
        let config: Value = if config_path.is_file() {
            let text = std::fs::read_to_string(&config_path)
                .map_err(|e| ModelError::io(&config_path, e))?;
            serde_json::from_str(brainrecon_core::text::without_bom(&text)).map_err(|e| {
                ModelError::Tokenizer {
                    path: config_path.clone(),
                    message: e.to_string(),
                }
            })?
        } else {
            json!({})
        };
        let bad = |p: &Path, message: String| ModelError::Tokenizer {
            path: p.to_path_buf(),
            message,
        };
        let rebuild = match config.get("tokenizer_class").and_then(Value::as_str) {
            None | Some("T5Tokenizer" | "T5TokenizerFast") => true,
            Some("PreTrainedTokenizerFast" | "TokenizersBackend") => false,
            Some(other) => {
                return Err(bad(&config_path, format!(
                    "field `tokenizer_class` is \"{other}\", expected T5Tokenizer (MusicGen's text encoder is T5)"
                )))
            }
        };
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        let mut spec: Value = serde_json::from_str(brainrecon_core::text::without_bom(&text))
            .map_err(|e| bad(&path, e.to_string()))?;
        let object = spec
            .as_object_mut()
            .ok_or_else(|| bad(&path, "expected a JSON object".into()))?;
        object.insert("truncation".into(), Value::Null);
        object.insert("padding".into(), Value::Null);
        if rebuild {
            t5_pipeline(object).map_err(|m| bad(&path, m))?;
        }
        let mut tokenizer =
            Tokenizer::from_str(&spec.to_string()).map_err(|e| bad(&path, e.to_string()))?;
        let [eos, unk, pad] = [
            ("eos_token", "</s>"),
            ("unk_token", "<unk>"),
            ("pad_token", "<pad>"),
        ]
        .map(|(key, default)| config_token(&config, key, default));
        if rebuild {
            let specials: Vec<AddedToken> = [&eos, &unk, &pad]
                .iter()
                .map(|t| AddedToken::from(t.to_string(), true))
                .collect();
            tokenizer.add_special_tokens(&specials);
            let eos_id = tokenizer.token_to_id(&eos).ok_or_else(|| {
                bad(
                    &path,
                    format!("the end-of-sequence token {eos} is not in the vocabulary"),
                )
            })?;
            let template = TemplateProcessing::builder()
                .try_single(format!("$A:0 {eos}:0"))
                .and_then(|b| b.try_pair(format!("$A:0 {eos}:0 $B:0 {eos}:0")))
                .map_err(|e| bad(&path, e.to_string()))?
                .special_tokens(vec![(eos.clone(), eos_id)])
                .build()
                .map_err(|e| bad(&path, e.to_string()))?;
            tokenizer.with_post_processor(Some(template));
        }
        Ok(T5Tokenizer { tokenizer, path })
    }

    /// The `tokenizer.json` it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `tokenizer(text)["input_ids"]` (`</s>` appended, no truncation).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| ModelError::Tokenizer {
                path: self.path.clone(),
                message: format!("cannot tokenize {text:?}: {e}"),
            })?;
        Ok(encoding.get_ids().to_vec())
    }
}

/// `T5Tokenizer.__init__`'s pipeline over the file's Unigram vocabulary (see [`T5Tokenizer`]).
fn t5_pipeline(spec: &mut serde_json::Map<String, Value>) -> std::result::Result<(), String> {
    let model = spec
        .get_mut("model")
        .and_then(Value::as_object_mut)
        .ok_or("no `model` object")?;
    let kind = model.get("type").and_then(Value::as_str).unwrap_or("");
    if kind != "Unigram" {
        return Err(format!(
            "`model.type` is \"{kind}\", expected Unigram (T5's SentencePiece vocabulary)"
        ));
    }
    model.insert("unk_id".into(), json!(2));
    model.insert("byte_fallback".into(), json!(false));
    // transformers keeps only a Precompiled normalizer (SentencePiece's character map)
    let normalizer = match spec.get("normalizer") {
        Some(n) if n["type"] == "Precompiled" => Some(n.clone()),
        Some(n) if n["type"] == "Sequence" => n["normalizers"]
            .as_array()
            .and_then(|all| all.iter().find(|m| m["type"] == "Precompiled"))
            .cloned(),
        _ => None,
    }
    .filter(|n| n.get("precompiled_charsmap").is_some_and(Value::is_string));
    spec.insert("normalizer".into(), normalizer.unwrap_or(Value::Null));
    spec.insert(
        "pre_tokenizer".into(),
        json!({"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"},
            {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}]}),
    );
    spec.insert("post_processor".into(), Value::Null);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(sub: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/t5_tokenizer")
            .join(sub)
    }

    /// transformers' `AutoTokenizer` ids (tools/fixtures/t5_tokenizer.py), for the file as
    /// `save_pretrained` wrote it and for an older pipeline that transformers rebuilds.
    #[test]
    fn t5_ids_match_auto_tokenizer() {
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap())
                .unwrap();
        let texts = expected["texts"].as_array().unwrap();
        for (dir, key) in [("", "input_ids"), ("legacy", "legacy_input_ids")] {
            let tokenizer = T5Tokenizer::from_dir(&fixture(dir)).unwrap();
            for (text, want) in texts.iter().zip(expected[key].as_array().unwrap()) {
                let want: Vec<u32> = want
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as u32)
                    .collect();
                assert_eq!(
                    tokenizer.encode(text.as_str().unwrap()).unwrap(),
                    want,
                    "{dir}: {text}"
                );
            }
        }
    }

    #[test]
    fn a_folder_without_tokenizer_json_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = T5Tokenizer::from_dir(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("tokenizer.json") && e.contains(&dir.path().display().to_string()),
            "{e}"
        );
        std::fs::write(dir.path().join("tokenizer.json"), "{}").unwrap();
        std::fs::write(
            dir.path().join("tokenizer_config.json"),
            r#"{"tokenizer_class": "BertTokenizer"}"#,
        )
        .unwrap();
        let e = T5Tokenizer::from_dir(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("tokenizer_class") && e.contains("BertTokenizer"),
            "{e}"
        );
    }
}
