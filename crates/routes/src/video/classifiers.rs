//! MinD-Video's classifiers for the n-way scores on real clips: ViT-B/16 (ImageNet) per frame
//! for 2-way-I, VideoMAE (Kinetics-400, loaded with the clips' frame count, as MinD-Video's
//! `num_frames=6`) per clip for 2-way-V and 50-way-V. Frames go in at 256² (the size of
//! MinD-Video's clips), then through each model's image processor.

use crate::error::Result;
use brainrecon_formats::image::RgbImage;
use brainrecon_vision::preprocess::ImageProcessor;
use brainrecon_vision::{ViTForImageClassification, VideoMAEForVideoClassification};
use candle_core::{Device, Tensor};

/// MinD-Video's clip size.
pub const CLIP_SIZE: usize = 256;

/// The classifiers that were given (either may be absent).
pub struct VideoClassifiers {
    /// ViT-B/16 (ImageNet) with its image processor, for 2-way-I.
    pub vit: Option<(ViTForImageClassification, ImageProcessor)>,
    /// VideoMAE (Kinetics-400) with its image processor, for 2-way-V and 50-way-V.
    pub videomae: Option<(VideoMAEForVideoClassification, ImageProcessor)>,
    /// Where they run.
    pub device: Device,
}

impl VideoClassifiers {
    /// Loads `vit` and `videomae` (folders or Hugging Face cache ids), VideoMAE for clips of
    /// `frames` frames.
    pub fn load(
        vit: Option<&str>,
        videomae: Option<&str>,
        frames: usize,
        device: &Device,
    ) -> Result<Self> {
        let vit = vit
            .map(|name| ViTForImageClassification::load(name, device))
            .transpose()?;
        let videomae = videomae
            .map(|name| VideoMAEForVideoClassification::load(name, Some(frames), device))
            .transpose()?;
        Ok(VideoClassifiers {
            vit,
            videomae,
            device: device.clone(),
        })
    }

    /// True when neither classifier was given.
    pub fn is_empty(&self) -> bool {
        self.vit.is_none() && self.videomae.is_none()
    }

    /// Frames at 256² through `processor`: [n, 3, H, W] values.
    fn pixels(&self, processor: &ImageProcessor, frames: &[RgbImage]) -> Result<Tensor> {
        let resized: Vec<RgbImage> = frames
            .iter()
            .map(|f| f.resize(CLIP_SIZE, CLIP_SIZE))
            .collect();
        let (values, (h, w)) = processor.pixel_values(&resized)?;
        Ok(Tensor::from_vec(
            values,
            (frames.len(), 3, h, w),
            &self.device,
        )?)
    }

    /// ViT logits of each frame: (frames, classes) row-major, and the class count.
    pub fn frame_logits(&self, frames: &[RgbImage]) -> Result<Option<(Vec<f32>, usize)>> {
        let Some((model, processor)) = &self.vit else {
            return Ok(None);
        };
        let logits = model.forward(&self.pixels(processor, frames)?)?;
        let classes = logits.dim(1)?;
        Ok(Some((logits.flatten_all()?.to_vec1::<f32>()?, classes)))
    }

    /// VideoMAE logits of the clip: (classes,), and the class count.
    pub fn clip_logits(&self, frames: &[RgbImage]) -> Result<Option<(Vec<f32>, usize)>> {
        let Some((model, processor)) = &self.videomae else {
            return Ok(None);
        };
        let pixels = self.pixels(processor, frames)?.unsqueeze(0)?;
        let logits = model.forward(&pixels)?;
        let classes = logits.dim(1)?;
        Ok(Some((logits.flatten_all()?.to_vec1::<f32>()?, classes)))
    }
}
