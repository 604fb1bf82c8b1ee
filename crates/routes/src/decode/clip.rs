//! CLIP image embeddings: a feature kind for `brainrecon features` and the space of two-way
//! identification in `brainrecon eval`.

use crate::decode::features::{rows_of, FeatureKind, Stimulus, StimulusEncoder};
use crate::error::Result;
use brainrecon_diffusion::clip_vision::{load_clip_vision, ClipImageProcessor, ClipVisionModel};
use brainrecon_diffusion::pipeline::{DType, Device};
use brainrecon_formats::image::RgbImage;
use std::collections::BTreeMap;

/// The model CLIP identification uses when none is named (MindEye's ViT-L/14).
pub const DEFAULT_CLIP: &str = "openai/clip-vit-large-patch14";

/// A CLIP vision tower with its image processor.
pub struct ClipImageFeatures {
    /// The model as the caller named it (folder, snapshot or model id).
    pub name: String,
    /// The vision tower with its projection.
    pub model: ClipVisionModel,
    /// CLIP's resize, centre crop and mean/std normalisation.
    pub processor: ClipImageProcessor,
    /// Where the pixels go.
    pub device: Device,
    /// Images per forward pass.
    pub batch: usize,
}

impl ClipImageFeatures {
    /// `model`: a folder, a cache snapshot or a cached model id.
    pub fn load(model: &str, dtype: DType, device: &Device) -> Result<Self> {
        let (vision, processor) = load_clip_vision(model, dtype, device)?;
        Ok(ClipImageFeatures {
            name: model.to_string(),
            model: vision,
            processor,
            device: device.clone(),
            batch: 16,
        })
    }

    /// Projected embeddings, one row per image.
    pub fn embed_images(&self, images: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
        let mut rows = Vec::with_capacity(images.len());
        for chunk in images.chunks(self.batch.max(1)) {
            let pixels = self.processor.preprocess(chunk, &self.device)?;
            let embeds = self.model.forward(&pixels)?;
            rows.extend(rows_of(&embeds.to_dtype(DType::F32)?)?);
        }
        Ok(rows)
    }
}

impl StimulusEncoder for ClipImageFeatures {
    fn kind(&self) -> FeatureKind {
        FeatureKind::ClipImage
    }

    fn shape(&self) -> Vec<usize> {
        vec![self.model.config.projection_dim]
    }

    fn settings(&self) -> BTreeMap<String, serde_json::Value> {
        let mut s = BTreeMap::new();
        s.insert("embedding".into(), "image_embeds".into());
        s
    }

    fn encode(&self, stimuli: &[Stimulus]) -> Result<Vec<Vec<f32>>> {
        let images: Vec<RgbImage> = stimuli.iter().map(|s| s.image.clone()).collect();
        self.embed_images(&images)
    }
}
