//! Golden tests of the BLIP modules against transformers 5 (fixtures from
//! `tools/fixtures/blip.py`: a tiny random `BlipForConditionalGeneration` in `tiny/` and its
//! per-layer outputs in `forward.safetensors`; see the README there).

use std::collections::HashMap;
use std::path::PathBuf;

use brainrecon_language::blip::{
    interpolate_position_table, AttentionMode, BlipForConditionalGeneration, TextInputs,
};
use brainrecon_language::generate::NextTokenLogits;
use brainrecon_language::wordpiece::BlipTokenizer;
use brainrecon_testkit::tensor::assert_close_scaled;
use candle_core::{DType, Device, Tensor};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/blip")
}

fn tensors() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixtures().join("forward.safetensors"), &Device::Cpu).unwrap()
}

fn model() -> BlipForConditionalGeneration {
    BlipForConditionalGeneration::load(fixtures().join("tiny").to_str().unwrap(), &Device::Cpu)
        .unwrap()
}

/// max |got − want| ≤ rtol · max |want| (f32 against transformers' f32).
fn assert_close(what: &str, got: &Tensor, want: &Tensor, rtol: f32) {
    assert_close_scaled(what, got, want, rtol, 0.0);
}

const RTOL: f32 = 1e-5;

#[test]
fn vision_tower_matches_every_hidden_state() {
    let (m, t) = (model(), tensors());
    let out = m
        .vision_model
        .forward_full(&t["vision.pixel_values"])
        .unwrap();
    assert_eq!(out.hidden_states.len(), 3);
    for (i, h) in out.hidden_states.iter().enumerate() {
        assert_close(
            &format!("vision.hidden_states.{i}"),
            h,
            &t[&format!("vision.hidden_states.{i}")],
            RTOL,
        );
    }
    assert_close(
        "vision.last_hidden_state",
        &out.last_hidden_state,
        &t["vision.last_hidden_state"],
        RTOL,
    );
    assert_close(
        "vision.pooler_output",
        &out.pooler_output,
        &t["vision.pooler_output"],
        RTOL,
    );
    let fast = m.image_embeds(&t["vision.pixel_values"]).unwrap();
    assert_close("image_embeds", &fast, &t["vision.last_hidden_state"], RTOL);
}

#[test]
fn position_table_interpolates_as_torch_bicubic() {
    let (m, t) = (model(), tensors());
    let table =
        interpolate_position_table(&m.vision_model.embeddings.position_embedding, 6, 6).unwrap();
    assert_close(
        "vision36.position_embedding",
        &table,
        &t["vision36.position_embedding"],
        RTOL,
    );
    // 36-px images take the resized table automatically (5×5 grid stored, 6×6 patches given)
    let out = m
        .vision_model
        .forward_full(&t["vision36.pixel_values"])
        .unwrap();
    for (i, h) in out.hidden_states.iter().enumerate() {
        assert_close(
            &format!("vision36.hidden_states.{i}"),
            h,
            &t[&format!("vision36.hidden_states.{i}")],
            RTOL,
        );
    }
    assert_close(
        "vision36.last_hidden_state",
        &out.last_hidden_state,
        &t["vision36.last_hidden_state"],
        RTOL,
    );
    assert_close(
        "vision36.last_hidden_state_transformers",
        &out.last_hidden_state,
        &t["vision36.last_hidden_state_transformers"],
        RTOL,
    );
}

/// `text_plain.causal` and `text_plain.bidirectional` share `text_plain.input_ids`.
fn ids_key(prefix: &str) -> String {
    let base = prefix.split('.').next().unwrap_or(prefix);
    format!("{base}.input_ids")
}

fn check_text(prefix: &str, m: &BlipForConditionalGeneration, inputs: &TextInputs, logits: bool) {
    let t = tensors();
    let out = m
        .text_decoder
        .forward(
            &t[&ids_key(prefix)],
            &TextInputs {
                output_hidden_states: true,
                ..*inputs
            },
        )
        .unwrap();
    assert_eq!(out.hidden_states.len(), 3);
    for (i, h) in out.hidden_states.iter().enumerate() {
        let key = format!("{prefix}.hidden_states.{i}");
        assert_close(&key, h, &t[&key], RTOL);
    }
    if logits {
        let key = format!("{prefix}.logits");
        assert_close(&key, &out.logits, &t[&key], RTOL);
    }
}

#[test]
fn text_decoder_matches_logits_and_hidden_states() {
    let (m, t) = (model(), tensors());
    let image = &t["vision.last_hidden_state"];
    check_text(
        "text",
        &m,
        &TextInputs {
            encoder_hidden_states: Some(image),
            ..Default::default()
        },
        true,
    );
    // the whole model from pixels
    let logits = m
        .forward(&t["vision.pixel_values"], &t["text.input_ids"])
        .unwrap();
    assert_close("forward(pixels, ids)", &logits, &t["text.logits"], RTOL);
}

#[test]
fn cross_attention_to_long_external_states() {
    let (m, t) = (model(), tensors());
    check_text(
        "text_ext",
        &m,
        &TextInputs {
            encoder_hidden_states: Some(&t["text_ext.encoder_hidden_states"]),
            ..Default::default()
        },
        true,
    );
}

#[test]
fn text_tower_without_cross_attention() {
    let m = model();
    check_text("text_plain.causal", &m, &TextInputs::default(), true);
    check_text(
        "text_plain.bidirectional",
        &m,
        &TextInputs {
            mode: AttentionMode::Bidirectional,
            ..Default::default()
        },
        false,
    );
    // text_plain's ids under another prefix
    let t = tensors();
    let ids = &t["text_plain.input_ids"];
    let causal = m.text_decoder.forward(ids, &TextInputs::default()).unwrap();
    let bidir = m
        .text_decoder
        .forward(
            ids,
            &TextInputs {
                mode: AttentionMode::Bidirectional,
                ..Default::default()
            },
        )
        .unwrap();
    let d = (causal.logits - bidir.logits)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(d > 1e-2, "causal and bidirectional must differ");
}

fn ids_rows(t: &Tensor) -> Vec<Vec<u32>> {
    t.to_dtype(DType::U32).unwrap().to_vec2().unwrap()
}

/// Row `r`'s logits at position `p` of a [B, L, V] tensor.
fn row(logits: &Tensor, r: usize, p: usize) -> Tensor {
    logits
        .narrow(0, r, 1)
        .unwrap()
        .narrow(1, p, 1)
        .unwrap()
        .flatten_all()
        .unwrap()
}

#[test]
fn cached_steps_equal_the_full_forward() {
    let (m, t) = (model(), tensors());
    let ids = ids_rows(&t["text_ext.input_ids"]);
    let want = &t["text_ext.logits"];
    let mut session = m
        .caption_session(&t["text_ext.encoder_hidden_states"])
        .unwrap();
    // a 4-token prompt in one step, then one token at a time
    for len in std::iter::once(4).chain(5..=ids[0].len()) {
        let prefix: Vec<Vec<u32>> = ids.iter().map(|r| r[..len].to_vec()).collect();
        let got = session.next_logits(&prefix).unwrap();
        assert_eq!(session.cache().len(), len);
        for (r, logits) in got.iter().enumerate() {
            let got = Tensor::new(logits.as_slice(), &Device::Cpu).unwrap();
            assert_close(
                &format!("step {len} row {r}"),
                &got,
                &row(want, r, len - 1),
                RTOL,
            );
        }
    }
}

#[test]
fn reordered_beams_keep_their_own_cache() {
    let (m, t) = (model(), tensors());
    let ids = ids_rows(&t["text_ext.input_ids"]);
    let states = &t["text_ext.encoder_hidden_states"];
    let mut session = m.caption_session(states).unwrap();
    let prefix: Vec<Vec<u32>> = ids.iter().map(|r| r[..6].to_vec()).collect();
    session.next_logits(&prefix).unwrap();
    // beams: new rows are old rows 1, 0, 0; the two copies of row 0 then diverge
    session.reorder(&[1, 0, 0]).unwrap();
    let mut rows = vec![prefix[1].clone(), prefix[0].clone(), prefix[0].clone()];
    for (r, token) in [7u32, 9, 11].into_iter().enumerate() {
        rows[r].push(token);
    }
    let got = session.next_logits(&rows).unwrap();
    for (r, token) in [13u32, 13, 5].into_iter().enumerate() {
        rows[r].push(token);
    }
    let got2 = session.next_logits(&rows).unwrap();
    // the full forward of those sequences over the matching encoder rows
    let index = Tensor::new(&[1u32, 0, 0], &Device::Cpu).unwrap();
    let states = states.index_select(&index, 0).unwrap();
    let flat: Vec<u32> = rows.iter().flatten().copied().collect();
    let full_ids = Tensor::from_vec(flat, (3, 8), &Device::Cpu).unwrap();
    let full = m
        .text_decoder
        .forward(
            &full_ids,
            &TextInputs {
                encoder_hidden_states: Some(&states),
                ..Default::default()
            },
        )
        .unwrap()
        .logits;
    for r in 0..3 {
        let a = Tensor::new(got[r].as_slice(), &Device::Cpu).unwrap();
        assert_close(&format!("row {r} step 7"), &a, &row(&full, r, 6), RTOL);
        let b = Tensor::new(got2[r].as_slice(), &Device::Cpu).unwrap();
        assert_close(&format!("row {r} step 8"), &b, &row(&full, r, 7), RTOL);
    }
    // a sequence that is not what its row has seen is refused
    let mut wrong = rows.clone();
    wrong[1][2] = 3;
    for r in wrong.iter_mut() {
        r.push(1);
    }
    let e = session.next_logits(&wrong).unwrap_err();
    assert!(e.to_string().contains("sequence 1 differs"), "{e}");
    assert!(session.reorder(&[3]).is_err());
}

#[test]
fn one_image_row_serves_every_beam() {
    let (m, t) = (model(), tensors());
    let image = t["vision.last_hidden_state"].narrow(0, 1, 1).unwrap();
    let prompt = vec![134u32, 108, 111, 113];
    let mut session = m.caption_session(&image).unwrap();
    let got = session.next_logits(&vec![prompt.clone(); 3]).unwrap();
    assert_eq!(got.len(), 3);
    let want = row(&t["text.logits"], 1, 3);
    for r in &got {
        let r = Tensor::new(r.as_slice(), &Device::Cpu).unwrap();
        assert_close("expanded row", &r, &want, RTOL);
    }
    // 2 image rows cannot serve 3 sequences
    let two = t["vision.last_hidden_state"].narrow(0, 0, 2).unwrap();
    let mut session = m.caption_session(&two).unwrap();
    assert!(session.next_logits(&vec![prompt; 3]).is_err());
}

#[derive(serde::Deserialize)]
struct TokenizerCase {
    text: String,
    input_ids: Vec<u32>,
    tokens: Vec<String>,
    decoded_skip_special: String,
}

#[derive(serde::Deserialize)]
struct TokenizerCases {
    prompt_ids: Vec<u32>,
    cases: Vec<TokenizerCase>,
}

fn check_tokenizer(tok: &BlipTokenizer, what: &str) {
    let text = std::fs::read_to_string(fixtures().join("tokenizer_cases.json")).unwrap();
    let cases: TokenizerCases = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (tok.bos_id, tok.sep_id, tok.pad_id, tok.cls_id),
        (134, 102, 0, 101),
        "{what}"
    );
    assert_eq!(tok.vocab_size(), 136, "{what}");
    assert_eq!(
        tok.caption_prompt("a picture of ").unwrap(),
        cases.prompt_ids,
        "{what}"
    );
    for case in &cases.cases {
        let ids = tok.encode(&case.text).unwrap();
        assert_eq!(ids, case.input_ids, "{what}: {:?}", case.text);
        assert_eq!(
            tok.tokens(&case.text).unwrap(),
            case.tokens,
            "{what}: {:?}",
            case.text
        );
        assert_eq!(
            tok.decode(&ids, true).unwrap(),
            case.decoded_skip_special,
            "{what}: {:?}",
            case.text
        );
    }
    // [DEC] and [ENC] are special: skipped when decoding
    assert_eq!(
        tok.decode(&[134, 108, 114, 135, 102], true).unwrap(),
        "a red"
    );
}

#[test]
fn tokenizer_matches_transformers_from_either_file() {
    let tiny = fixtures().join("tiny");
    check_tokenizer(&BlipTokenizer::from_dir(&tiny).unwrap(), "tokenizer.json");
    // vocab.txt + tokenizer_config.json only: BERT's pipeline built here, [DEC]/[ENC] appended
    let dir = tempfile::tempdir().unwrap();
    for f in ["vocab.txt", "tokenizer_config.json"] {
        std::fs::copy(tiny.join(f), dir.path().join(f)).unwrap();
    }
    check_tokenizer(&BlipTokenizer::from_dir(dir.path()).unwrap(), "vocab.txt");
}

fn tiny_tensors() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixtures().join("tiny/model.safetensors"), &Device::Cpu).unwrap()
}

#[test]
fn load_errors_name_the_file_and_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"model_type": "clip", "architectures": ["CLIPModel"]}"#,
    )
    .unwrap();
    let e = BlipForConditionalGeneration::load_dir(dir.path(), &Device::Cpu).unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("config.json") && m.contains("expected \"blip\""),
        "{m}"
    );

    std::fs::copy(fixtures().join("tiny/config.json"), &config).unwrap();
    let e = BlipForConditionalGeneration::load_dir(dir.path(), &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("model.safetensors"), "{e}");

    let mut ts = tiny_tensors();
    ts.remove("vision_model.post_layernorm.weight");
    brainrecon_testkit::tensor::save_safetensors(&ts, dir.path().join("model.safetensors"));
    let e = BlipForConditionalGeneration::load_dir(dir.path(), &Device::Cpu).unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("model.safetensors") && m.contains("vision_model.post_layernorm.weight"),
        "{m}"
    );

    std::fs::write(
        dir.path().join("model.safetensors"),
        b"not a safetensors file",
    )
    .unwrap();
    let e = BlipForConditionalGeneration::load_dir(dir.path(), &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("model.safetensors"), "{e}");
}

#[test]
fn a_stored_decoder_weight_is_used_and_an_absent_one_tied() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("tiny/config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let mut ts = tiny_tensors();
    let words = ts["text_decoder.bert.embeddings.word_embeddings.weight"].clone();
    let own = (&words * 0.5).unwrap();
    ts.insert(
        "text_decoder.cls.predictions.decoder.weight".into(),
        own.clone(),
    );
    brainrecon_testkit::tensor::save_safetensors(&ts, dir.path().join("model.safetensors"));
    let m = BlipForConditionalGeneration::load_dir(dir.path(), &Device::Cpu).unwrap();
    assert_close(
        "own decoder weight",
        &m.text_decoder.head.decoder.weight,
        &own,
        0.0,
    );
    let tied = model();
    assert_close(
        "tied decoder weight",
        &tied.text_decoder.head.decoder.weight,
        &words,
        0.0,
    );
}

/// The training path: the loss of `BlipForConditionalGeneration(labels=…)` and its gradients
/// (fixture from `tools/fixtures/blip_training.py`), through every tracked op of both towers.
#[test]
fn loss_and_gradients_match_transformers() {
    use brainrecon_language::blip::lm_loss;
    let t = candle_core::safetensors::load(fixtures().join("training.safetensors"), &Device::Cpu)
        .unwrap();
    let (m, vars) = BlipForConditionalGeneration::load_trainable(
        &fixtures().join("tiny"),
        |_| true,
        &Device::Cpu,
    )
    .unwrap();
    let image = m.vision_model.forward(&t["pixel_values"]).unwrap();
    let out = m
        .text_decoder
        .forward(
            &t["input_ids"],
            &TextInputs {
                attention_mask: Some(&t["attention_mask"]),
                encoder_hidden_states: Some(&image),
                ..Default::default()
            },
        )
        .unwrap();
    let plain = lm_loss(&out.logits, &t["labels"], 0.0).unwrap();
    assert_close("loss_no_smoothing", &plain, &t["loss_no_smoothing"], RTOL);
    let loss = lm_loss(&out.logits, &t["labels"], 0.1).unwrap();
    assert_close("loss", &loss, &t["loss"], RTOL);
    let grads = loss.backward().unwrap();
    let vars: HashMap<String, candle_core::Var> = vars.into_iter().collect();
    let mut checked = 0;
    for (key, want) in t.iter().filter(|(k, _)| k.starts_with("grad.")) {
        let name = &key["grad.".len()..];
        let var = vars
            .get(name)
            .unwrap_or_else(|| panic!("no variable {name}"));
        let got = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        assert_close(key, got, want, RTOL);
        checked += 1;
    }
    assert!(checked >= 10);
    // labels that are all ignored, or outside the vocabulary, are refused
    let ignored = Tensor::full(-100i64, (2, 9), &Device::Cpu).unwrap();
    assert!(lm_loss(&out.logits, &ignored, 0.0).is_err());
    let outside = Tensor::full(500i64, (2, 9), &Device::Cpu).unwrap();
    assert!(lm_loss(&out.logits, &outside, 0.0).is_err());
}

#[test]
fn loads_a_model_id_from_the_hugging_face_cache() {
    let hub = tempfile::tempdir().unwrap();
    let repo = hub.path().join("models--Example--blip-tiny");
    let snapshot = repo.join("snapshots").join("0123abcd");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), "0123abcd\n").unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixtures().join("tiny").join(f), snapshot.join(f)).unwrap();
    }
    // only this test reads the cache location
    std::env::set_var("HF_HUB_CACHE", hub.path());
    let m = BlipForConditionalGeneration::load("Example/blip-tiny", &Device::Cpu).unwrap();
    assert_eq!(m.config.text_config.vocab_size, 136);
    let e = BlipForConditionalGeneration::load("Example/absent", &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("models--Example--absent"), "{e}");
    std::env::remove_var("HF_HUB_CACHE");
}
