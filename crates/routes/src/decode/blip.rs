//! BLIP features of the stimuli for `brainrecon features`: the image tokens the caption route
//! decodes (`blip-vision`, after the final LayerNorm: 226 × 768 for the published ViT-B at
//! 240 px), any hidden layer of the image tower (`blip-vision-lL`) or of the text decoder run
//! on the captions without an image (`blip-text[-lL]`), for encoding maps.
//!
//! Preprocessing follows the published code by default: the stimulus resized to the
//! captioner's image size with Pillow's Lanczos, scaled to [0, 1], not normalised (the
//! published `img2feat_blip.py` skips BLIP's mean/std; `normalize` applies them).

use crate::decode::features::{FeatureKind, Stimulus, StimulusEncoder};
use crate::error::{Result, RouteError};
use brainrecon_diffusion::weights::ModelDir;
use brainrecon_formats::image::RgbImage;
use brainrecon_language::blip::resolve_blip_dir;
use brainrecon_language::blip::{AttentionMode, BlipForConditionalGeneration, TextInputs};
use brainrecon_language::wordpiece::BlipTokenizer;
use candle_core::{Device, Tensor};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// OpenAI CLIP's per-channel mean (RGB, on [0, 1] pixels), which BLIP's image processor uses.
pub const BLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// OpenAI CLIP's per-channel std (RGB, on [0, 1] pixels), which BLIP's image processor uses.
pub const BLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// A loaded captioner used as a feature extractor.
pub struct BlipFeatures<'a> {
    /// The captioner whose image tower or text decoder gives the features.
    pub model: &'a BlipForConditionalGeneration,
    /// Its WordPiece tokenizer, for the `blip-text` captions.
    pub tokenizer: &'a BlipTokenizer,
    /// What the caller named (folder or model id) and a fingerprint of its files.
    pub fingerprint: String,
    /// `blip-vision[-lL]` or `blip-text[-lL]`; other kinds fail [`BlipFeatures::validate`].
    pub kind: FeatureKind,
    /// Side of the square input (the position table is interpolated when it differs from the
    /// config's).
    pub image_size: usize,
    /// Apply BLIP's mean/std ([`BLIP_MEAN`], [`BLIP_STD`]) after scaling to [0, 1]; the published
    /// `img2feat_blip.py` does not.
    pub normalize: bool,
    /// Where the pixels and tokens go.
    pub device: Device,
}

/// Images [B, 3, S, S]: Lanczos-resized, in [0, 1], or normalised with BLIP's mean/std.
pub use brainrecon_vision::preprocess::blip_pixels;

impl BlipFeatures<'_> {
    fn tokens_per_image(&self) -> usize {
        let grid = self.image_size / self.model.vision_model.config.patch_size;
        grid * grid + 1
    }

    fn check_layer(&self, layer: Option<u8>, layers: usize) -> Result<()> {
        match layer {
            Some(l) if l as usize > layers => Err(RouteError::Usage(format!(
                "--layer {l}: the model has {layers} layers (0 = embeddings … {layers})"
            ))),
            _ => Ok(()),
        }
    }

    /// Checks the kind's layer against the model.
    pub fn validate(&self) -> Result<()> {
        match self.kind {
            FeatureKind::BlipVision(layer) => {
                self.check_layer(layer, self.model.vision_model.config.num_hidden_layers)
            }
            FeatureKind::BlipText(layer) => {
                self.check_layer(layer, self.model.text_decoder.config().num_hidden_layers)
            }
            other => Err(RouteError::Usage(format!(
                "BLIP features: expected blip-vision or blip-text, found {}",
                other.name()
            ))),
        }
    }

    fn encode_images(&self, stimuli: &[Stimulus], layer: Option<u8>) -> Result<Vec<Vec<f32>>> {
        let images: Vec<RgbImage> = stimuli.iter().map(|s| s.image.clone()).collect();
        let pixels = blip_pixels(&images, self.image_size, self.normalize, &self.device)?;
        let out = self.model.vision_model.forward_full(&pixels)?;
        let states = match layer {
            None => out.last_hidden_state,
            Some(l) => out.hidden_states[l as usize].clone(),
        };
        crate::decode::features::rows_of(&states)
    }

    /// One caption's tokens at `layer`, averaged over its tokens: [d].
    fn caption_vector(&self, caption: &str, layer: Option<u8>) -> Result<Tensor> {
        // `[DEC] caption [SEP]`: the decoder's own start token in place of `[CLS]`.
        let mut ids = self.tokenizer.encode(caption)?;
        ids[0] = self.tokenizer.bos_id;
        let ids = Tensor::from_vec(ids.clone(), (1, ids.len()), &self.device)?;
        let out = self.model.text_decoder.bert.forward(
            &ids,
            &TextInputs {
                mode: AttentionMode::Causal,
                output_hidden_states: true,
                ..Default::default()
            },
        )?;
        let states = match layer {
            None => out.last_hidden_state,
            Some(l) => out.hidden_states[l as usize].clone(),
        };
        Ok(states.squeeze(0)?.mean(0)?)
    }

    fn encode_captions(&self, stimuli: &[Stimulus], layer: Option<u8>) -> Result<Vec<Vec<f32>>> {
        let mut rows = Vec::with_capacity(stimuli.len());
        for s in stimuli {
            if s.captions.is_empty() {
                return Err(RouteError::Usage(format!(
                    "image {} has no captions: blip-text features need stimuli/captions.json",
                    s.id
                )));
            }
            let vectors = s
                .captions
                .iter()
                .map(|c| self.caption_vector(c, layer))
                .collect::<Result<Vec<_>>>()?;
            rows.push(Tensor::stack(&vectors, 0)?.mean(0)?.to_vec1::<f32>()?);
        }
        Ok(rows)
    }
}

impl StimulusEncoder for BlipFeatures<'_> {
    fn kind(&self) -> FeatureKind {
        self.kind
    }

    fn shape(&self) -> Vec<usize> {
        match self.kind {
            FeatureKind::BlipText(_) => vec![self.model.text_decoder.config().hidden_size],
            _ => vec![
                self.tokens_per_image(),
                self.model.vision_model.config.hidden_size,
            ],
        }
    }

    fn settings(&self) -> BTreeMap<String, serde_json::Value> {
        let mut s = BTreeMap::new();
        s.insert("model_fingerprint".into(), self.fingerprint.clone().into());
        if let FeatureKind::BlipVision(_) = self.kind {
            s.insert("image_size".into(), self.image_size.into());
            s.insert("resize".into(), "lanczos".into());
            s.insert("normalize".into(), self.normalize.into());
        } else {
            s.insert("captions".into(), "mean of token means".into());
        }
        s
    }

    fn encode(&self, stimuli: &[Stimulus]) -> Result<Vec<Vec<f32>>> {
        match self.kind {
            FeatureKind::BlipVision(layer) => self.encode_images(stimuli, layer),
            FeatureKind::BlipText(layer) => self.encode_captions(stimuli, layer),
            _ => unreachable!("validated in BlipFeatures::validate"),
        }
    }
}

/// A BLIP captioner with its tokenizer.
pub struct LoadedCaptioner {
    /// The captioner (image tower, text decoder).
    pub model: BlipForConditionalGeneration,
    /// Its WordPiece tokenizer.
    pub tokenizer: BlipTokenizer,
    /// The folder the weights were read from.
    pub dir: PathBuf,
    /// A hash of the folder's files (names, sizes, first and last bytes).
    pub fingerprint: String,
}

/// Loads `name`: `shapes-blip` (built in), a transformers folder, a cache snapshot or a model
/// id in the Hugging Face cache.
pub fn load_captioner(name: &str, device: &Device) -> Result<LoadedCaptioner> {
    // The zoo's captioners by name (shapes-blip), anything else as BLIP's loader finds it.
    let dir = match brainrecon_zoo::resolve_kind(name, brainrecon_zoo::Kind::Captioner)? {
        Some(dir) => dir,
        None => resolve_blip_dir(name)?,
    };
    let model = BlipForConditionalGeneration::load_dir(&dir, device)?;
    let tokenizer = BlipTokenizer::from_dir(&dir)?;
    let fingerprint = ModelDir { root: dir.clone() }.fingerprint()?;
    Ok(LoadedCaptioner {
        model,
        tokenizer,
        dir,
        fingerprint,
    })
}
