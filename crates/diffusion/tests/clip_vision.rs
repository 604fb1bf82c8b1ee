//! The CLIP image encoder against transformers 5.23.0 `CLIPVisionModelWithProjection` and
//! `CLIPImageProcessor` (fixtures from tools/fixtures/clip_vision.py): preprocessing, the
//! standalone `image_encoder`-style folder, the same tower inside a full `CLIPModel`, model
//! resolution, and errors that name the file.

mod common;

use brainrecon_diffusion::clip_vision::{
    load_clip_vision, preprocess, read_clip_vision_config, resolve_clip_vision_dir,
    ClipImageProcessor, ClipVisionModel,
};
use brainrecon_formats::image::RgbImage;
use brainrecon_nn::ModelError;
use brainrecon_testkit::copy_dir;
use candle_core::{DType, Device, Tensor, Var};
use common::{fixtures, get, max_abs, max_abs_diff, tensors};
use std::path::PathBuf;

const IMAGES: usize = 4;

fn dir(name: &str) -> PathBuf {
    fixtures().join("clip_vision").join(name)
}

fn reference() -> brainrecon_nn::weights::Weights {
    tensors("clip_vision/reference.safetensors")
}

fn source_images() -> Vec<RgbImage> {
    let r = reference();
    (0..IMAGES)
        .map(|i| {
            let t = r.get_unchecked(&format!("image_{i}")).unwrap();
            let (h, w, c) = t.dims3().unwrap();
            assert_eq!(c, 3);
            let pixels = t.flatten_all().unwrap().to_vec1::<u8>().unwrap();
            RgbImage::new(h, w, pixels)
        })
        .collect()
}

/// max |a - b| / max |b|.
fn relative(a: &Tensor, b: &Tensor) -> f32 {
    max_abs_diff(a, b) / max_abs(b)
}

#[test]
fn preprocessing_matches_clip_image_processor() {
    let r = reference();
    let processor =
        ClipImageProcessor::from_file(&dir("model").join("preprocessor_config.json")).unwrap();
    assert_eq!(processor, ClipImageProcessor::openai(32));
    let images = source_images();
    let got = processor.preprocess(&images, &Device::Cpu).unwrap();
    // Pillow's resampling (CLIPImageProcessorPil): the same 8-bit pixels, f32 arithmetic.
    let pil = get(&r, "pixel_values_pil");
    let e_pil = max_abs_diff(&got, &pil);
    // transformers 5's default (torchvision) backend resamples slightly differently.
    let torchvision = get(&r, "pixel_values");
    let e_tv = max_abs_diff(&got, &torchvision);
    println!("pixel_values: max abs error {e_pil:.2e} vs Pillow, {e_tv:.2e} vs torchvision");
    assert!(e_pil < 1e-5, "vs CLIPImageProcessorPil: {e_pil}");
    assert!(e_tv <= 2e-2, "vs CLIPImageProcessor: {e_tv}");
    assert!(max_abs(&pil) > 1.0);
    // The one-call OpenAI preprocessing gives the same rows.
    for (i, image) in images.iter().enumerate() {
        let one = preprocess(&image.pixels, image.height, image.width, 32, &Device::Cpu).unwrap();
        assert_eq!(max_abs_diff(&one, &got.narrow(0, i, 1).unwrap()), 0.0);
    }
    assert!(preprocess(&[0u8; 5], 1, 2, 32, &Device::Cpu).is_err());
}

fn check_outputs(model: &ClipVisionModel, label: &str) {
    let r = reference();
    let pixel_values = get(&r, "pixel_values");
    let out = model.forward_full(&pixel_values).unwrap();
    for (name, got) in [
        ("image_embeds", &out.image_embeds),
        ("last_hidden_state", &out.last_hidden_state),
        ("pooler_output", &out.pooler_output),
    ] {
        let want = get(&r, name);
        let e = relative(got, &want);
        println!(
            "{label} {name}: relative error {e:.2e} (values up to {:.2})",
            max_abs(&want)
        );
        assert!(e < 1e-4, "{label} {name}: {e}");
        assert!(max_abs(&want) > 0.5);
    }
    assert_eq!(out.image_embeds.dims(), &[IMAGES, 16]);
    assert_eq!(out.last_hidden_state.dims(), &[IMAGES, 17, 32]);
    assert_eq!(out.hidden_states.len(), 3);
    for (name, got) in [
        ("hidden_states_0", &out.hidden_states[0]),
        ("hidden_states_penultimate", &out.hidden_states[1]),
    ] {
        let e = relative(got, &get(&r, name));
        assert!(e < 1e-4, "{label} {name}: {e}");
    }
    let plain = model.forward(&pixel_values).unwrap();
    assert_eq!(max_abs_diff(&plain, &out.image_embeds), 0.0);
}

#[test]
fn image_embeds_match_transformers() {
    let model = ClipVisionModel::from_dir(&dir("model"), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(model.config.projection_dim, 16);
    assert_eq!(model.config.hidden_act, "quick_gelu");
    check_outputs(&model, "CLIPVisionModelWithProjection");
}

#[test]
fn full_clip_checkpoint_loads_the_vision_tower() {
    // config.json nests vision_config (projection_dim 512 there); the top-level 16 is used.
    let config = read_clip_vision_config(&dir("clip_full").join("config.json")).unwrap();
    assert_eq!(config.projection_dim, 16);
    assert_eq!((config.image_size, config.patch_size), (32, 8));
    let model = ClipVisionModel::from_dir(&dir("clip_full"), DType::F32, &Device::Cpu).unwrap();
    check_outputs(&model, "CLIPModel");
}

#[test]
fn f16_and_gradients() {
    let r = reference();
    let pixel_values = get(&r, "pixel_values");
    let want = get(&r, "image_embeds");
    let half = ClipVisionModel::from_dir(&dir("model"), DType::F16, &Device::Cpu).unwrap();
    let e = relative(&half.forward(&pixel_values).unwrap(), &want);
    println!("f16 image_embeds: relative error {e:.2e}");
    assert!(e < 2e-2, "f16: {e}");
    // Differentiable with respect to the pixels.
    let model = ClipVisionModel::from_dir(&dir("model"), DType::F32, &Device::Cpu).unwrap();
    let x = Var::from_tensor(&pixel_values).unwrap();
    let loss = model
        .forward(x.as_tensor())
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    let g = grads.get(x.as_tensor()).expect("gradient for pixel_values");
    assert_eq!(g.dims(), pixel_values.dims());
    assert!(max_abs(g) > 0.0);
}

#[test]
fn resolves_folders_pipelines_and_the_cache() {
    let (model, processor) =
        load_clip_vision(dir("model").to_str().unwrap(), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(model.config.projection_dim, 16);
    assert_eq!(processor, ClipImageProcessor::openai(32));

    let tmp = tempfile::tempdir().unwrap();
    // A diffusers pipeline folder with image_encoder/.
    let pipeline = tmp.path().join("pipeline");
    copy_dir(&dir("model"), &pipeline.join("image_encoder"));
    std::fs::write(pipeline.join("model_index.json"), "{}").unwrap();
    assert_eq!(
        resolve_clip_vision_dir(pipeline.to_str().unwrap()).unwrap(),
        pipeline.join("image_encoder")
    );
    // A Hugging Face cache: models--ORG--NAME/refs/main names the snapshot. Only this test
    // reads HF_HUB_CACHE.
    let hub = tmp.path().join("hub");
    let repo = hub.join("models--tiny-org--clip-vision-tiny");
    copy_dir(&dir("clip_full"), &repo.join("snapshots").join("abc123"));
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), "abc123\n").unwrap();
    std::env::set_var("HF_HUB_CACHE", &hub);
    let (cached, processor) =
        load_clip_vision("tiny-org/clip-vision-tiny", DType::F32, &Device::Cpu).unwrap();
    // No preprocessor_config.json in that snapshot: OpenAI's processing at the model's size.
    assert_eq!(processor, ClipImageProcessor::openai(32));
    check_outputs(&cached, "cached CLIPModel");
    let e = load_clip_vision("tiny-org/not-there", DType::F32, &Device::Cpu).unwrap_err();
    assert!(matches!(e, ModelError::ModelNotFound { .. }), "{e}");
    assert!(e.to_string().contains("models--tiny-org--not-there"), "{e}");
    assert!(e.to_string().contains("does not download"), "{e}");
}

#[test]
fn bad_input_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let cpu = Device::Cpu;

    // No config.json.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = ClipVisionModel::from_dir(&empty, DType::F32, &cpu).unwrap_err();
    assert!(matches!(e, ModelError::MissingFile { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&empty.join("config.json").display().to_string()),
        "{e}"
    );
    let e = load_clip_vision(empty.to_str().unwrap(), DType::F32, &cpu).unwrap_err();
    assert!(e.to_string().contains("config.json"), "{e}");

    // A config but no weights.
    let no_weights = tmp.path().join("no_weights");
    std::fs::create_dir_all(&no_weights).unwrap();
    std::fs::copy(
        dir("model").join("config.json"),
        no_weights.join("config.json"),
    )
    .unwrap();
    let e = ClipVisionModel::from_dir(&no_weights, DType::F32, &cpu).unwrap_err();
    assert!(e.to_string().contains("safetensors"), "{e}");
    assert!(
        e.to_string().contains(&no_weights.display().to_string()),
        "{e}"
    );

    // A CLIPModel config without vision_config.
    let no_vision = tmp.path().join("no_vision");
    std::fs::create_dir_all(&no_vision).unwrap();
    let path = no_vision.join("config.json");
    std::fs::write(
        &path,
        r#"{"model_type": "clip", "projection_dim": 16, "text_config": {}}"#,
    )
    .unwrap();
    let e = read_clip_vision_config(&path).unwrap_err();
    let message = e.to_string();
    assert!(message.contains("vision_config"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");

    // Weights that do not fit the config: intermediate_size 40 against fc1 [37, 32].
    let wrong = tmp.path().join("wrong_shape");
    copy_dir(&dir("model"), &wrong);
    let text = std::fs::read_to_string(wrong.join("config.json")).unwrap();
    let text = text.replace("\"intermediate_size\": 37", "\"intermediate_size\": 40");
    std::fs::write(wrong.join("config.json"), text).unwrap();
    let e = ClipVisionModel::from_dir(&wrong, DType::F32, &cpu).unwrap_err();
    let message = e.to_string();
    println!("{message}");
    assert!(
        message.contains(&wrong.join("model.safetensors").display().to_string()),
        "{message}"
    );
    assert!(
        message.contains("vision_model.encoder.layers.0.mlp.fc1.weight"),
        "{message}"
    );
    assert!(
        message.contains("[40, 32]") && message.contains("[37, 32]"),
        "{message}"
    );

    // No visual_projection (a bare CLIPVisionModel checkpoint): the tensor and file are named.
    let bare = tmp.path().join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    std::fs::copy(dir("model").join("config.json"), bare.join("config.json")).unwrap();
    let mut all =
        candle_core::safetensors::load(dir("model").join("model.safetensors"), &cpu).unwrap();
    all.remove("visual_projection.weight").unwrap();
    brainrecon_testkit::tensor::save_safetensors(&all, bare.join("model.safetensors"));
    let e = ClipVisionModel::from_dir(&bare, DType::F32, &cpu).unwrap_err();
    let message = e.to_string();
    assert!(message.contains("visual_projection.weight"), "{message}");
    assert!(
        message.contains(&bare.join("model.safetensors").display().to_string()),
        "{message}"
    );

    // Pixels of the wrong size.
    let model = ClipVisionModel::from_dir(&dir("model"), DType::F32, &cpu).unwrap();
    let x = Tensor::zeros((1, 3, 16, 16), DType::F32, &cpu).unwrap();
    let e = model.forward(&x).unwrap_err();
    assert!(e.to_string().contains("[B, 3, 32, 32]"), "{e}");
}
