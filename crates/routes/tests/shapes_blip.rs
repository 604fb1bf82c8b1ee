//! shapes-blip, the project's own captioner: what it writes for scenes it never saw in
//! training, and that its training resumes to the same weights.

use brainrecon_data::simulate::scene::{BACKGROUNDS, COLOURS, SHAPES};
use brainrecon_diffusion::prior::held_out_scenes;
use brainrecon_language::generate::{beam_search, BeamSearchConfig};
use brainrecon_routes::caption::features::blip_pixels;
use brainrecon_routes::caption::load_captioner;
use brainrecon_routes::caption::train::{train_captioner, CaptionerConfig};
use candle_core::Device;

/// The words a caption may use for `shape` (the scenes' captions use these synonyms).
fn shape_words(shape: &str) -> &'static [&'static str] {
    match shape {
        "circle" => &["circle", "round", "disc"],
        "square" => &["square", "box"],
        "triangle" => &["triangle", "triangular"],
        _ => &["cross", "plus"],
    }
}

#[test]
fn shapes_blip_names_the_background_of_held_out_scenes() {
    let device = Device::Cpu;
    let loaded = load_captioner("shapes-blip", &device).unwrap();
    let size = loaded.model.vision_model.config.image_size;
    let prompt = loaded.tokenizer.caption_prompt("a picture of ").unwrap();
    let scenes = held_out_scenes();
    let images: Vec<_> = scenes.iter().map(|s| s.render(size)).collect();
    let tokens = loaded
        .model
        .vision_model
        .forward(&blip_pixels(&images, size, false, &device).unwrap())
        .unwrap();
    let (mut colour_hits, mut shape_hits, mut background_hits) = (0, 0, 0);
    for (i, scene) in scenes.iter().enumerate() {
        let mut session = loaded
            .model
            .caption_session(&tokens.narrow(0, i, 1).unwrap())
            .unwrap();
        let best = beam_search(&mut session, &prompt, &BeamSearchConfig::published()).unwrap();
        let ids = &best.best().tokens[prompt.len()..];
        let caption = loaded.tokenizer.decode(ids, true).unwrap();
        let words: Vec<&str> = caption.split(' ').collect();
        colour_hits += words.contains(&COLOURS[scene.colour].0) as usize;
        background_hits += words.contains(&BACKGROUNDS[scene.background].0) as usize;
        shape_hits += shape_words(SHAPES[scene.shape])
            .iter()
            .any(|w| words.contains(w)) as usize;
    }
    let n = scenes.len() as f64;
    let share = |hits: usize| hits as f64 / n;
    let (colour, shape, background) = (
        share(colour_hits),
        share(shape_hits),
        share(background_hits),
    );
    // The shipped model (600 steps) has learned the background, not yet the shape's colour and
    // kind (README, "The caption route"); those shares are printed for the record.
    eprintln!(
        "held-out scenes: background {background:.3}, colour {colour:.3}, shape {shape:.3} of {n}"
    );
    assert!(
        background >= 0.9,
        "background named in {background} of held-out scenes"
    );
}

#[test]
fn training_resumes_to_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let config = CaptionerConfig {
        checkpoint_every: 2,
        ..CaptionerConfig::tiny(4)
    };
    let device = Device::Cpu;
    let whole = dir.path().join("whole");
    let summary = train_captioner(&whole, &config, 7, &device, &mut |_, _, _| {}).unwrap();
    assert_eq!(summary.losses.len(), 4);
    assert!(summary.losses.iter().all(|l| l.is_finite()));
    // An interruption after step 2: the last checkpoint and the outputs are gone.
    let broken = dir.path().join("broken");
    copy_dir(&whole.join(".train"), &broken.join(".train"));
    std::fs::remove_dir_all(broken.join(".train/captioner/step-4")).unwrap();
    let resumed = train_captioner(&broken, &config, 7, &device, &mut |_, _, _| {}).unwrap();
    assert_eq!(resumed.resumed_from, Some(2));
    assert_eq!(resumed.losses, summary.losses);
    assert_eq!(
        std::fs::read(whole.join("model.safetensors")).unwrap(),
        std::fs::read(broken.join("model.safetensors")).unwrap()
    );
    // The folder loads as a captioner.
    let loaded = load_captioner(whole.to_str().unwrap(), &device).unwrap();
    assert_eq!(loaded.model.vision_model.config.image_size, 32);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
