//! BLIP's WordPiece tokenizer, as transformers' `BertTokenizer` (fast) runs it for BLIP.
//!
//! Built with the `tokenizers` crate from `tokenizer.json` when the folder has one, otherwise
//! from `vocab.txt` and `tokenizer_config.json` with BERT's pipeline: `BertNormalizer` (clean
//! text, split CJK characters, lower-case with `do_lower_case`, strip accents when
//! lower-casing unless `strip_accents` says otherwise), `BertPreTokenizer` (whitespace and
//! punctuation), WordPiece (`##` continuations, `[UNK]` for words longer than 100 characters
//! or without a split), `[CLS] … [SEP]` around every text, and the WordPiece decoder.
//!
//! BLIP adds two special tokens to BERT's vocabulary: `[DEC]` (its `bos_token`, which starts
//! every caption) and `[ENC]`; a folder that does not list them gets them appended in that
//! order, as Salesforce's `init_tokenizer` does (ids 30522 and 30523 for bert-base-uncased).
//!
//! Decoding with `skip_special_tokens` drops every special token (`[UNK]` included) and joins
//! wordpieces; transformers' extra `clean_up_tokenization` pass runs only when
//! `tokenizer_config.json` sets `clean_up_tokenization_spaces` (transformers 5 leaves it off
//! when the key is absent).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use brainrecon_nn::weights::read_json;
use brainrecon_nn::{ModelError, Result};
use serde_json::Value;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{AddedToken, Tokenizer};

/// The token strings BLIP's tokenizer uses for its roles.
#[derive(Clone, Debug, PartialEq)]
struct SpecialNames {
    bos: String,
    cls: String,
    sep: String,
    pad: String,
    unk: String,
    mask: String,
    extra: Vec<String>,
    do_lower_case: bool,
    strip_accents: Option<bool>,
    tokenize_chinese_chars: bool,
    clean_up_tokenization_spaces: bool,
}

impl Default for SpecialNames {
    fn default() -> Self {
        SpecialNames {
            bos: "[DEC]".into(),
            cls: "[CLS]".into(),
            sep: "[SEP]".into(),
            pad: "[PAD]".into(),
            unk: "[UNK]".into(),
            mask: "[MASK]".into(),
            extra: vec!["[ENC]".into()],
            do_lower_case: true,
            strip_accents: None,
            tokenize_chinese_chars: true,
            clean_up_tokenization_spaces: false,
        }
    }
}

/// A token string from a config value: `"[DEC]"` or `{"content": "[DEC]", ...}`.
fn token_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(String::from),
        _ => None,
    }
}

impl SpecialNames {
    /// `tokenizer_config.json`, then `special_tokens_map.json` (later keys win); absent files
    /// or keys keep BLIP's defaults.
    fn from_dir(dir: &Path) -> Result<Self> {
        let mut names = SpecialNames::default();
        for file in ["tokenizer_config.json", "special_tokens_map.json"] {
            let path = dir.join(file);
            if path.is_file() {
                let value: Value = read_json(&path, "tokenizer config")?;
                names.update(&value, &path)?;
            }
        }
        Ok(names)
    }

    fn update(&mut self, value: &Value, path: &Path) -> Result<()> {
        let bad = |message: String| ModelError::Tokenizer {
            path: path.to_path_buf(),
            message,
        };
        for (key, slot) in [
            ("bos_token", &mut self.bos),
            ("cls_token", &mut self.cls),
            ("sep_token", &mut self.sep),
            ("pad_token", &mut self.pad),
            ("unk_token", &mut self.unk),
            ("mask_token", &mut self.mask),
        ] {
            match value.get(key) {
                None | Some(Value::Null) => {}
                Some(v) => {
                    *slot = token_text(v)
                        .ok_or_else(|| bad(format!("{key} is {v}, expected a token string")))?
                }
            }
        }
        // transformers 4 writes additional_special_tokens, transformers 5 extra_special_tokens
        for key in ["additional_special_tokens", "extra_special_tokens"] {
            if let Some(Value::Array(list)) = value.get(key) {
                self.extra = list
                    .iter()
                    .map(|v| {
                        token_text(v).ok_or_else(|| bad(format!("{key} holds {v}, not a token")))
                    })
                    .collect::<Result<_>>()?;
            }
        }
        let flag = |key: &str| -> Result<Option<bool>> {
            match value.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Bool(b)) => Ok(Some(*b)),
                Some(v) => Err(bad(format!("{key} is {v}, expected true or false"))),
            }
        };
        if let Some(b) = flag("do_lower_case")? {
            self.do_lower_case = b;
        }
        if let Some(b) = flag("strip_accents")? {
            self.strip_accents = Some(b);
        }
        if let Some(b) = flag("tokenize_chinese_chars")? {
            self.tokenize_chinese_chars = b;
        }
        if let Some(b) = flag("clean_up_tokenization_spaces")? {
            self.clean_up_tokenization_spaces = b;
        }
        Ok(())
    }
}

/// BLIP's tokenizer with the ids captioning needs.
#[derive(Clone)]
pub struct BlipTokenizer {
    tokenizer: Tokenizer,
    /// `[DEC]`: the first token of every caption.
    pub bos_id: u32,
    /// `[CLS]`: what plain encoding puts first (BLIP's generate replaces it by `bos_id`).
    pub cls_id: u32,
    /// `[SEP]`: the end of a caption (BLIP's generate stops on it).
    pub sep_id: u32,
    /// `[PAD]`: the padding token.
    pub pad_id: u32,
    /// `[UNK]`: the unknown token.
    pub unk_id: u32,
    clean_up_tokenization_spaces: bool,
}

impl std::fmt::Debug for BlipTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlipTokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("bos_id", &self.bos_id)
            .field("sep_id", &self.sep_id)
            .finish()
    }
}

impl BlipTokenizer {
    /// A tokenizer folder (or a model folder holding the tokenizer files).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let names = SpecialNames::from_dir(dir)?;
        let json = dir.join("tokenizer.json");
        let (tokenizer, origin) = if json.is_file() {
            let t = Tokenizer::from_file(&json).map_err(|e| ModelError::Tokenizer {
                path: json.clone(),
                message: e.to_string(),
            })?;
            (t, json)
        } else {
            let vocab = dir.join("vocab.txt");
            (from_vocab(&vocab, dir, &names)?, vocab)
        };
        Self::with_names(tokenizer, &names, &origin)
    }

    fn with_names(mut tokenizer: Tokenizer, names: &SpecialNames, origin: &Path) -> Result<Self> {
        // BLIP's additions, in init_tokenizer's order, when the files do not list them
        for token in std::iter::once(&names.bos).chain(&names.extra) {
            if tokenizer.token_to_id(token).is_none() {
                tokenizer.add_special_tokens(&[AddedToken::from(token.clone(), true)]);
            }
        }
        let id = |token: &str, role: &str| -> Result<u32> {
            tokenizer
                .token_to_id(token)
                .ok_or_else(|| ModelError::Tokenizer {
                    path: origin.to_path_buf(),
                    message: format!("the {role} token {token} is not in the vocabulary"),
                })
        };
        Ok(BlipTokenizer {
            bos_id: id(&names.bos, "bos")?,
            cls_id: id(&names.cls, "cls")?,
            sep_id: id(&names.sep, "sep")?,
            pad_id: id(&names.pad, "pad")?,
            unk_id: id(&names.unk, "unk")?,
            clean_up_tokenization_spaces: names.clean_up_tokenization_spaces,
            tokenizer,
        })
    }

    /// Tokens including the added ones.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// `tokenizer(text).input_ids`: `[CLS] … [SEP]`.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| ModelError::Invalid(format!("cannot tokenize {text:?}: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The tokens of `encode`, as strings.
    pub fn tokens(&self, text: &str) -> Result<Vec<String>> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| ModelError::Invalid(format!("cannot tokenize {text:?}: {e}")))?;
        Ok(encoding.get_tokens().to_vec())
    }

    /// A caption prompt as BLIP's `generate` feeds it: `[DEC]` in place of `[CLS]`, the
    /// trailing `[SEP]` dropped (`"a picture of "` → `[DEC] a picture of`).
    pub fn caption_prompt(&self, prompt: &str) -> Result<Vec<u32>> {
        let mut ids = self.encode(prompt)?;
        ids.pop();
        if let Some(first) = ids.first_mut() {
            *first = self.bos_id;
        }
        Ok(ids)
    }

    /// `decode(ids, skip_special_tokens=…)`.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        let text = self
            .tokenizer
            .decode(ids, skip_special_tokens)
            .map_err(|e| ModelError::Invalid(format!("cannot decode {ids:?}: {e}")))?;
        Ok(if self.clean_up_tokenization_spaces {
            clean_up_tokenization(&text)
        } else {
            text
        })
    }
}

/// transformers' `clean_up_tokenization`: no space before punctuation and English
/// contractions.
pub fn clean_up_tokenization(text: &str) -> String {
    text.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}

/// Token → id from `vocab.txt` (one token a line, the line number is the id).
fn read_vocab(path: &Path) -> Result<HashMap<String, u32>> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    let mut vocab = HashMap::new();
    for (i, line) in brainrecon_core::text::without_bom(&text)
        .lines()
        .enumerate()
    {
        let token = line.trim_end_matches('\r');
        if vocab.insert(token.to_string(), i as u32).is_some() {
            return Err(ModelError::Tokenizer {
                path: path.to_path_buf(),
                message: format!("token {token:?} appears twice (line {})", i + 1),
            });
        }
    }
    Ok(vocab)
}

/// Added tokens with fixed ids: `added_tokens.json` ({token: id}) and `tokenizer_config.json`'s
/// `added_tokens_decoder` ({id: {content, ...}}).
fn added_tokens(dir: &Path) -> Result<Vec<(String, u32)>> {
    let mut found = Vec::new();
    let path = dir.join("added_tokens.json");
    if path.is_file() {
        // Ordered, so tokens register (and conflicts are named) the same way on every run.
        let map: BTreeMap<String, u32> = read_json(&path, "added tokens")?;
        found.extend(map);
    }
    let path = dir.join("tokenizer_config.json");
    if path.is_file() {
        let value: Value = read_json(&path, "tokenizer config")?;
        if let Some(Value::Object(decoder)) = value.get("added_tokens_decoder") {
            for (id, entry) in decoder {
                let bad = || ModelError::Tokenizer {
                    path: path.clone(),
                    message: format!("added_tokens_decoder entry {id}: {entry} is not a token"),
                };
                let id: u32 = id.parse().map_err(|_| bad())?;
                found.push((token_text(entry).ok_or_else(bad)?, id));
            }
        }
    }
    Ok(found)
}

/// BERT's pipeline over `vocab.txt`.
fn from_vocab(vocab_path: &Path, dir: &Path, names: &SpecialNames) -> Result<Tokenizer> {
    if !vocab_path.is_file() {
        return Err(ModelError::MissingFile {
            path: vocab_path.to_path_buf(),
            what: format!(
                "a BLIP tokenizer needs tokenizer.json or vocab.txt in {}",
                dir.display()
            ),
        });
    }
    let mut vocab = read_vocab(vocab_path)?;
    let mut special: Vec<String> = vec![
        names.pad.clone(),
        names.unk.clone(),
        names.cls.clone(),
        names.sep.clone(),
        names.mask.clone(),
    ];
    for (token, id) in added_tokens(dir)? {
        match vocab.get(&token) {
            Some(&have) if have != id => {
                return Err(ModelError::Tokenizer {
                    path: dir.to_path_buf(),
                    message: format!("added token {token} has id {id}, vocab.txt says {have}"),
                })
            }
            _ => {
                vocab.insert(token.clone(), id);
            }
        }
        special.push(token);
    }
    let cls = (names.cls.clone(), id_of(&vocab, &names.cls, vocab_path)?);
    let sep = (names.sep.clone(), id_of(&vocab, &names.sep, vocab_path)?);
    id_of(&vocab, &names.unk, vocab_path)?;
    // the tokenizers crate's own map type, filled from the checked one
    let mut model_vocab =
        WordPiece::read_file(&vocab_path.to_string_lossy()).map_err(|e| ModelError::Tokenizer {
            path: vocab_path.to_path_buf(),
            message: e.to_string(),
        })?;
    model_vocab.clear();
    model_vocab.extend(vocab);
    let model = WordPiece::builder()
        .vocab(model_vocab)
        .unk_token(names.unk.clone())
        .continuing_subword_prefix("##".into())
        .max_input_chars_per_word(100)
        .build()
        .map_err(|e| ModelError::Tokenizer {
            path: vocab_path.to_path_buf(),
            message: e.to_string(),
        })?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_normalizer(Some(BertNormalizer::new(
            true,
            names.tokenize_chinese_chars,
            names.strip_accents,
            names.do_lower_case,
        )))
        .with_pre_tokenizer(Some(BertPreTokenizer))
        .with_post_processor(Some(BertProcessing::new(sep, cls)))
        .with_decoder(Some(WordPieceDecoder::new("##".into(), true)));
    let added: Vec<AddedToken> = special
        .into_iter()
        .filter(|t| vocab_contains(&tokenizer, t))
        .map(|t| AddedToken::from(t, true))
        .collect();
    tokenizer.add_special_tokens(&added);
    Ok(tokenizer)
}

fn vocab_contains(tokenizer: &Tokenizer, token: &str) -> bool {
    tokenizer.token_to_id(token).is_some()
}

fn id_of(vocab: &HashMap<String, u32>, token: &str, path: &Path) -> Result<u32> {
    vocab
        .get(token)
        .copied()
        .ok_or_else(|| ModelError::Tokenizer {
            path: PathBuf::from(path),
            message: format!("{token} is not in the vocabulary"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_matches_transformers() {
        assert_eq!(
            clean_up_tokenization("the dog ' s ball , is n't here ."),
            "the dog's ball, isn't here."
        );
    }

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = BlipTokenizer::from_dir(dir.path()).unwrap_err();
        assert!(e.to_string().contains("vocab.txt"), "{e}");
        std::fs::write(dir.path().join("vocab.txt"), "[PAD]\nhello\n").unwrap();
        let e = BlipTokenizer::from_dir(dir.path()).unwrap_err();
        assert!(e.to_string().contains("[CLS]"), "{e}");
    }
}
