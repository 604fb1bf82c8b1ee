//! The CLIP embeddings CLIP-S and RefCLIP-S (Hessel et al. 2021) compare, computed as
//! `clipscore.py` (github.com/jmhessel/clipscore) does: image features of the stimuli, text
//! features of "A photo depicts " + caption for the decoded captions and for every true
//! caption alike (its `CLIPCapDataset` prefixes whatever it embeds, references included),
//! truncated to CLIP's 77 tokens, each row L2-normalised. The scores themselves are
//! `brainrecon_metrics::caption::clip_score`'s.

use crate::error::{Result, RouteError};
use brainrecon_diffusion::clip_model::{l2_normalize_rows, ClipModel};
use brainrecon_formats::image::RgbImage;

/// clipscore.py's prefix ("A photo depicts", to which it appends a space).
pub const CLIPSCORE_PREFIX: &str = "A photo depicts ";

/// L2-normalised CLIP embeddings, one row per text or image.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipScoreEmbeddings {
    /// `[n][d]`: the stimuli.
    pub images: Vec<Vec<f32>>,
    /// `[n][d]`: the decoded captions.
    pub captions: Vec<Vec<f32>>,
    /// `[n][k_i][d]`: each image's true captions (k_i may be 0).
    pub references: Vec<Vec<Vec<f32>>>,
}

impl ClipScoreEmbeddings {
    /// The projection width d.
    pub fn dim(&self) -> usize {
        self.images.first().map_or(0, Vec::len)
    }

    /// Images as one row-major [n * d] slice.
    pub fn flat_images(&self) -> Vec<f32> {
        self.images.concat()
    }

    /// Captions as one row-major [n * d] slice.
    pub fn flat_captions(&self) -> Vec<f32> {
        self.captions.concat()
    }

    /// References as row-major [(sum k_i) * d] and the counts k_i.
    pub fn flat_references(&self) -> (Vec<f32>, Vec<usize>) {
        let counts = self.references.iter().map(Vec::len).collect();
        let rows = self
            .references
            .iter()
            .flatten()
            .flatten()
            .copied()
            .collect();
        (rows, counts)
    }
}

/// The embeddings of `images` (the stimuli), `captions` (decoded, one per image) and
/// `true_captions` (the references of each image), all through `model`.
pub fn clip_score_embeddings(
    model: &ClipModel,
    images: &[RgbImage],
    captions: &[String],
    true_captions: &[Vec<String>],
) -> Result<ClipScoreEmbeddings> {
    let n = images.len();
    if captions.len() != n || true_captions.len() != n {
        return Err(RouteError::Usage(format!(
            "CLIP-S needs one caption and one list of true captions per image: {n} images, {} \
             captions, {} lists of true captions",
            captions.len(),
            true_captions.len()
        )));
    }
    let images = rows(&model.image_features(images)?)?;
    let captions = embed_texts(model, captions.iter())?;
    let mut flat = embed_texts(model, true_captions.iter().flatten())?.into_iter();
    let references = true_captions
        .iter()
        .map(|refs| flat.by_ref().take(refs.len()).collect())
        .collect();
    Ok(ClipScoreEmbeddings {
        images,
        captions,
        references,
    })
}

/// "A photo depicts " + each text → normalised text features, [m][d].
fn embed_texts<'a>(
    model: &ClipModel,
    texts: impl Iterator<Item = &'a String>,
) -> Result<Vec<Vec<f32>>> {
    let prefixed: Vec<String> = texts.map(|t| format!("{CLIPSCORE_PREFIX}{t}")).collect();
    let refs: Vec<&str> = prefixed.iter().map(String::as_str).collect();
    rows(&model.text_features(&refs)?)
}

/// Normalised rows of [m, d] features.
fn rows(features: &candle_core::Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(l2_normalize_rows(features)?.to_vec2::<f32>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use std::path::{Path, PathBuf};

    /// The tiny CLIPModel of tools/fixtures/clip_model.py.
    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../diffusion/tests/fixtures/clip_model")
    }

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
    }

    #[test]
    fn prefixed_captions_and_references_match_transformers() {
        let model = ClipModel::from_dir(&fixture().join("model"), DType::F32, &Device::Cpu)
            .expect("tiny CLIPModel");
        let texts: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fixture().join("texts.json")).unwrap())
                .unwrap();
        // transformers' get_text_features of "A photo depicts " + caption, rows 0..6.
        let prefixed: Vec<String> = serde_json::from_value(texts["texts"].clone()).unwrap();
        let captions: Vec<String> = prefixed[..6]
            .iter()
            .map(|t| {
                t.strip_prefix(CLIPSCORE_PREFIX)
                    .expect("prefixed")
                    .to_string()
            })
            .collect();
        let reference =
            candle_core::safetensors::load(fixture().join("reference.safetensors"), &Device::Cpu)
                .unwrap();
        let want: Vec<Vec<f32>> = reference["text_features"].to_vec2().unwrap();
        let images: Vec<RgbImage> = (0..2)
            .map(|i| {
                let t = &reference[&format!("image_{i}")];
                let (h, w, _) = t.dims3().unwrap();
                RgbImage::new(h, w, t.flatten_all().unwrap().to_vec1::<u8>().unwrap())
            })
            .collect();
        let image_want: Vec<Vec<f32>> = reference["image_features"].to_vec2().unwrap();

        let decoded = vec![captions[0].clone(), captions[1].clone()];
        let truth = vec![captions[2..5].to_vec(), vec![captions[5].clone()]];
        let e = clip_score_embeddings(&model, &images, &decoded, &truth).unwrap();
        assert_eq!(e.dim(), 16);
        for i in 0..2 {
            assert!(close(&e.images[i], &unit(&image_want[i])), "image {i}");
            assert!(close(&e.captions[i], &unit(&want[i])), "caption {i}");
        }
        assert_eq!(e.references[0].len(), 3);
        for (k, row) in e.references[0].iter().enumerate() {
            assert!(close(row, &unit(&want[2 + k])), "reference 0.{k}");
        }
        assert!(close(&e.references[1][0], &unit(&want[5])), "reference 1.0");
        let (flat, counts) = e.flat_references();
        assert_eq!((flat.len(), counts), (4 * 16, vec![3, 1]));

        // Without the prefix the embedding differs: the prefix is really applied.
        let bare = model.text_features(&[captions[0].as_str()]).unwrap();
        let bare = unit(&bare.to_vec2::<f32>().unwrap()[0]);
        assert!(!close(&bare, &e.captions[0]));

        let err = clip_score_embeddings(&model, &images, &decoded[..1], &truth).unwrap_err();
        assert!(err.to_string().contains("2 images, 1 captions"), "{err}");
    }
}
