//! Image embeddings for the EEG decoders: the pooled output of a BLIP captioner's image tower
//! (transformers' `pooler_output`, the class token after the final layer norm), by default the
//! project's shapes-blip, whose 64-wide embedding was trained on the project's scenes. NICE and
//! ATM use CLIP's image embedding instead; a BLIP folder the user supplies takes its place here.
//!
//! Images are read as PNG or JPEG (THINGS ships JPEG) and preprocessed as the caption route
//! does: Lanczos-resized to the tower's input side, in [0, 1], not normalised.

use std::path::PathBuf;

use crate::decode::blip::{load_captioner, LoadedCaptioner};
use crate::error::Result;
use brainrecon_formats::video::frames::read_frame;
use brainrecon_vision::preprocess::blip_pixels;
use candle_core::Device;

/// A loaded image tower.
pub struct ImageEmbedder {
    captioner: LoadedCaptioner,
    device: Device,
}

impl ImageEmbedder {
    /// `shapes-blip`, a transformers BLIP folder, a cache snapshot or a model id (as the caption
    /// route resolves it).
    pub fn load(name: &str) -> Result<Self> {
        let device = Device::Cpu;
        Ok(ImageEmbedder {
            captioner: load_captioner(name, &device)?,
            device,
        })
    }

    /// Width of an embedding.
    pub fn width(&self) -> usize {
        self.captioner.model.vision_model.config.hidden_size
    }

    /// The model folder's fingerprint (names, sizes, first and last bytes of its files).
    pub fn fingerprint(&self) -> &str {
        &self.captioner.fingerprint
    }

    /// Embeddings [images, width] of the images at `paths`, `batch` at a time.
    pub fn embed(&self, paths: &[PathBuf], batch: usize) -> Result<Vec<f32>> {
        let side = self.captioner.model.vision_model.config.image_size;
        let mut out = Vec::with_capacity(paths.len() * self.width());
        for chunk in paths.chunks(batch.max(1)) {
            let images = chunk
                .iter()
                .map(|p| read_frame(p))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let pixels = blip_pixels(&images, side, false, &self.device)?;
            let pooled = self
                .captioner
                .model
                .vision_model
                .forward_full(&pixels)?
                .pooler_output;
            out.extend(pooled.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }
}
