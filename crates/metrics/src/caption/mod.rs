//! Caption metrics as the captioning literature reports them for decoded
//! captions against COCO's reference captions (MindEye2, UMBRAE, BrainHub):
//! pycocoevalcap's BLEU-1..4, METEOR, ROUGE-L and CIDEr on its PTB
//! tokenization, and CLIP-S / RefCLIP-S (Hessel et al. 2021).
//!
//! - [`ptb`]: pycocoevalcap's `PTBTokenizer` (Stanford PTBTokenizer 3.4.1,
//!   lower-cased, punctuation removed).
//! - [`coco_bleu`](mod@coco_bleu), [`rouge`], [`cider`]: `Bleu(4)`, `Rouge`, `Cider`.
//! - [`meteor`]: METEOR 1.5 (`-l en -norm`), reading its language data from
//!   the user's `meteor-1.5.jar`.
//! - [`clip_score`]: CLIP-S / RefCLIP-S over caller-computed embeddings.
//!
//! [`caption_scores`] runs the text metrics the way `COCOEvalCap.evaluate`
//! does (references tokenized in one call, hypotheses in another) and
//! reports them on the 0–100 scale.

pub mod cider;
pub mod clip_score;
pub mod coco_bleu;
pub mod meteor;
pub mod ptb;
pub mod rouge;

use serde::Serialize;

use crate::error::{check_len, MetricsError, Result};
use cider::coco_cider;
use clip_score::ClipScores;
use coco_bleu::coco_bleu;
use meteor::{coco_meteor, MeteorFiles};
use ptb::coco_tokenize;
use rouge::coco_rouge_l;

/// Caption metrics of a corpus, on the 0–100 scale papers print (BLEU,
/// METEOR, ROUGE-L, CIDEr and CLIP-S values times 100; CIDEr is already
/// ×10 in pycocoevalcap, so 100 here is pycocoevalcap's 1.0).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaptionScores {
    /// Corpus BLEU-1 (pycocoevalcap `Bleu(4)`).
    pub bleu_1: f64,
    /// Corpus BLEU-2.
    pub bleu_2: f64,
    /// Corpus BLEU-3.
    pub bleu_3: f64,
    /// Corpus BLEU-4.
    pub bleu_4: f64,
    /// METEOR 1.5; `None` when no METEOR jar was given.
    pub meteor: Option<f64>,
    /// ROUGE-L (pycocoevalcap `Rouge`, β = 1.2).
    pub rouge_l: f64,
    /// CIDEr-D (pycocoevalcap `Cider`).
    pub cider: f64,
    /// CLIP-S (0 to 250), when embeddings were given.
    pub clip_s: Option<f64>,
    /// RefCLIP-S, when reference embeddings were given.
    pub ref_clip_s: Option<f64>,
    /// Number of hypotheses scored.
    pub n_items: usize,
}

impl CaptionScores {
    /// Adds CLIP-S / RefCLIP-S computed by [`clip_score::clip_scores`].
    pub fn with_clip(mut self, clip: &ClipScores) -> CaptionScores {
        self.clip_s = Some(100.0 * clip.clip_s);
        self.ref_clip_s = clip.ref_clip_s.map(|v| 100.0 * v);
        self
    }
}

/// Per-item scores on pycocoevalcap's own scale (0–1, CIDEr 0–10), in
/// hypothesis order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaptionItemScores {
    /// BLEU-1..4 of each hypothesis, `(n, 4)`.
    pub bleu: Vec<[f64; 4]>,
    /// METEOR of each hypothesis, `(n,)`; `None` without a METEOR jar.
    pub meteor: Option<Vec<f64>>,
    /// ROUGE-L of each hypothesis, `(n,)`.
    pub rouge_l: Vec<f64>,
    /// CIDEr-D of each hypothesis, `(n,)`.
    pub cider: Vec<f64>,
}

/// Checks the corpus shape: one reference list (non-empty) per hypothesis.
fn check_corpus<H: AsRef<str>, R: AsRef<str>>(
    hypotheses: &[H],
    references: &[Vec<R>],
) -> Result<()> {
    if hypotheses.is_empty() {
        return Err(MetricsError::Empty {
            what: "hypothesis list",
            need: "at least one hypothesis is required",
        });
    }
    check_len(
        "reference lists (one per hypothesis)",
        hypotheses.len(),
        references.len(),
    )?;
    if let Some(i) = references.iter().position(|r| r.is_empty()) {
        return Err(MetricsError::InvalidArgument(format!(
            "hypothesis {i} has no reference caption"
        )));
    }
    Ok(())
}

/// Tokenizes as `COCOEvalCap.evaluate` does: all references in one
/// tokenizer call, all hypotheses in another.
pub fn coco_tokenize_corpus<H: AsRef<str>, R: AsRef<str>>(
    hypotheses: &[H],
    references: &[Vec<R>],
) -> (Vec<String>, Vec<Vec<String>>) {
    let flat: Vec<&str> = references
        .iter()
        .flat_map(|refs| refs.iter().map(AsRef::as_ref))
        .collect();
    let mut tokenized = coco_tokenize(&flat).into_iter();
    let refs_tok = references
        .iter()
        .map(|refs| tokenized.by_ref().take(refs.len()).collect())
        .collect();
    (coco_tokenize(hypotheses), refs_tok)
}

/// BLEU-1..4, ROUGE-L and CIDEr of raw (untokenized) captions, as
/// pycocoevalcap computes them; `meteor` left empty (see
/// [`caption_scores_with_meteor`]).
///
/// Shapes: `hypotheses` `(n,)`, `references` `(n,)`, each with at least one
/// caption (COCO has five).
pub fn caption_scores<H: AsRef<str>, R: AsRef<str>>(
    hypotheses: &[H],
    references: &[Vec<R>],
) -> Result<CaptionScores> {
    Ok(caption_scores_detailed(hypotheses, references, None)?.0)
}

/// [`caption_scores`] plus METEOR 1.5, whose data comes from `meteor`.
pub fn caption_scores_with_meteor<H: AsRef<str>, R: AsRef<str>>(
    hypotheses: &[H],
    references: &[Vec<R>],
    meteor: &MeteorFiles,
) -> Result<CaptionScores> {
    Ok(caption_scores_detailed(hypotheses, references, Some(meteor))?.0)
}

/// The corpus scores and the per-item scores.
pub fn caption_scores_detailed<H: AsRef<str>, R: AsRef<str>>(
    hypotheses: &[H],
    references: &[Vec<R>],
    meteor: Option<&MeteorFiles>,
) -> Result<(CaptionScores, CaptionItemScores)> {
    check_corpus(hypotheses, references)?;
    let (hyps, refs) = coco_tokenize_corpus(hypotheses, references);
    let bleu = coco_bleu(&hyps, &refs);
    let rouge = coco_rouge_l(&hyps, &refs);
    let cider = coco_cider(&hyps, &refs);
    let meteor = meteor
        .map(|files| coco_meteor(&hyps, &refs, files))
        .transpose()?;
    let scores = CaptionScores {
        bleu_1: 100.0 * bleu.corpus[0],
        bleu_2: 100.0 * bleu.corpus[1],
        bleu_3: 100.0 * bleu.corpus[2],
        bleu_4: 100.0 * bleu.corpus[3],
        meteor: meteor.as_ref().map(|m| 100.0 * m.corpus),
        rouge_l: 100.0 * rouge.corpus,
        cider: 100.0 * cider.corpus,
        clip_s: None,
        ref_clip_s: None,
        n_items: hyps.len(),
    };
    let items = CaptionItemScores {
        bleu: bleu.items,
        meteor: meteor.map(|m| m.items),
        rouge_l: rouge.items,
        cider: cider.items,
    };
    Ok((scores, items))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_corpora_are_errors() {
        let none: [&str; 0] = [];
        let no_refs: [Vec<&str>; 0] = [];
        assert!(matches!(
            caption_scores(&none, &no_refs),
            Err(MetricsError::Empty { .. })
        ));
        assert!(matches!(
            caption_scores(&["a", "b"], &[vec!["a"]]),
            Err(MetricsError::ShapeMismatch { .. })
        ));
        let empty_refs: Vec<Vec<&str>> = vec![vec![]];
        assert!(matches!(
            caption_scores(&["a"], &empty_refs),
            Err(MetricsError::InvalidArgument(_))
        ));
    }

    #[test]
    fn perfect_captions_score_high() {
        let hyps = ["A dog on a couch.", "Two cats in a box."];
        let refs = vec![vec!["a dog on a couch"], vec!["two cats in a box"]];
        let s = caption_scores(&hyps, &refs).unwrap();
        assert!((s.bleu_4 - 100.0).abs() < 1e-6);
        assert!((s.rouge_l - 100.0).abs() < 1e-9);
        assert!(s.cider > 0.0 && s.meteor.is_none());
    }
}
