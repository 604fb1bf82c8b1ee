//! The full CLIP model against transformers 5.23.0 `CLIPModel.get_text_features` /
//! `get_image_features`, `CLIPTokenizer` and `CLIPImageProcessorPil` (fixtures from
//! tools/fixtures/clip_model.py): the embeddings CLIP-S / RefCLIP-S compare.

mod common;

use brainrecon_diffusion::clip_model::{
    l2_normalize_rows, load_clip_model, resolve_clip_model_dir, ClipModel, ClipModelConfig,
};
use brainrecon_formats::image::RgbImage;
use brainrecon_nn::ModelError;
use brainrecon_testkit::copy_dir;
use candle_core::{DType, Device, Tensor};
use common::{fixtures, get, max_abs, max_abs_diff, read_json, tensors};
use std::path::{Path, PathBuf};

const IMAGES: usize = 5;
const TOLERANCE: f32 = 1e-5;

fn model_dir() -> PathBuf {
    fixtures().join("clip_model").join("model")
}

fn reference() -> brainrecon_nn::weights::Weights {
    tensors("clip_model/reference.safetensors")
}

fn model() -> ClipModel {
    ClipModel::from_dir(&model_dir(), DType::F32, &Device::Cpu).unwrap()
}

fn texts() -> (Vec<String>, Vec<Vec<u32>>) {
    let v = read_json("clip_model/texts.json");
    let texts = serde_json::from_value(v["texts"].clone()).unwrap();
    let ids = serde_json::from_value(v["input_ids"].clone()).unwrap();
    (texts, ids)
}

fn source_images() -> Vec<RgbImage> {
    let r = reference();
    (0..IMAGES)
        .map(|i| {
            let t = r.get_unchecked(&format!("image_{i}")).unwrap();
            let (h, w, c) = t.dims3().unwrap();
            assert_eq!(c, 3);
            RgbImage::new(h, w, t.flatten_all().unwrap().to_vec1::<u8>().unwrap())
        })
        .collect()
}

/// A copy of the model folder whose config.json went through `edit`.
fn edited_copy(to: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    copy_dir(&model_dir(), to);
    let path = to.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    to.to_path_buf()
}

#[test]
fn config_and_tokenizer_come_from_the_model_root() {
    let model = model();
    let c = &model.config;
    assert_eq!(c.projection_dim, 16);
    assert_eq!(c.vision_config.projection_dim, 16);
    assert_eq!(
        (c.text_config.hidden_size, c.vision_config.hidden_size),
        (24, 32)
    );
    assert_eq!(c.text_config.eos_token_id, 1513);
    assert_eq!(model.max_length, 77);
    // The root's tokenizer.json gives CLIPTokenizer's ids: truncation, padding, case,
    // punctuation, whitespace runs, accents.
    let (texts, want) = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got = model.tokenize(&refs).unwrap();
    assert_eq!(got.len(), want.len());
    for ((text, g), w) in texts.iter().zip(&got).zip(&want) {
        assert_eq!(g, w, "{text:?}");
    }
    // The long text fills every position and still ends with EOS.
    let long = texts.iter().position(|t| t.len() > 300).unwrap();
    assert_eq!(got[long].len(), 77);
    assert_eq!(got[long][76], model.tokenizer.eos_id);
    assert_ne!(got[long][75], model.tokenizer.pad_id);
}

#[test]
fn text_features_match_get_text_features() {
    let model = model();
    let (texts, _) = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got = model.text_features(&refs).unwrap();
    let want = get(&reference(), "text_features");
    let e = max_abs_diff(&got, &want);
    println!(
        "text_features: max abs error {e:.2e} (values up to {:.2})",
        max_abs(&want)
    );
    assert!(e <= TOLERANCE, "text_features: {e}");
    assert!(max_abs(&want) > 1.0);
    // A text's features do not depend on the rest of its batch.
    let one = model.text_features(&refs[1..2]).unwrap();
    assert!(max_abs_diff(&one, &want.narrow(0, 1, 1).unwrap()) <= TOLERANCE);
    // Texts differ: the comparison is not between rows that all look alike.
    let spread = max_abs_diff(
        &want.narrow(0, 0, 1).unwrap(),
        &want.narrow(0, 1, 1).unwrap(),
    );
    assert!(spread > 0.5, "{spread}");
    assert_eq!(model.text_features(&[]).unwrap().dims(), &[0, 16]);
}

#[test]
fn legacy_eos_token_id_pools_at_the_largest_id() {
    // openai/clip-vit-base-patch32's config still says eos_token_id 2: transformers then pools
    // at the argmax of the ids.
    let tmp = tempfile::tempdir().unwrap();
    let dir = edited_copy(&tmp.path().join("legacy"), |c| {
        c["text_config"]["eos_token_id"] = 2.into();
    });
    let model = ClipModel::from_dir(&dir, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(model.config.text_config.eos_token_id, 2);
    let (texts, _) = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got = model.text_features(&refs).unwrap();
    let e = max_abs_diff(&got, &get(&reference(), "text_features_legacy"));
    assert!(e <= TOLERANCE, "legacy text_features: {e}");

    // A text_config without keys takes transformers 5's CLIPTextConfig defaults (ViT-B/32's
    // text tower, eos 49407), which these weights do not fit: the file and tensor are named.
    let dir = edited_copy(&tmp.path().join("defaults"), |c| {
        c["text_config"] = serde_json::json!({});
    });
    let config = ClipModelConfig::from_file(&dir.join("config.json")).unwrap();
    assert_eq!(config.text_config.eos_token_id, 49407);
    assert_eq!(config.text_config.vocab_size, 49408);
    assert_eq!(config.text_config.hidden_size, 512);
    let message = load_error(&dir);
    assert!(message.contains("text_model."), "{message}");
    assert!(message.contains("512"), "{message}");
    assert!(
        message.contains(&dir.join("model.safetensors").display().to_string()),
        "{message}"
    );
}

#[test]
fn image_features_match_get_image_features() {
    let model = model();
    let r = reference();
    let images = source_images();
    let pixels = model.processor.preprocess(&images, &Device::Cpu).unwrap();
    let e_pixels = max_abs_diff(&pixels, &get(&r, "pixel_values"));
    assert!(e_pixels <= TOLERANCE, "pixel_values: {e_pixels}");
    let got = model.image_features(&images).unwrap();
    let want = get(&r, "image_features");
    let e = max_abs_diff(&got, &want);
    println!(
        "image_features: max abs error {e:.2e} (pixels {e_pixels:.2e}; values up to {:.2})",
        max_abs(&want)
    );
    assert!(e <= TOLERANCE, "image_features: {e}");
    assert!(max_abs(&want) > 1.0);
    assert_eq!(got.dims(), &[IMAGES, 16]);
    // The flat grey and flat red images still give different embeddings.
    let spread = max_abs_diff(
        &want.narrow(0, 1, 1).unwrap(),
        &want.narrow(0, 2, 1).unwrap(),
    );
    assert!(spread > 0.5, "{spread}");
}

#[test]
fn normalised_rows_have_unit_length() {
    let x = Tensor::new(
        &[[3f32, 4.0, 0.0], [0.0, 0.0, 0.0], [1e-3, -1e-3, 2e-3]],
        &Device::Cpu,
    )
    .unwrap();
    let n = l2_normalize_rows(&x).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(n[0], vec![0.6, 0.8, 0.0]);
    assert_eq!(n[1], vec![0.0, 0.0, 0.0]);
    let len: f32 = n[2].iter().map(|v| v * v).sum();
    assert!((len - 1.0).abs() < 1e-6, "{len}");
}

#[test]
fn resolves_folders_and_the_cache() {
    let model = load_clip_model(model_dir().to_str().unwrap(), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(model.projection_dim(), 16);

    // A Hugging Face cache: models--ORG--NAME/refs/main names the snapshot. Only this test
    // reads HF_HUB_CACHE.
    let tmp = tempfile::tempdir().unwrap();
    let hub = tmp.path().join("hub");
    let repo = hub.join("models--tiny-org--clip-tiny");
    copy_dir(&model_dir(), &repo.join("snapshots").join("abc123"));
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), "abc123\n").unwrap();
    std::env::set_var("HF_HUB_CACHE", &hub);
    assert_eq!(
        resolve_clip_model_dir("tiny-org/clip-tiny").unwrap(),
        repo.join("snapshots").join("abc123")
    );
    let cached = load_clip_model("tiny-org/clip-tiny", DType::F32, &Device::Cpu).unwrap();
    let got = cached.image_features(&source_images()).unwrap();
    assert!(max_abs_diff(&got, &get(&reference(), "image_features")) <= TOLERANCE);
    let e = load_clip_model("tiny-org/not-there", DType::F32, &Device::Cpu)
        .err()
        .unwrap();
    assert!(matches!(e, ModelError::ModelNotFound { .. }), "{e}");
    assert!(e.to_string().contains("models--tiny-org--not-there"), "{e}");
    assert!(e.to_string().contains("tokenizer.json"), "{e}");
}

fn load_error(dir: &Path) -> String {
    let e = ClipModel::from_dir(dir, DType::F32, &Device::Cpu)
        .err()
        .unwrap();
    assert!(e.is_user_error(), "{e}");
    e.to_string()
}

#[test]
fn bad_input_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();

    // A vision-only checkpoint is not a CLIPModel.
    let vision_only = fixtures().join("clip_vision").join("model");
    let message = load_error(&vision_only);
    assert!(message.contains("text_config"), "{message}");
    assert!(
        message.contains(&vision_only.join("config.json").display().to_string()),
        "{message}"
    );

    // No tokenizer files: the missing file is named.
    let no_tokenizer = tmp.path().join("no_tokenizer");
    copy_dir(&model_dir(), &no_tokenizer);
    std::fs::remove_file(no_tokenizer.join("tokenizer.json")).unwrap();
    let message = load_error(&no_tokenizer);
    assert!(
        message.contains(&no_tokenizer.join("vocab.json").display().to_string()),
        "{message}"
    );

    // A tokenizer larger than the text tower's vocabulary.
    let small_vocab = edited_copy(&tmp.path().join("small_vocab"), |c| {
        c["text_config"]["vocab_size"] = 1000.into();
    });
    let message = load_error(&small_vocab);
    println!("{message}");
    assert!(message.contains("vocab_size is 1000"), "{message}");
    assert!(message.contains("1514 tokens"), "{message}");
    assert!(
        message.contains(&small_vocab.display().to_string()),
        "{message}"
    );

    // An eos_token_id list is refused with the field named.
    let listed = edited_copy(&tmp.path().join("eos_list"), |c| {
        c["text_config"]["eos_token_id"] = serde_json::json!([1513, 7]);
    });
    let message = load_error(&listed);
    assert!(message.contains("text_config.eos_token_id"), "{message}");
    assert!(message.contains("config.json"), "{message}");

    // No text_projection: the tensor and the file are named.
    let bare = tmp.path().join("bare");
    copy_dir(&model_dir(), &bare);
    let mut all =
        candle_core::safetensors::load(model_dir().join("model.safetensors"), &Device::Cpu)
            .unwrap();
    all.remove("text_projection.weight").unwrap();
    brainrecon_testkit::tensor::save_safetensors(&all, bare.join("model.safetensors"));
    let message = load_error(&bare);
    assert!(message.contains("text_projection.weight"), "{message}");
    assert!(
        message.contains(&bare.join("model.safetensors").display().to_string()),
        "{message}"
    );

    // Not a folder and not a model id.
    let e = load_clip_model("no/such/place", DType::F32, &Device::Cpu)
        .err()
        .unwrap();
    assert!(matches!(e, ModelError::ModelNotFound { .. }), "{e}");
}
