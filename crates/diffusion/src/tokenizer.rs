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

use brainrecon_nn::{ModelError, Result};

/// CLIP's pre-tokenization pattern.
const CLIP_PATTERN: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// The special tokens and the fixed length.
#[derive(Clone, Debug)]
pub struct SpecialTokens {
    /// BOS token (`<|startoftext|>`).
    pub bos: String,
    /// EOS token (`<|endoftext|>`).
    pub eos: String,
    /// Padding token (EOS for SD1, `!` for SD2).
    pub pad: String,
    /// Unknown-word token.
    pub unk: String,
    /// Ids per prompt, padding included (77).
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
            let value: serde_json::Value =
                brainrecon_nn::weights::read_json(&path, "tokenizer config")?;
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
    /// Id of the BOS token.
    pub bos_id: u32,
    /// Id of the EOS token.
    pub eos_id: u32,
    /// Id of the padding token.
    pub pad_id: u32,
    /// Ids per encoded prompt (77 for SD).
    pub max_length: usize,
    source: std::path::PathBuf,
}

fn tok_err(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer {
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
                return Err(ModelError::MissingFile {
                    path: path.clone(),
                    what: format!("{what} (a tokenizer folder needs tokenizer.json or vocab.json + merges.txt)"),
                });
            }
        }
        Self::from_vocab_merges(&vocab, &merges, specials)
    }

    /// `vocab.json` (token → id) and `merges.txt` (`#version` line, then `a b` per line).
    pub fn from_vocab_merges(vocab: &Path, merges: &Path, specials: SpecialTokens) -> Result<Self> {
        let vocab_map: HashMap<String, u32> =
            brainrecon_nn::weights::read_json(vocab, "BPE vocabulary")?;
        let text = std::fs::read_to_string(merges).map_err(|e| ModelError::io(merges, e))?;
        let mut pairs = Vec::new();
        for (n, line) in brainrecon_core::text::without_bom(&text)
            .lines()
            .enumerate()
        {
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
        let file = std::fs::File::open(gz).map_err(|e| ModelError::io(gz, e))?;
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

    /// Tokens in the vocabulary, added tokens included.
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

    /// [`ClipTokenizer::encode`] of each prompt.
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

/// A CLIP BPE vocabulary in which every word of `words` is one token: the 256 byte symbols
/// and the same with `</w>` (so any text still tokenizes), then for each word the merges that
/// join its symbols left to right, then BOS and EOS. For a model trained on a small caption
/// vocabulary (a few hundred tokens instead of CLIP's 49 408).
pub fn word_level_bpe(words: &[&str]) -> (Vec<String>, Vec<(String, String)>) {
    let bytes = bytes_to_unicode();
    let mut tokens: Vec<String> = bytes.iter().map(|c| c.to_string()).collect();
    tokens.extend(bytes.iter().map(|c| format!("{c}</w>")));
    // The table is in vocabulary order; GPT-2's map sends a printable byte to the character
    // with its own code and the others, in byte order, to U+0100 onwards.
    let printable = |b: u32| {
        (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b)
    };
    let mut next = 0x100;
    let by_byte: Vec<char> = (0u32..256)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).expect("byte")
            } else {
                next += 1;
                char::from_u32(next - 1).expect("code point")
            }
        })
        .collect();
    let mut known: std::collections::HashSet<String> = tokens.iter().cloned().collect();
    let mut merges: Vec<(String, String)> = Vec::new();
    let mut sorted: Vec<&str> = words.iter().copied().filter(|w| !w.is_empty()).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let symbols_of = |word: &str| -> Vec<String> {
        let mut symbols: Vec<String> = word
            .bytes()
            .map(|b| by_byte[b as usize].to_string())
            .collect();
        let last = symbols.pop().expect("non-empty word");
        symbols.push(format!("{last}</w>"));
        symbols
    };
    // Merges that join each word's pieces left to right. A merge added for one word can split
    // another (BPE applies the lowest-ranked pair first), so repeat on what BPE actually makes
    // of every word until each is one token; merges added later rank last and only apply
    // where nothing else does.
    for _round in 0..64 {
        let ranks: HashMap<(String, String), usize> = merges
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, pair)| (pair, i))
            .collect();
        let mut changed = false;
        for word in &sorted {
            let pieces = apply_merges(symbols_of(word), &ranks);
            let mut joined = pieces[0].clone();
            for piece in &pieces[1..] {
                let merged = format!("{joined}{piece}");
                if known.insert(merged.clone()) {
                    tokens.push(merged.clone());
                }
                merges.push((joined.clone(), piece.clone()));
                changed = true;
                joined = merged;
            }
        }
        if !changed {
            break;
        }
        // A pair may have been added twice in one round: keep its first rank.
        let mut seen = std::collections::HashSet::new();
        merges.retain(|pair| seen.insert(pair.clone()));
    }
    tokens.push("<|startoftext|>".into());
    tokens.push("<|endoftext|>".into());
    (tokens, merges)
}

/// BPE on one word's symbols: repeatedly join the adjacent pair with the lowest rank.
fn apply_merges(mut symbols: Vec<String>, ranks: &HashMap<(String, String), usize>) -> Vec<String> {
    loop {
        let best = (0..symbols.len().saturating_sub(1))
            .filter_map(|i| {
                ranks
                    .get(&(symbols[i].clone(), symbols[i + 1].clone()))
                    .map(|&r| (r, i))
            })
            .min();
        let Some((_, i)) = best else {
            return symbols;
        };
        let right = symbols.remove(i + 1);
        symbols[i].push_str(&right);
    }
}

/// Writes a diffusers `tokenizer/` folder (`vocab.json`, `merges.txt`,
/// `tokenizer_config.json`) for `tokens` (ids in order) and ranked `merges`; it pads with
/// `<|endoftext|>` to `max_length`, as SD1's tokenizer.
pub fn write_tokenizer_folder(
    dir: &Path,
    tokens: &[String],
    merges: &[(String, String)],
    max_length: usize,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let vocab: serde_json::Map<String, serde_json::Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), serde_json::Value::from(i)))
        .collect();
    let mut merges_text = String::from("#version: 0.2\n");
    for (a, b) in merges {
        merges_text.push_str(&format!("{a} {b}\n"));
    }
    let config = serde_json::json!({
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": max_length,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "do_lower_case": true,
    });
    let files = [
        ("vocab.json", serde_json::to_string(&vocab).expect("JSON")),
        ("merges.txt", merges_text),
        (
            "tokenizer_config.json",
            serde_json::to_string_pretty(&config).expect("JSON"),
        ),
    ];
    for (name, text) in files {
        brainrecon_core::fs::write_bytes_atomic(&dir.join(name), text.as_bytes())?;
    }
    Ok(())
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

    #[test]
    fn a_word_level_vocabulary_makes_every_caption_word_one_token() {
        use brainrecon_simulate::scene::Scene;
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let captions: Vec<String> = (0..400)
            .flat_map(|_| Scene::random(&mut rng).captions(&mut rng))
            .collect();
        let mut words: Vec<&str> = captions.iter().flat_map(|c| c.split(' ')).collect();
        words.sort_unstable();
        words.dedup();
        let (tokens, merges) = word_level_bpe(&words);
        assert!(tokens.len() < 1000, "{} tokens", tokens.len());
        let dir = tempfile::tempdir().unwrap();
        write_tokenizer_folder(dir.path(), &tokens, &merges, 24).unwrap();
        let tokenizer = ClipTokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(tokenizer.vocab_size(), tokens.len());
        assert_eq!(tokenizer.max_length, 24);
        for caption in &captions {
            let ids = tokenizer.tokens(caption).unwrap();
            let expected: Vec<u32> = caption
                .split(' ')
                .map(|w| {
                    tokens
                        .iter()
                        .position(|t| *t == format!("{w}</w>"))
                        .unwrap_or_else(|| panic!("no token for {w:?}")) as u32
                })
                .collect();
            assert_eq!(ids, expected, "{caption}");
        }
        // Words outside the vocabulary still tokenize, into smaller pieces.
        assert!(tokenizer.tokens("zebra").unwrap().len() > 1);
        let ids = tokenizer.encode("a red circle").unwrap();
        assert_eq!(ids.len(), 24);
        assert_eq!(ids[0], tokenizer.bos_id);
    }
}
