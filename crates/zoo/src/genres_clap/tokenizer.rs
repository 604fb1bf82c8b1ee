//! genres-clap's tokenizer: a RoBERTa byte-level BPE (the same kind of vocabulary and merges
//! as `roberta-base`'s, with `<s> <pad> </s> <unk> <mask>` as ids 0–4) trained on captions of
//! the training stream with the `tokenizers` crate's BPE trainer, written as transformers'
//! `tokenizer.json` + `tokenizer_config.json` so that
//! [`brainrecon_language::roberta::RobertaTokenizer`] (and transformers' `AutoTokenizer`)
//! read it as they read `laion/clap-htsat-unfused`'s.

use std::path::Path;

use brainrecon_nn::{ModelError, Result};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{AddedToken, TokenizerBuilder, TokenizerImpl};

/// RoBERTa's special tokens, in id order (`<pad>` = 1 is RoBERTa's `pad_token_id`).
pub const SPECIAL_TOKENS: [&str; 5] = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"];

/// The longest tokenised caption the model takes (`model_max_length`, `<s>` and `</s>`
/// included).
pub const MAX_TOKENS: usize = 62;

type Bpe = TokenizerImpl<BPE, NormalizerWrapper, ByteLevel, RobertaProcessing, ByteLevelDecoder>;

fn tokenizer_error(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Trains the BPE on `texts` (at most `vocab_size` tokens; a merge needs two occurrences)
/// and writes `dir/tokenizer.json` and `dir/tokenizer_config.json`. Returns the vocabulary
/// size. The same texts always give the same files.
pub fn train_tokenizer(texts: &[String], vocab_size: usize, dir: &Path) -> Result<usize> {
    let path = dir.join("tokenizer.json");
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(
            SPECIAL_TOKENS
                .iter()
                .map(|t| AddedToken::from(t.to_string(), true))
                .collect(),
        )
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tokenizer: Bpe = TokenizerBuilder::new()
        .with_model(BPE::default())
        .with_normalizer(None)
        .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
        .with_post_processor(Some(RobertaProcessing::new(
            ("</s>".into(), 2),
            ("<s>".into(), 0),
        )))
        .with_decoder(Some(ByteLevelDecoder::default()))
        .build()
        .map_err(|e| tokenizer_error(&path, e))?;
    tokenizer
        .train(&mut trainer, texts.iter())
        .map_err(|e| tokenizer_error(&path, e))?;
    for (id, token) in SPECIAL_TOKENS.iter().enumerate() {
        if tokenizer.token_to_id(token) != Some(id as u32) {
            return Err(tokenizer_error(
                &path,
                format!("the trained vocabulary does not put {token} at id {id}"),
            ));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let json = tokenizer
        .to_string(true)
        .map_err(|e| tokenizer_error(&path, e))?;
    std::fs::write(&path, json).map_err(|e| ModelError::io(&path, e))?;
    let config_path = dir.join("tokenizer_config.json");
    let config = serde_json::json!({
        "tokenizer_class": "RobertaTokenizer",
        "model_max_length": MAX_TOKENS,
        "add_prefix_space": false,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "cls_token": "<s>",
        "sep_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
    });
    let text = serde_json::to_string_pretty(&config)
        .map_err(|e| ModelError::Invalid(format!("tokenizer config: {e}")))?;
    std::fs::write(&config_path, text + "\n").map_err(|e| ModelError::io(&config_path, e))?;
    Ok(tokenizer.get_vocab_size(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use brainrecon_language::roberta::RobertaTokenizer;

    #[test]
    fn a_trained_tokenizer_is_deterministic_and_reads_as_roberta() {
        let texts: Vec<String> = (0..200)
            .map(|i| {
                brainrecon_simulate::music::StreamClip::new(1, i)
                    .caption
                    .clone()
            })
            .collect();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let n = train_tokenizer(&texts, 400, a.path()).unwrap();
        train_tokenizer(&texts, 400, b.path()).unwrap();
        let read = |d: &Path| std::fs::read(d.join("tokenizer.json")).unwrap();
        assert_eq!(read(a.path()), read(b.path()));
        assert!(n > 256 + 5 && n <= 400, "{n}");
        let tok = RobertaTokenizer::from_dir(a.path()).unwrap();
        let ids = tok.encode(&texts[0]).unwrap();
        assert_eq!((ids[0], *ids.last().unwrap(), tok.pad_id()), (0, 2, 1));
        // Merges join the grammar's frequent words: far fewer ids than bytes.
        assert!(ids.len() < texts[0].len() / 2, "{} ids", ids.len());
    }
}
