//! Times MinD-Video's classifiers on one 6-frame 256² clip: ViT-B/16 on the 6 frames and
//! VideoMAE on the clip, preprocessing included, f32 on the CPU (or the first GPU with the
//! `cuda` feature).
//!
//! ```text
//! cargo run --release -p brainrecon-vision --example bench_video_classifiers -- VIT_DIR VIDEOMAE_DIR
//! ```
//! Each argument is a folder (`config.json`, `model.safetensors`) or a model id in the Hugging
//! Face cache.

use std::time::Instant;

use brainrecon_formats::image::RgbImage;
use brainrecon_vision::{ViTForImageClassification, VideoMAEForVideoClassification};
use candle_core::{Device, Tensor};

fn frame(shift: usize) -> RgbImage {
    let pixels = (0..256 * 256 * 3)
        .map(|k| ((k / 3 % 256) * 3 + (k / 768) * 5 + (k % 3) * 40 + shift) as u8)
        .collect();
    RgbImage::new(256, 256, pixels)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (vit_dir, mae_dir) = match args.as_slice() {
        [a, b] => (a.clone(), b.clone()),
        _ => return Err("usage: bench_video_classifiers VIT_DIR_OR_ID VIDEOMAE_DIR_OR_ID".into()),
    };
    let device = if cfg!(feature = "cuda") {
        Device::new_cuda(0)?
    } else {
        Device::Cpu
    };
    let frames: Vec<RgbImage> = (0..6).map(|k| frame(9 * k)).collect();
    let (vit, vit_processor) = ViTForImageClassification::load(&vit_dir, &device)?;
    let (mae, mae_processor) = VideoMAEForVideoClassification::load(&mae_dir, Some(6), &device)?;
    for round in 0..3 {
        let start = Instant::now();
        let (pixels, (h, w)) = vit_processor.pixel_values(&frames)?;
        let logits = vit.forward(&Tensor::from_vec(pixels, (6, 3, h, w), &device)?)?;
        let _ = logits.to_device(&Device::Cpu)?;
        let vit_s = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let (pixels, (h, w)) = mae_processor.pixel_values(&frames)?;
        let logits = mae.forward(&Tensor::from_vec(pixels, (1, 6, 3, h, w), &device)?)?;
        let _ = logits.to_device(&Device::Cpu)?;
        let mae_s = start.elapsed().as_secs_f64();
        println!("round {round}: ViT 6 frames {vit_s:.3} s, VideoMAE 1 clip {mae_s:.3} s");
    }
    Ok(())
}
