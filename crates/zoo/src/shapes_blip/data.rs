//! shapes-blip's data: the synthetic scenes of shapes-ldm (never its held-out tenth) with
//! their captions, the captioner's vocabulary (BERT's special tokens, every caption word, BLIP's
//! `[DEC]` and `[ENC]`), and the batches of the first training stage.

use brainrecon_core::fs::write_json_atomic;
use brainrecon_formats::image::RgbImage;
use brainrecon_nn::Result;
use brainrecon_simulate::scene::{Scene, N_SCENES};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::Path;

use super::config::CaptionerConfig;
use crate::shapes_ldm::{caption_words, is_held_out, training_scene};

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

/// Every scene the captioner trains on (not held out), in id order.
pub fn training_scenes() -> Vec<Scene> {
    (0..N_SCENES)
        .map(Scene::from_id)
        .filter(|s| !is_held_out(s))
        .collect()
}

/// Images [B, 3, S, S] in [0, 1] (ToTensor without normalisation).
pub fn unit_pixels(images: &[RgbImage], device: &Device) -> Result<Tensor> {
    let s = images[0].height;
    let mut values = Vec::with_capacity(images.len() * 3 * s * s);
    for image in images {
        for c in 0..3 {
            values.extend((0..s * s).map(|p| image.pixels[p * 3 + c] as f32 / 255.0));
        }
    }
    Ok(Tensor::from_vec(values, (images.len(), 3, s, s), device)?)
}

/// Token ids of `[DEC]` + prompt + caption + `[SEP]`, and the number of prompt ids
/// (`[DEC]` included): every caption word is one token of the vocabulary.
pub fn caption_ids(caption: &str, index: &HashMap<&str, u32>) -> (Vec<u32>, usize) {
    let mut ids = vec![index["[DEC]"]];
    ids.extend(PROMPT.split_whitespace().map(|w| index[w]));
    let prompt = ids.len();
    ids.extend(caption.split_whitespace().map(|w| index[w]));
    ids.push(index["[SEP]"]);
    (ids, prompt)
}

/// The batch of step `step`: images and (caption ids, prompt length), one caption of five.
pub(crate) fn training_batch(
    config: &CaptionerConfig,
    seed: u64,
    step: usize,
    index: &HashMap<&str, u32>,
) -> (Vec<RgbImage>, Vec<(Vec<u32>, usize)>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xCA97_0000 ^ step as u64);
    (0..config.batch)
        .map(|k| {
            let (scene, captions) = training_scene(seed ^ 0xB11F, (step * config.batch + k) as u64);
            let caption = &captions[rng.gen_range(0..captions.len())];
            (scene.render(config.image_size), caption_ids(caption, index))
        })
        .unzip()
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
