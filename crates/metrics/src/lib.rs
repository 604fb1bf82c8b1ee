//! Evaluation metrics for fMRI-to-image reconstruction.
//!
//! Small pure functions over flat slices, each matched to the reference
//! implementation papers report (scikit-image SSIM, MindEye's PixCorr and
//! two-way identification, sacrebleu's BLEU) by fixture tests generated with
//! `tools/fixtures/metrics_fixtures.py`.
//!
//! Shapes are stated in each function's documentation and checked on entry:
//! a mismatch is an [`MetricsError`], never a panic, since inputs come from
//! user files.
//!
//! - [`image`]: MSE, PixCorr, grayscale conversion, SSIM.
//! - [`vector`]: MSE, Pearson, cosine similarity of latents/features.
//! - [`identification`]: two-way (MindEye) and n-way top-k identification.
//! - [`rank`]: the one tie rule of every rank-based score (ties count against the match)
//!   and the refusal of non-finite inputs.
//! - [`bleu`]: corpus BLEU-4 with sacrebleu's 13a tokenizer.
//! - [`caption`]: caption metrics as pycocoevalcap computes them (PTB
//!   tokenizer, BLEU-1..4, METEOR 1.5, ROUGE-L, CIDEr-D) and CLIP-S /
//!   RefCLIP-S, checked against pycocoevalcap and clipscore.py by fixtures
//!   from `tools/fixtures/caption_metrics.py`.
//! - [`video`]: MinD-Video's n-way top-k classification rule, SSIM and PSNR of 8-bit clips.
//! - [`summary`]: [`MetricsTable`], the per-set summary a CLI prints.
#![warn(missing_docs)]

pub mod bleu;
pub mod caption;
pub mod error;
pub mod identification;
pub mod image;
pub mod rank;
pub mod summary;
pub mod vector;
pub mod video;

pub use bleu::{corpus_bleu, BleuScore};
pub use caption::clip_score::{clip_scores, ClipScores, ReferenceEmbeddings};
pub use caption::meteor::{coco_meteor, MeteorFiles, MeteorScore, MeteorStats};
pub use caption::ptb::coco_tokenize;
pub use caption::{
    caption_scores, caption_scores_detailed, caption_scores_with_meteor, CaptionItemScores,
    CaptionScores,
};
pub use error::{MetricsError, Result};
pub use identification::{n_way_top_k_identification, two_way_identification, NWaySettings};
pub use rank::{at_least_as_good, beats, match_rank, require_finite};
pub use summary::MetricsTable;
