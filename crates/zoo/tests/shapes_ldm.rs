//! Quality bars of the shipped model (`models/shapes-ldm`), measured on the scenes held out of
//! its training with the rule of `brainrecon_simulate::classify`: the autoencoder keeps
//! colour and shape, and a caption draws its colour and shape.

use brainrecon_diffusion::pipeline::{
    image_to_hwc, Device, Posterior, SampleOptions, StableDiffusion,
};
use brainrecon_diffusion::scheduler::SchedulerKind;
use brainrecon_formats::image::RgbImage;
use brainrecon_nn::rng::SeededNoise;
use brainrecon_simulate::classify::scene_accuracy;
use brainrecon_simulate::scene::{Scene, COLOURS, SHAPES};
use brainrecon_zoo::shapes_ldm::{held_out_scenes, is_held_out, training_scene};
use candle_core::{DType, Tensor};
use rand::SeedableRng;
use std::path::PathBuf;

fn shapes_ldm() -> StableDiffusion {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/shapes-ldm");
    StableDiffusion::load(dir.to_str().unwrap(), DType::F32, &Device::Cpu).unwrap()
}

/// [B, 3, S, S] in [-1, 1].
fn batch(images: &[RgbImage]) -> Tensor {
    let parts: Vec<Tensor> = images
        .iter()
        .map(|image| {
            brainrecon_diffusion::pipeline::image_from_rgb8(
                image.height,
                image.width,
                &image.pixels,
                &Device::Cpu,
            )
            .unwrap()
        })
        .collect();
    Tensor::cat(&parts, 0).unwrap()
}

/// [B, 3, H, W] in [0, 1] → images.
fn images(decoded: &Tensor) -> Vec<RgbImage> {
    (0..decoded.dim(0).unwrap())
        .map(|i| {
            let (h, w, values) = image_to_hwc(&decoded.get(i).unwrap()).unwrap();
            RgbImage::from_unit_f32(h, w, &values)
        })
        .collect()
}

/// (colour, shape, both) accuracy of the rule's readings.
fn accuracy(scenes: &[Scene], images: &[RgbImage]) -> (f64, f64, f64) {
    let a = scene_accuracy(scenes, images);
    (a.colour, a.shape, a.both)
}

#[test]
fn held_out_scenes_are_never_drawn_for_training() {
    let held = held_out_scenes();
    assert_eq!(held.len(), 96);
    assert!(held.iter().all(is_held_out));
    // Every attribute value still appears among the held-out scenes.
    for shape in 0..SHAPES.len() {
        assert!(held.iter().any(|s| s.shape == shape));
    }
    for colour in 0..COLOURS.len() {
        assert!(held.iter().any(|s| s.colour == colour));
    }
    for index in 0..5000 {
        assert!(!is_held_out(&training_scene(0, index).0));
    }
}

#[test]
fn the_autoencoder_keeps_colour_and_shape_of_held_out_scenes() {
    let sd = shapes_ldm();
    let scenes = held_out_scenes();
    let size = sd.default_size();
    let mut decoded = Vec::new();
    for chunk in scenes.chunks(16) {
        let rendered: Vec<RgbImage> = chunk.iter().map(|s| s.render(size)).collect();
        let latent = sd
            .encode_image(&batch(&rendered), Posterior::Mean, &mut SeededNoise::new(0))
            .unwrap();
        decoded.extend(images(&sd.decode_latent(&latent).unwrap()));
    }
    let (colour, shape, both) = accuracy(&scenes, &decoded);
    eprintln!("VAE round trip of {} held-out scenes: colour {colour:.3}, shape {shape:.3}, both {both:.3}", scenes.len());
    assert!(
        both >= 0.9,
        "colour and shape kept for {both:.3} of images (bar 0.9)"
    );
}

#[test]
fn captions_of_held_out_scenes_draw_their_colour_and_shape() {
    let sd = shapes_ldm();
    let scenes = held_out_scenes();
    let size = sd.default_size();
    // The caption of each scene that names every attribute ("a small red circle on a grey
    // background"); the others leave size or background open.
    let prompts: Vec<String> = scenes
        .iter()
        .map(|scene| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
            scene.captions(&mut rng)[0].clone()
        })
        .collect();
    let options = SampleOptions {
        steps: 20,
        guidance: 5.0,
        scheduler: SchedulerKind::Ddim { eta: 0.0 },
    };
    let mut drawn = Vec::new();
    for (k, chunk) in prompts.chunks(16).enumerate() {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let context = sd.encode_prompts(&refs, None, options.guidance).unwrap();
        let latents = sd
            .txt2img(
                &context,
                size,
                size,
                &options,
                &mut SeededNoise::new(100 + k as u64),
                &mut |_| {},
            )
            .unwrap();
        drawn.extend(images(&sd.decode_latent(&latents).unwrap()));
    }
    let (colour, shape, both) = accuracy(&scenes, &drawn);
    eprintln!(
        "text-to-image from {} held-out captions: colour {colour:.3}, shape {shape:.3}, both {both:.3}",
        scenes.len()
    );
    assert!(
        both >= 0.8,
        "colour and shape drawn for {both:.3} of captions (bar 0.8)"
    );
}
