//! CLIP's byte-level BPE tokenizer, as transformers' `CLIPTokenizer` runs it.
//!
//! Built with the `tokenizers` crate from, in order of preference, `tokenizer/tokenizer.json`
//! or `tokenizer/vocab.json` + `tokenizer/merges.txt` (what diffusers folders ship), or from
//! open_clip's `bpe_simple_vocab_16e6.txt.gz`. The pipeline mirrors transformers 5: NFC,
//! whitespace runs → one space, lowercase; split on CLIP's pattern (`'s|'t|…|[\p{L}]+|[\p{N}]|
//! [^\s\p{L}\p{N}]+`); byte-level; BPE with the `</w>` end-of-word suffix.
//!
//! Every prompt becomes exactly `max_length` (77) ids: BOS, at most 75 tokens, EOS, then the
//! pad id. The pad token comes from `tokenizer_config.json` / `special_tokens_map.json`:
//! SD1 pads with `<|endoftext|>` (49407), SD2 with `!` (0).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::replace::ReplacePattern;
use tokenizers::normalizers::{Lowercase, Replace, Sequence as NormalizerSequence, NFC};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use crate::weights::{DiffusionError, Result};

/// CLIP's pre-tokenization pattern.
const CLIP_PATTERN: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// The special tokens and the fixed length.
#[derive(Clone, Debug)]
pub struct SpecialTokens {
    pub bos: String,
    pub eos: String,
    pub pad: String,
    pub unk: String,
    pub max_length: usize,
}

impl Default for SpecialTokens {
    fn default() -> Self {
        SpecialTokens {
            bos: "<|startoftext|>".into(),
            eos: "<|endoftext|>".into(),
            pad: "<|endoftext|>".into(),
            unk: "<|endoftext|>".into(),
            max_length: 77,
        }
    }
}

impl SpecialTokens {
    /// SD2's tokenizer pads with `!`.
    pub fn sd2() -> Self {
        SpecialTokens {
            pad: "!".into(),
            ..Default::default()
        }
    }

    /// Reads `tokenizer_config.json` then `special_tokens_map.json` (later keys win) from a
    /// tokenizer folder; absent files or keys keep CLIP's defaults.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let mut tokens = SpecialTokens::default();
        for file in ["tokenizer_config.json", "special_tokens_map.json"] {
            let path = dir.join(file);
            if !path.is_file() {
                continue;
            }
            let value: serde_json::Value = crate::weights::read_json(&path, "tokenizer config")?;
            let text = |key: &str| -> Option<String> {
                match value.get(key)? {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Object(o) => o.get("content")?.as_str().map(String::from),
                    _ => None,
                }
            };
            if let Some(v) = text("bos_token") {
                tokens.bos = v;
            }
            if let Some(v) = text("eos_token") {
                tokens.eos = v;
            }
            if let Some(v) = text("pad_token") {
                tokens.pad = v;
            }
            if let Some(v) = text("unk_token") {
                tokens.unk = v;
            }
            if let Some(n) = value.get("model_max_length").and_then(|v| v.as_u64()) {
                // transformers writes a huge sentinel when no length is set.
                if (2..=1 << 20).contains(&n) {
                    tokens.max_length = n as usize;
                }
            }
        }
        Ok(tokens)
    }
}

/// A CLIP tokenizer with padding and truncation to a fixed length.
pub struct ClipTokenizer {
    tokenizer: Tokenizer,
    pub bos_id: u32,
    pub eos_id: u32,
    pub pad_id: u32,
    pub max_length: usize,
    source: std::path::PathBuf,
}

fn tok_err(path: &Path, e: impl std::fmt::Display) -> DiffusionError {
    DiffusionError::Tokenizer {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl ClipTokenizer {
    /// A diffusers `tokenizer/` folder: `tokenizer.json`, else `vocab.json` + `merges.txt`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let specials = SpecialTokens::from_dir(dir)?;
        let json = dir.join("tokenizer.json");
        if json.is_file() {
            let tokenizer = Tokenizer::from_file(&json).map_err(|e| tok_err(&json, e))?;
            return Self::finish(tokenizer, specials, &json);
        }
        let vocab = dir.join("vocab.json");
        let merges = dir.join("merges.txt");
        for (path, what) in [(&vocab, "the BPE vocabulary"), (&merges, "the BPE merges")] {
            if !path.is_file() {
                return Err(DiffusionError::MissingFile {
                    path: path.clone(),
                    what: format!("{what} (a tokenizer folder needs tokenizer.json or vocab.json + merges.txt)"),
                });
            }
        }
        Self::from_vocab_merges(&vocab, &merges, specials)
    }

    /// `vocab.json` (token → id) and `merges.txt` (`#version` line, then `a b` per line).
    pub fn from_vocab_merges(vocab: &Path, merges: &Path, specials: SpecialTokens) -> Result<Self> {
        let vocab_map: HashMap<String, u32> = crate::weights::read_json(vocab, "BPE vocabulary")?;
        let text = std::fs::read_to_string(merges).map_err(|e| DiffusionError::io(merges, e))?;
        let mut pairs = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if (n == 0 && line.starts_with("#version")) || line.trim().is_empty() {
                continue;
            }
            let mut parts = line.split(' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(a), Some(b), None) => pairs.push((a.to_string(), b.to_string())),
                _ => {
                    return Err(tok_err(
                        merges,
                        format!("line {}: expected two tokens separated by a space", n + 1),
                    ))
                }
            }
        }
        Self::from_parts(vocab_map, pairs, specials, merges)
    }

    /// open_clip's `bpe_simple_vocab_16e6.txt.gz`: the vocabulary is the 256 byte symbols,
    /// the same with `</w>`, the first 48 894 merges, then BOS and EOS (49 408 tokens).
    pub fn from_open_clip_bpe(gz: &Path, specials: SpecialTokens) -> Result<Self> {
        let file = std::fs::File::open(gz).map_err(|e| DiffusionError::io(gz, e))?;
        let mut text = String::new();
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .map_err(|e| tok_err(gz, format!("not a gzip text file: {e}")))?;
        let lines: Vec<&str> = text.split('\n').collect();
        let n_merges = 49152 - 256 - 2;
        if lines.len() < n_merges + 1 {
            return Err(tok_err(
                gz,
                format!("{} lines, expected at least {}", lines.len(), n_merges + 1),
            ));
        }
        let mut pairs = Vec::with_capacity(n_merges);
        for line in &lines[1..=n_merges] {
            let mut parts = line.split_whitespace();
            match (parts.next(), parts.next()) {
                (Some(a), Some(b)) => pairs.push((a.to_string(), b.to_string())),
                _ => return Err(tok_err(gz, format!("bad merge line '{line}'"))),
            }
        }
        let bytes = bytes_to_unicode();
        let mut tokens: Vec<String> = bytes.iter().map(|c| c.to_string()).collect();
        tokens.extend(bytes.iter().map(|c| format!("{c}</w>")));
        tokens.extend(pairs.iter().map(|(a, b)| format!("{a}{b}")));
        tokens.push("<|startoftext|>".into());
        tokens.push("<|endoftext|>".into());
        let vocab: HashMap<String, u32> = tokens
            .into_iter()
            .enumerate()
            .map(|(i, t)| (t, i as u32))
            .collect();
        Self::from_parts(vocab, pairs, specials, gz)
    }

    /// A CLIP tokenizer from a vocabulary and ranked merges.
    pub fn from_parts(
        vocab: HashMap<String, u32>,
        merges: Vec<(String, String)>,
        specials: SpecialTokens,
        source: &Path,
    ) -> Result<Self> {
        let bpe = BPE::builder()
            .vocab_and_merges(vocab.into_iter().collect::<Vocab>(), merges)
            .unk_token(specials.unk.clone())
            .end_of_word_suffix("</w>".into())
            .fuse_unk(false)
            .build()
            .map_err(|e| tok_err(source, e))?;
        let mut tokenizer = Tokenizer::new(bpe);
        let replace = Replace::new(ReplacePattern::Regex(r"\s+".into()), " ")
            .map_err(|e| tok_err(source, e))?;
        tokenizer.with_normalizer(Some(NormalizerSequence::new(vec![
            NFC.into(),
            replace.into(),
            Lowercase.into(),
        ])));
        let split = Split::new(
            SplitPattern::Regex(CLIP_PATTERN.into()),
            SplitDelimiterBehavior::Removed,
            true,
        )
        .map_err(|e| tok_err(source, e))?;
        tokenizer.with_pre_tokenizer(Some(PreTokenizerSequence::new(vec![
            split.into(),
            ByteLevel::new(false, true, true).into(),
        ])));
        tokenizer.with_decoder(Some(ByteLevel::default()));
        // transformers registers every special token, the pad token included, as an added
        // token matched before BPE: with SD2's pad `!`, a `!` in a prompt becomes id 0.
        tokenizer.add_special_tokens(&[
            AddedToken::from(specials.bos.clone(), true),
            AddedToken::from(specials.eos.clone(), true),
            AddedToken::from(specials.unk.clone(), true),
            AddedToken::from(specials.pad.clone(), true),
        ]);
        Self::finish(tokenizer, specials, source)
    }

    fn finish(tokenizer: Tokenizer, specials: SpecialTokens, source: &Path) -> Result<Self> {
        let id = |token: &str, what: &str| {
            tokenizer.token_to_id(token).ok_or_else(|| {
                tok_err(
                    source,
                    format!("the {what} token '{token}' is not in the vocabulary"),
                )
            })
        };
        let bos_id = id(&specials.bos, "BOS")?;
        let eos_id = id(&specials.eos, "EOS")?;
        let pad_id = id(&specials.pad, "pad")?;
        Ok(ClipTokenizer {
            tokenizer,
            bos_id,
            eos_id,
            pad_id,
            max_length: specials.max_length,
            source: source.to_path_buf(),
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// The ids of `prompt` without BOS, EOS or padding.
    pub fn tokens(&self, prompt: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(prompt, false)
            .map_err(|e| tok_err(&self.source, e))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// BOS, the first `max_length - 2` tokens, EOS, then padding: exactly `max_length` ids.
    pub fn encode(&self, prompt: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(self.max_length);
        ids.push(self.bos_id);
        let tokens = self.tokens(prompt)?;
        let keep = self.max_length.saturating_sub(2).min(tokens.len());
        ids.extend_from_slice(&tokens[..keep]);
        ids.push(self.eos_id);
        ids.resize(self.max_length, self.pad_id);
        Ok(ids)
    }

    pub fn encode_batch(&self, prompts: &[&str]) -> Result<Vec<Vec<u32>>> {
        prompts.iter().map(|p| self.encode(p)).collect()
    }
}

/// GPT-2's reversible map from bytes to printable characters, in CLIP's vocabulary order.
pub fn bytes_to_unicode() -> Vec<char> {
    let mut printable: Vec<u32> = (u32::from('!')..=u32::from('~'))
        .chain(u32::from('¡')..=u32::from('¬'))
        .chain(u32::from('®')..=u32::from('ÿ'))
        .collect();
    let mut chars: Vec<u32> = printable.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + n);
            n += 1;
        }
    }
    chars
        .into_iter()
        .map(|c| char::from_u32(c).expect("valid code point"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_matches_gpt2() {
        let table = bytes_to_unicode();
        assert_eq!(table.len(), 256);
        assert_eq!(table[0], '!');
        // Byte 0 (not printable) maps to U+0100, and comes after the 188 printable bytes.
        assert_eq!(table[188], '\u{100}');
        assert_eq!(table[255], '\u{143}');
    }
}
