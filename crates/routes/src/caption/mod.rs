//! The caption route (Takagi & Nishimoto's extension of the linear route): ridge from the
//! `streams` ROIs to BLIP's image tokens, BLIP's text decoder writes a caption from the decoded
//! tokens, and the caption replaces the decoded c in img2img from the decoded z.
//!
//! ```text
//! <out>/captions.json   CaptionsFile: per test image the caption, the beams and their
//!                       scores, the true captions; the captioner, decoder and settings
//! ```

pub mod clip_score;
pub use crate::decode::blip::{load_captioner, LoadedCaptioner};
pub mod decode;
pub mod embedded;
pub mod reconstruct;
pub mod scores;

use crate::error::{Result, RouteError};
use brainrecon_core::fs::{read_json, write_json_atomic};
use brainrecon_datasets::prepared::PreparedSubject;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The `format` of a [`CaptionsFile`].
pub const CAPTIONS_FORMAT: &str = "brainrecon-captions";
/// The captions file's name in the output folder.
pub const CAPTIONS_FILE: &str = "captions.json";

/// One finished beam: its text (prompt stripped) and its score as the scoring defines it
/// (none for greedy search, `--beams 1`, which transformers does not score either).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScoredCaption {
    /// The caption, prompt stripped.
    pub text: String,
    /// Summed log-probabilities over the length (transformers' `sequences_scores`).
    pub score: Option<f64>,
}

/// The decoded caption of one test image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CaptionItem {
    /// The test image's 0-based 73k id.
    pub id: usize,
    /// The best beam's text.
    pub caption: String,
    /// Every finished hypothesis of the beam search, best first.
    pub beams: Vec<ScoredCaption>,
    /// The image's COCO captions (empty when the subject has none).
    pub true_captions: Vec<String>,
}

/// What `brainrecon caption` writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaptionsFile {
    /// Always [`CAPTIONS_FORMAT`].
    pub format: String,
    /// The subject whose test images were captioned.
    pub subject: String,
    /// Its prepared folder.
    pub subject_dir: PathBuf,
    /// The BLIP decoder folder (`fit --target blip`), or `features` for captions of the
    /// stimuli's own BLIP tokens (the captioner's ceiling).
    pub source: String,
    /// The BLIP captioner as named (`shapes-blip`, a folder or a model id).
    pub captioner: String,
    /// A hash of the captioner's files.
    pub captioner_fingerprint: String,
    /// Beam width, lengths, penalty, scoring, prompt.
    pub settings: serde_json::Value,
    /// One per test image, in test order.
    pub items: Vec<CaptionItem>,
}

impl CaptionsFile {
    /// Writes `dir/captions.json` atomically and returns its path.
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join(CAPTIONS_FILE);
        write_json_atomic(&path, self)?;
        Ok(path)
    }

    /// Reads `path` (a captions.json, or a folder holding one) and checks it against `subject`.
    pub fn load_for(path: &Path, subject: &PreparedSubject) -> Result<(PathBuf, Self)> {
        let path = if path.is_dir() {
            path.join(CAPTIONS_FILE)
        } else {
            path.to_path_buf()
        };
        if !path.exists() {
            return Err(RouteError::Missing {
                path,
                what: "captions of the test images: run `brainrecon caption` first".into(),
            });
        }
        let file: CaptionsFile = read_json(&path)?;
        if file.format != CAPTIONS_FORMAT {
            return Err(RouteError::mismatch(
                &path,
                "format",
                CAPTIONS_FORMAT,
                &file.format,
            ));
        }
        if file.subject != subject.meta.subject {
            return Err(RouteError::mismatch(
                &path,
                "subject",
                format!("captions of {}", subject.meta.subject),
                &file.subject,
            ));
        }
        Ok((path, file))
    }

    /// The caption of each of `ids`, in order; an image without one is an error naming the file.
    pub fn captions_for(&self, path: &Path, ids: &[usize]) -> Result<Vec<String>> {
        ids.iter()
            .map(|id| {
                self.items
                    .iter()
                    .find(|item| item.id == *id)
                    .map(|item| item.caption.clone())
                    .ok_or_else(|| {
                        RouteError::mismatch(
                            path,
                            "items",
                            format!("a caption of test image {id}"),
                            "none (captions of another subject or of fewer images?)",
                        )
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unscored_beams_and_the_scoring_survive_a_round_trip() {
        // Greedy search (--beams 1) gives no score; JSON has no NaN, so it must be absent.
        let item = CaptionItem {
            id: 3,
            caption: "a red disc".into(),
            beams: vec![ScoredCaption {
                text: "a red disc".into(),
                score: None,
            }],
            true_captions: vec!["a red circle".into()],
        };
        let text = serde_json::to_string(&item).unwrap();
        assert_eq!(serde_json::from_str::<CaptionItem>(&text).unwrap(), item);
        let options = decode::CaptionOptions::default();
        let text = serde_json::to_string(&options).unwrap();
        assert!(text.contains(r#""scoring":"published""#), "{text}");
        assert_eq!(
            serde_json::from_str::<decode::CaptionOptions>(&text).unwrap(),
            options
        );
    }
}
