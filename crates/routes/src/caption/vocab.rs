//! The word list of the project's captioner: BERT's layout of special tokens (so BLIP's ids
//! hold: [PAD] 0, [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103), every word of the synthetic
//! scenes' captions and of the prompt, then BLIP's added `[DEC]` (bos) and `[ENC]`.

use crate::error::Result;
use brainrecon_core::fs::write_json_atomic;
use brainrecon_zoo::shapes_ldm::caption_words;
use std::path::Path;

/// BLIP's captioning prompt (the published code's `prompt = 'a picture of '`).
pub const PROMPT: &str = "a picture of ";

/// The vocabulary, one token per line of `vocab.txt`, in id order.
pub fn captioner_vocab() -> Vec<String> {
    let mut tokens: Vec<String> = vec!["[PAD]".into()];
    tokens.extend((0..99).map(|i| format!("[unused{i}]")));
    tokens.extend(["[UNK]", "[CLS]", "[SEP]", "[MASK]"].map(String::from));
    let mut words = caption_words();
    words.extend(PROMPT.split_whitespace().map(String::from));
    words.sort_unstable();
    words.dedup();
    tokens.extend(words);
    tokens.extend(["[DEC]", "[ENC]"].map(String::from));
    tokens
}

/// Writes `vocab.txt` and `tokenizer_config.json` (BertTokenizer, lower case, `[DEC]` as bos,
/// `[ENC]` as an extra special token), as BLIP's processor saves them.
pub fn write_tokenizer_files(dir: &Path, tokens: &[String]) -> Result<()> {
    let vocab = dir.join("vocab.txt");
    let mut text = tokens.join("\n");
    text.push('\n');
    brainrecon_core::fs::write_bytes_atomic(&vocab, text.as_bytes())?;
    write_json_atomic(
        &dir.join("tokenizer_config.json"),
        &serde_json::json!({
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": true,
            "bos_token": "[DEC]",
            "cls_token": "[CLS]",
            "sep_token": "[SEP]",
            "pad_token": "[PAD]",
            "unk_token": "[UNK]",
            "mask_token": "[MASK]",
            "extra_special_tokens": ["[ENC]"],
            "model_max_length": 512,
        }),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vocabulary_keeps_bert_ids_and_has_every_caption_word() {
        let tokens = captioner_vocab();
        assert_eq!(tokens[0], "[PAD]");
        assert_eq!(tokens[100], "[UNK]");
        assert_eq!(tokens[101], "[CLS]");
        assert_eq!(tokens[102], "[SEP]");
        assert_eq!(tokens[103], "[MASK]");
        assert_eq!(tokens[tokens.len() - 2], "[DEC]");
        for word in caption_words().iter().chain(&["picture".to_string()]) {
            assert!(tokens.contains(word), "{word}");
        }
        let mut sorted = tokens.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), tokens.len(), "no token twice");
    }
}
