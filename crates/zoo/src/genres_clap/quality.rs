//! How well a CLAP model pairs held-out synthetic clips with their captions: retrieval in the
//! joint space by cosine, top-1. Scored during training at every checkpoint and by the quality
//! test of the shipped genres-clap.

use brainrecon_language::roberta::RobertaTokenizer;
use brainrecon_nn::Result;
use candle_core::{Device, Tensor, D};
use serde::{Deserialize, Serialize};

use super::data::HeldOut;
use super::tokenizer::MAX_TOKENS;
use brainrecon_audio::clap::ClapModel;

/// Top-1 retrieval among the held-out clips (genres balanced: chance is 0.1 for a genre, 1/N
/// for a clip).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Retrieval {
    /// Held-out clips scored.
    pub clips: usize,
    /// Captions whose nearest audio window is of the caption's genre.
    pub text_to_audio_genre: f64,
    /// Audio windows whose nearest caption is of the window's genre.
    pub audio_to_text_genre: f64,
    /// Captions whose nearest audio window is their own clip's.
    pub text_to_audio_clip: f64,
}

impl Retrieval {
    /// One line for people: the genre and own-clip hit rates beside their chance levels.
    pub fn text(&self) -> String {
        format!(
            "{} held-out clips: caption → audio genre {:.0}%, audio → caption genre {:.0}% \
             (chance 10%), own clip {:.0}% (chance {:.1}%)",
            self.clips,
            100.0 * self.text_to_audio_genre,
            100.0 * self.audio_to_text_genre,
            100.0 * self.text_to_audio_clip,
            100.0 / self.clips.max(1) as f64
        )
    }
}

/// Unit embeddings of captions [N, P], in batches.
pub fn text_embeddings(
    model: &ClapModel,
    tokenizer: &RobertaTokenizer,
    texts: &[String],
    device: &Device,
) -> Result<Tensor> {
    let mut parts = Vec::new();
    for chunk in texts.chunks(64) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let (ids, mask) = tokenizer.encode_batch(&refs, Some(MAX_TOKENS), device)?;
        parts.push(model.get_text_features(&ids, Some(&mask))?.detach());
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// Unit embeddings of mel features [N, 1, T, F] → [N, P], in batches.
pub fn audio_embeddings(model: &ClapModel, features: &Tensor) -> Result<Tensor> {
    let n = features.dim(0)?;
    let mut parts = Vec::new();
    for start in (0..n).step_by(64) {
        let len = 64.min(n - start);
        let batch = features.narrow(0, start, len)?;
        let flags = vec![false; len];
        parts.push(model.get_audio_features(&batch, &flags)?.detach());
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// Index of the largest value of each row of [N, M].
fn argmax_rows(scores: &Tensor) -> Result<Vec<usize>> {
    Ok(scores
        .argmax(D::Minus1)?
        .to_vec1::<u32>()?
        .into_iter()
        .map(|i| i as usize)
        .collect())
}

/// Top-1 retrieval of the held-out clips in both directions.
pub fn retrieval(
    model: &ClapModel,
    tokenizer: &RobertaTokenizer,
    held_out: &HeldOut,
    device: &Device,
) -> Result<Retrieval> {
    let text = text_embeddings(model, tokenizer, &held_out.captions, device)?;
    let audio = audio_embeddings(model, &held_out.features)?;
    let sim = text.matmul(&audio.t()?)?;
    let genres = &held_out.genres;
    let n = genres.len();
    let share = |hits: usize| hits as f64 / n.max(1) as f64;
    let t2a = argmax_rows(&sim)?;
    let a2t = argmax_rows(&sim.t()?.contiguous()?)?;
    Ok(Retrieval {
        clips: n,
        text_to_audio_genre: share((0..n).filter(|&i| genres[t2a[i]] == genres[i]).count()),
        audio_to_text_genre: share((0..n).filter(|&i| genres[a2t[i]] == genres[i]).count()),
        text_to_audio_clip: share((0..n).filter(|&i| t2a[i] == i).count()),
    })
}
