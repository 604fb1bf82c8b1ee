//! The tokenizer of a text model, giving the ids transformers 5's `AutoTokenizer` gives.
//!
//! Built with the `tokenizers` crate from the folder's `tokenizer.json`. transformers 5 does not
//! always run that file as saved: for the tokenizer classes it knows (here `GPT2Tokenizer`,
//! `BertTokenizer`, `LlamaTokenizer`) it keeps the file's vocabulary, merges and post-processor
//! but rebuilds the rest as the class defines it, from `tokenizer_config.json`'s options. For
//! Llama-2-style files this matters: the file's `Prepend("▁")` normalizer becomes a `Metaspace`
//! pre-tokenizer that prepends `▁` only to the first section and not when the text already
//! starts with a space, so `"  two"` gets one `▁` fewer. This module does the same rebuilding:
//!
//! - the class is `tokenizer_config.json`'s `tokenizer_class` (without `Fast`), else the one
//!   transformers registers for `config.json`'s `model_type` (`gpt2` → `GPT2Tokenizer`, `bert`
//!   → `BertTokenizer`, `llama` → none, i.e. the file as saved); `LlamaTokenizer` over a
//!   byte-level file (Llama 3) is the file as saved, as transformers decides;
//!   `PreTrainedTokenizerFast`/`TokenizersBackend` is the file as saved; other classes are
//!   refused (their rebuilding is not reproduced here);
//! - `GPT2Tokenizer`: no normalizer, `ByteLevel(add_prefix_space)` pre-tokenizer, BPE without
//!   unknown token; `BertTokenizer`: `BertNormalizer(do_lower_case, strip_accents,
//!   tokenize_chinese_chars)`, `BertPreTokenizer`, WordPiece, `[CLS] … [SEP]`;
//!   `LlamaTokenizer`: no normalizer, `Metaspace(prepend_scheme = first, or always with
//!   legacy, never without add_prefix_space)`, BPE with byte fallback;
//! - rebuilt classes keep only the added tokens `tokenizer_config.json` lists
//!   (`added_tokens_decoder`) and the named special tokens (the class's defaults unless the
//!   config names others);
//! - with `add_bos_token`/`add_eos_token` in the config (or no post-processor in the file) the
//!   post-processor becomes `[bos] $A [eos]` as the config says.
//!
//! Truncation and padding stored in `tokenizer.json` are not applied (transformers turns them
//! off for a plain `tokenizer(text)` call); [`TextTokenizer::encode_truncated`] truncates as
//! `tokenizer(text, truncation=True, max_length=n)` does.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use brainrecon_nn::weights::read_json;
use brainrecon_nn::{ModelError, Result};
use serde_json::{json, Map, Value};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer, TruncationParams};

/// How transformers builds the tokenizer (its tokenizer class).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerClass {
    /// `GPT2Tokenizer`, rebuilt as transformers does.
    Gpt2,
    /// `BertTokenizer`, rebuilt as transformers does.
    Bert,
    /// `LlamaTokenizer`, rebuilt as transformers does.
    Llama,
    /// `tokenizer.json` as saved (`TokenizersBackend`).
    AsSaved,
}

/// A tokenizer folder's tokenizer, as transformers 5 loads it.
#[derive(Clone)]
pub struct TextTokenizer {
    tokenizer: Tokenizer,
    class: TokenizerClass,
    path: PathBuf,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("path", &self.path)
            .field("class", &self.class)
            .field("vocab_size", &self.tokenizer.get_vocab_size(true))
            .finish()
    }
}

/// One encoded text.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedText {
    /// Token ids, special tokens included.
    pub ids: Vec<u32>,
    /// 1 for the tokens the post-processor added (BOS, `[CLS]`, `[SEP]`), 0 for the text's.
    pub special: Vec<u32>,
    /// Tokens were cut off at the end.
    pub truncated: bool,
}

impl TextTokenizer {
    /// Loads `dir/tokenizer.json` (with `dir/tokenizer_config.json` when present) for a model
    /// of `model_type` (`config.json`'s, which picks the class when the tokenizer config does
    /// not name one).
    pub fn from_dir(dir: &Path, model_type: &str) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(ModelError::MissingFile {
                path: path.clone(),
                what: format!(
                    "the tokenizer of {}: brainrecon reads tokenizer.json (transformers' fast \
                     tokenizer file); a folder with only vocab.txt, merges.txt or \
                     tokenizer.model can be converted by loading it with transformers' \
                     AutoTokenizer and calling save_pretrained",
                    dir.display()
                ),
            });
        }
        let config_path = dir.join("tokenizer_config.json");
        let config: Map<String, Value> = if config_path.is_file() {
            match read_json::<Value>(&config_path, "tokenizer config")? {
                Value::Object(o) => o,
                other => {
                    return Err(ModelError::Tokenizer {
                        path: config_path,
                        message: format!("expected a JSON object, found {other}"),
                    })
                }
            }
        } else {
            Map::new()
        };
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        let spec: Value =
            serde_json::from_str(brainrecon_core::text::without_bom(&text)).map_err(|e| {
                ModelError::Tokenizer {
                    path: path.clone(),
                    message: e.to_string(),
                }
            })?;
        let class = tokenizer_class(&config, model_type, &text, &config_path)?;
        Self::build(spec, &config, class, &path, &config_path)
    }

    fn build(
        mut spec: Value,
        config: &Map<String, Value>,
        class: TokenizerClass,
        path: &Path,
        config_path: &Path,
    ) -> Result<Self> {
        let options = Options {
            config,
            path: config_path,
        };
        let bad = |message: String| ModelError::Tokenizer {
            path: path.to_path_buf(),
            message,
        };
        let object = spec
            .as_object_mut()
            .ok_or_else(|| bad("expected a JSON object".into()))?;
        let had_post_processor = !object.get("post_processor").is_none_or(Value::is_null);
        object.insert("truncation".into(), Value::Null);
        object.insert("padding".into(), Value::Null);
        if class != TokenizerClass::AsSaved {
            rebuild(object, class, &options).map_err(bad)?;
            object.insert("added_tokens".into(), json!([]));
        }
        let mut tokenizer =
            Tokenizer::from_str(&spec.to_string()).map_err(|e| bad(e.to_string()))?;
        if class != TokenizerClass::AsSaved {
            tokenizer.add_special_tokens(&options.added_tokens_decoder()?);
        }
        let specials = options.special_tokens(class)?;
        let named: Vec<AddedToken> = specials
            .iter()
            .flatten()
            .map(|t| AddedToken::from(t.clone(), true))
            .collect();
        tokenizer.add_special_tokens(&named);
        let explicit = config.contains_key("add_bos_token") || config.contains_key("add_eos_token");
        if class == TokenizerClass::Bert {
            let template = bert_template(&tokenizer, &specials).map_err(bad)?;
            tokenizer.with_post_processor(Some(template));
        } else if explicit || !had_post_processor {
            let template = bos_eos_template(&tokenizer, &specials, &options).map_err(bad)?;
            tokenizer.with_post_processor(Some(template));
        }
        Ok(TextTokenizer {
            tokenizer,
            class,
            path: path.to_path_buf(),
        })
    }

    /// The class the tokenizer was built as.
    pub fn class(&self) -> TokenizerClass {
        self.class
    }

    /// `tokenizer.json`'s path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tokens including the added ones.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// `tokenizer(text)["input_ids"]`: special tokens added, no truncation.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.encode_with(&self.tokenizer, text)?.ids)
    }

    /// `tokenizer(text, truncation=True, max_length=max_length)`, with the special-token mask.
    pub fn encode_truncated(&self, text: &str, max_length: usize) -> Result<EncodedText> {
        self.encode_with(&self.truncating(max_length)?, text)
    }

    /// A copy that truncates to `max_length` tokens (special tokens included), as
    /// transformers' `truncation=True` does.
    pub(crate) fn truncating(&self, max_length: usize) -> Result<Tokenizer> {
        let mut t = self.tokenizer.clone();
        t.with_truncation(Some(TruncationParams {
            max_length,
            ..Default::default()
        }))
        .map_err(|e| ModelError::Tokenizer {
            path: self.path.clone(),
            message: format!("cannot truncate to {max_length} tokens: {e}"),
        })?;
        Ok(t)
    }

    pub(crate) fn encode_with(&self, tokenizer: &Tokenizer, text: &str) -> Result<EncodedText> {
        let encoding = tokenizer
            .encode(text, true)
            .map_err(|e| ModelError::Invalid(format!("cannot tokenize {text:?}: {e}")))?;
        Ok(EncodedText {
            ids: encoding.get_ids().to_vec(),
            special: encoding.get_special_tokens_mask().to_vec(),
            truncated: !encoding.get_overflowing().is_empty(),
        })
    }
}

/// The tokenizer class transformers 5's `AutoTokenizer` picks (see the module docs).
fn tokenizer_class(
    config: &Map<String, Value>,
    model_type: &str,
    tokenizer_json: &str,
    config_path: &Path,
) -> Result<TokenizerClass> {
    let declared = match config.get("tokenizer_class") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.strip_suffix("Fast").unwrap_or(s).to_string()),
        Some(v) => {
            return Err(ModelError::Tokenizer {
                path: config_path.to_path_buf(),
                message: format!("field `tokenizer_class` is {v}, expected a class name"),
            })
        }
    };
    let registered = match model_type {
        "gpt2" | "opt" => Some(TokenizerClass::Gpt2),
        "bert" => Some(TokenizerClass::Bert),
        _ => None,
    };
    let Some(name) = declared else {
        return Ok(registered.unwrap_or(TokenizerClass::AsSaved));
    };
    Ok(match name.as_str() {
        // Llama 3 declares LlamaTokenizer but ships a byte-level file: transformers runs it as is
        "LlamaTokenizer" if tokenizer_json.contains("\"ByteLevel\"") => TokenizerClass::AsSaved,
        "LlamaTokenizer" => TokenizerClass::Llama,
        "GPT2Tokenizer" => TokenizerClass::Gpt2,
        "BertTokenizer" => TokenizerClass::Bert,
        "PreTrainedTokenizer" | "TokenizersBackend" | "PythonBackend" => TokenizerClass::AsSaved,
        other => {
            return Err(ModelError::Tokenizer {
                path: config_path.to_path_buf(),
                message: format!(
                    "field `tokenizer_class` is \"{other}\": transformers rebuilds that \
                     tokenizer in its own way, which is not reproduced here (supported: \
                     GPT2Tokenizer, BertTokenizer, LlamaTokenizer, PreTrainedTokenizerFast, \
                     TokenizersBackend)"
                ),
            })
        }
    })
}

/// `tokenizer_config.json`'s options.
struct Options<'a> {
    config: &'a Map<String, Value>,
    path: &'a Path,
}

impl Options<'_> {
    fn bool_or(&self, key: &str, default: bool) -> std::result::Result<bool, String> {
        match self.config.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(format!(
                "{}: field `{key}` is {v}, expected true or false",
                self.path.display()
            )),
        }
    }

    /// A token named by `key`: `"<s>"`, `{"content": "<s>", ...}`, or null (none).
    fn token(&self, key: &str, default: Option<&str>) -> Result<Option<String>> {
        match self.config.get(key) {
            None => Ok(default.map(String::from)),
            Some(Value::Null) => Ok(None),
            Some(v) => token_text(v)
                .map(Some)
                .ok_or_else(|| ModelError::Tokenizer {
                    path: self.path.to_path_buf(),
                    message: format!("field `{key}` is {v}, expected a token string"),
                }),
        }
    }

    /// bos, eos, unk, sep, pad, cls, mask: the config's, else the class's defaults.
    fn special_tokens(&self, class: TokenizerClass) -> Result<[Option<String>; 7]> {
        let defaults: [Option<&str>; 7] = match class {
            TokenizerClass::Gpt2 => {
                let e = Some("<|endoftext|>");
                [e, e, e, None, None, None, None]
            }
            TokenizerClass::Bert => [
                None,
                None,
                Some("[UNK]"),
                Some("[SEP]"),
                Some("[PAD]"),
                Some("[CLS]"),
                Some("[MASK]"),
            ],
            TokenizerClass::Llama => [
                Some("<s>"),
                Some("</s>"),
                Some("<unk>"),
                None,
                None,
                None,
                None,
            ],
            TokenizerClass::AsSaved => [None; 7],
        };
        let keys = [
            "bos_token",
            "eos_token",
            "unk_token",
            "sep_token",
            "pad_token",
            "cls_token",
            "mask_token",
        ];
        let mut out: [Option<String>; 7] = Default::default();
        for (i, key) in keys.iter().enumerate() {
            out[i] = self.token(key, defaults[i])?;
        }
        Ok(out)
    }

    /// `added_tokens_decoder` ({id: {content, lstrip, rstrip, single_word, normalized,
    /// special}}), in id order.
    fn added_tokens_decoder(&self) -> Result<Vec<AddedToken>> {
        let Some(Value::Object(decoder)) = self.config.get("added_tokens_decoder") else {
            return Ok(Vec::new());
        };
        let mut entries = Vec::new();
        for (id, entry) in decoder {
            let bad = || ModelError::Tokenizer {
                path: self.path.to_path_buf(),
                message: format!("added_tokens_decoder entry {id}: {entry} is not a token"),
            };
            let id: u64 = id.parse().map_err(|_| bad())?;
            let content = token_text(entry).ok_or_else(bad)?;
            let flag =
                |k: &str, default: bool| entry.get(k).and_then(Value::as_bool).unwrap_or(default);
            let special = flag("special", false);
            let token = AddedToken::from(content, special)
                .single_word(flag("single_word", false))
                .lstrip(flag("lstrip", false))
                .rstrip(flag("rstrip", false))
                .normalized(flag("normalized", !special));
            entries.push((id, token));
        }
        entries.sort_by_key(|(id, _)| *id);
        Ok(entries.into_iter().map(|(_, t)| t).collect())
    }
}

fn token_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(String::from),
        _ => None,
    }
}

/// Rewrites the pipeline of `tokenizer.json` as the class's constructor builds it.
fn rebuild(
    spec: &mut Map<String, Value>,
    class: TokenizerClass,
    options: &Options,
) -> std::result::Result<(), String> {
    let model = spec
        .get_mut("model")
        .and_then(Value::as_object_mut)
        .ok_or("no `model` object")?;
    let model_type = model.get("type").and_then(Value::as_str).unwrap_or("");
    let want = if class == TokenizerClass::Bert {
        "WordPiece"
    } else {
        "BPE"
    };
    if model_type != want {
        return Err(format!(
            "`model.type` is \"{model_type}\", but the tokenizer class needs a {want} model"
        ));
    }
    let (normalizer, pre_tokenizer) = match class {
        TokenizerClass::Gpt2 => {
            set(
                model,
                &[("dropout", json!(null)), ("unk_token", json!(null))],
            );
            set(
                model,
                &[
                    ("continuing_subword_prefix", json!("")),
                    ("end_of_word_suffix", json!("")),
                ],
            );
            set(
                model,
                &[("fuse_unk", json!(false)), ("byte_fallback", json!(false))],
            );
            model.insert("ignore_merges".into(), json!(false));
            let prefix = options.bool_or("add_prefix_space", false)?;
            let pre = json!({"type": "ByteLevel", "add_prefix_space": prefix,
                "trim_offsets": true, "use_regex": true});
            (json!(null), pre)
        }
        TokenizerClass::Llama => {
            set(
                model,
                &[("dropout", json!(null)), ("unk_token", json!(null))],
            );
            set(
                model,
                &[
                    ("continuing_subword_prefix", json!(null)),
                    ("end_of_word_suffix", json!(null)),
                ],
            );
            set(
                model,
                &[("fuse_unk", json!(true)), ("byte_fallback", json!(true))],
            );
            model.insert("ignore_merges".into(), json!(false));
            let scheme = if !options.bool_or("add_prefix_space", true)? {
                "never"
            } else if options.bool_or("legacy", false)? {
                "always"
            } else {
                "first"
            };
            let pre = json!({"type": "Metaspace", "replacement": "▁",
                "prepend_scheme": scheme, "split": false});
            (json!(null), pre)
        }
        TokenizerClass::Bert => {
            let unk = options
                .token("unk_token", Some("[UNK]"))
                .map_err(|e| e.to_string())?
                .unwrap_or_else(|| "[UNK]".into());
            set(
                model,
                &[
                    ("unk_token", json!(unk)),
                    ("continuing_subword_prefix", json!("##")),
                ],
            );
            model.insert("max_input_chars_per_word".into(), json!(100));
            let strip_accents = match options.config.get("strip_accents") {
                None | Some(Value::Null) => json!(null),
                Some(Value::Bool(b)) => json!(b),
                Some(v) => {
                    return Err(format!(
                        "field `strip_accents` is {v}, expected true, false or null"
                    ))
                }
            };
            let normalizer = json!({"type": "BertNormalizer", "clean_text": true,
                "handle_chinese_chars": options.bool_or("tokenize_chinese_chars", true)?,
                "strip_accents": strip_accents,
                "lowercase": options.bool_or("do_lower_case", true)?});
            (normalizer, json!({"type": "BertPreTokenizer"}))
        }
        TokenizerClass::AsSaved => return Ok(()),
    };
    spec.insert("normalizer".into(), normalizer);
    spec.insert("pre_tokenizer".into(), pre_tokenizer);
    Ok(())
}

fn set(object: &mut Map<String, Value>, entries: &[(&str, Value)]) {
    for (k, v) in entries {
        object.insert(k.to_string(), v.clone());
    }
}

/// `update_post_processor`: `[bos:0] $A:0 [eos:0]` with `add_bos_token`/`add_eos_token`
/// (default false) — a flag whose token is absent is dropped, as transformers does.
fn bos_eos_template(
    tokenizer: &Tokenizer,
    specials: &[Option<String>; 7],
    options: &Options,
) -> std::result::Result<TemplateProcessing, String> {
    let pick = |flag: &str,
                token: &Option<String>|
     -> std::result::Result<Option<(String, u32)>, String> {
        match (options.bool_or(flag, false)?, token) {
            (true, Some(t)) => tokenizer
                .token_to_id(t)
                .map(|id| Some((t.clone(), id)))
                .ok_or_else(|| format!("the {flag} token {t} is not in the vocabulary")),
            _ => Ok(None),
        }
    };
    let bos = pick("add_bos_token", &specials[0])?;
    let eos = pick("add_eos_token", &specials[1])?;
    let with = |seq: &str, type_id: u32| {
        let mut parts = Vec::new();
        if let Some((b, _)) = &bos {
            parts.push(format!("{b}:{type_id}"));
        }
        parts.push(format!("${seq}:{type_id}"));
        if let Some((e, _)) = &eos {
            parts.push(format!("{e}:{type_id}"));
        }
        parts.join(" ")
    };
    let tokens: Vec<(String, u32)> = bos.iter().chain(eos.iter()).cloned().collect();
    TemplateProcessing::builder()
        .try_single(with("A", 0))
        .and_then(|b| b.try_pair(format!("{} {}", with("A", 0), with("B", 1))))
        .map_err(|e| e.to_string())?
        .special_tokens(tokens)
        .build()
        .map_err(|e| e.to_string())
}

/// `BertTokenizer`'s `[CLS] $A [SEP]`.
fn bert_template(
    tokenizer: &Tokenizer,
    specials: &[Option<String>; 7],
) -> std::result::Result<TemplateProcessing, String> {
    let cls = specials[5].clone().unwrap_or_else(|| "[CLS]".into());
    let sep = specials[3].clone().unwrap_or_else(|| "[SEP]".into());
    // transformers falls back to ids 2 and 3 when the tokens are missing
    let cls_id = tokenizer.token_to_id(&cls).unwrap_or(2);
    let sep_id = tokenizer.token_to_id(&sep).unwrap_or(3);
    TemplateProcessing::builder()
        .try_single(format!("{cls}:0 $A:0 {sep}:0"))
        .and_then(|b| b.try_pair(format!("{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1")))
        .map_err(|e| e.to_string())?
        .special_tokens(vec![(cls, cls_id), (sep, sep_id)])
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_auto_tokenizer() {
        let p = Path::new("t/tokenizer_config.json");
        let cfg = |v: Value| v.as_object().unwrap().clone();
        let none = Map::new();
        assert_eq!(
            tokenizer_class(&none, "gpt2", "", p).unwrap(),
            TokenizerClass::Gpt2
        );
        assert_eq!(
            tokenizer_class(&none, "bert", "", p).unwrap(),
            TokenizerClass::Bert
        );
        assert_eq!(
            tokenizer_class(&none, "llama", "", p).unwrap(),
            TokenizerClass::AsSaved
        );
        let llama = cfg(json!({"tokenizer_class": "LlamaTokenizerFast"}));
        assert_eq!(
            tokenizer_class(&llama, "llama", "{}", p).unwrap(),
            TokenizerClass::Llama
        );
        assert_eq!(
            tokenizer_class(&llama, "llama", r#"{"type": "ByteLevel"}"#, p).unwrap(),
            TokenizerClass::AsSaved
        );
        let fast = cfg(json!({"tokenizer_class": "PreTrainedTokenizerFast"}));
        assert_eq!(
            tokenizer_class(&fast, "llama", "", p).unwrap(),
            TokenizerClass::AsSaved
        );
        let t5 = cfg(json!({"tokenizer_class": "T5Tokenizer"}));
        let e = tokenizer_class(&t5, "t5", "", p).unwrap_err();
        assert!(
            e.to_string().contains("T5Tokenizer")
                && e.to_string().contains("t/tokenizer_config.json"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_tokenizer_names_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let e = TextTokenizer::from_dir(dir.path(), "gpt2").unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("tokenizer.json") && m.contains(&dir.path().display().to_string()),
            "{m}"
        );
    }
}
