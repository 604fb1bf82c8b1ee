//! shapes-blip, the project's own captioner: what it writes for scenes it never saw in
//! training, and that its training resumes to the same weights.

use brainrecon_language::blip::BlipForConditionalGeneration;
use brainrecon_language::wordpiece::BlipTokenizer;
use brainrecon_testkit::copy_dir;
use brainrecon_zoo::shapes_blip::quality::{held_out_captions, scene_naming};
use brainrecon_zoo::shapes_blip::{train_captioner, CaptionerConfig, SHAPES_BLIP_MODEL};
use candle_core::Device;
use std::path::Path;

/// A captioner folder with its tokenizer.
fn load(dir: &Path, device: &Device) -> (BlipForConditionalGeneration, BlipTokenizer) {
    (
        BlipForConditionalGeneration::load_dir(dir, device).unwrap(),
        BlipTokenizer::from_dir(dir).unwrap(),
    )
}

/// Every token of the captioner's vocabulary, in id order.
fn vocabulary(tokenizer: &BlipTokenizer, size: usize) -> Vec<String> {
    (0..size as u32)
        .map(|id| tokenizer.decode(&[id], false).unwrap())
        .collect()
}

#[test]
fn shapes_blip_names_colour_and_shape_of_held_out_scenes() {
    let device = Device::Cpu;
    let (model, tokenizer) = load(&SHAPES_BLIP_MODEL.dir().unwrap(), &device);
    let tokens = vocabulary(&tokenizer, model.text_decoder.config().vocab_size);
    let captions = held_out_captions(&model, &tokens, &device).unwrap();
    let naming = scene_naming(&captions);
    eprintln!("held-out scenes: {naming:?}; e.g. {:?}", &captions[..3]);
    assert!(naming.colour >= 0.9, "{naming:?}");
    assert!(naming.shape >= 0.9, "{naming:?}");
    assert!(naming.colour_and_shape >= 0.9, "{naming:?}");
    assert!(naming.wrong_background <= 0.05, "{naming:?}");
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
    let summary = train_captioner(&whole, &config, 7, &device, &mut |_| {}).unwrap();
    assert_eq!(summary.losses.len(), 4);
    assert_eq!(summary.decoder_losses.len(), 4, "the second stage ran");
    assert!(summary
        .losses
        .iter()
        .chain(&summary.decoder_losses)
        .all(|l| l.is_finite()));
    // An interruption after step 2 of the first stage: its last checkpoint, the second
    // stage's and the outputs are gone.
    let broken = dir.path().join("broken");
    copy_dir(&whole.join(".train"), &broken.join(".train"));
    std::fs::remove_dir_all(broken.join(".train/captioner/step-4")).unwrap();
    std::fs::remove_dir_all(broken.join(".train/decoder")).unwrap();
    let resumed = train_captioner(&broken, &config, 7, &device, &mut |_| {}).unwrap();
    assert_eq!(resumed.resumed_from, Some(2));
    assert_eq!(resumed.losses, summary.losses);
    assert_eq!(resumed.decoder_losses, summary.decoder_losses);
    // An interruption in the second stage: it resumes from its own checkpoint.
    let late = dir.path().join("late");
    copy_dir(&whole.join(".train"), &late.join(".train"));
    std::fs::remove_dir_all(late.join(".train/decoder/step-4")).unwrap();
    let resumed_late = train_captioner(&late, &config, 7, &device, &mut |_| {}).unwrap();
    assert_eq!(
        resumed_late.resumed_from,
        Some(4),
        "the first stage had finished"
    );
    assert_eq!(resumed_late.decoder_losses, summary.decoder_losses);
    for folder in [&broken, &late] {
        assert_eq!(
            std::fs::read(whole.join("model.safetensors")).unwrap(),
            std::fs::read(folder.join("model.safetensors")).unwrap()
        );
    }
    // The folder loads as a captioner.
    let (model, _) = load(&whole, &device);
    assert_eq!(model.vision_model.config.image_size, 32);
}
