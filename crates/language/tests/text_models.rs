//! Golden tests of the text models (GPT-2, BERT, Llama), their tokenizers and the annotation
//! features against transformers 5.23 (fixtures from `tools/fixtures/text_models.py`: tiny
//! random checkpoints with trained tiny tokenizers; see the README there).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use brainrecon_language::text_model::{
    all_layers, annotation_features, annotation_features_with, load_text_model, FeatureOptions,
    PoolTokens, TextModel,
};
use brainrecon_language::text_tokenizer::{TextTokenizer, TokenizerClass};
use brainrecon_testkit::tensor::assert_close_scaled;
use candle_core::{DType, Device, IndexOp, Tensor};
use serde_json::Value;

const MODELS: [&str; 3] = ["gpt2", "bert", "llama"];
/// max |got − want| ≤ RTOL · max |want|, for every hidden state.
const RTOL: f32 = 1e-4;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/text_models")
}

fn cases() -> Value {
    let text = std::fs::read_to_string(fixtures().join("cases.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn texts() -> Vec<String> {
    cases()["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

fn expected(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(
        fixtures().join(name).join("expected.safetensors"),
        &Device::Cpu,
    )
    .unwrap()
}

fn load(name: &str) -> (TextModel, TextTokenizer) {
    load_text_model(fixtures().join(name).to_str().unwrap(), &Device::Cpu).unwrap()
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn assert_close(what: &str, got: &Tensor, want: &Tensor, rtol: f32) {
    assert_close_scaled(what, got, want, rtol, 0.0);
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn token_ids_match_auto_tokenizer() {
    let (cases, texts) = (cases(), texts());
    for name in MODELS {
        let tokenizer = TextTokenizer::from_dir(&fixtures().join(name), name).unwrap();
        for (i, text) in texts.iter().enumerate() {
            let want = ids_of(&cases[name]["ids"][i]);
            assert_eq!(
                tokenizer.encode(text).unwrap(),
                want,
                "{name}: text {i} {text:?}"
            );
        }
    }
}

#[test]
fn tokenizer_classes_are_transformers_choices() {
    let class = |name: &str| {
        TextTokenizer::from_dir(&fixtures().join(name), name)
            .unwrap()
            .class()
    };
    assert_eq!(class("gpt2"), TokenizerClass::Gpt2);
    assert_eq!(class("bert"), TokenizerClass::Bert);
    // tokenizer_class LlamaTokenizer: rebuilt with a Metaspace pre-tokenizer
    assert_eq!(class("llama"), TokenizerClass::Llama);
    // the file as saved (Prepend normalizer) gives leading spaces another ▁: the rebuilding
    // is what makes the ids above match
    let raw = tokenizers::Tokenizer::from_file(fixtures().join("llama/tokenizer.json")).unwrap();
    let text = &texts()[4];
    let saved = raw.encode(text.as_str(), true).unwrap().get_ids().to_vec();
    assert_ne!(saved, ids_of(&cases()["llama"]["ids"][4]));
}

#[test]
fn truncation_matches_transformers() {
    let (cases, texts) = (cases(), texts());
    let long = cases["long_index"].as_u64().unwrap() as usize;
    for name in MODELS {
        let tokenizer = TextTokenizer::from_dir(&fixtures().join(name), name).unwrap();
        let max = cases[name]["max_positions"].as_u64().unwrap() as usize;
        let e = tokenizer.encode_truncated(&texts[long], max).unwrap();
        let want: Vec<u32> = expected(name)["long.input_ids"]
            .i(0)
            .unwrap()
            .to_dtype(DType::U32)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(e.ids, want, "{name}");
        let truncated: Vec<u64> = cases[name]["truncated"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(e.truncated, truncated == [long as u64], "{name}");
    }
    // GPT-2's table has 256 rows and the long text 311 tokens: it is cut
    assert_eq!(cases["gpt2"]["truncated"].as_array().unwrap().len(), 1);
}

/// Every hidden state of the padded batch and of the long text.
fn check_hidden_states(name: &str) {
    let (model, _) = load(name);
    let t = expected(name);
    let states = model
        .forward(&t["batch.input_ids"], Some(&t["batch.attention_mask"]))
        .unwrap();
    assert_eq!(states.len(), model.num_hidden_states());
    assert_eq!(states.len(), 3);
    for (i, h) in states.iter().enumerate() {
        assert_close(
            &format!("{name} batch.hidden_states.{i}"),
            h,
            &t[&format!("batch.hidden_states.{i}")],
            RTOL,
        );
    }
    let states = model.forward(&t["long.input_ids"], None).unwrap();
    let positions = t["long.positions"].to_dtype(DType::U32).unwrap();
    for (i, h) in states.iter().enumerate() {
        let picked = h.index_select(&positions, 1).unwrap();
        assert_close(
            &format!("{name} long.hidden_states.{i}"),
            &picked,
            &t[&format!("long.hidden_states.{i}")],
            RTOL,
        );
    }
}

#[test]
fn gpt2_hidden_states_match() {
    check_hidden_states("gpt2");
}

#[test]
fn bert_hidden_states_match() {
    check_hidden_states("bert");
}

#[test]
fn llama_hidden_states_match() {
    check_hidden_states("llama");
}

/// Copies a fixture folder (without expected outputs) into a temporary one.
fn copy_model(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixtures().join(name)).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap();
        if file != "expected.safetensors" {
            std::fs::copy(&path, dir.path().join(file)).unwrap();
        }
    }
    dir
}

#[test]
fn llama_config_in_the_llama2_format_loads() {
    // top-level rope_theta 250000 and rope_scaling null: the default frequencies
    let dir = copy_model("llama");
    std::fs::copy(
        dir.path().join("config_legacy_rope.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let (model, _) = load_text_model(dir.path().to_str().unwrap(), &Device::Cpu).unwrap();
    let t = expected("llama");
    let states = model
        .forward(&t["batch.input_ids"], Some(&t["batch.attention_mask"]))
        .unwrap();
    assert_close(
        "legacy rope",
        &states[2],
        &t["legacy_rope.batch.hidden_states.2"],
        RTOL,
    );
    // and it differs from the llama3-scaled model's
    let diff = max_abs(&(&states[2] - &t["batch.hidden_states.2"]).unwrap());
    assert!(diff > 1e-2, "the rope settings change nothing: {diff}");
}

#[test]
fn pooled_features_match() {
    let texts = texts();
    for name in MODELS {
        let (model, tokenizer) = load(name);
        let t = expected(name);
        let layers = all_layers(&model);
        let f = annotation_features(&model, &tokenizer, &texts, &layers).unwrap();
        assert_eq!(f.layers, [0, 1, 2]);
        assert_eq!(f.empty, [3, 6], "{name}: the blank texts");
        for (i, got) in f.features.iter().enumerate() {
            assert_eq!(got.dims(), [texts.len(), model.hidden_size()]);
            assert_close(
                &format!("{name} pooled.{i}"),
                got,
                &t[&format!("pooled.{i}")],
                RTOL,
            );
            for blank in [3, 6] {
                assert_eq!(
                    max_abs(&got.i(blank).unwrap()),
                    0.0,
                    "{name}: blank text {blank}"
                );
            }
        }
        let want_truncated: Vec<usize> = cases()[name]["truncated"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(f.truncated, want_truncated, "{name}");
    }
}

#[test]
fn batches_give_what_each_text_gets_alone() {
    let texts = texts();
    for name in MODELS {
        let (model, tokenizer) = load(name);
        let layers = [2, 0, 1];
        let one = FeatureOptions {
            batch_size: 1,
            ..Default::default()
        };
        let small = FeatureOptions {
            batch_tokens: 120,
            ..Default::default()
        };
        let alone = annotation_features_with(&model, &tokenizer, &texts, &layers, one).unwrap();
        // every text in one padded batch, the long one included
        let all = FeatureOptions {
            batch_tokens: 1 << 16,
            ..Default::default()
        };
        let batched = annotation_features_with(&model, &tokenizer, &texts, &layers, all).unwrap();
        let chunked = annotation_features_with(&model, &tokenizer, &texts, &layers, small).unwrap();
        assert_eq!(batched.layers, layers);
        for (k, layer) in layers.iter().enumerate() {
            let want = &alone.features[k];
            assert_close(
                &format!("{name} layer {layer}"),
                &batched.features[k],
                want,
                1e-5,
            );
            let what = format!("{name} layer {layer} (chunks)");
            assert_close(&what, &chunked.features[k], want, 1e-5);
        }
    }
}

#[test]
fn text_only_pooling_leaves_out_special_tokens() {
    // BERT: the mean over the tokens between [CLS] and [SEP], from transformers' states
    let texts = texts();
    let cases = cases();
    let (model, tokenizer) = load("bert");
    let t = expected("bert");
    let options = FeatureOptions {
        pool: PoolTokens::TextOnly,
        ..Default::default()
    };
    let f = annotation_features_with(&model, &tokenizer, &texts, &[2], options).unwrap();
    let batch: Vec<usize> = cases["batch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    for (row, &text) in batch.iter().enumerate() {
        let n = ids_of(&cases["bert"]["ids"][text]).len();
        let states = t["batch.hidden_states.2"].i(row).unwrap();
        let want = states.narrow(0, 1, n - 2).unwrap().mean(0).unwrap();
        assert_close(
            &format!("bert text {text}"),
            &f.features[0].i(text).unwrap(),
            &want,
            RTOL,
        );
    }
    // GPT-2's tokenizer adds nothing: both poolings agree
    let (model, tokenizer) = load("gpt2");
    let all = annotation_features(&model, &tokenizer, &texts, &[1]).unwrap();
    let text_only = annotation_features_with(&model, &tokenizer, &texts, &[1], options).unwrap();
    assert_close("gpt2", &text_only.features[0], &all.features[0], 0.0);
}

/// Rewrites a fixture's weights with renamed tensors into a temporary model folder.
fn renamed(name: &str, rename: impl Fn(&str) -> Option<String>) -> tempfile::TempDir {
    let dir = copy_model(name);
    let path = dir.path().join("model.safetensors");
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    let out: HashMap<String, Tensor> = tensors
        .into_iter()
        .filter_map(|(k, v)| rename(&k).map(|k| (k, v)))
        .collect();
    brainrecon_testkit::tensor::save_safetensors(&out, &path);
    dir
}

fn same_states(a: &TextModel, b: &TextModel) {
    let t = expected(a.model_type());
    let x = a
        .forward(&t["batch.input_ids"], Some(&t["batch.attention_mask"]))
        .unwrap();
    let y = b
        .forward(&t["batch.input_ids"], Some(&t["batch.attention_mask"]))
        .unwrap();
    for (p, q) in x.iter().zip(&y) {
        assert_close(a.model_type(), q, p, 0.0);
    }
}

#[test]
fn task_model_prefixes_and_legacy_names_load() {
    // GPT2LMHeadModel's `transformer.` prefix
    let (gpt2, _) = load("gpt2");
    let dir = renamed("gpt2", |k| Some(format!("transformer.{k}")));
    let (m, _) = load_text_model(dir.path().to_str().unwrap(), &Device::Cpu).unwrap();
    same_states(&gpt2, &m);
    // a bare BertModel with old `LayerNorm.gamma`/`beta` names (and no MLM head)
    let (bert, _) = load("bert");
    let dir = renamed("bert", |k| {
        let k = k.strip_prefix("bert.")?;
        Some(
            k.replace("LayerNorm.weight", "LayerNorm.gamma")
                .replace("LayerNorm.bias", "LayerNorm.beta"),
        )
    });
    let (m, _) = load_text_model(dir.path().to_str().unwrap(), &Device::Cpu).unwrap();
    same_states(&bert, &m);
    // a bare LlamaModel
    let (llama, _) = load("llama");
    let dir = renamed("llama", |k| k.strip_prefix("model.").map(String::from));
    let (m, _) = load_text_model(dir.path().to_str().unwrap(), &Device::Cpu).unwrap();
    same_states(&llama, &m);
}

fn edit_config(dir: &Path, edit: impl Fn(&mut serde_json::Map<String, Value>)) {
    let path = dir.join("config.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(v.as_object_mut().unwrap());
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn load_error(dir: &Path) -> String {
    load_text_model(dir.to_str().unwrap(), &Device::Cpu)
        .unwrap_err()
        .to_string()
}

#[test]
fn bad_folders_are_named_errors() {
    // unknown model_type
    let dir = copy_model("gpt2");
    edit_config(dir.path(), |c| {
        c.insert("model_type".into(), "t5".into());
    });
    let m = load_error(dir.path());
    assert!(
        m.contains("config.json") && m.contains("model_type") && m.contains("\"t5\""),
        "{m}"
    );
    // a missing size field
    let dir = copy_model("llama");
    edit_config(dir.path(), |c| {
        c.remove("num_hidden_layers");
    });
    let m = load_error(dir.path());
    assert!(
        m.contains("config.json") && m.contains("`num_hidden_layers` is missing"),
        "{m}"
    );
    // sizes that do not match the weights: the tensor, both shapes and the file
    let dir = copy_model("bert");
    edit_config(dir.path(), |c| {
        c.insert("intermediate_size".into(), 48.into());
    });
    let m = load_error(dir.path());
    assert!(
        m.contains("model.safetensors")
            && m.contains("intermediate.dense.weight")
            && m.contains("[48, 32]"),
        "{m}"
    );
    // a missing tensor
    let dir = renamed("llama", |k| {
        (!k.contains("layers.1.mlp.up_proj")).then(|| k.to_string())
    });
    let m = load_error(dir.path());
    assert!(
        m.contains("model.layers.1.mlp.up_proj.weight") && m.contains("model.safetensors"),
        "{m}"
    );
    // weights of another family
    let dir = copy_model("gpt2");
    std::fs::copy(
        fixtures().join("bert/model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let m = load_error(dir.path());
    assert!(
        m.contains("wte.weight") && m.contains("model.safetensors"),
        "{m}"
    );
    // no tokenizer.json: the folder is named
    let dir = copy_model("gpt2");
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let m = load_error(dir.path());
    assert!(
        m.contains("tokenizer.json") && m.contains(&dir.path().display().to_string()),
        "{m}"
    );
    // no weights
    let dir = copy_model("gpt2");
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    std::fs::write(dir.path().join("pytorch_model.bin"), b"not read").unwrap();
    let m = load_error(dir.path());
    assert!(
        m.contains("pytorch_model.bin") && m.contains("pickle"),
        "{m}"
    );
    // a missing folder, and an id not in the cache
    assert!(load_error(Path::new("/nonexistent/model")).contains("no such folder"));
}

#[test]
fn bad_inputs_are_errors() {
    let (model, tokenizer) = load("gpt2");
    let texts = vec!["a".to_string()];
    let e = annotation_features(&model, &tokenizer, &texts, &[3]).unwrap_err();
    assert!(e.to_string().contains("layer 3 does not exist"), "{e}");
    // ids beyond the vocabulary, too many positions, a mask of the wrong shape
    let ids = Tensor::new(&[[5u32, 9999]], &Device::Cpu).unwrap();
    assert!(model
        .forward(&ids, None)
        .unwrap_err()
        .to_string()
        .contains("9999"));
    let ids = Tensor::zeros((1, 300), DType::U32, &Device::Cpu).unwrap();
    assert!(model
        .forward(&ids, None)
        .unwrap_err()
        .to_string()
        .contains("n_positions 256"));
    let ids = Tensor::zeros((1, 4), DType::U32, &Device::Cpu).unwrap();
    let mask = Tensor::ones((1, 3), DType::U32, &Device::Cpu).unwrap();
    assert!(model
        .forward(&ids, Some(&mask))
        .unwrap_err()
        .to_string()
        .contains("attention_mask"));
}

#[test]
fn loads_a_model_id_from_the_hugging_face_cache() {
    let hub = tempfile::tempdir().unwrap();
    let repo = hub.path().join("models--Example--tiny-llama");
    let snapshot = repo.join("snapshots").join("89abcdef");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), "89abcdef\n").unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(fixtures().join("llama").join(f), snapshot.join(f)).unwrap();
    }
    // only this test reads the cache location
    std::env::set_var("HF_HUB_CACHE", hub.path());
    let (m, tok) = load_text_model("Example/tiny-llama", &Device::Cpu).unwrap();
    assert_eq!((m.model_type(), m.hidden_size()), ("llama", 32));
    assert_eq!(tok.encode("The cat").unwrap()[0], 1);
    let e = load_text_model("Example/absent", &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("models--Example--absent"), "{e}");
    std::env::remove_var("HF_HUB_CACHE");
}
